/*
 * The metrics collector: a thread of its own that, every interval, reads the store's counts and
 * asks each connected host for all its domains' statistics in one call, and renders what it
 * found into a cache. A scrape copies the cache: it never waits for libvirt or a slow host, and
 * the registry's workers and the API's threads never do the collector's work.
 *
 * It collects while someone scrapes: after idle_after seconds (at least METRICS_IDLE_INTERVALS
 * intervals; 0: never) without a scrape it pauses until the next one, which a site without
 * Prometheus would otherwise pay for (a collection is about a second of CPU at 15,000 VMs).
 * That scrape finds the cache old and waits, for METRICS_STALE_WAIT_S at most, for the
 * collection it wakes; after that scrapes copy the cache again.
 */
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../store/metrics_store.h"
#include "../util/log.h"
#include "../util/strutil.h"
#include "../util/timeutil.h"
#include "core.h"
#include "metrics.h"

typedef struct MetricsFamilyDef {
    const char *name, *type, *help;
} MetricsFamilyDef;

enum {
    F_LIBVIRT_UP,
    F_DOM_MAXMEM,
    F_DOM_MEM,
    F_DOM_VCPUS,
    F_DOM_CPU,
    F_BLK_RB,
    F_BLK_RR,
    F_BLK_WB,
    F_BLK_WR,
    F_IF_RXB,
    F_IF_RXP,
    F_IF_RXE,
    F_IF_RXD,
    F_IF_TXB,
    F_IF_TXP,
    F_IF_TXE,
    F_IF_TXD,
    F_HOST_UP,
    F_HOST_VCPUS,
    F_HOST_RAM,
    F_HOST_DISK,
    F_HOST_CAPACITY,
    F_HOST_ALLOCATED,
    F_HOST_RATIO,
    F_HOST_VMS,
    F_HOST_CONTACT,
    F_TASKS,
    F_TASK_OLDEST,
    F_VMS,
    F_QUOTA_USED,
    F_QUOTA_LIMIT,
    F_COLLECT_SECONDS,
    F_COLLECT_TIME,
    _F_MAX,
};

