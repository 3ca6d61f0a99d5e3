/*
 * Fuzzes image_probe_header(), which reads the first bytes of every upload before anything is
 * stored. Beyond memory errors, it checks the contract: a failure comes with an error, a success
 * says raw or qcow2 and never reports a virtual size above the limit.
 */
#include <stdio.h>
#include <stdlib.h>

#include "core/image_probe.h"
#include "fuzz.h"
#include "util/error.h"

#define MAX_VIRTUAL_BYTES (UINT64_C(1) << 40) /* 1 TiB */

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ImageProbeResult res = {0};
    NbError *err = NULL;
    int r = image_probe_header(data, size, MAX_VIRTUAL_BYTES, &res, &err);
    if (r < 0) {
        FUZZ_CHECK(r == -1);
        FUZZ_CHECK(err && err->code && err->message);
    } else {
        FUZZ_CHECK(r == 0 && !err);
        FUZZ_CHECK(res.format == IMAGE_FORMAT_RAW || res.format == IMAGE_FORMAT_QCOW2);
        FUZZ_CHECK(res.virtual_size_bytes <= MAX_VIRTUAL_BYTES);
        FUZZ_CHECK(res.format == IMAGE_FORMAT_QCOW2 || res.virtual_size_bytes == 0);
    }
    nb_error_free(err);
    return 0;
}
