/*
 * Clones and images from VMs. Both copy a VM's root disk into a new volume on the VM's host (a
 * clone's in its source's pool, the default or a dir pool; an image's in the default pool), by
 * one idempotent step that starts over after a restart: whatever an earlier run left (its
 * backup job, its files) goes first. A stopped disk is copied by libvirt
 * (virStorageVolCreateXMLFrom: qemu-img convert, which flattens the backing chain; a linked
 * clone copies the overlay's bytes, its backing file kept); a running one through a push-mode
 * backup job (QEMU writes a point-in-time copy of the whole disk while the guest runs on).
 *
 * A disk on RBD is copied from an RBD snapshot of it (vm_rbd.c): an image by qemu-img on
 * nimbusd's host into the image's file, a clone as an RBD clone in the same pool.
 */
#include "clone_ops.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../hv/pool_xml.h"
#include "../model/json_req.h"
#include "../util/log.h"
#include "../util/spawn.h"
#include "../util/strutil.h"
#include "image_probe.h"
#include "vm_ops_internal.h"
#include "vm_rbd.h"

/* ---- copying a VM's root disk ---- */

typedef struct DiskCopy {
    const Vm *src;        /* whose root disk, on the host behind hv */
    const char *dst_vol;  /* the volume made in dst_pool */
    const char *tmp_vol;  /* a running source's linked copy: the backup before qemu-img -B */
    const char *base_vol; /* linked: the image (default pool) the source's disk is an overlay on */
    bool linked;
    char src_pool[POOL_LIBVIRT_NAME_MAX + 1]; /* the libvirt pool of the source's disk */
    char dst_pool[POOL_LIBVIRT_NAME_MAX + 1]; /* where the copy and the scratch go: a dir pool */
    char dst_dir[POOL_PATH_MAX + 1];          /* dst_pool's directory */
} DiskCopy;

/* dc's pools: the source's disk's, and the copy's: dst's disk pool (a clone's), or the default
 * pool when dst is NULL (an image). A disk in an rbd pool: INVALID_STATE (not copied here). */
static int
disk_copy_pools(Core *core, DiskCopy *dc, const Vm *dst, NbError **err)
{
    Pool p;
    int in_pool = vm_rbd_pool(core, dc->src, &p, err);
    if (in_pool < 0)
        return -1;
    if (in_pool && p.type != POOL_TYPE_DIR)
        return vm_disk_refuse_in_pool(core, dc->src, "its disk is not copied", err);
    snprintf(dc->src_pool, sizeof(dc->src_pool), "%s",
             in_pool ? p.libvirt_name : vm_ops_pool(core));
    in_pool = dst ? vm_rbd_pool(core, dst, &p, err) : 0;
    if (in_pool < 0)
        return -1;
    if (in_pool && p.type != POOL_TYPE_DIR)
        return nb_error_set(err, NB_ERR_INVALID_STATE, "a copy goes in a dir pool, not in '%s'",
                            p.name);
    snprintf(dc->dst_pool, sizeof(dc->dst_pool), "%s",
             in_pool ? p.libvirt_name : vm_ops_pool(core));
    snprintf(dc->dst_dir, sizeof(dc->dst_dir), "%s", in_pool ? p.path : core->cfg.pool_path);
    return 0;
}

static bool
vm_is_live(HvConn *hv, const Vm *vm, NbError **err, int *ret)
{
    char domain[64];
    HvDomainState st = HV_DOMAIN_NONE;
    vm_domain_name(vm, domain);
    *ret = hv_domain_get_state(hv, domain, &st, err);
    return *ret == 0 && (st == HV_DOMAIN_RUNNING || st == HV_DOMAIN_PAUSED);
}

/* The overlay of the backup's file on base, holding only what differs from it. */
static int
disk_copy_rebase(Core *core, HvConn *hv, const DiskCopy *dc, const char *tmp_path,
                 const char *dst_path, NbError **err)
{
    _cleanup_free_ char *base = NULL, *qemu_img = NULL, *out = NULL, *errs = NULL;
    if (hv_vol_path(hv, vm_ops_pool(core), dc->base_vol, &base, err) < 0)
        return -1;
    if (spawn_find_program("qemu-img", &qemu_img) < 0)
        return nb_error_set(err, NB_ERR_INTERNAL, "qemu-img not found");
    const char *argv[] = {qemu_img, "convert", "-f",    "qcow2",  "-O",     "qcow2", "-B",
                          base,     "-F",      "qcow2", tmp_path, dst_path, NULL};
    SpawnLimits lim = {.timeout_ms = 3600u * 1000u};
    int rc = spawn_run(argv, &lim, 4096, &out, &errs);
    if (rc != 0)
        return nb_error_set(err, NB_ERR_HYPERVISOR, "qemu-img convert -B failed (%d): %s", rc,
                            errs ? errs : "");
    return 0;
}

