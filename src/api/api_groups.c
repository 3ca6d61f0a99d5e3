/* /v1/groups: server groups, scoped to the caller's project like VMs. */
#include "../util/strutil.h"
#include "api.h"

void
api_groups_list(HttpRequest *r, void *ctx)
{
    Core *core = ctx;
    _cleanup_error_ NbError *err = NULL;
    Group *list = NULL;
    size_t n = 0;
    if (group_store_list(core->store, api_scope(r), &list, &n, &err) < 0)
        return http_reply_nb_error(r, err);
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, group_to_json(&list[i]));
    free(list);
    http_reply_json(r, 200, json_pack("{s:o}", "groups", arr));
}

void
api_groups_create(HttpRequest *r, void *ctx)
{
    Core *core = ctx;
    _cleanup_error_ NbError *err = NULL;
    Group g;
    const Principal *who = http_request_principal(r);
    if (tenancy_ops_group_create(core, http_request_json(r), who->project_id, &g, &err) < 0)
        return http_reply_nb_error(r, err);
    http_reply_json(r, 201, group_to_json(&g));
}

void
api_groups_get(HttpRequest *r, void *ctx)
{
    Core *core = ctx;
    _cleanup_error_ NbError *err = NULL;
    const char *key = http_request_param(r, 0);
    Group g;
    Vm *vms = NULL;
    size_t n = 0;
    if (group_store_get(core->store, api_lookup_scope(r, key), key, &g, &err) < 0 ||
        vm_store_list_by_group(core->store, g.id, &vms, &n, &err) < 0)
        return http_reply_nb_error(r, err);
    json_t *body = group_to_json(&g);
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, json_pack("{s:s, s:s, s:s, s:s}", "id", vms[i].id, "name",
                                             vms[i].name, "host", vms[i].host, "state",
                                             vm_state_to_string(vms[i].state)));
    vm_list_free(vms, n);
    json_object_set_new(body, "vm_list", arr);
    http_reply_json(r, 200, body);
}

void
api_groups_delete(HttpRequest *r, void *ctx)
{
    Core *core = ctx;
    _cleanup_error_ NbError *err = NULL;
    const char *key = http_request_param(r, 0);
    if (tenancy_ops_group_delete(core, api_lookup_scope(r, key), key, &err) < 0)
        return http_reply_nb_error(r, err);
    http_reply_empty(r, 204);
}
