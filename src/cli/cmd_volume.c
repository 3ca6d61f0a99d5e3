/* nimbus volume create|list|show|delete|resize|attach|detach */
#include <stdio.h>
#include <string.h>

#include "../model/validate.h"
#include "../util/cleanup.h"
#include "../util/strutil.h"
#include "../util/uuid.h"
#include "api.h"
#include "args.h"
#include "resource.h"

static const OutputField volume_columns[] = {
    {"NAME", "name", NULL, false},     {"SIZE(GiB)", "size_gib", NULL, false},
    {"STATE", "state", NULL, false},   {"VM", "vm", NULL, false},
    {"TARGET", "target", NULL, false}, {"POOL", "pool", NULL, true},
    {"HOST", "host", NULL, true},      {"ID", "id", NULL, true},
};

static const OutputField volume_fields[] = {
    {"id", "id", NULL, false},
    {"name", "name", NULL, false},
    {"project", "project", NULL, false},
    {"pool", "pool", NULL, false},
    {"host", "host", NULL, false},
    {"size_gib", "size_gib", NULL, false},
    {"format", "format", NULL, false},
    {"state", "state", NULL, false},
    {"vm", "vm", NULL, false},
    {"bus", "bus", NULL, false},
    {"target", "target", NULL, false},
    {"image", "image", NULL, false},
    {"created_at", "created_at", NULL, false},
};

static const Resource volume_resource = {
    .collection = "volumes",
    .columns = volume_columns,
    .n_columns = ELEMENTSOF(volume_columns),
    .fields = volume_fields,
    .n_fields = ELEMENTSOF(volume_fields),
};

static void
volume_print_answer(Cli *cli, json_t *vol, json_t *resp)
{
    resource_print(cli, &volume_resource, vol);
}

/* What follows a 202 {volume, task}: without --wait, both; with --wait, the volume once the task
 * ended ("deleted" for a delete), and the task's error when it failed (exit 1). */
static int
volume_finish(Cli *cli, const Args *a, json_t *resp, bool deleting)
{
    uint64_t wait_s;
    int r = cli_wait_timeout(a, &wait_s);
    json_t *vol;
    const char *task_id = NULL;
    if (r == 0)
        r = cli_task_answer(cli, a, resp, "volume", volume_print_answer, &vol, &task_id);
    if (r != 0 || !task_id)
        return r;
    json_auto_t *final = NULL;
    r = task_wait(cli, task_id, wait_s, &final);
    if (r != 0)
        return r;
    bool failed = streq(api_str(final, "state"), "failed");
    if (deleting && !failed)
        return cli_task_deleted(cli, final);
    json_auto_t *now = NULL;
    r = resource_get(cli, &volume_resource, api_str(vol, "id") ?: a->positional[0], &now);
    if (r == 0)
        resource_print(cli, &volume_resource, now);
    return failed ? cli_task_failed(final) : r;
}

/* POST /v1/volumes/<id><suffix> (or DELETE), then volume_finish. */
static int
volume_change(Cli *cli, const Args *a, const char *method, const char *suffix, json_t *body,
              bool deleting)
{
    uint64_t wait_s;
    int r = cli_wait_timeout(a, &wait_s);
    if (r != 0)
        return r;
    _cleanup_free_ char *path = NULL;
    r = api_path(cli, "volumes", a->positional[0], suffix, &path);
    if (r != 0)
        return r;
    json_auto_t *resp = NULL;
    r = api_call(cli, method, path, body, &resp);
    if (r != 0)
        return r;
    return volume_finish(cli, a, resp, deleting);
}

/* --size GIB: a whole number; its range is the server's to judge. */
static int
volume_size_arg(const Args *a, uint64_t *ret)
{
    const char *s = args_get(a, "size");
    if (!s)
        return args_usage_error(a, "--size is required");
    if (str_to_u64(s, ret) < 0)
        return args_usage_error(a, "--size '%s' is not a whole number of GiB", s);
    return 0;
}

static int
volume_create(Cli *cli, const Args *a)
{
    uint64_t size;
    int r = volume_size_arg(a, &size);
    if (r != 0)
        return r;
    json_auto_t *body =
        json_pack("{s:s, s:I}", "name", a->positional[0], "size_gib", (json_int_t)size);
    if (!body)
        return CLI_EXIT_API;
    static const char *const opts[][2] = {
        {"pool", "pool"}, {"host", "host"}, {"from-image", "image"}};
    for (size_t i = 0; i < ELEMENTSOF(opts); i++) {
        const char *v = args_get(a, opts[i][0]);
        if (v)
            json_object_set_new(body, opts[i][1], json_string(v));
    }
    uint64_t wait_s;
    r = cli_wait_timeout(a, &wait_s);
    if (r != 0)
        return r;
    json_auto_t *resp = NULL;
    r = api_call(cli, "POST", "/v1/volumes", body, &resp);
    if (r != 0)
        return r;
    return volume_finish(cli, a, resp, false);
}

