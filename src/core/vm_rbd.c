/*
 * Root disks in pools other than the default: a qcow2 overlay in a dir pool (backed by the
 * image's copy in the host's default pool), or an RBD clone in an rbd pool.
 *
 * Root disks in rbd pools. The image's base is one raw RBD image per (image, pool), written by
 * qemu-img on nimbusd's own host (where images live; libvirt cannot upload into rbd pools) and
 * recorded in image_copies under "rbd:<pool id>"; every VM's disk is a libvirt vol-clone of it,
 * which librbd makes as a snapshot of the base and a copy-on-write clone: no data is copied.
 *
 * The Ceph key reaches qemu-img through a file of nimbusd's (0600, in the state directory's
 * tmp, removed at once after), named by QEMU's secret object: never argv, the environment or a
 * log. The hosts' QEMUs get it from the pool's libvirt secret.
 */
#include "vm_rbd.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../hv/pool_xml.h"
#include "../util/log.h"
#include "../util/spawn.h"
#include "../util/strutil.h"
#include "vm_ops_internal.h"

#define VM_RBD_DEFAULT_PORT 6789u
/* A base is written once per image and pool; a large image over a slow link takes a while. */
#define VM_RBD_WRITE_TIMEOUT_MS (3600u * 1000u)

int
vm_rbd_resolve_pool(Core *core, const char *ref, Vm *vm, NbError **err)
{
    vm->pool_id[0] = '\0';
    if (!ref || !ref[0])
        return 0;
    Pool p;
    if (pool_store_get(core->store, ref, &p, err) < 0)
        return -1;
    explicit_bzero(p.secret, sizeof(p.secret));
    if (p.is_default)
        return 0;
    if (p.type != POOL_TYPE_RBD && p.type != POOL_TYPE_DIR)
        return nb_error_set(err, NB_ERR_INVALID_REQUEST,
                            "pool '%s' is a %s pool: a VM's root disk goes in a dir pool or in an "
                            "rbd pool",
                            p.name, pool_type_to_string(p.type));
    snprintf(vm->pool_id, sizeof(vm->pool_id), "%s", p.id);
    return 0;
}

int
vm_disk_pool(Core *core, const Vm *vm, char name[POOL_LIBVIRT_NAME_MAX + 1], PoolType *type,
             NbError **err)
{
    Pool p;
    int in_pool = vm_rbd_pool(core, vm, &p, err);
    if (in_pool < 0)
        return -1;
    snprintf(name, POOL_LIBVIRT_NAME_MAX + 1, "%s", in_pool ? p.libvirt_name : vm_ops_pool(core));
    *type = in_pool ? p.type : POOL_TYPE_DIR;
    return 0;
}

int
vm_disk_refuse_in_pool(Core *core, const Vm *vm, const char *what, NbError **err)
{
    Pool p;
    int in_pool = vm_rbd_pool(core, vm, &p, err);
    if (in_pool <= 0)
        return in_pool;
    return nb_error_set(err, NB_ERR_INVALID_STATE,
                        "VM '%s' has its root disk in %s pool '%s': %s in this version", vm->name,
                        p.type == POOL_TYPE_RBD ? "rbd" : "dir", p.name, what);
}

int
vm_rbd_pool(Core *core, const Vm *vm, Pool *ret, NbError **err)
{
    if (!vm->pool_id[0])
        return 0;
    if (pool_store_get(core->store, vm->pool_id, ret, err) < 0)
        return -1;
    explicit_bzero(ret->secret, sizeof(ret->secret));
    return 1;
}

void
vm_rbd_disk_name(const Vm *vm, char out[96])
{
    snprintf(out, 96, "vm-%s-disk", vm->id);
}

void
vm_rbd_base_name(const char *image_id, char out[96])
{
    snprintf(out, 96, "nimbus-image-%s", image_id);
}

/* ---- the base: one writer per (image, pool) ---- */

