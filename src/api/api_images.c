#include <string.h>

#include "../util/strutil.h"
#include "api.h"

void
api_images_list(HttpRequest *r, void *ctx)
{
    Core *core = ctx;
    _cleanup_error_ NbError *err = NULL;
    Image *list = NULL;
    size_t n = 0;
    if (image_store_list(core->store, api_scope(r), &list, &n, &err) < 0)
        return http_reply_nb_error(r, err);
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, image_to_json(&list[i]));
    free(list);
    http_reply_json(r, 200, json_pack("{s:o}", "images", arr));
}

void
api_images_create(HttpRequest *r, void *ctx)
{
    Core *core = ctx;
    _cleanup_error_ NbError *err = NULL;
    Image img;
    const Principal *who = http_request_principal(r);
    if (json_object_get(http_request_json(r), "from_vm"))
        return api_images_create_from_vm(r, ctx);
    if (record_ops_image_create(core, http_request_json(r), who->project_id, &img, &err) < 0)
        return http_reply_nb_error(r, err);
    http_reply_json(r, 201, image_to_json(&img));
}

void
api_images_get(HttpRequest *r, void *ctx)
{
    Core *core = ctx;
    _cleanup_error_ NbError *err = NULL;
    Image img;
    if (image_store_get(core->store, api_lookup_scope(r, http_request_param(r, 0)),
                        http_request_param(r, 0), &img, &err) < 0)
        return http_reply_nb_error(r, err);
    http_reply_json(r, 200, image_to_json(&img));
}

void
api_images_delete(HttpRequest *r, void *ctx)
{
    Core *core = ctx;
    _cleanup_error_ NbError *err = NULL;
    if (image_ops_delete(core, api_lookup_scope(r, http_request_param(r, 0)),
                         http_request_param(r, 0), &err) < 0)
        return http_reply_nb_error(r, err);
    http_reply_empty(r, 204);
}

/* ---- PUT /v1/images/{id}/file, streamed ---- */

static int
upload_begin(HttpRequest *r, int64_t content_length, void **state)
{
    _cleanup_error_ NbError *err = NULL;
    const char *ctype = http_request_header(r, "Content-Type");
    if (!ctype || !str_startswith(ctype, "application/octet-stream")) {
        http_reply_error(r, NB_ERR_UNSUPPORTED_MEDIA_TYPE,
                         "an image upload must be sent as application/octet-stream");
        return -1;
    }
    ImageUpload *u = NULL;
    if (image_ops_upload_begin(http_request_ctx(r), api_lookup_scope(r, http_request_param(r, 0)),
                               http_request_param(r, 0), content_length, &u, &err) < 0) {
        http_reply_nb_error(r, err);
        return -1;
    }
    *state = u;
    return 0;
}

static int
upload_data(HttpRequest *r, void *state, const char *buf, size_t len)
{
    _cleanup_error_ NbError *err = NULL;
    if (image_ops_upload_data(state, buf, len, &err) < 0) {
        http_reply_nb_error(r, err);
        return -1;
    }
    return 0;
}

static void
upload_end(HttpRequest *r, void *state)
{
    _cleanup_error_ NbError *err = NULL;
    Image img;
    if (image_ops_upload_end(state, &img, &err) < 0)
        return http_reply_nb_error(r, err);
    http_reply_json(r, 200, image_to_json(&img));
}

static void
upload_abort(void *state)
{
    image_ops_upload_abort(state);
}

const HttpStreamHandler api_images_upload = {
    .begin = upload_begin,
    .data = upload_data,
    .end = upload_end,
    .abort_cb = upload_abort,
};
