/*
 * Tenant networks and their ports (NICs): types, validation, JSON. No I/O.
 *
 * A network is a project's (or, shared, every project's) L2 segment with one IPv4 subnet. A
 * port is one NIC of one VM on one network, with a MAC and a fixed IPv4 address that Nimbus
 * allocates (IPAM lives in the store) and hands to the guest by DHCP and by network-config.
 * Addresses are kept as host-order uint32_t; 0 means "none".
 */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../util/error.h"
#include "../util/timeutil.h"
#include "../util/uuid.h"
#include "validate.h"

typedef enum NetworkType {
    NETWORK_TYPE_NAT,      /* a libvirt NAT network on each host that needs it (host-local) */
    NETWORK_TYPE_ISOLATED, /* a libvirt network without forwarding (host-local) */
    NETWORK_TYPE_VXLAN,    /* an overlay across hosts (nimbus-agent) */
    NETWORK_TYPE_BRIDGED,  /* an existing host bridge (admin, shared) */
    NETWORK_TYPE_VLAN,     /* a VLAN of a parent NIC, bridged (admin, shared) */
    _NETWORK_TYPE_MAX,
    _NETWORK_TYPE_INVALID = -1,
} NetworkType;

const char *network_type_to_string(NetworkType t);
NetworkType network_type_from_string(const char *s);

#define NETWORK_DNS_MAX 3
#define NETWORK_PREFIX_MIN 8  /* no /0 to /7: absurd for one segment */
#define NETWORK_PREFIX_MAX 30 /* /31 and /32 leave no room for a gateway and a guest */
#define NETWORK_VNI_MAX 16777215u
#define NETWORK_VNI_AUTO_MIN 4096u /* VNIs the store picks start here */
#define NETWORK_VLAN_MAX 4094u
#define NETWORK_MTU_MIN 576u
#define NETWORK_MTU_MAX 9000u
#define NETWORK_IFNAME_MAX 15 /* IFNAMSIZ - 1 */
#define VM_NICS_MAX 8
#define NB_IPV4_STRLEN 16 /* "255.255.255.255" + NUL */

typedef struct Network {
    char id[NB_UUID_STRLEN];
    char project[NB_UUID_STRLEN]; /* its owner; a shared network is usable by every project */
    char name[NB_NAME_MAX + 1];
    NetworkType type;
    uint32_t net;     /* the network address (host bits zero) */
    unsigned prefix;  /* NETWORK_PREFIX_MIN..NETWORK_PREFIX_MAX */
    uint32_t gateway; /* inside the subnet, or 0 for none (isolated may have none) */
    bool dhcp;
    uint32_t dns[NETWORK_DNS_MAX];
    size_t n_dns;
    unsigned vni;  /* vxlan only: 1..NETWORK_VNI_MAX (0 in a request: none given) */
    unsigned vlan; /* vlan only: 1..NETWORK_VLAN_MAX */
    char bridge[NETWORK_IFNAME_MAX + 1]; /* bridged: the host's bridge; else derived (below) */
    char parent[NETWORK_IFNAME_MAX + 1]; /* vlan only: the parent NIC */
    unsigned mtu;                        /* the guest MTU; network_mtu() when 0 was asked */
    bool shared;
    bool is_default; /* the project's default network, made on its first VM without one */
    char created_at[NB_TIMESTAMP_LEN];
} Network;

/* Strict decode of a create request:
 *   {name, type?, cidr, gateway?, dhcp?, dns?: [ip...], vni?, vlan?, bridge?, parent?, mtu?,
 *    shared?}
 * type defaults to "nat"; cidr is "a.b.c.d/N" with host bits zero; gateway defaults to the
 * first address (nat and dhcp need one; "none" for an isolated network without DHCP); dhcp
 * defaults to true (false for vxlan); vni/vlan/bridge/parent are only allowed for their type and
 * required by it, except vni (0 when absent: the store picks the lowest free from 4096);
 * mtu defaults to network_mtu(). Fills everything but id, project, bridge (unless bridged),
 * is_default and created_at. Stable codes: NETWORK_INVALID_CIDR, NETWORK_INVALID_GATEWAY,
 * NETWORK_INVALID_TYPE, NETWORK_INVALID_VNI, NETWORK_INVALID_VLAN, NETWORK_INVALID_IFNAME,
 * NETWORK_INVALID_MTU, INVALID_REQUEST (shape), INVALID_NAME. */
