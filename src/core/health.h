/*
 * What GET /v1/health reports: whether the store answers, and the hosts' connection states.
 * Polled by load balancers and monitoring, so it must stay cheap: one indexed read and a walk of
 * the in-memory host registry, no libvirt call.
 */
#pragma once

#include "core.h"

typedef struct HealthReport {
    unsigned hosts[_HOST_CONN_MAX]; /* by HostConn */
    unsigned hosts_total;
} HealthReport;

/* STORE_UNAVAILABLE when the store does not answer (ret's host counts are filled anyway). */
int health_check(Core *core, HealthReport *ret, NbError **err);
