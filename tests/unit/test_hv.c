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
#include <signal.h>
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
#include "hv/network_xml.h"
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
        .nics = &(DomainNic){DOMAIN_NIC_NETWORK, "default", "52:54:00:00:00:01", NULL, 0},
        .n_nics = 1,
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

/* ---- tenant networks and NICs (hv_network.c) ---- */

/* This run's names: another run of this test may go on beside it. */
static char run_id[9];

static size_t
count_substr(const char *hay, const char *needle)
{
    size_t n = 0;
    for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle))
        n++;
    return n;
}

/* A network's XML: its definition (inactive) or what runs. The test driver refuses the INACTIVE
 * flag; there the live XML of an inactive network is its definition. */
static char *
net_xml(HvConn *c, const char *name, bool inactive)
{
    virNetworkPtr net = virNetworkLookupByName(c->conn, name);
    if (!net)
        return NULL;
    char *xml = virNetworkGetXMLDesc(net, inactive ? VIR_NETWORK_XML_INACTIVE : 0);
    if (!xml && inactive && virGetLastErrorCode() == VIR_ERR_INVALID_ARG)
        xml = virNetworkGetXMLDesc(net, 0);
    virNetworkFree(net);
    assert_non_null(xml);
    return xml;
}

static char *
dom_xml(HvConn *c, const char *name, bool inactive)
{
    virDomainPtr d = virDomainLookupByName(c->conn, name);
    assert_non_null(d);
    char *xml = virDomainGetXMLDesc(d, inactive ? VIR_DOMAIN_XML_INACTIVE : 0);
    virDomainFree(d);
    assert_non_null(xml);
    return xml;
}

static bool
net_exists(HvConn *c, const char *name)
{
    virNetworkPtr net = virNetworkLookupByName(c->conn, name);
    if (net)
        virNetworkFree(net);
    return net != NULL;
}

static void
net_assert_state(HvConn *c, const char *name, int active, int autostart)
{
    virNetworkPtr net = virNetworkLookupByName(c->conn, name);
    assert_non_null(net);
    assert_int_equal(virNetworkIsActive(net), active);
    assert_int_equal(virNetworkIsPersistent(net), 1);
    int a = -1;
    assert_int_equal(virNetworkGetAutostart(net, &a), 0);
    assert_int_equal(a, autostart);
    virNetworkFree(net);
}

static void
net_stop(HvConn *c, const char *name)
{
    virNetworkPtr net = virNetworkLookupByName(c->conn, name);
    assert_non_null(net);
    assert_int_equal(virNetworkDestroy(net), 0);
    virNetworkFree(net);
}

static void
net_start(HvConn *c, const char *name)
{
    virNetworkPtr net = virNetworkLookupByName(c->conn, name);
    assert_non_null(net);
    assert_int_equal(virNetworkCreate(net), 0);
    virNetworkFree(net);
}

static char *
host_xml(const char *mac, const char *ip)
{
    uint32_t a, b, c, d;
    assert_int_equal(sscanf(ip, "%u.%u.%u.%u", &a, &b, &c, &d), 4);
    NetXmlHost h = {mac, a << 24 | b << 16 | c << 8 | d};
    char *x = network_xml_dhcp_host(&h);
    assert_non_null(x);
    return x;
}

/* How many DHCP entries the network has for mac, for ip, and for both together, in its live
 * state and in its definition (each must agree). */
static void
assert_dhcp(HvConn *c, const char *name, const char *mac, const char *ip, size_t want)
{
    _cleanup_free_ char *entry = str_printf("<host mac='%s' ip='%s'/>", mac, ip);
    for (int inactive = 0; inactive < 2; inactive++) {
        _cleanup_free_ char *xml = net_xml(c, name, inactive);
        if (count_substr(xml, entry) != want)
            fail_msg("%s %s: %zu x %s, want %zu:\n%s", name, inactive ? "config" : "live",
                     count_substr(xml, entry), entry, want, xml);
    }
}

static size_t
dhcp_entries(HvConn *c, const char *name, bool inactive)
{
    _cleanup_free_ char *xml = net_xml(c, name, inactive);
    return count_substr(xml, "<host ");
}

