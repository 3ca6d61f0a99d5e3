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

/* ---- images ---- */
int image_store_insert(Store *s, const Image *img, NbError **err);
int image_store_get(Store *s, const char *id_or_name, Image *ret, NbError **err);
int image_store_list(Store *s, Image **ret, size_t *ret_n, NbError **err);
/* Compare-and-swap on the state: 0 when moved, NB_ERR_IMAGE_ALREADY_UPLOADED when the image was
 * not in `from`. */
int image_store_transition(Store *s, const char *id, ImageState from, ImageState to, NbError **err);
int image_store_set_active(Store *s, const Image *img, NbError **err);
int image_store_delete(Store *s, const char *id, NbError **err); /* IMAGE_IN_USE */
/* Images left half-uploaded by a daemon that died. */
int image_store_list_uploading(Store *s, Image **ret, size_t *ret_n, NbError **err);

/* ---- VMs ---- */
/* Inserts the VM and its create task, the VM held by the task. NAME_TAKEN. */
int vm_store_insert_with_task(Store *s, const Vm *vm, const Task *task, NbError **err);
int vm_store_get(Store *s, const char *id_or_name, Vm *ret, NbError **err); /* VM_NOT_FOUND */
int vm_store_list(Store *s, Vm **ret, size_t *ret_n, NbError **err);
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
int task_store_get(Store *s, const char *id, Task *ret, NbError **err); /* TASK_NOT_FOUND */
/* Tasks of one VM (target_id), newest first; vm_id NULL: all, newest first, at most limit. */
int task_store_list(Store *s, const char *vm_id, unsigned limit, Task **ret, size_t *ret_n,
                    NbError **err);
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

/* ---- API tokens ---- */
int token_store_count(Store *s, NbError **err);
int token_store_insert(Store *s, const char *id, const char *hash_hex, const char *name,
                       NbError **err);
/* 1 if a live token has this hash, 0 if not. */
int token_store_check(Store *s, const char *hash_hex);
