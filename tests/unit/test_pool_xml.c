/*
 * Golden tests for pool_xml.c: each case builds its Pool, volume or DiskSpec here and compares
 * the document with GOLDEN_DIR/storage/<case>.xml byte for byte. UPDATE_GOLDEN=1 rewrites the
 * files instead of comparing (review the diff).
 *
 * Each golden file is validated with `virt-xml-validate FILE storagepool|secret|storagevol` when
 * that program is installed; a disk is validated inside a minimal domain. Every document is
 * re-parsed with libxml2, and none may hold the pool's secret. That libvirt defines these pools
 * was checked by hand (virsh pool-define / pool-undefine), not here: it needs the daemon.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xpath.h>

#include "hv/pool_xml.h"
#include "util/cleanup.h"
#include "util/strutil.h"

#define POOL_ID "5f0c1d2e-3a4b-4c5d-8e6f-7a8b9c0d1e2f"
#define VOL_ID "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"
#define SECRET "SECRET-MARKER-AQBfp1RnAAAAABAAnVn0T8M8zU3Cw0W3vT0b6g=="

/* ---- helpers ---- */

static char *
read_text_file(const char *path)
{
    char *buf = NULL;
    size_t len;
    if (read_file_full(path, 1 << 20, &buf, &len) < 0)
        return NULL;
    return buf;
}

static void
write_text_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "we");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, strlen(text), f), strlen(text));
    assert_int_equal(fclose(f), 0);
}

static char *
find_program(const char *name)
{
    static const char *const dirs[] = {"/usr/local/bin", "/usr/bin", "/bin"};
    for (size_t i = 0; i < ELEMENTSOF(dirs); i++) {
        char *full = str_printf("%s/%s", dirs[i], name);
        assert_non_null(full);
        if (access(full, X_OK) == 0)
            return full;
        free(full);
    }
    return NULL;
}

/* Exit status of `virt-xml-validate path kind`, or -1 if it is not installed. */
static int
virt_xml_validate(const char *path, const char *kind)
{
    _cleanup_free_ char *prog = find_program("virt-xml-validate");
    if (!prog)
        return -1;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char *const argv[] = {(char *)"virt-xml-validate", (char *)path, (char *)kind, NULL};
        execv(prog, argv);
        _exit(127);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0)
        assert_int_equal(errno, EINTR);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

static void
validate_text(const char *text, const char *kind)
{
    char path[] = "/tmp/test_pool_xml.XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write_full(fd, text, strlen(text)), 0);
    close(fd);
    int rc = virt_xml_validate(path, kind);
    unlink(path);
    if (rc < 0)
        print_message("virt-xml-validate not installed; schema check skipped\n");
    else if (rc != 0)
        fail_msg("virt-xml-validate %s: exit status %d for:\n%s", kind, rc, text);
}

/* The number of nodes xpath finds in doc. */
static int
xpath_count(const char *doc, const char *xpath)
{
    xmlDoc *d = xmlReadMemory(doc, (int)strlen(doc), "x.xml", NULL, XML_PARSE_NONET);
    assert_non_null(d);
    xmlXPathContext *ctx = xmlXPathNewContext(d);
    assert_non_null(ctx);
    xmlXPathObject *o = xmlXPathEvalExpression((const xmlChar *)xpath, ctx);
    assert_non_null(o);
    int n = o->nodesetval ? o->nodesetval->nodeNr : 0;
    xmlXPathFreeObject(o);
    xmlXPathFreeContext(ctx);
    xmlFreeDoc(d);
    return n;
}

