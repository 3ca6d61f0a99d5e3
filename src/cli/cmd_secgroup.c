/* nimbus secgroup create|list|show|delete and secgroup rule add|list|delete: a project's
 * security groups (Neutron's model) and their rules */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../model/network.h"
#include "../model/validate.h"
#include "../util/cleanup.h"
#include "../util/strutil.h"
#include "../util/uuid.h"
#include "api.h"
#include "args.h"
#include "resource.h"

static const OutputField secgroup_columns[] = {
    {"NAME", "name", NULL, false},      {"DESCRIPTION", "description", NULL, false},
    {"PROJECT", "project", NULL, true}, {"CREATED", "created_at", NULL, true},
    {"ID", "id", NULL, true},
};

static const OutputField secgroup_fields[] = {
    {"id", "id", NULL, false},
    {"name", "name", NULL, false},
    {"description", "description", NULL, false},
    {"project", "project", NULL, false},
    {"created_at", "created_at", NULL, false},
};

static const Resource secgroup_resource = {
    .collection = "secgroups",
    .columns = secgroup_columns,
    .n_columns = ELEMENTSOF(secgroup_columns),
    .fields = secgroup_fields,
    .n_fields = ELEMENTSOF(secgroup_fields),
};

/* "22", "8000-8080" or "any" */
static char *
secgroup_fmt_ports(json_t *obj, const char *key)
{
    json_int_t lo = json_integer_value(json_object_get(obj, "port_min"));
    json_int_t hi = json_integer_value(json_object_get(obj, "port_max"));
    if (!json_is_integer(json_object_get(obj, "port_min")))
        return strdup("any");
    if (lo == hi)
        return str_printf("%lld", (long long)lo);
    return str_printf("%lld-%lld", (long long)lo, (long long)hi);
}

/* The CIDR, or "group NAME" (set by secgroup_rules_print into "remote_group_name"). */
static char *
secgroup_fmt_remote(json_t *obj, const char *key)
{
    const char *cidr = api_str(obj, "cidr");
    if (cidr)
        return strdup(cidr);
    const char *name = api_str(obj, "remote_group_name");
    return str_printf("group %s", name ? name : "?");
}

static const OutputField rule_columns[] = {
    {"ID", "id", NULL, false},
    {"DIRECTION", "direction", NULL, false},
    {"PROTO", "protocol", NULL, false},
    {"PORTS", "port_min", secgroup_fmt_ports, false},
    {"REMOTE", "cidr", secgroup_fmt_remote, false},
};

/* The rules as a table, remote groups by name (their id when not among the caller's groups). */
static void
secgroup_rules_print(Cli *cli, json_t *rules)
{
    json_auto_t *resp = NULL;
    if (api_call_full(cli, "GET", "/v1/secgroups", NULL, true, NULL, &resp) != 0)
        resp = NULL;
    json_t *groups = json_object_get(resp, "secgroups");
    size_t i;
    json_t *rule;
    json_array_foreach (rules, i, rule) {
        const char *id = api_str(rule, "remote_group");
        if (!id)
            continue;
        const char *name = id;
        size_t j;
        json_t *g;
        json_array_foreach (groups, j, g) {
            if (streq(api_str(g, "id"), id))
                name = api_str(g, "name");
        }
        json_object_set_new(rule, "remote_group_name", json_string(name));
    }
    output_table(rules, rule_columns, ELEMENTSOF(rule_columns), false);
}

static int
secgroup_create(Cli *cli, const Args *a)
{
    const char *name = a->positional[0], *desc = args_get(a, "description");
    if (!nb_name_is_valid(name))
        return args_usage_error(a,
                                "invalid name '%s': use [A-Za-z0-9][A-Za-z0-9._-]{0,62}, "
                                "not a UUID",
                                name);
    json_auto_t *body = json_pack("{s:s}", "name", name);
    if (!body)
        return CLI_EXIT_API;
    if (desc)
        json_object_set_new(body, "description", json_string(desc));
    json_auto_t *group = NULL;
    int r = api_call(cli, "POST", "/v1/secgroups", body, &group);
    if (r != 0)
        return r;
    resource_print(cli, &secgroup_resource, group);
    return CLI_EXIT_OK;
}

