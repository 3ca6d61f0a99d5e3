#include "network.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "../util/strutil.h"
#include "bandwidth.h"
#include "enum_table.h"
#include "json_req.h"

static const char *const network_type_table[_NETWORK_TYPE_MAX] = {
    [NETWORK_TYPE_NAT] = "nat",     [NETWORK_TYPE_ISOLATED] = "isolated",
    [NETWORK_TYPE_VXLAN] = "vxlan", [NETWORK_TYPE_BRIDGED] = "bridged",
    [NETWORK_TYPE_VLAN] = "vlan",
};
DEFINE_STRING_TABLE(network_type, NetworkType, network_type_table)

unsigned
network_default_mtu(NetworkType t)
{
    return t == NETWORK_TYPE_VXLAN ? 1450 : 1500;
}

void
network_libvirt_name(const Network *n, char out[64])
{
    snprintf(out, 64, "nimbus-net-%s", n->id);
}

/* "<prefix><first 12 hex digits of id>": a UUID's first two groups are 8 + 4 hex digits. */
static void
network_id_ifname(const char *prefix, const char *id, char out[NETWORK_IFNAME_MAX + 1])
{
    size_t len = strlen(prefix), hex = 0;
    memcpy(out, prefix, len);
    for (const char *p = id; *p && hex < 12; p++) {
        if (*p == '-')
            continue;
        out[len + hex++] = *p;
    }
    out[len + hex] = '\0';
}

void
network_bridge_name(const char *network_id, char out[NETWORK_IFNAME_MAX + 1])
{
    network_id_ifname("nbr", network_id, out);
}

void
port_tap_name(const char *port_id, char out[NETWORK_IFNAME_MAX + 1])
{
    network_id_ifname("nbt", port_id, out);
}

/* A decimal number of 1..maxdigits digits without a leading zero (but "0" itself), ending at a
 * character of `end` ("" for the end of the string). Returns the character after it, or NULL. */
static const char *
parse_dec(const char *s, unsigned maxdigits, unsigned maxval, const char *end, unsigned *ret)
{
    unsigned v = 0, n = 0;
    while (s[n] >= '0' && s[n] <= '9') {
        if (n == maxdigits)
            return NULL;
        v = v * 10 + (unsigned)(s[n] - '0');
        n++;
    }
    if (n == 0 || (n > 1 && s[0] == '0') || v > maxval)
        return NULL;
    if (*end ? s[n] != *end : s[n] != '\0')
        return NULL;
    *ret = v;
    return s + n;
}

/* A dotted quad ending at `end` (a character, or "" for the end of the string). */
static const char *
ipv4_parse_until(const char *s, const char *end, uint32_t *ret)
{
    uint32_t ip = 0;
    for (int i = 0; i < 4; i++) {
        unsigned octet;
        s = parse_dec(s, 3, 255, i < 3 ? "." : end, &octet);
        if (!s)
            return NULL;
        ip = (ip << 8) | octet;
        if (i < 3)
            s++;
    }
    *ret = ip;
    return s;
}

int
ipv4_parse(const char *s, uint32_t *ret)
{
    uint32_t ip;
    if (!s || !ipv4_parse_until(s, "", &ip))
        return -EINVAL;
    *ret = ip;
    return 0;
}

void
ipv4_format(uint32_t ip, char out[NB_IPV4_STRLEN])
{
    snprintf(out, NB_IPV4_STRLEN, "%u.%u.%u.%u", (ip >> 24) & 0xff, (ip >> 16) & 0xff,
             (ip >> 8) & 0xff, ip & 0xff);
}

uint32_t
cidr_mask(unsigned prefix)
{
    if (prefix == 0)
        return 0;
    if (prefix >= 32)
        return UINT32_MAX;
    return UINT32_MAX << (32 - prefix);
}

