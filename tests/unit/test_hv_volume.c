/*
 * hv_volume.c against libvirt's test driver (test:///default, in this process: no libvirtd):
 * a volume's create is idempotent and refuses a smaller one of the same name, delete of an
 * absent volume succeeds; a disk's attach, detach and the look at where it is (on a simulated
 * host: the definition), each safe to repeat, and never taking another device's target. The
 * real hot-plug, copy and resize are tests/e2e/test_volumes.py's.
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

#define POOL "default-pool" /* test:///default's */
#define DOMAIN "test"       /* test:///default's running domain */
#define MIB (1024u * 1024u)

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

static char *
vol_xml(const char *name, uint64_t bytes)
{
    return str_printf("<volume><name>%s</name><capacity unit='bytes'>%ju</capacity>"
                      "<target><format type='raw'/></target></volume>",
                      name, (uintmax_t)bytes);
}

static void
test_volume_create_delete(void **state)
{
    _cleanup_error_ NbError *err = NULL;
    _cleanup_free_ char *xml = vol_xml("nimbus-vol-t1", 4 * MIB);
    uint64_t cap = 0;
    assert_int_equal(hv_volume_capacity(conn, POOL, "nimbus-vol-t1", &cap, &err), 0);
    assert_ok(hv_volume_create(conn, POOL, "nimbus-vol-t1", xml, 4 * MIB, &err), err);
    /* again (a step run twice): fine, and nothing new */
    assert_ok(hv_volume_create(conn, POOL, "nimbus-vol-t1", xml, 4 * MIB, &err), err);
    assert_int_equal(hv_volume_capacity(conn, POOL, "nimbus-vol-t1", &cap, &err), 1);
    assert_int_equal(cap, 4 * MIB);
    /* a same-named volume smaller than asked is not taken for ours */
    assert_int_equal(hv_volume_create(conn, POOL, "nimbus-vol-t1", xml, 8 * MIB, &err), -1);
    assert_string_equal(err->code, NB_ERR_HYPERVISOR);
    nb_error_free(TAKE_PTR(err));
    /* as large already: no resize asked of libvirt (the test driver has none) */
    assert_ok(hv_volume_resize(conn, POOL, "nimbus-vol-t1", 2 * MIB, &err), err);
    assert_ok(hv_volume_delete(conn, POOL, "nimbus-vol-t1", &err), err);
    assert_ok(hv_volume_delete(conn, POOL, "nimbus-vol-t1", &err), err);
    assert_int_equal(hv_volume_capacity(conn, POOL, "nimbus-vol-t1", &cap, &err), 0);
    /* no such pool: no volume to delete; anything else is POOL_UNAVAILABLE */
    assert_ok(hv_volume_delete(conn, "nimbus-test-no-pool", "nimbus-vol-t1", &err), err);
    assert_int_equal(hv_volume_create(conn, "nimbus-test-no-pool", "x", xml, MIB, &err), -1);
    assert_string_equal(err->code, NB_ERR_POOL_UNAVAILABLE);
}

static const char disk_b[] = "<disk type='file' device='disk'><driver name='qemu' type='raw'/>"
                             "<source file='/tmp/nimbus-test-b.img'/>"
                             "<target dev='vdb' bus='virtio'/><serial>serial-b</serial></disk>";
static const char disk_other[] = "<disk type='file' device='disk'><driver name='qemu' type='raw'/>"
                                 "<source file='/tmp/nimbus-test-o.img'/>"
                                 "<target dev='vdb' bus='virtio'/><serial>other</serial></disk>";

static void
test_disk_attach_detach_sim(void **state)
{
    _cleanup_error_ NbError *err = NULL;
    bool live = true, config = true;
    assert_int_equal(hv_domain_disk_present(conn, DOMAIN, "vdb", "serial-b", &live, &config, &err),
                     1);
    assert_false(config);
    assert_ok(hv_domain_disk_attach(conn, DOMAIN, "vdb", "serial-b", disk_b, &err), err);
    assert_ok(hv_domain_disk_attach(conn, DOMAIN, "vdb", "serial-b", disk_b, &err), err);
    assert_int_equal(hv_domain_disk_present(conn, DOMAIN, "vdb", "serial-b", &live, &config, &err),
                     1);
    assert_true(config);
    /* another volume at the same target is refused, and this one not detached by it */
    assert_int_equal(hv_domain_disk_attach(conn, DOMAIN, "vdb", "other", disk_other, &err), -1);
    assert_string_equal(err->code, NB_ERR_HYPERVISOR);
    nb_error_free(TAKE_PTR(err));
    assert_ok(hv_domain_disk_detach(conn, DOMAIN, "vdb", "other", disk_other, &err), err);
    assert_int_equal(hv_domain_disk_present(conn, DOMAIN, "vdb", "serial-b", &live, &config, &err),
                     1);
    assert_true(config);
    /* the root disk (vda) is not ours either */
    assert_int_equal(hv_domain_disk_attach(conn, DOMAIN, "vda", "serial-b", disk_b, &err), -1);
    nb_error_free(TAKE_PTR(err));
    assert_ok(hv_domain_disk_detach(conn, DOMAIN, "vdb", "serial-b", disk_b, &err), err);
    assert_ok(hv_domain_disk_detach(conn, DOMAIN, "vdb", "serial-b", disk_b, &err), err);
    assert_int_equal(hv_domain_disk_present(conn, DOMAIN, "vdb", "serial-b", &live, &config, &err),
                     1);
    assert_false(config);
    /* no domain: detach and the look succeed (nothing there), attach fails */
    assert_ok(hv_domain_disk_detach(conn, "nimbus-test-none", "vdb", "serial-b", disk_b, &err),
              err);
    assert_int_equal(
        hv_domain_disk_present(conn, "nimbus-test-none", "vdb", "serial-b", &live, &config, &err),
        0);
    assert_int_equal(hv_domain_disk_attach(conn, "nimbus-test-none", "vdb", "s", disk_b, &err), -1);
    nb_error_free(TAKE_PTR(err));
    /* a simulated host grows nothing live: the volume is grown instead (0) */
    assert_int_equal(hv_domain_block_resize(conn, DOMAIN, "vdb", "serial-b", 8 * MIB, &err), 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_volume_create_delete),
        cmocka_unit_test(test_disk_attach_detach_sim),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
