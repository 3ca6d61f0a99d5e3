#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/seed.h"
#include "util/cleanup.h"
#include "util/spawn.h"
#include "util/strutil.h"

#define ID "0b7c4a52-3f1e-4c2d-9a8b-5e6f7a8b9c0d"
#define MAC "52:54:00:ab:cd:ef"

static char root[] = "/tmp/nb-seed-XXXXXX";
static char *work_dir;
static char *out_dir;
static char *isoinfo;

static int
count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (!streq(de->d_name, ".") && !streq(de->d_name, ".."))
            n++;
    }
    closedir(d);
    return n;
}

static void
empty_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] != '.')
            (void)unlinkat(dirfd(d), de->d_name, 0);
    }
    closedir(d);
}

static int
setup(void **state)
{
    if (!mkdtemp(root))
        return -1;
    work_dir = str_printf("%s/work", root);
    out_dir = str_printf("%s/out", root);
    if (!work_dir || !out_dir || mkdir(work_dir, 0700) < 0 || mkdir(out_dir, 0700) < 0)
        return -1;
    if (spawn_find_program("isoinfo", &isoinfo) < 0) {
        fprintf(stderr, "isoinfo not installed (package genisoimage)\n");
        return -1;
    }
    return 0;
}

static int
teardown(void **state)
{
    empty_dir(work_dir);
    empty_dir(out_dir);
    rmdir(work_dir);
    rmdir(out_dir);
    rmdir(root);
    free(work_dir);
    free(out_dir);
    free(isoinfo);
    return 0;
}