int
cidr_parse(const char *s, uint32_t *ret_net, unsigned *ret_prefix)
{
    uint32_t net;
    unsigned prefix;
    const char *p = s ? ipv4_parse_until(s, "/", &net) : NULL;
    if (!p || !parse_dec(p + 1, 2, 32, "", &prefix))
        return -EINVAL;
    /* "10.0.0.1/24" names an address, not a network: refused rather than silently masked. */
    if (net & ~cidr_mask(prefix))
        return -EINVAL;
    *ret_net = net;
    *ret_prefix = prefix;
    return 0;
}

bool
cidr_contains(uint32_t net, unsigned prefix, uint32_t ip)
{
    uint32_t m = cidr_mask(prefix);
    return (ip & m) == (net & m);
}

bool
cidr_overlaps(uint32_t a, unsigned pa, uint32_t b, unsigned pb)
{
    /* Two prefixes overlap exactly when the shorter one contains the other. */
    uint32_t m = cidr_mask(pa < pb ? pa : pb);
    return (a & m) == (b & m);
}

bool
network_ip_is_assignable(const Network *n, uint32_t ip)
{
    uint32_t bcast = n->net | ~cidr_mask(n->prefix);
    if (!cidr_contains(n->net, n->prefix, ip) || ip == n->net || ip == bcast ||
        (n->gateway && ip == n->gateway))
        return false;
    for (size_t i = 0; i < n->n_dns && i < NETWORK_DNS_MAX; i++)
        if (n->dns[i] == ip)
            return false;
    return true;
}

bool
network_ifname_is_valid(const char *s)
{
    return nb_token_is_valid(s, NETWORK_IFNAME_MAX);
}

/* An optional boolean field: absent leaves *ret. */
static int
net_req_bool(json_t *body, const char *key, bool *ret, NbError **err)
{
    json_t *v = json_object_get(body, key);
    if (!v)
        return 0;
    if (!json_is_boolean(v))
        return nb_error_set(err, NB_ERR_INVALID_REQUEST, "field '%s' must be a boolean", key);
    *ret = json_is_true(v);
    return 0;
}

/* A field that only one type may have: present on another type, or absent on its own, is
 * refused with code. Returns the value (NULL when absent and not required). */
static int
net_req_type_field(json_t *body, const char *key, NetworkType owner, NetworkType t,
                   const char *code, json_t **ret, NbError **err)
{
    json_t *v = json_object_get(body, key);
    if (v && json_is_null(v))
        v = NULL;
    if (t != owner && v)
        return nb_error_set(err, code, "field '%s' is only for networks of type '%s'", key,
                            network_type_to_string(owner));
    /* A vxlan network's VNI may be left to the store (the lowest free one from 4096). */
    if (t == owner && !v && !streq(key, "vni"))
        return nb_error_set(err, code, "a network of type '%s' needs field '%s'",
                            network_type_to_string(owner), key);
    *ret = v;
    return 0;
}

static int
net_req_range(json_t *v, const char *key, json_int_t min, json_int_t max, const char *code,
              unsigned *ret, NbError **err)
{
    if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max)
        return nb_error_set(err, code, "field '%s' must be an integer from %lld to %lld", key,
                            (long long)min, (long long)max);
    *ret = (unsigned)json_integer_value(v);
    return 0;
}

static int
net_req_ifname(json_t *v, const char *key, char out[NETWORK_IFNAME_MAX + 1], NbError **err)
{
    const char *s = json_string_value(v);
    if (!s || strlen(s) != json_string_length(v) || !network_ifname_is_valid(s))
        return nb_error_set(err, NB_ERR_NETWORK_INVALID_IFNAME,
                            "field '%s' must be an interface name: a letter or digit, then up to "
                            "14 letters, digits, '_', '.' or '-'",
                            key);
    snprintf(out, NETWORK_IFNAME_MAX + 1, "%s", s);
    return 0;
}

