/* DHCP servers of vxlan, vlan and bridged networks, through each host's nimbus-agent. */
#include "network_dhcp.h"

#include <stdlib.h>
#include <string.h>

#include "../util/log.h"
#include "../util/strutil.h"
#include "host_agent.h"
#include "network_ops.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(AgentClient, agent_client_free)

bool
network_dhcp_is_agents(const Network *net)
{
    return net->dhcp && (net->type == NETWORK_TYPE_VXLAN || net->type == NETWORK_TYPE_VLAN ||
                         net->type == NETWORK_TYPE_BRIDGED);
}

/* The agent's key of the network: the 12 hex digits of its id (as in nbr<hex>). */
static void
dhcp_key(const Network *net, char out[16])
{
    char br[NETWORK_IFNAME_MAX + 1];
    network_bridge_name(net->id, br);
    snprintf(out, 16, "%s", br + 3);
}

static int
dhcp_remove_on(Core *core, const Network *net, const char *host, NbError **err)
{
    _cleanup_(agent_client_freep) AgentClient *c = NULL;
    char key[16];
    dhcp_key(net, key);
    /* No row, no server: the row is written before the agent is asked to make one. */
    _cleanup_free_ DhcpServer *list = NULL;
    size_t n = 0;
    bool found = false;
    if (port_store_dhcp_server_list(core->store, NULL, net->id, &list, &n, err) < 0)
        return -1;
    for (size_t i = 0; i < n && !found; i++)
        found = streq(list[i].host, host);
    if (!found)
        return 0;
    /* Agent first, then the row: a crash in between leaves the row, and the next sync (or the
     * periodic check) removes the server again. */
    if (host_agent_client(core, host, &c, err) < 0 || agent_dhcp_remove(c, key, err) < 0 ||
        port_store_dhcp_server_delete(core->store, net->id, host, err) < 0)
        return -1;
    log_info("network %s: DHCP server off host %s", net->id, host);
    return 0;
}

int
network_dhcp_sync(Core *core, const Network *net, const char *host, const char *except_vm,
                  const char *except_port, NbError **err)
{
    if (!network_dhcp_is_agents(net))
        return 0;
    _cleanup_free_ Port *ports = NULL;
    size_t n_ports = 0, n = 0;
    if (network_store_ports_on_host(core->store, net->id, host, &ports, &n_ports, err) < 0)
        return -1;
    for (size_t i = 0; i < n_ports; i++)
        if (!(except_vm && streq(ports[i].vm_id, except_vm)) &&
            !(except_port && streq(ports[i].id, except_port)))
            ports[n++] = ports[i];
    if (n == 0)
        return dhcp_remove_on(core, net, host, err);

    _cleanup_(agent_client_freep) AgentClient *c = NULL;
    if (host_agent_client(core, host, &c, err) < 0)
        return -1;
    char mac[NB_MAC_STRLEN];
    DhcpServer srv;
    /* Recorded first: a crash after the agent made it still finds the server to remove. */
    if (network_ops_random_mac(mac) < 0 ||
        port_store_dhcp_server_ensure(core->store, net->id, host, mac, &srv, err) < 0)
        return -1;
    char(*ips)[NB_IPV4_STRLEN] = calloc(n, sizeof(*ips));
    AgentDhcpEntry *entries = calloc(n, sizeof(*entries));
    if (!ips || !entries) {
        free(ips);
        free(entries);
        return nb_error_set(err, NB_ERR_INTERNAL, "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        ipv4_format(ports[i].ip, ips[i]);
        entries[i] = (AgentDhcpEntry){ports[i].mac, ips[i]};
    }
    char addr[NB_IPV4_STRLEN], router[NB_IPV4_STRLEN], dns[NETWORK_DNS_MAX][NB_IPV4_STRLEN];
    const char *dnsp[NETWORK_DNS_MAX];
    ipv4_format(srv.ip, addr);
    if (net->gateway)
        ipv4_format(net->gateway, router);
    for (size_t i = 0; i < net->n_dns && i < NETWORK_DNS_MAX; i++) {
        ipv4_format(net->dns[i], dns[i]);
        dnsp[i] = dns[i];
    }
    char key[16];
    dhcp_key(net, key);
    int r = agent_dhcp_ensure(c, key, net->bridge, srv.mac, addr, net->prefix,
                              net->gateway ? router : NULL, dnsp, net->n_dns, net->mtu, entries, n,
                              err);
    free(ips);
    free(entries);
    if (r < 0)
        return -1;
    log_debug("network %s: DHCP server %s on host %s with %zu entries", net->id, addr, host, n);
    return 0;
}

void
network_dhcp_remove_everywhere(Core *core, const Network *net)
{
    _cleanup_error_ NbError *err = NULL;
    _cleanup_free_ DhcpServer *list = NULL;
    size_t n = 0;
    if (port_store_dhcp_server_list(core->store, NULL, net->id, &list, &n, &err) < 0) {
        log_warn("network %s: cannot list its DHCP servers: %s", net->id, err->message);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        _cleanup_error_ NbError *e = NULL;
        if (dhcp_remove_on(core, net, list[i].host, &e) < 0)
            log_warn("network %s: DHCP server left on host %s: %s", net->id, list[i].host,
                     e->message);
    }
}

void
network_dhcp_host_check(Core *core, const char *host)
{
    _cleanup_error_ NbError *err = NULL;
    _cleanup_free_ DhcpServer *list = NULL;
    size_t n = 0;
    if (port_store_dhcp_server_list(core->store, NULL, NULL, &list, &n, &err) < 0) {
        log_warn("DHCP check of host %s: %s", host, err->message);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        if (!streq(list[i].host, host))
            continue;
        Network net;
        _cleanup_error_ NbError *e = NULL;
        pthread_mutex_t *lock = network_ops_host_lock(host);
        pthread_mutex_lock(lock);
        if (network_store_get(core->store, NULL, list[i].network_id, &net, &e) == 0) {
            if (!network_dhcp_is_agents(&net)) /* dhcp turned off: the server goes */
                dhcp_remove_on(core, &net, host, &e);
            else
                network_dhcp_sync(core, &net, host, NULL, NULL, &e);
        }
        pthread_mutex_unlock(lock);
        if (e)
            log_warn("network %s: DHCP check on host %s: %s", list[i].network_id, host, e->message);
    }
}