/* Runs isoinfo with args after the program path; returns its stdout. */
static char *
run_isoinfo(const char *const args[])
{
    const char *argv[12] = {isoinfo};
    size_t n = 1;
    for (size_t i = 0; args[i]; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    const SpawnLimits lim = {.timeout_ms = 30000};
    char *out = NULL;
    assert_int_equal(spawn_run(argv, &lim, 1 << 20, &out, NULL), 0);
    return out;
}

static char *
iso_file(const char *iso, const char *name)
{
    const char *args[] = {"-R", "-x", name, "-i", iso, NULL};
    return run_isoinfo(args);
}

static void
check_iso(const char *iso, const SeedSpec *spec, const char *want_user_data)
{
    const char *dargs[] = {"-d", "-i", iso, NULL};
    _cleanup_free_ char *desc = run_isoinfo(dargs);
    assert_non_null(strstr(desc, "Volume id: cidata\n"));

    _cleanup_free_ char *meta = iso_file(iso, "/meta-data");
    _cleanup_free_ char *want_meta =
        str_printf("instance-id: %s\nlocal-hostname: %s\n", spec->instance_id, spec->hostname);
    assert_string_equal(meta, want_meta);

    _cleanup_free_ char *net = iso_file(iso, "/network-config");
    _cleanup_free_ char *want_net = str_printf("version: 2\n"
                                               "ethernets:\n"
                                               "  eth0:\n"
                                               "    match:\n"
                                               "      macaddress: \"%s\"\n"
                                               "    set-name: eth0\n"
                                               "    dhcp4: true\n",
                                               spec->mac);
    assert_string_equal(net, want_net);

    _cleanup_free_ char *ud = iso_file(iso, "/user-data");
    assert_int_equal(strlen(ud), strlen(want_user_data));
    assert_memory_equal(ud, want_user_data, strlen(want_user_data));

    /* Exactly the three files, nothing else. */
    const char *largs[] = {"-R", "-f", "-i", iso, NULL};
    _cleanup_free_ char *list = run_isoinfo(largs);
    assert_string_equal(list, "/meta-data\n/network-config\n/user-data\n");
}

static void
assert_clean(void)
{
    assert_int_equal(count_entries(work_dir), 0);
}

static void
test_texts(void **state)
{
    SeedSpec spec = {.instance_id = ID, .hostname = "web-1", .mac = MAC};
    _cleanup_free_ char *meta = seed_meta_data(&spec);
    assert_string_equal(meta, "instance-id: " ID "\nlocal-hostname: web-1\n");
    _cleanup_free_ char *net = seed_network_config(&spec);
    assert_non_null(strstr(net, "      macaddress: \"" MAC "\"\n"));

    SeedSpec bad = {.instance_id = ID, .hostname = "a\nb: c", .mac = "52:54:00:AB:CD:EF"};
    assert_null(seed_meta_data(&bad));
    assert_null(seed_network_config(&bad));
}

static void
test_build_default_user_data(void **state)
{
    _cleanup_free_ char *iso = str_printf("%s/seed.iso", out_dir);
    SeedSpec spec = {.instance_id = ID, .hostname = "web-1", .mac = MAC};
    _cleanup_error_ NbError *err = NULL;
    int r = seed_build_iso(&spec, work_dir, iso, &err);
    if (r < 0)
        fail_msg("%s: %s", err->code, err->message);
    assert_null(err);
    check_iso(iso, &spec, "#cloud-config\n{}\n");
    assert_clean();
    assert_int_equal(count_entries(out_dir), 1);
}

static void
test_build_hostile_user_data(void **state)
{
    /* Quotes, newlines, shell syntax, YAML syntax, and every byte value but NUL. */
    char ud[1024];
    size_t n = 0;
    const char *text = "#!/bin/sh\necho \"$(reboot)\" '`id`' ; rm -rf / \\\n"
                       "key: 'value\"\n- [ a, b ]\r\n\n--- !!python/object\n";
    memcpy(ud, text, strlen(text));
    n = strlen(text);
    for (int c = 1; c < 256; c++)
        ud[n++] = (char)c;
    ud[n] = '\0';

    /* Replaces an existing seed in place. */
    _cleanup_free_ char *iso = str_printf("%s/seed.iso", out_dir);
    SeedSpec spec = {.instance_id = ID, .hostname = "Host-2", .mac = MAC, .user_data = ud};
    _cleanup_error_ NbError *err = NULL;
    int r = seed_build_iso(&spec, work_dir, iso, &err);
    if (r < 0)
        fail_msg("%s: %s", err->code, err->message);
    check_iso(iso, &spec, ud);
    assert_clean();
    assert_int_equal(count_entries(out_dir), 1);
}

static void
test_refused_hostnames(void **state)
{
    static const char *const bad[] = {
        "a'b",  "../x",
        "x y",  "-a",
        "a-",   "",
        "a.b",  "a\nb",
        "a\"b", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", /* 64 */
    };
    assert_int_equal(strlen(bad[ELEMENTSOF(bad) - 1]), 64);
    _cleanup_free_ char *iso = str_printf("%s/refused.iso", out_dir);
    for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
        SeedSpec spec = {.instance_id = ID, .hostname = bad[i], .mac = MAC};
        _cleanup_error_ NbError *err = NULL;
        assert_int_equal(seed_build_iso(&spec, work_dir, iso, &err), -1);
        assert_non_null(err);
        assert_string_equal(err->code, "INVALID_HOSTNAME");
        assert_int_equal(access(iso, F_OK), -1);
        assert_clean();
    }
    SeedSpec null_host = {.instance_id = ID, .hostname = NULL, .mac = MAC};
    _cleanup_error_ NbError *err = NULL;
    assert_int_equal(seed_build_iso(&null_host, work_dir, iso, &err), -1);
    assert_string_equal(err->code, "INVALID_HOSTNAME");

    /* 63 characters is the longest valid label. */
    SeedSpec ok = {.instance_id = ID,
                   .hostname = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                   .mac = MAC};
    _cleanup_error_ NbError *err2 = NULL;
    assert_int_equal(seed_build_iso(&ok, work_dir, iso, &err2), 0);
    assert_int_equal(access(iso, F_OK), 0);
    unlink(iso);
    assert_clean();
}

