/* nimbus-agent's model: names, VNIs, addresses, strict request decoding, the state file and the
 * secret file, with many bad inputs. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "agent/agent_ipset.h"
#include "agent/agent_model.h"
#include "util/cleanup.h"
#include "util/strutil.h"

static void
test_names(void **state)
{
    assert_true(agent_bridge_name_is_valid("nbr0123456789ab"));
    assert_true(agent_tap_name_is_valid("nbt000000000001"));
    static const char *const bad_bridges[] = {
        "",
        "nbr",
        "nbr0123456789a",
        "nbr0123456789abc",
        "nbr0123456789AB",
        "eth0",
        "nbt0123456789ab",
        "nbr0123456789a/",
        "nbr 123456789ab",
        "nbr0123456789ag",
        "NBR0123456789ab",
        "br0",
        "nbr-123456789ab",
        "nbr0123456789a\n",
    };
    for (size_t i = 0; i < ELEMENTSOF(bad_bridges); i++)
        assert_false(agent_bridge_name_is_valid(bad_bridges[i]));
    assert_false(agent_bridge_name_is_valid(NULL));
    assert_false(agent_tap_name_is_valid("nbr0123456789ab"));
    assert_false(agent_tap_name_is_valid("eth0"));
    assert_false(agent_tap_name_is_valid("vnet0"));
    assert_false(agent_tap_name_is_valid("nbt00000000000"));

    assert_true(agent_underlay_name_is_valid("eth0"));
    assert_true(agent_underlay_name_is_valid("enp0s3.100"));
    assert_true(agent_underlay_name_is_valid("br-ex_1"));
    static const char *const bad_dev[] = {
        "",
        ".",
        "..",
        "-eth0",
        "eth0/1",
        "eth 0",
        "a123456789012345",
        "nbr0123456789ab",
        "nbx4242",
        "nbt000000000001",
        "nbi000000000001",
        "eth0\n",
        "ëth0",
    };
    for (size_t i = 0; i < ELEMENTSOF(bad_dev); i++)
        assert_false(agent_underlay_name_is_valid(bad_dev[i]));

    char name[AGENT_IFNAME_MAX + 1];
    agent_vxlan_ifname(16777215, name);
    assert_string_equal(name, "nbx16777215");
    agent_ifb_ifname("nbt0123456789ab", name);
    assert_string_equal(name, "nbi0123456789ab");
}

static void
test_vni(void **state)
{
    unsigned v = 0;
    assert_int_equal(agent_vni_parse("1", &v), 0);
    assert_int_equal(v, 1);
    assert_int_equal(agent_vni_parse("16777215", &v), 0);
    assert_int_equal(v, 16777215);
    static const char *const bad[] = {"0",
                                      "16777216",
                                      "-1",
                                      "+5",
                                      "01",
                                      "4242 ",
                                      " 4242",
                                      "",
                                      "0x10",
                                      "1e3",
                                      "99999999999999999999",
                                      "42a"};
    for (size_t i = 0; i < ELEMENTSOF(bad); i++)
        assert_int_equal(agent_vni_parse(bad[i], &v), -EINVAL);
}

static void
test_ipv4(void **state)
{
    uint32_t ip = 0;
    char out[16];
    assert_int_equal(agent_ipv4_parse("10.79.0.11", &ip), 0);
    assert_int_equal(ip, 0x0a4f000b);
    agent_ipv4_format(ip, out);
    assert_string_equal(out, "10.79.0.11");
    assert_int_equal(agent_ipv4_parse("255.255.255.255", &ip), 0);
    static const char *const bad[] = {"10.0.0",    "10.0.0.0.1", "256.1.1.1", "10.01.0.1",
                                      "10.0.0.-1", " 10.0.0.1",  "10.0.0.1 ", "1.2.3.4/24",
                                      "a.b.c.d",   "",           "10..0.1",   "1000.1.1.1"};
    for (size_t i = 0; i < ELEMENTSOF(bad); i++)
        assert_int_equal(agent_ipv4_parse(bad[i], &ip), -EINVAL);
    assert_true(agent_ipv4_is_unicast(0x0a000001));
    assert_false(agent_ipv4_is_unicast(0));
    assert_false(agent_ipv4_is_unicast(0x7f000001));
    assert_false(agent_ipv4_is_unicast(0xe0000001));
    assert_false(agent_ipv4_is_unicast(0xffffffff));
}

static json_t *
parse(const char *text)
{
    json_t *j = json_loads(text, 0, NULL);
    assert_non_null(j);
    return j;
}

static void
expect_vxlan_error(const char *text, unsigned vni, const char *code)
{
    json_t *j = parse(text);
    AgentVxlan v;
    _cleanup_error_ NbError *err = NULL;
    if (agent_vxlan_from_json(j, vni, &v, &err) == 0)
        fail_msg("accepted: %s", text);
    assert_non_null(err);
    if (!streq(err->code, code))
        fail_msg("%s: got %s (%s), want %s", text, err->code, err->message, code);
    json_decref(j);
}

#define GOOD_VX                                                                                    \
    "\"bridge\":\"nbr0123456789ab\",\"mtu\":1450,\"local\":\"10.79.0.11\",\"dev\":\"eth0\""

static void
test_vxlan_decode(void **state)
{
    json_t *j = parse("{" GOOD_VX ",\"peers\":[\"10.79.0.13\",\"10.79.0.12\"]}");
    AgentVxlan v;
    _cleanup_error_ NbError *err = NULL;
    assert_int_equal(agent_vxlan_from_json(j, 4242, &v, &err), 0);
    assert_int_equal(v.vni, 4242);
    assert_string_equal(v.bridge, "nbr0123456789ab");
    assert_int_equal(v.mtu, 1450);
    assert_int_equal(v.local, 0x0a4f000b);
    assert_string_equal(v.dev, "eth0");
    assert_int_equal(v.n_peers, 2);
    assert_int_equal(v.peers[0], 0x0a4f000c); /* sorted */
    json_t *out = agent_vxlan_to_json(&v);
    assert_string_equal(json_string_value(json_object_get(out, "device")), "nbx4242");
    assert_string_equal(json_string_value(json_array_get(json_object_get(out, "peers"), 1)),
                        "10.79.0.13");
    json_decref(out);
    agent_vxlan_clear(&v);
    json_decref(j);

    j = parse("{" GOOD_VX ",\"peers\":[]}");
    assert_int_equal(agent_vxlan_from_json(j, 1, &v, &err), 0);
    assert_int_equal(v.n_peers, 0);
    agent_vxlan_clear(&v);
    json_decref(j);

    expect_vxlan_error("[]", 1, "INVALID_REQUEST");
    expect_vxlan_error("{" GOOD_VX ",\"peers\":[],\"learning\":true}", 1, "INVALID_REQUEST");
    expect_vxlan_error("{" GOOD_VX "}", 1, "INVALID_REQUEST");
    expect_vxlan_error("{" GOOD_VX ",\"peers\":\"10.0.0.1\"}", 1, "INVALID_REQUEST");
    expect_vxlan_error("{" GOOD_VX ",\"peers\":[]}", 0, "NETWORK_INVALID_VNI");
    expect_vxlan_error("{" GOOD_VX ",\"peers\":[]}", 16777216, "NETWORK_INVALID_VNI");
    expect_vxlan_error("{" GOOD_VX ",\"peers\":[1]}", 1, "IP_INVALID");
    expect_vxlan_error("{" GOOD_VX ",\"peers\":[\"10.79.0.11\"]}", 1, "IP_INVALID");
    expect_vxlan_error("{" GOOD_VX ",\"peers\":[\"10.0.0.1\",\"10.0.0.1\"]}", 1, "IP_INVALID");
    expect_vxlan_error("{" GOOD_VX ",\"peers\":[\"224.0.0.1\"]}", 1, "IP_INVALID");
    expect_vxlan_error("{" GOOD_VX ",\"peers\":[\"10.0.0.256\"]}", 1, "IP_INVALID");
    expect_vxlan_error("{\"bridge\":\"eth0\",\"mtu\":1450,\"local\":\"10.79.0.11\","
                       "\"dev\":\"eth0\",\"peers\":[]}",
                       1, "NETWORK_INVALID_IFNAME");
    expect_vxlan_error("{\"bridge\":\"nbr0123456789a\",\"mtu\":1450,\"local\":\"10.79.0.11\","
                       "\"dev\":\"eth0\",\"peers\":[]}",
                       1, "NETWORK_INVALID_IFNAME");
    expect_vxlan_error("{\"bridge\":42,\"mtu\":1450,\"local\":\"10.79.0.11\","
                       "\"dev\":\"eth0\",\"peers\":[]}",
                       1, "INVALID_REQUEST");
    expect_vxlan_error("{\"bridge\":\"nbr0123456789ab\",\"mtu\":1450,\"local\":\"10.79.0.11\","
                       "\"dev\":\"nbr0123456789ab\",\"peers\":[]}",
                       1, "NETWORK_INVALID_IFNAME");
    expect_vxlan_error("{\"bridge\":\"nbr0123456789ab\",\"mtu\":1450,\"local\":\"10.79.0.11\","
                       "\"dev\":\"eth0;reboot\",\"peers\":[]}",
                       1, "NETWORK_INVALID_IFNAME");
    expect_vxlan_error("{\"bridge\":\"nbr0123456789ab\",\"mtu\":575,\"local\":\"10.79.0.11\","
                       "\"dev\":\"eth0\",\"peers\":[]}",
                       1, "NETWORK_INVALID_MTU");
    expect_vxlan_error("{\"bridge\":\"nbr0123456789ab\",\"mtu\":9001,\"local\":\"10.79.0.11\","
                       "\"dev\":\"eth0\",\"peers\":[]}",
                       1, "NETWORK_INVALID_MTU");
    expect_vxlan_error("{\"bridge\":\"nbr0123456789ab\",\"mtu\":-1,\"local\":\"10.79.0.11\","
                       "\"dev\":\"eth0\",\"peers\":[]}",
                       1, "INVALID_REQUEST");
    expect_vxlan_error("{\"bridge\":\"nbr0123456789ab\",\"mtu\":1450.5,\"local\":\"10.79.0.11\","
                       "\"dev\":\"eth0\",\"peers\":[]}",
                       1, "INVALID_REQUEST");
    expect_vxlan_error("{\"bridge\":\"nbr0123456789ab\",\"mtu\":1450,\"local\":\"0.0.0.0\","
                       "\"dev\":\"eth0\",\"peers\":[]}",
                       1, "IP_INVALID");
    expect_vxlan_error("{\"bridge\":\"nbr0123456789ab\",\"mtu\":1450,\"local\":\"localhost\","
                       "\"dev\":\"eth0\",\"peers\":[]}",
                       1, "IP_INVALID");
}

