/* Storage (one "dir" pool Nimbus owns, its volumes, uploads, linked clones) and networks. */
#include "hv_internal.h"
#include "hv_sim.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../util/log.h"
#include "../util/strutil.h"
#include "../util/xml_writer.h"

#define HV_UPLOAD_CHUNK (256 * 1024)

DEFINE_TRIVIAL_CLEANUP_FUNC(XmlWriter, xml_writer_free)

/* ---- pools ---- */

/* 1 and *ret when found, 0 when absent, -1 with *err. */
static int
hv_pool_lookup(HvConn *c, const char *pool, virStoragePoolPtr *ret, NbError **err)
{
    virStoragePoolPtr p = virStoragePoolLookupByName(c->conn, pool);
    if (!p) {
        if (hv_last_error_code() == VIR_ERR_NO_STORAGE_POOL)
            return 0;
        return hv_error(err, "looking up storage pool '%s'", pool);
    }
    *ret = p;
    return 1;
}

static int
hv_pool_get(HvConn *c, const char *pool, virStoragePoolPtr *ret, NbError **err)
{
    int r = hv_pool_lookup(c, pool, ret, err);
    if (r == 0)
        return nb_error_set(err, NB_ERR_HYPERVISOR, "storage pool '%s' not found", pool);
    return r < 0 ? -1 : 0;
}

/* The path as libvirt stores a pool's target: no repeated or trailing slashes. */
static char *
hv_path_sanitize(const char *path)
{
    char *out = malloc(strlen(path) + 1);
    if (!out)
        return NULL;
    size_t n = 0;
    for (const char *s = path; *s; s++) {
        if (*s == '/' && n > 0 && out[n - 1] == '/')
            continue;
        out[n++] = *s;
    }
    if (n > 1 && out[n - 1] == '/')
        n--;
    out[n] = '\0';
    return out;
}

/* Undoes the five predefined entities, in place. */
static void
hv_xml_unescape(char *s)
{
    static const struct {
        const char *ent;
        char c;
    } ents[] = {{"&lt;", '<'}, {"&gt;", '>'}, {"&amp;", '&'}, {"&quot;", '"'}, {"&apos;", '\''}};
    char *w = s;
    for (char *r = s; *r;) {
        bool done = false;
        if (*r == '&') {
            for (size_t i = 0; i < ELEMENTSOF(ents); i++) {
                size_t l = strlen(ents[i].ent);
                if (strncmp(r, ents[i].ent, l) == 0) {
                    *w++ = ents[i].c;
                    r += l;
                    done = true;
                    break;
                }
            }
        }
        if (!done)
            *w++ = *r++;
    }
    *w = '\0';
}

/* Reads the type and target path of a defined pool from its XML. */
static int
hv_pool_read_target(virStoragePoolPtr p, const char *pool, bool *ret_is_dir, char **ret_path,
                    NbError **err)
{
    _cleanup_free_ char *xml = virStoragePoolGetXMLDesc(p, VIR_STORAGE_XML_INACTIVE);
    /* libvirt's test driver (simulated hosts) refuses the flag; a dir pool's type and target
     * path are the same in its live definition. */
    if (!xml && hv_last_error_code() == VIR_ERR_INVALID_ARG)
        xml = virStoragePoolGetXMLDesc(p, 0);
    if (!xml)
        return hv_error(err, "reading the definition of storage pool '%s'", pool);

    *ret_is_dir = str_startswith(xml, "<pool type='dir'");
    const char *target = strstr(xml, "<target>");
    const char *start = target ? strstr(target, "<path>") : NULL;
    const char *end = start ? strstr(start, "</path>") : NULL;
    if (!end)
        return nb_error_set(err, NB_ERR_HYPERVISOR, "storage pool '%s' has no target path", pool);
    start += strlen("<path>");
    char *path = strndup(start, (size_t)(end - start));
    if (!path)
        return nb_error_set(err, NB_ERR_INTERNAL, "out of memory");
    hv_xml_unescape(path);
    *ret_path = path;
    return 0;
}

