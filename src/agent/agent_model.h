/*
 * nimbus-agent's model: what it holds (VXLAN overlays, VLAN segments, shaping of taps), the strict
 * decoding of its requests, the checks on every name it is given, and the state file. No netlink,
 * no I/O except the state file, so all of it is unit-tested without privileges.
 *
 * The agent only ever touches devices whose names it owns: bridges nbr<12 hex>, VXLAN devices
 * nbx<vni>, VLAN devices nbv<12 hex>, IFBs nbi<12 hex> and taps nbt<12 hex> (shaping only). Any
 * other name is refused, so a caller holding the secret still cannot reconfigure the host's own
 * interfaces.
 */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../util/error.h"

#define AGENT_IFNAME_MAX 15 /* IFNAMSIZ - 1 */
#define AGENT_VNI_MAX 16777215u
#define AGENT_MTU_MIN 576u
#define AGENT_MTU_MAX 9000u
#define AGENT_PEERS_MAX 1024
#define AGENT_ENTRIES_MAX 4096   /* VXLANs, and shaped taps, each */
#define AGENT_KBIT_MAX 10000000u /* 10 Gbit/s; keeps bytes/s within HTB's 32-bit rate */
#define AGENT_VLAN_MAX 4094u
#define AGENT_VXLAN_PORT 4789
#define AGENT_BODY_MAX (64 * 1024)
#define AGENT_SECRET_HEX_LEN 64

typedef struct AgentVxlan {
    unsigned vni;
    char bridge[AGENT_IFNAME_MAX + 1];
    unsigned mtu;
    uint32_t local; /* host order */
    char dev[AGENT_IFNAME_MAX + 1];
    uint32_t *peers; /* host order, sorted, no duplicates */
    size_t n_peers;
} AgentVxlan;

/* A VLAN segment: the bridge nbr<12 hex> with the VLAN device nbv<the same 12 hex> (802.1Q id
 * vlan on the host's parent NIC) as its uplink. Keyed by the bridge. */
typedef struct AgentVlan {
    char bridge[AGENT_IFNAME_MAX + 1];
    unsigned vlan;
    char parent[AGENT_IFNAME_MAX + 1];
    unsigned mtu;
} AgentVlan;

typedef struct AgentShaping {
    char tap[AGENT_IFNAME_MAX + 1];
    unsigned in_kbit;  /* host -> guest: HTB on the tap's root; 0: unlimited */
    unsigned out_kbit; /* guest -> host: ingress -> mirred -> IFB with HTB; 0: unlimited */
} AgentShaping;

typedef struct AgentState {
    AgentVxlan *vxlans; /* sorted by vni */
    size_t n_vxlans;
    AgentShaping *shaping; /* sorted by tap */
    size_t n_shaping;
    AgentVlan *vlans; /* sorted by bridge */
    size_t n_vlans;
} AgentState;

/* Names. */
bool agent_bridge_name_is_valid(const char *s); /* nbr[0-9a-f]{12} */
bool agent_tap_name_is_valid(const char *s);    /* nbt[0-9a-f]{12} */
/* An existing host interface used as the VXLAN underlay (never modified):
 * [A-Za-z0-9][A-Za-z0-9_.-]{0,14}, and none of the agent's own prefixes. */
bool agent_underlay_name_is_valid(const char *s);
void agent_vxlan_ifname(unsigned vni, char out[AGENT_IFNAME_MAX + 1]); /* nbx<vni> */
/* The VLAN device of a bridge: nbv + the bridge's 12 hex. The bridge must be valid. */
void agent_vlan_ifname(const char *bridge, char out[AGENT_IFNAME_MAX + 1]);
/* The IFB of a tap: nbi + the tap's 12 hex. The tap must be valid. */
void agent_ifb_ifname(const char *tap, char out[AGENT_IFNAME_MAX + 1]);
/* The VNI in a path segment: decimal, no sign or leading zero, 1..AGENT_VNI_MAX. */
int agent_vni_parse(const char *s, unsigned *ret);
/* Dotted quad, no leading zeros. 0 or -EINVAL. */
int agent_ipv4_parse(const char *s, uint32_t *ret);
void agent_ipv4_format(uint32_t ip, char out[16]);
/* A unicast address a VTEP may have: not 0.0.0.0/8, loopback, multicast or broadcast. */
bool agent_ipv4_is_unicast(uint32_t ip);

