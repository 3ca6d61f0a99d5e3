/* /v1/backups: a project's VM backups (another project's is not found). Reads come from the
 * store; every change is a task queued by core (backup_ops.h) and answered 202 with the backup
 * as it is now and the task. */
#include <string.h>

#include "../core/backup_ops.h"
#include "api.h"

static void
reply_backup_and_task(HttpRequest *r, const Backup *b, Task *task)
{
    http_reply_json(
        r, 202, json_pack("{s:o, s:o}", "backup", backup_to_json(b), "task", task_to_json(task)));
    task_clear(task);
}

/* ?vm= (id or name, the caller's; a deleted VM's backups: by its id) narrows the list. */
void
api_backups_list(HttpRequest *r, void *ctx)
{
    Core *core = ctx;
    _cleanup_error_ NbError *err = NULL;
    const char *qvm = http_request_query(r, "vm");
    char vm_id[NB_UUID_STRLEN] = "";
    if (qvm) {
        Vm vm;
        if (vm_store_get(core->store, api_lookup_scope(r, qvm), qvm, &vm, &err) == 0) {
            memcpy(vm_id, vm.id, sizeof(vm_id));
            vm_clear(&vm);
        } else if (nb_uuid_is_valid(qvm)) {
            nb_error_free(TAKE_PTR(err));
            snprintf(vm_id, sizeof(vm_id), "%s", qvm);
        } else {
            return http_reply_nb_error(r, err);
        }
    }
    Backup *list = NULL;
    size_t n = 0;
    if (backup_store_list(core->store, api_scope(r), vm_id[0] ? vm_id : NULL, &list, &n, &err) < 0)
        return http_reply_nb_error(r, err);
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, backup_to_json(&list[i]));
    backup_list_free(list, n);
    http_reply_json(r, 200, json_pack("{s:o}", "backups", arr));
}

void
api_backups_create(HttpRequest *r, void *ctx)
{
    _cleanup_error_ NbError *err = NULL;
    Backup b;
    Task task;
    if (backup_ops_create(ctx, http_request_principal(r), http_request_json(r), &b, &task, &err) <
        0)
        return http_reply_nb_error(r, err);
    reply_backup_and_task(r, &b, &task);
}

void
api_backups_get(HttpRequest *r, void *ctx)
{
    Core *core = ctx;
    _cleanup_error_ NbError *err = NULL;
    Backup b;
    if (backup_store_get(core->store, api_scope(r), http_request_param(r, 0), &b, &err) < 0)
        return http_reply_nb_error(r, err);
    http_reply_json(r, 200, backup_to_json(&b));
}

void
api_backups_delete(HttpRequest *r, void *ctx)
{
    _cleanup_error_ NbError *err = NULL;
    json_t *body = http_request_json(r);
    Backup b;
    Task task;
    if (body && json_object_size(body) > 0) {
        nb_error_set(&err, NB_ERR_INVALID_REQUEST, "a delete takes no body");
        return http_reply_nb_error(r, err);
    }
    if (backup_ops_delete(ctx, api_scope(r), http_request_param(r, 0), &b, &task, &err) < 0)
        return http_reply_nb_error(r, err);
    reply_backup_and_task(r, &b, &task);
}

void
api_backups_restore(HttpRequest *r, void *ctx)
{
    _cleanup_error_ NbError *err = NULL;
    Backup b;
    Volume v;
    Task task;
    json_t *body = http_request_json(r);
    if (json_is_true(json_object_get(body, "as_vm"))) {
        Vm vm;
        if (backup_ops_restore_vm(ctx, http_request_principal(r), http_request_param(r, 0), body,
                                  &b, &vm, &task, &err) < 0)
            return http_reply_nb_error(r, err);
        http_reply_json(r, 202,
                        json_pack("{s:o, s:o, s:o}", "backup", backup_to_json(&b), "vm",
                                  vm_to_json(&vm), "task", task_to_json(&task)));
        vm_clear(&vm);
        task_clear(&task);
        return;
    }
    if (backup_ops_restore(ctx, http_request_principal(r), http_request_param(r, 0),
                           http_request_json(r), &b, &v, &task, &err) < 0)
        return http_reply_nb_error(r, err);
    http_reply_json(r, 202,
                    json_pack("{s:o, s:o, s:o}", "backup", backup_to_json(&b), "volume",
                              volume_to_json(&v), "task", task_to_json(&task)));
    task_clear(&task);
}
