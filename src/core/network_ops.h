/*
 * Tenant networks and ports: the API's operations. A network is a store record at once; it is
 * made real on a host (libvirt network, or the agent's bridge) only when a VM of it lands there,
 * by the VM's own task steps. A NIC added to or removed from a VM is a task on that VM.
 */
#pragma once

#include <jansson.h>

#include "core.h"

/* Decodes and creates a network in who's project. Admin only: shared, bridged, vlan.
 * NAME_TAKEN, NETWORK_CIDR_OVERLAP, QUOTA_EXCEEDED, FORBIDDEN, NETWORK_TYPE_UNAVAILABLE (a type
 * this build cannot make yet), and the decoder's NETWORK_INVALID_* codes. (The API audits.) */
int network_ops_create(Core *core, const Principal *who, json_t *body, Network *ret, NbError **err);
/* scope: principal_scope(who). NETWORK_NOT_FOUND, NETWORK_IN_USE (ports remain), FORBIDDEN (a
 * shared network, for a non-admin). Removes the network from every host that has it (a host
 * that is down keeps its unused copy). */
int network_ops_delete(Core *core, const Principal *who, const char *id_or_name, NbError **err);

/* Queues a nic.add task on the VM: body is a NicRequest ({network, ip?}). The port (MAC, IP) is
 * allocated at once and returned; the task plugs it into the VM (live when it runs).
 * VM_NOT_FOUND, VM_BUSY, NETWORK_NOT_FOUND, IP_IN_USE, IP_OUTSIDE_NETWORK, NETWORK_FULL,
 * TOO_MANY_NICS, QUOTA_EXCEEDED. */
int network_ops_nic_add(Core *core, const Principal *who, const char *vm_id_or_name, json_t *body,
                        Port *ret_port, Task *ret_task, NbError **err);
/* Queues a nic.remove task for the VM's NIC with that MAC. VM_NOT_FOUND, VM_BUSY,
 * PORT_NOT_FOUND, INVALID_REQUEST (the VM's last NIC). */
int network_ops_nic_remove(Core *core, const Principal *who, const char *vm_id_or_name,
                           const char *mac, Task *ret_task, NbError **err);

/* ---- for core's own tasks ---- */

/* Deletes the project's default network (from its hosts, then the store) when no port uses it:
 * it was made for the project, not by anyone, and goes with it. */
int network_ops_drop_default(Core *core, const char *project, NbError **err);

/* The ports a new VM gets for its NIC requests (none: one on the project's default network,
 * made on first use): network_id, slot and ip (0: the store picks) set, MACs not yet. Each
 * network is looked up as project sees it. NETWORK_NOT_FOUND, NETWORK_TYPE_UNAVAILABLE,
 * NETWORK_FULL / QUOTA_EXCEEDED (the default network). ret_ports holds VM_NICS_MAX. */
int network_ops_resolve_nics(Core *core, const char *project, const NicRequest *nics, size_t n_nics,
                             Port *ret_ports, size_t *ret_n, NbError **err);
/* Whether the store records the network on host (network_hosts): 1, 0 or -1. */
int network_ops_recorded_on(Core *core, const char *network_id, const char *host, NbError **err);
/* A random MAC in QEMU's 52:54:00 prefix. -1 without randomness. */
int network_ops_random_mac(char out[NB_MAC_STRLEN]);
/* The lock that serialises the network changes of one host (plugs, unplugs, checks). */
pthread_mutex_t *network_ops_host_lock(const char *host);
/* Makes the networks of these ports of the VM exist on host (behind hv), with the ports' DHCP
 * entries. Idempotent. */
int network_ops_plug(Core *core, const Vm *vm, const char *host, HvConn *hv, const Port *ports,
                     size_t n_ports, NbError **err);
/* Removes these ports' DHCP entries from host, and each network no other VM there uses.
 * Idempotent. */
int network_ops_unplug(Core *core, const Vm *vm, const char *host, HvConn *hv, const Port *ports,
                       size_t n_ports, NbError **err);
/* The periodic check of host's libvirt networks (nat, isolated): each one the store says the host
 * has, and a VM there uses, is defined and active (a host that lost it gets it back, with its
 * VMs' DHCP entries). Problems are logged. */
int network_ops_host_check(Core *core, const char *host, HvConn *hv, NbError **err);
/* The NIC of a port on network n, as the domain XML has it: on the libvirt network, or on the
 * agent's bridge for vxlan (source gets the name, 64 bytes), with the network's MTU. */
DomainNic network_ops_domain_nic(const Network *n, char source[64], const char *mac,
                                 const char *tap);
/* The task handler of vm.nic_add and vm.nic_remove. */
int network_ops_nic_step_count(TaskKind kind);
int64_t network_ops_nic_run_task(Core *core, Task *task, TaskRun *run);
