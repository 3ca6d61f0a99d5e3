/* What a host offers (node facts, pool space), and what moves between hosts: volumes over
 * libvirt streams, and domains by migration. */
#include "hv_console.h"
#include "hv_internal.h"
#include "hv_sim.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../util/log.h"
#include "../util/strutil.h"

#define HV_COPY_CHUNK (1024 * 1024)

static void
hv_version_string(unsigned long v, char *buf, size_t len)
{
    snprintf(buf, len, "%lu.%lu.%lu", v / 1000000, (v / 1000) % 1000, v % 1000);
}

int
hv_host_facts(HvConn *c, const char *pool, HostFacts *ret, NbError **err)
{
    HostFacts f = {0};
    virNodeInfo node;
    if (virNodeGetInfo(c->conn, &node) < 0)
        return hv_error(err, "reading the node info of '%s'", c->uri);
    f.vcpus = node.cpus;
    f.ram_mib = node.memory / 1024;
    snprintf(f.cpu_model, sizeof(f.cpu_model), "%s", node.model);
    unsigned long long free_bytes = virNodeGetFreeMemory(c->conn);
    if (free_bytes == 0)
        log_debug("no free memory figure from '%s'", c->uri);
    f.free_ram_mib = free_bytes / (1024 * 1024);

    _cleanup_free_ char *hostname = virConnectGetHostname(c->conn);
    if (hostname)
        snprintf(f.hostname, sizeof(f.hostname), "%s", hostname);
    unsigned long lib = 0, hv = 0;
    if (virConnectGetLibVersion(c->conn, &lib) == 0)
        hv_version_string(lib, f.libvirt_version, sizeof(f.libvirt_version));
    /* A simulated host has no QEMU: the test driver's own version would read as one. */
    if (!hv_conn_is_simulated(c) && virConnectGetVersion(c->conn, &hv) == 0)
        hv_version_string(hv, f.qemu_version, sizeof(f.qemu_version));

    if (pool) {
        _cleanup_pool_ virStoragePoolPtr p = virStoragePoolLookupByName(c->conn, pool);
        virStoragePoolInfo info;
        if (!p)
            return hv_error(err, "looking up pool '%s' on '%s'", pool, c->uri);
        if (virStoragePoolGetInfo(p, &info) < 0)
            return hv_error(err, "reading pool '%s' on '%s'", pool, c->uri);
        f.disk_gib = info.capacity >> 30;
        f.disk_free_gib = info.available >> 30;
    }
    *ret = f;
    return 0;
}

/* ---- volumes between hosts ---- */

/* hv_vol_upload's source: whatever the download stream of the other host delivers. */
static ssize_t
hv_stream_source(char *buf, size_t len, void *userdata, NbError **err)
{
    virStreamPtr in = userdata;
    int n = virStreamRecv(in, buf, len);
    if (n < 0)
        return hv_error(err, "reading the source volume");
    return n;
}

int
hv_vol_copy(HvConn *src, HvConn *dst, const char *pool, const char *vol, NbError **err)
{
    if (hv_conn_is_simulated(src) || hv_conn_is_simulated(dst))
        return hv_sim_vol_copy(src, dst, pool, vol, err);
    _cleanup_pool_ virStoragePoolPtr sp = virStoragePoolLookupByName(src->conn, pool);
    if (!sp)
        return hv_error(err, "looking up pool '%s' on '%s'", pool, src->uri);
    _cleanup_vol_ virStorageVolPtr sv = virStorageVolLookupByName(sp, vol);
    if (!sv) {
        if (virStoragePoolRefresh(sp, 0) == 0)
            sv = virStorageVolLookupByName(sp, vol);
        if (!sv)
            return hv_error(err, "looking up volume '%s' on '%s'", vol, src->uri);
    }
    virStorageVolInfo info;
    if (virStorageVolGetInfoFlags(sv, &info, VIR_STORAGE_VOL_GET_PHYSICAL) < 0)
        return hv_error(err, "reading volume '%s' on '%s'", vol, src->uri);
    uint64_t length = info.allocation; /* with GET_PHYSICAL: the file's size */

    /* The copy is a raw file of the source's bytes: a qcow2 overlay keeps its backing path,
     * which is the same on every host because the pool path is. */
    if (hv_vol_create_for_upload(dst, pool, vol, "raw", length, err) < 0)
        return -1;

    _cleanup_stream_ virStreamPtr in = virStreamNew(src->conn, 0);
    if (!in || virStorageVolDownload(sv, in, 0, length, 0) < 0) {
        hv_error(err, "reading volume '%s' from '%s'", vol, src->uri);
        _cleanup_error_ NbError *e = NULL;
        hv_vol_delete(dst, pool, vol, &e);
        return -1;
    }
    if (hv_vol_upload(dst, pool, vol, length, hv_stream_source, in, err) < 0) {
        virStreamAbort(in);
        return -1;
    }
    if (virStreamFinish(in) < 0)
        return hv_error(err, "finishing the read of volume '%s' from '%s'", vol, src->uri);
    return 0;
}