int network_from_request(json_t *body, Network *ret, NbError **err);
json_t *network_to_json(const Network *n);
/* The MTU a guest gets when none was asked: 1450 for vxlan (50 bytes of VXLAN over a 1500
 * underlay), 1500 otherwise. */
unsigned network_default_mtu(NetworkType t);

/* Names on the hosts, derived from the network's id only (never a user string):
 * the libvirt network "nimbus-net-<id>" and the Linux bridge "nbr<first 12 hex of id>". */
void network_libvirt_name(const Network *n, char out[64]);
void network_bridge_name(const char *network_id, char out[NETWORK_IFNAME_MAX + 1]);

/* IPv4 helpers. */
int ipv4_parse(const char *s, uint32_t *ret); /* dotted quad, no leading zeros; -EINVAL */
void ipv4_format(uint32_t ip, char out[NB_IPV4_STRLEN]);                /* dotted quad */
int cidr_parse(const char *s, uint32_t *ret_net, unsigned *ret_prefix); /* -EINVAL */
uint32_t cidr_mask(unsigned prefix);
bool cidr_contains(uint32_t net, unsigned prefix, uint32_t ip);
bool cidr_overlaps(uint32_t a, unsigned pa, uint32_t b, unsigned pb);
/* An address a port may take: inside the subnet, not the network or broadcast address, not the
 * gateway nor a DNS server of the network. */
bool network_ip_is_assignable(const Network *n, uint32_t ip);
/* The interface name rule for bridge/parent: [A-Za-z0-9][A-Za-z0-9_.-]{0,14}, not "." "..". */
bool network_ifname_is_valid(const char *s);

typedef struct Port {
    char id[NB_UUID_STRLEN];
    char project[NB_UUID_STRLEN]; /* the VM's project (may differ from a shared network's) */
    char network_id[NB_UUID_STRLEN];
    char vm_id[NB_UUID_STRLEN];
    unsigned slot; /* the NIC's place in the VM: 0..VM_NICS_MAX-1, eth<slot> in the guest */
    char mac[NB_MAC_STRLEN];
    uint32_t ip;
    char created_at[NB_TIMESTAMP_LEN];
    /* Limits in kbit/s, 0: unlimited (bandwidth.h): the VM's flavor's when the port was made,
     * then the port's own (PATCH /v1/ports/{id}). */
    uint32_t net_in_kbit;  /* what the guest receives */
    uint32_t net_out_kbit; /* what it sends */
} Port;

/* {id, network_id, vm_id, slot, mac, ip, net_in_mbit, net_out_mbit, created_at} */
json_t *port_to_json(const Port *p);

/* A network's DHCP server on one host (vxlan, vlan and bridged networks with DHCP: nat and
 * isolated ones have libvirt's dnsmasq on the gateway instead). Its address comes from the
 * ports' IPAM, so no port can take it; it is no VM's and counts in no quota. */
typedef struct DhcpServer {
    char id[NB_UUID_STRLEN];
    char network_id[NB_UUID_STRLEN];
    char host[NB_NAME_MAX + 1];
    char mac[NB_MAC_STRLEN];
    uint32_t ip;
    char created_at[NB_TIMESTAMP_LEN];
} DhcpServer;

/* As a port: {id, network_id, vm_id: null, owner: "dhcp:<host>", mac, ip, created_at}. */
json_t *dhcp_server_to_json(const DhcpServer *d);

/* One NIC asked for: {"network": id-or-name, "ip"?: "a.b.c.d"} (in vm create's "networks"
 * array and in nic add). */
typedef struct NicRequest {
    char network[NB_NAME_MAX + 1];
    uint32_t ip; /* 0: Nimbus picks */
} NicRequest;

int nic_request_parse(json_t *j, NicRequest *ret, NbError **err);

/* The tap device of a port: "nbt<first 12 hex of the port's id>" (derived, like the bridge). */
void port_tap_name(const char *port_id, char out[NETWORK_IFNAME_MAX + 1]);

/* Notes on the codes above: network_from_request answers IP_INVALID for a "dns" entry that is
 * not a dotted quad (or is 0.0.0.0 / 255.255.255.255), and INVALID_REQUEST for a repeated one;
 * a field of another type ("vni" on a nat network) gets that field's code (NETWORK_INVALID_VNI,
 * _VLAN, _IFNAME for bridge/parent), as does a wrong JSON type for vni, vlan and mtu.
 * nic_request_parse: INVALID_REQUEST (shape, a network that is no name or id), IP_INVALID.
 * network_to_json: "bridge" is the host bridge (derived from the id unless bridged). */
