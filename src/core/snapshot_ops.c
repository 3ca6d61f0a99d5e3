/*
 * VM snapshots. Every step is idempotent: a snapshot whose libvirt name exists counts as made,
 * the delete of an absent one is done, and a revert done twice ends as one. A failed create
 * takes away what it made (the row too); a failed revert leaves the snapshot ready and the VM
 * as libvirt has it; a failed delete leaves the snapshot in error (delete may be asked again).
 *
 * Two backends, chosen by the VM's root disk, which a VM keeps for life (its pool_id): qcow2
 * files (the default pool, dir pools) get libvirt internal snapshots; a VM on RBD (root disk in
 * an rbd pool, its volumes in rbd pools) gets one RBD snapshot "nimbus-snap-<id>" per disk,
 * taken by the rbd CLI on nimbusd's host while a running guest is paused (all disks at one
 * instant: crash-consistent), and a revert destroys the domain, rolls each disk back and starts
 * the same definition again. Steps that do not apply to a backend are no-ops.
 */
#include "snapshot_ops.h"

#include <stdlib.h>
#include <string.h>

#include "../util/log.h"
#include "../util/strutil.h"
#include "backup_ops.h"
#include "network_shaping.h"
#include "vm_ops_internal.h"
#include "vm_rbd.h"

#define BIT(s) (1u << (unsigned)(s))

/* The snapshot a task works on (its params), and the state it must be in. 0, or -1. */
static int
snap_of_task(Core *core, const Task *task, const Vm *vm, SnapshotState held, Snapshot *ret,
             NbError **err)
{
    if (!task->params)
        return nb_error_set(err, NB_ERR_INTERNAL, "the task names no snapshot");
    if (snapshot_store_get(core->store, NULL, vm->id, task->params, ret, err) < 0)
        return -1;
    if (ret->state != held)
        return nb_error_set(err, NB_ERR_SNAPSHOT_BUSY, "snapshot '%s' is %s, not %s", ret->name,
                            snapshot_state_to_string(ret->state), snapshot_state_to_string(held));
    return 0;
}

/* A VM on RBD whose guest should run (desired running) and is paused: resumed. */
static int
snap_rbd_resume(const Vm *vm, HvConn *hv, NbError **err)
{
    char domain[64];
    HvDomainState st = HV_DOMAIN_NONE;
    if (vm->desired != VM_POWER_RUNNING)
        return 0;
    vm_domain_name(vm, domain);
    if (hv_domain_get_state(hv, domain, &st, err) < 0)
        return -1;
    return st == HV_DOMAIN_PAUSED ? hv_domain_resume(hv, domain, err) : 0;
}

/* A VM on RBD whose guest should run or be paused (its desired state) and is off: started again
 * from its definition (paused again when it was). */
static int
snap_rbd_start(const Vm *vm, HvConn *hv, NbError **err)
{
    char domain[64];
    HvDomainState st = HV_DOMAIN_NONE;
    if (vm->desired != VM_POWER_RUNNING && vm->desired != VM_POWER_PAUSED)
        return 0;
    vm_domain_name(vm, domain);
    if (hv_domain_get_state(hv, domain, &st, err) < 0)
        return -1;
    if (st == HV_DOMAIN_SHUTOFF || st == HV_DOMAIN_CRASHED) {
        if (st == HV_DOMAIN_CRASHED && hv_domain_destroy(hv, domain, err) < 0)
            return -1;
        if (hv_domain_start(hv, domain, err) < 0)
            return -1;
        st = HV_DOMAIN_RUNNING;
    }
    if (vm->desired == VM_POWER_PAUSED && st == HV_DOMAIN_RUNNING)
        return hv_domain_suspend(hv, domain, err);
    return 0;
}

/* ---- the steps ---- */

