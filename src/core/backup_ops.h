/*
 * VM backups: the API's operations and the three backup tasks. backup.create holds its VM like
 * any VM task (target_id: the VM, params: the backup's id); backup.delete (target_id: the
 * backup) and backup.restore (target_id: the new volume, params: the backup's id) hold the
 * backup by its state column. docs/storage.md, "Backups".
 */
#pragma once

#include <jansson.h>

#include "core.h"

/* {vm, incremental?, pool?}: a backup of the VM's root disk queued. A running or paused VM:
 * libvirt's push-mode backup with a checkpoint (incremental: since the VM's last checkpoint,
 * into a file backed by that backup's file). A stopped VM: a full copy, no checkpoint
 * (incremental: BACKUP_NO_BASE). The pool: a dir pool the VM's host has (default: the default
 * pool). VM_NOT_FOUND, VM_BUSY, INVALID_STATE, POOL_NOT_FOUND, BACKUP_UNSUPPORTED,
 * BACKUP_NO_BASE, QUOTA_EXCEEDED, INVALID_REQUEST, INVALID_NAME. */
int backup_ops_create(Core *core, const Principal *who, json_t *body, Backup *ret, Task *ret_task,
                      NbError **err);
/* A ready or error backup deleted (its checkpoint on the VM, its file, its row).
 * BACKUP_NOT_FOUND, BACKUP_BUSY, BACKUP_IN_USE (a later incremental builds on it). */
int backup_ops_delete(Core *core, const char *scope, const char *id, Backup *ret, Task *ret_task,
                      NbError **err);
/* {name, pool?}: a new volume (in the backup's pool, or a dir pool given, on the backup's host)
 * whose content is the backed-up disk's (the chain flattened). BACKUP_NOT_FOUND, BACKUP_BUSY,
 * BACKUP_UNSUPPORTED, NAME_TAKEN, QUOTA_EXCEEDED, INVALID_NAME, INVALID_REQUEST. */
int backup_ops_restore(Core *core, const Principal *who, const char *id, json_t *body, Backup *ret,
                       Volume *ret_vol, Task *ret_task, NbError **err);

/* {as_vm: true, name, image?, flavor?, ...the fields of a VM create}: a new VM (POST /v1/vms,
 * quotas and all) on the backup's host whose root disk is a flattened copy of the backup (its
 * chain) instead of its image; image and flavor default to the backed-up VM's (required when
 * it is gone). The backup cannot be deleted until that create task has ended. BACKUP_NOT_FOUND,
 * BACKUP_BUSY, INVALID_REQUEST and vm_ops_create's codes. */
int backup_ops_restore_vm(Core *core, const Principal *who, const char *id, json_t *body,
                          Backup *ret, Vm *ret_vm, Task *ret_task, NbError **err);

/* Before a VM leaves its host (migration; libvirt does not carry checkpoints' metadata) or its
 * disks are reverted to a snapshot: its checkpoints deleted on hv and forgotten by its backups,
 * so that its next backup is full. A stopped VM's domain runs paused for the deletion (the
 * caller's task holds the VM). */
int backup_ops_vm_forget_checkpoints(Core *core, const Vm *vm, HvConn *hv, NbError **err);

/* ---- the task handlers (task_handlers.c) ---- */
int backup_ops_step_count(TaskKind kind);
int64_t backup_ops_run_task(Core *core, Task *task, TaskRun *run);
