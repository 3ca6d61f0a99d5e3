/*
 * Migration of a VM between hosts, as a journaled task (vm.migrate) run by vm_ops.c's task
 * runner: prepare the destination, move the domain (live, or offline for a stopped VM), switch
 * the VM's host in the store, clean the source up. A failure rolls back to wherever the domain
 * is.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../util/log.h"
#include "../util/strutil.h"
#include "vm_ops_internal.h"

/* Task params: {"source": host, "host": destination, "offline": bool, "shared": bool,
 * "bandwidth_mib": n}. The hosts come from the params, never from the VM row, whose host changes
 * half-way. "shared" is decided once, at the first step, and persisted: a copy Nimbus made on the
 * destination must never be mistaken for shared storage when the task resumes after a crash. */
typedef struct MigrateParams {
    char source[NB_NAME_MAX + 1];
    char dest[NB_NAME_MAX + 1];
    bool offline;
    int shared;             /* -1: not decided yet */
    uint64_t bandwidth_mib; /* 0: unlimited */
} MigrateParams;

static void
migrate_params_read(const Task *task, MigrateParams *mp)
{
    *mp = (MigrateParams){.shared = -1};
    json_t *p = task->params ? json_loads(task->params, 0, NULL) : NULL;
    const char *source = json_string_value(json_object_get(p, "source"));
    const char *dest = json_string_value(json_object_get(p, "host"));
    snprintf(mp->source, sizeof(mp->source), "%s", source ? source : "");
    snprintf(mp->dest, sizeof(mp->dest), "%s", dest ? dest : "");
    mp->offline = json_is_true(json_object_get(p, "offline"));
    json_t *shared = json_object_get(p, "shared");
    if (json_is_boolean(shared))
        mp->shared = json_is_true(shared);
    json_t *bw = json_object_get(p, "bandwidth_mib");
    if (json_is_integer(bw) && json_integer_value(bw) > 0)
        mp->bandwidth_mib = (uint64_t)json_integer_value(bw);
    json_decref(p);
}

static char *
migrate_params_text(const MigrateParams *mp)
{
    json_t *p = json_pack("{s:s, s:s, s:b}", "source", mp->source, "host", mp->dest, "offline",
                          mp->offline);
    if (p && mp->shared >= 0)
        json_object_set_new(p, "shared", json_boolean(mp->shared));
    if (p && mp->bandwidth_mib)
        json_object_set_new(p, "bandwidth_mib", json_integer((json_int_t)mp->bandwidth_mib));
    char *text = p ? json_dumps(p, JSON_COMPACT) : NULL;
    json_decref(p);
    return text;
}

/* References to both ends; HOST_DOWN when one is not connected. */
static int
migrate_conns(Core *core, const MigrateParams *mp, HvConn **src, HvConn **dst, NbError **err)
{
    *src = host_registry_conn(core, mp->source);
    *dst = host_registry_conn(core, mp->dest);
    if (*src && *dst)
        return 0;
    const char *down = *src ? mp->dest : mp->source;
    hv_conn_free(*src);
    hv_conn_free(*dst);
    *src = *dst = NULL;
    return nb_error_set(err, NB_ERR_HOST_DOWN, "host '%s' is down", down);
}

static int
migrate_check_cancel(Core *core, const Task *task, NbError **err)
{
    if (task_store_cancel_requested(core->store, task->id))
        return nb_error_set(err, NB_ERR_CANCELLED, "the migration was cancelled");
    return 0;
}

/* The destination's virtlogd appends to the log: give it the history so far (what the guest
 * prints between this copy and the switch-over stays only in the source's copy). */
static int
migrate_copy_console_log(Core *core, const Vm *vm, HvConn *src, HvConn *dst, NbError **err)
{
    char vol[96];
    vm_console_volume(vm, vol);
    _cleanup_error_ NbError *e = NULL;
    int seen = hv_vol_exists(src, vm_pool(core), vol, &e);
    if (seen <= 0)
        return 0; /* no log yet (a VM never started), or unreadable: not worth failing for */
    return hv_vol_copy(src, dst, vm_pool(core), vol, err);
}

/* Is the pool the same storage on both hosts? A probe volume made on the source either shows in
 * the destination's pool or not. (Looking for the VM's own disk on the destination would take a
 * copy left behind by an earlier failed migration for shared storage.) 1, 0, or -1. */
