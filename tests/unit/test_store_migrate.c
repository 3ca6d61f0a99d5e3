/* Upgrading a database of the current release (schema version 3) to version 4: every row of every
 * table survives, and the new indexes and usage roll-ups work on the old rows. */
#include <sqlite3.h>

#include "model/tenancy.h"
#include "store_fixture.h"
#include "store_shipped_schema.h"

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

/* Every row of every version 3 table, as text. */
static char *
dump_tables(const char *path)
{
    sqlite3 *db = NULL;
    char *out = calloc(1, 65536);
    assert_non_null(out);
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    for (size_t i = 0; i < sizeof(v3_tables) / sizeof(v3_tables[0]); i++) {
        char sql[128];
        snprintf(out + strlen(out), 65536 - strlen(out), "[%s]\n", v3_tables[i]);
        snprintf(sql, sizeof(sql), "SELECT * FROM %s ORDER BY rowid", v3_tables[i]);
        assert_int_equal(sqlite3_exec(db, sql, dump_row, out, NULL), SQLITE_OK);
    }
    sqlite3_close(db);
    return out;
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
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "PRAGMA journal_mode = WAL", NULL, NULL, NULL), SQLITE_OK);
    for (size_t i = 0; i < sizeof(shipped_schema) / sizeof(shipped_schema[0]); i++)
        assert_int_equal(sqlite3_exec(db, shipped_schema[i], NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "PRAGMA user_version = 3;", NULL, NULL, NULL), SQLITE_OK);
    char *msg = NULL;
    if (sqlite3_exec(db, v3_rows, NULL, NULL, &msg) != SQLITE_OK)
        fail_msg("rows: %s", msg);
    sqlite3_close(db);
    char *before = dump_tables(f->path);
    /* Every table has rows. */
    for (size_t i = 0; i < sizeof(v3_tables) / sizeof(v3_tables[0]); i++) {
        char tag[64];
        snprintf(tag, sizeof(tag), "[%s]\n", v3_tables[i]);
        const char *at = strstr(before, tag);
        assert_non_null(at);
        at += strlen(tag);
        if (*at == '[' || *at == '\0')
            fail_msg("table %s has no rows", v3_tables[i]);
    }

    assert_int_equal(store_open(f->path, &f->s, &err), 0);
    assert_int_equal(store_schema_version(f->s), 4);
    char *after = dump_tables(f->path);
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
    assert_int_equal(store_schema_version(f->s), 4);
    free(before);
    free(after);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_migrate_from_v3, setup_empty, fixture_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
