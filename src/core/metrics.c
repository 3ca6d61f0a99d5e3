#include "metrics.h"

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../store/store.h"
#include "../util/strutil.h"

const char *
metrics_content_type(MetricsFormat f)
{
    return f == METRICS_FORMAT_OPENMETRICS
               ? "application/openmetrics-text; version=1.0.0; charset=utf-8"
               : "text/plain; version=0.0.4; charset=utf-8";
}

void
metrics_buf_free(MetricsBuf *b)
{
    free(b->data);
    *b = (MetricsBuf){0};
}

static bool
metrics_buf_reserve(MetricsBuf *b, size_t more)
{
    if (b->oom)
        return false;
    if (b->len + more + 1 <= b->cap)
        return true;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + more + 1)
        cap *= 2;
    char *d = realloc(b->data, cap);
    if (!d) {
        b->oom = true;
        return false;
    }
    b->data = d;
    b->cap = cap;
    return true;
}

void
metrics_buf_append(MetricsBuf *b, const char *s, size_t n)
{
    if (!metrics_buf_reserve(b, n))
        return;
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void
metrics_buf_printf(MetricsBuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char small[512];
    int n = vsnprintf(small, sizeof(small), fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n < sizeof(small)) {
        metrics_buf_append(b, small, (size_t)n);
        return;
    }
    if (!metrics_buf_reserve(b, (size_t)n))
        return;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void
metrics_buf_label_value(MetricsBuf *b, const char *v)
{
    const char *run = v;
    for (const char *p = v; *p; p++) {
        const char *esc = *p == '\\' ? "\\\\" : *p == '"' ? "\\\"" : *p == '\n' ? "\\n" : NULL;
        if (!esc)
            continue;
        metrics_buf_append(b, run, (size_t)(p - run));
        metrics_buf_append(b, esc, 2);
        run = p + 1;
    }
    metrics_buf_append(b, run, strlen(run));
}

void
metrics_write_family(MetricsBuf *b, MetricsFormat f, const char *name, const char *type,
                     const char *help)
{
    size_t len = strlen(name);
    /* OpenMetrics names a counter's family without the _total its samples carry. */
    if (f == METRICS_FORMAT_OPENMETRICS && streq(type, "counter") && len > 6 &&
        streq(name + len - 6, "_total"))
        len -= 6;
    metrics_buf_printf(b, "# HELP %.*s %s\n# TYPE %.*s %s\n", (int)len, name, help, (int)len, name,
                       type);
}

void
metrics_buf_value(MetricsBuf *b, double v)
{
    if (isnan(v))
        metrics_buf_append(b, "NaN", 3);
    else if (isinf(v))
        metrics_buf_append(b, v > 0 ? "+Inf" : "-Inf", 4);
    else if (v == floor(v) && fabs(v) < 9e15)
        metrics_buf_printf(b, "%.0f", v);
    else
        metrics_buf_printf(b, "%.9g", v);
}

void
metrics_histogram_init(MetricsHistogram *h, const double *bounds, unsigned n)
{
    memset(h, 0, sizeof(*h));
    h->n = n > METRICS_MAX_BUCKETS ? METRICS_MAX_BUCKETS : n;
    memcpy(h->bounds, bounds, h->n * sizeof(double));
}

void
metrics_histogram_observe(MetricsHistogram *h, double v)
{
    unsigned i = 0;
    while (i < h->n && v > h->bounds[i])
        i++;
    h->counts[i]++;
    h->count++;
    h->sum += v;
}

void
metrics_histogram_write(MetricsBuf *b, const char *name, const char *labels,
                        const MetricsHistogram *h)
{
    const char *sep = labels[0] ? "," : "";
    uint64_t cum = 0;
    for (unsigned i = 0; i <= h->n; i++) {
        cum += h->counts[i];
        metrics_buf_printf(b, "%s_bucket{%s%sle=\"", name, labels, sep);
        if (i == h->n)
            metrics_buf_append(b, "+Inf", 4);
        else
            metrics_buf_printf(b, "%g", h->bounds[i]);
        metrics_buf_printf(b, "\"} %llu\n", (unsigned long long)cum);
    }
    metrics_buf_printf(b, "%s_sum%s%s%s ", name, labels[0] ? "{" : "", labels,
                       labels[0] ? "}" : "");
    metrics_buf_value(b, h->sum);
    metrics_buf_printf(b, "\n%s_count%s%s%s %llu\n", name, labels[0] ? "{" : "", labels,
                       labels[0] ? "}" : "", (unsigned long long)h->count);
}

/* ---- the host registry's looks ---- */

static const double host_sync_bounds[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                          0.5,   1,    2.5,   5,    10,  30};

void
metrics_host_sync_histogram_init(MetricsHistogram *h)
{
    metrics_histogram_init(h, host_sync_bounds, sizeof(host_sync_bounds) / sizeof(double));
}

void
metrics_write_host_sync(MetricsBuf *b, MetricsFormat f, const MetricsHistogram *duration,
                        const MetricsHostSync *hosts, size_t n)
{
    metrics_write_family(b, f, "nimbus_host_sync_duration_seconds", "histogram",
                         "Duration of the host registry's looks at hosts (a sync: domains, "
                         "facts, addresses), successful or not, over all hosts.");
    metrics_histogram_write(b, "nimbus_host_sync_duration_seconds", "", duration);
    metrics_write_family(b, f, "nimbus_host_last_sync_success_timestamp_seconds", "gauge",
                         "When the last successful look at the host ended.");
    for (size_t i = 0; i < n; i++) {
        if (hosts[i].last_success <= 0)
            continue;
        metrics_buf_printf(b, "nimbus_host_last_sync_success_timestamp_seconds{host=\"");
        metrics_buf_label_value(b, hosts[i].host);
        metrics_buf_printf(b, "\"} %.3f\n", hosts[i].last_success);
    }
    metrics_write_family(b, f, "nimbus_host_sync_failures_total", "counter",
                         "Looks at the host that failed (libvirt refused the listing, or the "
                         "connection was found lost) since nimbusd started.");
    for (size_t i = 0; i < n; i++) {
        metrics_buf_printf(b, "nimbus_host_sync_failures_total{host=\"");
        metrics_buf_label_value(b, hosts[i].host);
        metrics_buf_printf(b, "\"} %llu\n", (unsigned long long)hosts[i].failures);
    }
}

/* ---- the control plane's own observations ---- */

static const double api_bounds[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
static const double task_bounds[] = {0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600};
/* A step is one libvirt call (a define: milliseconds) or a wait (a guest's shutdown, a disk's
 * copy, a migration: minutes). */
static const double step_bounds[] = {0.01, 0.05, 0.1, 0.25, 0.5, 1,   2.5,
                                     5,    10,   30,  60,   300, 900, 3600};

#define METRICS_MAX_ROUTES 160
#define METRICS_MAX_STATUSES 12

typedef struct MetricsRoute {
    const char *pattern; /* the route table's string; "other" for unmatched requests */
    char method[8];
    MetricsHistogram duration;
    unsigned n_status;
    struct {
        unsigned status;
        uint64_t n;
    } status[METRICS_MAX_STATUSES];
} MetricsRoute;

static pthread_mutex_t metrics_lock = PTHREAD_MUTEX_INITIALIZER;
static MetricsRoute metrics_routes[METRICS_MAX_ROUTES];
static unsigned metrics_n_routes;
static MetricsHistogram metrics_task_duration[_TASK_KIND_MAX];
static bool metrics_task_init;
/* name NULL: not observed since the start (or the last reset); the histogram is set up then. */
typedef struct MetricsTaskStep {
    const char *name;
    MetricsHistogram duration;
} MetricsTaskStep;
static MetricsTaskStep metrics_task_steps[_TASK_KIND_MAX][METRICS_MAX_TASK_STEPS];
static uint64_t metrics_login_failures;
static int64_t metrics_events_subscribers;
static void (*metrics_store_stats_fn)(StoreStats *ret);
_Static_assert(STORE_LATENCY_BUCKETS <= METRICS_MAX_BUCKETS, "the store's buckets must fit");

void
metrics_api_observe(const char *route, const char *method, unsigned status, double seconds)
{
    if (!route)
        route = "other";
    /* Methods come from clients: anything unusual is folded so the label set stays bounded. */
    static const char *const methods[] = {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", NULL};
    const char *m = "other";
    for (int i = 0; method && methods[i]; i++)
        if (streq(method, methods[i]))
            m = methods[i];
    pthread_mutex_lock(&metrics_lock);
    MetricsRoute *rt = NULL;
    for (unsigned i = 0; i < metrics_n_routes && !rt; i++)
        if ((metrics_routes[i].pattern == route || streq(metrics_routes[i].pattern, route)) &&
            streq(metrics_routes[i].method, m))
            rt = &metrics_routes[i];
    if (!rt && metrics_n_routes < METRICS_MAX_ROUTES) {
        rt = &metrics_routes[metrics_n_routes++];
        rt->pattern = route;
        snprintf(rt->method, sizeof(rt->method), "%s", m);
        metrics_histogram_init(&rt->duration, api_bounds, sizeof(api_bounds) / sizeof(double));
        rt->n_status = 0;
    }
    if (rt) {
        metrics_histogram_observe(&rt->duration, seconds);
        unsigned i = 0;
        while (i < rt->n_status && rt->status[i].status != status)
            i++;
        if (i == rt->n_status && i < METRICS_MAX_STATUSES) {
            rt->status[i].status = status;
            rt->status[i].n = 0;
            rt->n_status++;
        }
        if (i < rt->n_status)
            rt->status[i].n++;
    }
    pthread_mutex_unlock(&metrics_lock);
}

static void
metrics_task_init_locked(void)
{
    if (metrics_task_init)
        return;
    for (int k = 0; k < _TASK_KIND_MAX; k++)
        metrics_histogram_init(&metrics_task_duration[k], task_bounds,
                               sizeof(task_bounds) / sizeof(double));
    metrics_task_init = true;
}

void
metrics_task_observe(TaskKind kind, double seconds)
{
    if (kind < 0 || kind >= _TASK_KIND_MAX)
        return;
    pthread_mutex_lock(&metrics_lock);
    metrics_task_init_locked();
    metrics_histogram_observe(&metrics_task_duration[kind], seconds);
    pthread_mutex_unlock(&metrics_lock);
}

void
metrics_task_step_observe(TaskKind kind, int step, const char *name, double seconds)
{
    if (kind < 0 || kind >= _TASK_KIND_MAX || step < 0 || step >= METRICS_MAX_TASK_STEPS || !name)
        return;
    pthread_mutex_lock(&metrics_lock);
    MetricsTaskStep *ts = &metrics_task_steps[kind][step];
    if (!ts->name) {
        metrics_histogram_init(&ts->duration, step_bounds, sizeof(step_bounds) / sizeof(double));
        ts->name = name;
    }
    metrics_histogram_observe(&ts->duration, seconds);
    pthread_mutex_unlock(&metrics_lock);
}

void
metrics_set_store_stats(void (*fn)(StoreStats *ret))
{
    __atomic_store_n(&metrics_store_stats_fn, fn, __ATOMIC_RELEASE);
}

void
metrics_login_failure(void)
{
    __atomic_add_fetch(&metrics_login_failures, 1, __ATOMIC_RELAXED);
}

void
metrics_events_subscribers_add(int delta)
{
    __atomic_add_fetch(&metrics_events_subscribers, (int64_t)delta, __ATOMIC_RELAXED);
}

void
metrics_reset(void)
{
    pthread_mutex_lock(&metrics_lock);
    metrics_n_routes = 0;
    metrics_task_init = false;
    for (int k = 0; k < _TASK_KIND_MAX; k++)
        for (int i = 0; i < METRICS_MAX_TASK_STEPS; i++)
            metrics_task_steps[k][i].name = NULL;
    __atomic_store_n(&metrics_login_failures, 0, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&metrics_lock);
}

/* The store's snapshot, taken without metrics' lock (the store has its own counting). */
static void
metrics_write_store(MetricsBuf *b, MetricsFormat f)
{
    void (*fn)(StoreStats *) = __atomic_load_n(&metrics_store_stats_fn, __ATOMIC_ACQUIRE);
    if (!fn)
        return;
    StoreStats st;
    fn(&st);
    metrics_write_family(b, f, "nimbus_store_transaction_duration_seconds", "histogram",
                         "Store latency: a write transaction from its begin to its commit or "
                         "rollback, a read from taking a read connection to giving it back.");
    for (int k = 0; k < _STORE_TX_KIND_MAX; k++) {
        const StoreLatency *l = &st.tx[k];
        MetricsHistogram h;
        metrics_histogram_init(&h, st.bounds, STORE_LATENCY_BUCKETS);
        /* The count is the buckets' total, so that it equals the +Inf bucket even when an
         * observation landed between the snapshot's reads. */
        for (unsigned i = 0; i <= h.n; i++) {
            h.counts[i] = l->counts[i];
            h.count += l->counts[i];
        }
        h.sum = l->sum;
        char lbl[64];
        snprintf(lbl, sizeof(lbl), "kind=\"%s\"", l->kind);
        metrics_histogram_write(b, "nimbus_store_transaction_duration_seconds", lbl, &h);
    }
}

void
metrics_write_process(MetricsBuf *b, MetricsFormat f)
{
    MetricsBuf lbl = {0};
    pthread_mutex_lock(&metrics_lock);
    metrics_write_family(b, f, "nimbus_api_requests_total", "counter",
                         "API requests by route pattern, method and status.");
    for (unsigned i = 0; i < metrics_n_routes; i++) {
        const MetricsRoute *rt = &metrics_routes[i];
        for (unsigned j = 0; j < rt->n_status; j++) {
            metrics_buf_append(b, "nimbus_api_requests_total{route=\"", 33);
            metrics_buf_label_value(b, rt->pattern);
            metrics_buf_printf(b, "\",method=\"%s\",status=\"%u\"} %llu\n", rt->method,
                               rt->status[j].status, (unsigned long long)rt->status[j].n);
        }
    }
    metrics_write_family(b, f, "nimbus_api_request_duration_seconds", "histogram",
                         "API request latency by route pattern and method.");
    for (unsigned i = 0; i < metrics_n_routes; i++) {
        const MetricsRoute *rt = &metrics_routes[i];
        lbl.len = 0;
        metrics_buf_append(&lbl, "route=\"", 7);
        metrics_buf_label_value(&lbl, rt->pattern);
        metrics_buf_printf(&lbl, "\",method=\"%s\"", rt->method);
        if (!lbl.oom)
            metrics_histogram_write(b, "nimbus_api_request_duration_seconds", lbl.data,
                                    &rt->duration);
    }
    metrics_task_init_locked();
    metrics_write_family(b, f, "nimbus_task_duration_seconds", "histogram",
                         "Time from a task's first run in this daemon to its end, by kind.");
    for (int k = 0; k < _TASK_KIND_MAX; k++) {
        char l[64];
        snprintf(l, sizeof(l), "kind=\"%s\"", task_kind_to_string((TaskKind)k));
        metrics_histogram_write(b, "nimbus_task_duration_seconds", l, &metrics_task_duration[k]);
    }
    metrics_write_family(b, f, "nimbus_task_step_duration_seconds", "histogram",
                         "Time from a task step's first run in this daemon to its end, by task "
                         "kind and step.");
    for (int k = 0; k < _TASK_KIND_MAX; k++) {
        for (int i = 0; i < METRICS_MAX_TASK_STEPS; i++) {
            const MetricsTaskStep *ts = &metrics_task_steps[k][i];
            if (!ts->name)
                continue;
            lbl.len = 0;
            metrics_buf_printf(&lbl, "kind=\"%s\",step=\"", task_kind_to_string((TaskKind)k));
            metrics_buf_label_value(&lbl, ts->name);
            metrics_buf_append(&lbl, "\"", 1);
            if (!lbl.oom)
                metrics_histogram_write(b, "nimbus_task_step_duration_seconds", lbl.data,
                                        &ts->duration);
        }
    }
    pthread_mutex_unlock(&metrics_lock);
    metrics_write_store(b, f);
    metrics_write_family(b, f, "nimbus_login_failures_total", "counter",
                         "Failed logins (wrong user or password).");
    metrics_buf_printf(
        b, "nimbus_login_failures_total %llu\n",
        (unsigned long long)__atomic_load_n(&metrics_login_failures, __ATOMIC_RELAXED));
    metrics_write_family(b, f, "nimbus_events_subscribers", "gauge",
                         "Event streams (GET /v1/events) open now.");
    metrics_buf_printf(b, "nimbus_events_subscribers %lld\n",
                       (long long)__atomic_load_n(&metrics_events_subscribers, __ATOMIC_RELAXED));
    metrics_buf_free(&lbl);
}
