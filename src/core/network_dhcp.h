/*
 * DHCP on vxlan, vlan and bridged networks, the way Neutron's DHCP agent serves them but spread
 * over the hosts: on every host that runs a VM of such a network with "dhcp": true, that host's
 * nimbus-agent runs one dnsmasq for the network in a namespace of its own, on a veth in the
 * network's bridge, with the host's own server address of the network (dhcp_servers: the ports'
 * IPAM, shown in `port list` as owner "dhcp:<host>"). Its hosts file lists the ports of the VMs
 * on that host only, so of the servers one broadcast reaches, only the VM's own host answers.
 *
 * Each step is recomputed from the store, under the host's network lock held by the caller, so
 * a crash at any point and a rerun converge: the server's row is written before the agent is
 * asked to make it, and forgotten only after the agent removed it.
 */
#pragma once

#include "core.h"

/* Whether Nimbus serves DHCP on net through the agents (vxlan, vlan, bridged with dhcp). */
bool network_dhcp_is_agents(const Network *net);
/* Makes net's DHCP server on host exact: the entries of the ports of the VMs on host (or
 * migrating to it), but those of except_vm (NULL: none) and the port except_port (NULL: none);
 * no entry left: the server goes from the agent, then from the store. Nothing for other
 * networks. Errors of the agent: AGENT_UNAVAILABLE, HYPERVISOR_ERROR... */
int network_dhcp_sync(Core *core, const Network *net, const char *host, const char *except_vm,
                      const char *except_port, NbError **err);
/* The network's delete: its servers off every host (a host that does not answer keeps an
 * unused one until its agent is asked again; the rows go with the network). */
void network_dhcp_remove_everywhere(Core *core, const Network *net);
/* The periodic check of host: every server the store has there made exact (or removed when no
 * VM there needs it any more). Failures are logged. */
void network_dhcp_host_check(Core *core, const char *host);
