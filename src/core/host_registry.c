/*
 * The host registry: one entry and one worker thread per host (see host_registry.h). Workers
 * block in libvirt calls on their own host only; a host that never answers keeps its worker in
 * virConnectOpen, and the watchdog reports it down when the connect deadline passes.
 */
#include "host_registry.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../model/vm.h"
#include "../util/cleanup.h"
#include "../util/log.h"
#include "../util/strutil.h"
#include "../util/timeutil.h"

#define REG_BACKOFF_MAX_S 30
/* How many times less often a quiet host is looked at (reg_host_next_look). */
#define REG_QUIET_FACTOR 3
#define REG_STOP_DEADLINE_MS 2500
/* libvirt calls go deep into libxml2 and the RPC code, but nowhere near the default 8 MiB. */
#define REG_WORKER_STACK (512 * 1024)

typedef struct RegHost {
    HostRegistry *reg;
    char id[NB_UUID_STRLEN];
    char name[NB_NAME_MAX + 1];
    char uri[NB_URI_MAX + 1];
    pthread_cond_t cond;
    pthread_t thread;
    bool thread_started;
    bool thread_joined;
    /* under reg->lock */
    HvConn *hv;
    HostConn state;
    bool removed;
    bool wake;
    bool busy;                   /* a lifecycle event came since the last look */
    uint64_t connect_started_ms; /* 0 when no connect is under way */
    bool deadline_reported;
    char **want_ip;
    size_t n_want_ip;
    /* the worker's own */
    unsigned backoff_s;
    bool have_facts;
    HostFacts facts;
    uint64_t touched_ms; /* when a report last asked to record the contact */
    bool have_digest;
    uint64_t digest; /* of the last look's domains */
} RegHost;

struct HostRegistry {
    char *pool_name, *pool_path, *network;
    unsigned sync_interval_s, connect_timeout_s;
    HostReportFn report;
    void *report_data;
    pthread_mutex_t lock;
    pthread_cond_t cond; /* the watchdog's */
    bool stopping;
    bool abandoned;      /* a worker could not be joined: the registry must outlive the process */
    size_t n_connecting; /* connects under way: the watchdog has nothing to check without one */
    RegHost **hosts;
    size_t n_hosts, cap_hosts;
    size_t *index; /* open addressing by name: positions in hosts + 1, 0 empty */
    size_t cap_index;
    pthread_t watchdog;
    bool watchdog_started;
};

void
host_registry_report_free(HostReport *r)
{
    if (!r)
        return;
    free(r->domains);
    free(r->ips);
    free(r);
}

/* ---- the name index ---- */

static size_t
reg_hash(const char *s)
{
    size_t h = 1469598103934665603u; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211u;
    return h;
}

/* With the lock held: the entry of a host that is not removed, or NULL. */
static RegHost *
reg_find_locked(HostRegistry *reg, const char *name)
{
    if (!reg->cap_index)
        return NULL;
    for (size_t i = reg_hash(name) & (reg->cap_index - 1);; i = (i + 1) & (reg->cap_index - 1)) {
        size_t pos = reg->index[i];
        if (!pos)
            return NULL;
        RegHost *h = reg->hosts[pos - 1];
        if (!h->removed && streq(h->name, name))
            return h;
    }
}

static void
reg_index_put(size_t *index, size_t cap, RegHost **hosts, size_t pos)
{
    size_t i = reg_hash(hosts[pos]->name) & (cap - 1);
    while (index[i])
        i = (i + 1) & (cap - 1);
    index[i] = pos + 1;
}

/* With the lock held: rebuilds the index, without removed hosts, at a load under one half. */
static int
reg_index_rebuild_locked(HostRegistry *reg)
{
    size_t cap = 64;
    while (cap < reg->n_hosts * 2 + 2)
        cap *= 2;
    size_t *index = calloc(cap, sizeof(*index));
    if (!index)
        return -ENOMEM;
    for (size_t i = 0; i < reg->n_hosts; i++) {
        if (!reg->hosts[i]->removed)
            reg_index_put(index, cap, reg->hosts, i);
    }
    free(reg->index);
    reg->index = index;
    reg->cap_index = cap;
    return 0;
}

