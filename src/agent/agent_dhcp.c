#include "agent_dhcp.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../util/cleanup.h"
#include "../util/error_codes.h"
#include "../util/strutil.h"

#define DHCP_LEASE_DEFAULT_S 86400u
#define DHCP_LEASE_MIN_S 120u
#define DHCP_LEASE_MAX_S (7u * 86400u)

bool
agent_dhcp_key_is_valid(const char *s)
{
    if (!s || strlen(s) != AGENT_DHCP_KEY_LEN)
        return false;
    for (const char *c = s; *c; c++)
        if (!((*c >= '0' && *c <= '9') || (*c >= 'a' && *c <= 'f')))
            return false;
    return true;
}

void
agent_dhcp_ifnames(const char *key, char host_side[AGENT_IFNAME_MAX + 1],
                   char ns_side[AGENT_IFNAME_MAX + 1])
{
    snprintf(host_side, AGENT_IFNAME_MAX + 1, "nbd%s", key);
    snprintf(ns_side, AGENT_IFNAME_MAX + 1, "nbe%s", key);
}

/* xx:xx:xx:xx:xx:xx, unicast, lower-cased into out. */
static bool
mac_parse(const char *s, char out[AGENT_MAC_STRLEN])
{
    if (!s || strlen(s) != 17)
        return false;
    for (size_t i = 0; i < 17; i++) {
        char c = (char)tolower((unsigned char)s[i]);
        if (i % 3 == 2 ? c != ':' : !isxdigit((unsigned char)c))
            return false;
        out[i] = c;
    }
    out[17] = '\0';
    unsigned first = (unsigned)strtoul(out, NULL, 16);
    return !(first & 1) && !streq(out, "00:00:00:00:00:00");
}

static int
check_fields(json_t *obj, const char *const *allowed, size_t n, const char *what, NbError **err)
{
    if (!json_is_object(obj))
        return nb_error_set(err, NB_ERR_INVALID_REQUEST, "%s must be a JSON object", what);
    const char *key;
    json_t *val;
    json_object_foreach (obj, key, val) {
        bool ok = false;
        for (size_t i = 0; i < n && !ok; i++)
            ok = streq(key, allowed[i]);
        if (!ok)
            return nb_error_set(err, NB_ERR_INVALID_REQUEST, "unknown field '%.64s' in %s", key,
                                what);
    }
    return 0;
}

static const char *
get_str(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    const char *s = json_string_value(v);
    return s && strlen(s) == json_string_length(v) ? s : NULL;
}

static int
get_ip(json_t *obj, const char *key, uint32_t *ret, NbError **err)
{
    const char *s = get_str(obj, key);
    if (!s || agent_ipv4_parse(s, ret) < 0 || !agent_ipv4_is_unicast(*ret))
        return nb_error_set(err, NB_ERR_IP_INVALID, "'%s' must be a unicast IPv4 address", key);
    return 0;
}

static int
get_uint(json_t *obj, const char *key, unsigned min, unsigned max, unsigned *ret, NbError **err)
{
    json_t *v = json_object_get(obj, key);
    if (!v)
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max)
        return nb_error_set(err, NB_ERR_INVALID_REQUEST, "'%s' must be an integer %u..%u", key, min,
                            max);
    *ret = (unsigned)json_integer_value(v);
    return 0;
}

static int
host_cmp(const void *a, const void *b)
{
    return strcmp(((const AgentDhcpHost *)a)->mac, ((const AgentDhcpHost *)b)->mac);
}

/* Any interface name, the agent's prefixes too: a bridged network's bridge is the operator's,
 * named as nimbusd let the admin name it (the same rule), and the kernel refuses a master that
 * is no bridge. */
static bool
dhcp_bridge_name_is_valid(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > AGENT_IFNAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        if (!alnum && (i == 0 || (c != '_' && c != '.' && c != '-')))
            return false;
    }
    return true;
}

static bool
in_subnet(uint32_t ip, uint32_t net, uint32_t mask)
{
    uint32_t bcast = net | ~mask;
    return (ip & mask) == net && ip != net && ip != bcast;
}