static int
secgroup_list(Cli *cli, const Args *a)
{
    return resource_list(cli, &secgroup_resource, "", args_has(a, "wide"));
}

static int
secgroup_show(Cli *cli, const Args *a)
{
    json_auto_t *group = NULL;
    int r = resource_get(cli, &secgroup_resource, a->positional[0], &group);
    if (r != 0)
        return r;
    if (cli->json) {
        output_json(group);
        return CLI_EXIT_OK;
    }
    output_show(group, secgroup_fields, ELEMENTSOF(secgroup_fields));
    json_t *rules = json_object_get(group, "rules");
    printf("\n");
    secgroup_rules_print(cli, rules);
    return CLI_EXIT_OK;
}

static int
secgroup_delete(Cli *cli, const Args *a)
{
    return resource_delete(cli, &secgroup_resource, a->positional[0]);
}

/* --port N or N-M into the body. */
static int
secgroup_rule_ports(const Args *a, const char *spec, json_t *body)
{
    char *end = NULL;
    unsigned long lo = strtoul(spec, &end, 10), hi = lo;
    if (end == spec)
        return args_usage_error(a, "--port must be N or N-M");
    if (*end == '-') {
        const char *s = end + 1;
        hi = strtoul(s, &end, 10);
        if (end == s)
            return args_usage_error(a, "--port must be N or N-M");
    }
    if (*end || lo < 1 || hi > 65535 || lo > hi)
        return args_usage_error(a, "--port must be N or N-M with 1 <= N <= M <= 65535");
    json_object_set_new(body, "port_min", json_integer((json_int_t)lo));
    json_object_set_new(body, "port_max", json_integer((json_int_t)hi));
    return 0;
}

static int
secgroup_rule_add(Cli *cli, const Args *a)
{
    bool in = args_has(a, "ingress"), out = args_has(a, "egress");
    const char *proto = args_get(a, "proto"), *port = args_get(a, "port");
    const char *cidr = args_get(a, "cidr"), *remote = args_get(a, "remote-group");
    if (in == out)
        return args_usage_error(a, "give one of --ingress and --egress");
    if (!proto)
        proto = "any";
    if (!streq(proto, "tcp") && !streq(proto, "udp") && !streq(proto, "icmp") &&
        !streq(proto, "any"))
        return args_usage_error(a, "--proto must be tcp, udp, icmp or any");
    if (cidr && remote)
        return args_usage_error(a, "give --cidr or --remote-group, not both");
    if (remote && !nb_name_is_valid(remote) && !nb_uuid_is_valid(remote))
        return args_usage_error(a, "--remote-group '%s' is not a group's name or id", remote);
    json_auto_t *body =
        json_pack("{s:s, s:s}", "direction", in ? "ingress" : "egress", "protocol", proto);
    if (!body)
        return CLI_EXIT_API;
    int r;
    if (port && (r = secgroup_rule_ports(a, port, body)) != 0)
        return r;
    if (cidr)
        json_object_set_new(body, "cidr", json_string(cidr));
    if (remote)
        json_object_set_new(body, "remote_group", json_string(remote));
    _cleanup_free_ char *path = NULL;
    r = api_path(cli, "secgroups", a->positional[0], "/rules", &path);
    if (r != 0)
        return r;
    json_auto_t *rule = NULL;
    r = api_call(cli, "POST", path, body, &rule);
    if (r != 0)
        return r;
    if (cli->json) {
        output_json(rule);
        return CLI_EXIT_OK;
    }
    json_auto_t *rows = json_pack("[O]", rule);
    secgroup_rules_print(cli, rows);
    return CLI_EXIT_OK;
}

static int
secgroup_rule_list(Cli *cli, const Args *a)
{
    _cleanup_free_ char *path = NULL;
    int r = api_path(cli, "secgroups", a->positional[0], "/rules", &path);
    if (r != 0)
        return r;
    json_auto_t *resp = NULL;
    r = api_call(cli, "GET", path, NULL, &resp);
    if (r != 0)
        return r;
    if (cli->json) {
        output_json(resp);
        return CLI_EXIT_OK;
    }
    secgroup_rules_print(cli, json_object_get(resp, "rules"));
    return CLI_EXIT_OK;
}