static void
test_vxlan_too_many_peers(void **state)
{
    json_t *j = parse("{" GOOD_VX "}");
    json_t *peers = json_array();
    char ip[16];
    for (unsigned i = 0; i <= AGENT_PEERS_MAX; i++) {
        agent_ipv4_format(0x0b000000u + i + 1, ip);
        json_array_append_new(peers, json_string(ip));
    }
    json_object_set_new(j, "peers", peers);
    AgentVxlan v;
    _cleanup_error_ NbError *err = NULL;
    assert_int_equal(agent_vxlan_from_json(j, 7, &v, &err), -1);
    assert_string_equal(err->code, "INVALID_REQUEST");
    json_decref(j);
}

static void
test_shaping_decode(void **state)
{
    json_t *j = parse("{\"in_kbit\":8000,\"out_kbit\":0}");
    AgentShaping s;
    _cleanup_error_ NbError *err = NULL;
    assert_int_equal(agent_shaping_from_json(j, "nbt000000000001", &s, &err), 0);
    assert_int_equal(s.in_kbit, 8000);
    assert_int_equal(s.out_kbit, 0);
    json_decref(j);

    static const struct {
        const char *tap, *body, *code;
    } bad[] = {
        {"eth0", "{\"in_kbit\":1,\"out_kbit\":1}", "NETWORK_INVALID_IFNAME"},
        {"nbr0123456789ab", "{\"in_kbit\":1,\"out_kbit\":1}", "NETWORK_INVALID_IFNAME"},
        {"nbt00000000001", "{\"in_kbit\":1,\"out_kbit\":1}", "NETWORK_INVALID_IFNAME"},
        {"nbt000000000001", "{\"in_kbit\":1}", "INVALID_REQUEST"},
        {"nbt000000000001", "{\"in_kbit\":-1,\"out_kbit\":1}", "INVALID_REQUEST"},
        {"nbt000000000001", "{\"in_kbit\":10000001,\"out_kbit\":1}", "INVALID_REQUEST"},
        {"nbt000000000001", "{\"in_kbit\":\"8000\",\"out_kbit\":1}", "INVALID_REQUEST"},
        {"nbt000000000001", "{\"in_kbit\":1,\"out_kbit\":1,\"burst\":1}", "INVALID_REQUEST"},
        {"nbt000000000001", "[1,2]", "INVALID_REQUEST"},
    };
    for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
        nb_error_free(TAKE_PTR(err));
        j = parse(bad[i].body);
        if (agent_shaping_from_json(j, bad[i].tap, &s, &err) == 0)
            fail_msg("accepted %s %s", bad[i].tap, bad[i].body);
        assert_string_equal(err->code, bad[i].code);
        json_decref(j);
    }
}

