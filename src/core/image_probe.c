#include "image_probe.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../util/cleanup.h"
#include "../util/spawn.h"
#include "../util/strutil.h"

/* qcow2 header layout (all fields big-endian), from the qcow2 specification. */
#define QCOW_MAGIC "QFI\xfb"
#define QCOW2_OFF_VERSION 4
#define QCOW2_OFF_BACKING_OFFSET 8
#define QCOW2_OFF_BACKING_SIZE 16
#define QCOW2_OFF_CLUSTER_BITS 20
#define QCOW2_OFF_SIZE 24
#define QCOW2_OFF_CRYPT_METHOD 32
#define QCOW2_V2_HEADER_LEN 72
#define QCOW2_OFF_INCOMPAT 72
#define QCOW2_OFF_REFCOUNT_ORDER 96
#define QCOW2_OFF_HEADER_LEN 100
#define QCOW2_V3_HEADER_MIN 104

#define QCOW2_INCOMPAT_DIRTY (UINT64_C(1) << 0)
#define QCOW2_INCOMPAT_CORRUPT (UINT64_C(1) << 1)
#define QCOW2_INCOMPAT_DATA_FILE (UINT64_C(1) << 2)
#define QCOW2_INCOMPAT_COMPRESSION (UINT64_C(1) << 3)
#define QCOW2_INCOMPAT_EXTL2 (UINT64_C(1) << 4)
#define QCOW2_INCOMPAT_KNOWN                                                                       \
    (QCOW2_INCOMPAT_DIRTY | QCOW2_INCOMPAT_CORRUPT | QCOW2_INCOMPAT_DATA_FILE |                    \
     QCOW2_INCOMPAT_COMPRESSION | QCOW2_INCOMPAT_EXTL2)

#define QCOW2_EXT_END 0x00000000u
#define QCOW2_EXT_DATA_FILE 0x44415441u

#define CONVERT_HINT "convert it to qcow2 or raw first (qemu-img convert -O qcow2 <in> <out>)"
#define FLATTEN_HINT "upload a flattened image (qemu-img convert -O qcow2 <in> <out>)"

#define QEMU_IMG_AS_BYTES (UINT64_C(1) << 30)
#define QEMU_IMG_CPU_SECONDS 30
#define QEMU_IMG_TIMEOUT_MS 60000
#define QEMU_IMG_STDOUT_MAX (1024 * 1024)
#define OPERATOR_MSG_MAX 200

static uint32_t
be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static uint64_t
be64(const uint8_t *p)
{
    return (uint64_t)be32(p) << 32 | be32(p + 4);
}

