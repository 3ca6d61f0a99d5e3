#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "model/flavor.h"
#include "model/image.h"
#include "model/task.h"
#include "model/vm.h"

static json_t *
parse(const char *text)
{
    json_error_t e;
    json_t *j = json_loads(text, 0, &e);
    assert_non_null(j);
    return j;
}

static void
expect_vm_error(const char *body, const char *code)
{
    json_t *j = parse(body);
    VmCreateRequest r;
    NbError *err = NULL;
    assert_int_equal(vm_create_request_parse(j, &r, &err), -1);
    assert_non_null(err);
    if (strcmp(err->code, code) != 0)
        fail_msg("%s: got %s (%s), want %s", body, err->code, err->message, code);
    nb_error_free(err);
    json_decref(j);
}

static void
test_vm_request_ok(void **state)
{
    json_t *j = parse("{\"name\":\"web1\",\"image\":\"tiny\",\"flavor\":\"small\","
                      "\"hostname\":\"web-1\",\"user_data\":\"#!/bin/sh\\necho '$(x)'\\n\"}");
    VmCreateRequest r;
    NbError *err = NULL;
    assert_int_equal(vm_create_request_parse(j, &r, &err), 0);
    assert_string_equal(r.name, "web1");
    assert_string_equal(r.hostname, "web-1");
    assert_string_equal(r.user_data, "#!/bin/sh\necho '$(x)'\n");
    vm_create_request_clear(&r);
    json_decref(j);
}

static void
test_vm_request_errors(void **state)
{
    expect_vm_error("{\"name\":\"a/b\",\"image\":\"i\",\"flavor\":\"f\"}", NB_ERR_INVALID_NAME);
    expect_vm_error("{\"name\":\"..\",\"image\":\"i\",\"flavor\":\"f\"}", NB_ERR_INVALID_NAME);
    expect_vm_error("{\"name\":\"<x>\",\"image\":\"i\",\"flavor\":\"f\"}", NB_ERR_INVALID_NAME);
    expect_vm_error("{\"name\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
                    "\",\"image\":\"i\",\"flavor\":\"f\"}",
                    NB_ERR_INVALID_NAME);
    expect_vm_error("{\"name\":\"a\",\"image\":\"i\",\"flavor\":\"f\",\"extra\":1}",
                    NB_ERR_INVALID_REQUEST);
    expect_vm_error("{\"name\":1,\"image\":\"i\",\"flavor\":\"f\"}", NB_ERR_INVALID_REQUEST);
    expect_vm_error("{\"image\":\"i\",\"flavor\":\"f\"}", NB_ERR_INVALID_REQUEST);
    expect_vm_error("{\"name\":\"a\",\"image\":\"i\",\"flavor\":\"f\",\"hostname\":\"a;b\"}",
                    NB_ERR_INVALID_HOSTNAME);
    expect_vm_error("{\"name\":\"a\",\"image\":\"i\",\"flavor\":\"f\",\"user_data\":5}",
                    NB_ERR_INVALID_REQUEST);
    expect_vm_error("[]", NB_ERR_INVALID_REQUEST);
}

static void
test_vm_user_data_limit(void **state)
{
    size_t n = NB_USER_DATA_MAX + 1;
    char *big = malloc(n + 1);
    memset(big, 'x', n);
    big[n] = '\0';
    json_t *j = json_pack("{s:s, s:s, s:s, s:s}", "name", "a", "image", "i", "flavor", "f",
                          "user_data", big);
    VmCreateRequest r;
    NbError *err = NULL;
    assert_int_equal(vm_create_request_parse(j, &r, &err), -1);
    assert_string_equal(err->code, NB_ERR_USER_DATA_TOO_LARGE);
    nb_error_free(err);
    json_decref(j);
    free(big);
}

static void
test_flavor_request(void **state)
{
    NbError *err = NULL;
    Flavor f;
    json_t *j = parse("{\"name\":\"small\",\"vcpus\":2,\"ram_mib\":256,\"disk_gib\":1}");
    assert_int_equal(flavor_from_request(j, &f, &err), 0);
    assert_int_equal(f.vcpus, 2);
    json_decref(j);
    const char *bad[] = {
        "{\"name\":\"s\",\"vcpus\":0,\"ram_mib\":256,\"disk_gib\":1}",
        "{\"name\":\"s\",\"vcpus\":-1,\"ram_mib\":256,\"disk_gib\":1}",
        "{\"name\":\"s\",\"vcpus\":1.5,\"ram_mib\":256,\"disk_gib\":1}",
        "{\"name\":\"s\",\"vcpus\":\"1\",\"ram_mib\":256,\"disk_gib\":1}",
        "{\"name\":\"s\",\"vcpus\":1,\"ram_mib\":256}",
        "{\"name\":\"s\",\"vcpus\":1,\"ram_mib\":256,\"disk_gib\":1,\"swap\":1}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        j = parse(bad[i]);
        assert_int_equal(flavor_from_request(j, &f, &err), -1);
        assert_string_equal(err->code, NB_ERR_INVALID_REQUEST);
        nb_error_free(err);
        err = NULL;
        json_decref(j);
    }
}

static void
test_image_request(void **state)
{
    NbError *err = NULL;
    Image img;
    json_t *j = parse("{\"name\":\"tiny\",\"disk_format\":\"qcow2\"}");
    assert_int_equal(image_from_request(j, &img, &err), 0);
    assert_int_equal(img.format, IMAGE_FORMAT_QCOW2);
    assert_int_equal(img.state, IMAGE_STATE_QUEUED);
    json_decref(j);
    j = parse("{\"name\":\"tiny\",\"disk_format\":\"vmdk\"}");
    assert_int_equal(image_from_request(j, &img, &err), -1);
    assert_string_equal(err->code, NB_ERR_IMAGE_FORMAT_UNSUPPORTED);
    nb_error_free(err);
    json_decref(j);
}

static void
test_enum_tables(void **state)
{
    for (int i = 0; i < _VM_STATE_MAX; i++)
        assert_int_equal(vm_state_from_string(vm_state_to_string((VmState)i)), i);
    for (int i = 0; i < _TASK_KIND_MAX; i++)
        assert_int_equal(task_kind_from_string(task_kind_to_string((TaskKind)i)), i);
    assert_int_equal(vm_state_from_string("bogus"), _VM_STATE_INVALID);
    assert_null(vm_state_to_string(_VM_STATE_MAX));
    assert_null(vm_state_to_string((VmState)-1));
}

static void
test_vm_json_hides_user_data(void **state)
{
    Vm vm = {.state = VM_STATE_RUNNING, .desired = VM_POWER_RUNNING};
    snprintf(vm.id, sizeof(vm.id), "x");
    vm.user_data = strdup("secret");
    json_t *j = vm_to_json(&vm);
    assert_non_null(j);
    assert_null(json_object_get(j, "user_data"));
    assert_true(json_is_null(json_object_get(j, "task_id")));
    assert_string_equal(json_string_value(json_object_get(j, "state")), "running");
    json_decref(j);
    vm_clear(&vm);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vm_request_ok),           cmocka_unit_test(test_vm_request_errors),
        cmocka_unit_test(test_vm_user_data_limit),      cmocka_unit_test(test_flavor_request),
        cmocka_unit_test(test_image_request),           cmocka_unit_test(test_enum_tables),
        cmocka_unit_test(test_vm_json_hides_user_data),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