static int
migrate_probe_shared(Core *core, const Task *task, HvConn *src, HvConn *dst, NbError **err)
{
    _cleanup_free_ char *probe = str_printf("nimbus-probe-%s", task->id);
    if (!probe)
        return nb_error_set(err, NB_ERR_INTERNAL, "out of memory");
    if (hv_vol_create_for_upload(src, vm_pool(core), probe, "raw", 1, err) < 0)
        return -1;
    int seen = hv_vol_exists(dst, vm_pool(core), probe, err);
    _cleanup_error_ NbError *e = NULL;
    if (hv_vol_delete(src, vm_pool(core), probe, &e) < 0)
        log_warn("migration probe %s left in the pool: %s", probe, e->message);
    /* The destination's libvirt lists the probe until its pool is refreshed again. */
    return seen;
}

int
vm_migrate_step_prepare(Core *core, Task *task, Vm *vm, HvConn *hv_unused, NbError **err)
{
    MigrateParams mp;
    HvConn *src = NULL, *dst = NULL;
    char disk_vol[96], seed_vol[96];
    Image img;
    migrate_params_read(task, &mp);
    vm_disk_volume(vm, disk_vol);
    vm_seed_volume(vm, seed_vol);
    if (migrate_check_cancel(core, task, err) < 0 || migrate_conns(core, &mp, &src, &dst, err) < 0)
        return -1;
    int r = -1;
    if (mp.shared < 0) {
        int shared = migrate_probe_shared(core, task, src, dst, err);
        if (shared < 0)
            goto out;
        mp.shared = shared;
        _cleanup_free_ char *text = migrate_params_text(&mp);
        if (!text || task_store_set_params(core->store, task->id, text, err) < 0)
            goto out;
        free(task->params);
        task->params = TAKE_PTR(text);
        log_info("vm %s: migrating %s -> %s (%s, %s storage)", vm->id, mp.source, mp.dest,
                 mp.offline ? "offline" : "live", mp.shared ? "shared" : "local");
    }
    if (mp.shared) {
        r = 0;
        goto out;
    }
    /* Local storage: the destination gets the image, the seed, and the disk (its data for an
     * offline move; an empty overlay that the live migration fills). */
    if (image_store_get(core->store, NULL, vm->image_id, &img, err) < 0 ||
        image_ops_ensure_on(core, &img, mp.dest, dst, err) < 0 ||
        hv_vol_copy(src, dst, vm_pool(core), seed_vol, err) < 0 ||
        migrate_copy_console_log(core, vm, src, dst, err) < 0)
        goto out;
    if (mp.offline)
        r = hv_vol_copy(src, dst, vm_pool(core), disk_vol, err);
    else
        r = hv_vol_create_linked_clone(dst, vm_pool(core), disk_vol, img.volume,
                                       image_format_to_string(img.format), vm->disk_gib << 30, err);
out:
    hv_conn_free(src);
    hv_conn_free(dst);
    return r;
}

/* Follows a live migration: progress into the task, and a cancel request into an abort. */
typedef struct MigrateWatch {
    Core *core;
    HvConn *src;
    const char *task_id;
    const char *domain;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool done;
} MigrateWatch;

static void *
migrate_watch_thread(void *arg)
{
    MigrateWatch *w = arg;
    int last = -1;
    bool aborted = false;
    pthread_mutex_lock(&w->lock);
    while (!w->done) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += 500 * 1000 * 1000;
        if (until.tv_nsec >= 1000000000) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&w->cond, &w->lock, &until);
        if (w->done)
            break;
        pthread_mutex_unlock(&w->lock);
        _cleanup_error_ NbError *err = NULL;
        int pct = -1;
        if (hv_domain_job_progress(w->src, w->domain, &pct, &err) > 0 && pct != last) {
            last = pct;
            task_store_set_progress(w->core->store, w->task_id, pct, &err);
        }
        if (!aborted && task_store_cancel_requested(w->core->store, w->task_id)) {
            log_info("task %s: cancel requested; aborting the migration", w->task_id);
            aborted = hv_domain_abort_job(w->src, w->domain, &err) >= 0;
        }
        pthread_mutex_lock(&w->lock);
    }
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

