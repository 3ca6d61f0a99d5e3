/* nimbus port list|set: the NICs of VMs on networks, with their fixed addresses and bandwidth
 * limits */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "../model/bandwidth.h"
#include "../model/validate.h"
#include "../util/cleanup.h"
#include "../util/strutil.h"
#include "../util/uuid.h"
#include "api.h"
#include "args.h"
#include "resource.h"

static const OutputField port_columns[] = {
    {"MAC", "mac", NULL, false},
    {"IP", "ip", NULL, false},
    {"NETWORK", "network", NULL, false},
    {"VM", "vm_id", NULL, false},
    {"OWNER", "owner", NULL, false},
    {"SLOT", "slot", NULL, false},
    {"SECGROUPS", "secgroups", cli_fmt_strings, false},
    {"IN(Mbit/s)", "net_in_mbit", cli_fmt_mbit, false},
    {"OUT(Mbit/s)", "net_out_mbit", cli_fmt_mbit, false},
    {"CREATED", "created_at", NULL, true},
    {"ID", "id", NULL, true},
};

/* rows[i]["network"] = the name of the network rows[i]["network_id"] (the id when it is not
 * among the networks this user sees). */
static void
port_add_network_names(Cli *cli, json_t *rows)
{
    json_auto_t *resp = NULL;
    if (api_call_full(cli, "GET", "/v1/networks", NULL, true, NULL, &resp) != 0)
        resp = NULL;
    json_t *networks = json_object_get(resp, "networks");
    size_t i;
    json_t *row;
    json_array_foreach (rows, i, row) {
        const char *id = api_str(row, "network_id");
        const char *name = NULL;
        size_t j;
        json_t *n;
        json_array_foreach (networks, j, n) {
            if (id && streq(api_str(n, "id"), id)) {
                name = api_str(n, "name");
                break;
            }
        }
        json_object_set_new(row, "network",
                            name ? json_string(name)
                            : id ? json_string(id)
                                 : json_null());
    }
}

static int
port_list(Cli *cli, const Args *a)
{
    const char *network = args_get(a, "network");
    if (network && !nb_name_is_valid(network) && !nb_uuid_is_valid(network))
        return args_usage_error(a, "--network must be a network's name or id");
    Client *c;
    int r = api_client(cli, &c);
    if (r != 0)
        return r;
    _cleanup_free_ char *query = strdup("");
    if (!query || (network && client_query_add(c, &query, "network", network) != 0))
        return CLI_EXIT_API;
    _cleanup_free_ char *path = str_printf("/v1/ports%s", query);
    if (!path)
        return CLI_EXIT_API;
    json_auto_t *resp = NULL;
    r = api_call(cli, "GET", path, NULL, &resp);
    if (r != 0)
        return r;
    json_t *ports = json_object_get(resp, "ports");
    if (!json_is_array(ports)) {
        fprintf(stderr, "error: INVALID_RESPONSE: no 'ports' list in the answer\n");
        return CLI_EXIT_API;
    }
    if (cli->json) {
        output_json(resp);
        return CLI_EXIT_OK;
    }
    port_add_network_names(cli, ports);
    /* A network's DHCP server on a host holds an address too: owner "dhcp:<host>". */
    size_t i;
    json_t *p;
    json_array_foreach (ports, i, p)
        if (!json_object_get(p, "owner"))
            json_object_set_new(p, "owner", json_string("vm"));
    output_table(ports, port_columns, ELEMENTSOF(port_columns), args_has(a, "wide"));
    return CLI_EXIT_OK;
}

char *
cli_fmt_mbit(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    if (json_is_integer(v) && json_integer_value(v) == 0)
        return strdup("unlimited");
    return output_fmt_plain(obj, key);
}

/* The id of the port arg names: its id, or a MAC of one of the caller's ports. NULL after
 * printing why. */
static char *
port_resolve(Cli *cli, const char *arg)
{
    if (nb_uuid_is_valid(arg))
        return strdup(arg);
    json_auto_t *resp = NULL;
    if (api_call(cli, "GET", "/v1/ports", NULL, &resp) != 0)
        return NULL;
    size_t i;
    json_t *p;
    json_array_foreach (json_object_get(resp, "ports"), i, p) {
        const char *mac = api_str(p, "mac");
        if (mac && strcasecmp(mac, arg) == 0 && api_str(p, "id"))
            return strdup(api_str(p, "id"));
    }
    fprintf(stderr, "error: PORT_NOT_FOUND: no port with id or MAC '%s'\n", arg);
    return NULL;
}

static int
port_set(Cli *cli, const Args *a)
{
    uint64_t in = 0, out = 0;
    bool has_in = args_has(a, "net-in"), has_out = args_has(a, "net-out");
    if (!has_in && !has_out)
        return args_usage_error(a, "give --net-in, --net-out or both");
    int r = args_get_u64(a, "net-in", 0, NB_BANDWIDTH_MBIT_MAX, &in);
    if (r == 0)
        r = args_get_u64(a, "net-out", 0, NB_BANDWIDTH_MBIT_MAX, &out);
    if (r != 0)
        return r;
    json_auto_t *body = json_object();
    if (!body ||
        (has_in && json_object_set_new(body, "net_in_mbit", json_integer((json_int_t)in)) < 0) ||
        (has_out && json_object_set_new(body, "net_out_mbit", json_integer((json_int_t)out)) < 0))
        return CLI_EXIT_API;
    _cleanup_free_ char *id = port_resolve(cli, a->positional[0]);
    if (!id)
        return CLI_EXIT_API;
    _cleanup_free_ char *path = NULL;
    r = api_path(cli, "ports", id, "", &path);
    if (r != 0)
        return r;
    json_auto_t *port = NULL;
    r = api_call(cli, "PATCH", path, body, &port);
    if (r != 0)
        return r;
    if (cli->json) {
        output_json(port);
        return CLI_EXIT_OK;
    }
    static const OutputField fields[] = {
        {"id", "id", NULL, false},
        {"mac", "mac", NULL, false},
        {"ip", "ip", NULL, false},
        {"vm_id", "vm_id", NULL, false},
        {"net_in_mbit", "net_in_mbit", cli_fmt_mbit, false},
        {"net_out_mbit", "net_out_mbit", cli_fmt_mbit, false},
    };
    output_show(port, fields, ELEMENTSOF(fields));
    return CLI_EXIT_OK;
}

static const ArgSpec list_specs[] = {{"network", true}, {"wide", false}};
static const ArgSpec set_specs[] = {{"net-in", true}, {"net-out", true}};

static const Command port_commands[] = {
    {"list", "[--network NAME|ID] [--wide]", "List ports: VMs' NICs and their addresses.",
     "  --network NAME|ID      only the ports of this network\n"
     "  --wide                 also show creation time and id\n",
     port_list, list_specs, ELEMENTSOF(list_specs), 0, 0, NULL},
    {"set", "PORT [--net-in MBIT] [--net-out MBIT]",
     "Change a port's bandwidth limits (live on a running VM).",
     "  PORT           the port's id, or its MAC\n"
     "  --net-in N     limit of what the VM receives on this NIC, Mbit/s (0: unlimited)\n"
     "  --net-out N    limit of what it sends, Mbit/s (0: unlimited)\n",
     port_set, set_specs, ELEMENTSOF(set_specs), 1, 1, NULL},
};

int
cmd_port(Cli *cli, int argc, char **argv)
{
    return args_dispatch(cli, "port",
                         "List ports (the NICs of VMs on networks), change their limits.",
                         port_commands, ELEMENTSOF(port_commands), argc, argv);
}