static int
secgroup_rule_delete(Cli *cli, const Args *a)
{
    const char *rule = a->positional[1];
    if (!nb_uuid_is_valid(rule))
        return args_usage_error(a, "'%s' is not a rule id (see 'nimbus secgroup rule list')", rule);
    _cleanup_free_ char *suffix = str_printf("/rules/%s", rule);
    _cleanup_free_ char *path = NULL;
    if (!suffix)
        return CLI_EXIT_API;
    int r = api_path(cli, "secgroups", a->positional[0], suffix, &path);
    if (r != 0)
        return r;
    r = api_call(cli, "DELETE", path, NULL, NULL);
    if (r != 0)
        return r;
    if (!cli->json)
        printf("rule %s deleted\n", rule);
    return CLI_EXIT_OK;
}

static int
secgroup_rule_group(Cli *cli, const Args *a)
{
    return args_usage_error(a, "use 'nimbus secgroup rule add|list|delete'");
}

static const ArgSpec create_specs[] = {{"description", true}};
static const ArgSpec list_specs[] = {{"wide", false}};
static const ArgSpec rule_add_specs[] = {
    {"ingress", false}, {"egress", false}, {"proto", true},
    {"port", true},     {"cidr", true},    {"remote-group", true},
};

static const Command secgroup_commands[] = {
    {"create", "NAME [--description TEXT]",
     "Create a security group (it allows egress anywhere and ingress from its own members).",
     "  --description TEXT     what it is for, at most 255 characters\n", secgroup_create,
     create_specs, ELEMENTSOF(create_specs), 1, 1, NULL},
    {"list", "[--wide]", "List your project's security groups.",
     "  --wide                 also show project, creation time and id\n", secgroup_list,
     list_specs, ELEMENTSOF(list_specs), 0, 0, NULL},
    {"show", "NAME|ID", "Show a security group and its rules.", NULL, secgroup_show, NULL, 0, 1, 1,
     NULL},
    {"delete", "NAME|ID", "Delete a security group that no port uses and no rule names.", NULL,
     secgroup_delete, NULL, 0, 1, 1, NULL},
    {"rule", "add|list|delete ...", "Manage a group's rules (see 'nimbus secgroup rule --help').",
     NULL, secgroup_rule_group, NULL, 0, 0, 0, NULL},
};

static const Command secgroup_rule_commands[] = {
    {"add",
     "GROUP --ingress|--egress [--proto tcp|udp|icmp|any] [--port N|N-M] "
     "[--cidr A.B.C.D/N | --remote-group G]",
     "Allow traffic to (ingress) or from (egress) the group's members; replies always pass.",
     "  --ingress | --egress   to the VMs, or from them\n"
     "  --proto P              tcp, udp, icmp or any (default)\n"
     "  --port N | N-M         tcp/udp destination port or range (default: every port)\n"
     "  --cidr A.B.C.D/N       the other end's addresses (default 0.0.0.0/0)\n"
     "  --remote-group G       the other end: the members of group G of your project\n",
     secgroup_rule_add, rule_add_specs, ELEMENTSOF(rule_add_specs), 1, 1, NULL},
    {"list", "GROUP", "List a group's rules.", NULL, secgroup_rule_list, NULL, 0, 1, 1, NULL},
    {"delete", "GROUP RULE_ID", "Delete a rule of a group.", NULL, secgroup_rule_delete, NULL, 0, 2,
     2, NULL},
};

int
cmd_secgroup(Cli *cli, int argc, char **argv)
{
    if (argc >= 1 && streq(argv[0], "rule"))
        return args_dispatch(cli, "secgroup rule", "Manage a security group's rules.",
                             secgroup_rule_commands, ELEMENTSOF(secgroup_rule_commands), argc - 1,
                             argv + 1);
    return args_dispatch(cli, "secgroup",
                         "Manage security groups: the traffic a project's VMs may send and get.",
                         secgroup_commands, ELEMENTSOF(secgroup_commands), argc, argv);
}
