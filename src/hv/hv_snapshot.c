/*
 * VM snapshots as libvirt internal snapshots (qcow2): the snapshot and its metadata live with
 * the domain on its host. Each call is idempotent: a snapshot that exists counts as made, one
 * that does not as deleted.
 */
#include <stdlib.h>
#include <string.h>

#include "../util/log.h"
#include "../util/strutil.h"
#include "../util/xml_writer.h"
#include "hv_internal.h"

static void
hv_snap_freep(virDomainSnapshotPtr *p)
{
    if (*p)
        virDomainSnapshotFree(*p);
}
#define _cleanup_snap_ _cleanup_(hv_snap_freep)

/* 1 and *ret when the domain has it, 0 when not, -1. */
static int
hv_snap_lookup(virDomainPtr dom, const char *domain, const char *name, virDomainSnapshotPtr *ret,
               NbError **err)
{
    *ret = virDomainSnapshotLookupByName(dom, name, 0);
    if (*ret)
        return 1;
    if (hv_last_error_code() == VIR_ERR_NO_DOMAIN_SNAPSHOT)
        return 0;
    return hv_error(err, "looking up snapshot '%s' of domain '%s'", name, domain);
}

/* The domain and its snapshot, both required: 0, or -1 with the error. */
static int
hv_snap_get(HvConn *c, const char *domain, const char *name, virDomainPtr *dom,
            virDomainSnapshotPtr *snap, NbError **err)
{
    if (hv_domain_get(c, domain, dom, err) < 0)
        return -1;
    int r = hv_snap_lookup(*dom, domain, name, snap, err);
    if (r == 0)
        return nb_error_set(err, NB_ERR_HYPERVISOR, "domain '%s' has no snapshot '%s'", domain,
                            name);
    return r < 0 ? -1 : 0;
}

int
hv_snapshot_exists(HvConn *c, const char *domain, const char *name, NbError **err)
{
    _cleanup_domain_ virDomainPtr dom = NULL;
    _cleanup_snap_ virDomainSnapshotPtr snap = NULL;
    int r = hv_domain_lookup(c, domain, &dom, err);
    if (r <= 0)
        return r;
    return hv_snap_lookup(dom, domain, name, &snap, err);
}

/* The targets of the domain's read-only disks (the seed CD-ROM), as <disk snapshot='no'/>
 * entries: a domain defined before its seed was marked so in its definition cannot have an
 * internal snapshot of a raw image. */
static void
hv_snap_readonly_disks(const char *xml, XmlWriter *w)
{
    bool opened = false;
    for (const char *p = xml; (p = strstr(p, "<disk ")) != NULL;) {
        const char *end = strstr(p, "</disk>");
        if (!end)
            break;
        const char *ro = strstr(p, "<readonly/>");
        const char *t = strstr(p, "<target dev='");
        if (ro && ro < end && t && t < end) {
            t += strlen("<target dev='");
            const char *q = strchr(t, '\'');
            if (q && q - t < 32) {
                char dev[32];
                snprintf(dev, sizeof(dev), "%.*s", (int)(q - t), t);
                if (!opened)
                    xml_writer_open(w, "disks", NULL);
                opened = true;
                xml_writer_empty(w, "disk", "name", dev, "snapshot", "no", NULL);
            }
        }
        p = end;
    }
    if (opened)
        xml_writer_close(w);
}

