/* The stack file decoder of nimbus apply (src/cli/stack.c): keys, types, line:column errors. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cli/stack.h"

static int
parse(const char *text, Stack *s, char **err)
{
    return stack_parse(text, strlen(text), "dir/s.yaml", s, err);
}

/* Parsing fails with this message. */
static void
expect_error(const char *text, const char *msg)
{
    Stack s = {0};
    char *err = NULL;
    int r = parse(text, &s, &err);
    assert_int_equal(r, -EINVAL);
    assert_non_null(err);
    if (!strstr(err, msg))
        fail_msg("error '%s' does not contain '%s'", err, msg);
    free(err);
}

static void
test_full_stack(void **state)
{
    const char *text = "name: shop\n"
                       "vms:\n"
                       "  - name: web\n"
                       "    image: tiny\n"
                       "    flavor: small\n"
                       "    count: 3\n"
                       "    hostname: \"web-{n}\"\n"
                       "    labels: {zone: a, n: 1}\n"
                       "    networks: [default, {network: back, ip: 10.0.0.5}]\n"
                       "    secgroups: [web]\n"
                       "    pool: fast\n"
                       "groups:\n"
                       "  - {name: g, policy: affinity}\n"
                       "flavors:\n"
                       "  - {name: small, vcpus: 1, ram_mib: 512, disk_gib: 4}\n"
                       "networks:\n"
                       "  - {name: back, cidr: 10.0.0.0/24, dhcp: false, dns: [1.1.1.1]}\n"
                       "secgroups:\n"
                       "  - name: web\n"
                       "    rules:\n"
                       "      - {direction: ingress, protocol: tcp, port_min: 80, port_max: 80}\n"
                       "images:\n"
                       "  - name: tiny\n"
                       "    file: tiny.qcow2\n";
    Stack s = {0};
    char *err = NULL;
    assert_int_equal(parse(text, &s, &err), 0);
    assert_null(err);
    assert_string_equal(s.name, "shop");
    assert_string_equal(s.dir, "dir/");
    assert_int_equal(s.n_items, 6);
    /* In apply order, whatever the file's order. */
    static const StackKind order[] = {STACK_FLAVOR,   STACK_IMAGE, STACK_NETWORK,
                                      STACK_SECGROUP, STACK_GROUP, STACK_VM};
    for (size_t i = 0; i < 6; i++)
        assert_int_equal(s.items[i].kind, order[i]);

    json_t *fl = s.items[0].spec;
    assert_int_equal(json_integer_value(json_object_get(fl, "ram_mib")), 512);
    json_t *net = s.items[2].spec;
    assert_true(json_is_false(json_object_get(net, "dhcp")));
    assert_string_equal(json_string_value(json_array_get(json_object_get(net, "dns"), 0)),
                        "1.1.1.1");
    json_t *rule = json_array_get(json_object_get(s.items[3].spec, "rules"), 0);
    assert_int_equal(json_integer_value(json_object_get(rule, "port_max")), 80);

    const StackItem *vm = &s.items[5];
    assert_int_equal(vm->line, 3);
    assert_int_equal(vm->column, 5);
    assert_int_equal(json_integer_value(json_object_get(vm->spec, "count")), 3);
    json_t *labels = json_object_get(vm->spec, "labels");
    assert_string_equal(json_string_value(json_object_get(labels, "n")), "1");
    json_t *nets = json_object_get(vm->spec, "networks");
    assert_string_equal(json_string_value(json_object_get(json_array_get(nets, 0), "network")),
                        "default");
    assert_string_equal(json_string_value(json_object_get(json_array_get(nets, 1), "ip")),
                        "10.0.0.5");
    assert_string_equal(json_string_value(json_object_get(vm->spec, "pool")), "fast");
    stack_clear(&s);
}

static void
test_defaults_and_empty_sections(void **state)
{
    Stack s = {0};
    char *err = NULL;
    assert_int_equal(
        parse("name: s\nflavors:\nvms:\n  - {name: a, image: i, flavor: f}\n", &s, &err), 0);
    assert_int_equal(s.n_items, 1);
    assert_int_equal(json_integer_value(json_object_get(s.items[0].spec, "count")), 1);
    stack_clear(&s);
}

