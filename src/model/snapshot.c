#include "snapshot.h"

#include <stdio.h>
#include <string.h>

#include "enum_table.h"
#include "json_req.h"

static const char *const snapshot_state_table[_SNAPSHOT_STATE_MAX] = {
    [SNAPSHOT_STATE_CREATING] = "creating",   [SNAPSHOT_STATE_READY] = "ready",
    [SNAPSHOT_STATE_REVERTING] = "reverting", [SNAPSHOT_STATE_DELETING] = "deleting",
    [SNAPSHOT_STATE_ERROR] = "error",
};
DEFINE_STRING_TABLE(snapshot_state, SnapshotState, snapshot_state_table)

void
snapshot_libvirt_name(const char *id, char buf[SNAPSHOT_LIBVIRT_NAME_MAX + 1])
{
    snprintf(buf, SNAPSHOT_LIBVIRT_NAME_MAX + 1, "nimbus-snap-%s", id);
}

int
snapshot_create_request_decode(json_t *body, char name[NB_NAME_MAX + 1], bool *memory,
                               char description[SNAPSHOT_DESCRIPTION_MAX + 1], NbError **err)
{
    static const char *const fields[] = {"name", "memory", "description", NULL};
    char n[NB_NAME_MAX + 1], d[SNAPSHOT_DESCRIPTION_MAX + 1] = "";
    if (json_req_check_fields(body, fields, err) < 0 ||
        json_req_name(body, "name", "snapshot", n, err) < 0 ||
        json_req_string(body, "description", 0, d, sizeof(d), err) < 0)
        return -1;
    /* It goes into libvirt's snapshot XML and into tables: one line of printable text. */
    for (const unsigned char *p = (const unsigned char *)d; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            return nb_error_set(err, NB_ERR_INVALID_REQUEST,
                                "field 'description' must not contain control characters");
    json_t *m = json_object_get(body, "memory");
    if (m && !json_is_null(m) && !json_is_boolean(m))
        return nb_error_set(err, NB_ERR_INVALID_REQUEST, "field 'memory' must be true or false");
    memcpy(name, n, sizeof(n));
    memcpy(description, d, sizeof(d));
    *memory = m && json_is_true(m);
    return 0;
}

json_t *
snapshot_to_json(const Snapshot *s)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:b, s:s, s:s, s:s}", "id", s->id, "name", s->name, "vm",
                     s->vm_id, "project", s->project, "memory", s->memory, "description",
                     s->description, "state", snapshot_state_to_string(s->state), "created_at",
                     s->created_at);
}
