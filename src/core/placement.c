/*
 * Placement with atomic claims. The scheduler (scheduler.c) decides on a snapshot of the hosts
 * and what they have claimed; the snapshot is kept in memory and rebuilt from the store only
 * when the store's placement generation says something else changed it (a VM deleted or moved,
 * a host added, disabled or re-measured). A choice and the row that claims it (the VM insert,
 * or the migration's destination) are made under one lock, so two creates can never both take
 * the last room on a host.
 */
#include <stdlib.h>
#include <string.h>

#include "../util/log.h"
#include "../util/strutil.h"
#include "core.h"
#include "scheduler.h"

struct Placement {
    pthread_mutex_t lock;
    uint64_t gen; /* the store's placement generation the snapshot matches; 0: none */
    Host *hosts;
    SchedHost *sched;
    size_t n;
};

int
placement_new(Core *core, Placement **ret)
{
    Placement *p = calloc(1, sizeof(*p));
    if (!p)
        return -1;
    pthread_mutex_init(&p->lock, NULL);
    *ret = p;
    return 0;
}

void
placement_free(Placement *p)
{
    if (!p)
        return;
    free(p->hosts);
    free(p->sched);
    pthread_mutex_destroy(&p->lock);
    free(p);
}

void
placement_lock(Placement *p)
{
    pthread_mutex_lock(&p->lock);
}

void
placement_unlock(Placement *p)
{
    pthread_mutex_unlock(&p->lock);
}

