/*
 * Integration test of the host driver against a real libvirtd (NIMBUS_TEST_LIBVIRT_URI, default
 * qemu:///system). It fails, never skips, when libvirt cannot be reached. Everything it makes is
 * named nimbus-test-hv* and is removed at the start (leftovers) and at the end.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include "hv/domain_xml.h"
#include "hv/hv.h"
#include "hv/hv_internal.h"
#include "util/cleanup.h"
#include "util/error.h"
#include "util/strutil.h"
#include "util/timeutil.h"
#include "util/uuid.h"

#define POOL "nimbus-test-hv"
#define POOL_DIR "/tmp/nimbus-test-hv-pool"
#define DOMAIN_PREFIX "nimbus-test-hv-"
#define NETWORK "nimbus-test-hv-net"
#define UPLOAD_SIZE (50u * 1024 * 1024)

static const char *test_uri;
static HvConn *conn;
static char dom_name[64];
static char dom_uuid[NB_UUID_STRLEN];
static char console_log[128];

/* ---- recorded lifecycle events ---- */

typedef struct Event {
    char name[128];
    HvEventKind kind;
} Event;

static struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    Event events[256];
    size_t n;
} rec = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};

static void
on_lifecycle(const char *name, const char *uuid, HvEventKind kind, void *userdata)
{
    /* The event thread: no cmocka asserts here (they longjmp). */
    if (userdata != &rec)
        return;
    pthread_mutex_lock(&rec.lock);
    if (rec.n < ELEMENTSOF(rec.events)) {
        snprintf(rec.events[rec.n].name, sizeof(rec.events[rec.n].name), "%s", name);
        rec.events[rec.n].kind = kind;
        rec.n++;
    }
    pthread_cond_broadcast(&rec.cond);
    pthread_mutex_unlock(&rec.lock);
}

static void
on_close(void *userdata)
{
}

/* Waits up to timeout_ms for an event of kind for name (recorded since the last reset). */
static bool
wait_event(const char *name, HvEventKind kind, int timeout_ms)
{
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += timeout_ms / 1000;
    deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    bool found = false;
    pthread_mutex_lock(&rec.lock);
    for (;;) {
        for (size_t i = 0; i < rec.n && !found; i++)
            found = streq(rec.events[i].name, name) && rec.events[i].kind == kind;
        if (found || pthread_cond_timedwait(&rec.cond, &rec.lock, &deadline) == ETIMEDOUT)
            break;
    }
    if (!found) {
        for (size_t i = 0; i < rec.n && !found; i++)
            found = streq(rec.events[i].name, name) && rec.events[i].kind == kind;
    }
    pthread_mutex_unlock(&rec.lock);
    return found;
}

static void
reset_events(void)
{
    pthread_mutex_lock(&rec.lock);
    rec.n = 0;
    pthread_mutex_unlock(&rec.lock);
}

/* ---- helpers ---- */

/* Runs argv (absolute path, no shell) and captures up to outlen-1 bytes of stdout. */
static int
run_capture(const char *const argv[], char *out, size_t outlen)
{
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) < 0)
        return -1;
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        dup2(fds[1], STDOUT_FILENO);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(fds[1]);
    size_t len = 0;
    for (;;) {
        char tmp[4096];
        ssize_t n = read(fds[0], tmp, sizeof(tmp));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        size_t take = (size_t)n;
        if (take > outlen - 1 - len)
            take = outlen - 1 - len;
        memcpy(out + len, tmp, take);
        len += take;
    }
    out[len] = '\0';
    close(fds[0]);
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void
sha256_file(const char *path, char hex[65])
{
    char out[512];
    const char *argv[] = {"/usr/bin/sha256sum", path, NULL};
    assert_int_equal(run_capture(argv, out, sizeof(out)), 0);
    assert_true(strlen(out) >= 64);
    memcpy(hex, out, 64);
    hex[64] = '\0';
}

/* A macro, so that err is read after the call has filled it. */
#define assert_ok(call, err)                                                                       \
    do {                                                                                           \
        if ((call) < 0)                                                                            \
            fail_msg("%s: %s", (err) ? (err)->code : "?",                                          \
                     (err) && (err)->message ? (err)->message : "?");                              \
    } while (0)

static virConnectPtr
raw_conn(void)
{
    virConnectPtr c = virConnectOpen(test_uri);
    assert_non_null(c);
    return c;
}

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    remove(path);
    return 0;
}

