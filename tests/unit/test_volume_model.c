/* The volume model: the strict decoders of create, attach and resize requests (each bad input
 * with its stable code), JSON, names on hosts, disk target picking, and volume snapshots. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "model/volume.h"
#include "util/error_codes.h"

#define UUID "7e57a1b2-c3d4-4e5f-8a9b-0c1d2e3f4a5b"

static json_t *
parse(const char *text)
{
    json_error_t e;
    json_t *j = json_loads(text, JSON_ALLOW_NUL | JSON_DECODE_ANY, &e);
    if (!j)
        fail_msg("not JSON: %s (%s)", text, e.text);
    return j;
}

static void
expect_code(int r, NbError *err, const char *text, const char *code)
{
    if (r != -1)
        fail_msg("accepted %s", text);
    if (!err)
        fail_msg("%s: refused without an error", text);
    if (strcmp(err->code, code) != 0)
        fail_msg("%s: code %s (%s), expected %s", text, err->code, err->message, code);
    assert_non_null(err->message);
    nb_error_free(err);
}

static VolumeCreateRequest
create_ok(const char *text)
{
    json_t *j = parse(text);
    NbError *err = NULL;
    VolumeCreateRequest r;
    memset(&r, 0x5a, sizeof(r));
    if (volume_create_request_decode(j, &r, &err) != 0)
        fail_msg("refused %s: %s %s", text, err->code, err->message);
    json_decref(j);
    return r;
}

static void
create_bad(const char *text, const char *code)
{
    json_t *j = parse(text);
    NbError *err = NULL;
    VolumeCreateRequest r, before;
    memset(&r, 0x5a, sizeof(r));
    before = r;
    int rc = volume_create_request_decode(j, &r, &err);
    expect_code(rc, err, text, code);
    assert_memory_equal(&r, &before, sizeof(r));
    json_decref(j);
}

static void
test_tables(void **state)
{
    static const char *const states[] = {"creating",  "available", "attaching", "attached",
                                         "detaching", "deleting",  "error"};
    for (int s = 0; s < _VOLUME_STATE_MAX; s++) {
        assert_string_equal(volume_state_to_string((VolumeState)s), states[s]);
        assert_int_equal(volume_state_from_string(states[s]), s);
    }
    assert_int_equal(volume_state_from_string("busy"), _VOLUME_STATE_INVALID);
    assert_null(volume_state_to_string(_VOLUME_STATE_MAX));
    assert_string_equal(volume_bus_to_string(VOLUME_BUS_VIRTIO), "virtio");
    assert_string_equal(volume_bus_to_string(VOLUME_BUS_SCSI), "scsi");
    assert_int_equal(volume_bus_from_string("scsi"), VOLUME_BUS_SCSI);
    assert_int_equal(volume_bus_from_string("ide"), _VOLUME_BUS_INVALID);
    assert_int_equal(volume_bus_from_string(NULL), _VOLUME_BUS_INVALID);

    char buf[VOLUME_NAME_ON_HOST_MAX + 1];
    volume_name_on_host(UUID, buf);
    assert_string_equal(buf, "nimbus-vol-" UUID);
}

static void
test_create_request(void **state)
{
    VolumeCreateRequest r = create_ok("{\"name\": \"data\", \"size_gib\": 10}");
    assert_string_equal(r.name, "data");
    assert_int_equal(r.size_gib, 10);
    assert_string_equal(r.pool, "");
    assert_string_equal(r.host, "");
    assert_string_equal(r.image, "");

    r = create_ok("{\"name\": \"data\", \"size_gib\": 65536, \"pool\": \"ceph\", \"host\": "
                  "\"node-1\", \"image\": \"" UUID "\"}");
    assert_int_equal(r.size_gib, VOLUME_SIZE_GIB_MAX);
    assert_string_equal(r.pool, "ceph");
    assert_string_equal(r.host, "node-1");
    assert_string_equal(r.image, UUID);
    r = create_ok("{\"name\": \"d\", \"size_gib\": 1, \"pool\": null, \"host\": null, \"image\": "
                  "null}");
    assert_int_equal(r.size_gib, 1);
    assert_string_equal(r.pool, "");

    static const char *const sizes[] = {"0",   "65537", "-1",  "\"10\"", "1.5",
                                        "1.0", "true",  "[1]", "{}",     "9223372036854775807",
                                        "1e3"};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        char body[128];
        snprintf(body, sizeof(body), "{\"name\": \"d\", \"size_gib\": %s}", sizes[i]);
        create_bad(body, NB_ERR_VOLUME_INVALID_SIZE);
    }
    create_bad("{\"name\": \"d\"}", NB_ERR_INVALID_REQUEST);
    create_bad("{\"name\": \"d\", \"size_gib\": null}", NB_ERR_INVALID_REQUEST);
    create_bad("{\"size_gib\": 1}", NB_ERR_INVALID_REQUEST);
    create_bad("{\"name\": \"a b\", \"size_gib\": 1}", NB_ERR_INVALID_NAME);
    create_bad("{\"name\": \"" UUID "\", \"size_gib\": 1}", NB_ERR_INVALID_NAME);
    create_bad("{\"name\": \"d\", \"size_gib\": 1, \"pool\": \"a/b\"}", NB_ERR_INVALID_NAME);
    create_bad("{\"name\": \"d\", \"size_gib\": 1, \"host\": \"\"}", NB_ERR_INVALID_NAME);
    create_bad("{\"name\": \"d\", \"size_gib\": 1, \"image\": \"../x\"}", NB_ERR_INVALID_NAME);
    create_bad("{\"name\": \"d\", \"size_gib\": 1, \"pool\": 5}", NB_ERR_INVALID_REQUEST);
    create_bad("{\"name\": \"d\", \"size_gib\": 1, \"pool\": \"a\\u0000b\"}",
               NB_ERR_INVALID_REQUEST);
    char longname[300], body[400];
    memset(longname, 'a', 64);
    longname[64] = '\0';
    snprintf(body, sizeof(body), "{\"name\": \"d\", \"size_gib\": 1, \"pool\": \"%s\"}", longname);
    create_bad(body, NB_ERR_INVALID_NAME);
    longname[63] = '\0';
    snprintf(body, sizeof(body), "{\"name\": \"d\", \"size_gib\": 1, \"pool\": \"%s\"}", longname);
    r = create_ok(body);
    assert_string_equal(r.pool, longname);
    create_bad("{\"name\": \"d\", \"size_gib\": 1, \"vm\": \"x\"}", NB_ERR_INVALID_REQUEST);
    create_bad("{\"name\": \"d\", \"size_gib\": 1, \"format\": \"raw\"}", NB_ERR_INVALID_REQUEST);
    create_bad("[]", NB_ERR_INVALID_REQUEST);
    NbError *err = NULL;
    VolumeCreateRequest out;
    int rc = volume_create_request_decode(NULL, &out, &err);
    expect_code(rc, err, "NULL", NB_ERR_INVALID_REQUEST);
}

static void
attach(const char *text, int expect, const char *code, const char *vm_expect, VolumeBus bus_expect)
{
    json_t *j = parse(text);
    NbError *err = NULL;
    char vm[NB_NAME_MAX + 1] = "untouched";
    VolumeBus bus = (VolumeBus)42;
    int r = volume_attach_request_decode(j, vm, &bus, &err);
    if (expect == 0) {
        if (r != 0)
            fail_msg("refused %s: %s %s", text, err->code, err->message);
        assert_string_equal(vm, vm_expect);
        assert_int_equal(bus, bus_expect);
    } else {
        expect_code(r, err, text, code);
        assert_string_equal(vm, "untouched");
        assert_int_equal(bus, 42);
    }
    json_decref(j);
}

static void
test_attach_request(void **state)
{
    attach("{\"vm\": \"web-1\"}", 0, NULL, "web-1", VOLUME_BUS_VIRTIO);
    attach("{\"vm\": \"web-1\", \"bus\": null}", 0, NULL, "web-1", VOLUME_BUS_VIRTIO);
    attach("{\"vm\": \"web-1\", \"bus\": \"virtio\"}", 0, NULL, "web-1", VOLUME_BUS_VIRTIO);
    attach("{\"vm\": \"" UUID "\", \"bus\": \"scsi\"}", 0, NULL, UUID, VOLUME_BUS_SCSI);
    attach("{\"vm\": \"web-1\", \"bus\": \"ide\"}", -1, NB_ERR_VOLUME_INVALID_BUS, NULL, 0);
    attach("{\"vm\": \"web-1\", \"bus\": \"SCSI\"}", -1, NB_ERR_VOLUME_INVALID_BUS, NULL, 0);
    attach("{\"vm\": \"web-1\", \"bus\": \"\"}", -1, NB_ERR_VOLUME_INVALID_BUS, NULL, 0);
    attach("{\"vm\": \"web-1\", \"bus\": \"scsi\\u0000x\"}", -1, NB_ERR_VOLUME_INVALID_BUS, NULL,
           0);
    attach("{\"vm\": \"web-1\", \"bus\": 1}", -1, NB_ERR_VOLUME_INVALID_BUS, NULL, 0);
    attach("{}", -1, NB_ERR_INVALID_REQUEST, NULL, 0);
    attach("{\"vm\": \"\"}", -1, NB_ERR_INVALID_REQUEST, NULL, 0);
    attach("{\"vm\": \"a b\"}", -1, NB_ERR_INVALID_REQUEST, NULL, 0);
    attach("{\"vm\": 3}", -1, NB_ERR_INVALID_REQUEST, NULL, 0);
    attach("{\"vm\": \"web-1\", \"target\": \"vdc\"}", -1, NB_ERR_INVALID_REQUEST, NULL, 0);
    attach("[\"web-1\"]", -1, NB_ERR_INVALID_REQUEST, NULL, 0);
}

static void
resize(const char *text, int expect, const char *code, uint64_t size_expect)
{
    json_t *j = parse(text);
    NbError *err = NULL;
    uint64_t size = 777;
    int r = volume_resize_request_decode(j, &size, &err);
    if (expect == 0) {
        if (r != 0)
            fail_msg("refused %s: %s %s", text, err->code, err->message);
        assert_int_equal(size, size_expect);
    } else {
        expect_code(r, err, text, code);
        assert_int_equal(size, 777);
    }
    json_decref(j);
}

static void
test_resize_request(void **state)
{
    resize("{\"size_gib\": 20}", 0, NULL, 20);
    resize("{\"size_gib\": 65536}", 0, NULL, 65536);
    resize("{\"size_gib\": 0}", -1, NB_ERR_VOLUME_INVALID_SIZE, 0);
    resize("{\"size_gib\": 65537}", -1, NB_ERR_VOLUME_INVALID_SIZE, 0);
    resize("{\"size_gib\": -1}", -1, NB_ERR_VOLUME_INVALID_SIZE, 0);
    resize("{\"size_gib\": \"10\"}", -1, NB_ERR_VOLUME_INVALID_SIZE, 0);
    resize("{\"size_gib\": 1.5}", -1, NB_ERR_VOLUME_INVALID_SIZE, 0);
    resize("{}", -1, NB_ERR_INVALID_REQUEST, 0);
    resize("{\"size_gib\": 20, \"shrink\": true}", -1, NB_ERR_INVALID_REQUEST, 0);
    resize("20", -1, NB_ERR_INVALID_REQUEST, 0);
}

static void
test_to_json(void **state)
{
    Volume v = {.size_gib = 10, .state = VOLUME_STATE_AVAILABLE, .bus = VOLUME_BUS_VIRTIO};
    snprintf(v.id, sizeof(v.id), UUID);
    snprintf(v.project, sizeof(v.project), "00000000-0000-4000-8000-000000000001");
    snprintf(v.name, sizeof(v.name), "data");
    snprintf(v.pool_id, sizeof(v.pool_id), "11111111-0000-4000-8000-000000000001");
    snprintf(v.format, sizeof(v.format), "qcow2");
    snprintf(v.created_at, sizeof(v.created_at), "2026-12-05T10:00:00Z");
    json_t *j = volume_to_json(&v);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "id")), UUID);
    assert_string_equal(json_string_value(json_object_get(j, "name")), "data");
    assert_string_equal(json_string_value(json_object_get(j, "project")), v.project);
    assert_string_equal(json_string_value(json_object_get(j, "pool")), v.pool_id);
    assert_int_equal(json_integer_value(json_object_get(j, "size_gib")), 10);
    assert_string_equal(json_string_value(json_object_get(j, "format")), "qcow2");
    assert_string_equal(json_string_value(json_object_get(j, "state")), "available");
    assert_string_equal(json_string_value(json_object_get(j, "created_at")), v.created_at);
    assert_true(json_is_null(json_object_get(j, "host")));
    assert_true(json_is_null(json_object_get(j, "vm")));
    assert_true(json_is_null(json_object_get(j, "bus")));
    assert_true(json_is_null(json_object_get(j, "target")));
    assert_true(json_is_null(json_object_get(j, "image")));
    json_decref(j);

    v.state = VOLUME_STATE_ATTACHED;
    v.bus = VOLUME_BUS_SCSI;
    v.size_gib = VOLUME_SIZE_GIB_MAX;
    snprintf(v.vm_id, sizeof(v.vm_id), "22222222-0000-4000-8000-000000000001");
    snprintf(v.target, sizeof(v.target), "sdb");
    snprintf(v.host, sizeof(v.host), "node-1");
    snprintf(v.source_image, sizeof(v.source_image), "33333333-0000-4000-8000-000000000001");
    j = volume_to_json(&v);
    assert_string_equal(json_string_value(json_object_get(j, "state")), "attached");
    assert_string_equal(json_string_value(json_object_get(j, "vm")), v.vm_id);
    assert_string_equal(json_string_value(json_object_get(j, "bus")), "scsi");
    assert_string_equal(json_string_value(json_object_get(j, "target")), "sdb");
    assert_string_equal(json_string_value(json_object_get(j, "host")), "node-1");
    assert_string_equal(json_string_value(json_object_get(j, "image")), v.source_image);
    assert_int_equal(json_integer_value(json_object_get(j, "size_gib")), VOLUME_SIZE_GIB_MAX);
    json_decref(j);

    /* A state out of range (a corrupt row) still gives an answer, with state null. */
    v.state = (VolumeState)99;
    j = volume_to_json(&v);
    assert_non_null(j);
    assert_true(json_is_null(json_object_get(j, "state")));
    json_decref(j);
}

