#include "api.h"

void
api_flavors_list(HttpRequest *r, void *ctx)
{
    Core *core = ctx;
    _cleanup_error_ NbError *err = NULL;
    Flavor *list = NULL;
    size_t n = 0;
    if (flavor_store_list(core->store, &list, &n, &err) < 0)
        return http_reply_nb_error(r, err);
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, flavor_to_json(&list[i]));
    free(list);
    http_reply_json(r, 200, json_pack("{s:o}", "flavors", arr));
}

void
api_flavors_create(HttpRequest *r, void *ctx)
{
    Core *core = ctx;
    _cleanup_error_ NbError *err = NULL;
    Flavor f;
    if (tenancy_ops_flavor_create(core, http_request_json(r), &f, &err) < 0)
        return http_reply_nb_error(r, err);
    http_reply_json(r, 201, flavor_to_json(&f));
}

void
api_flavors_get(HttpRequest *r, void *ctx)
{
    Core *core = ctx;
    _cleanup_error_ NbError *err = NULL;
    Flavor f;
    if (flavor_store_get(core->store, http_request_param(r, 0), &f, &err) < 0)
        return http_reply_nb_error(r, err);
    http_reply_json(r, 200, flavor_to_json(&f));
}

void
api_flavors_delete(HttpRequest *r, void *ctx)
{
    Core *core = ctx;
    _cleanup_error_ NbError *err = NULL;
    if (tenancy_ops_flavor_delete(core, http_request_param(r, 0), &err) < 0)
        return http_reply_nb_error(r, err);
    http_reply_empty(r, 204);
}
