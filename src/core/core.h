/*
 * The core: what the API asks for, turned into journaled tasks run by workers against the host
 * driver, plus the reconciler that keeps observed state true.
 */
#pragma once

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "../hv/domain_xml.h"
#include "../hv/hv.h"
#include "../store/store.h"
#include "../util/error.h"

typedef struct CoreConfig {
    const char *state_dir; /* console logs, seed work area, the store */
    const char *libvirt_uri;
    const char *host_name; /* "local" */
    const char *pool_name; /* libvirt storage pool Nimbus owns */
    const char *pool_path;
    const char *network; /* libvirt network VMs attach to */
    VirtType virt_type;
    unsigned workers;
    uint64_t stop_timeout_ms;         /* graceful stop before destroy */
    unsigned sync_interval_s;         /* reconciler full sync */
    uint64_t max_image_virtual_bytes; /* refuse images claiming more */
} CoreConfig;

typedef struct TaskEngine TaskEngine;
typedef struct Reconciler Reconciler;

typedef struct Core {
    CoreConfig cfg;
    Store *store;
    HvConn *hv; /* may be replaced by the reconciler on reconnect: take hv_lock to read it */
    pthread_rwlock_t hv_lock;
    TaskEngine *tasks;
    Reconciler *reconciler;
} Core;

/* Opens the store, connects to libvirt, ensures pool and network, cleans what a previous
 * daemon left half-done, resumes unfinished tasks and starts the reconciler. */
int core_start(const CoreConfig *cfg, Core **ret, NbError **err);
void core_stop(Core *core);

/* Borrowed connection for the duration of one operation: call core_hv_put when done. */
HvConn *core_hv_get(Core *core);
void core_hv_put(Core *core);

/* ---- tasks (task.c) ---- */
int task_engine_start(Core *core, TaskEngine **ret, NbError **err);
void task_engine_stop(TaskEngine *e);
void task_engine_submit(TaskEngine *e, const char *task_id);
/* True once stopping: workers leave their task between two steps, to resume at the next start. */
bool task_engine_stopping(TaskEngine *e);
void task_new(Task *t, TaskKind kind, const char *target_id, const char *params);

/* ---- VMs (vm_ops.c) ---- */
/* Validates, resolves image and flavor, inserts the VM with its create task and queues it.
 * The returned VM and task are the stored rows at that moment. */
int vm_ops_create(Core *core, const Principal *who, json_t *body, Vm *ret_vm, Task *ret_task,
                  NbError **err);
/* start, stop, reboot, pause, resume, delete: state check, claim, queue. params: JSON or NULL */
int vm_ops_action(Core *core, const char *scope, const char *id_or_name, TaskKind kind,
                  json_t *params, Vm *ret_vm, Task *ret_task, NbError **err);
/* Runs the steps of a task; called by workers. */
int vm_ops_run_task(Core *core, Task *task);
int vm_ops_step_count(TaskKind kind);
/* The console log path of a VM; newly allocated. */
char *vm_ops_console_log_path(Core *core, const char *vm_id);

/* ---- images (image_ops.c) ---- */
typedef struct ImageUpload ImageUpload;
int image_ops_upload_begin(Core *core, const char *scope, const char *id_or_name, int64_t length,
                           ImageUpload **ret, NbError **err);
int image_ops_upload_data(ImageUpload *u, const char *buf, size_t len, NbError **err);
/* Completes the upload; fills ret with the active image. Frees u on every path. */
int image_ops_upload_end(ImageUpload *u, Image *ret, NbError **err);
void image_ops_upload_abort(ImageUpload *u);
int image_ops_delete(Core *core, const char *scope, const char *id_or_name, NbError **err);

/* ---- reconciler (reconciler.c) ---- */
int reconciler_start(Core *core, Reconciler **ret, NbError **err);
void reconciler_stop(Reconciler *r);
/* Opens a libvirt connection with the reconciler's event callbacks registered. */
int reconciler_open_conn(Core *core, HvConn **ret, NbError **err);
/* Compares every VM with libvirt once, now. */
void reconciler_sync(Core *core);

/* Fault injection for the crash tests: when NIMBUS_TEST_CRASH_AT is "<kind>:<step>", the daemon
 * kills itself with SIGKILL right after that step's hypervisor work and before its progress is
 * persisted: the worst moment for idempotency. Unset in production. */
void core_crash_point(TaskKind kind, int step);
