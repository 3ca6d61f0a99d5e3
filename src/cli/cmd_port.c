/* nimbus port list: the NICs of VMs on networks, with their fixed addresses */
#include <stdio.h>

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
    {"SLOT", "slot", NULL, false},
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
    output_table(ports, port_columns, ELEMENTSOF(port_columns), args_has(a, "wide"));
    return CLI_EXIT_OK;
}

static const ArgSpec list_specs[] = {{"network", true}, {"wide", false}};

static const Command port_commands[] = {
    {"list", "[--network NAME|ID] [--wide]", "List ports: VMs' NICs and their addresses.",
     "  --network NAME|ID      only the ports of this network\n"
     "  --wide                 also show creation time and id\n",
     port_list, list_specs, ELEMENTSOF(list_specs), 0, 0, NULL},
};

int
cmd_port(Cli *cli, int argc, char **argv)
{
    return args_dispatch(cli, "port", "List ports: the NICs of VMs on networks.", port_commands,
                         ELEMENTSOF(port_commands), argc, argv);
}