/* Removes the test pool, its volumes and directory, the test network and test domains. */
static void
cleanup_leftovers(void)
{
    virConnectPtr c = raw_conn();
    virStoragePoolPtr p = virStoragePoolLookupByName(c, POOL);
    if (p) {
        virStorageVolPtr *vols = NULL;
        int n = virStoragePoolIsActive(p) == 1 ? virStoragePoolListAllVolumes(p, &vols, 0) : 0;
        for (int i = 0; i < n; i++) {
            virStorageVolDelete(vols[i], 0);
            virStorageVolFree(vols[i]);
        }
        free(vols);
        if (virStoragePoolIsActive(p) == 1)
            virStoragePoolDestroy(p);
        virStoragePoolUndefine(p);
        virStoragePoolFree(p);
    }
    nftw(POOL_DIR, rm_entry, 16, FTW_DEPTH | FTW_PHYS);

    virNetworkPtr net = virNetworkLookupByName(c, NETWORK);
    if (net) {
        if (virNetworkIsActive(net) == 1)
            virNetworkDestroy(net);
        virNetworkUndefine(net);
        virNetworkFree(net);
    }

    virDomainPtr *doms = NULL;
    int n = virConnectListAllDomains(c, &doms, 0);
    for (int i = 0; i < n; i++) {
        if (str_startswith(virDomainGetName(doms[i]), DOMAIN_PREFIX)) {
            if (virDomainIsActive(doms[i]) == 1)
                virDomainDestroy(doms[i]);
            virDomainUndefineFlags(doms[i], VIR_DOMAIN_UNDEFINE_NVRAM);
        }
        virDomainFree(doms[i]);
    }
    free(doms);
    virConnectClose(c);
}

/* ---- storage ---- */

static void
test_pool_ensure(void **state)
{
    _cleanup_error_ NbError *err = NULL;
    assert_ok(hv_pool_ensure(conn, POOL, POOL_DIR, &err), err);
    assert_ok(hv_pool_ensure(conn, POOL, POOL_DIR "/", &err), err); /* idempotent */

    struct stat st;
    assert_int_equal(stat(POOL_DIR, &st), 0);
    assert_true(S_ISDIR(st.st_mode));

    virConnectPtr c = raw_conn();
    virStoragePoolPtr p = virStoragePoolLookupByName(c, POOL);
    assert_non_null(p);
    assert_int_equal(virStoragePoolIsActive(p), 1);
    assert_int_equal(virStoragePoolIsPersistent(p), 1);
    int autostart = 0;
    assert_int_equal(virStoragePoolGetAutostart(p, &autostart), 0);
    assert_int_equal(autostart, 1);

    /* Defined but inactive: ensure starts it. */
    assert_int_equal(virStoragePoolDestroy(p), 0);
    assert_ok(hv_pool_ensure(conn, POOL, POOL_DIR, &err), err);
    assert_int_equal(virStoragePoolIsActive(p), 1);
    virStoragePoolFree(p);
    virConnectClose(c);

    /* Same name, other path: left alone, and an error. */
    assert_int_equal(hv_pool_ensure(conn, POOL, "/tmp/nimbus-test-hv-elsewhere", &err), -1);
    assert_non_null(err);
    assert_string_equal(err->code, NB_ERR_HYPERVISOR);
    assert_non_null(strstr(err->message, POOL_DIR));
    assert_int_equal(access("/tmp/nimbus-test-hv-elsewhere", F_OK), -1);
}

/* Deterministic pseudo-random bytes (xorshift64), also written to a reference file. */
typedef struct UploadSource {
    uint64_t x;
    uint64_t produced;
    uint64_t fail_after; /* 0: never */
    bool set_own_error;
    FILE *ref;
} UploadSource;

static ssize_t
upload_source(char *buf, size_t len, void *userdata, NbError **err)
{
    UploadSource *s = userdata;
    if (s->fail_after && s->produced >= s->fail_after) {
        if (s->set_own_error)
            nb_error_set(err, NB_ERR_IMAGE_CORRUPT, "source broke at %" PRIu64, s->produced);
        return -1;
    }
    uint64_t left = UPLOAD_SIZE - s->produced;
    size_t n = len < left ? len : (size_t)left;
    n -= n % 8; /* UPLOAD_SIZE is a multiple of 8 */
    for (size_t i = 0; i < n; i += 8) {
        s->x ^= s->x << 13;
        s->x ^= s->x >> 7;
        s->x ^= s->x << 17;
        memcpy(buf + i, &s->x, 8);
    }
    if (s->ref)
        assert_int_equal(fwrite(buf, 1, n, s->ref), n);
    s->produced += n;
    return (ssize_t)n;
}

static void
test_upload(void **state)
{
    _cleanup_error_ NbError *err = NULL;
    const char *ref_path = "/tmp/nimbus-test-hv-upload.ref";
    UploadSource src = {.x = 0x9E3779B97F4A7C15ull, .ref = fopen(ref_path, "we")};
    assert_non_null(src.ref);

    assert_ok(hv_vol_create_for_upload(conn, POOL, "img", "raw", UPLOAD_SIZE, &err), err);
    assert_ok(hv_vol_upload(conn, POOL, "img", UPLOAD_SIZE, upload_source, &src, &err), err);
    assert_int_equal(fclose(src.ref), 0);

    _cleanup_free_ char *path = NULL;
    assert_ok(hv_vol_path(conn, POOL, "img", &path, &err), err);
    assert_string_equal(path, POOL_DIR "/img");
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_size, UPLOAD_SIZE);
    char want[65], got[65];
    sha256_file(ref_path, want);
    sha256_file(path, got);
    assert_string_equal(got, want);
    unlink(ref_path);

    /* Creating again replaces the volume. */
    assert_ok(hv_vol_create_for_upload(conn, POOL, "img2", "raw", 4096, &err), err);
    assert_ok(hv_vol_create_for_upload(conn, POOL, "img2", "raw", 8192, &err), err);
    _cleanup_free_ char *path2 = NULL;
    assert_ok(hv_vol_path(conn, POOL, "img2", &path2, &err), err);
    assert_int_equal(stat(path2, &st), 0);
    assert_int_equal(st.st_size, 8192);
    assert_ok(hv_vol_delete(conn, POOL, "img2", &err), err);

    assert_int_equal(hv_vol_create_for_upload(conn, POOL, "x", "vmdk", 1, &err), -1);
    nb_error_free(TAKE_PTR(err));
}

