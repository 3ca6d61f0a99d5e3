/*
 * Tenant networks on a host (libvirt networks with static DHCP entries) and NIC hot-plug.
 * Every call here is a step of a task that may run again after a crash, so each one checks what
 * is already there before changing it: libvirt itself happily adds a second NIC with the same
 * MAC, and refuses a second DHCP entry for one MAC or IP.
 */
#include "hv_internal.h"
#include "hv_sim.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../model/network.h"
#include "../util/log.h"
#include "../util/strutil.h"
#include "../util/xml_writer.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(XmlWriter, xml_writer_free)

#define HV_MAC_LEN 17 /* xx:xx:xx:xx:xx:xx */

/* The value of the first attribute written as `<prefix>'value'` (the XML writer's quoting), with
 * prefix e.g. " mac=" or "<mac address=". Our own documents only: values without quotes. */
static bool
xml_attr(const char *xml, const char *prefix, char *out, size_t len)
{
    const char *p = xml ? strstr(xml, prefix) : NULL;
    if (!p)
        return false;
    p += strlen(prefix);
    if (*p != '\'')
        return false;
    p++;
    const char *end = strchr(p, '\'');
    if (!end || (size_t)(end - p) >= len || end == p)
        return false;
    memcpy(out, p, (size_t)(end - p));
    out[end - p] = '\0';
    return true;
}

/* Whether a libvirt domain XML has an <interface> with this MAC (libvirt writes it lower
 * case; ours may not be). */
static bool
xml_has_mac(const char *xml, const char *mac)
{
    static const char tag[] = "<mac address='";
    for (const char *p = strstr(xml, tag); p; p = strstr(p + 1, tag)) {
        const char *v = p + strlen(tag);
        if (strncasecmp(v, mac, HV_MAC_LEN) == 0 && v[HV_MAC_LEN] == '\'')
            return true;
    }
    return false;
}

/* What a network's DHCP <host> entries say of a MAC and an IP: the entry of the MAC names that
 * IP (exact), another entry has the MAC, another has the IP. libvirt writes each entry as
 * <host mac='..' [name='..'] ip='..'/>, MAC first and in lower case. One pass of strstr over the
 * document, no copies: a network may hold thousands of entries. */
typedef struct HostEntries {
    bool exact, mac_elsewhere, ip_elsewhere;
} HostEntries;

static HostEntries
xml_host_entries(const char *xml, const char *mac, const char *ip)
{
    HostEntries e = {0};
    char mac_attr[HV_MAC_LEN + 16], ip_attr[NB_IPV4_STRLEN + 16];
    snprintf(mac_attr, sizeof(mac_attr), " mac='%s'", mac);
    for (char *c = mac_attr; *c; c++)
        *c = (char)tolower((unsigned char)*c);
    snprintf(ip_attr, sizeof(ip_attr), " ip='%s'", ip);
    const char *m = ip[0] || mac[0] ? strstr(xml, mac_attr) : NULL;
    const char *m_end = m ? strchr(m, '>') : NULL;
    for (const char *p = ip[0] ? strstr(xml, ip_attr) : NULL; p; p = strstr(p + 1, ip_attr)) {
        if (m && m_end && p > m && p < m_end)
            e.exact = true;
        else
            e.ip_elsewhere = true;
    }
    if (m && !e.exact)
        e.mac_elsewhere = true;
    if (m && !ip[0])
        e.exact = true; /* asked of the MAC alone */
    return e;
}

/* The network's XML as it runs (or as defined, when it does not run). */
static char *
hv_net_xml(virNetworkPtr net)
{
    return virNetworkGetXMLDesc(net, 0);
}

/* <host attr='value'/>: the partial entry virNetworkUpdate's DELETE matches on. */
static char *
host_match_xml(const char *attr, const char *value)
{
    _cleanup_(xml_writer_freep) XmlWriter *w = xml_writer_new();
    if (!w)
        return NULL;
    xml_writer_empty(w, "host", attr, value, NULL);
    const char *doc = xml_writer_result(w);
    return doc ? strdup(doc) : NULL;
}

/* ---- networks ---- */

