/*
 * VM backups. Every step is idempotent: a target file is made again, a backup job already
 * begun (its checkpoint exists, or the job runs) is not begun twice, a wait looks at the job
 * again, a delete of what is absent is done. A failed create takes away what it made (job,
 * checkpoint, file, row); a failed delete leaves the backup in error (delete may be asked
 * again); a failed restore leaves the new volume in error and the backup ready.
 *
 * A VM whose root disk is in an rbd pool (a raw RBD image): full backups only, by the backup
 * job (QEMU reads the disk through librbd), without a checkpoint: libvirt keeps a checkpoint's
 * dirty bitmap in a qcow2 file, and a raw RBD image has none. Of a stopped VM the domain is
 * started paused for the job and shut off again by the last step (or the rollback): libvirt
 * 9.0 cannot copy an rbd volume into a dir pool (vol-create-from looks the source up as a
 * file), and the job runs on the VM's host, where the backup pool is.
 */
#include "backup_ops.h"

#include <stdlib.h>
#include <string.h>

#include "../hv/pool_xml.h"
#include "../util/log.h"
#include "../util/strutil.h"
#include "metrics.h"
#include "vm_ops_internal.h"
#include "vm_rbd.h"

#define BIT(s) (1u << (unsigned)(s))
#define BACKUP_DISK "vda" /* the root disk: what a backup holds */

/* The backup a create task works on: its params, in state creating. */
static int
bk_of_task(Core *core, const Task *task, Backup *ret, NbError **err)
{
    if (!task->params)
        return nb_error_set(err, NB_ERR_INTERNAL, "the task names no backup");
    if (backup_store_get(core->store, NULL, task->params, ret, err) < 0)
        return -1;
    return 0;
}

static int
bk_pool(Core *core, const char *pool_id, Pool *ret, NbError **err)
{
    if (pool_store_get(core->store, pool_id, ret, err) < 0)
        return -1;
    explicit_bzero(ret->secret, sizeof(ret->secret));
    return 0;
}

/* ---- create ---- */

/* The target file: an empty qcow2 of the disk's size, or (incremental) one whose backing file
 * is the parent backup's file. */
static int
step_prepare(Core *core, Task *task, Vm *vm, HvConn *hv, TaskRun *run, NbError **err)
{
    Backup b, parent;
    Pool pool;
    char domain[64], disk_vol[96], disk_pool[POOL_LIBVIRT_NAME_MAX + 1];
    PoolType disk_type;
    if (bk_of_task(core, task, &b, err) < 0 || bk_pool(core, b.pool_id, &pool, err) < 0 ||
        vm_disk_pool(core, vm, disk_pool, &disk_type, err) < 0)
        return -1;
    if (b.state != BACKUP_STATE_CREATING)
        return 0;
    vm_domain_name(vm, domain);
    vm_disk_volume(vm, disk_vol);
    uint64_t cap = 0;
    if (disk_type == POOL_TYPE_RBD && vm->state == VM_STATE_STOPPED) {
        /* The domain runs paused for the job (its guest does not): the last step or the
         * rollback shuts it off. Started already (a step run again): done. */
        if (hv_domain_start_paused(hv, domain, err) < 0)
            return -1;
        log_info("vm %s: domain started paused for backup %s", vm->id, b.id);
    } else if (!b.checkpoint[0] && disk_type != POOL_TYPE_RBD) {
        /* A stopped VM: a full copy by libvirt (qemu-img convert: the root disk's chain read
         * through, into one qcow2). The task holds the VM: it is not started meanwhile. */
        if (hv_volume_capacity(hv, disk_pool, disk_vol, &cap, err) <= 0) {
            if (err && !*err)
                nb_error_set(err, NB_ERR_HYPERVISOR, "VM %s has no root disk", vm->id);
            return -1;
        }
        _cleanup_free_ char *xml = pool_xml_volume(b.volume, cap, "qcow2");
        if (!xml)
            return nb_error_set(err, NB_ERR_INTERNAL, "cannot build the XML of %s", b.volume);
        uint64_t t0 = nb_monotonic_ms();
        if (hv_volume_create_from(hv, pool.libvirt_name, b.volume, xml, disk_pool, disk_vol, err) <
            0)
            return -1;
        uint64_t ms = nb_monotonic_ms() - t0;
        double mbps = (double)cap / 1e6 / ((double)(ms ? ms : 1) / 1000.0);
        return backup_store_finish(core->store, b.id, cap, cap, mbps, err);
    }
    if (hv_backup_disk_capacity(hv, domain, BACKUP_DISK, &cap, err) < 0)
        return -1;
    if (b.parent_id[0]) {
        if (backup_store_get(core->store, NULL, b.parent_id, &parent, err) < 0)
            return -1;
        return hv_vol_create_linked_clone(hv, pool.libvirt_name, b.volume, parent.volume, "qcow2",
                                          cap, err);
    }
    _cleanup_free_ char *xml = pool_xml_volume(b.volume, cap, "qcow2");
    if (!xml)
        return nb_error_set(err, NB_ERR_INTERNAL, "cannot build the XML of %s", b.volume);
    if (hv_vol_delete(hv, pool.libvirt_name, b.volume, err) < 0)
        return -1;
    return hv_volume_create(hv, pool.libvirt_name, b.volume, xml, cap, err);
}