static char *
spec_xml(const char *name, const char *bridge, NetworkType type, const char *gw,
         const NetXmlHost *hosts, size_t n_hosts)
{
    uint32_t g = 0;
    if (gw) {
        uint32_t a, b, c, d;
        assert_int_equal(sscanf(gw, "%u.%u.%u.%u", &a, &b, &c, &d), 4);
        g = a << 24 | b << 16 | c << 8 | d;
    }
    static const uint32_t dns[] = {0x01010101u};
    NetXmlSpec s = {
        .name = name,
        .bridge = bridge,
        .type = type,
        .gateway = g,
        .prefix = 24,
        .dhcp = g != 0,
        .dns = dns,
        .n_dns = 1,
        .mtu = 1500,
        .hosts = hosts,
        .n_hosts = n_hosts,
    };
    char *xml = network_xml_build(&s);
    assert_non_null(xml);
    return xml;
}

static HvConn *
sim_default(void)
{
    _cleanup_error_ NbError *err = NULL;
    HvConn *c = NULL;
    assert_ok(hv_conn_open("test:///default", &c, &err), err);
    assert_true(hv_conn_is_simulated(c));
    return c;
}

/* libvirt defines and starts every golden network as we write it. */
static void
test_net_golden_defined(void **state)
{
    static const char *const cases[] = {"nat", "isolated", "isolated_no_gateway",
                                        "dns", "mtu",      "many_hosts"};
    _cleanup_error_ NbError *err = NULL;
    HvConn *c = sim_default();
    for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
        _cleanup_free_ char *path = str_printf("%s/network/%s.xml", GOLDEN_DIR, cases[i]);
        _cleanup_fclose_ FILE *f = fopen(path, "re");
        assert_non_null(f);
        char *xml = NULL;
        size_t cap = 0;
        ssize_t len = getdelim(&xml, &cap, '\0', f);
        assert_true(len > 0);
        char *start = strstr(xml, "<name>"), *end = strstr(xml, "</name>");
        assert_non_null(start);
        assert_non_null(end);
        _cleanup_free_ char *name = strndup(start + 6, (size_t)(end - start - 6));
        assert_ok(hv_net_ensure(c, name, xml, &err), err);
        net_assert_state(c, name, 1, 1);
        _cleanup_free_ char *back = net_xml(c, name, false);
        /* Every host entry and forwarder survived libvirt's parse. */
        assert_int_equal(count_substr(back, "<host "), count_substr(xml, "<host "));
        assert_int_equal(count_substr(back, "<forwarder "), count_substr(xml, "<forwarder "));
        assert_int_equal(count_substr(back, "<forward mode='nat'"),
                         count_substr(xml, "<forward mode='nat'"));
        assert_ok(hv_net_remove(c, name, &err), err);
        assert_false(net_exists(c, name));
        free(xml);
    }
    hv_conn_free(c);
}

static void
test_net_ensure_remove(void **state)
{
    _cleanup_error_ NbError *err = NULL;
    HvConn *c = sim_default();
    _cleanup_free_ char *name = str_printf("nimbus-test-hv-net-%s", run_id);
    _cleanup_free_ char *bridge = str_printf("nbrhv%s", run_id);
    static const NetXmlHost hosts[] = {{"52:54:00:aa:00:01", 0x0afe0a0au}}; /* 10.254.10.10 */
    _cleanup_free_ char *xml =
        spec_xml(name, bridge, NETWORK_TYPE_NAT, "10.254.10.1", hosts, ELEMENTSOF(hosts));

    assert_ok(hv_net_ensure(c, name, xml, &err), err);
    net_assert_state(c, name, 1, 1);
    assert_dhcp(c, name, "52:54:00:aa:00:01", "10.254.10.10", 1);

    /* Present: left as it is, whatever the XML now says. */
    _cleanup_free_ char *other = spec_xml(name, bridge, NETWORK_TYPE_NAT, "10.254.10.1", NULL, 0);
    assert_ok(hv_net_ensure(c, name, other, &err), err);
    assert_dhcp(c, name, "52:54:00:aa:00:01", "10.254.10.10", 1);

    /* Stopped, and not to autostart: started and set to autostart again. */
    net_stop(c, name);
    virNetworkPtr net = virNetworkLookupByName(c->conn, name);
    assert_non_null(net);
    assert_int_equal(virNetworkSetAutostart(net, 0), 0);
    virNetworkFree(net);
    net_assert_state(c, name, 0, 0);
    assert_ok(hv_net_ensure(c, name, xml, &err), err);
    net_assert_state(c, name, 1, 1);

    /* Defined inactive: removed all the same; twice is fine. */
    net_stop(c, name);
    assert_ok(hv_net_remove(c, name, &err), err);
    assert_false(net_exists(c, name));
    assert_ok(hv_net_remove(c, name, &err), err);
    assert_null(err);
    assert_ok(hv_net_ensure(c, name, xml, &err), err);
    assert_ok(hv_net_remove(c, name, &err), err);
    assert_false(net_exists(c, name));

    /* libvirt's refusal is the error. */
    assert_int_equal(hv_net_ensure(c, name, "<network><name>", &err), -1);
    assert_string_equal(err->code, NB_ERR_HYPERVISOR);
    assert_non_null(strstr(err->message, "defining network"));
    assert_false(net_exists(c, name));
    hv_conn_free(c);
}