typedef struct BaseLock {
    char key[NB_UUID_STRLEN * 2 + 8]; /* image id / pool id */
    struct BaseLock *next;
} BaseLock;

static pthread_mutex_t base_locks_mutex = PTHREAD_MUTEX_INITIALIZER;
static BaseLock *base_locks;

/* The pair's lock, or NULL with *busy (another task writes that base now) or out of memory. */
static BaseLock *
base_lock_take(const char *key, bool *busy)
{
    *busy = false;
    pthread_mutex_lock(&base_locks_mutex);
    BaseLock *l = base_locks;
    while (l && !streq(l->key, key))
        l = l->next;
    if (l) {
        *busy = true;
        l = NULL;
    } else if ((l = calloc(1, sizeof(*l)))) {
        snprintf(l->key, sizeof(l->key), "%s", key);
        l->next = base_locks;
        base_locks = l;
    }
    pthread_mutex_unlock(&base_locks_mutex);
    return l;
}

static void
base_lock_release(BaseLock *l)
{
    pthread_mutex_lock(&base_locks_mutex);
    BaseLock **p = &base_locks;
    while (*p != l)
        p = &(*p)->next;
    *p = l->next;
    pthread_mutex_unlock(&base_locks_mutex);
    free(l);
}

int
vm_rbd_key_file(const char *path, const char *key, NbError **err)
{
    unlink(path); /* one a crash left */
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return nb_error_set(err, NB_ERR_INTERNAL, "cannot make a key file: %s", strerror(errno));
    int r = write_full(fd, key, strlen(key));
    close(fd);
    if (r < 0) {
        unlink(path);
        return nb_error_set(err, NB_ERR_INTERNAL, "cannot write a key file: %s", strerror(-r));
    }
    return 0;
}

/* rbd hangs for ever while no monitor or OSD answers. */
#define VM_RBD_TIMEOUT_MS 120000u