static int
step_begin(Core *core, Task *task, Vm *vm, HvConn *hv, TaskRun *run, NbError **err)
{
    Backup b, parent;
    Pool pool;
    char domain[64];
    if (bk_of_task(core, task, &b, err) < 0)
        return -1;
    /* (A stopped VM's copy was made by the prepare step: the backup is ready.) */
    if (b.state != BACKUP_STATE_CREATING)
        return 0;
    vm_domain_name(vm, domain);
    /* Begun before a crash: the checkpoint is made with the job's start. */
    int r = b.checkpoint[0] ? hv_checkpoint_exists(hv, domain, b.checkpoint, err) : 0;
    if (r != 0)
        return r < 0 ? -1 : 0;
    if (bk_pool(core, b.pool_id, &pool, err) < 0)
        return -1;
    _cleanup_free_ char *path = NULL;
    if (hv_vol_path(hv, pool.libvirt_name, b.volume, &path, err) < 0)
        return -1;
    HvBackupJob job;
    if (hv_backup_job(hv, domain, path, &job, err) < 0)
        return -1;
    if (job.state == HV_BACKUP_JOB_RUNNING)
        return 0;
    if (job.state == HV_BACKUP_JOB_OTHER) {
        /* A migration or another task's job (a clone's copy) holds the domain: wait for its
         * end. */
        return vm_ops_wait(run);
    }
    const char *since = NULL;
    if (b.parent_id[0]) {
        if (backup_store_get(core->store, NULL, b.parent_id, &parent, err) < 0)
            return -1;
        r = parent.checkpoint[0] ? hv_checkpoint_exists(hv, domain, parent.checkpoint, err) : 0;
        if (r < 0)
            return -1;
        if (r == 0)
            return nb_error_set(err, NB_ERR_BACKUP_NO_BASE,
                                "VM '%s' no longer has the checkpoint of backup %s: make a full "
                                "backup",
                                vm->name, parent.id);
        since = parent.checkpoint;
    }
    r = hv_backup_begin(hv, domain, BACKUP_DISK, path, since, b.checkpoint[0] ? b.checkpoint : NULL,
                        true, err);
    /* A root disk made before Nimbus made qcow2 v3 files cannot hold a bitmap: its full
     * backups are made without a checkpoint (and incremental ones cannot follow them). */
    if (r < 0 && !since && b.checkpoint[0] && strstr((*err)->message, "qcow2 v2")) {
        log_warn("vm %s: its root disk is qcow2 v2 (no dirty bitmaps): backup %s is made "
                 "without a checkpoint",
                 vm->id, b.id);
        nb_error_free(TAKE_PTR(*err));
        if (backup_store_set_checkpoint(core->store, b.id, NULL, err) < 0)
            return -1;
        r = hv_backup_begin(hv, domain, BACKUP_DISK, path, NULL, NULL, true, err);
    }
    return r;
}

/* Polls the job (it runs in QEMU; the task's worker is free meanwhile) and records its end. */
/* The job's end looked for every 50 ms in its first second (an incremental backup, or a small
 * disk's, is over by then), then backing off as vm_ops_wait does. */
static int
bk_wait(TaskRun *run)
{
    if (!run->wait_since_ms)
        run->wait_since_ms = nb_monotonic_ms();
    return nb_monotonic_ms() - run->wait_since_ms < 1000 ? 50 : vm_ops_wait_ms(run->wait_since_ms);
}

static int
step_wait(Core *core, Task *task, Vm *vm, HvConn *hv, TaskRun *run, NbError **err)
{
    Backup b;
    char domain[64];
    if (bk_of_task(core, task, &b, err) < 0)
        return -1;
    if (b.state != BACKUP_STATE_CREATING)
        return 0;
    vm_domain_name(vm, domain);
    Pool pool;
    _cleanup_free_ char *path = NULL;
    if (bk_pool(core, b.pool_id, &pool, err) < 0 ||
        hv_vol_path(hv, pool.libvirt_name, b.volume, &path, err) < 0)
        return -1;
    HvBackupJob job;
    if (hv_backup_job(hv, domain, path, &job, err) < 0)
        return -1;
    switch (job.state) {
    case HV_BACKUP_JOB_RUNNING:
    case HV_BACKUP_JOB_OTHER: /* ours ended and another task's began: wait for that one too */
        return bk_wait(run);
    case HV_BACKUP_JOB_COMPLETED: {
        uint64_t cap = 0;
        if (hv_backup_disk_capacity(hv, domain, BACKUP_DISK, &cap, err) < 0)
            return -1;
        uint64_t ms = job.elapsed_ms ? job.elapsed_ms : 1;
        double mbps = (double)job.processed / 1e6 / ((double)ms / 1000.0);
        log_info("vm %s: backup %s done: %ju bytes in %ju ms (%.1f MB/s)", vm->id, b.id,
                 (uintmax_t)job.processed, (uintmax_t)ms, mbps);
        return backup_store_finish(core->store, b.id, cap, job.processed, mbps, err);
    }
    case HV_BACKUP_JOB_FAILED:
        return nb_error_set(err, NB_ERR_HYPERVISOR, "the backup job of VM '%s' failed: %s",
                            vm->name, job.error[0] ? job.error : "no reason given");
    default:
        return nb_error_set(err, NB_ERR_HYPERVISOR,
                            "the backup job of VM '%s' is gone and its end is not known", vm->name);
    }
}