/* 0 when dc->dst_vol holds the copy, a delay in ms to come back after (a backup job runs), or
 * -1. run->wait_since_ms set: this run's backup job is under way. */
static int
disk_copy(Core *core, HvConn *hv, TaskRun *run, const DiskCopy *dc, NbError **err)
{
    const char *pool = dc->dst_pool;
    char domain[64], src_vol[96];
    vm_domain_name(dc->src, domain);
    vm_disk_volume(dc->src, src_vol);
    _cleanup_free_ char *dst_path = str_printf("%s/%s", dc->dst_dir, dc->dst_vol);
    _cleanup_free_ char *tmp_path = str_printf("%s/%s", dc->dst_dir, dc->tmp_vol);
    if (!dst_path || !tmp_path)
        return nb_error_set(err, NB_ERR_INTERNAL, "out of memory");
    const char *backup_path = dc->linked ? tmp_path : dst_path;

    if (run->wait_since_ms) {
        HvBackupJob job;
        if (hv_backup_job(hv, domain, backup_path, &job, err) < 0)
            return -1;
        /* Ours running, or another job that came after it: its end is waited for. */
        if (job.state == HV_BACKUP_JOB_RUNNING || job.state == HV_BACKUP_JOB_OTHER)
            return vm_ops_wait_ms(run->wait_since_ms);
        if (job.state == HV_BACKUP_JOB_FAILED)
            return nb_error_set(err, NB_ERR_HYPERVISOR, "the backup job of '%s' failed: %s", domain,
                                job.error[0] ? job.error : "no reason given");
        if (hv_pool_refresh(hv, pool, err) < 0)
            return -1;
        int there = hv_vol_exists(hv, pool, dc->linked ? dc->tmp_vol : dc->dst_vol, err);
        if (there <= 0)
            return there < 0 ? -1
                             : nb_error_set(err, NB_ERR_HYPERVISOR,
                                            "the backup job of '%s' left no file", domain);
        if (dc->linked) {
            if (hv_volume_delete(hv, pool, dc->dst_vol, err) < 0 ||
                disk_copy_rebase(core, hv, dc, tmp_path, dst_path, err) < 0 ||
                hv_volume_delete(hv, pool, dc->tmp_vol, err) < 0 ||
                hv_pool_refresh(hv, pool, err) < 0)
                return -1;
        }
        log_info("vm %s: root disk copied into %s while running", dc->src->id, dc->dst_vol);
        return 0;
    }

    /* A fresh start (also after a restart): an earlier run's job and files go first. */
    int busy = hv_backup_abort(hv, domain, backup_path, err);
    if (busy < 0)
        return -1;
    if (busy > 0)
        return 1000; /* another task's backup of the source: its end is waited for */
    if (hv_pool_refresh(hv, pool, err) < 0 || hv_volume_delete(hv, pool, dc->tmp_vol, err) < 0)
        return -1;
    int gs;
    bool live = vm_is_live(hv, dc->src, err, &gs);
    if (gs < 0)
        return -1;
    if (!live) {
        /* A linked copy stays in its source's pool (hv_vol_copy_bytes copies within one). */
        if (dc->linked && !streq(dc->src_pool, pool))
            return nb_error_set(err, NB_ERR_INTERNAL, "a linked copy goes in its source's pool");
        if (dc->linked)
            return hv_vol_copy_bytes(hv, pool, src_vol, dc->dst_vol, err);
        _cleanup_free_ char *xml = pool_xml_volume(dc->dst_vol, dc->src->disk_gib << 30, "qcow2");
        if (!xml)
            return nb_error_set(err, NB_ERR_INTERNAL, "out of memory");
        return hv_volume_create_from(hv, pool, dc->dst_vol, xml, dc->src_pool, src_vol, err);
    }
    /* qemu-img -B reads and writes the files: only on nimbusd's own host. */
    if (dc->linked && !streq(dc->src->host, core->cfg.host_name))
        return nb_error_set(err, NB_ERR_INVALID_STATE,
                            "a linked clone of a running VM is made on host '%s' only; stop the "
                            "VM or make a full clone",
                            core->cfg.host_name);
    if (hv_volume_delete(hv, pool, dc->dst_vol, err) < 0)
        return -1;
    if (hv_backup_begin(hv, domain, "vda", backup_path, NULL, NULL, false, err) < 0) {
        /* Another task's backup job began since the look above: wait for it too. */
        _cleanup_error_ NbError *e = NULL;
        if (hv_backup_abort(hv, domain, backup_path, &e) != 1)
            return -1;
        nb_error_free(TAKE_PTR(*err));
        return 1000;
    }
    run->wait_since_ms = nb_monotonic_ms();
    return vm_ops_wait_ms(run->wait_since_ms);
}