static char *
hv_pool_xml(const char *pool, const char *path)
{
    _cleanup_(xml_writer_freep) XmlWriter *w = xml_writer_new();
    if (!w)
        return NULL;
    xml_writer_open(w, "pool", "type", "dir", NULL);
    xml_writer_text_element(w, "name", pool, NULL);
    xml_writer_open(w, "target", NULL);
    xml_writer_text_element(w, "path", path, NULL);
    xml_writer_close(w);
    xml_writer_close(w);
    const char *xml = xml_writer_result(w);
    return xml ? strdup(xml) : NULL;
}

/* Defines the pool, or finds it defined by a concurrent caller. */
static int
hv_pool_define(HvConn *c, const char *pool, const char *path, virStoragePoolPtr *ret, NbError **err)
{
    _cleanup_free_ char *xml = hv_pool_xml(pool, path);
    if (!xml)
        return nb_error_set(err, NB_ERR_INTERNAL, "cannot write the XML of pool '%s'", pool);
    virStoragePoolPtr p = virStoragePoolDefineXML(c->conn, xml, 0);
    if (!p) {
        _cleanup_error_ NbError *define_err = NULL;
        hv_error(&define_err, "defining storage pool '%s'", pool);
        if (hv_pool_lookup(c, pool, ret, NULL) == 1)
            return 0;
        return nb_error_propagate(err, TAKE_PTR(define_err));
    }
    log_info("defined storage pool '%s' at %s", pool, path);
    *ret = p;
    return 0;
}

int
hv_pool_ensure(HvConn *c, const char *pool, const char *path, NbError **err)
{
    _cleanup_free_ char *want = hv_path_sanitize(path);
    if (!want)
        return nb_error_set(err, NB_ERR_INTERNAL, "out of memory");

    _cleanup_pool_ virStoragePoolPtr p = NULL;
    int r = hv_pool_lookup(c, pool, &p, err);
    if (r < 0)
        return -1;
    if (r == 0 && hv_pool_define(c, pool, want, &p, err) < 0)
        return -1;

    /* Defined before (or concurrently): it must be the pool we would have made. */
    bool is_dir = false;
    _cleanup_free_ char *have = NULL;
    if (hv_pool_read_target(p, pool, &is_dir, &have, err) < 0)
        return -1;
    if (!is_dir || !streq(have, want))
        return nb_error_set(err, NB_ERR_HYPERVISOR,
                            "storage pool '%s' exists as %s at '%s', not as a dir pool at '%s'",
                            pool, is_dir ? "a dir pool" : "another type", have, want);

    int active = virStoragePoolIsActive(p);
    if (active < 0)
        return hv_error(err, "checking whether storage pool '%s' is active", pool);
    /* An active pool whose directory was removed underneath fails its refresh, and libvirt
     * then marks it inactive: build and start it again below. */
    if (active && virStoragePoolRefresh(p, 0) < 0)
        active = virStoragePoolIsActive(p) == 1;
    if (!active) {
        /* Building a dir pool is mkdir -p; harmless when the directory is there. */
        if (virStoragePoolBuild(p, 0) < 0)
            return hv_error(err, "building storage pool '%s' at %s", pool, want);
        if (virStoragePoolCreate(p, 0) < 0) {
            if (hv_last_error_code() != VIR_ERR_OPERATION_INVALID || virStoragePoolIsActive(p) != 1)
                return hv_error(err, "starting storage pool '%s'", pool);
        }
    }

    int autostart = 0;
    if (virStoragePoolGetAutostart(p, &autostart) < 0)
        return hv_error(err, "reading the autostart flag of storage pool '%s'", pool);
    if (!autostart && virStoragePoolSetAutostart(p, 1) < 0)
        return hv_error(err, "setting storage pool '%s' to autostart", pool);
    return 0;
}

/* ---- volumes ---- */

/*
 * 1 and *ret when found, 0 when absent, -1 with *err. libvirt answers from its cached view of
 * the pool; when that says "absent" and refresh_on_miss is set, the (costly, and growing with the
 * pool) refresh is done and the look-up retried. Callers that only need to know about volumes
 * libvirt itself made pass false: libvirt's cache lists every volume it created, and libvirtd
 * refreshes its pools when it starts.
 */