/* 1 and *ret when found, 0 when absent, -1 with *err. */
static int
hv_net_lookup(HvConn *c, const char *name, virNetworkPtr *ret, NbError **err)
{
    virNetworkPtr net = virNetworkLookupByName(c->conn, name);
    if (!net) {
        if (hv_last_error_code() == VIR_ERR_NO_NETWORK)
            return 0;
        return hv_error(err, "looking up network '%s'", name);
    }
    *ret = net;
    return 1;
}

int
hv_net_ensure(HvConn *c, const char *name, const char *xml, NbError **err)
{
    _cleanup_network_ virNetworkPtr net = NULL;
    int r = hv_net_lookup(c, name, &net, err);
    if (r < 0)
        return -1;
    if (r == 0) {
        net = virNetworkDefineXML(c->conn, xml);
        if (!net) {
            /* A concurrent task may have defined it first: that one is as good as ours. */
            _cleanup_error_ NbError *define_err = NULL;
            hv_error(&define_err, "defining network '%s'", name);
            if (hv_net_lookup(c, name, &net, NULL) != 1)
                return nb_error_propagate(err, TAKE_PTR(define_err));
        } else {
            log_info("defined network '%s'", name);
        }
    }
    return hv_network_ensure_active(c, name, err);
}

int
hv_net_remove(HvConn *c, const char *name, NbError **err)
{
    _cleanup_network_ virNetworkPtr net = NULL;
    int r = hv_net_lookup(c, name, &net, err);
    if (r <= 0)
        return r;
    int active = virNetworkIsActive(net);
    if (active < 0)
        return hv_error(err, "checking whether network '%s' is active", name);
    if (active && virNetworkDestroy(net) < 0) {
        /* Stopped in between is fine; the error is copied before asking. */
        _cleanup_error_ NbError *stop_err = NULL;
        bool invalid = hv_last_error_code() == VIR_ERR_OPERATION_INVALID;
        hv_error(&stop_err, "stopping network '%s'", name);
        if (!invalid || virNetworkIsActive(net) != 0)
            return nb_error_propagate(err, TAKE_PTR(stop_err));
    }
    int persistent = virNetworkIsPersistent(net);
    if (persistent < 0) {
        /* A transient network vanishes once stopped. */
        if (hv_last_error_code() == VIR_ERR_NO_NETWORK)
            return 0;
        return hv_error(err, "checking whether network '%s' is persistent", name);
    }
    if (persistent && virNetworkUndefine(net) < 0) {
        if (hv_last_error_code() != VIR_ERR_NO_NETWORK)
            return hv_error(err, "undefining network '%s'", name);
    }
    log_info("removed network '%s'", name);
    return 0;
}

/* The running network and its definition, whichever of them exist. */
static int
hv_net_update_flags(virNetworkPtr net, const char *name, unsigned *ret, NbError **err)
{
    int active = virNetworkIsActive(net);
    if (active < 0)
        return hv_error(err, "checking whether network '%s' is active", name);
    int persistent = virNetworkIsPersistent(net);
    if (persistent < 0)
        return hv_error(err, "checking whether network '%s' is persistent", name);
    *ret = (active ? VIR_NETWORK_UPDATE_AFFECT_LIVE : 0u) |
           (persistent ? VIR_NETWORK_UPDATE_AFFECT_CONFIG : 0u);
    return 0;
}

/* Deletes the DHCP host entry matching attr='value'. libvirt answers OPERATION_INVALID when no
 * entry matches (or the network has no DHCP at all): then there is nothing to delete. */
static int
hv_net_dhcp_delete(virNetworkPtr net, const char *name, unsigned flags, const char *attr,
                   const char *value, NbError **err)
{
    _cleanup_free_ char *match = host_match_xml(attr, value);
    if (!match)
        return nb_error_set(err, NB_ERR_INTERNAL, "cannot write a DHCP host entry");
    if (virNetworkUpdate(net, VIR_NETWORK_UPDATE_COMMAND_DELETE, VIR_NETWORK_SECTION_IP_DHCP_HOST,
                         -1, match, flags) < 0) {
        if (hv_last_error_code() == VIR_ERR_OPERATION_INVALID)
            return 0;
        return hv_error(err, "deleting the DHCP entry of %s %s from network '%s'", attr, value,
                        name);
    }
    return 0;
}

