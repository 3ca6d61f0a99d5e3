/* Server groups: VMs placed together (affinity) or apart (anti-affinity). */
#pragma once

#include <jansson.h>

#include "../util/error.h"
#include "../util/timeutil.h"
#include "../util/uuid.h"
#include "validate.h"

typedef enum GroupPolicy {
    GROUP_POLICY_AFFINITY,           /* every member on one host */
    GROUP_POLICY_ANTI_AFFINITY,      /* no two members on one host */
    GROUP_POLICY_SOFT_ANTI_AFFINITY, /* as few members per host as can be, never refused */
    _GROUP_POLICY_MAX,
    _GROUP_POLICY_INVALID = -1,
} GroupPolicy;

const char *group_policy_to_string(GroupPolicy p); /* "affinity", "anti-affinity", ... */
GroupPolicy group_policy_from_string(const char *s);

typedef struct Group {
    char id[NB_UUID_STRLEN];
    char project[NB_UUID_STRLEN];
    char name[NB_NAME_MAX + 1];
    GroupPolicy policy;
    unsigned members; /* filled by the store */
    char created_at[NB_TIMESTAMP_LEN];
} Group;

/* Strict decode of {name, policy}. */
int group_create_request_parse(json_t *body, char name[NB_NAME_MAX + 1], GroupPolicy *policy,
                               NbError **err);
json_t *group_to_json(const Group *g);
