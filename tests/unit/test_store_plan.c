/* The store's hot queries are index searches or walks: EXPLAIN QUERY PLAN of each, on the schema
 * the migrations build, must show no scan of a table or of a whole index (and pages no sort). Also:
 * reads do not wait behind the writer, and the durability pragma follows the options. */
#include <sqlite3.h>

#include "store/store_internal.h"
#include "store_fixture.h"

typedef struct HotQuery {
    const char *name;
    const char *sql;
    bool no_sort;        /* a page or ordered walk: no temporary b-tree for ORDER BY either */
    const char *allowed; /* space-separated names whose SCAN is fine (a one-row CTE) */
} HotQuery;

static const HotQuery hot_queries[] = {
    {"vm get by id", STORE_SQL_VM_BY_ID, false, NULL},
    {"vm get by name", STORE_SQL_VM_BY_NAME, false, NULL},
    {"image get by id", STORE_SQL_IMAGE_BY_ID, false, NULL},
    {"image get by name", STORE_SQL_IMAGE_BY_NAME, false, NULL},
    {"group get by id", STORE_SQL_GROUP_BY_ID, false, NULL},
    {"group get by name", STORE_SQL_GROUP_BY_NAME, false, NULL},
    {"flavor get by id", STORE_SQL_FLAVOR_BY_ID, false, NULL},
    {"flavor get by name", STORE_SQL_FLAVOR_BY_NAME, false, NULL},
    {"project get by id", STORE_SQL_PROJECT_BY_ID, false, NULL},
    {"project get by name", STORE_SQL_PROJECT_BY_NAME, false, NULL},
    {"user get by id", STORE_SQL_USER_BY_ID, false, NULL},
    {"user get by name", STORE_SQL_USER_BY_NAME, false, NULL},
    {"vm page (admin)", STORE_SQL_VM_PAGE_ALL, true, NULL},
    {"vm page (project)", STORE_SQL_VM_PAGE_SCOPED, true, NULL},
    {"vms of a host", STORE_SQL_VM_BY_HOST, true, NULL},
    {"vm claim", STORE_SQL_VM_CLAIM, false, NULL},
    {"vm observe", STORE_SQL_VM_OBSERVE, false, NULL},
    {"observe batch: read", STORE_SQL_OBS_VM_READ, false, NULL},
    {"observe batch: state", STORE_SQL_OBS_VM_STATE, false, NULL},
    {"observe batch: ip", STORE_SQL_VM_SET_IP, false, NULL},
    {"observe batch: host down", STORE_SQL_VM_MARK_UNKNOWN, false, NULL},
    {"observe batch: host facts read", STORE_SQL_HOST_FACTS_READ, false, NULL},
    {"observe batch: host facts", STORE_SQL_HOST_FACTS, false, NULL},
    {"task get", STORE_SQL_TASK_BY_ID, false, NULL},
    {"task page (admin)", STORE_SQL_TASK_PAGE_ALL, true, NULL},
    {"task page (project)", STORE_SQL_TASK_PAGE_SCOPED, true, NULL},
    {"task page (vm)", STORE_SQL_TASK_PAGE_VM, true, NULL},
    {"unfinished tasks", STORE_SQL_TASK_UNFINISHED, false, NULL},
    {"token lookup", STORE_SQL_TOKEN_LOOKUP, false, NULL},
    {"usage: events since the roll-up", STORE_SQL_USAGE_RAW, false, NULL},
    {"usage: days", STORE_SQL_USAGE_DAYS, false, NULL},
    {"host get by id", HOST_SELECT_ONE("id"), false, "h c"},
    {"host get by name", HOST_SELECT_ONE("name"), false, "h c"},
    {"network get by id", STORE_SQL_NETWORK_BY_ID, false, NULL},
    {"network get by (project, name)", STORE_SQL_NETWORK_BY_NAME_OWN, false, NULL},
    {"network get by name (shared)", STORE_SQL_NETWORK_BY_NAME_SHARED, false, NULL},
    {"network get by name (admin)", STORE_SQL_NETWORK_BY_NAME_ANY, false, NULL},
    {"ports of a vm", STORE_SQL_PORTS_BY_VM, true, NULL},
    {"ports of a network", STORE_SQL_PORTS_BY_NETWORK, true, NULL},
    {"ports of a project", STORE_SQL_PORTS_BY_PROJECT, true, NULL},
    {"ipam: a network's addresses", STORE_SQL_PORT_IPS, true, NULL},
    {"ipam: a network's highest address", STORE_SQL_PORT_MAX_IP, false, NULL},
    {"a network's ports on a host", STORE_SQL_PORT_NETWORK_ON_HOST, false, NULL},
    {"port get by mac", STORE_SQL_PORT_BY_MAC, false, NULL},
    {"secgroup get by id", STORE_SQL_SECGROUP_BY_ID, false, NULL},
    {"secgroup get by name", STORE_SQL_SECGROUP_BY_NAME, false, NULL},
    {"rules of a secgroup", STORE_SQL_SECRULES_OF_GROUP, false, NULL},
    {"secgroup rule dedupe", STORE_SQL_SECRULE_SAME, false, NULL},
    {"secgroup in use", STORE_SQL_SECGROUP_USERS, false, NULL},
    {"secgroups of a port", STORE_SQL_SECGROUPS_OF_PORT, false, NULL},
    {"ports of a secgroup", STORE_SQL_PORTS_OF_SECGROUP, false, NULL},
    {"ports affected by a secgroup", STORE_SQL_PORTS_AFFECTED_BY_SECGROUP, false, NULL},
    {"member ips of a secgroup", STORE_SQL_SECGROUP_MEMBER_IPS, false, NULL},
    {"pool get by id", STORE_SQL_POOL_BY_ID, false, NULL},
    {"pool get by name", STORE_SQL_POOL_BY_NAME, false, NULL},
    {"default pool", STORE_SQL_POOL_DEFAULT, false, NULL},
    {"hosts of a pool", STORE_SQL_POOL_HOSTS, true, NULL},
    {"volumes in a pool (count)", STORE_SQL_POOL_VOLUMES, false, NULL},
    {"volume get by id", STORE_SQL_VOLUME_BY_ID, false, NULL},
    {"volume get by (project, name)", STORE_SQL_VOLUME_BY_NAME, false, NULL},
    {"volumes of a vm", STORE_SQL_VOLUMES_BY_VM, false, NULL},
    {"volumes in a pool", STORE_SQL_VOLUMES_BY_POOL, false, NULL},
    {"volumes of a project", STORE_SQL_VOLUMES_BY_PROJECT, false, NULL},
    {"disk targets of a vm", STORE_SQL_VOLUME_TARGETS_OF_VM, false, NULL},
};

