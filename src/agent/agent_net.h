/*
 * The agent's host plumbing through rtnetlink (libnl-route-3): bridges, VXLAN devices with their
 * flood FDB, VLAN devices, and HTB/IFB shaping of taps. Every function is idempotent (it makes the
 * host match the entry, whatever part of it already exists) and is only called with names that
 * agent_model.c accepted. Errors: NbError with HYPERVISOR_ERROR and the netlink reason.
 */
#pragma once

#include <stdbool.h>
#include <sys/types.h>

#include "agent_model.h"

typedef struct AgentNet AgentNet;

AgentNet *agent_net_new(NbError **err);
void agent_net_free(AgentNet *n);

/* The bridge (up, MTU), the VXLAN device nbx<vni> (id, dstport 4789, local, dev, nolearning,
 * master bridge, MTU, up; recreated when its fixed attributes differ), and the all-zero-MAC flood
 * entries equal to v->peers. */
int agent_net_vxlan_ensure(AgentNet *n, const AgentVxlan *v, NbError **err);
/* Deletes nbx<vni> and the bridge; absent devices are fine. */
int agent_net_vxlan_remove(AgentNet *n, unsigned vni, const char *bridge, NbError **err);
/* Whether the bridge and the VXLAN device exist, the VXLAN is in the bridge, both are up, and the
 * flood entries are exactly the peers: the 30 s check. */
bool agent_net_vxlan_intact(AgentNet *n, const AgentVxlan *v);

/* The bridge (up, MTU) and its uplink nbv<hex>: an 802.1Q device with id v->vlan on v->parent
 * (recreated when its id or parent differ), in the bridge, up. A kernel without 802.1Q
 * refuses the VLAN device: HYPERVISOR_ERROR, and the bridge made for it is removed again. */
int agent_net_vlan_ensure(AgentNet *n, const AgentVlan *v, NbError **err);
/* Deletes nbv<hex> and the bridge; absent devices are fine. */
int agent_net_vlan_remove(AgentNet *n, const char *bridge, NbError **err);
bool agent_net_vlan_intact(AgentNet *n, const AgentVlan *v);
/* The RTM_NEWLINK request agent_net_vlan_ensure sends for the VLAN device, given the parent's
 * and the bridge's ifindex, as "attribute value" lines: what the kernel is asked to configure,
 * for golden tests on a kernel without 802.1Q. malloc'd; NULL on failure. */
char *agent_net_vlan_request_text(const AgentVlan *v, int parent_index, int bridge_index);

bool agent_net_link_exists(AgentNet *n, const char *ifname);
/* Deletes one of the agent's links; absent is fine. */
int agent_net_link_remove(AgentNet *n, const char *ifname, NbError **err);
/* Applies s to its tap, which must exist. */
int agent_net_shaping_apply(AgentNet *n, const AgentShaping *s, NbError **err);
/* Removes the agent's qdiscs from the tap (if it exists) and its IFB. */
int agent_net_shaping_clear(AgentNet *n, const char *tap, NbError **err);
/* Whether what s asks for is in place on an existing tap. */
bool agent_net_shaping_intact(AgentNet *n, const AgentShaping *s);

/* DHCP servers (agent_dhcp.h). The veth pair host_side (in bridge, up, MTU) / ns_side (MAC
 * ns_mac, MTU), made anew (an old pair of those names goes first). */
int agent_net_veth_make(AgentNet *n, const char *host_side, const char *ns_side, const char *bridge,
                        unsigned mtu, const char *ns_mac, NbError **err);
/* Whether host_side exists, is up and in bridge. */
bool agent_net_veth_intact(AgentNet *n, const char *host_side, const char *bridge);
/* Moves ifname into the network namespace of process pid. */
int agent_net_link_to_netns(AgentNet *n, const char *ifname, pid_t pid, NbError **err);
/* Inside the network namespace of process pid: lo up, ifname up with address/prefix. */
int agent_net_netns_address(pid_t pid, const char *ifname, uint32_t address, unsigned prefix,
                            NbError **err);
