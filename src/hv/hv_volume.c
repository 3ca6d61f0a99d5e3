/*
 * Volumes in any libvirt pool (made from pool_xml_volume's XML) and their disks in domains
 * (pool_xml_disk's <disk>): create, copy, grow, delete; attach, detach and grow a disk. A disk is
 * found in a domain by its target ("vdb") and known for the volume's by its <serial>, so every
 * call can tell "done already" (a retry after a crash) from "something else is there".
 */
#include "hv_internal.h"
#include "hv_sim.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../util/log.h"
#include "../util/strutil.h"

/* ---- volumes ---- */

static int
hv_volume_pool(HvConn *c, const char *pool, virStoragePoolPtr *ret, NbError **err)
{
    virStoragePoolPtr p = virStoragePoolLookupByName(c->conn, pool);
    if (!p) {
        if (hv_last_error_code() == VIR_ERR_NO_STORAGE_POOL)
            return nb_error_set(err, NB_ERR_POOL_UNAVAILABLE, "storage pool '%s' not found", pool);
        return hv_error(err, "looking up storage pool '%s'", pool);
    }
    *ret = p;
    return 0;
}

/* 1 and *ret when found, 0 when absent. libvirt's cache of a pool lists what libvirt made; a
 * miss is looked at again after a refresh, for volumes made by another libvirtd (shared pools). */
static int
hv_volume_find(virStoragePoolPtr p, const char *pool, const char *name, virStorageVolPtr *ret,
               NbError **err)
{
    for (int attempt = 0;; attempt++) {
        virStorageVolPtr v = virStorageVolLookupByName(p, name);
        if (v) {
            *ret = v;
            return 1;
        }
        if (hv_last_error_code() != VIR_ERR_NO_STORAGE_VOL)
            return hv_error(err, "looking up volume '%s' in pool '%s'", name, pool);
        if (attempt > 0 || virStoragePoolRefresh(p, 0) < 0)
            return 0;
    }
}

static int
hv_volume_capacity_of(virStorageVolPtr v, const char *name, uint64_t *ret, NbError **err)
{
    virStorageVolInfo info;
    if (virStorageVolGetInfo(v, &info) < 0)
        return hv_error(err, "reading the size of volume '%s'", name);
    *ret = info.capacity;
    return 0;
}

int
hv_volume_capacity(HvConn *c, const char *pool, const char *name, uint64_t *ret, NbError **err)
{
    _cleanup_pool_ virStoragePoolPtr p = NULL;
    _cleanup_vol_ virStorageVolPtr v = NULL;
    if (hv_volume_pool(c, pool, &p, err) < 0)
        return -1;
    int r = hv_volume_find(p, pool, name, &v, err);
    if (r <= 0)
        return r;
    return hv_volume_capacity_of(v, name, ret, err) < 0 ? -1 : 1;
}

int
hv_volume_create(HvConn *c, const char *pool, const char *name, const char *xml, uint64_t capacity,
                 NbError **err)
{
    _cleanup_pool_ virStoragePoolPtr p = NULL;
    _cleanup_vol_ virStorageVolPtr v = NULL;
    if (hv_volume_pool(c, pool, &p, err) < 0)
        return -1;
    int r = hv_volume_find(p, pool, name, &v, err);
    if (r < 0)
        return -1;
    if (r > 0) {
        /* Made before a crash: kept when it is what was asked for. */
        uint64_t have = 0;
        if (hv_volume_capacity_of(v, name, &have, err) < 0)
            return -1;
        if (have >= capacity)
            return 0;
        return nb_error_set(err, NB_ERR_HYPERVISOR,
                            "volume '%s' exists in pool '%s' with %" PRIu64 " bytes, not %" PRIu64,
                            name, pool, have, capacity);
    }
    v = virStorageVolCreateXML(p, xml, 0);
    if (!v)
        return hv_error(err, "creating volume '%s' in pool '%s'", name, pool);
    log_info("created volume '%s' (%" PRIu64 " bytes) in pool '%s'", name, capacity, pool);
    return 0;
}

