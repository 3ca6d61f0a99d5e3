/* Security groups and rules: strict decoding (every bad input refused with its stable code),
 * JSON encoding, Neutron's defaults. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "model/secgroup.h"
#include "util/error_codes.h"
#include "util/strutil.h"

static json_t *
parse(const char *text)
{
    json_error_t jerr;
    json_t *j = json_loads(text, 0, &jerr);
    if (!j)
        fail_msg("bad test JSON %s: %s", text, jerr.text);
    return j;
}

static int
rule_parse(const char *text, SecRule *r, NbError **err)
{
    json_t *j = parse(text);
    int rc = secrule_from_request(j, r, err);
    json_decref(j);
    return rc;
}

static void
expect_rule_invalid(const char *text)
{
    SecRule r;
    NbError *err = NULL;
    if (rule_parse(text, &r, &err) == 0)
        fail_msg("accepted: %s", text);
    assert_non_null(err);
    if (!streq(err->code, NB_ERR_SECGROUP_RULE_INVALID))
        fail_msg("%s: code %s, not SECGROUP_RULE_INVALID", text, err->code);
    nb_error_free(err);
}

static void
test_rule_valid(void **state)
{
    (void)state;
    SecRule r;
    NbError *err = NULL;
    assert_int_equal(rule_parse("{\"direction\":\"ingress\",\"protocol\":\"tcp\",\"port_min\":80,"
                                "\"cidr\":\"10.0.0.0/8\",\"ethertype\":\"IPv4\"}",
                                &r, &err),
                     0);
    assert_int_equal(r.direction, SECRULE_INGRESS);
    assert_int_equal(r.protocol, SECRULE_PROTO_TCP);
    assert_int_equal(r.port_min, 80);
    assert_int_equal(r.port_max, 80); /* defaults to port_min */
    assert_int_equal(r.remote_net, 0x0a000000u);
    assert_int_equal(r.remote_prefix, 8);
    assert_string_equal(r.remote_group, "");

    assert_int_equal(rule_parse("{\"direction\":\"egress\",\"protocol\":\"udp\",\"port_min\":1,"
                                "\"port_max\":65535,\"remote_group\":\"db\"}",
                                &r, &err),
                     0);
    assert_int_equal(r.direction, SECRULE_EGRESS);
    assert_int_equal(r.port_min, 1);
    assert_int_equal(r.port_max, 65535);
    assert_string_equal(r.remote_group, "db");
    assert_int_equal(r.remote_prefix, 0);

    /* Defaults: any protocol, every port, from anywhere. 0.0.0.0/0 and /32 are fine. */
    assert_int_equal(rule_parse("{\"direction\":\"ingress\"}", &r, &err), 0);
    assert_int_equal(r.protocol, SECRULE_PROTO_ANY);
    assert_int_equal(r.port_min, 0);
    assert_int_equal(r.remote_net, 0);
    assert_int_equal(r.remote_prefix, 0);
    assert_int_equal(rule_parse("{\"direction\":\"ingress\",\"protocol\":\"icmp\","
                                "\"cidr\":\"0.0.0.0/0\"}",
                                &r, &err),
                     0);
    assert_int_equal(rule_parse("{\"direction\":\"ingress\",\"cidr\":\"192.0.2.7/32\"}", &r, &err),
                     0);
    assert_int_equal(r.remote_net, 0xc0000207u);
    assert_int_equal(r.remote_prefix, 32);
}

static void
test_rule_invalid(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "{\"direction\":\"ingress\",\"protocol\":\"tcp\",\"port_min\":0}",
        "{\"direction\":\"ingress\",\"protocol\":\"tcp\",\"port_min\":65536}",
        "{\"direction\":\"ingress\",\"protocol\":\"tcp\",\"port_min\":1,\"port_max\":65536}",
        "{\"direction\":\"ingress\",\"protocol\":\"tcp\",\"port_min\":-1}",
        "{\"direction\":\"ingress\",\"protocol\":\"tcp\",\"port_min\":\"80\"}",
        "{\"direction\":\"ingress\",\"protocol\":\"tcp\",\"port_min\":90,\"port_max\":80}",
        "{\"direction\":\"ingress\",\"protocol\":\"tcp\",\"port_max\":80}",
        "{\"direction\":\"ingress\",\"protocol\":\"icmp\",\"port_min\":8}",
        "{\"direction\":\"ingress\",\"port_min\":22}",
        "{\"direction\":\"ingress\",\"protocol\":\"any\",\"port_min\":22}",
        "{\"direction\":\"ingress\",\"cidr\":\"10.0.0.0/8\",\"remote_group\":\"db\"}",
        "{\"direction\":\"ingress\",\"cidr\":\"10.0.0.1/8\"}",
        "{\"direction\":\"ingress\",\"cidr\":\"10.0.0.0/33\"}",
        "{\"direction\":\"ingress\",\"cidr\":\"10.0.0.0\"}",
        "{\"direction\":\"ingress\",\"cidr\":\"300.0.0.0/8\"}",
        "{\"direction\":\"ingress\",\"cidr\":\"\"}",
        "{\"direction\":\"ingress\",\"cidr\":8}",
        "{\"direction\":\"ingress\",\"remote_group\":\"not a name\"}",
        "{\"direction\":\"ingress\",\"ethertype\":\"IPv6\"}",
        "{\"direction\":\"inbound\"}",
        "{\"protocol\":\"tcp\"}",
        "{\"direction\":\"ingress\",\"protocol\":\"sctp\"}",
        "{\"direction\":\"ingress\",\"port\":22}",
        "[]",
    };
    for (size_t i = 0; i < ELEMENTSOF(bad); i++)
        expect_rule_invalid(bad[i]);
}

