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
    User u = {0};
    char hash[crypto_pwhash_STRBYTES];
    if (user_create_request_parse(http_request_json(r), &req, &err) < 0)
        return http_reply_nb_error(r, err);
    int rc = project_store_get(core->store, NULL, req.project, &p, &err);
    if (rc == 0)
        rc = auth_hash_password(req.password, hash, &err);
    user_create_request_clear(&req);
    if (rc < 0)
        return http_reply_nb_error(r, err);
    nb_uuid_generate(u.id);
    memcpy(u.name, req.name, sizeof(u.name));
    memcpy(u.project_id, p.id, sizeof(u.project_id));
    u.role = req.role;
    nb_timestamp_now(u.created_at);
    rc = user_store_insert(core->store, &u, hash, &err);
    sodium_memzero(hash, sizeof(hash));
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
    User u;
    if (user_store_get(core->store, http_request_param(r, 0), &u, &err) < 0 ||
        user_store_delete(core->store, u.id, &err) < 0)
        return http_reply_nb_error(r, err);
    http_reply_empty(r, 204);
}
