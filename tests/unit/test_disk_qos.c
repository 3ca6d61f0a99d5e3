/* Disk QoS of flavors: the decoder (disk_iops, disk_mbps: 0 or absent unlimited, else 1..max),
 * the JSON, the store (written and read back; 0 for a flavor without), and the XML that carries
 * it: <iotune> on the VM's vda and on a volume's <disk>, none on the seed CD-ROM nor when the
 * flavor limits nothing. The golden files are in test_domain_xml (disk_qos) and test_pool_xml. */
#include "hv/domain_xml.h"
#include "hv/pool_xml.h"
#include "store_fixture.h"

static int
flavor_parse(const char *text, Flavor *f, NbError **err)
{
    json_error_t e;
    json_t *j = json_loads(text, JSON_DECODE_ANY, &e);
    if (!j)
        fail_msg("bad test JSON %s: %s", text, e.text);
    int r = flavor_from_request(j, f, err);
    json_decref(j);
    return r;
}

#define FLAVOR_BODY "{\"name\":\"a\",\"vcpus\":1,\"ram_mib\":64,\"disk_gib\":1"

static void
test_flavor_decode(void **state)
{
    (void)state;
    NbError *err = NULL;
    Flavor f;
    assert_int_equal(flavor_parse(FLAVOR_BODY "}", &f, &err), 0);
    assert_int_equal(f.disk_iops, 0);
    assert_int_equal(f.disk_mbps, 0);
    assert_int_equal(flavor_disk_bytes_sec(&f), 0);
    assert_int_equal(flavor_parse(FLAVOR_BODY ",\"disk_iops\":0,\"disk_mbps\":0}", &f, &err), 0);
    assert_int_equal(f.disk_iops, 0);
    assert_int_equal(f.disk_mbps, 0);
    assert_int_equal(flavor_parse(FLAVOR_BODY ",\"disk_iops\":500,\"disk_mbps\":100}", &f, &err),
                     0);
    assert_int_equal(f.disk_iops, 500);
    assert_int_equal(f.disk_mbps, 100);
    assert_int_equal(flavor_disk_bytes_sec(&f), 100000000);
    json_t *j = flavor_to_json(&f);
    assert_int_equal(json_integer_value(json_object_get(j, "disk_iops")), 500);
    assert_int_equal(json_integer_value(json_object_get(j, "disk_mbps")), 100);
    json_decref(j);

    /* The bounds, each alone. */
    assert_int_equal(flavor_parse(FLAVOR_BODY ",\"disk_iops\":1,\"disk_mbps\":1}", &f, &err), 0);
    assert_int_equal(f.disk_iops, 1);
    assert_int_equal(f.disk_mbps, 1);
    assert_int_equal(
        flavor_parse(FLAVOR_BODY ",\"disk_iops\":1000000,\"disk_mbps\":100000}", &f, &err), 0);
    assert_int_equal(f.disk_iops, NB_FLAVOR_DISK_IOPS_MAX);
    assert_int_equal(f.disk_mbps, NB_FLAVOR_DISK_MBPS_MAX);
    assert_int_equal(flavor_disk_bytes_sec(&f), 100000ull * 1000000ull);
    assert_int_equal(flavor_parse(FLAVOR_BODY ",\"disk_mbps\":7}", &f, &err), 0);
    assert_int_equal(f.disk_iops, 0);
    assert_int_equal(f.disk_mbps, 7);

    static const struct {
        const char *field, *value;
    } bad[] = {
        {"disk_iops", "-1"},         {"disk_iops", "1000001"}, {"disk_iops", "1.5"},
        {"disk_iops", "500.0"},      {"disk_iops", "\"500\""}, {"disk_iops", "null"},
        {"disk_iops", "true"},       {"disk_iops", "[]"},      {"disk_iops", "9223372036854775807"},
        {"disk_mbps", "-1"},         {"disk_mbps", "100001"},  {"disk_mbps", "0.5"},
        {"disk_mbps", "\"1\""},      {"disk_mbps", "null"},    {"disk_mbps", "{}"},
        {"disk_mbps", "4294967297"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char body[256];
        snprintf(body, sizeof(body), FLAVOR_BODY ",\"%s\":%s}", bad[i].field, bad[i].value);
        if (flavor_parse(body, &f, &err) != -1)
            fail_msg("accepted %s", body);
        expect_code(&err, NB_ERR_INVALID_REQUEST);
    }
    /* Other spellings are unknown fields. */
    assert_int_equal(flavor_parse(FLAVOR_BODY ",\"disk_bytes_sec\":1}", &f, &err), -1);
    expect_code(&err, NB_ERR_INVALID_REQUEST);
}

static int
setup(void **state)
{
    Fixture *f = fixture_new("qos");
    fixture_open_seeded(f, IMAGE_STATE_ACTIVE);
    *state = f;
    return 0;
}

static void
test_store_round_trip(void **state)
{
    Fixture *f = *state;
    NbError *err = NULL;
    Flavor fl = {0}, got;
    nb_uuid_generate(fl.id);
    snprintf(fl.name, sizeof(fl.name), "qos");
    fl.vcpus = 1;
    fl.ram_mib = 64;
    fl.disk_gib = 1;
    fl.disk_iops = 500;
    fl.disk_mbps = 100;
    nb_timestamp_now(fl.created_at);
    assert_int_equal(flavor_store_insert(f->s, &fl, &err), 0);
    assert_int_equal(flavor_store_get(f->s, "qos", &got, &err), 0);
    assert_int_equal(got.disk_iops, 500);
    assert_int_equal(got.disk_mbps, 100);
    /* The seeded flavor has none. */
    assert_int_equal(flavor_store_get(f->s, f->flavor.id, &got, &err), 0);
    assert_int_equal(got.disk_iops, 0);
    assert_int_equal(got.disk_mbps, 0);
    Flavor *list = NULL;
    size_t n = 0;
    assert_int_equal(flavor_store_list(f->s, &list, &n, &err), 0);
    size_t limited = 0;
    for (size_t i = 0; i < n; i++)
        limited += list[i].disk_iops == 500 && list[i].disk_mbps == 100;
    assert_int_equal(limited, 1);
    free(list);
}

static const DomainNic nic = {DOMAIN_NIC_NETWORK, "default", "52:54:00:12:34:56", NULL, 0};

static DomainSpec
domain_spec(DiskIotune io)
{
    return (DomainSpec){
        .uuid = "6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b",
        .domain_name = "nimbus-6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b",
        .vm_name = "web-1",
        .project = "default",
        .flavor_name = "qos",
        .image_id = "0b8e1f52-7c3d-4a9e-b6f1-2d3c4e5f6a7b",
        .virt_type = VIRT_TYPE_QEMU,
        .vcpus = 1,
        .ram_mib = 256,
        .disk_gib = 1,
        .disk_path = "/var/lib/nimbus/disk.qcow2",
        .disk_iotune = io,
        .seed_path = "/var/lib/nimbus/seed.iso",
        .nics = &nic,
        .n_nics = 1,
        .console_log = "/var/lib/nimbus/console.log",
        .created_at = "2024-05-01T12:00:00.000Z",
    };
}

static size_t
count(const char *hay, const char *needle)
{
    size_t n = 0;
    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    return n;
}

/* The text of the element that starts at the first `open` in xml, to its `close`. */
static char *
element(const char *xml, const char *open, const char *close)
{
    const char *a = strstr(xml, open);
    assert_non_null(a);
    const char *b = strstr(a, close);
    assert_non_null(b);
    return strndup(a, (size_t)(b - a) + strlen(close));
}

static void
test_domain_iotune(void **state)
{
    (void)state;
    DomainSpec s = domain_spec((DiskIotune){500, 100000000});
    char *xml = domain_xml_build(&s);
    assert_non_null(xml);
    assert_int_equal(count(xml, "<iotune>"), 1);
    char *vda = element(xml, "<disk type='file' device='disk'>", "</disk>");
    assert_non_null(strstr(vda, "<iotune>"));
    assert_non_null(strstr(vda, "<total_bytes_sec>100000000</total_bytes_sec>"));
    assert_non_null(strstr(vda, "<total_iops_sec>500</total_iops_sec>"));
    free(vda);
    char *cdrom = element(xml, "device='cdrom'", "</disk>");
    assert_null(strstr(cdrom, "iotune"));
    free(cdrom);
    free(xml);

    /* One limit alone: only its element. */
    s = domain_spec((DiskIotune){0, 1000000});
    xml = domain_xml_build(&s);
    assert_non_null(xml);
    assert_int_equal(count(xml, "<iotune>"), 1);
    assert_int_equal(count(xml, "total_iops_sec"), 0);
    assert_int_equal(count(xml, "<total_bytes_sec>1000000</total_bytes_sec>"), 1);
    free(xml);
    s = domain_spec((DiskIotune){1000000, 0});
    xml = domain_xml_build(&s);
    assert_int_equal(count(xml, "<total_iops_sec>1000000</total_iops_sec>"), 1);
    assert_int_equal(count(xml, "total_bytes_sec"), 0);
    free(xml);

    /* No limit: no <iotune> at all. */
    s = domain_spec((DiskIotune){0, 0});
    xml = domain_xml_build(&s);
    assert_non_null(xml);
    assert_int_equal(count(xml, "iotune"), 0);
    free(xml);
}

static void
test_volume_disk_iotune(void **state)
{
    (void)state;
    DiskSpec d = {
        .kind = DISK_SOURCE_FILE,
        .path = "/var/lib/nimbus/pools/p/vol-1",
        .format = "qcow2",
        .target = "vdb",
        .bus = "virtio",
        .serial = "0b8e1f52-7c3d-4a9e-b",
        .iotune = {500, 100000000},
    };
    char *xml = pool_xml_disk(&d);
    assert_non_null(xml);
    assert_int_equal(count(xml, "<iotune>"), 1);
    assert_int_equal(count(xml, "<total_iops_sec>500</total_iops_sec>"), 1);
    assert_int_equal(count(xml, "<total_bytes_sec>100000000</total_bytes_sec>"), 1);
    free(xml);
    d.iotune = (DiskIotune){0, 0};
    xml = pool_xml_disk(&d);
    assert_non_null(xml);
    assert_int_equal(count(xml, "iotune"), 0);
    free(xml);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_flavor_decode),
        cmocka_unit_test_setup_teardown(test_store_round_trip, setup, fixture_teardown),
        cmocka_unit_test(test_domain_iotune),
        cmocka_unit_test(test_volume_disk_iotune),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