/* A stopped VM on RBD: the domain started paused for the job is shut off (not running: 0). */
static int
step_release(Core *core, Task *task, Vm *vm, HvConn *hv, TaskRun *run, NbError **err)
{
    if (vm->state != VM_STATE_STOPPED)
        return 0;
    int rbd = vm_disk_on_rbd(core, vm, err);
    if (rbd <= 0)
        return rbd;
    char domain[64];
    vm_domain_name(vm, domain);
    return hv_domain_destroy(hv, domain, err);
}

static void
bk_task_succeeded(Core *core, Task *task)
{
    _cleanup_error_ NbError *err = NULL;
    if (task_store_finish(core->store, task, TASK_STATE_SUCCEEDED, NULL, NULL, -1, -1, NULL, &err) <
        0)
        log_error("task %s: %s", task->id, err->message);
}

static void
create_finish(Core *core, Task *task, Vm *vm)
{
    log_info("vm %s: backup %s made", vm->id, task->params ? task->params : "?");
    bk_task_succeeded(core, task);
}

/* The VM's state after a failed create: a stopped VM on RBD has its domain shut off again
 * (the job on it ended or was aborted). */
static int
create_rollback_end(Core *core, Vm *vm, HvConn *hv)
{
    _cleanup_error_ NbError *err = NULL;
    if (hv && step_release(core, NULL, vm, hv, NULL, &err) < 0)
        log_error("vm %s: its domain, started paused for a backup, may still run: %s", vm->id,
                  err->message);
    return vm_ops_host_state(core, vm, hv);
}

/* Nothing of a failed create stays: the job, the checkpoint, the file and the row; what could
 * not be taken away leaves the backup in error, for a delete to retry. */
static int
create_rollback(Core *core, Task *task, Vm *vm, HvConn *hv)
{
    _cleanup_error_ NbError *err = NULL;
    Backup b;
    Pool pool;
    if (!task->params || backup_store_get(core->store, NULL, task->params, &b, &err) < 0 ||
        b.state != BACKUP_STATE_CREATING)
        return create_rollback_end(core, vm, hv);
    char domain[64];
    vm_domain_name(vm, domain);
    int r = hv && bk_pool(core, b.pool_id, &pool, &err) == 0 ? 0 : -1;
    /* No file, no job writing it (the file is made before the job begins). */
    int there = r == 0 ? hv_vol_exists(hv, pool.libvirt_name, b.volume, &err) : -1;
    _cleanup_free_ char *path = NULL;
    if (there < 0 || (there && hv_vol_path(hv, pool.libvirt_name, b.volume, &path, &err) < 0))
        r = -1;
    /* Only this backup's job (to its file): a clone's copy of the VM is not this task's. */
    if (r == 0 && ((path && hv_backup_abort(hv, domain, path, &err) < 0) ||
                   (b.checkpoint[0] && hv_checkpoint_delete(hv, domain, b.checkpoint, &err) < 0)))
        r = -1;
    if (r == 0 && there && hv_vol_delete(hv, pool.libvirt_name, b.volume, &err) < 0)
        r = -1;
    if (r < 0) {
        log_error("backup %s: may be left on VM %s's host: %s", b.id, vm->id,
                  err ? err->message : "host down");
        nb_error_free(TAKE_PTR(err));
        if (backup_store_set_state(core->store, b.id, BIT(BACKUP_STATE_CREATING),
                                   BACKUP_STATE_ERROR, &err) < 0)
            log_error("backup %s: %s", b.id, err->message);
    } else if (backup_store_delete(core->store, b.id, &err) < 0) {
        log_error("backup %s: %s", b.id, err->message);
    }
    return create_rollback_end(core, vm, hv);
}

static const VmStep create_steps[] = {step_prepare, step_begin, step_wait, step_release};
static const char *const create_names[] = {"prepare", "begin", "wait", "release"};
static const VmTaskDef bk_create_def = {
    .steps = create_steps,
    .n_steps = (int)ELEMENTSOF(create_steps),
    .step_names = create_names,
    .state_on_claim = -1,
    .finish = create_finish,
    .rollback = create_rollback,
};

/* ---- delete and restore: tasks on the backup ---- */

typedef struct BkCtx {
    Backup b;
    Volume v; /* restore: the new volume */
} BkCtx;
typedef int (*BkStep)(Core *core, Task *task, BkCtx *x, TaskRun *run, NbError **err);

/* A connection to host: 0 and *ret, a delay while a host nimbusd has not reached since it
 * started may still come up, or -1. */
static int
bk_conn(Core *core, const char *host, const TaskRun *run, HvConn **ret, NbError **err)
{
    HvConn *c = host_registry_conn(core, host);
    if (c && hv_conn_is_alive(c)) {
        *ret = c;
        return 0;
    }
    hv_conn_free(c);
    if (run && host_registry_state(core, host) == HOST_CONN_CONNECTING &&
        nb_monotonic_ms() - run->first_run_ms < 120000)
        return vm_ops_wait_ms(run->first_run_ms);
    return nb_error_set(err, NB_ERR_HOST_DOWN, "host '%s' is down", host);
}