static void
test_net_dhcp_hosts(void **state)
{
    _cleanup_error_ NbError *err = NULL;
    HvConn *c = sim_default();
    _cleanup_free_ char *name = str_printf("nimbus-test-hv-dhcp-%s", run_id);
    _cleanup_free_ char *bridge = str_printf("nbrhd%s", run_id);
    static const NetXmlHost hosts[] = {{"52:54:00:bb:00:01", 0x0afe0b02u}}; /* 10.254.11.2 */
    _cleanup_free_ char *xml =
        spec_xml(name, bridge, NETWORK_TYPE_ISOLATED, "10.254.11.1", hosts, ELEMENTSOF(hosts));
    _cleanup_free_ char *b3 = host_xml("52:54:00:bb:00:02", "10.254.11.3");
    _cleanup_free_ char *b4 = host_xml("52:54:00:bb:00:02", "10.254.11.4");
    _cleanup_free_ char *c4 = host_xml("52:54:00:bb:00:03", "10.254.11.4");

    /* No network: set is an error, remove is not. */
    assert_int_equal(hv_net_dhcp_host_set(c, name, b3, &err), -1);
    assert_string_equal(err->code, NB_ERR_HYPERVISOR);
    nb_error_free(TAKE_PTR(err));
    assert_ok(hv_net_dhcp_host_remove(c, name, b3, &err), err);

    assert_ok(hv_net_ensure(c, name, xml, &err), err);
    assert_ok(hv_net_dhcp_host_set(c, name, b3, &err), err);
    assert_dhcp(c, name, "52:54:00:bb:00:01", "10.254.11.2", 1);
    assert_dhcp(c, name, "52:54:00:bb:00:02", "10.254.11.3", 1);
    assert_ok(hv_net_dhcp_host_set(c, name, b3, &err), err); /* again: still one */
    assert_dhcp(c, name, "52:54:00:bb:00:02", "10.254.11.3", 1);
    assert_int_equal(dhcp_entries(c, name, false), 2);

    /* Same MAC, new IP: the old entry goes. */
    assert_ok(hv_net_dhcp_host_set(c, name, b4, &err), err);
    assert_dhcp(c, name, "52:54:00:bb:00:02", "10.254.11.3", 0);
    assert_dhcp(c, name, "52:54:00:bb:00:02", "10.254.11.4", 1);
    assert_int_equal(dhcp_entries(c, name, false), 2);

    /* Same IP, new MAC: likewise. */
    assert_ok(hv_net_dhcp_host_set(c, name, c4, &err), err);
    assert_dhcp(c, name, "52:54:00:bb:00:02", "10.254.11.4", 0);
    assert_dhcp(c, name, "52:54:00:bb:00:03", "10.254.11.4", 1);
    assert_int_equal(dhcp_entries(c, name, false), 2);

    /* Removal goes by MAC, whatever the IP; absent is fine. */
    _cleanup_free_ char *c9 = host_xml("52:54:00:bb:00:03", "10.254.11.9");
    assert_ok(hv_net_dhcp_host_remove(c, name, c9, &err), err);
    assert_dhcp(c, name, "52:54:00:bb:00:03", "10.254.11.4", 0);
    assert_ok(hv_net_dhcp_host_remove(c, name, c9, &err), err);
    assert_int_equal(dhcp_entries(c, name, false), 1);

    /* An inactive network: its definition changes, and the network starts with it. */
    net_stop(c, name);
    assert_ok(hv_net_dhcp_host_set(c, name, b3, &err), err);
    assert_int_equal(hv_net_dhcp_host_remove(c, name, "<host ip='10.254.11.3'/>", &err), -1);
    assert_string_equal(err->code, NB_ERR_INTERNAL); /* removal goes by MAC: it needs one */
    nb_error_free(TAKE_PTR(err));
    net_start(c, name);
    assert_dhcp(c, name, "52:54:00:bb:00:02", "10.254.11.3", 1);
    assert_int_equal(dhcp_entries(c, name, false), 2);

    /* Not our <host> element: refused before libvirt sees it. */
    assert_int_equal(hv_net_dhcp_host_set(c, name, "<host name='x'/>", &err), -1);
    assert_string_equal(err->code, NB_ERR_INTERNAL);
    nb_error_free(TAKE_PTR(err));
    /* libvirt's own refusal (a MAC it cannot parse) comes back as the error. */
    assert_int_equal(
        hv_net_dhcp_host_set(c, name, "<host mac='52:54:00:bb:00' ip='10.254.11.7'/>", &err), -1);
    assert_string_equal(err->code, NB_ERR_HYPERVISOR);
    assert_non_null(strstr(err->message, "DHCP entry of 52:54:00:bb:00 "));
    assert_int_equal(dhcp_entries(c, name, false), 2);
    nb_error_free(TAKE_PTR(err));

    assert_ok(hv_net_remove(c, name, &err), err);
    hv_conn_free(c);
}

