/*
 * The host registry (see host_registry.h): one entry per host, and a few threads for all of
 * them. Looks (syncs, liveness checks, dropping a lost connection) are jobs on a fixed pool of
 * workers, taken in the order of a timer heap of the hosts' next looks. Connects go to
 * connector threads, started on demand and ended when idle, because virConnectOpen has no
 * deadline: a connect to a host that never answers holds its connector, the watchdog reports
 * the host down when the connect deadline passes and no longer counts that connector, so
 * another one takes the queue on. A look stuck in a host that went silent (libvirt's keepalive
 * ends it within about 20 s) is stood in for the same way. A host has at most one job (look or
 * connect) at a time, so its job state needs no lock.
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
#include "metrics.h"

#define REG_BACKOFF_MAX_S 30
/* After this many looks in a row have not found the same guests' addresses (a static address,
 * or a network whose DHCP is not libvirt's), the host is looked at as a quiet one again. */
#define REG_WANT_IP_REPEATS 30
#define REG_STOP_DEADLINE_MS 2500
/* Workers looking at hosts. A look is one bulk call of a few milliseconds, and 1,500 hosts every
 * 10 s are 150 looks a second: a few workers do; the rest is room for slow hosts. */
#define REG_WORKERS 8
/* Connects at once (not counting the ones past their deadline). A connect is several round trips
 * (over ssh, a process start and a handshake first), so it waits far more than it computes. */
#define REG_CONNECTORS_MAX 32
/* A connector with nothing to do for this long ends. */
#define REG_CONNECTOR_IDLE_MS 5000
/* libvirt calls go deep into libxml2 and the RPC code, but nowhere near the default 8 MiB. */
#define REG_THREAD_STACK (512 * 1024)

typedef struct RegHost {
    HostRegistry *reg;
    char id[NB_UUID_STRLEN];
    char name[NB_NAME_MAX + 1];
    char uri[NB_URI_MAX + 1];
    /* under reg->lock */
    HvConn *hv;
    HostConn state;
    bool removed;
    bool busy;                   /* a lifecycle event came since the last look */
    bool wake;                   /* the connection closed during a job: look again at once */
    uint64_t connect_started_ms; /* 0 when no connect is under way */
    bool deadline_reported;
    bool connect_overdue; /* its connect passed the deadline: its connector is not counted */
    char **want_ip;
    size_t n_want_ip;
    unsigned want_ip_repeats; /* looks in a row that left the same addresses wanted */
    uint64_t due_ms;          /* in the heap: when to look next */
    size_t heap_pos;          /* position in reg->heap + 1; 0: not in it (in a job, or gone) */
    struct RegHost *cq_next;  /* in the connect queue */
    /* the host's job's own (one job at a time) */
    unsigned backoff_s;
    bool have_facts;
    HostFacts facts;
    uint64_t touched_ms; /* when a report last asked to record the contact */
    bool have_digest;
    uint64_t digest; /* of the last look's domains */
    /* under reg->lock: for /metrics */
    double last_sync_ok; /* epoch seconds; 0: none yet */
    uint64_t sync_failures;
} RegHost;

/* A worker or a connector, under reg->lock; freed by its thread as it ends. */
typedef struct RegThread {
    HostRegistry *reg;
    bool connector;
    uint64_t job_started_ms; /* workers: 0 when idle */
    bool stuck;              /* workers: in one look past the limit, another one stands in */
    struct RegThread *prev, *next;
} RegThread;

