/* The VM action decoders (src/model/vm_request.c): stop and migrate bodies. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "model/vm_request.h"
#include "util/error_codes.h"

static json_t *
body(const char *text)
{
    json_t *j = json_loads(text, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, NULL);
    assert_non_null(j);
    return j;
}

/* The decoder refuses text with the code given. */
static void
assert_stop_refused(const char *text, const char *code)
{
    VmStopRequest r;
    NbError *err = NULL;
    json_t *j = body(text);
    assert_int_equal(vm_request_parse_stop(j, &r, &err), -1);
    assert_non_null(err);
    assert_string_equal(err->code, code);
    nb_error_free(err);
    json_decref(j);
}

static void
assert_migrate_refused(const char *text, const char *code)
{
    VmMigrateRequest r;
    NbError *err = NULL;
    json_t *j = body(text);
    assert_int_equal(vm_request_parse_migrate(j, &r, &err), -1);
    assert_non_null(err);
    assert_string_equal(err->code, code);
    nb_error_free(err);
    json_decref(j);
}

static void
test_stop(void **state)
{
    VmStopRequest r;
    NbError *err = NULL;
    assert_int_equal(vm_request_parse_stop(NULL, &r, &err), 0);
    assert_false(r.force);
    assert_int_equal(r.timeout_s, -1);

    json_t *j = body("{\"force\": true, \"timeout\": 3600}");
    assert_int_equal(vm_request_parse_stop(j, &r, &err), 0);
    json_decref(j);
    assert_true(r.force);
    assert_int_equal(r.timeout_s, 3600);

    assert_stop_refused("{\"timeout\": 3601}", NB_ERR_INVALID_REQUEST);
    assert_stop_refused("{\"timeout\": -1}", NB_ERR_INVALID_REQUEST);
    assert_stop_refused("{\"timeout\": 1.5}", NB_ERR_INVALID_REQUEST);
    assert_stop_refused("{\"force\": 1}", NB_ERR_INVALID_REQUEST);
    assert_stop_refused("{\"forse\": true}", NB_ERR_INVALID_REQUEST);
    assert_stop_refused("[1]", NB_ERR_INVALID_REQUEST);
}

/* What the API stores as the task's params reads back the same; anything else the defaults. */
static void
test_stop_params_round_trip(void **state)
{
    VmStopRequest in = {.force = false, .timeout_s = 0}, out;
    char *text = vm_request_stop_to_text(&in);
    assert_non_null(text);
    vm_request_stop_from_text(text, &out);
    assert_false(out.force);
    assert_int_equal(out.timeout_s, 0);
    free(text);

    in = (VmStopRequest){.force = true, .timeout_s = -1};
    text = vm_request_stop_to_text(&in);
    vm_request_stop_from_text(text, &out);
    assert_true(out.force);
    assert_int_equal(out.timeout_s, -1);
    free(text);

    vm_request_stop_from_text(NULL, &out);
    assert_false(out.force);
    assert_int_equal(out.timeout_s, -1);
    vm_request_stop_from_text("{\"timeout\": \"x\", \"force\": true}", &out);
    assert_false(out.force);
    assert_int_equal(out.timeout_s, -1);
    /* Params written before the decoder moved (the request body as it came) still read. */
    vm_request_stop_from_text("{\"timeout\": 5}", &out);
    assert_int_equal(out.timeout_s, 5);
}

static void
test_migrate(void **state)
{
    VmMigrateRequest r;
    NbError *err = NULL;
    assert_int_equal(vm_request_parse_migrate(NULL, &r, &err), 0);
    assert_string_equal(r.host, "");
    assert_int_equal(r.offline, -1);
    assert_int_equal(r.bandwidth_mib, 0);

    json_t *j = body("{\"host\": \"node-a\", \"offline\": false, \"bandwidth_mib\": 1000000}");
    assert_int_equal(vm_request_parse_migrate(j, &r, &err), 0);
    json_decref(j);
    assert_string_equal(r.host, "node-a");
    assert_int_equal(r.offline, 0);
    assert_int_equal(r.bandwidth_mib, 1000000);

    j = body("{\"host\": \"5e2bf927-fa75-4387-ab96-a7ae3c76aee6\", \"offline\": true}");
    assert_int_equal(vm_request_parse_migrate(j, &r, &err), 0);
    json_decref(j);
    assert_string_equal(r.host, "5e2bf927-fa75-4387-ab96-a7ae3c76aee6");
    assert_int_equal(r.offline, 1);

    j = body("{\"host\": null}");
    assert_int_equal(vm_request_parse_migrate(j, &r, &err), 0);
    json_decref(j);
    assert_string_equal(r.host, "");

    assert_migrate_refused("{\"host\": \"../etc\"}", NB_ERR_INVALID_NAME);
    assert_migrate_refused("{\"host\": 7}", NB_ERR_INVALID_NAME);
    assert_migrate_refused("{\"offline\": \"yes\"}", NB_ERR_INVALID_REQUEST);
    assert_migrate_refused("{\"bandwidth_mib\": 0}", NB_ERR_INVALID_REQUEST);
    assert_migrate_refused("{\"bandwidth_mib\": 1000001}", NB_ERR_INVALID_REQUEST);
    assert_migrate_refused("{\"live\": true}", NB_ERR_INVALID_REQUEST);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stop),
        cmocka_unit_test(test_stop_params_round_trip),
        cmocka_unit_test(test_migrate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