static void
pick(VolumeBus bus, const char *const *used, size_t n, const char *expect)
{
    char buf[VOLUME_TARGET_MAX] = "zz";
    int r = volume_target_pick(bus, used, n, buf);
    if (!expect) {
        assert_int_equal(r, -1);
        assert_string_equal(buf, "zz");
    } else {
        assert_int_equal(r, 0);
        assert_string_equal(buf, expect);
    }
}

static void
test_target_pick(void **state)
{
    pick(VOLUME_BUS_VIRTIO, NULL, 0, "vdb");
    pick(VOLUME_BUS_SCSI, NULL, 0, "sdb"); /* sda: the seed CD-ROM */

    static const char *const all_virtio[] = {"vdb", "vdc", "vdd", "vde",
                                             "vdf", "vdg", "vdh", "vdi"};
    pick(VOLUME_BUS_VIRTIO, all_virtio, 8, NULL);
    pick(VOLUME_BUS_VIRTIO, all_virtio, 7, "vdi");
    /* The limit counts both buses: eight virtio volumes leave no room on scsi. */
    pick(VOLUME_BUS_SCSI, all_virtio, 8, NULL);

    static const char *const gaps[] = {"vdb", "vdd", "vde"};
    pick(VOLUME_BUS_VIRTIO, gaps, 3, "vdc");
    static const char *const gaps2[] = {"vdc", "vdb", "vdd", "vdf"};
    pick(VOLUME_BUS_VIRTIO, gaps2, 4, "vde");

    /* Letters are per bus: a used vdb does not take sdb, nor sdb vdb. */
    static const char *const mixed[] = {"vdb", "vdc", "sdb"};
    pick(VOLUME_BUS_SCSI, mixed, 3, "sdc");
    pick(VOLUME_BUS_VIRTIO, mixed, 3, "vdd");
    static const char *const scsi_only[] = {"sdb", "sdc", "sdd"};
    pick(VOLUME_BUS_VIRTIO, scsi_only, 3, "vdb");

    static const char *const four_four[] = {"vdb", "vdc", "vdd", "vde", "sdb", "sdc", "sdd", "sde"};
    pick(VOLUME_BUS_VIRTIO, four_four, 8, NULL);
    pick(VOLUME_BUS_SCSI, four_four, 7, "sde");

    /* Not data targets (the root disk, the CD-ROM, junk, repeats) do not count. */
    static const char *const noise[] = {"vda", "sda", "hdc", "vdz", "",    "vdbb", "vdb", "vdb",
                                        "vdb", "vdb", "vdb", "vdb", "vdb", "vdb",  NULL};
    pick(VOLUME_BUS_VIRTIO, noise, sizeof(noise) / sizeof(noise[0]), "vdc");
    pick(VOLUME_BUS_SCSI, noise, sizeof(noise) / sizeof(noise[0]), "sdb");

    pick((VolumeBus)7, NULL, 0, NULL);
    pick(_VOLUME_BUS_INVALID, NULL, 0, NULL);
}