static const MetricsFamilyDef families[_F_MAX] = {
    [F_LIBVIRT_UP] = {"libvirt_up", "gauge",
                      "Whether the host's libvirt answered the last collection."},
    [F_DOM_MAXMEM] = {"libvirt_domain_info_maximum_memory_bytes", "gauge",
                      "Maximum memory of the domain."},
    [F_DOM_MEM] = {"libvirt_domain_info_memory_usage_bytes", "gauge",
                   "Memory the domain has (balloon)."},
    [F_DOM_VCPUS] = {"libvirt_domain_info_virtual_cpus", "gauge", "vCPUs of the domain."},
    [F_DOM_CPU] = {"libvirt_domain_info_cpu_time_seconds_total", "counter",
                   "CPU time the domain used."},
    [F_BLK_RB] = {"libvirt_domain_block_stats_read_bytes_total", "counter",
                  "Bytes read from the block device."},
    [F_BLK_RR] = {"libvirt_domain_block_stats_read_requests_total", "counter",
                  "Read requests to the block device."},
    [F_BLK_WB] = {"libvirt_domain_block_stats_write_bytes_total", "counter",
                  "Bytes written to the block device."},
    [F_BLK_WR] = {"libvirt_domain_block_stats_write_requests_total", "counter",
                  "Write requests to the block device."},
    [F_IF_RXB] = {"libvirt_domain_interface_stats_receive_bytes_total", "counter",
                  "Bytes received on the interface."},
    [F_IF_RXP] = {"libvirt_domain_interface_stats_receive_packets_total", "counter",
                  "Packets received on the interface."},
    [F_IF_RXE] = {"libvirt_domain_interface_stats_receive_errors_total", "counter",
                  "Receive errors on the interface."},
    [F_IF_RXD] = {"libvirt_domain_interface_stats_receive_drops_total", "counter",
                  "Receive drops on the interface."},
    [F_IF_TXB] = {"libvirt_domain_interface_stats_transmit_bytes_total", "counter",
                  "Bytes sent on the interface."},
    [F_IF_TXP] = {"libvirt_domain_interface_stats_transmit_packets_total", "counter",
                  "Packets sent on the interface."},
    [F_IF_TXE] = {"libvirt_domain_interface_stats_transmit_errors_total", "counter",
                  "Transmit errors on the interface."},
    [F_IF_TXD] = {"libvirt_domain_interface_stats_transmit_drops_total", "counter",
                  "Transmit drops on the interface."},
    [F_HOST_UP] = {"nimbus_host_up", "gauge", "1 when the host's libvirt connection is up."},
    [F_HOST_VCPUS] = {"nimbus_host_vcpus", "gauge", "Physical CPUs of the host."},
    [F_HOST_RAM] = {"nimbus_host_ram_bytes", "gauge", "Physical memory of the host."},
    [F_HOST_DISK] = {"nimbus_host_disk_bytes", "gauge",
                     "Capacity of the host's Nimbus storage pool."},
    [F_HOST_CAPACITY] = {"nimbus_host_capacity", "gauge",
                         "What may be placed on the host (physical x ratio), by resource (vcpus, "
                         "ram_bytes, disk_bytes)."},
    [F_HOST_ALLOCATED] = {"nimbus_host_allocated", "gauge",
                          "What the host's VMs claim, by resource (vcpus, ram_bytes, disk_bytes)."},
    [F_HOST_RATIO] = {"nimbus_host_allocation_ratio", "gauge",
                      "The host's configured over-commit ratio by resource (cpu, ram, disk)."},
    [F_HOST_VMS] = {"nimbus_host_vms", "gauge", "VMs on the host by state."},
    [F_HOST_CONTACT] = {"nimbus_host_last_contact_timestamp_seconds", "gauge",
                        "When the reconciler last recorded a look at the host."},
    [F_TASKS] = {"nimbus_tasks", "gauge", "Tasks in the journal by kind and state."},
    [F_TASK_OLDEST] = {"nimbus_task_oldest_unfinished_timestamp_seconds", "gauge",
                       "Creation time of the oldest pending or running task, by kind."},
    [F_VMS] = {"nimbus_vms", "gauge", "VMs by project and state."},
    [F_QUOTA_USED] = {"nimbus_project_quota_used", "gauge",
                      "What the project uses of each quota resource."},
    [F_QUOTA_LIMIT] = {"nimbus_project_quota_limit", "gauge",
                       "The project's quota limit by resource (absent: unlimited)."},
    [F_COLLECT_SECONDS] = {"nimbus_metrics_collection_duration_seconds", "gauge",
                           "How long the last collection took."},
    [F_COLLECT_TIME] = {"nimbus_metrics_collection_timestamp_seconds", "gauge",
                        "When the last collection ended."},
};

#define METRICS_IDLE_INTERVALS 4
#define METRICS_STALE_WAIT_S 10

struct MetricsCollector {
    Core *core;
    unsigned interval_s;
    unsigned idle_after_s; /* 0: never pauses */
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond; /* wakes the collector: stop, or a scrape while it idles */
    pthread_cond_t done; /* a collection ended (or stop): wakes scrapes waiting for one */
    /* Guarded by lock: */
    bool stopping;
    bool idle;                /* waiting for a scrape */
    uint64_t last_scrape_ms;  /* monotonic */
    uint64_t collected_ms;    /* monotonic end of the last collection, 0: none yet */
    uint64_t generation;      /* collections done */
    MetricsBuf cache[_F_MAX]; /* each family's sample lines */
};

static MetricsCollector *metrics_current;

MetricsCollector *
metrics_collector_current(void)
{
    return __atomic_load_n(&metrics_current, __ATOMIC_ACQUIRE);
}