/* ---- reporting ---- */

static HostReport *
reg_report_new(const RegHost *h, HostReportKind kind)
{
    HostReport *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->kind = kind;
    memcpy(r->host_id, h->id, sizeof(r->host_id));
    memcpy(r->host, h->name, sizeof(r->host));
    return r;
}

/* Hands the report upward unless the registry is stopping (then nobody may be listening). */
static void
reg_report(HostRegistry *reg, HostReport *r)
{
    if (!r)
        return;
    pthread_mutex_lock(&reg->lock);
    if (!reg->stopping) {
        reg->report(r, reg->report_data);
        r = NULL;
    }
    pthread_mutex_unlock(&reg->lock);
    host_registry_report_free(r);
}

static void
reg_report_down(RegHost *h, const char *why)
{
    HostReport *r = reg_report_new(h, HOST_REPORT_DOWN);
    if (r)
        snprintf(r->error, sizeof(r->error), "%s", why);
    reg_report(h->reg, r);
}

/* ---- libvirt callbacks (event thread): only queue or wake ---- */

static void
reg_on_lifecycle(const char *domain_name, const char *uuid, HvEventKind kind, void *userdata)
{
    RegHost *h = userdata;
    HostReport *r = reg_report_new(h, HOST_REPORT_EVENT);
    if (!r)
        return;
    snprintf(r->domain, sizeof(r->domain), "%s", domain_name);
    r->event = kind;
    nb_timestamp_now(r->seen_at);
    reg_report(h->reg, r);
    pthread_mutex_lock(&h->reg->lock);
    h->busy = true;
    pthread_mutex_unlock(&h->reg->lock);
}

static void
reg_on_close(void *userdata)
{
    RegHost *h = userdata;
    pthread_mutex_lock(&h->reg->lock);
    h->wake = true;
    pthread_cond_signal(&h->cond);
    pthread_mutex_unlock(&h->reg->lock);
}

/* ---- the worker ---- */

static bool
reg_host_done_locked(const RegHost *h)
{
    return h->reg->stopping || h->removed;
}

/* Sleeps up to ms, or until woken; false when the worker must end. */
static bool
reg_host_wait(RegHost *h, uint64_t ms)
{
    HostRegistry *reg = h->reg;
    struct timespec until = nb_deadline_after_ms(CLOCK_MONOTONIC, ms);
    pthread_mutex_lock(&reg->lock);
    while (!reg_host_done_locked(h) && !h->wake) {
        if (pthread_cond_timedwait(&h->cond, &reg->lock, &until) == ETIMEDOUT)
            break;
    }
    h->wake = false;
    bool go_on = !reg_host_done_locked(h);
    pthread_mutex_unlock(&reg->lock);
    return go_on;
}

static int
reg_host_connect(RegHost *h, HvConn **ret, HostFacts *facts, NbError **err)
{
    HostRegistry *reg = h->reg;
    HvConn *c = NULL;
    if (hv_conn_open(h->uri, &c, err) < 0 ||
        hv_conn_set_callbacks(c, reg_on_lifecycle, reg_on_close, h, err) < 0 ||
        hv_pool_ensure(c, reg->pool_name, reg->pool_path, err) < 0 ||
        hv_network_ensure_active(c, reg->network, err) < 0 ||
        hv_host_facts(c, reg->pool_name, facts, err) < 0) {
        hv_conn_free(c);
        return -1;
    }
    *ret = c;
    return 0;
}

