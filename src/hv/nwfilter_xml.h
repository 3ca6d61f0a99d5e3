/*
 * Security groups -> libvirt nwfilters. Pure: no I/O, no libvirt calls; golden-tested.
 *
 * Three levels, each a filter of chain root, so that libvirt merges every accept into the port's
 * root chain and orders the lot by priority:
 * - a port's filter, nimbus-port-<port id>: references clean-traffic (anti-spoofing of MAC, IP
 *   and ARP for the port's IP and MAC, which the interface's <filterref> passes as parameters),
 *   drops DHCP server replies sent by the guest, lets the guest's own DHCP client through,
 *   accepts replies of allowed connections (conntrack ESTABLISHED,RELATED, both ways), then
 *   references each of its groups' filters, and drops everything else in each direction last;
 * - a group's filter, nimbus-sg-<group id>: one stateful accept (state NEW) per rule with a CIDR,
 *   and for a remote-group rule ("tcp 5432 from the members of db") a reference to
 * - the rule's member filter, nimbus-sgr-<rule id>: one accept per member address.
 * A host has one group filter per group and one member filter per remote-group rule, shared by
 * every port there: a rule change redefines one filter per host, a VM joining or leaving a group
 * one member filter per rule naming the group per host, and no port's filter.
 *
 * On a host with a nimbus-agent a remote-group rule of any protocol without ports (Neutron's
 * "ingress from the default group") is instead one constant accept in the group's filter matching
 * the ipset nwfilter_ipset_name(rule id), whose members the agent keeps: a VM joining or leaving
 * the group redefines no filter there (a filter redefinition re-instantiates every interface
 * using it, which grows with the members and the ports). A rule with a protocol or ports keeps
 * its member filter: libvirt (9.0) keeps ipset only on <all>. On <tcp>, <udp>, <icmp>... given
 * with ipsetflags both are dropped without a word (the rule would accept every source), and
 * without them the filter is defined but fails to instantiate.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../model/secgroup.h"

#define NWFILTER_NAME_MAX 63
#define NWFILTER_IPSET_NAME_MAX 31

typedef struct NwFilterSpec {
    const char *name; /* nimbus-port-<port id>: [A-Za-z0-9][A-Za-z0-9_.-]{0,62} */
    /* The filter's uuid when libvirt has it already (a redefinition in place needs it), else
     * NULL: libvirt picks one. */
    const char *uuid;
    /* The port's groups (ids): references to their filters, which the port's host must have
     * defined first (nwfilter_xml_build_group). Repeats are written once, in id order. */
    const char *const *groups;
    size_t n_groups;
    /* Rules written into the port's filter itself, as a group's filter writes them (a port's
     * own rules; Nimbus's ports have none, the golden tests of the rules' shape do). */
    const SecRule *rules;
    size_t n_rules;
} NwFilterSpec;

/* A port's filter: newly allocated XML, or NULL if the spec is invalid (a bad name, uuid, group
 * id or rule) or on ENOMEM. */
char *nwfilter_xml_build(const NwFilterSpec *spec);

/* A group's filter: one accept per rule with a CIDR, in a fixed order (direction, protocol,
 * ports, remote) whatever order they came in, repeats once; a remote-group rule is a reference
 * to nwfilter_remote_name(rule->id) (nwfilter_xml_build_remote), in rule id order, or with
 * ipsets, when nwfilter_remote_uses_ipset(rule), an <all> accept of the rule's direction whose
 * remote end is the ipset nwfilter_ipset_name(rule->id) (ipsetflags 'src' for ingress, 'dst'
 * for egress). uuid as in NwFilterSpec. Newly allocated, or NULL if invalid or on ENOMEM. */
char *nwfilter_xml_build_group(const char *name, const char *uuid, const SecRule *rules,
                               size_t n_rules, bool ipsets);

/* A remote-group rule's member filter (chain root): one stateful accept per address of ips (the
 * rule's direction, protocol and ports, the address as /32 remote end), ascending, repeats once;
 * none allows nothing. uuid as in NwFilterSpec. Newly allocated, or NULL if invalid (a bad name
 * or uuid, a rule without remote group) or on ENOMEM. */
char *nwfilter_xml_build_remote(const char *name, const char *uuid, const SecRule *rule,
                                const uint32_t *ips, size_t n_ips);

/* The interface's reference to the filter, with clean-traffic's parameters:
 * <filterref filter='NAME'><parameter name='IP' value='..'/><parameter name='MAC' value='..'/>
 * </filterref> (no trailing newline). NULL if invalid. */
char *nwfilter_xml_interface_ref(const char *filter_name, uint32_t ip, const char *mac);

/* "nimbus-port-<port id>" */
void nwfilter_port_name(const char *port_id, char out[NWFILTER_NAME_MAX + 1]);
/* "nimbus-sg-<group id>": a group's filter */
void nwfilter_group_name(const char *group_id, char out[NWFILTER_NAME_MAX + 1]);
/* Whether a remote-group rule is matched by an ipset on a host with a nimbus-agent (any
 * protocol, no ports), rather than by its member filter. */
bool nwfilter_remote_uses_ipset(const SecRule *r);
/* "nimbus-sgr-<rule id>": a remote-group rule's member filter */
void nwfilter_remote_name(const char *rule_id, char out[NWFILTER_NAME_MAX + 1]);
/* "nbs-" and the first 24 hex digits of the rule's id: a remote-group rule's ipset on a host with
 * a nimbus-agent (which accepts no other names). */
void nwfilter_ipset_name(const char *rule_id, char out[NWFILTER_IPSET_NAME_MAX + 1]);