/* Compares (or with UPDATE_GOLDEN writes) storage/<name>.xml, then validates it as kind. */
static void
golden(const char *name, const char *doc, const char *kind)
{
    if (!doc)
        fail_msg("%s: no document", name);
    if (strstr(doc, "SECRET-MARKER"))
        fail_msg("%s: the secret is in the XML", name);
    assert_true(xpath_count(doc, "/*") == 1); /* well-formed */
    _cleanup_free_ char *path = str_printf("%s/storage/%s.xml", GOLDEN_DIR, name);
    assert_non_null(path);
    if (getenv("UPDATE_GOLDEN")) {
        write_text_file(path, doc);
    } else {
        _cleanup_free_ char *want = read_text_file(path);
        if (!want)
            fail_msg("%s missing; run with UPDATE_GOLDEN=1 to create it", path);
        if (strcmp(want, doc) != 0)
            fail_msg("%s differs; got:\n%s", path, doc);
    }
    if (streq(kind, "disk")) {
        _cleanup_free_ char *dom =
            str_printf("<domain type='kvm'>\n  <name>t</name>\n  <memory unit='MiB'>256</memory>\n"
                       "  <os>\n    <type arch='x86_64' machine='q35'>hvm</type>\n  </os>\n"
                       "  <devices>\n%s  </devices>\n</domain>\n",
                       doc);
        assert_non_null(dom);
        validate_text(dom, "domain");
    } else {
        validate_text(doc, kind);
    }
}

/* ---- pools ---- */

static Pool
base_pool(PoolType t)
{
    Pool p = {.type = t};
    snprintf(p.id, sizeof(p.id), POOL_ID);
    snprintf(p.name, sizeof(p.name), "fast");
    pool_libvirt_name(p.id, p.libvirt_name);
    snprintf(p.created_at, sizeof(p.created_at), "2026-12-05T10:00:00Z");
    return p;
}

static Pool
rbd_pool(bool auth)
{
    Pool p = base_pool(POOL_TYPE_RBD);
    snprintf(p.name, sizeof(p.name), "ceph");
    snprintf(p.monitors[0], sizeof(p.monitors[0]), "10.0.0.1:6789");
    snprintf(p.monitors[1], sizeof(p.monitors[1]), "mon2.example.com");
    snprintf(p.monitors[2], sizeof(p.monitors[2]), "[fd00::3]:3300");
    p.n_monitors = 3;
    snprintf(p.source, sizeof(p.source), "nimbus-rbd");
    if (auth) {
        snprintf(p.auth_user, sizeof(p.auth_user), "nimbus");
        snprintf(p.secret, sizeof(p.secret), SECRET);
    }
    return p;
}

static Pool
iscsi_pool(bool chap)
{
    Pool p = base_pool(POOL_TYPE_ISCSI);
    snprintf(p.name, sizeof(p.name), "san");
    snprintf(p.monitors[0], sizeof(p.monitors[0]), "127.0.0.1:3260");
    p.n_monitors = 1;
    snprintf(p.source, sizeof(p.source), "iqn.2026-12.org.example:t1");
    snprintf(p.initiator, sizeof(p.initiator), "iqn.2026-01.io.nimbus:san");
    if (chap) {
        snprintf(p.auth_user, sizeof(p.auth_user), "chapuser");
        snprintf(p.secret, sizeof(p.secret), SECRET);
    }
    return p;
}