int
agent_dhcp_from_json(json_t *body, const char *key, AgentDhcp *ret, NbError **err)
{
    static const char *const fields[] = {"bridge", "mac", "address", "prefix", "router",
                                         "dns",    "mtu", "lease_s", "hosts"};
    static const char *const host_fields[] = {"mac", "ip"};
    AgentDhcp d = {.mtu = 1500, .lease_s = DHCP_LEASE_DEFAULT_S};
    if (!agent_dhcp_key_is_valid(key))
        return nb_error_set(err, NB_ERR_NETWORK_INVALID_IFNAME,
                            "a DHCP server's key is 12 lowercase hex digits");
    memcpy(d.key, key, sizeof(d.key));
    if (check_fields(body, fields, ELEMENTSOF(fields), "the body", err) < 0)
        return -1;
    const char *bridge = get_str(body, "bridge");
    if (!dhcp_bridge_name_is_valid(bridge))
        return nb_error_set(err, NB_ERR_NETWORK_INVALID_IFNAME,
                            "'bridge' must be an interface name");
    snprintf(d.bridge, sizeof(d.bridge), "%s", bridge);
    if (!mac_parse(get_str(body, "mac"), d.mac))
        return nb_error_set(err, NB_ERR_INVALID_REQUEST, "'mac' must be a unicast MAC address");
    if (get_ip(body, "address", &d.address, err) < 0)
        return -1;
    json_t *pj = json_object_get(body, "prefix");
    if (!json_is_integer(pj) || json_integer_value(pj) < 8 || json_integer_value(pj) > 30)
        return nb_error_set(err, NB_ERR_INVALID_REQUEST, "'prefix' must be an integer 8..30");
    d.prefix = (unsigned)json_integer_value(pj);
    uint32_t mask = ~0u << (32 - d.prefix), net = d.address & mask;
    if (!in_subnet(d.address, net, mask))
        return nb_error_set(err, NB_ERR_IP_INVALID,
                            "'address' is the network or broadcast address of its subnet");
    if (json_object_get(body, "router")) {
        if (get_ip(body, "router", &d.router, err) < 0)
            return -1;
        if (!in_subnet(d.router, net, mask) || d.router == d.address)
            return nb_error_set(err, NB_ERR_IP_INVALID,
                                "'router' must be another address of the server's subnet");
    }
    json_t *dns = json_object_get(body, "dns");
    if (dns && (!json_is_array(dns) || json_array_size(dns) > AGENT_DHCP_DNS_MAX))
        return nb_error_set(err, NB_ERR_INVALID_REQUEST, "'dns' must be an array of at most %d",
                            AGENT_DHCP_DNS_MAX);
    for (size_t i = 0; dns && i < json_array_size(dns); i++) {
        const char *s = json_string_value(json_array_get(dns, i));
        if (!s || agent_ipv4_parse(s, &d.dns[i]) < 0 || !agent_ipv4_is_unicast(d.dns[i]))
            return nb_error_set(err, NB_ERR_IP_INVALID, "dns[%zu] must be a unicast IPv4 address",
                                i);
        d.n_dns++;
    }
    if (json_object_get(body, "mtu") &&
        get_uint(body, "mtu", AGENT_MTU_MIN, AGENT_MTU_MAX, &d.mtu, err) < 0) {
        (*err)->code = NB_ERR_NETWORK_INVALID_MTU;
        return -1;
    }
    if (get_uint(body, "lease_s", DHCP_LEASE_MIN_S, DHCP_LEASE_MAX_S, &d.lease_s, err) < 0)
        return -1;
    json_t *hosts = json_object_get(body, "hosts");
    if (!json_is_array(hosts) || json_array_size(hosts) > AGENT_DHCP_HOSTS_MAX)
        return nb_error_set(err, NB_ERR_INVALID_REQUEST, "'hosts' must be an array of at most %d",
                            AGENT_DHCP_HOSTS_MAX);
    d.hosts = calloc(json_array_size(hosts) + 1, sizeof(*d.hosts));
    if (!d.hosts)
        return nb_error_set(err, NB_ERR_INTERNAL, "out of memory");
    for (size_t i = 0; i < json_array_size(hosts); i++) {
        json_t *h = json_array_get(hosts, i);
        AgentDhcpHost *e = &d.hosts[d.n_hosts];
        if (check_fields(h, host_fields, ELEMENTSOF(host_fields), "a host", err) < 0)
            goto fail;
        if (!mac_parse(get_str(h, "mac"), e->mac)) {
            nb_error_set(err, NB_ERR_INVALID_REQUEST, "hosts[%zu].mac is not a unicast MAC", i);
            goto fail;
        }
        if (get_ip(h, "ip", &e->ip, err) < 0)
            goto fail;
        if (!in_subnet(e->ip, net, mask) || e->ip == d.address || e->ip == d.router ||
            streq(e->mac, d.mac)) {
            nb_error_set(err, NB_ERR_IP_INVALID,
                         "hosts[%zu] must be another address of the server's subnet", i);
            goto fail;
        }
        for (size_t k = 0; k < d.n_hosts; k++)
            if (streq(d.hosts[k].mac, e->mac) || d.hosts[k].ip == e->ip) {
                nb_error_set(err, NB_ERR_INVALID_REQUEST, "hosts[%zu] repeats a MAC or address", i);
                goto fail;
            }
        d.n_hosts++;
    }
    qsort(d.hosts, d.n_hosts, sizeof(*d.hosts), host_cmp);
    *ret = d;
    return 0;
fail:
    agent_dhcp_clear(&d);
    return -1;
}