struct HostRegistry {
    char *pool_name, *pool_path, *network;
    unsigned sync_interval_s, quiet_sync_interval_s, connect_timeout_s;
    HostReportFn report;
    void *report_data;
    pthread_mutex_t lock;
    pthread_cond_t cond;         /* the watchdog's */
    pthread_cond_t work_cond;    /* workers: a look is due, or the timer waiter is wanted */
    pthread_cond_t timer_cond;   /* the timer waiter: the heap's top changed */
    bool timer_waiting;          /* a worker waits for the heap's top to be due */
    pthread_cond_t connect_cond; /* connectors: the queue has a host */
    pthread_cond_t gone_cond;    /* a thread ended */
    bool stopping;
    bool abandoned; /* a thread could not be waited for: the registry must outlive the process */
    size_t n_connecting; /* connects under way: the watchdog has nothing to check without one */
    RegHost **hosts;
    size_t n_hosts, cap_hosts;
    size_t *index; /* open addressing by name: positions in hosts + 1, 0 empty */
    size_t cap_index;
    RegHost **heap; /* min-heap by due_ms, room for every host */
    size_t n_heap;
    RegHost *cq_head, *cq_tail; /* hosts waiting for a connector */
    RegThread *threads;
    size_t n_threads;
    size_t n_workers, n_workers_stuck;
    size_t n_connectors, n_connectors_idle, n_connectors_overdue;
    bool workers_started;
    pthread_t watchdog;
    bool watchdog_started;
    MetricsHistogram sync_duration; /* under lock: every look's, over all hosts */
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

/* ---- the timer heap of next looks (under the lock) ---- */

static void
reg_heap_swap(HostRegistry *reg, size_t i, size_t j)
{
    RegHost *a = reg->heap[i];
    reg->heap[i] = reg->heap[j];
    reg->heap[j] = a;
    reg->heap[i]->heap_pos = i + 1;
    reg->heap[j]->heap_pos = j + 1;
}

static void
reg_heap_fix(HostRegistry *reg, size_t i)
{
    while (i > 0 && reg->heap[(i - 1) / 2]->due_ms > reg->heap[i]->due_ms) {
        reg_heap_swap(reg, i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < reg->n_heap && reg->heap[l]->due_ms < reg->heap[m]->due_ms)
            m = l;
        if (r < reg->n_heap && reg->heap[r]->due_ms < reg->heap[m]->due_ms)
            m = r;
        if (m == i)
            return;
        reg_heap_swap(reg, i, m);
        i = m;
    }
}

/* Cannot fail: the heap has room for every host (reg_add_locked), and a host is in it once. */
static void
reg_heap_put(HostRegistry *reg, RegHost *h, uint64_t due_ms)
{
    h->due_ms = due_ms;
    if (!h->heap_pos) {
        reg->heap[reg->n_heap++] = h;
        h->heap_pos = reg->n_heap;
    }
    reg_heap_fix(reg, h->heap_pos - 1);
    if (h->heap_pos == 1) {
        /* A new earliest look: the timer waiter waits for it instead, or a worker takes it. */
        pthread_cond_signal(&reg->timer_cond);
        pthread_cond_signal(&reg->work_cond);
    }
}

static void
reg_heap_remove(HostRegistry *reg, RegHost *h)
{
    size_t i = h->heap_pos - 1;
    h->heap_pos = 0;
    if (i == --reg->n_heap)
        return;
    reg->heap[i] = reg->heap[reg->n_heap];
    reg->heap[i]->heap_pos = i + 1;
    reg_heap_fix(reg, i);
}

/* ---- the threads ---- */

static void *reg_worker(void *arg);
static void *reg_connector(void *arg);

/* With the lock held. */
static int
reg_thread_start_locked(HostRegistry *reg, bool connector)
{
    RegThread *t = calloc(1, sizeof(*t));
    if (!t)
        return -ENOMEM;
    t->reg = reg;
    t->connector = connector;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, REG_THREAD_STACK);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_t tid;
    int e = pthread_create(&tid, &attr, connector ? reg_connector : reg_worker, t);
    pthread_attr_destroy(&attr);
    if (e != 0) {
        free(t);
        log_error("host registry: cannot start a %s: %s", connector ? "connector" : "worker",
                  strerror(e));
        return -e;
    }
    t->next = reg->threads;
    if (reg->threads)
        reg->threads->prev = t;
    reg->threads = t;
    reg->n_threads++;
    if (connector)
        reg->n_connectors++;
    else
        reg->n_workers++;
    return 0;
}

/* With the lock held, by the thread itself as it ends; t is freed by the caller after unlocking
 * (nobody else reaches it once it is out of the list). */
static void
reg_thread_end_locked(RegThread *t)
{
    HostRegistry *reg = t->reg;
    if (t->prev)
        t->prev->next = t->next;
    else
        reg->threads = t->next;
    if (t->next)
        t->next->prev = t->prev;
    if (t->connector)
        reg->n_connectors--;
    else
        reg->n_workers--;
    if (t->stuck)
        reg->n_workers_stuck--;
    reg->n_threads--;
    pthread_cond_broadcast(&reg->gone_cond);
}

