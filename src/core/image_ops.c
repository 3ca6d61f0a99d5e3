/*
 * Image upload, streamed: the first IMAGE_PROBE_HEADER_BYTES are held back and probed before
 * anything is stored; then a libvirt volume is created and the bytes flow through a pipe into a
 * thread running the (pull-style) libvirt upload stream, so a slow hypervisor pushes back on the
 * client instead of the daemon buffering. When the stream is complete, `qemu-img info` under
 * resource limits checks the stored file again. Any failure deletes the volume and puts the
 * image back in `queued`: a bad upload changes nothing.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../util/log.h"
#include "../util/strutil.h"
#include "core.h"
#include "image_probe.h"
#include "vm_rbd.h"

struct ImageUpload {
    Core *core;
    HvConn *hv; /* the local host's, referenced from begin to end/abort */
    Image img;
    uint64_t length;   /* declared Content-Length */
    uint64_t received; /* bytes seen so far */
    uint8_t *header;   /* the held-back start of the upload */
    size_t header_len;
    bool streaming; /* volume created, thread running */
    int pipe_w;
    int pipe_r;
    pthread_t thread;
    int upload_rc;
    NbError *upload_err;
    uint64_t pulled;  /* bytes handed to libvirt */
    bool rolled_back; /* the image is queued again and its volume gone */
};