int
hv_net_dhcp_host_set(HvConn *c, const char *name, const char *host_xml, NbError **err)
{
    char mac[HV_MAC_LEN + 1], ip[NB_IPV4_STRLEN];
    if (!xml_attr(host_xml, " mac=", mac, sizeof(mac)) ||
        !xml_attr(host_xml, " ip=", ip, sizeof(ip)))
        return nb_error_set(err, NB_ERR_INTERNAL, "malformed DHCP host entry");
    _cleanup_network_ virNetworkPtr net = NULL;
    int r = hv_net_lookup(c, name, &net, err);
    if (r == 0)
        return nb_error_set(err, NB_ERR_HYPERVISOR, "network '%s' is not defined", name);
    if (r < 0)
        return -1;
    unsigned flags = 0;
    if (hv_net_update_flags(net, name, &flags, err) < 0)
        return -1;
    /* Each live update costs libvirt a second or more (even one that matches nothing): look
     * first, and change only what differs. */
    _cleanup_free_ char *xml = hv_net_xml(net);
    if (!xml)
        return hv_error(err, "reading network '%s'", name);
    HostEntries e = xml_host_entries(xml, mac, ip);
    if (e.exact && !e.mac_elsewhere && !e.ip_elsewhere)
        return 0;
    if ((e.exact || e.mac_elsewhere) && hv_net_dhcp_delete(net, name, flags, "mac", mac, err) < 0)
        return -1;
    if (e.ip_elsewhere && hv_net_dhcp_delete(net, name, flags, "ip", ip, err) < 0)
        return -1;
    if (virNetworkUpdate(net, VIR_NETWORK_UPDATE_COMMAND_ADD_LAST, VIR_NETWORK_SECTION_IP_DHCP_HOST,
                         -1, host_xml, flags) < 0)
        return hv_error(err, "adding the DHCP entry of %s (%s) to network '%s'", mac, ip, name);
    return 0;
}

int
hv_net_dhcp_host_remove(HvConn *c, const char *name, const char *host_xml, NbError **err)
{
    char mac[HV_MAC_LEN + 1];
    if (!xml_attr(host_xml, " mac=", mac, sizeof(mac)))
        return nb_error_set(err, NB_ERR_INTERNAL, "malformed DHCP host entry");
    _cleanup_network_ virNetworkPtr net = NULL;
    int r = hv_net_lookup(c, name, &net, err);
    if (r <= 0)
        return r;
    unsigned flags = 0;
    if (hv_net_update_flags(net, name, &flags, err) < 0)
        return -1;
    _cleanup_free_ char *xml = hv_net_xml(net);
    if (!xml)
        return hv_error(err, "reading network '%s'", name);
    HostEntries e = xml_host_entries(xml, mac, "");
    if (!e.exact && !e.mac_elsewhere)
        return 0; /* no entry of that MAC: nothing to pay a live update for */
    return hv_net_dhcp_delete(net, name, flags, "mac", mac, err);
}

/* ---- NICs ---- */

/* Where a NIC of this MAC is: in the definition (*in_config) and in the running domain
 * (*in_live); *active and *persistent describe the domain. */
typedef struct NicPlace {
    bool active, persistent, in_config, in_live;
} NicPlace;

static int
hv_nic_place(virDomainPtr dom, const char *domain, const char *mac, NicPlace *ret, NbError **err)
{
    *ret = (NicPlace){0};
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
        ret->in_live = xml_has_mac(xml, mac);
    }
    if (persistent) {
        _cleanup_free_ char *xml = virDomainGetXMLDesc(dom, VIR_DOMAIN_XML_INACTIVE);
        if (!xml)
            return hv_error(err, "reading the definition of domain '%s'", domain);
        ret->in_config = xml_has_mac(xml, mac);
    }
    return 0;
}

/* The <interface>...</interface> around the MAC (libvirt's own formatting): its bounds, or
 * false. */
