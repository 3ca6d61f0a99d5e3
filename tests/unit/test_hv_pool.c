/*
 * hv_pool.c against a real libvirtd (NIMBUS_TEST_LIBVIRT_URI, default qemu:///system): a dir
 * pool defined, found the same, redefined when its definition changes, listed and removed; a
 * secret defined, set, found by its usage and removed. It fails, never skips, when libvirt cannot
 * be reached. Its pool and secret carry a random id and are removed at the end.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <stdio.h>
#include <unistd.h>

#include "hv/hv.h"
#include "util/cleanup.h"
#include "util/error.h"
#include "util/strutil.h"
#include "util/uuid.h"

static HvConn *conn;
static char pool_name[64], pool_uuid[NB_UUID_STRLEN], secret_uuid[NB_UUID_STRLEN];
static char dir_a[96], dir_b[96];

#define assert_ok(expr, err)                                                                       \
    do {                                                                                           \
        if ((expr) < 0)                                                                            \
            fail_msg("%s: %s", #expr, (err) ? (err)->message : "(no error)");                      \
    } while (0)

static char *
pool_xml(const char *dir)
{
    return str_printf("<pool type='dir'><name>%s</name><target><path>%s</path></target></pool>",
                      pool_name, dir);
}

static void
test_apply_same_changed_remove(void **state)
{
    _cleanup_error_ NbError *err = NULL;
    _cleanup_free_ char *xa = pool_xml(dir_a), *xb = pool_xml(dir_b);
    HvPoolState st;

    assert_ok(hv_pool_state(conn, pool_name, &st, &err), err);
    assert_false(st.defined);

    assert_ok(hv_pool_apply(conn, pool_name, xa, pool_uuid, true, &st, &err), err);
    assert_true(st.defined && st.active);
    assert_true(st.capacity > 0);
    assert_int_equal(access(dir_a, F_OK), 0); /* built */

    /* found the same: still active, same UUID */
    assert_ok(hv_pool_apply(conn, pool_name, xa, NULL, true, &st, &err), err);
    assert_true(st.active);
    HvPoolEntry *found = NULL;
    size_t n = 0;
    assert_ok(hv_pool_list_prefixed(conn, pool_name, &found, &n, &err), err);
    assert_int_equal(n, 1);
    assert_string_equal(found[0].name, pool_name);
    assert_string_equal(found[0].uuid, pool_uuid);
    free(found);

    /* changed: redefined under its own UUID, restarted, built at the new path */
    assert_ok(hv_pool_apply(conn, pool_name, xb, NULL, true, &st, &err), err);
    assert_true(st.active);
    assert_int_equal(access(dir_b, F_OK), 0);
    assert_ok(hv_pool_list_prefixed(conn, pool_name, &found, &n, &err), err);
    assert_int_equal(n, 1);
    assert_string_equal(found[0].uuid, pool_uuid);
    free(found);

    assert_ok(hv_pool_remove(conn, pool_name, &err), err);
    assert_ok(hv_pool_state(conn, pool_name, &st, &err), err);
    assert_false(st.defined);
    assert_ok(hv_pool_remove(conn, pool_name, &err), err); /* absent: 0 */
    assert_int_equal(access(dir_b, F_OK), 0);              /* the data stay */
}

static void
test_secret(void **state)
{
    _cleanup_error_ NbError *err = NULL;
    char usage[128];
    _cleanup_free_ char *xml =
        str_printf("<secret ephemeral='no' private='yes'><uuid>%s</uuid><usage type='ceph'>"
                   "<name>%s</name></usage></secret>",
                   secret_uuid, pool_name);
    static const unsigned char value[] = {1, 2, 3, 0, 250, 7};

    assert_int_equal(hv_pool_secret_usage(conn, secret_uuid, usage, sizeof(usage), &err), 0);
    assert_ok(hv_pool_secret_set(conn, secret_uuid, xml, value, sizeof(value), &err), err);
    assert_ok(hv_pool_secret_set(conn, secret_uuid, xml, value, sizeof(value), &err), err);
    assert_int_equal(hv_pool_secret_usage(conn, secret_uuid, usage, sizeof(usage), &err), 1);
    assert_string_equal(usage, pool_name);
    assert_ok(hv_pool_secret_remove(conn, secret_uuid, &err), err);
    assert_int_equal(hv_pool_secret_usage(conn, secret_uuid, usage, sizeof(usage), &err), 0);
    assert_ok(hv_pool_secret_remove(conn, secret_uuid, &err), err);
}

int
main(void)
{
    const char *uri = getenv("NIMBUS_TEST_LIBVIRT_URI");
    _cleanup_error_ NbError *err = NULL;
    char id[NB_UUID_STRLEN];
    if (nb_uuid_generate(id) < 0 || nb_uuid_generate(pool_uuid) < 0 ||
        nb_uuid_generate(secret_uuid) < 0)
        return 1;
    snprintf(pool_name, sizeof(pool_name), "nimbus-test-hvpool-%.8s", id);
    snprintf(dir_a, sizeof(dir_a), "/tmp/%s-a", pool_name);
    snprintf(dir_b, sizeof(dir_b), "/tmp/%s-b", pool_name);
    if (hv_events_init(&err) < 0 || hv_conn_open(uri ? uri : "qemu:///system", &conn, &err) < 0) {
        fprintf(stderr, "cannot reach libvirt: %s\n", err->message);
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_apply_same_changed_remove),
        cmocka_unit_test(test_secret),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    _cleanup_error_ NbError *e = NULL;
    hv_pool_remove(conn, pool_name, &e);
    hv_pool_secret_remove(conn, secret_uuid, &e);
    rmdir(dir_a);
    rmdir(dir_b);
    hv_conn_free(conn);
    hv_events_shutdown();
    return failed ? 1 : 0;
}
