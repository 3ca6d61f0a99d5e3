#include "../util/strutil.h"
#include "api.h"

void
api_tasks_list(HttpRequest *r, void *ctx)
{
    Core *core = ctx;
    _cleanup_error_ NbError *err = NULL;
    const char *vm_ref = http_request_query(r, "vm");
    char vm_id[NB_UUID_STRLEN] = "";
    unsigned limit;
    const char *marker;
    if (api_page_params(r, &limit, &marker) < 0)
        return;
    if (vm_ref) {
        Vm vm;
        if (vm_store_get(core->store, api_lookup_scope(r, vm_ref), vm_ref, &vm, &err) < 0) {
            /* A deleted VM's tasks are still listed by its id. */
            if (!nb_uuid_is_valid(vm_ref))
                return http_reply_nb_error(r, err);
            snprintf(vm_id, sizeof(vm_id), "%s", vm_ref);
        } else {
            memcpy(vm_id, vm.id, sizeof(vm_id));
            vm_clear(&vm);
        }
    }
    Task *list = NULL;
    size_t n = 0;
    char next[STORE_MARKER_MAX];
    if (task_store_list_page(core->store, api_scope(r), vm_ref ? vm_id : NULL, marker, limit, &list,
                             &n, next, &err) < 0)
        return http_reply_nb_error(r, err);
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, task_to_json(&list[i]));
    task_list_free(list, n);
    api_reply_page(r, "tasks", arr, next);
}

void
api_tasks_get(HttpRequest *r, void *ctx)
{
    Core *core = ctx;
    _cleanup_error_ NbError *err = NULL;
    Task t;
    if (task_store_get(core->store, api_scope(r), http_request_param(r, 0), &t, &err) < 0)
        return http_reply_nb_error(r, err);
    http_reply_json(r, 200, task_to_json(&t));
    task_clear(&t);
}

void
api_tasks_cancel(HttpRequest *r, void *ctx)
{
    Core *core = ctx;
    _cleanup_error_ NbError *err = NULL;
    Task t;
    json_t *body = http_request_json(r);
    if (body && json_object_size(body) > 0)
        return http_reply_error(r, NB_ERR_INVALID_REQUEST, "this action takes no body");
    if (record_ops_task_cancel(core, api_scope(r), http_request_param(r, 0), &t, &err) < 0)
        return http_reply_nb_error(r, err);
    http_reply_json(r, 202, task_to_json(&t));
    task_clear(&t);
}