static void
test_rule_json(void **state)
{
    (void)state;
    SecRule r;
    NbError *err = NULL;
    assert_int_equal(rule_parse("{\"direction\":\"ingress\",\"protocol\":\"tcp\",\"port_min\":80,"
                                "\"port_max\":81,\"cidr\":\"10.1.0.0/16\"}",
                                &r, &err),
                     0);
    snprintf(r.id, sizeof(r.id), "11111111-1111-4111-8111-111111111111");
    snprintf(r.group_id, sizeof(r.group_id), "22222222-2222-4222-8222-222222222222");
    snprintf(r.created_at, sizeof(r.created_at), "2026-01-01T00:00:00.000Z");
    json_t *j = secrule_to_json(&r);
    char *text = json_dumps(j, JSON_SORT_KEYS | JSON_COMPACT);
    assert_string_equal(text,
                        "{\"cidr\":\"10.1.0.0/16\",\"created_at\":\"2026-01-01T00:00:00.000Z\","
                        "\"direction\":\"ingress\",\"ethertype\":\"IPv4\",\"group_id\":"
                        "\"22222222-2222-4222-8222-222222222222\",\"id\":"
                        "\"11111111-1111-4111-8111-111111111111\",\"port_max\":81,"
                        "\"port_min\":80,\"protocol\":\"tcp\",\"remote_group\":null}");
    free(text);
    json_decref(j);
    /* A remote group rule: no cidr, no ports. */
    SecRule defaults[2];
    secgroup_default_rules(r.group_id, defaults);
    j = secrule_to_json(&defaults[1]);
    assert_true(json_is_null(json_object_get(j, "cidr")));
    assert_true(json_is_null(json_object_get(j, "port_min")));
    assert_string_equal(json_string_value(json_object_get(j, "remote_group")), r.group_id);
    json_decref(j);
    j = secrule_to_json(&defaults[0]);
    assert_string_equal(json_string_value(json_object_get(j, "cidr")), "0.0.0.0/0");
    assert_string_equal(json_string_value(json_object_get(j, "direction")), "egress");
    assert_string_equal(json_string_value(json_object_get(j, "protocol")), "any");
    json_decref(j);
}

static void
test_defaults_and_same(void **state)
{
    (void)state;
    SecRule d[2], r;
    NbError *err = NULL;
    secgroup_default_rules("g1", d);
    assert_int_equal(d[0].direction, SECRULE_EGRESS);
    assert_string_equal(d[0].remote_group, "");
    assert_int_equal(d[0].remote_prefix, 0);
    assert_int_equal(d[1].direction, SECRULE_INGRESS);
    assert_string_equal(d[1].remote_group, "g1");
    assert_string_equal(d[1].group_id, "g1");
    assert_int_equal(rule_parse("{\"direction\":\"egress\",\"cidr\":\"0.0.0.0/0\"}", &r, &err), 0);
    assert_true(secrule_same(&r, &d[0]));
    assert_false(secrule_same(&r, &d[1]));
    r.protocol = SECRULE_PROTO_TCP;
    assert_false(secrule_same(&r, &d[0]));
}

static void
test_group_request(void **state)
{
    (void)state;
    SecGroup g;
    NbError *err = NULL;
    json_t *j = parse("{\"name\":\"web\",\"description\":\"front ends\"}");
    assert_int_equal(secgroup_from_request(j, &g, &err), 0);
    json_decref(j);
    assert_string_equal(g.name, "web");
    assert_string_equal(g.description, "front ends");
    j = parse("{\"name\":\"web\",\"rules\":[]}");
    assert_int_equal(secgroup_from_request(j, &g, &err), -1);
    json_decref(j);
    assert_string_equal(err->code, NB_ERR_INVALID_REQUEST);
    nb_error_free(err);
    err = NULL;
    j = parse("{\"name\":\"bad name\"}");
    assert_int_equal(secgroup_from_request(j, &g, &err), -1);
    json_decref(j);
    assert_string_equal(err->code, NB_ERR_INVALID_NAME);
    nb_error_free(err);
    err = NULL;
    snprintf(g.id, sizeof(g.id), "33333333-3333-4333-8333-333333333333");
    snprintf(g.project, sizeof(g.project), "p");
    snprintf(g.created_at, sizeof(g.created_at), "2026-01-01T00:00:00.000Z");
    j = secgroup_to_json(&g, NULL, 0);
    assert_null(json_object_get(j, "rules"));
    assert_string_equal(json_string_value(json_object_get(j, "description")), "front ends");
    json_decref(j);
    SecRule d[2];
    secgroup_default_rules(g.id, d);
    j = secgroup_to_json(&g, d, 2);
    assert_int_equal(json_array_size(json_object_get(j, "rules")), 2);
    json_decref(j);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rule_valid),    cmocka_unit_test(test_rule_invalid),
        cmocka_unit_test(test_rule_json),     cmocka_unit_test(test_defaults_and_same),
        cmocka_unit_test(test_group_request),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
