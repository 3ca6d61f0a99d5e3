/*
 * A port's security groups -> one libvirt nwfilter. Pure: no I/O, no libvirt calls; golden-tested.
 *
 * The filter (chain root) references clean-traffic (anti-spoofing of MAC, IP and ARP for the
 * port's IP and MAC, which the interface's <filterref> passes as parameters), drops DHCP server
 * replies sent by the guest, lets the guest's own DHCP client through, accepts replies of
 * allowed connections (conntrack ESTABLISHED,RELATED, both ways), then one stateful accept
 * (state NEW) per rule of the union of the port's groups, and drops everything else in each
 * direction last.
 *
 * A remote-group rule ("tcp 5432 from the members of db") is not expanded in the port's filter:
 * it references the rule's own member filter, nimbus-sgr-<rule id> (chain root too, so libvirt
 * merges its accepts into the port's root chain by priority), which holds one accept per member
 * address. A host has one such filter per rule, shared by every port whose groups hold the rule,
 * so a VM joining or leaving a group redefines one filter per rule naming the group on each host,
 * not every member's port filter.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "../model/secgroup.h"

#define NWFILTER_NAME_MAX 63

typedef struct NwFilterSpec {
    const char *name; /* nimbus-port-<port id>: [A-Za-z0-9][A-Za-z0-9_.-]{0,62} */
    /* The filter's uuid when libvirt has it already (a redefinition in place needs it), else
     * NULL: libvirt picks one. */
    const char *uuid;
    /* The union of the port's groups' rules; repeats are written once. A remote-group rule is
     * a reference to nwfilter_remote_name(rule->id), whose members the port's host must have
     * defined first (nwfilter_xml_build_remote). */
    const SecRule *rules;
    size_t n_rules;
} NwFilterSpec;

/* Newly allocated XML, or NULL if the spec is invalid (a bad name, uuid or rule) or on ENOMEM.
 * Rules are written in a fixed order (direction, protocol, ports, remote), whatever order they
 * came in. */
char *nwfilter_xml_build(const NwFilterSpec *spec);

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
/* "nimbus-sgr-<rule id>": a remote-group rule's member filter */
void nwfilter_remote_name(const char *rule_id, char out[NWFILTER_NAME_MAX + 1]);