static void
test_errors_have_line_and_column(void **state)
{
    expect_error("name: s\nvms:\n  - name: a\n    image: i\n    flavor: f\n    colour: red\n",
                 "dir/s.yaml:6:5: unknown key 'colour' in vm");
    expect_error("name: s\nextra: []\n", "dir/s.yaml:2:1: unknown key 'extra' in the stack");
    expect_error("name: s\nvms:\n  - {name: a, image: i, flavor: f, count: three}\n",
                 "dir/s.yaml:3:43: 'count' of vm must be a whole number");
    expect_error("name: s\nvms:\n  - {name: a, image: i, flavor: f, count: \"3\"}\n",
                 "must be a whole number");
    expect_error("name: s\nvms:\n  - name: a\n    image: [i\n", "dir/s.yaml:5:1: invalid YAML");
    expect_error("name: s\nvms:\n  - {name: a, flavor: f}\n", "dir/s.yaml:3:5: vm has no 'image'");
    expect_error("vms: []\n", "dir/s.yaml:1:1: the stack has no 'name'");
    expect_error("", "the stack is empty");
    expect_error("- a\n", "the stack must be a map");
    expect_error("name: s\nvms: {name: a}\n", "dir/s.yaml:2:6: 'vms' must be a list");
    expect_error("name: s\nnetworks:\n  - {name: n, cidr: c, dhcp: maybe}\n",
                 "'dhcp' of network must be true or false");
    expect_error("name: s\nvms:\n  - {name: a, image: i, flavor: f, labels: [x]}\n",
                 "'labels' of vm must be a map");
    expect_error("name: s\nvms:\n  - {name: a, image: i, flavor: f, networks: [{net: x}]}\n",
                 "unknown key 'net' in network of a vm");
    expect_error("name: s\nsecgroups:\n  - {name: w, rules: [{direction: in, port: 1}]}\n",
                 "unknown key 'port' in rule of a secgroup");
    expect_error("name: s\nvms:\n  - {name: a, image: i, flavor: f, image: j}\n",
                 "key 'image' given twice");
    expect_error("name: s\ngroups:\n  - {name: g, policy: affinity}\n  - {name: g, policy: "
                 "affinity}\n",
                 "dir/s.yaml:4:5: group g is listed twice (first at line 3)");
    expect_error("name: s\nvms:\n  - {name: a, image: i, flavor: f, image: ~}\n", "given twice");
    expect_error("name: s\nvms:\n  - {name: a, image: ~, flavor: f}\n",
                 "'image' of vm must be a string");
    expect_error("name: s\nvms:\n  - {name: a, image: i, flavor: f, pool: [fast]}\n",
                 "'pool' of vm must be a string");
    expect_error("name: 'bad name'\n", "the stack's name must be");
    expect_error("name: s\nvms:\n  - {name: 'a b', image: i, flavor: f}\n", "invalid vm name");
    expect_error("name: s\nvms:\n  - {name: a, image: i, flavor: f, count: 0}\n",
                 "count of vm a must be 1 to 100");
    expect_error("name: s\nvms:\n  - {name: a, image: i, flavor: f, count: 2, hostname: h}\n",
                 "must contain {n}");
    expect_error("name: s\nvms:\n  - {name: a, image: i, flavor: f, user_data: x, "
                 "user_data_file: y}\n",
                 "both user_data and user_data_file");
    expect_error("name: s\n---\nname: t\n", "only one YAML document");
}

static void
test_instance_names(void **state)
{
    char *s = stack_vm_instance_name("web", 1, 1);
    assert_string_equal(s, "web");
    free(s);
    s = stack_vm_instance_name("web", 3, 2);
    assert_string_equal(s, "web-2");
    free(s);
    s = stack_vm_hostname("web-{n}-x{n}", 12);
    assert_string_equal(s, "web-12-x12");
    free(s);

    unsigned k = 0;
    assert_true(stack_vm_instance_number("web", "web-3", &k));
    assert_int_equal(k, 3);
    assert_false(stack_vm_instance_number("web", "web-03", &k));
    assert_false(stack_vm_instance_number("web", "web-x", &k));
    assert_false(stack_vm_instance_number("web", "web", &k));
    assert_false(stack_vm_instance_number("web", "web-1-2", &k));
    assert_false(stack_vm_instance_number("web", "webs-1", &k));
}

static void
test_yaml_quote(void **state)
{
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"web-1", "web-1"}, {"true", "\"true\""}, {"123", "\"123\""},   {"1e5", "\"1e5\""},
        {"", "\"\""},       {"a b", "\"a b\""},   {"x: y", "\"x: y\""}, {"No", "\"No\""},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *q = stack_yaml_quote(cases[i].in);
        assert_string_equal(q, cases[i].out);
        free(q);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_stack),
        cmocka_unit_test(test_defaults_and_empty_sections),
        cmocka_unit_test(test_errors_have_line_and_column),
        cmocka_unit_test(test_instance_names),
        cmocka_unit_test(test_yaml_quote),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