static void
test_pool_golden(void **state)
{
    Pool p = base_pool(POOL_TYPE_DIR);
    snprintf(p.path, sizeof(p.path), "/var/lib/nimbus/pools/fast");
    _cleanup_free_ char *dir = pool_xml_pool(&p);
    golden("pool_dir", dir, "storagepool");
    assert_null(pool_xml_secret(&p));

    /* The default pool keeps the name every host has had (the daemon's pool-name). */
    p.is_default = true;
    snprintf(p.libvirt_name, sizeof(p.libvirt_name), "nimbus");
    snprintf(p.path, sizeof(p.path), "/var/lib/nimbus/images");
    _cleanup_free_ char *def = pool_xml_pool(&p);
    golden("pool_dir_default", def, "storagepool");

    p = base_pool(POOL_TYPE_LOGICAL);
    snprintf(p.source, sizeof(p.source), "nimbus-vg");
    _cleanup_free_ char *lvm = pool_xml_pool(&p);
    golden("pool_logical", lvm, "storagepool");
    assert_int_equal(xpath_count(lvm, "/pool/target/path[text()='/dev/nimbus-vg']"), 1);

    p = rbd_pool(true);
    _cleanup_free_ char *rbd = pool_xml_pool(&p);
    golden("pool_rbd", rbd, "storagepool");
    assert_int_equal(xpath_count(rbd, "/pool[@type='rbd']/source/host"), 3);
    assert_int_equal(xpath_count(rbd, "/pool/source/host[@name='fd00::3'][@port='3300']"), 1);
    assert_int_equal(xpath_count(rbd, "/pool/source/host[@name='mon2.example.com'][not(@port)]"),
                     1);
    assert_int_equal(
        xpath_count(
            rbd, "/pool/source/auth[@type='ceph'][@username='nimbus']/secret[@uuid='" POOL_ID "']"),
        1);
    _cleanup_free_ char *rbd_secret = pool_xml_secret(&p);
    golden("secret_rbd", rbd_secret, "secret");
    assert_int_equal(xpath_count(rbd_secret, "/secret[@private='yes'][@ephemeral='no']"), 1);
    assert_int_equal(xpath_count(rbd_secret,
                                 "/secret/usage[@type='ceph']/name[text()='nimbus-pool-" POOL_ID
                                 "']"),
                     1);

    p = rbd_pool(false);
    _cleanup_free_ char *rbd_noauth = pool_xml_pool(&p);
    golden("pool_rbd_noauth", rbd_noauth, "storagepool");
    assert_int_equal(xpath_count(rbd_noauth, "//auth"), 0);
    assert_null(pool_xml_secret(&p));

    p = iscsi_pool(false);
    _cleanup_free_ char *iscsi = pool_xml_pool(&p);
    golden("pool_iscsi", iscsi, "storagepool");
    assert_int_equal(xpath_count(iscsi, "/pool[@type='iscsi-direct']/source/device[@path='"
                                        "iqn.2026-12.org.example:t1']"),
                     1);
    assert_int_equal(
        xpath_count(iscsi, "/pool/source/initiator/iqn[@name='iqn.2026-01.io.nimbus:san']"), 1);
    assert_null(pool_xml_secret(&p));

    p = iscsi_pool(true);
    _cleanup_free_ char *chap = pool_xml_pool(&p);
    golden("pool_iscsi_chap", chap, "storagepool");
    assert_int_equal(xpath_count(chap, "/pool/source/auth[@type='chap'][@username='chapuser']/"
                                       "secret[@usage='nimbus-pool-" POOL_ID "']"),
                     1);
    _cleanup_free_ char *iscsi_secret = pool_xml_secret(&p);
    golden("secret_iscsi", iscsi_secret, "secret");
    assert_int_equal(xpath_count(iscsi_secret, "/secret/usage[@type='iscsi']/target[text()="
                                               "'nimbus-pool-" POOL_ID "']"),
                     1);

    /* A portal stored without its port (an older row) gets iSCSI's. */
    snprintf(p.monitors[0], sizeof(p.monitors[0]), "san.example.com");
    _cleanup_free_ char *noport = pool_xml_pool(&p);
    assert_int_equal(xpath_count(noport, "/pool/source/host[@port='3260']"), 1);

    p = base_pool(POOL_TYPE_NETFS);
    snprintf(p.monitors[0], sizeof(p.monitors[0]), "nfs.example.com");
    p.n_monitors = 1;
    snprintf(p.source, sizeof(p.source), "/exports/vms");
    snprintf(p.path, sizeof(p.path), "/srv/nimbus/nfs");
    _cleanup_free_ char *nfs = pool_xml_pool(&p);
    golden("pool_netfs", nfs, "storagepool");
}

