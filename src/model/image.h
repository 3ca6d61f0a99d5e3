#pragma once

#include <jansson.h>
#include <stdint.h>

#include "../util/error.h"
#include "../util/timeutil.h"
#include "../util/uuid.h"
#include "validate.h"

typedef enum ImageState {
    IMAGE_STATE_QUEUED,    /* row exists, no data yet */
    IMAGE_STATE_UPLOADING, /* data arriving; cleaned up at start-up if the daemon died */
    IMAGE_STATE_ACTIVE,
    IMAGE_STATE_ERROR,
    _IMAGE_STATE_MAX,
    _IMAGE_STATE_INVALID = -1,
} ImageState;

typedef enum ImageFormat {
    IMAGE_FORMAT_UNKNOWN, /* not yet known: detected from the content on upload */
    IMAGE_FORMAT_RAW,
    IMAGE_FORMAT_QCOW2,
    _IMAGE_FORMAT_MAX,
    _IMAGE_FORMAT_INVALID = -1,
} ImageFormat;

const char *image_state_to_string(ImageState s);
ImageState image_state_from_string(const char *s);
const char *image_format_to_string(ImageFormat f);
ImageFormat image_format_from_string(const char *s);

typedef struct Image {
    char id[NB_UUID_STRLEN];
    char project[NB_UUID_STRLEN];
    char name[NB_NAME_MAX + 1];
    ImageState state;
    ImageFormat format;  /* declared by the user, or detected */
    uint64_t size_bytes; /* bytes stored */
    uint64_t virtual_size_bytes;
    char volume[96]; /* libvirt volume name in the Nimbus pool: derived from id */
    char created_at[NB_TIMESTAMP_LEN];
    char updated_at[NB_TIMESTAMP_LEN];
} Image;

/* Strict decode of {name, disk_format?}; disk_format is "qcow2" or "raw". */
int image_from_request(json_t *body, Image *ret, NbError **err);
json_t *image_to_json(const Image *img);