/* A qcow2 image much smaller than the header qemu-img would write for a qcow2 volume: the
 * upload must still end up byte-identical. */
typedef struct FileSource {
    int fd;
} FileSource;

static ssize_t
file_source(char *buf, size_t len, void *userdata, NbError **err)
{
    FileSource *s = userdata;
    return read(s->fd, buf, len);
}

static void
test_upload_small_qcow2(void **state)
{
    _cleanup_error_ NbError *err = NULL;
    const char *img = "/tmp/nimbus-test-hv-small.qcow2";
    char out[4096];
    const char *argv[] = {"/usr/bin/qemu-img", "create", "-q", "-f", "qcow2", "-o",
                          "cluster_size=512",  img,      "1M", NULL};
    assert_int_equal(run_capture(argv, out, sizeof(out)), 0);
    struct stat st;
    assert_int_equal(stat(img, &st), 0);
    assert_true(st.st_size < 65536);

    FileSource src = {.fd = open(img, O_RDONLY | O_CLOEXEC)};
    assert_true(src.fd >= 0);
    assert_ok(hv_vol_create_for_upload(conn, POOL, "small", "qcow2", (uint64_t)st.st_size, &err),
              err);
    assert_ok(hv_vol_upload(conn, POOL, "small", (uint64_t)st.st_size, file_source, &src, &err),
              err);
    close(src.fd);

    char want[65], got[65];
    sha256_file(img, want);
    sha256_file(POOL_DIR "/small", got);
    assert_string_equal(got, want);
    struct stat st2;
    assert_int_equal(stat(POOL_DIR "/small", &st2), 0);
    assert_int_equal(st2.st_size, st.st_size);
    unlink(img);
    assert_ok(hv_vol_delete(conn, POOL, "small", &err), err);
}

static void
test_upload_fails(void **state)
{
    _cleanup_error_ NbError *err = NULL;
    UploadSource src = {.x = 42, .fail_after = 3 * 1024 * 1024};
    assert_ok(hv_vol_create_for_upload(conn, POOL, "broken", "raw", UPLOAD_SIZE, &err), err);
    assert_int_equal(hv_vol_upload(conn, POOL, "broken", UPLOAD_SIZE, upload_source, &src, &err),
                     -1);
    assert_non_null(err);
    assert_string_equal(err->code, NB_ERR_INTERNAL);
    nb_error_free(TAKE_PTR(err));
    assert_int_equal(hv_vol_exists(conn, POOL, "broken", &err), 0);
    assert_int_equal(access(POOL_DIR "/broken", F_OK), -1);

    /* The source's own error is kept. */
    src = (UploadSource){.x = 42, .fail_after = 1024 * 1024, .set_own_error = true};
    assert_ok(hv_vol_create_for_upload(conn, POOL, "broken", "raw", UPLOAD_SIZE, &err), err);
    assert_int_equal(hv_vol_upload(conn, POOL, "broken", UPLOAD_SIZE, upload_source, &src, &err),
                     -1);
    assert_string_equal(err->code, NB_ERR_IMAGE_CORRUPT);
    nb_error_free(TAKE_PTR(err));
    assert_int_equal(hv_vol_exists(conn, POOL, "broken", &err), 0);

    /* A source shorter than announced fails too. */
    src = (UploadSource){.x = 1};
    assert_ok(hv_vol_create_for_upload(conn, POOL, "broken", "raw", UPLOAD_SIZE + 8, &err), err);
    assert_int_equal(
        hv_vol_upload(conn, POOL, "broken", UPLOAD_SIZE + 8, upload_source, &src, &err), -1);
    nb_error_free(TAKE_PTR(err));
    assert_int_equal(hv_vol_exists(conn, POOL, "broken", &err), 0);
    assert_int_equal(access(POOL_DIR "/broken", F_OK), -1);

    /* Upload to a missing volume. */
    assert_int_equal(hv_vol_upload(conn, POOL, "missing", 8, upload_source, &src, &err), -1);
    assert_non_null(err);
}

