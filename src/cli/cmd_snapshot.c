/* nimbus snapshot create|list|show|revert|delete: a VM's snapshots (/v1/vms/{vm}/snapshots) */
#include <stdio.h>
#include <string.h>

#include "../model/validate.h"
#include "../util/cleanup.h"
#include "../util/strutil.h"
#include "../util/uuid.h"
#include "api.h"
#include "args.h"
#include "output.h"

static const OutputField snapshot_columns[] = {
    {"NAME", "name", NULL, false},
    {"STATE", "state", NULL, false},
    {"MEMORY", "memory", NULL, false},
    {"CREATED", "created_at", NULL, false},
    {"DESCRIPTION", "description", NULL, true},
    {"ID", "id", NULL, true},
};

static const OutputField snapshot_fields[] = {
    {"id", "id", NULL, false},         {"name", "name", NULL, false},
    {"vm", "vm", NULL, false},         {"project", "project", NULL, false},
    {"memory", "memory", NULL, false}, {"description", "description", NULL, false},
    {"state", "state", NULL, false},   {"created_at", "created_at", NULL, false},
};

static void
snapshot_print(Cli *cli, json_t *obj)
{
    if (cli->json)
        output_json(obj);
    else
        output_show(obj, snapshot_fields, ELEMENTSOF(snapshot_fields));
}

/* /v1/vms/<vm>/snapshots[/<name>][suffix]. A snapshot's name or id needs no escaping once
 * checked. */
static int
snapshot_path(const Args *a, Cli *cli, const char *snap, const char *suffix, char **ret)
{
    if (snap && !nb_name_is_valid(snap) && !nb_uuid_is_valid(snap))
        return args_usage_error(a, "'%s' is not a snapshot's name or id", snap);
    _cleanup_free_ char *vm = NULL;
    int r = api_path(cli, "vms", a->positional[0], "/snapshots", &vm);
    if (r != 0)
        return r;
    *ret = str_printf("%s%s%s%s", vm, snap ? "/" : "", snap ? snap : "", suffix ? suffix : "");
    return *ret ? CLI_EXIT_OK : CLI_EXIT_API;
}

/* What follows a 202 {snapshot, task}: without --wait, both; with --wait, the snapshot once
 * the task ended ("deleted" for a delete), and the task's error when it failed (exit 1). */
static void
snapshot_print_answer(Cli *cli, json_t *snap, json_t *resp)
{
    snapshot_print(cli, snap);
}

static int
snapshot_finish(Cli *cli, const Args *a, json_t *resp, bool deleting)
{
    uint64_t wait_s;
    int r = cli_wait_timeout(a, &wait_s);
    json_t *snap;
    const char *task_id = NULL;
    if (r == 0)
        r = cli_task_answer(cli, a, resp, "snapshot", snapshot_print_answer, &snap, &task_id);
    if (r != 0 || !task_id)
        return r;
    json_auto_t *final = NULL;
    r = task_wait(cli, task_id, wait_s, &final);
    if (r != 0)
        return r;
    bool failed = streq(api_str(final, "state"), "failed");
    if (deleting && !failed)
        return cli_task_deleted(cli, final);
    _cleanup_free_ char *path = NULL;
    json_auto_t *now = NULL;
    r = snapshot_path(a, cli, api_str(snap, "id"), NULL, &path);
    if (r == 0)
        r = api_call(cli, "GET", path, NULL, &now);
    if (r == 0)
        snapshot_print(cli, now);
    /* A failed create takes its snapshot away: nothing to show is no error then. */
    return failed ? cli_task_failed(final) : r;
}

static int
snapshot_send(Cli *cli, const Args *a, const char *method, const char *snap, const char *suffix,
              json_t *body, bool deleting)
{
    uint64_t wait_s;
    int r = cli_wait_timeout(a, &wait_s);
    if (r != 0)
        return r;
    _cleanup_free_ char *path = NULL;
    r = snapshot_path(a, cli, snap, suffix, &path);
    if (r != 0)
        return r;
    json_auto_t *resp = NULL;
    r = api_call(cli, method, path, body, &resp);
    if (r != 0)
        return r;
    return snapshot_finish(cli, a, resp, deleting);
}

