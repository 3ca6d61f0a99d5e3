/*
 * VM backups: a point-in-time copy of a VM's root disk in a pool, full or incremental. No I/O.
 *
 * On the host a backup is the qcow2 volume "nimbus-backup-<id>.qcow2" of its pool's libvirt
 * pool (a dir pool on the VM's host). An incremental backup's file has the previous backup's
 * file as its backing file: the chain read through is the disk at backup time. A backup of a
 * running VM also makes the libvirt checkpoint "nimbus-ckpt-<id>" (a dirty bitmap in the disk)
 * that the next incremental backup starts from. A backup outlives its VM (vm_id cleared).
 */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "../util/error.h"
#include "../util/timeutil.h"
#include "../util/uuid.h"
#include "validate.h"

typedef enum BackupState {
    BACKUP_STATE_CREATING,  /* its create task runs */
    BACKUP_STATE_READY,     /* complete: restore and delete are allowed */
    BACKUP_STATE_RESTORING, /* a restore task reads it */
    BACKUP_STATE_DELETING,  /* its delete task runs */
    BACKUP_STATE_ERROR,     /* a delete failed; only delete is allowed */
    _BACKUP_STATE_MAX,
    _BACKUP_STATE_INVALID = -1,
} BackupState;

const char *backup_state_to_string(BackupState s);
BackupState backup_state_from_string(const char *s);

typedef enum BackupKind {
    BACKUP_KIND_FULL,
    BACKUP_KIND_INCREMENTAL,
    _BACKUP_KIND_MAX,
    _BACKUP_KIND_INVALID = -1,
} BackupKind;

const char *backup_kind_to_string(BackupKind k);
BackupKind backup_kind_from_string(const char *s);

#define BACKUP_NAME_ON_HOST_MAX 72 /* "nimbus-backup-" + uuid + ".qcow2" */
#define BACKUP_CHECKPOINT_MAX 64   /* "nimbus-ckpt-" + uuid */

typedef struct Backup {
    char id[NB_UUID_STRLEN];
    char vm_id[NB_UUID_STRLEN];    /* "" once the VM is deleted */
    char vm_name[NB_NAME_MAX + 1]; /* the VM's name at backup time */
    char project[NB_UUID_STRLEN];
    char pool_id[NB_UUID_STRLEN];
    char host[NB_NAME_MAX + 1];     /* where its file is (the VM's host then) */
    char parent_id[NB_UUID_STRLEN]; /* incremental: the backup it builds on; "" when full */
    BackupKind kind;
    char checkpoint[BACKUP_CHECKPOINT_MAX + 1]; /* "" when none was made (a stopped VM) */
    BackupState state;
    char volume[BACKUP_NAME_ON_HOST_MAX + 1]; /* its file's volume name in the pool */
    uint64_t size_bytes;                      /* the disk's virtual size */
    uint64_t data_bytes;                      /* bytes the backup job copied */
    double mbps;                              /* data_bytes / duration, MB/s (10^6) */
    char created_at[NB_TIMESTAMP_LEN];
    char finished_at[NB_TIMESTAMP_LEN]; /* "" while creating */
} Backup;

/* Strict decode of {vm, incremental?, pool?}: vm and pool by id or name (the name rules),
 * incremental a boolean. INVALID_REQUEST, INVALID_NAME. pool "" when absent. */
int backup_create_request_decode(json_t *body, char vm[NB_NAME_MAX + 1], bool *incremental,
                                 char pool[NB_NAME_MAX + 1], NbError **err);
/* {name, pool?, as_vm?: false}: the new volume's name and pool ("" when absent). (as_vm true
 * is a VM create's body: backup_ops_restore_vm.) */
int backup_restore_request_decode(json_t *body, char name[NB_NAME_MAX + 1],
                                  char pool[NB_NAME_MAX + 1], NbError **err);
/* {id, vm, vm_name, project, pool, host, parent, kind, checkpoint, state, volume, size_bytes,
 *  data_bytes, mbps, created_at, finished_at}; vm, parent, checkpoint, finished_at null when
 *  empty. */
json_t *backup_to_json(const Backup *b);
void backup_name_on_host(const char *id, char buf[BACKUP_NAME_ON_HOST_MAX + 1]);
void backup_checkpoint_name(const char *id, char buf[BACKUP_CHECKPOINT_MAX + 1]);