static int
net_req_dns(json_t *body, Network *n, NbError **err)
{
    json_t *dns = json_object_get(body, "dns");
    if (!dns || json_is_null(dns))
        return 0;
    if (!json_is_array(dns) || json_array_size(dns) > NETWORK_DNS_MAX)
        return nb_error_set(err, NB_ERR_INVALID_REQUEST,
                            "field 'dns' must be an array of at most %d addresses",
                            NETWORK_DNS_MAX);
    size_t i;
    json_t *v;
    json_array_foreach (dns, i, v) {
        uint32_t ip;
        if (!json_is_string(v))
            return nb_error_set(err, NB_ERR_INVALID_REQUEST,
                                "field 'dns' must be an array of strings");
        if (ipv4_parse(json_string_value(v), &ip) < 0 || ip == 0 || ip == UINT32_MAX ||
            strlen(json_string_value(v)) != json_string_length(v))
            return nb_error_set(err, NB_ERR_IP_INVALID, "dns server '%.32s' is not an IPv4 address",
                                json_string_value(v));
        for (size_t k = 0; k < n->n_dns; k++)
            if (n->dns[k] == ip)
                return nb_error_set(err, NB_ERR_INVALID_REQUEST, "dns server '%.32s' is repeated",
                                    json_string_value(v));
        n->dns[n->n_dns++] = ip;
    }
    return 0;
}

static int
net_req_gateway(json_t *body, Network *n, NbError **err)
{
    json_t *gw = json_object_get(body, "gateway");
    uint32_t bcast = n->net | ~cidr_mask(n->prefix);
    if (!gw || json_is_null(gw)) {
        n->gateway = n->net + 1;
        return 0;
    }
    if (!json_is_string(gw))
        return nb_error_set(err, NB_ERR_INVALID_REQUEST, "field 'gateway' must be a string");
    const char *s = json_string_value(gw);
    if (streq(s, "none")) {
        /* A NAT network routes through its gateway, and dnsmasq serves DHCP from it. */
        if (n->type == NETWORK_TYPE_NAT || n->dhcp)
            return nb_error_set(err, NB_ERR_NETWORK_INVALID_GATEWAY, "a %s network needs a gateway",
                                n->type == NETWORK_TYPE_NAT ? "nat" : "DHCP");
        n->gateway = 0;
        return 0;
    }
    uint32_t ip;
    if (ipv4_parse(s, &ip) < 0 || strlen(s) != json_string_length(gw))
        return nb_error_set(err, NB_ERR_NETWORK_INVALID_GATEWAY,
                            "gateway '%.32s' is not an IPv4 address (or \"none\")", s);
    if (!cidr_contains(n->net, n->prefix, ip) || ip == n->net || ip == bcast)
        return nb_error_set(err, NB_ERR_NETWORK_INVALID_GATEWAY,
                            "gateway %s must be a host address inside the network", s);
    n->gateway = ip;
    return 0;
}

