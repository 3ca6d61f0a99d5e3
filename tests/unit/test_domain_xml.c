/*
 * Golden tests for domain_xml_build(): each case is GOLDEN_DIR/domain/<case>.json (a DomainSpec,
 * keys named as the struct fields, virt_type as a string) and <case>.xml, the expected output,
 * compared byte for byte.
 *
 * Run with UPDATE_GOLDEN=1 to rewrite the .xml files from the current output instead of comparing
 * (then review the diff before committing). The re-parse and schema checks still run.
 *
 * Every document is re-parsed with libxml2 and its key values checked against the spec, and each
 * golden file is validated against libvirt's schema with virt-xml-validate when that program is
 * installed (run via fork/execv; a validation failure fails the test).
 */
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
#include <libxml/xpathInternals.h>

#include "hv/domain_xml.h"
#include "util/cleanup.h"

#define NOVA_NS "http://openstack.org/xmlns/libvirt/nova/1.1"
#define NIMBUS_NS "https://nimbus.dev/xmlns/vm/1"

DEFINE_TRIVIAL_CLEANUP_FUNC(xmlDoc, xmlFreeDoc)

static const DomainSpec base_spec = {
    .uuid = "6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b",
    .domain_name = "nimbus-6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b",
    .vm_name = "web-1",
    .project = "default",
    .flavor_name = "m1.small",
    .image_id = "0b8e1f52-7c3d-4a9e-b6f1-2d3c4e5f6a7b",
    .virt_type = VIRT_TYPE_KVM,
    .vcpus = 2,
    .ram_mib = 2048,
    .disk_gib = 20,
    .disk_path = "/var/lib/nimbus/vms/6f1c2a3b/disk.qcow2",
    .seed_path = "/var/lib/nimbus/vms/6f1c2a3b/seed.iso",
    .network = "default",
    .mac = "52:54:00:12:34:56",
    .console_log = "/var/lib/nimbus/vms/6f1c2a3b/console.log",
    .created_at = "2024-05-01T12:00:00.000Z",
};

/* ---- helpers ---- */

