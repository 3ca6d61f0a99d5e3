/* Shared by vm_ops.c (lifecycle tasks) and vm_migrate.c (the migration task) only. */
#pragma once

#include "core.h"

/* One idempotent step of a VM task; hv is the connection to the VM's host when the task began. */
typedef int (*VmStep)(Core *core, Task *task, Vm *vm, HvConn *hv, NbError **err);

const char *vm_pool(const Core *core);
/* The VM's domain XML, with the volume paths of the pool on the host behind hv. */
int vm_build_domain_xml(Core *core, const Vm *vm, HvConn *hv, char **ret, NbError **err);
VmState vm_state_from_hv(HvDomainState st);

/* ---- vm_migrate.c: the steps of vm.migrate, and its ends ---- */
int vm_migrate_step_prepare(Core *core, Task *task, Vm *vm, HvConn *hv, NbError **err);
int vm_migrate_step_move(Core *core, Task *task, Vm *vm, HvConn *hv, NbError **err);
int vm_migrate_step_switch(Core *core, Task *task, Vm *vm, HvConn *hv, NbError **err);
int vm_migrate_step_cleanup(Core *core, Task *task, Vm *vm, HvConn *hv, NbError **err);
/* After the last step: the task succeeded, the VM's state read from its new host. */
void vm_migrate_finish(Core *core, Task *task, Vm *vm);
/* After a failure: the VM stays where its domain is, the destination's claim is dropped and its
 * copies removed. Returns the VM's state to record. */
int vm_migrate_rollback(Core *core, Task *task, Vm *vm);