/* Strict request decoding: unknown fields, wrong types, bad values refused with stable codes
 * (INVALID_REQUEST, NETWORK_INVALID_IFNAME, NETWORK_INVALID_MTU, IP_INVALID). The VNI comes from
 * the path. On success ret owns its peers (agent_vxlan_clear). */
int agent_vxlan_from_json(json_t *body, unsigned vni, AgentVxlan *ret, NbError **err);
json_t *agent_vxlan_to_json(const AgentVxlan *v);
/* {"vlan": 1..4094, "parent": an underlay name, "mtu"?}; the bridge comes from the path
 * (NETWORK_INVALID_IFNAME unless nbr<12 hex>; NETWORK_INVALID_VLAN). */
int agent_vlan_from_json(json_t *body, const char *bridge, AgentVlan *ret, NbError **err);
json_t *agent_vlan_to_json(const AgentVlan *v);
int agent_shaping_from_json(json_t *body, const char *tap, AgentShaping *ret, NbError **err);
json_t *agent_shaping_to_json(const AgentShaping *s);
void agent_vxlan_clear(AgentVxlan *v);
int agent_vxlan_copy(const AgentVxlan *src, AgentVxlan *dst); /* 0 or -ENOMEM */
bool agent_vxlan_equal(const AgentVxlan *a, const AgentVxlan *b);

/* State: lookup and in-place changes keep the arrays sorted. */
AgentVxlan *agent_state_vxlan_find(AgentState *s, unsigned vni);
/* The VXLAN (other than vni) that already uses bridge, or NULL. */
const AgentVxlan *agent_state_bridge_user(const AgentState *s, const char *bridge, unsigned vni);
/* Takes v's peers (v is left empty). 0, -ENOSPC (too many entries) or -ENOMEM. */
int agent_state_vxlan_put(AgentState *s, AgentVxlan *v);
bool agent_state_vxlan_remove(AgentState *s, unsigned vni);
AgentVlan *agent_state_vlan_find(AgentState *s, const char *bridge);
int agent_state_vlan_put(AgentState *s, const AgentVlan *v); /* 0, -ENOSPC or -ENOMEM */
bool agent_state_vlan_remove(AgentState *s, const char *bridge);
AgentShaping *agent_state_shaping_find(AgentState *s, const char *tap);
int agent_state_shaping_put(AgentState *s, const AgentShaping *sh);
bool agent_state_shaping_remove(AgentState *s, const char *tap);
void agent_state_clear(AgentState *s);
/* Deep copy, for changes that must be undone if writing the state file fails. */
int agent_state_copy(const AgentState *src, AgentState *dst);

/* {"version":1,"vxlans":[...],"shaping":[...],"vlans":[...]}; the same strict decoding as
 * requests ("vlans" may be absent: a state file from before VLANs). */
json_t *agent_state_to_json(const AgentState *s);
int agent_state_from_json(json_t *j, AgentState *ret, NbError **err);
/* DIR/FILE written atomically with j's text: a temporary file, fsync, rename, fsync of the
 * directory. 0 or -errno. */
int agent_json_save(json_t *j, const char *dir, const char *file);
/* DIR/FILE's JSON (at most max bytes) into *ret; a missing file leaves *ret NULL (0). 0, -errno,
 * or -EBADMSG with *err set. */
int agent_json_load(const char *dir, const char *file, size_t max, json_t **ret, NbError **err);
/* DIR/state.json, agent_json_save's way. 0 or -errno. */
int agent_state_save(const AgentState *s, const char *dir);
/* A missing file is an empty state (first start). 0, -errno, or -EBADMSG with *err set. */
int agent_state_load(const char *dir, AgentState *ret, NbError **err);

/* The secret file: mode 0600 at most (no group/other bits), 64 hex chars and an optional
 * newline. out gets the 64 chars and a NUL. 0, -EPERM (mode), -EBADMSG (content) or -errno. */
int agent_secret_load(const char *path, char out[AGENT_SECRET_HEX_LEN + 1]);