/* A bounded sink for a download stream. */
typedef struct HvTail {
    char *buf;
    size_t len, cap;
} HvTail;

static int
hv_tail_sink(virStreamPtr st, const char *data, size_t n, void *opaque)
{
    HvTail *t = opaque;
    if (n > t->cap - t->len)
        n = t->cap - t->len; /* the file grew since its size was read: keep what was asked */
    memcpy(t->buf + t->len, data, n);
    t->len += n;
    return (int)n;
}

int
hv_vol_read_tail(HvConn *c, const char *pool, const char *vol, uint64_t max, char **ret,
                 size_t *ret_len, NbError **err)
{
    _cleanup_pool_ virStoragePoolPtr p = virStoragePoolLookupByName(c->conn, pool);
    if (!p)
        return hv_error(err, "looking up pool '%s' on '%s'", pool, c->uri);
    _cleanup_vol_ virStorageVolPtr v = virStorageVolLookupByName(p, vol);
    if (!v) {
        /* A file that appeared behind libvirt's back (virtlogd made it): refresh once. */
        if (hv_last_error_code() != VIR_ERR_NO_STORAGE_VOL || virStoragePoolRefresh(p, 0) < 0)
            return hv_error(err, "looking up volume '%s' on '%s'", vol, c->uri);
        v = virStorageVolLookupByName(p, vol);
        if (!v) {
            if (hv_last_error_code() == VIR_ERR_NO_STORAGE_VOL)
                return 0;
            return hv_error(err, "looking up volume '%s' on '%s'", vol, c->uri);
        }
    }
    /* A simulated volume has no bytes to read (and the test driver no download stream). */
    if (hv_conn_is_simulated(c)) {
        *ret = strdup("");
        *ret_len = 0;
        return *ret ? 1 : nb_error_set(err, NB_ERR_INTERNAL, "out of memory");
    }
    virStorageVolInfo info; /* re-reads the file's size */
    if (virStorageVolGetInfoFlags(v, &info, VIR_STORAGE_VOL_GET_PHYSICAL) < 0)
        return hv_error(err, "reading volume '%s' on '%s'", vol, c->uri);
    uint64_t size = info.allocation;
    uint64_t off = size > max ? size - max : 0;
    HvTail t = {.cap = (size_t)(size - off)};
    t.buf = malloc(t.cap + 1);
    if (!t.buf)
        return nb_error_set(err, NB_ERR_INTERNAL, "out of memory");
    if (t.cap > 0) {
        _cleanup_stream_ virStreamPtr st = virStreamNew(c->conn, 0);
        if (!st || virStorageVolDownload(v, st, off, t.cap, 0) < 0 ||
            virStreamRecvAll(st, hv_tail_sink, &t) < 0 || virStreamFinish(st) < 0) {
            free(t.buf);
            return hv_error(err, "reading volume '%s' on '%s'", vol, c->uri);
        }
    }
    t.buf[t.len] = '\0';
    *ret = t.buf;
    *ret_len = t.len;
    return 1;
}

/* ---- migration ---- */

