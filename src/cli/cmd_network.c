/* nimbus network create|list|show|delete: a project's networks (or shared ones) */
#include <stdio.h>
#include <string.h>

#include "../model/network.h"
#include "../model/validate.h"
#include "../util/cleanup.h"
#include "../util/strutil.h"
#include "api.h"
#include "args.h"
#include "resource.h"

static const OutputField network_columns[] = {
    {"NAME", "name", NULL, false},      {"TYPE", "type", NULL, false},
    {"CIDR", "cidr", NULL, false},      {"GATEWAY", "gateway", NULL, false},
    {"DHCP", "dhcp", NULL, false},      {"MTU", "mtu", NULL, true},
    {"SHARED", "shared", NULL, true},   {"DEFAULT", "default", NULL, true},
    {"PROJECT", "project", NULL, true}, {"CREATED", "created_at", NULL, true},
    {"ID", "id", NULL, true},
};

static const OutputField network_fields[] = {
    {"id", "id", NULL, false},           {"name", "name", NULL, false},
    {"project", "project", NULL, false}, {"type", "type", NULL, false},
    {"cidr", "cidr", NULL, false},       {"gateway", "gateway", NULL, false},
    {"dhcp", "dhcp", NULL, false},       {"dns", "dns", cli_fmt_strings, false},
    {"mtu", "mtu", NULL, false},         {"shared", "shared", NULL, false},
    {"default", "default", NULL, false}, {"created_at", "created_at", NULL, false},
    /* vni, vlan, bridge, parent: shown after these when the network has them */
};

static const Resource network_resource = {
    .collection = "networks",
    .columns = network_columns,
    .n_columns = ELEMENTSOF(network_columns),
    .fields = network_fields,
    .n_fields = ELEMENTSOF(network_fields),
};

char *
cli_fmt_strings(json_t *obj, const char *key)
{
    json_t *arr = json_object_get(obj, key);
    if (!json_is_array(arr))
        return output_fmt_plain(obj, key);
    if (json_array_size(arr) == 0)
        return strdup("-");
    _cleanup_free_ char *joined = strdup("");
    size_t i;
    json_t *v;
    json_array_foreach (arr, i, v) {
        const char *s = json_string_value(v);
        char *next = joined ? str_printf("%s%s%s", joined, i ? ", " : "", s ? s : "?") : NULL;
        free(joined);
        joined = next;
    }
    return joined ? output_sanitize(joined) : NULL;
}

bool
cli_ipv4_is_valid(const char *s)
{
    uint32_t ip;
    return s && ipv4_parse(s, &ip) == 0 && ip != 0;
}

/* Which options each type needs, and which only it may have. */
static const struct {
    const char *opt;
    NetworkType type;
} network_type_opts[] = {
    {"vni", NETWORK_TYPE_VXLAN},
    {"vlan", NETWORK_TYPE_VLAN},
    {"parent", NETWORK_TYPE_VLAN},
    {"bridge", NETWORK_TYPE_BRIDGED},
};

static int
network_add_dns(const Args *a, json_t *body)
{
    const char *dns[NETWORK_DNS_MAX + 1];
    size_t n = args_get_all(a, "dns", dns, ELEMENTSOF(dns));
    if (n == 0)
        return 0;
    if (n > NETWORK_DNS_MAX)
        return args_usage_error(a, "at most %d --dns servers", NETWORK_DNS_MAX);
    json_t *arr = json_array();
    if (!arr || json_object_set_new(body, "dns", arr) < 0)
        return CLI_EXIT_API;
    for (size_t i = 0; i < n; i++) {
        if (!cli_ipv4_is_valid(dns[i]))
            return args_usage_error(a, "--dns '%s' is not an IPv4 address", dns[i]);
        json_array_append_new(arr, json_string(dns[i]));
    }
    return 0;
}

