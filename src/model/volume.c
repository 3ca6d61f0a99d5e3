#include "volume.h"

#include <stdio.h>
#include <string.h>

#include "../util/strutil.h"
#include "enum_table.h"
#include "json_req.h"

static const char *const volume_state_table[_VOLUME_STATE_MAX] = {
    [VOLUME_STATE_CREATING] = "creating",   [VOLUME_STATE_AVAILABLE] = "available",
    [VOLUME_STATE_ATTACHING] = "attaching", [VOLUME_STATE_ATTACHED] = "attached",
    [VOLUME_STATE_DETACHING] = "detaching", [VOLUME_STATE_DELETING] = "deleting",
    [VOLUME_STATE_ERROR] = "error",
};
DEFINE_STRING_TABLE(volume_state, VolumeState, volume_state_table)

static const char *const volume_bus_table[_VOLUME_BUS_MAX] = {
    [VOLUME_BUS_VIRTIO] = "virtio",
    [VOLUME_BUS_SCSI] = "scsi",
};
DEFINE_STRING_TABLE(volume_bus, VolumeBus, volume_bus_table)

void
volume_name_on_host(const char *id, char buf[VOLUME_NAME_ON_HOST_MAX + 1])
{
    snprintf(buf, VOLUME_NAME_ON_HOST_MAX + 1, "nimbus-vol-%s", id);
}

/* size_gib: an integer (not "10", not 1.5 or 1.0) in 1..VOLUME_SIZE_GIB_MAX. */
static int
req_size(json_t *body, uint64_t *ret, NbError **err)
{
    json_t *v = json_object_get(body, "size_gib");
    if (!v || json_is_null(v))
        return nb_error_set(err, NB_ERR_INVALID_REQUEST, "field 'size_gib' is required");
    if (!json_is_integer(v) || json_integer_value(v) < 1 ||
        json_integer_value(v) > (json_int_t)VOLUME_SIZE_GIB_MAX)
        return nb_error_set(err, NB_ERR_VOLUME_INVALID_SIZE,
                            "field 'size_gib' must be a whole number of GiB from 1 to %u",
                            VOLUME_SIZE_GIB_MAX);
    *ret = (uint64_t)json_integer_value(v);
    return 0;
}

/* An optional reference to another object: its name or its id ("" when absent). */
static int
req_ref(json_t *body, const char *key, char out[NB_NAME_MAX + 1], NbError **err)
{
    char tmp[256];
    if (json_req_string(body, key, 0, tmp, sizeof(tmp), err) < 0)
        return -1;
    if (json_object_get(body, key) && !json_is_null(json_object_get(body, key)) &&
        !nb_name_is_valid(tmp) && !nb_uuid_is_valid(tmp))
        return nb_error_set(err, NB_ERR_INVALID_NAME, "field '%s' must be a %s's name or id", key,
                            key);
    memcpy(out, tmp, strlen(tmp) + 1); /* a name or an id: it fits */
    return 0;
}

int
volume_create_request_decode(json_t *body, VolumeCreateRequest *ret, NbError **err)
{
    static const char *const fields[] = {"name",  "size_gib",      "pool", "host",
                                         "image", "from_snapshot", NULL};
    VolumeCreateRequest r = {0};
    if (json_req_check_fields(body, fields, err) < 0 ||
        json_req_name(body, "name", "volume", r.name, err) < 0 ||
        req_size(body, &r.size_gib, err) < 0 || req_ref(body, "pool", r.pool, err) < 0 ||
        req_ref(body, "host", r.host, err) < 0 || req_ref(body, "image", r.image, err) < 0 ||
        json_req_string(body, "from_snapshot", 0, r.from_snapshot, sizeof(r.from_snapshot), err) <
            0)
        return -1;
    if (r.from_snapshot[0]) {
        /* A snapshot's id, or "<volume>/<snapshot>" (names or ids). */
        char vol[NB_NAME_MAX + 1] = "";
        const char *slash = strchr(r.from_snapshot, '/');
        const char *snap = slash ? slash + 1 : r.from_snapshot;
        bool ok = !slash || ((size_t)(slash - r.from_snapshot) <= NB_NAME_MAX &&
                             snprintf(vol, sizeof(vol), "%.*s", (int)(slash - r.from_snapshot),
                                      r.from_snapshot) >= 0 &&
                             (nb_name_is_valid(vol) || nb_uuid_is_valid(vol)));
        ok = ok &&
             (slash ? nb_name_is_valid(snap) || nb_uuid_is_valid(snap) : nb_uuid_is_valid(snap));
        if (!ok)
            return nb_error_set(err, NB_ERR_INVALID_NAME,
                                "field 'from_snapshot' must be a volume snapshot's id or "
                                "'<volume>/<snapshot>'");
        if (r.image[0])
            return nb_error_set(err, NB_ERR_INVALID_REQUEST,
                                "a volume is made from an image or from a snapshot, not both");
    }
    *ret = r;
    return 0;
}

