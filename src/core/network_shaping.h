/*
 * Bandwidth limits of VMs' ports, made real by the nimbus-agent of the VM's host: HTB on the tap
 * for what the guest receives, ingress -> mirred -> IFB -> HTB for what it sends (docs/agent.md).
 * libvirt's <bandwidth> is not used: it needs sch_sfq, cls_fw and act_police, which this
 * machine's kernel lacks (docs/networking.md).
 */
#pragma once

#include <jansson.h>

#include "core.h"

/* Shapes the taps of those ports that have a limit on host (agent_shaping_set; the agent shapes
 * a tap that does not exist yet when it appears). Ports without limits never call the agent, so
 * hosts without one keep working. AGENT_UNAVAILABLE (the host has no agent, or it cannot be
 * reached) and the agent's own codes: the caller's step fails, before the domain starts. */
int network_shaping_plug(Core *core, const char *host, const Port *ports, size_t n_ports,
                         NbError **err);
/* The VM's domain has just started (or arrived) on host: its taps exist only now, so their
 * limits are applied at once instead of at the agent's next check. Never fails its caller: the
 * agent already holds the entries from the plug and shapes them at that check anyway (logged). */
void network_shaping_vm_running(Core *core, const Vm *vm, const char *host);
/* Clears the shaping of those ports that have a limit on host (agent_shaping_clear). Never fails
 * its caller: the tap goes with the domain; an agent that cannot be reached keeps an entry for a
 * tap that no longer exists there (logged). */
void network_shaping_unplug(Core *core, const char *host, const Port *ports, size_t n_ports);
/* PATCH /v1/ports/{id} {"net_in_mbit"?, "net_out_mbit"?}: the port of who's project (any, for an
 * admin). When its VM has a host, the new limits go to that host's agent first (cleared there when
 * both become 0), then to the store; when the agent fails, nothing changes. ret: the port as
 * stored. PORT_NOT_FOUND, VM_BUSY (a task is working on the VM), BANDWIDTH_INVALID,
 * INVALID_REQUEST, AGENT_UNAVAILABLE, and the agent's codes. */
int network_shaping_port_update(Core *core, const Principal *who, const char *port_id, json_t *body,
                                Port *ret, NbError **err);