/* A simulated host has no hot-plug: the definition changes. */
static void
test_nic_sim(void **state)
{
    _cleanup_error_ NbError *err = NULL;
    HvConn *c = sim_default();
    char uuid[NB_UUID_STRLEN], name[64];
    assert_int_equal(nb_uuid_generate(uuid), 0);
    snprintf(name, sizeof(name), "nimbus-%s", uuid);
    static const DomainNic first = {DOMAIN_NIC_NETWORK, "default", "52:54:00:cc:00:01", NULL, 0};
    DomainSpec spec = {
        .uuid = uuid,
        .domain_name = name,
        .vm_name = "nic-sim",
        .project = "default",
        .flavor_name = "f",
        .image_id = uuid,
        .virt_type = VIRT_TYPE_TEST,
        .vcpus = 1,
        .ram_mib = 64,
        .disk_gib = 1,
        .disk_path = "/nonexistent/disk.qcow2",
        .nics = &first,
        .n_nics = 1,
        .console_log = "/nonexistent/console.log",
        .created_at = "2026-01-01T00:00:00.000Z",
    };
    _cleanup_free_ char *xml = domain_xml_build(&spec);
    assert_non_null(xml);
    DomainNic second = {DOMAIN_NIC_NETWORK, "default", "52:54:00:cc:00:02", "nbtccc000002", 1400};
    _cleanup_free_ char *nic = domain_xml_nic(&second);
    assert_non_null(nic);

    assert_int_equal(hv_domain_nic_attach(c, name, nic, &err), -1); /* no domain */
    assert_string_equal(err->code, NB_ERR_HYPERVISOR);
    nb_error_free(TAKE_PTR(err));
    assert_ok(hv_domain_nic_detach(c, name, nic, &err), err);

    assert_ok(hv_domain_define(c, xml, &err), err);
    assert_ok(hv_domain_start(c, name, &err), err);
    assert_ok(hv_domain_nic_attach(c, name, nic, &err), err);
    assert_ok(hv_domain_nic_attach(c, name, nic, &err), err);
    _cleanup_free_ char *after = dom_xml(c, name, true);
    assert_int_equal(count_substr(after, "<mac address='52:54:00:cc:00:02'/>"), 1);
    assert_int_equal(count_substr(after, "<mac address='52:54:00:cc:00:01'/>"), 1);
    assert_int_equal(count_substr(after, "<interface "), 2);
    assert_non_null(strstr(after, "<target dev='nbtccc000002'/>"));

    assert_ok(hv_domain_nic_detach(c, name, nic, &err), err);
    _cleanup_free_ char *gone = dom_xml(c, name, true);
    assert_int_equal(count_substr(gone, "52:54:00:cc:00:02"), 0);
    assert_int_equal(count_substr(gone, "<mac address='52:54:00:cc:00:01'/>"), 1);
    assert_ok(hv_domain_nic_detach(c, name, nic, &err), err);

    assert_int_equal(hv_domain_nic_attach(c, name, "<interface/>", &err), -1);
    assert_string_equal(err->code, NB_ERR_INTERNAL);
    nb_error_free(TAKE_PTR(err));
    assert_ok(hv_domain_undefine(c, name, &err), err);
    hv_conn_free(c);
}