/* On RBD, a running guest is paused: every disk's snapshot is then of one instant. */
static int
step_snap_pause(Core *core, Task *task, Vm *vm, HvConn *hv, TaskRun *run, NbError **err)
{
    char domain[64];
    HvDomainState st = HV_DOMAIN_NONE;
    int rbd = vm_disk_on_rbd(core, vm, err);
    if (rbd <= 0)
        return rbd;
    vm_domain_name(vm, domain);
    if (hv_domain_get_state(hv, domain, &st, err) < 0)
        return -1;
    return st == HV_DOMAIN_RUNNING ? hv_domain_suspend(hv, domain, err) : 0;
}

static int
step_snap_create(Core *core, Task *task, Vm *vm, HvConn *hv, TaskRun *run, NbError **err)
{
    Snapshot s;
    char domain[64];
    if (snap_of_task(core, task, vm, SNAPSHOT_STATE_CREATING, &s, err) < 0)
        return -1;
    int rbd = vm_disk_on_rbd(core, vm, err);
    if (rbd < 0)
        return -1;
    if (rbd)
        return vm_rbd_snap_disks(core, task->id, vm, "create", s.libvirt_name, err);
    vm_domain_name(vm, domain);
    return hv_snapshot_create(hv, domain, s.libvirt_name, s.description, err);
}

/* On RBD, the guest paused by the first step runs again (after a crash too: the restart goes on
 * from the step it was at). */
static int
step_snap_resume(Core *core, Task *task, Vm *vm, HvConn *hv, TaskRun *run, NbError **err)
{
    int rbd = vm_disk_on_rbd(core, vm, err);
    return rbd <= 0 ? rbd : snap_rbd_resume(vm, hv, err);
}

/* libvirt's revert puts back the definition kept with the snapshot: a volume attached or a NIC
 * added since would be dropped from the domain behind the store's back. */
static int
step_snap_check(Core *core, Task *task, Vm *vm, HvConn *hv, TaskRun *run, NbError **err)
{
    Snapshot s;
    char domain[64];
    if (snap_of_task(core, task, vm, SNAPSHOT_STATE_REVERTING, &s, err) < 0)
        return -1;
    int rbd = vm_disk_on_rbd(core, vm, err);
    if (rbd < 0)
        return -1;
    /* On RBD the disks cannot change while the VM has snapshots (volume_ops refuses attach and
     * detach): each disk must have the snapshot, checked before any is rolled back. */
    if (rbd)
        return vm_rbd_snap_disks(core, task->id, vm, "check", s.libvirt_name, err);
    vm_domain_name(vm, domain);
    int r = hv_snapshot_devices_match(hv, domain, s.libvirt_name, err);
    if (r < 0)
        return -1;
    if (r == 0)
        return nb_error_set(err, NB_ERR_INVALID_STATE,
                            "VM '%s' has other disks or NICs than when snapshot '%s' was taken; "
                            "a revert would bring the old set back (detach or attach to match "
                            "it first)",
                            vm->name, s.name);
    return 0;
}

/* On RBD, QEMU goes before its disks are rolled back (a rollback under it would change the
 * disks behind the guest's and librbd's caches); the start step brings it back. */
static int
step_snap_stop(Core *core, Task *task, Vm *vm, HvConn *hv, TaskRun *run, NbError **err)
{
    char domain[64];
    int rbd = vm_disk_on_rbd(core, vm, err);
    if (rbd <= 0)
        return rbd;
    vm_domain_name(vm, domain);
    return hv_domain_destroy(hv, domain, err);
}

static int
step_snap_revert(Core *core, Task *task, Vm *vm, HvConn *hv, TaskRun *run, NbError **err)
{
    Snapshot s;
    char domain[64];
    if (snap_of_task(core, task, vm, SNAPSHOT_STATE_REVERTING, &s, err) < 0)
        return -1;
    int rbd = vm_disk_on_rbd(core, vm, err);
    if (rbd < 0)
        return -1;
    vm_domain_name(vm, domain);
    /* The revert changes the disks behind the backup checkpoints' dirty bitmaps: they go, and
     * the VM's next backup is a full one (docs/storage.md, "Backups"). */
    if (backup_ops_vm_forget_checkpoints(core, vm, hv, err) < 0)
        return -1;
    if (rbd)
        return vm_rbd_snap_disks(core, task->id, vm, "rollback", s.libvirt_name, err);
    return hv_snapshot_revert(hv, domain, s.libvirt_name, s.memory, err);
}