static void
test_linked_clone(void **state)
{
    _cleanup_error_ NbError *err = NULL;
    const uint64_t cap = 100ull * 1024 * 1024;
    assert_ok(hv_vol_create_linked_clone(conn, POOL, "clone", "img", "raw", cap, &err), err);
    /* Again: the same-named volume is replaced. */
    assert_ok(hv_vol_create_linked_clone(conn, POOL, "clone", "img", "raw", cap, &err), err);

    _cleanup_free_ char *path = NULL;
    assert_ok(hv_vol_path(conn, POOL, "clone", &path, &err), err);
    char out[8192];
    const char *argv[] = {"/usr/bin/qemu-img", "info", "-U", "--output=json", path, NULL};
    assert_int_equal(run_capture(argv, out, sizeof(out)), 0);
    assert_non_null(strstr(out, "\"backing-filename\": \"" POOL_DIR "/img\""));
    assert_non_null(strstr(out, "\"backing-filename-format\": \"raw\""));
    assert_non_null(strstr(out, "\"virtual-size\": 104857600"));
    assert_non_null(strstr(out, "\"format\": \"qcow2\""));

    assert_int_equal(
        hv_vol_create_linked_clone(conn, POOL, "clone2", "no-such-vol", "raw", cap, &err), -1);
    nb_error_free(TAKE_PTR(err));
    assert_int_equal(hv_vol_exists(conn, POOL, "clone2", &err), 0);
}

static bool
names_contain(char **names, const char *name)
{
    for (size_t i = 0; names[i]; i++)
        if (streq(names[i], name))
            return true;
    return false;
}

static void
free_names(char **names)
{
    for (size_t i = 0; names && names[i]; i++)
        free(names[i]);
    free(names);
}

static void
test_vol_exists_delete_list(void **state)
{
    _cleanup_error_ NbError *err = NULL;
    char **names = NULL;
    assert_ok(hv_pool_list_volumes(conn, POOL, &names, &err), err);
    assert_true(names_contain(names, "img"));
    assert_true(names_contain(names, "clone"));
    assert_false(names_contain(names, "broken"));
    free_names(names);

    assert_int_equal(hv_vol_exists(conn, POOL, "clone", &err), 1);
    assert_ok(hv_vol_delete(conn, POOL, "clone", &err), err);
    assert_int_equal(hv_vol_exists(conn, POOL, "clone", &err), 0);
    assert_int_equal(hv_vol_delete(conn, POOL, "clone", &err), 0);
    assert_int_equal(hv_vol_delete(conn, "nimbus-test-hv-nopool", "clone", &err), 0);
    assert_null(err);

    _cleanup_free_ char *path = NULL;
    assert_int_equal(hv_vol_path(conn, POOL, "clone", &path, &err), -1);
    assert_string_equal(err->code, NB_ERR_INTERNAL);
    nb_error_free(TAKE_PTR(err));

    /* A file that appeared behind libvirt's back is found after the refresh on a miss. */
    FILE *f = fopen(POOL_DIR "/outside", "we");
    assert_non_null(f);
    fputs("data", f);
    fclose(f);
    assert_int_equal(hv_vol_exists(conn, POOL, "outside", &err), 1);
    assert_ok(hv_vol_delete(conn, POOL, "outside", &err), err);
    assert_int_equal(access(POOL_DIR "/outside", F_OK), -1);

    assert_ok(hv_vol_delete(conn, POOL, "img", &err), err);
    assert_ok(hv_pool_list_volumes(conn, POOL, &names, &err), err);
    assert_null(names[0]);
    free_names(names);
}

/* ---- networks ---- */

static void
test_network_ensure_active(void **state)
{
    _cleanup_error_ NbError *err = NULL;
    virConnectPtr c = raw_conn();
    virNetworkPtr net = virNetworkDefineXML(c, "<network><name>" NETWORK "</name>"
                                               "<bridge name='nbtesthv0'/></network>");
    assert_non_null(net);
    assert_int_equal(virNetworkIsActive(net), 0);

    assert_ok(hv_network_ensure_active(conn, NETWORK, &err), err);
    assert_ok(hv_network_ensure_active(conn, NETWORK, &err), err);
    assert_int_equal(virNetworkIsActive(net), 1);
    int autostart = 0;
    assert_int_equal(virNetworkGetAutostart(net, &autostart), 0);
    assert_int_equal(autostart, 1);

    assert_int_equal(virNetworkDestroy(net), 0);
    assert_int_equal(virNetworkUndefine(net), 0);
    virNetworkFree(net);
    virConnectClose(c);

    assert_int_equal(hv_network_ensure_active(conn, NETWORK, &err), -1);
    assert_string_equal(err->code, NB_ERR_HYPERVISOR);
}

/* ---- domains ---- */

static char *
domain_xml(void)
{
    return str_printf("<domain type='qemu'>\n"
                      "  <name>%s</name>\n"
                      "  <uuid>%s</uuid>\n"
                      "  <memory unit='MiB'>64</memory>\n"
                      "  <vcpu>1</vcpu>\n"
                      "  <os><type arch='x86_64' machine='q35'>hvm</type></os>\n"
                      "  <features><acpi/></features>\n"
                      "  <devices>\n"
                      "    <serial type='pty'>\n"
                      "      <log file='%s' append='off'/>\n"
                      "      <target port='0'/>\n"
                      "    </serial>\n"
                      "  </devices>\n"
                      "</domain>\n",
                      dom_name, dom_uuid, console_log);
}