static void
expect_no_pool(Pool p, const char *why)
{
    char *x = pool_xml_pool(&p);
    if (x)
        fail_msg("%s: got\n%s", why, x);
    char *s = pool_xml_secret(&p);
    if (s)
        fail_msg("%s: got a secret\n%s", why, s);
}

static void
test_pool_invalid(void **state)
{
    assert_null(pool_xml_pool(NULL));
    assert_null(pool_xml_secret(NULL));

    Pool p = base_pool(POOL_TYPE_DIR);
    snprintf(p.path, sizeof(p.path), "/srv/x");
    Pool q = p;
    q.libvirt_name[0] = '\0';
    expect_no_pool(q, "no libvirt name");
    q = p;
    snprintf(q.libvirt_name, sizeof(q.libvirt_name), "a'b");
    expect_no_pool(q, "quote in the libvirt name");
    q = p;
    snprintf(q.path, sizeof(q.path), "/srv/../etc");
    expect_no_pool(q, "dotdot path");
    q = p;
    snprintf(q.path, sizeof(q.path), "/srv/x'/><y");
    expect_no_pool(q, "hostile path");
    q = p;
    snprintf(q.auth_user, sizeof(q.auth_user), "u");
    expect_no_pool(q, "auth on a dir pool");
    q = p;
    q.type = _POOL_TYPE_MAX;
    expect_no_pool(q, "type out of range");
    q = p;
    q.type = _POOL_TYPE_INVALID;
    expect_no_pool(q, "invalid type");

    p = base_pool(POOL_TYPE_LOGICAL);
    snprintf(p.source, sizeof(p.source), "-vg");
    expect_no_pool(p, "bad vg");

    p = rbd_pool(true);
    q = p;
    q.n_monitors = 0;
    expect_no_pool(q, "no monitors");
    q = p;
    q.n_monitors = POOL_MONITORS_MAX + 1;
    expect_no_pool(q, "too many monitors");
    q = p;
    snprintf(q.monitors[1], sizeof(q.monitors[1]), "a:b");
    expect_no_pool(q, "bad monitor");
    q = p;
    snprintf(q.source, sizeof(q.source), "a/b");
    expect_no_pool(q, "bad rbd pool");
    q = p;
    snprintf(q.id, sizeof(q.id), "not-a-uuid");
    expect_no_pool(q, "auth without an id for the secret");
    q = p;
    snprintf(q.auth_user, sizeof(q.auth_user), "a'b");
    expect_no_pool(q, "hostile user");

    p = iscsi_pool(true);
    q = p;
    q.initiator[0] = '\0';
    expect_no_pool(q, "no initiator");
    q = p;
    snprintf(q.source, sizeof(q.source), "iqn.2026-1.x");
    expect_no_pool(q, "bad target");
    q = p;
    q.n_monitors = 2;
    snprintf(q.monitors[1], sizeof(q.monitors[1]), "h");
    expect_no_pool(q, "two portals");

    p = base_pool(POOL_TYPE_NETFS);
    snprintf(p.monitors[0], sizeof(p.monitors[0]), "nfs:2049");
    p.n_monitors = 1;
    snprintf(p.source, sizeof(p.source), "/e");
    snprintf(p.path, sizeof(p.path), "/srv/m");
    expect_no_pool(p, "port on the NFS server");
    snprintf(p.monitors[0], sizeof(p.monitors[0]), "nfs");
    p.source[0] = '\0';
    expect_no_pool(p, "no export");
}

/* ---- volumes ---- */

