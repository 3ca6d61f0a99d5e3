#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "model/flavor.h"
#include "model/group.h"
#include "model/host.h"
#include "model/image.h"
#include "model/labels.h"
#include "model/task.h"
#include "model/vm.h"

static json_t *
parse(const char *text)
{
    json_error_t e;
    /* Any value, as the API decodes bodies; "\u0000" is let through as well (the API's parser
     * refuses it already) so that the decoders' own refusal of NUL is tested too. */
    json_t *j = json_loads(text, JSON_ALLOW_NUL | JSON_DECODE_ANY, &e);
    if (!j)
        fail_msg("not JSON: %s (%s)", text, e.text);
    return j;
}

static void
expect_vm_error(const char *body, const char *code)
{
    json_t *j = parse(body);
    VmCreateRequest r;
    NbError *err = NULL;
    assert_int_equal(vm_create_request_parse(j, &r, &err), -1);
    assert_non_null(err);
    if (strcmp(err->code, code) != 0)
        fail_msg("%s: got %s (%s), want %s", body, err->code, err->message, code);
    nb_error_free(err);
    json_decref(j);
}

static void
test_vm_request_ok(void **state)
{
    json_t *j = parse("{\"name\":\"web1\",\"image\":\"tiny\",\"flavor\":\"small\","
                      "\"hostname\":\"web-1\",\"user_data\":\"#!/bin/sh\\necho '$(x)'\\n\"}");
    VmCreateRequest r;
    NbError *err = NULL;
    assert_int_equal(vm_create_request_parse(j, &r, &err), 0);
    assert_string_equal(r.name, "web1");
    assert_string_equal(r.hostname, "web-1");
    assert_string_equal(r.user_data, "#!/bin/sh\necho '$(x)'\n");
    vm_create_request_clear(&r);
    json_decref(j);
}

static void
test_vm_request_errors(void **state)
{
    expect_vm_error("{\"name\":\"a/b\",\"image\":\"i\",\"flavor\":\"f\"}", NB_ERR_INVALID_NAME);
    expect_vm_error("{\"name\":\"..\",\"image\":\"i\",\"flavor\":\"f\"}", NB_ERR_INVALID_NAME);
    expect_vm_error("{\"name\":\"<x>\",\"image\":\"i\",\"flavor\":\"f\"}", NB_ERR_INVALID_NAME);
    expect_vm_error("{\"name\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
                    "\",\"image\":\"i\",\"flavor\":\"f\"}",
                    NB_ERR_INVALID_NAME);
    expect_vm_error("{\"name\":\"a\",\"image\":\"i\",\"flavor\":\"f\",\"extra\":1}",
                    NB_ERR_INVALID_REQUEST);
    expect_vm_error("{\"name\":1,\"image\":\"i\",\"flavor\":\"f\"}", NB_ERR_INVALID_REQUEST);
    expect_vm_error("{\"image\":\"i\",\"flavor\":\"f\"}", NB_ERR_INVALID_REQUEST);
    expect_vm_error("{\"name\":\"a\",\"image\":\"i\",\"flavor\":\"f\",\"hostname\":\"a;b\"}",
                    NB_ERR_INVALID_HOSTNAME);
    expect_vm_error("{\"name\":\"a\",\"image\":\"i\",\"flavor\":\"f\",\"user_data\":5}",
                    NB_ERR_INVALID_REQUEST);
    expect_vm_error("[]", NB_ERR_INVALID_REQUEST);
}

static void
test_vm_user_data_limit(void **state)
{
    size_t n = NB_USER_DATA_MAX + 1;
    char *big = malloc(n + 1);
    memset(big, 'x', n);
    big[n] = '\0';
    json_t *j = json_pack("{s:s, s:s, s:s, s:s}", "name", "a", "image", "i", "flavor", "f",
                          "user_data", big);
    VmCreateRequest r;
    NbError *err = NULL;
    assert_int_equal(vm_create_request_parse(j, &r, &err), -1);
    assert_string_equal(err->code, NB_ERR_USER_DATA_TOO_LARGE);
    nb_error_free(err);
    json_decref(j);
    free(big);
}

static void
test_flavor_request(void **state)
{
    NbError *err = NULL;
    Flavor f;
    json_t *j = parse("{\"name\":\"small\",\"vcpus\":2,\"ram_mib\":256,\"disk_gib\":1}");
    assert_int_equal(flavor_from_request(j, &f, &err), 0);
    assert_int_equal(f.vcpus, 2);
    json_decref(j);
    const char *bad[] = {
        "{\"name\":\"s\",\"vcpus\":0,\"ram_mib\":256,\"disk_gib\":1}",
        "{\"name\":\"s\",\"vcpus\":-1,\"ram_mib\":256,\"disk_gib\":1}",
        "{\"name\":\"s\",\"vcpus\":1.5,\"ram_mib\":256,\"disk_gib\":1}",
        "{\"name\":\"s\",\"vcpus\":\"1\",\"ram_mib\":256,\"disk_gib\":1}",
        "{\"name\":\"s\",\"vcpus\":1,\"ram_mib\":256}",
        "{\"name\":\"s\",\"vcpus\":1,\"ram_mib\":256,\"disk_gib\":1,\"swap\":1}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        j = parse(bad[i]);
        assert_int_equal(flavor_from_request(j, &f, &err), -1);
        assert_string_equal(err->code, NB_ERR_INVALID_REQUEST);
        nb_error_free(err);
        err = NULL;
        json_decref(j);
    }
}

static void
test_image_request(void **state)
{
    NbError *err = NULL;
    Image img;
    json_t *j = parse("{\"name\":\"tiny\",\"disk_format\":\"qcow2\"}");
    assert_int_equal(image_from_request(j, &img, &err), 0);
    assert_int_equal(img.format, IMAGE_FORMAT_QCOW2);
    assert_int_equal(img.state, IMAGE_STATE_QUEUED);
    json_decref(j);
    j = parse("{\"name\":\"tiny\",\"disk_format\":\"vmdk\"}");
    assert_int_equal(image_from_request(j, &img, &err), -1);
    assert_string_equal(err->code, NB_ERR_IMAGE_FORMAT_UNSUPPORTED);
    nb_error_free(err);
    json_decref(j);
}

