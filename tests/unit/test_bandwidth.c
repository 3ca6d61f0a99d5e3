/* Bandwidth limits per NIC: the decoders (flavor create, port PATCH), the JSON in Mbit/s, and the
 * store (a flavor's limits copied onto the ports of its VMs, made with the VM or added later; a
 * port's own limits changed and read back, in its project's scope only). */
#include "model/bandwidth.h"
#include "store_fixture.h"

static json_t *
parse(const char *text)
{
    json_error_t e;
    json_t *j = json_loads(text, JSON_DECODE_ANY, &e);
    if (!j)
        fail_msg("bad test JSON %s: %s", text, e.text);
    return j;
}

static int
flavor_parse(const char *text, Flavor *f, NbError **err)
{
    json_t *j = parse(text);
    int r = flavor_from_request(j, f, err);
    json_decref(j);
    return r;
}

static int
patch_parse(const char *text, BandwidthPatch *p, NbError **err)
{
    json_t *j = parse(text);
    int r = bandwidth_patch_from_request(j, p, err);
    json_decref(j);
    return r;
}

static void
test_flavor_decode(void **state)
{
    (void)state;
    NbError *err = NULL;
    Flavor f;
    assert_int_equal(
        flavor_parse("{\"name\":\"a\",\"vcpus\":1,\"ram_mib\":64,\"disk_gib\":1}", &f, &err), 0);
    assert_int_equal(f.net_in_kbit, 0);
    assert_int_equal(f.net_out_kbit, 0);
    assert_int_equal(flavor_parse("{\"name\":\"a\",\"vcpus\":1,\"ram_mib\":64,\"disk_gib\":1,"
                                  "\"net_in_mbit\":100,\"net_out_mbit\":10000}",
                                  &f, &err),
                     0);
    assert_int_equal(f.net_in_kbit, 100000);
    assert_int_equal(f.net_out_kbit, 10000000);
    json_t *j = flavor_to_json(&f);
    assert_int_equal(json_integer_value(json_object_get(j, "net_in_mbit")), 100);
    assert_int_equal(json_integer_value(json_object_get(j, "net_out_mbit")), 10000);
    json_decref(j);

    static const char *const bad[] = {"-1",   "10001", "1.5", "100.0", "\"10\"",
                                      "null", "true",  "[]",  "{}",    "9223372036854775807"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        for (int dir = 0; dir < 2; dir++) {
            char body[256];
            snprintf(body, sizeof(body),
                     "{\"name\":\"a\",\"vcpus\":1,\"ram_mib\":64,\"disk_gib\":1,\"%s\":%s}",
                     dir ? "net_out_mbit" : "net_in_mbit", bad[i]);
            if (flavor_parse(body, &f, &err) != -1)
                fail_msg("accepted %s", body);
            expect_code(&err, NB_ERR_BANDWIDTH_INVALID);
        }
    }
    assert_int_equal(flavor_parse("{\"name\":\"a\",\"vcpus\":1,\"ram_mib\":64,\"disk_gib\":1,"
                                  "\"net_in_kbit\":100}",
                                  &f, &err),
                     -1);
    expect_code(&err, NB_ERR_INVALID_REQUEST);
}

static void
test_patch_decode(void **state)
{
    (void)state;
    NbError *err = NULL;
    BandwidthPatch p;
    assert_int_equal(patch_parse("{\"net_in_mbit\":8}", &p, &err), 0);
    assert_true(p.has_in);
    assert_false(p.has_out);
    assert_int_equal(p.in_kbit, 8000);
    assert_int_equal(patch_parse("{\"net_out_mbit\":0}", &p, &err), 0);
    assert_false(p.has_in);
    assert_true(p.has_out);
    assert_int_equal(p.out_kbit, 0);
    assert_int_equal(patch_parse("{\"net_in_mbit\":4,\"net_out_mbit\":5}", &p, &err), 0);
    assert_int_equal(p.in_kbit, 4000);
    assert_int_equal(p.out_kbit, 5000);

    static const struct {
        const char *body, *code;
    } bad[] = {
        {"{}", NB_ERR_INVALID_REQUEST},
        {"[]", NB_ERR_INVALID_REQUEST},
        {"7", NB_ERR_INVALID_REQUEST},
        {"{\"net_in_mbit\":1,\"mac\":\"52:54:00:00:00:01\"}", NB_ERR_INVALID_REQUEST},
        {"{\"net_in_mbit\":-1}", NB_ERR_BANDWIDTH_INVALID},
        {"{\"net_out_mbit\":10001}", NB_ERR_BANDWIDTH_INVALID},
        {"{\"net_out_mbit\":2.5}", NB_ERR_BANDWIDTH_INVALID},
        {"{\"net_in_mbit\":null}", NB_ERR_BANDWIDTH_INVALID},
        {"{\"net_in_mbit\":\"8\"}", NB_ERR_BANDWIDTH_INVALID},
        {"{\"net_in_mbit\":8,\"net_out_mbit\":-8}", NB_ERR_BANDWIDTH_INVALID},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (patch_parse(bad[i].body, &p, &err) != -1)
            fail_msg("accepted %s", bad[i].body);
        expect_code(&err, bad[i].code);
    }
}

