/*
 * Golden tests for network_xml_build(): each case is GOLDEN_DIR/network/<case>.json (a
 * NetXmlSpec: addresses as dotted quads, gateway null for none, type "nat" or "isolated") and
 * <case>.xml, the expected output, compared byte for byte. UPDATE_GOLDEN=1 rewrites the .xml
 * files instead of comparing (review the diff).
 *
 * Every document is re-parsed with libxml2 and checked against the spec, and each golden file is
 * validated with `virt-xml-validate FILE network` when that program is installed. That libvirt
 * itself defines and starts these networks is tested in test_hv.c.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xpath.h>

#include "hv/network_xml.h"
#include "util/cleanup.h"
#include "util/strutil.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(xmlDoc, xmlFreeDoc)

#define MAX_HOSTS 512

static uint32_t
ip(const char *s)
{
    struct in_addr a;
    assert_int_equal(inet_pton(AF_INET, s, &a), 1);
    return ntohl(a.s_addr);
}

static void
ip_str(uint32_t v, char out[NB_IPV4_STRLEN])
{
    struct in_addr a = {.s_addr = htonl(v)};
    assert_non_null(inet_ntop(AF_INET, &a, out, NB_IPV4_STRLEN));
}

static const uint32_t base_dns[] = {0x01010101u};
static const NetXmlHost base_hosts[] = {
    {"52:54:00:0a:00:01", 0x0ac80002u}, /* 10.200.0.2 */
    {"52:54:00:0a:00:02", 0x0ac80003u},
};
static const NetXmlSpec base_spec = {
    .name = "nimbus-net-7e57a1b2-c3d4-4e5f-8a9b-0c1d2e3f4a5b",
    .bridge = "nbr7e57a1b2c3d4",
    .type = NETWORK_TYPE_NAT,
    .gateway = 0x0ac80001u, /* 10.200.0.1 */
    .prefix = 24,
    .dhcp = true,
    .dns = base_dns,
    .n_dns = 1,
    .mtu = 1500,
    .hosts = base_hosts,
    .n_hosts = 2,
};

/* ---- helpers ---- */

static char *
read_text_file(const char *path)
{
    _cleanup_fclose_ FILE *f = fopen(path, "re");
    if (!f)
        return NULL;
    _cleanup_free_ char *buf = NULL;
    size_t len = 0;
    _cleanup_fclose_ FILE *out = open_memstream(&buf, &len);
    assert_non_null(out);
    char tmp[4096];
    size_t n;
    while ((n = fread(tmp, 1, sizeof(tmp), f)) > 0)
        assert_int_equal(fwrite(tmp, 1, n, out), n);
    assert_int_equal(fclose(TAKE_PTR(out)), 0);
    return TAKE_PTR(buf);
}

static void
write_text_file(const char *path, const char *text)
{
    _cleanup_fclose_ FILE *f = fopen(path, "we");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, strlen(text), f), strlen(text));
    assert_int_equal(fflush(f), 0);
}

typedef struct SpecStore {
    NetXmlSpec spec;
    uint32_t dns[8];
    NetXmlHost hosts[MAX_HOSTS];
} SpecStore;

/* Fills st->spec with pointers into root, which must outlive it. */
static void
spec_from_json(json_t *root, SpecStore *st)
{
    const char *type = json_string_value(json_object_get(root, "type"));
    assert_non_null(type);
    json_t *gw = json_object_get(root, "gateway");
    json_t *dns = json_object_get(root, "dns");
    json_t *hosts = json_object_get(root, "hosts");
    assert_true(json_array_size(dns) <= ELEMENTSOF(st->dns));
    assert_true(json_array_size(hosts) <= MAX_HOSTS);
    for (size_t i = 0; i < json_array_size(dns); i++)
        st->dns[i] = ip(json_string_value(json_array_get(dns, i)));
    for (size_t i = 0; i < json_array_size(hosts); i++) {
        json_t *h = json_array_get(hosts, i);
        st->hosts[i] = (NetXmlHost){json_string_value(json_object_get(h, "mac")),
                                    ip(json_string_value(json_object_get(h, "ip")))};
    }
    st->spec = (NetXmlSpec){
        .name = json_string_value(json_object_get(root, "name")),
        .bridge = json_string_value(json_object_get(root, "bridge")),
        .type = streq(type, "nat")        ? NETWORK_TYPE_NAT
                : streq(type, "isolated") ? NETWORK_TYPE_ISOLATED
                                          : _NETWORK_TYPE_INVALID,
        .gateway = json_is_null(gw) ? 0 : ip(json_string_value(gw)),
        .prefix = (unsigned)json_integer_value(json_object_get(root, "prefix")),
        .dhcp = json_is_true(json_object_get(root, "dhcp")),
        .dns = st->dns,
        .n_dns = json_array_size(dns),
        .mtu = (unsigned)json_integer_value(json_object_get(root, "mtu")),
        .hosts = st->hosts,
        .n_hosts = json_array_size(hosts),
    };
}

