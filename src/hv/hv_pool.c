/*
 * Storage pools Nimbus makes from its store (their XML from pool_xml.h) and the libvirt secrets
 * that carry their credentials. Every call is idempotent: it runs again on each host that
 * connects and in every housekeeping round. A secret's value is handed to libvirt and to nothing
 * else: never into an error message or a log line.
 */
#include "hv_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../util/log.h"
#include "../util/strutil.h"

static void
hv_secret_freep(virSecretPtr *p)
{
    if (*p)
        virSecretFree(*p);
}
#define _cleanup_secret_ _cleanup_(hv_secret_freep)

/* 1 and *ret when found, 0 when absent, -1 with *err. */
static int
hv_pool_find(HvConn *c, const char *name, virStoragePoolPtr *ret, NbError **err)
{
    virStoragePoolPtr p = virStoragePoolLookupByName(c->conn, name);
    if (!p) {
        if (hv_last_error_code() == VIR_ERR_NO_STORAGE_POOL)
            return 0;
        return hv_error(err, "looking up storage pool '%s'", name);
    }
    *ret = p;
    return 1;
}

static int
hv_pool_fill_state(virStoragePoolPtr p, const char *name, HvPoolState *ret, NbError **err)
{
    virStoragePoolInfo info;
    if (virStoragePoolGetInfo(p, &info) < 0)
        return hv_error(err, "reading the state of storage pool '%s'", name);
    ret->defined = true;
    ret->active = info.state == VIR_STORAGE_POOL_RUNNING;
    ret->capacity = ret->active ? (int64_t)info.capacity : -1;
    ret->allocation = ret->active ? (int64_t)info.allocation : -1;
    return 0;
}

int
hv_pool_state(HvConn *c, const char *name, HvPoolState *ret, NbError **err)
{
    *ret = (HvPoolState){.capacity = -1, .allocation = -1};
    _cleanup_pool_ virStoragePoolPtr p = NULL;
    int r = hv_pool_find(c, name, &p, err);
    if (r <= 0)
        return r;
    return hv_pool_fill_state(p, name, ret, err);
}

/* The definition libvirt keeps for the pool's next start (the live one on drivers that do not
 * know the flag: libvirt's test driver). */
static char *
hv_pool_inactive_xml(virStoragePoolPtr p)
{
    char *xml = virStoragePoolGetXMLDesc(p, VIR_STORAGE_XML_INACTIVE);
    if (!xml && hv_last_error_code() == VIR_ERR_INVALID_ARG)
        xml = virStoragePoolGetXMLDesc(p, 0);
    return xml;
}

/* xml with its root element's <uuid> set to uuid: any <uuid> child it had is dropped, the new one
 * goes right after the root's start tag (libvirt reads children in any order). Our own
 * documents only: the root's start tag has no '>' inside its attribute values. */
static char *
hv_xml_with_uuid(const char *xml, const char *uuid)
{
    const char *gt = strchr(xml, '>');
    if (!gt || gt[-1] == '/')
        return NULL;
    const char *old = strstr(gt, "<uuid>");
    const char *old_end = old ? strstr(old, "</uuid>") : NULL;
    if (old && !old_end)
        return NULL;
    size_t head = (size_t)(gt + 1 - xml);
    if (!old)
        return str_printf("%.*s<uuid>%s</uuid>%s", (int)head, xml, uuid, gt + 1);
    old_end += strlen("</uuid>");
    return str_printf("%.*s<uuid>%s</uuid>%.*s%s", (int)head, xml, uuid, (int)(old - gt - 1),
                      gt + 1, old_end);
}

/* Drops the <capacity>, <allocation>, <available> and <permissions> elements, in place: libvirt
 * writes into an active pool's definition the figures of its last refresh and the directory's
 * mode and owner as it found them, and zeros and nothing into one just defined, which says
 * nothing about whether the definitions differ. */
static void
hv_pool_xml_strip_figures(char *xml)
{
    static const char *const tags[] = {"capacity", "allocation", "available", "permissions"};
    for (size_t i = 0; i < ELEMENTSOF(tags); i++) {
        char open[32], close[32];
        snprintf(open, sizeof(open), "<%s", tags[i]);
        snprintf(close, sizeof(close), "</%s>", tags[i]);
        for (char *at = strstr(xml, open); at; at = strstr(at, open)) {
            char after = at[strlen(open)];
            char *end = after == '>' || after == ' ' ? strstr(at, close) : NULL;
            if (!end) {
                at += strlen(open);
                continue;
            }
            end += strlen(close);
            memmove(at, end, strlen(end) + 1);
        }
    }
    /* And the indentation between elements, which the dropped ones leave behind. */
    char *w = xml;
    for (const char *r = xml; *r;) {
        if (*r == '>') {
            const char *n = r + 1;
            while (*n == ' ' || *n == '\n' || *n == '\t')
                n++;
            if (*n == '<' || !*n) {
                *w++ = *r;
                r = n;
                continue;
            }
        }
        *w++ = *r++;
    }
    *w = '\0';
}

