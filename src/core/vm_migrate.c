/*
 * Migration of a VM between hosts, as a journaled task (vm.migrate) run by vm_ops.c's task
 * runner: prepare the destination, move the domain (live, or offline for a stopped VM), switch
 * the VM's host in the store, clean the source up. A failure rolls back to wherever the domain
 * is. A live move blocks in libvirt for as long as it takes: it runs on a thread of its own
 * (a MigrateJob) while the task, woken by timer, records its progress and turns a cancel
 * request into an abort; no worker waits for it.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "../model/vm_request.h"
#include "../util/log.h"
#include "../util/strutil.h"
#include "backup_ops.h"
#include "network_shaping.h"
#include "network_ops.h"
#include "snapshot_ops.h"
#include "vm_ops_internal.h"
#include "vm_rbd.h"
#include "volume_ops.h"

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

#define MIGRATE_HOST_WAIT_MS 60000
#define MIGRATE_POLL_MS 500
/* A move of a small guest ends within seconds: looked at every 100 ms for its first 5 s. */
#define MIGRATE_POLL_FAST_MS 100
#define MIGRATE_POLL_FAST_FOR_MS 5000

/* References to both ends: 0, or a delay in ms (> 0) while an end that nimbusd has not reached
 * since it started may still come up, or HOST_DOWN. */
/* Where the VM's root disk lives: its libvirt pool, and whether it is on shared storage of its
 * own (an rbd pool: nothing to copy) or in a dir pool (each host's own directory: copied, even
 * when the default pool is shared). */
typedef struct MigrateRoot {
    char pool[POOL_LIBVIRT_NAME_MAX + 1];
    bool shared;
    bool in_dir_pool;
} MigrateRoot;

static int
migrate_root(Core *core, const Vm *vm, MigrateRoot *ret, NbError **err)
{
    PoolType type;
    if (vm_disk_pool(core, vm, ret->pool, &type, err) < 0)
        return -1;
    ret->shared = vm->pool_id[0] && type == POOL_TYPE_RBD;
    ret->in_dir_pool = vm->pool_id[0] && type == POOL_TYPE_DIR;
    return 0;
}

/* Whether the move copies the root disk: local storage, or a dir pool's. */
static bool
migrate_copies_disk(const MigrateParams *mp, const MigrateRoot *root)
{
    return !root->shared && (!mp->shared || root->in_dir_pool);
}

static int
migrate_conns(Core *core, const TaskRun *run, const MigrateParams *mp, HvConn **src, HvConn **dst,
              NbError **err)
{
    *src = host_registry_conn(core, mp->source);
    *dst = host_registry_conn(core, mp->dest);
    if (*src && *dst)
        return 0;
    const char *down = *src ? mp->dest : mp->source;
    hv_conn_free(*src);
    hv_conn_free(*dst);
    *src = *dst = NULL;
    if (host_registry_state(core, down) == HOST_CONN_CONNECTING &&
        nb_monotonic_ms() - run->first_run_ms < MIGRATE_HOST_WAIT_MS)
        return vm_ops_wait_ms(run->first_run_ms);
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
    int seen = hv_vol_exists(src, vm_ops_pool(core), vol, &e);
    if (seen <= 0)
        return 0; /* no log yet (a VM never started), or unreadable: not worth failing for */
    return hv_vol_copy(src, dst, vm_ops_pool(core), vol, err);
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
    if (hv_vol_create_for_upload(src, vm_ops_pool(core), probe, "raw", 1, err) < 0)
        return -1;
    int seen = hv_vol_exists(dst, vm_ops_pool(core), probe, err);
    _cleanup_error_ NbError *e = NULL;
    if (hv_vol_delete(src, vm_ops_pool(core), probe, &e) < 0)
        log_warn("migration probe %s left in the pool: %s", probe, e->message);
    /* The destination's libvirt lists the probe until its pool is refreshed again. */
    return seen;
}