int
hv_volume_create_from(HvConn *c, const char *pool, const char *name, const char *xml,
                      const char *from_pool, const char *from_vol, NbError **err)
{
    _cleanup_pool_ virStoragePoolPtr p = NULL, fp = NULL;
    _cleanup_vol_ virStorageVolPtr v = NULL, from = NULL;
    if (hv_volume_pool(c, pool, &p, err) < 0 || hv_volume_pool(c, from_pool, &fp, err) < 0)
        return -1;
    int r = hv_volume_find(fp, from_pool, from_vol, &from, err);
    if (r <= 0)
        return r < 0 ? -1
                     : nb_error_set(err, NB_ERR_HYPERVISOR, "volume '%s' not found in pool '%s'",
                                    from_vol, from_pool);
    /* A copy found here is one a crash cut short, or not: it cannot be told, so it is made
     * again. */
    r = hv_volume_find(p, pool, name, &v, err);
    if (r < 0)
        return -1;
    if (r > 0 && virStorageVolDelete(v, 0) < 0 && hv_last_error_code() != VIR_ERR_NO_STORAGE_VOL)
        return hv_error(err, "deleting the earlier copy '%s' in pool '%s'", name, pool);
    if (v) {
        virStorageVolFree(v);
        v = NULL;
    }
    v = virStorageVolCreateXMLFrom(p, xml, from, 0);
    if (!v)
        return hv_error(err, "copying volume '%s' into '%s' in pool '%s'", from_vol, name, pool);
    log_info("created volume '%s' in pool '%s' as a copy of '%s'", name, pool, from_vol);
    return 0;
}

int
hv_volume_resize(HvConn *c, const char *pool, const char *name, uint64_t capacity, NbError **err)
{
    _cleanup_pool_ virStoragePoolPtr p = NULL;
    _cleanup_vol_ virStorageVolPtr v = NULL;
    if (hv_volume_pool(c, pool, &p, err) < 0)
        return -1;
    int r = hv_volume_find(p, pool, name, &v, err);
    if (r <= 0)
        return r < 0 ? -1
                     : nb_error_set(err, NB_ERR_HYPERVISOR, "volume '%s' not found in pool '%s'",
                                    name, pool);
    uint64_t have = 0;
    if (hv_volume_capacity_of(v, name, &have, err) < 0)
        return -1;
    if (have >= capacity)
        return 0;
    if (virStorageVolResize(v, capacity, 0) < 0)
        return hv_error(err, "growing volume '%s' in pool '%s' to %" PRIu64 " bytes", name, pool,
                        capacity);
    log_info("grew volume '%s' in pool '%s' to %" PRIu64 " bytes", name, pool, capacity);
    return 0;
}

static int
hv_volume_delete_flags(HvConn *c, const char *pool, const char *name, unsigned flags, NbError **err)
{
    _cleanup_pool_ virStoragePoolPtr p = NULL;
    _cleanup_vol_ virStorageVolPtr v = NULL;
    _cleanup_error_ NbError *e = NULL;
    if (hv_volume_pool(c, pool, &p, &e) < 0) {
        /* No pool, no volume. */
        if (streq(e->code, NB_ERR_POOL_UNAVAILABLE))
            return 0;
        return nb_error_propagate(err, TAKE_PTR(e));
    }
    int r = hv_volume_find(p, pool, name, &v, err);
    if (r <= 0)
        return r;
    if (virStorageVolDelete(v, flags) < 0) {
        if (hv_last_error_code() == VIR_ERR_NO_STORAGE_VOL)
            return 0;
        return hv_error(err, "deleting volume '%s' from pool '%s'", name, pool);
    }
    log_info("deleted volume '%s' from pool '%s'", name, pool);
    return 0;
}

int
hv_volume_delete(HvConn *c, const char *pool, const char *name, NbError **err)
{
    return hv_volume_delete_flags(c, pool, name, 0, err);
}

int
hv_volume_delete_with_snapshots(HvConn *c, const char *pool, const char *name, NbError **err)
{
    return hv_volume_delete_flags(c, pool, name, VIR_STORAGE_VOL_DELETE_WITH_SNAPSHOTS, err);
}

/* ---- disks in domains ---- */

/* The <disk>...</disk> element of a domain XML whose target is dev: its bounds in xml, or false.
 * libvirt writes `<target dev='vdb' bus='virtio'/>`, one per disk. */
static bool
hv_disk_element(const char *xml, const char *dev, const char **start, const char **end)
{
    char tag[32];
    snprintf(tag, sizeof(tag), "<target dev='%s'", dev);
    const char *t = strstr(xml, tag);
    if (!t)
        return false;
    const char *s = NULL;
    for (const char *p = xml; (p = strstr(p, "<disk ")) && p < t; p++)
        s = p;
    const char *e = strstr(t, "</disk>");
    if (!s || !e)
        return false;
    *start = s;
    *end = e + strlen("</disk>");
    return true;
}

/* What is at target in one view of the domain: 0 nothing, 1 the disk of this serial, 2 another
 * device. */