static int
hv_vol_lookup(virStoragePoolPtr p, const char *pool, const char *vol, bool refresh_on_miss,
              virStorageVolPtr *ret, NbError **err)
{
    for (int attempt = 0;; attempt++) {
        virStorageVolPtr v = virStorageVolLookupByName(p, vol);
        if (v) {
            *ret = v;
            return 1;
        }
        if (hv_last_error_code() != VIR_ERR_NO_STORAGE_VOL)
            return hv_error(err, "looking up volume '%s' in pool '%s'", vol, pool);
        if (attempt > 0 || !refresh_on_miss)
            return 0;
        if (virStoragePoolRefresh(p, 0) < 0) {
            /* E.g. another volume is being built in the pool: refresh is refused then. The
             * cache is what libvirt itself made, so trust its answer. */
            virErrorPtr e = virGetLastError();
            log_debug("refreshing pool '%s': %s", pool, e && e->message ? e->message : "");
            return 0;
        }
    }
}

static int
hv_vol_get(virStoragePoolPtr p, const char *pool, const char *vol, virStorageVolPtr *ret,
           NbError **err)
{
    int r = hv_vol_lookup(p, pool, vol, true, ret, err);
    if (r == 0)
        return nb_error_set(err, NB_ERR_INTERNAL, "volume '%s' not found in pool '%s'", vol, pool);
    return r < 0 ? -1 : 0;
}

/* Deletes a volume of an open pool; absent is fine. */
static int
hv_vol_delete_in(virStoragePoolPtr p, const char *pool, const char *vol, bool refresh_on_miss,
                 NbError **err)
{
    _cleanup_vol_ virStorageVolPtr v = NULL;
    int r = hv_vol_lookup(p, pool, vol, refresh_on_miss, &v, err);
    if (r <= 0)
        return r;
    if (virStorageVolDelete(v, 0) < 0) {
        if (hv_last_error_code() == VIR_ERR_NO_STORAGE_VOL)
            return 0;
        return hv_error(err, "deleting volume '%s' from pool '%s'", vol, pool);
    }
    return 0;
}

int
hv_vol_delete(HvConn *c, const char *pool, const char *vol, NbError **err)
{
    _cleanup_pool_ virStoragePoolPtr p = NULL;
    int r = hv_pool_lookup(c, pool, &p, err);
    if (r <= 0)
        return r; /* no pool, no volume */
    return hv_vol_delete_in(p, pool, vol, true, err);
}

int
hv_vol_exists(HvConn *c, const char *pool, const char *vol, NbError **err)
{
    _cleanup_pool_ virStoragePoolPtr p = NULL;
    int r = hv_pool_lookup(c, pool, &p, err);
    if (r <= 0)
        return r;
    _cleanup_vol_ virStorageVolPtr v = NULL;
    return hv_vol_lookup(p, pool, vol, true, &v, err);
}

int
hv_vol_path(HvConn *c, const char *pool, const char *vol, char **ret, NbError **err)
{
    _cleanup_pool_ virStoragePoolPtr p = NULL;
    if (hv_pool_get(c, pool, &p, err) < 0)
        return -1;
    _cleanup_vol_ virStorageVolPtr v = NULL;
    if (hv_vol_get(p, pool, vol, &v, err) < 0)
        return -1;
    char *path = virStorageVolGetPath(v);
    if (!path)
        return hv_error(err, "reading the path of volume '%s'", vol);
    *ret = path;
    return 0;
}

