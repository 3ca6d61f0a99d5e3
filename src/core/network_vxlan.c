/*
 * vxlan networks on hosts, through each host's nimbus-agent (host_agent.h).
 *
 * A vxlan network is a pure L2 segment: a bridge per host joined by a VXLAN device whose flood
 * list (all-zero-MAC FDB entries) names every other host of the network by its tunnel address
 * (unicast head-end replication, no multicast in the underlay). The set of hosts is the store's
 * network_hosts. Changes to one network's hosts are serialised by a lock stripe of the network,
 * so two plugs on two hosts cannot both compute a flood list that misses the other.
 */
#include "network_vxlan.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "../util/log.h"
#include "../util/strutil.h"
#include "host_agent.h"
#include "network_dhcp.h"
#include "network_ops.h"

#define VXLAN_LOCK_STRIPES 64

DEFINE_TRIVIAL_CLEANUP_FUNC(AgentClient, agent_client_free)

static pthread_mutex_t vxlan_locks[VXLAN_LOCK_STRIPES] = {[0 ... VXLAN_LOCK_STRIPES - 1] =
                                                              PTHREAD_MUTEX_INITIALIZER};

static pthread_mutex_t *
vxlan_lock_for(const char *network_id)
{
    uint64_t h = 1469598103934665603u;
    for (const char *c = network_id; *c; c++)
        h = (h ^ (unsigned char)*c) * 1099511628211u;
    return &vxlan_locks[h % VXLAN_LOCK_STRIPES];
}

/* The host's record, with AGENT_UNAVAILABLE unless it has an agent and a tunnel. */
static int
vxlan_host_get(Core *core, const char *host, Host *ret, NbError **err)
{
    if (host_store_get(core->store, host, ret, err) < 0)
        return -1;
    if (!ret->agent_url[0])
        return nb_error_set(err, NB_ERR_AGENT_UNAVAILABLE,
                            "host '%s' has no nimbus-agent configured, so it cannot carry vxlan "
                            "networks (host add --agent-secret-file ...)",
                            host);
    if (!ret->tunnel_ip[0])
        return nb_error_set(err, NB_ERR_AGENT_UNAVAILABLE,
                            "host '%s' has no tunnel (tunnel_ip, tunnel_dev), so it cannot carry "
                            "vxlan networks",
                            host);
    return 0;
}

int
network_vxlan_check_host(Core *core, const char *host, NbError **err)
{
    Host h;
    int r = vxlan_host_get(core, host, &h, err);
    explicit_bzero(h.agent_secret, sizeof(h.agent_secret));
    return r;
}

/* The network's hosts as the store has them, with their tunnel addresses ("" for a host that
 * has none, or is gone). */
typedef struct VxlanHosts {
    char **names;
    char (*tunnel)[HOST_IPV4_STRLEN];
    size_t n;
} VxlanHosts;

static void
vxlan_hosts_free(VxlanHosts *v)
{
    store_strv_free(v->names);
    free(v->tunnel);
    *v = (VxlanHosts){0};
}

static int
vxlan_hosts_load(Core *core, const Network *net, VxlanHosts *ret, NbError **err)
{
    VxlanHosts v = {0};
    if (network_store_hosts(core->store, net->id, &v.names, err) < 0)
        return -1;
    while (v.names && v.names[v.n])
        v.n++;
    v.tunnel = calloc(v.n ? v.n : 1, sizeof(*v.tunnel));
    if (!v.tunnel) {
        vxlan_hosts_free(&v);
        return nb_error_set(err, NB_ERR_INTERNAL, "out of memory");
    }
    for (size_t i = 0; i < v.n; i++) {
        Host h;
        _cleanup_error_ NbError *e = NULL;
        if (host_store_get(core->store, v.names[i], &h, &e) == 0)
            memcpy(v.tunnel[i], h.tunnel_ip, sizeof(v.tunnel[i]));
        explicit_bzero(h.agent_secret, sizeof(h.agent_secret));
    }
    *ret = v;
    return 0;
}