static int
migrate_live(Core *core, Task *task, const char *domain, HvConn *src, HvConn *dst,
             const MigrateParams *mp, NbError **err)
{
    char address[NB_URI_MAX + 1];
    _cleanup_free_ char *uri = NULL;
    /* QEMU on the source connects to the destination's address as the controller knows it
     * (the destination's own hostname may not resolve from the source). */
    host_uri_hostname(hv_conn_uri(dst), address, sizeof(address));
    if (address[0])
        uri = str_printf("tcp://%s", address);
    HvMigrateOptions o = {
        .copy_storage = !mp->shared,
        .migrate_uri = uri,
        .bandwidth_mib = mp->bandwidth_mib,
    };
    MigrateWatch w = {.core = core, .src = src, .task_id = task->id, .domain = domain};
    pthread_mutex_init(&w.lock, NULL);
    pthread_cond_init(&w.cond, NULL);
    pthread_t th;
    bool watching = pthread_create(&th, NULL, migrate_watch_thread, &w) == 0;
    int r = hv_domain_migrate(src, dst, domain, &o, err);
    if (watching) {
        pthread_mutex_lock(&w.lock);
        w.done = true;
        pthread_cond_signal(&w.cond);
        pthread_mutex_unlock(&w.lock);
        pthread_join(th, NULL);
    }
    pthread_mutex_destroy(&w.lock);
    pthread_cond_destroy(&w.cond);
    if (r < 0 && task_store_cancel_requested(core->store, task->id)) {
        nb_error_free(TAKE_PTR(*err));
        return nb_error_set(err, NB_ERR_CANCELLED, "the migration was cancelled");
    }
    return r;
}

int
vm_migrate_step_move(Core *core, Task *task, Vm *vm, HvConn *hv_unused, NbError **err)
{
    MigrateParams mp;
    HvConn *src = NULL, *dst = NULL;
    char domain[64];
    HvDomainState on_src = HV_DOMAIN_NONE, on_dst = HV_DOMAIN_NONE;
    migrate_params_read(task, &mp);
    vm_domain_name(vm, domain);
    if (migrate_check_cancel(core, task, err) < 0 || migrate_conns(core, &mp, &src, &dst, err) < 0)
        return -1;
    int r = -1;
    if (hv_domain_get_state(src, domain, &on_src, err) < 0 ||
        hv_domain_get_state(dst, domain, &on_dst, err) < 0)
        goto out;
    if (on_src == HV_DOMAIN_NONE && on_dst != HV_DOMAIN_NONE) {
        r = 0; /* done before a crash */
        goto out;
    }
    if (mp.offline) {
        /* A stopped VM: its definition moves, rebuilt from the stored spec with the
         * destination's paths; then the source forgets it. */
        _cleanup_free_ char *xml = NULL;
        if (on_src != HV_DOMAIN_SHUTOFF && on_src != HV_DOMAIN_NONE) {
            nb_error_set(err, NB_ERR_INVALID_STATE,
                         "the VM was started; an offline migration "
                         "needs it stopped");
            goto out;
        }
        if (vm_build_domain_xml(core, vm, dst, &xml, err) == 0 &&
            hv_domain_define(dst, xml, err) == 0 && hv_domain_undefine(src, domain, err) == 0)
            r = 0;
    } else {
        r = migrate_live(core, task, domain, src, dst, &mp, err);
    }
out:
    hv_conn_free(src);
    hv_conn_free(dst);
    return r;
}

int
vm_migrate_step_switch(Core *core, Task *task, Vm *vm, HvConn *hv_unused, NbError **err)
{
    MigrateParams mp;
    migrate_params_read(task, &mp);
    if (vm_store_move(core->store, vm->id, mp.dest, err) < 0)
        return -1;
    snprintf(vm->host, sizeof(vm->host), "%s", mp.dest);
    vm->migrate_to[0] = '\0';
    return 0;
}

/* Removes the VM's volumes from a host (the source after the move, or the destination after
 * a failure) when they are not the shared ones. */
static int
migrate_drop_volumes(Core *core, const Vm *vm, const char *host, NbError **err)
{
    char disk_vol[96], seed_vol[96], log_vol[96];
    vm_disk_volume(vm, disk_vol);
    vm_seed_volume(vm, seed_vol);
    vm_console_volume(vm, log_vol);
    HvConn *c = host_registry_conn(core, host);
    if (!c)
        return nb_error_set(err, NB_ERR_HOST_DOWN, "host '%s' is down", host);
    int r = hv_vol_delete(c, vm_pool(core), disk_vol, err) == 0 &&
                    hv_vol_delete(c, vm_pool(core), seed_vol, err) == 0 &&
                    hv_vol_delete(c, vm_pool(core), log_vol, err) == 0
                ? 0
                : -1;
    hv_conn_free(c);
    return r;
}

