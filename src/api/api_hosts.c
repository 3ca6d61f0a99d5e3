/* /v1/hosts: the hypervisors of the cluster (admins only, by the route table). */
#include "../util/strutil.h"
#include "api.h"

void
api_hosts_list(HttpRequest *r, void *ctx)
{
    Core *core = ctx;
    _cleanup_error_ NbError *err = NULL;
    Host *list = NULL;
    size_t n = 0;
    if (host_store_list(core->store, &list, &n, &err) < 0)
        return http_reply_nb_error(r, err);
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, host_to_json(&list[i]));
    free(list);
    http_reply_json(r, 200, json_pack("{s:o}", "hosts", arr));
}

void
api_hosts_create(HttpRequest *r, void *ctx)
{
    Core *core = ctx;
    _cleanup_error_ NbError *err = NULL;
    Host h;
    if (host_ops_add(core, http_request_json(r), &h, &err) < 0)
        return http_reply_nb_error(r, err);
    http_reply_json(r, 201, host_to_json(&h));
}

void
api_hosts_get(HttpRequest *r, void *ctx)
{
    Core *core = ctx;
    _cleanup_error_ NbError *err = NULL;
    Host h;
    Vm *vms = NULL;
    size_t n = 0;
    if (host_store_get(core->store, http_request_param(r, 0), &h, &err) < 0 ||
        vm_store_list_by_host(core->store, h.name, &vms, &n, &err) < 0)
        return http_reply_nb_error(r, err);
    json_t *body = host_to_json(&h);
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, json_pack("{s:s, s:s, s:s, s:s}", "id", vms[i].id, "name",
                                             vms[i].name, "state", vm_state_to_string(vms[i].state),
                                             "project", vms[i].project));
    vm_list_free(vms, n);
    json_object_set_new(body, "vm_list", arr);
    http_reply_json(r, 200, body);
}

void
api_hosts_update(HttpRequest *r, void *ctx)
{
    Core *core = ctx;
    _cleanup_error_ NbError *err = NULL;
    Host h;
    if (host_ops_update(core, http_request_param(r, 0), http_request_json(r), &h, &err) < 0)
        return http_reply_nb_error(r, err);
    http_reply_json(r, 200, host_to_json(&h));
}

void
api_hosts_delete(HttpRequest *r, void *ctx)
{
    Core *core = ctx;
    _cleanup_error_ NbError *err = NULL;
    if (host_ops_remove(core, http_request_param(r, 0), &err) < 0)
        return http_reply_nb_error(r, err);
    http_reply_empty(r, 204);
}

static void
api_hosts_set_admin(HttpRequest *r, Core *core, HostAdmin admin)
{
    _cleanup_error_ NbError *err = NULL;
    Host h;
    json_t *body = http_request_json(r);
    if (body && json_object_size(body) > 0)
        return http_reply_error(r, NB_ERR_INVALID_REQUEST, "this action takes no body");
    if (host_ops_set_admin(core, http_request_param(r, 0), admin, &h, &err) < 0)
        return http_reply_nb_error(r, err);
    http_reply_json(r, 200, host_to_json(&h));
}

void
api_hosts_enable(HttpRequest *r, void *ctx)
{
    api_hosts_set_admin(r, ctx, HOST_ADMIN_ENABLED);
}

void
api_hosts_disable(HttpRequest *r, void *ctx)
{
    api_hosts_set_admin(r, ctx, HOST_ADMIN_DISABLED);
}

void
api_hosts_maintenance(HttpRequest *r, void *ctx)
{
    Core *core = ctx;
    _cleanup_error_ NbError *err = NULL;
    Host h;
    json_t *moving = NULL, *skipped = NULL;
    json_t *body = http_request_json(r);
    if (body && json_object_size(body) > 0)
        return http_reply_error(r, NB_ERR_INVALID_REQUEST, "this action takes no body");
    if (host_ops_maintenance(core, http_request_param(r, 0), &h, &moving, &skipped, &err) < 0)
        return http_reply_nb_error(r, err);
    http_reply_json(r, 202,
                    json_pack("{s:o, s:o, s:o}", "host", host_to_json(&h), "migrations", moving,
                              "skipped", skipped));
}
