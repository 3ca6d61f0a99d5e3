/* nimbus backup create|list|show|delete|restore: VM backups (/v1/backups) */
#include <stdio.h>
#include <string.h>

#include "../model/validate.h"
#include "../util/cleanup.h"
#include "../util/strutil.h"
#include "../util/uuid.h"
#include "api.h"
#include "args.h"
#include "output.h"

static const OutputField backup_columns[] = {
    {"ID", "id", NULL, false},
    {"VM", "vm_name", NULL, false},
    {"KIND", "kind", NULL, false},
    {"STATE", "state", NULL, false},
    {"CREATED", "created_at", NULL, false},
    {"MB/S", "mbps", NULL, true},
    {"DATA", "data_bytes", NULL, true},
    {"PARENT", "parent", NULL, true},
};

static const OutputField backup_fields[] = {
    {"id", "id", NULL, false},
    {"vm", "vm", NULL, false},
    {"vm_name", "vm_name", NULL, false},
    {"project", "project", NULL, false},
    {"pool", "pool", NULL, false},
    {"host", "host", NULL, false},
    {"kind", "kind", NULL, false},
    {"parent", "parent", NULL, false},
    {"checkpoint", "checkpoint", NULL, false},
    {"state", "state", NULL, false},
    {"size_bytes", "size_bytes", NULL, false},
    {"data_bytes", "data_bytes", NULL, false},
    {"mbps", "mbps", NULL, false},
    {"created_at", "created_at", NULL, false},
    {"finished_at", "finished_at", NULL, false},
};

static void
backup_print(Cli *cli, json_t *obj)
{
    if (cli->json)
        output_json(obj);
    else
        output_show(obj, backup_fields, ELEMENTSOF(backup_fields));
}

static char *
backup_path(const char *id, const char *suffix)
{
    return str_printf("/v1/backups/%s%s", id, suffix ? suffix : "");
}

static int
backup_check_id(const Args *a, const char *id)
{
    if (!nb_uuid_is_valid(id))
        return args_usage_error(a, "'%s' is not a backup id", id);
    return 0;
}

/* The restore's new volume or VM, when the answer has one (with its collection). */
static json_t *
backup_restored(json_t *resp, const char **ret_coll)
{
    json_t *vm = json_object_get(resp, "vm");
    *ret_coll = json_is_object(vm) ? "vms" : "volumes";
    return json_is_object(vm) ? vm : json_object_get(resp, "volume");
}

static void
backup_print_answer(Cli *cli, json_t *b, json_t *resp)
{
    const char *coll;
    json_t *vol = backup_restored(resp, &coll);
    backup_print(cli, b);
    if (json_is_object(vol))
        printf("\n%s %s: %s\n", streq(coll, "vms") ? "vm" : "volume", api_str(vol, "id") ?: "?",
               api_str(vol, "name") ?: "?");
}

/* What follows a 202 {backup, task[, volume]}: without --wait, the answer; with --wait, the
 * backup (or the restored volume) once the task ended, and the task's error when it failed. */
static int
backup_finish(Cli *cli, const Args *a, json_t *resp, const char *what)
{
    uint64_t wait_s;
    int r = cli_wait_timeout(a, &wait_s);
    json_t *b;
    const char *task_id = NULL, *coll;
    json_t *vol = backup_restored(resp, &coll);
    if (r == 0)
        r = cli_task_answer(cli, a, resp, "backup", backup_print_answer, &b, &task_id);
    if (r != 0 || !task_id)
        return r;
    json_auto_t *final = NULL;
    r = task_wait(cli, task_id, wait_s, &final);
    if (r != 0)
        return r;
    if (streq(api_str(final, "state"), "failed"))
        return cli_task_failed(final);
    if (streq(what, "delete"))
        return cli_task_deleted(cli, final);
    _cleanup_free_ char *path = json_is_object(vol)
                                    ? str_printf("/v1/%s/%s", coll, api_str(vol, "id") ?: "")
                                    : backup_path(api_str(b, "id") ?: "", NULL);
    json_auto_t *now = NULL;
    if (!path)
        return CLI_EXIT_API;
    r = api_call(cli, "GET", path, NULL, &now);
    if (r == 0) {
        if (cli->json || !json_is_object(vol))
            backup_print(cli, now);
        else
            printf("%s %s (%s): %s\n", streq(coll, "vms") ? "vm" : "volume",
                   api_str(now, "name") ?: "?", api_str(now, "id") ?: "?",
                   api_str(now, "state") ?: "?");
    }
    return r;
}

static int
backup_create(Cli *cli, const Args *a)
{
    json_auto_t *body =
        json_pack("{s:s, s:b}", "vm", a->positional[0], "incremental", args_has(a, "incremental"));
    if (!body)
        return CLI_EXIT_API;
    const char *pool = args_get(a, "pool");
    if (pool)
        json_object_set_new(body, "pool", json_string(pool));
    json_auto_t *resp = NULL;
    int r = api_call(cli, "POST", "/v1/backups", body, &resp);
    return r != 0 ? r : backup_finish(cli, a, resp, "create");
}