static void
test_enum_tables(void **state)
{
    for (int i = 0; i < _VM_STATE_MAX; i++)
        assert_int_equal(vm_state_from_string(vm_state_to_string((VmState)i)), i);
    for (int i = 0; i < _TASK_KIND_MAX; i++)
        assert_int_equal(task_kind_from_string(task_kind_to_string((TaskKind)i)), i);
    for (int i = 0; i < _HOST_ADMIN_MAX; i++)
        assert_int_equal(host_admin_from_string(host_admin_to_string((HostAdmin)i)), i);
    for (int i = 0; i < _HOST_CONN_MAX; i++)
        assert_int_equal(host_conn_from_string(host_conn_to_string((HostConn)i)), i);
    for (int i = 0; i < _GROUP_POLICY_MAX; i++)
        assert_int_equal(group_policy_from_string(group_policy_to_string((GroupPolicy)i)), i);
    assert_string_equal(task_kind_to_string(TASK_KIND_VM_MIGRATE), "vm.migrate");
    assert_int_equal(group_policy_from_string("anti-affinity"), GROUP_POLICY_ANTI_AFFINITY);
    assert_int_equal(host_admin_from_string("bogus"), _HOST_ADMIN_INVALID);
    assert_int_equal(vm_state_from_string("bogus"), _VM_STATE_INVALID);
    assert_null(vm_state_to_string(_VM_STATE_MAX));
    assert_null(vm_state_to_string((VmState)-1));
}

static void
test_vm_json_hides_user_data(void **state)
{
    Vm vm = {.state = VM_STATE_RUNNING, .desired = VM_POWER_RUNNING};
    snprintf(vm.id, sizeof(vm.id), "x");
    vm.user_data = strdup("secret");
    json_t *j = vm_to_json(&vm);
    assert_non_null(j);
    assert_null(json_object_get(j, "user_data"));
    assert_true(json_is_null(json_object_get(j, "task_id")));
    assert_string_equal(json_string_value(json_object_get(j, "state")), "running");
    json_decref(j);
    vm_clear(&vm);
}

/* ---- labels ---- */

static void
expect_labels_error(const char *text, const char *needle)
{
    json_t *j = parse(text);
    Labels l;
    NbError *err = NULL;
    if (labels_from_json(j, &l, &err) != -1)
        fail_msg("%s: accepted", text);
    assert_string_equal(err->code, NB_ERR_INVALID_REQUEST);
    if (needle && !strstr(err->message, needle))
        fail_msg("%s: message '%s' does not name '%s'", text, err->message, needle);
    nb_error_free(err);
    json_decref(j);
}

static void
test_labels_json(void **state)
{
    NbError *err = NULL;
    Labels l;
    json_t *j = parse("{\"zone\":\"b\",\"a.b/c-d_e\":\"\",\"rack\":\"R-1.x_y\",\"a\":\"1\"}");
    assert_int_equal(labels_from_json(j, &l, &err), 0);
    assert_int_equal(l.n, 4);
    /* Sorted by key: "a" before "a.b/c-d_e", although '=' sorts after '.'. */
    assert_string_equal(l.item[0], "a=1");
    assert_string_equal(l.item[1], "a.b/c-d_e=");
    assert_string_equal(l.item[2], "rack=R-1.x_y");
    assert_string_equal(l.item[3], "zone=b");
    json_t *back = labels_to_json(&l);
    assert_true(json_equal(back, j));
    json_decref(back);
    json_decref(j);

    /* Absent or null: no labels. */
    assert_int_equal(labels_from_json(NULL, &l, &err), 0);
    assert_int_equal(l.n, 0);
    j = json_null();
    assert_int_equal(labels_from_json(j, &l, &err), 0);
    json_decref(j);

    /* A key of 63 characters and a value of 63 pass; 64 do not. */
    char text[256];
    char k63[64], k64[65];
    memset(k63, 'k', 63);
    k63[63] = '\0';
    memset(k64, 'k', 64);
    k64[64] = '\0';
    snprintf(text, sizeof(text), "{\"%s\":\"%s\"}", k63, k63);
    j = parse(text);
    assert_int_equal(labels_from_json(j, &l, &err), 0);
    json_decref(j);
    snprintf(text, sizeof(text), "{\"%s\":\"v\"}", k64);
    expect_labels_error(text, k63);
    snprintf(text, sizeof(text), "{\"k\":\"%s\"}", k64);
    expect_labels_error(text, "'k'");

    const char *bad_keys[] = {"",    "Zone", "-a",  ".a",      "_a",    "/a",
                              "a b", "a=b",  "a:b", "\\u00e9", "a\\nb", "a\\\"b"};
    for (size_t i = 0; i < sizeof(bad_keys) / sizeof(bad_keys[0]); i++) {
        snprintf(text, sizeof(text), "{\"ok\":\"1\",\"%s\":\"v\"}", bad_keys[i]);
        expect_labels_error(text, NULL);
    }
    expect_labels_error("{\"zone\":\"a b\"}", "zone");
    expect_labels_error("{\"zone\":\"x/y\"}", "zone");
    expect_labels_error("{\"zone\":\"=\"}", "zone");
    expect_labels_error("{\"zone\":\"a\\nb\"}", "zone");
    expect_labels_error("{\"zone\":\"a\\u0000b\"}", "zone");
    expect_labels_error("{\"zone\":1}", "zone");
    expect_labels_error("{\"zone\":null}", "zone");
    expect_labels_error("{\"zone\":{}}", "zone");
    expect_labels_error("[\"zone=a\"]", NULL);
    expect_labels_error("\"zone=a\"", NULL);
}

