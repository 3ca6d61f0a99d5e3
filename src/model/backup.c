#include "backup.h"

#include <stdio.h>
#include <string.h>

#include "enum_table.h"
#include "json_req.h"

static const char *const backup_state_table[_BACKUP_STATE_MAX] = {
    [BACKUP_STATE_CREATING] = "creating",   [BACKUP_STATE_READY] = "ready",
    [BACKUP_STATE_RESTORING] = "restoring", [BACKUP_STATE_DELETING] = "deleting",
    [BACKUP_STATE_ERROR] = "error",
};
DEFINE_STRING_TABLE(backup_state, BackupState, backup_state_table)

static const char *const backup_kind_table[_BACKUP_KIND_MAX] = {
    [BACKUP_KIND_FULL] = "full",
    [BACKUP_KIND_INCREMENTAL] = "incremental",
};
DEFINE_STRING_TABLE(backup_kind, BackupKind, backup_kind_table)

void
backup_name_on_host(const char *id, char buf[BACKUP_NAME_ON_HOST_MAX + 1])
{
    snprintf(buf, BACKUP_NAME_ON_HOST_MAX + 1, "nimbus-backup-%s.qcow2", id);
}

void
backup_checkpoint_name(const char *id, char buf[BACKUP_CHECKPOINT_MAX + 1])
{
    snprintf(buf, BACKUP_CHECKPOINT_MAX + 1, "nimbus-ckpt-%s", id);
}

/* A reference to a resource, by name (the name rules) or id; "" when absent or null and not
 * required. */
static int
backup_ref(json_t *body, const char *key, const char *what, bool required,
           char buf[NB_NAME_MAX + 1], NbError **err)
{
    json_t *v = json_object_get(body, key);
    buf[0] = '\0';
    if (!v || json_is_null(v)) {
        if (required)
            return nb_error_set(err, NB_ERR_INVALID_REQUEST, "field '%s' is required", key);
        return 0;
    }
    if (json_is_string(v) && nb_uuid_is_valid(json_string_value(v))) {
        snprintf(buf, NB_NAME_MAX + 1, "%s", json_string_value(v));
        return 0;
    }
    return json_req_name(body, key, what, buf, err);
}

int
backup_create_request_decode(json_t *body, char vm[NB_NAME_MAX + 1], bool *incremental,
                             char pool[NB_NAME_MAX + 1], NbError **err)
{
    static const char *const fields[] = {"vm", "incremental", "pool", NULL};
    char v[NB_NAME_MAX + 1];
    if (json_req_check_fields(body, fields, err) < 0 ||
        backup_ref(body, "vm", "VM", true, v, err) < 0 ||
        backup_ref(body, "pool", "pool", false, pool, err) < 0)
        return -1;
    json_t *inc = json_object_get(body, "incremental");
    if (inc && !json_is_null(inc) && !json_is_boolean(inc))
        return nb_error_set(err, NB_ERR_INVALID_REQUEST,
                            "field 'incremental' must be true or false");
    memcpy(vm, v, sizeof(v));
    *incremental = inc && json_is_true(inc);
    return 0;
}

int
backup_restore_request_decode(json_t *body, char name[NB_NAME_MAX + 1], char pool[NB_NAME_MAX + 1],
                              NbError **err)
{
    static const char *const fields[] = {"name", "pool", "as_vm", NULL};
    char n[NB_NAME_MAX + 1];
    if (json_req_check_fields(body, fields, err) < 0 ||
        json_req_name(body, "name", "volume", n, err) < 0 ||
        backup_ref(body, "pool", "pool", false, pool, err) < 0)
        return -1;
    json_t *as_vm = json_object_get(body, "as_vm");
    if (as_vm && !json_is_null(as_vm) && !json_is_false(as_vm))
        return nb_error_set(err, NB_ERR_INVALID_REQUEST, "field 'as_vm' must be true or false");
    memcpy(name, n, sizeof(n));
    return 0;
}

json_t *
backup_to_json(const Backup *b)
{
    return json_pack(
        "{s:s, s:o, s:s, s:s, s:s, s:s, s:o, s:s, s:o, s:s, s:s, s:I, s:I, s:f, s:s, s:o}", "id",
        b->id, "vm", json_string_or_null(b->vm_id), "vm_name", b->vm_name, "project", b->project,
        "pool", b->pool_id, "host", b->host, "parent", json_string_or_null(b->parent_id), "kind",
        backup_kind_to_string(b->kind), "checkpoint", json_string_or_null(b->checkpoint), "state",
        backup_state_to_string(b->state), "volume", b->volume, "size_bytes",
        (json_int_t)b->size_bytes, "data_bytes", (json_int_t)b->data_bytes, "mbps", b->mbps,
        "created_at", b->created_at, "finished_at", json_string_or_null(b->finished_at));
}