static int
setup(void **state)
{
    Fixture *f = fixture_new("plan");
    fixture_open_seeded(f, IMAGE_STATE_ACTIVE);
    *state = f;
    return 0;
}

/* Whether word is one of the space-separated names in list. */
static bool
name_in(const char *list, const char *word, size_t len)
{
    for (const char *p = list; p && *p;) {
        size_t n = strcspn(p, " ");
        if (n == len && strncmp(p, word, len) == 0)
            return true;
        p += n + (p[n] == ' ');
    }
    return false;
}

/* The plan's problems, appended to out: any "SCAN x" but of an allowed name, and for no_sort
 * queries a sort. */
static void
plan_check(sqlite3 *db, const HotQuery *q, char *out, size_t out_len)
{
    char sql[8192];
    snprintf(sql, sizeof(sql), "EXPLAIN QUERY PLAN %s", q->sql);
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
        snprintf(out + strlen(out), out_len - strlen(out), "%s: %s\n", q->name, sqlite3_errmsg(db));
        return;
    }
    while (sqlite3_step(st) == SQLITE_ROW) {
        const char *d = (const char *)sqlite3_column_text(st, 3);
        bool bad = false;
        if (strncmp(d, "SCAN ", 5) == 0) {
            const char *what = d + 5;
            size_t len = strcspn(what, " ");
            /* Even "SCAN t USING [COVERING] INDEX" reads every row of the index. */
            bool constant = strncmp(what, "CONSTANT ROW", 12) == 0;
            bad = !constant && !name_in(q->allowed, what, len);
        }
        if (q->no_sort && strstr(d, "TEMP B-TREE FOR ORDER BY"))
            bad = true;
        if (bad)
            snprintf(out + strlen(out), out_len - strlen(out), "%s: %s\n", q->name, d);
    }
    sqlite3_finalize(st);
}

