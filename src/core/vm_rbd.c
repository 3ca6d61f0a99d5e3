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
#include <jansson.h>
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
vm_disk_on_rbd(Core *core, const Vm *vm, NbError **err)
{
    char pool[POOL_LIBVIRT_NAME_MAX + 1];
    PoolType type;
    if (vm_disk_pool(core, vm, pool, &type, err) < 0)
        return -1;
    return type == POOL_TYPE_RBD;
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

int
vm_rbd_pool_get(Core *core, const char *pool_id, Pool *ret, NbError **err)
{
    if (pool_store_get(core->store, pool_id, ret, err) < 0)
        return -1;
    explicit_bzero(ret->secret, sizeof(ret->secret));
    return 0;
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

/* vm_rbd_run with a time limit of its own (a flatten copies a whole disk). */
static int rbd_run_within(Core *core, const char *tag, const char *pool_id, const char *const *args,
                          size_t n_args, unsigned timeout_ms, int *status, char **ret_out,
                          NbError **err);

int
vm_rbd_run(Core *core, const char *tag, const char *pool_id, const char *const *args, size_t n_args,
           int *status, char **ret_out, NbError **err)
{
    return rbd_run_within(core, tag, pool_id, args, n_args, VM_RBD_TIMEOUT_MS, status, ret_out,
                          err);
}

static int
rbd_run_within(Core *core, const char *tag, const char *pool_id, const char *const *args,
               size_t n_args, unsigned timeout_ms, int *status, char **ret_out, NbError **err)
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
    SpawnLimits lim = {.timeout_ms = timeout_ms};
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

/* Runs `qemu-img <args>` on nimbusd's host with the pool's key (when it has a user) in a file
 * of nimbusd's named by QEMU's secret object "nbkey" (given after args[0], the subcommand): never
 * argv. what names the work in errors. */
static int
qemu_img_rbd(Core *core, const char *tag, const char *pool_id, const char *const *args,
             size_t n_args, const char *what, NbError **err)
{
    Pool pool; /* with its secret: wiped before return */
    _cleanup_free_ char *qemu_img = NULL, *key_path = NULL, *object = NULL, *out = NULL,
                        *errs = NULL;
    if (pool_store_get(core->store, pool_id, &pool, err) < 0)
        return -1;
    int r = -1;
    bool with_key = pool.auth_user[0] != '\0';
    const char *argv[20];
    size_t n = 0;
    _cleanup_free_ char *work = str_printf("%s/tmp", core->cfg.state_dir);
    key_path = str_printf("%s/tmp/rbd-%s.key", core->cfg.state_dir, tag);
    object = key_path ? str_printf("secret,id=nbkey,file=%s,format=base64", key_path) : NULL;
    if (!work || !key_path || !object) {
        nb_error_set(err, NB_ERR_INTERNAL, "out of memory");
        goto out;
    }
    if (n_args < 1 || n_args > 14) {
        nb_error_set(err, NB_ERR_INTERNAL, "bad qemu-img arguments");
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
    argv[n++] = qemu_img;
    argv[n++] = args[0];
    if (with_key) {
        argv[n++] = "--object";
        argv[n++] = object;
    }
    for (size_t i = 1; i < n_args; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    if (with_key && vm_rbd_key_file(key_path, pool.secret, err) < 0)
        goto out;
    SpawnLimits lim = {.timeout_ms = VM_RBD_WRITE_TIMEOUT_MS};
    int rc = spawn_run(argv, &lim, 4096, &out, &errs);
    if (with_key)
        unlink(key_path);
    if (rc != 0) {
        nb_error_set(err, NB_ERR_HYPERVISOR, "%s in rbd pool '%s' failed (%d): %s", what, pool.name,
                     rc, errs ? errs : "");
        goto out;
    }
    r = 0;
out:
    explicit_bzero(pool.secret, sizeof(pool.secret));
    return r;
}

/* Writes the image's data into the RBD image base (made by libvirt at the image's virtual size):
 * qemu-img convert on nimbusd's host, reading the image's file in the local default pool. */
static int
base_write(Core *core, const Task *task, const Image *img, const char *pool_id, const char *base,
           NbError **err)
{
    Pool pool;
    _cleanup_free_ char *src = NULL, *opts = NULL, *what = NULL;
    HvConn *local = host_registry_local_conn(core);
    if (!local)
        return nb_error_set(err, NB_ERR_HOST_DOWN,
                            "the local host, which holds the images, is down");
    int r = hv_vol_path(local, core->cfg.pool_name, img->volume, &src, err);
    hv_conn_free(local);
    if (r < 0 || vm_rbd_pool_get(core, pool_id, &pool, err) < 0)
        return -1;
    opts = target_opts(&pool, base, pool.auth_user[0] != '\0');
    what = str_printf("writing image %s", img->id);
    if (!opts || !what)
        return nb_error_set(err, NB_ERR_INTERNAL, "out of memory");
    const char *args[] = {
        "convert", "-n", "-f", image_format_to_string(img->format), "--target-image-opts",
        src,       opts};
    log_info("image %s: writing it into rbd pool %s as %s", img->id, pool.name, base);
    return qemu_img_rbd(core, task->id, pool_id, args, ELEMENTSOF(args), what, err);
}

int
vm_rbd_read_snapshot(Core *core, const char *tag, const char *pool_id, const char *image,
                     const char *snap, const char *path, NbError **err)
{
    Pool pool;
    if (vm_rbd_pool_get(core, pool_id, &pool, err) < 0)
        return -1;
    _cleanup_free_ char *opts = target_opts(&pool, image, pool.auth_user[0] != '\0');
    _cleanup_free_ char *src = opts ? str_printf("%s,snapshot=%s", opts, snap) : NULL;
    _cleanup_free_ char *what = str_printf("reading %s@%s", image, snap);
    if (!src || !what)
        return nb_error_set(err, NB_ERR_INTERNAL, "out of memory");
    /* A file a crash cut short is written again from the start (no -n: qemu-img makes it). */
    const char *args[] = {"convert", "--image-opts", src, "-O", "qcow2", path};
    log_info("rbd %s@%s in pool %s: copied into %s", image, snap, pool.name, path);
    return qemu_img_rbd(core, tag, pool_id, args, ELEMENTSOF(args), what, err);
}

int
vm_rbd_snap(Core *core, const char *tag, const Pool *pool, const char *image, const char *snap,
            const char *verb, NbError **err)
{
    _cleanup_free_ char *spec = str_printf("%s/%s@%s", pool->source, image, snap);
    if (!spec)
        return nb_error_set(err, NB_ERR_INTERNAL, "out of memory");
    /* (protect and unprotect refuse --no-progress; the others print progress without it) */
    bool quiet = !streq(verb, "protect") && !streq(verb, "unprotect");
    const char *args[] = {"--no-progress", "snap", verb, spec};
    int status = 0;
    if (vm_rbd_run(core, tag, pool->id, args + !quiet, ELEMENTSOF(args) - !quiet, &status, NULL,
                   err) < 0)
        return -1;
    /* Done already: made (EEXIST), gone (ENOENT), protected (EBUSY on protect), or not
     * protected (EINVAL on unprotect). */
    if (status == 0 || (streq(verb, "create") && status == VM_RBD_EXISTS) ||
        (streq(verb, "rm") && status == VM_RBD_ABSENT) ||
        (streq(verb, "protect") && status == VM_RBD_BUSY) ||
        (streq(verb, "unprotect") && (status == 22 || status == VM_RBD_ABSENT)))
        return 0;
    if (streq(verb, "unprotect") && status == VM_RBD_BUSY)
        return nb_error_set(err, NB_ERR_INVALID_STATE, "RBD snapshot %s still has clones", spec);
    return nb_error_set(err, NB_ERR_HYPERVISOR, "rbd snap %s %s failed (status %d)", verb, spec,
                        status);
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

/* ---- VM snapshots: one RBD snapshot per disk ---- */

/* vm_rbd_snap's verbs on image@snap in pool, and "check": it exists (`rbd info`). */
static int
rbd_snap_one(Core *core, const char *tag, const Pool *pool, const char *image, const char *verb,
             const char *snap, NbError **err)
{
    if (!streq(verb, "check"))
        return vm_rbd_snap(core, tag, pool, image, snap, verb, err);
    _cleanup_free_ char *spec = str_printf("%s/%s@%s", pool->source, image, snap);
    if (!spec)
        return nb_error_set(err, NB_ERR_INTERNAL, "out of memory");
    const char *args[] = {"info", spec};
    int status = 0;
    if (vm_rbd_run(core, tag, pool->id, args, ELEMENTSOF(args), &status, NULL, err) < 0)
        return -1;
    if (status == 0)
        return 0;
    if (status == VM_RBD_ABSENT)
        return nb_error_set(err, NB_ERR_INVALID_STATE,
                            "RBD image %s/%s has no snapshot %s (a disk attached since the "
                            "snapshot, or its snapshot removed outside Nimbus)",
                            pool->source, image, snap);
    return nb_error_set(err, NB_ERR_HYPERVISOR, "rbd info of %s in pool '%s' failed (status %d)",
                        spec, pool->name, status);
}

int
vm_rbd_snap_disks(Core *core, const char *tag, const Vm *vm, const char *verb, const char *snap,
                  NbError **err)
{
    Pool pool;
    char disk[96];
    Volume *vols = NULL;
    size_t n = 0;
    int in_pool = vm_rbd_pool(core, vm, &pool, err);
    if (in_pool < 0)
        return -1;
    if (!in_pool || pool.type != POOL_TYPE_RBD)
        return nb_error_set(err, NB_ERR_INTERNAL, "VM %s has no root disk in an rbd pool", vm->id);
    vm_rbd_disk_name(vm, disk);
    if (rbd_snap_one(core, tag, &pool, disk, verb, snap, err) < 0 ||
        volume_store_list(core->store, NULL, vm->id, NULL, &vols, &n, err) < 0)
        return -1;
    int r = 0;
    for (size_t i = 0; i < n && r == 0; i++) {
        Pool vp;
        char name[VOLUME_NAME_ON_HOST_MAX + 1];
        if (pool_store_get(core->store, vols[i].pool_id, &vp, err) < 0) {
            r = -1;
            break;
        }
        explicit_bzero(vp.secret, sizeof(vp.secret));
        if (vp.type != POOL_TYPE_RBD)
            continue;
        volume_name_on_host(vols[i].id, name);
        r = rbd_snap_one(core, tag, &vp, name, verb, snap, err);
    }
    volume_list_free(vols, n);
    return r;
}

/* ---- clones of a VM's disk ---- */

/* rbd's exit status for "not that" (no parent to flatten, a snapshot not protected). */
#define VM_RBD_INVALID 22

void
vm_rbd_clone_snap_name(const char *task_id, char out[96])
{
    snprintf(out, 96, VM_RBD_CLONE_SNAP_PREFIX "%s", task_id);
}

/* `rbd <verb> <pool>/<image>`, the status ok_also counting as done. */
static int
rbd_image_op(Core *core, const char *tag, const Pool *pool, const char *verb, const char *image,
             int ok_also, NbError **err)
{
    _cleanup_free_ char *spec = str_printf("%s/%s", pool->source, image);
    if (!spec)
        return nb_error_set(err, NB_ERR_INTERNAL, "out of memory");
    const char *args[] = {verb, spec};
    int status = 0;
    /* a flatten copies the whole disk: as long as a base's write may take */
    if (rbd_run_within(core, tag, pool->id, args, ELEMENTSOF(args), VM_RBD_WRITE_TIMEOUT_MS,
                       &status, NULL, err) < 0)
        return -1;
    if (status != 0 && status != ok_also)
        return nb_error_set(err, NB_ERR_HYPERVISOR, "rbd %s %s failed (status %d)", verb, spec,
                            status);
    return 0;
}

/* `rbd <verb...> --format json <spec>`'s output parsed; NULL on error, or with *absent when
 * there is no such image or snapshot. */
static json_t *
rbd_json(Core *core, const char *tag, const Pool *pool, const char *const *verb, size_t n_verb,
         const char *spec, bool *absent, NbError **err)
{
    const char *args[6];
    size_t n = 0;
    for (size_t i = 0; i < n_verb && i < 3; i++)
        args[n++] = verb[i];
    args[n++] = "--format";
    args[n++] = "json";
    args[n++] = spec;
    int status = 0;
    _cleanup_free_ char *out = NULL;
    *absent = false;
    if (vm_rbd_run(core, tag, pool->id, args, n, &status, &out, err) < 0)
        return NULL;
    if (status == VM_RBD_ABSENT) {
        *absent = true;
        return NULL;
    }
    json_t *j = status == 0 && out ? json_loads(out, 0, NULL) : NULL;
    if (!j)
        nb_error_set(err, NB_ERR_HYPERVISOR, "rbd %s %s failed (status %d)", verb[0], spec, status);
    return j;
}

int
vm_rbd_clone_disk(Core *core, const Task *task, const Vm *src, const Vm *vm, bool linked,
                  HvConn *hv, NbError **err)
{
    Pool pool;
    char from[96], disk[96], snap[96];
    if (vm_rbd_pool(core, vm, &pool, err) < 0)
        return -1;
    vm_rbd_disk_name(src, from);
    vm_rbd_disk_name(vm, disk);
    vm_rbd_clone_snap_name(task->id, snap);
    _cleanup_free_ char *parent = str_printf("%s/%s@%s", pool.source, from, snap);
    _cleanup_free_ char *child = str_printf("%s/%s", pool.source, disk);
    if (!parent || !child)
        return nb_error_set(err, NB_ERR_INTERNAL, "out of memory");
    /* Each part done already counts as done: a restart goes through them all again. */
    if (vm_rbd_snap(core, task->id, &pool, from, snap, "create", err) < 0 ||
        vm_rbd_snap(core, task->id, &pool, from, snap, "protect", err) < 0)
        return -1;
    const char *clone[] = {"clone", parent, child};
    int status = 0;
    if (vm_rbd_run(core, task->id, pool.id, clone, ELEMENTSOF(clone), &status, NULL, err) < 0)
        return -1;
    if (status != 0 && status != VM_RBD_EXISTS)
        return nb_error_set(err, NB_ERR_HYPERVISOR, "rbd clone of %s into %s failed (status %d)",
                            parent, child, status);
    /* A full clone: its own copy of every block, then no snapshot stays on the source. */
    if (!linked && (rbd_image_op(core, task->id, &pool, "flatten", disk, VM_RBD_INVALID, err) < 0 ||
                    vm_rbd_snap(core, task->id, &pool, from, snap, "unprotect", err) < 0 ||
                    vm_rbd_snap(core, task->id, &pool, from, snap, "rm", err) < 0))
        return -1;
    /* libvirt lists what it made itself: the clone is seen after a refresh. */
    if (hv_pool_refresh(hv, pool.libvirt_name, err) < 0)
        return -1;
    log_info("vm %s: disk %s, a %s clone of %s", vm->id, child, linked ? "linked" : "full", parent);
    return hv_volume_resize(hv, pool.libvirt_name, disk, vm->disk_gib << 30, err);
}

void
vm_rbd_clone_cleanup(Core *core, const Task *task, const Vm *src)
{
    _cleanup_error_ NbError *e = NULL;
    Pool pool;
    char from[96], snap[96];
    if (vm_rbd_pool(core, src, &pool, &e) <= 0)
        return;
    vm_rbd_disk_name(src, from);
    vm_rbd_clone_snap_name(task->id, snap);
    /* With the clone still its child, the clone's delete removes it (vm_rbd_delete_disk). */
    if (vm_rbd_snap(core, task->id, &pool, from, snap, "unprotect", &e) < 0 ||
        vm_rbd_snap(core, task->id, &pool, from, snap, "rm", &e) < 0)
        log_info("vm %s: snapshot %s stays for now: %s", src->id, snap, e->message);
}

/* Before an RBD disk goes: the snapshots clones were made of lose their children (each
 * flattened: a linked clone outlives its source, with its own copy of the blocks) and go;
 * snapshots an image-from-VM copy left go too. */
static int
disk_sweep_snaps(Core *core, const Pool *pool, const char *tag, const char *disk, NbError **err)
{
    static const char *const snap_ls[] = {"snap", "ls"};
    static const char *const children_verb[] = {"children"};
    _cleanup_free_ char *spec = str_printf("%s/%s", pool->source, disk);
    if (!spec)
        return nb_error_set(err, NB_ERR_INTERNAL, "out of memory");
    bool absent;
    json_auto_t *snaps = rbd_json(core, tag, pool, snap_ls, 2, spec, &absent, err);
    if (!snaps)
        return absent ? 0 : -1;
    size_t i;
    json_t *s;
    json_array_foreach (snaps, i, s) {
        const char *name = json_string_value(json_object_get(s, "name"));
        if (!name || (!str_startswith(name, VM_RBD_CLONE_SNAP_PREFIX) &&
                      !str_startswith(name, VM_RBD_COPY_SNAP_PREFIX)))
            continue;
        _cleanup_free_ char *snap_spec = str_printf("%s@%s", spec, name);
        if (!snap_spec)
            return nb_error_set(err, NB_ERR_INTERNAL, "out of memory");
        json_auto_t *children =
            rbd_json(core, tag, pool, children_verb, 1, snap_spec, &absent, err);
        if (!children && !absent)
            return -1;
        size_t k;
        json_t *c;
        json_array_foreach (children, k, c) {
            const char *cpool = json_string_value(json_object_get(c, "pool"));
            const char *cimg = json_string_value(json_object_get(c, "image"));
            if (!cpool || !cimg || !streq(cpool, pool->source) || strchr(cimg, '/') ||
                strchr(cimg, '@') || !str_startswith(cimg, "vm-"))
                return nb_error_set(err, NB_ERR_HYPERVISOR,
                                    "snapshot %s has a child that is no VM's disk", snap_spec);
            log_info("rbd %s: flattening %s, a linked clone of it, before it goes", spec, cimg);
            if (rbd_image_op(core, tag, pool, "flatten", cimg, VM_RBD_INVALID, err) < 0)
                return -1;
        }
        if (vm_rbd_snap(core, tag, pool, disk, name, "unprotect", err) < 0 ||
            vm_rbd_snap(core, tag, pool, disk, name, "rm", err) < 0)
            return -1;
    }
    return 0;
}

/* The snapshot of another VM's disk that disk is a linked clone of: parent and snap, both ""
 * when it is none (or no such disk). 0 or -1. */
static int
disk_clone_parent(Core *core, const Pool *pool, const char *tag, const char *disk, char parent[96],
                  char snap[96], NbError **err)
{
    static const char *const info_verb[] = {"info"};
    parent[0] = snap[0] = '\0';
    _cleanup_free_ char *spec = str_printf("%s/%s", pool->source, disk);
    if (!spec)
        return nb_error_set(err, NB_ERR_INTERNAL, "out of memory");
    bool absent;
    json_auto_t *info = rbd_json(core, tag, pool, info_verb, 1, spec, &absent, err);
    if (!info)
        return absent ? 0 : -1;
    json_t *p = json_object_get(info, "parent");
    const char *ppool = json_string_value(json_object_get(p, "pool"));
    const char *pimg = json_string_value(json_object_get(p, "image"));
    const char *psnap = json_string_value(json_object_get(p, "snapshot"));
    if (ppool && pimg && psnap && streq(ppool, pool->source) &&
        str_startswith(psnap, VM_RBD_CLONE_SNAP_PREFIX) && str_startswith(pimg, "vm-") &&
        strlen(pimg) < 96 && strlen(psnap) < 96) {
        snprintf(parent, 96, "%s", pimg);
        snprintf(snap, 96, "%s", psnap);
    }
    return 0;
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
    /* The VM's snapshots leave the volumes that outlive it (attached still, until the delete's
     * end), then the clone goes with every snapshot it has. */
    Snapshot *snaps = NULL;
    size_t n = 0;
    if (snapshot_store_list(core->store, NULL, vm->id, &snaps, &n, err) < 0)
        return -1;
    int r = 0;
    for (size_t i = 0; i < n && r == 0; i++)
        r = vm_rbd_snap_disks(core, vm->id, vm, "rm", snaps[i].libvirt_name, err);
    snapshot_list_free(snaps, n);
    if (r < 0)
        return -1;
    vm_rbd_disk_name(vm, disk);
    char parent[96], snap[96];
    if (disk_sweep_snaps(core, &pool, vm->id, disk, err) < 0 ||
        disk_clone_parent(core, &pool, vm->id, disk, parent, snap, err) < 0 ||
        hv_volume_delete_with_snapshots(hv, pool.libvirt_name, disk, err) < 0)
        return -1;
    /* A linked clone's snapshot of its source goes after it (a crash before: the source's
     * delete sweeps it). */
    if (parent[0] && (vm_rbd_snap(core, vm->id, &pool, parent, snap, "unprotect", &e) < 0 ||
                      vm_rbd_snap(core, vm->id, &pool, parent, snap, "rm", &e) < 0))
        log_warn("vm %s: snapshot %s@%s stays: %s", vm->id, parent, snap, e->message);
    return 0;
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
