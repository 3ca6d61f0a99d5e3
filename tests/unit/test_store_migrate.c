/* Upgrading databases of earlier releases to the current schema: from version 3 (through 4),
 * from version 4 and from version 5 (to 6), ..., from version 10: every row of every table
 * survives, and the new indexes, usage roll-ups, networks, ports, security groups, pools,
 * volumes, snapshots and DHCP servers work with the old rows. */
#include <sqlite3.h>

#include "model/tenancy.h"
#include "store_fixture.h"
#include "store_shipped_schema.h"

/* The schema version this nimbusd migrates to. */
#define SCHEMA_LATEST 15

static const char *const v3_tables[] = {
    "flavors", "images", "vms",   "tasks",     "tokens", "projects",
    "users",   "audit",  "hosts", "vm_events", "groups", "image_copies",
};

/* Rows in every table, as a version 3 daemon writes them. */
static const char v3_rows[] =
    "INSERT INTO projects (id, name, quota_vcpus, created_at) VALUES "
    "('p2', 'team', 8, '2026-01-01T00:00:00.000Z');"
    "INSERT INTO flavors (id, project, name, vcpus, ram_mib, disk_gib, created_at) VALUES "
    "('f1', '" NB_DEFAULT_PROJECT_ID "', 'small', 2, 512, 3, '2026-01-01T00:00:00.000Z');"
    "INSERT INTO images (id, project, name, state, format, size_bytes, virtual_size_bytes, volume,"
    " created_at, updated_at) VALUES ('i1', 'p2', 'tiny', 'active', 'qcow2', 100, 1000,"
    " 'image-i1', '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z');"
    "INSERT INTO hosts (id, name, uri, conn, vcpus, ram_mib, disk_gib, hostname, created_at,"
    " updated_at) VALUES ('h1', 'local', 'qemu:///system', 'up', 8, 16384, 100, 'box',"
    " '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z'),"
    " ('h2', 'h2', 'qemu+ssh://h2/system', 'down', 4, 8192, 50, NULL,"
    " '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z');"
    "INSERT INTO groups (id, project, name, policy, created_at) VALUES "
    "('g1', 'p2', 'web', 'anti-affinity', '2026-01-01T00:00:00.000Z');"
    "INSERT INTO vms (id, project, name, hostname, state, desired, task_id, host, image_id,"
    " flavor_id, vcpus, ram_mib, disk_gib, mac, user_data, ip, error, created_at, updated_at,"
    " migrate_to, group_id, labels) VALUES "
    "('v1', 'p2', 'web1', 'web1', 'running', 'running', NULL, 'local', 'i1', 'f1', 2, 512, 3,"
    " '52:54:00:00:00:01', '#cloud-config', '10.0.0.2', NULL, '2026-01-01T00:00:00.000Z',"
    " '2026-01-01T00:00:00.000Z', NULL, 'g1', 'tier=web'),"
    "('v2', 'p2', 'web2', 'web2', 'running', 'running', 't2', 'local', 'i1', 'f1', 2, 512, 3,"
    " '52:54:00:00:00:02', NULL, NULL, NULL, '2026-01-02T00:00:00.000Z',"
    " '2026-01-02T00:00:00.000Z', 'h2', 'g1', '');"
    "INSERT INTO tasks (id, project, kind, state, target_id, step, steps, params, error_code,"
    " error_message, created_at, updated_at, finished_at, progress, cancel_requested) VALUES "
    "('t1', 'p2', 'vm.create', 'succeeded', 'v1', 4, 4, NULL, NULL, NULL,"
    " '2026-01-01T00:00:00.000Z', '2026-01-01T00:01:00.000Z', '2026-01-01T00:01:00.000Z', -1, 0),"
    "('t2', 'p2', 'vm.migrate', 'running', 'v2', 1, 3, '{\"dest\":\"h2\"}', NULL, NULL,"
    " '2026-01-02T00:00:00.000Z', '2026-01-02T00:00:00.000Z', NULL, 40, 1);"
    "INSERT INTO users (id, name, password_hash, project_id, role, created_at) VALUES "
    "('u1', 'alice', '$argon2id$x', 'p2', 'member', '2026-01-01T00:00:00.000Z');"
    "INSERT INTO tokens (id, hash, name, role, created_at, expires_at, revoked_at, user_id) "
    "VALUES ('k1', 'abcd', 'ci', 'admin', '2026-01-01T00:00:00.000Z', NULL, NULL, 'u1');"
    "INSERT INTO audit (at, request_id, user_name, project_id, source, method, path, action,"
    " target, status, result) VALUES ('2026-01-01T00:00:00.000Z', 'r1', 'alice', 'p2',"
    " '127.0.0.1', 'POST', '/v1/vms', 'vm.create', 'web1', 202, 'accepted');"
    "INSERT INTO image_copies (image_id, host, state, updated_at) VALUES "
    "('i1', 'h2', 'ready', '2026-01-01T00:00:00.000Z');"
    /* The journal as the triggers left it, with history before the migration. */
    "UPDATE vm_events SET at = '2026-01-01T00:00:00.000Z' WHERE vm_id = 'v1';"
    "UPDATE vm_events SET at = '2026-01-02T00:00:00.000Z' WHERE vm_id = 'v2';";

static int
dump_row(void *arg, int n, char **values, char **names)
{
    char *out = arg;
    for (int i = 0; i < n; i++)
        snprintf(out + strlen(out), 65536 - strlen(out), "%s=%s|", names[i],
                 values[i] ? values[i] : "NULL");
    snprintf(out + strlen(out), 65536 - strlen(out), "\n");
    return 0;
}

/* The columns of table, "a, b, c" (a later migration may add some: the dump after it reads
 * the columns there were before). */
static void
table_columns(sqlite3 *db, const char *table, char *out, size_t len)
{
    char sql[128];
    sqlite3_stmt *st = NULL;
    snprintf(sql, sizeof(sql), "PRAGMA table_info(%s)", table);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    out[0] = '\0';
    while (sqlite3_step(st) == SQLITE_ROW)
        snprintf(out + strlen(out), len - strlen(out), "%s%s", out[0] ? ", " : "",
                 (const char *)sqlite3_column_text(st, 1));
    sqlite3_finalize(st);
    assert_true(out[0]);
}

typedef struct Dump {
    char *text;
    char cols[32][512]; /* each table's columns, from the first dump */
} Dump;

/* Every row of every table of the list, as text; the columns are the first dump's. */
static void
dump_tables(const char *path, const char *const *tables, size_t n, Dump *d)
{
    sqlite3 *db = NULL;
    bool first = d->cols[0][0] == '\0';
    free(d->text);
    d->text = calloc(1, 65536);
    assert_non_null(d->text);
    assert_true(n <= 32);
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    for (size_t i = 0; i < n; i++) {
        char sql[768];
        if (first)
            table_columns(db, tables[i], d->cols[i], sizeof(d->cols[i]));
        snprintf(d->text + strlen(d->text), 65536 - strlen(d->text), "[%s]\n", tables[i]);
        snprintf(sql, sizeof(sql), "SELECT %s FROM %s ORDER BY rowid", d->cols[i], tables[i]);
        assert_int_equal(sqlite3_exec(db, sql, dump_row, d->text, NULL), SQLITE_OK);
    }
    sqlite3_close(db);
}

/* Every table of the list has rows. */
static void
assert_all_have_rows(const char *dump, const char *const *tables, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char tag[64];
        snprintf(tag, sizeof(tag), "[%s]\n", tables[i]);
        const char *at = strstr(dump, tag);
        assert_non_null(at);
        at += strlen(tag);
        if (*at == '[' || *at == '\0')
            fail_msg("table %s has no rows", tables[i]);
    }
}

