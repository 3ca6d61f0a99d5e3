/*
 * VM clones (vm.clone: a vm.create whose disk step copies the source's root disk) and images
 * made from a VM's root disk (image.from-vm: a task on the source VM). A running source is
 * copied without stopping it, by libvirt's backup API (push mode); a stopped one by libvirt's
 * volume copy (qemu-img convert, which flattens the backing chain). docs/storage.md, "Clones and
 * images from VMs".
 */
#pragma once

#include <jansson.h>

#include "core.h"

/* POST /v1/vms/{key}/clone {name, linked?, host?}: a new VM with the source's flavor, image,
 * networks (new ports: new MACs and addresses), security groups, labels and user-data, a new
 * id (the guest's instance-id) and hostname from name, on the source's host, in the source's
 * project; its root disk a full copy of the source's, or with linked an overlay on the same
 * image holding a copy of the source's own top layer. Volumes are not cloned. VM_NOT_FOUND,
 * VM_BUSY, INVALID_STATE, INVALID_REQUEST, and vm create's errors (NAME_TAKEN, QUOTA_EXCEEDED). */
int clone_ops_vm_clone(Core *core, const Principal *who, const char *scope, const char *key,
                       json_t *body, Vm *ret_vm, Task *ret_task, NbError **err);

/* POST /v1/images {name, from_vm}: an image of the caller's project (state uploading until the
 * task ends, then active) holding the VM's root disk flattened (qcow2). vm_scope: the API's
 * lookup scope for the VM. VM_NOT_FOUND, VM_BUSY, INVALID_STATE, NAME_TAKEN, QUOTA_EXCEEDED. */
int clone_ops_image_from_vm(Core *core, const Principal *who, const char *vm_scope, json_t *body,
                            Image *ret_img, Task *ret_task, NbError **err);

/* vm.clone's disk step (vm_ops.c's create steps): the new VM's root disk from its source. */
int clone_ops_disk_step(Core *core, Task *task, Vm *vm, HvConn *hv, TaskRun *run, NbError **err);
/* A failed clone's: stops a backup job of the source still writing, removes the scratch file. */
void clone_ops_disk_cleanup(Core *core, const Task *task, const Vm *vm);

/* ---- the image.from-vm task (task_handlers.c) ---- */
int clone_ops_step_count(TaskKind kind);
int64_t clone_ops_run_task(Core *core, Task *task, TaskRun *run);
