/*
 * VM snapshots: the API's operations and the three snapshot tasks (snapshot.create, .revert,
 * .delete; target_id: the VM, params: the snapshot's id). A snapshot task holds its VM like any
 * VM task (nothing else runs on the VM meanwhile) and the snapshot's state column, both taken in
 * one store transaction with the task's row. Snapshots are libvirt internal snapshots of the
 * VM's qcow2 disks, or, for a VM on RBD, one RBD snapshot of each of its disks, without memory
 * (docs/storage.md, "Snapshots").
 */
#pragma once

#include <jansson.h>

#include "core.h"

/* {name, memory?, description?}: a snapshot of the VM (scope: the API's lookup scope) queued.
 * The VM: running, paused or stopped (memory: running or paused), no task on it, every disk a
 * qcow2 file (a dir or netfs pool's volume), or every disk an RBD image (no memory then).
 * VM_NOT_FOUND, VM_BUSY (also: a volume task on it), INVALID_STATE, SNAPSHOT_UNSUPPORTED,
 * NAME_TAKEN, QUOTA_EXCEEDED, INVALID_NAME, INVALID_REQUEST. */
int snapshot_ops_create(Core *core, const char *scope, const char *vm_key, json_t *body,
                        Snapshot *ret, Task *ret_task, NbError **err);
/* The VM back to a ready snapshot: with memory the guest resumes where it was; without, the
 * VM keeps its power state and a running one boots again from the snapshot's disks. Refused
 * (the task fails, INVALID_STATE) when the VM's disks or NICs changed since the snapshot.
 * VM_NOT_FOUND, SNAPSHOT_NOT_FOUND, SNAPSHOT_BUSY, VM_BUSY, INVALID_STATE. */
int snapshot_ops_revert(Core *core, const char *scope, const char *vm_key, const char *snap_key,
                        json_t *body, Snapshot *ret, Task *ret_task, NbError **err);
/* A ready or error snapshot deleted (on the host, then its row). VM_NOT_FOUND,
 * SNAPSHOT_NOT_FOUND, SNAPSHOT_BUSY, VM_BUSY. */
int snapshot_ops_delete(Core *core, const char *scope, const char *vm_key, const char *snap_key,
                        Snapshot *ret, Task *ret_task, NbError **err);

/* INVALID_STATE when the VM has snapshots: libvirt does not carry internal snapshots' metadata
 * to the destination (the disks' qcow2 snapshots would be orphans there). A VM on RBD: 0 (its
 * snapshots are in the Ceph cluster). */
int snapshot_ops_vm_check_migrate(Core *core, const Vm *vm, NbError **err);
/* For a volume's attach to or detach from VM vm_id (what: "attaching volume 'x'"): INVALID_STATE
 * when the VM is on RBD and has snapshots (each covers the disks it has now); else 0. */
int snapshot_ops_vm_check_disks_change(Core *core, const char *vm_id, const char *what,
                                       NbError **err);

/* ---- the task handlers (task_handlers.c) ---- */
int snapshot_ops_step_count(TaskKind kind);
int64_t snapshot_ops_run_task(Core *core, Task *task, TaskRun *run);