static char *
read_text_file(const char *path)
{
    _cleanup_fclose_ FILE *f = fopen(path, "re");
    if (!f)
        return NULL;
    size_t cap = 4096, len = 0;
    _cleanup_free_ char *buf = malloc(cap);
    if (!buf)
        return NULL;
    size_t n;
    while ((n = fread(buf + len, 1, cap - len - 1, f)) > 0) {
        len += n;
        if (cap - len - 1 == 0) {
            char *p = realloc(buf, cap * 2);
            if (!p)
                return NULL;
            buf = p;
            cap *= 2;
        }
    }
    if (ferror(f))
        return NULL;
    buf[len] = '\0';
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

static const char *
json_str(json_t *root, const char *key)
{
    return json_string_value(json_object_get(root, key));
}

/* Fills *spec with pointers into root, which must outlive it. */
static void
spec_from_json(json_t *root, DomainSpec *spec)
{
    *spec = (DomainSpec){
        .uuid = json_str(root, "uuid"),
        .domain_name = json_str(root, "domain_name"),
        .vm_name = json_str(root, "vm_name"),
        .project = json_str(root, "project"),
        .flavor_name = json_str(root, "flavor_name"),
        .image_id = json_str(root, "image_id"),
        .virt_type = virt_type_from_string(json_str(root, "virt_type")),
        .vcpus = (unsigned)json_integer_value(json_object_get(root, "vcpus")),
        .ram_mib = (uint64_t)json_integer_value(json_object_get(root, "ram_mib")),
        .disk_gib = (uint64_t)json_integer_value(json_object_get(root, "disk_gib")),
        .disk_path = json_str(root, "disk_path"),
        .seed_path = json_str(root, "seed_path"),
        .network = json_str(root, "network"),
        .mac = json_str(root, "mac"),
        .console_log = json_str(root, "console_log"),
        .created_at = json_str(root, "created_at"),
    };
}

/* Evaluates string(expr) with the nova and nimbus prefixes bound; caller frees. */
static char *
xpath_string(xmlDoc *doc, const char *expr)
{
    xmlXPathContext *ctx = xmlXPathNewContext(doc);
    assert_non_null(ctx);
    assert_int_equal(xmlXPathRegisterNs(ctx, BAD_CAST "nova", BAD_CAST NOVA_NS), 0);
    assert_int_equal(xmlXPathRegisterNs(ctx, BAD_CAST "nimbus", BAD_CAST NIMBUS_NS), 0);
    _cleanup_free_ char *wrapped = NULL;
    assert_true(asprintf(&wrapped, "string(%s)", expr) > 0);
    xmlXPathObject *obj = xmlXPathEvalExpression(BAD_CAST wrapped, ctx);
    assert_non_null(obj);
    assert_int_equal(obj->type, XPATH_STRING);
    char *s = strdup((const char *)obj->stringval);
    xmlXPathFreeObject(obj);
    xmlXPathFreeContext(ctx);
    assert_non_null(s);
    return s;
}

static void
assert_xpath(xmlDoc *doc, const char *expr, const char *want)
{
    _cleanup_free_ char *got = xpath_string(doc, expr);
    if (strcmp(got, want) != 0)
        fail_msg("%s: got '%s', want '%s'", expr, got, want);
}

static void
assert_xpath_u64(xmlDoc *doc, const char *expr, uint64_t want)
{
    char buf[24];
    snprintf(buf, sizeof(buf), "%llu", (unsigned long long)want);
    assert_xpath(doc, expr, buf);
}

/* Re-parses xml and checks that the values that matter survived, whatever the escaping did. */
static void
check_parsed(const char *xml, const DomainSpec *spec)
{
    _cleanup_(xmlFreeDocp) xmlDoc *doc =
        xmlReadMemory(xml, (int)strlen(xml), "domain.xml", NULL, XML_PARSE_NONET);
    assert_non_null(doc);

    assert_xpath(doc, "/domain/@type", virt_type_to_string(spec->virt_type));
    assert_xpath(doc, "/domain/name", spec->domain_name);
    assert_xpath(doc, "/domain/uuid", spec->uuid);
    assert_xpath(doc, "/domain/title", spec->vm_name);
    assert_xpath_u64(doc, "/domain/memory", spec->ram_mib);
    assert_xpath(doc, "/domain/memory/@unit", "MiB");
    assert_xpath_u64(doc, "/domain/currentMemory", spec->ram_mib);
    assert_xpath_u64(doc, "/domain/vcpu", spec->vcpus);

#define NOVA "/domain/metadata/nova:instance/"
    assert_xpath(doc, NOVA "nova:name", spec->vm_name);
    assert_xpath(doc, NOVA "nova:creationTime", spec->created_at);
    assert_xpath(doc, NOVA "nova:flavor/@name", spec->flavor_name);
    assert_xpath_u64(doc, NOVA "nova:flavor/nova:memory", spec->ram_mib);
    assert_xpath_u64(doc, NOVA "nova:flavor/nova:disk", spec->disk_gib);
    assert_xpath_u64(doc, NOVA "nova:flavor/nova:vcpus", spec->vcpus);
    assert_xpath(doc, NOVA "nova:owner/nova:project", spec->project);
    assert_xpath(doc, NOVA "nova:root/@uuid", spec->image_id);
#undef NOVA
    assert_xpath(doc, "/domain/metadata/nimbus:vm/nimbus:id", spec->uuid);
    assert_xpath(doc, "/domain/metadata/nimbus:vm/nimbus:name", spec->vm_name);

    assert_xpath(doc, "count(/domain/cpu)", spec->virt_type == VIRT_TYPE_KVM ? "1" : "0");
    assert_xpath(doc, "/domain/devices/disk[@device='disk']/source/@file", spec->disk_path);
    assert_xpath(doc, "count(/domain/devices/disk[@device='cdrom'])", spec->seed_path ? "1" : "0");
    if (spec->seed_path)
        assert_xpath(doc, "/domain/devices/disk[@device='cdrom']/source/@file", spec->seed_path);
    assert_xpath(doc, "/domain/devices/interface/source/@network", spec->network);
    assert_xpath(doc, "/domain/devices/interface/mac/@address", spec->mac);
    assert_xpath(doc, "/domain/devices/serial/log/@file", spec->console_log);
    assert_xpath(doc, "count(/domain/devices/graphics)", "0");
    /* Only the elements we wrote: no string smuggled in markup. */
    unsigned elements = 51 + (spec->virt_type == VIRT_TYPE_KVM ? 1 : 0) + (spec->seed_path ? 5 : 0);
    assert_xpath_u64(doc, "count(//*)", elements);
}

static char *
find_program(const char *name)
{
    const char *path = getenv("PATH");
    if (!path || !*path)
        path = "/usr/local/bin:/usr/bin:/bin";
    for (const char *dir = path; *dir;) {
        size_t len = strcspn(dir, ":");
        char *full = NULL;
        assert_true(asprintf(&full, "%.*s/%s", (int)len, dir, name) > 0);
        if (len > 0 && access(full, X_OK) == 0)
            return full;
        free(full);
        dir += len + (dir[len] == ':');
    }
    return NULL;
}

/* Returns the exit status of `virt-xml-validate path domain`, or -1 if it is not installed. */
static int
virt_xml_validate(const char *path)
{
    _cleanup_free_ char *prog = find_program("virt-xml-validate");
    if (!prog)
        return -1;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char *const argv[] = {(char *)"virt-xml-validate", (char *)path, (char *)"domain", NULL};
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
    _cleanup_free_ char *json_path = NULL, *xml_path = NULL;
    assert_true(asprintf(&json_path, "%s/domain/%s.json", GOLDEN_DIR, name) > 0);
    assert_true(asprintf(&xml_path, "%s/domain/%s.xml", GOLDEN_DIR, name) > 0);

    json_error_t jerr;
    _cleanup_(json_decrefp) json_t *root = json_load_file(json_path, 0, &jerr);
    if (!root)
        fail_msg("%s: %s", json_path, jerr.text);
    DomainSpec spec;
    spec_from_json(root, &spec);

    _cleanup_free_ char *xml = domain_xml_build(&spec);
    assert_non_null(xml);

    const char *update = getenv("UPDATE_GOLDEN");
    if (update && strcmp(update, "1") == 0) {
        write_text_file(xml_path, xml);
    } else {
        _cleanup_free_ char *want = read_text_file(xml_path);
        if (!want)
            fail_msg("%s missing; run with UPDATE_GOLDEN=1 to create it", xml_path);
        assert_string_equal(xml, want);
    }

    check_parsed(xml, &spec);

    int rc = virt_xml_validate(xml_path);
    if (rc < 0)
        print_message("virt-xml-validate not installed; schema check skipped\n");
    else if (rc != 0)
        fail_msg("virt-xml-validate %s domain: exit status %d", xml_path, rc);
}

/* ---- non-golden cases ---- */

/* The schema check above is only worth something if the validator can fail. */
static void
test_validator_rejects_bad_xml(void **state)
{
    char path[] = "/tmp/test_domain_xml.XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    static const char bad[] = "<domain type='kvm'><name>x</name><bogus/></domain>\n";
    assert_int_equal(write(fd, bad, sizeof(bad) - 1), (ssize_t)(sizeof(bad) - 1));
    close(fd);
    int rc = virt_xml_validate(path);
    unlink(path);
    if (rc < 0)
        skip();
    assert_int_not_equal(rc, 0);
}

static void
test_hostile_strings_everywhere(void **state)
{
    static const char hostile[] = "x'\"<>&/../<evil a='1'/>]]>";
    DomainSpec s = base_spec;
    s.uuid = s.domain_name = s.vm_name = s.project = s.flavor_name = s.image_id = hostile;
    s.disk_path = s.seed_path = s.network = s.mac = s.console_log = s.created_at = hostile;
    _cleanup_free_ char *xml = domain_xml_build(&s);
    assert_non_null(xml);
    assert_null(strstr(xml, "<evil"));
    check_parsed(xml, &s);
}

/* Tab, LF and CR are legal XML characters; they must come back unchanged from a parse. */
static void
test_whitespace_round_trip(void **state)
{
    DomainSpec s = base_spec;
    s.vm_name = "tab\there\nnl\rcr";
    s.flavor_name = "a\tb\nc\rd";
    _cleanup_free_ char *xml = domain_xml_build(&s);
    assert_non_null(xml);
    check_parsed(xml, &s);
}

static void
test_invalid_characters_refused(void **state)
{
    static const char *const bad[] = {"a\x01b", "\x1b[2J", "\xff", "\xc0\xbc"};
    for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
        DomainSpec s = base_spec;
        s.vm_name = bad[i];
        assert_null(domain_xml_build(&s));
        s = base_spec;
        s.disk_path = bad[i];
        assert_null(domain_xml_build(&s));
    }
}

