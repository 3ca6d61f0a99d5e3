#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/image_probe.h"
#include "util/cleanup.h"
#include "util/spawn.h"
#include "util/strutil.h"

#define KiB (UINT64_C(1) << 10)
#define MiB (UINT64_C(1) << 20)
#define GiB (UINT64_C(1) << 30)
#define MAX_VIRT (100 * GiB)

static char tmpdir[] = "/tmp/nb-probe-XXXXXX";
static char *qemu_img;

static char *
fixture(const char *name)
{
    char *p = str_printf("%s/%s", tmpdir, name);
    assert_non_null(p);
    return p;
}

/* Runs qemu-img with the given arguments (after the program path). */
static void
run_qemu_img(const char *const args[])
{
    const char *argv[24] = {qemu_img};
    size_t n = 1;
    for (size_t i = 0; args[i]; i++) {
        assert_true(n < ELEMENTSOF(argv) - 1);
        argv[n++] = args[i];
    }
    argv[n] = NULL;
    const SpawnLimits lim = {.timeout_ms = 60000};
    _cleanup_free_ char *err = NULL;
    int r = spawn_run(argv, &lim, 0, NULL, &err);
    if (r != 0)
        fprintf(stderr, "qemu-img %s failed (%d): %s\n", args[0], r, err ? err : "");
    assert_int_equal(r, 0);
}

static void
create_image(const char *name, const char *fmt, const char *opts, const char *size)
{
    _cleanup_free_ char *path = fixture(name);
    if (opts) {
        const char *args[] = {"create", "-q", "-f", fmt, "-o", opts, path, size, NULL};
        run_qemu_img(args);
    } else {
        const char *args[] = {"create", "-q", "-f", fmt, path, size, NULL};
        run_qemu_img(args);
    }
}

static void
write_bytes(const char *name, const void *buf, size_t len)
{
    _cleanup_free_ char *path = fixture(name);
    _cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write_full(fd, buf, len), 0);
}

/* The first 64 KiB of a fixture, in a buffer of exactly that length (so ASan sees overreads). */
static uint8_t *
read_head(const char *name, size_t *ret_len)
{
    _cleanup_free_ char *path = fixture(name);
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    uint8_t *tmp = malloc(IMAGE_PROBE_HEADER_BYTES);
    assert_non_null(tmp);
    ssize_t n = read(fd, tmp, IMAGE_PROBE_HEADER_BYTES);
    assert_true(n >= 0);
    uint8_t *buf = malloc(n > 0 ? (size_t)n : 1);
    assert_non_null(buf);
    memcpy(buf, tmp, (size_t)n);
    free(tmp);
    *ret_len = (size_t)n;
    return buf;
}

static uint8_t *
copy_prefix(const uint8_t *src, size_t len)
{
    uint8_t *b = malloc(len ? len : 1);
    assert_non_null(b);
    memcpy(b, src, len);
    return b;
}

static void
put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static void
put_be64(uint8_t *p, uint64_t v)
{
    put_be32(p, (uint32_t)(v >> 32));
    put_be32(p + 4, (uint32_t)v);
}

static uint32_t
get_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Probes a buffer; code NULL means success with the given format. */
static void
expect_buf(const uint8_t *buf, size_t len, uint64_t max, const char *code, ImageFormat fmt,
           uint64_t vsize)
{
    ImageProbeResult res = {.format = _IMAGE_FORMAT_INVALID};
    _cleanup_error_ NbError *err = NULL;
    int r = image_probe_header(buf, len, max, &res, &err);
    if (code) {
        if (r == 0 || !err)
            fail_msg("expected %s, got success (format %d)", code, res.format);
        if (!streq(err->code, code))
            fail_msg("expected %s, got %s: %s", code, err->code, err->message);
        assert_non_null(err->message);
    } else {
        if (r != 0)
            fail_msg("expected success, got %s: %s", err ? err->code : "?",
                     err ? err->message : "");
        assert_null(err);
        assert_int_equal(res.format, fmt);
        assert_int_equal(res.virtual_size_bytes, vsize);
    }
}