/* id -> name tables: an array of pointers to records whose first fields are id then name. */
typedef struct IdName {
    const char *id, *name;
} IdName;

static int
cmp_idname(const void *a, const void *b)
{
    return strcmp(((const IdName *)a)->id, ((const IdName *)b)->id);
}

static const char *
idname_find(const IdName *t, size_t n, const char *id)
{
    IdName key = {.id = id};
    const IdName *f = n ? bsearch(&key, t, n, sizeof(*t), cmp_idname) : NULL;
    return f ? f->name : "";
}

static void
sample(MetricsBuf *b, const char *name, const char *labels, double v)
{
    metrics_buf_printf(b, "%s{%s} ", name, labels);
    metrics_buf_value(b, v);
    metrics_buf_append(b, "\n", 1);
}

static void
sample_dev(MetricsBuf *b, const char *name, const char *labels, const char *dev, double v)
{
    metrics_buf_printf(b, "%s{%s,target_device=\"", name, labels);
    metrics_buf_label_value(b, dev);
    metrics_buf_append(b, "\"} ", 3);
    metrics_buf_value(b, v);
    metrics_buf_append(b, "\n", 1);
}

/* `k="v"` appended to lbl, escaped, with a comma before unless first. */
static void
label(MetricsBuf *lbl, const char *k, const char *v)
{
    metrics_buf_printf(lbl, "%s%s=\"", lbl->len ? "," : "", k);
    metrics_buf_label_value(lbl, v);
    metrics_buf_append(lbl, "\"", 1);
}

