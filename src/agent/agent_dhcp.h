/*
 * nimbus-agent's DHCP servers: what one is (a network's DHCP server on this host), the strict
 * decoding of PUT /v1/dhcp/{key}, and what it becomes: the dnsmasq argv and its hosts file. Pure
 * (no netlink, no processes), so all of it is unit-tested and golden-tested without privileges.
 *
 * One server per (network, host): dnsmasq in a network namespace of its own, joined to the
 * network's bridge by a veth pair nbd<key> (host side, in the bridge) / nbe<key> (in the
 * namespace, with the server's address). key is 12 lowercase hex digits (nimbusd sends those of
 * the network's id, as in the bridge name nbr<key>). dnsmasq answers only the MACs of its hosts
 * file (a range in static mode): nimbusd lists the ports of the VMs on this host only, so of the
 * servers one broadcast reaches across hosts only the VM's own host answers.
 */
#pragma once

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "../util/error.h"
#include "agent_model.h"

#define AGENT_DHCP_HOSTS_MAX 4096
#define AGENT_DHCP_DNS_MAX 4
#define AGENT_MAC_STRLEN 18
#define AGENT_DHCP_KEY_LEN 12

typedef struct AgentDhcpHost {
    char mac[AGENT_MAC_STRLEN]; /* lower case */
    uint32_t ip;                /* host order */
} AgentDhcpHost;

typedef struct AgentDhcp {
    char key[AGENT_DHCP_KEY_LEN + 1];
    /* The segment's bridge: the agent's nbr<hex> (vxlan, vlan) or an operator's (bridged). Only
     * the veth is put into it; the bridge itself is never changed. */
    char bridge[AGENT_IFNAME_MAX + 1];
    char mac[AGENT_MAC_STRLEN]; /* the server's own (nbe<key>) */
    uint32_t address;           /* the server's, host order */
    unsigned prefix;            /* 8..30 */
    uint32_t router;            /* 0: none offered */
    uint32_t dns[AGENT_DHCP_DNS_MAX];
    size_t n_dns;
    unsigned mtu;
    unsigned lease_s;     /* lease time */
    AgentDhcpHost *hosts; /* sorted by mac, no duplicate MAC or address */
    size_t n_hosts;
} AgentDhcp;

bool agent_dhcp_key_is_valid(const char *s); /* [0-9a-f]{12} */
/* nbd<key> (host side) and nbe<key> (the namespace's). */
void agent_dhcp_ifnames(const char *key, char host_side[AGENT_IFNAME_MAX + 1],
                        char ns_side[AGENT_IFNAME_MAX + 1]);

/* {"bridge", "mac", "address", "prefix", "router"?, "dns"?: [..], "mtu"?, "lease_s"?,
 * "hosts": [{"mac", "ip"}]}: unknown fields, wrong types and bad values refused
 * (INVALID_REQUEST, NETWORK_INVALID_IFNAME, NETWORK_INVALID_MTU, IP_INVALID). Every host's
 * address and the router must be in the server's subnet, none the server's own. On success ret
 * owns its hosts (agent_dhcp_clear). */
int agent_dhcp_from_json(json_t *body, const char *key, AgentDhcp *ret, NbError **err);
json_t *agent_dhcp_to_json(const AgentDhcp *d);
void agent_dhcp_clear(AgentDhcp *d);
/* Whether a and b differ only in their hosts (a SIGHUP is enough). */
bool agent_dhcp_same_server(const AgentDhcp *a, const AgentDhcp *b);

/* The hosts file: "mac,ip\n" per host, in d's order. malloc'd; NULL on failure. */
char *agent_dhcp_hosts_text(const AgentDhcp *d);
/* DIR/dhcp/<key>.<ext>, or -ENAMETOOLONG. */
int agent_dhcp_path(const char *state_dir, const char *key, const char *ext, char *out,
                    size_t size);
/* dnsmasq's argv (NULL-terminated, every string and the array malloc'd: agent_dhcp_argv_free):
 * DHCP only, static, its hosts file and lease file under state_dir/dhcp/. */
char **agent_dhcp_argv(const AgentDhcp *d, const char *dnsmasq, const char *state_dir);
void agent_dhcp_argv_free(char **argv);