static uint32_t
le32(const uint8_t *p)
{
    return (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | (uint32_t)p[0];
}

static bool
has_prefix(const uint8_t *buf, size_t len, size_t off, const char *magic, size_t mlen)
{
    return len >= off + mlen && memcmp(buf + off, magic, mlen) == 0;
}

#define HAS_MAGIC(buf, len, off, lit) has_prefix(buf, len, off, lit, sizeof(lit) - 1)

/* Own copy of the names: model/image.c may not provide them to this pure library. */
static const char *
format_name(ImageFormat f)
{
    switch (f) {
    case IMAGE_FORMAT_RAW:
        return "raw";
    case IMAGE_FORMAT_QCOW2:
        return "qcow2";
    default:
        return NULL;
    }
}

/* Formats that qemu understands but Nimbus refuses, recognised by their signature. */
static const char *
foreign_format(const uint8_t *buf, size_t len)
{
    if (HAS_MAGIC(buf, len, 0, "KDMV") || HAS_MAGIC(buf, len, 0, "COWD") ||
        HAS_MAGIC(buf, len, 0, "# Disk DescriptorFile"))
        return "vmdk";
    if (len >= 68 && le32(buf + 64) == 0xbeda107fu)
        return "vdi";
    if (HAS_MAGIC(buf, len, 0, "vhdxfile"))
        return "vhdx";
    if (HAS_MAGIC(buf, len, 0, "QED\0"))
        return "qed";
    if (HAS_MAGIC(buf, len, 0, "conectix"))
        return "vpc";
    if (HAS_MAGIC(buf, len, 0, "LUKS\xba\xbe"))
        return "luks";
    if (HAS_MAGIC(buf, len, 0, "#!/bin/sh\n#V2.0 Format\n"))
        return "cloop";
    if (HAS_MAGIC(buf, len, 0, "WithoutFreeSpace") || HAS_MAGIC(buf, len, 0, "WithouFreSpacExt"))
        return "parallels";
    if (HAS_MAGIC(buf, len, 0, "Bochs Virtual HD Image"))
        return "bochs";
    return NULL;
}

static int
probe_qcow2(const uint8_t *buf, size_t len, uint64_t max_virtual_bytes, ImageProbeResult *ret,
            NbError **err)
{
    if (len < QCOW2_OFF_VERSION + 4)
        return nb_error_set(err, NB_ERR_IMAGE_CORRUPT, "qcow2 header is truncated");
    uint32_t version = be32(buf + QCOW2_OFF_VERSION);
    if (version == 1)
        return nb_error_set(err, NB_ERR_IMAGE_FORMAT_UNSUPPORTED,
                            "image format qcow (version 1) is not supported; " CONVERT_HINT);
    if (version != 2 && version != 3)
        return nb_error_set(err, NB_ERR_IMAGE_FORMAT_UNSUPPORTED,
                            "qcow2 version %" PRIu32 " is not supported (2 and 3 are)", version);
    if (len < QCOW2_V2_HEADER_LEN)
        return nb_error_set(err, NB_ERR_IMAGE_CORRUPT, "qcow2 header is truncated");

    uint32_t cluster_bits = be32(buf + QCOW2_OFF_CLUSTER_BITS);
    if (cluster_bits < 9 || cluster_bits > 21)
        return nb_error_set(err, NB_ERR_IMAGE_CORRUPT,
                            "qcow2 cluster_bits %" PRIu32 " is out of range (9..21)", cluster_bits);
    uint64_t cluster_size = UINT64_C(1) << cluster_bits;

    uint64_t header_len = QCOW2_V2_HEADER_LEN;
    uint64_t incompat = 0;
    if (version == 3) {
        if (len < QCOW2_V3_HEADER_MIN)
            return nb_error_set(err, NB_ERR_IMAGE_CORRUPT, "qcow2 header is truncated");
        header_len = be32(buf + QCOW2_OFF_HEADER_LEN);
        if (header_len < QCOW2_V3_HEADER_MIN || header_len % 8 != 0 || header_len > cluster_size)
            return nb_error_set(err, NB_ERR_IMAGE_CORRUPT,
                                "qcow2 header_length %" PRIu64 " is invalid", header_len);
        if (len < header_len)
            return nb_error_set(err, NB_ERR_IMAGE_CORRUPT, "qcow2 header is truncated");
        incompat = be64(buf + QCOW2_OFF_INCOMPAT);
        if (be32(buf + QCOW2_OFF_REFCOUNT_ORDER) > 6)
            return nb_error_set(err, NB_ERR_IMAGE_CORRUPT, "qcow2 refcount_order is invalid");
    }

    /* The refusals that matter for safety come first, before any "merely broken" verdict. */
    if (be64(buf + QCOW2_OFF_BACKING_OFFSET) != 0 || be32(buf + QCOW2_OFF_BACKING_SIZE) != 0)
        return nb_error_set(err, NB_ERR_IMAGE_BACKING_FILE,
                            "qcow2 image has a backing file; " FLATTEN_HINT);
    if (incompat & QCOW2_INCOMPAT_DATA_FILE)
        return nb_error_set(err, NB_ERR_IMAGE_DATA_FILE,
                            "qcow2 image uses an external data file; " FLATTEN_HINT);
    if (incompat & ~QCOW2_INCOMPAT_KNOWN)
        return nb_error_set(err, NB_ERR_IMAGE_FORMAT_UNSUPPORTED,
                            "qcow2 image uses unknown incompatible features (0x%" PRIx64 ")",
                            incompat & ~QCOW2_INCOMPAT_KNOWN);

    /* Header extensions follow the header, inside the first cluster; each is type, length and
     * data padded to 8 bytes. Every bound is checked against both the cluster and the buffer. */
    uint64_t end = cluster_size;
    uint64_t off = header_len;
    while (off < end) {
        if (end - off < 8)
            return nb_error_set(err, NB_ERR_IMAGE_CORRUPT, "qcow2 header extension is invalid");
        if (off + 8 > len)
            return nb_error_set(err, NB_ERR_IMAGE_CORRUPT, "qcow2 header extensions are truncated");
        uint32_t type = be32(buf + off);
        uint64_t ext_len = be32(buf + off + 4);
        if (type == QCOW2_EXT_END)
            break;
        if (type == QCOW2_EXT_DATA_FILE)
            return nb_error_set(err, NB_ERR_IMAGE_DATA_FILE,
                                "qcow2 image names an external data file; " FLATTEN_HINT);
        off += 8;
        uint64_t padded = (ext_len + 7) & ~UINT64_C(7);
        if (padded > end - off)
            return nb_error_set(err, NB_ERR_IMAGE_CORRUPT,
                                "qcow2 header extension runs past the first cluster");
        off += padded;
    }

    if (be32(buf + QCOW2_OFF_CRYPT_METHOD) != 0)
        return nb_error_set(err, NB_ERR_IMAGE_FORMAT_UNSUPPORTED,
                            "encrypted qcow2 images are not supported; " FLATTEN_HINT);
    if (incompat & QCOW2_INCOMPAT_CORRUPT)
        return nb_error_set(err, NB_ERR_IMAGE_CORRUPT,
                            "qcow2 image is marked corrupt; repair it (qemu-img check -r all)");

    uint64_t size = be64(buf + QCOW2_OFF_SIZE);
    if (size > max_virtual_bytes)
        return nb_error_set(err, NB_ERR_IMAGE_TOO_LARGE,
                            "image virtual size %" PRIu64 " bytes exceeds the limit of %" PRIu64
                            " bytes",
                            size, max_virtual_bytes);

    ret->format = IMAGE_FORMAT_QCOW2;
    ret->virtual_size_bytes = size;
    return 0;
}

int
image_probe_header(const uint8_t *buf, size_t len, uint64_t max_virtual_bytes,
                   ImageProbeResult *ret, NbError **err)
{
    if (!ret || (!buf && len > 0))
        return nb_error_set(err, NB_ERR_INTERNAL, "image_probe_header: invalid arguments");
    ImageProbeResult r = {.format = IMAGE_FORMAT_RAW, .virtual_size_bytes = 0};

    if (HAS_MAGIC(buf, len, 0, QCOW_MAGIC)) {
        if (probe_qcow2(buf, len, max_virtual_bytes, &r, err) < 0)
            return -1;
        *ret = r;
        return 0;
    }
    const char *foreign = foreign_format(buf, len);
    if (foreign)
        return nb_error_set(err, NB_ERR_IMAGE_FORMAT_UNSUPPORTED,
                            "image format %s is not supported; " CONVERT_HINT, foreign);
    *ret = r;
    return 0;
}

/* A single line of a tool's output, cut short and stripped of control characters, fit to
 * show to an operator. */
static char *
first_line(const char *s)
{
    if (!s)
        s = "";
    if (str_startswith(s, "qemu-img: "))
        s += strlen("qemu-img: ");
    size_t n = strcspn(s, "\n");
    if (n > OPERATOR_MSG_MAX)
        n = OPERATOR_MSG_MAX;
    char *line = strndup(s, n);
    if (!line)
        return NULL;
    for (char *p = line; *p; p++) {
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = ' ';
    }
    return line;
}

static int
check_info_json(const char *json_text, ImageFormat expected, uint64_t max_virtual_bytes,
                ImageProbeResult *ret, NbError **err)
{
    json_error_t jerr;
    json_t *root = json_loads(json_text, JSON_REJECT_DUPLICATES, &jerr);
    if (!root || !json_is_object(root)) {
        json_decref(root);
        return nb_error_set(err, NB_ERR_IMAGE_CORRUPT, "qemu-img info gave unreadable output");
    }

    int r = 0;
    const char *want = format_name(expected);
    const char *fmt = json_string_value(json_object_get(root, "format"));
    json_t *vsize = json_object_get(root, "virtual-size");
    json_t *data = json_object_get(json_object_get(root, "format-specific"), "data");
    json_t *encrypted = json_object_get(root, "encrypted");

    if (!fmt || !streq(fmt, want)) {
        r = nb_error_set(err, NB_ERR_IMAGE_FORMAT_MISMATCH,
                         "image content is %s, not the declared format %s", fmt ? fmt : "unknown",
                         want);
    } else if (json_object_get(root, "backing-filename") ||
               json_object_get(root, "full-backing-filename") ||
               json_object_get(root, "backing-filename-format")) {
        r = nb_error_set(err, NB_ERR_IMAGE_BACKING_FILE,
                         "qcow2 image has a backing file; " FLATTEN_HINT);
    } else if (json_object_get(data, "data-file")) {
        r = nb_error_set(err, NB_ERR_IMAGE_DATA_FILE,
                         "qcow2 image uses an external data file; " FLATTEN_HINT);
    } else if (json_is_true(encrypted) || json_object_get(data, "encrypt")) {
        r = nb_error_set(err, NB_ERR_IMAGE_FORMAT_UNSUPPORTED,
                         "encrypted images are not supported; " FLATTEN_HINT);
    } else if (json_is_true(json_object_get(data, "corrupt"))) {
        r = nb_error_set(err, NB_ERR_IMAGE_CORRUPT,
                         "qcow2 image is marked corrupt; repair it (qemu-img check -r all)");
    } else if (!json_is_integer(vsize) || json_integer_value(vsize) < 0) {
        r = nb_error_set(err, NB_ERR_IMAGE_CORRUPT, "qemu-img info reports no virtual size");
    } else if ((uint64_t)json_integer_value(vsize) > max_virtual_bytes) {
        r = nb_error_set(err, NB_ERR_IMAGE_TOO_LARGE,
                         "image virtual size %" PRIu64 " bytes exceeds the limit of %" PRIu64
                         " bytes",
                         (uint64_t)json_integer_value(vsize), max_virtual_bytes);
    } else {
        ret->format = expected;
        ret->virtual_size_bytes = (uint64_t)json_integer_value(vsize);
    }
    json_decref(root);
    return r;
}

/* Reads up to IMAGE_PROBE_HEADER_BYTES from the start of path. */
static int
read_head(const char *path, uint8_t **ret_buf, size_t *ret_len)
{
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0)
        return -errno;
    _cleanup_free_ uint8_t *buf = malloc(IMAGE_PROBE_HEADER_BYTES);
    if (!buf)
        return -ENOMEM;
    size_t len = 0;
    while (len < IMAGE_PROBE_HEADER_BYTES) {
        ssize_t n = read(fd, buf + len, IMAGE_PROBE_HEADER_BYTES - len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    *ret_buf = TAKE_PTR(buf);
    *ret_len = len;
    return 0;
}

int
image_probe_file(const char *path, ImageFormat expected, uint64_t max_virtual_bytes,
                 ImageProbeResult *ret, NbError **err)
{
    const char *want = format_name(expected);
    if (!path || path[0] != '/' || !want || !ret)
        return nb_error_set(err, NB_ERR_INTERNAL, "image_probe_file: invalid arguments");

    /* Our own header check first: qemu-img would follow an external data file named inside
     * the image, and with -f raw it would accept any other format as raw. */
    _cleanup_free_ uint8_t *head = NULL;
    size_t head_len = 0;
    int r = read_head(path, &head, &head_len);
    if (r < 0)
        return nb_error_set(err, NB_ERR_INTERNAL, "cannot read the stored image: %s", strerror(-r));
    ImageProbeResult hdr;
    if (image_probe_header(head, head_len, max_virtual_bytes, &hdr, err) < 0)
        return -1;
    if (hdr.format != expected)
        return nb_error_set(err, NB_ERR_IMAGE_FORMAT_MISMATCH,
                            "image content is %s, not the declared format %s",
                            format_name(hdr.format), want);

    _cleanup_free_ char *qemu_img = NULL;
    r = spawn_find_program("qemu-img", &qemu_img);
    if (r < 0)
        return nb_error_set(err, NB_ERR_INTERNAL, "qemu-img not found: %s", strerror(-r));

    /* -f pins the driver (no probing); the path is absolute and after "--", so it can be
     * neither an option nor a protocol prefix. */
    const char *argv[] = {qemu_img, "info", "--output=json", "-f", want, "--", path, NULL};
    const SpawnLimits limits = {
        .address_space_bytes = QEMU_IMG_AS_BYTES,
        .cpu_seconds = QEMU_IMG_CPU_SECONDS,
        .timeout_ms = QEMU_IMG_TIMEOUT_MS,
    };
    _cleanup_free_ char *out = NULL;
    _cleanup_free_ char *errout = NULL;
    r = spawn_run(argv, &limits, QEMU_IMG_STDOUT_MAX, &out, &errout);
    if (r == -ETIMEDOUT)
        return nb_error_set(err, NB_ERR_IMAGE_CORRUPT, "qemu-img info took too long on the image");
    if (r == -EFBIG)
        return nb_error_set(err, NB_ERR_IMAGE_CORRUPT, "qemu-img info output is too large");
    if (r == -ECHILD)
        return nb_error_set(err, NB_ERR_IMAGE_CORRUPT,
                            "qemu-img info was killed (resource limits) on the image");
    if (r < 0)
        return nb_error_set(err, NB_ERR_INTERNAL, "cannot run qemu-img: %s", strerror(-r));
    if (r != 0) {
        _cleanup_free_ char *line = first_line(errout);
        return nb_error_set(err, NB_ERR_IMAGE_CORRUPT, "qemu-img info failed: %s",
                            line ? line : "(no message)");
    }
    return check_info_json(out, expected, max_virtual_bytes, ret, err);
}