json_t *
agent_dhcp_to_json(const AgentDhcp *d)
{
    char a[16], r[16];
    agent_ipv4_format(d->address, a);
    json_t *dns = json_array(), *hosts = json_array();
    for (size_t i = 0; dns && i < d->n_dns; i++) {
        char s[16];
        agent_ipv4_format(d->dns[i], s);
        json_array_append_new(dns, json_string(s));
    }
    for (size_t i = 0; hosts && i < d->n_hosts; i++) {
        char s[16];
        agent_ipv4_format(d->hosts[i].ip, s);
        json_array_append_new(hosts, json_pack("{s:s, s:s}", "mac", d->hosts[i].mac, "ip", s));
    }
    json_t *j = json_pack("{s:s, s:s, s:s, s:I, s:o*, s:I, s:I, s:o*}", "bridge", d->bridge, "mac",
                          d->mac, "address", a, "prefix", (json_int_t)d->prefix, "dns", dns, "mtu",
                          (json_int_t)d->mtu, "lease_s", (json_int_t)d->lease_s, "hosts", hosts);
    if (j && d->router) {
        agent_ipv4_format(d->router, r);
        json_object_set_new(j, "router", json_string(r));
    }
    return j;
}

void
agent_dhcp_clear(AgentDhcp *d)
{
    free(d->hosts);
    d->hosts = NULL;
    d->n_hosts = 0;
}

bool
agent_dhcp_same_server(const AgentDhcp *a, const AgentDhcp *b)
{
    return streq(a->key, b->key) && streq(a->bridge, b->bridge) && streq(a->mac, b->mac) &&
           a->address == b->address && a->prefix == b->prefix && a->router == b->router &&
           a->n_dns == b->n_dns && memcmp(a->dns, b->dns, a->n_dns * sizeof(a->dns[0])) == 0 &&
           a->mtu == b->mtu && a->lease_s == b->lease_s;
}

char *
agent_dhcp_hosts_text(const AgentDhcp *d)
{
    /* "xx:xx:xx:xx:xx:xx,255.255.255.255\n" */
    size_t cap = d->n_hosts * 36 + 1, len = 0;
    char *s = malloc(cap);
    if (!s)
        return NULL;
    s[0] = '\0';
    for (size_t i = 0; i < d->n_hosts; i++) {
        char ip[16];
        agent_ipv4_format(d->hosts[i].ip, ip);
        len += (size_t)snprintf(s + len, cap - len, "%s,%s\n", d->hosts[i].mac, ip);
    }
    return s;
}