/* One connect attempt; false when the worker must end. */
static bool
reg_host_try_connect(RegHost *h)
{
    HostRegistry *reg = h->reg;
    pthread_mutex_lock(&reg->lock);
    h->connect_started_ms = nb_monotonic_ms();
    reg->n_connecting++;
    h->deadline_reported = false;
    pthread_mutex_unlock(&reg->lock);

    _cleanup_error_ NbError *err = NULL;
    HvConn *c = NULL;
    HostFacts facts;
    memset(&facts, 0, sizeof(facts));
    int r = reg_host_connect(h, &c, &facts, &err);

    pthread_mutex_lock(&reg->lock);
    h->connect_started_ms = 0;
    reg->n_connecting--;
    bool done = reg_host_done_locked(h);
    HostConn was = h->state;
    if (!done && r == 0) {
        h->hv = hv_conn_ref(c);
        h->state = HOST_CONN_UP;
    } else if (!done) {
        h->state = HOST_CONN_DOWN;
    }
    pthread_mutex_unlock(&reg->lock);
    if (done) {
        hv_conn_free(c);
        return false;
    }
    if (r == 0) {
        log_info("host %s (%s): connected; %u CPUs, %ju MiB, pool %ju GiB", h->name, h->uri,
                 facts.vcpus, (uintmax_t)facts.ram_mib, (uintmax_t)facts.disk_gib);
        HostReport *rep = reg_report_new(h, HOST_REPORT_UP);
        if (rep) {
            rep->has_facts = true;
            rep->facts = facts;
        }
        h->facts = facts;
        h->have_facts = true;
        h->touched_ms = nb_monotonic_ms();
        h->have_digest = false;
        h->backoff_s = 1;
        reg_report(reg, rep);
        hv_conn_free(c);
        return true;
    }
    /* Reported once per outage: the watchdog may already have said so at the deadline. */
    if (was != HOST_CONN_DOWN) {
        log_error("host %s (%s) is down: %s; its VMs are now unknown", h->name, h->uri,
                  err->message);
        reg_report_down(h, err->message);
    } else {
        log_warn("host %s: reconnect failed (next try in %us): %s", h->name, h->backoff_s,
                 err->message);
    }
    unsigned wait_s = h->backoff_s;
    h->backoff_s = h->backoff_s * 2 > REG_BACKOFF_MAX_S ? REG_BACKOFF_MAX_S : h->backoff_s * 2;
    return reg_host_wait(h, (uint64_t)wait_s * 1000);
}

static bool
reg_facts_equal(const HostFacts *a, const HostFacts *b)
{
    return a->vcpus == b->vcpus && a->ram_mib == b->ram_mib && a->free_ram_mib == b->free_ram_mib &&
           a->disk_gib == b->disk_gib && a->disk_free_gib == b->disk_free_gib &&
           streq(a->hostname, b->hostname) && streq(a->cpu_model, b->cpu_model) &&
           streq(a->libvirt_version, b->libvirt_version) && streq(a->qemu_version, b->qemu_version);
}

/* The addresses the reconciler asked for, looked up in the network's leases. The ones not found
 * yet stay asked for, unless the reconciler has asked anew meanwhile. */
static void
reg_host_find_ips(RegHost *h, HvConn *c, HostReport *rep)
{
    HostRegistry *reg = h->reg;
    pthread_mutex_lock(&reg->lock);
    char **want = h->want_ip;
    size_t n = h->n_want_ip;
    h->want_ip = NULL;
    h->n_want_ip = 0;
    pthread_mutex_unlock(&reg->lock);
    if (n)
        rep->ips = calloc(n, sizeof(*rep->ips));
    size_t left = 0;
    for (size_t i = 0; i < n; i++) {
        _cleanup_error_ NbError *err = NULL;
        char ip[64] = "";
        if (rep->ips && hv_domain_get_ipv4(c, want[i], ip, sizeof(ip), &err) == 0 && ip[0]) {
            HostIp *hi = &rep->ips[rep->n_ips++];
            snprintf(hi->domain, sizeof(hi->domain), "%s", want[i]);
            memcpy(hi->ip, ip, sizeof(hi->ip));
            free(want[i]);
        } else {
            want[left++] = want[i];
        }
    }
    if (!want)
        return;
    pthread_mutex_lock(&reg->lock);
    if (!h->want_ip && left) {
        h->want_ip = want;
        h->n_want_ip = left;
        want = NULL;
    }
    pthread_mutex_unlock(&reg->lock);
    for (size_t i = 0; want && i < left; i++)
        free(want[i]);
    free(want);
}