int
vm_rbd_run(Core *core, const char *tag, const char *pool_id, const char *const *args, size_t n_args,
           int *status, char **ret_out, NbError **err)
{
    Pool pool; /* with its secret: wiped before return */
    _cleanup_free_ char *rbd = NULL, *mons = NULL, *key_path = NULL, *work = NULL, *out = NULL,
                        *errs = NULL;
    if (pool_store_get(core->store, pool_id, &pool, err) < 0)
        return -1;
    int r = -1;
    const char *argv[24];
    size_t n = 0;
    if (n_args > 12) {
        nb_error_set(err, NB_ERR_INTERNAL, "too many rbd arguments");
        goto out;
    }
    if (spawn_find_program("rbd", &rbd) < 0) {
        nb_error_set(err, NB_ERR_INTERNAL, "rbd not found (package ceph-common)");
        goto out;
    }
    mons = strdup("");
    for (size_t i = 0; mons && i < pool.n_monitors; i++) {
        char *more = str_printf("%s%s%s", mons, i ? "," : "", pool.monitors[i]);
        free(mons);
        mons = more;
    }
    work = str_printf("%s/tmp", core->cfg.state_dir);
    key_path = str_printf("%s/tmp/rbd-%s.key", core->cfg.state_dir, tag);
    if (!mons || !work || !key_path) {
        nb_error_set(err, NB_ERR_INTERNAL, "out of memory");
        goto out;
    }
    if (mkdir(work, 0700) < 0 && errno != EEXIST) {
        nb_error_set(err, NB_ERR_INTERNAL, "cannot make %s: %s", work, strerror(errno));
        goto out;
    }
    argv[n++] = rbd;
    argv[n++] = "--conf";
    argv[n++] = "/dev/null";
    argv[n++] = "-m";
    argv[n++] = mons;
    argv[n++] = "--id";
    argv[n++] = pool.auth_user;
    argv[n++] = "--keyfile";
    argv[n++] = key_path;
    for (size_t i = 0; i < n_args; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    if (vm_rbd_key_file(key_path, pool.secret, err) < 0)
        goto out;
    SpawnLimits lim = {.timeout_ms = VM_RBD_TIMEOUT_MS};
    int rc = spawn_run(argv, &lim, 1 << 20, &out, &errs);
    unlink(key_path);
    if (rc < 0) {
        nb_error_set(err, NB_ERR_HYPERVISOR, "rbd %s in pool '%s' did not finish (%s)", args[0],
                     pool.name, rc == -ETIMEDOUT ? "no answer from the Ceph cluster" : "failed");
        goto out;
    }
    if (rc != 0)
        log_info("rbd %s %s: status %d: %s", args[0], n_args > 1 ? args[1] : "", rc,
                 errs ? errs : "");
    *status = rc;
    if (ret_out) {
        *ret_out = out;
        out = NULL;
    }
    r = 0;
out:
    explicit_bzero(pool.secret, sizeof(pool.secret));
    return r;
}

/* qemu-img's target: the RBD image through the pool's monitors and user (QEMU's rbd driver). */
static char *
target_opts(const Pool *pool, const char *image, bool with_key)
{
    char *opts = str_printf("driver=rbd,pool=%s,image=%s", pool->source, image);
    for (size_t i = 0; opts && i < pool->n_monitors; i++) {
        char host[256];
        unsigned port = 0;
        if (pool_hostport_parse(pool->monitors[i], host, sizeof(host), &port) < 0) {
            free(opts);
            return NULL;
        }
        char *more = str_printf("%s,server.%zu.host=%s,server.%zu.port=%u", opts, i, host, i,
                                port ? port : VM_RBD_DEFAULT_PORT);
        free(opts);
        opts = more;
    }
    if (opts && with_key) {
        char *more = str_printf("%s,user=%s,key-secret=nbkey", opts, pool->auth_user);
        free(opts);
        opts = more;
    }
    return opts;
}

/* Writes the image's data into the RBD image base (made by libvirt at the image's virtual size):
 * qemu-img convert on nimbusd's host, reading the image's file in the local default pool. */
static int
base_write(Core *core, const Task *task, const Image *img, const char *pool_id, const char *base,
           NbError **err)
{
    Pool pool; /* with its secret: wiped before return */
    _cleanup_free_ char *src = NULL, *qemu_img = NULL, *opts = NULL, *key_path = NULL,
                        *object = NULL, *out = NULL, *errs = NULL;
    HvConn *local = host_registry_local_conn(core);
    if (!local)
        return nb_error_set(err, NB_ERR_HOST_DOWN,
                            "the local host, which holds the images, is down");
    int r = hv_vol_path(local, core->cfg.pool_name, img->volume, &src, err);
    hv_conn_free(local);
    if (r < 0 || pool_store_get(core->store, pool_id, &pool, err) < 0)
        return -1;
    r = -1;
    bool with_key = pool.auth_user[0] != '\0';
    _cleanup_free_ char *work = str_printf("%s/tmp", core->cfg.state_dir);
    key_path = str_printf("%s/tmp/rbd-%s.key", core->cfg.state_dir, task->id);
    object = key_path ? str_printf("secret,id=nbkey,file=%s,format=base64", key_path) : NULL;
    opts = target_opts(&pool, base, with_key);
    if (!work || !key_path || !object || !opts) {
        nb_error_set(err, NB_ERR_INTERNAL, "out of memory");
        goto out;
    }
    if (spawn_find_program("qemu-img", &qemu_img) < 0) {
        nb_error_set(err, NB_ERR_INTERNAL, "qemu-img not found");
        goto out;
    }
    if (mkdir(work, 0700) < 0 && errno != EEXIST) {
        nb_error_set(err, NB_ERR_INTERNAL, "cannot make %s: %s", work, strerror(errno));
        goto out;
    }
    if (with_key && vm_rbd_key_file(key_path, pool.secret, err) < 0)
        goto out;
    const char *argv_key[] = {qemu_img,
                              "convert",
                              "-n",
                              "-f",
                              image_format_to_string(img->format),
                              "--object",
                              object,
                              "--target-image-opts",
                              src,
                              opts,
                              NULL};
    const char *argv_nokey[] = {
        qemu_img, "convert", "-n", "-f", image_format_to_string(img->format), "--target-image-opts",
        src,      opts,      NULL};
    SpawnLimits lim = {.timeout_ms = VM_RBD_WRITE_TIMEOUT_MS};
    log_info("image %s: writing it into rbd pool %s as %s", img->id, pool.name, base);
    int rc = spawn_run(with_key ? argv_key : argv_nokey, &lim, 4096, &out, &errs);
    if (with_key)
        unlink(key_path);
    if (rc != 0) {
        nb_error_set(err, NB_ERR_HYPERVISOR, "writing image %s into rbd pool '%s' failed (%d): %s",
                     img->id, pool.name, rc, errs ? errs : "");
        goto out;
    }
    r = 0;
out:
    explicit_bzero(pool.secret, sizeof(pool.secret));
    return r;
}

/* 0 when the image's base is ready in the pool, 1 while another task writes it, -1. */
static int
base_ensure(Core *core, const Task *task, const Image *img, const Pool *pool, HvConn *hv,
            NbError **err)
{
    char copy_key[NB_NAME_MAX + 1], lock_key[NB_UUID_STRLEN * 2 + 8], base[96];
    _cleanup_free_ char *xml = NULL;
    snprintf(copy_key, sizeof(copy_key), VM_RBD_COPY_PREFIX "%s", pool->id);
    snprintf(lock_key, sizeof(lock_key), "%s/%s", img->id, pool->id);
    vm_rbd_base_name(img->id, base);
    int state = image_copy_get(core->store, img->id, copy_key, err);
    if (state < 0)
        return -1;
    if (state == IMAGE_COPY_READY)
        return 0;
    bool busy;
    BaseLock *l = base_lock_take(lock_key, &busy);
    if (!l)
        return busy ? 1 : nb_error_set(err, NB_ERR_INTERNAL, "out of memory");
    int r = -1;
    state = image_copy_get(core->store, img->id, copy_key, err);
    if (state < 0)
        goto out;
    if (state == IMAGE_COPY_READY) {
        r = 0;
        goto out;
    }
    /* Not there, or cut short by a crash (no clone is made of a base before it is ready):
     * written again from the start. */
    xml = pool_xml_volume(base, img->virtual_size_bytes, NULL);
    if (!xml) {
        nb_error_set(err, NB_ERR_INTERNAL, "cannot build the XML of volume %s", base);
        goto out;
    }
    if (image_copy_set(core->store, img->id, copy_key, IMAGE_COPY_COPYING, err) < 0 ||
        hv_volume_delete_with_snapshots(hv, pool->libvirt_name, base, err) < 0 ||
        hv_volume_create(hv, pool->libvirt_name, base, xml, img->virtual_size_bytes, err) < 0 ||
        base_write(core, task, img, pool->id, base, err) < 0 ||
        image_copy_set(core->store, img->id, copy_key, IMAGE_COPY_READY, err) < 0)
        goto out;
    r = 0;
out:
    base_lock_release(l);
    return r;
}

int
vm_rbd_create_disk(Core *core, Task *task, Vm *vm, HvConn *hv, TaskRun *run, NbError **err)
{
    Pool pool;
    Image img;
    char disk[96], base[96];
    if (vm_rbd_pool(core, vm, &pool, err) < 0 ||
        image_store_get(core->store, NULL, vm->image_id, &img, err) < 0)
        return -1;
    vm_rbd_disk_name(vm, disk);
    vm_rbd_base_name(img.id, base);
    uint64_t have = 0;
    int exists = hv_volume_capacity(hv, pool.libvirt_name, disk, &have, err);
    if (exists < 0)
        return -1;
    if (!exists) {
        int there = base_ensure(core, task, &img, &pool, hv, err);
        if (there < 0)
            return -1;
        if (there > 0)
            return vm_ops_wait(run);
        /* libvirt's rbd backend makes a volume "from" another of the same pool as a clone of a
         * snapshot of it (it takes one the base already has, or makes and protects one). */
        _cleanup_free_ char *xml = pool_xml_volume(disk, img.virtual_size_bytes, NULL);
        if (!xml)
            return nb_error_set(err, NB_ERR_INTERNAL, "cannot build the XML of volume %s", disk);
        if (hv_volume_create_from(hv, pool.libvirt_name, disk, xml, pool.libvirt_name, base, err) <
            0)
            return -1;
    }
    return hv_volume_resize(hv, pool.libvirt_name, disk, vm->disk_gib << 30, err);
}

int
vm_rbd_delete_disk(Core *core, const Vm *vm, HvConn *hv, NbError **err)
{
    Pool pool;
    char disk[96];
    _cleanup_error_ NbError *e = NULL;
    if (vm_rbd_pool(core, vm, &pool, &e) < 0) {
        /* A pool cannot go while VMs' disks are in it (POOL_IN_USE): nothing to delete then. */
        if (streq(e->code, NB_ERR_POOL_NOT_FOUND))
            return 0;
        return nb_error_propagate(err, TAKE_PTR(e));
    }
    if (pool.type == POOL_TYPE_DIR) {
        vm_disk_volume(vm, disk);
        return hv_vol_delete(hv, pool.libvirt_name, disk, err);
    }
    vm_rbd_disk_name(vm, disk);
    return hv_volume_delete(hv, pool.libvirt_name, disk, err);
}

int
vm_rbd_disk_exists(Core *core, const Vm *vm, HvConn *hv, NbError **err)
{
    Pool pool;
    char disk[96];
    uint64_t have = 0;
    if (vm_rbd_pool(core, vm, &pool, err) < 0)
        return -1;
    if (pool.type == POOL_TYPE_DIR) {
        vm_disk_volume(vm, disk);
        return hv_vol_exists(hv, pool.libvirt_name, disk, err);
    }
    vm_rbd_disk_name(vm, disk);
    return hv_volume_capacity(hv, pool.libvirt_name, disk, &have, err);
}

void
vm_rbd_base_delete(Core *core, const Image *img, const char *copy_key)
{
    _cleanup_error_ NbError *e = NULL;
    const char *pool_id = copy_key + strlen(VM_RBD_COPY_PREFIX);
    char base[96], host[NB_NAME_MAX + 1];
    Pool pool;
    vm_rbd_base_name(img->id, base);
    if (pool_store_get(core->store, pool_id, &pool, &e) < 0) {
        log_warn("image %s: its base in pool %s stays (%s)", img->id, pool_id, e->message);
        return;
    }
    explicit_bzero(pool.secret, sizeof(pool.secret));
    /* Any up host where the pool is active does: the pool is the same everywhere. */
    host[0] = '\0';
    PoolHostState *st = NULL;
    size_t n = 0;
    if (pool_store_hosts(core->store, pool.id, &st, &n, &e) == 0) {
        for (size_t i = 0; i < n && !host[0]; i++)
            if (streq(st[i].state, "active") && host_registry_is_up(core, st[i].host))
                snprintf(host, sizeof(host), "%s", st[i].host);
        free(st);
    }
    HvConn *c = host[0] ? host_registry_conn(core, host) : NULL;
    nb_error_free(TAKE_PTR(e));
    /* With a clone still made of it, libvirt (librbd) refuses: the base then stays, recorded,
     * and the log says so. No VM uses a deleted image, so that is a leftover of a failure. */
    if (c && hv_volume_delete_with_snapshots(c, pool.libvirt_name, base, &e) == 0)
        image_copy_delete(core->store, img->id, copy_key, &e);
    else
        log_warn("image %s: its base %s in pool %s is left behind: %s", img->id, base, pool.name,
                 e ? e->message : "no host reaching the pool is up");
    hv_conn_free(c);
}