static void
expect_header(const char *name, uint64_t max, const char *code, ImageFormat fmt, uint64_t vsize)
{
    size_t len = 0;
    _cleanup_free_ uint8_t *buf = read_head(name, &len);
    expect_buf(buf, len, max, code, fmt, vsize);
}

static void
expect_file(const char *name, ImageFormat expected, uint64_t max, const char *code, uint64_t vsize)
{
    _cleanup_free_ char *path = fixture(name);
    ImageProbeResult res = {.format = _IMAGE_FORMAT_INVALID};
    _cleanup_error_ NbError *err = NULL;
    int r = image_probe_file(path, expected, max, &res, &err);
    if (code) {
        if (r == 0 || !err)
            fail_msg("%s: expected %s, got success", name, code);
        if (!streq(err->code, code))
            fail_msg("%s: expected %s, got %s: %s", name, code, err->code, err->message);
    } else {
        if (r != 0)
            fail_msg("%s: expected success, got %s: %s", name, err ? err->code : "?",
                     err ? err->message : "");
        assert_int_equal(res.format, expected);
        assert_int_equal(res.virtual_size_bytes, vsize);
    }
}

static int
setup(void **state)
{
    if (!mkdtemp(tmpdir))
        return -1;
    if (spawn_find_program("qemu-img", &qemu_img) < 0) {
        fprintf(stderr, "qemu-img not installed (package qemu-utils)\n");
        return -1;
    }
    return 0;
}

static int
teardown(void **state)
{
    DIR *d = opendir(tmpdir);
    if (d) {
        struct dirent *de;
        while ((de = readdir(d))) {
            if (de->d_name[0] != '.')
                (void)unlinkat(dirfd(d), de->d_name, 0);
        }
        closedir(d);
    }
    rmdir(tmpdir);
    free(qemu_img);
    return 0;
}

static void
test_qcow2_v3(void **state)
{
    create_image("v3.qcow2", "qcow2", "compat=1.1", "1M");
    expect_header("v3.qcow2", MAX_VIRT, NULL, IMAGE_FORMAT_QCOW2, MiB);
    expect_file("v3.qcow2", IMAGE_FORMAT_QCOW2, MAX_VIRT, NULL, MiB);
    expect_file("v3.qcow2", IMAGE_FORMAT_RAW, MAX_VIRT, "IMAGE_FORMAT_MISMATCH", 0);
    /* The limit is inclusive. */
    expect_header("v3.qcow2", MiB, NULL, IMAGE_FORMAT_QCOW2, MiB);
    expect_header("v3.qcow2", MiB - 1, "IMAGE_TOO_LARGE", 0, 0);
}

static void
test_qcow2_v2(void **state)
{
    create_image("v2.qcow2", "qcow2", "compat=0.10", "3M");
    size_t len = 0;
    _cleanup_free_ uint8_t *buf = read_head("v2.qcow2", &len);
    assert_int_equal(get_be32(buf + 4), 2);
    expect_buf(buf, len, MAX_VIRT, NULL, IMAGE_FORMAT_QCOW2, 3 * MiB);
    expect_file("v2.qcow2", IMAGE_FORMAT_QCOW2, MAX_VIRT, NULL, 3 * MiB);
}

static void
test_qcow2_backing_file(void **state)
{
    _cleanup_free_ char *path = fixture("backing.qcow2");
    const char *args[] = {"create", "-q", "-f",          "qcow2", "-u", "-F",
                          "raw",    "-b", "/etc/passwd", path,    "1M", NULL};
    run_qemu_img(args);
    expect_header("backing.qcow2", MAX_VIRT, "IMAGE_BACKING_FILE", 0, 0);
    expect_file("backing.qcow2", IMAGE_FORMAT_QCOW2, MAX_VIRT, "IMAGE_BACKING_FILE", 0);
}