/* Its checkpoint off its VM (still there): libvirt merges its bitmap into the parent
 * checkpoint's, so later incremental backups stay right. */
static int
step_del_checkpoint(Core *core, Task *task, BkCtx *x, TaskRun *run, NbError **err)
{
    Vm vm;
    if (!x->b.checkpoint[0] || !x->b.vm_id[0])
        return 0;
    if (vm_store_get(core->store, NULL, x->b.vm_id, &vm, err) < 0) {
        nb_error_free(TAKE_PTR(*err));
        return 0;
    }
    HvConn *hv = NULL;
    int r = vm.host[0] ? bk_conn(core, vm.host, run, &hv, err) : 0;
    if (r == 0 && hv) {
        char domain[64];
        vm_domain_name(&vm, domain);
        r = hv_checkpoint_delete(hv, domain, x->b.checkpoint, err);
    }
    hv_conn_free(hv);
    vm_clear(&vm);
    return r;
}

static int
step_del_file(Core *core, Task *task, BkCtx *x, TaskRun *run, NbError **err)
{
    Pool pool;
    HvConn *hv = NULL;
    if (bk_pool(core, x->b.pool_id, &pool, err) < 0)
        return -1;
    int r = bk_conn(core, x->b.host, run, &hv, err);
    if (r != 0)
        return r;
    r = hv_vol_delete(hv, pool.libvirt_name, x->b.volume, err);
    hv_conn_free(hv);
    return r;
}

static int
delete_finish(Core *core, Task *task, BkCtx *x, NbError **err)
{
    if (backup_store_delete(core->store, x->b.id, err) < 0 &&
        !streq((*err)->code, NB_ERR_BACKUP_NOT_FOUND))
        return -1;
    nb_error_free(TAKE_PTR(*err));
    return 0;
}

static void
delete_rollback(Core *core, Task *task, BkCtx *x)
{
    _cleanup_error_ NbError *err = NULL;
    if (backup_store_set_state(core->store, x->b.id, BIT(BACKUP_STATE_DELETING), BACKUP_STATE_ERROR,
                               &err) < 0)
        log_error("backup %s: %s", x->b.id, err->message);
}

/* The new volume: libvirt copies the backup's file into it with qemu-img convert, which reads
 * the backing chain through (every incremental down to its full backup): one flat qcow2. */
static int
step_restore_copy(Core *core, Task *task, BkCtx *x, TaskRun *run, NbError **err)
{
    Pool bpool, vpool;
    HvConn *hv = NULL;
    char name[VOLUME_NAME_ON_HOST_MAX + 1];
    if (bk_pool(core, x->b.pool_id, &bpool, err) < 0 ||
        bk_pool(core, x->v.pool_id, &vpool, err) < 0)
        return -1;
    int r = bk_conn(core, x->b.host, run, &hv, err);
    if (r != 0)
        return r;
    volume_name_on_host(x->v.id, name);
    _cleanup_free_ char *xml = pool_xml_volume(name, x->b.size_bytes, "qcow2");
    if (!xml)
        r = nb_error_set(err, NB_ERR_INTERNAL, "cannot build the XML of volume %s", x->v.id);
    else
        r = hv_volume_create_from(hv, vpool.libvirt_name, name, xml, bpool.libvirt_name,
                                  x->b.volume, err);
    hv_conn_free(hv);
    return r;
}

static int
restore_finish(Core *core, Task *task, BkCtx *x, NbError **err)
{
    _cleanup_error_ NbError *e = NULL;
    if (backup_store_set_state(core->store, x->b.id, BIT(BACKUP_STATE_RESTORING),
                               BACKUP_STATE_READY, &e) < 0)
        log_error("backup %s: %s", x->b.id, e->message);
    return volume_store_transition(core->store, x->v.id, BIT(VOLUME_STATE_CREATING),
                                   VOLUME_STATE_AVAILABLE, NULL, err);
}

static void
restore_rollback(Core *core, Task *task, BkCtx *x)
{
    _cleanup_error_ NbError *err = NULL;
    Pool vpool;
    HvConn *hv = NULL;
    char name[VOLUME_NAME_ON_HOST_MAX + 1];
    volume_name_on_host(x->v.id, name);
    if (bk_pool(core, x->v.pool_id, &vpool, &err) < 0 ||
        bk_conn(core, x->b.host, NULL, &hv, &err) != 0 ||
        hv_vol_delete(hv, vpool.libvirt_name, name, &err) < 0)
        log_error("volume %s: may be left on host %s: %s", x->v.id, x->b.host,
                  err ? err->message : "?");
    hv_conn_free(hv);
    nb_error_free(TAKE_PTR(err));
    if (volume_store_transition(core->store, x->v.id, BIT(VOLUME_STATE_CREATING),
                                VOLUME_STATE_ERROR, NULL, &err) < 0)
        log_error("volume %s: %s", x->v.id, err->message);
    nb_error_free(TAKE_PTR(err));
    if (backup_store_set_state(core->store, x->b.id, BIT(BACKUP_STATE_RESTORING),
                               BACKUP_STATE_READY, &err) < 0)
        log_error("backup %s: %s", x->b.id, err->message);
}

