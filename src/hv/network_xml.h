/*
 * Tenant network spec -> libvirt network XML. Pure: no I/O, no libvirt calls; golden-tested.
 * Every value is validated or derived from ids (no user strings reach this XML); a spec with a
 * missing or malformed field gives NULL, never a partial document.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../model/network.h"

/* One static DHCP lease: a port's MAC (xx:xx:xx:xx:xx:xx, unicast) and fixed address. */
typedef struct NetXmlHost {
    const char *mac;
    uint32_t ip; /* host order */
} NetXmlHost;

typedef struct NetXmlSpec {
    const char *name;    /* nimbus-net-<uuid>: [A-Za-z0-9][A-Za-z0-9_.-]{0,62} */
    const char *bridge;  /* nbr...: [A-Za-z0-9][A-Za-z0-9_.-]{0,14} */
    NetworkType type;    /* NAT or ISOLATED only */
    uint32_t gateway;    /* host address on the bridge; 0: none (isolated without dhcp) */
    unsigned prefix;     /* NETWORK_PREFIX_MIN..NETWORK_PREFIX_MAX */
    bool dhcp;           /* <dhcp> with only <host> entries (static leases, no range) */
    const uint32_t *dns; /* dnsmasq forwarders; written only with a gateway (dnsmasq needs one) */
    size_t n_dns;
    unsigned mtu;            /* NETWORK_MTU_MIN..NETWORK_MTU_MAX; 0 or 1500: no <mtu> */
    const NetXmlHost *hosts; /* written only when dhcp is on; each inside the subnet, not its
                              * network, broadcast or gateway address; MACs and IPs unique */
    size_t n_hosts;
} NetXmlSpec;

/* Returns newly allocated XML, or NULL if the spec is incomplete or invalid (or on ENOMEM).
 * nat needs a gateway; so does dhcp. */
char *network_xml_build(const NetXmlSpec *spec);
/* <host mac='..' ip='..'/> (no trailing newline), for virNetworkUpdate; NULL if invalid. */
char *network_xml_dhcp_host(const NetXmlHost *h);

/* The checks above, shared with domain_xml.c. A MAC as libvirt takes it for a NIC: six
 * colon-separated pairs of hex digits, unicast. An interface name: IFNAMSIZ-1 characters of
 * [A-Za-z0-9_.-], starting with a letter or digit. */
bool network_xml_mac_is_valid(const char *mac);