static void
test_volume_golden(void **state)
{
    _cleanup_free_ char *qcow2 = pool_xml_volume("nimbus-vol-" VOL_ID, UINT64_C(10) << 30, "qcow2");
    golden("volume_qcow2", qcow2, "storagevol");
    assert_int_equal(xpath_count(qcow2, "/volume/allocation[text()='0']"), 1);
    _cleanup_free_ char *raw = pool_xml_volume("nimbus-vol-" VOL_ID, UINT64_C(1) << 30, "raw");
    golden("volume_raw", raw, "storagevol");
    _cleanup_free_ char *none = pool_xml_volume("nimbus-vol-" VOL_ID, UINT64_C(65536) << 30, NULL);
    golden("volume_noformat", none, "storagevol");
    assert_int_equal(xpath_count(none, "/volume/capacity[text()='70368744177664']"), 1);
    assert_int_equal(xpath_count(none, "//allocation"), 0);
    assert_int_equal(xpath_count(none, "/volume/target/*"), 0);

    assert_null(pool_xml_volume(NULL, 1, NULL));
    assert_null(pool_xml_volume("", 1, NULL));
    assert_null(pool_xml_volume("a/b", 1, NULL));
    assert_null(pool_xml_volume("a'b", 1, NULL));
    assert_null(pool_xml_volume("v", 0, NULL));
    assert_null(pool_xml_volume("v", 1, "vmdk"));
    assert_null(pool_xml_volume("v", 1, ""));
    _cleanup_free_ char *max = pool_xml_volume("v", UINT64_MAX, "raw");
    assert_non_null(max);
    assert_int_equal(xpath_count(max, "/volume/capacity[text()='18446744073709551615']"), 1);
}

/* ---- disks ---- */

static const char *const rbd_hosts[] = {"10.0.0.1:6789", "mon2.example.com", "[fd00::3]:3300"};
static const char *const iscsi_hosts[] = {"127.0.0.1:3260"};

static DiskSpec
file_disk(const char *bus, const char *target)
{
    return (DiskSpec){.kind = DISK_SOURCE_FILE,
                      .path = "/var/lib/nimbus/pools/fast/nimbus-vol-" VOL_ID,
                      .format = "qcow2",
                      .target = target,
                      .bus = bus,
                      .serial = "9a8b7c6d-5e4f-4a3b-8"};
}

static DiskSpec
rbd_disk(const char *bus, const char *target, bool auth)
{
    return (DiskSpec){.kind = DISK_SOURCE_RBD,
                      .name = "nimbus-rbd/nimbus-vol-" VOL_ID,
                      .hosts = rbd_hosts,
                      .n_hosts = 3,
                      .auth_user = auth ? "nimbus" : NULL,
                      .secret_uuid = auth ? POOL_ID : NULL,
                      .format = "raw",
                      .target = target,
                      .bus = bus,
                      .serial = "9a8b7c6d-5e4f-4a3b-8"};
}

static DiskSpec
iscsi_disk(const char *bus, const char *target, bool chap)
{
    return (DiskSpec){.kind = DISK_SOURCE_ISCSI,
                      .name = "iqn.2026-12.org.example:t1/2",
                      .hosts = iscsi_hosts,
                      .n_hosts = 1,
                      .auth_user = chap ? "chapuser" : NULL,
                      .secret_usage = chap ? "nimbus-pool-" POOL_ID : NULL,
                      .initiator = "iqn.2026-01.io.nimbus:san",
                      .format = "raw",
                      .target = target,
                      .bus = bus,
                      .serial = "9a8b7c6d-5e4f-4a3b-8"};
}

static void
disk_golden(const char *name, DiskSpec d)
{
    _cleanup_free_ char *x = pool_xml_disk(&d);
    golden(name, x, "disk");
    assert_int_equal(xpath_count(x, "/disk[@device='disk']/target"), 1);
    _cleanup_free_ char *tgt = str_printf("/disk/target[@dev='%s'][@bus='%s']", d.target, d.bus);
    assert_int_equal(xpath_count(x, tgt), 1);
    _cleanup_free_ char *serial = str_printf("/disk/serial[text()='%s']", d.serial);
    assert_int_equal(xpath_count(x, serial), 1);
}

