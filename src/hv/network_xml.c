/*
 * Builds the libvirt network of a nat or isolated tenant network. DHCP is static only: a <dhcp>
 * without <range> makes libvirt start dnsmasq with "dhcp-range=<net>,static", so a guest gets
 * exactly the address IPAM gave its port and a stranger's MAC gets nothing.
 */
#include "network_xml.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/validate.h"
#include "util/cleanup.h"
#include "util/strutil.h"
#include "util/xml_writer.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(XmlWriter, xml_writer_free)

#define NET_NAME_MAX 63
#define DEFAULT_MTU 1500u

static bool
is_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static unsigned
hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return (unsigned)(c - '0');
    if (c >= 'a' && c <= 'f')
        return (unsigned)(c - 'a' + 10);
    return (unsigned)(c - 'A' + 10);
}

bool
network_xml_mac_is_valid(const char *mac)
{
    if (!mac || strlen(mac) != 17)
        return false;
    for (size_t i = 0; i < 17; i++) {
        if (i % 3 == 2 ? mac[i] != ':' : !is_hex(mac[i]))
            return false;
    }
    /* libvirt refuses a multicast address for a NIC. */
    return (hex_value(mac[1]) & 1u) == 0;
}

static void
ipv4_str(uint32_t ip, char out[NB_IPV4_STRLEN])
{
    snprintf(out, NB_IPV4_STRLEN, "%u.%u.%u.%u", (unsigned)(ip >> 24), (unsigned)(ip >> 16) & 255u,
             (unsigned)(ip >> 8) & 255u, (unsigned)ip & 255u);
}

static uint32_t
prefix_mask(unsigned prefix)
{
    return prefix == 0 ? 0 : ~(uint32_t)0 << (32 - prefix);
}

/* An address a guest or the bridge may hold in gateway's subnet. */
static bool
host_address_ok(uint32_t ip, uint32_t net, uint32_t mask)
{
    return (ip & mask) == net && ip != net && ip != (net | ~mask);
}

static int
cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static int
cmp_mac(const void *a, const void *b)
{
    return strcasecmp(*(const char *const *)a, *(const char *const *)b);
}

/* Duplicates would make dnsmasq hand one address to two guests, or one guest two leases. */
static bool
hosts_unique(const NetXmlHost *hosts, size_t n)
{
    if (n < 2)
        return true;
    _cleanup_free_ uint32_t *ips = calloc(n, sizeof(*ips));
    _cleanup_free_ const char **macs = calloc(n, sizeof(*macs));
    if (!ips || !macs)
        return false;
    for (size_t i = 0; i < n; i++) {
        ips[i] = hosts[i].ip;
        macs[i] = hosts[i].mac;
    }
    qsort(ips, n, sizeof(*ips), cmp_u32);
    qsort(macs, n, sizeof(*macs), cmp_mac);
    for (size_t i = 1; i < n; i++)
        if (ips[i] == ips[i - 1] || strcasecmp(macs[i], macs[i - 1]) == 0)
            return false;
    return true;
}

static bool
spec_valid(const NetXmlSpec *s)
{
    if (!s || !nb_token_is_valid(s->name, NET_NAME_MAX) || !network_ifname_is_valid(s->bridge))
        return false;
    if (s->type != NETWORK_TYPE_NAT && s->type != NETWORK_TYPE_ISOLATED)
        return false;
    if (s->prefix < NETWORK_PREFIX_MIN || s->prefix > NETWORK_PREFIX_MAX)
        return false;
    if (s->mtu != 0 && (s->mtu < NETWORK_MTU_MIN || s->mtu > NETWORK_MTU_MAX))
        return false;
    if ((s->n_dns && !s->dns) || (s->n_hosts && !s->hosts))
        return false;
    for (size_t i = 0; i < s->n_dns; i++)
        if (s->dns[i] == 0 || s->dns[i] == UINT32_MAX)
            return false;

    /* A NAT network routes through the host's address on the bridge; dnsmasq listens there. */
    if (s->gateway == 0)
        return s->type == NETWORK_TYPE_ISOLATED && !s->dhcp && s->n_hosts == 0;
    uint32_t mask = prefix_mask(s->prefix), net = s->gateway & mask;
    if (!host_address_ok(s->gateway, net, mask))
        return false;
    for (size_t i = 0; i < s->n_hosts; i++) {
        const NetXmlHost *h = &s->hosts[i];
        if (!network_xml_mac_is_valid(h->mac) || !host_address_ok(h->ip, net, mask) ||
            h->ip == s->gateway)
            return false;
    }
    return hosts_unique(s->hosts, s->n_hosts);
}