/* from_snapshot: a snapshot's id or VOLUME/SNAPSHOT; volume snapshots' own decoder and JSON. */
static void
test_snapshots(void **state)
{
    VolumeCreateRequest r = create_ok("{\"name\": \"d\", \"size_gib\": 1}");
    assert_string_equal(r.from_snapshot, "");
    r = create_ok("{\"name\": \"d\", \"size_gib\": 1, \"from_snapshot\": \"" UUID "\"}");
    assert_string_equal(r.from_snapshot, UUID);
    r = create_ok("{\"name\": \"d\", \"size_gib\": 1, \"from_snapshot\": \"data1/s1\"}");
    assert_string_equal(r.from_snapshot, "data1/s1");
    r = create_ok("{\"name\": \"d\", \"size_gib\": 1, \"from_snapshot\": \"" UUID "/" UUID
                  "\", \"pool\": \"ceph\"}");
    assert_string_equal(r.from_snapshot, UUID "/" UUID);
    static const char *const bad[] = {"s1",         "data1/",  "/s1",        "a/b/c",
                                      "data1/../x", "../x",    "a b/s1",     "d/s 1",
                                      "",           "d/s1\\n", "data1/s1/.", "\\u0000"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char body[256];
        snprintf(body, sizeof(body),
                 "{\"name\": \"d\", \"size_gib\": 1, \"from_snapshot\": \"%s\"}", bad[i]);
        json_t *j = parse(body);
        NbError *err = NULL;
        VolumeCreateRequest got;
        if (volume_create_request_decode(j, &got, &err) == 0 && got.from_snapshot[0])
            fail_msg("accepted %s", body);
        nb_error_free(err);
        json_decref(j);
    }
    create_bad("{\"name\": \"d\", \"size_gib\": 1, \"from_snapshot\": \"s1\"}",
               NB_ERR_INVALID_NAME);
    create_bad("{\"name\": \"d\", \"size_gib\": 1, \"from_snapshot\": 5}", NB_ERR_INVALID_REQUEST);
    create_bad("{\"name\": \"d\", \"size_gib\": 1, \"from_snapshot\": \"v/s\", \"image\": "
               "\"img\"}",
               NB_ERR_INVALID_REQUEST);
    char longref[400], body[512];
    memset(longref, 'a', 300);
    longref[300] = '\0';
    snprintf(body, sizeof(body), "{\"name\": \"d\", \"size_gib\": 1, \"from_snapshot\": \"%s\"}",
             longref);
    create_bad(body, NB_ERR_INVALID_REQUEST);

    /* The snapshot's create request: {name} only, the name rules. */
    char name[NB_NAME_MAX + 1];
    NbError *err = NULL;
    json_t *j = parse("{\"name\": \"s1\"}");
    assert_int_equal(volume_snapshot_create_request_decode(j, name, &err), 0);
    assert_string_equal(name, "s1");
    json_decref(j);
    static const struct {
        const char *text, *code;
    } sbad[] = {{"{}", NB_ERR_INVALID_REQUEST},
                {"{\"name\": \"a b\"}", NB_ERR_INVALID_NAME},
                {"{\"name\": \"" UUID "\"}", NB_ERR_INVALID_NAME},
                {"{\"name\": \"s\", \"memory\": true}", NB_ERR_INVALID_REQUEST},
                {"[]", NB_ERR_INVALID_REQUEST}};
    for (size_t i = 0; i < sizeof(sbad) / sizeof(sbad[0]); i++) {
        j = parse(sbad[i].text);
        int rc = volume_snapshot_create_request_decode(j, name, &err);
        expect_code(rc, err, sbad[i].text, sbad[i].code);
        err = NULL;
        json_decref(j);
    }

    static const char *const states[] = {"creating", "ready", "deleting", "error"};
    for (int st = 0; st < _VOLUME_SNAPSHOT_STATE_MAX; st++) {
        assert_string_equal(volume_snapshot_state_to_string((VolumeSnapshotState)st), states[st]);
        assert_int_equal(volume_snapshot_state_from_string(states[st]), st);
    }
    assert_int_equal(volume_snapshot_state_from_string("available"),
                     _VOLUME_SNAPSHOT_STATE_INVALID);
    char buf[VOLUME_NAME_ON_HOST_MAX + 1];
    volume_snapshot_name_on_host(UUID, buf);
    assert_string_equal(buf, "nimbus-vsnap-" UUID);

    VolumeSnapshot snap = {.size_gib = 3, .state = VOLUME_SNAPSHOT_STATE_READY};
    snprintf(snap.id, sizeof(snap.id), UUID);
    snprintf(snap.volume_id, sizeof(snap.volume_id), "11111111-0000-4000-8000-000000000001");
    snprintf(snap.project, sizeof(snap.project), "00000000-0000-4000-8000-000000000001");
    snprintf(snap.pool_id, sizeof(snap.pool_id), "22222222-0000-4000-8000-000000000001");
    snprintf(snap.name, sizeof(snap.name), "s1");
    snprintf(snap.created_at, sizeof(snap.created_at), "2026-12-05T10:00:00Z");
    j = volume_snapshot_to_json(&snap);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "id")), UUID);
    assert_string_equal(json_string_value(json_object_get(j, "name")), "s1");
    assert_string_equal(json_string_value(json_object_get(j, "volume")), snap.volume_id);
    assert_string_equal(json_string_value(json_object_get(j, "project")), snap.project);
    assert_string_equal(json_string_value(json_object_get(j, "pool")), snap.pool_id);
    assert_int_equal(json_integer_value(json_object_get(j, "size_gib")), 3);
    assert_string_equal(json_string_value(json_object_get(j, "state")), "ready");
    assert_string_equal(json_string_value(json_object_get(j, "created_at")), snap.created_at);
    json_decref(j);

    Volume v = {.size_gib = 3, .state = VOLUME_STATE_AVAILABLE};
    snprintf(v.source_snapshot, sizeof(v.source_snapshot), UUID);
    j = volume_to_json(&v);
    assert_string_equal(json_string_value(json_object_get(j, "snapshot")), UUID);
    json_decref(j);
    v.source_snapshot[0] = '\0';
    j = volume_to_json(&v);
    assert_true(json_is_null(json_object_get(j, "snapshot")));
    json_decref(j);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tables),         cmocka_unit_test(test_create_request),
        cmocka_unit_test(test_attach_request), cmocka_unit_test(test_resize_request),
        cmocka_unit_test(test_to_json),        cmocka_unit_test(test_target_pick),
        cmocka_unit_test(test_snapshots),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