static void
test_qcow2_data_file(void **state)
{
    _cleanup_free_ char *data = fixture("external.raw");
    _cleanup_free_ char *opts = str_printf("data_file=%s", data);
    create_image("datafile.qcow2", "qcow2", opts, "1M");
    expect_header("datafile.qcow2", MAX_VIRT, "IMAGE_DATA_FILE", 0, 0);
    expect_file("datafile.qcow2", IMAGE_FORMAT_QCOW2, MAX_VIRT, "IMAGE_DATA_FILE", 0);

    /* The header extension alone, without the incompatible feature bit, is refused too. */
    size_t len = 0;
    _cleanup_free_ uint8_t *buf = read_head("datafile.qcow2", &len);
    assert_true(buf[79] & 4);
    buf[79] &= (uint8_t)~4;
    expect_buf(buf, len, MAX_VIRT, "IMAGE_DATA_FILE", 0, 0);
}

static void
test_qcow2_too_large(void **state)
{
    create_image("big.qcow2", "qcow2", NULL, "2G");
    expect_header("big.qcow2", GiB, "IMAGE_TOO_LARGE", 0, 0);
    expect_file("big.qcow2", IMAGE_FORMAT_QCOW2, GiB, "IMAGE_TOO_LARGE", 0);
    expect_file("big.qcow2", IMAGE_FORMAT_QCOW2, 2 * GiB, NULL, 2 * GiB);

    /* An exabyte-sized header, patched in since qemu-img caps what it creates. */
    size_t len = 0;
    _cleanup_free_ uint8_t *buf = read_head("v3.qcow2", &len);
    put_be64(buf + 24, UINT64_C(1) << 60);
    expect_buf(buf, len, MAX_VIRT, "IMAGE_TOO_LARGE", 0, 0);
    expect_buf(buf, len, UINT64_MAX, NULL, IMAGE_FORMAT_QCOW2, UINT64_C(1) << 60);
    write_bytes("exa.qcow2", buf, len);
    expect_file("exa.qcow2", IMAGE_FORMAT_QCOW2, MAX_VIRT, "IMAGE_TOO_LARGE", 0);
}

static void
test_raw(void **state)
{
    size_t len = 1 * MiB;
    _cleanup_free_ uint8_t *buf = malloc(len);
    assert_non_null(buf);
    for (size_t i = 0; i < len; i++)
        buf[i] = (uint8_t)(i * 7 + 3);
    write_bytes("disk.raw", buf, len);
    expect_header("disk.raw", MAX_VIRT, NULL, IMAGE_FORMAT_RAW, 0);
    expect_file("disk.raw", IMAGE_FORMAT_RAW, MAX_VIRT, NULL, MiB);
    expect_file("disk.raw", IMAGE_FORMAT_QCOW2, MAX_VIRT, "IMAGE_FORMAT_MISMATCH", 0);
    expect_file("disk.raw", IMAGE_FORMAT_RAW, MiB - 1, "IMAGE_TOO_LARGE", 0);

    write_bytes("empty.raw", "", 0);
    expect_buf(NULL, 0, MAX_VIRT, NULL, IMAGE_FORMAT_RAW, 0);
    expect_file("empty.raw", IMAGE_FORMAT_RAW, MAX_VIRT, NULL, 0);

    /* A few bytes that start like the qcow2 magic but stop short of it are just raw. */
    expect_buf((const uint8_t *)"QFI", 3, MAX_VIRT, NULL, IMAGE_FORMAT_RAW, 0);
}

static void
test_other_formats_from_qemu_img(void **state)
{
    static const char *const fmts[] = {"vmdk", "vdi", "vhdx", "qed", "vpc"};
    for (size_t i = 0; i < ELEMENTSOF(fmts); i++) {
        _cleanup_free_ char *name = str_printf("img.%s", fmts[i]);
        create_image(name, fmts[i], NULL, "4M");
        expect_header(name, MAX_VIRT, "IMAGE_FORMAT_UNSUPPORTED", 0, 0);
        /* qemu-img -f raw would happily call any of these raw: the header check decides. */
        expect_file(name, IMAGE_FORMAT_RAW, MAX_VIRT, "IMAGE_FORMAT_UNSUPPORTED", 0);
        expect_file(name, IMAGE_FORMAT_QCOW2, MAX_VIRT, "IMAGE_FORMAT_UNSUPPORTED", 0);
    }
}