/* Whatever a failed copy leaves on the source's host: its backup job and scratch file. */
static void
disk_copy_cleanup(Core *core, HvConn *hv, const DiskCopy *dc)
{
    _cleanup_error_ NbError *e = NULL;
    char domain[64];
    vm_domain_name(dc->src, domain);
    _cleanup_free_ char *path =
        str_printf("%s/%s", dc->dst_dir, dc->linked ? dc->tmp_vol : dc->dst_vol);
    if (path && hv_backup_abort(hv, domain, path, &e) < 0)
        log_error("vm %s: its backup job to %s may still run: %s", dc->src->id, path, e->message);
    nb_error_free(TAKE_PTR(e));
    if (hv_pool_refresh(hv, dc->dst_pool, &e) < 0 ||
        hv_volume_delete(hv, dc->dst_pool, dc->tmp_vol, &e) < 0)
        log_error("vm %s: scratch volume %s may be left: %s", dc->src->id, dc->tmp_vol, e->message);
}

/* The RBD snapshot an image-from-VM task reads a disk in an rbd pool from: named after the
 * task, so that a restart finds (and its end removes) the same one. */
static void
image_rbd_snap_name(const Task *task, char out[96])
{
    snprintf(out, 96, VM_RBD_COPY_SNAP_PREFIX "%s", task->id);
}

/* 1 and *pool when the VM's root disk is in an rbd pool, 0 when not, -1. */
static int
clone_rbd_pool(Core *core, const Vm *vm, Pool *pool, NbError **err)
{
    int in_pool = vm_rbd_pool(core, vm, pool, err);
    return in_pool <= 0 ? in_pool : pool->type == POOL_TYPE_RBD;
}

/* ---- vm.clone ---- */

typedef struct CloneParams {
    char source[NB_UUID_STRLEN];
    bool linked;
} CloneParams;

static int
clone_params(const Task *task, CloneParams *ret, NbError **err)
{
    json_auto_t *p = task->params ? json_loads(task->params, 0, NULL) : NULL;
    const char *src = json_string_value(json_object_get(p, "source"));
    if (!src || !nb_uuid_is_valid(src))
        return nb_error_set(err, NB_ERR_INTERNAL, "the clone task names no source VM");
    snprintf(ret->source, sizeof(ret->source), "%s", src);
    ret->linked = json_is_true(json_object_get(p, "linked"));
    return 0;
}

/* The scratch volume of a task: named after it, so a restart finds the same one. */
static void
clone_tmp_volume(const Task *task, char out[96])
{
    snprintf(out, 96, "clone-%s.qcow2", task->id);
}

/* The DiskCopy of a clone task; *src is read here (vm_clear it). */
static int
clone_disk_copy_of(Core *core, const Task *task, const Vm *vm, Vm *src, Image *base,
                   char dst_vol[96], char tmp_vol[96], DiskCopy *ret, NbError **err)
{
    CloneParams p;
    if (clone_params(task, &p, err) < 0)
        return -1;
    if (vm_store_get(core->store, NULL, p.source, src, err) < 0)
        return -1;
    _cleanup_error_ NbError *e = NULL;
    if (image_store_get(core->store, NULL, src->image_id, base, &e) < 0)
        memset(base, 0, sizeof(*base));
    if (p.linked && !base->volume[0]) {
        vm_clear(src);
        return nb_error_set(err, NB_ERR_IMAGE_NOT_FOUND, "the source VM's image is gone");
    }
    vm_disk_volume(vm, dst_vol);
    clone_tmp_volume(task, tmp_vol);
    *ret = (DiskCopy){.src = src,
                      .dst_vol = dst_vol,
                      .tmp_vol = tmp_vol,
                      .base_vol = base->volume,
                      .linked = p.linked};
    if (disk_copy_pools(core, ret, vm, err) < 0) {
        vm_clear(src);
        return -1;
    }
    return 0;
}