static void
test_disk_golden(void **state)
{
    disk_golden("disk_file_virtio", file_disk("virtio", "vdb"));
    disk_golden("disk_file_scsi", file_disk("scsi", "sdb"));

    DiskSpec d = file_disk("virtio", "vdc");
    d.kind = DISK_SOURCE_BLOCK;
    d.path = "/dev/nimbus-vg/nimbus-vol-" VOL_ID;
    d.format = "raw";
    disk_golden("disk_block_virtio", d);
    d.bus = "scsi";
    d.target = "sdc";
    disk_golden("disk_block_scsi", d);

    disk_golden("disk_rbd_virtio", rbd_disk("virtio", "vdd", true));
    disk_golden("disk_rbd_scsi", rbd_disk("scsi", "sdd", true));
    disk_golden("disk_rbd_noauth", rbd_disk("virtio", "vdd", false));
    disk_golden("disk_iscsi_virtio", iscsi_disk("virtio", "vde", false));
    disk_golden("disk_iscsi_scsi", iscsi_disk("scsi", "sde", true));

    /* A VM's disk QoS (its flavor's) on its volumes: libvirt <iotune>. */
    d = file_disk("virtio", "vdb");
    d.iotune = (DiskIotune){500, 100000000};
    disk_golden("disk_file_iotune", d);
    _cleanup_free_ char *tuned = pool_xml_disk(&d);
    assert_int_equal(
        xpath_count(tuned, "/disk/iotune[total_iops_sec='500'][total_bytes_sec='100000000']"), 1);
    d = rbd_disk("virtio", "vdd", true);
    d.iotune = (DiskIotune){0, 1000000};
    disk_golden("disk_rbd_iotune", d);

    DiskSpec rd = rbd_disk("virtio", "vdb", true);
    _cleanup_free_ char *rbd = pool_xml_disk(&rd);
    assert_int_equal(xpath_count(rbd, "/disk[@type='network']/source[@protocol='rbd']/host"), 3);
    assert_int_equal(
        xpath_count(rbd,
                    "/disk/auth[@username='nimbus']/secret[@type='ceph'][@uuid='" POOL_ID "']"),
        1);
    DiskSpec id = iscsi_disk("scsi", "sdb", true);
    _cleanup_free_ char *iscsi = pool_xml_disk(&id);
    assert_int_equal(
        xpath_count(iscsi, "/disk/auth/secret[@type='iscsi'][@usage='nimbus-pool-" POOL_ID "']"),
        1);
    assert_int_equal(
        xpath_count(iscsi, "/disk/source[@protocol='iscsi'][@name='iqn.2026-12.org.example:t1/"
                           "2']/initiator/iqn[@name='iqn.2026-01.io.nimbus:san']"),
        1);
}

static void
expect_no_disk(DiskSpec d, const char *why)
{
    char *x = pool_xml_disk(&d);
    if (x)
        fail_msg("%s: got\n%s", why, x);
}

