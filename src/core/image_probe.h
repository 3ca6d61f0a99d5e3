/*
 * Image format detection from content. Two levels: image_probe_header() parses the first bytes
 * of an upload before anything is stored (cheap, pure, fuzzable); image_probe_file() runs
 * `qemu-img info` on the stored file under resource limits as the second opinion.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "../model/image.h"
#include "../util/error.h"

#define IMAGE_PROBE_HEADER_BYTES 65536 /* how much of the upload to look at first */

typedef struct ImageProbeResult {
    ImageFormat format;          /* RAW when no known magic */
    uint64_t virtual_size_bytes; /* qcow2: from the header; raw: 0 (caller uses the size) */
} ImageProbeResult;

/*
 * Examines up to len bytes of the start of an image (len may be less than a whole header for
 * tiny files). Refuses, with these codes:
 *   IMAGE_FORMAT_UNSUPPORTED  a known non-qcow2/raw format (vmdk, vdi, vhdx, qed, vpc, luks,
 *                             qcow version 1), or a qcow2 header too short to read
 *   IMAGE_BACKING_FILE        qcow2 with a backing file
 *   IMAGE_DATA_FILE           qcow2 with an external data file (incompatible feature bit or the
 *                             header extension)
 *   IMAGE_TOO_LARGE           virtual size above max_virtual_bytes
 *   IMAGE_CORRUPT             qcow2 header fields out of range
 */
int image_probe_header(const uint8_t *buf, size_t len, uint64_t max_virtual_bytes,
                       ImageProbeResult *ret, NbError **err);

/*
 * Runs qemu-img info --output=json -f <expected format> on path with RLIMIT_AS 1 GiB,
 * RLIMIT_CPU 30 s and a 60 s timeout, then applies the same rules as image_probe_header to what
 * it reports (format, virtual-size, backing-filename, data-file). Fills ret.
 */
int image_probe_file(const char *path, ImageFormat expected, uint64_t max_virtual_bytes,
                     ImageProbeResult *ret, NbError **err);
