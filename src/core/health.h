/*
 * What GET /v1/health reports: whether the store answers, and the hosts' connection states.
 * Polled by load balancers and monitoring, so it must stay cheap: one indexed read and a walk of
 * the in-memory host registry, no libvirt call.
 */
#pragma once

#include "core.h"
#include "task.h"

typedef struct HealthReport {
    unsigned hosts[_HOST_CONN_MAX]; /* by HostConn */
    unsigned hosts_total;
} HealthReport;

/* STORE_UNAVAILABLE when the store does not answer (ret's host counts are filled anyway). */
int health_check(Core *core, HealthReport *ret, NbError **err);

/* What GET /v1/ready reports: whether this daemon can do its work now. */
#define HEALTH_WORKERS_STALLED_MS 120000

typedef struct ReadyReport {
    bool ready;
    char store[256]; /* "ok" or why not */
    HostConn local;  /* the local host's connection */
    TaskEngineStats tasks;
    bool workers_ok; /* running, not stopping, not stalled */
} ReadyReport;

/* Readiness: the store answers, the local host's libvirt connection is up, the task workers
 * run (not stopping, not all stuck for HEALTH_WORKERS_STALLED_MS with tasks waiting). As cheap as
 * health_check. */
void health_ready(Core *core, ReadyReport *ret);