/* On RBD, the VM runs (or is paused) again as it did before the revert, from its disks as
 * they were at the snapshot. */
static int
step_snap_start(Core *core, Task *task, Vm *vm, HvConn *hv, TaskRun *run, NbError **err)
{
    int rbd = vm_disk_on_rbd(core, vm, err);
    return rbd <= 0 ? rbd : snap_rbd_start(vm, hv, err);
}

static int
step_snap_delete(Core *core, Task *task, Vm *vm, HvConn *hv, TaskRun *run, NbError **err)
{
    Snapshot s;
    char domain[64];
    if (snap_of_task(core, task, vm, SNAPSHOT_STATE_DELETING, &s, err) < 0)
        return -1;
    int rbd = vm_disk_on_rbd(core, vm, err);
    if (rbd < 0)
        return -1;
    if (rbd)
        return vm_rbd_snap_disks(core, task->id, vm, "rm", s.libvirt_name, err);
    vm_domain_name(vm, domain);
    return hv_snapshot_delete(hv, domain, s.libvirt_name, err);
}

/* ---- ends ---- */

static void
snap_task_succeeded(Core *core, Task *task, int vm_state, int desired)
{
    _cleanup_error_ NbError *err = NULL;
    if (task_store_finish(core->store, task, TASK_STATE_SUCCEEDED, NULL, NULL, vm_state, desired,
                          NULL, &err) < 0)
        log_error("task %s: %s", task->id, err->message);
}

/* Each finish records the snapshot's end first, then the task's: a crash between the two runs
 * the finish again (the task has no step left), which finds the snapshot's end recorded. */
static void
create_finish(Core *core, Task *task, Vm *vm)
{
    _cleanup_error_ NbError *err = NULL;
    if (task->params &&
        snapshot_store_set_state(core->store, task->params,
                                 BIT(SNAPSHOT_STATE_CREATING) | BIT(SNAPSHOT_STATE_READY),
                                 SNAPSHOT_STATE_READY, &err) < 0)
        log_error("snapshot %s: %s", task->params, err->message);
    log_info("vm %s: snapshot %s made", vm->id, task->params ? task->params : "?");
    snap_task_succeeded(core, task, -1, -1);
}

static void
revert_finish(Core *core, Task *task, Vm *vm)
{
    _cleanup_error_ NbError *err = NULL;
    if (task->params &&
        snapshot_store_set_state(core->store, task->params,
                                 BIT(SNAPSHOT_STATE_REVERTING) | BIT(SNAPSHOT_STATE_READY),
                                 SNAPSHOT_STATE_READY, &err) < 0)
        log_error("snapshot %s: %s", task->params, err->message);
    int state = vm_ops_host_state(core, vm, NULL);
    int desired = state == VM_STATE_RUNNING   ? VM_POWER_RUNNING
                  : state == VM_STATE_PAUSED  ? VM_POWER_PAUSED
                  : state == VM_STATE_STOPPED ? VM_POWER_STOPPED
                                              : -1;
    /* A revert starts QEMU anew (its taps too) unless the VM ends stopped. */
    if (state == VM_STATE_RUNNING || state == VM_STATE_PAUSED)
        network_shaping_vm_running(core, vm, vm->host);
    log_info("vm %s: reverted to snapshot %s", vm->id, task->params ? task->params : "?");
    snap_task_succeeded(core, task, state, desired);
}

static void
delete_finish(Core *core, Task *task, Vm *vm)
{
    _cleanup_error_ NbError *err = NULL;
    if (task->params && snapshot_store_delete(core->store, task->params, &err) < 0 &&
        !streq(err->code, NB_ERR_SNAPSHOT_NOT_FOUND))
        log_error("snapshot %s: %s", task->params, err->message);
    snap_task_succeeded(core, task, -1, -1);
}

