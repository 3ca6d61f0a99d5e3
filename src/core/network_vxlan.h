/*
 * The host side of vxlan networks: on each host that has a VM of the network, the agent's
 * bridge (nbr...) and VXLAN device (nbx<vni>) with a flood list of the network's other hosts'
 * tunnel addresses. Everything is recomputed from the store (network_hosts and the hosts'
 * tunnel_ip), so each call is idempotent and a rerun after a crash converges.
 */
#pragma once

#include "core.h"

/* Whether host can carry a vxlan network: it has an agent and a tunnel. AGENT_UNAVAILABLE
 * (with why) otherwise. */
int network_vxlan_check_host(Core *core, const char *host, NbError **err);
/* Records host in network_hosts, then makes the network on it (an error: the caller's task
 * fails) and updates the flood lists of its other hosts (a peer that fails is logged; the
 * periodic check makes it right). */
int network_vxlan_plug(Core *core, const Network *net, const char *host, NbError **err);
/* When no VM but except_vm (on host or migrating there) has a port of the network: removes it
 * from host, forgets host, and updates the other hosts' flood lists. Otherwise nothing. An
 * agent that does not answer is logged, not an error: the host stays recorded and the periodic
 * check removes the devices later. */
int network_vxlan_unplug(Core *core, const Network *net, const char *host, const char *except_vm,
                         NbError **err);
/* Removes the network from every host that has it (its delete); a host that cannot be reached
 * keeps an unused bridge. */
void network_vxlan_remove_everywhere(Core *core, const Network *net);
/* The periodic check of one host: re-ensures each vxlan network the store says it carries (the
 * agent makes it exact; cheap when it is). O(networks on the host). */
int network_vxlan_host_check(Core *core, const char *host, NbError **err);
/* One pass of the periodic check over every host that is up: its libvirt networks
 * (network_ops_host_check) and its vxlan networks, so a host that lost its bridges or VXLAN
 * devices (a reboot) gets them back. Run by the housekeeping thread, never a registry thread.
 * Returns how many hosts it looked at. */
size_t network_vxlan_watch(Core *core);
/* The same check of one host (also run when the host connects again). */
void network_vxlan_watch_host(Core *core, const Host *host, HvConn *hv);
