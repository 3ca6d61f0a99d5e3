/*
 * Copies of a VM's root disk for clones and images from VMs: byte copies of a volume within a
 * pool (a qcow2 overlay keeps its backing file). A running domain's disk is copied by a backup
 * job (hv_backup.c).
 */
#include <stdlib.h>
#include <string.h>

#include "../util/log.h"
#include "../util/strutil.h"
#include "hv_internal.h"

int
hv_pool_refresh(HvConn *c, const char *pool, NbError **err)
{
    _cleanup_pool_ virStoragePoolPtr p = virStoragePoolLookupByName(c->conn, pool);
    if (!p)
        return hv_error(err, "looking up storage pool '%s'", pool);
    if (virStoragePoolRefresh(p, 0) < 0)
        return hv_error(err, "refreshing storage pool '%s'", pool);
    return 0;
}

/* hv_vol_upload's source: the download stream of the volume copied. */
static ssize_t
hv_clone_stream_source(char *buf, size_t len, void *userdata, NbError **err)
{
    int n = virStreamRecv(userdata, buf, len);
    if (n < 0)
        return hv_error(err, "reading the source volume");
    return n;
}

int
hv_vol_copy_bytes(HvConn *c, const char *pool, const char *from_vol, const char *name,
                  NbError **err)
{
    _cleanup_pool_ virStoragePoolPtr p = virStoragePoolLookupByName(c->conn, pool);
    if (!p)
        return hv_error(err, "looking up storage pool '%s'", pool);
    _cleanup_vol_ virStorageVolPtr from = virStorageVolLookupByName(p, from_vol);
    if (!from)
        return hv_error(err, "looking up volume '%s'", from_vol);
    virStorageVolInfo info;
    if (virStorageVolGetInfoFlags(from, &info, VIR_STORAGE_VOL_GET_PHYSICAL) < 0)
        return hv_error(err, "reading volume '%s'", from_vol);
    uint64_t length = info.allocation; /* with GET_PHYSICAL: the file's size */
    /* A raw byte container: the upload writes the file as it is (hv_vol_create_for_upload);
     * libvirt then sees the qcow2 in it. An earlier copy cut short is replaced. */
    if (hv_vol_create_for_upload(c, pool, name, "raw", length, err) < 0)
        return -1;
    _cleanup_stream_ virStreamPtr in = virStreamNew(c->conn, 0);
    if (!in || virStorageVolDownload(from, in, 0, length, 0) < 0) {
        hv_error(err, "reading volume '%s'", from_vol);
        _cleanup_error_ NbError *e = NULL;
        hv_vol_delete(c, pool, name, &e);
        return -1;
    }
    if (hv_vol_upload(c, pool, name, length, hv_clone_stream_source, in, err) < 0) {
        virStreamAbort(in);
        return -1;
    }
    if (virStreamFinish(in) < 0)
        return hv_error(err, "finishing the read of volume '%s'", from_vol);
    return hv_pool_refresh(c, pool, err);
}
