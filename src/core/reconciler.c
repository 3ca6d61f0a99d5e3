/*
 * Keeps each VM's observed state true. libvirt lifecycle events are the fast path; a periodic
 * full sync catches whatever events missed. A VM held by a task is skipped: the task owns its
 * state. The outcome of each drift:
 *   domain running / paused      -> running / paused, and desired follows (started outside Nimbus)
 *   domain shut off, not by us   -> stopped, desired stopped (the guest powered itself off, or an
 *                                   operator used virsh: either way it is the new intent)
 *   domain crashed               -> crashed, desired unchanged
 *   domain gone                  -> missing; `start` defines it again from the stored spec
 *   domain Nimbus doesn't know   -> logged once and left alone (never destroyed automatically)
 *   host unreachable             -> the host down, its VMs unknown (not stopped, not deleted);
 *                                   reconnect with backoff, then a full sync of that host
 * Each host has its own connection and callbacks; an event about a VM that Nimbus places on
 * another host (the source of a finished migration) is ignored.
 * VMs in `error` (a create that was rolled back) have no domain by design and are left alone.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../util/log.h"
#include "../util/strutil.h"
#include "core.h"

struct Reconciler {
    Core *core;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool stopping;
    bool wake;           /* set by the close callback: sync (or reconnect) now */
    char **unknown_seen; /* unknown domains already logged, so each is logged once */
    size_t n_unknown_seen;
};

static bool
reconciler_first_sighting(Reconciler *r, const char *name)
{
    if (!r)
        return true;
    pthread_mutex_lock(&r->lock);
    bool first = true;
    for (size_t i = 0; i < r->n_unknown_seen && first; i++)
        first = !streq(r->unknown_seen[i], name);
    if (first) {
        char **grown = realloc(r->unknown_seen, (r->n_unknown_seen + 1) * sizeof(char *));
        if (grown) {
            r->unknown_seen = grown;
            r->unknown_seen[r->n_unknown_seen] = strdup(name);
            if (r->unknown_seen[r->n_unknown_seen])
                r->n_unknown_seen++;
        }
    }
    pthread_mutex_unlock(&r->lock);
    return first;
}

static bool
reconciler_uuid_from_domain(const char *domain_name, char out[NB_UUID_STRLEN])
{
    if (!str_startswith(domain_name, VM_DOMAIN_PREFIX))
        return false;
    const char *id = domain_name + strlen(VM_DOMAIN_PREFIX);
    if (!nb_uuid_is_valid(id))
        return false;
    memcpy(out, id, NB_UUID_STRLEN);
    return true;
}

static void
reconciler_apply(Core *core, const Vm *vm, HvDomainState st)
{
    _cleanup_error_ NbError *err = NULL;
    VmState state;
    int desired = -1;
    if (vm->state == VM_STATE_ERROR)
        return;
    switch (st) {
    case HV_DOMAIN_RUNNING:
        state = VM_STATE_RUNNING;
        desired = VM_POWER_RUNNING;
        break;
    case HV_DOMAIN_PAUSED:
        state = VM_STATE_PAUSED;
        desired = VM_POWER_PAUSED;
        break;
    case HV_DOMAIN_SHUTOFF:
        state = VM_STATE_STOPPED;
        desired = VM_POWER_STOPPED;
        break;
    case HV_DOMAIN_CRASHED:
        state = VM_STATE_CRASHED;
        break;
    case HV_DOMAIN_NONE:
        state = VM_STATE_MISSING;
        break;
    default:
        return; /* transitional: the next event or sync settles it */
    }
    int r = vm_store_observe(core->store, vm->id, state, desired, &err);
    if (r < 0)
        log_error("reconciler: vm %s: %s", vm->id, err->message);
    else if (r > 0)
        log_info("reconciler: vm %s (%s) is now %s (was %s)", vm->id, vm->name,
                 vm_state_to_string(state), vm_state_to_string(vm->state));
}