static void
test_labels_limit(void **state)
{
    NbError *err = NULL;
    Labels l;
    json_t *j = json_object();
    char key[16];
    for (int i = 0; i < NB_LABELS_MAX; i++) {
        snprintf(key, sizeof(key), "k%02d", i);
        json_object_set_new(j, key, json_string("v"));
    }
    assert_int_equal(labels_from_json(j, &l, &err), 0);
    assert_int_equal(l.n, NB_LABELS_MAX);
    json_object_set_new(j, "one-more", json_string("v"));
    assert_int_equal(labels_from_json(j, &l, &err), -1);
    assert_string_equal(err->code, NB_ERR_INVALID_REQUEST);
    nb_error_free(err);
    err = NULL;
    json_decref(j);

    /* Full, a known key can still change its value; a new one is refused. */
    assert_int_equal(labels_add_text(&l, "k03=w", &err), 0);
    assert_int_equal(l.n, NB_LABELS_MAX);
    assert_string_equal(l.item[3], "k03=w");
    assert_int_equal(labels_add_text(&l, "k99=v", &err), -1);
    assert_string_equal(err->code, NB_ERR_INVALID_REQUEST);
    nb_error_free(err);
}

static void
test_labels_text(void **state)
{
    NbError *err = NULL;
    Labels l = {0}, back, want = {0};
    assert_int_equal(labels_add_text(&l, "zone=b", &err), 0);
    assert_int_equal(labels_add_text(&l, "a.b=1", &err), 0);
    assert_int_equal(labels_add_text(&l, "a=2", &err), 0);
    assert_int_equal(labels_add_text(&l, "gpu=", &err), 0);
    /* The same key again replaces its value. */
    assert_int_equal(labels_add_text(&l, "zone=c", &err), 0);
    assert_int_equal(l.n, 4);
    assert_string_equal(l.item[0], "a=2");
    assert_string_equal(l.item[1], "a.b=1");
    assert_string_equal(l.item[2], "gpu=");
    assert_string_equal(l.item[3], "zone=c");

    const char *bad[] = {"zone", "=b", "Zone=b", "zone=a b", "zone=a=b", "-z=1", ""};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (labels_add_text(&l, bad[i], &err) != -1)
            fail_msg("'%s' accepted", bad[i]);
        assert_string_equal(err->code, NB_ERR_INVALID_REQUEST);
        nb_error_free(err);
        err = NULL;
    }
    assert_int_equal(l.n, 4);

    char *text = labels_to_text(&l);
    assert_string_equal(text, "a=2\na.b=1\ngpu=\nzone=c");
    labels_from_text(text, &back);
    free(text);
    assert_int_equal(back.n, 4);
    for (size_t i = 0; i < l.n; i++)
        assert_string_equal(back.item[i], l.item[i]);
    text = labels_to_text(&want);
    assert_string_equal(text, "");
    free(text);
    /* Malformed items are skipped, not fatal. */
    labels_from_text("BAD=1\nok=2\n\nnoeq\nz=a b\nb=", &back);
    assert_int_equal(back.n, 2);
    assert_string_equal(back.item[0], "b=");
    assert_string_equal(back.item[1], "ok=2");
    labels_from_text(NULL, &back);
    assert_int_equal(back.n, 0);

    /* Containment: every wanted item, value included. */
    assert_int_equal(labels_add_text(&want, "zone=c", &err), 0);
    assert_true(labels_contain(&l, &want));
    assert_int_equal(labels_add_text(&want, "gpu=", &err), 0);
    assert_true(labels_contain(&l, &want));
    assert_int_equal(labels_add_text(&want, "zone=b", &err), 0);
    assert_false(labels_contain(&l, &want));
    Labels none = {0};
    assert_true(labels_contain(&none, &none));
    assert_true(labels_contain(&l, &none));
    assert_false(labels_contain(&none, &l));
}

/* ---- hosts ---- */

static void
test_host_uri_accepts(void **state)
{
    const char *good[] = {
        "qemu:///system",
        "test:///default",
        "qemu+ssh://node1/system",
        "qemu+ssh://root@node1.example.com:2222/system",
        "qemu+ssh://nimbus_svc@10.0.0.1/system?keyfile=/etc/nimbus/id_ed25519",
        "qemu+ssh://_x-1@h/system",
        "qemu+tls://host-a.lan/system?pkipath=/etc/pki/nimbus",
        "qemu+tls://kvm1:16514/system?pkipath=/etc/nimbus/pki&authfile=/etc/nimbus/auth.conf",
        "qemu+tls://10.0.0.2/system?authfile=/etc/nimbus/auth.conf",
        "qemu+tcp://10.0.0.2/system?authfile=/etc/nimbus/libvirt-auth.conf",
        "qemu+tcp://127.0.0.1:16509/system",
        "qemu+tcp://0.0.0.0:1/system",
        ("qemu+ssh://h:65535/system?no_tty=1&socket=/var/run/libvirt/libvirt-sock"),
        "qemu+ssh://a.b-c.d9/system?keyfile=C:x.y_z-1",
        "test:///tmp/x/sim1.xml",
        "test:///var/lib/nimbus-sim/host_0001.v2.xml",
        "test:///a.xml",
        "test+unix:///default",
        "test+unix:///tmp/x/sim1.xml",
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        NbError *err = NULL;
        if (host_uri_validate(good[i], &err) != 0)
            fail_msg("%s refused: %s", good[i], err->message);
    }
}