static void
test_other_formats_crafted(void **state)
{
    static const struct {
        const char *magic;
        size_t len;
        size_t off;
    } cases[] = {
        {"QFI\xfb\0\0\0\1", 8, 0}, /* qcow version 1 */
        {"LUKS\xba\xbe\0\1", 8, 0},
        {"KDMV", 4, 0},
        {"COWD", 4, 0},
        {"# Disk DescriptorFile\nversion=1\n", 32, 0},
        {"\x7f\x10\xda\xbe", 4, 64}, /* vdi signature, little-endian at 64 */
        {"vhdxfile", 8, 0},
        {"QED\0", 4, 0},
        {"conectix", 8, 0},
        {"#!/bin/sh\n#V2.0 Format\nmodprobe cloop\n", 38, 0},
        {"WithoutFreeSpace", 16, 0},
        {"WithouFreSpacExt", 16, 0},
        {"Bochs Virtual HD Image", 22, 0},
    };
    for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
        uint8_t buf[512] = {0};
        memcpy(buf + cases[i].off, cases[i].magic, cases[i].len);
        expect_buf(buf, sizeof(buf), MAX_VIRT, "IMAGE_FORMAT_UNSUPPORTED", 0, 0);
    }
}

static void
test_qcow2_truncated(void **state)
{
    size_t len = 0;
    _cleanup_free_ uint8_t *v3 = read_head("v3.qcow2", &len);
    _cleanup_free_ uint8_t *v2 = read_head("v2.qcow2", &len);
    uint32_t hlen = get_be32(v3 + 100);
    assert_true(hlen >= 104);
    /* Every prefix shorter than the header (and its extensions) is corrupt, never an overread. */
    for (size_t n = 4; n < hlen + 16; n++) {
        _cleanup_free_ uint8_t *b3 = copy_prefix(v3, n);
        expect_buf(b3, n, MAX_VIRT, "IMAGE_CORRUPT", 0, 0);
    }
    for (size_t n = 8; n < 80; n++) {
        _cleanup_free_ uint8_t *b2 = copy_prefix(v2, n);
        expect_buf(b2, n, MAX_VIRT, "IMAGE_CORRUPT", 0, 0);
    }
    write_bytes("short.qcow2", v3, 50);
    expect_file("short.qcow2", IMAGE_FORMAT_QCOW2, MAX_VIRT, "IMAGE_CORRUPT", 0);
}

static void
test_qcow2_bad_fields(void **state)
{
    size_t len = 0;
    _cleanup_free_ uint8_t *orig = read_head("v3.qcow2", &len);
    _cleanup_free_ uint8_t *b = malloc(len);
    assert_non_null(b);

#define RESET() memcpy(b, orig, len)
    RESET();
    put_be32(b + 20, 8);
    expect_buf(b, len, MAX_VIRT, "IMAGE_CORRUPT", 0, 0);
    RESET();
    put_be32(b + 20, 22);
    expect_buf(b, len, MAX_VIRT, "IMAGE_CORRUPT", 0, 0);
    RESET();
    put_be32(b + 4, 4);
    expect_buf(b, len, MAX_VIRT, "IMAGE_FORMAT_UNSUPPORTED", 0, 0);
    RESET();
    put_be32(b + 4, 0);
    expect_buf(b, len, MAX_VIRT, "IMAGE_FORMAT_UNSUPPORTED", 0, 0);
    RESET();
    b[72] |= 0x80; /* incompatible feature bit 63 */
    expect_buf(b, len, MAX_VIRT, "IMAGE_FORMAT_UNSUPPORTED", 0, 0);
    RESET();
    b[79] |= 0x20; /* incompatible feature bit 5, not yet defined */
    expect_buf(b, len, MAX_VIRT, "IMAGE_FORMAT_UNSUPPORTED", 0, 0);
    RESET();
    b[79] |= 0x02; /* marked corrupt */
    expect_buf(b, len, MAX_VIRT, "IMAGE_CORRUPT", 0, 0);
    RESET();
    put_be32(b + 32, 1); /* AES encryption */
    expect_buf(b, len, MAX_VIRT, "IMAGE_FORMAT_UNSUPPORTED", 0, 0);
    RESET();
    put_be32(b + 100, 103);
    expect_buf(b, len, MAX_VIRT, "IMAGE_CORRUPT", 0, 0);
    RESET();
    put_be32(b + 100, 108);
    expect_buf(b, len, MAX_VIRT, "IMAGE_CORRUPT", 0, 0);
    RESET();
    put_be32(b + 100, 0xfffffff8);
    expect_buf(b, len, MAX_VIRT, "IMAGE_CORRUPT", 0, 0);
    RESET();
    put_be32(b + 96, 7); /* refcount_order */
    expect_buf(b, len, MAX_VIRT, "IMAGE_CORRUPT", 0, 0);
    RESET();
    put_be32(b + 16, 11); /* backing_file_size alone */
    expect_buf(b, len, MAX_VIRT, "IMAGE_BACKING_FILE", 0, 0);
    RESET();
    expect_buf(b, len, MAX_VIRT, NULL, IMAGE_FORMAT_QCOW2, MiB);
#undef RESET
}