static void
reconciler_on_lifecycle(const char *domain_name, const char *uuid, HvEventKind kind, void *userdata)
{
    CoreHost *h = userdata;
    Core *core = h->core;
    char id[NB_UUID_STRLEN];
    Vm vm;
    HvDomainState st = HV_DOMAIN_NONE;
    _cleanup_error_ NbError *err = NULL;

    if (!reconciler_uuid_from_domain(domain_name, id))
        return;
    switch (kind) {
    case HV_EVENT_STARTED:
    case HV_EVENT_RESUMED:
        st = HV_DOMAIN_RUNNING;
        break;
    case HV_EVENT_SUSPENDED:
        st = HV_DOMAIN_PAUSED;
        break;
    case HV_EVENT_STOPPED_SHUTDOWN:
    case HV_EVENT_STOPPED_DESTROYED:
    case HV_EVENT_STOPPED_OTHER:
        st = HV_DOMAIN_SHUTOFF;
        break;
    case HV_EVENT_STOPPED_CRASHED:
        st = HV_DOMAIN_CRASHED;
        break;
    case HV_EVENT_UNDEFINED:
        st = HV_DOMAIN_NONE;
        break;
    default:
        return;
    }
    if (vm_store_get(core->store, NULL, id, &vm, &err) < 0)
        return; /* not ours (any more) */
    if (!vm.task_id[0] && streq(vm.host, h->name))
        reconciler_apply(core, &vm, st);
    vm_clear(&vm);
}

/* Capacity and versions, refreshed with each sync. */
static void
reconciler_refresh_facts(Core *core, CoreHost *h, HvConn *hv)
{
    _cleanup_error_ NbError *err = NULL;
    HostFacts facts;
    if (hv_host_facts(hv, core->cfg.pool_name, &facts, &err) < 0 ||
        host_store_set_facts(core->store, h->id, HOST_CONN_UP, &facts, NULL, &err) < 0)
        log_warn("host %s: facts not refreshed: %s", h->name, err->message);
}

void
reconciler_sync_host(Core *core, CoreHost *h)
{
    _cleanup_error_ NbError *err = NULL;
    HvDomainInfo *doms = NULL;
    size_t n_doms = 0, n_vms = 0;
    Vm *vms = NULL;

    HvConn *hv = host_registry_conn(core, h->name);
    if (!hv || hv_domain_list(hv, VM_DOMAIN_PREFIX, &doms, &n_doms, &err) < 0 ||
        vm_store_list_by_host(core->store, h->name, &vms, &n_vms, &err) < 0) {
        if (err)
            log_warn("reconciler: host %s: sync skipped: %s", h->name, err->message);
        hv_conn_free(hv);
        free(doms);
        return;
    }
    reconciler_refresh_facts(core, h, hv);
    for (size_t i = 0; i < n_vms; i++) {
        Vm *vm = &vms[i];
        if (vm->task_id[0])
            continue;
        char domain[64];
        vm_domain_name(vm, domain);
        HvDomainState st = HV_DOMAIN_NONE;
        for (size_t j = 0; j < n_doms; j++) {
            if (streq(doms[j].name, domain)) {
                st = doms[j].state;
                break;
            }
        }
        reconciler_apply(core, vm, st);
        if (st == HV_DOMAIN_RUNNING && !vm->ip[0]) {
            char ip[64] = "";
            _cleanup_error_ NbError *e = NULL;
            if (hv_domain_get_ipv4(hv, domain, ip, sizeof(ip), &e) == 0 && ip[0])
                vm_store_set_ip(core->store, vm->id, ip, &e);
        }
    }
    for (size_t j = 0; j < n_doms; j++) {
        bool known = false;
        for (size_t i = 0; i < n_vms && !known; i++) {
            char domain[64];
            vm_domain_name(&vms[i], domain);
            known = streq(doms[j].name, domain);
        }
        char id[NB_UUID_STRLEN];
        Vm other;
        _cleanup_error_ NbError *e = NULL;
        /* A VM of ours placed elsewhere: a migration's other end, which its task settles. */
        if (!known && reconciler_uuid_from_domain(doms[j].name, id) &&
            vm_store_get(core->store, NULL, id, &other, &e) == 0) {
            vm_clear(&other);
            known = true;
        }
        _cleanup_free_ char *key = str_printf("%s/%s", h->name, doms[j].name);
        if (!known && key && reconciler_first_sighting(core->reconciler, key))
            log_warn("reconciler: domain %s on host %s looks like Nimbus's but no VM has it; "
                     "left alone",
                     doms[j].name, h->name);
    }
    hv_conn_free(hv);
    free(doms);
    vm_list_free(vms, n_vms);
}