int
hv_pool_list_volumes(HvConn *c, const char *pool, char ***ret, NbError **err)
{
    _cleanup_pool_ virStoragePoolPtr p = NULL;
    if (hv_pool_get(c, pool, &p, err) < 0)
        return -1;
    virStorageVolPtr *vols = NULL;
    int n = virStoragePoolListAllVolumes(p, &vols, 0);
    if (n < 0)
        return hv_error(err, "listing the volumes of pool '%s'", pool);

    int r = 0;
    char **names = calloc((size_t)n + 1, sizeof(*names));
    for (int i = 0; i < n; i++) {
        if (names && r == 0) {
            const char *name = virStorageVolGetName(vols[i]);
            names[i] = name ? strdup(name) : NULL;
            if (!names[i])
                r = -1;
        }
        virStorageVolFree(vols[i]);
    }
    free(vols);
    if (!names || r < 0) {
        for (int i = 0; names && i < n; i++)
            free(names[i]);
        free(names);
        return nb_error_set(err, NB_ERR_INTERNAL, "out of memory");
    }
    *ret = names;
    return 0;
}

static bool
hv_format_ok(const char *format)
{
    return streq(format, "raw") || streq(format, "qcow2");
}

/* The connection's libvirtd runs on this machine (no host in the URI): files it makes are files
 * nimbusd can open. */
static bool
hv_conn_is_here(const HvConn *c)
{
    if (!c->uri)
        return true;
    const char *sep = strstr(c->uri, "://");
    return sep && sep[3] == '/';
}

/* <volume> with a name, capacity, target format, and optionally an allocation, a backing store
 * and a group (-1: none) that may read it. */
static char *
hv_vol_xml(const char *vol, uint64_t capacity, const char *allocation, const char *format,
           const char *backing_path, const char *backing_format, long group)
{
    char cap[32];
    snprintf(cap, sizeof(cap), "%" PRIu64, capacity);
    _cleanup_(xml_writer_freep) XmlWriter *w = xml_writer_new();
    if (!w)
        return NULL;
    xml_writer_open(w, "volume", NULL);
    xml_writer_text_element(w, "name", vol, NULL);
    xml_writer_text_element(w, "capacity", cap, "unit", "bytes", NULL);
    if (allocation)
        xml_writer_text_element(w, "allocation", allocation, "unit", "bytes", NULL);
    xml_writer_open(w, "target", NULL);
    xml_writer_empty(w, "format", "type", format, NULL);
    /* qcow2 v3: libvirt would make v2 (0.10), which cannot hold the persistent dirty bitmaps
     * of backup checkpoints. */
    if (strcmp(format, "qcow2") == 0)
        xml_writer_text_element(w, "compat", "1.1", NULL);
    if (group >= 0) {
        char gid[24];
        snprintf(gid, sizeof(gid), "%ld", group);
        /* The owner stays libvirtd's (root): only reading is granted. */
        xml_writer_open(w, "permissions", NULL);
        xml_writer_text_element(w, "mode", "0640", NULL);
        xml_writer_text_element(w, "group", gid, NULL);
        xml_writer_close(w);
    }
    xml_writer_close(w);
    if (backing_path) {
        xml_writer_open(w, "backingStore", NULL);
        xml_writer_text_element(w, "path", backing_path, NULL);
        xml_writer_empty(w, "format", "type", backing_format, NULL);
        xml_writer_close(w);
    }
    xml_writer_close(w);
    const char *xml = xml_writer_result(w);
    return xml ? strdup(xml) : NULL;
}

static int
hv_vol_create_xml(virStoragePoolPtr p, const char *pool, const char *vol, const char *xml,
                  NbError **err)
{
    if (!xml)
        return nb_error_set(err, NB_ERR_INTERNAL, "cannot write the XML of volume '%s'", vol);
    _cleanup_vol_ virStorageVolPtr v = virStorageVolCreateXML(p, xml, 0);
    if (!v)
        return hv_error(err, "creating volume '%s' in pool '%s'", vol, pool);
    return 0;
}