static void
test_host_uri_rejects(void **state)
{
    char long_uri[NB_URI_MAX + 2];
    int n = snprintf(long_uri, sizeof(long_uri), "qemu+ssh://h/system?keyfile=/");
    memset(long_uri + n, 'a', sizeof(long_uri) - 1 - (size_t)n);
    long_uri[sizeof(long_uri) - 1] = '\0';
    const char *bad[] = {
        "",
        "qemu:///session",
        "qemu:///system?socket=/x",
        "qemu://h/system",
        "QEMU:///system",
        "test:///default?x=1",
        "test:///other",
        /* simulated hosts: an absolute, plain path to a .xml file, nothing else */
        "test://h/tmp/sim.xml",
        "test:///tmp/sim",
        "test:///tmp/sim.XML",
        "test:///tmp/sim.xml?x=1",
        "test:///tmp/sim.xml#f",
        "test:///.xml",
        "test:///tmp/.sim.xml",
        "test:///tmp/../etc/sim.xml",
        "test:///tmp/a..xml",
        "test:///tmp/./sim.xml",
        "test:///tmp//sim.xml",
        "test:////tmp/sim.xml",
        "test:///tmp/si m.xml",
        "test:///tmp/s;m.xml",
        "test:///tmp/s$m.xml",
        "test:///tmp/s%20m.xml",
        "test:///tmp/s~m.xml",
        "test:///tmp/s:m.xml",
        "test:///tmp/s\\m.xml",
        "test:///tmp/sim.xml/",
        "test+unix://h/tmp/sim.xml",
        "test+unix:///tmp/../sim.xml",
        "test+unix:///other",
        "test+tcp:///tmp/sim.xml",
        "test+ssh://h/tmp/sim.xml",
        "test:tmp/sim.xml",
        "test:/tmp/sim.xml",
        "test://",
        "qemu+ext://",
        "qemu+ext:///system",
        "qemu+ext://h/system?command=rm",
        "qemu+unix:///system",
        "qemu+libssh2://h/system",
        "qemu+ssh://h/system?command=rm",
        "qemu+ssh://h/system?keepalive_interval=5",
        "qemu+ssh://h/system?known_hosts=/x",
        "qemu+ssh://h/system?netcat=nc",
        "qemu+ssh://h/system?proxy=native",
        "qemu+ssh://h/system?mode=legacy",
        "qemu+ssh:///system",
        "qemu+ssh://",
        "qemu+ssh:",
        "qemu+ssh://h",
        "qemu+ssh://h/",
        "qemu+ssh://h/session",
        "qemu+ssh://h/system/",
        "qemu+ssh://h/systemd",
        "qemu+ssh://h/system#frag",
        "qemu+ssh://h/system ",
        "qemu+ssh://h /system",
        " qemu:///system",
        "qemu+ssh://h/system\n",
        "qemu+ssh://h/system\t",
        "qemu+ssh://h/system?keyfile=\"x\"",
        "qemu+ssh://h/system?keyfile='x'",
        "qemu+ssh://h/system?keyfile=`x`",
        "qemu+ssh://h/system?keyfile=a;rm",
        "qemu+ssh://h/system?keyfile=$(x)",
        "qemu+ssh://h/system?keyfile=a|b",
        "qemu+ssh://h/system?keyfile=<x>",
        "qemu+ssh://h/system?keyfile=a\\b",
        "qemu+ssh://h/system?keyfile=%2e",
        "qemu+ssh://h/system?keyfile=a&",
        "qemu+ssh://h/system?&keyfile=a",
        "qemu+ssh://h/system?keyfile=a&&no_tty=1",
        "qemu+ssh://h/system?",
        "qemu+ssh://h/system?keyfile",
        "qemu+ssh://h/system?keyfile=",
        "qemu+ssh://h/system?no_verify=",
        /* no_verify turns off the server's certificate or host key check: never. */
        "qemu+ssh://h/system?no_verify=1",
        "qemu+tls://h/system?no_verify=1",
        "qemu+tls://h/system?pkipath=/p&no_verify=1",
        "qemu+tcp://h/system?no_verify=1",
        /* Each key only with the transports that read it. */
        "qemu+ssh://h/system?pkipath=/p",
        "qemu+tcp://h/system?pkipath=/p",
        "qemu+ssh://h/system?authfile=/a",
        "qemu+tls://h/system?keyfile=/k",
        "qemu+tls://h/system?socket=/s",
        "qemu+tcp://h/system?no_tty=1",
        "qemu+tls://h/system?known_hosts=/k",
        "qemu+tls://h/system?tls_priority=NORMAL",
        "qemu+tcp://h/system?authfile=/a&authfile=/b",
        "qemu+tcp://h/system?authfile=/a;b",
        "qemu+tcp://h/system?authfile=",
        "qemu+tls://h/system?pkipath=$HOME",
        "qemu+ssh://h/system?keyfile=a&keyfile=b",
        "qemu+ssh://h/system?keyfile=a=b",
        "qemu+ssh://h/system?KEYFILE=a",
        "qemu+ssh://-oProxyCommand=x/system",
        "qemu+ssh://-h/system",
        "qemu+ssh://h-/system",
        "qemu+ssh://-root@h/system",
        "qemu+ssh://Root@h/system",
        "qemu+ssh://1root@h/system",
        "qemu+ssh://@h/system",
        "qemu+ssh://user@@h/system",
        "qemu+ssh://a@b@h/system",
        "qemu+ssh://aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa@h/system",
        "qemu+ssh://h:0/system",
        "qemu+ssh://h:022/system",
        "qemu+ssh://h:65536/system",
        "qemu+ssh://h:22x/system",
        "qemu+ssh://h:/system",
        "qemu+ssh://h:-1/system",
        "qemu+ssh://h:22:33/system",
        "qemu+ssh://h../system",
        "qemu+ssh://h./system",
        "qemu+ssh://.h/system",
        "qemu+ssh://a_b/system",
        "qemu+ssh://300.1.1.1/system",
        "qemu+ssh://1.2.3/system",
        "qemu+ssh://1.2.3.4.5/system",
        "qemu+ssh://01.2.3.4/system",
        "qemu+ssh://[::1]/system",
        "qemu+ssh://h%20x/system",
        "qemu+ssh://h/system?keyfile=a b",
        "qemu+ssh://h\\x/system",
        "qemu+ssh://h/../system",
        "qemu+ssh://h//system",
        long_uri,
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        NbError *err = NULL;
        if (host_uri_validate(bad[i], &err) != -1)
            fail_msg("accepted: '%s'", bad[i]);
        assert_string_equal(err->code, NB_ERR_INVALID_URI);
        /* Messages never carry a control character from the URI. */
        for (const char *c = err->message; *c; c++)
            assert_true((unsigned char)*c >= 0x20);
        nb_error_free(err);
    }
    NbError *err = NULL;
    assert_int_equal(host_uri_validate(NULL, &err), -1);
    nb_error_free(err);
}

