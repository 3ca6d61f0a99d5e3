/* The network model: IPv4/CIDR helpers, the strict decoders of network and NIC requests, JSON,
 * and the names derived for the hosts. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "model/network.h"
#include "model/vm.h"

#define IP(a, b, c, d) (((uint32_t)(a) << 24) | ((uint32_t)(b) << 16) | ((uint32_t)(c) << 8) | (d))

static json_t *
parse(const char *text)
{
    json_error_t e;
    json_t *j = json_loads(text, JSON_ALLOW_NUL | JSON_DECODE_ANY, &e);
    if (!j)
        fail_msg("not JSON: %s (%s)", text, e.text);
    return j;
}

static void
test_ipv4_parse(void **state)
{
    uint32_t ip = 0;
    assert_int_equal(ipv4_parse("10.0.0.1", &ip), 0);
    assert_int_equal(ip, IP(10, 0, 0, 1));
    assert_int_equal(ipv4_parse("255.255.255.255", &ip), 0);
    assert_int_equal(ip, UINT32_MAX);
    assert_int_equal(ipv4_parse("0.0.0.0", &ip), 0);
    assert_int_equal(ip, 0);
    const char *bad[] = {
        "",          "1.2.3",     "1.2.3.4.5", " 1.2.3.4",   "1.2.3.4 ", "010.0.0.1", "1.2.3.04",
        "256.0.0.1", "1.2.3.-1",  "1..2.3",    "1.2.3.",     ".1.2.3",   "a.b.c.d",   "1.2.3.4/24",
        "0x1.2.3.4", "1.2.3.4\n", "+1.2.3.4",  "1.2.3.1000", "00.0.0.0", "1.2.3.4.",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ip = 42;
        if (ipv4_parse(bad[i], &ip) != -EINVAL)
            fail_msg("'%s' parsed", bad[i]);
        assert_int_equal(ip, 42);
    }
    assert_int_equal(ipv4_parse(NULL, &ip), -EINVAL);
    char out[NB_IPV4_STRLEN];
    ipv4_format(IP(192, 168, 10, 254), out);
    assert_string_equal(out, "192.168.10.254");
    ipv4_format(UINT32_MAX, out);
    assert_string_equal(out, "255.255.255.255");
}

static void
test_cidr(void **state)
{
    uint32_t net;
    unsigned prefix;
    assert_int_equal(cidr_parse("10.10.0.0/24", &net, &prefix), 0);
    assert_int_equal(net, IP(10, 10, 0, 0));
    assert_int_equal(prefix, 24);
    assert_int_equal(cidr_parse("0.0.0.0/0", &net, &prefix), 0); /* a CIDR; the policy refuses it */
    assert_int_equal(prefix, 0);
    assert_int_equal(cidr_parse("10.0.0.1/32", &net, &prefix), 0);
    const char *bad[] = {
        "10.0.0.1/24",  "10.0.0.0/33", "10.0.0.0/",     "10.0.0.0",  "10.0.0.0/024",
        "10.0.0.0/-1",  "10.0.0.0/ 8", "/24",           "10.0.0/24", "10.0.0.0/8x",
        "10.0.0.0/24 ", "010.0.0.0/8", "10.0.0.128/24",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (cidr_parse(bad[i], &net, &prefix) != -EINVAL)
            fail_msg("'%s' parsed", bad[i]);
    assert_int_equal(cidr_mask(0), 0);
    assert_int_equal(cidr_mask(8), 0xff000000u);
    assert_int_equal(cidr_mask(30), 0xfffffffcu);
    assert_int_equal(cidr_mask(32), UINT32_MAX);
    assert_true(cidr_contains(IP(10, 0, 0, 0), 24, IP(10, 0, 0, 255)));
    assert_false(cidr_contains(IP(10, 0, 0, 0), 24, IP(10, 0, 1, 0)));
    assert_true(cidr_overlaps(IP(10, 0, 0, 0), 16, IP(10, 0, 5, 0), 24));
    assert_true(cidr_overlaps(IP(10, 0, 5, 0), 24, IP(10, 0, 0, 0), 16));
    assert_false(cidr_overlaps(IP(10, 0, 0, 0), 24, IP(10, 0, 1, 0), 24));
    assert_false(cidr_overlaps(IP(10, 0, 0, 0), 25, IP(10, 0, 0, 128), 25));
    assert_true(cidr_overlaps(IP(10, 0, 0, 0), 8, IP(10, 255, 255, 252), 30));
}