/* Makes the network on host hosts->names[self] with every other host as a flood peer. */
static int
vxlan_ensure_on(Core *core, const Network *net, const VxlanHosts *hosts, size_t self, NbError **err)
{
    Host h;
    _cleanup_(agent_client_freep) AgentClient *client = NULL;
    const char *name = hosts->names[self];
    int r = vxlan_host_get(core, name, &h, err);
    explicit_bzero(h.agent_secret, sizeof(h.agent_secret));
    if (r < 0 || host_agent_client(core, name, &client, err) < 0)
        return -1;
    const char **peers = calloc(hosts->n ? hosts->n : 1, sizeof(*peers));
    size_t n = 0;
    if (!peers)
        return nb_error_set(err, NB_ERR_INTERNAL, "out of memory");
    for (size_t i = 0; i < hosts->n; i++) {
        /* Two hosts on one underlay address would be one VTEP: never a peer of itself. */
        if (i != self && hosts->tunnel[i][0] && !streq(hosts->tunnel[i], h.tunnel_ip)) {
            bool seen = false;
            for (size_t k = 0; k < n && !seen; k++)
                seen = streq(peers[k], hosts->tunnel[i]);
            if (!seen)
                peers[n++] = hosts->tunnel[i];
        }
    }
    r = agent_vxlan_ensure(client, net->vni, net->bridge, net->mtu, h.tunnel_ip, h.tunnel_dev,
                           peers, n, err);
    free(peers);
    if (r < 0)
        return -1;
    log_debug("network %s: vxlan %u on host %s with %zu peer(s)", net->id, net->vni, name, n);
    return 0;
}

/* The flood lists of every host of the network but skip (SIZE_MAX: all): failures logged. */
static void
vxlan_update_peers(Core *core, const Network *net, const VxlanHosts *hosts, size_t skip)
{
    for (size_t i = 0; i < hosts->n; i++) {
        _cleanup_error_ NbError *e = NULL;
        if (i != skip && vxlan_ensure_on(core, net, hosts, i, &e) < 0)
            log_warn("network %s: cannot update vxlan %u on host %s (the periodic check will "
                     "retry): %s",
                     net->id, net->vni, hosts->names[i], e->message);
    }
}

int
network_vxlan_plug(Core *core, const Network *net, const char *host, NbError **err)
{
    /* A host that cannot carry it is refused before anything is recorded. */
    if (network_vxlan_check_host(core, host, err) < 0)
        return -1;
    pthread_mutex_t *lock = vxlan_lock_for(net->id);
    pthread_mutex_lock(lock);
    VxlanHosts hosts = {0};
    int r = -1;
    /* Whether host is new to the network: only then do the others' flood lists change (a
     * failed update of theirs is the periodic check's to make right). */
    int known = network_ops_recorded_on(core, net->id, host, err);
    if (known < 0)
        goto out;
    /* Recorded first: a crash after the agent made it still finds the host to clean. */
    if (network_store_host_add(core->store, net->id, host, err) < 0 ||
        vxlan_hosts_load(core, net, &hosts, err) < 0)
        goto out;
    size_t self = 0;
    while (self < hosts.n && !streq(hosts.names[self], host))
        self++;
    if (self == hosts.n) {
        nb_error_set(err, NB_ERR_INTERNAL, "network %s: host %s not recorded", net->id, host);
        goto out;
    }
    if (vxlan_ensure_on(core, net, &hosts, self, err) < 0)
        goto out;
    if (!known)
        vxlan_update_peers(core, net, &hosts, self);
    r = 0;
out:
    vxlan_hosts_free(&hosts);
    pthread_mutex_unlock(lock);
    return r;
}

/* Removes the network's devices from host (absent is fine). */
static int
vxlan_remove_on(Core *core, const Network *net, const char *host, NbError **err)
{
    _cleanup_(agent_client_freep) AgentClient *client = NULL;
    Host h;
    if (host_store_get(core->store, host, &h, err) < 0)
        return -1;
    explicit_bzero(h.agent_secret, sizeof(h.agent_secret));
    if (!h.agent_url[0])
        return 0; /* nothing can have been made there */
    if (host_agent_client(core, host, &client, err) < 0 ||
        agent_vxlan_remove(client, net->vni, err) < 0)
        return -1;
    return 0;
}

/* With the network's lock held: see network_vxlan_unplug. */
static int
vxlan_unplug_locked(Core *core, const Network *net, const char *host, const char *except_vm,
                    NbError **err)
{
    VxlanHosts hosts = {0};
    _cleanup_error_ NbError *agent_err = NULL;
    int used = port_store_network_used_on_host(core->store, net->id, host, except_vm, err);
    if (used == 0 && vxlan_remove_on(core, net, host, &agent_err) < 0) {
        /* The VM's task goes on: the host stays recorded, unused, and the periodic check
         * removes the devices once the agent answers. */
        log_warn("network %s: vxlan %u left on host %s for now: %s", net->id, net->vni, host,
                 agent_err->message);
    } else if (used == 0) {
        /* Devices first, then the record: a crash in between leaves the host recorded, and the
         * next unplug (or the periodic check) removes it again. */
        if (network_store_host_remove(core->store, net->id, host, err) < 0 ||
            vxlan_hosts_load(core, net, &hosts, err) < 0)
            used = -1;
        else {
            log_info("network %s: vxlan %u removed from host %s (no VM there uses it)", net->id,
                     net->vni, host);
            vxlan_update_peers(core, net, &hosts, SIZE_MAX);
        }
    }
    vxlan_hosts_free(&hosts);
    return used < 0 ? -1 : 0;
}