static int
vm_migrate_step_prepare(Core *core, Task *task, Vm *vm, HvConn *hv_unused, TaskRun *run,
                        NbError **err)
{
    MigrateParams mp;
    HvConn *src = NULL, *dst = NULL;
    char disk_vol[96], seed_vol[96];
    Image img;
    migrate_params_read(task, &mp);
    vm_disk_volume(vm, disk_vol);
    vm_seed_volume(vm, seed_vol);
    if (migrate_check_cancel(core, task, err) < 0)
        return -1;
    int r = migrate_conns(core, run, &mp, &src, &dst, err);
    if (r != 0)
        return r;
    r = -1;
    /* libvirt does not carry checkpoints' metadata along: they go, and the VM's next backup is
     * a full one (docs/storage.md, "Backups"). */
    if (backup_ops_vm_forget_checkpoints(core, vm, src, err) < 0)
        goto out;
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
    MigrateRoot root;
    if (migrate_root(core, vm, &root, err) < 0)
        goto out;
    if (root.shared) {
        /* The root disk is in an rbd pool, which the destination has active (placement): only
         * the seed and the console log are the host's. */
        if (mp.shared || (hv_vol_copy(src, dst, vm_ops_pool(core), seed_vol, err) == 0 &&
                          migrate_copy_console_log(core, vm, src, dst, err) == 0))
            r = 0;
        goto out;
    }
    if (!migrate_copies_disk(&mp, &root)) {
        r = 0;
        goto out;
    }
    /* Local storage: the destination gets the image, the seed, and the disk (its data for an
     * offline move; an empty overlay that the live migration fills). A dir pool's overlay is
     * backed by the image's copy in the default pool, as at its create. */
    if (image_store_get(core->store, NULL, vm->image_id, &img, err) < 0)
        goto out;
    r = image_ops_ensure_on(core, &img, mp.dest, dst, err);
    if (r != 0) {
        /* failed, or another task is copying the image there: look again later */
        if (r > 0 && !run->wait_since_ms)
            run->wait_since_ms = nb_monotonic_ms();
        r = r < 0 ? -1 : vm_ops_wait_ms(run->wait_since_ms);
        goto out;
    }
    r = -1;
    if (!mp.shared && (hv_vol_copy(src, dst, vm_ops_pool(core), seed_vol, err) < 0 ||
                       migrate_copy_console_log(core, vm, src, dst, err) < 0))
        goto out;
    if (mp.offline)
        r = hv_vol_copy(src, dst, root.pool, disk_vol, err);
    else if (root.in_dir_pool)
        r = hv_vol_create_linked_clone_of(dst, root.pool, disk_vol, vm_ops_pool(core), img.volume,
                                          image_format_to_string(img.format), vm->disk_gib << 30,
                                          err);
    else
        r = hv_vol_create_linked_clone(dst, vm_ops_pool(core), disk_vol, img.volume,
                                       image_format_to_string(img.format), vm->disk_gib << 30, err);
out:
    hv_conn_free(src);
    hv_conn_free(dst);
    return r;
}

/* A live migration under way: hv_domain_migrate on its own thread. The task's timer turns poll
 * it; the thread only runs the call and says when it is done. Jobs live in this daemon only: a
 * restart ends the call (libvirt aborts a migration whose client went away, leaving the domain
 * on the source) and the resumed task starts the move again. */
typedef struct MigrateJob {
    char task_id[NB_UUID_STRLEN];
    char domain[64];
    char uri[NB_URI_MAX + 16];
    HvConn *src, *dst; /* references held by the job */
    HvMigrateOptions opts;
    bool done; /* under migrate_jobs_lock; the thread touches the job no more once set */
    int rc;
    NbError *err;
    int last_pct;        /* the poller's: progress last recorded */
    uint64_t started_ms; /* nb_monotonic_ms() at its start */
    bool aborted;        /* the poller's: an abort was asked */
    struct MigrateJob *next;
} MigrateJob;

static pthread_mutex_t migrate_jobs_lock = PTHREAD_MUTEX_INITIALIZER;
static MigrateJob *migrate_jobs;

static void *
migrate_job_thread(void *arg)
{
    MigrateJob *job = arg;
    NbError *err = NULL;
    int rc = hv_domain_migrate(job->src, job->dst, job->domain, &job->opts, &err);
    pthread_mutex_lock(&migrate_jobs_lock);
    job->rc = rc;
    job->err = err;
    job->done = true;
    pthread_mutex_unlock(&migrate_jobs_lock);
    return NULL;
}

static MigrateJob *
migrate_job_find(const char *task_id)
{
    pthread_mutex_lock(&migrate_jobs_lock);
    MigrateJob *job = migrate_jobs;
    while (job && !streq(job->task_id, task_id))
        job = job->next;
    pthread_mutex_unlock(&migrate_jobs_lock);
    return job;
}

