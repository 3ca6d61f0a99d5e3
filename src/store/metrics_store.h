/* The store's counts the metrics collector asks for (metrics_store.c): grouped reads on a
 * reader connection, never a write. */
#pragma once

#include <stdint.h>

#include "../model/task.h"
#include "../model/vm.h"
#include "store.h"

typedef struct MetricsTaskCounts {
    int64_t n[_TASK_KIND_MAX][_TASK_STATE_MAX];
    /* Epoch seconds of the oldest pending or running task of each kind, 0: none. */
    double oldest_unfinished[_TASK_KIND_MAX];
} MetricsTaskCounts;

/* VMs by state for one owner: a host's name or a project's id. */
typedef struct MetricsVmCounts {
    char key[NB_NAME_MAX + NB_UUID_STRLEN + 1];
    unsigned n[_VM_STATE_MAX];
} MetricsVmCounts;

/* VMs counted by state per host (by_host) or per project, sorted by key, in one grouped query:
 * the collector never holds every VM row at once. */
int metrics_store_vm_counts(Store *s, bool by_host, MetricsVmCounts **ret, size_t *ret_n,
                            NbError **err);

/* What labels one VM's series: the collector's view of a VM row, without the rest of it. */
typedef struct MetricsVmLabels {
    char id[NB_UUID_STRLEN];
    char name[NB_NAME_MAX + 1];
    char project[NB_UUID_STRLEN];
    char flavor_id[NB_UUID_STRLEN];
} MetricsVmLabels;

/* The VMs on one host, sorted by id (strcmp's order, for bsearch). *ret to free. */
int metrics_store_host_vms(Store *s, const char *host, MetricsVmLabels **ret, size_t *ret_n,
                           NbError **err);

/* Tasks in the journal by kind and state (kinds or states this build does not know are left
 * out), in one grouped query. */
int metrics_store_task_counts(Store *s, MetricsTaskCounts *ret, NbError **err);
