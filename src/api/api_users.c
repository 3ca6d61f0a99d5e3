#include <string.h>

#include "api.h"

void
api_users_list(HttpRequest *r, void *ctx)
{
    Core *core = ctx;
    _cleanup_error_ NbError *err = NULL;
    User *list = NULL;
    size_t n = 0;
    if (user_store_list(core->store, &list, &n, &err) < 0)
        return http_reply_nb_error(r, err);
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, user_to_json(&list[i]));
    free(list);
    http_reply_json(r, 200, json_pack("{s:o}", "users", arr));
}

void
api_users_create(HttpRequest *r, void *ctx)
{
    Core *core = ctx;
    _cleanup_error_ NbError *err = NULL;
    UserCreateRequest req;
    Project p;
    User u;
    char hash[crypto_pwhash_STRBYTES];
    if (user_create_request_parse(http_request_json(r), &req, &err) < 0)
        return http_reply_nb_error(r, err);
    /* The project first: hashing costs tens of milliseconds, a missing project nothing. */
    int rc = project_store_get(core->store, NULL, req.project, &p, &err);
    if (rc == 0)
        rc = auth_hash_password(req.password, hash, &err);
    if (rc == 0) {
        rc = tenancy_ops_user_create(core, &req, hash, &u, &err);
        sodium_memzero(hash, sizeof(hash));
    }
    user_create_request_clear(&req);
    if (rc < 0)
        return http_reply_nb_error(r, err);
    http_reply_json(r, 201, user_to_json(&u));
}

void
api_users_get(HttpRequest *r, void *ctx)
{
    Core *core = ctx;
    _cleanup_error_ NbError *err = NULL;
    User u;
    if (user_store_get(core->store, http_request_param(r, 0), &u, &err) < 0)
        return http_reply_nb_error(r, err);
    http_reply_json(r, 200, user_to_json(&u));
}

void
api_users_delete(HttpRequest *r, void *ctx)
{
    Core *core = ctx;
    _cleanup_error_ NbError *err = NULL;
    if (tenancy_ops_user_delete(core, http_request_param(r, 0), &err) < 0)
        return http_reply_nb_error(r, err);
    http_reply_empty(r, 204);
}
