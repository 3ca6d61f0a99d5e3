#include "scheduler.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../model/host.h"
#include "../util/strutil.h"

/* Scores closer than this are a tie, so that equal fractions computed along different roundings
 * still go to the earliest host. */
#define SCORE_EPSILON 1e-12

/* A zero capacity never fits, not even a request for none of it. */
static bool
fits(uint64_t used, uint64_t want, uint64_t cap)
{
    return cap > 0 && want <= cap && used <= cap - want;
}

static double
free_after(uint64_t used, uint64_t want, uint64_t cap)
{
    /* Only called once fits() holds: cap > 0 and used + want <= cap. */
    return (double)(cap - used - want) / (double)cap;
}

static bool
group_allows(const SchedHost *h, const SchedRequest *req)
{
    if (!req->has_group)
        return true;
    switch (req->policy) {
    case GROUP_POLICY_AFFINITY:
        /* The first member goes anywhere; the others follow it. */
        return req->group_placed == 0 || h->group_members > 0;
    case GROUP_POLICY_ANTI_AFFINITY:
        return h->group_members == 0;
    case GROUP_POLICY_SOFT_ANTI_AFFINITY:
        return true;
    default:
        /* A policy this code does not know is refused rather than ignored. */
        return false;
    }
}

typedef struct Weight {
    unsigned members;
    double score; /* mean free fraction of RAM and vCPUs after placement */
    double disk;  /* free fraction of disk after placement */
} Weight;

/* Whether a beats b, the best so far; a tie keeps b (the earlier host). */
static bool
weight_better(const Weight *a, const Weight *b, const SchedRequest *req)
{
    if (req->has_group && req->policy == GROUP_POLICY_SOFT_ANTI_AFFINITY &&
        a->members != b->members)
        return a->members < b->members;

    bool pack = req->weigher == SCHED_PACK;
    if (a->score > b->score + SCORE_EPSILON)
        return !pack;
    if (a->score < b->score - SCORE_EPSILON)
        return pack;
    if (a->disk > b->disk + SCORE_EPSILON)
        return !pack;
    if (a->disk < b->disk - SCORE_EPSILON)
        return pack;
    return false;
}

int
sched_select(const SchedHost *hosts, size_t n_hosts, const SchedRequest *req, SchedResult *res)
{
    Weight best = {0};

    memset(res, 0, sizeof(*res));
    res->chosen = -1;

    bool want_labels = req->labels && req->labels->n > 0;

    for (size_t i = 0; i < n_hosts; i++) {
        const SchedHost *h = &hosts[i];
        SchedFilter rejected = _SCHED_FILTER_MAX;
        uint64_t cpu_cap = 0, ram_cap = 0, disk_cap = 0;

        if ((req->only_host && !streq(req->only_host, h->name)) ||
            (req->exclude_host && streq(req->exclude_host, h->name)))
            rejected = SCHED_FILTER_HOST;
        else if (!h->schedulable)
            rejected = SCHED_FILTER_STATE;
        else if (req->needs_pool && !h->has_pool)
            rejected = SCHED_FILTER_POOL;
        else if (want_labels && (!h->labels || !labels_contain(h->labels, req->labels)))
            rejected = SCHED_FILTER_LABELS;
        else if (!group_allows(h, req))
            rejected = SCHED_FILTER_GROUP;
        else if (!fits(h->vcpus_used, req->vcpus, cpu_cap = host_capacity(h->vcpus, h->cpu_ratio)))
            rejected = SCHED_FILTER_VCPUS;
        else if (!fits(h->ram_used_mib, req->ram_mib,
                       ram_cap = host_capacity(h->ram_mib, h->ram_ratio)))
            rejected = SCHED_FILTER_RAM;
        else if (!fits(h->disk_used_gib, req->disk_gib,
                       disk_cap = host_capacity(h->disk_gib, h->disk_ratio)))
            rejected = SCHED_FILTER_DISK;

        if (rejected != _SCHED_FILTER_MAX) {
            res->removed[rejected]++;
            continue;
        }

        Weight w = {
            .members = h->group_members,
            .score = (free_after(h->ram_used_mib, req->ram_mib, ram_cap) +
                      free_after(h->vcpus_used, req->vcpus, cpu_cap)) /
                     2.0,
            .disk = free_after(h->disk_used_gib, req->disk_gib, disk_cap),
        };
        if (res->chosen < 0 || weight_better(&w, &best, req)) {
            res->chosen = (int)i;
            best = w;
        }
    }
    return res->chosen;
}

static const char *const filter_reason[_SCHED_FILTER_MAX] = {
    [SCHED_FILTER_HOST] = "not chosen (explicit host or migration source)",
    [SCHED_FILTER_STATE] = "down, disabled or in maintenance",
    [SCHED_FILTER_POOL] = "without the VM's storage pool active",
    [SCHED_FILTER_LABELS] = "without the labels",
    [SCHED_FILTER_GROUP] = "refused by the group policy",
    [SCHED_FILTER_VCPUS] = "without enough vCPUs",
    [SCHED_FILTER_RAM] = "without enough RAM",
    [SCHED_FILTER_DISK] = "without enough disk",
};

char *
sched_explain(const SchedResult *res, size_t n_hosts)
{
    /* Bounded: 7 reasons of under 50 characters, with counts of at most 20 digits. */
    char buf[1024];
    size_t len = 0;

    if (n_hosts == 0)
        return strdup("no host fits: there are no hosts");

    int r =
        snprintf(buf, sizeof(buf), "no host fits (%zu host%s)", n_hosts, n_hosts == 1 ? "" : "s");
    if (r < 0 || (size_t)r >= sizeof(buf))
        return NULL;
    len = (size_t)r;

    const char *sep = ": ";
    for (size_t f = 0; f < _SCHED_FILTER_MAX; f++) {
        if (res->removed[f] == 0)
            continue;
        r = snprintf(buf + len, sizeof(buf) - len, "%s%zu %s", sep, res->removed[f],
                     filter_reason[f]);
        if (r < 0 || (size_t)r >= sizeof(buf) - len)
            return NULL;
        len += (size_t)r;
        sep = ", ";
    }
    return strdup(buf);
}