static int
setup(void **state)
{
    Fixture *f = fixture_new("bw");
    fixture_open_seeded(f, IMAGE_STATE_ACTIVE);
    *state = f;
    return 0;
}

static void
add_flavor(Fixture *f, const char *name, uint32_t in_kbit, uint32_t out_kbit, Flavor *fl)
{
    NbError *err = NULL;
    memset(fl, 0, sizeof(*fl));
    nb_uuid_generate(fl->id);
    snprintf(fl->name, sizeof(fl->name), "%s", name);
    fl->vcpus = 1;
    fl->ram_mib = 64;
    fl->disk_gib = 1;
    fl->net_in_kbit = in_kbit;
    fl->net_out_kbit = out_kbit;
    nb_timestamp_now(fl->created_at);
    assert_int_equal(flavor_store_insert(f->s, fl, &err), 0);
}

static void
add_network(Fixture *f, const char *cidr, Network *n)
{
    NbError *err = NULL;
    json_t *j = json_pack("{s:s, s:s, s:s}", "name", "net", "type", "nat", "cidr", cidr);
    assert_int_equal(network_from_request(j, n, &err), 0);
    json_decref(j);
    nb_uuid_generate(n->id);
    snprintf(n->project, sizeof(n->project), "%s", NB_DEFAULT_PROJECT_ID);
    nb_timestamp_now(n->created_at);
    assert_int_equal(network_store_insert(f->s, n, &err), 0);
}

/* Inserts a VM of flavor fl with n_ports ports on network n. */
static void
vm_with_ports(Fixture *f, const char *name, const Flavor *fl, const Network *n, size_t n_ports,
              Vm *vm, Port *ports)
{
    NbError *err = NULL;
    Task t;
    memset(vm, 0, sizeof(*vm));
    nb_uuid_generate(vm->id);
    snprintf(vm->name, sizeof(vm->name), "%s", name);
    snprintf(vm->hostname, sizeof(vm->hostname), "%s", name);
    snprintf(vm->host, sizeof(vm->host), "local");
    snprintf(vm->project, sizeof(vm->project), "%s", NB_DEFAULT_PROJECT_ID);
    snprintf(vm->mac, sizeof(vm->mac), "52:54:00:01:00:%02x", f->macs++ & 0xff);
    memcpy(vm->image_id, f->image.id, sizeof(vm->image_id));
    memcpy(vm->flavor_id, fl->id, sizeof(vm->flavor_id));
    vm->state = VM_STATE_BUILDING;
    vm->desired = VM_POWER_RUNNING;
    vm->vcpus = 1;
    vm->ram_mib = 64;
    vm->disk_gib = 1;
    nb_timestamp_now(vm->created_at);
    memcpy(vm->updated_at, vm->created_at, sizeof(vm->updated_at));
    make_task(&t, TASK_KIND_VM_CREATE, vm->id);
    memcpy(vm->task_id, t.id, sizeof(vm->task_id));
    for (size_t i = 0; i < n_ports; i++) {
        memset(&ports[i], 0, sizeof(ports[i]));
        memcpy(ports[i].network_id, n->id, sizeof(ports[i].network_id));
        snprintf(ports[i].mac, sizeof(ports[i].mac), "52:54:00:02:00:%02x", f->macs++ & 0xff);
        ports[i].slot = (unsigned)i;
        /* What a caller puts there is not what the port gets: the flavor decides. */
        ports[i].net_in_kbit = 1;
        ports[i].net_out_kbit = 2;
    }
    assert_int_equal(vm_store_insert_with_task(f->s, vm, &t, ports, n_ports, NULL, &err), 0);
}