/* ---- the same against the real libvirtd (conn) ---- */

/* 10.254.X.0/24 with no route on this machine, so a network there collides with nothing. */
static unsigned
free_subnet(void)
{
    /* Start where this run's id points, so that concurrent runs seldom race for one. */
    unsigned start = (unsigned)strtoul(run_id, NULL, 16) % 50;
    for (unsigned i = 0; i < 50; i++) {
        unsigned x = 200 + (start + i) % 50;
        uint32_t net = 0x0afe0000u | x << 8;
        _cleanup_fclose_ FILE *f = fopen("/proc/net/route", "re");
        assert_non_null(f);
        char line[512];
        bool used = false;
        assert_non_null(fgets(line, sizeof(line), f)); /* header */
        while (!used && fgets(line, sizeof(line), f)) {
            char ifname[64];
            unsigned dest, gw, flags, refcnt, use, metric, mask;
            if (sscanf(line, "%63s %x %x %x %u %u %u %x", ifname, &dest, &gw, &flags, &refcnt, &use,
                       &metric, &mask) != 8)
                continue;
            /* Little-endian in the file; the default route (mask 0) overlaps nothing here. */
            dest = __builtin_bswap32(dest);
            mask = __builtin_bswap32(mask);
            used = mask != 0 && ((net & mask) == (dest & mask) || (dest & 0xffffff00u) == net);
        }
        if (!used)
            return x;
    }
    fail_msg("no free 10.254.X.0/24 on this machine");
    return 0;
}

static pid_t
read_pid(const char *path)
{
    _cleanup_fclose_ FILE *f = fopen(path, "re");
    int pid = 0;
    if (!f || fscanf(f, "%d", &pid) != 1)
        return 0;
    return pid;
}

static char *
read_small(const char *path)
{
    _cleanup_fclose_ FILE *f = fopen(path, "re");
    if (!f)
        return strdup("");
    char *buf = NULL;
    size_t cap = 0;
    if (getdelim(&buf, &cap, '\0', f) < 0) {
        free(buf);
        return strdup("");
    }
    return buf;
}

static char real_net[64], real_dhcp_net[64], nic_dom[64], nic_disk[96];

/* A NAT network with static DHCP on the real libvirtd: dnsmasq runs with our entries and
 * follows every change. */