static ssize_t
image_upload_source(char *buf, size_t len, void *userdata, NbError **err)
{
    ImageUpload *u = userdata;
    for (;;) {
        ssize_t n = read(u->pipe_r, buf, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return nb_error_set(err, NB_ERR_INTERNAL, "upload pipe: %s", strerror(errno));
        if (n == 0 && u->pulled < u->length)
            return nb_error_set(err, NB_ERR_INVALID_REQUEST, "upload ended after %ju of %ju bytes",
                                (uintmax_t)u->pulled, (uintmax_t)u->length);
        u->pulled += (uint64_t)n;
        return n;
    }
}

static void *
image_upload_thread(void *arg)
{
    ImageUpload *u = arg;
    u->upload_rc = hv_vol_upload(u->hv, u->core->cfg.pool_name, u->img.volume, u->length,
                                 image_upload_source, u, &u->upload_err);
    /* Drain so a writer blocked on a full pipe never hangs after a failed stream. */
    char sink[4096];
    while (read(u->pipe_r, sink, sizeof(sink)) > 0)
        ;
    return NULL;
}

int
image_ops_upload_begin(Core *core, const char *scope, const char *id_or_name, int64_t length,
                       ImageUpload **ret, NbError **err)
{
    Image img;
    if (image_store_get(core->store, scope, id_or_name, &img, err) < 0)
        return -1;
    if (length < 0)
        return nb_error_set(err, NB_ERR_LENGTH_REQUIRED,
                            "an image upload needs a Content-Length header");
    if (length == 0)
        return nb_error_set(err, NB_ERR_IMAGE_CORRUPT, "the upload is empty");
    /* Neither format stores more bytes than its virtual size holds (bar metadata): refuse
     * before a byte of the body is read, while the client can still be answered at once. */
    if ((uint64_t)length > core->cfg.max_image_virtual_bytes + (64u << 20))
        return nb_error_set(err, NB_ERR_IMAGE_TOO_LARGE,
                            "the upload is %jd bytes; images are limited to %ju bytes",
                            (intmax_t)length, (uintmax_t)core->cfg.max_image_virtual_bytes);
    if (img.state != IMAGE_STATE_QUEUED)
        return nb_error_set(err, NB_ERR_IMAGE_ALREADY_UPLOADED,
                            "image '%s' is %s; only a queued image takes an upload", img.name,
                            image_state_to_string(img.state));
    ImageUpload *u = calloc(1, sizeof(*u));
    if (!u)
        return nb_error_set(err, NB_ERR_INTERNAL, "out of memory");
    u->header = malloc(IMAGE_PROBE_HEADER_BYTES);
    if (!u->header) {
        free(u);
        return nb_error_set(err, NB_ERR_INTERNAL, "out of memory");
    }
    if (image_store_transition(core->store, img.id, IMAGE_STATE_QUEUED, IMAGE_STATE_UPLOADING,
                               err) < 0) {
        free(u->header);
        free(u);
        return -1;
    }
    events_publish_image(core->events, core->store, img.id, NULL);
    u->core = core;
    u->img = img;
    u->length = (uint64_t)length;
    u->pipe_r = u->pipe_w = -1;
    u->hv = host_registry_local_conn(core);
    *ret = u;
    return 0;
}

/* Stops the stream thread, if any. */
static void
image_upload_stop_stream(ImageUpload *u)
{
    if (u->pipe_w >= 0)
        close(u->pipe_w);
    u->pipe_w = -1;
    if (u->streaming)
        pthread_join(u->thread, NULL);
    u->streaming = false;
    if (u->pipe_r >= 0)
        close(u->pipe_r);
    u->pipe_r = -1;
}

/* Undoes the upload: no volume, the image queued again. Runs before the error reaches the
 * client, so a client that sees the error sees the image as it was. Idempotent. */
static void
image_upload_rollback(ImageUpload *u)
{
    _cleanup_error_ NbError *err = NULL;
    if (u->rolled_back)
        return;
    u->rolled_back = true;
    image_upload_stop_stream(u);
    if (u->hv && hv_vol_delete(u->hv, u->core->cfg.pool_name, u->img.volume, &err) < 0)
        log_error("image %s: cannot delete the failed upload's volume: %s", u->img.id,
                  err->message);
    nb_error_free(TAKE_PTR(err));
    if (image_store_transition(u->core->store, u->img.id, IMAGE_STATE_UPLOADING, IMAGE_STATE_QUEUED,
                               &err) < 0)
        log_error("image %s: %s", u->img.id, err->message);
    else
        events_publish_image(u->core->events, u->core->store, u->img.id, NULL);
}

static void
image_upload_free(ImageUpload *u, bool failed)
{
    if (failed)
        image_upload_rollback(u);
    image_upload_stop_stream(u);
    hv_conn_free(u->hv);
    nb_error_free(u->upload_err);
    free(u->header);
    free(u);
}

/* Probes the held-back header, creates the volume and starts the stream. */
static int
image_upload_start_stream(ImageUpload *u, NbError **err)
{
    ImageProbeResult probe;
    if (image_probe_header(u->header, u->header_len, u->core->cfg.max_image_virtual_bytes, &probe,
                           err) < 0)
        return -1;
    if (u->img.format != IMAGE_FORMAT_UNKNOWN && u->img.format != probe.format)
        return nb_error_set(
            err, NB_ERR_IMAGE_FORMAT_MISMATCH, "image was declared %s but its content is %s",
            image_format_to_string(u->img.format), image_format_to_string(probe.format));
    u->img.format = probe.format;
    if (probe.format == IMAGE_FORMAT_RAW && u->length > u->core->cfg.max_image_virtual_bytes)
        return nb_error_set(err, NB_ERR_IMAGE_TOO_LARGE, "raw image of %ju bytes is over the limit",
                            (uintmax_t)u->length);
    if (!u->hv)
        return nb_error_set(err, NB_ERR_HYPERVISOR, "the host's libvirt connection is down");
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) < 0)
        return nb_error_set(err, NB_ERR_INTERNAL, "pipe: %s", strerror(errno));
    u->pipe_r = fds[0];
    u->pipe_w = fds[1];
    /* The volume is created raw whatever the content: the upload writes the bytes as they are. */
    if (hv_vol_create_for_upload(u->hv, u->core->cfg.pool_name, u->img.volume, "raw", u->length,
                                 err) < 0)
        return -1;
    if (pthread_create(&u->thread, NULL, image_upload_thread, u) != 0)
        return nb_error_set(err, NB_ERR_INTERNAL, "cannot start the upload thread");
    u->streaming = true;
    return write_full(u->pipe_w, u->header, u->header_len) < 0
               ? nb_error_set(err, NB_ERR_HYPERVISOR, "the volume upload stream failed")
               : 0;
}

static int
image_upload_take(ImageUpload *u, const char *buf, size_t len, NbError **err)
{
    if (u->rolled_back)
        return nb_error_set(err, NB_ERR_INTERNAL, "the upload has already failed");
    if (u->received + len > u->length)
        return nb_error_set(err, NB_ERR_INVALID_REQUEST, "more data than Content-Length");
    u->received += len;
    if (!u->streaming) {
        size_t take = IMAGE_PROBE_HEADER_BYTES - u->header_len;
        if (take > len)
            take = len;
        memcpy(u->header + u->header_len, buf, take);
        u->header_len += take;
        buf += take;
        len -= take;
        if (u->header_len < IMAGE_PROBE_HEADER_BYTES)
            return 0;
        if (image_upload_start_stream(u, err) < 0)
            return -1;
    }
    if (len > 0 && write_full(u->pipe_w, buf, len) < 0)
        return nb_error_set(err, NB_ERR_HYPERVISOR, "the volume upload stream failed");
    return 0;
}