/* With the lock held. */
static int
placement_refresh(Core *core, Placement *p, NbError **err)
{
    uint64_t gen = store_placement_generation(core->store);
    if (gen == p->gen && p->hosts)
        return 0;
    Host *hosts = NULL;
    size_t n = 0;
    if (host_store_list(core->store, &hosts, &n, err) < 0)
        return -1;
    SchedHost *sched = calloc(n ? n : 1, sizeof(*sched));
    if (!sched) {
        free(hosts);
        return nb_error_set(err, NB_ERR_INTERNAL, "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        const Host *h = &hosts[i];
        sched[i] = (SchedHost){
            .name = h->name,
            .schedulable = h->conn == HOST_CONN_UP && h->admin == HOST_ADMIN_ENABLED,
            .vcpus = h->facts.vcpus,
            .ram_mib = h->facts.ram_mib,
            .disk_gib = h->facts.disk_gib,
            .cpu_ratio = h->cpu_ratio,
            .ram_ratio = h->ram_ratio,
            .disk_ratio = h->disk_ratio,
            .vcpus_used = h->vcpus_used,
            .ram_used_mib = h->ram_used_mib,
            .disk_used_gib = h->disk_used_gib,
            .labels = &h->labels,
        };
    }
    free(p->hosts);
    free(p->sched);
    p->hosts = hosts;
    p->sched = sched;
    p->n = n;
    p->gen = gen;
    return 0;
}

/* Fills the group part of the request and each host's member count. */
static int
placement_group(Core *core, Placement *p, const char *group_id, const char *exclude_vm,
                SchedRequest *req, NbError **err)
{
    for (size_t i = 0; i < p->n; i++)
        p->sched[i].group_members = 0;
    if (!group_id || !group_id[0])
        return 0;
    Group g;
    HostCount *counts = NULL;
    size_t n = 0;
    if (group_store_get(core->store, NULL, group_id, &g, err) < 0 ||
        group_store_member_hosts(core->store, group_id, &counts, &n, err) < 0)
        return -1;
    req->has_group = true;
    req->policy = g.policy;
    req->group_placed = g.members > 0 ? g.members - (exclude_vm ? 1 : 0) : 0;
    for (size_t j = 0; j < n; j++) {
        for (size_t i = 0; i < p->n; i++) {
            if (streq(p->sched[i].name, counts[j].host))
                p->sched[i].group_members = counts[j].n;
        }
    }
    free(counts);
    return 0;
}

/* Marks the hosts where the VM's pool is active (pool_hosts), when its root disk is in one. */
static int
placement_pool(Core *core, Placement *p, const Vm *vm, SchedRequest *req, NbError **err)
{
    for (size_t i = 0; i < p->n; i++)
        p->sched[i].has_pool = false;
    if (!vm->pool_id[0])
        return 0;
    PoolHostState *st = NULL;
    size_t n = 0;
    if (pool_store_hosts(core->store, vm->pool_id, &st, &n, err) < 0)
        return -1;
    req->needs_pool = true;
    for (size_t j = 0; j < n; j++) {
        for (size_t i = 0; i < p->n && streq(st[j].state, "active"); i++) {
            if (streq(p->sched[i].name, st[j].host))
                p->sched[i].has_pool = true;
        }
    }
    free(st);
    return 0;
}

static int
placement_choose(Core *core, Placement *p, const SchedRequest *req, NbError **err)
{
    SchedResult res;
    int i = sched_select(p->sched, p->n, req, &res);
    if (i >= 0)
        return i;
    _cleanup_free_ char *why = sched_explain(&res, p->n);
    return nb_error_set(err, NB_ERR_NO_VALID_HOST, "%s", why ? why : "no host fits");
}

static void
placement_claim(Placement *p, int i, const Vm *vm, uint64_t gen_after)
{
    p->sched[i].vcpus_used += vm->vcpus;
    p->sched[i].ram_used_mib += vm->ram_mib;
    p->sched[i].disk_used_gib += vm->disk_gib;
    /* Our own write moved the generation by one: the snapshot is still exact. Anything else in
     * between means another writer: rebuild next time. */
    p->gen = gen_after == p->gen + 1 ? gen_after : 0;
}

/* What a VM asks of its host. */
static SchedRequest
placement_request(const Core *core, const Vm *vm, const char *only_host, const char *exclude_host)
{
    return (SchedRequest){
        .weigher = core->cfg.placement,
        .vcpus = vm->vcpus,
        .ram_mib = vm->ram_mib,
        .disk_gib = vm->disk_gib,
        .labels = &vm->labels,
        .only_host = only_host,
        .exclude_host = exclude_host,
    };
}

int
placement_create(Core *core, Vm *vm, const Task *task, Port *ports, size_t n_ports, NbError **err)
{
    Placement *p = core->placement;
    SchedRequest req = placement_request(core, vm, vm->host[0] ? vm->host : NULL, NULL);
    uint64_t gen = 0;
    int r = -1;
    /* The quota first: when both would refuse, the project's own limit is the answer. */
    if (vm_store_quota_check(core->store, vm, err) < 0)
        return -1;
    pthread_mutex_lock(&p->lock);
    if (placement_refresh(core, p, err) < 0 ||
        placement_group(core, p, vm->group_id, NULL, &req, err) < 0 ||
        placement_pool(core, p, vm, &req, err) < 0)
        goto out;
    int i = placement_choose(core, p, &req, err);
    if (i < 0)
        goto out;
    snprintf(vm->host, sizeof(vm->host), "%s", p->sched[i].name);
    if (vm_store_insert_with_task(core->store, vm, task, ports, n_ports, &gen, err) < 0)
        goto out;
    placement_claim(p, i, vm, gen);
    r = 0;
out:
    pthread_mutex_unlock(&p->lock);
    return r;
}

int
placement_pick_destination(Core *core, const Vm *vm, const char *dest, char chosen[NB_NAME_MAX + 1],
                           NbError **err)
{
    Placement *p = core->placement;
    SchedRequest req = placement_request(core, vm, dest, vm->host);
    if (placement_refresh(core, p, err) < 0 ||
        placement_group(core, p, vm->group_id, vm->id, &req, err) < 0 ||
        placement_pool(core, p, vm, &req, err) < 0)
        return -1;
    int i = placement_choose(core, p, &req, err);
    if (i < 0)
        return -1;
    snprintf(chosen, NB_NAME_MAX + 1, "%s", p->sched[i].name);
    return 0;
}