static void
test_refused_ids_and_macs(void **state)
{
    _cleanup_free_ char *iso = str_printf("%s/refused.iso", out_dir);
    static const char *const bad_ids[] = {
        "",
        "not-a-uuid",
        "0b7c4a52-3f1e-4c2d-9a8b-5e6f7a8b9c0d\nx: y",
        "../0b7c4a52-3f1e-4c2d-9a8b-5e6f7a8b9c0d",
        "0B7C4A52-3F1E-4C2D-9A8B-5E6F7A8B9C0D",
    };
    for (size_t i = 0; i < ELEMENTSOF(bad_ids); i++) {
        SeedSpec spec = {.instance_id = bad_ids[i], .hostname = "h", .mac = MAC};
        _cleanup_error_ NbError *err = NULL;
        assert_int_equal(seed_build_iso(&spec, work_dir, iso, &err), -1);
        assert_string_equal(err->code, "INTERNAL_ERROR");
    }
    static const char *const bad_macs[] = {
        "",
        "52:54:00:AB:CD:EF",
        "52:54:00:ab:cd",
        "52:54:00:ab:cd:ef:",
        "52-54-00-ab-cd-ef",
        "52:54:00:ab:cd:e\"",
        "52:54:00:ab:cd:eg",
    };
    for (size_t i = 0; i < ELEMENTSOF(bad_macs); i++) {
        SeedSpec spec = {.instance_id = ID, .hostname = "h", .mac = bad_macs[i]};
        _cleanup_error_ NbError *err = NULL;
        assert_int_equal(seed_build_iso(&spec, work_dir, iso, &err), -1);
        assert_string_equal(err->code, "INTERNAL_ERROR");
    }
    assert_int_equal(access(iso, F_OK), -1);
    assert_clean();
}

static void
test_failure_cleans_up(void **state)
{
    /* The output directory does not exist: nothing is left behind in work_dir. */
    _cleanup_free_ char *iso = str_printf("%s/missing/seed.iso", out_dir);
    SeedSpec spec = {.instance_id = ID, .hostname = "h", .mac = MAC};
    _cleanup_error_ NbError *err = NULL;
    assert_int_equal(seed_build_iso(&spec, work_dir, iso, &err), -1);
    assert_string_equal(err->code, "INTERNAL_ERROR");
    assert_clean();

    /* out_path is a directory: genisoimage fails or rename does; either way no temp files. */
    _cleanup_free_ char *dir_out = str_printf("%s/adir", out_dir);
    assert_int_equal(mkdir(dir_out, 0700), 0);
    _cleanup_error_ NbError *err2 = NULL;
    int before = count_entries(out_dir);
    assert_int_equal(seed_build_iso(&spec, work_dir, dir_out, &err2), -1);
    assert_string_equal(err2->code, "INTERNAL_ERROR");
    assert_int_equal(count_entries(out_dir), before);
    assert_clean();
    rmdir(dir_out);

    /* work_dir missing. */
    _cleanup_free_ char *no_work = str_printf("%s/no-such-dir", root);
    _cleanup_free_ char *iso2 = str_printf("%s/x.iso", out_dir);
    _cleanup_error_ NbError *err3 = NULL;
    assert_int_equal(seed_build_iso(&spec, no_work, iso2, &err3), -1);
    assert_int_equal(access(iso2, F_OK), -1);
}

/* 10.10.0.0/24 style host-order addresses. */
#define IP4(a, b, c, d) (((uint32_t)(a) << 24) | ((uint32_t)(b) << 16) | ((c) << 8) | (d))

static const uint32_t dns_one[] = {IP4(1, 1, 1, 1)};
static const uint32_t dns_two[] = {IP4(10, 10, 0, 1), IP4(9, 9, 9, 9)};