static int
snapshot_create(Cli *cli, const Args *a)
{
    json_auto_t *body =
        json_pack("{s:s, s:b}", "name", a->positional[1], "memory", args_has(a, "memory"));
    if (!body)
        return CLI_EXIT_API;
    const char *d = args_get(a, "description");
    if (d)
        json_object_set_new(body, "description", json_string(d));
    return snapshot_send(cli, a, "POST", NULL, NULL, body, false);
}

static int
snapshot_list(Cli *cli, const Args *a)
{
    _cleanup_free_ char *path = NULL;
    int r = snapshot_path(a, cli, NULL, NULL, &path);
    if (r != 0)
        return r;
    json_auto_t *resp = NULL;
    r = api_call(cli, "GET", path, NULL, &resp);
    if (r != 0)
        return r;
    if (cli->json)
        output_json(resp);
    else
        output_table(json_object_get(resp, "snapshots"), snapshot_columns,
                     ELEMENTSOF(snapshot_columns), args_has(a, "wide"));
    return CLI_EXIT_OK;
}

static int
snapshot_show(Cli *cli, const Args *a)
{
    _cleanup_free_ char *path = NULL;
    int r = snapshot_path(a, cli, a->positional[1], NULL, &path);
    if (r != 0)
        return r;
    json_auto_t *resp = NULL;
    r = api_call(cli, "GET", path, NULL, &resp);
    if (r == 0)
        snapshot_print(cli, resp);
    return r;
}

static int
snapshot_revert(Cli *cli, const Args *a)
{
    json_auto_t *body = json_object();
    return body ? snapshot_send(cli, a, "POST", a->positional[1], "/revert", body, false)
                : CLI_EXIT_API;
}

static int
snapshot_delete(Cli *cli, const Args *a)
{
    return snapshot_send(cli, a, "DELETE", a->positional[1], NULL, NULL, true);
}

static const ArgSpec create_specs[] = {
    {"memory", false}, {"description", true}, {"wait", false}, {"timeout-wait", true}};
static const ArgSpec list_specs[] = {{"wide", false}};
static const ArgSpec wait_specs[] = {{"wait", false}, {"timeout-wait", true}};

#define WAIT_HELP                                                                                  \
    "  --wait                 follow the task until it ends; exit 1 if it failed\n"                \
    "  --timeout-wait SECONDS give up waiting after this long (default 600)\n"

static const Command snapshot_commands[] = {
    {"create", "VM NAME [--memory] [--description TEXT] [--wait]",
     "Snapshot all of a VM's disks at one instant (with its memory: --memory).",
     "  --memory               also its memory (a running VM): a revert resumes the guest where\n"
     "                         it was; without, a revert boots it from the disks\n"
     "  --description TEXT     a note kept with the snapshot (at most 255 bytes)\n" WAIT_HELP,
     snapshot_create, create_specs, ELEMENTSOF(create_specs), 2, 2, NULL},
    {"list", "VM [--wide]", "List a VM's snapshots, oldest first.",
     "  --wide                 also show description and id\n", snapshot_list, list_specs,
     ELEMENTSOF(list_specs), 1, 1, NULL},
    {"show", "VM NAME|ID", "Show a snapshot.", NULL, snapshot_show, NULL, 0, 2, 2, NULL},
    {"revert", "VM NAME|ID [--wait]", "Put a VM's disks (and memory) back as they were.", WAIT_HELP,
     snapshot_revert, wait_specs, ELEMENTSOF(wait_specs), 2, 2, NULL},
    {"delete", "VM NAME|ID [--wait]", "Delete a snapshot (the VM keeps its current state).",
     WAIT_HELP, snapshot_delete, wait_specs, ELEMENTSOF(wait_specs), 2, 2, NULL},
};

int
cmd_snapshot(Cli *cli, int argc, char **argv)
{
    return args_dispatch(cli, "snapshot", "Manage VM snapshots.", snapshot_commands,
                         ELEMENTSOF(snapshot_commands), argc, argv);
}