/* Nothing of a failed create stays: the libvirt snapshot (if it was made) and the row go; a
 * snapshot that could not be taken away stays, in error, for a delete to retry. */
static int
create_rollback(Core *core, Task *task, Vm *vm, HvConn *hv)
{
    _cleanup_error_ NbError *err = NULL;
    Snapshot s;
    if (!task->params || snapshot_store_get(core->store, NULL, vm->id, task->params, &s, &err) < 0)
        return vm_ops_host_state(core, vm, hv);
    if (s.state != SNAPSHOT_STATE_CREATING)
        return vm_ops_host_state(core, vm, hv); /* not this task's (any more) */
    char domain[64];
    vm_domain_name(vm, domain);
    int rbd = vm_disk_on_rbd(core, vm, &err);
    if (rbd > 0 && hv && snap_rbd_resume(vm, hv, &err) < 0) {
        log_error("vm %s: not resumed after a failed snapshot: %s", vm->id, err->message);
        nb_error_free(TAKE_PTR(err));
    }
    int gone = -1;
    if (rbd > 0)
        gone = vm_rbd_snap_disks(core, task->id, vm, "rm", s.libvirt_name, &err);
    else if (rbd == 0 && hv)
        gone = hv_snapshot_delete(hv, domain, s.libvirt_name, &err);
    if (gone < 0) {
        log_error("snapshot %s: may be left on VM %s's host or disks: %s", s.id, vm->id,
                  err ? err->message : "host down");
        nb_error_free(TAKE_PTR(err));
        if (snapshot_store_set_state(core->store, s.id, BIT(SNAPSHOT_STATE_CREATING),
                                     SNAPSHOT_STATE_ERROR, &err) < 0)
            log_error("snapshot %s: %s", s.id, err->message);
    } else if (snapshot_store_delete(core->store, s.id, &err) < 0) {
        log_error("snapshot %s: %s", s.id, err->message);
    }
    return vm_ops_host_state(core, vm, hv);
}

static int
revert_rollback(Core *core, Task *task, Vm *vm, HvConn *hv)
{
    _cleanup_error_ NbError *err = NULL;
    /* On RBD a revert cut short after the stop would leave the VM off: it runs again on its
     * disks as they are (the revert may be asked again). */
    if (hv && vm_disk_on_rbd(core, vm, &err) > 0 && snap_rbd_start(vm, hv, &err) < 0)
        log_error("vm %s: not started again after a failed revert: %s", vm->id, err->message);
    nb_error_free(TAKE_PTR(err));
    if (task->params &&
        snapshot_store_set_state(core->store, task->params, BIT(SNAPSHOT_STATE_REVERTING),
                                 SNAPSHOT_STATE_READY, &err) < 0)
        log_error("snapshot %s: %s", task->params, err->message);
    return vm_ops_host_state(core, vm, hv);
}

static int
delete_rollback(Core *core, Task *task, Vm *vm, HvConn *hv)
{
    _cleanup_error_ NbError *err = NULL;
    if (task->params &&
        snapshot_store_set_state(core->store, task->params, BIT(SNAPSHOT_STATE_DELETING),
                                 SNAPSHOT_STATE_ERROR, &err) < 0)
        log_error("snapshot %s: %s", task->params, err->message);
    return vm_ops_host_state(core, vm, hv);
}

static const VmStep create_steps[] = {step_snap_pause, step_snap_create, step_snap_resume};
static const char *const create_names[] = {"pause", "snapshot", "resume"};
static const VmStep revert_steps[] = {step_snap_check, step_snap_stop, step_snap_revert,
                                      step_snap_start};
static const char *const revert_names[] = {"check", "stop", "revert", "start"};
static const VmStep delete_steps[] = {step_snap_delete};
static const char *const delete_names[] = {"delete"};