/* An owner's VMs by state, from the store's grouped counts (sorted by key). */
static const unsigned *
vm_counts_find(const MetricsVmCounts *c, size_t n, const char *key)
{
    static const unsigned none[_VM_STATE_MAX];
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int r = strcmp(c[mid].key, key);
        if (r == 0)
            return c[mid].n;
        if (r < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return none;
}

static int
cmp_vm_labels(const void *a, const void *b)
{
    return strcmp(((const MetricsVmLabels *)a)->id, ((const MetricsVmLabels *)b)->id);
}

/* One host's domains, matched to their VMs (the host's own, read for it alone and only the
 * columns that label a series: the collector never holds every VM row at once): domains that
 * are not Nimbus VMs are skipped. */
static void
collect_host_domains(MetricsCollector *mc, const Host *h, const IdName *projects, size_t n_projects,
                     const IdName *flavors, size_t n_flavors, MetricsBuf *f)
{
    _cleanup_free_ MetricsVmLabels *vms = NULL;
    size_t n_vms = 0;
    _cleanup_error_ NbError *verr = NULL;
    if (metrics_store_host_vms(mc->core->store, h->name, &vms, &n_vms, &verr) < 0) {
        log_warn("metrics: host %s: %s", h->name, verr->message);
        return;
    }
    MetricsBuf hl = {0};
    label(&hl, "host", h->name);
    HvConn *conn = host_registry_get_conn(mc->core->registry, h->name);
    HvDomainStats *st = NULL;
    size_t n = 0;
    bool ok = false;
    if (conn) {
        _cleanup_error_ NbError *err = NULL;
        ok = hv_domain_stats_all(conn, VM_DOMAIN_PREFIX, &st, &n, &err) == 0;
        if (!ok)
            log_debug("metrics: host %s: %s", h->name, err ? err->message : "?");
        hv_conn_free(conn);
    }
    sample(&f[F_LIBVIRT_UP], "libvirt_up", hl.data ? hl.data : "", ok ? 1 : 0);
    MetricsBuf l = {0};
    for (size_t i = 0; i < n; i++) {
        const HvDomainStats *d = &st[i];
        MetricsVmLabels key;
        snprintf(key.id, sizeof(key.id), "%s", d->name + strlen(VM_DOMAIN_PREFIX));
        const MetricsVmLabels *vm =
            n_vms ? bsearch(&key, vms, n_vms, sizeof(*vms), cmp_vm_labels) : NULL;
        if (!vm)
            continue;
        l.len = 0;
        label(&l, "domain", d->name);
        label(&l, "vm", vm->name);
        label(&l, "vm_id", vm->id);
        label(&l, "project", idname_find(projects, n_projects, vm->project));
        label(&l, "flavor", idname_find(flavors, n_flavors, vm->flavor_id));
        label(&l, "host", h->name);
        if (l.oom)
            break;
        sample(&f[F_DOM_MAXMEM], families[F_DOM_MAXMEM].name, l.data,
               (double)d->max_memory_kib * 1024);
        sample(&f[F_DOM_MEM], families[F_DOM_MEM].name, l.data, (double)d->memory_kib * 1024);
        sample(&f[F_DOM_VCPUS], families[F_DOM_VCPUS].name, l.data, d->vcpus);
        sample(&f[F_DOM_CPU], families[F_DOM_CPU].name, l.data, (double)d->cpu_time_ns / 1e9);
        for (size_t j = 0; j < d->n_blocks; j++) {
            const HvBlockStats *b = &d->blocks[j];
            if (!b->dev[0])
                continue;
            sample_dev(&f[F_BLK_RB], families[F_BLK_RB].name, l.data, b->dev,
                       (double)b->read_bytes);
            sample_dev(&f[F_BLK_RR], families[F_BLK_RR].name, l.data, b->dev,
                       (double)b->read_requests);
            sample_dev(&f[F_BLK_WB], families[F_BLK_WB].name, l.data, b->dev,
                       (double)b->write_bytes);
            sample_dev(&f[F_BLK_WR], families[F_BLK_WR].name, l.data, b->dev,
                       (double)b->write_requests);
        }
        for (size_t j = 0; j < d->n_ifaces; j++) {
            const HvIfaceStats *x = &d->ifaces[j];
            if (!x->dev[0])
                continue;
            const uint64_t v[8] = {x->rx_bytes, x->rx_packets, x->rx_errors, x->rx_drops,
                                   x->tx_bytes, x->tx_packets, x->tx_errors, x->tx_drops};
            for (int k = 0; k < 8; k++)
                sample_dev(&f[F_IF_RXB + k], families[F_IF_RXB + k].name, l.data, x->dev,
                           (double)v[k]);
        }
    }
    metrics_buf_free(&l);
    metrics_buf_free(&hl);
    hv_domain_stats_free(st, n);
}

static void
collect_hosts(MetricsCollector *mc, const Host *hosts, size_t n_hosts,
              const MetricsVmCounts *host_vms, size_t n_host_vms, MetricsBuf *f)
{
    MetricsBuf l = {0};
    for (size_t i = 0; i < n_hosts; i++) {
        const Host *h = &hosts[i];
        l.len = 0;
        label(&l, "host", h->name);
        if (l.oom)
            break;
        const char *hl = l.data;
        bool up = host_registry_get_state(mc->core->registry, h->name) == HOST_CONN_UP;
        sample(&f[F_HOST_UP], "nimbus_host_up", hl, up ? 1 : 0);
        sample(&f[F_HOST_VCPUS], "nimbus_host_vcpus", hl, h->facts.vcpus);
        sample(&f[F_HOST_RAM], "nimbus_host_ram_bytes", hl, (double)h->facts.ram_mib * 1048576.0);
        sample(&f[F_HOST_DISK], "nimbus_host_disk_bytes", hl,
               (double)h->facts.disk_gib * 1073741824.0);
        const struct {
            const char *res, *ratio_name;
            double capacity, allocated, ratio;
        } r[3] = {
            {"vcpus", "cpu", (double)host_capacity(h->facts.vcpus, h->cpu_ratio),
             (double)h->vcpus_used, h->cpu_ratio},
            {"ram_bytes", "ram", (double)host_capacity(h->facts.ram_mib, h->ram_ratio) * 1048576.0,
             (double)h->ram_used_mib * 1048576.0, h->ram_ratio},
            {"disk_bytes", "disk",
             (double)host_capacity(h->facts.disk_gib, h->disk_ratio) * 1073741824.0,
             (double)h->disk_used_gib * 1073741824.0, h->disk_ratio},
        };
        for (int k = 0; k < 3; k++) {
            metrics_buf_printf(&f[F_HOST_CAPACITY], "nimbus_host_capacity{%s,resource=\"%s\"} ", hl,
                               r[k].res);
            metrics_buf_value(&f[F_HOST_CAPACITY], r[k].capacity);
            metrics_buf_printf(&f[F_HOST_ALLOCATED], "nimbus_host_allocated{%s,resource=\"%s\"} ",
                               hl, r[k].res);
            metrics_buf_value(&f[F_HOST_ALLOCATED], r[k].allocated);
            metrics_buf_printf(&f[F_HOST_RATIO],
                               "nimbus_host_allocation_ratio{%s,resource=\"%s\"} ", hl,
                               r[k].ratio_name);
            metrics_buf_value(&f[F_HOST_RATIO], r[k].ratio);
            metrics_buf_append(&f[F_HOST_CAPACITY], "\n", 1);
            metrics_buf_append(&f[F_HOST_ALLOCATED], "\n", 1);
            metrics_buf_append(&f[F_HOST_RATIO], "\n", 1);
        }
        const unsigned *by_state = vm_counts_find(host_vms, n_host_vms, h->name);
        for (int s = 0; s < _VM_STATE_MAX; s++)
            metrics_buf_printf(&f[F_HOST_VMS], "nimbus_host_vms{%s,state=\"%s\"} %u\n", hl,
                               vm_state_to_string((VmState)s), by_state[s]);
        double contact = 0;
        if (h->last_contact[0] && nb_timestamp_parse(h->last_contact, &contact) == 0)
            metrics_buf_printf(&f[F_HOST_CONTACT],
                               "nimbus_host_last_contact_timestamp_seconds{%s} %.3f\n", hl,
                               contact);
    }
    metrics_buf_free(&l);
}

static void
collect_store(MetricsCollector *mc, const Project *projects, size_t n_projects,
              const MetricsVmCounts *project_vms, size_t n_project_vms, MetricsBuf *f)
{
    Store *s = mc->core->store;
    _cleanup_error_ NbError *err = NULL;
    MetricsTaskCounts tc;
    if (metrics_store_task_counts(s, &tc, &err) == 0) {
        for (int k = 0; k < _TASK_KIND_MAX; k++) {
            for (int t = 0; t < _TASK_STATE_MAX; t++)
                metrics_buf_printf(&f[F_TASKS], "nimbus_tasks{kind=\"%s\",state=\"%s\"} %lld\n",
                                   task_kind_to_string((TaskKind)k),
                                   task_state_to_string((TaskState)t), (long long)tc.n[k][t]);
            if (tc.oldest_unfinished[k] > 0)
                metrics_buf_printf(&f[F_TASK_OLDEST],
                                   "nimbus_task_oldest_unfinished_timestamp_seconds{kind=\"%s\"} "
                                   "%.3f\n",
                                   task_kind_to_string((TaskKind)k), tc.oldest_unfinished[k]);
        }
    } else {
        log_warn("metrics: %s", err->message);
    }
    MetricsBuf l = {0};
    for (size_t p = 0; p < n_projects; p++) {
        const Project *pr = &projects[p];
        l.len = 0;
        label(&l, "project", pr->name);
        if (l.oom)
            break;
        const unsigned *by_state = vm_counts_find(project_vms, n_project_vms, pr->id);
        for (int st = 0; st < _VM_STATE_MAX; st++)
            metrics_buf_printf(&f[F_VMS], "nimbus_vms{%s,state=\"%s\"} %u\n", l.data,
                               vm_state_to_string((VmState)st), by_state[st]);
        int64_t used[_QUOTA_MAX];
        _cleanup_error_ NbError *qerr = NULL;
        if (project_store_quota_usage(s, pr->id, used, &qerr) < 0)
            continue;
        for (int q = 0; q < _QUOTA_MAX; q++) {
            metrics_buf_printf(&f[F_QUOTA_USED],
                               "nimbus_project_quota_used{%s,resource=\"%s\"} %lld\n", l.data,
                               quota_resource_names[q], (long long)used[q]);
            if (pr->quota.limit[q] >= 0)
                metrics_buf_printf(&f[F_QUOTA_LIMIT],
                                   "nimbus_project_quota_limit{%s,resource=\"%s\"} %lld\n", l.data,
                                   quota_resource_names[q], (long long)pr->quota.limit[q]);
        }
    }
    metrics_buf_free(&l);
}

/* One collection: the store's figures, then every host, into fresh buffers swapped in. */
static void
metrics_collect(MetricsCollector *mc)
{
    Store *s = mc->core->store;
    uint64_t t0 = nb_monotonic_ms();
    MetricsBuf f[_F_MAX];
    memset(f, 0, sizeof(f));
    Host *hosts = NULL;
    Project *projects = NULL;
    Flavor *flavors = NULL;
    MetricsVmCounts *host_vms = NULL, *project_vms = NULL;
    size_t n_hosts = 0, n_projects = 0, n_flavors = 0, n_host_vms = 0, n_project_vms = 0;
    IdName *pnames = NULL, *fnames = NULL;
    _cleanup_error_ NbError *err = NULL;
    if (host_store_list(s, &hosts, &n_hosts, &err) < 0 ||
        project_store_list(s, NULL, &projects, &n_projects, &err) < 0 ||
        flavor_store_list(s, &flavors, &n_flavors, &err) < 0 ||
        metrics_store_vm_counts(s, true, &host_vms, &n_host_vms, &err) < 0 ||
        metrics_store_vm_counts(s, false, &project_vms, &n_project_vms, &err) < 0) {
        log_warn("metrics: cannot read the store: %s", err->message);
        goto out;
    }
    pnames = calloc(n_projects + 1, sizeof(*pnames));
    fnames = calloc(n_flavors + 1, sizeof(*fnames));
    if (!pnames || !fnames)
        goto out;
    for (size_t i = 0; i < n_projects; i++)
        pnames[i] = (IdName){projects[i].id, projects[i].name};
    for (size_t i = 0; i < n_flavors; i++)
        fnames[i] = (IdName){flavors[i].id, flavors[i].name};
    qsort(pnames, n_projects, sizeof(*pnames), cmp_idname);
    qsort(fnames, n_flavors, sizeof(*fnames), cmp_idname);

    collect_store(mc, projects, n_projects, project_vms, n_project_vms, f);
    collect_hosts(mc, hosts, n_hosts, host_vms, n_host_vms, f);
    for (size_t i = 0; i < n_hosts; i++) {
        pthread_mutex_lock(&mc->lock);
        bool stop = mc->stopping;
        pthread_mutex_unlock(&mc->lock);
        if (stop)
            goto out;
        collect_host_domains(mc, &hosts[i], pnames, n_projects, fnames, n_flavors, f);
    }
    double took = (double)(nb_monotonic_ms() - t0) / 1000.0;
    metrics_buf_printf(&f[F_COLLECT_SECONDS], "nimbus_metrics_collection_duration_seconds %.3f\n",
                       took);
    metrics_buf_printf(&f[F_COLLECT_TIME], "nimbus_metrics_collection_timestamp_seconds %.3f\n",
                       nb_epoch_now());
    bool oom = false;
    for (int i = 0; i < _F_MAX; i++)
        oom |= f[i].oom;
    if (oom) {
        log_warn("metrics: out of memory rendering the collection");
        goto out;
    }
    pthread_mutex_lock(&mc->lock);
    for (int i = 0; i < _F_MAX; i++) {
        MetricsBuf old = mc->cache[i];
        mc->cache[i] = f[i];
        f[i] = old;
    }
    pthread_mutex_unlock(&mc->lock);
out:
    pthread_mutex_lock(&mc->lock);
    mc->collected_ms = nb_monotonic_ms();
    mc->generation++;
    pthread_cond_broadcast(&mc->done);
    pthread_mutex_unlock(&mc->lock);
    for (int i = 0; i < _F_MAX; i++)
        metrics_buf_free(&f[i]);
    free(pnames);
    free(fnames);
    free(host_vms);
    free(project_vms);
    free(hosts);
    free(projects);
    free(flavors);
    /* A collection allocates and frees MBs of text at 15,000 VMs; glibc keeps freed heap memory
     * (its mmap threshold rises after large frees) unless asked to give it back. */
    malloc_trim(0);
}

static void
deadline_after_ms(struct timespec *ts, uint64_t ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += (time_t)(ms / 1000);
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

/* How long without a scrape pauses the collector; UINT64_MAX: never. */
static uint64_t
idle_after_ms(const MetricsCollector *mc)
{
    if (mc->idle_after_s == 0)
        return UINT64_MAX;
    uint64_t s = (uint64_t)mc->interval_s * METRICS_IDLE_INTERVALS;
    return (s > mc->idle_after_s ? s : mc->idle_after_s) * 1000;
}

static void *
metrics_collector_main(void *arg)
{
    MetricsCollector *mc = arg;
    for (;;) {
        metrics_collect(mc);
        pthread_mutex_lock(&mc->lock);
        struct timespec until;
        deadline_after_ms(&until, (uint64_t)mc->interval_s * 1000);
        while (!mc->stopping && pthread_cond_timedwait(&mc->cond, &mc->lock, &until) != ETIMEDOUT)
            ;
        if (!mc->stopping && nb_monotonic_ms() - mc->last_scrape_ms > idle_after_ms(mc)) {
            log_info("metrics: no scrape for %ju s; collecting again at the next one",
                     (uintmax_t)(idle_after_ms(mc) / 1000));
            mc->idle = true;
            while (!mc->stopping && mc->idle)
                pthread_cond_wait(&mc->cond, &mc->lock);
        }
        bool stop = mc->stopping;
        pthread_mutex_unlock(&mc->lock);
        if (stop)
            break;
    }
    return NULL;
}

/* A scrape: noted; an idle collector is woken, and a cache older than two intervals (the
 * collector was idle, or is slow) waited on for one collection, boundedly. Under mc->lock. */
static void
metrics_scrape_locked(MetricsCollector *mc)
{
    uint64_t now = nb_monotonic_ms();
    mc->last_scrape_ms = now;
    if (mc->idle) {
        mc->idle = false;
        pthread_cond_broadcast(&mc->cond);
    }
    if (mc->collected_ms && now - mc->collected_ms <= 2 * (uint64_t)mc->interval_s * 1000)
        return;
    uint64_t gen = mc->generation;
    struct timespec until;
    deadline_after_ms(&until, METRICS_STALE_WAIT_S * 1000);
    while (!mc->stopping && mc->generation == gen &&
           pthread_cond_timedwait(&mc->done, &mc->lock, &until) != ETIMEDOUT)
        ;
}

int
metrics_collector_start(Core *core, unsigned interval_s, unsigned idle_after_s,
                        MetricsCollector **ret)
{
    *ret = NULL;
    if (interval_s == 0)
        return 0;
    MetricsCollector *mc = calloc(1, sizeof(*mc));
    if (!mc)
        return -ENOMEM;
    mc->core = core;
    mc->interval_s = interval_s;
    mc->idle_after_s = idle_after_s;
    pthread_mutex_init(&mc->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&mc->cond, &ca);
    pthread_cond_init(&mc->done, &ca);
    pthread_condattr_destroy(&ca);
    mc->last_scrape_ms = nb_monotonic_ms(); /* a first scrape soon after start finds figures */
    int rc = pthread_create(&mc->thread, NULL, metrics_collector_main, mc);
    if (rc != 0) {
        pthread_cond_destroy(&mc->cond);
        pthread_cond_destroy(&mc->done);
        pthread_mutex_destroy(&mc->lock);
        free(mc);
        return -rc;
    }
    __atomic_store_n(&metrics_current, mc, __ATOMIC_RELEASE);
    *ret = mc;
    return 0;
}

void
metrics_collector_stop(MetricsCollector *mc)
{
    if (!mc)
        return;
    __atomic_store_n(&metrics_current, NULL, __ATOMIC_RELEASE);
    pthread_mutex_lock(&mc->lock);
    mc->stopping = true;
    pthread_cond_broadcast(&mc->cond);
    pthread_cond_broadcast(&mc->done);
    pthread_mutex_unlock(&mc->lock);
    /* A host gone silent in the middle of its call holds the thread until libvirt's keepalive
     * gives up on it: nimbusd's stop does not wait for that. The thread then touches nothing but
     * its own buffers and mc (left allocated) before it ends. */
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 10;
    if (pthread_timedjoin_np(mc->thread, NULL, &until) != 0) {
        log_warn("metrics: the collector is still in a libvirt call; leaving it behind");
        return;
    }
    for (int i = 0; i < _F_MAX; i++)
        metrics_buf_free(&mc->cache[i]);
    pthread_cond_destroy(&mc->cond);
    pthread_cond_destroy(&mc->done);
    pthread_mutex_destroy(&mc->lock);
    free(mc);
}

void
metrics_render(Core *core, MetricsCollector *mc, MetricsFormat f, MetricsBuf *out)
{
    metrics_write_process(out, f);
    TaskEngineStats ts;
    task_engine_stats(core->tasks, &ts);
    metrics_write_family(out, f, "nimbus_task_workers", "gauge",
                         "Task workers, and how many are busy.");
    metrics_buf_printf(out, "nimbus_task_workers %u\n", ts.workers);
    metrics_write_family(out, f, "nimbus_task_workers_busy", "gauge",
                         "Task workers running a step.");
    metrics_buf_printf(out, "nimbus_task_workers_busy %u\n", ts.busy);
    metrics_write_family(out, f, "nimbus_task_queue", "gauge",
                         "Tasks queued in this daemon: ready to run, or waiting on a timer.");
    metrics_buf_printf(out, "nimbus_task_queue{state=\"ready\"} %zu\n", ts.ready);
    metrics_buf_printf(out, "nimbus_task_queue{state=\"waiting\"} %zu\n", ts.waiting);
    unsigned counts[_HOST_CONN_MAX];
    host_registry_counts(core->registry, counts);
    metrics_write_family(out, f, "nimbus_hosts", "gauge", "Hosts by connection state.");
    for (int i = 0; i < _HOST_CONN_MAX; i++)
        metrics_buf_printf(out, "nimbus_hosts{state=\"%s\"} %u\n", host_conn_to_string((HostConn)i),
                           counts[i]);
    host_registry_write_metrics(core->registry, out, f);
    if (!mc)
        return;
    pthread_mutex_lock(&mc->lock);
    metrics_scrape_locked(mc);
    for (int i = 0; i < _F_MAX; i++) {
        if (!mc->cache[i].len)
            continue;
        metrics_write_family(out, f, families[i].name, families[i].type, families[i].help);
        metrics_buf_append(out, mc->cache[i].data, mc->cache[i].len);
    }
    pthread_mutex_unlock(&mc->lock);
}