static void
migrate_job_free(MigrateJob *job)
{
    hv_conn_free(job->src);
    hv_conn_free(job->dst);
    nb_error_free(job->err);
    free(job);
}

/* Starts the live move; takes the references src and dst. MIGRATE_POLL_FAST_MS, or -1. */
static int
migrate_job_start(Core *core, Task *task, const char *domain, HvConn *src, HvConn *dst,
                  const MigrateParams *mp, bool copy_storage, NbError **err)
{
    char address[NB_URI_MAX + 1];
    MigrateJob *job = calloc(1, sizeof(*job));
    if (!job) {
        hv_conn_free(src);
        hv_conn_free(dst);
        return nb_error_set(err, NB_ERR_INTERNAL, "out of memory");
    }
    snprintf(job->task_id, sizeof(job->task_id), "%s", task->id);
    snprintf(job->domain, sizeof(job->domain), "%s", domain);
    job->src = src;
    job->dst = dst;
    job->last_pct = -1;
    job->started_ms = nb_monotonic_ms();
    /* QEMU on the source connects to the destination's address as the controller knows it
     * (the destination's own hostname may not resolve from the source). */
    host_uri_hostname(hv_conn_uri(dst), address, sizeof(address));
    if (address[0])
        snprintf(job->uri, sizeof(job->uri), "tcp://%s", address);
    job->opts = (HvMigrateOptions){
        /* A root disk in a shared pool (rbd) is the same image on both hosts, like the
         * volumes a VM that migrates may have (shared pools only): nothing to copy. */
        .copy_storage = copy_storage,
        .migrate_uri = job->uri[0] ? job->uri : NULL,
        .bandwidth_mib = mp->bandwidth_mib,
    };
    pthread_mutex_lock(&migrate_jobs_lock);
    job->next = migrate_jobs;
    migrate_jobs = job;
    pthread_mutex_unlock(&migrate_jobs_lock);
    pthread_t th;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    int rc = pthread_create(&th, &attr, migrate_job_thread, job);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
        pthread_mutex_lock(&migrate_jobs_lock);
        MigrateJob **p = &migrate_jobs;
        while (*p != job)
            p = &(*p)->next;
        *p = job->next;
        pthread_mutex_unlock(&migrate_jobs_lock);
        migrate_job_free(job);
        return nb_error_set(err, NB_ERR_INTERNAL, "cannot start the migration thread");
    }
    log_info("task %s: live migration of %s started (storage copy: %s)", task->id, domain,
             job->opts.copy_storage ? "yes" : "no");
    return MIGRATE_POLL_FAST_MS;
}

/* One timer turn of a live move: a delay while it runs (MIGRATE_POLL_FAST_MS for its first 5 s,
 * then MIGRATE_POLL_MS), then its outcome (0 or -1). */
static int
migrate_job_poll(Core *core, Task *task, MigrateJob *job, NbError **err)
{
    pthread_mutex_lock(&migrate_jobs_lock);
    bool done = job->done;
    if (done) {
        MigrateJob **p = &migrate_jobs;
        while (*p != job)
            p = &(*p)->next;
        *p = job->next;
    }
    pthread_mutex_unlock(&migrate_jobs_lock);
    if (!done) {
        _cleanup_error_ NbError *e = NULL;
        int pct = -1;
        if (hv_domain_job_progress(job->src, job->domain, &pct, &e) > 0 && pct != job->last_pct) {
            job->last_pct = pct;
            task_store_set_progress(core->store, task->id, pct, &e);
        }
        nb_error_free(TAKE_PTR(e));
        if (!job->aborted && task_store_cancel_requested(core->store, task->id)) {
            log_info("task %s: cancel requested; aborting the migration", task->id);
            job->aborted = hv_domain_abort_job(job->src, job->domain, &e) >= 0;
        }
        return nb_monotonic_ms() - job->started_ms < MIGRATE_POLL_FAST_FOR_MS ? MIGRATE_POLL_FAST_MS
                                                                              : MIGRATE_POLL_MS;
    }
    int r = job->rc;
    if (r < 0 && task_store_cancel_requested(core->store, task->id))
        nb_error_set(err, NB_ERR_CANCELLED, "the migration was cancelled");
    else if (r < 0 && job->err)
        nb_error_propagate(err, TAKE_PTR(job->err));
    else if (r < 0)
        nb_error_set(err, NB_ERR_HYPERVISOR, "the migration failed");
    migrate_job_free(job);
    return r < 0 ? -1 : 0;
}

