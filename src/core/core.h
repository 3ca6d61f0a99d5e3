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
#include "../model/host.h"
#include "../store/store.h"
#include "../util/error.h"
#include "scheduler.h"

typedef struct CoreConfig {
    const char *state_dir; /* console logs, seed work area, the store */
    const char *libvirt_uri;
    const char *host_name; /* "local" */
    const char *pool_name; /* libvirt storage pool Nimbus owns */
    const char *pool_path;
    const char *network; /* libvirt network VMs attach to */
    VirtType virt_type;
    SchedWeigher placement; /* how hosts that fit are ordered */
    unsigned workers;
    uint64_t stop_timeout_ms;         /* graceful stop before destroy */
    unsigned sync_interval_s;         /* reconciler full sync */
    uint64_t max_image_virtual_bytes; /* refuse images claiming more */
} CoreConfig;

typedef struct TaskEngine TaskEngine;
typedef struct Reconciler Reconciler;
typedef struct Placement Placement;

/* A host as the core keeps it: its connection and the reconnect schedule. Entries live until
 * core_stop (a removed host is only marked), so event callbacks can hold a pointer to one. */
typedef struct CoreHost {
    struct Core *core;
    char id[NB_UUID_STRLEN];
    char name[NB_NAME_MAX + 1];
    char uri[NB_URI_MAX + 1];
    HvConn *hv; /* NULL while down; read and replaced under Core.hosts_lock */
    bool removed;
    bool down_recorded;    /* the store already says down */
    unsigned backoff_s;    /* next reconnect delay */
    uint64_t next_try_ms;  /* monotonic: when to try to reconnect */
    uint64_t next_sync_ms; /* monotonic: when to sync next */
} CoreHost;

typedef struct Core {
    CoreConfig cfg;
    Store *store;
    pthread_mutex_t hosts_lock;
    CoreHost **hosts;
    size_t n_hosts;
    pthread_mutex_t copy_lock; /* one image copy to a host at a time */
    Placement *placement;
    TaskEngine *tasks;
    Reconciler *reconciler;
} Core;

/* Opens the store, connects to libvirt, ensures pool and network, cleans what a previous
 * daemon left half-done, resumes unfinished tasks and starts the reconciler. */
int core_start(const CoreConfig *cfg, Core **ret, NbError **err);
void core_stop(Core *core);

/* ---- the host registry (host_registry.c) ---- */
/* A reference to the host's connection, or NULL when it is down or unknown: hv_conn_free it. */
HvConn *host_registry_conn(Core *core, const char *host_name);
/* up (connected), connecting (not yet reached since it was registered: a task may wait for it),
 * or down (unreachable, or unknown). */
HostConn host_registry_state(Core *core, const char *host_name);
/* Whether the host has a connection (it may still drop at any moment). */
bool host_registry_is_up(Core *core, const char *host_name);
/* The connection to the daemon's own host ("local"), where images are uploaded. */
HvConn *host_registry_local_conn(Core *core);
/* Loads the hosts from the store (registering "local" from the configuration) and connects to
 * each; only the local host must answer. */
int host_registry_start(Core *core, NbError **err);
void host_registry_stop(Core *core);
/* Connects (pool, network, facts) a host that has no connection; records up or down. */
int host_registry_connect(Core *core, CoreHost *h, NbError **err);
/* Records the host down: its VMs become unknown. */
void host_registry_mark_down(Core *core, CoreHost *h, const char *why);
/* Copies of the registry entries (for iteration without the lock); free the array only. */
CoreHost **host_registry_snapshot(Core *core, size_t *ret_n);
/* Registers a host just inserted in the store and starts connecting to it. */
int host_registry_add(Core *core, const Host *h);
/* Forgets a host deleted from the store: its connection is dropped. */
void host_registry_remove(Core *core, const char *name);

/* ---- the operator's host operations (host_ops.c) ---- */
int host_ops_add(Core *core, json_t *body, Host *ret, NbError **err);
int host_ops_remove(Core *core, const char *id_or_name, NbError **err);
int host_ops_set_admin(Core *core, const char *id_or_name, HostAdmin admin, Host *ret,
                       NbError **err);
int host_ops_update(Core *core, const char *id_or_name, json_t *body, Host *ret, NbError **err);
/* Puts the host in maintenance and queues a migration for each of its VMs: migrations gets
 * [{vm_id, vm_name, task_id}], skipped [{vm_id, vm_name, reason}]. */
int host_ops_maintenance(Core *core, const char *id_or_name, Host *ret, json_t **migrations,
                         json_t **skipped, NbError **err);
/* ---- images on hosts (image_ops.c) ---- */
/* Makes sure a host's pool has the image (copied over libvirt from the local host unless the
 * storage is shared). */
int image_ops_ensure_on(Core *core, const Image *img, const char *host_name, HvConn *dst,
                        NbError **err);

/* ---- placement (placement.c) ---- */
int placement_new(Core *core, Placement **ret);
void placement_free(Placement *p);
/* Holds placement still: for changes to hosts that must not race a choice. */
void placement_lock(Placement *p);
void placement_unlock(Placement *p);
/* Chooses a host for vm (vcpus, ram, disk, labels, group_id set; host: an admin's explicit
 * choice or "") and inserts it with its task, all under the placement lock, so concurrent
 * creates never overbook. NO_VALID_HOST says why nothing fits. */
int placement_create(Core *core, Vm *vm, const Task *task, NbError **err);
/* Chooses a destination for a migration (dest: an explicit choice, or NULL), with the placement
 * lock held: the caller claims it (vm_store_claim_for_migration) before unlocking. */
int placement_pick_destination(Core *core, const Vm *vm, const char *dest,
                               char chosen[NB_NAME_MAX + 1], NbError **err);

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
/* Queues a migration of the VM: dest NULL lets the scheduler choose; offline moves a stopped
 * VM. */
int vm_migrate_queue(Core *core, const char *scope, const char *id_or_name, json_t *params,
                     Vm *ret_vm, Task *ret_task, NbError **err);
/* start, stop, reboot, pause, resume, delete: state check, claim, queue. params: JSON or NULL */
int vm_ops_action(Core *core, const char *scope, const char *id_or_name, TaskKind kind,
                  json_t *params, Vm *ret_vm, Task *ret_task, NbError **err);
/* Runs the steps of a task; called by workers. */
int vm_ops_run_task(Core *core, Task *task);
int vm_ops_step_count(TaskKind kind);
/* The last max bytes of the VM's serial console log, read over libvirt from its host ("" when
 * there is none yet); *ret to free. HOST_DOWN when the host cannot be reached. */
int vm_ops_console_read(Core *core, const Vm *vm, uint64_t max, char **ret, size_t *ret_len,
                        NbError **err);

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
/* Opens a libvirt connection to a host with the reconciler's event callbacks registered. */
int reconciler_open_conn(CoreHost *h, HvConn **ret, NbError **err);
/* Compares every VM of the host with libvirt once, now. */
void reconciler_sync_host(Core *core, CoreHost *h);
/* Wakes the reconciler (a host was added, or a connection closed). */
void reconciler_wake(Reconciler *r);

/* Fault injection for the crash tests: when NIMBUS_TEST_CRASH_AT is "<kind>:<step>", the daemon
 * kills itself with SIGKILL right after that step's hypervisor work and before its progress is
 * persisted: the worst moment for idempotency. Unset in production. */
void core_crash_point(TaskKind kind, int step);