static void
test_store_flavor_and_ports(void **state)
{
    Fixture *f = *state;
    NbError *err = NULL;
    Flavor fl, got;
    add_flavor(f, "shaped", 8000, 4000, &fl);
    assert_int_equal(flavor_store_get(f->s, "shaped", &got, &err), 0);
    assert_int_equal(got.net_in_kbit, 8000);
    assert_int_equal(got.net_out_kbit, 4000);
    assert_int_equal(flavor_store_get(f->s, "small", &got, &err), 0);
    assert_int_equal(got.net_in_kbit, 0);
    assert_int_equal(got.net_out_kbit, 0);

    Network n;
    add_network(f, "10.30.0.0/24", &n);
    Vm vm, plain;
    Port ports[2], plain_port;
    vm_with_ports(f, "a", &fl, &n, 2, &vm, ports);
    vm_with_ports(f, "b", &f->flavor, &n, 1, &plain, &plain_port);
    assert_int_equal(ports[0].net_in_kbit, 8000); /* filled in, like the id and the address */
    assert_int_equal(plain_port.net_in_kbit, 0);

    Port *list = NULL;
    size_t count = 0;
    assert_int_equal(port_store_list_by_vm(f->s, vm.id, &list, &count, &err), 0);
    assert_int_equal(count, 2);
    for (size_t i = 0; i < count; i++) {
        assert_int_equal(list[i].net_in_kbit, 8000);
        assert_int_equal(list[i].net_out_kbit, 4000);
    }
    port_list_free(list, count);
    assert_int_equal(port_store_list_by_vm(f->s, plain.id, &list, &count, &err), 0);
    assert_int_equal(count, 1);
    assert_int_equal(list[0].net_in_kbit, 0);
    assert_int_equal(list[0].net_out_kbit, 0);
    port_list_free(list, count);

    /* A NIC added later gets the flavor's limits too. */
    Port hot = {0};
    memcpy(hot.vm_id, vm.id, sizeof(hot.vm_id));
    memcpy(hot.network_id, n.id, sizeof(hot.network_id));
    snprintf(hot.mac, sizeof(hot.mac), "52:54:00:03:00:01");
    assert_int_equal(port_store_add(f->s, &hot, &err), 0);
    assert_int_equal(hot.net_in_kbit, 8000);
    assert_int_equal(hot.net_out_kbit, 4000);

    /* A port's own limits change on their own; the flavor and the VM's other ports keep theirs. */
    assert_int_equal(port_store_set_bandwidth(f->s, ports[1].id, 0, 2000, &err), 0);
    Port p;
    assert_int_equal(port_store_get(f->s, NB_DEFAULT_PROJECT_ID, ports[1].id, &p, &err), 0);
    assert_int_equal(p.net_in_kbit, 0);
    assert_int_equal(p.net_out_kbit, 2000);
    assert_string_equal(p.mac, ports[1].mac);
    assert_int_equal(p.ip, ports[1].ip);
    json_t *j = port_to_json(&p);
    assert_int_equal(json_integer_value(json_object_get(j, "net_in_mbit")), 0);
    assert_int_equal(json_integer_value(json_object_get(j, "net_out_mbit")), 2);
    json_decref(j);
    assert_int_equal(port_store_get(f->s, NULL, ports[0].id, &p, &err), 0);
    assert_int_equal(p.net_in_kbit, 8000);
    assert_int_equal(flavor_store_get(f->s, "shaped", &got, &err), 0);
    assert_int_equal(got.net_in_kbit, 8000);

    /* Another project does not see the port; an unknown port is not found. */
    assert_int_equal(port_store_get(f->s, "another-project", ports[1].id, &p, &err), -1);
    expect_code(&err, NB_ERR_PORT_NOT_FOUND);
    assert_int_equal(port_store_get(f->s, NULL, "no-such-port", &p, &err), -1);
    expect_code(&err, NB_ERR_PORT_NOT_FOUND);
    assert_int_equal(port_store_set_bandwidth(f->s, "no-such-port", 1000, 1000, &err), -1);
    expect_code(&err, NB_ERR_PORT_NOT_FOUND);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_flavor_decode),
        cmocka_unit_test(test_patch_decode),
        cmocka_unit_test_setup_teardown(test_store_flavor_and_ports, setup, fixture_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