int
network_vxlan_unplug(Core *core, const Network *net, const char *host, const char *except_vm,
                     NbError **err)
{
    pthread_mutex_t *lock = vxlan_lock_for(net->id);
    pthread_mutex_lock(lock);
    int r = vxlan_unplug_locked(core, net, host, except_vm, err);
    pthread_mutex_unlock(lock);
    return r;
}

void
network_vxlan_remove_everywhere(Core *core, const Network *net)
{
    pthread_mutex_t *lock = vxlan_lock_for(net->id);
    pthread_mutex_lock(lock);
    _cleanup_error_ NbError *err = NULL;
    char **hosts = NULL;
    if (network_store_hosts(core->store, net->id, &hosts, &err) < 0)
        log_warn("network %s: cannot list its hosts: %s", net->id, err->message);
    for (size_t i = 0; hosts && hosts[i]; i++) {
        _cleanup_error_ NbError *e = NULL;
        if (vxlan_remove_on(core, net, hosts[i], &e) < 0)
            log_warn("network %s: vxlan %u left on host %s: %s", net->id, net->vni, hosts[i],
                     e->message);
    }
    store_strv_free(hosts);
    pthread_mutex_unlock(lock);
}

int
network_vxlan_host_check(Core *core, const char *host, NbError **err)
{
    Network *nets = NULL;
    size_t n = 0;
    if (network_store_list_on_host(core->store, host, &nets, &n, err) < 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (nets[i].type != NETWORK_TYPE_VXLAN)
            continue;
        pthread_mutex_t *lock = vxlan_lock_for(nets[i].id);
        pthread_mutex_lock(lock);
        VxlanHosts hosts = {0};
        _cleanup_error_ NbError *e = NULL;
        /* Recorded but unused (a failed create whose clean-up could not reach the agent): it
         * goes, and the other hosts stop flooding to this one. */
        int used = port_store_network_used_on_host(core->store, nets[i].id, host, "", &e);
        if (used == 0)
            vxlan_unplug_locked(core, &nets[i], host, "", &e);
        else if (used > 0 && vxlan_hosts_load(core, &nets[i], &hosts, &e) == 0) {
            for (size_t k = 0; k < hosts.n; k++)
                if (streq(hosts.names[k], host) &&
                    vxlan_ensure_on(core, &nets[i], &hosts, k, &e) < 0)
                    break;
        }
        if (e)
            log_warn("network %s: check of vxlan %u on host %s: %s", nets[i].id, nets[i].vni, host,
                     e->message);
        vxlan_hosts_free(&hosts);
        pthread_mutex_unlock(lock);
    }
    network_list_free(nets, n);
    return 0;
}

size_t
network_vxlan_watch(Core *core)
{
    _cleanup_error_ NbError *err = NULL;
    Host *hosts = NULL;
    size_t n = 0;
    if (host_store_list(core->store, &hosts, &n, &err) < 0) {
        log_warn("network check: cannot list the hosts: %s", err->message);
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        explicit_bzero(hosts[i].agent_secret, sizeof(hosts[i].agent_secret));
        /* A host that is down is looked at when it is back. */
        HvConn *hv = host_registry_conn(core, hosts[i].name);
        if (!hv)
            continue;
        network_vxlan_watch_host(core, &hosts[i], hv);
        hv_conn_free(hv);
    }
    free(hosts);
    return n;
}

void
network_vxlan_watch_host(Core *core, const Host *host, HvConn *hv)
{
    _cleanup_error_ NbError *e = NULL;
    if (network_ops_host_check(core, host->name, hv, &e) < 0 ||
        (host->agent_url[0] && network_vxlan_host_check(core, host->name, &e) < 0))
        log_warn("network check of host %s: %s", host->name, e->message);
    if (host->agent_url[0])
        network_dhcp_host_check(core, host->name);
}