int
hv_snapshot_create(HvConn *c, const char *domain, const char *name, const char *description,
                   NbError **err)
{
    _cleanup_domain_ virDomainPtr dom = NULL;
    _cleanup_snap_ virDomainSnapshotPtr snap = NULL;
    if (hv_domain_get(c, domain, &dom, err) < 0)
        return -1;
    int r = hv_snap_lookup(dom, domain, name, &snap, err);
    if (r != 0)
        return r < 0 ? -1 : 0;
    _cleanup_free_ char *dxml = virDomainGetXMLDesc(dom, 0);
    if (!dxml)
        return hv_error(err, "reading the definition of domain '%s'", domain);
    XmlWriter *w = xml_writer_new();
    if (!w)
        return nb_error_set(err, NB_ERR_INTERNAL, "out of memory");
    xml_writer_open(w, "domainsnapshot", NULL);
    xml_writer_text_element(w, "name", name, NULL);
    if (description && *description)
        xml_writer_text_element(w, "description", description, NULL);
    if (!hv_conn_is_simulated(c))
        hv_snap_readonly_disks(dxml, w);
    xml_writer_close(w);
    const char *xml = xml_writer_result(w);
    if (!xml) {
        xml_writer_free(w);
        return nb_error_set(err, NB_ERR_INTERNAL, "out of memory");
    }
    /* An active domain: a full system checkpoint (QEMU's savevm; the guest is paused while its
     * memory is written), the only internal snapshot libvirt takes of a running qcow2 domain.
     * An inactive one: qemu-img snapshot of each disk. */
    snap = virDomainSnapshotCreateXML(dom, xml, 0);
    xml_writer_free(w);
    if (snap)
        return 0;
    _cleanup_error_ NbError *e = NULL;
    hv_error(&e, "creating snapshot '%s' of domain '%s'", name, domain);
    /* Made meanwhile (a first attempt's libvirt job that outlived a nimbusd crash). */
    if (hv_snap_lookup(dom, domain, name, &snap, NULL) == 1)
        return 0;
    return nb_error_propagate(err, TAKE_PTR(e));
}

static int
hv_snap_revert(virDomainSnapshotPtr snap, const char *domain, const char *name, unsigned flags,
               NbError **err)
{
    if (virDomainRevertToSnapshot(snap, flags) == 0)
        return 0;
    if (hv_last_error_code() == VIR_ERR_SNAPSHOT_REVERT_RISKY &&
        virDomainRevertToSnapshot(snap, flags | VIR_DOMAIN_SNAPSHOT_REVERT_FORCE) == 0)
        return 0;
    return hv_error(err, "reverting domain '%s' to snapshot '%s'", domain, name);
}

int
hv_snapshot_revert(HvConn *c, const char *domain, const char *name, bool with_memory, NbError **err)
{
    _cleanup_domain_ virDomainPtr dom = NULL;
    _cleanup_snap_ virDomainSnapshotPtr snap = NULL;
    if (hv_snap_get(c, domain, name, &dom, &snap, err) < 0)
        return -1;
    if (with_memory)
        return hv_snap_revert(snap, domain, name, 0, err);
    int active = virDomainIsActive(dom);
    if (active < 0)
        return hv_error(err, "checking whether domain '%s' is active", domain);
    /* The disks only: reverted with QEMU paused (a checkpoint's memory is loaded but never
     * runs), then the guest starts again from the disks if it was running. */
    if (hv_snap_revert(snap, domain, name, VIR_DOMAIN_SNAPSHOT_REVERT_PAUSED, err) < 0)
        return -1;
    int now = virDomainIsActive(dom);
    if (now < 0)
        return hv_error(err, "checking whether domain '%s' is active", domain);
    if (now && virDomainDestroy(dom) < 0)
        return hv_error(err, "stopping domain '%s' after its revert", domain);
    if (active && virDomainCreate(dom) < 0)
        return hv_error(err, "starting domain '%s' after its revert", domain);
    return 0;
}

int
hv_snapshot_delete(HvConn *c, const char *domain, const char *name, NbError **err)
{
    _cleanup_domain_ virDomainPtr dom = NULL;
    _cleanup_snap_ virDomainSnapshotPtr snap = NULL;
    int r = hv_domain_lookup(c, domain, &dom, err);
    if (r <= 0)
        return r;
    r = hv_snap_lookup(dom, domain, name, &snap, err);
    if (r <= 0)
        return r;
    if (virDomainSnapshotDelete(snap, 0) == 0)
        return 0;
    if (hv_last_error_code() == VIR_ERR_NO_DOMAIN_SNAPSHOT)
        return 0;
    return hv_error(err, "deleting snapshot '%s' of domain '%s'", name, domain);
}

int
hv_snapshot_delete_all(HvConn *c, const char *domain, NbError **err)
{
    _cleanup_domain_ virDomainPtr dom = NULL;
    int r = hv_domain_lookup(c, domain, &dom, err);
    if (r <= 0)
        return r;
    virDomainSnapshotPtr *snaps = NULL;
    int n = virDomainListAllSnapshots(dom, &snaps, 0);
    if (n < 0)
        return hv_error(err, "listing the snapshots of domain '%s'", domain);
    int rc = 0;
    for (int i = 0; i < n; i++) {
        const char *name = virDomainSnapshotGetName(snaps[i]);
        if (rc == 0 && virDomainSnapshotDelete(snaps[i], 0) < 0 &&
            hv_last_error_code() != VIR_ERR_NO_DOMAIN_SNAPSHOT)
            rc = hv_error(err, "deleting snapshot '%s' of domain '%s'", name ? name : "?", domain);
        virDomainSnapshotFree(snaps[i]);
    }
    free(snaps);
    return rc;
}