void
reconciler_wake(Reconciler *r)
{
    if (!r)
        return;
    pthread_mutex_lock(&r->lock);
    r->wake = true;
    pthread_cond_signal(&r->cond);
    pthread_mutex_unlock(&r->lock);
}

static void
reconciler_on_close(void *userdata)
{
    reconciler_wake(((CoreHost *)userdata)->core->reconciler);
}

int
reconciler_open_conn(CoreHost *h, HvConn **ret, NbError **err)
{
    HvConn *c = NULL;
    if (hv_conn_open(h->uri, &c, err) < 0 ||
        hv_conn_set_callbacks(c, reconciler_on_lifecycle, reconciler_on_close, h, err) < 0) {
        hv_conn_free(c);
        return -1;
    }
    *ret = c;
    return 0;
}

/* Waits up to seconds, or until woken or stopping. Returns false when stopping. */
static bool
reconciler_wait(Reconciler *r, unsigned seconds)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += seconds;
    pthread_mutex_lock(&r->lock);
    while (!r->stopping && !r->wake) {
        if (pthread_cond_timedwait(&r->cond, &r->lock, &until) == ETIMEDOUT)
            break;
    }
    r->wake = false;
    bool go_on = !r->stopping;
    pthread_mutex_unlock(&r->lock);
    return go_on;
}

/* One host's turn: sync when due; notice a lost connection; reconnect when its backoff says. */
static void
reconciler_visit(Core *core, CoreHost *h, uint64_t now)
{
    HvConn *hv = host_registry_conn(core, h->name);
    bool had = hv != NULL;
    bool alive = hv && hv_conn_is_alive(hv);
    hv_conn_free(hv);
    if (alive) {
        if (now >= h->next_sync_ms) {
            h->next_sync_ms = now + (uint64_t)core->cfg.sync_interval_s * 1000;
            reconciler_sync_host(core, h);
        }
        return;
    }
    if (had)
        host_registry_mark_down(core, h, "the libvirt connection was lost");
    if (now < h->next_try_ms)
        return;
    _cleanup_error_ NbError *err = NULL;
    if (host_registry_connect(core, h, &err) < 0) {
        log_warn("reconciler: host %s: reconnect failed (next try in %us): %s", h->name,
                 h->backoff_s, err->message);
        host_registry_mark_down(core, h, err->message);
        return;
    }
    log_info("reconciler: host %s is up", h->name);
    h->next_sync_ms = now + (uint64_t)core->cfg.sync_interval_s * 1000;
    reconciler_sync_host(core, h);
}

static void *
reconciler_thread(void *arg)
{
    Reconciler *r = arg;
    Core *core = r->core;
    /* A second's tick: each host keeps its own sync and reconnect schedule. */
    while (reconciler_wait(r, 1)) {
        size_t n = 0;
        CoreHost **hosts = host_registry_snapshot(core, &n);
        for (size_t i = 0; i < n; i++)
            reconciler_visit(core, hosts[i], nb_monotonic_ms());
        free(hosts);
    }
    return NULL;
}

int
reconciler_start(Core *core, Reconciler **ret, NbError **err)
{
    Reconciler *r = calloc(1, sizeof(*r));
    if (!r)
        return nb_error_set(err, NB_ERR_INTERNAL, "out of memory");
    r->core = core;
    pthread_mutex_init(&r->lock, NULL);
    pthread_cond_init(&r->cond, NULL);
    if (pthread_create(&r->thread, NULL, reconciler_thread, r) != 0) {
        free(r);
        return nb_error_set(err, NB_ERR_INTERNAL, "cannot start the reconciler");
    }
    *ret = r;
    return 0;
}

void
reconciler_stop(Reconciler *r)
{
    if (!r)
        return;
    pthread_mutex_lock(&r->lock);
    r->stopping = true;
    pthread_cond_signal(&r->cond);
    pthread_mutex_unlock(&r->lock);
    pthread_join(r->thread, NULL);
    for (size_t i = 0; i < r->n_unknown_seen; i++)
        free(r->unknown_seen[i]);
    free(r->unknown_seen);
    pthread_mutex_destroy(&r->lock);
    pthread_cond_destroy(&r->cond);
    free(r);
}
