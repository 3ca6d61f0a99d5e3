/*
 * Keeps each VM's observed state true by applying what the host registry reports: libvirt
 * lifecycle events (the fast path) and each host's periodic look at its domains. Reports are
 * queued by whichever thread saw them (a host's worker, libvirt's event thread) and applied by
 * the reconciler's one thread, in batches: one store transaction for everything that arrived
 * together. It does no I/O to hosts. A VM held by a task is skipped: the task owns its state.
 * The outcome of each drift:
 *   domain running / paused      -> running / paused, and desired follows (started outside Nimbus)
 *   domain shut off, not by us   -> stopped, desired stopped (the guest powered itself off, or an
 *                                   operator used virsh: either way it is the new intent)
 *   domain crashed               -> crashed, desired unchanged
 *   domain gone                  -> missing; `start` defines it again from the stored spec
 *   domain Nimbus doesn't know   -> logged once and left alone (never destroyed automatically)
 *   host unreachable             -> the host down, its VMs unknown (not stopped, not deleted)
 * An event about a VM that Nimbus places on another host (the source of a finished migration)
 * changes nothing. VMs in `error` (a create that was rolled back) have no domain by design and
 * are left alone.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../util/log.h"
#include "../util/strutil.h"
#include "core.h"

/* Reports applied in one transaction at most; the rest wait for the next round. */
#define RECONCILER_BATCH 512
/* How long the thread lets reports gather after the first arrives: 1,500 hosts looking every
 * 10 s make about ten commits a second instead of 150, for at most this much delay. */
#define RECONCILER_LINGER_MS 100

typedef struct ReportItem {
    HostReport *report;
    struct ReportItem *next;
} ReportItem;

typedef struct UnknownDomain {
    char *key; /* "<host>/<domain>" */
    unsigned looks;
} UnknownDomain;

struct Reconciler {
    Core *core;
    pthread_t thread;
    bool started;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool stopping;
    ReportItem *head, *tail;
    size_t queued;
    bool local_synced; /* the daemon's own host has had a look applied */
    /* the thread's own */
    UnknownDomain *unknown_seen; /* so that each is logged once */
    size_t n_unknown_seen;
};

void
reconciler_report(HostReport *rep, void *userdata)
{
    Reconciler *r = userdata;
    ReportItem *item = calloc(1, sizeof(*item));
    if (!item) {
        /* A look is repeated at the next sync; an event lost here is caught by it. */
        host_registry_report_free(rep);
        return;
    }
    item->report = rep;
    pthread_mutex_lock(&r->lock);
    if (r->tail)
        r->tail->next = item;
    else
        r->head = item;
    r->tail = item;
    r->queued++;
    pthread_cond_signal(&r->cond);
    pthread_mutex_unlock(&r->lock);
}

/* True the second time a look shows the unknown domain, and never again: a domain seen once
 * may be a VM deleted between the host's look and its report being applied. */
static bool
reconciler_second_sighting(Reconciler *r, const char *key)
{
    for (size_t i = 0; i < r->n_unknown_seen; i++) {
        if (streq(r->unknown_seen[i].key, key))
            return ++r->unknown_seen[i].looks == 2;
    }
    UnknownDomain *grown = realloc(r->unknown_seen, (r->n_unknown_seen + 1) * sizeof(*grown));
    if (grown) {
        r->unknown_seen = grown;
        r->unknown_seen[r->n_unknown_seen].key = strdup(key);
        r->unknown_seen[r->n_unknown_seen].looks = 1;
        if (r->unknown_seen[r->n_unknown_seen].key)
            r->n_unknown_seen++;
    }
    return false;
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

/* A growing array of observations for one batch. */
typedef struct ObsList {
    StoreObservation *v;
    size_t n, cap;
} ObsList;

static StoreObservation *
obs_add(ObsList *l, StoreObsKind kind, const HostReport *rep)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        StoreObservation *grown = realloc(l->v, cap * sizeof(*grown));
        if (!grown)
            return NULL;
        l->v = grown;
        l->cap = cap;
    }
    StoreObservation *o = &l->v[l->n++];
    memset(o, 0, sizeof(*o));
    o->kind = kind;
    o->desired = -1;
    memcpy(o->host_id, rep->host_id, sizeof(o->host_id));
    memcpy(o->host, rep->host, sizeof(o->host));
    return o;
}