int
image_ops_upload_data(ImageUpload *u, const char *buf, size_t len, NbError **err)
{
    if (image_upload_take(u, buf, len, err) < 0) {
        image_upload_rollback(u);
        return -1;
    }
    return 0;
}

int
image_ops_upload_end(ImageUpload *u, Image *ret, NbError **err)
{
    if (u->rolled_back) {
        nb_error_set(err, NB_ERR_INTERNAL, "the upload has already failed");
        image_upload_free(u, true);
        return -1;
    }
    if (u->received != u->length) {
        nb_error_set(err, NB_ERR_INVALID_REQUEST, "upload ended after %ju of %ju bytes",
                     (uintmax_t)u->received, (uintmax_t)u->length);
        image_upload_free(u, true);
        return -1;
    }
    if (!u->streaming && image_upload_start_stream(u, err) < 0) {
        image_upload_free(u, true);
        return -1;
    }
    image_upload_stop_stream(u);
    if (u->upload_rc < 0) {
        nb_error_propagate(err, TAKE_PTR(u->upload_err));
        image_upload_free(u, true);
        return -1;
    }

    _cleanup_free_ char *path = NULL;
    ImageProbeResult probe;
    /* A simulated local host keeps no bytes (hv_sim.c): the header already probed is all
     * there is to check. */
    if (hv_conn_is_simulated(u->hv)
            ? image_probe_header(u->header, u->header_len, u->core->cfg.max_image_virtual_bytes,
                                 &probe, err) < 0
            : hv_vol_path(u->hv, u->core->cfg.pool_name, u->img.volume, &path, err) < 0 ||
                  image_probe_file(path, u->img.format, u->core->cfg.max_image_virtual_bytes,
                                   &probe, err) < 0) {
        image_upload_free(u, true);
        return -1;
    }
    u->img.size_bytes = u->length;
    u->img.virtual_size_bytes = probe.virtual_size_bytes ? probe.virtual_size_bytes : u->length;
    if (image_store_set_active(u->core->store, &u->img, err) < 0) {
        image_upload_free(u, true);
        return -1;
    }
    events_publish_image(u->core->events, u->core->store, u->img.id, NULL);
    log_info("image %s (%s): %ju bytes of %s stored", u->img.id, u->img.name, (uintmax_t)u->length,
             image_format_to_string(u->img.format));
    int r = image_store_get(u->core->store, NULL, u->img.id, ret, err);
    image_upload_free(u, false);
    return r;
}

void
image_ops_upload_abort(ImageUpload *u)
{
    if (!u)
        return;
    if (!u->rolled_back)
        log_warn("image %s: upload aborted after %ju of %ju bytes", u->img.id,
                 (uintmax_t)u->received, (uintmax_t)u->length);
    image_upload_free(u, true);
}

/* Removes the copies made on other hosts (image_ops_ensure_on). A host that is down keeps its
 * copy and the record of it; the log names them for the operator. */
static void
image_ops_delete_copies(Core *core, const Image *img)
{
    _cleanup_error_ NbError *err = NULL;
    char **hosts = NULL;
    if (image_copy_list(core->store, img->id, &hosts, &err) < 0) {
        log_warn("image %s: copies not removed: %s", img->id, err->message);
        return;
    }
    for (size_t i = 0; hosts[i]; i++) {
        _cleanup_error_ NbError *e = NULL;
        if (str_startswith(hosts[i], VM_RBD_COPY_PREFIX)) {
            vm_rbd_base_delete(core, img, hosts[i]); /* its base in an rbd pool */
            free(hosts[i]);
            continue;
        }
        HvConn *c = host_registry_conn(core, hosts[i]);
        if (c && hv_vol_delete(c, core->cfg.pool_name, img->volume, &e) == 0)
            image_copy_delete(core->store, img->id, hosts[i], &e);
        else
            log_warn("image %s: its copy on host %s is left behind: %s", img->id, hosts[i],
                     e ? e->message : "the host is down");
        hv_conn_free(c);
        free(hosts[i]);
    }
    free(hosts);
}

int
image_ops_delete(Core *core, const char *scope, const char *id_or_name, NbError **err)
{
    Image img;
    if (image_store_get(core->store, scope, id_or_name, &img, err) < 0)
        return -1;
    /* Row first: a crash between the two leaves an unreferenced volume, which the start-up
     * sweep removes; the other order could leave an image whose data is gone. */
    if (image_store_delete(core->store, img.id, err) < 0)
        return -1;
    events_publish_image(core->events, core->store, img.id, img.project);
    HvConn *hv = host_registry_local_conn(core);
    _cleanup_error_ NbError *e = NULL;
    if (hv && hv_vol_delete(hv, core->cfg.pool_name, img.volume, &e) < 0)
        log_warn("image %s: volume left for the start-up sweep: %s", img.id, e->message);
    hv_conn_free(hv);
    image_ops_delete_copies(core, &img);
    log_info("image %s (%s) deleted", img.id, img.name);
    return 0;
}

