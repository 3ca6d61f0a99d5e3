/*
 * nimbus-agent's running DHCP servers (agent_dhcp.h says what one is).
 *
 * Each is a `dnsmasq --keep-in-foreground` child of the agent, started through spawn_start():
 * the child unshare()s a network namespace of its own and waits; the agent makes the veth pair
 * (nbd<key> in the bridge, nbe<key>), moves nbe<key> into the child's namespace by pid, gives it
 * the server's address there, and lets the child exec dnsmasq. The namespace is the dnsmasq's
 * alone and lives exactly as long as it: when dnsmasq ends, the kernel removes the namespace and
 * the veth pair with it, so nothing outlives the server and there is no mount to clean up. The
 * agent stops its dnsmasqs when it stops, and a killed agent takes them along (parent-death
 * signal; should one survive anyway, its pid file names it and the next agent replaces it); it
 * starts them again from DIR/dhcp/<key>.json when it starts, the way it puts VXLAN devices back.
 * DHCP is down only while the agent is, and the leases it gave (a day) outlast that.
 *
 * Files, all in the agent's state directory: dhcp/<key>.json (the request), .hosts (dnsmasq's
 * --dhcp-hostsfile: written to a temporary file, renamed, then SIGHUP), .leases, .pid.
 * Not thread-safe: the agent calls it with its lock held.
 */
#pragma once

#include <jansson.h>

#include "agent_dhcp.h"
#include "agent_net.h"

typedef struct AgentDhcpSet AgentDhcpSet;

/* The servers saved in state_dir/dhcp/ (none started yet: agent_dhcp_set_check(at_start)). */
AgentDhcpSet *agent_dhcp_set_load(const char *state_dir, AgentNet *net, NbError **err);
void agent_dhcp_set_free(AgentDhcpSet *s);
size_t agent_dhcp_set_count(const AgentDhcpSet *s);
/* Applies d (taken: d is left empty): a new server is started; one whose only change is its
 * hosts gets the new hosts file and a SIGHUP; any other change restarts it. Saved before the
 * answer. A server that cannot start leaves nothing (no veth, no process, no files). */
int agent_dhcp_set_put(AgentDhcpSet *s, AgentDhcp *d, NbError **err);
/* Stops the server and removes its veth and files; absent is fine. */
int agent_dhcp_set_delete(AgentDhcpSet *s, const char *key, NbError **err);
/* Starts every server whose dnsmasq is not running or whose veth is not in its bridge. */
void agent_dhcp_set_check(AgentDhcpSet *s, bool at_start);
/* Stops every dnsmasq (the agent stops); the files stay for the next start. */
void agent_dhcp_set_stop_all(AgentDhcpSet *s);
/* [{"key", "pid", ...the request}] */
json_t *agent_dhcp_set_to_json(const AgentDhcpSet *s);
