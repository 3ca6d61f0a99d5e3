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
#include "model/network.h"
#include "util/cleanup.h"
#include "util/strutil.h"

#define NOVA_NS "http://openstack.org/xmlns/libvirt/nova/1.1"
#define NIMBUS_NS "https://nimbus.dev/xmlns/vm/1"

DEFINE_TRIVIAL_CLEANUP_FUNC(xmlDoc, xmlFreeDoc)

static const DomainNic base_nic = {DOMAIN_NIC_NETWORK, "default", "52:54:00:12:34:56", NULL, 0};

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
    .nics = &base_nic,
    .n_nics = 1,
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

static const char *const nic_kinds[] = {
    [DOMAIN_NIC_NETWORK] = "network", [DOMAIN_NIC_BRIDGE] = "bridge"};

/* Fills *spec with pointers into root and nics, which must outlive it. */
static void
spec_from_json(json_t *root, DomainSpec *spec, DomainNic nics[VM_NICS_MAX])
{
    json_t *jnics = json_object_get(root, "nics");
    size_t n_nics = json_array_size(jnics);
    assert_true(n_nics >= 1 && n_nics <= VM_NICS_MAX);
    for (size_t i = 0; i < n_nics; i++) {
        json_t *j = json_array_get(jnics, i);
        const char *kind = json_str(j, "kind");
        assert_non_null(kind);
        nics[i] = (DomainNic){
            .kind = streq(kind, "bridge") ? DOMAIN_NIC_BRIDGE : DOMAIN_NIC_NETWORK,
            .source = json_str(j, "source"),
            .mac = json_str(j, "mac"),
            .target_dev = json_str(j, "target_dev"),
            .mtu = (unsigned)json_integer_value(json_object_get(j, "mtu")),
            .filter = json_str(j, "filter"),
        };
        if (json_str(j, "filter_ip"))
            assert_int_equal(ipv4_parse(json_str(j, "filter_ip"), &nics[i].filter_ip), 0);
        assert_string_equal(kind, nic_kinds[nics[i].kind]);
    }
    *spec = (DomainSpec){
        .uuid = json_str(root, "uuid"),
        .domain_name = json_str(root, "domain_name"),
        .vm_name = json_str(root, "vm_name"),
        .project = json_str(root, "project"),
        .project_id = json_str(root, "project_id"),
        .owner_user_id = json_str(root, "owner_user_id"),
        .owner_user_name = json_str(root, "owner_user_name"),
        .flavor_name = json_str(root, "flavor_name"),
        .image_id = json_str(root, "image_id"),
        .virt_type = virt_type_from_string(json_str(root, "virt_type")),
        .vcpus = (unsigned)json_integer_value(json_object_get(root, "vcpus")),
        .ram_mib = (uint64_t)json_integer_value(json_object_get(root, "ram_mib")),
        .disk_gib = (uint64_t)json_integer_value(json_object_get(root, "disk_gib")),
        .disk_path = json_str(root, "disk_path"),
        .disk_iotune =
            {
                (uint64_t)json_integer_value(json_object_get(root, "disk_iops")),
                (uint64_t)json_integer_value(json_object_get(root, "disk_bytes_sec")),
            },
        .seed_path = json_str(root, "seed_path"),
        .nics = nics,
        .n_nics = n_nics,
        .hotplug_slots = (unsigned)json_integer_value(json_object_get(root, "hotplug_slots")),
        .console_log = json_str(root, "console_log"),
        .created_at = json_str(root, "created_at"),
        .vnc_listen = json_str(root, "vnc_listen"),
        .vnc_password = json_str(root, "vnc_password"),
    };
    json_t *rbd = json_object_get(root, "disk_rbd");
    if (rbd) {
        json_t *hosts = json_object_get(rbd, "hosts");
        spec->disk_rbd.name = json_str(rbd, "name");
        spec->disk_rbd.user = json_str(rbd, "user");
        spec->disk_rbd.secret = json_str(rbd, "secret");
        for (size_t i = 0; i < json_array_size(hosts) && i < DOMAIN_RBD_HOSTS_MAX; i++)
            spec->disk_rbd.hosts[spec->disk_rbd.n_hosts++] =
                json_string_value(json_array_get(hosts, i));
    }
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

/* The <interface> elements, in order, under base (an XPath to their parent). */
static void
check_nics_at(xmlDoc *doc, const char *base, const DomainNic *nics, size_t n)
{
    char expr[256];
    snprintf(expr, sizeof(expr), "count(%s/interface)", base);
    assert_xpath_u64(doc, expr, n);
    for (size_t i = 0; i < n; i++) {
        const DomainNic *nic = &nics[i];
        const char *kind = nic_kinds[nic->kind];
        char at[128];
        snprintf(at, sizeof(at), "%s/interface[%zu]", base, i + 1);
        snprintf(expr, sizeof(expr), "%s/@type", at);
        assert_xpath(doc, expr, kind);
        snprintf(expr, sizeof(expr), "%s/source/@%s", at, kind);
        assert_xpath(doc, expr, nic->source);
        snprintf(expr, sizeof(expr), "count(%s/source/@*)", at);
        assert_xpath(doc, expr, "1");
        snprintf(expr, sizeof(expr), "%s/mac/@address", at);
        assert_xpath(doc, expr, nic->mac);
        snprintf(expr, sizeof(expr), "%s/model/@type", at);
        assert_xpath(doc, expr, "virtio");
        snprintf(expr, sizeof(expr), "count(%s/target)", at);
        assert_xpath(doc, expr, nic->target_dev ? "1" : "0");
        if (nic->target_dev) {
            snprintf(expr, sizeof(expr), "%s/target/@dev", at);
            assert_xpath(doc, expr, nic->target_dev);
        }
        snprintf(expr, sizeof(expr), "count(%s/filterref)", at);
        assert_xpath(doc, expr, nic->filter ? "1" : "0");
        if (nic->filter) {
            char ip[NB_IPV4_STRLEN];
            ipv4_format(nic->filter_ip, ip);
            snprintf(expr, sizeof(expr), "%s/filterref/@filter", at);
            assert_xpath(doc, expr, nic->filter);
            snprintf(expr, sizeof(expr), "%s/filterref/parameter[@name='IP']/@value", at);
            assert_xpath(doc, expr, ip);
            snprintf(expr, sizeof(expr), "%s/filterref/parameter[@name='MAC']/@value", at);
            assert_xpath(doc, expr, nic->mac);
        }
        snprintf(expr, sizeof(expr), "count(%s/mtu)", at);
        assert_xpath(doc, expr, nic->mtu ? "1" : "0");
        if (nic->mtu) {
            snprintf(expr, sizeof(expr), "%s/mtu/@size", at);
            assert_xpath_u64(doc, expr, nic->mtu);
        }
    }
}

static void
check_nics(xmlDoc *doc, const DomainNic *nics, size_t n)
{
    check_nics_at(doc, "/domain/devices", nics, n);
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
    /* The creator where it is known, its id standing for a name that is not. */
    assert_xpath(doc, "count(" NOVA "nova:owner/nova:user)", spec->owner_user_id ? "1" : "0");
    if (spec->owner_user_id) {
        assert_xpath(doc, NOVA "nova:owner/nova:user/@uuid", spec->owner_user_id);
        assert_xpath(doc, NOVA "nova:owner/nova:user",
                     spec->owner_user_name ? spec->owner_user_name : spec->owner_user_id);
        assert_xpath(doc, "name(" NOVA "nova:owner/*[1])", "nova:user");
    }
    assert_xpath(doc, NOVA "nova:root/@uuid", spec->image_id);
#undef NOVA
    assert_xpath(doc, "/domain/metadata/nimbus:vm/nimbus:id", spec->uuid);
    assert_xpath(doc, "/domain/metadata/nimbus:vm/nimbus:name", spec->vm_name);

    assert_xpath(doc, "count(/domain/cpu)", spec->virt_type == VIRT_TYPE_KVM ? "1" : "0");
    if (spec->disk_rbd.name) {
        /* vda in RBD: a network disk naming the image, its monitors and the pool's secret. */
        assert_xpath(doc, "/domain/devices/disk[@device='disk']/@type", "network");
        assert_xpath(doc, "/domain/devices/disk[@device='disk']/source/@protocol", "rbd");
        assert_xpath(doc, "/domain/devices/disk[@device='disk']/source/@name", spec->disk_rbd.name);
        assert_xpath(doc, "/domain/devices/disk[@device='disk']/driver/@type", "raw");
        assert_xpath(doc, "/domain/devices/disk[@device='disk']/target/@dev", "vda");
        assert_xpath_u64(doc, "count(/domain/devices/disk[@device='disk']/source/host)",
                         spec->disk_rbd.n_hosts);
        assert_xpath(doc, "/domain/devices/disk[@device='disk']/auth/secret/@uuid",
                     spec->disk_rbd.secret ? spec->disk_rbd.secret : "");
    } else {
        assert_xpath(doc, "/domain/devices/disk[@device='disk']/source/@file", spec->disk_path);
    }
    assert_xpath(doc, "count(/domain/devices/disk[@device='cdrom'])", spec->seed_path ? "1" : "0");
    if (spec->seed_path) {
        assert_xpath(doc, "/domain/devices/disk[@device='cdrom']/source/@file", spec->seed_path);
        /* VM snapshots take the writable disks only. */
        assert_xpath(doc, "/domain/devices/disk[@device='cdrom']/@snapshot", "no");
        assert_xpath(doc, "count(/domain/devices/disk[@device='disk']/@snapshot)", "0");
    }
    /* Disk QoS on vda alone (never on the seed CD-ROM), each limit that is set. */
    const DiskIotune *io = &spec->disk_iotune;
    bool iotune = io->total_iops_sec || io->total_bytes_sec;
    assert_xpath(doc, "count(//iotune)", iotune ? "1" : "0");
    assert_xpath(doc, "count(/domain/devices/disk[@device='disk']/iotune)", iotune ? "1" : "0");
    assert_xpath_u64(doc, "count(//iotune/total_iops_sec)", io->total_iops_sec ? 1 : 0);
    assert_xpath_u64(doc, "count(//iotune/total_bytes_sec)", io->total_bytes_sec ? 1 : 0);
    if (io->total_iops_sec)
        assert_xpath_u64(doc, "//iotune/total_iops_sec", io->total_iops_sec);
    if (io->total_bytes_sec)
        assert_xpath_u64(doc, "//iotune/total_bytes_sec", io->total_bytes_sec);
    check_nics(doc, spec->nics, spec->n_nics);
    assert_xpath(doc, "/domain/devices/serial/log/@file", spec->console_log);
    assert_xpath(doc, "count(/domain/devices/graphics)", spec->vnc_listen ? "1" : "0");
    if (spec->vnc_listen) {
        assert_xpath(doc, "/domain/devices/graphics/@type", "vnc");
        assert_xpath(doc, "/domain/devices/graphics/@autoport", "yes");
        assert_xpath(doc, "/domain/devices/graphics/@listen", spec->vnc_listen);
        assert_xpath(doc, "/domain/devices/graphics/listen/@address", spec->vnc_listen);
        assert_xpath(doc, "/domain/devices/graphics/@passwd", spec->vnc_password);
        assert_xpath(doc, "/domain/devices/video/model/@type", "vga");
    }
    /* Only the elements we wrote: no string smuggled in markup. */
    unsigned elements = 47 + (spec->virt_type == VIRT_TYPE_KVM ? 1 : 0) +
                        (spec->seed_path ? 5 : 0) + (spec->owner_user_id ? 1 : 0) +
                        (spec->vnc_listen ? 4 : 0) + (iotune ? 1 : 0) +
                        (io->total_iops_sec ? 1 : 0) + (io->total_bytes_sec ? 1 : 0);
    /* vda in RBD: a <host> per monitor instead of the one <source>, and <auth><secret>. */
    if (spec->disk_rbd.name)
        elements += (unsigned)spec->disk_rbd.n_hosts + (spec->disk_rbd.user ? 2 : 0);
    for (size_t i = 0; i < spec->n_nics; i++)
        elements += 4 + (spec->nics[i].target_dev ? 1 : 0) + (spec->nics[i].mtu ? 1 : 0) +
                    (spec->nics[i].filter ? 3 : 0);
    /* Spare PCIe ports: one for each device on them (USB, vda, NICs, balloon, RNG) plus one per
     * hot-pluggable NIC. */
    size_t ports = 0;
    if (spec->hotplug_slots && spec->virt_type != VIRT_TYPE_TEST)
        ports = 4 + spec->n_nics + spec->hotplug_slots;
    assert_xpath_u64(doc, "count(/domain/devices/controller[@model='pcie-root-port'])", ports);
    assert_xpath(doc, "count(/domain/devices/controller[@model='pcie-root'])", ports ? "1" : "0");
    if (ports) {
        assert_xpath(doc, "/domain/devices/controller[@model='pcie-root']/@index", "0");
        elements += 1 + ports;
    }
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
    DomainNic nics[VM_NICS_MAX];
    spec_from_json(root, &spec, nics);

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
    s.owner_user_id = s.owner_user_name = hostile;
    s.disk_path = s.seed_path = s.console_log = s.created_at = hostile;
    /* A libvirt network's name is only escaped; a MAC or a bridge must be well-formed. */
    DomainNic nic = base_nic;
    nic.source = hostile;
    s.nics = &nic;
    _cleanup_free_ char *xml = domain_xml_build(&s);
    assert_non_null(xml);
    assert_null(strstr(xml, "<evil"));
    check_parsed(xml, &s);

    _cleanup_free_ char *one = domain_xml_nic(&nic);
    assert_non_null(one);
    assert_null(strstr(one, "<evil"));
    nic.mac = hostile;
    assert_null(domain_xml_build(&s));
    assert_null(domain_xml_nic(&nic));
    nic = base_nic;
    nic.kind = DOMAIN_NIC_BRIDGE;
    nic.source = hostile;
    assert_null(domain_xml_build(&s));
    assert_null(domain_xml_nic(&nic));
    nic = base_nic;
    nic.target_dev = hostile;
    assert_null(domain_xml_build(&s));
    assert_null(domain_xml_nic(&nic));
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
        offsetof(DomainSpec, disk_path),   offsetof(DomainSpec, console_log),
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
    s.hotplug_slots = DOMAIN_HOTPLUG_MAX + 1;
    assert_null(domain_xml_build(&s));
    s.hotplug_slots = DOMAIN_HOTPLUG_MAX;
    _cleanup_free_ char *most = domain_xml_build(&s);
    assert_non_null(most);
    check_parsed(most, &s);
    /* The test driver has no PCI: nothing for it. */
    s.virt_type = VIRT_TYPE_TEST;
    _cleanup_free_ char *test = domain_xml_build(&s);
    assert_non_null(test);
    assert_null(strstr(test, "<controller"));
    check_parsed(test, &s);
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

static char *
build_with(const DomainNic *nics, size_t n)
{
    DomainSpec s = base_spec;
    s.nics = nics;
    s.n_nics = n;
    return domain_xml_build(&s);
}

static void
test_nic_rules(void **state)
{
    DomainNic nics[VM_NICS_MAX + 1];
    for (size_t i = 0; i < ELEMENTSOF(nics); i++) {
        nics[i] = base_nic;
        nics[i].mac =
            (const char *[]){"52:54:00:00:00:01", "52:54:00:00:00:02", "52:54:00:00:00:03",
                             "52:54:00:00:00:04", "52:54:00:00:00:05", "52:54:00:00:00:06",
                             "52:54:00:00:00:07", "52:54:00:00:00:08", "52:54:00:00:00:09"}[i];
    }
    _cleanup_free_ char *eight = build_with(nics, VM_NICS_MAX);
    assert_non_null(eight);
    assert_null(build_with(nics, VM_NICS_MAX + 1));
    assert_null(build_with(nics, 0));
    assert_null(build_with(NULL, 1));

    /* Every field of each NIC is checked, whichever NIC it is. */
    static const char *const bad_macs[] = {
        "",
        "52:54:00:12:34",
        "52:54:00:12:34:567",
        "52-54-00-12-34-56",
        "52:54:00:12:34:5g",
        "53:54:00:12:34:56", /* multicast */
        "52:54:00:12:34:56 ",
    };
    for (size_t i = 0; i < ELEMENTSOF(bad_macs); i++) {
        DomainNic two[2] = {base_nic, base_nic};
        two[1].mac = bad_macs[i];
        assert_null(build_with(two, 2));
        assert_null(domain_xml_nic(&two[1]));
    }
    DomainNic two[2] = {base_nic, base_nic};
    two[1].mac = "52:54:00:AB:cd:EF"; /* hex in either case */
    _cleanup_free_ char *mixed = build_with(two, 2);
    assert_non_null(mixed);
    two[1].mac = "52:54:00:12:34:56"; /* the same MAC twice */
    assert_null(build_with(two, 2));
    two[1].mac = "52:54:00:12:34:57";
    two[0].target_dev = two[1].target_dev = "nbt0123456789ab"; /* the same tap twice */
    assert_null(build_with(two, 2));
    two[1].target_dev = "nbt0123456789ac";
    _cleanup_free_ char *taps = build_with(two, 2);
    assert_non_null(taps);

    static const char *const bad_devs[] = {"", "nbt0123456789abc", "vnet0", "-x", "a b", "a/b"};
    for (size_t i = 0; i < ELEMENTSOF(bad_devs); i++) {
        DomainNic n = base_nic;
        n.target_dev = bad_devs[i];
        assert_null(domain_xml_nic(&n));
        n = base_nic;
        n.kind = DOMAIN_NIC_BRIDGE;
        n.source = bad_devs[i];
        /* vnet* is libvirt's for taps only: a bridge may be called so. */
        _cleanup_free_ char *xml = domain_xml_nic(&n);
        if (str_startswith(bad_devs[i], "vnet"))
            assert_non_null(xml);
        else
            assert_null(xml);
    }
    /* A filter needs a valid name and the port's address for clean-traffic. */
    DomainNic f = base_nic;
    f.filter = "nimbus-port-x";
    assert_null(domain_xml_nic(&f));
    f.filter_ip = UINT32_MAX;
    assert_null(domain_xml_nic(&f));
    f.filter_ip = 0x0a000005;
    f.filter = "bad name";
    assert_null(domain_xml_nic(&f));
    f.filter = "nimbus-port-x";
    _cleanup_free_ char *fx = domain_xml_nic(&f);
    assert_non_null(fx);
    assert_non_null(strstr(fx, "<parameter name='IP' value='10.0.0.5'/>"));
    DomainNic n = base_nic;
    n.source = NULL;
    assert_null(domain_xml_nic(&n));
    n.source = "";
    assert_null(domain_xml_nic(&n));
    n = base_nic;
    n.kind = _DOMAIN_NIC_KIND_MAX;
    assert_null(domain_xml_nic(&n));
    n = base_nic;
    static const unsigned bad_mtus[] = {1, NETWORK_MTU_MIN - 1, NETWORK_MTU_MAX + 1};
    for (size_t i = 0; i < ELEMENTSOF(bad_mtus); i++) {
        n.mtu = bad_mtus[i];
        assert_null(domain_xml_nic(&n));
    }
    n.mtu = NETWORK_MTU_MIN;
    _cleanup_free_ char *lo = domain_xml_nic(&n);
    assert_non_null(lo);
    n.mtu = NETWORK_MTU_MAX;
    _cleanup_free_ char *hi = domain_xml_nic(&n);
    assert_non_null(hi);
    assert_null(domain_xml_nic(NULL));
}

/* The hot-plug element is the one the full domain has for that NIC. */
static void
test_nic_alone(void **state)
{
    static const DomainNic nics[] = {
        {DOMAIN_NIC_NETWORK, "nimbus-net-x", "52:54:00:0a:00:01", "nbt1f2e3d4c5b6a", 1450},
        {DOMAIN_NIC_BRIDGE, "br0", "52:54:00:0a:00:02", NULL, 0},
    };
    _cleanup_free_ char *full = build_with(nics, ELEMENTSOF(nics));
    assert_non_null(full);
    for (size_t i = 0; i < ELEMENTSOF(nics); i++) {
        _cleanup_free_ char *one = domain_xml_nic(&nics[i]);
        assert_non_null(one);
        _cleanup_(xmlFreeDocp) xmlDoc *doc =
            xmlReadMemory(one, (int)strlen(one), "nic.xml", NULL, XML_PARSE_NONET);
        assert_non_null(doc);
        check_nics_at(doc, "", &nics[i], 1);
        assert_xpath_u64(doc, "count(//*)",
                         4 + (nics[i].target_dev ? 1 : 0) + (nics[i].mtu ? 1 : 0));
        /* Indented as in the domain, it is a verbatim part of it. */
        _cleanup_free_ char *indented = NULL;
        size_t len = 0;
        _cleanup_fclose_ FILE *f = open_memstream(&indented, &len);
        assert_non_null(f);
        for (const char *line = one; *line;) {
            size_t l = strcspn(line, "\n");
            fprintf(f, "    %.*s\n", (int)l, line);
            line += l + (line[l] == '\n');
        }
        assert_int_equal(fflush(f), 0);
        assert_non_null(strstr(full, indented));
    }
}

/* An RBD root disk with a malformed image name, monitor or secret, or beside a file path, gives
 * no document at all. */
static void
test_rbd_root_refused(void **state)
{
    DomainSpec s = base_spec;
    s.disk_path = NULL;
    s.disk_rbd.name = "nimbus/vm-1-disk";
    s.disk_rbd.hosts[0] = "10.0.0.5:6789";
    s.disk_rbd.n_hosts = 1;
    s.disk_rbd.user = "nimbus";
    s.disk_rbd.secret = "6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b";
    _cleanup_free_ char *ok = domain_xml_build(&s);
    assert_non_null(ok);
    static const char *const names[] = {"vm-1-disk",  "nimbus/",        "/vm",
                                        "nim bus/vm", "nimbus/vm'/><x", "nimbus/a/b"};
    for (size_t i = 0; i < ELEMENTSOF(names); i++) {
        DomainSpec b = s;
        b.disk_rbd.name = names[i];
        assert_null(domain_xml_build(&b));
    }
    DomainSpec b = s;
    b.disk_rbd.hosts[0] = "10.0.0.5:99999";
    assert_null(domain_xml_build(&b));
    b = s;
    b.disk_rbd.n_hosts = 0;
    assert_null(domain_xml_build(&b));
    b = s;
    b.disk_rbd.secret = "not-a-uuid";
    assert_null(domain_xml_build(&b));
    b = s;
    b.disk_rbd.user = NULL; /* a secret without a user */
    assert_null(domain_xml_build(&b));
    b = s;
    b.disk_path = "/var/lib/nimbus/disk.qcow2"; /* both */
    assert_null(domain_xml_build(&b));
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
        {"golden_multi_nic", test_golden, NULL, NULL, (void *)"multi_nic"},
        {"golden_hotplug", test_golden, NULL, NULL, (void *)"hotplug"},
        {"golden_nic_filter", test_golden, NULL, NULL, (void *)"nic_filter"},
        {"golden_project_meta", test_golden, NULL, NULL, (void *)"project_meta"},
        {"golden_vnc", test_golden, NULL, NULL, (void *)"vnc"},
        {"golden_disk_qos", test_golden, NULL, NULL, (void *)"disk_qos"},
        {"golden_rbd_root", test_golden, NULL, NULL, (void *)"rbd_root"},
        cmocka_unit_test(test_rbd_root_refused),
        cmocka_unit_test(test_validator_rejects_bad_xml),
        cmocka_unit_test(test_hostile_strings_everywhere),
        cmocka_unit_test(test_whitespace_round_trip),
        cmocka_unit_test(test_invalid_characters_refused),
        cmocka_unit_test(test_missing_fields),
        cmocka_unit_test(test_virt_type_strings),
        cmocka_unit_test(test_nic_rules),
        cmocka_unit_test(test_nic_alone),
    };
    xmlInitParser();
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    xmlCleanupParser();
    return rc;
}