/* With the lock held: a connector for the queue's next host, if one is idle or may start. */
static void
reg_connectors_wake_locked(HostRegistry *reg)
{
    if (!reg->cq_head || reg->stopping)
        return;
    if (reg->n_connectors_idle)
        pthread_cond_signal(&reg->connect_cond);
    else if (reg->n_connectors - reg->n_connectors_overdue < REG_CONNECTORS_MAX)
        reg_thread_start_locked(reg, true);
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

/* The connection closed: look at the host now (the look finds it dead and drops it). */
static void
reg_on_close(void *userdata)
{
    RegHost *h = userdata;
    pthread_mutex_lock(&h->reg->lock);
    if (h->heap_pos)
        reg_heap_put(h->reg, h, 0);
    else
        h->wake = true;
    pthread_mutex_unlock(&h->reg->lock);
}

/* ---- a host's jobs ---- */

static bool
reg_host_done_locked(const RegHost *h)
{
    return h->reg->stopping || h->removed;
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

/* Counts a look for /metrics; started_ms 0: it failed before asking libvirt (not timed). */
static void
reg_host_count_look(RegHost *h, bool ok, uint64_t started_ms)
{
    double now = ok ? nb_epoch_now() : 0;
    uint64_t end_ms = started_ms ? nb_monotonic_ms() : 0;
    pthread_mutex_lock(&h->reg->lock);
    if (started_ms)
        metrics_histogram_observe(&h->reg->sync_duration, (double)(end_ms - started_ms) / 1000.0);
    if (ok)
        h->last_sync_ok = now;
    else
        h->sync_failures++;
    pthread_mutex_unlock(&h->reg->lock);
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
    uint64_t started_ms = nb_monotonic_ms();
    nb_timestamp_now(rep->seen_at);
    if (hv_domain_list(c, VM_DOMAIN_PREFIX, &rep->domains, &rep->n_domains, &err) < 0) {
        log_warn("host %s: sync skipped: %s", h->name, err->message);
        host_registry_report_free(rep);
        reg_host_count_look(h, false, started_ms);
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
    /* Counted before the report goes up: the reconciler's queue is not the look's time. */
    reg_host_count_look(h, true, started_ms);
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
 * event since and no address still wanted (or one wanted in vain for REG_WANT_IP_REPEATS looks),
 * is looked at every quiet-sync-interval (300 s by default) instead of every sync-interval (10 s).
 * Nova's power-state sync, for comparison, runs every 600 s. At 1,500 hosts, one quiet look a
 * minute was 25 bulk calls a second, about a third of an idle controller's CPU.
 */
static uint64_t
reg_host_next_look(RegHost *h, bool quiet)
{
    HostRegistry *reg = h->reg;
    pthread_mutex_lock(&reg->lock);
    bool relaxed =
        quiet && !h->busy && (h->n_want_ip == 0 || h->want_ip_repeats >= REG_WANT_IP_REPEATS);
    h->busy = false;
    pthread_mutex_unlock(&reg->lock);
    uint64_t interval =
        (uint64_t)(relaxed ? reg->quiet_sync_interval_s : reg->sync_interval_s) * 1000;
    /* Up to a tenth of jitter, so that hosts that connected together do not all look at the same
     * moment forever after. */
    return interval - interval / 10 + reg_jitter(h, interval / 5 + 1);
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

/* The end of a host's job: its next look in ms, or, once the host is removed, its connection
 * dropped and nothing more. */
static void
reg_host_schedule(RegHost *h, uint64_t ms)
{
    HostRegistry *reg = h->reg;
    pthread_mutex_lock(&reg->lock);
    bool done = reg_host_done_locked(h);
    if (!done)
        reg_heap_put(reg, h, h->wake ? 0 : nb_monotonic_ms() + ms);
    h->wake = false;
    pthread_mutex_unlock(&reg->lock);
    if (done)
        reg_host_drop_conn(h, NULL);
}

static void
reg_host_connect_later(RegHost *h)
{
    HostRegistry *reg = h->reg;
    pthread_mutex_lock(&reg->lock);
    if (!reg_host_done_locked(h)) {
        h->cq_next = NULL;
        if (reg->cq_tail)
            reg->cq_tail->cq_next = h;
        else
            reg->cq_head = h;
        reg->cq_tail = h;
        reg_connectors_wake_locked(reg);
    }
    pthread_mutex_unlock(&reg->lock);
}

static int
reg_host_connect(RegHost *h, HvConn **ret, HostFacts *facts, NbError **err)
{
    HostRegistry *reg = h->reg;
    HvConn *c = NULL;
    /* libvirt's test driver in nimbusd's own process (test:///, no transport) has no connection
     * to lose, and takes a close callback without ever freeing its context. */
    bool in_process = str_startswith(h->uri, "test://");
    if (hv_conn_open(h->uri, &c, err) < 0 ||
        hv_conn_set_callbacks(c, reg_on_lifecycle, in_process ? NULL : reg_on_close, h, err) < 0 ||
        hv_pool_ensure(c, reg->pool_name, reg->pool_path, err) < 0 ||
        hv_network_ensure_active(c, reg->network, err) < 0 ||
        hv_host_facts(c, reg->pool_name, facts, err) < 0) {
        hv_conn_free(c);
        return -1;
    }
    *ret = c;
    return 0;
}

/* A connector's job: one connect attempt; then the first look at once, or another attempt after
 * the backoff. */
static void
reg_host_try_connect(RegHost *h)
{
    HostRegistry *reg = h->reg;
    pthread_mutex_lock(&reg->lock);
    if (reg_host_done_locked(h)) {
        pthread_mutex_unlock(&reg->lock);
        reg_host_drop_conn(h, NULL);
        return;
    }
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
    if (h->connect_overdue) {
        /* This connector counts again; the one that stood in ends when idle. */
        h->connect_overdue = false;
        reg->n_connectors_overdue--;
    }
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
        return;
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
        reg_host_schedule(h, 0);
        return;
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
    reg_host_schedule(h, (uint64_t)wait_s * 1000);
}

/* A worker's job: one look at the host, or what it needs first (a connect, or dropping a lost
 * connection); then its next look is scheduled. */
static void
reg_host_look(RegHost *h)
{
    pthread_mutex_lock(&h->reg->lock);
    bool done = reg_host_done_locked(h);
    HvConn *c = hv_conn_ref(h->hv);
    pthread_mutex_unlock(&h->reg->lock);
    if (done) {
        hv_conn_free(c);
        reg_host_drop_conn(h, NULL);
        return;
    }
    if (!c) {
        reg_host_connect_later(h);
        return;
    }
    if (!hv_conn_is_alive(c)) {
        hv_conn_free(c);
        reg_host_count_look(h, false, 0);
        reg_host_drop_conn(h, "the libvirt connection was lost");
        reg_host_schedule(h, 1000);
        return;
    }
    bool quiet = reg_host_sync(h, c);
    hv_conn_free(c);
    reg_host_schedule(h, reg_host_next_look(h, quiet));
}

static void *
reg_worker(void *arg)
{
    RegThread *t = arg;
    HostRegistry *reg = t->reg;
    pthread_mutex_lock(&reg->lock);
    /* One too many once a stuck worker's look came back: then one of them ends. */
    while (!reg->stopping && reg->n_workers - reg->n_workers_stuck <= REG_WORKERS) {
        RegHost *h = reg->n_heap ? reg->heap[0] : NULL;
        uint64_t now = nb_monotonic_ms();
        if (!h) {
            pthread_cond_wait(&reg->work_cond, &reg->lock);
            continue;
        }
        if (h->due_ms > now) {
            /* One worker waits for the next look to be due, the others until they are wanted:
             * a thousand looks a minute must not wake every worker each time. */
            if (reg->timer_waiting) {
                pthread_cond_wait(&reg->work_cond, &reg->lock);
                continue;
            }
            struct timespec until = nb_deadline_after_ms(CLOCK_MONOTONIC, h->due_ms - now);
            reg->timer_waiting = true;
            pthread_cond_timedwait(&reg->timer_cond, &reg->lock, &until);
            reg->timer_waiting = false;
            continue;
        }
        reg_heap_remove(reg, h);
        /* Another worker for the next due look, or to wait for it while this one looks. */
        if (reg->n_heap)
            pthread_cond_signal(&reg->work_cond);
        t->job_started_ms = now;
        pthread_mutex_unlock(&reg->lock);
        reg_host_look(h);
        pthread_mutex_lock(&reg->lock);
        t->job_started_ms = 0;
        if (t->stuck) {
            t->stuck = false;
            reg->n_workers_stuck--;
        }
    }
    reg_thread_end_locked(t);
    pthread_mutex_unlock(&reg->lock);
    free(t);
    return NULL;
}

static void *
reg_connector(void *arg)
{
    RegThread *t = arg;
    HostRegistry *reg = t->reg;
    pthread_mutex_lock(&reg->lock);
    while (!reg->stopping) {
        RegHost *h = reg->cq_head;
        if (!h) {
            struct timespec until = nb_deadline_after_ms(CLOCK_MONOTONIC, REG_CONNECTOR_IDLE_MS);
            reg->n_connectors_idle++;
            int e = pthread_cond_timedwait(&reg->connect_cond, &reg->lock, &until);
            reg->n_connectors_idle--;
            if (e == ETIMEDOUT && !reg->cq_head)
                break;
            continue;
        }
        reg->cq_head = h->cq_next;
        if (!reg->cq_head)
            reg->cq_tail = NULL;
        h->cq_next = NULL;
        /* More in the queue: another connector, up to the limit. */
        reg_connectors_wake_locked(reg);
        pthread_mutex_unlock(&reg->lock);
        reg_host_try_connect(h);
        pthread_mutex_lock(&reg->lock);
        /* Over the limit again (a connect past its deadline came back): this one ends. */
        if (reg->n_connectors - reg->n_connectors_overdue > REG_CONNECTORS_MAX)
            break;
    }
    reg_thread_end_locked(t);
    pthread_mutex_unlock(&reg->lock);
    free(t);
    return NULL;
}

/* ---- the watchdog: connect deadlines, stuck looks ---- */

static void
reg_watch_connects_locked(HostRegistry *reg, uint64_t now)
{
    uint64_t limit = (uint64_t)reg->connect_timeout_s * 1000;
    for (size_t i = 0; i < reg->n_hosts; i++) {
        RegHost *h = reg->hosts[i];
        if (!h->connect_started_ms || now - h->connect_started_ms < limit)
            continue;
        if (!h->connect_overdue) {
            /* Its connector may hang for good: it no longer counts, another one may start. */
            h->connect_overdue = true;
            reg->n_connectors_overdue++;
        }
        if (h->removed || h->deadline_reported)
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
        uint64_t now = nb_monotonic_ms();
        if (reg->n_connecting)
            reg_watch_connects_locked(reg, now);
        /* A look held up past the connect deadline (a host gone silent, until keepalive ends
         * the call): another worker stands in. */
        uint64_t limit = (uint64_t)reg->connect_timeout_s * 1000;
        for (RegThread *t = reg->threads; t; t = t->next) {
            if (t->connector || t->stuck || !t->job_started_ms || now - t->job_started_ms < limit)
                continue;
            t->stuck = true;
            reg->n_workers_stuck++;
            log_warn("host registry: a look has taken over %us; another worker stands in",
                     reg->connect_timeout_s);
        }
        while (reg->n_workers - reg->n_workers_stuck < REG_WORKERS &&
               reg_thread_start_locked(reg, false) == 0) {
        }
        /* Also a retry, should starting a connector have failed before. */
        reg_connectors_wake_locked(reg);
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
    reg->quiet_sync_interval_s = cfg->quiet_sync_interval_s ? cfg->quiet_sync_interval_s : 300;
    if (reg->quiet_sync_interval_s < reg->sync_interval_s)
        reg->quiet_sync_interval_s = reg->sync_interval_s;
    reg->connect_timeout_s = cfg->connect_timeout_s ? cfg->connect_timeout_s : 15;
    reg->report = report;
    reg->report_data = userdata;
    metrics_host_sync_histogram_init(&reg->sync_duration);
    pthread_mutex_init(&reg->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&reg->cond, &ca);
    pthread_cond_init(&reg->work_cond, &ca);
    pthread_cond_init(&reg->timer_cond, &ca);
    pthread_cond_init(&reg->connect_cond, &ca);
    pthread_cond_init(&reg->gone_cond, &ca);
    pthread_condattr_destroy(&ca);
    if (!reg->pool_name || !reg->pool_path || !reg->network) {
        host_registry_free(reg);
        return -ENOMEM;
    }
    *ret = reg;
    return 0;
}

/* With the lock held: a new entry, queued for its first connect. */
static int
reg_add_locked(HostRegistry *reg, const Host *src)
{
    if (reg_find_locked(reg, src->name))
        return 0; /* registered already */
    if (reg->n_hosts == reg->cap_hosts) {
        size_t cap = reg->cap_hosts ? reg->cap_hosts * 2 : 64;
        RegHost **grown = realloc(reg->hosts, cap * sizeof(*grown));
        if (!grown)
            return -ENOMEM;
        reg->hosts = grown;
        /* The heap grows with the hosts, so that putting a host in it never fails. */
        grown = realloc(reg->heap, cap * sizeof(*grown));
        if (!grown)
            return -ENOMEM;
        reg->heap = grown;
        reg->cap_hosts = cap;
    }
    RegHost *h = calloc(1, sizeof(*h));
    if (!h)
        return -ENOMEM;
    h->reg = reg;
    memcpy(h->id, src->id, sizeof(h->id));
    snprintf(h->name, sizeof(h->name), "%s", src->name);
    snprintf(h->uri, sizeof(h->uri), "%s", src->uri);
    h->state = HOST_CONN_CONNECTING;
    h->backoff_s = 1;
    reg->hosts[reg->n_hosts++] = h;
    if (reg->n_hosts * 2 + 2 > reg->cap_index) {
        if (reg_index_rebuild_locked(reg) < 0) {
            reg->n_hosts--;
            free(h);
            return -ENOMEM;
        }
    } else {
        reg_index_put(reg->index, reg->cap_index, reg->hosts, reg->n_hosts - 1);
    }
    /* Its first look finds no connection and queues the connect. */
    reg_heap_put(reg, h, 0);
    return 0;
}

int
host_registry_start(HostRegistry *reg, const Host *hosts, size_t n, NbError **err)
{
    pthread_mutex_lock(&reg->lock);
    int r = 0;
    for (size_t i = 0; i < n && r == 0; i++)
        r = reg_add_locked(reg, &hosts[i]);
    while (r == 0 && !reg->workers_started && reg->n_workers < REG_WORKERS)
        r = reg_thread_start_locked(reg, false);
    reg->workers_started = r == 0;
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
        /* Waiting for its next look: a worker drops its connection now. In a job: the job's end
         * does. */
        if (h->heap_pos)
            reg_heap_put(reg, h, 0);
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

/* A host someone waits for connects first: at start-up the API waits for the local host, which
 * must not queue behind a thousand others. */
static void
reg_connect_first(HostRegistry *reg, const char *name)
{
    pthread_mutex_lock(&reg->lock);
    RegHost *h = reg_find_locked(reg, name);
    bool queued = false;
    RegHost *prev = NULL;
    for (RegHost *q = reg->cq_head; h && q; prev = q, q = q->cq_next) {
        if (q != h)
            continue;
        if (prev)
            prev->cq_next = h->cq_next;
        else
            reg->cq_head = h->cq_next;
        if (reg->cq_tail == h)
            reg->cq_tail = prev;
        queued = true;
        break;
    }
    /* Not yet tried (a host down and backing off keeps its backoff). */
    if (h && !queued && h->heap_pos && !h->hv && h->state == HOST_CONN_CONNECTING) {
        reg_heap_remove(reg, h); /* its look would only queue the connect */
        queued = true;
    }
    if (queued) {
        h->cq_next = reg->cq_head;
        reg->cq_head = h;
        if (!reg->cq_tail)
            reg->cq_tail = h;
        reg_connectors_wake_locked(reg);
    }
    pthread_mutex_unlock(&reg->lock);
}

HostConn
host_registry_wait(HostRegistry *reg, const char *name, uint64_t timeout_ms)
{
    uint64_t until = nb_monotonic_ms() + timeout_ms;
    reg_connect_first(reg, name);
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
        bool same = n > 0 && n == h->n_want_ip;
        for (size_t i = 0; same && i < n; i++)
            same = streq(h->want_ip[i], domains[i]);
        h->want_ip_repeats = same ? h->want_ip_repeats + 1 : 0;
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
host_registry_write_metrics(HostRegistry *reg, MetricsBuf *b, MetricsFormat f)
{
    /* Copied under the lock and written without it: the workers take it at every look. Names
     * stay put: a host's slot lives as long as the registry. */
    pthread_mutex_lock(&reg->lock);
    MetricsHistogram duration = reg->sync_duration;
    MetricsHostSync *hosts = calloc(reg->n_hosts ? reg->n_hosts : 1, sizeof(*hosts));
    size_t n = 0;
    for (size_t i = 0; hosts && i < reg->n_hosts; i++) {
        const RegHost *h = reg->hosts[i];
        if (h->removed)
            continue;
        hosts[n++] = (MetricsHostSync){h->name, h->last_sync_ok, h->sync_failures};
    }
    pthread_mutex_unlock(&reg->lock);
    if (!hosts)
        b->oom = true;
    else
        metrics_write_host_sync(b, f, &duration, hosts, n);
    free(hosts);
}

void
host_registry_stop(HostRegistry *reg)
{
    if (!reg)
        return;
    pthread_mutex_lock(&reg->lock);
    reg->stopping = true;
    pthread_cond_signal(&reg->cond);
    pthread_cond_broadcast(&reg->work_cond);
    pthread_cond_broadcast(&reg->timer_cond);
    pthread_cond_broadcast(&reg->connect_cond);
    pthread_mutex_unlock(&reg->lock);
    if (reg->watchdog_started) {
        pthread_join(reg->watchdog, NULL);
        reg->watchdog_started = false;
    }
    /* One deadline for all: threads in a call to a host that never answers are left behind. */
    struct timespec until = nb_deadline_after_ms(CLOCK_MONOTONIC, REG_STOP_DEADLINE_MS);
    pthread_mutex_lock(&reg->lock);
    while (reg->n_threads) {
        if (pthread_cond_timedwait(&reg->gone_cond, &reg->lock, &until) == ETIMEDOUT)
            break;
    }
    size_t left = reg->n_threads;
    /* The connections go now, also when a thread is left behind (it holds its own reference):
     * libvirt closes them while the process still runs. */
    HvConn **conns = calloc(reg->n_hosts ? reg->n_hosts : 1, sizeof(*conns));
    size_t n_conns = 0;
    for (size_t i = 0; conns && i < reg->n_hosts; i++) {
        if (reg->hosts[i]->hv)
            conns[n_conns++] = reg->hosts[i]->hv;
        reg->hosts[i]->hv = NULL;
    }
    pthread_mutex_unlock(&reg->lock);
    for (size_t i = 0; i < n_conns; i++)
        hv_conn_free(conns[i]);
    free(conns);
    if (left) {
        reg->abandoned = true;
        log_warn("host registry: %zu threads are stuck in libvirt calls; left behind", left);
    }
}

void
host_registry_free(HostRegistry *reg)
{
    if (!reg)
        return;
    if (reg->abandoned)
        return; /* a stuck thread still points here; the process is about to end */
    for (size_t i = 0; i < reg->n_hosts; i++) {
        RegHost *h = reg->hosts[i];
        hv_conn_free(h->hv);
        for (size_t j = 0; j < h->n_want_ip; j++)
            free(h->want_ip[j]);
        free(h->want_ip);
        free(h);
    }
    free(reg->hosts);
    free(reg->heap);
    free(reg->index);
    free(reg->pool_name);
    free(reg->pool_path);
    free(reg->network);
    pthread_mutex_destroy(&reg->lock);
    pthread_cond_destroy(&reg->cond);
    pthread_cond_destroy(&reg->work_cond);
    pthread_cond_destroy(&reg->timer_cond);
    pthread_cond_destroy(&reg->connect_cond);
    pthread_cond_destroy(&reg->gone_cond);
    free(reg);
}
