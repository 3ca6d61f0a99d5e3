/*
 * Security groups (OpenStack Neutron's model): a project's named sets of rules, attached to
 * ports. A port with groups gets the union of their rules as stateful accepts; everything else
 * is dropped (replies to allowed traffic always pass). Types, validation, JSON. No I/O.
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

#define SECGROUP_DESCRIPTION_MAX 255
#define SECRULE_PORT_MAX 65535u

typedef enum SecRuleDirection {
    SECRULE_INGRESS, /* to the guest */
    SECRULE_EGRESS,  /* from the guest */
    _SECRULE_DIRECTION_MAX,
    _SECRULE_DIRECTION_INVALID = -1,
} SecRuleDirection;

typedef enum SecRuleProtocol {
    SECRULE_PROTO_ANY,
    SECRULE_PROTO_TCP,
    SECRULE_PROTO_UDP,
    SECRULE_PROTO_ICMP,
    _SECRULE_PROTO_MAX,
    _SECRULE_PROTO_INVALID = -1,
} SecRuleProtocol;

const char *secrule_direction_to_string(SecRuleDirection d);
SecRuleDirection secrule_direction_from_string(const char *s);
const char *secrule_protocol_to_string(SecRuleProtocol p);
SecRuleProtocol secrule_protocol_from_string(const char *s);

typedef struct SecGroup {
    char id[NB_UUID_STRLEN];
    char project[NB_UUID_STRLEN];
    char name[NB_NAME_MAX + 1];
    char description[SECGROUP_DESCRIPTION_MAX + 1]; /* "" when none */
    char created_at[NB_TIMESTAMP_LEN];
} SecGroup;

/* The remote end is either a CIDR (remote_group empty) or the members of a group of the same
 * project (remote_group set; remote_net/prefix unused and 0). */
typedef struct SecRule {
    char id[NB_UUID_STRLEN];
    char group_id[NB_UUID_STRLEN];
    SecRuleDirection direction;
    SecRuleProtocol protocol;
    unsigned port_min, port_max; /* tcp/udp only, 1..65535; both 0: every port */
    uint32_t remote_net;         /* host order, host bits zero */
    unsigned remote_prefix;      /* 0..32 */
    /* In a request: a group's id or name, as the client gave it (the store resolves it within
     * the group's project). Stored and read back: the group's id. */
    char remote_group[NB_NAME_MAX + 1];
    char created_at[NB_TIMESTAMP_LEN];
} SecRule;

/* Strict decode of a create request: {name, description?}. INVALID_REQUEST, INVALID_NAME. Fills
 * name and description only. */
int secgroup_from_request(json_t *body, SecGroup *ret, NbError **err);
/* {id, project, name, description, created_at} and, when rules is not NULL, "rules": [...]. */
json_t *secgroup_to_json(const SecGroup *g, const SecRule *rules, size_t n_rules);

/* Strict decode of a rule:
 *   {direction: "ingress"|"egress", protocol?: "any"|"tcp"|"udp"|"icmp" (default any),
 *    port_min?, port_max?, cidr?: "a.b.c.d/N", remote_group?: id or name, ethertype?: "IPv4"}
 * port_max defaults to port_min; neither: every port. Neither cidr nor remote_group: 0.0.0.0/0.
 * SECGROUP_RULE_INVALID for anything off: unknown field, port 0 or 65536, min > max, ports with
 * icmp or any, both cidr and remote_group, a bad cidr (host bits set, prefix > 32), another
 * ethertype. Fills everything but id, group_id and created_at. */
int secrule_from_request(json_t *body, SecRule *ret, NbError **err);
/* {id, group_id, direction, protocol, port_min, port_max (null: every port), cidr (null with a
 * remote group), remote_group (an id or null), ethertype: "IPv4", created_at} */
json_t *secrule_to_json(const SecRule *r);
/* Whether two rules allow the same traffic (ids, group and created_at aside). */
bool secrule_same(const SecRule *a, const SecRule *b);
/* The rules given to a new group, as Neutron does: egress any to 0.0.0.0/0, ingress any from
 * members of the group itself. Fills direction, protocol, remote and group_id only. */
void secgroup_default_rules(const char *group_id, SecRule out[2]);
