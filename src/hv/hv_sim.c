/*
 * Simulated hosts: libvirt's test driver behind the same connection, reconciler and task code
 * as a real host. The test driver keeps domains, pools, volumes and networks in memory and
 * answers in microseconds, but has no data path: no volume upload or download streams, no
 * migration. Those few calls are replaced here, for simulated connections only.
 */
#include "hv_sim.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "../util/log.h"
#include "../util/strutil.h"

#define HV_SIM_CHUNK (256 * 1024)

bool
hv_conn_is_simulated(const HvConn *c)
{
    return c && host_uri_is_simulated(c->uri);
}

int
hv_sim_vol_upload(HvConn *c, const char *vol, uint64_t length, HvUploadSource src, void *userdata,
                  NbError **err)
{
    _cleanup_free_ char *buf = malloc(HV_SIM_CHUNK);
    if (!buf)
        return nb_error_set(err, NB_ERR_INTERNAL, "out of memory");
    uint64_t total = 0;
    for (;;) {
        ssize_t n = src(buf, HV_SIM_CHUNK, userdata, err);
        if (n < 0) {
            if (err && !*err)
                nb_error_set(err, NB_ERR_INTERNAL, "upload to '%s': the source failed", vol);
            return -1;
        }
        if (n == 0)
            break;
        total += (uint64_t)n;
    }
    if (total != length)
        return nb_error_set(err, NB_ERR_INTERNAL,
                            "upload to '%s' ended after %" PRIu64 " of %" PRIu64 " bytes", vol,
                            total, length);
    log_debug("%s: %" PRIu64 " bytes for '%s' dropped (simulated host)", c->uri, total, vol);
    return 0;
}

int
hv_sim_vol_copy(HvConn *src, HvConn *dst, const char *pool, const char *vol, NbError **err)
{
    if (!hv_conn_is_simulated(dst))
        return nb_error_set(err, NB_ERR_HYPERVISOR,
                            "cannot copy volume '%s' from simulated host '%s' to real host '%s': "
                            "a simulated volume has no data",
                            vol, src->uri, dst->uri);
    _cleanup_pool_ virStoragePoolPtr sp = virStoragePoolLookupByName(src->conn, pool);
    if (!sp)
        return hv_error(err, "looking up pool '%s' on '%s'", pool, src->uri);
    _cleanup_vol_ virStorageVolPtr sv = virStorageVolLookupByName(sp, vol);
    if (!sv)
        return hv_error(err, "looking up volume '%s' on '%s'", vol, src->uri);
    /* What a real copy would write: the file's size, which for a simulated source (no file) is
     * its capacity. */
    virStorageVolInfo info;
    uint64_t length;
    if (hv_conn_is_simulated(src)) {
        if (virStorageVolGetInfo(sv, &info) < 0)
            return hv_error(err, "reading volume '%s' on '%s'", vol, src->uri);
        length = info.capacity;
    } else {
        if (virStorageVolGetInfoFlags(sv, &info, VIR_STORAGE_VOL_GET_PHYSICAL) < 0)
            return hv_error(err, "reading volume '%s' on '%s'", vol, src->uri);
        length = info.allocation;
    }
    if (hv_vol_create_for_upload(dst, pool, vol, "raw", length, err) < 0)
        return -1;
    log_debug("%s -> %s: volume '%s' (%" PRIu64 " bytes) copied without its data (simulated host)",
              src->uri, dst->uri, vol, length);
    return 0;
}

int
hv_sim_domain_migrate(HvConn *src, HvConn *dst, const char *name, NbError **err)
{
    if (!hv_conn_is_simulated(src) || !hv_conn_is_simulated(dst))
        return nb_error_set(err, NB_ERR_HYPERVISOR,
                            "cannot migrate '%s' between a simulated and a real host ('%s' to "
                            "'%s')",
                            name, src->uri, dst->uri);
    _cleanup_domain_ virDomainPtr dom = NULL;
    int r = hv_domain_lookup(src, name, &dom, err);
    if (r <= 0)
        return r < 0
                   ? -1
                   : nb_error_set(err, NB_ERR_HYPERVISOR, "no domain '%s' on '%s'", name, src->uri);
    HvDomainState st = HV_DOMAIN_NONE;
    if (hv_domain_get_state(src, name, &st, err) < 0)
        return -1;
    _cleanup_free_ char *xml = virDomainGetXMLDesc(dom, VIR_DOMAIN_XML_INACTIVE);
    if (!xml)
        return hv_error(err, "reading the definition of '%s' on '%s'", name, src->uri);
    /* Like a live migration with PERSIST_DEST and UNDEFINE_SOURCE: defined and, if it ran,
     * running on the destination; then gone from the source. */
    if (hv_domain_define(dst, xml, err) < 0)
        return -1;
    if ((st == HV_DOMAIN_RUNNING || st == HV_DOMAIN_PAUSED) && hv_domain_start(dst, name, err) < 0)
        return -1;
    if (st == HV_DOMAIN_PAUSED && hv_domain_suspend(dst, name, err) < 0)
        return -1;
    return hv_domain_undefine(src, name, err);
}

int
hv_sim_device_change(HvConn *c, virDomainPtr dom, const char *domain, const char *device_xml,
                     HvSimFindDevice find, const void *key, NbError **err)
{
    _cleanup_free_ char *xml = virDomainGetXMLDesc(dom, VIR_DOMAIN_XML_INACTIVE);
    if (!xml)
        return hv_error(err, "reading the definition of domain '%s'", domain);
    const char *start, *end;
    if (device_xml) {
        start = end = strstr(xml, "</devices>");
        if (!start)
            return nb_error_set(err, NB_ERR_HYPERVISOR, "domain '%s' has no devices", domain);
    } else if (!find(xml, key, &start, &end)) {
        return 0;
    }
    _cleanup_free_ char *out =
        str_printf("%.*s%s%s", (int)(start - xml), xml, device_xml ? device_xml : "", end);
    if (!out)
        return nb_error_set(err, NB_ERR_INTERNAL, "out of memory");
    virDomainPtr d = virDomainDefineXML(c->conn, out);
    if (!d)
        return hv_error(err, "redefining simulated domain '%s'", domain);
    virDomainFree(d);
    return 0;
}
