/* Shared by vm_ops.c (lifecycle tasks, and the runner of every VM task) and vm_migrate.c (the
 * migration task) only. */
#pragma once

#include "core.h"

/* One idempotent step of a VM task; hv is the connection to the VM's host when the turn began.
 * Returns -1 (failed, *err set), 0 (done: the next step follows), or a delay in ms > 0 after
 * which to run the same step again (a wait: it keeps what it needs in run or in the journal). */
typedef int (*VmStep)(Core *core, Task *task, Vm *vm, HvConn *hv, TaskRun *run, NbError **err);

/* What a kind of VM task is: its steps and what it does to the VM's record. */
typedef struct VmTaskDef {
    const VmStep *steps;
    int n_steps;
    /* n_steps fixed names ("create_disk"): the step label of nimbus_task_step_duration_seconds. */
    const char *const *step_names;
    VmState state_on_claim; /* -1: unchanged */
    VmPower desired;
    VmState state_on_success;
    bool own_conns; /* the steps connect to the hosts they need: the VM's host is not checked */
    /* After the last step, instead of recording state_on_success (NULL: that). */
    void (*finish)(Core *core, Task *task, Vm *vm);
    /* After a failure: undoes what it must and returns the VM's state to record, -1: unchanged
     * (NULL: the state read from the VM's host). */
    int (*rollback)(Core *core, Task *task, Vm *vm, HvConn *hv);
} VmTaskDef;

/* Runs a VM task by its definition: the task handler's body for every VM kind. */
int64_t vm_ops_task_run(Core *core, Task *task, TaskRun *run, const VmTaskDef *def);

/* How long a step waiting for something outside its control (a copy another task makes, a host
 * not reached yet) sleeps before it looks again: a quarter of its wait so far (since_ms,
 * monotonic), from 250 ms to 5 s, so that many waiting tasks cost little. */
int vm_ops_wait_ms(uint64_t since_ms);
/* vm_ops_wait_ms for a step whose wait began at its first look (run->wait_since_ms, set now if
 * unset). */
int vm_ops_wait(TaskRun *run);

const char *vm_ops_pool(const Core *core);
/* The VM's domain XML, with the volume paths of the pool on the host behind hv. */
int vm_ops_build_domain_xml(Core *core, const Vm *vm, HvConn *hv, char **ret, NbError **err);
VmState vm_ops_state_from_hv(HvDomainState st);
/* The VM's state as its host has it (-1: unknown), for a task's end; hv NULL: the host's
 * connection is taken (and given back) here. */
int vm_ops_host_state(Core *core, const Vm *vm, HvConn *hv);

/* How vm_ops_create_how makes a VM: the task's kind (TASK_KIND_VM_CREATE, or TASK_KIND_VM_CLONE
 * whose disk step is clone_ops'), the task's params (JSON text, NULL: none) and the host it is
 * put on whoever asks (NULL: as the body says, host only for admins, else the scheduler's). */
typedef struct VmCreateHow {
    TaskKind kind;
    const char *params;
    const char *host;
} VmCreateHow;

/* A VM inserted and queued like POST /v1/vms (body: the same fields, validated, quota-checked
 * and placed the same way: VM_NOT_FOUND..., QUOTA_EXCEEDED, NAME_TAKEN, NO_VALID_HOST), its task
 * made as how says. The returned VM and task are the stored rows at that moment. */
int vm_ops_create_how(Core *core, const Principal *who, json_t *body, const VmCreateHow *how,
                      Vm *ret_vm, Task *ret_task, NbError **err);

/* The params of a vm.create whose root disk is made from a prepared disk instead of the image:
 * a flattened qcow2 copy (libvirt's virStorageVolCreateXMLFrom, qemu-img convert) of volume in
 * the libvirt pool `pool` of the VM's host, grown to the flavor's disk. Give the VM that host
 * (VmCreateHow.host) and keep the volume until the task has ended. NULL: out of memory. Use:
 *     _cleanup_free_ char *p = vm_ops_disk_from_params(pool, vol);
 *     VmCreateHow how = {TASK_KIND_VM_CREATE, p, host};
 *     vm_ops_create_how(core, who, body, &how, &vm, &task, &err);
 * A failed create is started again as a plain create (from its image): delete it instead. */
char *vm_ops_disk_from_params(const char *pool, const char *volume);