int
hv_vol_create_for_upload(HvConn *c, const char *pool, const char *vol, const char *format,
                         uint64_t capacity, NbError **err)
{
    if (!hv_format_ok(format))
        return nb_error_set(err, NB_ERR_INTERNAL, "unsupported volume format '%s'", format);
    _cleanup_pool_ virStoragePoolPtr p = NULL;
    if (hv_pool_get(c, pool, &p, err) < 0)
        return -1;
    if (hv_vol_delete_in(p, pool, vol, false, err) < 0)
        return -1;
    /*
     * Always a raw (byte container) volume, whatever the image format: an upload writes bytes
     * from offset 0 and never truncates. A qcow2 volume would be created by qemu-img with its
     * own header and tables, which a smaller uploaded image does not fully overwrite, leaving
     * trailing garbage. A raw volume of exactly the upload's size ends up byte-identical to the
     * upload, and libvirt probes the real format (qcow2) on its next look at the file.
     * Allocation 0 keeps libvirt from writing zeros over what the upload replaces anyway.
     *
     * libvirtd makes volumes root's, mode 0600, and nimbusd checks an uploaded image by running
     * qemu-img on its file (image_probe_file): a nimbusd that is not root (the packages' user
     * nimbus) reads it through its group. Only here: a remote host's group ids are not ours,
     * and nimbusd never opens a file there. Root reads it anyway: no group is named then.
     */
    long group =
        geteuid() != 0 && hv_conn_is_here(c) && !hv_conn_is_simulated(c) ? (long)getegid() : -1;
    _cleanup_free_ char *xml = hv_vol_xml(vol, capacity, "0", "raw", NULL, NULL, group);
    return hv_vol_create_xml(p, pool, vol, xml, err);
}

/* Aborts a failed upload and removes its volume; the error is already in *err. */
static int
hv_upload_fail(virStreamPtr st, virStoragePoolPtr p, const char *pool, const char *vol)
{
    if (st && virStreamAbort(st) < 0)
        log_debug("aborting the upload stream of '%s' failed", vol);
    _cleanup_error_ NbError *del_err = NULL;
    if (hv_vol_delete_in(p, pool, vol, false, &del_err) < 0)
        log_warn("removing volume '%s' after a failed upload: %s", vol, del_err->message);
    return -1;
}

int
hv_vol_upload(HvConn *c, const char *pool, const char *vol, uint64_t length, HvUploadSource src,
              void *userdata, NbError **err)
{
    _cleanup_pool_ virStoragePoolPtr p = NULL;
    if (hv_pool_get(c, pool, &p, err) < 0)
        return -1;
    _cleanup_vol_ virStorageVolPtr v = NULL;
    if (hv_vol_get(p, pool, vol, &v, err) < 0)
        return -1;
    if (hv_conn_is_simulated(c)) {
        if (hv_sim_vol_upload(c, vol, length, src, userdata, err) == 0)
            return 0;
        return hv_upload_fail(NULL, p, pool, vol);
    }

    _cleanup_free_ char *buf = malloc(HV_UPLOAD_CHUNK);
    if (!buf)
        return nb_error_set(err, NB_ERR_INTERNAL, "out of memory");

    _cleanup_stream_ virStreamPtr st = virStreamNew(c->conn, 0);
    if (!st) {
        hv_error(err, "opening an upload stream");
        return hv_upload_fail(NULL, p, pool, vol);
    }
    if (virStorageVolUpload(v, st, 0, length, 0) < 0) {
        hv_error(err, "starting the upload to volume '%s'", vol);
        return hv_upload_fail(NULL, p, pool, vol);
    }

    uint64_t total = 0;
    for (;;) {
        ssize_t n = src(buf, HV_UPLOAD_CHUNK, userdata, err);
        if (n < 0) {
            nb_error_set(err, NB_ERR_INTERNAL, "reading the data for volume '%s' failed", vol);
            return hv_upload_fail(st, p, pool, vol);
        }
        if (n == 0)
            break;
        if ((size_t)n > HV_UPLOAD_CHUNK || total + (uint64_t)n > length) {
            nb_error_set(err, NB_ERR_INTERNAL, "upload to '%s' is longer than %" PRIu64 " bytes",
                         vol, length);
            return hv_upload_fail(st, p, pool, vol);
        }
        for (size_t off = 0; off < (size_t)n;) {
            int sent = virStreamSend(st, buf + off, (size_t)n - off);
            if (sent < 0) {
                hv_error(err, "uploading to volume '%s'", vol);
                return hv_upload_fail(st, p, pool, vol);
            }
            off += (size_t)sent;
        }
        total += (uint64_t)n;
    }
    if (total != length) {
        nb_error_set(err, NB_ERR_INTERNAL,
                     "upload to '%s' ended after %" PRIu64 " of %" PRIu64 " bytes", vol, total,
                     length);
        return hv_upload_fail(st, p, pool, vol);
    }
    if (virStreamFinish(st) < 0) {
        hv_error(err, "finishing the upload to volume '%s'", vol);
        return hv_upload_fail(st, p, pool, vol);
    }
    return 0;
}

