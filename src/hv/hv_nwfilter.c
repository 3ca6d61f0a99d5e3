/*
 * Security group filters (libvirt nwfilter) on a host. libvirt redefines a filter in place,
 * re-applying it live to every interface that references it, only when the new definition
 * carries the existing filter's uuid: without it the define fails ("already exists with
 * uuid"). So every define looks the uuid up first and writes it into the XML.
 * libvirt's test driver has no nwfilter: on a simulated host these calls change nothing.
 */
#include "hv_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../util/cleanup.h"
#include "../util/log.h"
#include "../util/strutil.h"
#include "../util/uuid.h"

static inline void
hv_nwfilter_freep(virNWFilterPtr *p)
{
    if (*p)
        virNWFilterFree(*p);
}
#define _cleanup_nwfilter_ _cleanup_(hv_nwfilter_freep)

/* 1 and *ret when found, 0 when absent, -1 with *err. */
static int
hv_nwfilter_lookup(HvConn *c, const char *name, virNWFilterPtr *ret, NbError **err)
{
    virNWFilterPtr f = virNWFilterLookupByName(c->conn, name);
    if (!f) {
        if (hv_last_error_code() == VIR_ERR_NO_NWFILTER)
            return 0;
        return hv_error(err, "looking up nwfilter '%s'", name);
    }
    *ret = f;
    return 1;
}

int
hv_nwfilter_uuid(HvConn *c, const char *name, char *out, NbError **err)
{
    if (hv_conn_is_simulated(c))
        return 0;
    _cleanup_nwfilter_ virNWFilterPtr f = NULL;
    int r = hv_nwfilter_lookup(c, name, &f, err);
    if (r <= 0)
        return r;
    char uuid[VIR_UUID_STRING_BUFLEN];
    if (virNWFilterGetUUIDString(f, uuid) < 0)
        return hv_error(err, "reading the uuid of nwfilter '%s'", name);
    snprintf(out, NB_UUID_STRLEN, "%s", uuid);
    return 1;
}

/* xml with its <uuid> set to uuid: replaced when it has one, else added right after the
 * opening <filter ...> tag. NULL on ENOMEM or when xml has no <filter> tag. */
static char *
nwfilter_xml_with_uuid(const char *xml, const char *uuid)
{
    const char *u = strstr(xml, "<uuid>");
    if (u) {
        const char *end = strstr(u, "</uuid>");
        if (!end)
            return NULL;
        size_t head = (size_t)(u - xml) + strlen("<uuid>");
        return str_printf("%.*s%s%s", (int)head, xml, uuid, end);
    }
    const char *open = strstr(xml, "<filter");
    const char *gt = open ? strchr(open, '>') : NULL;
    if (!gt || gt[-1] == '/')
        return NULL;
    size_t head = (size_t)(gt - xml) + 1;
    return str_printf("%.*s<uuid>%s</uuid>%s", (int)head, xml, uuid, gt + 1);
}

/* Whether xml is the definition of the filter called name (as nwfilter_xml_build writes it). */
static bool
nwfilter_xml_names(const char *xml, const char *name)
{
    _cleanup_free_ char *tag = str_printf("<filter name='%s'", name);
    return tag && xml && strstr(xml, tag);
}

int
hv_nwfilter_define(HvConn *c, const char *name, const char *xml, NbError **err)
{
    if (hv_conn_is_simulated(c))
        return 0;
    if (!nwfilter_xml_names(xml, name))
        return nb_error_set(err, NB_ERR_INTERNAL, "the XML given is not nwfilter '%s'", name);
    /* Twice at most: a filter defined by someone else between the look-up and the define has a
     * uuid we have not seen yet. */
    for (int attempt = 0;; attempt++) {
        char uuid[NB_UUID_STRLEN];
        int r = hv_nwfilter_uuid(c, name, uuid, err);
        if (r < 0)
            return -1;
        _cleanup_free_ char *patched = r ? nwfilter_xml_with_uuid(xml, uuid) : NULL;
        if (r && !patched)
            return nb_error_set(err, NB_ERR_INTERNAL, "out of memory, or not an nwfilter");
        _cleanup_nwfilter_ virNWFilterPtr f = virNWFilterDefineXML(c->conn, r ? patched : xml);
        if (f) {
            log_info("%s nwfilter '%s'", r ? "redefined" : "defined", name);
            return 0;
        }
        if (attempt == 1 || hv_last_error_code() != VIR_ERR_OPERATION_FAILED)
            return hv_error(err, "defining nwfilter '%s'", name);
    }
}

int
hv_nwfilter_undefine(HvConn *c, const char *name, NbError **err)
{
    if (hv_conn_is_simulated(c))
        return 0;
    _cleanup_nwfilter_ virNWFilterPtr f = NULL;
    int r = hv_nwfilter_lookup(c, name, &f, err);
    if (r <= 0)
        return r;
    if (virNWFilterUndefine(f) < 0) {
        if (hv_last_error_code() == VIR_ERR_NO_NWFILTER)
            return 0;
        return hv_error(err, "undefining nwfilter '%s'", name);
    }
    log_info("undefined nwfilter '%s'", name);
    return 0;
}
