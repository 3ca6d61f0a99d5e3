/* nimbus flavor create|list|show|delete */
#include <stdio.h>

#include "../model/bandwidth.h"
#include "../model/flavor.h"
#include "../model/validate.h"
#include "../util/cleanup.h"
#include "api.h"
#include "args.h"
#include "resource.h"

static const OutputField flavor_columns[] = {
    {"NAME", "name", NULL, false},
    {"VCPUS", "vcpus", NULL, false},
    {"RAM(MiB)", "ram_mib", NULL, false},
    {"DISK(GiB)", "disk_gib", NULL, false},
    {"IN(Mbit/s)", "net_in_mbit", cli_fmt_mbit, false},
    {"OUT(Mbit/s)", "net_out_mbit", cli_fmt_mbit, false},
    {"DISK-IOPS", "disk_iops", cli_fmt_mbit, false},
    {"DISK(MB/s)", "disk_mbps", cli_fmt_mbit, false},
    {"CREATED", "created_at", NULL, true},
    {"ID", "id", NULL, true},
};

static const OutputField flavor_fields[] = {
    {"id", "id", NULL, false},
    {"name", "name", NULL, false},
    {"vcpus", "vcpus", NULL, false},
    {"ram_mib", "ram_mib", NULL, false},
    {"disk_gib", "disk_gib", NULL, false},
    {"net_in_mbit", "net_in_mbit", cli_fmt_mbit, false},
    {"net_out_mbit", "net_out_mbit", cli_fmt_mbit, false},
    {"disk_iops", "disk_iops", cli_fmt_mbit, false},
    {"disk_mbps", "disk_mbps", cli_fmt_mbit, false},
    {"created_at", "created_at", NULL, false},
};

static const Resource flavor_resource = {
    .collection = "flavors",
    .columns = flavor_columns,
    .n_columns = ELEMENTSOF(flavor_columns),
    .fields = flavor_fields,
    .n_fields = ELEMENTSOF(flavor_fields),
};

static int
flavor_create(Cli *cli, const Args *a)
{
    const char *name = a->positional[0];
    uint64_t vcpus = 0, ram = 0, disk = 0, net_in = 0, net_out = 0, iops = 0, mbps = 0;
    if (!nb_name_is_valid(name))
        return args_usage_error(a,
                                "invalid name '%s': use [A-Za-z0-9][A-Za-z0-9._-]{0,62}, "
                                "not a UUID",
                                name);
    if (!args_has(a, "vcpus") || !args_has(a, "ram") || !args_has(a, "disk"))
        return args_usage_error(a, "--vcpus, --ram and --disk are required");
    int r = args_get_u64(a, "vcpus", 1, NB_FLAVOR_VCPUS_MAX, &vcpus);
    if (r == 0)
        r = args_get_u64(a, "ram", NB_FLAVOR_RAM_MIB_MIN, NB_FLAVOR_RAM_MIB_MAX, &ram);
    if (r == 0)
        r = args_get_u64(a, "disk", 1, NB_FLAVOR_DISK_GIB_MAX, &disk);
    if (r == 0)
        r = args_get_u64(a, "net-in", 0, NB_BANDWIDTH_MBIT_MAX, &net_in);
    if (r == 0)
        r = args_get_u64(a, "net-out", 0, NB_BANDWIDTH_MBIT_MAX, &net_out);
    if (r == 0)
        r = args_get_u64(a, "disk-iops", 0, NB_FLAVOR_DISK_IOPS_MAX, &iops);
    if (r == 0)
        r = args_get_u64(a, "disk-mbps", 0, NB_FLAVOR_DISK_MBPS_MAX, &mbps);
    if (r != 0)
        return r;

    json_auto_t *body =
        json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "name", name, "vcpus",
                  (json_int_t)vcpus, "ram_mib", (json_int_t)ram, "disk_gib", (json_int_t)disk,
                  "net_in_mbit", (json_int_t)net_in, "net_out_mbit", (json_int_t)net_out,
                  "disk_iops", (json_int_t)iops, "disk_mbps", (json_int_t)mbps);
    json_auto_t *flavor = NULL;
    if (!body)
        return CLI_EXIT_API;
    r = api_call(cli, "POST", "/v1/flavors", body, &flavor);
    if (r != 0)
        return r;
    resource_print(cli, &flavor_resource, flavor);
    return CLI_EXIT_OK;
}

static int
flavor_list(Cli *cli, const Args *a)
{
    return resource_list(cli, &flavor_resource, "", args_has(a, "wide"));
}

static int
flavor_show(Cli *cli, const Args *a)
{
    return resource_show(cli, &flavor_resource, a->positional[0]);
}

static int
flavor_delete(Cli *cli, const Args *a)
{
    return resource_delete(cli, &flavor_resource, a->positional[0]);
}

static const ArgSpec create_specs[] = {{"vcpus", true},    {"ram", true},     {"disk", true},
                                       {"net-in", true},   {"net-out", true}, {"disk-iops", true},
                                       {"disk-mbps", true}};
static const ArgSpec list_specs[] = {{"wide", false}};

static const Command flavor_commands[] = {
    {"create",
     "NAME --vcpus N --ram MIB --disk GIB [--net-in MBIT] [--net-out MBIT] [--disk-iops N] "
     "[--disk-mbps N]",
     "Create a flavor (a VM size).",
     "  --vcpus N     virtual CPUs\n"
     "  --ram MIB     memory in MiB\n"
     "  --disk GIB    root disk size in GiB\n"
     "  --net-in N    each NIC's limit of what the VM receives, Mbit/s (0: unlimited, the "
     "default)\n"
     "  --net-out N   each NIC's limit of what the VM sends, Mbit/s (0: unlimited)\n"
     "  --disk-iops N each disk's limit of reads and writes per second, 1 to 1000000 (0: "
     "unlimited, the default)\n"
     "  --disk-mbps N each disk's limit of what is read and written, MB/s of 10^6 bytes, 1 to "
     "100000 (0: unlimited)\n",
     flavor_create, create_specs, ELEMENTSOF(create_specs), 1, 1, NULL},
    {"list", "[--wide]", "List flavors.", "  --wide        also show the creation time and id\n",
     flavor_list, list_specs, ELEMENTSOF(list_specs), 0, 0, NULL},
    {"show", "NAME|ID", "Show a flavor.", NULL, flavor_show, NULL, 0, 1, 1, NULL},
    {"delete", "NAME|ID", "Delete a flavor that no VM uses.", NULL, flavor_delete, NULL, 0, 1, 1,
     NULL},
};

int
cmd_flavor(Cli *cli, int argc, char **argv)
{
    return args_dispatch(cli, "flavor", "Manage flavors: vCPUs, memory and disk of a VM.",
                         flavor_commands, ELEMENTSOF(flavor_commands), argc, argv);
}
