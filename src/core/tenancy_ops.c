/*
 * Tenancy writes on behalf of the API (see tenancy_ops.h). Each one resolves what it acts on and
 * writes in the store's own transaction; the store checks the constraints (names taken, in use)
 * in that transaction, so nothing here needs a lock.
 */
#include <string.h>

#include "../util/timeutil.h"
#include "../util/uuid.h"
#include "tenancy_ops.h"

#include "network_ops.h"
#include "secgroup_ops.h"

int
tenancy_ops_flavor_create(Core *core, json_t *body, Flavor *ret, NbError **err)
{
    if (flavor_from_request(body, ret, err) < 0)
        return -1;
    nb_uuid_generate(ret->id);
    nb_timestamp_now(ret->created_at);
    return flavor_store_insert(core->store, ret, err);
}

int
tenancy_ops_flavor_delete(Core *core, const char *id_or_name, NbError **err)
{
    Flavor f;
    if (flavor_store_get(core->store, id_or_name, &f, err) < 0)
        return -1;
    return flavor_store_delete(core->store, f.id, err);
}

int
tenancy_ops_project_create(Core *core, json_t *body, Project *ret, NbError **err)
{
    if (project_from_request(body, ret, err) < 0)
        return -1;
    nb_uuid_generate(ret->id);
    nb_timestamp_now(ret->created_at);
    return project_store_insert(core->store, ret, err);
}

int
tenancy_ops_project_delete(Core *core, const char *id_or_name, NbError **err)
{
    Project p;
    if (project_store_get(core->store, NULL, id_or_name, &p, err) < 0 ||
        network_ops_drop_default(core, p.id, err) < 0 ||
        project_store_delete(core->store, p.id, err) < 0)
        return -1;
    return secgroup_ops_drop_project(core, p.id, err);
}

int
tenancy_ops_project_set_quota(Core *core, const char *id_or_name, json_t *body, Project *ret,
                              NbError **err)
{
    Quota q;
    if (quota_from_json(body, &q, err) < 0 ||
        project_store_get(core->store, NULL, id_or_name, ret, err) < 0 ||
        project_store_set_quota(core->store, ret->id, &q, err) < 0)
        return -1;
    ret->quota = q;
    events_publish_quota(core->events, ret->id, ret->name, quota_to_json(&q));
    return 0;
}

int
tenancy_ops_user_create(Core *core, const UserCreateRequest *req, const char *password_hash,
                        User *ret, NbError **err)
{
    Project p;
    if (project_store_get(core->store, NULL, req->project, &p, err) < 0)
        return -1;
    memset(ret, 0, sizeof(*ret));
    nb_uuid_generate(ret->id);
    memcpy(ret->name, req->name, sizeof(ret->name));
    memcpy(ret->project_id, p.id, sizeof(ret->project_id));
    ret->role = req->role;
    nb_timestamp_now(ret->created_at);
    return user_store_insert(core->store, ret, password_hash, err);
}

int
tenancy_ops_user_delete(Core *core, const char *id_or_name, NbError **err)
{
    User u;
    if (user_store_get(core->store, id_or_name, &u, err) < 0)
        return -1;
    return user_store_delete(core->store, u.id, err);
}

int
tenancy_ops_token_insert(Core *core, const TokenInfo *t, const char *hash_hex, NbError **err)
{
    return token_store_insert(core->store, t, hash_hex, err);
}

int
tenancy_ops_token_revoke(Core *core, const char *id, const char *user_id, NbError **err)
{
    return token_store_revoke(core->store, id, user_id, err);
}

int
tenancy_ops_audit_record(Core *core, const AuditEvent *e, NbError **err)
{
    return audit_store_insert(core->store, e, err);
}

int
tenancy_ops_group_create(Core *core, json_t *body, const char *project_id, Group *ret,
                         NbError **err)
{
    memset(ret, 0, sizeof(*ret));
    if (group_create_request_parse(body, ret->name, &ret->policy, err) < 0)
        return -1;
    nb_uuid_generate(ret->id);
    snprintf(ret->project, sizeof(ret->project), "%s", project_id);
    nb_timestamp_now(ret->created_at);
    return group_store_insert(core->store, ret, err);
}

int
tenancy_ops_group_delete(Core *core, const char *scope, const char *id_or_name, NbError **err)
{
    Group g;
    if (group_store_get(core->store, scope, id_or_name, &g, err) < 0)
        return -1;
    return group_store_delete(core->store, g.id, err);
}