/* The source of a clone task whose source's disk is on RBD: 1 (and *src, to vm_clear), 0 when it
 * is not on RBD, -1. */
static int
clone_rbd_source(Core *core, const Task *task, Vm *src, CloneParams *p, NbError **err)
{
    Pool pool;
    if (clone_params(task, p, err) < 0 || vm_store_get(core->store, NULL, p->source, src, err) < 0)
        return -1;
    int on_rbd = clone_rbd_pool(core, src, &pool, err);
    if (on_rbd <= 0)
        vm_clear(src);
    return on_rbd;
}

int
clone_ops_disk_step(Core *core, Task *task, Vm *vm, HvConn *hv, TaskRun *run, NbError **err)
{
    Vm src;
    Image base;
    char dst_vol[96], tmp_vol[96];
    DiskCopy dc;
    CloneParams p;
    int on_rbd = clone_rbd_source(core, task, &src, &p, err);
    if (on_rbd < 0)
        return -1;
    if (on_rbd) {
        /* RBD: a snapshot of the source's disk and a clone of it, in the same pool */
        int r = -1;
        if (!streq(src.pool_id, vm->pool_id))
            nb_error_set(err, NB_ERR_INTERNAL, "a clone's disk goes in its source's pool");
        else
            r = vm_rbd_clone_disk(core, task, &src, vm, p.linked, hv, err);
        vm_clear(&src);
        return r;
    }
    if (clone_disk_copy_of(core, task, vm, &src, &base, dst_vol, tmp_vol, &dc, err) < 0)
        return -1;
    int r = -1;
    if (!streq(src.host, vm->host))
        nb_error_set(err, NB_ERR_INVALID_STATE, "the source VM moved to host '%s'", src.host);
    else
        r = disk_copy(core, hv, run, &dc, err);
    vm_clear(&src);
    return r;
}

void
clone_ops_disk_cleanup(Core *core, const Task *task, const Vm *vm)
{
    _cleanup_error_ NbError *err = NULL;
    Vm src;
    Image base;
    char dst_vol[96], tmp_vol[96];
    DiskCopy dc;
    CloneParams p;
    int on_rbd = clone_rbd_source(core, task, &src, &p, &err);
    if (on_rbd > 0) {
        vm_rbd_clone_cleanup(core, task, &src);
        vm_clear(&src);
        return;
    }
    nb_error_free(TAKE_PTR(err));
    if (clone_disk_copy_of(core, task, vm, &src, &base, dst_vol, tmp_vol, &dc, &err) < 0) {
        log_warn("task %s: nothing of the source to clean up: %s", task->id, err->message);
        return;
    }
    HvConn *hv = host_registry_conn(core, src.host);
    if (hv)
        disk_copy_cleanup(core, hv, &dc);
    hv_conn_free(hv);
    vm_clear(&src);
}

static bool
vm_state_copyable(VmState s)
{
    return s == VM_STATE_RUNNING || s == VM_STATE_PAUSED || s == VM_STATE_STOPPED;
}

/* The create body of a clone of src named name: what POST /v1/vms would take. */
static json_t *
clone_body(Core *core, const Vm *src, const char *name, NbError **err)
{
    _cleanup_free_ Port *ports = NULL;
    size_t n = 0;
    if (port_store_list_by_vm(core->store, src->id, &ports, &n, err) < 0)
        return NULL;
    json_auto_t *body = json_pack("{s:s, s:s, s:s, s:o}", "name", name, "image", src->image_id,
                                  "flavor", src->flavor_id, "labels", labels_to_json(&src->labels));
    if (!body) {
        nb_error_set(err, NB_ERR_INTERNAL, "out of memory");
        return NULL;
    }
    if (src->user_data && src->user_data[0])
        json_object_set_new(body, "user_data", json_string(src->user_data));
    /* The clone's disk goes in its source's pool. */
    if (src->pool_id[0])
        json_object_set_new(body, "pool", json_string(src->pool_id));
    if (n > 0) {
        json_t *nets = json_array();
        for (size_t i = 0; i < n; i++)
            json_array_append_new(nets, json_pack("{s:s}", "network", ports[i].network_id));
        json_object_set_new(body, "networks", nets);
        /* The groups of its first NIC: a create gives every NIC the same. */
        SecGroup *groups = NULL;
        size_t n_groups = 0;
        if (secgroup_store_port_groups(core->store, ports[0].id, &groups, &n_groups, err) < 0)
            return NULL;
        json_t *names = json_array();
        for (size_t i = 0; i < n_groups; i++)
            json_array_append_new(names, json_string(groups[i].id));
        free(groups);
        json_object_set_new(body, "secgroups", names);
    }
    return TAKE_PTR(body);
}