static int
hv_disk_at(const char *xml, const char *target, const char *serial)
{
    const char *s, *e;
    if (!hv_disk_element(xml, target, &s, &e))
        return 0;
    char want[64];
    snprintf(want, sizeof(want), "<serial>%s</serial>", serial);
    const char *found = strstr(s, want);
    return found && found < e ? 1 : 2;
}

typedef struct DiskPlace {
    bool active, persistent;
    int live, config; /* hv_disk_at: 0 none, 1 ours, 2 another */
} DiskPlace;

static int
hv_disk_place(virDomainPtr dom, const char *domain, const char *target, const char *serial,
              DiskPlace *ret, NbError **err)
{
    *ret = (DiskPlace){0};
    int active = virDomainIsActive(dom);
    if (active < 0)
        return hv_error(err, "checking whether domain '%s' is active", domain);
    int persistent = virDomainIsPersistent(dom);
    if (persistent < 0)
        return hv_error(err, "checking whether domain '%s' is persistent", domain);
    ret->active = active;
    ret->persistent = persistent;
    if (active) {
        _cleanup_free_ char *xml = virDomainGetXMLDesc(dom, 0);
        if (!xml)
            return hv_error(err, "reading the definition of domain '%s'", domain);
        ret->live = hv_disk_at(xml, target, serial);
    }
    if (persistent) {
        _cleanup_free_ char *xml = virDomainGetXMLDesc(dom, VIR_DOMAIN_XML_INACTIVE);
        if (!xml)
            return hv_error(err, "reading the definition of domain '%s'", domain);
        ret->config = hv_disk_at(xml, target, serial);
    }
    return 0;
}

static bool
hv_disk_find(const char *xml, const void *target, const char **start, const char **end)
{
    return hv_disk_element(xml, target, start, end);
}

/* A scsi disk needs a virtio-scsi controller. libvirt 9.0 adds one itself when a scsi disk is
 * hot-plugged, but fails to give it a PCI address ("No more available PCI slots", free PCIe
 * root ports or not); one attached explicitly first gets a port. flags: where the disk goes. */
static int
hv_scsi_controller_ensure(virDomainPtr dom, const char *domain, unsigned flags, NbError **err)
{
    static const char ctl[] = "<controller type='scsi' index='0' model='virtio-scsi'/>";
    unsigned need = 0;
    if (flags & VIR_DOMAIN_AFFECT_LIVE) {
        _cleanup_free_ char *xml = virDomainGetXMLDesc(dom, 0);
        if (!xml)
            return hv_error(err, "reading the definition of domain '%s'", domain);
        if (!strstr(xml, "<controller type='scsi'"))
            need |= VIR_DOMAIN_AFFECT_LIVE;
    }
    if (flags & VIR_DOMAIN_AFFECT_CONFIG) {
        _cleanup_free_ char *xml = virDomainGetXMLDesc(dom, VIR_DOMAIN_XML_INACTIVE);
        if (!xml)
            return hv_error(err, "reading the definition of domain '%s'", domain);
        if (!strstr(xml, "<controller type='scsi'"))
            need |= VIR_DOMAIN_AFFECT_CONFIG;
    }
    if (need && virDomainAttachDeviceFlags(dom, ctl, need) < 0)
        return hv_error(err, "adding a virtio-scsi controller to domain '%s'", domain);
    return 0;
}

int
hv_domain_disk_attach(HvConn *c, const char *domain, const char *target, const char *serial,
                      const char *disk_xml, NbError **err)
{
    _cleanup_domain_ virDomainPtr dom = NULL;
    int r = hv_domain_lookup(c, domain, &dom, err);
    if (r == 0)
        return nb_error_set(err, NB_ERR_HYPERVISOR, "domain '%s' not found", domain);
    if (r < 0)
        return -1;
    /* Twice at most: a domain that starts or stops between the look and the attach makes the
     * flags wrong once. */
    for (int attempt = 0;; attempt++) {
        DiskPlace at;
        if (hv_disk_place(dom, domain, target, serial, &at, err) < 0)
            return -1;
        if (at.live == 2 || at.config == 2)
            return nb_error_set(err, NB_ERR_HYPERVISOR,
                                "domain '%s' has another device at target %s", domain, target);
        if (hv_conn_is_simulated(c))
            return at.config ? 0 : hv_sim_device_change(c, dom, domain, disk_xml, NULL, NULL, err);
        unsigned flags = (at.persistent && !at.config ? VIR_DOMAIN_AFFECT_CONFIG : 0u) |
                         (at.active && !at.live ? VIR_DOMAIN_AFFECT_LIVE : 0u);
        if (flags == 0)
            return 0;
        if (strstr(disk_xml, "bus='scsi'") &&
            hv_scsi_controller_ensure(dom, domain, flags, err) < 0)
            return -1;
        if (virDomainAttachDeviceFlags(dom, disk_xml, flags) == 0) {
            log_info("attached disk %s (serial %s) to domain '%s'%s", target, serial, domain,
                     flags & VIR_DOMAIN_AFFECT_LIVE ? " live" : "");
            return 0;
        }
        if (attempt > 0)
            return hv_error(err, "attaching disk %s to domain '%s'", target, domain);
        virErrorPtr e = virGetLastError();
        log_info("attaching disk %s to domain '%s': %s; looking again", target, domain,
                 e && e->message ? e->message : "failed");
    }
}

