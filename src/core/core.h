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
#include "events.h"
#include "host_registry.h"
#include "scheduler.h"
#include "task.h"

typedef struct CoreConfig {
    const char *state_dir; /* console logs, seed work area, the store */
    const char *libvirt_uri;
    const char *host_name; /* "local" */
    const char *pool_name; /* libvirt storage pool Nimbus owns */
    const char *pool_path;
    /* Colon-separated absolute directories under which dir and netfs pools may be made. */
    const char *pool_roots;
    const char *network; /* libvirt network VMs attach to */
    VirtType virt_type;
    SchedWeigher placement; /* how hosts that fit are ordered */
    unsigned workers;
    uint64_t stop_timeout_ms;         /* graceful stop before destroy */
    unsigned sync_interval_s;         /* each host's periodic look at its domains */
    unsigned quiet_sync_interval_s;   /* the same look at a host where nothing happens */
    unsigned pool_check_interval_s;   /* each host's pools looked at (0: only when it connects) */
    unsigned connect_timeout_s;       /* a host whose connect takes longer is down */
    StoreOptions store;               /* synchronous mode, read connections */
    StoreRetention retention;         /* how long the journal keeps finished work */
    unsigned prune_interval_s;        /* between two prunes */
    uint64_t max_image_virtual_bytes; /* refuse images claiming more */
    HvEventLoop event_loop;           /* the loop libvirt's connections run on */
    const char *default_network_pool; /* CIDR: projects' default networks, a /24 each */
    /* The local host's nimbus-agent (agent_url NULL: none) and VXLAN underlay; the CA bundle
     * every host's agent certificate must chain to. */
    const char *agent_url;
    char agent_secret[HOST_AGENT_SECRET_LEN + 1];
    const char *agent_ca_file;
    const char *tunnel_ip, *tunnel_dev;
} CoreConfig;

typedef struct Reconciler Reconciler;
typedef struct Housekeeping Housekeeping;
typedef struct Placement Placement;

typedef struct Core {
    CoreConfig cfg;
    Store *store;
    HostRegistry *registry;
    pthread_mutex_t copy_lock; /* guards image_ops.c's table of per-(image, host) copy locks */
    Placement *placement;
    TaskEngine *tasks;
    Reconciler *reconciler;
    Housekeeping *housekeeping;
    EventBus *events; /* GET /v1/events: task, VM, host, image, quota, audit */
} Core;

/* Opens the store, connects to libvirt, ensures pool and network, cleans what a previous
 * daemon left half-done, resumes unfinished tasks and starts the reconciler. */
int core_start(const CoreConfig *cfg, Core **ret, NbError **err);
void core_stop(Core *core);

/* ---- the host registry (host_registry.h), as the rest of core uses it ---- */
/* A reference to the host's connection, or NULL when it is down or unknown: hv_conn_free it. */
static inline HvConn *
host_registry_conn(Core *core, const char *host_name)
{
    return host_registry_get_conn(core->registry, host_name);
}
/* up (connected), connecting (not yet reached since it was registered: a task may wait for it),
 * or down (unreachable, or unknown). */
static inline HostConn
host_registry_state(Core *core, const char *host_name)
{
    return host_registry_get_state(core->registry, host_name);
}
/* Whether the host has a connection (it may still drop at any moment). */
static inline bool
host_registry_is_up(Core *core, const char *host_name)
{
    return host_registry_get_state(core->registry, host_name) == HOST_CONN_UP;
}
/* The connection to the daemon's own host ("local"), where images are uploaded. */
static inline HvConn *
host_registry_local_conn(Core *core)
{
    return host_registry_get_conn(core->registry, core->cfg.host_name);
}

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
 * storage is shared): 0, or 1 while another task is copying it there (ask again later: the
 * caller's step waits by timer), or -1. */
int image_ops_ensure_on(Core *core, const Image *img, const char *host_name, HvConn *dst,
                        NbError **err);

/* ---- placement (placement.c) ---- */
int placement_new(Core *core, Placement **ret);
void placement_free(Placement *p);
/* Holds placement still: for changes to hosts that must not race a choice. */
void placement_lock(Placement *p);
void placement_unlock(Placement *p);
/* Chooses a host for vm (vcpus, ram, disk, labels, group_id set; host: an admin's explicit
 * choice or "") and inserts it with its task and its ports (vm_store_insert_with_task: the
 * store allocates their addresses), all under the placement lock, so concurrent creates never
 * overbook. NO_VALID_HOST says why nothing fits. */
int placement_create(Core *core, Vm *vm, const Task *task, Port *ports, size_t n_ports,
                     NbError **err);
/* Chooses a destination for a migration (dest: an explicit choice, or NULL), with the placement
 * lock held: the caller claims it (vm_store_claim_for_migration) before unlocking. */
int placement_pick_destination(Core *core, const Vm *vm, const char *dest,
                               char chosen[NB_NAME_MAX + 1], NbError **err);

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
/* The task handlers of the VM lifecycle kinds (task_handlers.c) and of vm.migrate. */
int64_t vm_ops_run_task(Core *core, Task *task, TaskRun *run);
int vm_ops_step_count(TaskKind kind);
int64_t vm_migrate_run_task(Core *core, Task *task, TaskRun *run);
int vm_migrate_step_count(TaskKind kind);
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

/* ---- housekeeping (housekeeping.c) ---- */
/* Prunes the journal by cfg.retention every cfg.prune_interval_s (first 30 s after start). */
int housekeeping_start(Core *core, Housekeeping **ret, NbError **err);
void housekeeping_stop(Housekeeping *hk);
/* A host has (re)connected: its storage pools are checked in full soon, on the housekeeping
 * thread (this only queues; safe on the reconciler's thread). NULL hk: ignored. */
void housekeeping_host_up(Housekeeping *hk, const char *host);

/* ---- reconciler (reconciler.c) ---- */
/* Starts the reconciler's thread, which applies host reports in batches. */
int reconciler_new(Core *core, Reconciler **ret, NbError **err);
/* Stops the thread; reports still queued are dropped (the hosts' next looks repeat them). */
void reconciler_free(Reconciler *r);
/* The host registry's report callback (userdata: the Reconciler): queues, nothing more. */
void reconciler_report(HostReport *rep, void *userdata);
/* Waits until a look at the daemon's own host has been applied, at most timeout_ms. */
bool reconciler_wait_local_synced(Reconciler *r, uint64_t timeout_ms);