/* What a domain state means for the VM: false for transitional states (the next look settles
 * them). */
static bool
reconciler_outcome(HvDomainState st, VmState *state, int *desired)
{
    *desired = -1;
    switch (st) {
    case HV_DOMAIN_RUNNING:
        *state = VM_STATE_RUNNING;
        *desired = VM_POWER_RUNNING;
        return true;
    case HV_DOMAIN_PAUSED:
        *state = VM_STATE_PAUSED;
        *desired = VM_POWER_PAUSED;
        return true;
    case HV_DOMAIN_SHUTOFF:
        *state = VM_STATE_STOPPED;
        *desired = VM_POWER_STOPPED;
        return true;
    case HV_DOMAIN_CRASHED:
        *state = VM_STATE_CRASHED;
        return true;
    case HV_DOMAIN_NONE:
        *state = VM_STATE_MISSING;
        return true;
    default:
        return false;
    }
}

static void
reconciler_observe_vm(ObsList *l, const HostReport *rep, const char *vm_id, HvDomainState st)
{
    VmState state;
    int desired;
    if (!reconciler_outcome(st, &state, &desired))
        return;
    StoreObservation *o = obs_add(l, STORE_OBS_VM_STATE, rep);
    if (!o)
        return;
    memcpy(o->vm_id, vm_id, sizeof(o->vm_id));
    memcpy(o->seen_at, rep->seen_at, sizeof(o->seen_at));
    o->state = state;
    o->desired = desired;
}