typedef struct BkTaskDef {
    const BkStep *steps;
    int n_steps;
    const char *const *step_names;
    BackupState held;
    int (*finish)(Core *core, Task *task, BkCtx *x, NbError **err);
    void (*rollback)(Core *core, Task *task, BkCtx *x);
} BkTaskDef;

static const BkStep delete_steps[] = {step_del_checkpoint, step_del_file};
static const char *const delete_names[] = {"checkpoint", "file"};
static const BkStep restore_steps[] = {step_restore_copy};
static const char *const restore_names[] = {"copy"};
static const BkTaskDef bk_delete_def = {delete_steps,  (int)ELEMENTSOF(delete_steps),
                                        delete_names,  BACKUP_STATE_DELETING,
                                        delete_finish, delete_rollback};
static const BkTaskDef bk_restore_def = {restore_steps,  (int)ELEMENTSOF(restore_steps),
                                         restore_names,  BACKUP_STATE_RESTORING,
                                         restore_finish, restore_rollback};

static void
bk_task_end(Core *core, Task *task, TaskState state, const char *code, const char *msg)
{
    _cleanup_error_ NbError *err = NULL;
    if (task_store_finish(core->store, task, state, code, msg, -1, -1, NULL, &err) < 0)
        log_error("task %s: %s", task->id, err->message);
}

static int64_t
bk_run(Core *core, Task *task, TaskRun *run, const BkTaskDef *def)
{
    _cleanup_error_ NbError *err = NULL;
    BkCtx x;
    memset(&x, 0, sizeof(x));
    const char *bid = task->kind == TASK_KIND_BACKUP_DELETE ? task->target_id : task->params;
    if (!bid || backup_store_get(core->store, NULL, bid, &x.b, &err) < 0) {
        /* A delete whose row went just before a crash is done. */
        if (task->kind == TASK_KIND_BACKUP_DELETE && task->step >= def->n_steps)
            bk_task_end(core, task, TASK_STATE_SUCCEEDED, NULL, NULL);
        else
            bk_task_end(core, task, TASK_STATE_FAILED, NB_ERR_BACKUP_NOT_FOUND,
                        "the backup no longer exists");
        return TASK_RUN_DONE;
    }
    if (task->kind == TASK_KIND_BACKUP_RESTORE &&
        volume_store_get(core->store, NULL, task->target_id, &x.v, &err) < 0) {
        bk_task_end(core, task, TASK_STATE_FAILED, NB_ERR_VOLUME_NOT_FOUND,
                    "the new volume no longer exists");
        return TASK_RUN_DONE;
    }
    if (x.b.state != def->held) {
        /* The store's end was recorded before a crash: only the task is left to close. */
        if (task->step >= def->n_steps)
            bk_task_end(core, task, TASK_STATE_SUCCEEDED, NULL, NULL);
        else
            bk_task_end(core, task, TASK_STATE_FAILED, NB_ERR_BACKUP_BUSY,
                        "the backup was not held by this task");
        return TASK_RUN_DONE;
    }
    if (!task_set_running(core, task, "backup", x.b.id, def->n_steps))
        return TASK_RUN_DONE;
    int r = 0;
    while (task->step < def->n_steps) {
        if (task_engine_stopping(core->tasks))
            return TASK_RUN_DONE;
        if (!run->step_since_ms)
            run->step_since_ms = nb_monotonic_ms();
        int s = def->steps[task->step](core, task, &x, run, &err);
        if (s > 0)
            return s;
        metrics_task_step_observe(task->kind, task->step, def->step_names[task->step],
                                  (double)(nb_monotonic_ms() - run->step_since_ms) / 1000.0);
        run->step_since_ms = 0;
        if (s < 0) {
            r = -1;
            break;
        }
        task_crash_point(task->kind, task->step);
        run->wait_since_ms = 0;
        task->step++;
        if (task_store_set_step(core->store, task->id, task->step, &err) < 0) {
            r = -1;
            break;
        }
    }
    if (r == 0 && def->finish(core, task, &x, &err) < 0)
        r = -1;
    if (r == 0) {
        bk_task_end(core, task, TASK_STATE_SUCCEEDED, NULL, NULL);
        log_info("task %s (%s) on backup %s: succeeded", task->id, task_kind_to_string(task->kind),
                 x.b.id);
        return TASK_RUN_DONE;
    }
    const char *code = err ? err->code : NB_ERR_INTERNAL;
    const char *msg = err && err->message ? err->message : "internal error";
    log_warn("task %s (%s) on backup %s failed at step %d: %s: %s", task->id,
             task_kind_to_string(task->kind), x.b.id, task->step, code, msg);
    def->rollback(core, task, &x);
    bk_task_end(core, task, TASK_STATE_FAILED, code, msg);
    return TASK_RUN_DONE;
}

int
backup_ops_step_count(TaskKind kind)
{
    switch (kind) {
    case TASK_KIND_BACKUP_CREATE:
        return bk_create_def.n_steps;
    case TASK_KIND_BACKUP_DELETE:
        return bk_delete_def.n_steps;
    case TASK_KIND_BACKUP_RESTORE:
        return bk_restore_def.n_steps;
    default:
        return 0;
    }
}