static void
test_network_config_one_nic(void **state)
{
    const SeedNic nics[] = {{.mac = MAC,
                             .ip = IP4(10, 10, 0, 2),
                             .prefix = 24,
                             .gateway = IP4(10, 10, 0, 1),
                             .dns = dns_one,
                             .n_dns = 1,
                             .mtu = 1500}};
    SeedSpec spec = {.instance_id = ID, .hostname = "h", .nics = nics, .n_nics = 1};
    _cleanup_free_ char *net = seed_network_config(&spec);
    assert_string_equal(net, "version: 2\n"
                             "ethernets:\n"
                             "  eth0:\n"
                             "    match:\n"
                             "      macaddress: \"" MAC "\"\n"
                             "    set-name: eth0\n"
                             "    dhcp4: false\n"
                             "    addresses: [10.10.0.2/24]\n"
                             "    mtu: 1500\n"
                             "    nameservers:\n"
                             "      addresses: [1.1.1.1]\n"
                             "    routes: [{to: default, via: 10.10.0.1}]\n");
}

static const char golden_three[] = "version: 2\n"
                                   "ethernets:\n"
                                   "  eth0:\n"
                                   "    match:\n"
                                   "      macaddress: \"52:54:00:00:00:01\"\n"
                                   "    set-name: eth0\n"
                                   "    dhcp4: false\n"
                                   "    addresses: [192.168.7.9/30]\n"
                                   "    mtu: 9000\n"
                                   "  # nimbus: dhcp\n"
                                   "  eth1:\n"
                                   "    match:\n"
                                   "      macaddress: \"52:54:00:00:00:02\"\n"
                                   "    set-name: eth1\n"
                                   "    dhcp4: false\n"
                                   "    addresses: [10.10.0.254/24]\n"
                                   "    mtu: 1450\n"
                                   "    nameservers:\n"
                                   "      addresses: [10.10.0.1, 9.9.9.9]\n"
                                   "    routes: [{to: default, via: 10.10.0.1}]\n"
                                   "  # nimbus: dhcp\n"
                                   "  eth2:\n"
                                   "    match:\n"
                                   "      macaddress: \"52:54:00:00:00:03\"\n"
                                   "    set-name: eth2\n"
                                   "    dhcp4: false\n"
                                   "    addresses: [172.16.5.7/8]\n";

static const SeedNic three_nics[] = {
    /* No gateway (isolated): no route; the second NIC carries the only default route. */
    {.mac = "52:54:00:00:00:01", .ip = IP4(192, 168, 7, 9), .prefix = 30, .mtu = 9000},
    {.mac = "52:54:00:00:00:02",
     .ip = IP4(10, 10, 0, 254),
     .prefix = 24,
     .gateway = IP4(10, 10, 0, 1),
     .dns = dns_two,
     .n_dns = 2,
     .mtu = 1450,
     .dhcp = true},
    /* A gateway, but not the first NIC with one: no second default route. No mtu: no line. */
    {.mac = "52:54:00:00:00:03",
     .ip = IP4(172, 16, 5, 7),
     .prefix = 8,
     .gateway = IP4(172, 0, 0, 1),
     .dhcp = true},
};

/* The YAML is simple enough to check its shape line by line: every line is a comment, a
 * top-level key, or indented by two spaces per level under a "key:" line, and every entry
 * has the keys cloud-init needs. */
static void
check_yaml_shape(const char *text, size_t want_nics)
{
    _cleanup_free_ char *copy = strdup(text);
    size_t nics = 0, prev_indent = 0;
    bool prev_opens = false;
    char *save = NULL;
    assert_true(str_startswith(text, "version: 2\nethernets:\n"));
    assert_true(text[strlen(text) - 1] == '\n');
    for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        size_t indent = strspn(line, " ");
        assert_int_equal(indent % 2, 0);
        const char *body = line + indent;
        assert_true(*body != '\0' && body[strlen(body) - 1] != ' ');
        if (body[0] == '#') {
            assert_int_equal(indent, 2);
            assert_string_equal(body, "# nimbus: dhcp");
            continue;
        }
        /* Deeper only right under a "key:" line, and by one level. */
        if (indent > prev_indent)
            assert_true(prev_opens && indent == prev_indent + 2);
        const char *colon = strchr(body, ':');
        assert_non_null(colon);
        assert_true(colon[1] == '\0' || colon[1] == ' ');
        prev_opens = colon[1] == '\0';
        prev_indent = indent;
        if (indent == 2) {
            char want[16];
            snprintf(want, sizeof(want), "eth%zu:", nics);
            assert_string_equal(body, want);
            nics++;
        }
        /* Flow sequences are closed on the same line. */
        if (strchr(body, '['))
            assert_non_null(strchr(body, ']'));
    }
    assert_int_equal(nics, want_nics);
}