static void
test_net_real_dnsmasq(void **state)
{
    _cleanup_error_ NbError *err = NULL;
    unsigned x = free_subnet();
    _cleanup_free_ char *gw = str_printf("10.254.%u.1", x);
    _cleanup_free_ char *ip_a = str_printf("10.254.%u.10", x);
    _cleanup_free_ char *ip_b = str_printf("10.254.%u.11", x);
    _cleanup_free_ char *ip_a2 = str_printf("10.254.%u.12", x);
    _cleanup_free_ char *bridge = str_printf("nbrhr%s", run_id);
    const NetXmlHost hosts[] = {{"52:54:00:dd:00:01", 0x0afe0000u | x << 8 | 10}};
    _cleanup_free_ char *xml = spec_xml(real_dhcp_net, bridge, NETWORK_TYPE_NAT, gw, hosts, 1);

    assert_ok(hv_net_ensure(conn, real_dhcp_net, xml, &err), err);
    net_assert_state(conn, real_dhcp_net, 1, 1);
    assert_dhcp(conn, real_dhcp_net, "52:54:00:dd:00:01", ip_a, 1);

    _cleanup_free_ char *b = host_xml("52:54:00:dd:00:02", ip_b);
    _cleanup_free_ char *a2 = host_xml("52:54:00:dd:00:01", ip_a2);
    assert_ok(hv_net_dhcp_host_set(conn, real_dhcp_net, b, &err), err);
    assert_ok(hv_net_dhcp_host_set(conn, real_dhcp_net, a2, &err), err);
    assert_dhcp(conn, real_dhcp_net, "52:54:00:dd:00:01", ip_a, 0);
    assert_dhcp(conn, real_dhcp_net, "52:54:00:dd:00:01", ip_a2, 1);
    assert_dhcp(conn, real_dhcp_net, "52:54:00:dd:00:02", ip_b, 1);

    /* What dnsmasq reads, when the libvirtd is this machine's. */
    if (streq(test_uri, "qemu:///system")) {
        _cleanup_free_ char *pidfile = str_printf("/run/libvirt/network/%s.pid", real_dhcp_net);
        _cleanup_free_ char *hostsfile =
            str_printf("/var/lib/libvirt/dnsmasq/%s.hostsfile", real_dhcp_net);
        _cleanup_free_ char *conffile =
            str_printf("/var/lib/libvirt/dnsmasq/%s.conf", real_dhcp_net);
        pid_t pid = read_pid(pidfile);
        assert_true(pid > 0);
        assert_int_equal(kill(pid, 0), 0);
        _cleanup_free_ char *cmdline_path = str_printf("/proc/%d/cmdline", (int)pid);
        _cleanup_free_ char *cmdline = read_small(cmdline_path);
        assert_non_null(strstr(cmdline, "dnsmasq"));
        _cleanup_free_ char *conf = read_small(conffile);
        _cleanup_free_ char *range = str_printf("dhcp-range=%s,static", gw);
        assert_non_null(strstr(conf, range));
        assert_non_null(strstr(conf, "server=1.1.1.1"));
        _cleanup_free_ char *hf = read_small(hostsfile);
        _cleanup_free_ char *want_a = str_printf("52:54:00:dd:00:01,%s\n", ip_a2);
        _cleanup_free_ char *want_b = str_printf("52:54:00:dd:00:02,%s\n", ip_b);
        if (!strstr(hf, want_a) || !strstr(hf, want_b) || count_substr(hf, "\n") != 2)
            fail_msg("hostsfile %s:\n%s", hostsfile, hf);

        assert_ok(hv_net_dhcp_host_remove(conn, real_dhcp_net, b, &err), err);
        free(hf);
        hf = read_small(hostsfile);
        assert_null(strstr(hf, "52:54:00:dd:00:02"));
        assert_non_null(strstr(hf, want_a));

        assert_ok(hv_net_remove(conn, real_dhcp_net, &err), err);
        /* dnsmasq is told to go; give it a moment. */
        bool alive = true;
        for (int i = 0; i < 100 && alive; i++) {
            alive = kill(pid, 0) == 0;
            if (alive)
                usleep(50 * 1000);
        }
        assert_false(alive);
        assert_int_equal(access(hostsfile, F_OK), -1);
    } else {
        assert_ok(hv_net_dhcp_host_remove(conn, real_dhcp_net, b, &err), err);
        assert_dhcp(conn, real_dhcp_net, "52:54:00:dd:00:02", ip_b, 0);
        assert_ok(hv_net_remove(conn, real_dhcp_net, &err), err);
    }
    assert_false(net_exists(conn, real_dhcp_net));
}

