/*
 * VM snapshots: the state of all of a VM's writable disks at one instant (its root disk and the
 * volumes attached to it), with its memory when asked for. No I/O.
 *
 * On the VM's host a snapshot is the libvirt internal snapshot "nimbus-snap-<id>" of the VM's
 * domain (qcow2 internal snapshots in each disk file, libvirt's metadata beside them); for a VM
 * on RBD, the RBD snapshot "<image>@nimbus-snap-<id>" of each of its disks. The
 * snapshot's state column is its lock while a task works on it.
 */
#pragma once

#include <jansson.h>
#include <stdbool.h>

#include "../util/error.h"
#include "../util/timeutil.h"
#include "../util/uuid.h"
#include "validate.h"

typedef enum SnapshotState {
    SNAPSHOT_STATE_CREATING,  /* its create task runs */
    SNAPSHOT_STATE_READY,     /* made; revert and delete are allowed */
    SNAPSHOT_STATE_REVERTING, /* a revert task runs */
    SNAPSHOT_STATE_DELETING,  /* its delete task runs */
    SNAPSHOT_STATE_ERROR,     /* a create or delete failed; only delete is allowed */
    _SNAPSHOT_STATE_MAX,
    _SNAPSHOT_STATE_INVALID = -1,
} SnapshotState;

const char *snapshot_state_to_string(SnapshotState s);
SnapshotState snapshot_state_from_string(const char *s);

#define SNAPSHOT_DESCRIPTION_MAX 255
#define SNAPSHOT_LIBVIRT_NAME_MAX 64 /* "nimbus-snap-" + uuid */

typedef struct Snapshot {
    char id[NB_UUID_STRLEN];
    char vm_id[NB_UUID_STRLEN];
    char project[NB_UUID_STRLEN]; /* the VM's */
    char name[NB_NAME_MAX + 1];   /* unique per VM */
    bool memory;                  /* a full system checkpoint: revert resumes the guest */
    char description[SNAPSHOT_DESCRIPTION_MAX + 1];
    SnapshotState state;
    char libvirt_name[SNAPSHOT_LIBVIRT_NAME_MAX + 1];
    char created_at[NB_TIMESTAMP_LEN];
} Snapshot;

/* Strict decode of {name, memory?, description?}: the name rules (INVALID_NAME), memory a
 * boolean, description a string of at most SNAPSHOT_DESCRIPTION_MAX bytes without control
 * characters (INVALID_REQUEST). */
int snapshot_create_request_decode(json_t *body, char name[NB_NAME_MAX + 1], bool *memory,
                                   char description[SNAPSHOT_DESCRIPTION_MAX + 1], NbError **err);
/* {id, name, vm, project, memory, description, state, created_at} */
json_t *snapshot_to_json(const Snapshot *s);
/* "nimbus-snap-<id>" into buf. */
void snapshot_libvirt_name(const char *id, char buf[SNAPSHOT_LIBVIRT_NAME_MAX + 1]);