/* One lock per (image, host) pair being given the image: copies of other images, or to other
 * hosts, run side by side; a second task wanting a copy under way is told to come back later
 * (it waits by timer, holding no worker), so each copy is made once. An entry exists while its
 * holder works; Core.copy_lock guards the table. */
typedef struct ImageCopyLock {
    char image_id[NB_UUID_STRLEN];
    char host[NB_NAME_MAX + 1];
    struct ImageCopyLock *next;
} ImageCopyLock;

static ImageCopyLock *image_copy_locks;

/* The pair's lock, taken; NULL with *busy set when another task holds it (a copy under way:
 * the caller comes back later rather than wait in a worker), or NULL when out of memory. */
static ImageCopyLock *
image_copy_lock_take(Core *core, const char *image_id, const char *host, bool *busy)
{
    *busy = false;
    pthread_mutex_lock(&core->copy_lock);
    ImageCopyLock *l = image_copy_locks;
    while (l && !(streq(l->image_id, image_id) && streq(l->host, host)))
        l = l->next;
    if (l) {
        /* Only the holder keeps an entry: it is there, so the copy is under way. */
        *busy = true;
        pthread_mutex_unlock(&core->copy_lock);
        return NULL;
    }
    l = calloc(1, sizeof(*l));
    if (l) {
        snprintf(l->image_id, sizeof(l->image_id), "%s", image_id);
        snprintf(l->host, sizeof(l->host), "%s", host);
        l->next = image_copy_locks;
        image_copy_locks = l;
    }
    pthread_mutex_unlock(&core->copy_lock);
    return l;
}

static void
image_copy_lock_release(Core *core, ImageCopyLock *l)
{
    pthread_mutex_lock(&core->copy_lock);
    ImageCopyLock **p = &image_copy_locks;
    while (*p != l)
        p = &(*p)->next;
    *p = l->next;
    pthread_mutex_unlock(&core->copy_lock);
    free(l);
}

/* Gives a host the image before a VM needs it there. Once it is there (copied, or seen in a
 * pool that is shared storage), image_copies says ready and later creates skip both the lock
 * and the look. 0 when there, 1 when another task is copying it there now (try again later),
 * -1. */
int
image_ops_ensure_on(Core *core, const Image *img, const char *host_name, HvConn *dst, NbError **err)
{
    if (streq(host_name, core->cfg.host_name))
        return 0; /* uploads land there */
    int ready = image_copy_get(core->store, img->id, host_name, err);
    if (ready < 0)
        return -1;
    if (ready == IMAGE_COPY_READY)
        return 0;
    bool busy;
    ImageCopyLock *l = image_copy_lock_take(core, img->id, host_name, &busy);
    if (!l && busy)
        return 1;
    if (!l)
        return nb_error_set(err, NB_ERR_INTERNAL, "out of memory");
    int r = -1;
    int state = image_copy_get(core->store, img->id, host_name, err);
    if (state < 0)
        goto out;
    if (state == IMAGE_COPY_READY) {
        r = 0;
        goto out;
    }
    if (state == IMAGE_COPY_NONE) {
        /* Never copied there: if the host sees the volume, the pool is shared storage. */
        int seen = hv_vol_exists(dst, core->cfg.pool_name, img->volume, err);
        if (seen < 0)
            goto out;
        if (seen) {
            log_info("image %s: host %s sees it already (shared storage)", img->id, host_name);
            r = image_copy_set(core->store, img->id, host_name, IMAGE_COPY_READY, err);
            goto out;
        }
    }
    /* Not there, or a copy cut short by a crash: copy (again). */
    HvConn *src = host_registry_local_conn(core);
    if (!src) {
        nb_error_set(err, NB_ERR_HOST_DOWN, "the local host, which holds the images, is down");
        goto out;
    }
    log_info("image %s: copying to host %s", img->id, host_name);
    if (image_copy_set(core->store, img->id, host_name, IMAGE_COPY_COPYING, err) == 0 &&
        hv_vol_copy(src, dst, core->cfg.pool_name, img->volume, err) == 0 &&
        image_copy_set(core->store, img->id, host_name, IMAGE_COPY_READY, err) == 0)
        r = 0;
    hv_conn_free(src);
out:
    image_copy_lock_release(core, l);
    return r;
}