/* Defines the pool anew, or finds it defined by a concurrent caller. */
static int
hv_pool_define_new(HvConn *c, const char *name, const char *xml, const char *uuid,
                   virStoragePoolPtr *ret, NbError **err)
{
    _cleanup_free_ char *doc = uuid ? hv_xml_with_uuid(xml, uuid) : strdup(xml);
    if (!doc)
        return nb_error_set(err, NB_ERR_INTERNAL, "cannot write the XML of pool '%s'", name);
    virStoragePoolPtr p = virStoragePoolDefineXML(c->conn, doc, 0);
    if (!p) {
        _cleanup_error_ NbError *define_err = NULL;
        hv_error(&define_err, "defining storage pool '%s'", name);
        if (hv_pool_find(c, name, ret, NULL) == 1)
            return 0;
        return nb_error_propagate(err, TAKE_PTR(define_err));
    }
    log_info("defined storage pool '%s'", name);
    *ret = p;
    return 0;
}

/* Redefines a pool that exists under its own libvirt UUID. 1 when libvirt's definition changed
 * (an active pool must then be restarted to use it), 0 when it is the same. */
static int
hv_pool_redefine(HvConn *c, virStoragePoolPtr p, const char *name, const char *xml, NbError **err)
{
    char uuid[VIR_UUID_STRING_BUFLEN];
    if (virStoragePoolGetUUIDString(p, uuid) < 0)
        return hv_error(err, "reading the UUID of storage pool '%s'", name);
    _cleanup_free_ char *before = hv_pool_inactive_xml(p);
    if (!before)
        return hv_error(err, "reading the definition of storage pool '%s'", name);
    _cleanup_free_ char *doc = hv_xml_with_uuid(xml, uuid);
    if (!doc)
        return nb_error_set(err, NB_ERR_INTERNAL, "cannot write the XML of pool '%s'", name);
    /* libvirt writes both definitions the same way, so comparing its text of each is comparing
     * the definitions, without a parser of our own for every pool type. */
    _cleanup_pool_ virStoragePoolPtr again = virStoragePoolDefineXML(c->conn, doc, 0);
    if (!again)
        return hv_error(err, "redefining storage pool '%s'", name);
    _cleanup_free_ char *after = hv_pool_inactive_xml(again);
    if (!after)
        return hv_error(err, "reading the definition of storage pool '%s'", name);
    hv_pool_xml_strip_figures(before);
    hv_pool_xml_strip_figures(after);
    if (streq(before, after))
        return 0;
    log_info("storage pool '%s': its definition differed from the store's; redefined", name);
    return 1;
}

int
hv_pool_apply(HvConn *c, const char *name, const char *xml, const char *uuid, bool build,
              HvPoolState *ret, NbError **err)
{
    *ret = (HvPoolState){.capacity = -1, .allocation = -1};
    _cleanup_pool_ virStoragePoolPtr p = NULL;
    int r = hv_pool_find(c, name, &p, err);
    if (r < 0)
        return -1;
    int active = 0;
    if (r == 0) {
        if (hv_pool_define_new(c, name, xml, uuid, &p, err) < 0)
            return -1;
    } else {
        int changed = hv_pool_redefine(c, p, name, xml, err);
        if (changed < 0)
            return -1;
        /* A pool keeps running on its old definition until it is restarted; guests using its
         * volumes do not notice (their disks are files, RBD images or LUNs opened by QEMU). */
        if (changed && virStoragePoolIsActive(p) == 1 && virStoragePoolDestroy(p) < 0)
            return hv_error(err, "stopping storage pool '%s' to apply its new definition", name);
    }
    ret->defined = true;

    int autostart = 0;
    if (virStoragePoolGetAutostart(p, &autostart) < 0)
        return hv_error(err, "reading the autostart flag of storage pool '%s'", name);
    if (!autostart && virStoragePoolSetAutostart(p, 1) < 0)
        return hv_error(err, "setting storage pool '%s' to autostart", name);

    active = virStoragePoolIsActive(p);
    if (active < 0)
        return hv_error(err, "checking whether storage pool '%s' is active", name);
    if (!active) {
        /* dir and netfs: mkdir -p of the directory, harmless when it is there. Never for a
         * volume group (that would be vgcreate) nor for network pools (nothing to build). */
        if (build && virStoragePoolBuild(p, 0) < 0)
            return hv_error(err, "building storage pool '%s'", name);
        if (virStoragePoolCreate(p, 0) < 0 &&
            (hv_last_error_code() != VIR_ERR_OPERATION_INVALID || virStoragePoolIsActive(p) != 1))
            return hv_error(err, "starting storage pool '%s'", name);
    }
    return hv_pool_fill_state(p, name, ret, err);
}