int
clone_ops_vm_clone(Core *core, const Principal *who, const char *scope, const char *key,
                   json_t *body, Vm *ret_vm, Task *ret_task, NbError **err)
{
    static const char *const fields[] = {"name", "linked", "host", NULL};
    char name[NB_NAME_MAX + 1], host[NB_NAME_MAX + 1];
    if (json_req_check_fields(body, fields, err) < 0 ||
        json_req_name(body, "name", "VM", name, err) < 0 ||
        json_req_string(body, "host", 0, host, sizeof(host), err) < 0)
        return -1;
    json_t *linked = json_object_get(body, "linked");
    if (linked && !json_is_boolean(linked))
        return nb_error_set(err, NB_ERR_INVALID_REQUEST, "'linked' must be true or false");
    Vm src;
    if (vm_store_get(core->store, scope, key, &src, err) < 0)
        return -1;
    int r = -1, on_rbd = 0;
    Pool pool;
    _cleanup_free_ char *params = NULL;
    json_auto_t *create = NULL;
    if (src.task_id[0]) {
        nb_error_set(err, NB_ERR_VM_BUSY, "a task is working on VM '%s'; retry when it is done",
                     src.name);
    } else if (!vm_state_copyable(src.state)) {
        nb_error_set(err, NB_ERR_INVALID_STATE, "cannot clone a VM that is %s",
                     vm_state_to_string(src.state));
    } else if ((on_rbd = clone_rbd_pool(core, &src, &pool, err)) < 0) {
        /* the pool unreadable */
    } else if (host[0] && !streq(host, src.host)) {
        nb_error_set(err, NB_ERR_INVALID_REQUEST,
                     "a clone is made on its source's host ('%s'); migrate it afterwards",
                     src.host);
    } else if (json_is_true(linked) && !on_rbd && src.state != VM_STATE_STOPPED &&
               !streq(src.host, core->cfg.host_name)) {
        nb_error_set(err, NB_ERR_INVALID_STATE,
                     "a linked clone of a running VM is made on host '%s' only; stop the VM or "
                     "make a full clone",
                     core->cfg.host_name);
    } else if ((create = clone_body(core, &src, name, err))) {
        json_auto_t *p = json_pack("{s:s, s:b}", "source", src.id, "linked", json_is_true(linked));
        params = p ? json_dumps(p, JSON_COMPACT) : NULL;
        /* The clone is the source's project's, whoever (an admin) asks. */
        Principal owner = *who;
        memcpy(owner.project_id, src.project, sizeof(owner.project_id));
        VmCreateHow how = {.kind = TASK_KIND_VM_CLONE, .params = params, .host = src.host};
        if (!params)
            nb_error_set(err, NB_ERR_INTERNAL, "out of memory");
        else
            r = vm_ops_create_how(core, &owner, create, &how, ret_vm, ret_task, err);
    }
    if (r == 0)
        log_info("vm %s: cloned from %s (%s) as task %s", ret_vm->id, src.id,
                 json_is_true(linked) ? "linked" : "full", ret_task->id);
    vm_clear(&src);
    return r;
}

/* ---- image.from-vm ---- */

/* The image a task makes (its params). */
static int
image_of_task(Core *core, const Task *task, Image *ret, NbError **err)
{
    json_auto_t *p = task->params ? json_loads(task->params, 0, NULL) : NULL;
    const char *id = json_string_value(json_object_get(p, "image"));
    if (!id)
        return nb_error_set(err, NB_ERR_INTERNAL, "the task names no image");
    return image_store_get(core->store, NULL, id, ret, err);
}

/* An image of a VM on RBD: a snapshot of its disk (atomic, so crash-consistent while the VM
 * runs), copied by qemu-img on nimbusd's host straight into the image's file in the local
 * default pool (flattened: qcow2 with no backing file), then removed. Each part is done again
 * from the start after a restart (the snapshot, if there, is kept: EEXIST). */