static int
hv_snap_strcmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* xml without the backing chains of its disks (<backingStore type=...>...</backingStore>): a
 * live definition shows them, an inactive one does not. Every source of a chain comes before
 * its first closing tag. NULL when out of memory. */
static char *
hv_snap_strip_backing(const char *xml)
{
    char *out = strdup(xml);
    if (!out)
        return NULL;
    char *w = out;
    const char *r = xml;
    for (;;) {
        const char *b = strstr(r, "<backingStore ");
        const char *e = b ? strstr(b, "</backingStore>") : NULL;
        if (!b || !e)
            break;
        memcpy(w, r, (size_t)(b - r));
        w += b - r;
        r = e + strlen("</backingStore>");
    }
    memmove(w, r, strlen(r) + 1);
    return out;
}

/* The disk sources and MAC addresses in a definition, sorted, one string each. */
static int
hv_snap_devices(const char *full, char ***ret, size_t *ret_n)
{
    _cleanup_free_ char *xml = hv_snap_strip_backing(full);
    if (!xml)
        return -1;
    static const char *const keys[] = {"<source file='", "<source dev='", "<source name='",
                                       "<mac address='"};
    char **v = NULL;
    size_t n = 0;
    for (size_t k = 0; k < ELEMENTSOF(keys); k++) {
        for (const char *p = xml; (p = strstr(p, keys[k])) != NULL;) {
            p += strlen(keys[k]);
            const char *q = strchr(p, '\'');
            if (!q)
                break;
            char **more = realloc(v, (n + 1) * sizeof(*v));
            char *s = more ? str_printf("%zu:%.*s", k, (int)(q - p), p) : NULL;
            if (more)
                v = more;
            if (!s) {
                for (size_t i = 0; i < n; i++)
                    free(v[i]);
                free(v);
                return -1;
            }
            v[n++] = s;
            p = q;
        }
    }
    if (n)
        qsort(v, n, sizeof(*v), hv_snap_strcmp);
    *ret = v;
    *ret_n = n;
    return 0;
}

static void
hv_snap_strv_free(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

int
hv_snapshot_devices_match(HvConn *c, const char *domain, const char *name, NbError **err)
{
    _cleanup_domain_ virDomainPtr dom = NULL;
    _cleanup_snap_ virDomainSnapshotPtr snap = NULL;
    if (hv_snap_get(c, domain, name, &dom, &snap, err) < 0)
        return -1;
    _cleanup_free_ char *sxml = virDomainSnapshotGetXMLDesc(snap, 0);
    if (!sxml)
        return hv_error(err, "reading snapshot '%s' of domain '%s'", name, domain);
    _cleanup_free_ char *dxml = virDomainGetXMLDesc(dom, VIR_DOMAIN_XML_INACTIVE);
    if (!dxml)
        return hv_error(err, "reading the definition of domain '%s'", domain);
    /* The snapshot's own <disks> list names targets only; the definition kept with it has the
     * sources: <inactiveDomain> (a running domain's persistent definition, what a revert
     * defines again), else <domain>. */
    char *sdom = strstr(sxml, "<inactiveDomain");
    const char *end_tag = "</inactiveDomain>";
    if (!sdom) {
        sdom = strstr(sxml, "<domain ");
        end_tag = "</domain>";
    }
    if (!sdom)
        return 1; /* no definition kept: nothing that a revert would bring back */
    char *send = strstr(sdom, end_tag);
    if (send)
        *send = '\0';
    char **a = NULL, **b = NULL;
    size_t na = 0, nb = 0;
    if (hv_snap_devices(sdom, &a, &na) < 0 || hv_snap_devices(dxml, &b, &nb) < 0) {
        hv_snap_strv_free(a, na);
        return nb_error_set(err, NB_ERR_INTERNAL, "out of memory");
    }
    bool same = na == nb;
    for (size_t i = 0; same && i < na; i++)
        same = streq(a[i], b[i]);
    hv_snap_strv_free(a, na);
    hv_snap_strv_free(b, nb);
    return same ? 1 : 0;
}