static void
put_vxlan(AgentState *s, unsigned vni, const char *bridge, const char *peers)
{
    char text[512];
    snprintf(text, sizeof(text),
             "{\"bridge\":\"%s\",\"mtu\":1450,\"local\":\"10.79.0.11\",\"dev\":\"eth0\","
             "\"peers\":%s}",
             bridge, peers);
    json_t *j = parse(text);
    AgentVxlan v;
    _cleanup_error_ NbError *err = NULL;
    assert_int_equal(agent_vxlan_from_json(j, vni, &v, &err), 0);
    assert_int_equal(agent_state_vxlan_put(s, &v), 0);
    assert_null(v.peers);
    json_decref(j);
}

static void
test_state_round_trip(void **state)
{
    char dir[] = "/tmp/test_agent_model.XXXXXX";
    assert_non_null(mkdtemp(dir));
    AgentState s = {0}, back = {0};
    _cleanup_error_ NbError *err = NULL;
    /* A missing file is an empty state. */
    assert_int_equal(agent_state_load(dir, &back, &err), 0);
    assert_int_equal(back.n_vxlans + back.n_shaping, 0);

    put_vxlan(&s, 4243, "nbr00000000beef", "[]");
    put_vxlan(&s, 4242, "nbr0123456789ab", "[\"10.79.0.12\",\"10.79.0.13\"]");
    put_vxlan(&s, 4242, "nbr0123456789ab", "[\"10.79.0.12\"]"); /* replaces */
    assert_int_equal(s.n_vxlans, 2);
    assert_int_equal(s.vxlans[0].vni, 4242);
    assert_non_null(agent_state_bridge_user(&s, "nbr00000000beef", 4242));
    assert_null(agent_state_bridge_user(&s, "nbr00000000beef", 4243));
    AgentShaping sh = {.tap = "nbt000000000002", .in_kbit = 8000, .out_kbit = 4000};
    assert_int_equal(agent_state_shaping_put(&s, &sh), 0);
    AgentShaping sh1 = {.tap = "nbt000000000001", .in_kbit = 0, .out_kbit = 100};
    assert_int_equal(agent_state_shaping_put(&s, &sh1), 0);
    assert_string_equal(s.shaping[0].tap, "nbt000000000001");

    assert_int_equal(agent_state_save(&s, dir), 0);
    _cleanup_free_ char *path = str_printf("%s/state.json", dir);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(agent_state_load(dir, &back, &err), 0);
    assert_int_equal(back.n_vxlans, 2);
    for (size_t i = 0; i < 2; i++)
        assert_true(agent_vxlan_equal(&s.vxlans[i], &back.vxlans[i]));
    assert_int_equal(back.n_shaping, 2);
    assert_memory_equal(back.shaping, s.shaping, 2 * sizeof(AgentShaping));

    AgentState copy;
    assert_int_equal(agent_state_copy(&s, &copy), 0);
    assert_true(agent_state_vxlan_remove(&copy, 4242));
    assert_false(agent_state_vxlan_remove(&copy, 4242));
    assert_true(agent_state_shaping_remove(&copy, "nbt000000000001"));
    assert_int_equal(s.n_vxlans, 2); /* the original is untouched */
    assert_int_equal(copy.n_vxlans, 1);
    assert_int_equal(copy.vxlans[0].vni, 4243);
    agent_state_clear(&copy);

    /* A damaged or foreign file is refused, never read as empty. */
    static const char *const bad_files[] = {
        "{",
        "{\"version\":2,\"vxlans\":[],\"shaping\":[]}",
        "{\"version\":1,\"vxlans\":[],\"shaping\":[],\"extra\":1}",
        "{\"version\":1,\"vxlans\":[{\"vni\":0,\"bridge\":\"nbr0123456789ab\",\"mtu\":1450,"
        "\"local\":\"10.0.0.1\",\"dev\":\"eth0\",\"peers\":[]}],\"shaping\":[]}",
        "{\"version\":1,\"vxlans\":[],\"shaping\":[{\"tap\":\"eth0\",\"in_kbit\":1,"
        "\"out_kbit\":1}]}",
        "{\"version\":1,\"vxlans\":[{\"vni\":5,\"bridge\":\"nbr0123456789ab\",\"mtu\":1450,"
        "\"local\":\"10.0.0.1\",\"dev\":\"eth0\",\"peers\":[]},{\"vni\":6,\"bridge\":"
        "\"nbr0123456789ab\",\"mtu\":1450,\"local\":\"10.0.0.1\",\"dev\":\"eth0\",\"peers\":[]}],"
        "\"shaping\":[]}",
    };
    for (size_t i = 0; i < ELEMENTSOF(bad_files); i++) {
        FILE *f = fopen(path, "w");
        assert_non_null(f);
        fputs(bad_files[i], f);
        fclose(f);
        nb_error_free(TAKE_PTR(err));
        AgentState junk = {0};
        if (agent_state_load(dir, &junk, &err) != -EBADMSG)
            fail_msg("loaded bad file %zu", i);
    }
    agent_state_clear(&s);
    agent_state_clear(&back);
    unlink(path);
    rmdir(dir);
}

