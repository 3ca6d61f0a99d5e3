/*
 * Placement: which host gets a VM. Pure (no I/O, no locks): the caller hands in a snapshot of
 * the hosts with their allocations and gets back a choice, or why nothing fits. Filters first
 * (each removes hosts, and the count it removed is kept for the error message), then a weigher
 * orders the survivors. Deterministic: ties go to the host that comes first in the array.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../model/group.h"
#include "../model/labels.h"

typedef struct SchedHost {
    const char *name;
    bool schedulable; /* connected, enabled, not in maintenance */
    /* capacity as libvirt reports it, and the allocation ratios the operator set */
    unsigned vcpus;
    uint64_t ram_mib;
    uint64_t disk_gib;
    double cpu_ratio, ram_ratio, disk_ratio;
    /* what the VMs placed on the host (and migrations under way to it) have claimed */
    uint64_t vcpus_used;
    uint64_t ram_used_mib;
    uint64_t disk_used_gib;
    const Labels *labels; /* may be NULL: none */
    /* members of the request's group already on this host (0 when the request has no group) */
    unsigned group_members;
    /* the request's pool is active on this host (ignored when the request names no pool) */
    bool has_pool;
} SchedHost;

typedef enum SchedWeigher {
    SCHED_SPREAD, /* the most free capacity after placement wins (default) */
    SCHED_PACK,   /* the least free capacity after placement wins */
} SchedWeigher;

typedef struct SchedRequest {
    unsigned vcpus;
    uint64_t ram_mib;
    uint64_t disk_gib;
    const Labels *labels; /* the host must carry all of them; may be NULL */
    bool has_group;
    GroupPolicy policy;
    unsigned group_placed;    /* members of the group placed anywhere (excluding this one) */
    const char *only_host;    /* an admin's explicit choice, or NULL */
    const char *exclude_host; /* the source host of a migration, or NULL */
    bool needs_pool;          /* the VM's root disk is in a pool: only hosts with has_pool */
    SchedWeigher weigher;
} SchedRequest;

/* The filters, in the order they run. */
typedef enum SchedFilter {
    SCHED_FILTER_HOST,   /* only_host / exclude_host */
    SCHED_FILTER_STATE,  /* not schedulable */
    SCHED_FILTER_POOL,   /* needs_pool and the pool is not active there */
    SCHED_FILTER_LABELS, /* lacks a label */
    SCHED_FILTER_GROUP,  /* affinity / anti-affinity */
    SCHED_FILTER_VCPUS,  /* vcpus_used + vcpus > floor(vcpus * cpu_ratio) */
    SCHED_FILTER_RAM,    /* ram_used_mib + ram_mib > floor(ram_mib * ram_ratio) */
    SCHED_FILTER_DISK,   /* disk_used_gib + disk_gib > floor(disk_gib * disk_ratio) */
    _SCHED_FILTER_MAX,
} SchedFilter;

typedef struct SchedResult {
    int chosen;                        /* index into hosts, or -1 when nothing fits */
    size_t removed[_SCHED_FILTER_MAX]; /* hosts each filter removed */
} SchedResult;

/* Fills res; returns res->chosen. Never fails: an empty cluster is "nothing fits". */
int sched_select(const SchedHost *hosts, size_t n_hosts, const SchedRequest *req, SchedResult *res);

/* Why nothing fits, for the error message, e.g. "no host fits (3 hosts): 1 down, disabled or in
 * maintenance, 2 without enough RAM". Newly allocated; NULL on OOM. */
char *sched_explain(const SchedResult *res, size_t n_hosts);