/* NIC hot-plug on a running QEMU domain (no guest OS: a live unplug stays pending). */
static void
test_nic_real(void **state)
{
    _cleanup_error_ NbError *err = NULL;
    _cleanup_free_ char *bridge = str_printf("nbrhn%s", run_id);
    _cleanup_free_ char *net = spec_xml(real_net, bridge, NETWORK_TYPE_ISOLATED, NULL, NULL, 0);
    assert_ok(hv_net_ensure(conn, real_net, net, &err), err);

    /* Our own domain XML, with room for every NIC to come. */
    char uuid[NB_UUID_STRLEN];
    assert_int_equal(nb_uuid_generate(uuid), 0);
    char out[512];
    const char *argv[] = {"/usr/bin/qemu-img", "create", "-q", "-f", "qcow2", nic_disk, "1M", NULL};
    assert_int_equal(run_capture(argv, out, sizeof(out)), 0);
    _cleanup_free_ char *tap0 = str_printf("nbthv%s0", run_id);
    _cleanup_free_ char *log = str_printf("/tmp/%s-console.log", nic_dom);
    DomainNic cold = {DOMAIN_NIC_NETWORK, real_net, "52:54:00:ee:00:00", tap0, 0};
    DomainSpec spec = {
        .uuid = uuid,
        .domain_name = nic_dom,
        .vm_name = "nic-real",
        .project = "default",
        .flavor_name = "f",
        .image_id = uuid,
        .virt_type = VIRT_TYPE_QEMU,
        .vcpus = 1,
        .ram_mib = 64,
        .disk_gib = 1,
        .disk_path = nic_disk,
        .nics = &cold,
        .n_nics = 1,
        .hotplug_slots = VM_NICS_MAX - 1,
        .console_log = log,
        .created_at = "2026-01-01T00:00:00.000Z",
    };
    _cleanup_free_ char *dxml = domain_xml_build(&spec);
    assert_non_null(dxml);
    assert_ok(hv_domain_define(conn, dxml, &err), err);
    assert_ok(hv_domain_start(conn, nic_dom, &err), err);

    _cleanup_free_ char *tap = str_printf("nbthv%s", run_id);
    DomainNic n = {DOMAIN_NIC_NETWORK, real_net, "52:54:00:EE:00:01", tap, 1400};
    _cleanup_free_ char *nic = domain_xml_nic(&n);
    assert_non_null(nic);
    static const char mac_tag[] = "<mac address='52:54:00:ee:00:01'/>";

    assert_ok(hv_domain_nic_attach(conn, nic_dom, nic, &err), err);
    assert_ok(hv_domain_nic_attach(conn, nic_dom, nic, &err), err); /* a retry adds nothing */
    _cleanup_free_ char *live = dom_xml(conn, nic_dom, false);
    _cleanup_free_ char *config = dom_xml(conn, nic_dom, true);
    assert_int_equal(count_substr(live, mac_tag), 1);
    assert_int_equal(count_substr(config, mac_tag), 1);
    _cleanup_free_ char *tap_target = str_printf("<target dev='%s'/>", tap);
    assert_non_null(strstr(live, tap_target));
    assert_non_null(strstr(live, "<mtu size='1400'/>"));
    _cleanup_free_ char *sys = str_printf("/sys/class/net/%s/mtu", tap);
    _cleanup_free_ char *mtu = read_small(sys);
    assert_string_equal(mtu, "1400\n");

    /* hotplug_slots kept a port for each NIC up to VM_NICS_MAX. */
    for (unsigned i = 2; i < VM_NICS_MAX; i++) {
        char mac[18];
        snprintf(mac, sizeof(mac), "52:54:00:ee:00:%02x", i);
        DomainNic more = {DOMAIN_NIC_NETWORK, real_net, mac, NULL, 0};
        _cleanup_free_ char *more_xml = domain_xml_nic(&more);
        assert_ok(hv_domain_nic_attach(conn, nic_dom, more_xml, &err), err);
    }
    free(live);
    live = dom_xml(conn, nic_dom, false);
    assert_int_equal(count_substr(live, "<interface "), VM_NICS_MAX);

    /* The definition loses it at once; the running domain when the guest lets go. */
    assert_ok(hv_domain_nic_detach(conn, nic_dom, nic, &err), err);
    free(config);
    config = dom_xml(conn, nic_dom, true);
    assert_int_equal(count_substr(config, mac_tag), 0);

    /* Shut off: the definition only, and the next start has it. */
    assert_ok(hv_domain_destroy(conn, nic_dom, &err), err);
    assert_ok(hv_domain_nic_attach(conn, nic_dom, nic, &err), err);
    free(config);
    config = dom_xml(conn, nic_dom, true);
    assert_int_equal(count_substr(config, mac_tag), 1);
    assert_ok(hv_domain_start(conn, nic_dom, &err), err);
    free(live);
    live = dom_xml(conn, nic_dom, false);
    assert_int_equal(count_substr(live, mac_tag), 1);
    assert_ok(hv_domain_destroy(conn, nic_dom, &err), err);
    assert_ok(hv_domain_nic_detach(conn, nic_dom, nic, &err), err);
    assert_ok(hv_domain_nic_detach(conn, nic_dom, nic, &err), err);
    free(config);
    config = dom_xml(conn, nic_dom, true);
    assert_int_equal(count_substr(config, mac_tag), 0);

    /* libvirt's refusal: a network that does not exist. */
    DomainNic bad = {DOMAIN_NIC_NETWORK, "nimbus-test-hv-no-such-net", "52:54:00:ee:00:0f", NULL,
                     0};
    _cleanup_free_ char *bad_xml = domain_xml_nic(&bad);
    assert_ok(hv_domain_start(conn, nic_dom, &err), err);
    assert_int_equal(hv_domain_nic_attach(conn, nic_dom, bad_xml, &err), -1);
    assert_string_equal(err->code, NB_ERR_HYPERVISOR);
    assert_non_null(strstr(err->message, "attaching NIC 52:54:00:ee:00:0f"));
    nb_error_free(TAKE_PTR(err));

    assert_ok(hv_domain_undefine(conn, nic_dom, &err), err);
    assert_ok(hv_domain_nic_detach(conn, nic_dom, nic, &err), err); /* no domain */
    unlink(nic_disk);
    unlink(log);
    assert_ok(hv_net_remove(conn, real_net, &err), err);
    assert_false(net_exists(conn, real_net));
}

