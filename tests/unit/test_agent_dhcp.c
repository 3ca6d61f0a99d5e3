/* The agent's DHCP servers without privileges: the decoding of PUT /v1/dhcp/{key} (every bad
 * field refused with its code), and what a server becomes, as golden text: dnsmasq's argv and its
 * hosts file. Regenerate with NIMBUS_GOLDEN_UPDATE=1. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "golden.h"

#include "agent/agent_dhcp.h"
#include "util/error_codes.h"

/* The agent's goldens are under tests/golden/agent/. */
static void
check_golden(const char *name, const char *text)
{
    char rel[256];
    snprintf(rel, sizeof(rel), "agent/%s", name);
    golden_check(rel, text);
}

static const char *const full_body =
    "{\"bridge\": \"nbr0123456789ab\", \"mac\": \"52:54:00:AA:00:02\", \"address\": "
    "\"10.63.0.21\", \"prefix\": 24, \"router\": \"10.63.0.1\", \"dns\": [\"1.1.1.1\", "
    "\"9.9.9.9\"], \"mtu\": 1450, \"hosts\": [{\"mac\": \"52:54:00:00:00:20\", \"ip\": "
    "\"10.63.0.20\"}, {\"mac\": \"52:54:00:00:00:10\", \"ip\": \"10.63.0.10\"}]}";

static int
decode(const char *text, const char *key, AgentDhcp *d, NbError **err)
{
    json_t *j = json_loads(text, 0, NULL);
    assert_non_null(j);
    int r = agent_dhcp_from_json(j, key, d, err);
    json_decref(j);
    return r;
}

static char *
argv_text(char **argv)
{
    size_t len = 1;
    for (size_t i = 0; argv[i]; i++)
        len += strlen(argv[i]) + 1;
    char *s = calloc(1, len);
    size_t at = 0;
    for (size_t i = 0; argv[i]; i++) {
        size_t n = strlen(argv[i]);
        memcpy(s + at, argv[i], n);
        s[at + n] = '\n';
        at += n + 1;
    }
    return s;
}

static void
test_vxlan_server(void **state)
{
    AgentDhcp d;
    NbError *err = NULL;
    assert_int_equal(decode(full_body, "0123456789ab", &d, &err), 0);
    assert_string_equal(d.mac, "52:54:00:aa:00:02"); /* lower-cased */
    assert_int_equal(d.lease_s, 86400);
    char **argv = agent_dhcp_argv(&d, "/usr/sbin/dnsmasq", "/var/lib/nimbus-agent");
    assert_non_null(argv);
    char *text = argv_text(argv);
    check_golden("dhcp_vxlan_argv.txt", text);
    free(text);
    agent_dhcp_argv_free(argv);
    /* Sorted by MAC: the file does not change with the order nimbusd lists the ports in. */
    char *hosts = agent_dhcp_hosts_text(&d);
    check_golden("dhcp_vxlan_hosts.txt", hosts);
    free(hosts);
    char host_side[16], ns_side[16];
    agent_dhcp_ifnames(d.key, host_side, ns_side);
    assert_string_equal(host_side, "nbd0123456789ab");
    assert_string_equal(ns_side, "nbe0123456789ab");
    /* What it answers and saves decodes to the same server. */
    json_t *j = agent_dhcp_to_json(&d);
    AgentDhcp again;
    assert_int_equal(agent_dhcp_from_json(j, "0123456789ab", &again, &err), 0);
    json_decref(j);
    assert_true(agent_dhcp_same_server(&d, &again));
    assert_int_equal(again.n_hosts, 2);
    agent_dhcp_clear(&again);
    agent_dhcp_clear(&d);
}

static void
test_bridged_server_without_router_or_dns(void **state)
{
    AgentDhcp d;
    NbError *err = NULL;
    assert_int_equal(decode("{\"bridge\": \"br0\", \"mac\": \"52:54:00:00:00:03\", \"address\": "
                            "\"192.0.2.3\", \"prefix\": 24, \"hosts\": []}",
                            "aaaaaaaaaaaa", &d, &err),
                     0);
    char **argv = agent_dhcp_argv(&d, "/usr/sbin/dnsmasq", "/state");
    char *text = argv_text(argv);
    /* Empty options: dnsmasq offers no router and no DNS server (not its own address). */
    check_golden("dhcp_bridged_argv.txt", text);
    free(text);
    agent_dhcp_argv_free(argv);
    char *hosts = agent_dhcp_hosts_text(&d);
    assert_string_equal(hosts, "");
    free(hosts);
    agent_dhcp_clear(&d);
}

