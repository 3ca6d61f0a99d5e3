/* The snapshot model: the strict decoder of a create request (each bad input with its stable
 * code), the state names, JSON and the name on hosts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "model/snapshot.h"
#include "util/error_codes.h"

static json_t *
parse(const char *text)
{
    json_error_t e;
    json_t *j = json_loads(text, JSON_ALLOW_NUL | JSON_DECODE_ANY, &e);
    if (!j)
        fail_msg("not JSON: %s (%s)", text, e.text);
    return j;
}

static int
decode(const char *text, char name[NB_NAME_MAX + 1], bool *memory,
       char description[SNAPSHOT_DESCRIPTION_MAX + 1], NbError **err)
{
    json_t *j = parse(text);
    int r = snapshot_create_request_decode(j, name, memory, description, err);
    json_decref(j);
    return r;
}

static void
test_decode_good(void **state)
{
    (void)state;
    char name[NB_NAME_MAX + 1], d[SNAPSHOT_DESCRIPTION_MAX + 1];
    bool memory = true;
    NbError *err = NULL;
    assert_int_equal(decode("{\"name\": \"before-upgrade\"}", name, &memory, d, &err), 0);
    assert_string_equal(name, "before-upgrade");
    assert_false(memory);
    assert_string_equal(d, "");
    assert_int_equal(
        decode("{\"name\": \"s1\", \"memory\": true, \"description\": \"a <b> & 'c'\"}", name,
               &memory, d, &err),
        0);
    assert_true(memory);
    assert_string_equal(d, "a <b> & 'c'");
    assert_int_equal(decode("{\"name\": \"s1\", \"memory\": null, \"description\": null}", name,
                            &memory, d, &err),
                     0);
    assert_false(memory);
}

static void
test_decode_bad(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        const char *code;
    } bad[] = {
        {"{}", NB_ERR_INVALID_REQUEST},
        {"{\"name\": \"\"}", NB_ERR_INVALID_NAME},
        {"{\"name\": \"bad name\"}", NB_ERR_INVALID_NAME},
        {"{\"name\": \"7e57a1b2-c3d4-4e5f-8a9b-0c1d2e3f4a5b\"}", NB_ERR_INVALID_NAME},
        {"{\"name\": 5}", NB_ERR_INVALID_REQUEST},
        {"{\"name\": \"s\", \"memory\": \"yes\"}", NB_ERR_INVALID_REQUEST},
        {"{\"name\": \"s\", \"memory\": 1}", NB_ERR_INVALID_REQUEST},
        {"{\"name\": \"s\", \"colour\": \"red\"}", NB_ERR_INVALID_REQUEST},
        {"{\"name\": \"s\", \"description\": \"a\\nb\"}", NB_ERR_INVALID_REQUEST},
        {"{\"name\": \"s\", \"description\": \"a\\u0000b\"}", NB_ERR_INVALID_REQUEST},
        {"{\"name\": \"s\", \"description\": 3}", NB_ERR_INVALID_REQUEST},
        {"[]", NB_ERR_INVALID_REQUEST},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char name[NB_NAME_MAX + 1], d[SNAPSHOT_DESCRIPTION_MAX + 1];
        bool memory = false;
        NbError *err = NULL;
        if (decode(bad[i].text, name, &memory, d, &err) != -1)
            fail_msg("accepted %s", bad[i].text);
        if (!err || strcmp(err->code, bad[i].code) != 0)
            fail_msg("%s: code %s, expected %s", bad[i].text, err ? err->code : "none",
                     bad[i].code);
        nb_error_free(err);
    }
    /* 255 bytes of description fit, 256 do not. */
    char text[600], name[NB_NAME_MAX + 1], d[SNAPSHOT_DESCRIPTION_MAX + 1];
    bool memory;
    NbError *err = NULL;
    snprintf(text, sizeof(text), "{\"name\": \"s\", \"description\": \"%0255d\"}", 0);
    assert_int_equal(decode(text, name, &memory, d, &err), 0);
    assert_int_equal(strlen(d), 255);
    snprintf(text, sizeof(text), "{\"name\": \"s\", \"description\": \"%0256d\"}", 0);
    assert_int_equal(decode(text, name, &memory, d, &err), -1);
    assert_string_equal(err->code, NB_ERR_INVALID_REQUEST);
    nb_error_free(err);
}

static void
test_json_and_names(void **state)
{
    (void)state;
    for (int i = 0; i < _SNAPSHOT_STATE_MAX; i++) {
        const char *s = snapshot_state_to_string((SnapshotState)i);
        assert_non_null(s);
        assert_int_equal(snapshot_state_from_string(s), i);
    }
    assert_int_equal(snapshot_state_from_string("done"), _SNAPSHOT_STATE_INVALID);
    Snapshot s = {.memory = true, .state = SNAPSHOT_STATE_READY};
    snprintf(s.id, sizeof(s.id), "7e57a1b2-c3d4-4e5f-8a9b-0c1d2e3f4a5b");
    snprintf(s.vm_id, sizeof(s.vm_id), "11111111-c3d4-4e5f-8a9b-0c1d2e3f4a5b");
    snprintf(s.project, sizeof(s.project), "22222222-c3d4-4e5f-8a9b-0c1d2e3f4a5b");
    snprintf(s.name, sizeof(s.name), "s1");
    snprintf(s.created_at, sizeof(s.created_at), "2026-01-01T00:00:00.000Z");
    snapshot_libvirt_name(s.id, s.libvirt_name);
    assert_string_equal(s.libvirt_name, "nimbus-snap-7e57a1b2-c3d4-4e5f-8a9b-0c1d2e3f4a5b");
    json_t *j = snapshot_to_json(&s);
    assert_non_null(j);
    char *text = json_dumps(j, JSON_SORT_KEYS | JSON_COMPACT);
    assert_string_equal(text,
                        "{\"created_at\":\"2026-01-01T00:00:00.000Z\",\"description\":\"\","
                        "\"id\":\"7e57a1b2-c3d4-4e5f-8a9b-0c1d2e3f4a5b\",\"memory\":true,"
                        "\"name\":\"s1\",\"project\":\"22222222-c3d4-4e5f-8a9b-0c1d2e3f4a5b\","
                        "\"state\":\"ready\",\"vm\":\"11111111-c3d4-4e5f-8a9b-0c1d2e3f4a5b\"}");
    free(text);
    json_decref(j);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decode_good),
        cmocka_unit_test(test_decode_bad),
        cmocka_unit_test(test_json_and_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