static bool
hv_nic_find(const char *xml, const void *mac, const char **start, const char **end)
{
    static const char tag[] = "<mac address='";
    const char *m = NULL;
    for (const char *p = strstr(xml, tag); p && !m; p = strstr(p + 1, tag))
        if (strncasecmp(p + strlen(tag), mac, HV_MAC_LEN) == 0)
            m = p;
    const char *s = NULL;
    for (const char *p = xml; m && (p = strstr(p, "<interface ")) && p < m; p++)
        s = p;
    const char *e = m ? strstr(m, "</interface>") : NULL;
    if (!s || !e)
        return false;
    *start = s;
    *end = e + strlen("</interface>");
    return true;
}

int
hv_domain_nic_attach(HvConn *c, const char *domain, const char *nic_xml, NbError **err)
{
    char mac[HV_MAC_LEN + 1];
    if (!xml_attr(nic_xml, "<mac address=", mac, sizeof(mac)))
        return nb_error_set(err, NB_ERR_INTERNAL, "malformed interface XML");
    _cleanup_domain_ virDomainPtr dom = NULL;
    int r = hv_domain_lookup(c, domain, &dom, err);
    if (r == 0)
        return nb_error_set(err, NB_ERR_HYPERVISOR, "domain '%s' not found", domain);
    if (r < 0)
        return -1;
    NicPlace at;
    if (hv_nic_place(dom, domain, mac, &at, err) < 0)
        return -1;
    if (hv_conn_is_simulated(c))
        return at.in_config ? 0 : hv_sim_device_change(c, dom, domain, nic_xml, NULL, NULL, err);

    unsigned flags = (at.persistent && !at.in_config ? VIR_DOMAIN_AFFECT_CONFIG : 0u) |
                     (at.active && !at.in_live ? VIR_DOMAIN_AFFECT_LIVE : 0u);
    if (flags == 0)
        return 0;
    if (virDomainAttachDeviceFlags(dom, nic_xml, flags) < 0)
        return hv_error(err, "attaching NIC %s to domain '%s'", mac, domain);
    log_info("attached NIC %s to domain '%s'", mac, domain);
    return 0;
}

int
hv_domain_nic_detach(HvConn *c, const char *domain, const char *nic_xml, NbError **err)
{
    char mac[HV_MAC_LEN + 1];
    if (!xml_attr(nic_xml, "<mac address=", mac, sizeof(mac)))
        return nb_error_set(err, NB_ERR_INTERNAL, "malformed interface XML");
    _cleanup_domain_ virDomainPtr dom = NULL;
    int r = hv_domain_lookup(c, domain, &dom, err);
    if (r <= 0)
        return r;
    NicPlace at;
    if (hv_nic_place(dom, domain, mac, &at, err) < 0)
        return -1;
    if (hv_conn_is_simulated(c))
        return at.in_config ? hv_sim_device_change(c, dom, domain, NULL, hv_nic_find, mac, err) : 0;

    unsigned flags =
        (at.in_config ? VIR_DOMAIN_AFFECT_CONFIG : 0u) | (at.in_live ? VIR_DOMAIN_AFFECT_LIVE : 0u);
    if (flags == 0)
        return 0;
    if (virDomainDetachDeviceFlags(dom, nic_xml, flags) < 0) {
        /* Gone in between (the domain stopped, a concurrent detach). */
        if (hv_last_error_code() == VIR_ERR_DEVICE_MISSING)
            return 0;
        int r_err = hv_error(err, "detaching NIC %s from domain '%s'", mac, domain);
        /* libvirt refuses to ask again while an earlier unplug still waits for the guest: the
         * definition has let go already, the running guest not yet. */
        NicPlace now;
        _cleanup_error_ NbError *e = NULL;
        if (at.in_live && hv_nic_place(dom, domain, mac, &now, &e) == 0 && !now.in_config &&
            now.in_live) {
            if (err)
                nb_error_free(TAKE_PTR(*err));
            return 1;
        }
        return r_err;
    }
    /* A live unplug is a request to the guest: libvirt waits a few seconds for it and returns
     * either way. Until the guest lets go, the NIC is still the guest's. */
    if (at.in_live) {
        NicPlace now;
        if (hv_nic_place(dom, domain, mac, &now, err) < 0)
            return -1;
        if (now.in_live) {
            log_info("NIC %s of domain '%s': unplug asked, the guest has not released it yet", mac,
                     domain);
            return 1;
        }
    }
    log_info("detached NIC %s from domain '%s'", mac, domain);
    return 0;
}