int64_t
backup_ops_run_task(Core *core, Task *task, TaskRun *run)
{
    switch (task->kind) {
    case TASK_KIND_BACKUP_CREATE:
        return vm_ops_task_run(core, task, run, &bk_create_def);
    case TASK_KIND_BACKUP_DELETE:
        return bk_run(core, task, run, &bk_delete_def);
    case TASK_KIND_BACKUP_RESTORE:
        return bk_run(core, task, run, &bk_restore_def);
    default:
        bk_task_end(core, task, TASK_STATE_FAILED, NB_ERR_INTERNAL, "not a backup task");
        return TASK_RUN_DONE;
    }
}

/* ---- the API's operations ---- */

static int bk_disk_in_use(Core *core, const Backup *b, NbError **err);

/* A backup's pool: a dir pool (files the backup job can write; qcow2 for backing chains) that
 * the host has. */
static int
bk_pool_check(const Pool *pool, const char *host, NbError **err)
{
    if (pool->type != POOL_TYPE_DIR)
        return nb_error_set(err, NB_ERR_BACKUP_UNSUPPORTED,
                            "pool '%s' is a %s pool: backups go to dir pools in this version",
                            pool->name, pool_type_to_string(pool->type));
    if (pool->host[0] && !streq(pool->host, host))
        return nb_error_set(err, NB_ERR_BACKUP_UNSUPPORTED,
                            "pool '%s' is on host '%s', not on host '%s'", pool->name, pool->host,
                            host);
    return 0;
}

int
backup_ops_create(Core *core, const Principal *who, json_t *body, Backup *ret, Task *ret_task,
                  NbError **err)
{
    char vm_key[NB_NAME_MAX + 1], pool_key[NB_NAME_MAX + 1];
    bool incremental = false;
    Backup b = {0};
    Vm vm;
    Pool pool;
    if (backup_create_request_decode(body, vm_key, &incremental, pool_key, err) < 0)
        return -1;
    const char *scope =
        who->role == ROLE_ADMIN && nb_uuid_is_valid(vm_key) ? NULL : who->project_id;
    if (vm_store_get(core->store, scope, vm_key, &vm, err) < 0)
        return -1;
    int r = -1;
    if (vm.task_id[0]) {
        nb_error_set(err, NB_ERR_VM_BUSY,
                     "another task is working on this VM; retry when it has finished");
        goto out;
    }
    bool live = vm.state == VM_STATE_RUNNING || vm.state == VM_STATE_PAUSED;
    if (!live && vm.state != VM_STATE_STOPPED) {
        nb_error_set(err, NB_ERR_INVALID_STATE, "cannot back up a VM that is %s",
                     vm_state_to_string(vm.state));
        goto out;
    }
    char disk_pool[POOL_LIBVIRT_NAME_MAX + 1];
    PoolType disk_type;
    if (vm_disk_pool(core, &vm, disk_pool, &disk_type, err) < 0)
        goto out;
    bool rbd = disk_type == POOL_TYPE_RBD;
    if (disk_type != POOL_TYPE_DIR && !rbd) {
        nb_error_set(err, NB_ERR_BACKUP_UNSUPPORTED,
                     "VM '%s' has its root disk in a %s pool: not backed up in this version",
                     vm.name, pool_type_to_string(disk_type));
        goto out;
    }
    if (rbd && incremental) {
        nb_error_set(err, NB_ERR_BACKUP_UNSUPPORTED,
                     "VM '%s' has its root disk in an rbd pool (a raw RBD image): it has no dirty "
                     "bitmap to take an incremental backup from (libvirt keeps checkpoints in "
                     "qcow2 files); make a full backup",
                     vm.name);
        goto out;
    }
    if ((pool_key[0] ? pool_store_get(core->store, pool_key, &pool, err)
                     : pool_store_get_default(core->store, &pool, err)) < 0)
        goto out;
    explicit_bzero(pool.secret, sizeof(pool.secret));
    if (bk_pool_check(&pool, vm.host, err) < 0)
        goto out;
    if (incremental) {
        Backup parent;
        if (!live) {
            nb_error_set(err, NB_ERR_BACKUP_NO_BASE,
                         "VM '%s' is stopped: incremental backups need a running guest (its "
                         "dirty bitmap is read by QEMU); make a full backup",
                         vm.name);
            goto out;
        }
        int have = backup_store_last_checkpoint(core->store, vm.id, &parent, err);
        if (have < 0)
            goto out;
        if (have == 0) {
            nb_error_set(err, NB_ERR_BACKUP_NO_BASE,
                         "VM '%s' has no backup with a checkpoint to start from; make a full "
                         "backup first",
                         vm.name);
            goto out;
        }
        if (!streq(parent.pool_id, pool.id) || !streq(parent.host, vm.host)) {
            nb_error_set(err, NB_ERR_BACKUP_NO_BASE,
                         "the last backup of VM '%s' (%s) is in another pool or on another "
                         "host; an incremental backup goes beside it (or make a full one)",
                         vm.name, parent.id);
            goto out;
        }
        memcpy(b.parent_id, parent.id, sizeof(b.parent_id));
    }
    nb_uuid_generate(b.id);
    memcpy(b.vm_id, vm.id, sizeof(b.vm_id));
    snprintf(b.vm_name, sizeof(b.vm_name), "%s", vm.name);
    memcpy(b.project, vm.project, sizeof(b.project));
    memcpy(b.pool_id, pool.id, sizeof(b.pool_id));
    snprintf(b.host, sizeof(b.host), "%s", vm.host);
    b.kind = incremental ? BACKUP_KIND_INCREMENTAL : BACKUP_KIND_FULL;
    if (live && !rbd)
        backup_checkpoint_name(b.id, b.checkpoint);
    b.state = BACKUP_STATE_CREATING;
    backup_name_on_host(b.id, b.volume);
    nb_timestamp_now(b.created_at);
    Task task;
    task_new(&task, TASK_KIND_BACKUP_CREATE, vm.id, b.id);
    if (backup_store_create(core->store, &b, &task, err) < 0) {
        task_clear(&task);
        goto out;
    }
    log_info("vm %s (%s): %s backup %s queued as task %s", vm.id, vm.name,
             backup_kind_to_string(b.kind), b.id, task.id);
    task_engine_submit(core->tasks, task.id);
    *ret = b;
    *ret_task = task;
    r = 0;
out:
    vm_clear(&vm);
    return r;
}