int
hv_pool_remove(HvConn *c, const char *name, NbError **err)
{
    _cleanup_pool_ virStoragePoolPtr p = NULL;
    int r = hv_pool_find(c, name, &p, err);
    if (r <= 0)
        return r;
    /* Destroy stops the pool (an NFS export is unmounted, an iSCSI session closed); its data
     * stay where they are: a pool is never deleted, only forgotten. */
    if (virStoragePoolIsActive(p) == 1 && virStoragePoolDestroy(p) < 0 &&
        virStoragePoolIsActive(p) == 1)
        return hv_error(err, "stopping storage pool '%s'", name);
    if (virStoragePoolUndefine(p) < 0 && hv_last_error_code() != VIR_ERR_NO_STORAGE_POOL)
        return hv_error(err, "undefining storage pool '%s'", name);
    log_info("removed storage pool '%s' (its data stay)", name);
    return 0;
}

int
hv_pool_list_prefixed(HvConn *c, const char *prefix, HvPoolEntry **ret, size_t *ret_n,
                      NbError **err)
{
    virStoragePoolPtr *pools = NULL;
    int n = virConnectListAllStoragePools(c->conn, &pools, 0);
    if (n < 0)
        return hv_error(err, "listing storage pools");
    HvPoolEntry *out = calloc(n > 0 ? (size_t)n : 1, sizeof(*out));
    size_t k = 0;
    for (int i = 0; i < n; i++) {
        const char *name = virStoragePoolGetName(pools[i]);
        if (out && name && str_startswith(name, prefix) && strlen(name) < sizeof(out[k].name) &&
            virStoragePoolGetUUIDString(pools[i], out[k].uuid) == 0) {
            snprintf(out[k].name, sizeof(out[k].name), "%s", name);
            k++;
        }
        virStoragePoolFree(pools[i]);
    }
    free(pools);
    if (!out)
        return nb_error_set(err, NB_ERR_INTERNAL, "out of memory");
    *ret = out;
    *ret_n = k;
    return 0;
}

/* ---- secrets ---- */

int
hv_pool_secret_set(HvConn *c, const char *uuid, const char *xml, const unsigned char *value,
                   size_t len, NbError **err)
{
    _cleanup_secret_ virSecretPtr s = virSecretLookupByUUIDString(c->conn, uuid);
    if (!s && hv_last_error_code() != VIR_ERR_NO_SECRET)
        return hv_error(err, "looking up secret %s", uuid);
    if (!s) {
        s = virSecretDefineXML(c->conn, xml, 0);
        if (!s)
            return hv_error(err, "defining secret %s", uuid);
        log_info("defined secret %s", uuid);
    }
    /* Set every time: a private secret cannot be read back to compare, and an operator may have
     * changed it by hand. */
    if (virSecretSetValue(s, value, len, 0) < 0)
        return hv_error(err, "setting the value of secret %s", uuid);
    return 0;
}

int
hv_pool_secret_usage(HvConn *c, const char *uuid, char *usage, size_t len, NbError **err)
{
    _cleanup_secret_ virSecretPtr s = virSecretLookupByUUIDString(c->conn, uuid);
    if (!s) {
        if (hv_last_error_code() == VIR_ERR_NO_SECRET)
            return 0;
        return hv_error(err, "looking up secret %s", uuid);
    }
    const char *u = virSecretGetUsageID(s);
    snprintf(usage, len, "%s", u ? u : "");
    return 1;
}

int
hv_pool_secret_remove(HvConn *c, const char *uuid, NbError **err)
{
    _cleanup_secret_ virSecretPtr s = virSecretLookupByUUIDString(c->conn, uuid);
    if (!s) {
        if (hv_last_error_code() == VIR_ERR_NO_SECRET)
            return 0;
        return hv_error(err, "looking up secret %s", uuid);
    }
    if (virSecretUndefine(s) < 0 && hv_last_error_code() != VIR_ERR_NO_SECRET)
        return hv_error(err, "undefining secret %s", uuid);
    log_info("removed secret %s", uuid);
    return 0;
}
