/* The storage pool model: the strict decoder of create requests (each bad input with its stable
 * code), host[:port] and path checks, JSON (never the secret). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "model/pool.h"
#include "util/error_codes.h"

#define CEPH_KEY "AQBfp1RnAAAAABAAnVn0T8M8zU3Cw0W3vT0b6g==" /* 28 bytes, as ceph makes them */

static const char *const roots[] = {"/srv", "/var/lib/nimbus/pools", NULL};

static json_t *
parse(const char *text)
{
    json_error_t e;
    json_t *j = json_loads(text, JSON_ALLOW_NUL | JSON_DECODE_ANY, &e);
    if (!j)
        fail_msg("not JSON: %s (%s)", text, e.text);
    return j;
}

static Pool
ok_with(const char *text, const char *const *r)
{
    json_t *j = parse(text);
    NbError *err = NULL;
    Pool p;
    memset(&p, 0x5a, sizeof(p));
    if (pool_from_request(j, r, &p, &err) != 0)
        fail_msg("refused %s: %s %s", text, err->code, err->message);
    assert_null(err);
    json_decref(j);
    return p;
}

static Pool
ok(const char *text)
{
    return ok_with(text, roots);
}

static void
bad_with(const char *text, const char *const *r, const char *code)
{
    json_t *j = parse(text);
    NbError *err = NULL;
    Pool p;
    memset(&p, 0x5a, sizeof(p));
    Pool before = p;
    if (pool_from_request(j, r, &p, &err) != -1)
        fail_msg("accepted %s", text);
    assert_non_null(err);
    if (strcmp(err->code, code) != 0)
        fail_msg("%s: code %s (%s), expected %s", text, err->code, err->message, code);
    assert_non_null(err->message);
    assert_memory_equal(&p, &before, sizeof(p)); /* untouched on failure */
    nb_error_free(err);
    json_decref(j);
}

static void
bad(const char *text, const char *code)
{
    bad_with(text, roots, code);
}

/* fmt with its one "%s" replaced by s as a JSON string. */
static char *
with_str(const char *fmt, const char *s)
{
    json_t *js = json_string(s);
    assert_non_null(js);
    char *enc = json_dumps(js, JSON_ENCODE_ANY);
    json_decref(js);
    const char *at = strstr(fmt, "%s");
    assert_non_null(at);
    size_t n = strlen(fmt) + strlen(enc) + 1;
    char *out = malloc(n);
    assert_non_null(out);
    memcpy(out, fmt, (size_t)(at - fmt));
    memcpy(out + (at - fmt), enc, strlen(enc));
    memcpy(out + (at - fmt) + strlen(enc), at + 2, strlen(at + 2) + 1);
    free(enc);
    return out;
}

static void
bad_str(const char *fmt, const char *s, const char *code)
{
    char *body = with_str(fmt, s);
    bad(body, code);
    free(body);
}

static Pool
ok_str(const char *fmt, const char *s)
{
    char *body = with_str(fmt, s);
    Pool p = ok(body);
    free(body);
    return p;
}

static void
test_type_tables(void **state)
{
    static const char *const names[] = {"dir", "logical", "rbd", "iscsi", "netfs"};
    static const char *const lv[] = {"dir", "logical", "rbd", "iscsi-direct", "netfs"};
    for (int t = 0; t < _POOL_TYPE_MAX; t++) {
        assert_string_equal(pool_type_to_string((PoolType)t), names[t]);
        assert_int_equal(pool_type_from_string(names[t]), t);
        assert_string_equal(pool_type_libvirt((PoolType)t), lv[t]);
    }
    assert_false(pool_type_is_shared(POOL_TYPE_DIR));
    assert_false(pool_type_is_shared(POOL_TYPE_LOGICAL));
    assert_true(pool_type_is_shared(POOL_TYPE_RBD));
    assert_true(pool_type_is_shared(POOL_TYPE_ISCSI));
    assert_true(pool_type_is_shared(POOL_TYPE_NETFS));
    assert_int_equal(pool_type_from_string("zfs"), _POOL_TYPE_INVALID);
    assert_int_equal(pool_type_from_string("iscsi-direct"), _POOL_TYPE_INVALID);
    assert_int_equal(pool_type_from_string(NULL), _POOL_TYPE_INVALID);
    assert_null(pool_type_to_string(_POOL_TYPE_MAX));
    assert_null(pool_type_libvirt(_POOL_TYPE_INVALID));

    char buf[POOL_LIBVIRT_NAME_MAX + 1];
    pool_libvirt_name("7e57a1b2-c3d4-4e5f-8a9b-0c1d2e3f4a5b", buf);
    assert_string_equal(buf, "nimbus-pool-7e57a1b2-c3d4-4e5f-8a9b-0c1d2e3f4a5b");
}