static void
test_qcow2_extension_bounds(void **state)
{
    size_t len = 0;
    _cleanup_free_ uint8_t *orig = read_head("v3.qcow2", &len);
    uint32_t hlen = get_be32(orig + 100);
    /* qemu-img writes at least one extension (the feature name table) before the end marker. */
    assert_true(get_be32(orig + hlen) != 0);

    _cleanup_free_ uint8_t *b = copy_prefix(orig, len);
    put_be32(b + hlen + 4, 0xfffffff0);
    expect_buf(b, len, MAX_VIRT, "IMAGE_CORRUPT", 0, 0);

    /* A length that stays inside the 64 KiB cluster but runs past a short buffer. */
    size_t short_len = hlen + 64;
    _cleanup_free_ uint8_t *s = copy_prefix(orig, short_len);
    put_be32(s + hlen + 4, 1000);
    expect_buf(s, short_len, MAX_VIRT, "IMAGE_CORRUPT", 0, 0);

    /* With 512-byte clusters, extensions must end inside the first 512 bytes. */
    _cleanup_free_ uint8_t *c = copy_prefix(orig, len);
    put_be32(c + 20, 9);
    put_be32(c + hlen + 4, 512);
    expect_buf(c, len, MAX_VIRT, "IMAGE_CORRUPT", 0, 0);

    /* Extensions filling the cluster exactly, with no end marker, are accepted (as qemu does). */
    _cleanup_free_ uint8_t *e = copy_prefix(orig, 512);
    put_be32(e + 20, 9);
    put_be32(e + hlen, 0x12345678);
    put_be32(e + hlen + 4, 512 - hlen - 8);
    expect_buf(e, 512, MAX_VIRT, NULL, IMAGE_FORMAT_QCOW2, MiB);
    /* ... but one byte more is too much. */
    put_be32(e + hlen + 4, 512 - hlen - 7);
    expect_buf(e, 512, MAX_VIRT, "IMAGE_CORRUPT", 0, 0);
}

static void
test_qemu_img_failure(void **state)
{
    /* A header that passes our check but that qemu cannot open: L1 table offset unaligned. */
    size_t len = 0;
    _cleanup_free_ uint8_t *b = read_head("v3.qcow2", &len);
    put_be64(b + 40, 0x12345);
    expect_buf(b, len, MAX_VIRT, NULL, IMAGE_FORMAT_QCOW2, MiB);
    write_bytes("badl1.qcow2", b, len);

    _cleanup_free_ char *path = fixture("badl1.qcow2");
    ImageProbeResult res;
    _cleanup_error_ NbError *err = NULL;
    assert_int_equal(image_probe_file(path, IMAGE_FORMAT_QCOW2, MAX_VIRT, &res, &err), -1);
    assert_non_null(err);
    assert_string_equal(err->code, "IMAGE_CORRUPT");
    assert_non_null(strstr(err->message, "qemu-img info failed: "));
    assert_null(strchr(err->message, '\n'));
}