int
hv_domain_migrate(HvConn *src, HvConn *dst, const char *name, const HvMigrateOptions *o,
                  NbError **err)
{
    if (hv_conn_is_simulated(src) || hv_conn_is_simulated(dst))
        return hv_sim_domain_migrate(src, dst, name, err);
    _cleanup_domain_ virDomainPtr dom = NULL;
    int r = hv_domain_lookup(src, name, &dom, err);
    if (r <= 0)
        return r < 0
                   ? -1
                   : nb_error_set(err, NB_ERR_HYPERVISOR, "no domain '%s' on '%s'", name, src->uri);
    virTypedParameterPtr params = NULL;
    int n_params = 0, max_params = 0;
    if (o->migrate_uri && o->migrate_uri[0] &&
        virTypedParamsAddString(&params, &n_params, &max_params, VIR_MIGRATE_PARAM_URI,
                                o->migrate_uri) < 0)
        return hv_error(err, "building the migration parameters");
    if (o->bandwidth_mib &&
        virTypedParamsAddULLong(&params, &n_params, &max_params, VIR_MIGRATE_PARAM_BANDWIDTH,
                                o->bandwidth_mib) < 0) {
        virTypedParamsFree(params, n_params);
        return hv_error(err, "building the migration parameters");
    }
    /* A VNC server listening on the source's address would not start on the destination. */
    bool dxml_failed = false, pxml_failed = false;
    _cleanup_free_ char *dxml = hv_console_migrate_xml(dom, dst->uri, false, &dxml_failed);
    _cleanup_free_ char *pxml = hv_console_migrate_xml(dom, dst->uri, true, &pxml_failed);
    if (dxml_failed || pxml_failed ||
        (dxml && virTypedParamsAddString(&params, &n_params, &max_params,
                                         VIR_MIGRATE_PARAM_DEST_XML, dxml) < 0) ||
        (pxml && virTypedParamsAddString(&params, &n_params, &max_params,
                                         VIR_MIGRATE_PARAM_PERSIST_XML, pxml) < 0)) {
        virTypedParamsFree(params, n_params);
        return nb_error_set(err, NB_ERR_HYPERVISOR, "cannot make the destination's XML of '%s'",
                            name);
    }
    /* The destination keeps the definition and the source forgets it: the domain lives on one
     * host at a time. Sharing is Nimbus's own finding (the same volume seen by both hosts), so
     * libvirt's guess from the filesystem type is overridden with UNSAFE. */
    unsigned flags = VIR_MIGRATE_LIVE | VIR_MIGRATE_ABORT_ON_ERROR | VIR_MIGRATE_PERSIST_DEST |
                     VIR_MIGRATE_UNDEFINE_SOURCE;
    if (o->copy_storage)
        flags |= VIR_MIGRATE_NON_SHARED_INC;
    else
        flags |= VIR_MIGRATE_UNSAFE;
    /* Hosts reached over TLS have certificates, and their QEMUs are expected to have them too
     * (default_tls_x509_cert_dir in qemu.conf, docs/install.md): the guest's memory and disks
     * then cross the network encrypted. libvirt fails the migration, rather than sending in
     * clear, when a QEMU has no certificates. */
    if (str_startswith(src->uri, "qemu+tls://") && str_startswith(dst->uri, "qemu+tls://"))
        flags |= VIR_MIGRATE_TLS;
    virDomainPtr moved = virDomainMigrate3(dom, dst->conn, params, (unsigned)n_params, flags);
    if (!moved) {
        hv_error(err, "migrating '%s' from '%s' to '%s'", name, src->uri, dst->uri);
        virTypedParamsFree(params, n_params);
        return -1;
    }
    virTypedParamsFree(params, n_params);
    virDomainFree(moved);
    return 0;
}

int
hv_domain_job_progress(HvConn *c, const char *name, int *ret, NbError **err)
{
    _cleanup_domain_ virDomainPtr dom = NULL;
    *ret = -1;
    int r = hv_domain_lookup(c, name, &dom, err);
    if (r <= 0)
        return r;
    virDomainJobInfo info;
    if (virDomainGetJobInfo(dom, &info) < 0)
        return hv_error(err, "reading the job of '%s'", name);
    if (info.type == VIR_DOMAIN_JOB_NONE)
        return 0;
    /* Memory is copied again as the guest dirties it: progress is what is done of what the
     * latest pass knows about, so it can step back. Disk copies count in dataTotal too. */
    if (info.dataTotal > 0)
        *ret = (int)((info.dataProcessed * 100) / info.dataTotal);
    if (*ret > 99)
        *ret = 99; /* 100 is for the task's end */
    return 1;
}

int
hv_domain_abort_job(HvConn *c, const char *name, NbError **err)
{
    _cleanup_domain_ virDomainPtr dom = NULL;
    int r = hv_domain_lookup(c, name, &dom, err);
    if (r <= 0)
        return r;
    if (virDomainAbortJob(dom) < 0) {
        if (hv_last_error_code() == VIR_ERR_OPERATION_INVALID)
            return 0; /* no job any more */
        return hv_error(err, "aborting the job of '%s'", name);
    }
    return 1;
}