static void
assert_state(const char *name, HvDomainState want)
{
    _cleanup_error_ NbError *err = NULL;
    HvDomainState st = _HV_DOMAIN_STATE_MAX;
    assert_ok(hv_domain_get_state(conn, name, &st, &err), err);
    if (st != want)
        fail_msg("domain %s is %s, expected %s", name, hv_domain_state_to_string(st),
                 hv_domain_state_to_string(want));
}

static void
test_domain_lifecycle(void **state)
{
    _cleanup_error_ NbError *err = NULL;
    _cleanup_free_ char *xml = domain_xml();
    assert_non_null(xml);
    reset_events();

    assert_ok(hv_domain_define(conn, xml, &err), err);
    assert_ok(hv_domain_define(conn, xml, &err), err); /* redefinition: same name and uuid */
    assert_state(dom_name, HV_DOMAIN_SHUTOFF);
    assert_true(wait_event(dom_name, HV_EVENT_DEFINED, 10000));

    /* libvirt refuses the same name with another uuid. */
    char other[NB_UUID_STRLEN];
    assert_int_equal(nb_uuid_generate(other), 0);
    _cleanup_free_ char *other_xml = strdup(xml);
    assert_non_null(other_xml);
    memcpy(strstr(other_xml, dom_uuid), other, 36);
    assert_int_equal(hv_domain_define(conn, other_xml, &err), -1);
    assert_string_equal(err->code, NB_ERR_HYPERVISOR);
    nb_error_free(TAKE_PTR(err));

    HvDomainInfo *infos = NULL;
    size_t n = 0;
    assert_ok(hv_domain_list(conn, dom_name, &infos, &n, &err), err);
    assert_int_equal(n, 1);
    assert_string_equal(infos[0].name, dom_name);
    assert_int_equal(infos[0].state, HV_DOMAIN_SHUTOFF);
    free(infos);

    /* Not running: suspend and reboot refuse, stop and destroy are no-ops. */
    assert_int_equal(hv_domain_suspend(conn, dom_name, &err), -1);
    assert_string_equal(err->code, NB_ERR_INVALID_STATE);
    nb_error_free(TAKE_PTR(err));
    assert_int_equal(hv_domain_reboot(conn, dom_name, &err), -1);
    nb_error_free(TAKE_PTR(err));
    assert_ok(hv_domain_stop(conn, dom_name, 1000, &err), err);
    assert_ok(hv_domain_destroy(conn, dom_name, &err), err);

    assert_ok(hv_domain_start(conn, dom_name, &err), err);
    assert_state(dom_name, HV_DOMAIN_RUNNING);
    assert_true(wait_event(dom_name, HV_EVENT_STARTED, 10000));
    assert_ok(hv_domain_start(conn, dom_name, &err), err); /* running already */

    char ip[64] = "x";
    assert_ok(hv_domain_get_ipv4(conn, dom_name, ip, sizeof(ip), &err), err);
    assert_string_equal(ip, ""); /* no NIC at all */

    assert_ok(hv_domain_suspend(conn, dom_name, &err), err);
    assert_state(dom_name, HV_DOMAIN_PAUSED);
    assert_true(wait_event(dom_name, HV_EVENT_SUSPENDED, 10000));
    assert_ok(hv_domain_suspend(conn, dom_name, &err), err); /* paused already */

    assert_ok(hv_domain_resume(conn, dom_name, &err), err);
    assert_state(dom_name, HV_DOMAIN_RUNNING);
    assert_true(wait_event(dom_name, HV_EVENT_RESUMED, 10000));
    assert_ok(hv_domain_resume(conn, dom_name, &err), err); /* running already */

    /* The BIOS ignores ACPI power-off: stop must fall back to destroy after the timeout. */
    uint64_t t0 = nb_monotonic_ms();
    assert_ok(hv_domain_stop(conn, dom_name, 2000, &err), err);
    uint64_t took = nb_monotonic_ms() - t0;
    assert_true(took >= 2000);
    assert_true(took < 10000);
    assert_state(dom_name, HV_DOMAIN_SHUTOFF);
    assert_true(wait_event(dom_name, HV_EVENT_STOPPED_DESTROYED, 10000));

    /* The serial console was logged to the file. */
    assert_int_equal(access(console_log, F_OK), 0);

    /* Undefining a running domain destroys it first. */
    assert_ok(hv_domain_start(conn, dom_name, &err), err);
    assert_state(dom_name, HV_DOMAIN_RUNNING);
    assert_ok(hv_domain_undefine(conn, dom_name, &err), err);
    assert_state(dom_name, HV_DOMAIN_NONE);
    assert_true(wait_event(dom_name, HV_EVENT_UNDEFINED, 10000));
    assert_ok(hv_domain_undefine(conn, dom_name, &err), err); /* absent: 0 */

    assert_ok(hv_domain_list(conn, dom_name, &infos, &n, &err), err);
    assert_int_equal(n, 0);
    free(infos);
    unlink(console_log);
}