static void
test_host_uri_hostname(void **state)
{
    char out[NB_URI_MAX + 1];
    host_uri_hostname("qemu+ssh://root@node1:22/system?keyfile=/x", out, sizeof(out));
    assert_string_equal(out, "node1");
    host_uri_hostname("qemu+tls://10.0.0.1/system", out, sizeof(out));
    assert_string_equal(out, "10.0.0.1");
    host_uri_hostname("qemu+tcp://node2.example.org:16509/system", out, sizeof(out));
    assert_string_equal(out, "node2.example.org");
    host_uri_hostname("qemu:///system", out, sizeof(out));
    assert_string_equal(out, "");
    host_uri_hostname("test:///default", out, sizeof(out));
    assert_string_equal(out, "");
    host_uri_hostname("garbage", out, sizeof(out));
    assert_string_equal(out, "");
    char small[4];
    host_uri_hostname("qemu+ssh://longname/system", small, sizeof(small));
    assert_string_equal(small, "lon");
}

static void
expect_host_error(const char *body, const char *code)
{
    json_t *j = parse(body);
    Host h;
    NbError *err = NULL;
    if (host_create_request_parse(j, &h, &err) != -1)
        fail_msg("%s: accepted", body);
    if (strcmp(err->code, code) != 0)
        fail_msg("%s: got %s (%s), want %s", body, err->code, err->message, code);
    nb_error_free(err);
    json_decref(j);
}

static void
test_host_request(void **state)
{
    NbError *err = NULL;
    Host h;
    json_t *j = parse("{\"name\":\"node1\",\"uri\":\"qemu+ssh://root@node1/system\"}");
    assert_int_equal(host_create_request_parse(j, &h, &err), 0);
    json_decref(j);
    assert_string_equal(h.name, "node1");
    assert_string_equal(h.uri, "qemu+ssh://root@node1/system");
    assert_true(nb_uuid_is_valid(h.id));
    assert_int_equal(h.admin, HOST_ADMIN_ENABLED);
    assert_int_equal(h.conn, HOST_CONN_CONNECTING);
    assert_true(h.cpu_ratio == HOST_DEFAULT_CPU_RATIO);
    assert_true(h.ram_ratio == HOST_DEFAULT_RAM_RATIO);
    assert_true(h.disk_ratio == HOST_DEFAULT_DISK_RATIO);
    assert_int_equal(h.labels.n, 0);
    assert_true(h.created_at[0] != '\0');
    assert_string_equal(h.created_at, h.updated_at);

    j = parse("{\"name\":\"node2\",\"uri\":\"qemu+tls://node2/system\",\"cpu_ratio\":16,"
              "\"ram_ratio\":1.5,\"disk_ratio\":64,\"labels\":{\"ssd\":\"true\"}}");
    assert_int_equal(host_create_request_parse(j, &h, &err), 0);
    json_decref(j);
    assert_true(h.cpu_ratio == 16 && h.ram_ratio == 1.5 && h.disk_ratio == 64);
    assert_int_equal(h.labels.n, 1);
    assert_string_equal(h.labels.item[0], "ssd=true");

    expect_host_error("{\"name\":\"a b\",\"uri\":\"qemu:///system\"}", NB_ERR_INVALID_NAME);
    expect_host_error("{\"name\":\"\",\"uri\":\"qemu:///system\"}", NB_ERR_INVALID_NAME);
    expect_host_error("{\"name\":\"00000000-0000-4000-8000-000000000001\","
                      "\"uri\":\"qemu:///system\"}",
                      NB_ERR_INVALID_NAME);
    expect_host_error("{\"uri\":\"qemu:///system\"}", NB_ERR_INVALID_REQUEST);
    expect_host_error("{\"name\":\"n\"}", NB_ERR_INVALID_REQUEST);
    expect_host_error("{\"name\":\"n\",\"uri\":7}", NB_ERR_INVALID_REQUEST);
    expect_host_error("{\"name\":\"n\",\"uri\":\"qemu:///session\"}", NB_ERR_INVALID_URI);
    expect_host_error("{\"name\":\"n\",\"uri\":\"qemu:///system\\u0000x\"}", NB_ERR_INVALID_URI);
    expect_host_error("{\"name\":\"n\",\"uri\":\"qemu+ssh://h/system?command=rm -rf\"}",
                      NB_ERR_INVALID_URI);
    expect_host_error("{\"name\":\"n\",\"uri\":\"qemu:///system\",\"admin\":\"enabled\"}",
                      NB_ERR_INVALID_REQUEST);
    const char *ratios[] = {"0", "-1", "64.5", "65", "\"2\"", "true", "[]", "1e400"};
    for (size_t i = 0; i < sizeof(ratios) / sizeof(ratios[0]); i++) {
        char body[128];
        snprintf(body, sizeof(body), "{\"name\":\"n\",\"uri\":\"qemu:///system\",\"ram_ratio\":%s}",
                 ratios[i]);
        json_error_t e;
        json_t *maybe = json_loads(body, 0, &e);
        if (!maybe)
            continue; /* not even JSON */
        json_decref(maybe);
        expect_host_error(body, NB_ERR_INVALID_REQUEST);
    }
    expect_host_error("{\"name\":\"n\",\"uri\":\"qemu:///system\",\"labels\":{\"A\":\"1\"}}",
                      NB_ERR_INVALID_REQUEST);
    expect_host_error("{\"name\":\"n\",\"uri\":\"qemu:///system\",\"labels\":[]}",
                      NB_ERR_INVALID_REQUEST);

    /* An over-long URI is an invalid URI, not a size error. */
    char keyfile[NB_URI_MAX + 1], big[2 * NB_URI_MAX];
    memset(keyfile, 'a', NB_URI_MAX);
    keyfile[NB_URI_MAX] = '\0';
    snprintf(big, sizeof(big), "{\"name\":\"n\",\"uri\":\"qemu+ssh://h/system?keyfile=%s\"}",
             keyfile);
    expect_host_error(big, NB_ERR_INVALID_URI);
}

#define SECRET "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define AGENT_HOST "{\"name\":\"kvm1\",\"uri\":\"qemu+tcp://10.77.0.11/system\","