/* libvirt 9.0 deletes a checkpoint from a running domain only, and a backup's delete does not
 * hold its VM (which could be started meanwhile): the backup of a VM that is shut off, whose
 * checkpoint is still on the VM, waits until the VM runs (INVALID_STATE). */
static int
bk_checkpoint_deletable(Core *core, const Backup *b, NbError **err)
{
    Vm vm;
    if (!b->checkpoint[0] || !b->vm_id[0])
        return 0;
    if (vm_store_get(core->store, NULL, b->vm_id, &vm, err) < 0) {
        if (!streq((*err)->code, NB_ERR_VM_NOT_FOUND))
            return -1;
        nb_error_free(TAKE_PTR(*err));
        return 0;
    }
    int r = 0;
    if (vm.state == VM_STATE_STOPPED || vm.state == VM_STATE_CRASHED)
        r = nb_error_set(err, NB_ERR_INVALID_STATE,
                         "VM '%s' is %s: backup %s's checkpoint is deleted from a running VM only "
                         "(libvirt); start the VM first, or delete the VM (its backups stay)",
                         vm.name, vm_state_to_string(vm.state), b->id);
    vm_clear(&vm);
    return r;
}

int
backup_ops_delete(Core *core, const char *scope, const char *id, Backup *ret, Task *ret_task,
                  NbError **err)
{
    Backup b;
    if (backup_store_get(core->store, scope, id, &b, err) < 0 ||
        bk_disk_in_use(core, &b, err) < 0 || bk_checkpoint_deletable(core, &b, err) < 0)
        return -1;
    Task task;
    task_new(&task, TASK_KIND_BACKUP_DELETE, b.id, NULL);
    if (backup_store_claim(core->store, b.id, BIT(BACKUP_STATE_READY) | BIT(BACKUP_STATE_ERROR),
                           BACKUP_STATE_DELETING, &task, err) < 0) {
        task_clear(&task);
        return -1;
    }
    log_info("backup %s: delete queued as task %s", b.id, task.id);
    task_engine_submit(core->tasks, task.id);
    b.state = BACKUP_STATE_DELETING;
    *ret = b;
    *ret_task = task;
    return 0;
}

int
backup_ops_restore(Core *core, const Principal *who, const char *id, json_t *body, Backup *ret,
                   Volume *ret_vol, Task *ret_task, NbError **err)
{
    char name[NB_NAME_MAX + 1], pool_key[NB_NAME_MAX + 1];
    Backup b;
    Pool pool;
    Volume v = {0};
    if (backup_restore_request_decode(body, name, pool_key, err) < 0 ||
        backup_store_get(core->store, principal_scope(who), id, &b, err) < 0)
        return -1;
    if (b.state != BACKUP_STATE_READY)
        return nb_error_set(err, NB_ERR_BACKUP_BUSY, "backup %s is %s", b.id,
                            backup_state_to_string(b.state));
    if (pool_store_get(core->store, pool_key[0] ? pool_key : b.pool_id, &pool, err) < 0)
        return -1;
    explicit_bzero(pool.secret, sizeof(pool.secret));
    if (bk_pool_check(&pool, b.host, err) < 0)
        return -1;
    nb_uuid_generate(v.id);
    memcpy(v.project, b.project, sizeof(v.project));
    memcpy(v.name, name, sizeof(v.name));
    memcpy(v.pool_id, pool.id, sizeof(v.pool_id));
    snprintf(v.host, sizeof(v.host), "%s", b.host);
    v.size_gib = (b.size_bytes + (1ull << 30) - 1) >> 30;
    if (v.size_gib == 0)
        v.size_gib = 1;
    snprintf(v.format, sizeof(v.format), "qcow2");
    v.state = VOLUME_STATE_CREATING;
    v.bus = VOLUME_BUS_VIRTIO;
    nb_timestamp_now(v.created_at);
    if (volume_store_insert(core->store, &v, err) < 0)
        return -1;
    Task task;
    task_new(&task, TASK_KIND_BACKUP_RESTORE, v.id, b.id);
    if (backup_store_claim(core->store, b.id, BIT(BACKUP_STATE_READY), BACKUP_STATE_RESTORING,
                           &task, err) < 0) {
        _cleanup_error_ NbError *e = NULL;
        if (volume_store_delete(core->store, v.id, &e) < 0)
            log_error("volume %s: %s", v.id, e->message);
        task_clear(&task);
        return -1;
    }
    log_info("backup %s: restore as volume %s (%s) queued as task %s", b.id, v.id, v.name, task.id);
    task_engine_submit(core->tasks, task.id);
    b.state = BACKUP_STATE_RESTORING;
    *ret = b;
    *ret_vol = v;
    *ret_task = task;
    return 0;
}

