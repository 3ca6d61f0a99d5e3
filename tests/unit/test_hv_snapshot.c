/*
 * hv_snapshot.c against libvirt's test driver (test:///default, in this process: no libvirtd):
 * a snapshot's create is idempotent (one that exists counts as made), its delete of an absent
 * one succeeds, a revert without memory keeps the domain's power state, and the check of the
 * devices sees a disk added since. Real internal snapshots of qcow2 disks are
 * tests/e2e/test_snapshots.py's.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "hv/hv.h"
#include "util/cleanup.h"
#include "util/error.h"
#include "util/strutil.h"

#define DOMAIN "test" /* test:///default's running domain */

static HvConn *conn;

#define assert_ok(expr, err)                                                                       \
    do {                                                                                           \
        if ((expr) != 0)                                                                           \
            fail_msg("%s: %s", #expr, (err) ? (err)->message : "no error");                        \
    } while (0)

static int
setup(void **state)
{
    _cleanup_error_ NbError *err = NULL;
    if (hv_events_init(&err) < 0 || hv_conn_open("test:///default", &conn, &err) < 0) {
        fprintf(stderr, "test:///default: %s\n", err->message);
        return -1;
    }
    return 0;
}

static int
teardown(void **state)
{
    hv_conn_free(conn);
    return 0;
}

static HvDomainState
state_of(const char *domain)
{
    _cleanup_error_ NbError *err = NULL;
    HvDomainState st = HV_DOMAIN_NONE;
    assert_ok(hv_domain_get_state(conn, domain, &st, &err), err);
    return st;
}

static void
test_create_revert_delete(void **state)
{
    _cleanup_error_ NbError *err = NULL;
    assert_int_equal(hv_snapshot_exists(conn, DOMAIN, "nimbus-snap-a", &err), 0);
    assert_ok(hv_snapshot_create(conn, DOMAIN, "nimbus-snap-a", "before <it> & 'all'", &err), err);
    assert_int_equal(hv_snapshot_exists(conn, DOMAIN, "nimbus-snap-a", &err), 1);
    /* again (a step run twice): made already */
    assert_ok(hv_snapshot_create(conn, DOMAIN, "nimbus-snap-a", NULL, &err), err);
    assert_int_equal(hv_snapshot_devices_match(conn, DOMAIN, "nimbus-snap-a", &err), 1);

    /* with memory: as the snapshot has it (running) */
    assert_ok(hv_snapshot_revert(conn, DOMAIN, "nimbus-snap-a", true, &err), err);
    assert_int_equal(state_of(DOMAIN), HV_DOMAIN_RUNNING);
    /* the disks only: a running domain runs again, a stopped one stays stopped */
    assert_ok(hv_snapshot_revert(conn, DOMAIN, "nimbus-snap-a", false, &err), err);
    assert_int_equal(state_of(DOMAIN), HV_DOMAIN_RUNNING);
    assert_ok(hv_domain_destroy(conn, DOMAIN, &err), err);
    assert_ok(hv_snapshot_revert(conn, DOMAIN, "nimbus-snap-a", false, &err), err);
    assert_int_equal(state_of(DOMAIN), HV_DOMAIN_SHUTOFF);
    assert_ok(hv_snapshot_revert(conn, DOMAIN, "nimbus-snap-a", true, &err), err);
    assert_int_equal(state_of(DOMAIN), HV_DOMAIN_RUNNING);

    /* no such snapshot: a revert fails, a delete is done */
    assert_int_equal(hv_snapshot_revert(conn, DOMAIN, "nimbus-snap-none", false, &err), -1);
    assert_string_equal(err->code, NB_ERR_HYPERVISOR);
    nb_error_free(TAKE_PTR(err));
    assert_ok(hv_snapshot_delete(conn, DOMAIN, "nimbus-snap-a", &err), err);
    assert_int_equal(hv_snapshot_exists(conn, DOMAIN, "nimbus-snap-a", &err), 0);
    assert_ok(hv_snapshot_delete(conn, DOMAIN, "nimbus-snap-a", &err), err);

    /* no such domain: nothing to find or delete, nothing to make */
    assert_int_equal(hv_snapshot_exists(conn, "nimbus-none", "nimbus-snap-a", &err), 0);
    assert_ok(hv_snapshot_delete(conn, "nimbus-none", "nimbus-snap-a", &err), err);
    assert_ok(hv_snapshot_delete_all(conn, "nimbus-none", &err), err);
    assert_int_equal(hv_snapshot_create(conn, "nimbus-none", "nimbus-snap-a", NULL, &err), -1);
    nb_error_free(TAKE_PTR(err));
}

static void
test_devices_changed_and_delete_all(void **state)
{
    _cleanup_error_ NbError *err = NULL;
    assert_ok(hv_snapshot_create(conn, DOMAIN, "nimbus-snap-b", NULL, &err), err);
    assert_ok(hv_snapshot_create(conn, DOMAIN, "nimbus-snap-c", NULL, &err), err);
    /* a disk added since (on a simulated host, into the definition) */
    static const char disk[] = "<disk type='file' device='disk'><driver name='qemu' type='raw'/>"
                               "<source file='/guest/extra.img'/><target dev='vdb' bus='virtio'/>"
                               "<serial>serial-x</serial></disk>";
    assert_ok(hv_domain_disk_attach(conn, DOMAIN, "vdb", "serial-x", disk, &err), err);
    assert_int_equal(hv_snapshot_devices_match(conn, DOMAIN, "nimbus-snap-b", &err), 0);
    assert_int_equal(hv_domain_disk_detach(conn, DOMAIN, "vdb", "serial-x", disk, &err), 0);
    assert_int_equal(hv_snapshot_devices_match(conn, DOMAIN, "nimbus-snap-b", &err), 1);
    assert_ok(hv_snapshot_delete_all(conn, DOMAIN, &err), err);
    assert_int_equal(hv_snapshot_exists(conn, DOMAIN, "nimbus-snap-b", &err), 0);
    assert_int_equal(hv_snapshot_exists(conn, DOMAIN, "nimbus-snap-c", &err), 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_revert_delete),
        cmocka_unit_test(test_devices_changed_and_delete_all),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