/* The ports' networks on one end of the migration: plugged on the destination before the move,
 * unplugged from the source after it (or from the destination after a failure). */
static int
migrate_networks(Core *core, const Vm *vm, const char *host, bool plug, NbError **err)
{
    _cleanup_free_ Port *ports = NULL;
    size_t n = 0;
    if (port_store_list_by_vm(core->store, vm->id, &ports, &n, err) < 0)
        return -1;
    if (n == 0)
        return 0;
    HvConn *c = host_registry_conn(core, host);
    if (!c)
        return nb_error_set(err, NB_ERR_HOST_DOWN, "host '%s' is down", host);
    int r = plug ? network_ops_plug(core, vm, host, c, ports, n, err)
                 : network_ops_unplug(core, vm, host, c, ports, n, err);
    hv_conn_free(c);
    return r;
}

static int
vm_migrate_step_plug(Core *core, Task *task, Vm *vm, HvConn *hv_unused, TaskRun *run, NbError **err)
{
    MigrateParams mp;
    migrate_params_read(task, &mp);
    return migrate_networks(core, vm, mp.dest, true, err);
}

static int
vm_migrate_step_move(Core *core, Task *task, Vm *vm, HvConn *hv_unused, TaskRun *run, NbError **err)
{
    MigrateParams mp;
    HvConn *src = NULL, *dst = NULL;
    char domain[64];
    HvDomainState on_src = HV_DOMAIN_NONE, on_dst = HV_DOMAIN_NONE;
    MigrateJob *job = migrate_job_find(task->id);
    if (job)
        return migrate_job_poll(core, task, job, err);
    migrate_params_read(task, &mp);
    vm_domain_name(vm, domain);
    if (migrate_check_cancel(core, task, err) < 0)
        return -1;
    int r = migrate_conns(core, run, &mp, &src, &dst, err);
    if (r != 0)
        return r;
    r = -1;
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
        if (vm_ops_build_domain_xml(core, vm, dst, &xml, err) == 0 &&
            hv_domain_define(dst, xml, err) == 0 && hv_domain_undefine(src, domain, err) == 0)
            r = 0;
    } else {
        MigrateRoot root;
        if (migrate_root(core, vm, &root, err) < 0)
            goto out;
        return migrate_job_start(core, task, domain, src, dst, &mp, migrate_copies_disk(&mp, &root),
                                 err);
    }
out:
    hv_conn_free(src);
    hv_conn_free(dst);
    return r;
}

static int
vm_migrate_step_switch(Core *core, Task *task, Vm *vm, HvConn *hv_unused, TaskRun *run,
                       NbError **err)
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
 * a failure) when they are not the shared ones: the disk when the move copied it, the seed and
 * the console log when the default pool is the host's own. */
static int
migrate_drop_volumes(Core *core, const Vm *vm, const MigrateParams *mp, const char *host,
                     NbError **err)
{
    char disk_vol[96], seed_vol[96], log_vol[96];
    MigrateRoot root;
    if (migrate_root(core, vm, &root, err) < 0)
        return -1;
    vm_disk_volume(vm, disk_vol);
    vm_seed_volume(vm, seed_vol);
    vm_console_volume(vm, log_vol);
    HvConn *c = host_registry_conn(core, host);
    if (!c)
        return nb_error_set(err, NB_ERR_HOST_DOWN, "host '%s' is down", host);
    int r = 0;
    if (migrate_copies_disk(mp, &root) && hv_vol_delete(c, root.pool, disk_vol, err) < 0)
        r = -1;
    else if (!mp->shared && (hv_vol_delete(c, vm_ops_pool(core), seed_vol, err) < 0 ||
                             hv_vol_delete(c, vm_ops_pool(core), log_vol, err) < 0))
        r = -1;
    hv_conn_free(c);
    return r;
}