static int
image_copy_rbd(Core *core, const Task *task, const Vm *vm, const Pool *pool, const Image *img,
               NbError **err)
{
    char disk[96], snap[96];
    vm_rbd_disk_name(vm, disk);
    image_rbd_snap_name(task, snap);
    _cleanup_free_ char *path = str_printf("%s/%s", core->cfg.pool_path, img->volume);
    if (!path)
        return nb_error_set(err, NB_ERR_INTERNAL, "out of memory");
    HvConn *local = host_registry_local_conn(core);
    if (!local)
        return nb_error_set(err, NB_ERR_HOST_DOWN,
                            "the local host, which holds the images, is down");
    int r = -1;
    if (hv_conn_is_simulated(local))
        r = 0; /* a simulated host keeps no bytes */
    else if (vm_rbd_snap(core, task->id, pool, disk, snap, "create", err) == 0 &&
             vm_rbd_read_snapshot(core, task->id, pool->id, disk, snap, path, err) == 0 &&
             vm_rbd_snap(core, task->id, pool, disk, snap, "rm", err) == 0 &&
             hv_pool_refresh(local, vm_ops_pool(core), err) == 0)
        r = 0;
    hv_conn_free(local);
    return r;
}

static int
step_image_copy(Core *core, Task *task, Vm *vm, HvConn *hv, TaskRun *run, NbError **err)
{
    Image img;
    if (image_of_task(core, task, &img, err) < 0)
        return -1;
    /* A restart's sweep put an image cut short back in queued: it is this task's again. */
    if (img.state == IMAGE_STATE_QUEUED &&
        image_store_transition(core->store, img.id, IMAGE_STATE_QUEUED, IMAGE_STATE_UPLOADING,
                               err) < 0)
        return -1;
    if (img.state == IMAGE_STATE_QUEUED)
        events_publish_image(core->events, core->store, img.id, NULL);
    Pool pool;
    int on_rbd = clone_rbd_pool(core, vm, &pool, err);
    if (on_rbd != 0)
        return on_rbd < 0 ? -1 : image_copy_rbd(core, task, vm, &pool, &img, err);
    DiskCopy dc = {.src = vm, .dst_vol = img.volume, .tmp_vol = "", .linked = false};
    char tmp[96];
    clone_tmp_volume(task, tmp);
    dc.tmp_vol = tmp;
    if (disk_copy_pools(core, &dc, NULL, err) < 0)
        return -1;
    return disk_copy(core, hv, run, &dc, err);
}

/* Images live on nimbusd's own host: a copy made elsewhere goes there too, and stays where it
 * was made as that host's copy of the image. */
static int
step_image_to_store(Core *core, Task *task, Vm *vm, HvConn *hv, TaskRun *run, NbError **err)
{
    Pool pool;
    int on_rbd = clone_rbd_pool(core, vm, &pool, err);
    if (on_rbd < 0)
        return -1;
    /* a copy of a disk on RBD was made on nimbusd's host */
    if (on_rbd || streq(vm->host, core->cfg.host_name))
        return 0;
    Image img;
    if (image_of_task(core, task, &img, err) < 0)
        return -1;
    HvConn *local = host_registry_local_conn(core);
    if (!local)
        return nb_error_set(err, NB_ERR_HOST_DOWN,
                            "the local host, which holds the images, is down");
    int r = hv_vol_copy(hv, local, vm_ops_pool(core), img.volume, err) == 0 &&
                    image_copy_set(core->store, img.id, vm->host, IMAGE_COPY_READY, err) == 0
                ? 0
                : -1;
    hv_conn_free(local);
    return r;
}

/* Sized and checked like an upload (qemu-img info on the file), then active. */
static int
step_image_probe(Core *core, Task *task, Vm *vm, HvConn *hv, TaskRun *run, NbError **err)
{
    Image img;
    if (image_of_task(core, task, &img, err) < 0)
        return -1;
    HvConn *local = host_registry_local_conn(core);
    if (!local)
        return nb_error_set(err, NB_ERR_HOST_DOWN,
                            "the local host, which holds the images, is down");
    _cleanup_free_ char *path = NULL;
    ImageProbeResult probe = {.format = IMAGE_FORMAT_QCOW2,
                              .virtual_size_bytes = vm->disk_gib << 30};
    struct stat st = {0};
    int r = -1;
    if (hv_conn_is_simulated(local)) {
        r = 0; /* a simulated host keeps no bytes */
    } else if (hv_vol_path(local, vm_ops_pool(core), img.volume, &path, err) == 0 &&
               image_probe_file(path, IMAGE_FORMAT_QCOW2, core->cfg.max_image_virtual_bytes, &probe,
                                err) == 0) {
        if (stat(path, &st) < 0)
            nb_error_set(err, NB_ERR_INTERNAL, "stat %s: %s", path, strerror(errno));
        else
            r = 0;
    }
    hv_conn_free(local);
    if (r < 0)
        return -1;
    img.format = IMAGE_FORMAT_QCOW2;
    img.size_bytes = (uint64_t)st.st_size;
    img.virtual_size_bytes = probe.virtual_size_bytes;
    if (image_store_set_active(core->store, &img, err) < 0)
        return -1;
    events_publish_image(core->events, core->store, img.id, NULL);
    log_info("image %s (%s): made from vm %s, %ju bytes", img.id, img.name, vm->id,
             (uintmax_t)img.size_bytes);
    return 0;
}