int
vm_migrate_step_cleanup(Core *core, Task *task, Vm *vm, HvConn *hv_unused, NbError **err)
{
    MigrateParams mp;
    migrate_params_read(task, &mp);
    if (mp.shared)
        return 0;
    _cleanup_error_ NbError *e = NULL;
    /* The VM is already running on the destination: a source that cannot be cleaned now only
     * leaves unused files, which the log names. */
    if (migrate_drop_volumes(core, vm, mp.source, &e) < 0)
        log_warn("vm %s: volumes left on host %s: %s", vm->id, mp.source, e->message);
    return 0;
}

/* The VM's state as its host reports it; unknown when that cannot be read. */
static VmState
vm_observed_on(Core *core, const Vm *vm, const char *host)
{
    char domain[64];
    HvDomainState st = HV_DOMAIN_NONE;
    _cleanup_error_ NbError *err = NULL;
    vm_domain_name(vm, domain);
    HvConn *c = host_registry_conn(core, host);
    bool ok = c && hv_domain_get_state(c, domain, &st, &err) == 0;
    hv_conn_free(c);
    return ok ? vm_state_from_hv(st) : VM_STATE_UNKNOWN;
}

void
vm_migrate_finish(Core *core, Task *task, Vm *vm)
{
    _cleanup_error_ NbError *err = NULL;
    MigrateParams mp;
    migrate_params_read(task, &mp);
    VmState state = vm_observed_on(core, vm, mp.dest);
    task_store_set_progress(core->store, task->id, 100, &err);
    nb_error_free(TAKE_PTR(err));
    if (task_store_finish(core->store, task, TASK_STATE_SUCCEEDED, NULL, NULL, (int)state, -1, NULL,
                          &err) < 0)
        log_error("task %s: %s", task->id, err->message);
    else
        log_info("vm %s: now on host %s", vm->id, mp.dest);
}

/* A failed migration: the VM stays where its domain is (libvirt leaves a failed live migration
 * on the source, still running), the destination's claim is dropped, and the copies made for it
 * are removed. Returns the state to record. */
int
vm_migrate_rollback(Core *core, Task *task, Vm *vm)
{
    _cleanup_error_ NbError *err = NULL;
    MigrateParams mp;
    migrate_params_read(task, &mp);
    VmState on_dst = vm_observed_on(core, vm, mp.dest);
    VmState on_src = vm_observed_on(core, vm, mp.source);
    if (on_src == VM_STATE_MISSING && on_dst != VM_STATE_MISSING && on_dst != VM_STATE_UNKNOWN) {
        /* It did move: the failure came after the switch-over. */
        if (vm_store_move(core->store, vm->id, mp.dest, &err) < 0)
            log_error("vm %s: %s", vm->id, err->message);
        return (int)on_dst;
    }
    if (vm_store_set_migration(core->store, vm->id, NULL, &err) < 0)
        log_error("vm %s: cannot drop the migration claim: %s", vm->id, err->message);
    nb_error_free(TAKE_PTR(err));
    if (mp.shared == 0 && on_dst == VM_STATE_MISSING &&
        migrate_drop_volumes(core, vm, mp.dest, &err) < 0)
        log_warn("vm %s: copies left on host %s: %s", vm->id, mp.dest, err->message);
    return (int)on_src;
}

/* ---- the API's entry point ---- */

#define MIGRATE_BANDWIDTH_MAX_MIB 1000000

