/*
 * Volume snapshots (docs/storage.md, "Volume snapshots"): the API's operations and the two tasks
 * (volume.snapshot-create, volume.snapshot-delete; target_id: the snapshot). The snapshot's state
 * column is its lock, taken with its task's row in one transaction.
 *
 * rbd pools: an RBD snapshot of the volume's image, taken by the `rbd` CLI on nimbusd's host
 * (the key in a 0600 file of nimbusd's, never argv), live while a running guest writes the
 * volume (crash-consistent: what a power cut would leave). A volume made from it is an RBD
 * clone (copy-on-write) of the protected snapshot; the snapshot is not deleted while a clone
 * exists (SNAPSHOT_HAS_CLONES).
 * dir, netfs and logical pools: a full copy made by libvirt (virStorageVolCreateXMLFrom) into
 * the hidden volume "nimbus-vsnap-<id>" beside the volume, while the volume is detached (an
 * attach waits for it: VOLUME_BUSY); a volume made from it is another full copy.
 * iscsi pools: SNAPSHOT_UNSUPPORTED.
 */
#pragma once

#include <jansson.h>

#include "core.h"

/* {name}: a snapshot of the volume (scope: the API's lookup scope). SNAPSHOT_UNSUPPORTED (iscsi
 * pool), VOLUME_IN_USE (attached, in a pool where a snapshot is a copy), VOLUME_BUSY,
 * INVALID_STATE (volume in error), NAME_TAKEN, QUOTA_EXCEEDED (snapshots, shared with the VM
 * snapshots), INVALID_NAME, INVALID_REQUEST. */
int volume_snapshot_ops_create(Core *core, const char *scope, const char *volume_key, json_t *body,
                               VolumeSnapshot *ret, Task *ret_task, NbError **err);
/* Ready or error snapshots only: SNAPSHOT_BUSY, SNAPSHOT_HAS_CLONES, SNAPSHOT_NOT_FOUND. */
int volume_snapshot_ops_delete(Core *core, const char *scope, const char *volume_key,
                               const char *snap_key, VolumeSnapshot *ret, Task *ret_task,
                               NbError **err);

/* ---- for volume_ops.c: volumes made from a snapshot ---- */

/* ref: a snapshot's id, or "<volume>/<snapshot>" (names or ids), within project (another
 * project's is not found): SNAPSHOT_NOT_FOUND, VOLUME_NOT_FOUND. */
int volume_snapshot_ops_resolve(Core *core, const char *project, const char *ref,
                                VolumeSnapshot *ret, NbError **err);
/* The create step of v (v->source_snapshot set) in pool through hv: an RBD clone of the
 * snapshot (protected first) seen by libvirt after a refresh, or a full copy of the snapshot's
 * volume. Idempotent. */
int volume_snapshot_ops_make_volume(Core *core, const Task *task, const Volume *v, const Pool *pool,
                                    HvConn *hv, NbError **err);

/* ---- the task handlers (task_handlers.c) ---- */
int volume_snapshot_ops_step_count(TaskKind kind);
int64_t volume_snapshot_ops_run_task(Core *core, Task *task, TaskRun *run);