int
network_from_request(json_t *body, Network *ret, NbError **err)
{
    static const char *const fields[] = {"name", "type",   "cidr", "gateway", "dhcp",
                                         "dns",  "vni",    "vlan", "bridge",  "parent",
                                         "mtu",  "shared", NULL};
    Network n = {.dhcp = true};
    char type[64], cidr[256];
    if (json_req_check_fields(body, fields, err) < 0 ||
        json_req_name(body, "name", "network", n.name, err) < 0 ||
        json_req_string(body, "type", 0, type, sizeof(type), err) < 0 ||
        json_req_string(body, "cidr", 1, cidr, sizeof(cidr), err) < 0 ||
        net_req_bool(body, "dhcp", &n.dhcp, err) < 0 ||
        net_req_bool(body, "shared", &n.shared, err) < 0)
        return -1;
    n.type = type[0] ? network_type_from_string(type) : NETWORK_TYPE_NAT;
    if (n.type == _NETWORK_TYPE_INVALID)
        return nb_error_set(err, NB_ERR_NETWORK_INVALID_TYPE,
                            "type must be \"nat\", \"isolated\", \"vxlan\", \"bridged\" or "
                            "\"vlan\"");
    /* A vxlan network is a bare L2 segment across hosts: no DHCP unless asked for. */
    json_t *dhcp = json_object_get(body, "dhcp");
    /* Nimbus serves DHCP only where it makes the network's host side with libvirt. */
    if ((n.type == NETWORK_TYPE_VXLAN || n.type == NETWORK_TYPE_BRIDGED ||
         n.type == NETWORK_TYPE_VLAN) &&
        (!dhcp || json_is_null(dhcp)))
        n.dhcp = false;
    if (cidr_parse(cidr, &n.net, &n.prefix) < 0)
        return nb_error_set(err, NB_ERR_NETWORK_INVALID_CIDR,
                            "cidr '%s' is not a network a.b.c.d/N with its host bits zero", cidr);
    if (n.prefix < NETWORK_PREFIX_MIN || n.prefix > NETWORK_PREFIX_MAX)
        return nb_error_set(err, NB_ERR_NETWORK_INVALID_CIDR,
                            "cidr '%s': the prefix must be from /%d to /%d", cidr,
                            NETWORK_PREFIX_MIN, NETWORK_PREFIX_MAX);
    json_t *vni, *vlan, *bridge, *parent;
    if (net_req_gateway(body, &n, err) < 0 || net_req_dns(body, &n, err) < 0 ||
        net_req_type_field(body, "vni", NETWORK_TYPE_VXLAN, n.type, NB_ERR_NETWORK_INVALID_VNI,
                           &vni, err) < 0 ||
        net_req_type_field(body, "vlan", NETWORK_TYPE_VLAN, n.type, NB_ERR_NETWORK_INVALID_VLAN,
                           &vlan, err) < 0 ||
        net_req_type_field(body, "bridge", NETWORK_TYPE_BRIDGED, n.type,
                           NB_ERR_NETWORK_INVALID_IFNAME, &bridge, err) < 0 ||
        net_req_type_field(body, "parent", NETWORK_TYPE_VLAN, n.type, NB_ERR_NETWORK_INVALID_IFNAME,
                           &parent, err) < 0)
        return -1;
    if ((vni && net_req_range(vni, "vni", 1, NETWORK_VNI_MAX, NB_ERR_NETWORK_INVALID_VNI, &n.vni,
                              err) < 0) ||
        (vlan && net_req_range(vlan, "vlan", 1, NETWORK_VLAN_MAX, NB_ERR_NETWORK_INVALID_VLAN,
                               &n.vlan, err) < 0) ||
        (bridge && net_req_ifname(bridge, "bridge", n.bridge, err) < 0) ||
        (parent && net_req_ifname(parent, "parent", n.parent, err) < 0))
        return -1;
    json_t *mtu = json_object_get(body, "mtu");
    n.mtu = network_default_mtu(n.type);
    if (mtu && !json_is_null(mtu) &&
        net_req_range(mtu, "mtu", NETWORK_MTU_MIN, NETWORK_MTU_MAX, NB_ERR_NETWORK_INVALID_MTU,
                      &n.mtu, err) < 0)
        return -1;
    *ret = n;
    return 0;
}

