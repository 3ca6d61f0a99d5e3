/*
 * The host registry, the bottom of core: one entry per host with its libvirt connection. A fixed
 * pool of workers looks at the hosts on a schedule (their domains and facts) and notices lost
 * connections; connector threads connect them (with a deadline) and back off. A slow or silent
 * host occupies only the thread in a call to it, and the watchdog has another thread stand in
 * for that one. The registry does no store I/O: what the workers and libvirt's event thread
 * see goes upward as HostReports through the callback it is handed (the reconciler's), which
 * only queues.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../hv/hv.h"
#include "../model/host.h"
#include "../util/error.h"
#include "../util/timeutil.h"
#include "metrics.h"

struct Core;
typedef struct HostRegistry HostRegistry;

typedef enum HostReportKind {
    HOST_REPORT_UP,    /* connected (first time or again); facts set */
    HOST_REPORT_DOWN,  /* unreachable: error says why */
    HOST_REPORT_SYNC,  /* a periodic look: domains (and facts when they changed) */
    HOST_REPORT_EVENT, /* a libvirt lifecycle event: domain, event */
} HostReportKind;

typedef struct HostIp {
    char domain[128];
    char ip[64];
} HostIp;

/* Owned by whoever the callback hands it to: free with host_registry_report_free. */
typedef struct HostReport {
    HostReportKind kind;
    char host_id[NB_UUID_STRLEN];
    char host[NB_NAME_MAX + 1];
    bool has_facts;
    HostFacts facts;
    bool touch; /* SYNC: time to record the contact again, facts changed or not */
    char error[256];
    char seen_at[NB_TIMESTAMP_LEN]; /* SYNC, EVENT: when libvirt was asked, or told us */
    HvDomainInfo *domains;          /* SYNC */
    size_t n_domains;
    HostIp *ips; /* SYNC: addresses found for the domains the reconciler asked about */
    size_t n_ips;
    char domain[128]; /* EVENT */
    HvEventKind event;
} HostReport;
void host_registry_report_free(HostReport *r);

/* Called on a registry thread or libvirt's event thread; must only queue. Takes the report. */
typedef void (*HostReportFn)(HostReport *r, void *userdata);

typedef struct HostRegistryConfig {
    const char *pool_name;
    const char *pool_path;
    const char *network;
    unsigned sync_interval_s;
    unsigned quiet_sync_interval_s; /* a quiet host's looks (reg_host_next_look); 0: 300 */
    unsigned connect_timeout_s;     /* a connect not done by then reports the host down */
} HostRegistryConfig;

int host_registry_new(const HostRegistryConfig *cfg, HostReportFn report, void *userdata,
                      HostRegistry **ret);
/* Registers the hosts and starts the workers; returns at once. */
int host_registry_start(HostRegistry *reg, const Host *hosts, size_t n, NbError **err);
/* Waits until the host is up, or down, or timeout_ms passed: the HostConn it reached. */
HostConn host_registry_wait(HostRegistry *reg, const char *name, uint64_t timeout_ms);
/* Stops the registry's threads: waits for them at most until one deadline; a thread stuck in a
 * libvirt call (a host that never answers) is left behind and never reports again. */
void host_registry_stop(HostRegistry *reg);
void host_registry_free(HostRegistry *reg);

/* Registers a host just added; it connects at once. */
int host_registry_add_host(HostRegistry *reg, const Host *h);
/* Forgets a host: its connection is dropped, and it is looked at no more. */
void host_registry_remove_host(HostRegistry *reg, const char *name);
/* A reference to the host's connection, or NULL when it has none: hv_conn_free it. */
HvConn *host_registry_get_conn(HostRegistry *reg, const char *name);
HostConn host_registry_get_state(HostRegistry *reg, const char *name);
/* Domains the reconciler wants an address for (running, none known): asked at the next look. */
void host_registry_want_ips(HostRegistry *reg, const char *name, char **domains, size_t n);
/* Counts of hosts by connection state (removed ones excluded). */
void host_registry_counts(HostRegistry *reg, unsigned counts[_HOST_CONN_MAX]);
/* Appends the looks' figures for /metrics (see metrics_write_host_sync); allocates nothing per
 * look, one array per call. */
void host_registry_write_metrics(HostRegistry *reg, MetricsBuf *b, MetricsFormat f);