static int
image_vm_state(Core *core, const Vm *vm, HvConn *hv)
{
    char domain[64];
    HvDomainState st = HV_DOMAIN_NONE;
    _cleanup_error_ NbError *e = NULL;
    vm_domain_name(vm, domain);
    return hv && hv_domain_get_state(hv, domain, &st, &e) == 0 ? (int)vm_ops_state_from_hv(st) : -1;
}

static void
image_finish(Core *core, Task *task, Vm *vm)
{
    _cleanup_error_ NbError *err = NULL;
    if (task_store_finish(core->store, task, TASK_STATE_SUCCEEDED, NULL, NULL, -1, -1, NULL, &err) <
        0)
        log_error("task %s: %s", task->id, err->message);
}

/* No half image stays: the job stops, the copies and the row go (error when a copy could not
 * be removed, for a delete to retry). */
static int
image_rollback(Core *core, Task *task, Vm *vm, HvConn *hv)
{
    _cleanup_error_ NbError *err = NULL;
    Image img;
    if (image_of_task(core, task, &img, &err) < 0)
        return image_vm_state(core, vm, hv);
    char tmp[96];
    clone_tmp_volume(task, tmp);
    DiskCopy dc = {.src = vm, .dst_vol = img.volume, .tmp_vol = tmp, .linked = false};
    /* An image's copy and scratch are in the default pool, wherever the VM's disk is. */
    snprintf(dc.dst_pool, sizeof(dc.dst_pool), "%s", vm_ops_pool(core));
    snprintf(dc.dst_dir, sizeof(dc.dst_dir), "%s", core->cfg.pool_path);
    bool gone = hv != NULL;
    Pool pool;
    int on_rbd = clone_rbd_pool(core, vm, &pool, &err);
    if (on_rbd != 0) {
        /* the snapshot read from; the file written is the local copy's, removed below */
        char disk[96], snap[96];
        vm_rbd_disk_name(vm, disk);
        image_rbd_snap_name(task, snap);
        if (on_rbd < 0 || vm_rbd_snap(core, task->id, &pool, disk, snap, "rm", &err) < 0) {
            log_error("image %s: RBD snapshot %s of %s may be left: %s", img.id, snap, disk,
                      err->message);
            gone = false;
        }
        nb_error_free(TAKE_PTR(err));
    }
    if (hv) {
        disk_copy_cleanup(core, hv, &dc);
        if (hv_volume_delete(hv, vm_ops_pool(core), img.volume, &err) < 0) {
            log_error("image %s: left on host %s: %s", img.id, vm->host, err->message);
            gone = false;
        }
    }
    nb_error_free(TAKE_PTR(err));
    HvConn *local = host_registry_local_conn(core);
    /* refreshed first: a file qemu-img wrote (a copy from RBD) is no volume of libvirt's yet */
    if (!local || hv_pool_refresh(local, vm_ops_pool(core), &err) < 0 ||
        hv_vol_delete(local, vm_ops_pool(core), img.volume, &err) < 0)
        gone = false;
    hv_conn_free(local);
    nb_error_free(TAKE_PTR(err));
    if (gone) {
        if (image_copy_delete(core->store, img.id, vm->host, &err) < 0)
            nb_error_free(TAKE_PTR(err));
        /* Out of uploading first: the store deletes no image under way. */
        if ((img.state != IMAGE_STATE_ERROR &&
             image_store_transition(core->store, img.id, img.state, IMAGE_STATE_ERROR, &err) < 0) ||
            image_store_delete(core->store, img.id, &err) < 0)
            log_error("image %s: %s", img.id, err->message);
    } else if (image_store_transition(core->store, img.id, img.state, IMAGE_STATE_ERROR, &err) <
               0) {
        log_error("image %s: %s", img.id, err->message);
    }
    events_publish_image(core->events, core->store, img.id, img.project);
    return image_vm_state(core, vm, hv);
}