static void
write_secret(const char *path, const char *text, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    assert_int_equal(chmod(path, mode), 0);
}

static void
test_secret(void **state)
{
    char dir[] = "/tmp/test_agent_secret.XXXXXX";
    assert_non_null(mkdtemp(dir));
    _cleanup_free_ char *path = str_printf("%s/secret", dir);
    char out[AGENT_SECRET_HEX_LEN + 1];
    const char *good = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789ABCDEF";
    write_secret(path, good, 0600);
    assert_int_equal(agent_secret_load(path, out), 0);
    assert_string_equal(out, good);
    _cleanup_free_ char *with_nl = str_printf("%s\n", good);
    write_secret(path, with_nl, 0400);
    assert_int_equal(agent_secret_load(path, out), 0);
    write_secret(path, good, 0640);
    assert_int_equal(agent_secret_load(path, out), -EPERM);
    write_secret(path, good, 0604);
    assert_int_equal(agent_secret_load(path, out), -EPERM);
    write_secret(path, "0123", 0600);
    assert_int_equal(agent_secret_load(path, out), -EBADMSG);
    _cleanup_free_ char *longer = str_printf("%s0", good);
    write_secret(path, longer, 0600);
    assert_int_equal(agent_secret_load(path, out), -EBADMSG);
    _cleanup_free_ char *nonhex = str_printf("%.63sg", good);
    write_secret(path, nonhex, 0600);
    assert_int_equal(agent_secret_load(path, out), -EBADMSG);
    unlink(path);
    assert_int_equal(agent_secret_load(path, out), -ENOENT);
    assert_int_equal(agent_secret_load(dir, out), -EPERM); /* a directory: not a regular file */
    rmdir(dir);
}

