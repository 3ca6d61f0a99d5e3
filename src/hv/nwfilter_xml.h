/*
 * A port's security groups -> one libvirt nwfilter. Pure: no I/O, no libvirt calls; golden-tested.
 *
 * The filter (chain root) references clean-traffic (anti-spoofing of MAC, IP and ARP for the
 * port's IP and MAC, which the interface's <filterref> passes as parameters), drops DHCP server
 * replies sent by the guest, lets the guest's own DHCP client through, accepts replies of
 * allowed connections (conntrack ESTABLISHED,RELATED, both ways), then one stateful accept
 * (state NEW) per rule of the union of the port's groups, a remote-group rule expanded into one
 * rule per member address (/32), and drops everything else in each direction last.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "../model/secgroup.h"

#define NWFILTER_NAME_MAX 63

/* The member addresses of one remote group that the rules name. */
typedef struct NwfMembers {
    const char *group_id;
    const uint32_t *ips; /* host order */
    size_t n_ips;
} NwfMembers;

typedef struct NwFilterSpec {
    const char *name; /* nimbus-port-<port id>: [A-Za-z0-9][A-Za-z0-9_.-]{0,62} */
    /* The filter's uuid when libvirt has it already (a redefinition in place needs it), else
     * NULL: libvirt picks one. */
    const char *uuid;
    const SecRule *rules; /* the union of the port's groups' rules; repeats are written once */
    size_t n_rules;
    /* For each remote group the rules name: its members. A group not listed has none (its
     * rules allow nothing). */
    const NwfMembers *members;
    size_t n_members;
} NwFilterSpec;

/* Newly allocated XML, or NULL if the spec is invalid (a bad name, uuid or rule) or on ENOMEM.
 * Rules are written in a fixed order (direction, protocol, ports, remote), whatever order they
 * came in. */
char *nwfilter_xml_build(const NwFilterSpec *spec);

/* The interface's reference to the filter, with clean-traffic's parameters:
 * <filterref filter='NAME'><parameter name='IP' value='..'/><parameter name='MAC' value='..'/>
 * </filterref> (no trailing newline). NULL if invalid. */
char *nwfilter_xml_interface_ref(const char *filter_name, uint32_t ip, const char *mac);

/* "nimbus-port-<port id>" */
void nwfilter_port_name(const char *port_id, char out[NWFILTER_NAME_MAX + 1]);