int
hv_vol_create_linked_clone(HvConn *c, const char *pool, const char *vol, const char *backing_vol,
                           const char *backing_format, uint64_t capacity, NbError **err)
{
    return hv_vol_create_linked_clone_of(c, pool, vol, pool, backing_vol, backing_format, capacity,
                                         err);
}

int
hv_vol_create_linked_clone_of(HvConn *c, const char *pool, const char *vol,
                              const char *backing_pool, const char *backing_vol,
                              const char *backing_format, uint64_t capacity, NbError **err)
{
    if (!hv_format_ok(backing_format))
        return nb_error_set(err, NB_ERR_INTERNAL, "unsupported backing format '%s'",
                            backing_format);
    if (streq(pool, backing_pool) && streq(vol, backing_vol))
        return nb_error_set(err, NB_ERR_INTERNAL, "volume '%s' cannot back itself", vol);
    _cleanup_pool_ virStoragePoolPtr p = NULL, bp = NULL;
    if (hv_pool_get(c, pool, &p, err) < 0 || hv_pool_get(c, backing_pool, &bp, err) < 0)
        return -1;
    _cleanup_vol_ virStorageVolPtr backing = NULL;
    if (hv_vol_get(bp, backing_pool, backing_vol, &backing, err) < 0)
        return -1;
    _cleanup_free_ char *backing_path = virStorageVolGetPath(backing);
    if (!backing_path)
        return hv_error(err, "reading the path of volume '%s'", backing_vol);
    if (hv_vol_delete_in(p, pool, vol, false, err) < 0)
        return -1;
    /* A simulated overlay allocates nothing (a real one allocates its few header clusters):
     * libvirt's test driver would otherwise count its whole capacity as used. */
    _cleanup_free_ char *xml = hv_vol_xml(vol, capacity, hv_conn_is_simulated(c) ? "0" : NULL,
                                          "qcow2", backing_path, backing_format, -1);
    return hv_vol_create_xml(p, pool, vol, xml, err);
}

/* ---- networks ---- */

int
hv_network_ensure_active(HvConn *c, const char *network, NbError **err)
{
    _cleanup_network_ virNetworkPtr net = virNetworkLookupByName(c->conn, network);
    if (!net) {
        if (hv_last_error_code() == VIR_ERR_NO_NETWORK)
            return nb_error_set(err, NB_ERR_HYPERVISOR, "network '%s' is not defined", network);
        return hv_error(err, "looking up network '%s'", network);
    }
    int active = virNetworkIsActive(net);
    if (active < 0)
        return hv_error(err, "checking whether network '%s' is active", network);
    if (!active && virNetworkCreate(net) < 0) {
        if (hv_last_error_code() != VIR_ERR_OPERATION_INVALID || virNetworkIsActive(net) != 1)
            return hv_error(err, "starting network '%s'", network);
    }

    int persistent = virNetworkIsPersistent(net);
    if (persistent < 0)
        return hv_error(err, "checking whether network '%s' is persistent", network);
    if (!persistent)
        return 0; /* a transient network cannot autostart */
    int autostart = 0;
    if (virNetworkGetAutostart(net, &autostart) < 0)
        return hv_error(err, "reading the autostart flag of network '%s'", network);
    if (!autostart && virNetworkSetAutostart(net, 1) < 0)
        return hv_error(err, "setting network '%s' to autostart", network);
    return 0;
}