static const VmTaskDef snap_create_def = {
    .steps = create_steps,
    .n_steps = (int)ELEMENTSOF(create_steps),
    .step_names = create_names,
    .state_on_claim = -1,
    .finish = create_finish,
    .rollback = create_rollback,
};
static const VmTaskDef snap_revert_def = {
    .steps = revert_steps,
    .n_steps = (int)ELEMENTSOF(revert_steps),
    .step_names = revert_names,
    .state_on_claim = -1,
    .finish = revert_finish,
    .rollback = revert_rollback,
};
static const VmTaskDef snap_delete_def = {
    .steps = delete_steps,
    .n_steps = (int)ELEMENTSOF(delete_steps),
    .step_names = delete_names,
    .state_on_claim = -1,
    .finish = delete_finish,
    .rollback = delete_rollback,
};

static const VmTaskDef *
snap_task_def(TaskKind kind)
{
    switch (kind) {
    case TASK_KIND_SNAPSHOT_CREATE:
        return &snap_create_def;
    case TASK_KIND_SNAPSHOT_REVERT:
        return &snap_revert_def;
    case TASK_KIND_SNAPSHOT_DELETE:
        return &snap_delete_def;
    default:
        return NULL;
    }
}

int
snapshot_ops_step_count(TaskKind kind)
{
    const VmTaskDef *def = snap_task_def(kind);
    return def ? def->n_steps : 0;
}

int64_t
snapshot_ops_run_task(Core *core, Task *task, TaskRun *run)
{
    const VmTaskDef *def = snap_task_def(task->kind);
    if (!def) {
        _cleanup_error_ NbError *err = NULL;
        task_store_finish(core->store, task, TASK_STATE_FAILED, NB_ERR_INTERNAL,
                          "not a snapshot task", -1, -1, NULL, &err);
        return TASK_RUN_DONE;
    }
    return vm_ops_task_run(core, task, run, def);
}

/* ---- the API's operations ---- */

/* The VM for a snapshot task: in scope, no task on it. */
static int
snap_vm_get(Core *core, const char *scope, const char *vm_key, Vm *ret, NbError **err)
{
    if (vm_store_get(core->store, scope, vm_key, ret, err) < 0)
        return -1;
    if (ret->task_id[0]) {
        vm_clear(ret);
        return nb_error_set(err, NB_ERR_VM_BUSY,
                            "another task is working on this VM; retry when it has finished");
    }
    return 0;
}

/* Every disk of the VM can have a snapshot of one backend: its root disk is a qcow2 file (the
 * default pool or a dir pool) and so are its volumes (dir and netfs pools), or its root disk is
 * an RBD image and so are its volumes (rbd pools), without memory. */
static int
snap_vm_disks_check(Core *core, const Vm *vm, bool memory, NbError **err)
{
    Volume *vols = NULL;
    size_t n = 0;
    char root_pool[POOL_LIBVIRT_NAME_MAX + 1];
    PoolType root_type;
    if (vm_disk_pool(core, vm, root_pool, &root_type, err) < 0)
        return -1;
    bool rbd = root_type == POOL_TYPE_RBD;
    if (rbd && memory)
        return nb_error_set(err, NB_ERR_SNAPSHOT_UNSUPPORTED,
                            "VM '%s' has its disks on RBD: its snapshot is one RBD snapshot per "
                            "disk, which holds no memory (libvirt keeps a guest's memory only in "
                            "qcow2 files or in a state file on one host); omit memory (a snapshot "
                            "of a running VM on RBD is crash-consistent)",
                            vm->name);
    if (volume_store_list(core->store, NULL, vm->id, NULL, &vols, &n, err) < 0)
        return -1;
    int r = 0;
    for (size_t i = 0; i < n && r == 0; i++) {
        Pool pool;
        if (vols[i].state == VOLUME_STATE_ATTACHING || vols[i].state == VOLUME_STATE_DETACHING) {
            r = nb_error_set(err, NB_ERR_VM_BUSY,
                             "volume '%s' of VM '%s' is %s; retry when its task has finished",
                             vols[i].name, vm->name, volume_state_to_string(vols[i].state));
        } else if (pool_store_get(core->store, vols[i].pool_id, &pool, err) < 0) {
            r = -1;
        } else if (rbd && pool.type != POOL_TYPE_RBD) {
            r = nb_error_set(err, NB_ERR_SNAPSHOT_UNSUPPORTED,
                             "volume '%s' of VM '%s' is in %s pool '%s' and its root disk on "
                             "RBD: a VM snapshot covers RBD images only or qcow2 files only "
                             "(detach the volume first)",
                             vols[i].name, vm->name, pool_type_to_string(pool.type), pool.name);
        } else if (!rbd && ((pool.type != POOL_TYPE_DIR && pool.type != POOL_TYPE_NETFS) ||
                            !streq(vols[i].format, "qcow2"))) {
            r = nb_error_set(err, NB_ERR_SNAPSHOT_UNSUPPORTED,
                             "volume '%s' of VM '%s' is in %s pool '%s' and its root disk a qcow2 "
                             "file: a VM snapshot covers qcow2 files only (dir and netfs pools) "
                             "or RBD images only (detach the volume first)",
                             vols[i].name, vm->name, pool_type_to_string(pool.type), pool.name);
        }
        explicit_bzero(pool.secret, sizeof(pool.secret));
    }
    volume_list_free(vols, n);
    return r;
}