static void
write_host(XmlWriter *w, const NetXmlHost *h)
{
    char ip[NB_IPV4_STRLEN];
    ipv4_str(h->ip, ip);
    xml_writer_empty(w, "host", "mac", h->mac, "ip", ip, NULL);
}

char *
network_xml_build(const NetXmlSpec *spec)
{
    if (!spec_valid(spec))
        return NULL;

    _cleanup_(xml_writer_freep) XmlWriter *w = xml_writer_new();
    if (!w)
        return NULL;
    xml_writer_open(w, "network", NULL);
    xml_writer_text_element(w, "name", spec->name, NULL);
    if (spec->type == NETWORK_TYPE_NAT)
        xml_writer_empty(w, "forward", "mode", "nat", NULL);
    /* No STP delay: a guest's first DHCP request must not wait for the port to forward. */
    xml_writer_empty(w, "bridge", "name", spec->bridge, "stp", "on", "delay", "0", NULL);
    if (spec->mtu != 0 && spec->mtu != DEFAULT_MTU) {
        char mtu[16];
        snprintf(mtu, sizeof(mtu), "%u", spec->mtu);
        xml_writer_empty(w, "mtu", "size", mtu, NULL);
    }

    if (spec->gateway != 0) {
        if (spec->n_dns > 0) {
            xml_writer_open(w, "dns", NULL);
            for (size_t i = 0; i < spec->n_dns; i++) {
                char addr[NB_IPV4_STRLEN];
                ipv4_str(spec->dns[i], addr);
                xml_writer_empty(w, "forwarder", "addr", addr, NULL);
            }
            xml_writer_close(w);
        }

        char gw[NB_IPV4_STRLEN], prefix[8];
        ipv4_str(spec->gateway, gw);
        snprintf(prefix, sizeof(prefix), "%u", spec->prefix);
        if (spec->dhcp) {
            xml_writer_open(w, "ip", "address", gw, "prefix", prefix, NULL);
            /* Without hosts libvirt runs dnsmasq for DNS only, and restarts it with DHCP when
             * virNetworkUpdate adds the first host. */
            if (spec->n_hosts == 0) {
                xml_writer_empty(w, "dhcp", NULL);
            } else {
                xml_writer_open(w, "dhcp", NULL);
                for (size_t i = 0; i < spec->n_hosts; i++)
                    write_host(w, &spec->hosts[i]);
                xml_writer_close(w);
            }
            xml_writer_close(w);
        } else {
            xml_writer_empty(w, "ip", "address", gw, "prefix", prefix, NULL);
        }
    }
    xml_writer_close(w);

    const char *doc = xml_writer_result(w);
    return doc ? strdup(doc) : NULL;
}

char *
network_xml_dhcp_host(const NetXmlHost *h)
{
    if (!h || !network_xml_mac_is_valid(h->mac) || h->ip == 0 || h->ip == UINT32_MAX)
        return NULL;
    _cleanup_(xml_writer_freep) XmlWriter *w = xml_writer_new();
    if (!w)
        return NULL;
    write_host(w, h);
    const char *doc = xml_writer_result(w);
    if (!doc)
        return NULL;
    size_t len = strlen(doc);
    while (len > 0 && doc[len - 1] == '\n')
        len--;
    return strndup(doc, len);
}