static void
reconciler_event(ObsList *l, const HostReport *rep)
{
    char id[NB_UUID_STRLEN];
    HvDomainState st;
    if (!reconciler_uuid_from_domain(rep->domain, id))
        return;
    switch (rep->event) {
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
    /* The store applies it only if the VM is on this host and no task holds it. */
    reconciler_observe_vm(l, rep, id, st);
}

static int
reconciler_domain_cmp(const void *a, const void *b)
{
    return strcmp(((const HvDomainInfo *)a)->name, ((const HvDomainInfo *)b)->name);
}

/* A host's look compared with the VMs the store places there. */
static void
reconciler_sync(Reconciler *r, ObsList *l, HostReport *rep)
{
    Core *core = r->core;
    _cleanup_error_ NbError *err = NULL;
    Vm *vms = NULL;
    size_t n_vms = 0;
    if (vm_store_list_by_host(core->store, rep->host, &vms, &n_vms, &err) < 0) {
        log_warn("reconciler: host %s: sync skipped: %s", rep->host, err->message);
        return;
    }
    StoreObservation *up = rep->has_facts || rep->touch ? obs_add(l, STORE_OBS_HOST_UP, rep) : NULL;
    if (up && rep->has_facts) {
        up->has_facts = true;
        up->facts = rep->facts;
    }
    for (size_t i = 0; i < rep->n_ips; i++) {
        char id[NB_UUID_STRLEN];
        StoreObservation *o;
        if (reconciler_uuid_from_domain(rep->ips[i].domain, id) &&
            (o = obs_add(l, STORE_OBS_VM_IP, rep))) {
            memcpy(o->vm_id, id, sizeof(o->vm_id));
            memcpy(o->ip, rep->ips[i].ip, sizeof(o->ip));
        }
    }
    bool *matched = calloc(rep->n_domains ? rep->n_domains : 1, sizeof(bool));
    char **want_ip = calloc(n_vms ? n_vms : 1, sizeof(char *));
    size_t n_want = 0;
    for (size_t i = 0; i < n_vms; i++) {
        Vm *vm = &vms[i];
        HvDomainInfo key;
        vm_domain_name(vm, key.name);
        HvDomainInfo *d = bsearch(&key, rep->domains, rep->n_domains, sizeof(*rep->domains),
                                  reconciler_domain_cmp);
        if (d && matched)
            matched[d - rep->domains] = true;
        if (vm->task_id[0] || vm->state == VM_STATE_ERROR)
            continue;
        HvDomainState st = d ? d->state : HV_DOMAIN_NONE;
        VmState want;
        int want_desired;
        /* Only drift is written: a quiet site's looks cost no store writes. */
        if (reconciler_outcome(st, &want, &want_desired) &&
            (want != vm->state || (want_desired >= 0 && (VmPower)want_desired != vm->desired)))
            reconciler_observe_vm(l, rep, vm->id, st);
        bool has_ip = vm->ip[0];
        for (size_t j = 0; j < rep->n_ips && !has_ip; j++)
            has_ip = streq(rep->ips[j].domain, key.name);
        if (st == HV_DOMAIN_RUNNING && !has_ip && want_ip &&
            (want_ip[n_want] = strdup(key.name)) != NULL)
            n_want++;
    }
    host_registry_want_ips(core->registry, rep->host, want_ip, n_want);
    for (size_t j = 0; matched && j < rep->n_domains; j++) {
        if (matched[j])
            continue;
        char id[NB_UUID_STRLEN];
        Vm other;
        _cleanup_error_ NbError *e = NULL;
        /* A VM of ours placed elsewhere: a migration's other end, which its task settles. */
        if (reconciler_uuid_from_domain(rep->domains[j].name, id) &&
            vm_store_get(core->store, NULL, id, &other, &e) == 0) {
            vm_clear(&other);
            continue;
        }
        _cleanup_free_ char *key = str_printf("%s/%s", rep->host, rep->domains[j].name);
        if (key && reconciler_second_sighting(r, key))
            log_warn("reconciler: domain %s on host %s looks like Nimbus's but no VM has it; "
                     "left alone",
                     rep->domains[j].name, rep->host);
    }
    free(matched);
    vm_list_free(vms, n_vms);
    if (streq(rep->host, core->cfg.host_name)) {
        pthread_mutex_lock(&r->lock);
        r->local_synced = true;
        pthread_cond_broadcast(&r->cond);
        pthread_mutex_unlock(&r->lock);
    }
}

static void
reconciler_apply(Reconciler *r, ReportItem *items)
{
    ObsList l = {0};
    for (ReportItem *it = items; it; it = it->next) {
        HostReport *rep = it->report;
        StoreObservation *o;
        switch (rep->kind) {
        case HOST_REPORT_UP:
            if ((o = obs_add(&l, STORE_OBS_HOST_UP, rep))) {
                o->has_facts = rep->has_facts;
                o->facts = rep->facts;
            }
            events_publish_host(r->core->events, rep->host, "up", NULL);
            /* Its storage pools, on the housekeeping thread (host I/O never runs here). Set
             * once at start; a host up before that is in housekeeping's first round. */
            housekeeping_host_up(__atomic_load_n(&r->core->housekeeping, __ATOMIC_ACQUIRE),
                                 rep->host);
            break;
        case HOST_REPORT_DOWN:
            if ((o = obs_add(&l, STORE_OBS_HOST_DOWN, rep)))
                memcpy(o->error, rep->error, sizeof(o->error));
            events_publish_host(r->core->events, rep->host, "down", rep->error);
            break;
        case HOST_REPORT_SYNC:
            reconciler_sync(r, &l, rep);
            break;
        case HOST_REPORT_EVENT:
            reconciler_event(&l, rep);
            break;
        }
    }
    _cleanup_error_ NbError *err = NULL;
    if (l.n && store_observe_batch(r->core->store, l.v, l.n, &err) < 0) {
        /* Nothing of the batch was written; the hosts' next looks say it again. */
        log_error("reconciler: %zu observations not recorded: %s", l.n, err->message);
    } else {
        for (size_t i = 0; i < l.n; i++) {
            const StoreObservation *o = &l.v[i];
            if (o->kind != STORE_OBS_VM_STATE || !o->applied)
                continue;
            log_info("reconciler: vm %s is now %s (was %s)", o->vm_id, vm_state_to_string(o->state),
                     vm_state_to_string(o->was));
            events_publish_vm(r->core->events, r->core->store, o->vm_id, NULL);
        }
    }
    free(l.v);
}

static void *
reconciler_thread(void *arg)
{
    Reconciler *r = arg;
    pthread_mutex_lock(&r->lock);
    for (;;) {
        while (!r->head && !r->stopping)
            pthread_cond_wait(&r->cond, &r->lock);
        if (!r->head && r->stopping)
            break;
        if (!r->stopping && r->queued < RECONCILER_BATCH) {
            struct timespec until = nb_deadline_after_ms(CLOCK_REALTIME, RECONCILER_LINGER_MS);
            while (!r->stopping && r->queued < RECONCILER_BATCH &&
                   pthread_cond_timedwait(&r->cond, &r->lock, &until) != ETIMEDOUT)
                ;
        }
        /* Take up to a batch off the queue; apply it without the lock, so reporters never
         * wait on the store. */
        ReportItem *batch = r->head, *last = r->head;
        size_t n = 1;
        while (last->next && n < RECONCILER_BATCH) {
            last = last->next;
            n++;
        }
        r->head = last->next;
        if (!r->head)
            r->tail = NULL;
        last->next = NULL;
        r->queued -= n;
        bool stopping = r->stopping;
        pthread_mutex_unlock(&r->lock);
        if (!stopping)
            reconciler_apply(r, batch);
        while (batch) {
            ReportItem *next = batch->next;
            host_registry_report_free(batch->report);
            free(batch);
            batch = next;
        }
        pthread_mutex_lock(&r->lock);
    }
    pthread_mutex_unlock(&r->lock);
    return NULL;
}

int
reconciler_new(Core *core, Reconciler **ret, NbError **err)
{
    Reconciler *r = calloc(1, sizeof(*r));
    if (!r)
        return nb_error_set(err, NB_ERR_INTERNAL, "out of memory");
    r->core = core;
    pthread_mutex_init(&r->lock, NULL);
    pthread_cond_init(&r->cond, NULL);
    if (pthread_create(&r->thread, NULL, reconciler_thread, r) != 0) {
        reconciler_free(r);
        return nb_error_set(err, NB_ERR_INTERNAL, "cannot start the reconciler");
    }
    r->started = true;
    *ret = r;
    return 0;
}

bool
reconciler_wait_local_synced(Reconciler *r, uint64_t timeout_ms)
{
    struct timespec until = nb_deadline_after_ms(CLOCK_REALTIME, timeout_ms);
    pthread_mutex_lock(&r->lock);
    while (!r->local_synced && !r->stopping) {
        if (pthread_cond_timedwait(&r->cond, &r->lock, &until) == ETIMEDOUT)
            break;
    }
    bool synced = r->local_synced;
    pthread_mutex_unlock(&r->lock);
    return synced;
}

void
reconciler_free(Reconciler *r)
{
    if (!r)
        return;
    if (r->started) {
        pthread_mutex_lock(&r->lock);
        r->stopping = true;
        pthread_cond_broadcast(&r->cond);
        pthread_mutex_unlock(&r->lock);
        pthread_join(r->thread, NULL);
    }
    while (r->head) {
        ReportItem *next = r->head->next;
        host_registry_report_free(r->head->report);
        free(r->head);
        r->head = next;
    }
    for (size_t i = 0; i < r->n_unknown_seen; i++)
        free(r->unknown_seen[i].key);
    free(r->unknown_seen);
    pthread_mutex_destroy(&r->lock);
    pthread_cond_destroy(&r->cond);
    free(r);
}