static void
test_probe_file_arguments(void **state)
{
    ImageProbeResult res;
    _cleanup_error_ NbError *e1 = NULL;
    assert_int_equal(image_probe_file("disk.raw", IMAGE_FORMAT_RAW, MAX_VIRT, &res, &e1), -1);
    assert_string_equal(e1->code, "INTERNAL_ERROR");
    _cleanup_error_ NbError *e2 = NULL;
    assert_int_equal(image_probe_file("/nonexistent/x", IMAGE_FORMAT_RAW, MAX_VIRT, &res, &e2), -1);
    assert_string_equal(e2->code, "INTERNAL_ERROR");
    _cleanup_free_ char *path = fixture("disk.raw");
    _cleanup_error_ NbError *e3 = NULL;
    assert_int_equal(image_probe_file(path, IMAGE_FORMAT_UNKNOWN, MAX_VIRT, &res, &e3), -1);
    assert_string_equal(e3->code, "INTERNAL_ERROR");
}

static uint64_t
xorshift(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static void
test_fuzz_qcow2_headers(void **state)
{
    size_t len0 = 0;
    _cleanup_free_ uint8_t *orig = read_head("v3.qcow2", &len0);
    uint64_t seed = 0x9e3779b97f4a7c15u;
    int accepted = 0;
    for (int iter = 0; iter < 5000; iter++) {
        uint64_t pick = xorshift(&seed);
        size_t len = pick % 4 == 0 ? (size_t)(xorshift(&seed) % len0) + 1
                                   : (size_t)(xorshift(&seed) % 1024) + 4;
        uint8_t *b = malloc(len);
        assert_non_null(b);
        if (pick % 3 == 0) {
            /* Mutations of a real header: a few random bytes, often in the fixed fields. */
            memcpy(b, orig, len < len0 ? len : len0);
            int flips = (int)(xorshift(&seed) % 8) + 1;
            for (int f = 0; f < flips; f++) {
                size_t at = (size_t)(xorshift(&seed) % (len < 256 ? len : 256));
                b[at] = (uint8_t)xorshift(&seed);
            }
        } else {
            for (size_t i = 0; i < len; i++)
                b[i] = (uint8_t)xorshift(&seed);
            if (len > 23) {
                put_be32(b + 4, 2 + (uint32_t)(xorshift(&seed) % 2));
                put_be32(b + 20, 9 + (uint32_t)(xorshift(&seed) % 13));
            }
            if (len > 103 && pick % 5 == 0)
                put_be32(b + 100, 104 + 8 * (uint32_t)(xorshift(&seed) % 16));
        }
        memcpy(b, "QFI\xfb", len < 4 ? len : 4);

        ImageProbeResult res;
        NbError *err = NULL;
        int r = image_probe_header(b, len, MAX_VIRT, &res, &err);
        assert_true(r == 0 || r == -1);
        if (r == 0) {
            assert_null(err);
            assert_int_equal(res.format, IMAGE_FORMAT_QCOW2);
            accepted++;
        } else {
            assert_non_null(err);
            assert_non_null(err->message);
        }
        nb_error_free(err);
        free(b);
    }
    /* The mutations leave some headers valid: the accepting path is exercised too. */
    assert_true(accepted > 0);
}

int
main(void)
{
    /* Fixtures build on one another (v3.qcow2 is reused), so the order matters. */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_qcow2_v3),
        cmocka_unit_test(test_qcow2_v2),
        cmocka_unit_test(test_qcow2_backing_file),
        cmocka_unit_test(test_qcow2_data_file),
        cmocka_unit_test(test_qcow2_too_large),
        cmocka_unit_test(test_raw),
        cmocka_unit_test(test_other_formats_from_qemu_img),
        cmocka_unit_test(test_other_formats_crafted),
        cmocka_unit_test(test_qcow2_truncated),
        cmocka_unit_test(test_qcow2_bad_fields),
        cmocka_unit_test(test_qcow2_extension_bounds),
        cmocka_unit_test(test_qemu_img_failure),
        cmocka_unit_test(test_probe_file_arguments),
        cmocka_unit_test(test_fuzz_qcow2_headers),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
