/* nimbus group create|list|show|delete: server groups, which place their VMs together or apart */
#include <stdio.h>

#include "../model/validate.h"
#include "../util/cleanup.h"
#include "../util/strutil.h"
#include "api.h"
#include "args.h"
#include "resource.h"

static const OutputField group_columns[] = {
    {"NAME", "name", NULL, false},         {"POLICY", "policy", NULL, false},
    {"MEMBERS", "members", NULL, false},   {"PROJECT", "project_name", NULL, true},
    {"CREATED", "created_at", NULL, true}, {"ID", "id", NULL, true},
};

static const OutputField group_fields[] = {
    {"id", "id", NULL, false},
    {"name", "name", NULL, false},
    {"policy", "policy", NULL, false},
    {"project_id", "project_id", NULL, false},
    {"project", "project_name", NULL, false},
    {"members", "members", NULL, false},
    {"created_at", "created_at", NULL, false},
};

static const Resource group_resource = {
    .collection = "groups",
    .columns = group_columns,
    .n_columns = ELEMENTSOF(group_columns),
    .fields = group_fields,
    .n_fields = ELEMENTSOF(group_fields),
};

static bool
group_policy_is_valid(const char *policy)
{
    return streq(policy, "affinity") || streq(policy, "anti-affinity") ||
           streq(policy, "soft-anti-affinity");
}

/* A group with its project's name, then its members when the answer lists them (GET). */
static void
group_print(Cli *cli, json_t *group)
{
    if (cli->json) {
        output_json(group);
        return;
    }
    json_auto_t *copy = json_copy(group);
    json_auto_t *rows = copy ? json_pack("[O]", copy) : NULL;
    if (!rows)
        return;
    json_object_del(copy, "vm_list");
    cli_add_project_names(cli, rows, "project_id", "project_name");
    output_show(copy, group_fields, ELEMENTSOF(group_fields));

    json_t *vms = json_object_get(group, "vm_list");
    if (json_array_size(vms) == 0)
        return;
    static const OutputField cols[] = {
        {"VM", "name", NULL, false},
        {"HOST", "host", NULL, false},
        {"STATE", "state", NULL, false},
    };
    printf("\n");
    output_table(vms, cols, ELEMENTSOF(cols), false);
}

static int
group_create(Cli *cli, const Args *a)
{
    const char *name = a->positional[0], *policy = args_get(a, "policy");
    if (!nb_name_is_valid(name))
        return args_usage_error(a,
                                "invalid name '%s': use [A-Za-z0-9][A-Za-z0-9._-]{0,62}, "
                                "not a UUID",
                                name);
    if (!policy)
        return args_usage_error(a, "--policy is required");
    if (!group_policy_is_valid(policy))
        return args_usage_error(a, "--policy must be affinity, anti-affinity or "
                                   "soft-anti-affinity");
    json_auto_t *body = json_pack("{s:s, s:s}", "name", name, "policy", policy);
    if (!body)
        return CLI_EXIT_API;
    json_auto_t *group = NULL;
    int r = api_call(cli, "POST", "/v1/groups", body, &group);
    if (r != 0)
        return r;
    if (!json_is_object(group)) {
        fprintf(stderr, "error: INVALID_RESPONSE: expected a group\n");
        return CLI_EXIT_API;
    }
    group_print(cli, group);
    return CLI_EXIT_OK;
}

static int
group_list(Cli *cli, const Args *a)
{
    bool wide = args_has(a, "wide");
    if (cli->json || !wide)
        return resource_list(cli, &group_resource, "", wide);
    /* --wide shows the project's name: the API gives its id. */
    json_auto_t *resp = NULL;
    int r = api_call(cli, "GET", "/v1/groups", NULL, &resp);
    if (r != 0)
        return r;
    json_t *groups = json_object_get(resp, "groups");
    if (!json_is_array(groups)) {
        fprintf(stderr, "error: INVALID_RESPONSE: no 'groups' list in the answer\n");
        return CLI_EXIT_API;
    }
    cli_add_project_names(cli, groups, "project_id", "project_name");
    output_table(groups, group_columns, ELEMENTSOF(group_columns), wide);
    return CLI_EXIT_OK;
}

static int
group_show(Cli *cli, const Args *a)
{
    json_auto_t *group = NULL;
    int r = resource_get(cli, &group_resource, a->positional[0], &group);
    if (r != 0)
        return r;
    group_print(cli, group);
    return CLI_EXIT_OK;
}

static int
group_delete(Cli *cli, const Args *a)
{
    return resource_delete(cli, &group_resource, a->positional[0]);
}

static const ArgSpec create_specs[] = {{"policy", true}};
static const ArgSpec list_specs[] = {{"wide", false}};

static const Command group_commands[] = {
    {"create", "NAME --policy affinity|anti-affinity|soft-anti-affinity",
     "Create a server group; 'vm create --group' puts VMs in it.",
     "  --policy POLICY   affinity: every member on one host;\n"
     "                    anti-affinity: no two members on one host;\n"
     "                    soft-anti-affinity: as few members per host as can be, never refused\n",
     group_create, create_specs, ELEMENTSOF(create_specs), 1, 1, NULL},
    {"list", "[--wide]", "List server groups.",
     "  --wide            also show the project, creation time and id\n", group_list, list_specs,
     ELEMENTSOF(list_specs), 0, 0, NULL},
    {"show", "NAME|ID", "Show a server group and its members.", NULL, group_show, NULL, 0, 1, 1,
     NULL},
    {"delete", "NAME|ID", "Delete a server group.", NULL, group_delete, NULL, 0, 1, 1, NULL},
};

int
cmd_group(Cli *cli, int argc, char **argv)
{
    return args_dispatch(cli, "group", "Manage server groups: VMs placed together or apart.",
                         group_commands, ELEMENTSOF(group_commands), argc, argv);
}
