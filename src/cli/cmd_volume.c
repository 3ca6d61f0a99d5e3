/* nimbus volume create|list|show|delete|resize|attach|detach|snapshot */
#include <stdio.h>
#include <string.h>

#include "../model/validate.h"
#include "../util/cleanup.h"
#include "../util/strutil.h"
#include "../util/uuid.h"
#include "api.h"
#include "args.h"
#include "output.h"
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
    {"snapshot", "snapshot", NULL, false},
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
        {"pool", "pool"},
        {"host", "host"},
        {"from-image", "image"},
        {"from-snapshot", "from_snapshot"},
    };
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

/* ---- nimbus volume snapshot create|list|show|delete VOLUME [NAME] ---- */

static const OutputField vsnap_columns[] = {
    {"NAME", "name", NULL, false},   {"SIZE(GiB)", "size_gib", NULL, false},
    {"STATE", "state", NULL, false}, {"CREATED", "created_at", NULL, false},
    {"ID", "id", NULL, true},
};

static const OutputField vsnap_fields[] = {
    {"id", "id", NULL, false},         {"name", "name", NULL, false},
    {"volume", "volume", NULL, false}, {"project", "project", NULL, false},
    {"pool", "pool", NULL, false},     {"size_gib", "size_gib", NULL, false},
    {"state", "state", NULL, false},   {"created_at", "created_at", NULL, false},
};

static void
vsnap_print(Cli *cli, json_t *obj)
{
    if (cli->json)
        output_json(obj);
    else
        output_show(obj, vsnap_fields, ELEMENTSOF(vsnap_fields));
}

static void
vsnap_print_answer(Cli *cli, json_t *snap, json_t *resp)
{
    vsnap_print(cli, snap);
}

/* /v1/volumes/<volume>/snapshots[/<snapshot>]: a name or id needs no escaping once checked. */
static int
vsnap_path(const Args *a, Cli *cli, const char *snap, char **ret)
{
    if (snap && !nb_name_is_valid(snap) && !nb_uuid_is_valid(snap))
        return args_usage_error(a, "'%s' is not a snapshot's name or id", snap);
    _cleanup_free_ char *vol = NULL;
    int r = api_path(cli, "volumes", a->positional[0], "/snapshots", &vol);
    if (r != 0)
        return r;
    *ret = str_printf("%s%s%s", vol, snap ? "/" : "", snap ? snap : "");
    return *ret ? CLI_EXIT_OK : CLI_EXIT_API;
}

/* A 202 {snapshot, task}; with --wait the snapshot once the task ended ("deleted"). */
static int
vsnap_send(Cli *cli, const Args *a, const char *method, const char *snap, json_t *body,
           bool deleting)
{
    uint64_t wait_s;
    int r = cli_wait_timeout(a, &wait_s);
    _cleanup_free_ char *path = NULL;
    json_auto_t *resp = NULL, *final = NULL, *now = NULL;
    if (r == 0)
        r = vsnap_path(a, cli, snap, &path);
    if (r == 0)
        r = api_call(cli, method, path, body, &resp);
    json_t *obj;
    const char *task_id = NULL;
    if (r == 0)
        r = cli_task_answer(cli, a, resp, "snapshot", vsnap_print_answer, &obj, &task_id);
    if (r != 0 || !task_id)
        return r;
    r = task_wait(cli, task_id, wait_s, &final);
    if (r != 0)
        return r;
    bool failed = streq(api_str(final, "state"), "failed");
    if (deleting && !failed)
        return cli_task_deleted(cli, final);
    _cleanup_free_ char *again = NULL;
    r = vsnap_path(a, cli, api_str(obj, "id"), &again);
    if (r == 0)
        r = api_call(cli, "GET", again, NULL, &now);
    if (r == 0)
        vsnap_print(cli, now);
    return failed ? cli_task_failed(final) : r;
}

static int
vsnap_create(Cli *cli, const Args *a)
{
    json_auto_t *body = json_pack("{s:s}", "name", a->positional[1]);
    return body ? vsnap_send(cli, a, "POST", NULL, body, false) : CLI_EXIT_API;
}

static int
vsnap_delete(Cli *cli, const Args *a)
{
    return vsnap_send(cli, a, "DELETE", a->positional[1], NULL, true);
}

static int
vsnap_list(Cli *cli, const Args *a)
{
    _cleanup_free_ char *path = NULL;
    json_auto_t *resp = NULL;
    int r = vsnap_path(a, cli, NULL, &path);
    if (r == 0)
        r = api_call(cli, "GET", path, NULL, &resp);
    if (r != 0)
        return r;
    if (cli->json)
        output_json(resp);
    else
        output_table(json_object_get(resp, "snapshots"), vsnap_columns, ELEMENTSOF(vsnap_columns),
                     args_has(a, "wide"));
    return CLI_EXIT_OK;
}

