/*
 * The SQLite store: schema, migrations, and one file per resource. One connection, WAL, guarded
 * by a mutex: every store_* call is atomic, and the calls that must change several rows together
 * (a VM and its task, a task's end and the VM it held) are single calls, each one transaction.
 */
#pragma once

#include <sqlite3.h>
#include <stdbool.h>

#include "../model/flavor.h"
#include "../model/image.h"
#include "../model/task.h"
#include "../model/tenancy.h"
#include "../model/vm.h"
#include "../util/error.h"

typedef struct Store Store;

int store_open(const char *path, Store **ret, NbError **err);
void store_close(Store *s);
int store_schema_version(Store *s);

/* ---- flavors ---- */
int flavor_store_insert(Store *s, const Flavor *f, NbError **err); /* NAME_TAKEN */
/* By id, else by name. FLAVOR_NOT_FOUND. */
int flavor_store_get(Store *s, const char *id_or_name, Flavor *ret, NbError **err);
int flavor_store_list(Store *s, Flavor **ret, size_t *ret_n, NbError **err);
int flavor_store_delete(Store *s, const char *id, NbError **err); /* FLAVOR_IN_USE */

/*
 * Project scoping: calls that take `scope` see only that project's rows (NULL: every project,
 * for admins). Another project's row is "not found", exactly like a missing one.
 */

/* ---- images ---- */
/* Inserts into img->project, checking its images quota in the same transaction. */
int image_store_insert(Store *s, const Image *img, NbError **err);
int image_store_get(Store *s, const char *scope, const char *id_or_name, Image *ret, NbError **err);
int image_store_list(Store *s, const char *scope, Image **ret, size_t *ret_n, NbError **err);
/* Compare-and-swap on the state: 0 when moved, NB_ERR_IMAGE_ALREADY_UPLOADED when the image was
 * not in `from`. */
int image_store_transition(Store *s, const char *id, ImageState from, ImageState to, NbError **err);
int image_store_set_active(Store *s, const Image *img, NbError **err);
int image_store_delete(Store *s, const char *id, NbError **err); /* IMAGE_IN_USE */
/* Images left half-uploaded by a daemon that died. */
int image_store_list_uploading(Store *s, Image **ret, size_t *ret_n, NbError **err);

/* ---- VMs ---- */
/* Inserts the VM and its create task, the VM held by the task, after checking vm->project's
 * quota, all in one transaction: concurrent creates cannot pass a limit. NAME_TAKEN,
 * QUOTA_EXCEEDED. */
int vm_store_insert_with_task(Store *s, const Vm *vm, const Task *task, NbError **err);
int vm_store_get(Store *s, const char *scope, const char *id_or_name, Vm *ret, NbError **err);
int vm_store_list(Store *s, const char *scope, Vm **ret, size_t *ret_n, NbError **err);
void vm_list_free(Vm *vms, size_t n);
/* Takes the VM for a task: fails with VM_BUSY when another task holds it. On success the VM's
 * task_id is the task's, desired and state are set (state < 0 leaves it), and the task row is
 * inserted, all in one transaction. */
int vm_store_claim(Store *s, const char *vm_id, const Task *task, VmPower desired, int state,
                   NbError **err);
/* What the reconciler saw. Applies only while no task holds the VM (a task owns its VM's
 * state); returns 1 if applied, 0 if skipped. desired < 0 leaves it. */
int vm_store_observe(Store *s, const char *vm_id, VmState state, int desired, NbError **err);
int vm_store_set_ip(Store *s, const char *vm_id, const char *ip, NbError **err);
/* VMs whose host cannot be reached: state unknown, whether or not a task holds them. */
int vm_store_mark_all_unknown(Store *s, NbError **err);

/* ---- tasks ---- */
int task_store_get(Store *s, const char *scope, const char *id, Task *ret, NbError **err);
/* Tasks of one VM (target_id), newest first; vm_id NULL: all, newest first, at most limit. */
int task_store_list(Store *s, const char *scope, const char *vm_id, unsigned limit, Task **ret,
                    size_t *ret_n, NbError **err);
void task_list_free(Task *tasks, size_t n);
int task_store_list_unfinished(Store *s, Task **ret, size_t *ret_n, NbError **err);
int task_store_set_running(Store *s, const char *id, NbError **err);
/* Persists progress: the next step to run. */
int task_store_set_step(Store *s, const char *id, int step, NbError **err);
/* Ends a task and releases its VM in one transaction. vm_state/vm_desired < 0 leave them;
 * vm_error NULL clears the VM's error. */