static void
test_disk_invalid(void **state)
{
    assert_null(pool_xml_disk(NULL));
    DiskSpec d = file_disk("virtio", "vdb");
    DiskSpec e = d;
    e.bus = "scsi";
    expect_no_disk(e, "vd target on scsi");
    e = d;
    e.target = "sdb";
    expect_no_disk(e, "sd target on virtio");
    e = d;
    e.bus = "ide";
    e.target = "hdb";
    expect_no_disk(e, "ide");
    e = d;
    e.bus = NULL;
    expect_no_disk(e, "no bus");
    e = d;
    e.target = "vd";
    expect_no_disk(e, "short target");
    e = d;
    e.target = "vdaa";
    expect_no_disk(e, "long target");
    e = d;
    e.target = "vdB";
    expect_no_disk(e, "upper-case target");
    e = d;
    e.serial = "123456789012345678901";
    expect_no_disk(e, "serial of 21");
    e = d;
    e.serial = "";
    expect_no_disk(e, "empty serial");
    e = d;
    e.serial = "a b";
    expect_no_disk(e, "serial with a space");
    e = d;
    e.serial = NULL;
    expect_no_disk(e, "no serial");
    e = d;
    e.format = "vmdk";
    expect_no_disk(e, "bad format");
    e = d;
    e.format = NULL;
    expect_no_disk(e, "no format");
    e = d;
    e.path = "relative/x";
    expect_no_disk(e, "relative path");
    e = d;
    e.path = "/x/'/>";
    expect_no_disk(e, "hostile path");
    e = d;
    e.path = NULL;
    expect_no_disk(e, "no path");
    e = d;
    e.auth_user = "u";
    expect_no_disk(e, "auth on a file");
    e = d;
    e.kind = (DiskSourceKind)9;
    expect_no_disk(e, "kind out of range");

    d = rbd_disk("virtio", "vdb", true);
    e = d;
    e.format = "qcow2";
    expect_no_disk(e, "qcow2 on rbd");
    e = d;
    e.name = "no-slash";
    expect_no_disk(e, "rbd name without a pool");
    e = d;
    e.name = "a/b/c";
    expect_no_disk(e, "rbd name with two slashes");
    e = d;
    e.name = "/b";
    expect_no_disk(e, "rbd name without a pool name");
    e = d;
    e.n_hosts = 0;
    expect_no_disk(e, "no monitors");
    e = d;
    e.hosts = NULL;
    expect_no_disk(e, "NULL monitors");
    e = d;
    e.secret_uuid = NULL;
    expect_no_disk(e, "auth without a secret");
    e = d;
    e.auth_user = "a'b";
    expect_no_disk(e, "hostile user");
    static const char *const bad_hosts[] = {"10.0.0.1:0"};
    e = d;
    e.hosts = bad_hosts;
    e.n_hosts = 1;
    expect_no_disk(e, "port 0");

    d = iscsi_disk("scsi", "sdb", true);
    e = d;
    e.initiator = NULL;
    expect_no_disk(e, "no initiator");
    e = d;
    e.name = "iqn.2026-12.org.example:t1";
    expect_no_disk(e, "no LUN");
    e = d;
    e.name = "iqn.2026-12.org.example:t1/01";
    expect_no_disk(e, "LUN with a leading zero");
    e = d;
    e.name = "iqn.2026-12.org.example:t1/16384";
    expect_no_disk(e, "LUN out of range");
    e = d;
    e.name = "iqn.2026-1.x/1";
    expect_no_disk(e, "bad IQN");
    e = d;
    e.secret_usage = NULL;
    expect_no_disk(e, "CHAP without a secret");
    e = d;
    e.n_hosts = 3;
    e.hosts = rbd_hosts;
    expect_no_disk(e, "three portals");
    e = d;
    e.name = "iqn.2026-12.org.example:t1/16383";
    char *ok = pool_xml_disk(&e);
    assert_non_null(ok);
    free(ok);
}

static void
test_validator_rejects_bad_xml(void **state)
{
    /* The schema check can fail: an rbd pool without its Ceph pool name is refused. */
    char path[] = "/tmp/test_pool_xml.XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    static const char bad[] = "<pool type='rbd'><name>x</name><source><host name='h'/>"
                              "<bogus/></source></pool>\n";
    assert_int_equal(write_full(fd, bad, sizeof(bad) - 1), 0);
    close(fd);
    int rc = virt_xml_validate(path, "storagepool");
    unlink(path);
    if (rc < 0)
        skip();
    assert_int_not_equal(rc, 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pool_golden),   cmocka_unit_test(test_pool_invalid),
        cmocka_unit_test(test_volume_golden), cmocka_unit_test(test_disk_golden),
        cmocka_unit_test(test_disk_invalid),  cmocka_unit_test(test_validator_rejects_bad_xml),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