static void
test_host_request_agent(void **state)
{
    NbError *err = NULL;
    Host h;
    /* The secret alone: the URL is the URI's host on the agent's port; upper-case hex folded. */
    json_t *j = parse(AGENT_HOST "\"agent_secret\":\"0123456789ABCDEF0123456789abcdef0123456789"
                                 "abcdef0123456789abcdef\",\"tunnel_ip\":\"10.77.0.11\","
                                 "\"tunnel_dev\":\"eth0\"}");
    assert_int_equal(host_create_request_parse(j, &h, &err), 0);
    json_decref(j);
    assert_string_equal(h.agent_url, "https://10.77.0.11:8775");
    assert_string_equal(h.agent_secret, SECRET);
    assert_string_equal(h.tunnel_ip, "10.77.0.11");
    assert_string_equal(h.tunnel_dev, "eth0");
    /* The JSON tells that a secret is set, never the secret. */
    j = host_to_json(&h);
    char *text = json_dumps(j, 0);
    assert_null(strstr(text, SECRET));
    assert_null(strstr(text, "0123456789ABCDEF"));
    json_t *agent = json_object_get(j, "agent");
    assert_string_equal(json_string_value(json_object_get(agent, "url")),
                        "https://10.77.0.11:8775");
    assert_true(json_is_true(json_object_get(agent, "secret_set")));
    assert_string_equal(json_string_value(json_object_get(j, "tunnel_ip")), "10.77.0.11");
    free(text);
    json_decref(j);

    j = parse(AGENT_HOST "\"agent_url\":\"https://agent.example:9000\",\"agent_secret\":\"" SECRET
                         "\"}");
    assert_int_equal(host_create_request_parse(j, &h, &err), 0);
    json_decref(j);
    assert_string_equal(h.agent_url, "https://agent.example:9000");
    assert_string_equal(h.tunnel_ip, "");
    j = host_to_json(&(Host){.cpu_ratio = 1});
    assert_true(json_is_null(json_object_get(j, "agent")));
    assert_true(json_is_null(json_object_get(j, "tunnel_ip")));
    json_decref(j);

    expect_host_error(AGENT_HOST
                      "\"agent_url\":\"http://10.77.0.11:8775\",\"agent_secret\":\"" SECRET "\"}",
                      NB_ERR_INVALID_URI);
    expect_host_error(AGENT_HOST "\"agent_url\":\"https://10.77.0.11:8775/x\",\"agent_secret\":"
                                 "\"" SECRET "\"}",
                      NB_ERR_INVALID_URI);
    expect_host_error(AGENT_HOST "\"agent_url\":\"https://-x:8775\",\"agent_secret\":\"" SECRET
                                 "\"}",
                      NB_ERR_INVALID_URI);
    expect_host_error(AGENT_HOST "\"agent_url\":\"https://10.77.0.11:8775\"}",
                      NB_ERR_INVALID_REQUEST);
    expect_host_error(AGENT_HOST "\"agent_secret\":\"abc\"}", NB_ERR_INVALID_REQUEST);
    expect_host_error(AGENT_HOST "\"agent_secret\":\"" SECRET "x\"}", NB_ERR_INVALID_REQUEST);
    expect_host_error(AGENT_HOST "\"agent_secret\":7}", NB_ERR_INVALID_REQUEST);
    expect_host_error(AGENT_HOST "\"agent_secret\":\"" SECRET "\",\"tunnel_ip\":\"10.77.0\","
                                 "\"tunnel_dev\":\"eth0\"}",
                      NB_ERR_IP_INVALID);
    expect_host_error(AGENT_HOST "\"agent_secret\":\"" SECRET "\",\"tunnel_ip\":\"224.0.0.1\","
                                 "\"tunnel_dev\":\"eth0\"}",
                      NB_ERR_IP_INVALID);
    expect_host_error(AGENT_HOST "\"agent_secret\":\"" SECRET "\",\"tunnel_ip\":\"10.77.0.11\","
                                 "\"tunnel_dev\":\"eth 0\"}",
                      NB_ERR_NETWORK_INVALID_IFNAME);
    expect_host_error(AGENT_HOST "\"agent_secret\":\"" SECRET "\",\"tunnel_ip\":\"10.77.0.11\","
                                 "\"tunnel_dev\":\"nbr0\"}",
                      NB_ERR_NETWORK_INVALID_IFNAME);
    expect_host_error(AGENT_HOST "\"agent_secret\":\"" SECRET "\",\"tunnel_ip\":\"10.77.0.11\"}",
                      NB_ERR_INVALID_REQUEST);
    expect_host_error(AGENT_HOST "\"tunnel_ip\":\"10.77.0.11\",\"tunnel_dev\":\"eth0\"}",
                      NB_ERR_INVALID_REQUEST);
    /* A simulated host has no host part to default the URL from. */
    expect_host_error("{\"name\":\"n\",\"uri\":\"test:///default\",\"agent_secret\":\"" SECRET
                      "\"}",
                      NB_ERR_INVALID_REQUEST);
}

static void
test_host_update_request(void **state)
{
    NbError *err = NULL;
    Host h = {.cpu_ratio = 4, .ram_ratio = 1, .disk_ratio = 1};
    snprintf(h.name, sizeof(h.name), "node1");
    assert_int_equal(labels_add_text(&h.labels, "ssd=true", &err), 0);

    json_t *j = parse("{\"cpu_ratio\":2.5}");
    assert_int_equal(host_update_request_parse(j, &h, &err), 0);
    json_decref(j);
    assert_true(h.cpu_ratio == 2.5 && h.ram_ratio == 1 && h.disk_ratio == 1);
    assert_int_equal(h.labels.n, 1);
    assert_true(h.updated_at[0] != '\0');

    j = parse("{\"labels\":{}}");
    assert_int_equal(host_update_request_parse(j, &h, &err), 0);
    json_decref(j);
    assert_int_equal(h.labels.n, 0);

    /* Refused requests leave the host as it was. */
    Host before = h;
    const char *bad[] = {"{}",
                         "{\"cpu_ratio\":null}",
                         "{\"name\":\"x\"}",
                         "{\"uri\":\"qemu:///system\"}",
                         "{\"ram_ratio\":2,\"disk_ratio\":0}",
                         "{\"ram_ratio\":2,\"labels\":{\"bad key\":\"\"}}",
                         "[]"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        j = parse(bad[i]);
        if (host_update_request_parse(j, &h, &err) != -1)
            fail_msg("%s: accepted", bad[i]);
        assert_string_equal(err->code, NB_ERR_INVALID_REQUEST);
        nb_error_free(err);
        err = NULL;
        json_decref(j);
        assert_memory_equal(&h, &before, sizeof(h));
    }
}

