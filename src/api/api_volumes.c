/* /v1/volumes: a project's volumes, scoped like VMs (another project's is not found). Reads come
 * from the store; every change is a task queued by core (volume_ops.h) and answered 202 with the
 * volume as it is now and the task. */
#include <string.h>

#include "../core/volume_ops.h"
#include "../core/volume_snapshot_ops.h"
#include "api.h"

static void
reply_volume_and_task(HttpRequest *r, const Volume *v, Task *task)
{
    http_reply_json(
        r, 202, json_pack("{s:o, s:o}", "volume", volume_to_json(v), "task", task_to_json(task)));
    task_clear(task);
}

/* ?vm= (id or name, the caller's) and ?pool= (id or name) narrow the list. */
void
api_volumes_list(HttpRequest *r, void *ctx)
{
    Core *core = ctx;
    _cleanup_error_ NbError *err = NULL;
    const char *qvm = http_request_query(r, "vm");
    const char *qpool = http_request_query(r, "pool");
    char vm_id[NB_UUID_STRLEN] = "", pool_id[NB_UUID_STRLEN] = "";
    if (qvm) {
        Vm vm;
        if (vm_store_get(core->store, api_lookup_scope(r, qvm), qvm, &vm, &err) < 0)
            return http_reply_nb_error(r, err);
        memcpy(vm_id, vm.id, sizeof(vm_id));
        vm_clear(&vm);
    }
    if (qpool) {
        Pool p;
        if (pool_store_get(core->store, qpool, &p, &err) < 0)
            return http_reply_nb_error(r, err);
        memcpy(pool_id, p.id, sizeof(pool_id));
    }
    Volume *list = NULL;
    size_t n = 0;
    if (volume_store_list(core->store, api_scope(r), vm_id[0] ? vm_id : NULL,
                          pool_id[0] ? pool_id : NULL, &list, &n, &err) < 0)
        return http_reply_nb_error(r, err);
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, volume_to_json(&list[i]));
    volume_list_free(list, n);
    http_reply_json(r, 200, json_pack("{s:o}", "volumes", arr));
}

void
api_volumes_create(HttpRequest *r, void *ctx)
{
    _cleanup_error_ NbError *err = NULL;
    Volume v;
    Task task;
    if (volume_ops_create(ctx, http_request_principal(r), http_request_json(r), &v, &task, &err) <
        0)
        return http_reply_nb_error(r, err);
    reply_volume_and_task(r, &v, &task);
}

void
api_volumes_get(HttpRequest *r, void *ctx)
{
    Core *core = ctx;
    _cleanup_error_ NbError *err = NULL;
    const char *key = http_request_param(r, 0);
    Volume v;
    if (volume_store_get(core->store, api_lookup_scope(r, key), key, &v, &err) < 0)
        return http_reply_nb_error(r, err);
    http_reply_json(r, 200, volume_to_json(&v));
}

typedef int (*VolumeChange)(Core *core, const char *scope, const char *id_or_name, json_t *body,
                            Volume *ret, Task *ret_task, NbError **err);

static int
volume_delete_change(Core *core, const char *scope, const char *id_or_name, json_t *body,
                     Volume *ret, Task *ret_task, NbError **err)
{
    if (body && json_object_size(body) > 0)
        return nb_error_set(err, NB_ERR_INVALID_REQUEST, "a delete takes no body");
    return volume_ops_delete(core, scope, id_or_name, ret, ret_task, err);
}

static void
api_volumes_change(HttpRequest *r, Core *core, VolumeChange change)
{
    _cleanup_error_ NbError *err = NULL;
    const char *key = http_request_param(r, 0);
    Volume v;
    Task task;
    if (change(core, api_lookup_scope(r, key), key, http_request_json(r), &v, &task, &err) < 0)
        return http_reply_nb_error(r, err);
    reply_volume_and_task(r, &v, &task);
}

void
api_volumes_delete(HttpRequest *r, void *ctx)
{
    api_volumes_change(r, ctx, volume_delete_change);
}

void
api_volumes_attach(HttpRequest *r, void *ctx)
{
    api_volumes_change(r, ctx, volume_ops_attach);
}

void
api_volumes_detach(HttpRequest *r, void *ctx)
{
    api_volumes_change(r, ctx, volume_ops_detach);
}

void
api_volumes_resize(HttpRequest *r, void *ctx)
{
    api_volumes_change(r, ctx, volume_ops_resize);
}

/* ---- /v1/volumes/{v}/snapshots: scoped by the volume's project ---- */

static void
reply_volume_snapshot_and_task(HttpRequest *r, const VolumeSnapshot *s, Task *task)
{
    http_reply_json(r, 202,
                    json_pack("{s:o, s:o}", "snapshot", volume_snapshot_to_json(s), "task",
                              task_to_json(task)));
    task_clear(task);
}

void
api_volume_snapshots_list(HttpRequest *r, void *ctx)
{
    Core *core = ctx;
    _cleanup_error_ NbError *err = NULL;
    const char *key = http_request_param(r, 0);
    Volume v;
    VolumeSnapshot *list = NULL;
    size_t n = 0;
    if (volume_store_get(core->store, api_lookup_scope(r, key), key, &v, &err) < 0 ||
        volume_snapshot_store_list(core->store, NULL, v.id, &list, &n, &err) < 0)
        return http_reply_nb_error(r, err);
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, volume_snapshot_to_json(&list[i]));
    volume_snapshot_list_free(list, n);
    http_reply_json(r, 200, json_pack("{s:o}", "snapshots", arr));
}

void
api_volume_snapshots_create(HttpRequest *r, void *ctx)
{
    _cleanup_error_ NbError *err = NULL;
    const char *key = http_request_param(r, 0);
    VolumeSnapshot s;
    Task task;
    if (volume_snapshot_ops_create(ctx, api_lookup_scope(r, key), key, http_request_json(r), &s,
                                   &task, &err) < 0)
        return http_reply_nb_error(r, err);
    reply_volume_snapshot_and_task(r, &s, &task);
}

void
api_volume_snapshots_get(HttpRequest *r, void *ctx)
{
    Core *core = ctx;
    _cleanup_error_ NbError *err = NULL;
    const char *key = http_request_param(r, 0);
    Volume v;
    VolumeSnapshot s;
    if (volume_store_get(core->store, api_lookup_scope(r, key), key, &v, &err) < 0 ||
        volume_snapshot_store_get(core->store, NULL, v.id, http_request_param(r, 1), &s, &err) < 0)
        return http_reply_nb_error(r, err);
    http_reply_json(r, 200, volume_snapshot_to_json(&s));
}

void
api_volume_snapshots_delete(HttpRequest *r, void *ctx)
{
    _cleanup_error_ NbError *err = NULL;
    const char *key = http_request_param(r, 0);
    json_t *body = http_request_json(r);
    VolumeSnapshot s;
    Task task;
    if (body && json_object_size(body) > 0) {
        nb_error_set(&err, NB_ERR_INVALID_REQUEST, "a delete takes no body");
        return http_reply_nb_error(r, err);
    }
    if (volume_snapshot_ops_delete(ctx, api_lookup_scope(r, key), key, http_request_param(r, 1), &s,
                                   &task, &err) < 0)
        return http_reply_nb_error(r, err);
    reply_volume_snapshot_and_task(r, &s, &task);
}