int
agent_dhcp_path(const char *state_dir, const char *key, const char *ext, char *out, size_t size)
{
    int n = snprintf(out, size, "%s/dhcp/%s.%s", state_dir, key, ext);
    return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

void
agent_dhcp_argv_free(char **argv)
{
    for (size_t i = 0; argv && argv[i]; i++)
        free(argv[i]);
    free(argv);
}

char **
agent_dhcp_argv(const AgentDhcp *d, const char *dnsmasq, const char *state_dir)
{
    enum { ARGS_MAX = 32 };
    char **argv = calloc(ARGS_MAX, sizeof(*argv));
    if (!argv)
        return NULL;
    char host_side[AGENT_IFNAME_MAX + 1], ns_side[AGENT_IFNAME_MAX + 1];
    agent_dhcp_ifnames(d->key, host_side, ns_side);
    uint32_t mask = ~0u << (32 - d->prefix);
    char net[16], netmask[16], ip[16];
    agent_ipv4_format(d->address & mask, net);
    agent_ipv4_format(mask, netmask);
    char hosts[512], leases[512];
    if (agent_dhcp_path(state_dir, d->key, "hosts", hosts, sizeof(hosts)) < 0 ||
        agent_dhcp_path(state_dir, d->key, "leases", leases, sizeof(leases)) < 0) {
        free(argv);
        return NULL;
    }
    char dns[AGENT_DHCP_DNS_MAX * 16 + 32] = "--dhcp-option=option:dns-server";
    for (size_t i = 0; i < d->n_dns; i++) {
        agent_ipv4_format(d->dns[i], ip);
        size_t l = strlen(dns);
        snprintf(dns + l, sizeof(dns) - l, ",%s", ip);
    }
    if (d->router)
        agent_ipv4_format(d->router, ip);
    char *list[] = {
        strdup(dnsmasq),
        /* A child the agent supervises: it sees the exit, and reaps it. */
        strdup("--keep-in-foreground"),
        /* Nothing from the host's /etc: this server is wholly the agent's. */
        strdup("--conf-file=/dev/null"),
        strdup("--no-resolv"),
        strdup("--no-hosts"),
        /* DHCP only: no DNS server in the namespace. */
        strdup("--port=0"),
        str_printf("--interface=%s", ns_side),
        strdup("--except-interface=lo"),
        strdup("--bind-interfaces"),
        /* Its files are in the agent's 0700 state directory, and the hosts file is read again
         * on every SIGHUP: dnsmasq keeps root, alone in a namespace with one veth. */
        strdup("--user=root"),
        strdup("--group=root"),
        strdup("--pid-file="),
        strdup("--log-facility=-"),
        /* Static only: a MAC of the hosts file gets its address, any other nothing. */
        str_printf("--dhcp-range=set:nimbus,%s,static,%s,%us", net, netmask, d->lease_s),
        str_printf("--dhcp-hostsfile=%s", hosts),
        str_printf("--dhcp-leasefile=%s", leases),
        strdup("--dhcp-authoritative"),
        strdup("--dhcp-ignore=tag:!known"),
        /* No router or DNS server offered unless the network has them: empty options, so
         * dnsmasq does not offer its own address as either. */
        d->router ? str_printf("--dhcp-option=option:router,%s", ip)
                  : strdup("--dhcp-option=option:router"),
        strdup(dns),
        str_printf("--dhcp-option=option:mtu,%u", d->mtu),
    };
    bool ok = true;
    for (size_t i = 0; i < ELEMENTSOF(list); i++)
        ok = ok && list[i];
    if (!ok) {
        for (size_t i = 0; i < ELEMENTSOF(list); i++)
            free(list[i]);
        free(argv);
        return NULL;
    }
    _Static_assert(ELEMENTSOF(list) < ARGS_MAX, "argv has room for its NULL");
    memcpy(argv, list, sizeof(list));
    return argv;
}
