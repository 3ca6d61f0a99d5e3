/*
 * Prometheus metrics: the process-wide control-plane counters and histograms (observed by the
 * API, the task engine and the login handler, never allocating per observation), the exposition
 * writer (text format 0.0.4 and OpenMetrics 1.0.0), and the collector thread that gathers the
 * hosts' and VMs' figures in the background into a cache a scrape only copies.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../model/task.h"

/* ---- the exposition writer ---- */
typedef enum MetricsFormat {
    METRICS_FORMAT_TEXT,        /* text/plain; version=0.0.4 */
    METRICS_FORMAT_OPENMETRICS, /* application/openmetrics-text; version=1.0.0, ends "# EOF" */
} MetricsFormat;

const char *metrics_content_type(MetricsFormat f);

typedef struct MetricsBuf {
    char *data;
    size_t len, cap;
    bool oom; /* an append failed: the text is incomplete */
} MetricsBuf;

void metrics_buf_free(MetricsBuf *b);
void metrics_buf_append(MetricsBuf *b, const char *s, size_t n);
void metrics_buf_printf(MetricsBuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A label value escaped per the exposition format: backslash, double quote and newline. */
void metrics_buf_label_value(MetricsBuf *b, const char *v);
/* `# HELP` and `# TYPE` of a family. type: counter, gauge, histogram. A counter's name ends in
 * _total; OpenMetrics names the family without it. */
void metrics_write_family(MetricsBuf *b, MetricsFormat f, const char *name, const char *type,
                          const char *help);
/* A sample value: integers without a fraction, +Inf/-Inf/NaN spelled as the format wants. */
void metrics_buf_value(MetricsBuf *b, double v);

/* ---- histograms: fixed buckets, chosen at init ---- */
#define METRICS_MAX_BUCKETS 16
typedef struct MetricsHistogram {
    unsigned n; /* upper bounds, ascending; +Inf is implied */
    double bounds[METRICS_MAX_BUCKETS];
    uint64_t counts[METRICS_MAX_BUCKETS + 1]; /* per bucket (not cumulative); [n] is +Inf */
    uint64_t count;
    double sum;
} MetricsHistogram;

void metrics_histogram_init(MetricsHistogram *h, const double *bounds, unsigned n);
/* Not synchronised: the owner holds its lock. */
void metrics_histogram_observe(MetricsHistogram *h, double v);
/* name_bucket{labels,le="..."} (cumulative), name_sum{labels}, name_count{labels}. labels: a
 * ready-escaped `a="b",c="d"` list or "" */
void metrics_histogram_write(MetricsBuf *b, const char *name, const char *labels,
                             const MetricsHistogram *h);

/* ---- the host registry's looks (counted by host_registry.c under its own lock) ---- */
/* The buckets of nimbus_host_sync_duration_seconds: a look is one bulk call of milliseconds,
 * a host gone silent holds it until libvirt's keepalive gives up (about 20 s). */
void metrics_host_sync_histogram_init(MetricsHistogram *h);
typedef struct MetricsHostSync {
    const char *host;
    double last_success; /* epoch seconds of the last look that succeeded; 0: none yet */
    uint64_t failures;   /* looks that failed since nimbusd started */
} MetricsHostSync;
/* nimbus_host_sync_duration_seconds (all hosts' looks in one histogram), and per host
 * nimbus_host_last_sync_success_timestamp_seconds (hosts without a successful look have no
 * sample) and nimbus_host_sync_failures_total. */
void metrics_write_host_sync(MetricsBuf *b, MetricsFormat f, const MetricsHistogram *duration,
                             const MetricsHostSync *hosts, size_t n);

/* ---- control-plane observations (thread-safe, no allocation) ---- */
/* route: the matched route's pattern ("/v1/vms/{}"), NULL for none (counted as "other"). The
 * pattern must be a static string (the route table's). */
void metrics_api_observe(const char *route, const char *method, unsigned status, double seconds);
/* A task that ended (succeeded or failed), after seconds since this daemon first ran it. */
void metrics_task_observe(TaskKind kind, double seconds);
/* A step of a task that ended (done or failed), after seconds since this daemon first ran it (a
 * step that waits runs several times). step: its index in the kind's steps, below
 * METRICS_MAX_TASK_STEPS (others are not counted); name: a static string, the kind's fixed name
 * for that step, so that the label set is bounded. */
#define METRICS_MAX_TASK_STEPS 8
void metrics_task_step_observe(TaskKind kind, int step, const char *name, double seconds);
void metrics_login_failure(void);
/* An event stream (GET /v1/events) opened (+1) or ended (-1): nimbus_events_subscribers. */
void metrics_events_subscribers_add(int delta);
/* The store's transaction latency is counted in the store (core_pure may not call it) and read
 * at each scrape through fn, which the daemon sets to store_stats at start-up. NULL (the
 * default): the family is not written. */
struct StoreStats;
void metrics_set_store_stats(void (*fn)(struct StoreStats *ret));
/* Appends the control-plane families observed in this process. */
void metrics_write_process(MetricsBuf *b, MetricsFormat f);
/* Forgets every observation (tests). */
void metrics_reset(void);

/* ---- the collector (metrics_collector.c): hosts, VMs and the store's counts ---- */
struct Core;
typedef struct MetricsCollector MetricsCollector;
/* Starts the thread that, every interval_s seconds, asks each connected host for its domains'
 * statistics with one bulk call and counts tasks, VMs and quota usage in the store. interval_s
 * 0: no thread; a scrape then has the control-plane figures only. After idle_after_s seconds
 * without a scrape (at least 4 intervals; 0: never) it pauses until the next scrape, which then
 * waits for a fresh collection (10 s at most). */
int metrics_collector_start(struct Core *core, unsigned interval_s, unsigned idle_after_s,
                            MetricsCollector **ret);
void metrics_collector_stop(MetricsCollector *mc);
/* The whole exposition: this process's metrics, the in-memory task engine and host registry
 * figures, and the collector's last collection (mc may be NULL). Never calls libvirt. */
void metrics_render(struct Core *core, MetricsCollector *mc, MetricsFormat f, MetricsBuf *out);
/* The collector the daemon runs (NULL when none): the API's handler reads it. */
MetricsCollector *metrics_collector_current(void);