int task_store_finish(Store *s, const Task *task, TaskState state, const char *code,
                      const char *message, int vm_state, int vm_desired, const char *vm_error,
                      NbError **err);
/* Ends a delete task: removes the VM row and marks the task succeeded, one transaction. */
int task_store_finish_delete(Store *s, const Task *task, NbError **err);

/* ---- projects (project_store.c) ---- */
int project_store_insert(Store *s, const Project *p, NbError **err); /* NAME_TAKEN */
int project_store_get(Store *s, const char *scope, const char *id_or_name, Project *ret,
                      NbError **err);
int project_store_list(Store *s, const char *scope, Project **ret, size_t *ret_n, NbError **err);
int project_store_set_quota(Store *s, const char *id, const Quota *q, NbError **err);
int project_store_delete(Store *s, const char *id, NbError **err); /* PROJECT_NOT_EMPTY */
/* What the project uses, indexed by QuotaResource. */
int project_store_quota_usage(Store *s, const char *project, int64_t in_use[_QUOTA_MAX],
                              NbError **err);

/* ---- users (user_store.c) ---- */
int user_store_insert(Store *s, const User *u, const char *password_hash, NbError **err);
int user_store_get(Store *s, const char *id_or_name, User *ret, NbError **err);
/* For login: 1 and the user with its argon2id hash (to free), 0 if no such user, -1 on error. */
int user_store_get_password_hash(Store *s, const char *name, User *ret, char **ret_hash);
int user_store_list(Store *s, User **ret, size_t *ret_n, NbError **err);
int user_store_delete(Store *s, const char *id, NbError **err); /* and revokes its tokens */

/* ---- API tokens (token_store.c) ---- */
typedef struct TokenInfo {
    char id[NB_UUID_STRLEN];
    char name[NB_NAME_MAX + 1];
    char user_id[NB_UUID_STRLEN];
    char created_at[NB_TIMESTAMP_LEN];
    char expires_at[NB_TIMESTAMP_LEN]; /* empty: never */
    char revoked_at[NB_TIMESTAMP_LEN]; /* empty: live */
} TokenInfo;
int token_store_count(Store *s, NbError **err);
int token_store_insert(Store *s, const TokenInfo *t, const char *hash_hex, NbError **err);
/* 1 and the principal when a live (unrevoked, unexpired) token has this hash; 0 if not. */
int token_store_lookup(Store *s, const char *hash_hex, Principal *ret);
/* user_id NULL: every user's tokens. */
int token_store_list(Store *s, const char *user_id, TokenInfo **ret, size_t *ret_n, NbError **err);
/* Revokes the token if it belongs to user_id (NULL: anyone's). TOKEN_NOT_FOUND otherwise. */
int token_store_revoke(Store *s, const char *id, const char *user_id, NbError **err);

/* ---- audit (audit_store.c) ---- */
typedef struct AuditEvent {
    int64_t id;
    char at[NB_TIMESTAMP_LEN];
    char request_id[NB_UUID_STRLEN];
    char user[NB_NAME_MAX + 1];
    char project_id[NB_UUID_STRLEN];
    char source[64];
    char method[16];
    char path[256];
    char action[32];
    char target[NB_NAME_MAX + 1];
    unsigned status;
    char result[48];
} AuditEvent;
int audit_store_insert(Store *s, const AuditEvent *e, NbError **err);
/* Newest first; project NULL: all; since NULL: from the start. */
int audit_store_list(Store *s, const char *project, const char *since, unsigned limit,
                     AuditEvent **ret, size_t *ret_n, NbError **err);

/* ---- usage (usage_store.c) ---- */
typedef struct VmUsage {
    char vm_id[NB_UUID_STRLEN];
    char name[NB_NAME_MAX + 1];
    double vcpu_hours;
    double ram_gib_hours;
    double disk_gib_hours;
    double running_hours;
} VmUsage;
/* Usage of every VM of the project within [from, to) (epoch seconds); `now` ends the interval
 * of VMs still in their last state. */
int usage_store_compute(Store *s, const char *project, double from, double to, double now,
                        VmUsage **ret, size_t *ret_n, NbError **err);
