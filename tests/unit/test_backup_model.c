/* The backup model: the strict decoders of a create and a restore request (each bad input with
 * its stable code), the state and kind names, JSON (empty links as null) and the names on
 * hosts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "model/backup.h"
#include "util/error_codes.h"

static int
create(const char *text, char vm[NB_NAME_MAX + 1], bool *inc, char pool[NB_NAME_MAX + 1],
       NbError **err)
{
    json_error_t e;
    json_t *j = json_loads(text, JSON_DECODE_ANY, &e);
    if (!j)
        fail_msg("not JSON: %s", text);
    int r = backup_create_request_decode(j, vm, inc, pool, err);
    json_decref(j);
    return r;
}

static void
test_create_decode(void **state)
{
    (void)state;
    char vm[NB_NAME_MAX + 1], pool[NB_NAME_MAX + 1];
    bool inc = true;
    NbError *err = NULL;
    assert_int_equal(create("{\"vm\": \"db1\"}", vm, &inc, pool, &err), 0);
    assert_string_equal(vm, "db1");
    assert_false(inc);
    assert_string_equal(pool, "");
    assert_int_equal(create("{\"vm\": \"0b7c5e4e-8d0f-4c1e-9a51-3f1f2a1b2c3d\", \"incremental\": "
                            "true, \"pool\": \"backups\"}",
                            vm, &inc, pool, &err),
                     0);
    assert_string_equal(vm, "0b7c5e4e-8d0f-4c1e-9a51-3f1f2a1b2c3d");
    assert_true(inc);
    assert_string_equal(pool, "backups");

    static const struct {
        const char *body, *code;
    } bad[] = {
        {"{}", NB_ERR_INVALID_REQUEST},
        {"[]", NB_ERR_INVALID_REQUEST},
        {"{\"vm\": \"bad name!\"}", NB_ERR_INVALID_NAME},
        {"{\"vm\": 5}", NB_ERR_INVALID_REQUEST},
        {"{\"vm\": \"db1\", \"incremental\": \"yes\"}", NB_ERR_INVALID_REQUEST},
        {"{\"vm\": \"db1\", \"pool\": \"../x\"}", NB_ERR_INVALID_NAME},
        {"{\"vm\": \"db1\", \"colour\": \"red\"}", NB_ERR_INVALID_REQUEST},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(create(bad[i].body, vm, &inc, pool, &err), -1);
        assert_non_null(err);
        if (strcmp(err->code, bad[i].code) != 0)
            fail_msg("%s: %s, not %s", bad[i].body, err->code, bad[i].code);
        nb_error_free(err);
        err = NULL;
    }
}

static void
test_restore_decode(void **state)
{
    (void)state;
    char name[NB_NAME_MAX + 1], pool[NB_NAME_MAX + 1];
    NbError *err = NULL;
    json_t *j = json_pack("{s:s, s:b}", "name", "db1-back", "as_vm", 0);
    assert_int_equal(backup_restore_request_decode(j, name, pool, &err), 0);
    assert_string_equal(name, "db1-back");
    assert_string_equal(pool, "");
    json_decref(j);
    j = json_pack("{s:s, s:s}", "name", "x y", "pool", "p");
    assert_int_equal(backup_restore_request_decode(j, name, pool, &err), -1);
    assert_string_equal(err->code, NB_ERR_INVALID_NAME);
    nb_error_free(err);
    err = NULL;
    json_decref(j);
    j = json_pack("{s:s, s:s}", "name", "ok", "as_vm", "yes");
    assert_int_equal(backup_restore_request_decode(j, name, pool, &err), -1);
    assert_string_equal(err->code, NB_ERR_INVALID_REQUEST);
    nb_error_free(err);
    json_decref(j);
}

static void
test_names_and_json(void **state)
{
    (void)state;
    assert_string_equal(backup_state_to_string(BACKUP_STATE_RESTORING), "restoring");
    assert_int_equal(backup_state_from_string("deleting"), BACKUP_STATE_DELETING);
    assert_int_equal(backup_state_from_string("nope"), _BACKUP_STATE_INVALID);
    assert_int_equal(backup_kind_from_string("incremental"), BACKUP_KIND_INCREMENTAL);
    Backup b = {0};
    snprintf(b.id, sizeof(b.id), "0b7c5e4e-8d0f-4c1e-9a51-3f1f2a1b2c3d");
    backup_name_on_host(b.id, b.volume);
    assert_string_equal(b.volume, "nimbus-backup-0b7c5e4e-8d0f-4c1e-9a51-3f1f2a1b2c3d.qcow2");
    backup_checkpoint_name(b.id, b.checkpoint);
    assert_string_equal(b.checkpoint, "nimbus-ckpt-0b7c5e4e-8d0f-4c1e-9a51-3f1f2a1b2c3d");
    b.size_bytes = 1ull << 30;
    b.mbps = 12.5;
    json_t *j = backup_to_json(&b);
    assert_non_null(j);
    assert_true(json_is_null(json_object_get(j, "vm")));
    assert_true(json_is_null(json_object_get(j, "parent")));
    assert_true(json_is_null(json_object_get(j, "finished_at")));
    assert_string_equal(json_string_value(json_object_get(j, "kind")), "full");
    assert_string_equal(json_string_value(json_object_get(j, "checkpoint")), b.checkpoint);
    assert_int_equal(json_integer_value(json_object_get(j, "size_bytes")), 1 << 30);
    json_decref(j);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_decode),
        cmocka_unit_test(test_restore_decode),
        cmocka_unit_test(test_names_and_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