static int
network_create(Cli *cli, const Args *a)
{
    const char *name = a->positional[0], *cidr = args_get(a, "cidr");
    const char *type_s = args_get(a, "type"), *gateway = args_get(a, "gateway");
    const char *dhcp = args_get(a, "dhcp");
    if (!nb_name_is_valid(name))
        return args_usage_error(a,
                                "invalid name '%s': use [A-Za-z0-9][A-Za-z0-9._-]{0,62}, "
                                "not a UUID",
                                name);
    if (!cidr)
        return args_usage_error(a, "--cidr is required");
    uint32_t net;
    unsigned prefix;
    if (cidr_parse(cidr, &net, &prefix) < 0)
        return args_usage_error(a, "--cidr '%s' is not a network a.b.c.d/N with its host bits zero",
                                cidr);
    if (prefix < NETWORK_PREFIX_MIN || prefix > NETWORK_PREFIX_MAX)
        return args_usage_error(a, "--cidr: the prefix must be from /%d to /%d", NETWORK_PREFIX_MIN,
                                NETWORK_PREFIX_MAX);
    NetworkType type = type_s ? network_type_from_string(type_s) : NETWORK_TYPE_NAT;
    if (type == _NETWORK_TYPE_INVALID)
        return args_usage_error(a, "--type must be nat, isolated, vxlan, bridged or vlan");
    if (gateway && !streq(gateway, "none") && !cli_ipv4_is_valid(gateway))
        return args_usage_error(a, "--gateway must be an IPv4 address or 'none'");
    if (dhcp && !streq(dhcp, "on") && !streq(dhcp, "off"))
        return args_usage_error(a, "--dhcp must be on or off");
    for (size_t i = 0; i < ELEMENTSOF(network_type_opts); i++) {
        bool has = args_has(a, network_type_opts[i].opt);
        const char *owner = network_type_to_string(network_type_opts[i].type);
        if (has && type != network_type_opts[i].type)
            return args_usage_error(a, "--%s is only for --type %s", network_type_opts[i].opt,
                                    owner);
        if (!has && type == network_type_opts[i].type)
            return args_usage_error(a, "--type %s needs --%s", owner, network_type_opts[i].opt);
    }
    static const char *const ifname_opts[] = {"bridge", "parent"};
    for (size_t i = 0; i < ELEMENTSOF(ifname_opts); i++) {
        const char *v = args_get(a, ifname_opts[i]);
        if (v && !network_ifname_is_valid(v))
            return args_usage_error(a,
                                    "--%s '%s' is not an interface name: a letter or digit, then "
                                    "up to 14 letters, digits, '_', '.' or '-'",
                                    ifname_opts[i], v);
    }
    uint64_t mtu = 0, vni = 0, vlan = 0;
    int r;
    if ((r = args_get_u64(a, "mtu", NETWORK_MTU_MIN, NETWORK_MTU_MAX, &mtu)) != 0 ||
        (r = args_get_u64(a, "vni", 1, NETWORK_VNI_MAX, &vni)) != 0 ||
        (r = args_get_u64(a, "vlan", 1, NETWORK_VLAN_MAX, &vlan)) != 0)
        return r;

    json_auto_t *body = json_pack("{s:s, s:s, s:s}", "name", name, "type",
                                  network_type_to_string(type), "cidr", cidr);
    if (!body)
        return CLI_EXIT_API;
    if (gateway)
        json_object_set_new(body, "gateway", json_string(gateway));
    if (dhcp)
        json_object_set_new(body, "dhcp", json_boolean(streq(dhcp, "on")));
    r = network_add_dns(a, body);
    if (r != 0)
        return r;
    if (mtu)
        json_object_set_new(body, "mtu", json_integer((json_int_t)mtu));
    if (vni)
        json_object_set_new(body, "vni", json_integer((json_int_t)vni));
    if (vlan)
        json_object_set_new(body, "vlan", json_integer((json_int_t)vlan));
    if (args_has(a, "bridge"))
        json_object_set_new(body, "bridge", json_string(args_get(a, "bridge")));
    if (args_has(a, "parent"))
        json_object_set_new(body, "parent", json_string(args_get(a, "parent")));
    if (args_has(a, "shared"))
        json_object_set_new(body, "shared", json_true());

    json_auto_t *network = NULL;
    r = api_call(cli, "POST", "/v1/networks", body, &network);
    if (r != 0)
        return r;
    if (!json_is_object(network)) {
        fprintf(stderr, "error: INVALID_RESPONSE: expected a network\n");
        return CLI_EXIT_API;
    }
    resource_print(cli, &network_resource, network);
    return CLI_EXIT_OK;
}

