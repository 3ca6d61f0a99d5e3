/* /v1/pools: storage pools. Every user reads them (a volume is made in one); admins create and
 * delete them (the route table says so). A pool's secret is never in an answer: pool_to_json
 * writes only whether one is set. */
#include <string.h>

#include "../core/pool_ops.h"
#include "../model/pool.h"
#include "api.h"

/* The pool with "hosts": its state on each host, by host name. */
static int
api_pool_json(Core *core, const Pool *p, json_t **ret, NbError **err)
{
    PoolHostState *states = NULL;
    size_t n = 0;
    if (pool_store_hosts(core->store, p->id, &states, &n, err) < 0)
        return -1;
    json_t *j = pool_to_json(p);
    json_t *hosts = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(hosts, pool_host_state_to_json(&states[i]));
    free(states);
    json_object_set_new(j, "hosts", hosts);
    *ret = j;
    return 0;
}

void
api_pools_list(HttpRequest *r, void *ctx)
{
    Core *core = ctx;
    _cleanup_error_ NbError *err = NULL;
    Pool *list = NULL;
    size_t n = 0;
    if (pool_store_list(core->store, &list, &n, &err) < 0)
        return http_reply_nb_error(r, err);
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
        json_t *j = NULL;
        if (api_pool_json(core, &list[i], &j, &err) < 0) {
            json_decref(arr);
            pool_list_free(list, n);
            return http_reply_nb_error(r, err);
        }
        json_array_append_new(arr, j);
    }
    pool_list_free(list, n);
    http_reply_json(r, 200, json_pack("{s:o}", "pools", arr));
}

void
api_pools_create(HttpRequest *r, void *ctx)
{
    Core *core = ctx;
    _cleanup_error_ NbError *err = NULL;
    Pool p;
    json_t *j = NULL;
    if (pool_ops_create(core, http_request_json(r), &p, &err) < 0)
        return http_reply_nb_error(r, err);
    int rc = api_pool_json(core, &p, &j, &err);
    explicit_bzero(p.secret, sizeof(p.secret));
    if (rc < 0)
        return http_reply_nb_error(r, err);
    http_reply_json(r, 201, j);
}

void
api_pools_get(HttpRequest *r, void *ctx)
{
    Core *core = ctx;
    _cleanup_error_ NbError *err = NULL;
    Pool p;
    json_t *j = NULL;
    if (pool_store_get(core->store, http_request_param(r, 0), &p, &err) < 0)
        return http_reply_nb_error(r, err);
    int rc = api_pool_json(core, &p, &j, &err);
    explicit_bzero(p.secret, sizeof(p.secret));
    if (rc < 0)
        return http_reply_nb_error(r, err);
    http_reply_json(r, 200, j);
}

void
api_pools_delete(HttpRequest *r, void *ctx)
{
    Core *core = ctx;
    _cleanup_error_ NbError *err = NULL;
    if (pool_ops_delete(core, http_request_param(r, 0), &err) < 0)
        return http_reply_nb_error(r, err);
    http_reply_empty(r, 204);
}