static void
test_vlan_decode(void **state)
{
    json_t *j = parse("{\"vlan\":42,\"parent\":\"eth1\",\"mtu\":9000}");
    AgentVlan v;
    _cleanup_error_ NbError *err = NULL;
    assert_int_equal(agent_vlan_from_json(j, "nbr0123456789ab", &v, &err), 0);
    assert_int_equal(v.vlan, 42);
    assert_string_equal(v.parent, "eth1");
    assert_int_equal(v.mtu, 9000);
    char dev[AGENT_IFNAME_MAX + 1];
    agent_vlan_ifname(v.bridge, dev);
    assert_string_equal(dev, "nbv0123456789ab");
    json_t *out = agent_vlan_to_json(&v);
    assert_string_equal(json_string_value(json_object_get(out, "device")), "nbv0123456789ab");
    json_decref(out);
    json_decref(j);
    /* mtu defaults to 1500 */
    j = parse("{\"vlan\":4094,\"parent\":\"bond0.7\"}");
    assert_int_equal(agent_vlan_from_json(j, "nbr0123456789ab", &v, &err), 0);
    assert_int_equal(v.mtu, 1500);
    json_decref(j);

    static const struct {
        const char *bridge, *body, *code;
    } bad[] = {
        {"eth0", "{\"vlan\":42,\"parent\":\"eth1\"}", "NETWORK_INVALID_IFNAME"},
        {"nbt0123456789ab", "{\"vlan\":42,\"parent\":\"eth1\"}", "NETWORK_INVALID_IFNAME"},
        {"nbr0123456789ab", "{\"vlan\":0,\"parent\":\"eth1\"}", "NETWORK_INVALID_VLAN"},
        {"nbr0123456789ab", "{\"vlan\":4095,\"parent\":\"eth1\"}", "NETWORK_INVALID_VLAN"},
        {"nbr0123456789ab", "{\"vlan\":\"42\",\"parent\":\"eth1\"}", "NETWORK_INVALID_VLAN"},
        {"nbr0123456789ab", "{\"parent\":\"eth1\"}", "NETWORK_INVALID_VLAN"},
        {"nbr0123456789ab", "{\"vlan\":42}", "INVALID_REQUEST"},
        {"nbr0123456789ab", "{\"vlan\":42,\"parent\":\"nbr000000000001\"}",
         "NETWORK_INVALID_IFNAME"},
        {"nbr0123456789ab", "{\"vlan\":42,\"parent\":\"nbv000000000001\"}",
         "NETWORK_INVALID_IFNAME"},
        {"nbr0123456789ab", "{\"vlan\":42,\"parent\":\"eth 1\"}", "NETWORK_INVALID_IFNAME"},
        {"nbr0123456789ab", "{\"vlan\":42,\"parent\":\"a234567890123456\"}",
         "NETWORK_INVALID_IFNAME"},
        {"nbr0123456789ab", "{\"vlan\":42,\"parent\":\"eth1\",\"mtu\":100}", "NETWORK_INVALID_MTU"},
        {"nbr0123456789ab", "{\"vlan\":42,\"parent\":\"eth1\",\"qos\":1}", "INVALID_REQUEST"},
    };
    for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
        nb_error_free(TAKE_PTR(err));
        j = parse(bad[i].body);
        if (agent_vlan_from_json(j, bad[i].bridge, &v, &err) == 0)
            fail_msg("accepted %s %s", bad[i].bridge, bad[i].body);
        if (strcmp(err->code, bad[i].code) != 0)
            fail_msg("%s %s: %s, not %s", bad[i].bridge, bad[i].body, err->code, bad[i].code);
        json_decref(j);
    }
}