int
snapshot_ops_create(Core *core, const char *scope, const char *vm_key, json_t *body, Snapshot *ret,
                    Task *ret_task, NbError **err)
{
    Snapshot s = {0};
    Vm vm;
    if (snapshot_create_request_decode(body, s.name, &s.memory, s.description, err) < 0 ||
        snap_vm_get(core, scope, vm_key, &vm, err) < 0)
        return -1;
    int r = -1;
    if (vm.state != VM_STATE_RUNNING && vm.state != VM_STATE_PAUSED &&
        vm.state != VM_STATE_STOPPED) {
        nb_error_set(err, NB_ERR_INVALID_STATE, "cannot snapshot a VM that is %s",
                     vm_state_to_string(vm.state));
        goto out;
    }
    if (s.memory && vm.state == VM_STATE_STOPPED) {
        nb_error_set(err, NB_ERR_INVALID_STATE,
                     "VM '%s' is stopped: it has no memory to snapshot (omit memory)", vm.name);
        goto out;
    }
    if (snap_vm_disks_check(core, &vm, s.memory, err) < 0)
        goto out;
    nb_uuid_generate(s.id);
    memcpy(s.vm_id, vm.id, sizeof(s.vm_id));
    memcpy(s.project, vm.project, sizeof(s.project));
    s.state = SNAPSHOT_STATE_CREATING;
    snapshot_libvirt_name(s.id, s.libvirt_name);
    nb_timestamp_now(s.created_at);
    Task task;
    task_new(&task, TASK_KIND_SNAPSHOT_CREATE, vm.id, s.id);
    if (snapshot_store_create(core->store, &s, &task, err) < 0) {
        task_clear(&task);
        goto out;
    }
    log_info("vm %s (%s): snapshot %s (%s%s) queued as task %s", vm.id, vm.name, s.id, s.name,
             s.memory ? ", with memory" : "", task.id);
    task_engine_submit(core->tasks, task.id);
    *ret = s;
    *ret_task = task;
    r = 0;
out:
    vm_clear(&vm);
    return r;
}