static char *xpath_string(xmlDoc *doc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static char *
xpath_string(xmlDoc *doc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    _cleanup_free_ char *expr = NULL;
    assert_true(vasprintf(&expr, fmt, ap) > 0);
    va_end(ap);
    _cleanup_free_ char *wrapped = str_printf("string(%s)", expr);
    xmlXPathContext *ctx = xmlXPathNewContext(doc);
    assert_non_null(ctx);
    xmlXPathObject *obj = xmlXPathEvalExpression(BAD_CAST wrapped, ctx);
    assert_non_null(obj);
    char *s = strdup((const char *)obj->stringval);
    xmlXPathFreeObject(obj);
    xmlXPathFreeContext(ctx);
    assert_non_null(s);
    return s;
}

#define assert_xpath(doc, want, ...)                                                               \
    do {                                                                                           \
        _cleanup_free_ char *got_ = xpath_string(doc, __VA_ARGS__);                                \
        if (strcmp(got_, want) != 0)                                                               \
            fail_msg("%s: got '%s', want '%s'", #__VA_ARGS__, got_, want);                         \
    } while (0)

#define assert_xpath_u(doc, want, ...)                                                             \
    do {                                                                                           \
        char want_[24];                                                                            \
        snprintf(want_, sizeof(want_), "%llu", (unsigned long long)(want));                        \
        assert_xpath(doc, want_, __VA_ARGS__);                                                     \
    } while (0)

/* Re-parses xml and checks it says what the spec says, and nothing else. */
static void
check_parsed(const char *xml, const NetXmlSpec *s)
{
    _cleanup_(xmlFreeDocp) xmlDoc *doc =
        xmlReadMemory(xml, (int)strlen(xml), "network.xml", NULL, XML_PARSE_NONET);
    assert_non_null(doc);
    unsigned elements = 3; /* network, name, bridge */

    assert_xpath(doc, s->name, "/network/name");
    assert_xpath(doc, s->bridge, "/network/bridge/@name");
    assert_xpath(doc, "on", "/network/bridge/@stp");
    assert_xpath(doc, "0", "/network/bridge/@delay");
    bool nat = s->type == NETWORK_TYPE_NAT;
    assert_xpath(doc, nat ? "1" : "0", "count(/network/forward)");
    if (nat) {
        assert_xpath(doc, "nat", "/network/forward/@mode");
        elements++;
    }
    bool mtu = s->mtu != 0 && s->mtu != 1500;
    assert_xpath(doc, mtu ? "1" : "0", "count(/network/mtu)");
    if (mtu) {
        assert_xpath_u(doc, s->mtu, "/network/mtu/@size");
        elements++;
    }

    assert_xpath(doc, s->gateway ? "1" : "0", "count(/network/ip)");
    bool dns = s->gateway && s->n_dns;
    assert_xpath(doc, dns ? "1" : "0", "count(/network/dns)");
    if (dns) {
        assert_xpath_u(doc, s->n_dns, "count(/network/dns/forwarder)");
        for (size_t i = 0; i < s->n_dns; i++) {
            char a[NB_IPV4_STRLEN];
            ip_str(s->dns[i], a);
            assert_xpath(doc, a, "/network/dns/forwarder[%zu]/@addr", i + 1);
        }
        elements += 1 + (unsigned)s->n_dns;
    }
    if (s->gateway) {
        char gw[NB_IPV4_STRLEN];
        ip_str(s->gateway, gw);
        assert_xpath(doc, gw, "/network/ip/@address");
        assert_xpath_u(doc, s->prefix, "/network/ip/@prefix");
        assert_xpath(doc, "0", "count(/network/ip/dhcp/range)");
        elements++;
    }
    assert_xpath(doc, s->dhcp ? "1" : "0", "count(/network/ip/dhcp)");
    if (s->dhcp) {
        assert_xpath_u(doc, s->n_hosts, "count(/network/ip/dhcp/host)");
        for (size_t i = 0; i < s->n_hosts; i++) {
            char a[NB_IPV4_STRLEN];
            ip_str(s->hosts[i].ip, a);
            assert_xpath(doc, s->hosts[i].mac, "/network/ip/dhcp/host[%zu]/@mac", i + 1);
            assert_xpath(doc, a, "/network/ip/dhcp/host[%zu]/@ip", i + 1);
        }
        elements += 1 + (unsigned)s->n_hosts;
    }
    assert_xpath_u(doc, elements, "count(//*)");
}

static char *
find_program(const char *name)
{
    static const char *const dirs[] = {"/usr/local/bin", "/usr/bin", "/bin"};
    for (size_t i = 0; i < ELEMENTSOF(dirs); i++) {
        char *full = str_printf("%s/%s", dirs[i], name);
        assert_non_null(full);
        if (access(full, X_OK) == 0)
            return full;
        free(full);
    }
    return NULL;
}

/* Exit status of `virt-xml-validate path network`, or -1 if it is not installed. */
static int
virt_xml_validate(const char *path)
{
    _cleanup_free_ char *prog = find_program("virt-xml-validate");
    if (!prog)
        return -1;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char *const argv[] = {(char *)"virt-xml-validate", (char *)path, (char *)"network", NULL};
        execv(prog, argv);
        _exit(127);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0)
        assert_int_equal(errno, EINTR);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

/* ---- golden cases ---- */

static void
test_golden(void **state)
{
    const char *name = *state;
    _cleanup_free_ char *json_path = str_printf("%s/network/%s.json", GOLDEN_DIR, name);
    _cleanup_free_ char *xml_path = str_printf("%s/network/%s.xml", GOLDEN_DIR, name);
    assert_non_null(json_path);
    assert_non_null(xml_path);

    json_error_t jerr;
    _cleanup_(json_decrefp) json_t *root = json_load_file(json_path, 0, &jerr);
    if (!root)
        fail_msg("%s: %s", json_path, jerr.text);
    _cleanup_free_ SpecStore *st = calloc(1, sizeof(*st));
    assert_non_null(st);
    spec_from_json(root, st);

    _cleanup_free_ char *xml = network_xml_build(&st->spec);
    assert_non_null(xml);
    const char *update = getenv("UPDATE_GOLDEN");
    if (update && streq(update, "1")) {
        write_text_file(xml_path, xml);
    } else {
        _cleanup_free_ char *want = read_text_file(xml_path);
        if (!want)
            fail_msg("%s missing; run with UPDATE_GOLDEN=1 to create it", xml_path);
        assert_string_equal(xml, want);
    }
    check_parsed(xml, &st->spec);

    int rc = virt_xml_validate(xml_path);
    if (rc < 0)
        print_message("virt-xml-validate not installed; schema check skipped\n");
    else if (rc != 0)
        fail_msg("virt-xml-validate %s network: exit status %d", xml_path, rc);
}

/* ---- non-golden cases ---- */

static void
test_validator_rejects_bad_xml(void **state)
{
    char path[] = "/tmp/test_network_xml.XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    static const char bad[] = "<network><name>x</name><ip address='10.0.0.1' prefix='24'>"
                              "<dhcp><host mac='52:54:00:00:00:01' bogus='1'/></dhcp></ip>"
                              "</network>\n";
    assert_int_equal(write(fd, bad, sizeof(bad) - 1), (ssize_t)(sizeof(bad) - 1));
    close(fd);
    int rc = virt_xml_validate(path);
    unlink(path);
    if (rc < 0)
        skip();
    assert_int_not_equal(rc, 0);
}

static void
test_base_spec(void **state)
{
    _cleanup_free_ char *xml = network_xml_build(&base_spec);
    assert_non_null(xml);
    check_parsed(xml, &base_spec);
    assert_null(network_xml_build(NULL));
}

/* Each change makes the spec invalid on its own. */
static void
test_invalid_specs(void **state)
{
    static const char hostile[] = "x'\"<>&/../<evil a='1'/>";
    NetXmlSpec s;
    NetXmlHost h[3];
    uint32_t dns[2];
#define BAD(change)                                                                                \
    do {                                                                                           \
        s = base_spec;                                                                             \
        memcpy(h, base_hosts, sizeof(base_hosts));                                                 \
        s.hosts = h;                                                                               \
        change;                                                                                    \
        char *x_ = network_xml_build(&s);                                                          \
        if (x_) {                                                                                  \
            free(x_);                                                                              \
            fail_msg("accepted: %s", #change);                                                     \
        }                                                                                          \
    } while (0)

    BAD(s.name = NULL);
    BAD(s.name = "");
    BAD(s.name = hostile);
    BAD(s.name = "-net");
    BAD(s.name = "a/b");
    BAD(s.name = "nimbus-net-7e57a1b2-c3d4-4e5f-8a9b-0c1d2e3f4a5b-0123456789-0123456789ab");
    BAD(s.bridge = NULL);
    BAD(s.bridge = "");
    BAD(s.bridge = "nbr7e57a1b2c3d4e"); /* 16 characters */
    BAD(s.bridge = hostile);
    BAD(s.bridge = "br 0");
    BAD(s.type = NETWORK_TYPE_VXLAN);
    BAD(s.type = NETWORK_TYPE_BRIDGED);
    BAD(s.type = NETWORK_TYPE_VLAN);
    BAD(s.type = _NETWORK_TYPE_INVALID);
    BAD(s.type = _NETWORK_TYPE_MAX);
    BAD(s.prefix = 7);
    BAD(s.prefix = 31);
    BAD(s.prefix = 0);
    BAD(s.mtu = 575);
    BAD(s.mtu = 9001);
    BAD(s.gateway = 0);                                 /* nat needs one */
    BAD(s.type = NETWORK_TYPE_ISOLATED; s.gateway = 0); /* so does dhcp */
    BAD(s.gateway = ip("10.200.0.0"));                  /* the network address */
    BAD(s.gateway = ip("10.200.0.255"));                /* broadcast */
    BAD(h[1].ip = ip("10.200.1.3"));                    /* outside */
    BAD(h[1].ip = ip("10.200.0.1"));                    /* the gateway */
    BAD(h[1].ip = ip("10.200.0.0"));
    BAD(h[1].ip = ip("10.200.0.255"));
    BAD(h[1].ip = h[0].ip);
    BAD(h[1].mac = "52:54:00:0A:00:01"); /* the same MAC, other case */
    BAD(h[1].mac = NULL);
    BAD(h[1].mac = "");
    BAD(h[1].mac = hostile);
    BAD(h[1].mac = "01:00:5e:00:00:01"); /* multicast */
    BAD(h[1].mac = "52:54:00:0a:00:0x");
    BAD(h[1].mac = "52:54:00:0a:00:0");
    BAD(s.hosts = NULL);
    BAD(dns[0] = 0; s.dns = dns);
    BAD(dns[0] = UINT32_MAX; s.dns = dns);
    BAD(s.dns = NULL);
    /* Invalid hosts are refused even when they would not be written. */
    BAD(s.dhcp = false; h[1].mac = hostile);
#undef BAD
}

/* Values that look odd but are valid. */
static void
test_edges(void **state)
{
    NetXmlSpec s = base_spec;
    s.mtu = 0; /* the default, like 1500 */
    _cleanup_free_ char *a = network_xml_build(&s);
    assert_non_null(a);
    assert_null(strstr(a, "<mtu"));
    check_parsed(a, &s);

    /* DHCP off: the hosts are not written (no dnsmasq leases), the subnet still is. */
    s = base_spec;
    s.dhcp = false;
    _cleanup_free_ char *b = network_xml_build(&s);
    assert_non_null(b);
    assert_null(strstr(b, "<dhcp"));
    assert_null(strstr(b, "<host"));
    check_parsed(b, &s);

    /* DHCP on without hosts yet: an empty <dhcp/> (libvirt adds hosts live). */
    s = base_spec;
    s.n_hosts = 0;
    s.hosts = NULL;
    _cleanup_free_ char *c = network_xml_build(&s);
    assert_non_null(c);
    assert_non_null(strstr(c, "<dhcp/>"));
    check_parsed(c, &s);

    /* Without a gateway there is no dnsmasq to forward to: dns servers are for the guests'
     * network-config only. */
    s = base_spec;
    s.type = NETWORK_TYPE_ISOLATED;
    s.gateway = 0;
    s.dhcp = false;
    s.n_hosts = 0;
    _cleanup_free_ char *d = network_xml_build(&s);
    assert_non_null(d);
    assert_null(strstr(d, "<dns"));
    assert_null(strstr(d, "<ip"));
    check_parsed(d, &s);

    /* /30: one guest beside the gateway; /8 */
    static const NetXmlHost one[] = {{"52:54:00:00:00:02", 0x0a000006u}}; /* 10.0.0.6 */
    s = base_spec;
    s.prefix = 30;
    s.gateway = ip("10.0.0.5");
    s.hosts = one;
    s.n_hosts = 1;
    _cleanup_free_ char *e = network_xml_build(&s);
    assert_non_null(e);
    check_parsed(e, &s);
    s.prefix = 8;
    _cleanup_free_ char *f = network_xml_build(&s);
    assert_non_null(f);
    s.prefix = 30;
    s.gateway = ip("10.0.0.6");
    NetXmlHost other[] = {{"52:54:00:00:00:02", ip("10.0.0.5")}};
    s.hosts = other;
    _cleanup_free_ char *g = network_xml_build(&s);
    assert_non_null(g);
    other[0].ip = ip("10.0.0.7"); /* the broadcast of the /30 */
    assert_null(network_xml_build(&s));
}

static void
test_dhcp_host(void **state)
{
    NetXmlHost h = {"52:54:00:ab:cd:ef", ip("10.200.0.42")};
    _cleanup_free_ char *x = network_xml_dhcp_host(&h);
    assert_non_null(x);
    assert_string_equal(x, "<host mac='52:54:00:ab:cd:ef' ip='10.200.0.42'/>");

    /* The same element network_xml_build writes. */
    NetXmlSpec s = base_spec;
    s.hosts = &h;
    s.n_hosts = 1;
    _cleanup_free_ char *net = network_xml_build(&s);
    assert_non_null(net);
    assert_non_null(strstr(net, x));

    assert_null(network_xml_dhcp_host(NULL));
    h.mac = "52:54:00:ab:cd:e";
    assert_null(network_xml_dhcp_host(&h));
    h.mac = "x'/><evil/>";
    assert_null(network_xml_dhcp_host(&h));
    h.mac = NULL;
    assert_null(network_xml_dhcp_host(&h));
    h.mac = "52:54:00:ab:cd:ef";
    h.ip = 0;
    assert_null(network_xml_dhcp_host(&h));
}

static void
test_name_checks(void **state)
{
    assert_true(network_xml_mac_is_valid("52:54:00:ab:CD:ef"));
    assert_true(network_xml_mac_is_valid("fe:ff:ff:ff:ff:ff"));
    assert_false(network_xml_mac_is_valid("ff:ff:ff:ff:ff:ff"));
    assert_false(network_xml_mac_is_valid("52:54:00:ab:cd:ef:"));
    assert_false(network_xml_mac_is_valid("52:54:00:ab:cd"));
    assert_false(network_xml_mac_is_valid("5254.00ab.cdef.0"));
    assert_false(network_xml_mac_is_valid(NULL));
    assert_true(network_ifname_is_valid("nbr0123456789ab"));
    assert_true(network_ifname_is_valid("br-ext_0.1"));
    assert_false(network_ifname_is_valid("nbr0123456789abc"));
    assert_false(network_ifname_is_valid(".x"));
    assert_false(network_ifname_is_valid("a:b"));
    assert_false(network_ifname_is_valid(""));
    assert_false(network_ifname_is_valid(NULL));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        {"golden_nat", test_golden, NULL, NULL, (void *)"nat"},
        {"golden_isolated", test_golden, NULL, NULL, (void *)"isolated"},
        {"golden_isolated_no_gateway", test_golden, NULL, NULL, (void *)"isolated_no_gateway"},
        {"golden_dns", test_golden, NULL, NULL, (void *)"dns"},
        {"golden_mtu", test_golden, NULL, NULL, (void *)"mtu"},
        {"golden_many_hosts", test_golden, NULL, NULL, (void *)"many_hosts"},
        cmocka_unit_test(test_validator_rejects_bad_xml),
        cmocka_unit_test(test_base_spec),
        cmocka_unit_test(test_invalid_specs),
        cmocka_unit_test(test_edges),
        cmocka_unit_test(test_dhcp_host),
        cmocka_unit_test(test_name_checks),
    };
    xmlInitParser();
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    xmlCleanupParser();
    return rc;
}