static void
test_bad_requests_refused(void **state)
{
    static const struct {
        const char *key, *body, *code;
    } cases[] = {
        {"0123456789AB", "{}", NB_ERR_NETWORK_INVALID_IFNAME},
        {"0123456789a", "{}", NB_ERR_NETWORK_INVALID_IFNAME},
        {"0123456789ab", "[]", NB_ERR_INVALID_REQUEST},
        {"0123456789ab",
         "{\"bridge\": \"eth0/1\", \"mac\": \"52:54:00:00:00:03\", \"address\": \"10.0.0.2\", "
         "\"prefix\": 24, \"hosts\": []}",
         NB_ERR_NETWORK_INVALID_IFNAME},
        {"0123456789ab",
         "{\"bridge\": \"br0\", \"mac\": \"01:54:00:00:00:03\", \"address\": \"10.0.0.2\", "
         "\"prefix\": 24, \"hosts\": []}",
         NB_ERR_INVALID_REQUEST},
        {"0123456789ab",
         "{\"bridge\": \"br0\", \"mac\": \"52:54:00:00:00:03\", \"address\": \"10.0.0.0\", "
         "\"prefix\": 24, \"hosts\": []}",
         NB_ERR_IP_INVALID},
        {"0123456789ab",
         "{\"bridge\": \"br0\", \"mac\": \"52:54:00:00:00:03\", \"address\": \"10.0.0.2\", "
         "\"prefix\": 31, \"hosts\": []}",
         NB_ERR_INVALID_REQUEST},
        {"0123456789ab",
         "{\"bridge\": \"br0\", \"mac\": \"52:54:00:00:00:03\", \"address\": \"10.0.0.2\", "
         "\"prefix\": 24, \"router\": \"10.0.1.1\", \"hosts\": []}",
         NB_ERR_IP_INVALID},
        {"0123456789ab",
         "{\"bridge\": \"br0\", \"mac\": \"52:54:00:00:00:03\", \"address\": \"10.0.0.2\", "
         "\"prefix\": 24, \"mtu\": 100, \"hosts\": []}",
         NB_ERR_NETWORK_INVALID_MTU},
        {"0123456789ab",
         "{\"bridge\": \"br0\", \"mac\": \"52:54:00:00:00:03\", \"address\": \"10.0.0.2\", "
         "\"prefix\": 24, \"hosts\": [{\"mac\": \"52:54:00:00:00:04\", \"ip\": \"10.0.1.4\"}]}",
         NB_ERR_IP_INVALID},
        {"0123456789ab",
         "{\"bridge\": \"br0\", \"mac\": \"52:54:00:00:00:03\", \"address\": \"10.0.0.2\", "
         "\"prefix\": 24, \"hosts\": [{\"mac\": \"52:54:00:00:00:04\", \"ip\": \"10.0.0.4\"}, "
         "{\"mac\": \"52:54:00:00:00:04\", \"ip\": \"10.0.0.5\"}]}",
         NB_ERR_INVALID_REQUEST},
        {"0123456789ab",
         "{\"bridge\": \"br0\", \"mac\": \"52:54:00:00:00:03\", \"address\": \"10.0.0.2\", "
         "\"prefix\": 24, \"hosts\": [], \"extra\": 1}",
         NB_ERR_INVALID_REQUEST},
        {"0123456789ab",
         "{\"bridge\": \"br0\", \"mac\": \"52:54:00:00:00:03\", \"address\": \"10.0.0.2\", "
         "\"prefix\": 24, \"hosts\": [{\"mac\": \"52:54:00:00:00:04\", \"ip\": \"10.0.0.4\", "
         "\"name\": \"x\"}]}",
         NB_ERR_INVALID_REQUEST},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        AgentDhcp d;
        NbError *err = NULL;
        json_t *j = json_loads(cases[i].body, 0, NULL);
        assert_non_null(j);
        if (agent_dhcp_from_json(j, cases[i].key, &d, &err) == 0)
            fail_msg("case %zu accepted", i);
        json_decref(j);
        if (strcmp(err->code, cases[i].code) != 0)
            fail_msg("case %zu: %s (%s), want %s", i, err->code, err->message, cases[i].code);
        nb_error_free(err);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vxlan_server),
        cmocka_unit_test(test_bridged_server_without_router_or_dns),
        cmocka_unit_test(test_bad_requests_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