static void
test_host_json(void **state)
{
    Host h = {.admin = HOST_ADMIN_ENABLED,
              .conn = HOST_CONN_UP,
              .cpu_ratio = 1.5,
              .ram_ratio = 1.0,
              .disk_ratio = 0.9};
    snprintf(h.id, sizeof(h.id), "id1");
    snprintf(h.name, sizeof(h.name), "node1");
    snprintf(h.uri, sizeof(h.uri), "qemu+ssh://node1/system");
    h.facts.vcpus = 3;
    h.facts.ram_mib = 1000;
    h.facts.free_ram_mib = 600;
    h.facts.disk_gib = 101;
    h.facts.disk_free_gib = 50;
    snprintf(h.facts.hostname, sizeof(h.facts.hostname), "node1");
    h.vcpus_used = 2;
    h.ram_used_mib = 512;
    h.disk_used_gib = 10;
    h.vms = 2;
    NbError *err = NULL;
    assert_int_equal(labels_add_text(&h.labels, "rack=r1", &err), 0);
    json_t *j = host_to_json(&h);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "state")), "up");
    assert_string_equal(json_string_value(json_object_get(j, "admin")), "enabled");
    assert_string_equal(json_string_value(json_object_get(j, "connection")), "up");
    json_t *v = json_object_get(j, "vcpus");
    assert_int_equal(json_integer_value(json_object_get(v, "used")), 2);
    assert_int_equal(json_integer_value(json_object_get(v, "total")), 3);
    assert_int_equal(json_integer_value(json_object_get(v, "capacity")), 4); /* floor(4.5) */
    assert_null(json_object_get(v, "free"));
    v = json_object_get(j, "ram_mib");
    assert_int_equal(json_integer_value(json_object_get(v, "capacity")), 1000);
    assert_int_equal(json_integer_value(json_object_get(v, "free")), 600);
    v = json_object_get(j, "disk_gib");
    assert_int_equal(json_integer_value(json_object_get(v, "capacity")), 90); /* floor(90.9) */
    assert_int_equal(json_integer_value(json_object_get(v, "free")), 50);
    assert_int_equal(json_integer_value(json_object_get(j, "vms")), 2);
    assert_true(json_real_value(json_object_get(j, "cpu_ratio")) == 1.5);
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "labels"), "rack")),
                        "r1");
    assert_string_equal(json_string_value(json_object_get(j, "hostname")), "node1");
    assert_true(json_is_null(json_object_get(j, "last_contact")));
    assert_true(json_is_null(json_object_get(j, "error")));
    assert_true(json_is_null(json_object_get(j, "cpu_model")));
    assert_true(json_is_false(json_object_get(j, "simulated")));
    json_decref(j);
    /* A test-driver host says so, whichever form its URI takes. */
    snprintf(h.uri, sizeof(h.uri), "test:///tmp/sim/node1.xml");
    j = host_to_json(&h);
    assert_true(json_is_true(json_object_get(j, "simulated")));
    json_decref(j);
    snprintf(h.uri, sizeof(h.uri), "test:///default");
    j = host_to_json(&h);
    assert_true(json_is_true(json_object_get(j, "simulated")));
    json_decref(j);
    assert_false(host_uri_is_simulated("qemu:///system"));
    assert_false(host_uri_is_simulated("qemu+tcp://test/system"));
    assert_false(host_uri_is_simulated(NULL));

    /* The one word: the connection first, then the operator's choice. */
    struct {
        HostConn conn;
        HostAdmin admin;
        const char *word;
    } words[] = {
        {HOST_CONN_DOWN, HOST_ADMIN_MAINTENANCE, "down"},
        {HOST_CONN_CONNECTING, HOST_ADMIN_DISABLED, "connecting"},
        {HOST_CONN_UP, HOST_ADMIN_MAINTENANCE, "maintenance"},
        {HOST_CONN_UP, HOST_ADMIN_DISABLED, "disabled"},
        {HOST_CONN_UP, HOST_ADMIN_ENABLED, "up"},
    };
    for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
        h.conn = words[i].conn;
        h.admin = words[i].admin;
        assert_string_equal(host_state_word(&h), words[i].word);
    }
}

/* ---- groups ---- */

static void
test_group_request(void **state)
{
    NbError *err = NULL;
    char name[NB_NAME_MAX + 1];
    GroupPolicy p;
    json_t *j = parse("{\"name\":\"web\",\"policy\":\"soft-anti-affinity\"}");
    assert_int_equal(group_create_request_parse(j, name, &p, &err), 0);
    json_decref(j);
    assert_string_equal(name, "web");
    assert_int_equal(p, GROUP_POLICY_SOFT_ANTI_AFFINITY);

    struct {
        const char *body, *code;
    } bad[] = {
        {"{\"name\":\"web\",\"policy\":\"spread\"}", NB_ERR_INVALID_REQUEST},
        {"{\"name\":\"web\",\"policy\":\"Affinity\"}", NB_ERR_INVALID_REQUEST},
        {"{\"name\":\"web\"}", NB_ERR_INVALID_REQUEST},
        {"{\"name\":\"web\",\"policy\":1}", NB_ERR_INVALID_REQUEST},
        {"{\"policy\":\"affinity\"}", NB_ERR_INVALID_REQUEST},
        {"{\"name\":\"w/b\",\"policy\":\"affinity\"}", NB_ERR_INVALID_NAME},
        {"{\"name\":\"web\",\"policy\":\"affinity\",\"members\":3}", NB_ERR_INVALID_REQUEST},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        j = parse(bad[i].body);
        assert_int_equal(group_create_request_parse(j, name, &p, &err), -1);
        if (strcmp(err->code, bad[i].code) != 0)
            fail_msg("%s: got %s, want %s", bad[i].body, err->code, bad[i].code);
        nb_error_free(err);
        err = NULL;
        json_decref(j);
    }

    Group g = {.policy = GROUP_POLICY_ANTI_AFFINITY, .members = 3};
    snprintf(g.id, sizeof(g.id), "g1");
    snprintf(g.project, sizeof(g.project), "p1");
    snprintf(g.name, sizeof(g.name), "web");
    snprintf(g.created_at, sizeof(g.created_at), "2026-01-01T00:00:00.000Z");
    j = group_to_json(&g);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "policy")), "anti-affinity");
    assert_string_equal(json_string_value(json_object_get(j, "project_id")), "p1");
    assert_int_equal(json_integer_value(json_object_get(j, "members")), 3);
    json_decref(j);
}