static void
test_network_config_three_nics(void **state)
{
    SeedSpec spec = {.instance_id = ID, .hostname = "h", .nics = three_nics, .n_nics = 3};
    _cleanup_free_ char *net = seed_network_config(&spec);
    assert_string_equal(net, golden_three);
    check_yaml_shape(net, 3);

    /* The ISO carries the same text; `mac` is ignored once NICs are given. */
    _cleanup_free_ char *iso = str_printf("%s/multi.iso", out_dir);
    spec.mac = "not a mac";
    _cleanup_error_ NbError *err = NULL;
    int r = seed_build_iso(&spec, work_dir, iso, &err);
    if (r < 0)
        fail_msg("%s: %s", err->code, err->message);
    _cleanup_free_ char *on_iso = iso_file(iso, "/network-config");
    assert_string_equal(on_iso, golden_three);
    unlink(iso);
    assert_clean();
}

static void
test_network_config_legacy_shape(void **state)
{
    SeedSpec spec = {.instance_id = ID, .hostname = "h", .mac = MAC};
    _cleanup_free_ char *net = seed_network_config(&spec);
    check_yaml_shape(net, 1);
}

static void
assert_refused(const SeedNic *nic)
{
    SeedNic nics[2] = {*nic, {.mac = "52:54:00:00:00:09", .ip = IP4(10, 9, 0, 2), .prefix = 24}};
    /* Refused alone and as the second NIC of two. */
    SeedSpec spec = {.instance_id = ID, .hostname = "h", .nics = nics, .n_nics = 1};
    assert_null(seed_network_config(&spec));
    SeedNic swapped[2] = {nics[1], nics[0]};
    SeedSpec spec2 = {.instance_id = ID, .hostname = "h", .nics = swapped, .n_nics = 2};
    assert_null(seed_network_config(&spec2));

    _cleanup_free_ char *iso = str_printf("%s/refused.iso", out_dir);
    _cleanup_error_ NbError *err = NULL;
    assert_int_equal(seed_build_iso(&spec, work_dir, iso, &err), -1);
    assert_string_equal(err->code, "INTERNAL_ERROR");
    assert_int_equal(access(iso, F_OK), -1);
    assert_clean();
}