/* A database of schema `version` as the shipped migrations built it, with rows. */
static void
make_shipped_db(const char *path, int version, const char *rows)
{
    sqlite3 *db = NULL;
    char *msg = NULL;
    char bump[64];
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "PRAGMA journal_mode = WAL", NULL, NULL, NULL), SQLITE_OK);
    assert_true((size_t)version <= sizeof(shipped_schema) / sizeof(shipped_schema[0]));
    for (int i = 0; i < version; i++)
        if (sqlite3_exec(db, shipped_schema[i], NULL, NULL, &msg) != SQLITE_OK)
            fail_msg("schema %d: %s", i + 1, msg);
    snprintf(bump, sizeof(bump), "PRAGMA user_version = %d;", version);
    assert_int_equal(sqlite3_exec(db, bump, NULL, NULL, NULL), SQLITE_OK);
    if (sqlite3_exec(db, rows, NULL, NULL, &msg) != SQLITE_OK)
        fail_msg("rows: %s", msg);
    sqlite3_close(db);
}

static int
setup_empty(void **state)
{
    *state = fixture_new("migrate");
    return 0;
}

static void
test_migrate_from_v3(void **state)
{
    Fixture *f = *state;
    NbError *err = NULL;
    size_t n_tables = sizeof(v3_tables) / sizeof(v3_tables[0]);
    make_shipped_db(f->path, 3, v3_rows);
    Dump d = {0};
    dump_tables(f->path, v3_tables, n_tables, &d);
    char *before = TAKE_PTR(d.text);
    assert_all_have_rows(before, v3_tables, n_tables);

    assert_int_equal(store_open(f->path, &f->s, &err), 0);
    assert_int_equal(store_schema_version(f->s), SCHEMA_LATEST);
    dump_tables(f->path, v3_tables, n_tables, &d);
    char *after = d.text;
    assert_string_equal(before, after);

    /* The old rows through the new queries. */
    Vm vm;
    assert_int_equal(vm_store_get(f->s, "p2", "web1", &vm, &err), 0);
    assert_string_equal(vm.id, "v1");
    assert_string_equal(vm.user_data, "#cloud-config");
    vm_clear(&vm);
    assert_int_equal(vm_store_get(f->s, NB_DEFAULT_PROJECT_ID, "web1", &vm, &err), -1);
    expect_code(&err, NB_ERR_VM_NOT_FOUND);
    Vm *page = NULL;
    size_t n = 0;
    char next[STORE_MARKER_MAX];
    assert_int_equal(vm_store_list_page(f->s, "p2", NULL, 1, &page, &n, next, &err), 0);
    assert_int_equal(n, 1);
    assert_string_equal(page[0].name, "web1");
    vm_list_free(page, n);
    assert_int_equal(vm_store_list_page(f->s, "p2", next, 1, &page, &n, next, &err), 0);
    assert_int_equal(n, 1);
    assert_string_equal(page[0].name, "web2");
    assert_string_equal(page[0].migrate_to, "h2");
    assert_string_equal(next, "");
    vm_list_free(page, n);
    Task *tasks = NULL;
    assert_int_equal(task_store_list_page(f->s, "p2", NULL, NULL, 10, &tasks, &n, next, &err), 0);
    assert_int_equal(n, 2);
    assert_string_equal(tasks[0].id, "t2");
    assert_int_equal(tasks[0].progress, 40);
    assert_true(tasks[0].cancel_requested);
    assert_string_equal(tasks[1].id, "t1");
    task_list_free(tasks, n);
    /* A flavor from before disk QoS (13) limits nothing. */
    Flavor fl;
    assert_int_equal(flavor_store_get(f->s, "f1", &fl, &err), 0);
    assert_int_equal(fl.disk_iops, 0);
    assert_int_equal(fl.disk_mbps, 0);
    Host h;
    assert_int_equal(host_store_get(f->s, "h2", &h, &err), 0);
    assert_int_equal(h.vcpus_used, 2); /* v2 migrating to it */
    Principal p;
    assert_int_equal(token_store_lookup(f->s, "abcd", &p), 1);
    assert_string_equal(p.user_id, "u1");
    /* Usage of the old history: v1 ran from Jan 1, v2 from Jan 2, 2 vCPUs each. */
    double from, to;
    assert_int_equal(nb_timestamp_parse("2026-01-01T00:00:00Z", &from), 0);
    assert_int_equal(nb_timestamp_parse("2026-01-03T00:00:00Z", &to), 0);
    VmUsage *u = NULL;
    assert_int_equal(usage_store_compute(f->s, "p2", from, to, to, &u, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_string_equal(u[0].vm_id, "v1");
    assert_true(u[0].vcpu_hours > 95.99 && u[0].vcpu_hours < 96.01);
    assert_true(u[1].vcpu_hours > 47.99 && u[1].vcpu_hours < 48.01);
    free(u);
    /* Opening again migrates nothing more. */
    store_close(f->s);
    assert_int_equal(store_open(f->path, &f->s, &err), 0);
    assert_int_equal(store_schema_version(f->s), SCHEMA_LATEST);
    free(before);
    free(after);
}

static const char *const v4_tables[] = {
    "flavors",        "images",         "vms",          "tasks",     "tokens", "projects",
    "users",          "audit",          "hosts",        "vm_events", "groups", "image_copies",
    "vm_usage_daily", "vm_usage_carry", "usage_rollup",
};

/* What a version 4 daemon adds: the usage roll-ups. */
static const char v4_rows[] =
    "INSERT INTO vm_usage_daily (vm_id, project, name, day, vcpu_hours, ram_gib_hours,"
    " disk_gib_hours, running_hours) VALUES ('v1', 'p2', 'web1', 1767225600, 48, 12, 72, 24);"
    "INSERT INTO vm_usage_carry (vm_id, project, name, state, vcpus, ram_mib, disk_gib, at)"
    " VALUES ('v1', 'p2', 'web1', 'running', 2, 512, 3, '2026-01-02T00:00:00.000Z');"
    "INSERT INTO usage_rollup (id, upto) VALUES (1, '2026-01-02T00:00:00.000Z');";

static void
test_migrate_from_v4(void **state)
{
    Fixture *f = *state;
    NbError *err = NULL;
    size_t n_tables = sizeof(v4_tables) / sizeof(v4_tables[0]);
    char rows[sizeof(v3_rows) + sizeof(v4_rows)];
    snprintf(rows, sizeof(rows), "%s%s", v3_rows, v4_rows);
    make_shipped_db(f->path, 4, rows);
    Dump d = {0};
    dump_tables(f->path, v4_tables, n_tables, &d);
    char *before = TAKE_PTR(d.text);
    assert_all_have_rows(before, v4_tables, n_tables);

    assert_int_equal(store_open(f->path, &f->s, &err), 0);
    assert_int_equal(store_schema_version(f->s), SCHEMA_LATEST);
    dump_tables(f->path, v4_tables, n_tables, &d);
    assert_string_equal(before, d.text);

    /* The old project has no limit on the new resources. */
    Project p;
    assert_int_equal(project_store_get(f->s, NULL, "team", &p, &err), 0);
    assert_int_equal(p.quota.limit[QUOTA_VCPUS], 8);
    assert_int_equal(p.quota.limit[QUOTA_NETWORKS], -1);
    assert_int_equal(p.quota.limit[QUOTA_PORTS], -1);
    /* An old VM has no ports; it may gain one (a hot-plugged NIC) on a new network. */
    Port *ports = NULL;
    size_t n = 0;
    assert_int_equal(port_store_list_by_vm(f->s, "v1", &ports, &n, &err), 0);
    assert_int_equal(n, 0);
    port_list_free(ports, n);
    Network net;
    assert_int_equal(network_store_ensure_default(f->s, "p2", 0x0ac80000, 16, &net, &err), 0);
    assert_string_equal(net.name, "default");
    Port port = {0};
    snprintf(port.vm_id, sizeof(port.vm_id), "v1");
    snprintf(port.network_id, sizeof(port.network_id), "%s", net.id);
    snprintf(port.mac, sizeof(port.mac), "52:54:00:aa:00:01");
    assert_int_equal(port_store_add(f->s, &port, &err), 0);
    assert_int_equal(port.ip, 0x0ac80002);
    assert_int_equal(port.slot, 0);
    assert_string_equal(port.project, "p2");
    int64_t in_use[_QUOTA_MAX];
    assert_int_equal(project_store_quota_usage(f->s, "p2", in_use, &err), 0);
    assert_int_equal(in_use[QUOTA_VMS], 2);
    assert_int_equal(in_use[QUOTA_NETWORKS], 1);
    assert_int_equal(in_use[QUOTA_PORTS], 1);
    /* A quota on the new resources is kept and enforced. */
    p.quota.limit[QUOTA_PORTS] = 1;
    assert_int_equal(project_store_set_quota(f->s, p.id, &p.quota, &err), 0);
    assert_int_equal(project_store_get(f->s, NULL, "team", &p, &err), 0);
    assert_int_equal(p.quota.limit[QUOTA_PORTS], 1);
    assert_int_equal(p.quota.limit[QUOTA_VCPUS], 8);
    Port more = port;
    snprintf(more.mac, sizeof(more.mac), "52:54:00:aa:00:02");
    more.ip = 0;
    assert_int_equal(port_store_add(f->s, &more, &err), -1);
    expect_code(&err, NB_ERR_QUOTA_EXCEEDED);
    /* The usage roll-up carried over still counts. */
    double from, to;
    VmUsage *u = NULL;
    assert_int_equal(nb_timestamp_parse("2026-01-01T00:00:00Z", &from), 0);
    assert_int_equal(nb_timestamp_parse("2026-01-02T00:00:00Z", &to), 0);
    assert_int_equal(usage_store_compute(f->s, "p2", from, to, to, &u, &n, &err), 0);
    assert_true(n >= 1);
    assert_string_equal(u[0].vm_id, "v1");
    assert_true(u[0].vcpu_hours > 47.99 && u[0].vcpu_hours < 48.01);
    free(u);
    free(before);
    free(d.text);
}

static const char *const v5_tables[] = {
    "flavors",        "images",         "vms",          "tasks",     "tokens", "projects",
    "users",          "audit",          "hosts",        "vm_events", "groups", "image_copies",
    "vm_usage_daily", "vm_usage_carry", "usage_rollup", "networks",  "ports",  "network_hosts",
};

/* What a version 5 daemon adds: a network of the old project, a port of v1 on it, a host record,
 * and a network quota. */
static const char v5_rows[] =
    "UPDATE projects SET quota_networks = 3, quota_ports = 10 WHERE id = 'p2';"
    "INSERT INTO networks (id, project, name, type, net, prefix, gateway, dhcp, dns, vni, vlan,"
    " bridge, parent, mtu, shared, is_default, created_at) VALUES ('n1', 'p2', 'app', 'nat',"
    " 168427520, 24, 168427521, 1, '1.1.1.1', NULL, NULL, 'nbrn1', NULL, 1500, 0, 1,"
    " '2026-01-01T00:00:00.000Z');"
    "INSERT INTO ports (id, project, network_id, vm_id, slot, mac, ip, created_at) VALUES "
    "('o1', 'p2', 'n1', 'v1', 0, '52:54:00:aa:00:01', 168427522, '2026-01-01T00:00:00.000Z'),"
    "('o2', 'p2', 'n1', 'v2', 0, '52:54:00:aa:00:02', 168427523, '2026-01-01T00:00:00.000Z');"
    "INSERT INTO network_hosts (network_id, host, created_at) VALUES "
    "('n1', 'local', '2026-01-01T00:00:00.000Z');";

static void
test_migrate_from_v5(void **state)
{
    Fixture *f = *state;
    NbError *err = NULL;
    size_t n_tables = sizeof(v5_tables) / sizeof(v5_tables[0]);
    char rows[sizeof(v3_rows) + sizeof(v4_rows) + sizeof(v5_rows)];
    snprintf(rows, sizeof(rows), "%s%s%s", v3_rows, v4_rows, v5_rows);
    make_shipped_db(f->path, 5, rows);
    Dump d = {0};
    dump_tables(f->path, v5_tables, n_tables, &d);
    char *before = TAKE_PTR(d.text);
    assert_all_have_rows(before, v5_tables, n_tables);

    assert_int_equal(store_open(f->path, &f->s, &err), 0);
    assert_int_equal(store_schema_version(f->s), SCHEMA_LATEST);
    dump_tables(f->path, v5_tables, n_tables, &d);
    assert_string_equal(before, d.text);

    /* The old project's quotas stay; secgroups are unlimited. */
    Project p;
    assert_int_equal(project_store_get(f->s, NULL, "team", &p, &err), 0);
    assert_int_equal(p.quota.limit[QUOTA_VCPUS], 8);
    assert_int_equal(p.quota.limit[QUOTA_NETWORKS], 3);
    assert_int_equal(p.quota.limit[QUOTA_PORTS], 10);
    assert_int_equal(p.quota.limit[QUOTA_SECGROUPS], -1);
    /* The old ports get groups; the group follows their members' addresses. */
    SecGroup g = {0};
    nb_uuid_generate(g.id);
    snprintf(g.project, sizeof(g.project), "p2");
    snprintf(g.name, sizeof(g.name), "web");
    nb_timestamp_now(g.created_at);
    assert_int_equal(secgroup_store_insert(f->s, &g, &err), 0);
    const char *const groups[] = {"web"};
    assert_int_equal(secgroup_store_port_set(f->s, "o1", groups, 1, &err), 0);
    assert_int_equal(secgroup_store_port_set(f->s, "o2", groups, 1, &err), 0);
    uint32_t *ips = NULL;
    size_t n = 0;
    assert_int_equal(secgroup_store_member_ips(f->s, g.id, &ips, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_int_equal(ips[0], 168427522);
    assert_int_equal(ips[1], 168427523);
    free(ips);
    int64_t in_use[_QUOTA_MAX];
    assert_int_equal(project_store_quota_usage(f->s, "p2", in_use, &err), 0);
    assert_int_equal(in_use[QUOTA_SECGROUPS], 1);
    assert_int_equal(in_use[QUOTA_PORTS], 2);
    /* A quota on secgroups is kept and enforced. */
    p.quota.limit[QUOTA_SECGROUPS] = 1;
    assert_int_equal(project_store_set_quota(f->s, p.id, &p.quota, &err), 0);
    assert_int_equal(project_store_get(f->s, NULL, "team", &p, &err), 0);
    assert_int_equal(p.quota.limit[QUOTA_SECGROUPS], 1);
    assert_int_equal(p.quota.limit[QUOTA_PORTS], 10);
    SecGroup g2 = g;
    nb_uuid_generate(g2.id);
    snprintf(g2.name, sizeof(g2.name), "db");
    assert_int_equal(secgroup_store_insert(f->s, &g2, &err), -1);
    expect_code(&err, NB_ERR_QUOTA_EXCEEDED);
    /* Deleting an old VM (its ports with it) frees the group. */
    assert_int_equal(secgroup_store_delete(f->s, "p2", "web", &err), -1);
    expect_code(&err, NB_ERR_SECGROUP_IN_USE);
    assert_int_equal(port_store_delete(f->s, "o1", &err), 0);
    assert_int_equal(port_store_delete(f->s, "o2", &err), 0);
    assert_int_equal(secgroup_store_delete(f->s, "p2", "web", &err), 0);
    store_close(f->s);
    assert_int_equal(store_open(f->path, &f->s, &err), 0);
    assert_int_equal(store_schema_version(f->s), SCHEMA_LATEST);
    free(before);
    free(d.text);
}

static const char *const v6_tables[] = {
    "flavors",        "images",         "vms",          "tasks",
    "tokens",         "projects",       "users",        "audit",
    "hosts",          "vm_events",      "groups",       "image_copies",
    "vm_usage_daily", "vm_usage_carry", "usage_rollup", "networks",
    "ports",          "network_hosts",  "secgroups",    "secgroup_rules",
    "port_secgroups",
};

/* What a version 6 daemon adds: a group of the old project with a rule, on the old port. */
static const char v6_rows[] =
    "INSERT INTO secgroups (id, project, name, created_at) VALUES "
    "('g1', 'p2', 'web', '2026-01-01T00:00:00.000Z');"
    "INSERT INTO secgroup_rules (id, group_id, direction, protocol, port_min, port_max,"
    " created_at) VALUES ('r1', 'g1', 'ingress', 'tcp', 80, 80, '2026-01-01T00:00:00.000Z');"
    "INSERT INTO port_secgroups (port_id, group_id) VALUES ('o1', 'g1');";

/* Version 7 only adds columns: every old row reads back the same, and the new columns hold
 * their defaults (no agent, unlimited bandwidth). */
static void
test_migrate_from_v6(void **state)
{
    Fixture *f = *state;
    NbError *err = NULL;
    size_t n_tables = sizeof(v6_tables) / sizeof(v6_tables[0]);
    char rows[sizeof(v3_rows) + sizeof(v4_rows) + sizeof(v5_rows) + sizeof(v6_rows)];
    snprintf(rows, sizeof(rows), "%s%s%s%s", v3_rows, v4_rows, v5_rows, v6_rows);
    make_shipped_db(f->path, 6, rows);
    Dump d = {0};
    dump_tables(f->path, v6_tables, n_tables, &d);
    char *before = TAKE_PTR(d.text);
    assert_all_have_rows(before, v6_tables, n_tables);

    assert_int_equal(store_open(f->path, &f->s, &err), 0);
    assert_int_equal(store_schema_version(f->s), SCHEMA_LATEST);
    store_close(f->s);
    f->s = NULL;

    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "SELECT (SELECT count(*) FROM hosts WHERE agent_url IS NULL"
                                        " AND agent_secret IS NULL AND tunnel_ip IS NULL),"
                                        " (SELECT count(*) FROM hosts),"
                                        " (SELECT sum(net_in_kbit + net_out_kbit) FROM flavors),"
                                        " (SELECT sum(net_in_kbit + net_out_kbit) FROM ports)",
                                        -1, &st, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(st, 0), sqlite3_column_int(st, 1));
    assert_int_equal(sqlite3_column_int(st, 2), 0);
    assert_int_equal(sqlite3_column_int(st, 3), 0);
    sqlite3_finalize(st);
    sqlite3_close(db);

    /* The old columns of every table read back the same. */
    dump_tables(f->path, v6_tables, n_tables, &d);
    assert_string_equal(before, d.text);
    free(before);
    free(d.text);
}

static const char *const v7_tables[] = {
    "flavors",        "images",         "vms",          "tasks",
    "tokens",         "projects",       "users",        "audit",
    "hosts",          "vm_events",      "groups",       "image_copies",
    "vm_usage_daily", "vm_usage_carry", "usage_rollup", "networks",
    "ports",          "network_hosts",  "secgroups",    "secgroup_rules",
    "port_secgroups",
};

/* What a version 7 daemon adds: a host's agent and tunnel, bandwidth limits. */
static const char v7_rows[] =
    "UPDATE hosts SET agent_url = 'https://h2:8774', agent_secret = 'ab12', tunnel_ip = "
    "'192.0.2.2', tunnel_dev = 'eth1' WHERE id = 'h2';"
    "UPDATE flavors SET net_in_kbit = 1000, net_out_kbit = 2000;"
    "UPDATE ports SET net_in_kbit = 1000, net_out_kbit = 2000 WHERE id = 'o1';";

/* Version 8 adds the VMs' creator, unknown (NULL) for the old VMs: they read back with no
 * owner, and a new VM keeps the one it is given. */
static void
test_migrate_from_v7(void **state)
{
    Fixture *f = *state;
    NbError *err = NULL;
    size_t n_tables = sizeof(v7_tables) / sizeof(v7_tables[0]);
    char rows[sizeof(v3_rows) + sizeof(v4_rows) + sizeof(v5_rows) + sizeof(v6_rows) +
              sizeof(v7_rows)];
    snprintf(rows, sizeof(rows), "%s%s%s%s%s", v3_rows, v4_rows, v5_rows, v6_rows, v7_rows);
    make_shipped_db(f->path, 7, rows);
    Dump d = {0};
    dump_tables(f->path, v7_tables, n_tables, &d);
    char *before = TAKE_PTR(d.text);
    assert_all_have_rows(before, v7_tables, n_tables);

    assert_int_equal(store_open(f->path, &f->s, &err), 0);
    assert_int_equal(store_schema_version(f->s), SCHEMA_LATEST);
    Vm vm;
    assert_int_equal(vm_store_get(f->s, "p2", "web1", &vm, &err), 0);
    assert_string_equal(vm.owner_user_id, "");
    json_t *j = vm_to_json(&vm);
    assert_non_null(j);
    assert_true(json_is_null(json_object_get(j, "owner_user_id")));
    json_decref(j);
    vm_clear(&vm);
    Host h;
    assert_int_equal(host_store_get(f->s, "h2", &h, &err), 0);
    assert_string_equal(h.agent_url, "https://h2:8774");

    /* A new VM of the old project, made by the old user. */
    Vm nv = {.state = VM_STATE_BUILDING,
             .desired = VM_POWER_RUNNING,
             .vcpus = 1,
             .ram_mib = 256,
             .disk_gib = 1};
    Task t = {.kind = TASK_KIND_VM_CREATE, .state = TASK_STATE_PENDING, .steps = 5};
    nb_uuid_generate(nv.id);
    snprintf(nv.project, sizeof(nv.project), "p2");
    snprintf(nv.name, sizeof(nv.name), "web3");
    snprintf(nv.hostname, sizeof(nv.hostname), "web3");
    snprintf(nv.host, sizeof(nv.host), "local");
    snprintf(nv.image_id, sizeof(nv.image_id), "i1");
    snprintf(nv.flavor_id, sizeof(nv.flavor_id), "f1");
    snprintf(nv.mac, sizeof(nv.mac), "52:54:00:00:00:03");
    snprintf(nv.owner_user_id, sizeof(nv.owner_user_id), "u1");
    nb_timestamp_now(nv.created_at);
    memcpy(nv.updated_at, nv.created_at, sizeof(nv.updated_at));
    nb_uuid_generate(t.id);
    memcpy(t.target_id, nv.id, sizeof(t.target_id));
    memcpy(t.created_at, nv.created_at, sizeof(t.created_at));
    memcpy(t.updated_at, nv.created_at, sizeof(t.updated_at));
    memcpy(nv.task_id, t.id, sizeof(nv.task_id));
    assert_int_equal(vm_store_insert_with_task(f->s, &nv, &t, NULL, 0, NULL, &err), 0);
    assert_int_equal(vm_store_get(f->s, "p2", "web3", &vm, &err), 0);
    assert_string_equal(vm.owner_user_id, "u1");
    vm_clear(&vm);
    Vm *page = NULL;
    size_t n = 0;
    char next[STORE_MARKER_MAX];
    assert_int_equal(vm_store_list_page(f->s, "p2", NULL, 10, &page, &n, next, &err), 0);
    assert_int_equal(n, 3);
    assert_string_equal(page[0].owner_user_id, "");
    assert_string_equal(page[2].name, "web3");
    assert_string_equal(page[2].owner_user_id, "u1");
    vm_list_free(page, n);
    store_close(f->s);
    f->s = NULL;

    /* The old columns of every table read back the same (but for web3, the new VM). */
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db,
                                  "DELETE FROM vms WHERE name = 'web3';"
                                  "DELETE FROM tasks WHERE target_id NOT IN (SELECT id FROM vms);"
                                  "DELETE FROM vm_events WHERE name = 'web3';",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    dump_tables(f->path, v7_tables, n_tables, &d);
    assert_string_equal(before, d.text);
    free(before);
    free(d.text);
}

static const char *const v8_tables[] = {
    "flavors",        "images",         "vms",          "tasks",
    "tokens",         "projects",       "users",        "audit",
    "hosts",          "vm_events",      "groups",       "image_copies",
    "vm_usage_daily", "vm_usage_carry", "usage_rollup", "networks",
    "ports",          "network_hosts",  "secgroups",    "secgroup_rules",
    "port_secgroups",
};

/* What a version 8 daemon adds: the VMs' creator. */
static const char v8_rows[] = "UPDATE vms SET owner_user_id = 'u1' WHERE id = 'v1';";

/* Version 9 adds pools and volumes and two quota columns: every old row reads back the same, the
 * old projects have no limit on volumes, and the old VMs and projects take volumes. */
static void
test_migrate_from_v8(void **state)
{
    Fixture *f = *state;
    NbError *err = NULL;
    size_t n_tables = sizeof(v8_tables) / sizeof(v8_tables[0]);
    char rows[sizeof(v3_rows) + sizeof(v4_rows) + sizeof(v5_rows) + sizeof(v6_rows) +
              sizeof(v7_rows) + sizeof(v8_rows)];
    snprintf(rows, sizeof(rows), "%s%s%s%s%s%s", v3_rows, v4_rows, v5_rows, v6_rows, v7_rows,
             v8_rows);
    make_shipped_db(f->path, 8, rows);
    Dump d = {0};
    dump_tables(f->path, v8_tables, n_tables, &d);
    char *before = TAKE_PTR(d.text);
    assert_all_have_rows(before, v8_tables, n_tables);

    assert_int_equal(store_open(f->path, &f->s, &err), 0);
    assert_int_equal(store_schema_version(f->s), SCHEMA_LATEST);
    /* The old columns of every table read back the same. */
    dump_tables(f->path, v8_tables, n_tables, &d);
    assert_string_equal(before, d.text);

    Vm vm;
    assert_int_equal(vm_store_get(f->s, "p2", "web1", &vm, &err), 0);
    assert_string_equal(vm.owner_user_id, "u1");
    vm_clear(&vm);
    Project p;
    assert_int_equal(project_store_get(f->s, NULL, "team", &p, &err), 0);
    assert_int_equal(p.quota.limit[QUOTA_VCPUS], 8);
    assert_int_equal(p.quota.limit[QUOTA_NETWORKS], 3);
    assert_int_equal(p.quota.limit[QUOTA_VOLUMES], -1);
    assert_int_equal(p.quota.limit[QUOTA_VOLUME_GIB], -1);

    /* No pool yet: the daemon makes the default one at start. */
    Pool pool, got;
    assert_int_equal(pool_store_get_default(f->s, &got, &err), -1);
    expect_code(&err, NB_ERR_POOL_NOT_FOUND);
    memset(&pool, 0, sizeof(pool));
    nb_uuid_generate(pool.id);
    snprintf(pool.name, sizeof(pool.name), "default");
    pool.type = POOL_TYPE_DIR;
    snprintf(pool.libvirt_name, sizeof(pool.libvirt_name), "nimbus");
    snprintf(pool.path, sizeof(pool.path), "/var/lib/nimbus/pool");
    nb_timestamp_now(pool.created_at);
    assert_int_equal(pool_store_ensure_default(f->s, &pool, &got, &err), 0);
    assert_string_equal(got.id, pool.id);

    /* A volume of the old project on the old VM; the VM's delete detaches it. */
    Volume v = {.size_gib = 4, .state = VOLUME_STATE_AVAILABLE};
    nb_uuid_generate(v.id);
    snprintf(v.project, sizeof(v.project), "p2");
    snprintf(v.name, sizeof(v.name), "data");
    snprintf(v.pool_id, sizeof(v.pool_id), "%s", pool.id);
    snprintf(v.format, sizeof(v.format), "qcow2");
    nb_timestamp_now(v.created_at);
    assert_int_equal(volume_store_insert(f->s, &v, &err), 0);
    Volume after;
    assert_int_equal(volume_store_attach_begin(f->s, v.id, "v1", VOLUME_BUS_VIRTIO, &after, &err),
                     0);
    assert_string_equal(after.target, "vdb");
    assert_int_equal(volume_store_attach_end(f->s, v.id, true, &err), 0);
    int64_t in_use[_QUOTA_MAX];
    assert_int_equal(project_store_quota_usage(f->s, "p2", in_use, &err), 0);
    assert_int_equal(in_use[QUOTA_VMS], 2);
    assert_int_equal(in_use[QUOTA_VOLUMES], 1);
    assert_int_equal(in_use[QUOTA_VOLUME_GIB], 4);
    /* A quota on volumes is kept and enforced. */
    p.quota.limit[QUOTA_VOLUMES] = 1;
    assert_int_equal(project_store_set_quota(f->s, p.id, &p.quota, &err), 0);
    assert_int_equal(project_store_get(f->s, NULL, "team", &p, &err), 0);
    assert_int_equal(p.quota.limit[QUOTA_VOLUMES], 1);
    assert_int_equal(p.quota.limit[QUOTA_PORTS], 10);
    Volume w = v;
    nb_uuid_generate(w.id);
    snprintf(w.name, sizeof(w.name), "more");
    assert_int_equal(volume_store_insert(f->s, &w, &err), -1);
    expect_code(&err, NB_ERR_QUOTA_EXCEEDED);
    assert_int_equal(project_store_delete(f->s, "p2", &err), -1);
    expect_code(&err, NB_ERR_PROJECT_NOT_EMPTY);
    Task t;
    make_task(&t, TASK_KIND_VM_DELETE, "v1");
    assert_int_equal(vm_store_claim(f->s, "v1", &t, VM_POWER_STOPPED, -1, &err), 0);
    assert_int_equal(task_store_finish_delete(f->s, &t, &err), 0);
    assert_int_equal(volume_store_get(f->s, "p2", "data", &after, &err), 0);
    assert_int_equal(after.state, VOLUME_STATE_AVAILABLE);
    assert_string_equal(after.vm_id, "");
    assert_string_equal(after.target, "");

    /* Opening again migrates nothing more. */
    store_close(f->s);
    assert_int_equal(store_open(f->path, &f->s, &err), 0);
    assert_int_equal(store_schema_version(f->s), SCHEMA_LATEST);
    assert_int_equal(volume_store_get(f->s, NULL, v.id, &after, &err), 0);
    free(before);
    free(d.text);
}

static const char *const v9_tables[] = {
    "flavors",        "images",         "vms",          "tasks",
    "tokens",         "projects",       "users",        "audit",
    "hosts",          "vm_events",      "groups",       "image_copies",
    "vm_usage_daily", "vm_usage_carry", "usage_rollup", "networks",
    "ports",          "network_hosts",  "secgroups",    "secgroup_rules",
    "port_secgroups", "pools",          "pool_hosts",   "volumes",
};

/* A default pool with its host's state and a volume attached to v1, as a version 9 daemon
 * writes them; a quota on volumes. */
static const char v9_rows[] =
    "INSERT INTO pools (id, name, type, libvirt_name, is_default, path, created_at) VALUES "
    "('pl1', 'default', 'dir', 'nimbus', 1, '/var/lib/nimbus/pool',"
    " '2026-01-01T00:00:00.000Z');"
    "INSERT INTO pool_hosts (pool_id, host, state, error, capacity, allocation, updated_at)"
    " VALUES ('pl1', 'local', 'active', NULL, 1000, 10, '2026-01-01T00:00:00.000Z');"
    "INSERT INTO volumes (id, project, name, pool_id, size_gib, format, state, vm_id, bus,"
    " target, created_at) VALUES ('vol1', 'p2', 'data', 'pl1', 4, 'qcow2', 'attached', 'v1',"
    " 'virtio', 'vdb', '2026-01-01T00:00:00.000Z');"
    "UPDATE projects SET quota_volumes = 5 WHERE id = 'p2';";

static void
make_snapshot(Snapshot *s, const char *vm_id, const char *project, const char *name)
{
    memset(s, 0, sizeof(*s));
    nb_uuid_generate(s->id);
    snprintf(s->vm_id, sizeof(s->vm_id), "%s", vm_id);
    snprintf(s->project, sizeof(s->project), "%s", project);
    snprintf(s->name, sizeof(s->name), "%s", name);
    s->state = SNAPSHOT_STATE_CREATING;
    snapshot_libvirt_name(s->id, s->libvirt_name);
    nb_timestamp_now(s->created_at);
}

/* Version 10 adds snapshots and their quota column: every old row reads back the same, the old
 * projects have no limit on snapshots, and the old VMs take snapshots (counted, scoped, held
 * with their task, gone with their VM). */
static void
test_migrate_from_v9(void **state)
{
    Fixture *f = *state;
    NbError *err = NULL;
    size_t n_tables = sizeof(v9_tables) / sizeof(v9_tables[0]);
    char rows[sizeof(v3_rows) + sizeof(v4_rows) + sizeof(v5_rows) + sizeof(v6_rows) +
              sizeof(v7_rows) + sizeof(v8_rows) + sizeof(v9_rows)];
    snprintf(rows, sizeof(rows), "%s%s%s%s%s%s%s", v3_rows, v4_rows, v5_rows, v6_rows, v7_rows,
             v8_rows, v9_rows);
    make_shipped_db(f->path, 9, rows);
    Dump d = {0};
    dump_tables(f->path, v9_tables, n_tables, &d);
    char *before = TAKE_PTR(d.text);
    assert_all_have_rows(before, v9_tables, n_tables);

    assert_int_equal(store_open(f->path, &f->s, &err), 0);
    assert_int_equal(store_schema_version(f->s), SCHEMA_LATEST);
    dump_tables(f->path, v9_tables, n_tables, &d);
    assert_string_equal(before, d.text);

    Project p;
    assert_int_equal(project_store_get(f->s, NULL, "team", &p, &err), 0);
    assert_int_equal(p.quota.limit[QUOTA_VOLUMES], 5);
    assert_int_equal(p.quota.limit[QUOTA_SNAPSHOTS], -1);
    Volume vol;
    assert_int_equal(volume_store_get(f->s, "p2", "data", &vol, &err), 0);
    assert_int_equal(vol.state, VOLUME_STATE_ATTACHED);

    /* A snapshot of the old VM, its task holding the VM in the same transaction. */
    Snapshot s, got;
    Task t;
    make_snapshot(&s, "v1", "p2", "before");
    make_task(&t, TASK_KIND_SNAPSHOT_CREATE, "v1");
    assert_int_equal(snapshot_store_create(f->s, &s, &t, &err), 0);
    Vm vm;
    assert_int_equal(vm_store_get(f->s, "p2", "web1", &vm, &err), 0);
    assert_string_equal(vm.task_id, t.id);
    vm_clear(&vm);
    /* The same name on the same VM: taken, and nothing else changed. */
    Snapshot dup;
    make_snapshot(&dup, "v1", "p2", "before");
    assert_int_equal(snapshot_store_create(f->s, &dup, NULL, &err), -1);
    expect_code(&err, NB_ERR_NAME_TAKEN);
    /* Another VM held by a task: the insert rolls back with the refused claim. */
    Task t2;
    make_snapshot(&dup, "v2", "p2", "other");
    make_task(&t2, TASK_KIND_SNAPSHOT_CREATE, "v2");
    assert_int_equal(snapshot_store_create(f->s, &dup, &t2, &err), -1);
    expect_code(&err, NB_ERR_VM_BUSY);
    assert_int_equal(snapshot_store_get(f->s, NULL, "v2", "other", &got, &err), -1);
    expect_code(&err, NB_ERR_SNAPSHOT_NOT_FOUND);
    make_snapshot(&dup, "nope", "p2", "x");
    assert_int_equal(snapshot_store_create(f->s, &dup, NULL, &err), -1);
    expect_code(&err, NB_ERR_VM_NOT_FOUND);

    /* Counted in the project's quota, which is enforced. */
    int64_t in_use[_QUOTA_MAX];
    assert_int_equal(project_store_quota_usage(f->s, "p2", in_use, &err), 0);
    assert_int_equal(in_use[QUOTA_SNAPSHOTS], 1);
    assert_int_equal(in_use[QUOTA_VOLUMES], 1);
    p.quota.limit[QUOTA_SNAPSHOTS] = 1;
    assert_int_equal(project_store_set_quota(f->s, p.id, &p.quota, &err), 0);
    assert_int_equal(project_store_get(f->s, NULL, "team", &p, &err), 0);
    assert_int_equal(p.quota.limit[QUOTA_SNAPSHOTS], 1);
    assert_int_equal(p.quota.limit[QUOTA_VOLUMES], 5);
    make_snapshot(&dup, "v1", "p2", "second");
    assert_int_equal(snapshot_store_create(f->s, &dup, NULL, &err), -1);
    expect_code(&err, NB_ERR_QUOTA_EXCEEDED);

    /* By name within its VM, by id; scoped by project. */
    assert_int_equal(snapshot_store_get(f->s, NULL, "v1", "before", &got, &err), 0);
    assert_string_equal(got.id, s.id);
    assert_int_equal(got.state, SNAPSHOT_STATE_CREATING);
    assert_string_equal(got.libvirt_name + strlen("nimbus-snap-"), s.id);
    assert_int_equal(snapshot_store_get(f->s, "p2", NULL, s.id, &got, &err), 0);
    assert_int_equal(snapshot_store_get(f->s, "other", NULL, s.id, &got, &err), -1);
    expect_code(&err, NB_ERR_SNAPSHOT_NOT_FOUND);
    assert_int_equal(snapshot_store_get(f->s, NULL, "v2", "before", &got, &err), -1);
    expect_code(&err, NB_ERR_SNAPSHOT_NOT_FOUND);

    /* The state is its lock: a revert needs it ready (and the VM free). */
    Task t3;
    make_task(&t3, TASK_KIND_SNAPSHOT_REVERT, "v1");
    assert_int_equal(snapshot_store_claim(f->s, s.id, 1u << SNAPSHOT_STATE_READY,
                                          SNAPSHOT_STATE_REVERTING, &t3, &err),
                     -1);
    expect_code(&err, NB_ERR_SNAPSHOT_BUSY);
    assert_int_equal(snapshot_store_set_state(f->s, s.id, 1u << SNAPSHOT_STATE_CREATING,
                                              SNAPSHOT_STATE_READY, &err),
                     0);
    assert_int_equal(snapshot_store_claim(f->s, s.id, 1u << SNAPSHOT_STATE_READY,
                                          SNAPSHOT_STATE_REVERTING, &t3, &err),
                     -1);
    expect_code(&err, NB_ERR_VM_BUSY); /* the create's task holds it still */
    assert_int_equal(snapshot_store_get(f->s, NULL, NULL, s.id, &got, &err), 0);
    assert_int_equal(got.state, SNAPSHOT_STATE_READY); /* rolled back with the claim */
    assert_int_equal(
        task_store_finish(f->s, &t, TASK_STATE_SUCCEEDED, NULL, NULL, -1, -1, NULL, &err), 0);
    assert_int_equal(snapshot_store_claim(f->s, s.id, 1u << SNAPSHOT_STATE_READY,
                                          SNAPSHOT_STATE_REVERTING, &t3, &err),
                     0);
    assert_int_equal(snapshot_store_get(f->s, NULL, NULL, s.id, &got, &err), 0);
    assert_int_equal(got.state, SNAPSHOT_STATE_REVERTING);
    Snapshot *list = NULL;
    size_t n = 0;
    assert_int_equal(snapshot_store_list(f->s, "p2", "v1", &list, &n, &err), 0);
    assert_int_equal(n, 1);
    snapshot_list_free(list, n);
    assert_int_equal(snapshot_store_list(f->s, "other", NULL, &list, &n, &err), 0);
    assert_int_equal(n, 0);
    snapshot_list_free(list, n);
    assert_int_equal(
        task_store_finish(f->s, &t3, TASK_STATE_SUCCEEDED, NULL, NULL, -1, -1, NULL, &err), 0);

    /* The VM's delete takes its snapshots with it. */
    Task del;
    make_task(&del, TASK_KIND_VM_DELETE, "v1");
    assert_int_equal(vm_store_claim(f->s, "v1", &del, VM_POWER_STOPPED, -1, &err), 0);
    assert_int_equal(task_store_finish_delete(f->s, &del, &err), 0);
    assert_int_equal(snapshot_store_get(f->s, NULL, NULL, s.id, &got, &err), -1);
    expect_code(&err, NB_ERR_SNAPSHOT_NOT_FOUND);
    assert_int_equal(project_store_quota_usage(f->s, "p2", in_use, &err), 0);
    assert_int_equal(in_use[QUOTA_SNAPSHOTS], 0);
    assert_int_equal(snapshot_store_delete(f->s, s.id, &err), -1);
    expect_code(&err, NB_ERR_SNAPSHOT_NOT_FOUND);

    store_close(f->s);
    assert_int_equal(store_open(f->path, &f->s, &err), 0);
    assert_int_equal(store_schema_version(f->s), SCHEMA_LATEST);
    free(before);
    free(d.text);
}

static const char *const v10_tables[] = {
    "flavors",        "images",         "vms",          "tasks",
    "tokens",         "projects",       "users",        "audit",
    "hosts",          "vm_events",      "groups",       "image_copies",
    "vm_usage_daily", "vm_usage_carry", "usage_rollup", "networks",
    "ports",          "network_hosts",  "secgroups",    "secgroup_rules",
    "port_secgroups", "pools",          "pool_hosts",   "volumes",
    "snapshots",
};

/* A snapshot of v1, as a version 10 daemon writes it. */
static const char v10_rows[] =
    "INSERT INTO snapshots (id, vm_id, project, name, memory, description, state, libvirt_name,"
    " created_at) VALUES ('s1', 'v1', 'p2', 'before', 0, '', 'ready', 'nimbus-snap-s1',"
    " '2026-01-01T00:00:00.000Z');";

static void
test_migrate_from_v10(void **state)
{
    Fixture *f = *state;
    NbError *err = NULL;
    size_t n_tables = sizeof(v10_tables) / sizeof(v10_tables[0]);
    char rows[sizeof(v3_rows) + sizeof(v4_rows) + sizeof(v5_rows) + sizeof(v6_rows) +
              sizeof(v7_rows) + sizeof(v8_rows) + sizeof(v9_rows) + sizeof(v10_rows)];
    snprintf(rows, sizeof(rows), "%s%s%s%s%s%s%s%s", v3_rows, v4_rows, v5_rows, v6_rows, v7_rows,
             v8_rows, v9_rows, v10_rows);
    make_shipped_db(f->path, 10, rows);
    Dump d = {0};
    dump_tables(f->path, v10_tables, n_tables, &d);
    char *before = TAKE_PTR(d.text);
    assert_all_have_rows(before, v10_tables, n_tables);

    assert_int_equal(store_open(f->path, &f->s, &err), 0);
    assert_int_equal(store_schema_version(f->s), SCHEMA_LATEST);
    dump_tables(f->path, v10_tables, n_tables, &d);
    assert_string_equal(before, d.text);

    /* A DHCP server of the old network n1 (10.10.0.0/24, ports .2 and .3) on a host: the
     * ports' IPAM gives it the next address, the same on a second ensure. */
    DhcpServer srv, again, other;
    assert_int_equal(
        port_store_dhcp_server_ensure(f->s, "n1", "kvm1", "52:54:00:DD:00:01", &srv, &err), 0);
    assert_int_equal(srv.ip, 168427524); /* .4 */
    assert_string_equal(srv.mac, "52:54:00:dd:00:01");
    assert_int_equal(
        port_store_dhcp_server_ensure(f->s, "n1", "kvm1", "52:54:00:dd:00:09", &again, &err), 0);
    assert_string_equal(again.id, srv.id);
    assert_int_equal(again.ip, srv.ip);
    assert_string_equal(again.mac, srv.mac);
    /* No port can take it: asked for, it is taken; allocated, the next one comes. */
    Port p = {.ip = 168427524};
    snprintf(p.vm_id, sizeof(p.vm_id), "v1");
    snprintf(p.network_id, sizeof(p.network_id), "n1");
    snprintf(p.mac, sizeof(p.mac), "52:54:00:aa:00:07");
    assert_int_equal(port_store_add(f->s, &p, &err), -1);
    expect_code(&err, NB_ERR_IP_IN_USE);
    p.ip = 0;
    assert_int_equal(port_store_add(f->s, &p, &err), 0);
    assert_int_equal(p.ip, 168427525); /* .5 */
    /* A second host's server: its own address, after the port's. */
    assert_int_equal(
        port_store_dhcp_server_ensure(f->s, "n1", "kvm2", "52:54:00:dd:00:02", &other, &err), 0);
    assert_int_equal(other.ip, 168427526);
    /* The same MAC twice: refused, nothing made. */
    DhcpServer dup;
    assert_int_equal(
        port_store_dhcp_server_ensure(f->s, "n1", "kvm3", "52:54:00:dd:00:02", &dup, &err), -1);
    expect_code(&err, NB_ERR_MAC_TAKEN);
    /* Listed by network and by the network's project, in no other's; no quota counts them. */
    DhcpServer *list = NULL;
    size_t n = 0;
    assert_int_equal(port_store_dhcp_server_list(f->s, "p2", "n1", &list, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_string_equal(list[0].host, "kvm1");
    assert_string_equal(list[1].host, "kvm2");
    free(list);
    assert_int_equal(port_store_dhcp_server_list(f->s, "other", NULL, &list, &n, &err), 0);
    assert_int_equal(n, 0);
    free(list);
    int64_t in_use[_QUOTA_MAX];
    assert_int_equal(project_store_quota_usage(f->s, "p2", in_use, &err), 0);
    assert_int_equal(in_use[QUOTA_PORTS], 3); /* o1, o2 and the new port */
    /* Forgotten (twice is fine): its address is free again for the walk. */
    assert_int_equal(port_store_dhcp_server_delete(f->s, "n1", "kvm1", &err), 0);
    assert_int_equal(port_store_dhcp_server_delete(f->s, "n1", "kvm1", &err), 0);
    assert_int_equal(port_store_dhcp_server_list(f->s, NULL, "n1", &list, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_string_equal(list[0].host, "kvm2");
    free(list);
    Port q = {.ip = 168427524};
    snprintf(q.vm_id, sizeof(q.vm_id), "v2");
    snprintf(q.network_id, sizeof(q.network_id), "n1");
    snprintf(q.mac, sizeof(q.mac), "52:54:00:aa:00:08");
    assert_int_equal(port_store_add(f->s, &q, &err), 0);

    store_close(f->s);
    assert_int_equal(store_open(f->path, &f->s, &err), 0);
    assert_int_equal(store_schema_version(f->s), SCHEMA_LATEST);
    free(before);
    free(d.text);
}

static void
make_backup(Backup *b, const char *vm_id, const char *parent)
{
    memset(b, 0, sizeof(*b));
    nb_uuid_generate(b->id);
    snprintf(b->vm_id, sizeof(b->vm_id), "%s", vm_id);
    snprintf(b->vm_name, sizeof(b->vm_name), "web1");
    snprintf(b->project, sizeof(b->project), "p2");
    snprintf(b->pool_id, sizeof(b->pool_id), "pl1");
    snprintf(b->host, sizeof(b->host), "local");
    snprintf(b->parent_id, sizeof(b->parent_id), "%s", parent ? parent : "");
    b->kind = parent ? BACKUP_KIND_INCREMENTAL : BACKUP_KIND_FULL;
    backup_checkpoint_name(b->id, b->checkpoint);
    backup_name_on_host(b->id, b->volume);
    b->state = BACKUP_STATE_CREATING;
    nb_timestamp_now(b->created_at);
}

/* Version 11 adds backups and their quota column (helper "backup"): on a version 10 database
 * the old projects have no limit on backups, and the old VMs are backed up (held with the task,
 * counted, chained, outliving their VM). */
static void
test_migrate_backups_from_v10(void **state)
{
    Fixture *f = *state;
    NbError *err = NULL;
    char rows[sizeof(v3_rows) + sizeof(v4_rows) + sizeof(v5_rows) + sizeof(v6_rows) +
              sizeof(v7_rows) + sizeof(v8_rows) + sizeof(v9_rows)];
    snprintf(rows, sizeof(rows), "%s%s%s%s%s%s%s", v3_rows, v4_rows, v5_rows, v6_rows, v7_rows,
             v8_rows, v9_rows);
    make_shipped_db(f->path, 10, rows);
    assert_int_equal(store_open(f->path, &f->s, &err), 0);
    assert_int_equal(store_schema_version(f->s), SCHEMA_LATEST);
    Project p;
    assert_int_equal(project_store_get(f->s, NULL, "team", &p, &err), 0);
    assert_int_equal(p.quota.limit[QUOTA_BACKUPS], -1);
    assert_int_equal(p.quota.limit[QUOTA_VOLUMES], 5);

    /* A full backup of the old VM, its task holding the VM in the same transaction. */
    Backup full, inc, got;
    Task t;
    make_backup(&full, "v1", NULL);
    make_task(&t, TASK_KIND_BACKUP_CREATE, "v1");
    assert_int_equal(backup_store_create(f->s, &full, &t, &err), 0);
    Vm vm;
    assert_int_equal(vm_store_get(f->s, "p2", "web1", &vm, &err), 0);
    assert_string_equal(vm.task_id, t.id);
    vm_clear(&vm);
    /* v2 is held by its migration: the insert rolls back with the refused claim. */
    Backup other;
    Task t2;
    make_backup(&other, "v2", NULL);
    make_task(&t2, TASK_KIND_BACKUP_CREATE, "v2");
    assert_int_equal(backup_store_create(f->s, &other, &t2, &err), -1);
    expect_code(&err, NB_ERR_VM_BUSY);
    assert_int_equal(backup_store_get(f->s, NULL, other.id, &got, &err), -1);
    expect_code(&err, NB_ERR_BACKUP_NOT_FOUND);

    /* No base before it is ready; then the full one is. */
    assert_int_equal(backup_store_last_checkpoint(f->s, "v1", &got, &err), 0);
    assert_int_equal(backup_store_finish(f->s, full.id, 1u << 30, 1000, 12.5, &err), 0);
    assert_int_equal(
        task_store_finish(f->s, &t, TASK_STATE_SUCCEEDED, NULL, NULL, -1, -1, NULL, &err), 0);
    assert_int_equal(backup_store_last_checkpoint(f->s, "v1", &got, &err), 1);
    assert_string_equal(got.id, full.id);
    assert_int_equal(got.state, BACKUP_STATE_READY);
    assert_int_equal(got.data_bytes, 1000);
    assert_true(got.finished_at[0] != '\0');

    /* Counted in the quota, which is enforced. */
    int64_t in_use[_QUOTA_MAX];
    assert_int_equal(project_store_quota_usage(f->s, "p2", in_use, &err), 0);
    assert_int_equal(in_use[QUOTA_BACKUPS], 1);
    p.quota.limit[QUOTA_BACKUPS] = 1;
    assert_int_equal(project_store_set_quota(f->s, p.id, &p.quota, &err), 0);
    make_backup(&inc, "v1", full.id);
    /* Later than the full one even within one millisecond: lists are in creation order. */
    snprintf(inc.created_at, sizeof(inc.created_at), "%s", "2099-01-01T00:00:00.000Z");
    assert_int_equal(backup_store_create(f->s, &inc, NULL, &err), -1);
    expect_code(&err, NB_ERR_QUOTA_EXCEEDED);
    p.quota.limit[QUOTA_BACKUPS] = 2;
    assert_int_equal(project_store_set_quota(f->s, p.id, &p.quota, &err), 0);
    assert_int_equal(backup_store_create(f->s, &inc, NULL, &err), 0);

    /* The base of a later backup is not deleted; the newest link is. */
    Task del;
    make_task(&del, TASK_KIND_BACKUP_DELETE, full.id);
    assert_int_equal(backup_store_claim(f->s, full.id, 1u << BACKUP_STATE_READY,
                                        BACKUP_STATE_DELETING, &del, &err),
                     -1);
    expect_code(&err, NB_ERR_BACKUP_IN_USE);
    assert_int_equal(backup_store_get(f->s, "p2", full.id, &got, &err), 0);
    assert_int_equal(got.state, BACKUP_STATE_READY);
    assert_int_equal(backup_store_get(f->s, "other", full.id, &got, &err), -1);
    expect_code(&err, NB_ERR_BACKUP_NOT_FOUND);

    /* The VM's delete leaves its backups, without the VM. */
    Task vdel;
    make_task(&vdel, TASK_KIND_VM_DELETE, "v1");
    assert_int_equal(vm_store_claim(f->s, "v1", &vdel, VM_POWER_STOPPED, -1, &err), 0);
    assert_int_equal(task_store_finish_delete(f->s, &vdel, &err), 0);
    assert_int_equal(backup_store_get(f->s, NULL, full.id, &got, &err), 0);
    assert_string_equal(got.vm_id, "");
    assert_string_equal(got.vm_name, "web1");
    Backup *list = NULL;
    size_t n = 0;
    assert_int_equal(backup_store_list(f->s, "p2", NULL, &list, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_string_equal(list[0].id, full.id);
    assert_string_equal(list[1].parent_id, full.id);
    backup_list_free(list, n);

    assert_int_equal(backup_store_delete(f->s, inc.id, &err), 0);
    assert_int_equal(backup_store_claim(f->s, full.id, 1u << BACKUP_STATE_READY,
                                        BACKUP_STATE_DELETING, &del, &err),
                     0);
    assert_int_equal(backup_store_delete(f->s, full.id, &err), 0);
    assert_int_equal(project_store_quota_usage(f->s, "p2", in_use, &err), 0);
    assert_int_equal(in_use[QUOTA_BACKUPS], 0);

    store_close(f->s);
    assert_int_equal(store_open(f->path, &f->s, &err), 0);
    assert_int_equal(store_schema_version(f->s), SCHEMA_LATEST);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_migrate_from_v3, setup_empty, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_migrate_from_v4, setup_empty, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_migrate_from_v5, setup_empty, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_migrate_from_v6, setup_empty, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_migrate_from_v7, setup_empty, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_migrate_from_v8, setup_empty, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_migrate_from_v9, setup_empty, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_migrate_from_v10, setup_empty, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_migrate_backups_from_v10, setup_empty,
                                        fixture_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
