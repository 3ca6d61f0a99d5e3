#include "image.h"

#include "enum_table.h"
#include "json_req.h"

static const char *const image_state_table[_IMAGE_STATE_MAX] = {
    [IMAGE_STATE_QUEUED] = "queued",
    [IMAGE_STATE_UPLOADING] = "uploading",
    [IMAGE_STATE_ACTIVE] = "active",
    [IMAGE_STATE_ERROR] = "error",
};
DEFINE_STRING_TABLE(image_state, ImageState, image_state_table)

static const char *const image_format_table[_IMAGE_FORMAT_MAX] = {
    [IMAGE_FORMAT_UNKNOWN] = NULL,
    [IMAGE_FORMAT_RAW] = "raw",
    [IMAGE_FORMAT_QCOW2] = "qcow2",
};
DEFINE_STRING_TABLE(image_format, ImageFormat, image_format_table)

int
image_from_request(json_t *body, Image *ret, NbError **err)
{
    static const char *const fields[] = {"name", "disk_format", NULL};
    Image img = {.state = IMAGE_STATE_QUEUED, .format = IMAGE_FORMAT_UNKNOWN};
    char fmt[16];

    if (json_req_check_fields(body, fields, err) < 0 ||
        json_req_name(body, "name", "image", img.name, err) < 0 ||
        json_req_string(body, "disk_format", 0, fmt, sizeof(fmt), err) < 0)
        return -1;
    if (fmt[0]) {
        img.format = image_format_from_string(fmt);
        if (img.format == _IMAGE_FORMAT_INVALID)
            return nb_error_set(err, NB_ERR_IMAGE_FORMAT_UNSUPPORTED,
                                "disk_format must be \"qcow2\" or \"raw\"");
    }
    *ret = img;
    return 0;
}

json_t *
image_to_json(const Image *img)
{
    const char *fmt = image_format_to_string(img->format);
    json_t *j = json_pack("{s:s, s:s, s:s, s:o, s:I, s:I, s:s, s:s}", "id", img->id, "name",
                          img->name, "state", image_state_to_string(img->state), "disk_format",
                          json_string_or_null(fmt), "size_bytes", (json_int_t)img->size_bytes,
                          "virtual_size_bytes", (json_int_t)img->virtual_size_bytes, "created_at",
                          img->created_at, "updated_at", img->updated_at);
    if (j)
        json_object_set_new(j, "project_id", json_string(img->project));
    return j;
}
