/*
 * Volumes: the API's operations and the five volume tasks (volume.create, .attach, .detach,
 * .resize, .delete; target_id: the volume). The volume's state column is its lock: an operation
 * takes it in the store (creating, attaching, detaching, deleting) before its task is queued,
 * and the task gives it back when it ends, rolled back or not. A resize holds no state: it is
 * recorded (and counted against the quota) at once, and its task makes the host agree.
 */
#pragma once

#include <jansson.h>

#include "core.h"

/* Decodes {name, size_gib, pool?, host?, image?, from_snapshot?} and queues the volume's creation
 * in who's project. A local pool's volume lives on the request's host (up), the pool's own host, or
 * the connected host whose pool has the most free space. From an image (the project's, active): a
 * full copy, grown to size_gib. From a snapshot (the project's, ready): in its pool and host, an
 * RBD clone or a full copy (volume_snapshot_ops.h), grown to size_gib; SNAPSHOT_NOT_FOUND,
 * SNAPSHOT_BUSY. VOLUME_INVALID_SIZE (also: smaller than the image or snapshot), POOL_NOT_FOUND,
 * POOL_UNAVAILABLE, IMAGE_NOT_FOUND, IMAGE_NOT_ACTIVE, HOST_NOT_FOUND, HOST_DOWN, NAME_TAKEN,
 * QUOTA_EXCEEDED, INVALID_REQUEST. */
int volume_ops_create(Core *core, const Principal *who, json_t *body, Volume *ret, Task *ret_task,
                      NbError **err);
/* scope: the API's lookup scope. Available or error volumes only: VOLUME_IN_USE (attached),
 * VOLUME_BUSY. */
int volume_ops_delete(Core *core, const char *scope, const char *id_or_name, Volume *ret,
                      Task *ret_task, NbError **err);
/* {vm, bus?}: the VM (the volume's project's, running, stopped or paused, no task on it) gets
 * the volume as its next free target. VOLUME_IN_USE, VOLUME_BUSY, VOLUME_NOT_REACHABLE (local
 * pool, VM on another host), TOO_MANY_VOLUMES, VM_NOT_FOUND, VM_BUSY, INVALID_STATE. */
int volume_ops_attach(Core *core, const char *scope, const char *id_or_name, json_t *body,
                      Volume *ret, Task *ret_task, NbError **err);
/* {} or {vm}: VOLUME_NOT_ATTACHED (also: attached to another VM than vm), VOLUME_BUSY. */
int volume_ops_detach(Core *core, const char *scope, const char *id_or_name, json_t *body,
                      Volume *ret, Task *ret_task, NbError **err);
/* {size_gib}: grow only (VOLUME_SHRINK), online when attached to a running VM. VOLUME_BUSY,
 * QUOTA_EXCEEDED, VOLUME_INVALID_SIZE. */
int volume_ops_resize(Core *core, const char *scope, const char *id_or_name, json_t *body,
                      Volume *ret, Task *ret_task, NbError **err);

/* The host where the libvirt work on a volume of pool_id (on host, "" in a shared pool) happens:
 * host, else one up host where the pool is active, else the daemon's own. */
void volume_ops_work_host(Core *core, const char *pool_id, const char *host,
                          char out[NB_NAME_MAX + 1]);

/* ---- for the VM tasks ---- */

/* The <disk> elements of the VM's attached volumes as the domain on the host behind hv has them
 * (concatenated; "" when none): a domain defined again from the store keeps its volumes. */
int volume_ops_vm_disks_xml(Core *core, const Vm *vm, HvConn *hv, char **ret, NbError **err);
/* INVALID_STATE when the VM has a volume in a local pool (it cannot follow the VM in this phase)
 * or a volume task is under way on it. */
int volume_ops_vm_check_migrate(Core *core, const Vm *vm, NbError **err);

/* At start, once the task engine runs: a volume left claimed (creating, attaching, detaching,
 * deleting) by a daemon killed before its task was recorded gets that task again. */
void volume_ops_recover(Core *core);

/* ---- the task handlers (task_handlers.c) ---- */
int volume_ops_step_count(TaskKind kind);
int64_t volume_ops_run_task(Core *core, Task *task, TaskRun *run);