/* Strict decode of {host?, offline?, bandwidth_mib?}. */
static int
vm_migrate_request(json_t *params, char dest[NB_NAME_MAX + 1], MigrateParams *mp,
                   int *offline_given, NbError **err)
{
    dest[0] = '\0';
    *offline_given = 0;
    if (!params)
        return 0;
    const char *key;
    json_t *v;
    json_object_foreach (params, key, v) {
        if (!streq(key, "host") && !streq(key, "offline") && !streq(key, "bandwidth_mib"))
            return nb_error_set(err, NB_ERR_INVALID_REQUEST, "unknown field '%.64s'", key);
    }
    json_t *bw = json_object_get(params, "bandwidth_mib");
    if (bw) {
        if (!json_is_integer(bw) || json_integer_value(bw) < 1 ||
            json_integer_value(bw) > MIGRATE_BANDWIDTH_MAX_MIB)
            return nb_error_set(err, NB_ERR_INVALID_REQUEST,
                                "field 'bandwidth_mib' must be an integer from 1 to %d (MiB/s)",
                                MIGRATE_BANDWIDTH_MAX_MIB);
        mp->bandwidth_mib = (uint64_t)json_integer_value(bw);
    }
    json_t *host = json_object_get(params, "host");
    json_t *off = json_object_get(params, "offline");
    if (host && !json_is_null(host)) {
        const char *h = json_string_value(host);
        if (!h || (!nb_name_is_valid(h) && !nb_uuid_is_valid(h)))
            return nb_error_set(err, NB_ERR_INVALID_NAME,
                                "field 'host' must be a host's name or id");
        snprintf(dest, NB_NAME_MAX + 1, "%s", json_string_value(host));
    }
    if (off) {
        if (!json_is_boolean(off))
            return nb_error_set(err, NB_ERR_INVALID_REQUEST, "field 'offline' must be a boolean");
        mp->offline = json_is_true(off);
        *offline_given = 1;
    }
    return 0;
}

int
vm_migrate_queue(Core *core, const char *scope, const char *id_or_name, json_t *params, Vm *ret_vm,
                 Task *ret_task, NbError **err)
{
    MigrateParams mp = {.shared = -1};
    char dest[NB_NAME_MAX + 1];
    int offline_given;
    Vm vm;
    Task task;
    if (vm_migrate_request(params, dest, &mp, &offline_given, err) < 0 ||
        vm_store_get(core->store, scope, id_or_name, &vm, err) < 0)
        return -1;
    int r = -1;
    bool live = vm.state == VM_STATE_RUNNING || vm.state == VM_STATE_PAUSED;
    bool cold = vm.state == VM_STATE_STOPPED || vm.state == VM_STATE_CRASHED;
    if (vm.task_id[0]) {
        nb_error_set(err, NB_ERR_VM_BUSY,
                     "another task is working on this VM; retry when it has finished");
        goto out;
    }
    if (!live && !cold) {
        nb_error_set(err, NB_ERR_INVALID_STATE, "cannot migrate a VM that is %s",
                     vm_state_to_string(vm.state));
        goto out;
    }
    if (offline_given && mp.offline && live) {
        nb_error_set(err, NB_ERR_INVALID_STATE,
                     "an offline migration moves a stopped VM; stop it first");
        goto out;
    }
    if (offline_given && !mp.offline && cold) {
        nb_error_set(err, NB_ERR_INVALID_STATE, "a stopped VM can only move offline");
        goto out;
    }
    mp.offline = cold;
    if (!host_registry_is_up(core, vm.host)) {
        nb_error_set(err, NB_ERR_HOST_DOWN, "host '%s' is down: its VMs cannot be migrated",
                     vm.host);
        goto out;
    }
    if (dest[0]) {
        Host h;
        if (host_store_get(core->store, dest, &h, err) < 0)
            goto out;
        if (streq(h.name, vm.host)) {
            nb_error_set(err, NB_ERR_INVALID_REQUEST, "the VM is already on host '%s'", h.name);
            goto out;
        }
        snprintf(dest, sizeof(dest), "%s", h.name);
    }
    snprintf(mp.source, sizeof(mp.source), "%s", vm.host);
    placement_lock(core->placement);
    if (placement_pick_destination(core, &vm, dest[0] ? dest : NULL, mp.dest, err) == 0) {
        _cleanup_free_ char *text = migrate_params_text(&mp);
        task_new(&task, TASK_KIND_VM_MIGRATE, vm.id, text);
        if (!text)
            nb_error_set(err, NB_ERR_INTERNAL, "out of memory");
        else if (vm_store_claim_for_migration(core->store, vm.id, &task, vm.desired, mp.dest,
                                              err) == 0)
            r = 0;
        if (r < 0)
            task_clear(&task);
    }
    placement_unlock(core->placement);
    if (r < 0)
        goto out;
    log_info("vm %s (%s): migration %s -> %s queued as task %s", vm.id, vm.name, mp.source, mp.dest,
             task.id);
    task_engine_submit(core->tasks, task.id);
    if (vm_store_get(core->store, NULL, vm.id, ret_vm, err) < 0) {
        task_clear(&task);
        r = -1;
        goto out;
    }
    *ret_task = task;
out:
    vm_clear(&vm);
    return r;
}