static void
test_assignable(void **state)
{
    Network n = {.net = IP(10, 0, 0, 0), .prefix = 29, .gateway = IP(10, 0, 0, 1)};
    n.dns[0] = IP(10, 0, 0, 3);
    n.n_dns = 1;
    assert_false(network_ip_is_assignable(&n, IP(10, 0, 0, 0))); /* network */
    assert_false(network_ip_is_assignable(&n, IP(10, 0, 0, 1))); /* gateway */
    assert_true(network_ip_is_assignable(&n, IP(10, 0, 0, 2)));
    assert_false(network_ip_is_assignable(&n, IP(10, 0, 0, 3))); /* dns */
    assert_true(network_ip_is_assignable(&n, IP(10, 0, 0, 6)));
    assert_false(network_ip_is_assignable(&n, IP(10, 0, 0, 7))); /* broadcast */
    assert_false(network_ip_is_assignable(&n, IP(10, 0, 0, 8))); /* outside */
    assert_false(network_ip_is_assignable(&n, IP(9, 255, 255, 255)));
    n.gateway = 0; /* none: .1 is a guest's */
    assert_true(network_ip_is_assignable(&n, IP(10, 0, 0, 1)));
}

static void
test_ifname(void **state)
{
    const char *good[] = {"br0", "eth1", "enp0s31f6", "a", "br-ext.10", "x_y", "123456789012345"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        if (!network_ifname_is_valid(good[i]))
            fail_msg("'%s' refused", good[i]);
    const char *bad[] = {
        "",     "a b",   "../x", "1234567890123456", ".",      "..", "-br", "_x", "br/0",
        "br:0", "br0\n", "ä",    "br$(x)",           ".hidden"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (network_ifname_is_valid(bad[i]))
            fail_msg("'%s' accepted", bad[i]);
    assert_false(network_ifname_is_valid(NULL));
}

static void
test_names(void **state)
{
    Network n = {.id = "0123abcd-ef01-4567-89ab-cdef01234567"};
    char name[64], br[NETWORK_IFNAME_MAX + 1];
    network_libvirt_name(&n, name);
    assert_string_equal(name, "nimbus-net-0123abcd-ef01-4567-89ab-cdef01234567");
    network_bridge_name(n.id, br);
    assert_string_equal(br, "nbr0123abcdef01");
    assert_true(network_ifname_is_valid(br));
    port_tap_name("fedcba98-7654-4321-8fed-cba987654321", br);
    assert_string_equal(br, "nbtfedcba987654");
    assert_true(network_ifname_is_valid(br));
    assert_int_equal(network_default_mtu(NETWORK_TYPE_VXLAN), 1450);
    assert_int_equal(network_default_mtu(NETWORK_TYPE_NAT), 1500);
    for (int t = 0; t < _NETWORK_TYPE_MAX; t++)
        assert_int_equal(network_type_from_string(network_type_to_string((NetworkType)t)), t);
    assert_int_equal(network_type_from_string("NAT"), _NETWORK_TYPE_INVALID);
    assert_null(network_type_to_string(_NETWORK_TYPE_MAX));
}

static void
test_network_request_defaults(void **state)
{
    json_t *j = parse("{\"name\":\"app\",\"cidr\":\"10.10.0.0/24\"}");
    Network n;
    NbError *err = NULL;
    assert_int_equal(network_from_request(j, &n, &err), 0);
    assert_string_equal(n.name, "app");
    assert_int_equal(n.type, NETWORK_TYPE_NAT);
    assert_int_equal(n.net, IP(10, 10, 0, 0));
    assert_int_equal(n.prefix, 24);
    assert_int_equal(n.gateway, IP(10, 10, 0, 1));
    assert_true(n.dhcp);
    assert_int_equal(n.n_dns, 0);
    assert_int_equal(n.mtu, 1500);
    assert_false(n.shared);
    assert_false(n.is_default);
    assert_string_equal(n.id, "");
    assert_string_equal(n.bridge, "");
    json_decref(j);

    j = parse("{\"name\":\"ov\",\"type\":\"vxlan\",\"cidr\":\"10.20.0.0/16\",\"vni\":16777215}");
    assert_int_equal(network_from_request(j, &n, &err), 0);
    assert_int_equal(n.vni, 16777215);
    assert_int_equal(n.mtu, 1450);
    assert_false(n.dhcp); /* no DHCP on a vxlan network unless asked for */
    json_decref(j);

    /* No vni: 0, for the store to pick; dhcp as asked. */
    j = parse("{\"name\":\"ov\",\"type\":\"vxlan\",\"cidr\":\"10.20.0.0/16\",\"dhcp\":true}");
    assert_int_equal(network_from_request(j, &n, &err), 0);
    assert_int_equal(n.vni, 0);
    assert_true(n.dhcp);
    json_decref(j);
}

static void
test_network_request_full(void **state)
{
    json_t *j = parse("{\"name\":\"ext\",\"type\":\"bridged\",\"bridge\":\"br0\","
                      "\"cidr\":\"192.0.2.0/24\",\"gateway\":\"192.0.2.254\",\"dhcp\":false,"
                      "\"dns\":[\"1.1.1.1\",\"9.9.9.9\"],\"mtu\":9000,\"shared\":true}");
    Network n;
    NbError *err = NULL;
    assert_int_equal(network_from_request(j, &n, &err), 0);
    assert_int_equal(n.type, NETWORK_TYPE_BRIDGED);
    assert_string_equal(n.bridge, "br0");
    assert_int_equal(n.gateway, IP(192, 0, 2, 254));
    assert_false(n.dhcp);
    assert_int_equal(n.n_dns, 2);
    assert_int_equal(n.dns[1], IP(9, 9, 9, 9));
    assert_int_equal(n.mtu, 9000);
    assert_true(n.shared);
    json_decref(j);

    /* JSON out, as the API answers. */
    snprintf(n.id, sizeof(n.id), "0123abcd-ef01-4567-89ab-cdef01234567");
    snprintf(n.project, sizeof(n.project), "p1");
    snprintf(n.created_at, sizeof(n.created_at), "2026-01-01T00:00:00.000Z");
    json_t *out = network_to_json(&n);
    char *text = json_dumps(out, JSON_COMPACT | JSON_SORT_KEYS);
    assert_string_equal(text, "{\"bridge\":\"br0\",\"cidr\":\"192.0.2.0/24\",\"created_at\":"
                              "\"2026-01-01T00:00:00.000Z\",\"default\":false,\"dhcp\":false,"
                              "\"dns\":[\"1.1.1.1\",\"9.9.9.9\"],\"gateway\":\"192.0.2.254\","
                              "\"id\":\"0123abcd-ef01-4567-89ab-cdef01234567\",\"mtu\":9000,"
                              "\"name\":\"ext\",\"project\":\"p1\",\"shared\":true,"
                              "\"type\":\"bridged\"}");
    free(text);
    json_decref(out);

    /* An isolated network without DHCP may have no gateway: JSON null. */
    j = parse("{\"name\":\"iso\",\"type\":\"isolated\",\"cidr\":\"10.9.0.0/30\","
              "\"gateway\":\"none\",\"dhcp\":false}");
    assert_int_equal(network_from_request(j, &n, &err), 0);
    assert_int_equal(n.gateway, 0);
    json_decref(j);
    out = network_to_json(&n);
    assert_true(json_is_null(json_object_get(out, "gateway")));
    assert_null(json_object_get(out, "vni"));
    assert_null(json_object_get(out, "bridge")); /* no id yet: no bridge */
    json_decref(out);
    /* With its id, the derived bridge, whether or not the struct has it. */
    snprintf(n.id, sizeof(n.id), "0123abcd-ef01-4567-89ab-cdef01234567");
    out = network_to_json(&n);
    assert_string_equal(json_string_value(json_object_get(out, "bridge")), "nbr0123abcdef01");
    json_decref(out);

    j = parse("{\"name\":\"v42\",\"type\":\"vlan\",\"vlan\":4094,\"parent\":\"eth1\","
              "\"cidr\":\"10.42.0.0/24\"}");
    assert_int_equal(network_from_request(j, &n, &err), 0);
    assert_int_equal(n.vlan, 4094);
    assert_string_equal(n.parent, "eth1");
    json_decref(j);
    out = network_to_json(&n);
    assert_int_equal(json_integer_value(json_object_get(out, "vlan")), 4094);
    assert_string_equal(json_string_value(json_object_get(out, "parent")), "eth1");
    json_decref(out);
}

typedef struct BadNet {
    const char *body;
    const char *code;
} BadNet;

static void
test_network_request_errors(void **state)
{
    static const BadNet bad[] = {
        /* shape */
        {"[]", NB_ERR_INVALID_REQUEST},
        {"null", NB_ERR_INVALID_REQUEST},
        {"{\"name\":\"a\",\"cidr\":\"10.0.0.0/24\",\"color\":\"red\"}", NB_ERR_INVALID_REQUEST},
        {"{\"cidr\":\"10.0.0.0/24\"}", NB_ERR_INVALID_REQUEST},
        {"{\"name\":\"a\"}", NB_ERR_INVALID_REQUEST},
        {"{\"name\":\"a\",\"cidr\":24}", NB_ERR_INVALID_REQUEST},
        {"{\"name\":5,\"cidr\":\"10.0.0.0/24\"}", NB_ERR_INVALID_REQUEST},
        {"{\"name\":\"a\",\"cidr\":\"10.0.0.0/24\",\"dhcp\":\"yes\"}", NB_ERR_INVALID_REQUEST},
        {"{\"name\":\"a\",\"cidr\":\"10.0.0.0/24\",\"shared\":1}", NB_ERR_INVALID_REQUEST},
        {"{\"name\":\"a\",\"cidr\":\"10.0.0.0/24\",\"type\":1}", NB_ERR_INVALID_REQUEST},
        {"{\"name\":\"a\",\"cidr\":\"10.0.0.0/24\",\"gateway\":167772161}", NB_ERR_INVALID_REQUEST},
        {"{\"name\":\"a\",\"cidr\":\"10.0.0.0/24\",\"dns\":\"1.1.1.1\"}", NB_ERR_INVALID_REQUEST},
        {"{\"name\":\"a\",\"cidr\":\"10.0.0.0/24\",\"dns\":[1]}", NB_ERR_INVALID_REQUEST},
        {"{\"name\":\"a\",\"cidr\":\"10.0.0.0/24\",\"dns\":[\"1.1.1.1\",\"1.0.0.1\",\"8.8.8.8\","
         "\"9.9.9.9\"]}",
         NB_ERR_INVALID_REQUEST},
        {"{\"name\":\"a\",\"cidr\":\"10.0.0.0/24\",\"dns\":[\"1.1.1.1\",\"1.1.1.1\"]}",
         NB_ERR_INVALID_REQUEST},
        {"{\"name\":\"a\",\"cidr\":\"10.0.0.0/24\",\"dns\":[\"1.1.1\"]}", NB_ERR_IP_INVALID},
        {"{\"name\":\"a\",\"cidr\":\"10.0.0.0/24\",\"dns\":[\"0.0.0.0\"]}", NB_ERR_IP_INVALID},
        /* names */
        {"{\"name\":\"\",\"cidr\":\"10.0.0.0/24\"}", NB_ERR_INVALID_NAME},
        {"{\"name\":\"a b\",\"cidr\":\"10.0.0.0/24\"}", NB_ERR_INVALID_NAME},
        {"{\"name\":\"0123abcd-ef01-4567-89ab-cdef01234567\",\"cidr\":\"10.0.0.0/24\"}",
         NB_ERR_INVALID_NAME},
        /* type */
        {"{\"name\":\"a\",\"cidr\":\"10.0.0.0/24\",\"type\":\"flat\"}",
         NB_ERR_NETWORK_INVALID_TYPE},
        {"{\"name\":\"a\",\"cidr\":\"10.0.0.0/24\",\"type\":\"NAT\"}", NB_ERR_NETWORK_INVALID_TYPE},
        /* cidr */
        {"{\"name\":\"a\",\"cidr\":\"0.0.0.0/0\"}", NB_ERR_NETWORK_INVALID_CIDR},
        {"{\"name\":\"a\",\"cidr\":\"10.0.0.0/7\"}", NB_ERR_NETWORK_INVALID_CIDR},
        {"{\"name\":\"a\",\"cidr\":\"10.0.0.0/31\"}", NB_ERR_NETWORK_INVALID_CIDR},
        {"{\"name\":\"a\",\"cidr\":\"10.0.0.0/32\"}", NB_ERR_NETWORK_INVALID_CIDR},
        {"{\"name\":\"a\",\"cidr\":\"10.0.0.1/24\"}", NB_ERR_NETWORK_INVALID_CIDR},
        {"{\"name\":\"a\",\"cidr\":\"010.0.0.0/24\"}", NB_ERR_NETWORK_INVALID_CIDR},
        {"{\"name\":\"a\",\"cidr\":\"10.0.0/24\"}", NB_ERR_NETWORK_INVALID_CIDR},
        {"{\"name\":\"a\",\"cidr\":\"10.0.0.0\"}", NB_ERR_NETWORK_INVALID_CIDR},
        {"{\"name\":\"a\",\"cidr\":\" 10.0.0.0/24\"}", NB_ERR_NETWORK_INVALID_CIDR},
        {"{\"name\":\"a\",\"cidr\":\"\"}", NB_ERR_INVALID_REQUEST},
        /* gateway */
        {"{\"name\":\"a\",\"cidr\":\"10.0.0.0/24\",\"gateway\":\"10.0.1.1\"}",
         NB_ERR_NETWORK_INVALID_GATEWAY},
        {"{\"name\":\"a\",\"cidr\":\"10.0.0.0/24\",\"gateway\":\"10.0.0.0\"}",
         NB_ERR_NETWORK_INVALID_GATEWAY},
        {"{\"name\":\"a\",\"cidr\":\"10.0.0.0/24\",\"gateway\":\"10.0.0.255\"}",
         NB_ERR_NETWORK_INVALID_GATEWAY},
        {"{\"name\":\"a\",\"cidr\":\"10.0.0.0/24\",\"gateway\":\"010.0.0.1\"}",
         NB_ERR_NETWORK_INVALID_GATEWAY},
        {"{\"name\":\"a\",\"cidr\":\"10.0.0.0/24\",\"gateway\":\"1.2.3.4.5\"}",
         NB_ERR_NETWORK_INVALID_GATEWAY},
        {"{\"name\":\"a\",\"cidr\":\"10.0.0.0/24\",\"gateway\":\"none\"}",
         NB_ERR_NETWORK_INVALID_GATEWAY}, /* nat needs one */
        {"{\"name\":\"a\",\"type\":\"isolated\",\"cidr\":\"10.0.0.0/24\",\"gateway\":\"none\"}",
         NB_ERR_NETWORK_INVALID_GATEWAY}, /* dhcp needs one */
        /* vni */
        {"{\"name\":\"a\",\"type\":\"vxlan\",\"cidr\":\"10.0.0.0/24\",\"vni\":0}",
         NB_ERR_NETWORK_INVALID_VNI},
        {"{\"name\":\"a\",\"type\":\"vxlan\",\"cidr\":\"10.0.0.0/24\",\"vni\":16777216}",
         NB_ERR_NETWORK_INVALID_VNI},
        {"{\"name\":\"a\",\"type\":\"vxlan\",\"cidr\":\"10.0.0.0/24\",\"vni\":-1}",
         NB_ERR_NETWORK_INVALID_VNI},
        {"{\"name\":\"a\",\"type\":\"vxlan\",\"cidr\":\"10.0.0.0/24\",\"vni\":\"5\"}",
         NB_ERR_NETWORK_INVALID_VNI},
        {"{\"name\":\"a\",\"type\":\"vxlan\",\"cidr\":\"10.0.0.0/24\",\"vni\":5.0}",
         NB_ERR_NETWORK_INVALID_VNI},
        {"{\"name\":\"a\",\"cidr\":\"10.0.0.0/24\",\"vni\":5}", NB_ERR_NETWORK_INVALID_VNI},
        /* vlan */
        {"{\"name\":\"a\",\"type\":\"vlan\",\"cidr\":\"10.0.0.0/24\",\"parent\":\"eth1\"}",
         NB_ERR_NETWORK_INVALID_VLAN},
        {"{\"name\":\"a\",\"type\":\"vlan\",\"cidr\":\"10.0.0.0/"
         "24\",\"vlan\":0,\"parent\":\"eth1\"}",
         NB_ERR_NETWORK_INVALID_VLAN},
        {"{\"name\":\"a\",\"type\":\"vlan\",\"cidr\":\"10.0.0.0/24\",\"vlan\":4095,"
         "\"parent\":\"eth1\"}",
         NB_ERR_NETWORK_INVALID_VLAN},
        {"{\"name\":\"a\",\"type\":\"isolated\",\"cidr\":\"10.0.0.0/24\",\"vlan\":5}",
         NB_ERR_NETWORK_INVALID_VLAN},
        /* interface names */
        {"{\"name\":\"a\",\"type\":\"vlan\",\"cidr\":\"10.0.0.0/24\",\"vlan\":5}",
         NB_ERR_NETWORK_INVALID_IFNAME},
        {"{\"name\":\"a\",\"type\":\"vlan\",\"cidr\":\"10.0.0.0/24\",\"vlan\":5,\"parent\":\"a "
         "b\"}",
         NB_ERR_NETWORK_INVALID_IFNAME},
        {"{\"name\":\"a\",\"type\":\"bridged\",\"cidr\":\"10.0.0.0/24\"}",
         NB_ERR_NETWORK_INVALID_IFNAME},
        {"{\"name\":\"a\",\"type\":\"bridged\",\"cidr\":\"10.0.0.0/24\",\"bridge\":\"a b\"}",
         NB_ERR_NETWORK_INVALID_IFNAME},
        {"{\"name\":\"a\",\"type\":\"bridged\",\"cidr\":\"10.0.0.0/24\",\"bridge\":\"../x\"}",
         NB_ERR_NETWORK_INVALID_IFNAME},
        {"{\"name\":\"a\",\"type\":\"bridged\",\"cidr\":\"10.0.0.0/24\","
         "\"bridge\":\"1234567890123456\"}",
         NB_ERR_NETWORK_INVALID_IFNAME},
        {"{\"name\":\"a\",\"type\":\"bridged\",\"cidr\":\"10.0.0.0/24\",\"bridge\":\"br\\u00000\"}",
         NB_ERR_NETWORK_INVALID_IFNAME},
        {"{\"name\":\"a\",\"type\":\"bridged\",\"cidr\":\"10.0.0.0/24\",\"bridge\":7}",
         NB_ERR_NETWORK_INVALID_IFNAME},
        {"{\"name\":\"a\",\"cidr\":\"10.0.0.0/24\",\"bridge\":\"br0\"}",
         NB_ERR_NETWORK_INVALID_IFNAME},
        {"{\"name\":\"a\",\"type\":\"vxlan\",\"vni\":5,\"cidr\":\"10.0.0.0/24\","
         "\"parent\":\"eth0\"}",
         NB_ERR_NETWORK_INVALID_IFNAME},
        /* mtu */
        {"{\"name\":\"a\",\"cidr\":\"10.0.0.0/24\",\"mtu\":575}", NB_ERR_NETWORK_INVALID_MTU},
        {"{\"name\":\"a\",\"cidr\":\"10.0.0.0/24\",\"mtu\":9001}", NB_ERR_NETWORK_INVALID_MTU},
        {"{\"name\":\"a\",\"cidr\":\"10.0.0.0/24\",\"mtu\":\"1500\"}", NB_ERR_NETWORK_INVALID_MTU},
        {"{\"name\":\"a\",\"cidr\":\"10.0.0.0/24\",\"mtu\":true}", NB_ERR_NETWORK_INVALID_MTU},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        json_t *j = parse(bad[i].body);
        Network n;
        NbError *err = NULL;
        if (network_from_request(j, &n, &err) != -1)
            fail_msg("accepted: %s", bad[i].body);
        assert_non_null(err);
        if (strcmp(err->code, bad[i].code) != 0)
            fail_msg("%s: got %s (%s), want %s", bad[i].body, err->code, err->message, bad[i].code);
        nb_error_free(err);
        json_decref(j);
    }
    /* The limits themselves are fine. */
    const char *good[] = {
        "{\"name\":\"a\",\"cidr\":\"10.0.0.0/8\"}",
        "{\"name\":\"a\",\"cidr\":\"10.0.0.0/30\",\"gateway\":\"10.0.0.2\"}",
        "{\"name\":\"a\",\"cidr\":\"10.0.0.0/24\",\"mtu\":576}",
        "{\"name\":\"a\",\"type\":\"vxlan\",\"cidr\":\"10.0.0.0/24\",\"vni\":1}",
        "{\"name\":\"a\",\"type\":\"vlan\",\"cidr\":\"10.0.0.0/24\",\"vlan\":1,\"parent\":\"e\"}",
        ("{\"name\":\"a\",\"type\":\"bridged\",\"cidr\":\"10.0.0.0/8\","
         "\"bridge\":\"123456789012345\"}"),
        "{\"name\":\"a\",\"cidr\":\"10.0.0.0/24\",\"vni\":null,\"gateway\":null,\"dns\":null}",
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        json_t *j = parse(good[i]);
        Network n;
        NbError *err = NULL;
        if (network_from_request(j, &n, &err) != 0)
            fail_msg("refused: %s (%s)", good[i], err->message);
        json_decref(j);
    }
}

static void
test_port_json(void **state)
{
    Port p = {.id = "port-1",
              .network_id = "net-1",
              .vm_id = "vm-1",
              .slot = 2,
              .mac = "52:54:00:12:34:56",
              .ip = IP(10, 0, 0, 7),
              .created_at = "2026-01-01T00:00:00.000Z",
              .net_in_kbit = 8000,
              .net_out_kbit = 0};
    json_t *j = port_to_json(&p);
    char *text = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
    assert_string_equal(text, "{\"created_at\":\"2026-01-01T00:00:00.000Z\",\"id\":\"port-1\","
                              "\"ip\":\"10.0.0.7\",\"mac\":\"52:54:00:12:34:56\","
                              "\"net_in_mbit\":8,\"net_out_mbit\":0,"
                              "\"network_id\":\"net-1\",\"slot\":2,\"vm_id\":\"vm-1\"}");
    free(text);
    json_decref(j);
}

static void
test_nic_request(void **state)
{
    NicRequest r;
    NbError *err = NULL;
    json_t *j = parse("{\"network\":\"app\",\"ip\":\"10.10.0.50\"}");
    assert_int_equal(nic_request_parse(j, &r, &err), 0);
    assert_string_equal(r.network, "app");
    assert_int_equal(r.ip, IP(10, 10, 0, 50));
    json_decref(j);
    j = parse("{\"network\":\"0123abcd-ef01-4567-89ab-cdef01234567\"}");
    assert_int_equal(nic_request_parse(j, &r, &err), 0);
    assert_int_equal(r.ip, 0);
    json_decref(j);
    static const BadNet bad[] = {
        {"\"app\"", NB_ERR_INVALID_REQUEST},
        {"{}", NB_ERR_INVALID_REQUEST},
        {"{\"network\":\"app\",\"mac\":\"52:54:00:00:00:01\"}", NB_ERR_INVALID_REQUEST},
        {"{\"network\":5}", NB_ERR_INVALID_REQUEST},
        {"{\"network\":\"a b\"}", NB_ERR_INVALID_REQUEST},
        {"{\"network\":\"../etc\"}", NB_ERR_INVALID_REQUEST},
        {"{\"network\":\"app\",\"ip\":5}", NB_ERR_INVALID_REQUEST},
        {"{\"network\":\"app\",\"ip\":\"1.2.3\"}", NB_ERR_IP_INVALID},
        {"{\"network\":\"app\",\"ip\":\"010.0.0.1\"}", NB_ERR_IP_INVALID},
        {"{\"network\":\"app\",\"ip\":\"0.0.0.0\"}", NB_ERR_IP_INVALID},
        {"{\"network\":\"app\",\"ip\":\"\"}", NB_ERR_IP_INVALID},
        {"{\"network\":\"app\",\"ip\":\" 10.0.0.1\"}", NB_ERR_IP_INVALID},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        j = parse(bad[i].body);
        if (nic_request_parse(j, &r, &err) != -1)
            fail_msg("accepted: %s", bad[i].body);
        if (strcmp(err->code, bad[i].code) != 0)
            fail_msg("%s: got %s (%s), want %s", bad[i].body, err->code, err->message, bad[i].code);
        nb_error_free(err);
        err = NULL;
        json_decref(j);
    }
}

static void
test_vm_request_networks(void **state)
{
    VmCreateRequest r;
    NbError *err = NULL;
    json_t *j = parse("{\"name\":\"web1\",\"image\":\"tiny\",\"flavor\":\"small\","
                      "\"networks\":[{\"network\":\"app\"},{\"network\":\"app\"},"
                      "{\"network\":\"ext\",\"ip\":\"192.0.2.10\"},"
                      "{\"network\":\"app\",\"ip\":\"192.0.2.10\"}]}");
    assert_int_equal(vm_create_request_parse(j, &r, &err), 0);
    assert_int_equal(r.n_nics, 4);
    assert_string_equal(r.nics[0].network, "app");
    assert_int_equal(r.nics[0].ip, 0);
    assert_string_equal(r.nics[2].network, "ext");
    assert_int_equal(r.nics[2].ip, IP(192, 0, 2, 10));
    vm_create_request_clear(&r);
    json_decref(j);
    j = parse("{\"name\":\"web1\",\"image\":\"tiny\",\"flavor\":\"small\",\"networks\":null}");
    assert_int_equal(vm_create_request_parse(j, &r, &err), 0);
    assert_int_equal(r.n_nics, 0);
    vm_create_request_clear(&r);
    json_decref(j);

    static const BadNet bad[] = {
        {"[]", NB_ERR_INVALID_REQUEST},
        {"{}", NB_ERR_INVALID_REQUEST},
        {"\"app\"", NB_ERR_INVALID_REQUEST},
        {"[\"app\"]", NB_ERR_INVALID_REQUEST},
        {"[{\"network\":\"app\",\"ip\":\"1.2.3.4.5\"}]", NB_ERR_IP_INVALID},
        {"[{\"network\":\"ext\",\"ip\":\"192.0.2.10\"},{\"network\":\"ext\",\"ip\":\"192.0.2.10\"}"
         "]",
         NB_ERR_INVALID_REQUEST},
        {"[{\"network\":\"a\"},{\"network\":\"a\"},{\"network\":\"a\"},{\"network\":\"a\"},"
         "{\"network\":\"a\"},{\"network\":\"a\"},{\"network\":\"a\"},{\"network\":\"a\"},"
         "{\"network\":\"a\"}]",
         NB_ERR_TOO_MANY_NICS},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char body[1024];
        snprintf(body, sizeof(body),
                 "{\"name\":\"web1\",\"image\":\"tiny\",\"flavor\":\"small\",\"networks\":%s}",
                 bad[i].body);
        j = parse(body);
        if (vm_create_request_parse(j, &r, &err) != -1)
            fail_msg("accepted: %s", body);
        if (strcmp(err->code, bad[i].code) != 0)
            fail_msg("%s: got %s (%s), want %s", body, err->code, err->message, bad[i].code);
        nb_error_free(err);
        err = NULL;
        json_decref(j);
    }
    /* Eight is the most, and fine. */
    j = parse("{\"name\":\"web1\",\"image\":\"tiny\",\"flavor\":\"small\",\"networks\":["
              "{\"network\":\"a\"},{\"network\":\"a\"},{\"network\":\"a\"},{\"network\":\"a\"},"
              "{\"network\":\"a\"},{\"network\":\"a\"},{\"network\":\"a\"},{\"network\":\"b\"}]}");
    assert_int_equal(vm_create_request_parse(j, &r, &err), 0);
    assert_int_equal(r.n_nics, 8);
    assert_string_equal(r.nics[7].network, "b");
    vm_create_request_clear(&r);
    json_decref(j);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ipv4_parse),
        cmocka_unit_test(test_cidr),
        cmocka_unit_test(test_assignable),
        cmocka_unit_test(test_ifname),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_network_request_defaults),
        cmocka_unit_test(test_network_request_full),
        cmocka_unit_test(test_network_request_errors),
        cmocka_unit_test(test_port_json),
        cmocka_unit_test(test_nic_request),
        cmocka_unit_test(test_vm_request_networks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