/* VLAN segments in the state file: kept across a save and load; a state file from before VLANs
 * (no "vlans") loads; one bridge cannot be both a VXLAN's and a VLAN segment's. */
static void
test_state_vlans(void **state)
{
    _cleanup_error_ NbError *err = NULL;
    json_t *j = parse("{\"version\":1,\"vxlans\":[],\"shaping\":[]}");
    AgentState s = {0};
    assert_int_equal(agent_state_from_json(j, &s, &err), 0);
    assert_int_equal(s.n_vlans, 0);
    json_decref(j);

    AgentVlan v = {.vlan = 42, .mtu = 1500};
    snprintf(v.bridge, sizeof(v.bridge), "nbr00000000000b");
    snprintf(v.parent, sizeof(v.parent), "eth1");
    assert_int_equal(agent_state_vlan_put(&s, &v), 0);
    snprintf(v.bridge, sizeof(v.bridge), "nbr00000000000a");
    v.vlan = 7;
    assert_int_equal(agent_state_vlan_put(&s, &v), 0);
    assert_int_equal(s.n_vlans, 2);
    assert_string_equal(s.vlans[0].bridge, "nbr00000000000a"); /* sorted */
    char dir[] = "/tmp/test_agent_vlan.XXXXXX";
    assert_non_null(mkdtemp(dir));
    assert_int_equal(agent_state_save(&s, dir), 0);
    AgentState back = {0};
    assert_int_equal(agent_state_load(dir, &back, &err), 0);
    assert_int_equal(back.n_vlans, 2);
    assert_int_equal(back.vlans[1].vlan, 42);
    assert_string_equal(back.vlans[1].parent, "eth1");
    AgentState copy = {0};
    assert_int_equal(agent_state_copy(&back, &copy), 0);
    assert_true(agent_state_vlan_remove(&copy, "nbr00000000000a"));
    assert_false(agent_state_vlan_remove(&copy, "nbr00000000000a"));
    assert_int_equal(copy.n_vlans, 1);
    assert_int_equal(back.n_vlans, 2);
    agent_state_clear(&copy);
    agent_state_clear(&back);
    agent_state_clear(&s);
    char path[64];
    snprintf(path, sizeof(path), "%s/state.json", dir);
    unlink(path);
    rmdir(dir);

    j = parse("{\"version\":1,\"vxlans\":[{\"vni\":5,\"bridge\":\"nbr00000000000a\","
              "\"mtu\":1450,\"local\":\"10.0.0.1\",\"dev\":\"eth0\",\"peers\":[]}],"
              "\"shaping\":[],\"vlans\":[{\"bridge\":\"nbr00000000000a\",\"vlan\":7,"
              "\"parent\":\"eth1\",\"mtu\":1500}]}");
    assert_int_equal(agent_state_from_json(j, &s, &err), -1);
    json_decref(j);
}