static int
backup_list(Cli *cli, const Args *a)
{
    _cleanup_free_ char *path = NULL;
    if (a->n_positional > 0) {
        const char *vm = a->positional[0];
        if (!nb_name_is_valid(vm) && !nb_uuid_is_valid(vm))
            return args_usage_error(a, "'%s' is not a VM's name or id", vm);
        path = str_printf("/v1/backups?vm=%s", vm);
    } else {
        path = strdup("/v1/backups");
    }
    if (!path)
        return CLI_EXIT_API;
    json_auto_t *resp = NULL;
    int r = api_call(cli, "GET", path, NULL, &resp);
    if (r != 0)
        return r;
    if (cli->json)
        output_json(resp);
    else
        output_table(json_object_get(resp, "backups"), backup_columns, ELEMENTSOF(backup_columns),
                     args_has(a, "wide"));
    return CLI_EXIT_OK;
}

static int
backup_show(Cli *cli, const Args *a)
{
    int r = backup_check_id(a, a->positional[0]);
    if (r != 0)
        return r;
    _cleanup_free_ char *path = backup_path(a->positional[0], NULL);
    json_auto_t *resp = NULL;
    r = path ? api_call(cli, "GET", path, NULL, &resp) : CLI_EXIT_API;
    if (r == 0)
        backup_print(cli, resp);
    return r;
}

static int
backup_delete(Cli *cli, const Args *a)
{
    int r = backup_check_id(a, a->positional[0]);
    if (r != 0)
        return r;
    _cleanup_free_ char *path = backup_path(a->positional[0], NULL);
    json_auto_t *resp = NULL;
    r = path ? api_call(cli, "DELETE", path, NULL, &resp) : CLI_EXIT_API;
    return r != 0 ? r : backup_finish(cli, a, resp, "delete");
}

static int
backup_restore(Cli *cli, const Args *a)
{
    int r = backup_check_id(a, a->positional[0]);
    if (r != 0)
        return r;
    const char *as = args_get(a, "as"), *as_vm = args_get(a, "as-vm");
    if (!as == !as_vm)
        return args_usage_error(a, "give --as NAME (a volume) or --as-vm NAME (a VM)");
    json_auto_t *body = json_pack("{s:s}", "name", as ? as : as_vm);
    const char *pool = args_get(a, "pool"), *flavor = args_get(a, "flavor"),
               *image = args_get(a, "image");
    if (as_vm && pool)
        return args_usage_error(a, "--pool is for --as (a VM's disk goes to the default pool)");
    if (as && (flavor || image))
        return args_usage_error(a, "--flavor and --image are for --as-vm");
    if (body && pool)
        json_object_set_new(body, "pool", json_string(pool));
    if (body && as_vm) {
        json_object_set_new(body, "as_vm", json_true());
        if (flavor)
            json_object_set_new(body, "flavor", json_string(flavor));
        if (image)
            json_object_set_new(body, "image", json_string(image));
    }
    _cleanup_free_ char *path = backup_path(a->positional[0], "/restore");
    json_auto_t *resp = NULL;
    r = path && body ? api_call(cli, "POST", path, body, &resp) : CLI_EXIT_API;
    return r != 0 ? r : backup_finish(cli, a, resp, "restore");
}

static const ArgSpec create_specs[] = {
    {"incremental", false}, {"pool", true}, {"wait", false}, {"timeout-wait", true}};
static const ArgSpec list_specs[] = {{"wide", false}};
static const ArgSpec wait_specs[] = {{"wait", false}, {"timeout-wait", true}};
static const ArgSpec restore_specs[] = {{"as", true},          {"as-vm", true}, {"pool", true},
                                        {"flavor", true},      {"image", true}, {"wait", false},
                                        {"timeout-wait", true}};

#define WAIT_HELP                                                                                  \
    "  --wait                 follow the task until it ends; exit 1 if it failed\n"                \
    "  --timeout-wait SECONDS give up waiting after this long (default 600)\n"

static const Command backup_commands[] = {
    {"create", "VM [--incremental] [--pool P] [--wait]",
     "Back up a VM's root disk (running: libvirt's backup job; stopped: a full copy).",
     "  --incremental          only what changed since the VM's last backup with a checkpoint\n"
     "                         (a running VM)\n"
     "  --pool P               a dir pool the VM's host has (default: the default "
     "pool)\n" WAIT_HELP,
     backup_create, create_specs, ELEMENTSOF(create_specs), 1, 1, NULL},
    {"list", "[VM] [--wide]", "List backups (of a VM), oldest first.",
     "  --wide                 also show MB/s, bytes copied and the parent backup\n", backup_list,
     list_specs, ELEMENTSOF(list_specs), 0, 1, NULL},
    {"show", "ID", "Show a backup.", NULL, backup_show, NULL, 0, 1, 1, NULL},
    {"delete", "ID [--wait]", "Delete a backup (not one a later incremental builds on).", WAIT_HELP,
     backup_delete, wait_specs, ELEMENTSOF(wait_specs), 1, 1, NULL},
    {"restore", "ID --as NAME [--pool P] | --as-vm NAME [--flavor F] [--image I] [--wait]",
     "Restore a backup as a new volume (or VM) holding the disk as it was.",
     "  --as NAME              the new volume's name\n"
     "  --pool P               a dir pool on the backup's host (default: the backup's)\n"
     "  --as-vm NAME           a new VM on the backup's host, its root disk the backup's\n"
     "  --flavor F, --image I  the new VM's (default: the backed-up VM's, if it "
     "exists)\n" WAIT_HELP,
     backup_restore, restore_specs, ELEMENTSOF(restore_specs), 1, 1, NULL},
};

int
cmd_backup(Cli *cli, int argc, char **argv)
{
    return args_dispatch(cli, "backup", "Manage VM backups.", backup_commands,
                         ELEMENTSOF(backup_commands), argc, argv);
}