/* Whatever a failed run of this process left on the real libvirtd. */
static void
cleanup_net_leftovers(void)
{
    _cleanup_error_ NbError *err = NULL;
    if (nic_dom[0])
        hv_domain_undefine(conn, nic_dom, &err);
    nb_error_free(TAKE_PTR(err));
    if (real_net[0])
        hv_net_remove(conn, real_net, &err);
    nb_error_free(TAKE_PTR(err));
    if (real_dhcp_net[0])
        hv_net_remove(conn, real_dhcp_net, &err);
    if (nic_disk[0])
        unlink(nic_disk);
    if (nic_dom[0]) {
        _cleanup_free_ char *log = str_printf("/tmp/%s-console.log", nic_dom);
        if (log)
            unlink(log);
    }
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
    snprintf(run_id, sizeof(run_id), "%.8s", uuid);
    snprintf(real_net, sizeof(real_net), "nimbus-test-hv-rn-%s", run_id);
    snprintf(real_dhcp_net, sizeof(real_dhcp_net), "nimbus-test-hv-rd-%s", run_id);
    /* Not under DOMAIN_PREFIX: a concurrent run's cleanup_leftovers would destroy it. */
    snprintf(nic_dom, sizeof(nic_dom), "nimbus-test-hvnic-%s", run_id);
    snprintf(nic_disk, sizeof(nic_disk), "/tmp/%s.qcow2", nic_dom);

    cleanup_leftovers();

    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_state_strings),
        cmocka_unit_test(test_open_bad_uri),
        cmocka_unit_test(test_pool_ensure),
        cmocka_unit_test(test_upload),
        cmocka_unit_test(test_upload_small_qcow2),
        cmocka_unit_test(test_upload_fails),
        cmocka_unit_test(test_linked_clone),
        cmocka_unit_test(test_vol_exists_delete_list),
        cmocka_unit_test(test_storage_teardown),
        cmocka_unit_test(test_network_ensure_active),
        cmocka_unit_test(test_domain_lifecycle),
        cmocka_unit_test(test_domain_missing),
        cmocka_unit_test(test_sim_host),
        cmocka_unit_test(test_net_golden_defined),
        cmocka_unit_test(test_net_ensure_remove),
        cmocka_unit_test(test_net_dhcp_hosts),
        cmocka_unit_test(test_nic_sim),
        cmocka_unit_test(test_net_real_dnsmasq),
        cmocka_unit_test(test_nic_real),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);

    cleanup_net_leftovers();
    cleanup_leftovers();
    unlink(console_log);
    hv_conn_free(conn);
    hv_events_shutdown();
    return failed ? 1 : 0;
}