static const VmStep image_steps[] = {step_image_copy, step_image_to_store, step_image_probe};
static const char *const image_names[] = {"copy", "to_store", "probe"};
_Static_assert(ELEMENTSOF(image_names) == ELEMENTSOF(image_steps), "a name per step");

static const VmTaskDef image_def = {
    .steps = image_steps,
    .n_steps = (int)ELEMENTSOF(image_steps),
    .step_names = image_names,
    .state_on_claim = -1,
    .finish = image_finish,
    .rollback = image_rollback,
};

int
clone_ops_step_count(TaskKind kind)
{
    return kind == TASK_KIND_IMAGE_FROM_VM ? image_def.n_steps : 0;
}

int64_t
clone_ops_run_task(Core *core, Task *task, TaskRun *run)
{
    return vm_ops_task_run(core, task, run, &image_def);
}

int
clone_ops_image_from_vm(Core *core, const Principal *who, const char *vm_scope, json_t *body,
                        Image *ret_img, Task *ret_task, NbError **err)
{
    static const char *const fields[] = {"name", "from_vm", "disk_format", NULL};
    char vm_key[NB_NAME_MAX + NB_UUID_STRLEN + 1], fmt[16];
    Image img = {0};
    if (json_req_check_fields(body, fields, err) < 0 ||
        json_req_name(body, "name", "image", img.name, err) < 0 ||
        json_req_string(body, "from_vm", 1, vm_key, sizeof(vm_key), err) < 0 ||
        json_req_string(body, "disk_format", 0, fmt, sizeof(fmt), err) < 0)
        return -1;
    if (fmt[0] && !streq(fmt, "qcow2"))
        return nb_error_set(err, NB_ERR_INVALID_REQUEST, "an image from a VM is qcow2");
    Image other;
    _cleanup_error_ NbError *e = NULL;
    if (image_store_get(core->store, who->project_id, img.name, &other, &e) == 0)
        return nb_error_set(err, NB_ERR_NAME_TAKEN, "image '%s' exists", img.name);
    Vm vm;
    if (vm_store_get(core->store, vm_scope, vm_key, &vm, err) < 0)
        return -1;
    int r = -1;
    Task task = {0};
    json_auto_t *p = NULL;
    _cleanup_free_ char *params = NULL;
    if (vm.task_id[0]) {
        nb_error_set(err, NB_ERR_VM_BUSY, "a task is working on VM '%s'; retry when it is done",
                     vm.name);
        goto out;
    }
    if (!vm_state_copyable(vm.state)) {
        nb_error_set(err, NB_ERR_INVALID_STATE, "cannot make an image of a VM that is %s",
                     vm_state_to_string(vm.state));
        goto out;
    }
    nb_uuid_generate(img.id);
    snprintf(img.project, sizeof(img.project), "%s", who->project_id);
    snprintf(img.volume, sizeof(img.volume), "image-%s", img.id);
    img.state = IMAGE_STATE_UPLOADING;
    img.format = IMAGE_FORMAT_QCOW2;
    nb_timestamp_now(img.created_at);
    memcpy(img.updated_at, img.created_at, sizeof(img.updated_at));
    p = json_pack("{s:s}", "image", img.id);
    params = p ? json_dumps(p, JSON_COMPACT) : NULL;
    if (!params) {
        nb_error_set(err, NB_ERR_INTERNAL, "out of memory");
        goto out;
    }
    /* The VM first: a crash before the image's row leaves a task that finds no image and
     * fails, nothing else. */
    task_new(&task, TASK_KIND_IMAGE_FROM_VM, vm.id, params);
    if (vm_store_claim(core->store, vm.id, &task, vm.desired, -1, err) < 0)
        goto out;
    if (image_store_insert(core->store, &img, err) < 0) {
        _cleanup_error_ NbError *fe = NULL;
        if (task_store_finish(core->store, &task, TASK_STATE_FAILED, (*err)->code, (*err)->message,
                              -1, -1, NULL, &fe) < 0)
            log_error("task %s: %s", task.id, fe->message);
        goto out;
    }
    events_publish_image(core->events, core->store, img.id, NULL);
    log_info("image %s (%s): from vm %s queued as task %s", img.id, img.name, vm.id, task.id);
    r = image_store_get(core->store, NULL, img.id, ret_img, err);
    task_engine_submit(core->tasks, task.id);
    if (r == 0) {
        *ret_task = task;
        task.params = NULL;
    }
out:
    task_clear(&task);
    vm_clear(&vm);
    return r;
}