static void
test_vm_request_placement(void **state)
{
    json_t *j = parse("{\"name\":\"web1\",\"image\":\"tiny\",\"flavor\":\"small\","
                      "\"group\":\"web\",\"host\":\"00000000-0000-4000-8000-000000000009\","
                      "\"labels\":{\"zone\":\"b\",\"gpu\":\"\"}}");
    VmCreateRequest r;
    NbError *err = NULL;
    assert_int_equal(vm_create_request_parse(j, &r, &err), 0);
    assert_string_equal(r.group, "web");
    assert_string_equal(r.host, "00000000-0000-4000-8000-000000000009");
    assert_int_equal(r.labels.n, 2);
    assert_string_equal(r.labels.item[0], "gpu=");
    vm_create_request_clear(&r);
    json_decref(j);
    j = parse("{\"name\":\"web1\",\"image\":\"tiny\",\"flavor\":\"small\",\"group\":null}");
    assert_int_equal(vm_create_request_parse(j, &r, &err), 0);
    assert_string_equal(r.group, "");
    assert_string_equal(r.host, "");
    assert_int_equal(r.labels.n, 0);
    json_decref(j);

    expect_vm_error("{\"name\":\"a\",\"image\":\"i\",\"flavor\":\"f\",\"group\":\"a b\"}",
                    NB_ERR_INVALID_REQUEST);
    expect_vm_error("{\"name\":\"a\",\"image\":\"i\",\"flavor\":\"f\",\"group\":\"\"}",
                    NB_ERR_INVALID_REQUEST);
    expect_vm_error("{\"name\":\"a\",\"image\":\"i\",\"flavor\":\"f\",\"host\":\"../x\"}",
                    NB_ERR_INVALID_REQUEST);
    expect_vm_error("{\"name\":\"a\",\"image\":\"i\",\"flavor\":\"f\",\"host\":5}",
                    NB_ERR_INVALID_REQUEST);
    expect_vm_error("{\"name\":\"a\",\"image\":\"i\",\"flavor\":\"f\",\"labels\":{\"Z\":\"1\"}}",
                    NB_ERR_INVALID_REQUEST);
    expect_vm_error("{\"name\":\"a\",\"image\":\"i\",\"flavor\":\"f\",\"labels\":\"z=1\"}",
                    NB_ERR_INVALID_REQUEST);
}

static void
test_placement_json(void **state)
{
    Vm vm = {.state = VM_STATE_RUNNING, .desired = VM_POWER_RUNNING};
    snprintf(vm.id, sizeof(vm.id), "x");
    snprintf(vm.host, sizeof(vm.host), "node1");
    json_t *j = vm_to_json(&vm);
    assert_string_equal(json_string_value(json_object_get(j, "host")), "node1");
    assert_true(json_is_null(json_object_get(j, "migrate_to")));
    assert_true(json_is_null(json_object_get(j, "group_id")));
    assert_int_equal(json_object_size(json_object_get(j, "labels")), 0);
    json_decref(j);
    snprintf(vm.migrate_to, sizeof(vm.migrate_to), "node2");
    snprintf(vm.group_id, sizeof(vm.group_id), "g1");
    NbError *err = NULL;
    assert_int_equal(labels_add_text(&vm.labels, "zone=b", &err), 0);
    j = vm_to_json(&vm);
    assert_string_equal(json_string_value(json_object_get(j, "migrate_to")), "node2");
    assert_string_equal(json_string_value(json_object_get(j, "group_id")), "g1");
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "labels"), "zone")),
                        "b");
    json_decref(j);

    Task t = {.kind = TASK_KIND_VM_MIGRATE, .state = TASK_STATE_RUNNING, .progress = -1};
    snprintf(t.id, sizeof(t.id), "t1");
    j = task_to_json(&t);
    assert_string_equal(json_string_value(json_object_get(j, "kind")), "vm.migrate");
    assert_true(json_is_null(json_object_get(j, "progress")));
    assert_true(json_is_false(json_object_get(j, "cancel_requested")));
    json_decref(j);
    t.progress = 55;
    t.cancel_requested = true;
    j = task_to_json(&t);
    assert_int_equal(json_integer_value(json_object_get(j, "progress")), 55);
    assert_true(json_is_true(json_object_get(j, "cancel_requested")));
    json_decref(j);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vm_request_ok),
        cmocka_unit_test(test_vm_request_errors),
        cmocka_unit_test(test_vm_user_data_limit),
        cmocka_unit_test(test_flavor_request),
        cmocka_unit_test(test_image_request),
        cmocka_unit_test(test_enum_tables),
        cmocka_unit_test(test_vm_json_hides_user_data),
        cmocka_unit_test(test_labels_json),
        cmocka_unit_test(test_labels_limit),
        cmocka_unit_test(test_labels_text),
        cmocka_unit_test(test_host_uri_accepts),
        cmocka_unit_test(test_host_uri_rejects),
        cmocka_unit_test(test_host_uri_hostname),
        cmocka_unit_test(test_host_request),
        cmocka_unit_test(test_host_request_agent),
        cmocka_unit_test(test_host_update_request),
        cmocka_unit_test(test_host_json),
        cmocka_unit_test(test_group_request),
        cmocka_unit_test(test_vm_request_placement),
        cmocka_unit_test(test_placement_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