static int
vm_migrate_step_cleanup(Core *core, Task *task, Vm *vm, HvConn *hv_unused, TaskRun *run,
                        NbError **err)
{
    MigrateParams mp;
    migrate_params_read(task, &mp);
    _cleanup_error_ NbError *e = NULL;
    /* The VM is already running on the destination: a source that cannot be cleaned now only
     * leaves unused files and DHCP entries, which the log names. */
    if (migrate_networks(core, vm, mp.source, false, &e) < 0)
        log_warn("vm %s: network entries left on host %s: %s", vm->id, mp.source, e->message);
    nb_error_free(TAKE_PTR(e));
    if (migrate_drop_volumes(core, vm, &mp, mp.source, &e) < 0)
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
    return ok ? vm_ops_state_from_hv(st) : VM_STATE_UNKNOWN;
}

static void
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
    if (state == VM_STATE_RUNNING || state == VM_STATE_PAUSED)
        network_shaping_vm_running(core, vm, mp.dest);
}

/* A failed migration: the VM stays where its domain is (libvirt leaves a failed live migration
 * on the source, still running), the destination's claim is dropped, and the copies made for it
 * are removed. Returns the state to record. */
static int
vm_migrate_rollback(Core *core, Task *task, Vm *vm, HvConn *hv_unused)
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
    if (mp.shared >= 0 && on_dst == VM_STATE_MISSING &&
        migrate_drop_volumes(core, vm, &mp, mp.dest, &err) < 0)
        log_warn("vm %s: copies left on host %s: %s", vm->id, mp.dest, err->message);
    nb_error_free(TAKE_PTR(err));
    if (on_dst == VM_STATE_MISSING && migrate_networks(core, vm, mp.dest, false, &err) < 0)
        log_warn("vm %s: network entries left on host %s: %s", vm->id, mp.dest, err->message);
    return (int)on_src;
}

/* ---- the API's entry point ---- */

static const VmStep migrate_steps[] = {vm_migrate_step_prepare, vm_migrate_step_plug,
                                       vm_migrate_step_move, vm_migrate_step_switch,
                                       vm_migrate_step_cleanup};
static const char *const migrate_names[] = {"prepare", "plug", "move", "switch", "cleanup"};
_Static_assert(ELEMENTSOF(migrate_names) == ELEMENTSOF(migrate_steps), "a name per step");

/* desired is kept and the final state read from the destination (vm_migrate_finish). The steps
 * connect to both ends themselves: the VM's host changes half-way. */
static const VmTaskDef migrate_def = {
    .steps = migrate_steps,
    .n_steps = (int)ELEMENTSOF(migrate_steps),
    .step_names = migrate_names,
    .state_on_claim = -1,
    .desired = VM_POWER_RUNNING,
    .state_on_success = VM_STATE_RUNNING,
    .own_conns = true,
    .finish = vm_migrate_finish,
    .rollback = vm_migrate_rollback,
};

int
vm_migrate_step_count(TaskKind kind)
{
    return kind == TASK_KIND_VM_MIGRATE ? migrate_def.n_steps : 0;
}

int64_t
vm_migrate_run_task(Core *core, Task *task, TaskRun *run)
{
    return vm_ops_task_run(core, task, run, &migrate_def);
}

int
vm_migrate_queue(Core *core, const char *scope, const char *id_or_name, json_t *params, Vm *ret_vm,
                 Task *ret_task, NbError **err)
{
    MigrateParams mp = {.shared = -1};
    VmMigrateRequest req;
    char dest[NB_NAME_MAX + 1];
    Vm vm;
    Task task;
    if (vm_request_parse_migrate(params, &req, err) < 0 ||
        vm_store_get(core->store, scope, id_or_name, &vm, err) < 0)
        return -1;
    snprintf(dest, sizeof(dest), "%s", req.host);
    mp.bandwidth_mib = req.bandwidth_mib;
    bool offline_given = req.offline >= 0;
    mp.offline = req.offline == 1;
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
    if (snapshot_ops_vm_check_migrate(core, &vm, err) < 0 ||
        volume_ops_vm_check_migrate(core, &vm, err) < 0)
        goto out;
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
    /* The row as claimed, read before the task is queued (it may be over quickly). */
    int got = vm_store_get(core->store, NULL, vm.id, ret_vm, err);
    task_engine_submit(core->tasks, task.id);
    if (got < 0) {
        task_clear(&task);
        r = -1;
        goto out;
    }
    *ret_task = task;
out:
    vm_clear(&vm);
    return r;
}