static int
reg_domain_cmp(const void *a, const void *b)
{
    return strcmp(((const HvDomainInfo *)a)->name, ((const HvDomainInfo *)b)->name);
}

/* A digest of what a look saw (names and states, sorted), to tell a look that saw nothing new. */
static uint64_t
reg_domains_digest(const HvDomainInfo *d, size_t n)
{
    uint64_t x = 1469598103934665603u ^ n;
    for (size_t i = 0; i < n; i++) {
        x = (x ^ reg_hash(d[i].name)) * 1099511628211u;
        x = (x ^ (uint64_t)d[i].state) * 1099511628211u;
    }
    return x;
}

/* A pseudo-random number below n, different for each host and each call. */
static uint64_t
reg_jitter(RegHost *h, uint64_t n)
{
    uint64_t x = reg_hash(h->name) ^ nb_monotonic_ms() * 0x9e3779b97f4a7c15u;
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdu;
    x ^= x >> 33;
    return n ? x % n : 0;
}

/* One look at the host; true when it saw nothing new (see reg_host_next_look). */
static bool
reg_host_sync(RegHost *h, HvConn *c)
{
    HostRegistry *reg = h->reg;
    _cleanup_error_ NbError *err = NULL;
    HostReport *rep = reg_report_new(h, HOST_REPORT_SYNC);
    if (!rep)
        return false;
    nb_timestamp_now(rep->seen_at);
    if (hv_domain_list(c, VM_DOMAIN_PREFIX, &rep->domains, &rep->n_domains, &err) < 0) {
        log_warn("host %s: sync skipped: %s", h->name, err->message);
        host_registry_report_free(rep);
        return false;
    }
    /* Capacity and versions change rarely: read every few looks (and at each connect), and
     * handed on only when they changed. last_contact is written as often, facts or not. */
    uint64_t now = nb_monotonic_ms();
    if (now - h->touched_ms >= (uint64_t)reg->sync_interval_s * 6000) {
        HostFacts facts;
        memset(&facts, 0, sizeof(facts));
        if (hv_host_facts(c, reg->pool_name, &facts, &err) == 0) {
            if (!h->have_facts || !reg_facts_equal(&facts, &h->facts)) {
                rep->has_facts = true;
                rep->facts = facts;
                h->facts = facts;
                h->have_facts = true;
            }
        } else {
            log_warn("host %s: facts not refreshed: %s", h->name, err->message);
        }
        rep->touch = true;
        h->touched_ms = now;
    }
    qsort(rep->domains, rep->n_domains, sizeof(*rep->domains), reg_domain_cmp);
    reg_host_find_ips(h, c, rep);
    /* A look that saw what the last one saw, found no address and is not due to record the
     * contact changes nothing: it goes no further than this thread. Every sixth look is
     * reported whatever it saw, for drift that did not come from libvirt. */
    uint64_t digest = reg_domains_digest(rep->domains, rep->n_domains);
    bool same = h->have_digest && digest == h->digest;
    h->digest = digest;
    h->have_digest = true;
    if (same && !rep->touch && !rep->has_facts && rep->n_ips == 0) {
        host_registry_report_free(rep);
        return true;
    }
    reg_report(reg, rep);
    return same && rep->n_ips == 0;
}

/*
 * When to look next. Lifecycle events are the fast path and the looks the safety net (for lost
 * events and drift libvirt does not announce): a host whose last look saw nothing new, with no
 * event since and no address still wanted, is looked at REG_QUIET_FACTOR times less often.
 * Nova's power-state sync, for comparison, runs every 600 s.
 */
static uint64_t
reg_host_next_look(RegHost *h, bool quiet)
{
    HostRegistry *reg = h->reg;
    pthread_mutex_lock(&reg->lock);
    bool relaxed = quiet && !h->busy && h->n_want_ip == 0;
    h->busy = false;
    pthread_mutex_unlock(&reg->lock);
    uint64_t interval = (uint64_t)reg->sync_interval_s * 1000 * (relaxed ? REG_QUIET_FACTOR : 1);
    /* Up to a tenth of jitter, so that hosts that connected together do not all look at the same
     * moment forever after. */
    return interval - interval / 10 + reg_jitter(h, interval / 5 + 1);
}