static void
test_network_config_refusals(void **state)
{
    const SeedNic good = {.mac = MAC,
                          .ip = IP4(10, 10, 0, 2),
                          .prefix = 24,
                          .gateway = IP4(10, 10, 0, 1),
                          .dns = dns_one,
                          .n_dns = 1,
                          .mtu = 1500};
    SeedSpec ok = {.instance_id = ID, .hostname = "h", .nics = &good, .n_nics = 1};
    _cleanup_free_ char *fine = seed_network_config(&ok);
    assert_non_null(fine);

    SeedNic n;
    static const char *const bad_macs[] = {NULL,
                                           "",
                                           "52:54:00:AB:CD:EF",
                                           "52:54:00:ab:cd",
                                           "52:54:00:ab:cd:e\"",
                                           "52:54:00:ab:cd:ef\n"};
    for (size_t i = 0; i < ELEMENTSOF(bad_macs); i++) {
        n = good;
        n.mac = bad_macs[i];
        assert_refused(&n);
    }
    static const unsigned bad_prefixes[] = {0, 7, 31, 32, 33, 1000};
    for (size_t i = 0; i < ELEMENTSOF(bad_prefixes); i++) {
        n = good;
        n.prefix = bad_prefixes[i];
        n.gateway = 0;
        assert_refused(&n);
    }
    /* The network and broadcast addresses, and 0. */
    static const uint32_t bad_ips[] = {IP4(10, 10, 0, 0), IP4(10, 10, 0, 255), 0};
    for (size_t i = 0; i < ELEMENTSOF(bad_ips); i++) {
        n = good;
        n.ip = bad_ips[i];
        n.gateway = 0;
        assert_refused(&n);
    }
    /* A gateway outside the subnet, on its edges, or the NIC's own address. */
    static const uint32_t bad_gws[] = {IP4(10, 10, 1, 1), IP4(10, 10, 0, 0), IP4(10, 10, 0, 255),
                                       IP4(10, 10, 0, 2)};
    for (size_t i = 0; i < ELEMENTSOF(bad_gws); i++) {
        n = good;
        n.gateway = bad_gws[i];
        assert_refused(&n);
    }
    static const unsigned bad_mtus[] = {1, 575, 9001, 65536};
    for (size_t i = 0; i < ELEMENTSOF(bad_mtus); i++) {
        n = good;
        n.mtu = bad_mtus[i];
        assert_refused(&n);
    }
    static const uint32_t dns_zero[] = {IP4(1, 1, 1, 1), 0};
    static const uint32_t dns_four[] = {1, 2, 3, 4};
    n = good;
    n.dns = dns_zero;
    n.n_dns = 2;
    assert_refused(&n);
    n.dns = dns_four;
    n.n_dns = 4;
    assert_refused(&n);
    n.dns = NULL;
    n.n_dns = 1;
    assert_refused(&n);

    /* Two NICs with one MAC; more than 8 NICs; NICs promised but absent. */
    SeedNic same[2] = {good, good};
    same[1].ip = IP4(10, 10, 0, 3);
    SeedSpec dup = {.instance_id = ID, .hostname = "h", .nics = same, .n_nics = 2};
    assert_null(seed_network_config(&dup));
    SeedNic many[9];
    for (size_t i = 0; i < ELEMENTSOF(many); i++) {
        many[i] = good;
        many[i].mac =
            (const char *[]){"52:54:00:00:00:10", "52:54:00:00:00:11", "52:54:00:00:00:12",
                             "52:54:00:00:00:13", "52:54:00:00:00:14", "52:54:00:00:00:15",
                             "52:54:00:00:00:16", "52:54:00:00:00:17", "52:54:00:00:00:18"}[i];
    }
    SeedSpec eight = {.instance_id = ID, .hostname = "h", .nics = many, .n_nics = 8};
    _cleanup_free_ char *eight_text = seed_network_config(&eight);
    assert_non_null(eight_text);
    check_yaml_shape(eight_text, 8);
    /* Only the first NIC with a gateway gets the route. */
    const char *route = strstr(eight_text, "routes:");
    assert_non_null(route);
    assert_null(strstr(route + 1, "routes:"));
    SeedSpec nine = {.instance_id = ID, .hostname = "h", .nics = many, .n_nics = 9};
    assert_null(seed_network_config(&nine));
    SeedSpec absent = {.instance_id = ID, .hostname = "h", .nics = NULL, .n_nics = 1};
    assert_null(seed_network_config(&absent));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_texts),
        cmocka_unit_test(test_build_default_user_data),
        cmocka_unit_test(test_build_hostile_user_data),
        cmocka_unit_test(test_refused_hostnames),
        cmocka_unit_test(test_refused_ids_and_macs),
        cmocka_unit_test(test_failure_cleans_up),
        cmocka_unit_test(test_network_config_one_nic),
        cmocka_unit_test(test_network_config_three_nics),
        cmocka_unit_test(test_network_config_legacy_shape),
        cmocka_unit_test(test_network_config_refusals),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