static int
volume_list(Cli *cli, const Args *a)
{
    const char *vm = args_get(a, "vm"), *pool = args_get(a, "pool");
    if (vm && !nb_name_is_valid(vm) && !nb_uuid_is_valid(vm))
        return args_usage_error(a, "--vm '%s' is not a VM's name or id", vm);
    if (pool && !nb_name_is_valid(pool) && !nb_uuid_is_valid(pool))
        return args_usage_error(a, "--pool '%s' is not a pool's name or id", pool);
    _cleanup_free_ char *full =
        str_printf("%s%s%s%s%s%s", vm || pool ? "?" : "", vm ? "vm=" : "", vm ? vm : "",
                   vm && pool ? "&" : "", pool ? "pool=" : "", pool ? pool : "");
    if (!full)
        return CLI_EXIT_API;
    return resource_list(cli, &volume_resource, full, args_has(a, "wide"));
}

static int
volume_show(Cli *cli, const Args *a)
{
    return resource_show(cli, &volume_resource, a->positional[0]);
}

static int
volume_delete(Cli *cli, const Args *a)
{
    return volume_change(cli, a, "DELETE", "", NULL, true);
}

static int
volume_resize(Cli *cli, const Args *a)
{
    uint64_t size;
    int r = volume_size_arg(a, &size);
    if (r != 0)
        return r;
    json_auto_t *body = json_pack("{s:I}", "size_gib", (json_int_t)size);
    return body ? volume_change(cli, a, "POST", "/resize", body, false) : CLI_EXIT_API;
}

static int
volume_attach(Cli *cli, const Args *a)
{
    const char *bus = args_get(a, "bus");
    json_auto_t *body = json_pack("{s:s}", "vm", a->positional[1]);
    if (!body)
        return CLI_EXIT_API;
    if (bus)
        json_object_set_new(body, "bus", json_string(bus));
    return volume_change(cli, a, "POST", "/attach", body, false);
}

static int
volume_detach(Cli *cli, const Args *a)
{
    json_auto_t *body = json_object();
    if (!body)
        return CLI_EXIT_API;
    if (a->n_positional > 1)
        json_object_set_new(body, "vm", json_string(a->positional[1]));
    return volume_change(cli, a, "POST", "/detach", body, false);
}

static const ArgSpec create_specs[] = {{"size", true},  {"pool", true},
                                       {"host", true},  {"from-image", true},
                                       {"wait", false}, {"timeout-wait", true}};
static const ArgSpec list_specs[] = {{"wide", false}, {"vm", true}, {"pool", true}};
static const ArgSpec wait_specs[] = {{"wait", false}, {"timeout-wait", true}};
static const ArgSpec resize_specs[] = {{"size", true}, {"wait", false}, {"timeout-wait", true}};
static const ArgSpec attach_specs[] = {{"bus", true}, {"wait", false}, {"timeout-wait", true}};

#define WAIT_HELP                                                                                  \
    "  --wait                 follow the task until it ends; exit 1 if it failed\n"                \
    "  --timeout-wait SECONDS give up waiting after this long (default 600)\n"

static const Command volume_commands[] = {
    {"create", "NAME --size GIB [--pool POOL] [--host HOST] [--from-image IMAGE] [--wait]",
     "Create a volume (empty, or a copy of an image).",
     "  --size GIB             its size in GiB (1-65536)\n"
     "  --pool POOL            the pool, name or id (default: the default pool)\n"
     "  --host HOST            the host of a volume in a local pool (default: the one with the\n"
     "                         most free space); the VMs it is attached to must run there\n"
     "  --from-image IMAGE     a full copy of this image (name or id), grown to --size\n" WAIT_HELP,
     volume_create, create_specs, ELEMENTSOF(create_specs), 1, 1, NULL},
    {"list", "[--vm VM] [--pool POOL] [--wide]", "List volumes, oldest first.",
     "  --vm VM                only the volumes attached to this VM\n"
     "  --pool POOL            only the volumes in this pool\n"
     "  --wide                 also show pool, host and id\n",
     volume_list, list_specs, ELEMENTSOF(list_specs), 0, 0, NULL},
    {"show", "NAME|ID", "Show a volume.", NULL, volume_show, NULL, 0, 1, 1, NULL},
    {"delete", "NAME|ID [--wait]", "Delete a volume that is not attached, and its data.", WAIT_HELP,
     volume_delete, wait_specs, ELEMENTSOF(wait_specs), 1, 1, NULL},
    {"resize", "NAME|ID --size GIB [--wait]", "Grow a volume (online when a running VM has it).",
     "  --size GIB             the new size in GiB: more than now\n" WAIT_HELP, volume_resize,
     resize_specs, ELEMENTSOF(resize_specs), 1, 1, NULL},
    {"attach", "NAME|ID VM [--bus virtio|scsi] [--wait]",
     "Attach a volume to a VM (hot-plugged when it runs).",
     "  --bus virtio|scsi      the disk's bus (default virtio: vdb, vdc, ...; scsi: "
     "sdX)\n" WAIT_HELP,
     volume_attach, attach_specs, ELEMENTSOF(attach_specs), 2, 2, NULL},
    {"detach", "NAME|ID [VM] [--wait]",
     "Detach a volume from its VM (the guest is asked to release it).",
     "  VM                     refuse unless the volume is attached to this VM\n" WAIT_HELP,
     volume_detach, wait_specs, ELEMENTSOF(wait_specs), 1, 2, NULL},
};

int
cmd_volume(Cli *cli, int argc, char **argv)
{
    return args_dispatch(cli, "volume", "Manage volumes (block devices for VMs).", volume_commands,
                         ELEMENTSOF(volume_commands), argc, argv);
}