int
volume_attach_request_decode(json_t *body, char vm[NB_NAME_MAX + 1], VolumeBus *bus, NbError **err)
{
    static const char *const fields[] = {"vm", "bus", NULL};
    char v[256];
    if (json_req_check_fields(body, fields, err) < 0 ||
        json_req_string(body, "vm", 1, v, sizeof(v), err) < 0)
        return -1;
    if (!nb_name_is_valid(v) && !nb_uuid_is_valid(v))
        return nb_error_set(err, NB_ERR_INVALID_REQUEST, "field 'vm' must be a VM's name or id");
    VolumeBus b = VOLUME_BUS_VIRTIO;
    json_t *jb = json_object_get(body, "bus");
    if (jb && !json_is_null(jb)) {
        b = volume_bus_from_string(json_string_value(jb));
        if (b == _VOLUME_BUS_INVALID || strlen(json_string_value(jb)) != json_string_length(jb))
            return nb_error_set(err, NB_ERR_VOLUME_INVALID_BUS,
                                "field 'bus' must be \"virtio\" or \"scsi\"");
    }
    memcpy(vm, v, strlen(v) + 1);
    *bus = b;
    return 0;
}

int
volume_resize_request_decode(json_t *body, uint64_t *size_gib, NbError **err)
{
    static const char *const fields[] = {"size_gib", NULL};
    uint64_t size = 0;
    if (json_req_check_fields(body, fields, err) < 0 || req_size(body, &size, err) < 0)
        return -1;
    *size_gib = size;
    return 0;
}

json_t *
volume_to_json(const Volume *v)
{
    bool attached = v->vm_id[0] != '\0';
    return json_pack(
        "{s:s, s:s, s:s, s:s, s:o, s:I, s:s, s:s?, s:o, s:o, s:o, s:o, s:o, s:s}", "id", v->id,
        "name", v->name, "project", v->project, "pool", v->pool_id, "host",
        json_string_or_null(v->host), "size_gib", (json_int_t)v->size_gib, "format", v->format,
        "state", volume_state_to_string(v->state), "vm", json_string_or_null(v->vm_id), "bus",
        attached ? json_string(volume_bus_to_string(v->bus)) : json_null(), "target",
        json_string_or_null(v->target), "image", json_string_or_null(v->source_image), "snapshot",
        json_string_or_null(v->source_snapshot), "created_at", v->created_at);
}

/* Index 0..VOLUMES_PER_VM_MAX-1 of target t on bus b, or -1. */
static int
target_index(VolumeBus b, const char *t)
{
    /* vda is the root disk; sda the seed CD-ROM (SATA) that domain_xml.c gives a new VM. */
    const char *prefix = b == VOLUME_BUS_SCSI ? "sd" : "vd";
    if (!t || strncmp(t, prefix, 2) != 0 || t[2] < 'b' || t[2] >= 'b' + VOLUMES_PER_VM_MAX ||
        t[3] != '\0')
        return -1;
    return t[2] - 'b';
}

int
volume_target_pick(VolumeBus bus, const char *const *used, size_t n_used,
                   char buf[VOLUME_TARGET_MAX])
{
    if (bus != VOLUME_BUS_VIRTIO && bus != VOLUME_BUS_SCSI)
        return -1;
    bool taken[_VOLUME_BUS_MAX][VOLUMES_PER_VM_MAX] = {{false}};
    size_t n = 0;
    for (size_t i = 0; i < n_used; i++)
        for (int b = 0; b < _VOLUME_BUS_MAX; b++) {
            int k = target_index((VolumeBus)b, used[i]);
            if (k >= 0 && !taken[b][k]) {
                taken[b][k] = true;
                n++;
            }
        }
    /* The limit is on the VM's data volumes, whatever their bus. */
    if (n >= VOLUMES_PER_VM_MAX)
        return -1;
    for (int k = 0; k < VOLUMES_PER_VM_MAX; k++)
        if (!taken[bus][k]) {
            snprintf(buf, VOLUME_TARGET_MAX, "%s%c", bus == VOLUME_BUS_SCSI ? "sd" : "vd", 'b' + k);
            return 0;
        }
    return -1;
}

/* ---- volume snapshots ---- */

static const char *const volume_snapshot_state_table[_VOLUME_SNAPSHOT_STATE_MAX] = {
    [VOLUME_SNAPSHOT_STATE_CREATING] = "creating",
    [VOLUME_SNAPSHOT_STATE_READY] = "ready",
    [VOLUME_SNAPSHOT_STATE_DELETING] = "deleting",
    [VOLUME_SNAPSHOT_STATE_ERROR] = "error",
};
DEFINE_STRING_TABLE(volume_snapshot_state, VolumeSnapshotState, volume_snapshot_state_table)

void
volume_snapshot_name_on_host(const char *id, char buf[VOLUME_NAME_ON_HOST_MAX + 1])
{
    snprintf(buf, VOLUME_NAME_ON_HOST_MAX + 1, "nimbus-vsnap-%s", id);
}

int
volume_snapshot_create_request_decode(json_t *body, char name[NB_NAME_MAX + 1], NbError **err)
{
    static const char *const fields[] = {"name", NULL};
    return json_req_check_fields(body, fields, err) < 0 ||
                   json_req_name(body, "name", "snapshot", name, err) < 0
               ? -1
               : 0;
}

json_t *
volume_snapshot_to_json(const VolumeSnapshot *s)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:s, s:s}", "id", s->id, "name", s->name,
                     "volume", s->volume_id, "project", s->project, "pool", s->pool_id, "size_gib",
                     (json_int_t)s->size_gib, "state", volume_snapshot_state_to_string(s->state),
                     "created_at", s->created_at);
}