int
backup_ops_restore_vm(Core *core, const Principal *who, const char *id, json_t *body, Backup *ret,
                      Vm *ret_vm, Task *ret_task, NbError **err)
{
    Backup b;
    Pool pool;
    if (!json_is_object(body))
        return nb_error_set(err, NB_ERR_INVALID_REQUEST, "a JSON object is required");
    if (json_object_get(body, "pool"))
        return nb_error_set(err, NB_ERR_INVALID_REQUEST,
                            "a VM's root disk goes to the default pool: no 'pool' with as_vm");
    if (backup_store_get(core->store, principal_scope(who), id, &b, err) < 0)
        return -1;
    if (b.state != BACKUP_STATE_READY)
        return nb_error_set(err, NB_ERR_BACKUP_BUSY, "backup %s is %s", b.id,
                            backup_state_to_string(b.state));
    if (bk_pool(core, b.pool_id, &pool, err) < 0)
        return -1;
    /* The VM create's own body: what the caller gave, the backed-up VM's image and flavor
     * where not given (a deleted VM's must be given). */
    json_auto_t *vm_body = json_deep_copy(body);
    if (!vm_body)
        return nb_error_set(err, NB_ERR_INTERNAL, "out of memory");
    json_object_del(vm_body, "as_vm");
    Vm src;
    bool have_src = b.vm_id[0] && vm_store_get(core->store, NULL, b.vm_id, &src, NULL) == 0;
    if (have_src) {
        if (!json_object_get(vm_body, "image"))
            json_object_set_new(vm_body, "image", json_string(src.image_id));
        if (!json_object_get(vm_body, "flavor"))
            json_object_set_new(vm_body, "flavor", json_string(src.flavor_id));
        vm_clear(&src);
    } else if (!json_object_get(vm_body, "image") || !json_object_get(vm_body, "flavor")) {
        return nb_error_set(err, NB_ERR_INVALID_REQUEST,
                            "the backed-up VM is gone: give the new VM's image and flavor");
    }
    _cleanup_free_ char *params = vm_ops_disk_from_params(pool.libvirt_name, b.volume);
    if (!params)
        return nb_error_set(err, NB_ERR_INTERNAL, "out of memory");
    VmCreateHow how = {TASK_KIND_VM_CREATE, params, b.host};
    if (vm_ops_create_how(core, who, vm_body, &how, ret_vm, ret_task, err) < 0)
        return -1;
    log_info("backup %s: restore as VM %s (%s) queued as task %s", b.id, ret_vm->id, ret_vm->name,
             ret_task->id);
    *ret = b;
    return 0;
}

/* A vm.create that copies the backup's file (restore as a VM) has not ended: the file stays. */
static int
bk_disk_in_use(Core *core, const Backup *b, NbError **err)
{
    Task *list = NULL;
    size_t n = 0;
    if (task_store_list_unfinished(core->store, &list, &n, err) < 0)
        return -1;
    int r = 0;
    for (size_t i = 0; i < n && r == 0; i++)
        if (list[i].kind == TASK_KIND_VM_CREATE && list[i].params &&
            strstr(list[i].params, b->volume))
            r = nb_error_set(err, NB_ERR_BACKUP_BUSY,
                             "backup %s is being restored as a VM (task %s); retry when it has "
                             "finished",
                             b->id, list[i].id);
    for (size_t i = 0; i < n; i++)
        task_clear(&list[i]);
    free(list);
    return r;
}

int
backup_ops_vm_forget_checkpoints(Core *core, const Vm *vm, HvConn *hv, NbError **err)
{
    char domain[64];
    vm_domain_name(vm, domain);
    if (!hv)
        return backup_store_drop_checkpoints(core->store, vm->id, err);
    int n = hv_checkpoint_count(hv, domain, err);
    if (n < 0)
        return -1;
    /* libvirt 9.0 deletes checkpoints (their bitmaps in the qcow2 file) of a running domain
     * only: a stopped VM's domain runs paused for it (no vCPU runs; the caller's task holds
     * the VM) and is shut off again, also when a step run again after a crash finds it still
     * paused. */
    bool stopped = vm->state == VM_STATE_STOPPED;
    int r = 0;
    if (n > 0 && stopped) {
        r = hv_domain_start_paused(hv, domain, err);
        if (r == 0)
            log_info("vm %s: domain started paused to delete its %d checkpoint(s)", vm->id, n);
    }
    if (r == 0 && n > 0)
        r = hv_checkpoint_delete_all(hv, domain, err);
    if (stopped) {
        _cleanup_error_ NbError *e = NULL;
        if (hv_domain_destroy(hv, domain, r < 0 ? &e : err) < 0) {
            if (r == 0)
                return -1;
            log_error("vm %s: its domain stays paused: %s", vm->id, e->message);
        }
    }
    if (r < 0)
        return -1;
    return backup_store_drop_checkpoints(core->store, vm->id, err);
}