static int
vsnap_show(Cli *cli, const Args *a)
{
    _cleanup_free_ char *path = NULL;
    json_auto_t *resp = NULL;
    int r = vsnap_path(a, cli, a->positional[1], &path);
    if (r == 0)
        r = api_call(cli, "GET", path, NULL, &resp);
    if (r == 0)
        vsnap_print(cli, resp);
    return r;
}

static const ArgSpec vsnap_wait_specs[] = {{"wait", false}, {"timeout-wait", true}};
static const ArgSpec vsnap_list_specs[] = {{"wide", false}};

#define VSNAP_WAIT_HELP                                                                            \
    "  --wait                 follow the task until it ends; exit 1 if it failed\n"                \
    "  --timeout-wait SECONDS give up waiting after this long (default 600)\n"

static const Command vsnap_commands[] = {
    {"create", "VOLUME NAME [--wait]",
     "Snapshot a volume (rbd: live; dir pools: a copy, while detached).", VSNAP_WAIT_HELP,
     vsnap_create, vsnap_wait_specs, ELEMENTSOF(vsnap_wait_specs), 2, 2, NULL},
    {"list", "VOLUME [--wide]", "List a volume's snapshots, oldest first.",
     "  --wide                 also show the ids\n", vsnap_list, vsnap_list_specs,
     ELEMENTSOF(vsnap_list_specs), 1, 1, NULL},
    {"show", "VOLUME NAME|ID", "Show a volume snapshot.", NULL, vsnap_show, NULL, 0, 2, 2, NULL},
    {"delete", "VOLUME NAME|ID [--wait]",
     "Delete a volume snapshot (refused while a volume made from it depends on it).",
     VSNAP_WAIT_HELP, vsnap_delete, vsnap_wait_specs, ELEMENTSOF(vsnap_wait_specs), 2, 2, NULL},
};

static const ArgSpec create_specs[] = {
    {"size", true},          {"pool", true},  {"host", true},        {"from-image", true},
    {"from-snapshot", true}, {"wait", false}, {"timeout-wait", true}};
static const ArgSpec list_specs[] = {{"wide", false}, {"vm", true}, {"pool", true}};
static const ArgSpec wait_specs[] = {{"wait", false}, {"timeout-wait", true}};
static const ArgSpec resize_specs[] = {{"size", true}, {"wait", false}, {"timeout-wait", true}};
static const ArgSpec attach_specs[] = {{"bus", true}, {"wait", false}, {"timeout-wait", true}};

#define WAIT_HELP                                                                                  \
    "  --wait                 follow the task until it ends; exit 1 if it failed\n"                \
    "  --timeout-wait SECONDS give up waiting after this long (default 600)\n"

/* Listed in the group's help; cmd_volume hands "volume snapshot ..." to vsnap_commands first. */
static int
volume_snapshot_group(Cli *cli, const Args *a)
{
    return args_usage_error(a, "run 'nimbus volume snapshot help'");
}

static const Command volume_commands[] = {
    {"create",
     "NAME --size GIB [--pool POOL] [--host HOST] [--from-image IMAGE | --from-snapshot SNAP] "
     "[--wait]",
     "Create a volume (empty, a copy of an image, or made from a volume snapshot).",
     "  --size GIB             its size in GiB (1-65536)\n"
     "  --pool POOL            the pool, name or id (default: the default pool)\n"
     "  --host HOST            the host of a volume in a local pool (default: the one with the\n"
     "                         most free space); the VMs it is attached to must run there\n"
     "  --from-image IMAGE     a full copy of this image (name or id), grown to --size\n"
     "  --from-snapshot SNAP   made from this volume snapshot, VOLUME/SNAPSHOT (names or ids)\n"
     "                         or the snapshot's id, in its pool: an RBD clone, or a "
     "copy\n" WAIT_HELP,
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
    {"snapshot", "create|list|show|delete VOLUME [NAME]",
     "Manage a volume's snapshots ('nimbus volume snapshot help').", NULL, volume_snapshot_group,
     NULL, 0, 0, 0, NULL},
};

int
cmd_volume(Cli *cli, int argc, char **argv)
{
    if (argc >= 1 && streq(argv[0], "snapshot"))
        return args_dispatch(cli, "volume snapshot", "Manage a volume's snapshots.", vsnap_commands,
                             ELEMENTSOF(vsnap_commands), argc - 1, argv + 1);
    return args_dispatch(cli, "volume", "Manage volumes (block devices for VMs).", volume_commands,
                         ELEMENTSOF(volume_commands), argc, argv);
}