static void
test_domain_missing(void **state)
{
    _cleanup_error_ NbError *err = NULL;
    const char *missing = DOMAIN_PREFIX "does-not-exist";
    assert_state(missing, HV_DOMAIN_NONE);
    assert_ok(hv_domain_undefine(conn, missing, &err), err);
    assert_ok(hv_domain_destroy(conn, missing, &err), err);
    assert_int_equal(hv_domain_start(conn, missing, &err), -1);
    assert_string_equal(err->code, NB_ERR_HYPERVISOR);
    nb_error_free(TAKE_PTR(err));
    char ip[64];
    assert_int_equal(hv_domain_get_ipv4(conn, missing, ip, sizeof(ip), &err), -1);
    nb_error_free(TAKE_PTR(err));

    assert_int_equal(hv_domain_define(conn, "<domain type='qemu'><name>", &err), -1);
    assert_string_equal(err->code, NB_ERR_HYPERVISOR);
    assert_non_null(strstr(err->message, "defining a domain: "));
}

static void
test_state_strings(void **state)
{
    assert_string_equal(hv_domain_state_to_string(HV_DOMAIN_NONE), "none");
    assert_string_equal(hv_domain_state_to_string(HV_DOMAIN_SHUTOFF), "shutoff");
    assert_string_equal(hv_domain_state_to_string(HV_DOMAIN_OTHER), "other");
    assert_null(hv_domain_state_to_string(_HV_DOMAIN_STATE_MAX));
    assert_true(hv_conn_is_alive(conn));
}

static void
test_open_bad_uri(void **state)
{
    _cleanup_error_ NbError *err = NULL;
    HvConn *c = NULL;
    assert_int_equal(hv_conn_open("nosuchdriver:///nowhere", &c, &err), -1);
    assert_null(c);
    assert_string_equal(err->code, NB_ERR_HYPERVISOR);
}

static void
test_storage_teardown(void **state)
{
    /* The pool itself goes in cleanup_leftovers; check our volumes are all gone by now. */
    _cleanup_error_ NbError *err = NULL;
    char **names = NULL;
    assert_ok(hv_pool_list_volumes(conn, POOL, &names, &err), err);
    assert_null(names[0]);
    free_names(names);
}

/* ---- simulated hosts (libvirt's test driver reading a host file) ---- */

#define SIM_POOL "nimbus-sim"

/* Private to this run: another run of this test may be going on beside it. */
static char sim_dir[] = "/tmp/nimbus-test-hv-sim-XXXXXX";

/* A host file as scripts/simhosts.py writes them: CPUs, memory, the network; no pool (Nimbus
 * defines it). */
static void
sim_write_host(const char *path, unsigned cores, uint64_t mem_kib)
{
    _cleanup_fclose_ FILE *f = fopen(path, "we");
    assert_non_null(f);
    fprintf(f,
            "<node><cpu><nodes>1</nodes><sockets>1</sockets><cores>%u</cores>"
            "<threads>1</threads><active>%u</active><mhz>2000</mhz><model>sim</model></cpu>"
            "<memory>%" PRIu64 "</memory>"
            "<network><name>default</name><bridge name='virbr0'/><forward/>"
            "<ip address='192.168.122.1' netmask='255.255.255.0'><dhcp>"
            "<range start='192.168.122.2' end='192.168.122.254'/></dhcp></ip></network>"
            "</node>\n",
            cores, cores, mem_kib);
}

static HvConn *
sim_open(const char *file, unsigned cores, uint64_t mem_kib)
{
    _cleanup_error_ NbError *err = NULL;
    _cleanup_free_ char *path = str_printf("%s/%s", sim_dir, file);
    _cleanup_free_ char *uri = str_printf("test://%s", path);
    assert_non_null(uri);
    sim_write_host(path, cores, mem_kib);
    HvConn *c = NULL;
    assert_ok(hv_conn_open(uri, &c, &err), err);
    assert_true(hv_conn_is_simulated(c));
    _cleanup_free_ char *pool = str_printf("%s/pool", sim_dir);
    assert_ok(hv_pool_ensure(c, SIM_POOL, pool, &err), err);
    /* Again: now the pool is read back (the test driver refuses the INACTIVE flag). */
    assert_ok(hv_pool_ensure(c, SIM_POOL, pool, &err), err);
    assert_ok(hv_network_ensure_active(c, "default", &err), err);
    return c;
}

/* The capacity of a volume as the simulated host itself reports it. */
static uint64_t
sim_vol_capacity(HvConn *c, const char *vol)
{
    virStoragePoolPtr p = virStoragePoolLookupByName(c->conn, SIM_POOL);
    assert_non_null(p);
    virStorageVolPtr v = virStorageVolLookupByName(p, vol);
    assert_non_null(v);
    virStorageVolInfo info;
    assert_int_equal(virStorageVolGetInfo(v, &info), 0);
    virStorageVolFree(v);
    virStoragePoolFree(p);
    return info.capacity;
}