static void
test_path_valid(void **state)
{
    static const char *const good[] = {"/a", "/srv/pools", "/a/b.c/d_e+f-g", "/a/...", "/.x"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        if (!pool_path_valid(good[i]))
            fail_msg("'%s' refused", good[i]);
    static const char *const badp[] = {
        "",     "/",       "a/b",  "/a/",  "//a",   "/a//b", "/a/./b",
        "/a/.", "/a/../b", "/..",  "/a b", "/a\n",  "/a\tb", "/a'b",
        "/a\"", "/a;b",    "/a$b", "/ä",   "/a\\b", "/a:b",  "/a&b",
    };
    for (size_t i = 0; i < sizeof(badp) / sizeof(badp[0]); i++)
        if (pool_path_valid(badp[i]))
            fail_msg("'%s' accepted", badp[i]);
    assert_false(pool_path_valid(NULL));
    char longp[POOL_PATH_MAX + 2];
    longp[0] = '/';
    memset(longp + 1, 'a', POOL_PATH_MAX - 1);
    longp[POOL_PATH_MAX] = '\0';
    assert_true(pool_path_valid(longp)); /* exactly POOL_PATH_MAX */
    longp[POOL_PATH_MAX] = 'a';
    longp[POOL_PATH_MAX + 1] = '\0';
    assert_false(pool_path_valid(longp));
}

static void
test_hostport_parse(void **state)
{
    char host[256];
    unsigned port = 99;
    assert_int_equal(pool_hostport_parse("[::1]:6789", host, sizeof(host), &port), 0);
    assert_string_equal(host, "::1");
    assert_int_equal(port, 6789);
    assert_int_equal(pool_hostport_parse("[fe80::1:2]", host, sizeof(host), &port), 0);
    assert_string_equal(host, "fe80::1:2");
    assert_int_equal(port, 0);
    assert_int_equal(pool_hostport_parse("10.0.0.1", host, sizeof(host), &port), 0);
    assert_string_equal(host, "10.0.0.1");
    assert_int_equal(port, 0);
    assert_int_equal(pool_hostport_parse("ceph-mon1.example.com:3300", host, sizeof(host), &port),
                     0);
    assert_string_equal(host, "ceph-mon1.example.com");
    assert_int_equal(port, 3300);
    assert_int_equal(pool_hostport_parse("h:65535", host, sizeof(host), &port), 0);
    assert_int_equal(port, 65535);
    assert_int_equal(pool_hostport_parse("h:1", host, sizeof(host), &port), 0);
    assert_int_equal(port, 1);
    /* A host too long for the caller's buffer is refused, not cut. */
    assert_int_equal(pool_hostport_parse("abcdef:1", host, 6, &port), -1);
    assert_int_equal(pool_hostport_parse("abcde:1", host, 6, &port), 0);

    /* 253 characters is the longest DNS name; a label is at most 63. */
    char name[300];
    memset(name, 0, sizeof(name));
    for (size_t i = 0; i < 253; i++)
        name[i] = i % 50 == 49 ? '.' : 'a';
    assert_int_equal(pool_hostport_parse(name, host, sizeof(host), &port), 0);
    name[253] = 'a';
    assert_int_equal(pool_hostport_parse(name, host, sizeof(host), &port), -1);
    memset(name, 'a', 64);
    name[64] = '\0';
    assert_int_equal(pool_hostport_parse(name, host, sizeof(host), &port), -1);
    name[63] = '\0';
    assert_int_equal(pool_hostport_parse(name, host, sizeof(host), &port), 0);

    static const char *const badhp[] = {
        "",           "a:b",          "1.2.3.4:0", ":6789",     "host:65536", "host:",
        "host:06789", "host:+1",      "host:-1",   "host: 1",   "::1",        "[::1",
        "[::1]x",     "[::1]:",       "[]:1",      "[zz::1]:1", "[::1]:0",    "1.2.3.256",
        "1.2.3",      "1.2.3.4.5",    "-a.com",    "a-.com",    "a..com",     ".a.com",
        "a.com.",     "a_b.com",      "a b",       "a\n",       "host:1:2",   "[1.2.3.4]:1",
        "h:123456",   "[::1%eth0]:1", "a/b",       "h:99999",
    };
    for (size_t i = 0; i < sizeof(badhp) / sizeof(badhp[0]); i++) {
        port = 7;
        if (pool_hostport_parse(badhp[i], host, sizeof(host), &port) != -1)
            fail_msg("'%s' parsed", badhp[i]);
        assert_int_equal(port, 7);
    }
    assert_int_equal(pool_hostport_parse(NULL, host, sizeof(host), &port), -1);
}

static void
test_iqn_valid(void **state)
{
    static const char *const good[] = {
        "iqn.2026-12.org.rcp:t1", "iqn.2001-04.com.example", "iqn.2026-01.io.nimbus:my-pool_1.x",
        "eui.0123456789ABCDEF",   "iqn.1999-12.a:b:c",
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        if (!pool_iqn_valid(good[i]))
            fail_msg("'%s' refused", good[i]);
    static const char *const badi[] = {
        "iqn.2026-1.x",         "eui.123",           "eui.0123456789ABCDEFA",
        "eui.0123456789ABCDEG", "iqn.2026-13.x",     "iqn.2026-00.x",
        "iqn.26-12.x",          "iqn.2026-12.",      "iqn.2026-12",
        "iqn.2026-12.x:",       "iqn.2026-12.x:a/b", "iqn.2026-12.x:a b",
        "IQN.2026-12.x",        "naa.0123",          "",
        "iqn.2026-12.-x",       "iqn.2026-12.x..y",  "iqn.2026-12.x:a\n",
        "iqn.2026-12.x/1",
    };
    for (size_t i = 0; i < sizeof(badi) / sizeof(badi[0]); i++)
        if (pool_iqn_valid(badi[i]))
            fail_msg("'%s' accepted", badi[i]);
    assert_false(pool_iqn_valid(NULL));
    char longi[POOL_IQN_MAX + 2];
    memcpy(longi, "iqn.2026-12.x:", 14);
    memset(longi + 14, 'a', POOL_IQN_MAX - 14);
    longi[POOL_IQN_MAX] = '\0';
    assert_true(pool_iqn_valid(longi));
    longi[POOL_IQN_MAX] = 'a';
    longi[POOL_IQN_MAX + 1] = '\0';
    assert_false(pool_iqn_valid(longi));
}

static void
test_dir(void **state)
{
    Pool p = ok("{\"name\": \"fast\", \"type\": \"dir\", \"path\": \"/srv/pools/fast\"}");
    assert_string_equal(p.name, "fast");
    assert_int_equal(p.type, POOL_TYPE_DIR);
    assert_string_equal(p.path, "/srv/pools/fast");
    assert_string_equal(p.host, "");
    assert_string_equal(p.id, "");
    assert_string_equal(p.libvirt_name, "");
    assert_false(p.is_default);
    assert_string_equal(p.secret, "");
    assert_string_equal(p.auth_user, "");
    assert_int_equal(p.n_monitors, 0);
    assert_string_equal(p.created_at, "");

    p = ok("{\"name\": \"fast\", \"type\": \"dir\", \"path\": \"/var/lib/nimbus/pools/x\", "
           "\"host\": \"node-1\"}");
    assert_string_equal(p.host, "node-1");
    p = ok("{\"name\": \"fast\", \"type\": \"dir\", \"path\": \"/srv/x\", \"host\": null}");
    assert_string_equal(p.host, "");

    const char *fmt = "{\"name\": \"fast\", \"type\": \"dir\", \"path\": %s}";
    static const char *const badp[] = {
        "srv/x",
        "/srv/../etc",
        "/srv//x",
        "/srv/x/",
        "/etc/x",
        "/srv",
        "/srv/a b",
        "/srv/x\n",
        "/srvx/y",
        "/srv/./x",
        "",
        "/",
        "/var/lib/nimbus",
        "/var/lib/nimbus/poolsx/a",
    };
    for (size_t i = 0; i < sizeof(badp) / sizeof(badp[0]); i++)
        bad_str(fmt, badp[i], NB_ERR_POOL_INVALID_PATH);
    char longp[400] = "/srv/";
    memset(longp + 5, 'a', 300);
    bad_str(fmt, longp, NB_ERR_POOL_INVALID_PATH);
    bad("{\"name\": \"fast\", \"type\": \"dir\", \"path\": \"/srv/a\\u0000b\"}",
        NB_ERR_POOL_INVALID_PATH);
    bad("{\"name\": \"fast\", \"type\": \"dir\"}", NB_ERR_INVALID_REQUEST);
    bad("{\"name\": \"fast\", \"type\": \"dir\", \"path\": null}", NB_ERR_INVALID_REQUEST);
    bad("{\"name\": \"fast\", \"type\": \"dir\", \"path\": 5}", NB_ERR_INVALID_REQUEST);
    bad("{\"name\": \"fast\", \"type\": \"dir\", \"path\": \"/srv/x\", \"host\": \"a b\"}",
        NB_ERR_INVALID_NAME);
    bad("{\"name\": \"fast\", \"type\": \"dir\", \"path\": \"/srv/x\", \"host\": 3}",
        NB_ERR_INVALID_REQUEST);

    /* No roots configured: no directory is allowed. Root "/": anything but "/" itself. */
    bad_with("{\"name\": \"a\", \"type\": \"dir\", \"path\": \"/srv/x\"}", NULL,
             NB_ERR_POOL_INVALID_PATH);
    static const char *const none[] = {NULL};
    bad_with("{\"name\": \"a\", \"type\": \"dir\", \"path\": \"/srv/x\"}", none,
             NB_ERR_POOL_INVALID_PATH);
    static const char *const slash[] = {"/", NULL};
    Pool q = ok_with("{\"name\": \"a\", \"type\": \"dir\", \"path\": \"/x\"}", slash);
    assert_string_equal(q.path, "/x");
    /* A malformed root matches nothing (not even by prefix). */
    static const char *const odd[] = {"/srv/", "srv", NULL};
    bad_with("{\"name\": \"a\", \"type\": \"dir\", \"path\": \"/srv/x\"}", odd,
             NB_ERR_POOL_INVALID_PATH);
}

static void
test_shape(void **state)
{
    bad("{\"name\": \"p\", \"type\": \"zfs\"}", NB_ERR_POOL_INVALID_TYPE);
    bad("{\"name\": \"p\", \"type\": \"iscsi-direct\"}", NB_ERR_POOL_INVALID_TYPE);
    bad("{\"name\": \"p\", \"type\": \"\"}", NB_ERR_POOL_INVALID_TYPE);
    bad("{\"name\": \"p\", \"type\": \"DIR\"}", NB_ERR_POOL_INVALID_TYPE);
    bad("{\"name\": \"p\", \"type\": \"dir\\u0000x\", \"path\": \"/srv/x\"}",
        NB_ERR_POOL_INVALID_TYPE);
    bad("{\"name\": \"p\", \"type\": 1}", NB_ERR_INVALID_REQUEST);
    bad("{\"name\": \"p\"}", NB_ERR_INVALID_REQUEST);
    bad("{\"name\": \"p\", \"type\": null}", NB_ERR_INVALID_REQUEST);
    bad("{\"type\": \"dir\", \"path\": \"/srv/x\"}", NB_ERR_INVALID_REQUEST);
    bad("{\"name\": \"a b\", \"type\": \"dir\", \"path\": \"/srv/x\"}", NB_ERR_INVALID_NAME);
    bad("{\"name\": \"7e57a1b2-c3d4-4e5f-8a9b-0c1d2e3f4a5b\", \"type\": \"dir\", \"path\": "
        "\"/srv/x\"}",
        NB_ERR_INVALID_NAME);
    bad("{\"name\": \"p\", \"type\": \"dir\", \"path\": \"/srv/x\", \"size\": 1}",
        NB_ERR_INVALID_REQUEST);
    bad("{\"name\": \"p\", \"type\": \"dir\", \"path\": \"/srv/x\", \"secret\": \"x\"}",
        NB_ERR_INVALID_REQUEST);
    bad("[]", NB_ERR_INVALID_REQUEST);
    bad("\"dir\"", NB_ERR_INVALID_REQUEST);
    NbError *err = NULL;
    Pool p;
    assert_int_equal(pool_from_request(NULL, roots, &p, &err), -1);
    assert_string_equal(err->code, NB_ERR_INVALID_REQUEST);
    nb_error_free(err);

    /* A field of another type, even when well-formed for its own. */
    bad("{\"name\": \"p\", \"type\": \"rbd\", \"monitors\": [\"m\"], \"rbd_pool\": \"r\", "
        "\"user\": \"u\", \"key\": \"" CEPH_KEY "\", \"vg\": \"vg0\"}",
        NB_ERR_INVALID_REQUEST);
    bad("{\"name\": \"p\", \"type\": \"rbd\", \"monitors\": [\"m\"], \"rbd_pool\": \"r\", "
        "\"user\": \"u\", \"key\": \"" CEPH_KEY "\", \"path\": \"/srv/x\"}",
        NB_ERR_INVALID_REQUEST);
    bad("{\"name\": \"p\", \"type\": \"rbd\", \"monitors\": [\"m\"], \"rbd_pool\": \"r\", "
        "\"user\": \"u\", \"key\": \"" CEPH_KEY "\", \"host\": \"node1\"}",
        NB_ERR_INVALID_REQUEST);
    bad("{\"name\": \"p\", \"type\": \"dir\", \"path\": \"/srv/x\", \"monitors\": [\"m\"]}",
        NB_ERR_INVALID_REQUEST);
    bad("{\"name\": \"p\", \"type\": \"dir\", \"path\": \"/srv/x\", \"user\": \"u\"}",
        NB_ERR_INVALID_REQUEST);
    bad("{\"name\": \"p\", \"type\": \"dir\", \"path\": \"/srv/x\", \"key\": \"" CEPH_KEY "\"}",
        NB_ERR_INVALID_REQUEST);
    bad("{\"name\": \"p\", \"type\": \"netfs\", \"server\": \"nfs\", \"export\": \"/e\", "
        "\"path\": \"/srv/m\", \"portal\": \"1.2.3.4\"}",
        NB_ERR_INVALID_REQUEST);
    bad("{\"name\": \"p\", \"type\": \"logical\", \"vg\": \"vg0\", \"rbd_pool\": \"x\"}",
        NB_ERR_INVALID_REQUEST);
    bad("{\"name\": \"p\", \"type\": \"iscsi\", \"portal\": \"h\", \"target\": "
        "\"iqn.2026-12.org.x:t\", \"server\": \"h\"}",
        NB_ERR_INVALID_REQUEST);
    /* ... but null stands for absent. */
    ok("{\"name\": \"p\", \"type\": \"rbd\", \"monitors\": [\"m\"], \"rbd_pool\": \"r\", "
       "\"user\": \"u\", \"key\": \"" CEPH_KEY "\", \"vg\": null, \"path\": null}");
}

static void
test_logical(void **state)
{
    Pool p = ok("{\"name\": \"lvm\", \"type\": \"logical\", \"vg\": \"nimbus_vg-1.a+b\"}");
    assert_int_equal(p.type, POOL_TYPE_LOGICAL);
    assert_string_equal(p.source, "nimbus_vg-1.a+b");
    assert_string_equal(p.path, "");
    p = ok("{\"name\": \"lvm\", \"type\": \"logical\", \"vg\": \"_vg\", \"host\": \"n1\"}");
    assert_string_equal(p.host, "n1");
    const char *fmt = "{\"name\": \"lvm\", \"type\": \"logical\", \"vg\": %s}";
    static const char *const badvg[] = {"", "-vg", ".", "..", ".vg", "vg/x", "vg x", "vg\n", "ä"};
    for (size_t i = 0; i < sizeof(badvg) / sizeof(badvg[0]); i++)
        bad_str(fmt, badvg[i], NB_ERR_POOL_INVALID_SOURCE);
    char longvg[200];
    memset(longvg, 'v', 128);
    longvg[128] = '\0';
    bad_str(fmt, longvg, NB_ERR_POOL_INVALID_SOURCE);
    longvg[127] = '\0';
    p = ok_str(fmt, longvg);
    assert_int_equal(strlen(p.source), 127);
    bad("{\"name\": \"lvm\", \"type\": \"logical\"}", NB_ERR_INVALID_REQUEST);
    bad("{\"name\": \"lvm\", \"type\": \"logical\", \"vg\": [\"a\"]}", NB_ERR_INVALID_REQUEST);
    bad("{\"name\": \"lvm\", \"type\": \"logical\", \"vg\": \"vg\", \"path\": \"/srv/x\"}",
        NB_ERR_INVALID_REQUEST);
}

#define RBD_BODY(mons, extra)                                                                      \
    "{\"name\": \"ceph\", \"type\": \"rbd\", \"monitors\": " mons ", \"rbd_pool\": \"nimbus\", "   \
    "\"user\": \"nimbus\", \"key\": \"" CEPH_KEY "\"" extra "}"

static void
test_rbd(void **state)
{
    Pool p = ok(RBD_BODY("[\"10.0.0.1:6789\", \"mon2.example.com\", \"[::1]:6789\"]", ""));
    assert_int_equal(p.type, POOL_TYPE_RBD);
    assert_int_equal(p.n_monitors, 3);
    assert_string_equal(p.monitors[0], "10.0.0.1:6789");
    assert_string_equal(p.monitors[1], "mon2.example.com");
    assert_string_equal(p.monitors[2], "[::1]:6789");
    assert_string_equal(p.source, "nimbus");
    assert_string_equal(p.auth_user, "nimbus");
    assert_string_equal(p.secret, CEPH_KEY);
    assert_string_equal(p.host, "");
    assert_string_equal(p.path, "");
    assert_string_equal(p.initiator, "");

    p = ok(RBD_BODY("[\"a\", \"b\", \"c\", \"d\", \"e\", \"f\", \"g\", \"h\"]", ""));
    assert_int_equal(p.n_monitors, POOL_MONITORS_MAX);
    assert_string_equal(p.monitors[7], "h");

    static const char *const badm[] = {"a:b", "1.2.3.4:0", ":6789", "host:65536",
                                       "",    "::1",       "[::1]", "h:1:2"};
    for (size_t i = 0; i < sizeof(badm) / sizeof(badm[0]); i++) {
        char mons[64];
        snprintf(mons, sizeof(mons), "[\"ok\", \"%s\"]", badm[i]);
        char body[512];
        snprintf(body, sizeof(body), RBD_BODY("%s", ""), mons);
        if (strcmp(badm[i], "[::1]") == 0) {
            ok(body); /* [IPv6] without a port is valid */
            continue;
        }
        bad(body, NB_ERR_POOL_INVALID_MONITOR);
    }
    char longhost[310];
    memset(longhost, 'a', 300);
    longhost[300] = '\0';
    char body[1024];
    snprintf(body, sizeof(body), RBD_BODY("[\"%s\"]", ""), longhost);
    bad(body, NB_ERR_POOL_INVALID_MONITOR);
    bad(RBD_BODY("[\"a\", \"b\", \"c\", \"d\", \"e\", \"f\", \"g\", \"h\", \"i\"]", ""),
        NB_ERR_POOL_INVALID_MONITOR);
    bad(RBD_BODY("[]", ""), NB_ERR_POOL_INVALID_MONITOR);
    bad(RBD_BODY("[\"a\", \"a\"]", ""), NB_ERR_POOL_INVALID_MONITOR);
    bad(RBD_BODY("[\"a\\u0000b\"]", ""), NB_ERR_POOL_INVALID_MONITOR);
    bad(RBD_BODY("\"a\"", ""), NB_ERR_INVALID_REQUEST);
    bad(RBD_BODY("[1]", ""), NB_ERR_INVALID_REQUEST);
    bad(RBD_BODY("null", ""), NB_ERR_INVALID_REQUEST);

    /* rbd_pool */
    const char *pfmt = "{\"name\": \"c\", \"type\": \"rbd\", \"monitors\": [\"m\"], \"rbd_pool\": "
                       "%s, \"user\": \"u\", \"key\": \"" CEPH_KEY "\"}";
    bad_str(pfmt, "a/b", NB_ERR_POOL_INVALID_SOURCE);
    bad_str(pfmt, "", NB_ERR_POOL_INVALID_SOURCE);
    bad_str(pfmt, "a b", NB_ERR_POOL_INVALID_SOURCE);
    bad_str(pfmt, "-a", NB_ERR_POOL_INVALID_SOURCE);
    char longp[100];
    memset(longp, 'p', 64);
    longp[64] = '\0';
    bad_str(pfmt, longp, NB_ERR_POOL_INVALID_SOURCE);
    bad("{\"name\": \"c\", \"type\": \"rbd\", \"monitors\": [\"m\"], \"user\": \"u\", \"key\": "
        "\"" CEPH_KEY "\"}",
        NB_ERR_INVALID_REQUEST);

    /* user */
    const char *ufmt = "{\"name\": \"c\", \"type\": \"rbd\", \"monitors\": [\"m\"], \"rbd_pool\": "
                       "\"r\", \"user\": %s, \"key\": \"" CEPH_KEY "\"}";
    bad_str(ufmt, "client.nimbus", NB_ERR_INVALID_REQUEST);
    bad_str(ufmt, "a b", NB_ERR_INVALID_REQUEST);
    bad_str(ufmt, "", NB_ERR_INVALID_REQUEST);
    bad("{\"name\": \"c\", \"type\": \"rbd\", \"monitors\": [\"m\"], \"rbd_pool\": \"r\", \"key\": "
        "\"" CEPH_KEY "\"}",
        NB_ERR_INVALID_REQUEST);

    /* key */
    const char *kfmt = "{\"name\": \"c\", \"type\": \"rbd\", \"monitors\": [\"m\"], \"rbd_pool\": "
                       "\"r\", \"user\": \"u\", \"key\": %s}";
    static const char *const badk[] = {
        "not base64!",
        "AAAAAAAAAAA=",                           /* 8 bytes */
        "AAAAAAAAAAAAAAAAAAAA",                   /* 15 bytes */
        "AQBfp1RnAAAAABAAnVn0T8M8zU3Cw0W3vT0b6g", /* unpadded */
        "AQBfp1RnAAAAABAAnVn0T8M8zU3Cw0W3vT0b6g==\n",
        "AQBfp1RnAAAAABAAnVn0T8M8zU3Cw0W3vT0b6g===",
        "AQBf=1RnAAAAABAAnVn0T8M8zU3Cw0W3vT0b6g==",
        "[client.nimbus]",
        "",
    };
    for (size_t i = 0; i < sizeof(badk) / sizeof(badk[0]); i++)
        bad_str(kfmt, badk[i], NB_ERR_POOL_INVALID_KEY);
    char longk[200];
    memset(longk, 'A', 88); /* 66 bytes */
    longk[88] = '\0';
    bad_str(kfmt, longk, NB_ERR_POOL_INVALID_KEY);
    longk[84] = 'A';
    longk[86] = '\0'; /* 86 characters: not a multiple of 4 */
    bad_str(kfmt, longk, NB_ERR_POOL_INVALID_KEY);
    memset(longk, 'A', 86);
    longk[86] = '=';
    longk[87] = '=';
    longk[88] = '\0'; /* 64 bytes: the longest */
    char *b64 = with_str(kfmt, longk);
    p = ok(b64);
    free(b64);
    assert_string_equal(p.secret, longk);
    b64 = with_str(kfmt, "AAAAAAAAAAAAAAAAAAAAAA=="); /* 16 bytes: the shortest */
    ok(b64);
    free(b64);
    bad("{\"name\": \"c\", \"type\": \"rbd\", \"monitors\": [\"m\"], \"rbd_pool\": \"r\", "
        "\"user\": "
        "\"u\"}",
        NB_ERR_INVALID_REQUEST);
    bad("{\"name\": \"c\", \"type\": \"rbd\", \"monitors\": [\"m\"], \"rbd_pool\": \"r\", "
        "\"user\": "
        "\"u\", \"key\": 5}",
        NB_ERR_INVALID_REQUEST);
}

#define ISCSI_FMT(extra)                                                                           \
    "{\"name\": \"San-1\", \"type\": \"iscsi\", \"portal\": \"127.0.0.1\", \"target\": "           \
    "\"iqn.2026-12.org.rcp:t1\"" extra "}"

static void
test_iscsi(void **state)
{
    Pool p = ok(ISCSI_FMT(""));
    assert_int_equal(p.type, POOL_TYPE_ISCSI);
    assert_int_equal(p.n_monitors, 1);
    assert_string_equal(p.monitors[0], "127.0.0.1:3260");
    assert_string_equal(p.source, "iqn.2026-12.org.rcp:t1");
    /* The default initiator, lower case as iSCSI names are compared. */
    assert_string_equal(p.initiator, "iqn.2026-01.io.nimbus:san-1");
    assert_true(pool_iqn_valid(p.initiator));
    assert_string_equal(p.auth_user, "");
    assert_string_equal(p.secret, "");

    p = ok("{\"name\": \"s\", \"type\": \"iscsi\", \"portal\": \"[::1]\", \"target\": "
           "\"eui.0123456789abcdef\", \"initiator\": \"iqn.2026-12.org.rcp:init1\", \"user\": "
           "\"chap\", \"key\": \"twelve chars\"}");
    assert_string_equal(p.monitors[0], "[::1]:3260");
    assert_string_equal(p.source, "eui.0123456789abcdef");
    assert_string_equal(p.initiator, "iqn.2026-12.org.rcp:init1");
    assert_string_equal(p.auth_user, "chap");
    assert_string_equal(p.secret, "twelve chars");
    p = ok("{\"name\": \"s\", \"type\": \"iscsi\", \"portal\": \"san.example:3261\", \"target\": "
           "\"iqn.2026-12.org.rcp:t1\"}");
    assert_string_equal(p.monitors[0], "san.example:3261");
    p = ok("{\"name\": \"s\", \"type\": \"iscsi\", \"portal\": \"[::1]:3261\", \"target\": "
           "\"iqn.2026-12.org.rcp:t1\"}");
    assert_string_equal(p.monitors[0], "[::1]:3261");

    const char *tfmt = "{\"name\": \"s\", \"type\": \"iscsi\", \"portal\": \"h\", \"target\": %s}";
    const char *ifmt = "{\"name\": \"s\", \"type\": \"iscsi\", \"portal\": \"h\", \"target\": "
                       "\"iqn.2026-12.org.rcp:t1\", \"initiator\": %s}";
    static const char *const badi[] = {"iqn.2026-1.x", "eui.123", "", "iqn.2026-12.x:a/0", "x"};
    for (size_t i = 0; i < sizeof(badi) / sizeof(badi[0]); i++) {
        bad_str(tfmt, badi[i], NB_ERR_POOL_INVALID_SOURCE);
        bad_str(ifmt, badi[i], NB_ERR_POOL_INVALID_SOURCE);
    }
    char longi[300] = "iqn.2026-12.x:";
    memset(longi + 14, 'a', 250);
    bad_str(tfmt, longi, NB_ERR_POOL_INVALID_SOURCE);
    bad("{\"name\": \"s\", \"type\": \"iscsi\", \"portal\": \"h\"}", NB_ERR_INVALID_REQUEST);
    bad("{\"name\": \"s\", \"type\": \"iscsi\", \"target\": \"iqn.2026-12.org.rcp:t1\"}",
        NB_ERR_INVALID_REQUEST);

    const char *pfmt = "{\"name\": \"s\", \"type\": \"iscsi\", \"portal\": %s, \"target\": "
                       "\"iqn.2026-12.org.rcp:t1\"}";
    static const char *const badp[] = {"a:b", "1.2.3.4:0", ":3260", "h:65536", "", "::1"};
    for (size_t i = 0; i < sizeof(badp) / sizeof(badp[0]); i++)
        bad_str(pfmt, badp[i], NB_ERR_POOL_INVALID_MONITOR);

    /* CHAP: both or neither; a key of 12..255 printable characters. */
    bad(ISCSI_FMT(", \"user\": \"chap\""), NB_ERR_POOL_INVALID_KEY);
    bad(ISCSI_FMT(", \"key\": \"twelve chars\""), NB_ERR_POOL_INVALID_KEY);
    bad(ISCSI_FMT(", \"user\": \"chap\", \"key\": \"eleven char\""), NB_ERR_POOL_INVALID_KEY);
    bad(ISCSI_FMT(", \"user\": \"chap\", \"key\": \"twelve chars\\n\""), NB_ERR_POOL_INVALID_KEY);
    bad(ISCSI_FMT(", \"user\": \"chap\", \"key\": \"twelve\\u00e9chars\""),
        NB_ERR_POOL_INVALID_KEY);
    bad(ISCSI_FMT(", \"user\": \"a b\", \"key\": \"twelve chars\""), NB_ERR_INVALID_REQUEST);
    char longk[300];
    memset(longk, 'k', 256);
    longk[256] = '\0';
    char fmt[256];
    snprintf(fmt, sizeof(fmt), "%s", ISCSI_FMT(", \"user\": \"chap\", \"key\": %s"));
    bad_str(fmt, longk, NB_ERR_POOL_INVALID_KEY);
    longk[255] = '\0';
    char *b = with_str(fmt, longk);
    p = ok(b);
    free(b);
    assert_string_equal(p.secret, longk);
    /* A user that is a "client." name is only refused for Ceph. */
    p = ok(ISCSI_FMT(", \"user\": \"client.x\", \"key\": \"twelve chars\""));
    assert_string_equal(p.auth_user, "client.x");
}

static void
test_netfs(void **state)
{
    Pool p = ok("{\"name\": \"nfs\", \"type\": \"netfs\", \"server\": \"nfs.example.com\", "
                "\"export\": \"/exports/vms\", \"path\": \"/srv/nfs\"}");
    assert_int_equal(p.type, POOL_TYPE_NETFS);
    assert_int_equal(p.n_monitors, 1);
    assert_string_equal(p.monitors[0], "nfs.example.com");
    assert_string_equal(p.source, "/exports/vms");
    assert_string_equal(p.path, "/srv/nfs");
    const char *sfmt = "{\"name\": \"nfs\", \"type\": \"netfs\", \"server\": %s, \"export\": "
                       "\"/e\", \"path\": \"/srv/m\"}";
    bad_str(sfmt, "nfs:2049", NB_ERR_POOL_INVALID_MONITOR);
    bad_str(sfmt, "a b", NB_ERR_POOL_INVALID_MONITOR);
    bad_str(sfmt, "", NB_ERR_POOL_INVALID_MONITOR);
    ok_str(sfmt, "[::1]");
    const char *efmt =
        "{\"name\": \"nfs\", \"type\": \"netfs\", \"server\": \"s\", \"export\": %s, "
        "\"path\": \"/srv/m\"}";
    bad_str(efmt, "e", NB_ERR_POOL_INVALID_SOURCE);
    bad_str(efmt, "/e/../f", NB_ERR_POOL_INVALID_SOURCE);
    bad_str(efmt, "/e/", NB_ERR_POOL_INVALID_SOURCE);
    bad_str(efmt, "", NB_ERR_POOL_INVALID_SOURCE);
    const char *pfmt = "{\"name\": \"nfs\", \"type\": \"netfs\", \"server\": \"s\", \"export\": "
                       "\"/e\", \"path\": %s}";
    bad_str(pfmt, "/mnt/x", NB_ERR_POOL_INVALID_PATH);
    bad_str(pfmt, "/srv", NB_ERR_POOL_INVALID_PATH);
    bad("{\"name\": \"nfs\", \"type\": \"netfs\", \"server\": \"s\", \"export\": \"/e\"}",
        NB_ERR_INVALID_REQUEST);
    bad("{\"name\": \"nfs\", \"type\": \"netfs\", \"export\": \"/e\", \"path\": \"/srv/m\"}",
        NB_ERR_INVALID_REQUEST);
    bad("{\"name\": \"nfs\", \"type\": \"netfs\", \"server\": \"s\", \"path\": \"/srv/m\"}",
        NB_ERR_INVALID_REQUEST);
    bad("{\"name\": \"nfs\", \"type\": \"netfs\", \"server\": \"s\", \"export\": \"/e\", "
        "\"path\": \"/srv/m\", \"host\": \"n1\"}",
        NB_ERR_INVALID_REQUEST);
}

static void
assert_no_secret(json_t *j, const char *secret)
{
    char *text = json_dumps(j, 0);
    assert_non_null(text);
    if (strstr(text, secret))
        fail_msg("the secret is in %s", text);
    free(text);
    assert_null(json_object_get(j, "key"));
    assert_null(json_object_get(j, "secret"));
}

static void
test_to_json(void **state)
{
    Pool p = ok(RBD_BODY("[\"10.0.0.1:6789\", \"[::1]\"]", ""));
    snprintf(p.id, sizeof(p.id), "7e57a1b2-c3d4-4e5f-8a9b-0c1d2e3f4a5b");
    pool_libvirt_name(p.id, p.libvirt_name);
    snprintf(p.created_at, sizeof(p.created_at), "2026-12-05T10:00:00Z");
    json_t *j = pool_to_json(&p);
    assert_non_null(j);
    assert_no_secret(j, CEPH_KEY);
    assert_string_equal(json_string_value(json_object_get(j, "id")), p.id);
    assert_string_equal(json_string_value(json_object_get(j, "name")), "ceph");
    assert_string_equal(json_string_value(json_object_get(j, "type")), "rbd");
    assert_true(json_is_true(json_object_get(j, "shared")));
    assert_true(json_is_false(json_object_get(j, "default")));
    assert_true(json_is_true(json_object_get(j, "secret_set")));
    assert_string_equal(json_string_value(json_object_get(j, "libvirt_name")),
                        "nimbus-pool-7e57a1b2-c3d4-4e5f-8a9b-0c1d2e3f4a5b");
    assert_int_equal(json_array_size(json_object_get(j, "monitors")), 2);
    assert_string_equal(json_string_value(json_array_get(json_object_get(j, "monitors"), 1)),
                        "[::1]");
    assert_string_equal(json_string_value(json_object_get(j, "rbd_pool")), "nimbus");
    assert_string_equal(json_string_value(json_object_get(j, "user")), "nimbus");
    assert_string_equal(json_string_value(json_object_get(j, "created_at")), p.created_at);
    assert_null(json_object_get(j, "host"));
    assert_null(json_object_get(j, "path"));
    assert_null(json_object_get(j, "vg"));
    json_decref(j);

    /* The request's names come back: the answer can be replayed as a request (minus key). */
    Pool q = ok(ISCSI_FMT(", \"user\": \"chap\", \"key\": \"chap-secret-1\""));
    j = pool_to_json(&q);
    assert_no_secret(j, "chap-secret-1");
    assert_string_equal(json_string_value(json_object_get(j, "portal")), "127.0.0.1:3260");
    assert_string_equal(json_string_value(json_object_get(j, "target")), "iqn.2026-12.org.rcp:t1");
    assert_string_equal(json_string_value(json_object_get(j, "initiator")),
                        "iqn.2026-01.io.nimbus:san-1");
    assert_string_equal(json_string_value(json_object_get(j, "user")), "chap");
    assert_true(json_is_true(json_object_get(j, "secret_set")));
    json_decref(j);
    q = ok(ISCSI_FMT(""));
    j = pool_to_json(&q);
    assert_true(json_is_null(json_object_get(j, "user")));
    assert_true(json_is_false(json_object_get(j, "secret_set")));
    json_decref(j);

    q = ok("{\"name\": \"d\", \"type\": \"dir\", \"path\": \"/srv/d\"}");
    q.is_default = true;
    j = pool_to_json(&q);
    assert_true(json_is_null(json_object_get(j, "host")));
    assert_string_equal(json_string_value(json_object_get(j, "path")), "/srv/d");
    assert_true(json_is_false(json_object_get(j, "shared")));
    assert_true(json_is_true(json_object_get(j, "default")));
    assert_true(json_is_false(json_object_get(j, "secret_set")));
    assert_null(json_object_get(j, "monitors"));
    json_decref(j);

    q = ok("{\"name\": \"l\", \"type\": \"logical\", \"vg\": \"vg0\", \"host\": \"n1\"}");
    j = pool_to_json(&q);
    assert_string_equal(json_string_value(json_object_get(j, "host")), "n1");
    assert_string_equal(json_string_value(json_object_get(j, "vg")), "vg0");
    json_decref(j);

    q = ok("{\"name\": \"n\", \"type\": \"netfs\", \"server\": \"s1\", \"export\": \"/e\", "
           "\"path\": \"/srv/m\"}");
    j = pool_to_json(&q);
    assert_string_equal(json_string_value(json_object_get(j, "server")), "s1");
    assert_string_equal(json_string_value(json_object_get(j, "export")), "/e");
    assert_string_equal(json_string_value(json_object_get(j, "path")), "/srv/m");
    assert_true(json_is_true(json_object_get(j, "shared")));
    json_decref(j);

    /* A corrupt monitor count (a bad store row) is clamped, not read past the array. */
    p.n_monitors = 1000;
    j = pool_to_json(&p);
    assert_int_equal(json_array_size(json_object_get(j, "monitors")), POOL_MONITORS_MAX);
    json_decref(j);
}

static void
test_host_state_json(void **state)
{
    PoolHostState s = {.capacity = -1, .allocation = -1};
    snprintf(s.host, sizeof(s.host), "node1");
    snprintf(s.state, sizeof(s.state), "pending");
    snprintf(s.updated_at, sizeof(s.updated_at), "2026-12-05T10:00:00Z");
    json_t *j = pool_host_state_to_json(&s);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "host")), "node1");
    assert_string_equal(json_string_value(json_object_get(j, "state")), "pending");
    assert_true(json_is_null(json_object_get(j, "error")));
    assert_true(json_is_null(json_object_get(j, "capacity")));
    assert_true(json_is_null(json_object_get(j, "allocation")));
    assert_string_equal(json_string_value(json_object_get(j, "updated_at")), s.updated_at);
    json_decref(j);

    snprintf(s.state, sizeof(s.state), "error");
    snprintf(s.error, sizeof(s.error), "mount.nfs: No such device");
    s.capacity = 0;
    s.allocation = INT64_C(1) << 40;
    j = pool_host_state_to_json(&s);
    assert_string_equal(json_string_value(json_object_get(j, "error")),
                        "mount.nfs: No such device");
    assert_int_equal(json_integer_value(json_object_get(j, "capacity")), 0);
    assert_int_equal(json_integer_value(json_object_get(j, "allocation")), INT64_C(1) << 40);
    json_decref(j);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_type_tables),
        cmocka_unit_test(test_path_valid),
        cmocka_unit_test(test_hostport_parse),
        cmocka_unit_test(test_iqn_valid),
        cmocka_unit_test(test_dir),
        cmocka_unit_test(test_shape),
        cmocka_unit_test(test_logical),
        cmocka_unit_test(test_rbd),
        cmocka_unit_test(test_iscsi),
        cmocka_unit_test(test_netfs),
        cmocka_unit_test(test_to_json),
        cmocka_unit_test(test_host_state_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