/* A change of an existing snapshot: the snapshot from a state in from to `to`, the VM held. */
static int
snap_change(Core *core, const char *scope, const char *vm_key, const char *snap_key, TaskKind kind,
            unsigned from, SnapshotState to, Snapshot *ret, Task *ret_task, NbError **err)
{
    Vm vm;
    Snapshot s;
    if (vm_store_get(core->store, scope, vm_key, &vm, err) < 0)
        return -1;
    int r = -1;
    if (snapshot_store_get(core->store, NULL, vm.id, snap_key, &s, err) < 0)
        goto out;
    if (!(from & BIT(s.state))) {
        nb_error_set(err, NB_ERR_SNAPSHOT_BUSY, "snapshot '%s' is %s", s.name,
                     snapshot_state_to_string(s.state));
        goto out;
    }
    if (vm.task_id[0]) {
        nb_error_set(err, NB_ERR_VM_BUSY,
                     "another task is working on this VM; retry when it has finished");
        goto out;
    }
    if (kind == TASK_KIND_SNAPSHOT_REVERT && vm.state != VM_STATE_RUNNING &&
        vm.state != VM_STATE_PAUSED && vm.state != VM_STATE_STOPPED) {
        nb_error_set(err, NB_ERR_INVALID_STATE, "cannot revert a VM that is %s",
                     vm_state_to_string(vm.state));
        goto out;
    }
    Task task;
    task_new(&task, kind, vm.id, s.id);
    if (snapshot_store_claim(core->store, s.id, from, to, &task, err) < 0) {
        task_clear(&task);
        goto out;
    }
    log_info("vm %s (%s): %s of snapshot %s (%s) queued as task %s", vm.id, vm.name,
             task_kind_to_string(kind), s.id, s.name, task.id);
    task_engine_submit(core->tasks, task.id);
    s.state = to;
    *ret = s;
    *ret_task = task;
    r = 0;
out:
    vm_clear(&vm);
    return r;
}

int
snapshot_ops_revert(Core *core, const char *scope, const char *vm_key, const char *snap_key,
                    json_t *body, Snapshot *ret, Task *ret_task, NbError **err)
{
    if (body && (!json_is_object(body) || json_object_size(body) > 0))
        return nb_error_set(err, NB_ERR_INVALID_REQUEST, "a revert takes no body");
    return snap_change(core, scope, vm_key, snap_key, TASK_KIND_SNAPSHOT_REVERT,
                       BIT(SNAPSHOT_STATE_READY), SNAPSHOT_STATE_REVERTING, ret, ret_task, err);
}

int
snapshot_ops_delete(Core *core, const char *scope, const char *vm_key, const char *snap_key,
                    Snapshot *ret, Task *ret_task, NbError **err)
{
    return snap_change(core, scope, vm_key, snap_key, TASK_KIND_SNAPSHOT_DELETE,
                       BIT(SNAPSHOT_STATE_READY) | BIT(SNAPSHOT_STATE_ERROR),
                       SNAPSHOT_STATE_DELETING, ret, ret_task, err);
}

int
snapshot_ops_vm_check_migrate(Core *core, const Vm *vm, NbError **err)
{
    Snapshot *list = NULL;
    size_t n = 0;
    /* RBD snapshots are in the Ceph cluster, which every host of the pool reaches. */
    int rbd = vm_disk_on_rbd(core, vm, err);
    if (rbd != 0)
        return rbd < 0 ? -1 : 0;
    if (snapshot_store_list(core->store, NULL, vm->id, &list, &n, err) < 0)
        return -1;
    snapshot_list_free(list, n);
    if (n > 0)
        return nb_error_set(err, NB_ERR_INVALID_STATE,
                            "VM '%s' has %zu snapshot(s), which libvirt does not carry to another "
                            "host (internal snapshots' metadata stays behind); delete its "
                            "snapshots first",
                            vm->name, n);
    return 0;
}

int
snapshot_ops_vm_check_disks_change(Core *core, const char *vm_id, const char *what, NbError **err)
{
    Vm vm;
    Snapshot *list = NULL;
    size_t n = 0;
    if (vm_store_get(core->store, NULL, vm_id, &vm, err) < 0)
        return -1;
    int r = vm_disk_on_rbd(core, &vm, err);
    if (r > 0) {
        r = snapshot_store_list(core->store, NULL, vm.id, &list, &n, err);
        snapshot_list_free(list, n);
        if (r == 0 && n > 0)
            r = nb_error_set(err, NB_ERR_INVALID_STATE,
                             "VM '%s' has %zu snapshot(s) on RBD, each one RBD snapshot of every "
                             "disk it has now: %s would leave them incomplete; delete the VM's "
                             "snapshots first",
                             vm.name, n, what);
    }
    vm_clear(&vm);
    return r < 0 ? -1 : 0;
}