static void
sim_assert_state(HvConn *c, const char *name, HvDomainState want)
{
    _cleanup_error_ NbError *err = NULL;
    HvDomainState st = _HV_DOMAIN_STATE_MAX;
    assert_ok(hv_domain_get_state(c, name, &st, &err), err);
    if (st != want)
        fail_msg("domain %s is %s, expected %s", name, hv_domain_state_to_string(st),
                 hv_domain_state_to_string(want));
}

static void
test_sim_host(void **state)
{
    _cleanup_error_ NbError *err = NULL;
    assert_non_null(mkdtemp(sim_dir));
    assert_false(hv_conn_is_simulated(conn));
    assert_false(hv_conn_is_simulated(NULL));
    HvConn *a = sim_open("a.xml", 12, 24ull << 20);
    HvConn *b = sim_open("b.xml", 4, 8ull << 20);

    /* Each file is its own hypervisor, with the capacity it gives. */
    HostFacts fa, fb;
    assert_ok(hv_host_facts(a, SIM_POOL, &fa, &err), err);
    assert_ok(hv_host_facts(b, SIM_POOL, &fb, &err), err);
    assert_int_equal(fa.vcpus, 12);
    assert_int_equal(fa.ram_mib, 24 * 1024);
    assert_int_equal(fb.vcpus, 4);
    assert_int_equal(fb.ram_mib, 8 * 1024);
    assert_int_equal(fa.disk_gib, 100); /* the test driver's fixed pool size */
    assert_string_equal(fa.cpu_model, "sim");
    assert_string_equal(fa.qemu_version, ""); /* no QEMU behind it */

    /* An upload keeps the volume's size and drops the bytes; a short one fails and leaves
     * nothing. */
    UploadSource src = {.x = 7};
    assert_ok(hv_vol_create_for_upload(a, SIM_POOL, "img", "raw", UPLOAD_SIZE, &err), err);
    assert_ok(hv_vol_upload(a, SIM_POOL, "img", UPLOAD_SIZE, upload_source, &src, &err), err);
    assert_int_equal(src.produced, UPLOAD_SIZE);
    assert_int_equal(sim_vol_capacity(a, "img"), UPLOAD_SIZE);
    src = (UploadSource){.x = 7};
    assert_ok(hv_vol_create_for_upload(a, SIM_POOL, "short", "raw", UPLOAD_SIZE + 8, &err), err);
    assert_int_equal(
        hv_vol_upload(a, SIM_POOL, "short", UPLOAD_SIZE + 8, upload_source, &src, &err), -1);
    nb_error_free(TAKE_PTR(err));
    assert_int_equal(hv_vol_exists(a, SIM_POOL, "short", &err), 0);
    src = (UploadSource){.x = 7, .fail_after = 1024 * 1024, .set_own_error = true};
    assert_ok(hv_vol_create_for_upload(a, SIM_POOL, "bad", "raw", UPLOAD_SIZE, &err), err);
    assert_int_equal(hv_vol_upload(a, SIM_POOL, "bad", UPLOAD_SIZE, upload_source, &src, &err), -1);
    assert_string_equal(err->code, NB_ERR_IMAGE_CORRUPT);
    nb_error_free(TAKE_PTR(err));
    assert_int_equal(hv_vol_exists(a, SIM_POOL, "bad", &err), 0);

    /* A VM's volumes and a domain of type test, through its lifecycle. */
    const uint64_t cap = 1ull << 30;
    assert_ok(hv_vol_create_linked_clone(a, SIM_POOL, "disk", "img", "raw", cap, &err), err);
    assert_int_equal(sim_vol_capacity(a, "disk"), cap);
    assert_ok(hv_vol_create_for_upload(a, SIM_POOL, "seed", "raw", 4096, &err), err);
    _cleanup_free_ char *disk = NULL, *seed = NULL;
    assert_ok(hv_vol_path(a, SIM_POOL, "disk", &disk, &err), err);
    assert_ok(hv_vol_path(a, SIM_POOL, "seed", &seed, &err), err);
    char uuid[NB_UUID_STRLEN], name[64];
    assert_int_equal(nb_uuid_generate(uuid), 0);
    snprintf(name, sizeof(name), "nimbus-%s", uuid);
    DomainSpec spec = {
        .uuid = uuid,
        .domain_name = name,
        .vm_name = "sim",
        .project = "default",
        .flavor_name = "f",
        .image_id = uuid,
        .virt_type = VIRT_TYPE_TEST,
        .vcpus = 2,
        .ram_mib = 256,
        .disk_gib = 1,
        .disk_path = disk,
        .seed_path = seed,
        .network = "default",
        .mac = "52:54:00:00:00:01",
        .console_log = "/nonexistent/console.log", /* nothing is written on a simulated host */
        .created_at = "2026-01-01T00:00:00.000Z",
    };
    _cleanup_free_ char *xml = domain_xml_build(&spec);
    assert_non_null(xml);
    assert_ok(hv_domain_define(a, xml, &err), err);
    assert_ok(hv_domain_start(a, name, &err), err);
    sim_assert_state(a, name, HV_DOMAIN_RUNNING);
    assert_ok(hv_domain_stop(a, name, 1000, &err), err);
    sim_assert_state(a, name, HV_DOMAIN_SHUTOFF);
    assert_ok(hv_domain_start(a, name, &err), err);
    char ip[64];
    assert_ok(hv_domain_get_ipv4(a, name, ip, sizeof(ip), &err), err);

    /* A volume's tail: there are no bytes to read, so it is empty. */
    char *tail = NULL;
    size_t tail_len = 99;
    assert_int_equal(hv_vol_read_tail(a, SIM_POOL, "seed", 1024, &tail, &tail_len, &err), 1);
    assert_int_equal(tail_len, 0);
    free(tail);
    assert_int_equal(hv_vol_read_tail(a, SIM_POOL, "nothing", 1024, &tail, &tail_len, &err), 0);

    /* Copies to another simulated host have the source's size; a migration moves the running
     * domain, which the source forgets. */
    assert_int_equal(hv_vol_exists(b, SIM_POOL, "img", &err), 0);
    assert_ok(hv_vol_copy(a, b, SIM_POOL, "img", &err), err);
    assert_int_equal(sim_vol_capacity(b, "img"), UPLOAD_SIZE);
    assert_ok(hv_vol_copy(a, b, SIM_POOL, "seed", &err), err);
    assert_ok(hv_vol_create_linked_clone(b, SIM_POOL, "disk", "img", "raw", cap, &err), err);
    HvMigrateOptions o = {.copy_storage = true};
    assert_ok(hv_domain_migrate(a, b, name, &o, &err), err);
    sim_assert_state(b, name, HV_DOMAIN_RUNNING);
    sim_assert_state(a, name, HV_DOMAIN_NONE);

    /* A simulated host has no bytes for a real one, and no migration to or from one. */
    assert_int_equal(hv_vol_copy(b, conn, SIM_POOL, "img", &err), -1);
    assert_string_equal(err->code, NB_ERR_HYPERVISOR);
    nb_error_free(TAKE_PTR(err));
    assert_int_equal(hv_domain_migrate(b, conn, name, &o, &err), -1);
    assert_string_equal(err->code, NB_ERR_HYPERVISOR);
    nb_error_free(TAKE_PTR(err));

    assert_ok(hv_domain_undefine(b, name, &err), err);
    sim_assert_state(b, name, HV_DOMAIN_NONE);
    const char *vols[] = {"img", "disk", "seed"};
    for (size_t i = 0; i < ELEMENTSOF(vols); i++) {
        assert_ok(hv_vol_delete(a, SIM_POOL, vols[i], &err), err);
        assert_ok(hv_vol_delete(b, SIM_POOL, vols[i], &err), err);
    }
    hv_conn_free(a);
    hv_conn_free(b);
    for (size_t i = 0; i < 2; i++) {
        _cleanup_free_ char *file = str_printf("%s/%s", sim_dir, i == 0 ? "a.xml" : "b.xml");
        assert_int_equal(unlink(file), 0);
    }
    assert_int_equal(rmdir(sim_dir), 0);
}