static HvConn *
reg_host_conn_ref(RegHost *h)
{
    pthread_mutex_lock(&h->reg->lock);
    HvConn *c = hv_conn_ref(h->hv);
    pthread_mutex_unlock(&h->reg->lock);
    return c;
}

/* Drops the host's connection; with a reason, records it down. */
static void
reg_host_drop_conn(RegHost *h, const char *why)
{
    pthread_mutex_lock(&h->reg->lock);
    HvConn *old = h->hv;
    h->hv = NULL;
    bool report = why && h->state != HOST_CONN_DOWN && !reg_host_done_locked(h);
    if (why)
        h->state = HOST_CONN_DOWN;
    pthread_mutex_unlock(&h->reg->lock);
    hv_conn_free(old);
    if (report) {
        log_error("host %s (%s) is down: %s; its VMs are now unknown", h->name, h->uri, why);
        reg_report_down(h, why);
    }
}

static void *
reg_host_worker(void *arg)
{
    RegHost *h = arg;
    for (;;) {
        HvConn *c = reg_host_conn_ref(h);
        if (!c) {
            if (!reg_host_try_connect(h))
                break;
            continue;
        }
        if (!hv_conn_is_alive(c)) {
            hv_conn_free(c);
            reg_host_drop_conn(h, "the libvirt connection was lost");
            if (!reg_host_wait(h, 1000))
                break;
            continue;
        }
        bool quiet = reg_host_sync(h, c);
        hv_conn_free(c);
        if (!reg_host_wait(h, reg_host_next_look(h, quiet)))
            break;
    }
    reg_host_drop_conn(h, NULL);
    return NULL;
}

/* ---- the watchdog: connect deadlines ---- */

static void *
reg_watchdog(void *arg)
{
    HostRegistry *reg = arg;
    pthread_mutex_lock(&reg->lock);
    while (!reg->stopping) {
        struct timespec until = nb_deadline_after_ms(CLOCK_MONOTONIC, 1000);
        pthread_cond_timedwait(&reg->cond, &reg->lock, &until);
        if (reg->stopping)
            break;
        if (!reg->n_connecting)
            continue;
        uint64_t now = nb_monotonic_ms(), limit = (uint64_t)reg->connect_timeout_s * 1000;
        for (size_t i = 0; i < reg->n_hosts; i++) {
            RegHost *h = reg->hosts[i];
            if (h->removed || !h->connect_started_ms || h->deadline_reported ||
                now - h->connect_started_ms < limit)
                continue;
            h->deadline_reported = true;
            if (h->state == HOST_CONN_DOWN)
                continue; /* still down from before: said already */
            h->state = HOST_CONN_DOWN;
            HostReport *r = reg_report_new(h, HOST_REPORT_DOWN);
            if (r) {
                snprintf(r->error, sizeof(r->error), "no answer within %us (connect deadline)",
                         reg->connect_timeout_s);
                log_error("host %s (%s) is down: %s", h->name, h->uri, r->error);
                /* The lock is held: hand it over directly, reg_report would lock again. */
                reg->report(r, reg->report_data);
            }
        }
    }
    pthread_mutex_unlock(&reg->lock);
    return NULL;
}

/* ---- the registry ---- */

int
host_registry_new(const HostRegistryConfig *cfg, HostReportFn report, void *userdata,
                  HostRegistry **ret)
{
    HostRegistry *reg = calloc(1, sizeof(*reg));
    if (!reg)
        return -ENOMEM;
    reg->pool_name = strdup(cfg->pool_name);
    reg->pool_path = strdup(cfg->pool_path);
    reg->network = strdup(cfg->network);
    reg->sync_interval_s = cfg->sync_interval_s ? cfg->sync_interval_s : 10;
    reg->connect_timeout_s = cfg->connect_timeout_s ? cfg->connect_timeout_s : 15;
    reg->report = report;
    reg->report_data = userdata;
    pthread_mutex_init(&reg->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&reg->cond, &ca);
    pthread_condattr_destroy(&ca);
    if (!reg->pool_name || !reg->pool_path || !reg->network) {
        host_registry_free(reg);
        return -ENOMEM;
    }
    *ret = reg;
    return 0;
}