static int
network_list(Cli *cli, const Args *a)
{
    return resource_list(cli, &network_resource, "", args_has(a, "wide"));
}

static int
network_show(Cli *cli, const Args *a)
{
    return resource_show(cli, &network_resource, a->positional[0]);
}

static int
network_delete(Cli *cli, const Args *a)
{
    return resource_delete(cli, &network_resource, a->positional[0]);
}

static const ArgSpec create_specs[] = {
    {"cidr", true},      {"type", true},   {"gateway", true}, {"dhcp", true},
    {"dns", true, true}, {"mtu", true},    {"vni", true},     {"vlan", true},
    {"bridge", true},    {"parent", true}, {"shared", false},
};
static const ArgSpec list_specs[] = {{"wide", false}};

static const Command network_commands[] = {
    {"create",
     "NAME --cidr CIDR [--type nat|isolated|vxlan|bridged|vlan] [--gateway IP|none] "
     "[--dhcp on|off] [--dns IP]... [--mtu N] [--vni N] [--vlan N] [--bridge IF] [--parent IF] "
     "[--shared]",
     "Create a network.",
     "  --cidr CIDR            its IPv4 subnet, a.b.c.d/N with N from 8 to 30\n"
     "  --type TYPE            nat (default): a private subnet with NAT to the outside;\n"
     "                         isolated: no route out; vxlan: across hosts (needs --vni);\n"
     "                         bridged: an existing host bridge (admin, needs --bridge);\n"
     "                         vlan: a VLAN of a host NIC (admin, needs --vlan, --parent)\n"
     "  --gateway IP|none      the gateway (default: the first address); 'none' only for an\n"
     "                         isolated network without DHCP\n"
     "  --dhcp on|off          serve the guests' fixed addresses by DHCP too (default on)\n"
     "  --dns IP               a DNS server for the guests; repeatable, at most 3\n"
     "  --mtu N                the guests' MTU, 576-9000 (default 1500, vxlan 1450)\n"
     "  --vni N                vxlan: the VXLAN id, 1-16777215\n"
     "  --vlan N               vlan: the VLAN id, 1-4094\n"
     "  --bridge IF            bridged: the host's bridge\n"
     "  --parent IF            vlan: the host NIC that carries the VLAN\n"
     "  --shared               usable by every project (admin)\n",
     network_create, create_specs, ELEMENTSOF(create_specs), 1, 1, NULL},
    {"list", "[--wide]", "List the networks you can use (your project's and shared ones).",
     "  --wide                 also show MTU, shared, default, project, creation time and id\n",
     network_list, list_specs, ELEMENTSOF(list_specs), 0, 0, NULL},
    {"show", "NAME|ID", "Show a network.", NULL, network_show, NULL, 0, 1, 1, NULL},
    {"delete", "NAME|ID", "Delete a network that no VM uses.", NULL, network_delete, NULL, 0, 1, 1,
     NULL},
};

int
cmd_network(Cli *cli, int argc, char **argv)
{
    return args_dispatch(cli, "network", "Manage networks: the subnets VMs' NICs sit on.",
                         network_commands, ELEMENTSOF(network_commands), argc, argv);
}
