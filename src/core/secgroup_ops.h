/*
 * Security groups (Neutron's model): the API's operations on groups, rules and a VM's groups,
 * and the host side of a port's filter. Every port of a VM on a host with nwfilter gets one
 * libvirt filter, nimbus-port-<port id>: clean-traffic's anti-spoofing, then the union of its
 * groups' rules. A change to a group's rules or members redefines the filters that depend on
 * it, on their hosts, before the call returns; libvirt applies a redefinition to running guests.
 */
#pragma once

#include <jansson.h>
#include <stdbool.h>

#include "../hv/nwfilter_xml.h"
#include "core.h"

/* How many groups one port may be in. */
#define SECGROUP_OPS_PORT_GROUPS_MAX 16

/* The "secgroups" of a request (VM create, NIC add): names or ids as given, then ids once
 * resolved. given false: the request had none, and the port gets the project's default group. */
typedef struct SecGroupList {
    char names[SECGROUP_OPS_PORT_GROUPS_MAX][NB_NAME_MAX + 1];
    size_t n;
    bool given;
} SecGroupList;

/* ---- the API's operations (the API audits) ---- */

/* A group in who's project, with Neutron's two default rules. NAME_TAKEN, QUOTA_EXCEEDED,
 * INVALID_REQUEST, INVALID_NAME. */
int secgroup_ops_create(Core *core, const Principal *who, json_t *body, SecGroup *ret,
                        NbError **err);
/* SECGROUP_NOT_FOUND, SECGROUP_IN_USE (a port is in it, or another group's rule names it). */
int secgroup_ops_delete(Core *core, const Principal *who, const char *id_or_name, NbError **err);
/* Adds a rule (secrule_from_request's JSON) to the group and updates the filters of its members'
 * ports. 0: added; 1: the same rule existed and *ret is it. SECGROUP_NOT_FOUND (the group, or a
 * remote group not of the group's project), SECGROUP_RULE_INVALID. */
int secgroup_ops_rule_add(Core *core, const Principal *who, const char *group, json_t *body,
                          SecRule *ret, NbError **err);
/* SECGROUP_NOT_FOUND, SECGROUP_RULE_NOT_FOUND (not a rule of that group). */
int secgroup_ops_rule_delete(Core *core, const Principal *who, const char *group,
                             const char *rule_id, NbError **err);
/* Puts every port of the VM in the group ({"secgroup": NAME|ID}) / takes them out, and updates
 * the filters that depend on it. VM_NOT_FOUND, SECGROUP_NOT_FOUND (also: the VM is not in it),
 * INVALID_REQUEST (a VM without ports, too many groups). */
int secgroup_ops_vm_add(Core *core, const Principal *who, const char *vm, json_t *body,
                        NbError **err);
int secgroup_ops_vm_remove(Core *core, const Principal *who, const char *vm, const char *group,
                           NbError **err);
/* The port's groups' names, as a JSON array (for the API's port and NIC listings). */
json_t *secgroup_ops_port_groups_json(Core *core, const char *port_id);

/* ---- for core's own operations ---- */

/* Takes "secgroups" (an array of group names or ids) out of a request: *ret_rest is body
 * without it (a new reference), for the request's own strict decoder. INVALID_REQUEST. */
int secgroup_ops_request(json_t *body, json_t **ret_rest, SecGroupList *ret, NbError **err);
/* Resolves l's names within project into ids; none given: the project's default group, made
 * on first use. SECGROUP_NOT_FOUND, QUOTA_EXCEEDED (the default group). */
int secgroup_ops_resolve(Core *core, const char *project, SecGroupList *l, NbError **err);
/* Puts each port in l's groups (resolved). */
int secgroup_ops_ports_set(Core *core, const Port *ports, size_t n, const SecGroupList *l,
                           NbError **err);
/* The filter a port's NIC references on a host behind hv, or NULL when the host has no
 * nwfilter (a simulated one). out holds NWFILTER_NAME_MAX + 1. */
const char *secgroup_ops_filter_name(HvConn *hv, const Port *p, char *out);
/* Defines (or redefines) the ports' filters on host from the store, before their NICs exist
 * there. Idempotent. */
int secgroup_ops_plug(Core *core, const char *host, HvConn *hv, const Port *ports, size_t n,
                      NbError **err);
/* Undefines the ports' filters on host after their NICs are gone (absent: nothing to do; a
 * refusal is logged, not fatal). leaving: the ports are about to be forgotten (VM delete, NIC
 * remove), so the filters naming their groups as remote groups are rebuilt without their
 * addresses. */
void secgroup_ops_unplug(Core *core, const char *host, HvConn *hv, const Port *ports, size_t n,
                         bool leaving);
/* A host connected again: when a live update of its filters was skipped while it was down (or
 * failed there), rewrites the filters it has of its VMs' ports from the store (member filters,
 * group filters, port filters; absent ones stay absent). Otherwise rewrites only the group
 * filters whose form is not the host's (ipsets with an agent, member filters without). Then on
 * a host with an agent, its sets: pushed where the agent's differ from the store, and removed
 * where no group filter on the host names them. Problems are logged, and the host is caught up
 * again at the next housekeeping round or connect. */
void secgroup_ops_host_up(Core *core, const char *host, HvConn *hv);
/* One round of housekeeping over the hosts that are up: each host's agent is asked whether it
 * answers (GET /v1/health), and a host is caught up as by secgroup_ops_host_up when it was not
 * since nimbusd started, when its agent answers again or started again (its uptime), or when
 * it missed a live update and its agent answers. Housekeeping's thread only. */
void secgroup_ops_agents_watch(Core *core);
/* Deletes the project's groups (with their rules), once the project is gone: its ports are. */
int secgroup_ops_drop_project(Core *core, const char *project, NbError **err);