/* With the lock held: a new entry, its worker started. */
static int
reg_add_locked(HostRegistry *reg, const Host *src)
{
    if (reg_find_locked(reg, src->name))
        return 0; /* registered already */
    RegHost *h = calloc(1, sizeof(*h));
    if (!h)
        return -ENOMEM;
    h->reg = reg;
    memcpy(h->id, src->id, sizeof(h->id));
    snprintf(h->name, sizeof(h->name), "%s", src->name);
    snprintf(h->uri, sizeof(h->uri), "%s", src->uri);
    h->state = HOST_CONN_CONNECTING;
    h->backoff_s = 1;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&h->cond, &ca);
    pthread_condattr_destroy(&ca);
    if (reg->n_hosts == reg->cap_hosts) {
        size_t cap = reg->cap_hosts ? reg->cap_hosts * 2 : 64;
        RegHost **grown = realloc(reg->hosts, cap * sizeof(*grown));
        if (!grown) {
            pthread_cond_destroy(&h->cond);
            free(h);
            return -ENOMEM;
        }
        reg->hosts = grown;
        reg->cap_hosts = cap;
    }
    reg->hosts[reg->n_hosts++] = h;
    if (reg->n_hosts * 2 + 2 > reg->cap_index) {
        if (reg_index_rebuild_locked(reg) < 0) {
            reg->n_hosts--;
            pthread_cond_destroy(&h->cond);
            free(h);
            return -ENOMEM;
        }
    } else {
        reg_index_put(reg->index, reg->cap_index, reg->hosts, reg->n_hosts - 1);
    }
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, REG_WORKER_STACK);
    int e = pthread_create(&h->thread, &attr, reg_host_worker, h);
    pthread_attr_destroy(&attr);
    if (e != 0) {
        /* Kept in the registry, down: a later add or restart tries again. */
        h->state = HOST_CONN_DOWN;
        log_error("host %s: cannot start its worker: %s", h->name, strerror(e));
        return -e;
    }
    h->thread_started = true;
    return 0;
}

int
host_registry_start(HostRegistry *reg, const Host *hosts, size_t n, NbError **err)
{
    pthread_mutex_lock(&reg->lock);
    int r = 0;
    for (size_t i = 0; i < n && r == 0; i++)
        r = reg_add_locked(reg, &hosts[i]);
    if (r == 0 && !reg->watchdog_started) {
        int e = pthread_create(&reg->watchdog, NULL, reg_watchdog, reg);
        r = -e;
        reg->watchdog_started = e == 0;
    }
    pthread_mutex_unlock(&reg->lock);
    if (r < 0)
        return nb_error_set(err, NB_ERR_INTERNAL, "host registry: %s", strerror(-r));
    return 0;
}

int
host_registry_add_host(HostRegistry *reg, const Host *h)
{
    pthread_mutex_lock(&reg->lock);
    int r = reg->stopping ? -ESHUTDOWN : reg_add_locked(reg, h);
    pthread_mutex_unlock(&reg->lock);
    return r;
}

void
host_registry_remove_host(HostRegistry *reg, const char *name)
{
    pthread_mutex_lock(&reg->lock);
    RegHost *h = reg_find_locked(reg, name);
    if (h) {
        h->removed = true;
        pthread_cond_signal(&h->cond);
        /* Its slot stays (callbacks may still point at it); the name may be used again. */
        reg_index_rebuild_locked(reg);
    }
    pthread_mutex_unlock(&reg->lock);
}

HvConn *
host_registry_get_conn(HostRegistry *reg, const char *name)
{
    pthread_mutex_lock(&reg->lock);
    RegHost *h = reg_find_locked(reg, name);
    HvConn *c = h ? hv_conn_ref(h->hv) : NULL;
    pthread_mutex_unlock(&reg->lock);
    return c;
}

