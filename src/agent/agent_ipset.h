/*
 * nimbus-agent's ipsets: the member lists of nimbusd's remote-group rules ("ingress from the
 * members of group G"), which the rules' nwfilters match with libvirt's ipset attribute
 * instead of one accept per member address (nwfilter_xml.h). A membership change is then one
 * PUT here and no nwfilter redefinition (which re-instantiates every interface using it).
 *
 * Pure (no netlink): the names, the strict decoding of PUT /v1/ipsets/{name}, the list and its
 * file DIR/ipsets.json, unit-tested without privileges. agent_ipset_run.h applies them with
 * libipset.
 *
 * Names: nbs- and 24 lowercase hex digits (nimbusd derives them from the rule's id); the agent
 * only ever touches sets of that form (and their temporaries, the name + "-t"), never a set of
 * the host's own. A set is hash:ip, family inet; members are IPv4 addresses.
 */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../util/error.h"

#define AGENT_IPSET_PREFIX "nbs-"
#define AGENT_IPSET_HEX_LEN 24
#define AGENT_IPSET_NAME_MAX 31 /* IPSET_MAXNAMELEN - 1 */
#define AGENT_IPSET_MEMBERS_MAX 4096
#define AGENT_IPSETS_MAX 4096

typedef struct AgentIpset {
    char name[AGENT_IPSET_NAME_MAX + 1];
    uint32_t *members; /* host order, sorted, no duplicates */
    size_t n_members;
    /* Deleted by nimbusd but still referenced by iptables (libvirt had not removed its rule
     * yet), so the kernel refused to destroy it: destroyed at a later call or check. */
    bool doomed;
} AgentIpset;

typedef struct AgentIpsets {
    AgentIpset *sets; /* sorted by name */
    size_t n;
} AgentIpsets;

/* nbs-[0-9a-f]{24} */
bool agent_ipset_name_is_valid(const char *s);
/* The temporary a replacement is filled in before the swap: name + "-t". name must be valid. */
void agent_ipset_tmp_name(const char *name, char out[AGENT_IPSET_NAME_MAX + 1]);

/* {"members": ["10.0.0.5", ...]}: unknown fields, wrong types refused (INVALID_REQUEST), a
 * member that is not a unicast dotted quad too (IP_INVALID); repeats are kept once. The name
 * comes from the path (INVALID_NAME unless valid). On success ret owns its members
 * (agent_ipset_clear). */
int agent_ipset_from_json(json_t *body, const char *name, AgentIpset *ret, NbError **err);
/* {"name", "members": [...], "doomed"?: true} */
json_t *agent_ipset_to_json(const AgentIpset *s);
void agent_ipset_clear(AgentIpset *s);

AgentIpset *agent_ipsets_find(AgentIpsets *l, const char *name);
/* Takes s's members (s is left empty); replaces a set of the same name. 0, -ENOSPC, -ENOMEM. */
int agent_ipsets_put(AgentIpsets *l, AgentIpset *s);
bool agent_ipsets_remove(AgentIpsets *l, const char *name);
void agent_ipsets_clear(AgentIpsets *l);

/* {"version":1,"ipsets":[...]}: the file's content and GET /v1/ipsets's answer. */
json_t *agent_ipsets_to_json(const AgentIpsets *l);
int agent_ipsets_from_json(json_t *j, AgentIpsets *ret, NbError **err);
/* DIR/ipsets.json written atomically (temporary file, fsync, rename, fsync of DIR). 0 or
 * -errno. */
int agent_ipsets_save(const AgentIpsets *l, const char *dir);
/* A missing file is no sets. 0, -errno, or -EBADMSG with *err set. */
int agent_ipsets_load(const char *dir, AgentIpsets *ret, NbError **err);
