/*
 * nimbusd's client of a host's nimbus-agent (HTTPS, bearer secret, the agent's certificate
 * verified against a CA file). One request per call, on its own connection, so an AgentClient
 * may be shared by threads.
 *
 * Errors: AGENT_UNAVAILABLE when the agent cannot be reached or does not answer well (connect,
 * TLS, timeouts: connect 5 s, total 15 s, a reply that is not the agent's JSON); otherwise the
 * agent's own code (UNAUTHORIZED, INVALID_REQUEST, NETWORK_INVALID_IFNAME, NETWORK_INVALID_VNI,
 * NETWORK_INVALID_MTU, IP_INVALID, NAME_TAKEN, HYPERVISOR_ERROR, ...) with its message.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../util/error.h"

typedef struct AgentClient AgentClient;

/* url: "https://HOST:PORT" (https only); secret_hex: the 64 hex chars of the host's secret;
 * ca_file: the PEM the agent's certificate must chain to (its self-signed cert will do).
 * INVALID_REQUEST on a bad argument. */
AgentClient *agent_client_new(const char *url, const char *secret_hex, const char *ca_file,
                              NbError **err);
void agent_client_free(AgentClient *c);

/* GET /v1/health. ret_version (may be NULL) is malloc'd. */
int agent_health(AgentClient *c, char **ret_version, uint64_t *ret_uptime_s, NbError **err);
/* PUT /v1/vxlan/{vni}: the bridge, the VXLAN device and exactly these flood peers. */
int agent_vxlan_ensure(AgentClient *c, unsigned vni, const char *bridge, unsigned mtu,
                       const char *local_ip, const char *dev, const char *const *peers,
                       size_t n_peers, NbError **err);
/* DELETE /v1/vxlan/{vni}; absent is fine. */
int agent_vxlan_remove(AgentClient *c, unsigned vni, NbError **err);
/* PUT /v1/vlan/{bridge}: the bridge (nbr + 12 hex) with an 802.1Q device of id vlan on the
 * host's interface parent as its uplink. A kernel without 802.1Q answers HYPERVISOR_ERROR and
 * keeps nothing of it. */
int agent_vlan_ensure(AgentClient *c, const char *bridge, unsigned vlan, const char *parent,
                      unsigned mtu, NbError **err);
/* DELETE /v1/vlan/{bridge}; absent is fine. */
int agent_vlan_remove(AgentClient *c, const char *bridge, NbError **err);
/* PUT /v1/shaping/{tap}; kbit/s, 0 = that direction unlimited. A tap that does not exist yet is
 * shaped by the agent when it appears. */
int agent_shaping_set(AgentClient *c, const char *tap, unsigned in_kbit, unsigned out_kbit,
                      NbError **err);
/* DELETE /v1/shaping/{tap}; absent is fine. */
int agent_shaping_clear(AgentClient *c, const char *tap, NbError **err);

/* One DHCP server's fixed entry: a port's MAC and address. */
typedef struct AgentDhcpEntry {
    const char *mac;
    const char *ip;
} AgentDhcpEntry;
/* The network's DHCP server on the agent's host (nimbus-agent's agent_dhcp.h): key is the 12
 * hex digits of the network's bridge name (nbr<key>); bridge the segment's bridge there; mac,
 * address/prefix the server's own; router NULL for none; dns n_dns addresses; entries the ports
 * of the VMs on that host. PUT /v1/dhcp/{key}: made, or its hosts replaced (or restarted). */
int agent_dhcp_ensure(AgentClient *c, const char *key, const char *bridge, const char *mac,
                      const char *address, unsigned prefix, const char *router,
                      const char *const *dns, size_t n_dns, unsigned mtu,
                      const AgentDhcpEntry *entries, size_t n_entries, NbError **err);
/* DELETE /v1/dhcp/{key}; absent is fine. */
int agent_dhcp_remove(AgentClient *c, const char *key, NbError **err);

/* PUT /v1/ipsets/{name}: the set (nbs- and 24 hex: nwfilter_ipset_name) made if missing, with
 * exactly these members (IPv4, host order), replaced at once. INVALID_NAME for another name. */
int agent_ipset_set(AgentClient *c, const char *name, const uint32_t *ips, size_t n_ips,
                    NbError **err);
/* DELETE /v1/ipsets/{name}; absent is fine. A set iptables still references is kept by the
 * agent and destroyed at a later call: a success too. */
int agent_ipset_remove(AgentClient *c, const char *name, NbError **err);

/* A set as the agent lists it. */
typedef struct AgentIpsetInfo {
    char name[32];     /* nbs- and 24 hex */
    uint32_t *members; /* IPv4, host order */
    size_t n_members;
    bool doomed; /* deleted, kept while a rule references it */
} AgentIpsetInfo;
/* GET /v1/ipsets: the sets the agent keeps. An entry whose name is not nbs- and 24 lowercase
 * hex, or whose members are not addresses, is AGENT_UNAVAILABLE (not the agent's answer).
 * agent_ipset_list_free the list. */
int agent_ipset_list(AgentClient *c, AgentIpsetInfo **ret, size_t *ret_n, NbError **err);
void agent_ipset_list_free(AgentIpsetInfo *l, size_t n);