json_t *
network_to_json(const Network *n)
{
    char cidr[NB_IPV4_STRLEN + 4], gw[NB_IPV4_STRLEN];
    ipv4_format(n->net, gw);
    snprintf(cidr, sizeof(cidr), "%s/%u", gw, n->prefix);
    ipv4_format(n->gateway, gw);
    json_t *dns = json_array();
    for (size_t i = 0; dns && i < n->n_dns && i < NETWORK_DNS_MAX; i++) {
        char ip[NB_IPV4_STRLEN];
        ipv4_format(n->dns[i], ip);
        json_array_append_new(dns, json_string(ip));
    }
    json_t *j =
        json_pack("{s:s, s:s, s:s, s:s, s:s, s:o, s:b, s:o, s:I, s:b, s:b, s:s}", "id", n->id,
                  "project", n->project, "name", n->name, "type", network_type_to_string(n->type),
                  "cidr", cidr, "gateway", n->gateway ? json_string(gw) : json_null(), "dhcp",
                  n->dhcp, "dns", dns, "mtu", (json_int_t)n->mtu, "shared", n->shared, "default",
                  n->is_default, "created_at", n->created_at);
    if (!j)
        return NULL;
    if (n->type == NETWORK_TYPE_VXLAN)
        json_object_set_new(j, "vni", json_integer(n->vni));
    if (n->type == NETWORK_TYPE_VLAN) {
        json_object_set_new(j, "vlan", json_integer(n->vlan));
        json_object_set_new(j, "parent", json_string(n->parent));
    }
    /* The host's bridge; derived from the id unless bridged (whether or not n->bridge was filled
     * in yet), so that a network reads the same before and after the store has it. */
    char bridge[NETWORK_IFNAME_MAX + 1] = "";
    if (n->type == NETWORK_TYPE_BRIDGED)
        snprintf(bridge, sizeof(bridge), "%s", n->bridge);
    else if (n->id[0])
        network_bridge_name(n->id, bridge);
    if (bridge[0])
        json_object_set_new(j, "bridge", json_string(bridge));
    return j;
}

json_t *
port_to_json(const Port *p)
{
    char ip[NB_IPV4_STRLEN];
    ipv4_format(p->ip, ip);
    return json_pack("{s:s, s:s, s:s, s:I, s:s, s:s, s:I, s:I, s:s}", "id", p->id, "network_id",
                     p->network_id, "vm_id", p->vm_id, "slot", (json_int_t)p->slot, "mac", p->mac,
                     "ip", ip, "net_in_mbit", bandwidth_kbit_to_mbit(p->net_in_kbit),
                     "net_out_mbit", bandwidth_kbit_to_mbit(p->net_out_kbit), "created_at",
                     p->created_at);
}

json_t *
dhcp_server_to_json(const DhcpServer *d)
{
    char ip[NB_IPV4_STRLEN];
    ipv4_format(d->ip, ip);
    json_t *j =
        json_pack("{s:s, s:s, s:n, s:s, s:s, s:s}", "id", d->id, "network_id", d->network_id,
                  "vm_id", "mac", d->mac, "ip", ip, "created_at", d->created_at);
    char owner[sizeof("dhcp:") + NB_NAME_MAX];
    snprintf(owner, sizeof(owner), "dhcp:%s", d->host);
    json_object_set_new(j, "owner", json_string(owner));
    return j;
}

int
nic_request_parse(json_t *j, NicRequest *ret, NbError **err)
{
    static const char *const fields[] = {"network", "ip", NULL};
    NicRequest r = {0};
    char net[256], ip[64];
    if (json_req_check_fields(j, fields, err) < 0 ||
        json_req_string(j, "network", 1, net, sizeof(net), err) < 0 ||
        json_req_string(j, "ip", 0, ip, sizeof(ip), err) < 0)
        return -1;
    if (!nb_name_is_valid(net) && !nb_uuid_is_valid(net))
        return nb_error_set(err, NB_ERR_INVALID_REQUEST,
                            "field 'network' must be a network's name or id");
    memcpy(r.network, net, strlen(net) + 1); /* a name or an id: it fits */
    if (json_object_get(j, "ip") && !json_is_null(json_object_get(j, "ip")) &&
        (ipv4_parse(ip, &r.ip) < 0 || r.ip == 0))
        return nb_error_set(err, NB_ERR_IP_INVALID, "ip '%.32s' is not an IPv4 address", ip);
    *ret = r;
    return 0;
}