int
hv_domain_disk_detach(HvConn *c, const char *domain, const char *target, const char *serial,
                      const char *disk_xml, NbError **err)
{
    _cleanup_domain_ virDomainPtr dom = NULL;
    int r = hv_domain_lookup(c, domain, &dom, err);
    if (r <= 0)
        return r;
    DiskPlace at;
    if (hv_disk_place(dom, domain, target, serial, &at, err) < 0)
        return -1;
    if (hv_conn_is_simulated(c))
        return at.config == 1
                   ? hv_sim_device_change(c, dom, domain, NULL, hv_disk_find, target, err)
                   : 0;
    /* Another device at the target is not ours to remove. */
    unsigned flags = (at.config == 1 ? VIR_DOMAIN_AFFECT_CONFIG : 0u) |
                     (at.live == 1 ? VIR_DOMAIN_AFFECT_LIVE : 0u);
    if (flags == 0)
        return 0;
    if (virDomainDetachDeviceFlags(dom, disk_xml, flags) < 0) {
        if (hv_last_error_code() == VIR_ERR_DEVICE_MISSING)
            return 0;
        int r_err = hv_error(err, "detaching disk %s from domain '%s'", target, domain);
        /* libvirt refuses to ask again while an earlier unplug still waits for the guest. */
        DiskPlace now;
        _cleanup_error_ NbError *e = NULL;
        if (at.live == 1 && hv_disk_place(dom, domain, target, serial, &now, &e) == 0 &&
            now.config != 1 && now.live == 1) {
            if (err)
                nb_error_free(TAKE_PTR(*err));
            return 1;
        }
        return r_err;
    }
    /* A live unplug is a request to the guest: libvirt waits a few seconds for the
     * device-removed event and returns either way. Until the guest lets go, QEMU keeps the
     * image open. */
    if (at.live == 1) {
        DiskPlace now;
        if (hv_disk_place(dom, domain, target, serial, &now, err) < 0)
            return -1;
        if (now.live == 1) {
            log_info("disk %s of domain '%s': unplug asked, the guest has not released it yet",
                     target, domain);
            return 1;
        }
    }
    log_info("detached disk %s (serial %s) from domain '%s'", target, serial, domain);
    return 0;
}

int
hv_domain_disk_present(HvConn *c, const char *domain, const char *target, const char *serial,
                       bool *in_live, bool *in_config, NbError **err)
{
    *in_live = *in_config = false;
    _cleanup_domain_ virDomainPtr dom = NULL;
    int r = hv_domain_lookup(c, domain, &dom, err);
    if (r <= 0)
        return r;
    DiskPlace at;
    if (hv_disk_place(dom, domain, target, serial, &at, err) < 0)
        return -1;
    *in_live = at.live == 1;
    *in_config = at.config == 1;
    return 1;
}

int
hv_domain_block_resize(HvConn *c, const char *domain, const char *target, const char *serial,
                       uint64_t bytes, NbError **err)
{
    _cleanup_domain_ virDomainPtr dom = NULL;
    int r = hv_domain_lookup(c, domain, &dom, err);
    if (r <= 0)
        return r;
    DiskPlace at;
    if (hv_disk_place(dom, domain, target, serial, &at, err) < 0)
        return -1;
    if (at.live != 1 || hv_conn_is_simulated(c))
        return 0;
    virDomainBlockInfo info;
    if (virDomainGetBlockInfo(dom, target, &info, 0) < 0)
        return hv_error(err, "reading the size of disk %s of domain '%s'", target, domain);
    if (info.capacity >= bytes)
        return 1;
    if (virDomainBlockResize(dom, target, bytes, VIR_DOMAIN_BLOCK_RESIZE_BYTES) < 0)
        return hv_error(err, "growing disk %s of domain '%s' to %" PRIu64 " bytes", target, domain,
                        bytes);
    log_info("grew disk %s of domain '%s' to %" PRIu64 " bytes", target, domain, bytes);
    return 1;
}