HostConn
host_registry_get_state(HostRegistry *reg, const char *name)
{
    pthread_mutex_lock(&reg->lock);
    RegHost *h = reg_find_locked(reg, name);
    HostConn st = h ? h->state : HOST_CONN_DOWN;
    pthread_mutex_unlock(&reg->lock);
    return st;
}

HostConn
host_registry_wait(HostRegistry *reg, const char *name, uint64_t timeout_ms)
{
    uint64_t until = nb_monotonic_ms() + timeout_ms;
    for (;;) {
        HostConn st = host_registry_get_state(reg, name);
        if (st != HOST_CONN_CONNECTING || nb_monotonic_ms() >= until)
            return st;
        struct timespec ts = {.tv_sec = 0, .tv_nsec = 20 * 1000000L};
        nanosleep(&ts, NULL);
    }
}

void
host_registry_want_ips(HostRegistry *reg, const char *name, char **domains, size_t n)
{
    pthread_mutex_lock(&reg->lock);
    RegHost *h = reg_find_locked(reg, name);
    if (h) {
        for (size_t i = 0; i < h->n_want_ip; i++)
            free(h->want_ip[i]);
        free(h->want_ip);
        h->want_ip = domains;
        h->n_want_ip = n;
        domains = NULL;
    }
    pthread_mutex_unlock(&reg->lock);
    for (size_t i = 0; domains && i < n; i++)
        free(domains[i]);
    free(domains);
}

void
host_registry_counts(HostRegistry *reg, unsigned counts[_HOST_CONN_MAX])
{
    memset(counts, 0, sizeof(unsigned) * _HOST_CONN_MAX);
    pthread_mutex_lock(&reg->lock);
    for (size_t i = 0; i < reg->n_hosts; i++) {
        if (!reg->hosts[i]->removed)
            counts[reg->hosts[i]->state]++;
    }
    pthread_mutex_unlock(&reg->lock);
}

void
host_registry_stop(HostRegistry *reg)
{
    if (!reg)
        return;
    pthread_mutex_lock(&reg->lock);
    reg->stopping = true;
    pthread_cond_signal(&reg->cond);
    for (size_t i = 0; i < reg->n_hosts; i++)
        pthread_cond_signal(&reg->hosts[i]->cond);
    size_t n = reg->n_hosts;
    pthread_mutex_unlock(&reg->lock);
    if (reg->watchdog_started) {
        pthread_join(reg->watchdog, NULL);
        reg->watchdog_started = false;
    }
    /* One deadline for all: a thousand silent hosts must not cost a thousand waits. */
    struct timespec until = nb_deadline_after_ms(CLOCK_REALTIME, REG_STOP_DEADLINE_MS);
    size_t left = 0;
    for (size_t i = 0; i < n; i++) {
        RegHost *h = reg->hosts[i];
        if (!h->thread_started || h->thread_joined)
            continue;
        if (pthread_timedjoin_np(h->thread, NULL, &until) == 0) {
            h->thread_joined = true;
        } else {
            pthread_detach(h->thread);
            left++;
        }
    }
    if (left) {
        reg->abandoned = true;
        log_warn("host registry: %zu host workers are stuck in libvirt calls; left behind", left);
    }
}

void
host_registry_free(HostRegistry *reg)
{
    if (!reg)
        return;
    if (reg->abandoned)
        return; /* a stuck worker still points here; the process is about to end */
    for (size_t i = 0; i < reg->n_hosts; i++) {
        RegHost *h = reg->hosts[i];
        hv_conn_free(h->hv);
        for (size_t j = 0; j < h->n_want_ip; j++)
            free(h->want_ip[j]);
        free(h->want_ip);
        pthread_cond_destroy(&h->cond);
        free(h);
    }
    free(reg->hosts);
    free(reg->index);
    free(reg->pool_name);
    free(reg->pool_path);
    free(reg->network);
    pthread_mutex_destroy(&reg->lock);
    pthread_cond_destroy(&reg->cond);
    free(reg);
}