/* ipsets: names (only nbs- and 24 lowercase hex), member decoding, the list and its file. */
static void
test_ipsets(void **state)
{
    _cleanup_error_ NbError *err = NULL;
    assert_true(agent_ipset_name_is_valid("nbs-0123456789abcdef01234567"));
    static const char *const bad[] = {
        "",
        "nbs-",
        "nbs-0123456789abcdef0123456",
        "nbs-0123456789abcdef012345678",
        "nbs-0123456789ABCDEF01234567",
        "nbr-0123456789abcdef01234567",
        "nbs_0123456789abcdef01234567",
        "nbs-0123456789abcdef0123456g",
        "nbs-0123456789abcdef0123456/",
        "nbs-0123456789abcdef0123456 ",
        "nbs-0123456789abcdef01234567-t",
        "libvirt-nbs-0123456789abcdef",
    };
    for (size_t i = 0; i < ELEMENTSOF(bad); i++)
        assert_false(agent_ipset_name_is_valid(bad[i]));
    assert_false(agent_ipset_name_is_valid(NULL));
    char tmp[AGENT_IPSET_NAME_MAX + 1];
    agent_ipset_tmp_name("nbs-0123456789abcdef01234567", tmp);
    assert_string_equal(tmp, "nbs-0123456789abcdef01234567-t");
    assert_true(strlen(tmp) <= 31);

    const char *name = "nbs-0123456789abcdef01234567";
    AgentIpset s;
    json_t *j = parse("{\"members\":[\"10.0.0.6\",\"10.0.0.5\",\"10.0.0.6\"]}");
    assert_int_equal(agent_ipset_from_json(j, name, &s, &err), 0);
    json_decref(j);
    assert_int_equal(s.n_members, 2); /* sorted, repeats once */
    assert_int_equal(s.members[0], 0x0a000005);
    assert_int_equal(s.members[1], 0x0a000006);
    static const struct {
        const char *body, *code;
    } cases[] = {
        {"[]", "INVALID_REQUEST"},
        {"{}", "INVALID_REQUEST"},
        {"{\"members\":\"10.0.0.5\"}", "INVALID_REQUEST"},
        {"{\"members\":[],\"type\":\"hash:net\"}", "INVALID_REQUEST"},
        {"{\"members\":[\"10.0.0.256\"]}", "IP_INVALID"},
        {"{\"members\":[\"10.0.0.5/24\"]}", "IP_INVALID"},
        {"{\"members\":[\"010.0.0.5\"]}", "IP_INVALID"},
        {"{\"members\":[\"127.0.0.1\"]}", "IP_INVALID"},
        {"{\"members\":[\"224.0.0.1\"]}", "IP_INVALID"},
        {"{\"members\":[\"0.0.0.0\"]}", "IP_INVALID"},
        {"{\"members\":[\"fe80::1\"]}", "IP_INVALID"},
        {"{\"members\":[5]}", "IP_INVALID"},
        {"{\"members\":[\"10.0.0.5 -exist\"]}", "IP_INVALID"},
    };
    for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
        AgentIpset x;
        j = parse(cases[i].body);
        assert_int_equal(agent_ipset_from_json(j, name, &x, &err), -1);
        assert_string_equal(err->code, cases[i].code);
        nb_error_free(TAKE_PTR(err));
        json_decref(j);
    }
    j = parse("{\"members\":[]}");
    AgentIpset x;
    assert_int_equal(agent_ipset_from_json(j, "nbs-../../etc", &x, &err), -1);
    assert_string_equal(err->code, "INVALID_NAME");
    nb_error_free(TAKE_PTR(err));
    /* Too many members. */
    json_t *many = json_array();
    for (unsigned i = 0; i <= AGENT_IPSET_MEMBERS_MAX; i++) {
        char ip[16];
        agent_ipv4_format(0x0a000000 + i + 1, ip);
        json_array_append_new(many, json_string(ip));
    }
    json_object_set_new(j, "members", many);
    assert_int_equal(agent_ipset_from_json(j, name, &x, &err), -1);
    assert_string_equal(err->code, "INVALID_REQUEST");
    nb_error_free(TAKE_PTR(err));
    json_decref(j);

    /* The list: sorted by name, a put replaces, the file round-trips (doomed too). */
    AgentIpsets l = {0};
    assert_int_equal(agent_ipsets_put(&l, &s), 0);
    assert_null(s.members);
    AgentIpset d = {.doomed = true};
    snprintf(d.name, sizeof(d.name), "%s", "nbs-000000000000000000000001");
    assert_int_equal(agent_ipsets_put(&l, &d), 0);
    assert_int_equal(l.n, 2);
    assert_string_equal(l.sets[0].name, "nbs-000000000000000000000001");
    assert_non_null(agent_ipsets_find(&l, name));
    assert_null(agent_ipsets_find(&l, "nbs-000000000000000000000002"));
    char dir[] = "/tmp/test_agent_ipsets.XXXXXX";
    assert_non_null(mkdtemp(dir));
    AgentIpsets back = {0};
    assert_int_equal(agent_ipsets_load(dir, &back, &err), 0); /* no file: none */
    assert_int_equal(back.n, 0);
    assert_int_equal(agent_ipsets_save(&l, dir), 0);
    assert_int_equal(agent_ipsets_load(dir, &back, &err), 0);
    assert_int_equal(back.n, 2);
    assert_true(back.sets[0].doomed);
    assert_false(back.sets[1].doomed);
    assert_int_equal(back.sets[1].n_members, 2);
    assert_int_equal(back.sets[1].members[1], 0x0a000006);
    assert_true(agent_ipsets_remove(&back, name));
    assert_false(agent_ipsets_remove(&back, name));
    assert_int_equal(back.n, 1);
    agent_ipsets_clear(&back);
    agent_ipsets_clear(&l);
    /* A file with a set that is not ours, or twice the same, is refused whole. */
    static const char *const bad_files[] = {
        "{\"version\":1,\"ipsets\":[{\"name\":\"myset\",\"members\":[]}]}",
        "{\"version\":1,\"ipsets\":[{\"name\":\"nbs-000000000000000000000001\","
        "\"members\":[]},{\"name\":\"nbs-000000000000000000000001\",\"members\":[]}]}",
        "{\"version\":2,\"ipsets\":[]}",
        "{\"version\":1,\"ipsets\":[],\"extra\":1}",
        "{\"version\":1,\"ipsets\":[{\"name\":\"nbs-000000000000000000000001\","
        "\"members\":[],\"doomed\":\"yes\"}]}",
    };
    for (size_t i = 0; i < ELEMENTSOF(bad_files); i++) {
        j = parse(bad_files[i]);
        assert_int_equal(agent_ipsets_from_json(j, &back, &err), -1);
        nb_error_free(TAKE_PTR(err));
        json_decref(j);
    }
    char path[80];
    snprintf(path, sizeof(path), "%s/ipsets.json", dir);
    unlink(path);
    rmdir(dir);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_vni),
        cmocka_unit_test(test_ipv4),
        cmocka_unit_test(test_vxlan_decode),
        cmocka_unit_test(test_vxlan_too_many_peers),
        cmocka_unit_test(test_shaping_decode),
        cmocka_unit_test(test_vlan_decode),
        cmocka_unit_test(test_state_vlans),
        cmocka_unit_test(test_state_round_trip),
        cmocka_unit_test(test_secret),
        cmocka_unit_test(test_ipsets),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