static void
test_missing_fields(void **state)
{
    static const size_t required[] = {
        offsetof(DomainSpec, uuid),        offsetof(DomainSpec, domain_name),
        offsetof(DomainSpec, vm_name),     offsetof(DomainSpec, project),
        offsetof(DomainSpec, flavor_name), offsetof(DomainSpec, image_id),
        offsetof(DomainSpec, disk_path),   offsetof(DomainSpec, network),
        offsetof(DomainSpec, mac),         offsetof(DomainSpec, console_log),
        offsetof(DomainSpec, created_at),
    };
    assert_null(domain_xml_build(NULL));

    _cleanup_free_ char *ok = domain_xml_build(&base_spec);
    assert_non_null(ok);

    for (size_t i = 0; i < ELEMENTSOF(required); i++) {
        DomainSpec s = base_spec;
        const char **field = (const char **)((char *)&s + required[i]);
        *field = NULL;
        assert_null(domain_xml_build(&s));
        *field = "";
        assert_null(domain_xml_build(&s));
    }

    DomainSpec s = base_spec;
    s.vcpus = 0;
    assert_null(domain_xml_build(&s));
    s = base_spec;
    s.ram_mib = 0;
    assert_null(domain_xml_build(&s));
    s = base_spec;
    s.disk_gib = 0;
    assert_null(domain_xml_build(&s));
    s = base_spec;
    s.virt_type = _VIRT_TYPE_INVALID;
    assert_null(domain_xml_build(&s));
    s.virt_type = _VIRT_TYPE_MAX;
    assert_null(domain_xml_build(&s));

    /* The seed is optional, but an empty path is not a path. */
    s = base_spec;
    s.seed_path = "";
    assert_null(domain_xml_build(&s));
    s.seed_path = NULL;
    _cleanup_free_ char *no_seed = domain_xml_build(&s);
    assert_non_null(no_seed);
    assert_null(strstr(no_seed, "cdrom"));
}

