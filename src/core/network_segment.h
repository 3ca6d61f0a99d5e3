/*
 * The host side of provider networks (admin only, usually shared):
 * - bridged: an existing bridge on every host (the operator's, e.g. br0 on the uplink). Nothing
 *   is made: the VM's NIC joins the bridge. A host without it fails the VM's start with
 *   libvirt's "no such device", before the guest runs.
 * - vlan: on each host with a VM of the network, the agent's bridge nbr<hex> with an 802.1Q
 *   device on the network's parent NIC as its uplink (agent_vlan_ensure), removed with the last
 *   VM there. The agent keeps it in its state and puts it back after a reboot.
 * With "dhcp": true either gets a DHCP server per host from the agents (network_dhcp.h), so a
 * bridged network with DHCP needs the agent too; guests also get their fixed addresses from
 * network-config.
 */
#pragma once

#include "core.h"

/* vlan, and bridged with DHCP, need the host's agent: AGENT_UNAVAILABLE otherwise. */
int network_segment_check_host(Core *core, const Network *net, const char *host, NbError **err);
/* Records host in network_hosts, then (vlan) makes the segment on it. */
int network_segment_plug(Core *core, const Network *net, const char *host, NbError **err);
/* When no VM but except_vm has a port of the network on host: (vlan) removes the segment there
 * and forgets the host. An agent that does not answer is logged: the host stays recorded. */
int network_segment_unplug(Core *core, const Network *net, const char *host, const char *except_vm,
                           NbError **err);
/* The network's delete: (vlan) its segment off every host that has it; forgets them. */
void network_segment_remove_everywhere(Core *core, const Network *net);
