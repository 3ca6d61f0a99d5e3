/* /v1/vms/{vm}/snapshots: a VM's snapshots, scoped by the VM (another project's VM is not
 * found). Reads come from the store; every change is a task queued by core (snapshot_ops.h)
 * and answered 202 with the snapshot as it is now and the task. */
#include "../core/snapshot_ops.h"
#include "api.h"

static void
reply_snapshot_and_task(HttpRequest *r, const Snapshot *s, Task *task)
{
    http_reply_json(
        r, 202,
        json_pack("{s:o, s:o}", "snapshot", snapshot_to_json(s), "task", task_to_json(task)));
    task_clear(task);
}

void
api_snapshots_list(HttpRequest *r, void *ctx)
{
    Core *core = ctx;
    _cleanup_error_ NbError *err = NULL;
    const char *key = http_request_param(r, 0);
    Vm vm;
    if (vm_store_get(core->store, api_lookup_scope(r, key), key, &vm, &err) < 0)
        return http_reply_nb_error(r, err);
    Snapshot *list = NULL;
    size_t n = 0;
    int rc = snapshot_store_list(core->store, NULL, vm.id, &list, &n, &err);
    vm_clear(&vm);
    if (rc < 0)
        return http_reply_nb_error(r, err);
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, snapshot_to_json(&list[i]));
    snapshot_list_free(list, n);
    http_reply_json(r, 200, json_pack("{s:o}", "snapshots", arr));
}

void
api_snapshots_create(HttpRequest *r, void *ctx)
{
    _cleanup_error_ NbError *err = NULL;
    const char *key = http_request_param(r, 0);
    Snapshot s;
    Task task;
    if (snapshot_ops_create(ctx, api_lookup_scope(r, key), key, http_request_json(r), &s, &task,
                            &err) < 0)
        return http_reply_nb_error(r, err);
    reply_snapshot_and_task(r, &s, &task);
}

void
api_snapshots_get(HttpRequest *r, void *ctx)
{
    Core *core = ctx;
    _cleanup_error_ NbError *err = NULL;
    const char *key = http_request_param(r, 0);
    Vm vm;
    Snapshot s;
    if (vm_store_get(core->store, api_lookup_scope(r, key), key, &vm, &err) < 0)
        return http_reply_nb_error(r, err);
    int rc = snapshot_store_get(core->store, NULL, vm.id, http_request_param(r, 1), &s, &err);
    vm_clear(&vm);
    if (rc < 0)
        return http_reply_nb_error(r, err);
    http_reply_json(r, 200, snapshot_to_json(&s));
}

void
api_snapshots_revert(HttpRequest *r, void *ctx)
{
    _cleanup_error_ NbError *err = NULL;
    const char *key = http_request_param(r, 0);
    Snapshot s;
    Task task;
    if (snapshot_ops_revert(ctx, api_lookup_scope(r, key), key, http_request_param(r, 1),
                            http_request_json(r), &s, &task, &err) < 0)
        return http_reply_nb_error(r, err);
    reply_snapshot_and_task(r, &s, &task);
}

void
api_snapshots_delete(HttpRequest *r, void *ctx)
{
    _cleanup_error_ NbError *err = NULL;
    const char *key = http_request_param(r, 0);
    json_t *body = http_request_json(r);
    Snapshot s;
    Task task;
    if (body && json_object_size(body) > 0) {
        nb_error_set(&err, NB_ERR_INVALID_REQUEST, "a delete takes no body");
        return http_reply_nb_error(r, err);
    }
    if (snapshot_ops_delete(ctx, api_lookup_scope(r, key), key, http_request_param(r, 1), &s, &task,
                            &err) < 0)
        return http_reply_nb_error(r, err);
    reply_snapshot_and_task(r, &s, &task);
}