static void
test_virt_type_strings(void **state)
{
    assert_string_equal(virt_type_to_string(VIRT_TYPE_KVM), "kvm");
    assert_string_equal(virt_type_to_string(VIRT_TYPE_QEMU), "qemu");
    assert_string_equal(virt_type_to_string(VIRT_TYPE_TEST), "test");
    assert_null(virt_type_to_string(_VIRT_TYPE_MAX));
    assert_null(virt_type_to_string(_VIRT_TYPE_INVALID));
    assert_int_equal(virt_type_from_string("kvm"), VIRT_TYPE_KVM);
    assert_int_equal(virt_type_from_string("qemu"), VIRT_TYPE_QEMU);
    assert_int_equal(virt_type_from_string("test"), VIRT_TYPE_TEST);
    assert_int_equal(virt_type_from_string("KVM"), _VIRT_TYPE_INVALID);
    assert_int_equal(virt_type_from_string(""), _VIRT_TYPE_INVALID);
    assert_int_equal(virt_type_from_string(NULL), _VIRT_TYPE_INVALID);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        {"golden_kvm_basic", test_golden, NULL, NULL, (void *)"kvm_basic"},
        {"golden_qemu_tcg", test_golden, NULL, NULL, (void *)"qemu_tcg"},
        {"golden_no_seed", test_golden, NULL, NULL, (void *)"no_seed"},
        {"golden_hostile_name", test_golden, NULL, NULL, (void *)"hostile_name"},
        {"golden_sim_test", test_golden, NULL, NULL, (void *)"sim_test"},
        cmocka_unit_test(test_validator_rejects_bad_xml),
        cmocka_unit_test(test_hostile_strings_everywhere),
        cmocka_unit_test(test_whitespace_round_trip),
        cmocka_unit_test(test_invalid_characters_refused),
        cmocka_unit_test(test_missing_fields),
        cmocka_unit_test(test_virt_type_strings),
    };
    xmlInitParser();
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    xmlCleanupParser();
    return rc;
}