int
main(void)
{
    test_uri = getenv("NIMBUS_TEST_LIBVIRT_URI");
    if (!test_uri || !*test_uri)
        test_uri = "qemu:///system";

    _cleanup_error_ NbError *err = NULL;
    if (hv_events_init(&err) < 0 || hv_conn_open(test_uri, &conn, &err) < 0) {
        fprintf(stderr, "test_hv: cannot reach libvirt at %s: %s\n", test_uri,
                err && err->message ? err->message : "?");
        return 1;
    }
    /* Registering twice replaces the first registration (whose contexts libvirt frees). */
    if (hv_conn_set_callbacks(conn, on_lifecycle, on_close, &rec, &err) < 0 ||
        hv_conn_set_callbacks(conn, on_lifecycle, on_close, &rec, &err) < 0) {
        fprintf(stderr, "test_hv: registering callbacks: %s\n", err->message);
        return 1;
    }
    char uuid[NB_UUID_STRLEN];
    if (nb_uuid_generate(uuid) < 0)
        return 1;
    snprintf(dom_name, sizeof(dom_name), DOMAIN_PREFIX "%.8s", uuid);
    if (nb_uuid_generate(dom_uuid) < 0)
        return 1;
    snprintf(console_log, sizeof(console_log), "/tmp/%s-console.log", dom_name);

    cleanup_leftovers();

    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_state_strings),      cmocka_unit_test(test_open_bad_uri),
        cmocka_unit_test(test_pool_ensure),        cmocka_unit_test(test_upload),
        cmocka_unit_test(test_upload_small_qcow2), cmocka_unit_test(test_upload_fails),
        cmocka_unit_test(test_linked_clone),       cmocka_unit_test(test_vol_exists_delete_list),
        cmocka_unit_test(test_storage_teardown),   cmocka_unit_test(test_network_ensure_active),
        cmocka_unit_test(test_domain_lifecycle),   cmocka_unit_test(test_domain_missing),
        cmocka_unit_test(test_sim_host),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);

    cleanup_leftovers();
    unlink(console_log);
    hv_conn_free(conn);
    hv_events_shutdown();
    return failed ? 1 : 0;
}
