#include "group.h"

#include "enum_table.h"
#include "json_req.h"

static const char *const group_policy_table[_GROUP_POLICY_MAX] = {
    [GROUP_POLICY_AFFINITY] = "affinity",
    [GROUP_POLICY_ANTI_AFFINITY] = "anti-affinity",
    [GROUP_POLICY_SOFT_ANTI_AFFINITY] = "soft-anti-affinity",
};
DEFINE_STRING_TABLE(group_policy, GroupPolicy, group_policy_table)

int
group_create_request_parse(json_t *body, char name[NB_NAME_MAX + 1], GroupPolicy *policy,
                           NbError **err)
{
    static const char *const fields[] = {"name", "policy", NULL};
    char n[NB_NAME_MAX + 1];
    char p[32];

    if (json_req_check_fields(body, fields, err) < 0 ||
        json_req_name(body, "name", "group", n, err) < 0 ||
        json_req_string(body, "policy", 1, p, sizeof(p), err) < 0)
        return -1;
    GroupPolicy gp = group_policy_from_string(p);
    if (gp == _GROUP_POLICY_INVALID)
        return nb_error_set(err, NB_ERR_INVALID_REQUEST,
                            "policy must be \"affinity\", \"anti-affinity\" or "
                            "\"soft-anti-affinity\"");
    memcpy(name, n, sizeof(n));
    *policy = gp;
    return 0;
}

json_t *
group_to_json(const Group *g)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:I, s:s}", "id", g->id, "project_id", g->project,
                     "name", g->name, "policy", group_policy_to_string(g->policy), "members",
                     (json_int_t)g->members, "created_at", g->created_at);
}