static void
test_hot_queries_use_indexes(void **state)
{
    Fixture *f = *state;
    char problems[4096] = "";
    for (size_t i = 0; i < sizeof(hot_queries) / sizeof(hot_queries[0]); i++)
        plan_check(f->s->db, &hot_queries[i], problems, sizeof(problems));
    if (problems[0])
        fail_msg("queries that scan:\n%s", problems);
}

/* The check itself catches a scan and a sort. */
static void
test_plan_check_catches_scans(void **state)
{
    Fixture *f = *state;
    const HotQuery bad[] = {
        {"or", "SELECT id FROM vms WHERE ?1 IS NULL OR project = ?1", false, NULL},
        {"alias", "SELECT t.id FROM tokens t WHERE t.name = ?", false, NULL},
        {"sort", "SELECT id FROM vms WHERE project = ? ORDER BY created_at", true, NULL},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char problems[1024] = "";
        plan_check(f->s->db, &bad[i], problems, sizeof(problems));
        if (!problems[0])
            fail_msg("%s: no problem found", bad[i].name);
    }
}

/* A write transaction in progress on the writer, its mutex held: a read neither waits for it
 * (this thread holds the mutex: a read through the writer would deadlock) nor sees it. */
static void
test_reads_do_not_wait_for_writer(void **state)
{
    Fixture *f = *state;
    NbError *err = NULL;
    Vm vm;
    insert_vm(f, "web1", "local", NULL, 1, 256, 1, NULL, &vm);
    assert_true(f->s->n_readers > 0);
    pthread_mutex_lock(&f->s->lock);
    assert_int_equal(sqlite3_exec(f->s->db,
                                  "BEGIN IMMEDIATE; UPDATE vms SET name = 'renamed', "
                                  "state = 'stopped'",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    Vm got;
    assert_int_equal(vm_store_get(f->s, NULL, "web1", &got, &err), 0);
    assert_int_equal(got.state, VM_STATE_RUNNING);
    vm_clear(&got);
    Vm *page = NULL;
    size_t n = 0;
    char next[STORE_MARKER_MAX];
    assert_int_equal(vm_store_list_page(f->s, NULL, NULL, 10, &page, &n, next, &err), 0);
    assert_int_equal(n, 1);
    assert_string_equal(page[0].name, "web1");
    vm_list_free(page, n);
    assert_int_equal(sqlite3_exec(f->s->db, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
    pthread_mutex_unlock(&f->s->lock);
    /* A committed write is seen by the next read. */
    Task t;
    make_task(&t, TASK_KIND_VM_STOP, vm.id);
    assert_int_equal(vm_store_claim(f->s, vm.id, &t, VM_POWER_STOPPED, VM_STATE_PAUSED, &err), 0);
    assert_int_equal(vm_store_get(f->s, NULL, "web1", &got, &err), 0);
    assert_int_equal(got.state, VM_STATE_PAUSED);
    assert_string_equal(got.task_id, t.id);
    vm_clear(&got);
}

static int
pragma_int(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int v = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return v;
}

static void
test_options(void **state)
{
    Fixture *f = *state;
    NbError *err = NULL;
    /* Default: NORMAL (1) under WAL, STORE_DEFAULT_READERS readers. */
    assert_int_equal(pragma_int(f->s->db, "PRAGMA synchronous"), 1);
    assert_int_equal(f->s->n_readers, STORE_DEFAULT_READERS);
    store_close(f->s);
    StoreOptions o = {.sync_full = true, .readers = 2};
    assert_int_equal(store_open_opts(f->path, &o, &f->s, &err), 0);
    assert_int_equal(pragma_int(f->s->db, "PRAGMA synchronous"), 2);
    assert_int_equal(f->s->n_readers, 2);
    assert_int_equal(pragma_int(f->s->readers[0]->db, "PRAGMA query_only"), 1);
    Flavor fl;
    assert_int_equal(flavor_store_get(f->s, "small", &fl, &err), 0);
}

/* A statement is prepared once per connection, then reused. */
static void
test_statement_cache(void **state)
{
    Fixture *f = *state;
    NbError *err = NULL;
    Vm vm, got;
    insert_vm(f, "web1", "local", NULL, 1, 256, 1, NULL, &vm);
    Store *w = f->s;
    size_t before = w->stmts_n;
    for (int i = 0; i < 50; i++) {
        Task t;
        make_task(&t, TASK_KIND_VM_STOP, vm.id);
        assert_int_equal(vm_store_claim(w, vm.id, &t, VM_POWER_STOPPED, -1, &err), 0);
        assert_int_equal(
            task_store_finish(w, &t, TASK_STATE_SUCCEEDED, NULL, NULL, -1, -1, NULL, &err), 0);
        assert_int_equal(vm_store_get(w, NULL, "web1", &got, &err), 0);
        vm_clear(&got);
    }
    /* claim, task insert, finish's two updates: at most a handful more, not 200. */
    assert_true(w->stmts_n - before <= 6);
    size_t cached = 0;
    for (unsigned i = 0; i < w->n_readers; i++)
        cached += w->readers[i]->stmts_n;
    assert_true(cached >= 1 && cached <= 2 * w->n_readers);
}

typedef struct Hammer {
    Store *s;
    const char *vm_id;
    int failures;
} Hammer;

static void *
hammer_reads(void *arg)
{
    Hammer *h = arg;
    for (int i = 0; i < 400; i++) {
        NbError *err = NULL;
        Vm vm, *page = NULL;
        size_t n = 0;
        char next[STORE_MARKER_MAX];
        if (vm_store_get(h->s, NULL, h->vm_id, &vm, &err) < 0) {
            h->failures++;
            nb_error_free(err);
            continue;
        }
        vm_clear(&vm);
        if (vm_store_list_page(h->s, NULL, NULL, 50, &page, &n, next, &err) < 0 || n != 20) {
            h->failures++;
            nb_error_free(err);
        }
        vm_list_free(page, n);
    }
    return NULL;
}

/* Readers on every reader connection (and queued behind them) while the writer claims and
 * releases a VM: every read succeeds and sees a whole VM. */
static void
test_concurrent_reads_and_writes(void **state)
{
    Fixture *f = *state;
    NbError *err = NULL;
    Vm vm;
    for (int i = 0; i < 20; i++) {
        char name[16];
        snprintf(name, sizeof(name), "vm%02d", i);
        insert_vm(f, name, "local", NULL, 1, 256, 1, NULL, &vm);
    }
    enum { THREADS = 6 };
    Hammer h[THREADS];
    pthread_t th[THREADS];
    for (int i = 0; i < THREADS; i++) {
        h[i] = (Hammer){.s = f->s, .vm_id = vm.id};
        assert_int_equal(pthread_create(&th[i], NULL, hammer_reads, &h[i]), 0);
    }
    for (int i = 0; i < 200; i++) {
        Task t;
        make_task(&t, TASK_KIND_VM_STOP, vm.id);
        assert_int_equal(vm_store_claim(f->s, vm.id, &t, VM_POWER_STOPPED, -1, &err), 0);
        assert_int_equal(task_store_finish(f->s, &t, TASK_STATE_SUCCEEDED, NULL, NULL,
                                           i % 2 ? VM_STATE_RUNNING : VM_STATE_STOPPED, -1, NULL,
                                           &err),
                         0);
    }
    for (int i = 0; i < THREADS; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        assert_int_equal(h[i].failures, 0);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_hot_queries_use_indexes, setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_plan_check_catches_scans, setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_reads_do_not_wait_for_writer, setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_options, setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_statement_cache, setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_reads_and_writes, setup, fixture_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
