#include "tenancy.h"

#include <stdlib.h>
#include <string.h>

#include "enum_table.h"
#include "json_req.h"

static const char *const role_table[_ROLE_MAX] = {
    [ROLE_ADMIN] = "admin",
    [ROLE_MEMBER] = "member",
    [ROLE_READER] = "reader",
    [ROLE_METRICS] = "metrics",
};
DEFINE_STRING_TABLE(role, Role, role_table)

const char *const quota_resource_names[_QUOTA_MAX] = {
    [QUOTA_VCPUS] = "vcpus",         [QUOTA_RAM_MIB] = "ram_mib",
    [QUOTA_DISK_GIB] = "disk_gib",   [QUOTA_VMS] = "vms",
    [QUOTA_IMAGES] = "images",       [QUOTA_NETWORKS] = "networks",
    [QUOTA_PORTS] = "ports",         [QUOTA_SECGROUPS] = "secgroups",
    [QUOTA_VOLUMES] = "volumes",     [QUOTA_VOLUME_GIB] = "volume_gib",
    [QUOTA_SNAPSHOTS] = "snapshots", [QUOTA_BACKUPS] = "backups",
};

int
quota_from_json(json_t *j, Quota *ret, NbError **err)
{
    Quota q;
    for (int i = 0; i < _QUOTA_MAX; i++)
        q.limit[i] = -1;
    if (j && !json_is_null(j)) {
        /* Every resource may be limited: the names table is the list of allowed keys. */
        const char *allowed[_QUOTA_MAX + 1] = {NULL};
        for (int i = 0; i < _QUOTA_MAX; i++)
            allowed[i] = quota_resource_names[i];
        if (json_req_check_fields(j, allowed, err) < 0)
            return -1;
        for (int i = 0; i < _QUOTA_MAX; i++) {
            json_t *v = json_object_get(j, quota_resource_names[i]);
            if (!v || json_is_null(v))
                continue;
            if (!json_is_integer(v) || json_integer_value(v) < 0 ||
                json_integer_value(v) > (json_int_t)1 << 50)
                return nb_error_set(err, NB_ERR_INVALID_REQUEST,
                                    "quota '%s' must be a non-negative integer or null",
                                    quota_resource_names[i]);
            q.limit[i] = json_integer_value(v);
        }
    }
    *ret = q;
    return 0;
}

json_t *
quota_to_json(const Quota *q)
{
    json_t *j = json_object();
    for (int i = 0; i < _QUOTA_MAX; i++)
        json_object_set_new(j, quota_resource_names[i],
                            q->limit[i] < 0 ? json_null() : json_integer(q->limit[i]));
    return j;
}

int
project_from_request(json_t *body, Project *ret, NbError **err)
{
    static const char *const fields[] = {"name", "quota", NULL};
    Project p = {0};
    if (json_req_check_fields(body, fields, err) < 0 ||
        json_req_name(body, "name", "project", p.name, err) < 0 ||
        quota_from_json(json_object_get(body, "quota"), &p.quota, err) < 0)
        return -1;
    *ret = p;
    return 0;
}

json_t *
project_to_json(const Project *p)
{
    return json_pack("{s:s, s:s, s:o, s:s}", "id", p->id, "name", p->name, "quota",
                     quota_to_json(&p->quota), "created_at", p->created_at);
}

int
user_create_request_parse(json_t *body, UserCreateRequest *ret, NbError **err)
{
    static const char *const fields[] = {"name", "password", "project", "role", NULL};
    UserCreateRequest r = {0};
    char role[16];
    if (json_req_check_fields(body, fields, err) < 0 ||
        json_req_name(body, "name", "user", r.name, err) < 0 ||
        json_req_string(body, "project", 1, r.project, sizeof(r.project), err) < 0 ||
        json_req_string(body, "role", 1, role, sizeof(role), err) < 0)
        return -1;
    r.role = role_from_string(role);
    if (r.role == _ROLE_INVALID)
        return nb_error_set(err, NB_ERR_INVALID_REQUEST,
                            "role must be \"admin\", \"member\", \"reader\" or \"metrics\"");
    json_t *pw = json_object_get(body, "password");
    if (!json_is_string(pw))
        return nb_error_set(err, NB_ERR_INVALID_REQUEST, "field 'password' must be a string");
    size_t len = json_string_length(pw);
    if (len < NB_PASSWORD_MIN || len > NB_PASSWORD_MAX || memchr(json_string_value(pw), '\0', len))
        return nb_error_set(err, NB_ERR_INVALID_PASSWORD,
                            "password must be %d to %d bytes, without NUL", NB_PASSWORD_MIN,
                            NB_PASSWORD_MAX);
    r.password = strdup(json_string_value(pw));
    if (!r.password)
        return nb_error_set(err, NB_ERR_INTERNAL, "out of memory");
    *ret = r;
    return 0;
}

void
user_create_request_clear(UserCreateRequest *r)
{
    if (r->password) {
        explicit_bzero(r->password, strlen(r->password));
        free(r->password);
        r->password = NULL;
    }
}

json_t *
user_to_json(const User *u)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:s}", "id", u->id, "name", u->name, "project_id",
                     u->project_id, "role", role_to_string(u->role), "created_at", u->created_at);
}
