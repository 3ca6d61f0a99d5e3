/* Provider networks on hosts: bridged (nothing to make) and vlan (through the agent). */
#include "network_segment.h"

#include <stdlib.h>

#include "../util/log.h"
#include "host_agent.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(AgentClient, agent_client_free)

int
network_segment_check_host(Core *core, const Network *net, const char *host, NbError **err)
{
    /* A bridged network with DHCP needs the agent too: it runs the DHCP server. */
    if (net->type != NETWORK_TYPE_VLAN && !(net->type == NETWORK_TYPE_BRIDGED && net->dhcp))
        return 0;
    _cleanup_(agent_client_freep) AgentClient *c = NULL;
    return host_agent_client(core, host, &c, err);
}

int
network_segment_plug(Core *core, const Network *net, const char *host, NbError **err)
{
    /* Recorded first: a crash after the agent's change still finds the host to clean. */
    if (network_store_host_add(core->store, net->id, host, err) < 0)
        return -1;
    if (net->type != NETWORK_TYPE_VLAN)
        return 0;
    _cleanup_(agent_client_freep) AgentClient *c = NULL;
    if (host_agent_client(core, host, &c, err) < 0 ||
        agent_vlan_ensure(c, net->bridge, net->vlan, net->parent, net->mtu, err) < 0)
        return -1;
    return 0;
}

/* Removes the segment from host (vlan), then forgets the host. */
static int
segment_remove(Core *core, const Network *net, const char *host, NbError **err)
{
    if (net->type == NETWORK_TYPE_VLAN) {
        _cleanup_(agent_client_freep) AgentClient *c = NULL;
        _cleanup_error_ NbError *aerr = NULL;
        if (host_agent_client(core, host, &c, &aerr) < 0 ||
            agent_vlan_remove(c, net->bridge, &aerr) < 0) {
            log_warn("network %s: cannot remove its VLAN segment from host %s yet: %s", net->id,
                     host, aerr->message);
            return 0;
        }
    }
    log_info("network %s: off host %s (no VM there uses it)", net->id, host);
    return network_store_host_remove(core->store, net->id, host, err);
}

int
network_segment_unplug(Core *core, const Network *net, const char *host, const char *except_vm,
                       NbError **err)
{
    int used = port_store_network_used_on_host(core->store, net->id, host, except_vm, err);
    if (used < 0)
        return -1;
    return used ? 0 : segment_remove(core, net, host, err);
}

void
network_segment_remove_everywhere(Core *core, const Network *net)
{
    _cleanup_error_ NbError *err = NULL;
    char **hosts = NULL;
    if (network_store_hosts(core->store, net->id, &hosts, &err) < 0) {
        log_warn("network %s: cannot list its hosts: %s", net->id, err->message);
        return;
    }
    for (size_t i = 0; hosts && hosts[i]; i++) {
        _cleanup_error_ NbError *e = NULL;
        if (segment_remove(core, net, hosts[i], &e) < 0)
            log_warn("network %s: host %s: %s", net->id, hosts[i], e->message);
    }
    store_strv_free(hosts);
}
