/* The store at a controller's scale: keyset pages, batched observations, pruning and the usage
 * roll-ups (schema version 4). */
#include <math.h>
#include <sqlite3.h>

#include "store_fixture.h"

static int
setup(void **state)
{
    Fixture *f = fixture_new("page");
    fixture_open_seeded(f, IMAGE_STATE_ACTIVE);
    *state = f;
    return 0;
}

/* Inserts a VM named name in project (NULL: default) with its create task still holding it. */
static void
insert_vm_held(Fixture *f, const char *name, const char *project, Vm *vm, Task *t)
{
    NbError *err = NULL;
    memset(vm, 0, sizeof(*vm));
    nb_uuid_generate(vm->id);
    snprintf(vm->name, sizeof(vm->name), "%s", name);
    snprintf(vm->hostname, sizeof(vm->hostname), "%s", name);
    snprintf(vm->host, sizeof(vm->host), "local");
    snprintf(vm->project, sizeof(vm->project), "%s", project ? project : NB_DEFAULT_PROJECT_ID);
    snprintf(vm->mac, sizeof(vm->mac), "52:54:%02x:%02x:%02x:%02x", (f->macs >> 24) & 0xff,
             (f->macs >> 16) & 0xff, (f->macs >> 8) & 0xff, f->macs & 0xff);
    f->macs++;
    memcpy(vm->image_id, f->image.id, sizeof(vm->image_id));
    memcpy(vm->flavor_id, f->flavor.id, sizeof(vm->flavor_id));
    vm->state = VM_STATE_BUILDING;
    vm->desired = VM_POWER_RUNNING;
    vm->vcpus = 1;
    vm->ram_mib = 256;
    vm->disk_gib = 1;
    vm->user_data = "#cloud-config\n{}\n";
    nb_timestamp_now(vm->created_at);
    memcpy(vm->updated_at, vm->created_at, sizeof(vm->updated_at));
    make_task(t, TASK_KIND_VM_CREATE, vm->id);
    memcpy(vm->task_id, t->id, sizeof(vm->task_id));
    assert_int_equal(vm_store_insert_with_task(f->s, vm, t, NULL, 0, NULL, &err), 0);
    vm->user_data = NULL;
}

/* ---- pages ---- */

typedef struct Row {
    char name[NB_NAME_MAX + 1];
    char id[NB_UUID_STRLEN];
    Task task; /* the create task, to delete the VM with */
    bool deleted;
    bool initial; /* there when the walk began */
    unsigned seen;
} Row;

static Row *
find_row(Row *rows, size_t n, const char *id)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(rows[i].id, id) == 0)
            return &rows[i];
    return NULL;
}

/* (name, id) order, as the pages walk. */
static int
key_cmp(const char *name_a, const char *id_a, const char *name_b, const char *id_b)
{
    int c = strcmp(name_a, name_b);
    return c ? c : strcmp(id_a, id_b);
}

static void
test_vm_pages_during_writes(void **state)
{
    Fixture *f = *state;
    NbError *err = NULL;
    enum { N = 2500, EXTRA = 600 };
    Row *rows = calloc(N + EXTRA, sizeof(*rows));
    assert_non_null(rows);
    size_t n = 0;
    srand(42);
    for (; n < N; n++) {
        Vm vm;
        char name[32];
        snprintf(name, sizeof(name), "vm-%05d-%u", rand() % 100000, (unsigned)n);
        insert_vm_held(f, name, NULL, &vm, &rows[n].task);
        snprintf(rows[n].name, sizeof(rows[n].name), "%s", vm.name);
        memcpy(rows[n].id, vm.id, sizeof(rows[n].id));
        rows[n].initial = true;
    }

    char marker[STORE_MARKER_MAX] = "";
    char last_name[NB_NAME_MAX + 1] = "", last_id[NB_UUID_STRLEN] = "";
    unsigned pages = 0;
    do {
        Vm *page = NULL;
        size_t got = 0;
        char next[STORE_MARKER_MAX];
        assert_int_equal(vm_store_list_page(f->s, NULL, marker, 100, &page, &got, next, &err), 0);
        assert_true(got <= 100);
        for (size_t i = 0; i < got; i++) {
            /* Strictly increasing: nothing twice, nothing out of order. */
            assert_true(key_cmp(page[i].name, page[i].id, last_name, last_id) > 0);
            snprintf(last_name, sizeof(last_name), "%s", page[i].name);
            snprintf(last_id, sizeof(last_id), "%s", page[i].id);
            assert_null(page[i].user_data);
            Row *r = find_row(rows, n, page[i].id);
            assert_non_null(r);
            assert_false(r->deleted);
            r->seen++;
        }
        if (next[0])
            assert_int_equal(got, 100);
        vm_list_free(page, got);
        snprintf(marker, sizeof(marker), "%s", next);
        pages++;
        /* Between pages: rows come (before and after the cursor) and go. */
        for (int k = 0; k < 20 && n < N + EXTRA; k++, n++) {
            Vm vm;
            char name[32];
            snprintf(name, sizeof(name), "vm-%05d-%u", rand() % 100000, (unsigned)n);
            insert_vm_held(f, name, NULL, &vm, &rows[n].task);
            snprintf(rows[n].name, sizeof(rows[n].name), "%s", vm.name);
            memcpy(rows[n].id, vm.id, sizeof(rows[n].id));
        }
        for (int k = 0; k < 10; k++) {
            Row *r = &rows[(size_t)rand() % n];
            if (r->deleted)
                continue;
            assert_int_equal(task_store_finish_delete(f->s, &r->task, &err), 0);
            r->deleted = true;
        }
    } while (marker[0]);
    assert_true(pages >= 25);
    for (size_t i = 0; i < n; i++) {
        if (rows[i].initial && !rows[i].deleted && rows[i].seen != 1)
            fail_msg("row %s seen %u times", rows[i].name, rows[i].seen);
        assert_true(rows[i].seen <= 1);
    }
    free(rows);
}

static void
test_vm_pages_scoped(void **state)
{
    Fixture *f = *state;
    NbError *err = NULL;
    Project p = {0};
    for (int i = 0; i < _QUOTA_MAX; i++)
        p.quota.limit[i] = -1;
    nb_uuid_generate(p.id);
    snprintf(p.name, sizeof(p.name), "other");
    nb_timestamp_now(p.created_at);
    assert_int_equal(project_store_insert(f->s, &p, &err), 0);
    Vm vm;
    Task t;
    for (int i = 0; i < 7; i++) {
        char name[16];
        snprintf(name, sizeof(name), "a%d", i);
        insert_vm_held(f, name, NULL, &vm, &t);
        insert_vm_held(f, name, p.id, &vm, &t);
    }
    /* The same names in both projects: a scoped walk sees its own 7, in 3 pages. */
    char marker[STORE_MARKER_MAX] = "", next[STORE_MARKER_MAX];
    size_t total = 0;
    unsigned pages = 0;
    do {
        Vm *page = NULL;
        size_t got = 0;
        assert_int_equal(vm_store_list_page(f->s, p.id, marker, 3, &page, &got, next, &err), 0);
        for (size_t i = 0; i < got; i++)
            assert_string_equal(page[i].project, p.id);
        total += got;
        vm_list_free(page, got);
        snprintf(marker, sizeof(marker), "%s", next);
        pages++;
    } while (marker[0]);
    assert_int_equal(total, 7);
    assert_int_equal(pages, 3);
    /* Admin: all 14 in one page. */
    Vm *page = NULL;
    size_t got = 0;
    assert_int_equal(vm_store_list_page(f->s, NULL, NULL, 0, &page, &got, next, &err), 0);
    assert_int_equal(got, 14);
    assert_string_equal(next, "");
    vm_list_free(page, got);

    const char *bad[] = {"abc", "a~", "~b", "a b~c", "x~y~z", "a%20~b", "a~b\n", "a~../x"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(vm_store_list_page(f->s, NULL, bad[i], 10, &page, &got, next, &err), -1);
        expect_code(&err, NB_ERR_INVALID_MARKER);
    }
    char longname[200];
    memset(longname, 'a', sizeof(longname));
    snprintf(longname + 100, 10, "~b");
    assert_int_equal(vm_store_list_page(f->s, NULL, longname, 10, &page, &got, next, &err), -1);
    expect_code(&err, NB_ERR_INVALID_MARKER);
}

static void
test_task_pages(void **state)
{
    Fixture *f = *state;
    NbError *err = NULL;
    enum { N = 2500 };
    char(*ids)[NB_UUID_STRLEN] = calloc(N, sizeof(*ids));
    unsigned *seen = calloc(N, sizeof(*seen));
    assert_non_null(ids);
    assert_non_null(seen);
    Vm first;
    for (int i = 0; i < N; i++) {
        Vm vm;
        Task t;
        char name[16];
        snprintf(name, sizeof(name), "t%d", i);
        insert_vm_held(f, name, NULL, &vm, &t);
        memcpy(ids[i], t.id, sizeof(ids[i]));
        if (i == 0)
            first = vm;
    }
    char marker[STORE_MARKER_MAX] = "", next[STORE_MARKER_MAX];
    char last_at[NB_TIMESTAMP_LEN] = "\x7f", last_id[NB_UUID_STRLEN] = "";
    do {
        Task *page = NULL;
        size_t got = 0;
        assert_int_equal(
            task_store_list_page(f->s, NULL, NULL, marker, 100, &page, &got, next, &err), 0);
        for (size_t i = 0; i < got; i++) {
            /* Newest first, strictly. */
            assert_true(key_cmp(page[i].created_at, page[i].id, last_at, last_id) < 0);
            snprintf(last_at, sizeof(last_at), "%s", page[i].created_at);
            snprintf(last_id, sizeof(last_id), "%s", page[i].id);
            for (int k = 0; k < N; k++)
                if (strcmp(ids[k], page[i].id) == 0)
                    seen[k]++;
        }
        task_list_free(page, got);
        snprintf(marker, sizeof(marker), "%s", next);
        /* Newer tasks come in meanwhile: before the cursor, never seen, never shifting it. */
        Vm vm;
        Task t;
        char name[16];
        snprintf(name, sizeof(name), "n%u", f->macs);
        insert_vm_held(f, name, NULL, &vm, &t);
    } while (marker[0]);
    for (int k = 0; k < N; k++)
        assert_int_equal(seen[k], 1);

    /* One VM's tasks; a scope that is not the VM's sees none. */
    Task *page = NULL;
    size_t got = 0;
    assert_int_equal(task_store_list_page(f->s, NULL, first.id, NULL, 10, &page, &got, next, &err),
                     0);
    assert_int_equal(got, 1);
    assert_string_equal(page[0].id, ids[0]);
    assert_string_equal(next, "");
    task_list_free(page, got);
    assert_int_equal(
        task_store_list_page(f->s, "no-such-project", first.id, NULL, 10, &page, &got, next, &err),
        0);
    assert_int_equal(got, 0);
    free(page);
    assert_int_equal(
        task_store_list_page(f->s, NB_DEFAULT_PROJECT_ID, NULL, NULL, 5, &page, &got, next, &err),
        0);
    assert_int_equal(got, 5);
    assert_true(next[0] != '\0');
    task_list_free(page, got);
    assert_int_equal(
        task_store_list_page(f->s, NULL, NULL, "2026-01-01T00:00:00Z", 5, &page, &got, next, &err),
        -1);
    expect_code(&err, NB_ERR_INVALID_MARKER);
    free(ids);
    free(seen);
}

/* ---- batched observations ---- */

static void
test_observe_batch(void **state)
{
    Fixture *f = *state;
    NbError *err = NULL;
    Host h, other;
    insert_host(f, &h, "local", "qemu:///system");
    insert_host(f, &other, "h2", "qemu+ssh://h2/system");
    Vm free_vm, held_vm, err_vm;
    Task held_task, t;
    insert_vm(f, "free", "local", NULL, 1, 256, 1, NULL, &free_vm);
    insert_vm(f, "broken", "local", NULL, 1, 256, 1, NULL, &err_vm);
    make_task(&t, TASK_KIND_VM_STOP, err_vm.id);
    assert_int_equal(vm_store_claim(f->s, err_vm.id, &t, VM_POWER_STOPPED, -1, &err), 0);
    assert_int_equal(task_store_finish(f->s, &t, TASK_STATE_FAILED, "X", "x", VM_STATE_ERROR, -1,
                                       "it broke", &err),
                     0);
    insert_vm_held(f, "held", NULL, &held_vm, &held_task);

    StoreObservation obs[8];
    memset(obs, 0, sizeof(obs));
    obs[0].kind = STORE_OBS_VM_IP;
    snprintf(obs[0].vm_id, sizeof(obs[0].vm_id), "%s", free_vm.id);
    snprintf(obs[0].ip, sizeof(obs[0].ip), "10.0.0.5");
    /* From a migration's other end: ignored. */
    obs[1].kind = STORE_OBS_VM_STATE;
    snprintf(obs[1].vm_id, sizeof(obs[1].vm_id), "%s", free_vm.id);
    snprintf(obs[1].host, sizeof(obs[1].host), "h2");
    obs[1].state = VM_STATE_STOPPED;
    obs[1].desired = -1;
    /* A task holds it: skipped. */
    obs[2].kind = STORE_OBS_VM_STATE;
    snprintf(obs[2].vm_id, sizeof(obs[2].vm_id), "%s", held_vm.id);
    snprintf(obs[2].host, sizeof(obs[2].host), "local");
    obs[2].state = VM_STATE_RUNNING;
    obs[2].desired = -1;
    /* In error: skipped. */
    obs[3] = obs[2];
    snprintf(obs[3].vm_id, sizeof(obs[3].vm_id), "%s", err_vm.id);
    obs[3].state = VM_STATE_STOPPED;
    /* Facts of h2, whose capacity changes: the generation moves. */
    obs[4].kind = STORE_OBS_HOST_UP;
    snprintf(obs[4].host_id, sizeof(obs[4].host_id), "%s", other.id);
    snprintf(obs[4].host, sizeof(obs[4].host), "h2");
    obs[4].has_facts = true;
    obs[4].facts.vcpus = 16;
    obs[4].facts.ram_mib = 65536;
    obs[4].facts.disk_gib = 500;
    snprintf(obs[4].facts.hostname, sizeof(obs[4].facts.hostname), "h2.example");
    /* A host removed meanwhile: nothing, and the rest still applies. */
    obs[5].kind = STORE_OBS_HOST_UP;
    nb_uuid_generate(obs[5].host_id);
    uint64_t gen = store_placement_generation(f->s);
    assert_int_equal(store_observe_batch(f->s, obs, 6, &err), 0);
    assert_int_equal(obs[0].applied, 1);
    assert_int_equal(obs[1].applied, 0);
    assert_int_equal(obs[2].applied, 0);
    assert_int_equal(obs[3].applied, 0);
    assert_int_equal(obs[4].applied, 1);
    assert_int_equal(obs[5].applied, 0);
    assert_true(store_placement_generation(f->s) > gen);
    Vm got;
    assert_int_equal(vm_store_get(f->s, NULL, free_vm.id, &got, &err), 0);
    assert_string_equal(got.ip, "10.0.0.5");
    assert_int_equal(got.state, VM_STATE_RUNNING);
    vm_clear(&got);
    assert_int_equal(vm_store_get(f->s, NULL, held_vm.id, &got, &err), 0);
    assert_int_equal(got.state, VM_STATE_BUILDING);
    vm_clear(&got);
    assert_int_equal(vm_store_get(f->s, NULL, err_vm.id, &got, &err), 0);
    assert_int_equal(got.state, VM_STATE_ERROR);
    vm_clear(&got);
    Host hg;
    assert_int_equal(host_store_get(f->s, "h2", &hg, &err), 0);
    assert_int_equal(hg.conn, HOST_CONN_UP);
    assert_int_equal(hg.facts.vcpus, 16);
    assert_string_equal(hg.facts.hostname, "h2.example");

    /* The same facts again: applied, but the generation stays. */
    gen = store_placement_generation(f->s);
    assert_int_equal(store_observe_batch(f->s, &obs[4], 1, &err), 0);
    assert_int_equal(store_placement_generation(f->s), gen);
    /* has_facts false keeps them. */
    obs[4].has_facts = false;
    obs[4].facts.vcpus = 1;
    assert_int_equal(store_observe_batch(f->s, &obs[4], 1, &err), 0);
    assert_int_equal(host_store_get(f->s, "h2", &hg, &err), 0);
    assert_int_equal(hg.facts.vcpus, 16);

    /* The VM seen stopped on its own host: applied, was running, ip cleared. */
    memset(obs, 0, sizeof(obs));
    obs[0].kind = STORE_OBS_VM_STATE;
    snprintf(obs[0].vm_id, sizeof(obs[0].vm_id), "%s", free_vm.id);
    snprintf(obs[0].host, sizeof(obs[0].host), "local");
    obs[0].state = VM_STATE_STOPPED;
    obs[0].desired = VM_POWER_STOPPED;
    /* Unchanged: not applied. */
    obs[1] = obs[0];
    assert_int_equal(store_observe_batch(f->s, obs, 2, &err), 0);
    assert_int_equal(obs[0].applied, 1);
    assert_int_equal(obs[0].was, VM_STATE_RUNNING);
    assert_int_equal(obs[1].applied, 0);
    assert_int_equal(vm_store_get(f->s, NULL, free_vm.id, &got, &err), 0);
    assert_int_equal(got.state, VM_STATE_STOPPED);
    assert_int_equal(got.desired, VM_POWER_STOPPED);
    assert_string_equal(got.ip, "");
    vm_clear(&got);

    /* The host goes down: its VMs unknown, even the held one. */
    memset(obs, 0, sizeof(obs));
    obs[0].kind = STORE_OBS_HOST_DOWN;
    snprintf(obs[0].host_id, sizeof(obs[0].host_id), "%s", h.id);
    snprintf(obs[0].host, sizeof(obs[0].host), "local");
    snprintf(obs[0].error, sizeof(obs[0].error), "connection refused");
    gen = store_placement_generation(f->s);
    assert_int_equal(store_observe_batch(f->s, obs, 1, &err), 0);
    assert_int_equal(obs[0].applied, 1);
    assert_true(store_placement_generation(f->s) > gen);
    assert_int_equal(host_store_get(f->s, "local", &hg, &err), 0);
    assert_int_equal(hg.conn, HOST_CONN_DOWN);
    assert_string_equal(hg.error, "connection refused");
    const char *ids[] = {free_vm.id, held_vm.id, err_vm.id};
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(vm_store_get(f->s, NULL, ids[i], &got, &err), 0);
        assert_int_equal(got.state, VM_STATE_UNKNOWN);
        vm_clear(&got);
    }
    /* Up again: the error is cleared. */
    obs[0].kind = STORE_OBS_HOST_UP;
    assert_int_equal(store_observe_batch(f->s, obs, 1, &err), 0);
    assert_int_equal(host_store_get(f->s, "local", &hg, &err), 0);
    assert_int_equal(hg.conn, HOST_CONN_UP);
    assert_string_equal(hg.error, "");

    /* seen_at: a look older than the row's last write changes nothing; a newer one does. */
    memset(obs, 0, sizeof(obs));
    obs[0].kind = STORE_OBS_VM_STATE;
    snprintf(obs[0].vm_id, sizeof(obs[0].vm_id), "%s", free_vm.id);
    snprintf(obs[0].host, sizeof(obs[0].host), "local");
    obs[0].state = VM_STATE_RUNNING;
    obs[0].desired = -1;
    snprintf(obs[0].seen_at, sizeof(obs[0].seen_at), "2000-01-01T00:00:00.000Z");
    assert_int_equal(store_observe_batch(f->s, obs, 1, &err), 0);
    assert_int_equal(obs[0].applied, 0);
    nb_timestamp_format(nb_epoch_now() + 1, obs[0].seen_at);
    assert_int_equal(store_observe_batch(f->s, obs, 1, &err), 0);
    assert_int_equal(obs[0].applied, 1);
    assert_int_equal(obs[0].was, VM_STATE_UNKNOWN);
}

/* First pages of tasks (all, one VM's, another project's) and audit_store_list (a project's
 * walk). */
static void
test_lists(void **state)
{
    Fixture *f = *state;
    NbError *err = NULL;
    Vm a, b;
    Task ta, tb, *tasks = NULL;
    size_t n = 0;
    char next[STORE_MARKER_MAX];
    insert_vm_held(f, "a", NULL, &a, &ta);
    insert_vm_held(f, "b", NULL, &b, &tb);
    assert_int_equal(task_store_list_page(f->s, NULL, NULL, NULL, 10, &tasks, &n, next, &err), 0);
    assert_int_equal(n, 2);
    assert_true(strcmp(tasks[0].created_at, tasks[1].created_at) >= 0);
    task_list_free(tasks, n);
    assert_int_equal(task_store_list_page(f->s, NULL, NULL, NULL, 1, &tasks, &n, next, &err), 0);
    assert_int_equal(n, 1);
    task_list_free(tasks, n);
    assert_int_equal(
        task_store_list_page(f->s, NB_DEFAULT_PROJECT_ID, b.id, NULL, 10, &tasks, &n, next, &err),
        0);
    assert_int_equal(n, 1);
    assert_string_equal(tasks[0].id, tb.id);
    task_list_free(tasks, n);
    assert_int_equal(task_store_list_page(f->s, "other", b.id, NULL, 10, &tasks, &n, next, &err),
                     0);
    assert_int_equal(n, 0);
    free(tasks);
    assert_int_equal(task_store_list_page(f->s, "other", NULL, NULL, 10, &tasks, &n, next, &err),
                     0);
    assert_int_equal(n, 0);
    free(tasks);

    const char *projects[] = {"p1", "p2", "p1"};
    const char *ats[] = {"2026-01-01T00:00:00.000Z", "2026-01-02T00:00:00.000Z",
                         "2026-01-03T00:00:00.000Z"};
    for (int i = 0; i < 3; i++) {
        AuditEvent e = {.status = 200};
        snprintf(e.at, sizeof(e.at), "%s", ats[i]);
        snprintf(e.request_id, sizeof(e.request_id), "r%d", i);
        snprintf(e.project_id, sizeof(e.project_id), "%s", projects[i]);
        snprintf(e.source, sizeof(e.source), "127.0.0.1");
        snprintf(e.method, sizeof(e.method), "POST");
        snprintf(e.path, sizeof(e.path), "/v1/vms");
        snprintf(e.action, sizeof(e.action), "vm.create");
        snprintf(e.result, sizeof(e.result), "accepted");
        assert_int_equal(audit_store_insert(f->s, &e, &err), 0);
    }
    AuditEvent *ev = NULL;
    assert_int_equal(audit_store_list(f->s, NULL, NULL, 10, &ev, &n, &err), 0);
    assert_int_equal(n, 3);
    assert_string_equal(ev[0].request_id, "r2");
    free(ev);
    assert_int_equal(audit_store_list(f->s, "p1", NULL, 10, &ev, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_string_equal(ev[0].request_id, "r2");
    assert_string_equal(ev[1].request_id, "r0");
    free(ev);
    assert_int_equal(audit_store_list(f->s, "p1", "2026-01-02", 10, &ev, &n, &err), 0);
    assert_int_equal(n, 1);
    free(ev);
    assert_int_equal(audit_store_list(f->s, NULL, "2026-01-02", 1, &ev, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_string_equal(ev[0].request_id, "r2");
    free(ev);
}

/* ---- pruning and usage roll-ups ---- */

static void
exec_sql(sqlite3 *db, const char *sql)
{
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
        fail_msg("%s: %s", sql, msg);
}

/* An event of vm at epoch t, written as the triggers would. */
static void
add_event(sqlite3 *db, const char *vm, const char *state, double t)
{
    char at[NB_TIMESTAMP_LEN], sql[512];
    nb_timestamp_format(t, at);
    snprintf(sql, sizeof(sql),
             "INSERT INTO vm_events (vm_id, project, name, state, vcpus, ram_mib, disk_gib, at) "
             "VALUES ('%s', '" NB_DEFAULT_PROJECT_ID "', 'n-%s', '%s', 2, 2048, 10, '%s')",
             vm, vm, state, at);
    exec_sql(db, sql);
}

static bool
near(double a, double b)
{
    return fabs(a - b) <= 1e-6 * (fabs(a) + fabs(b) + 1);
}

static void
usage_equal(const VmUsage *a, size_t na, const VmUsage *b, size_t nb)
{
    assert_int_equal(na, nb);
    for (size_t i = 0; i < na; i++) {
        assert_string_equal(a[i].vm_id, b[i].vm_id);
        assert_string_equal(a[i].name, b[i].name);
        if (!near(a[i].vcpu_hours, b[i].vcpu_hours) ||
            !near(a[i].ram_gib_hours, b[i].ram_gib_hours) ||
            !near(a[i].disk_gib_hours, b[i].disk_gib_hours) ||
            !near(a[i].running_hours, b[i].running_hours))
            fail_msg("%s: %f/%f/%f/%f, then %f/%f/%f/%f", a[i].vm_id, a[i].vcpu_hours,
                     a[i].ram_gib_hours, a[i].disk_gib_hours, a[i].running_hours, b[i].vcpu_hours,
                     b[i].ram_gib_hours, b[i].disk_gib_hours, b[i].running_hours);
    }
}

static int64_t
count_rows(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int64_t n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return n;
}

static void
test_prune_keeps_usage(void **state)
{
    Fixture *f = *state;
    NbError *err = NULL;
    const double day = 86400, now = nb_epoch_now(), m = floor(now / day) * day;
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    add_event(db, "a", "running", m - 100 * day + 6 * 3600);
    add_event(db, "a", "stopped", m - 50 * day + 12 * 3600);
    add_event(db, "a", "running", m - 2 * day);
    add_event(db, "a", "deleted", m - day + 3 * 3600);
    add_event(db, "b", "running", m - 200 * day);
    add_event(db, "c", "running", m - 10 * day + 1800);
    add_event(db, "c", "paused", m);
    Vm vm; /* a VM of today, through the store: its events are the triggers' */
    insert_vm(f, "d", "local", NULL, 1, 256, 1, NULL, &vm);
    /* Usage is computed as of an hour from now: d has run for a while by then. */
    const double later = nb_epoch_now() + 3600;

    char sql[512], at[NB_TIMESTAMP_LEN];
    /* Tasks: one finished 40 days ago (goes), one running since 100 days (stays). */
    nb_timestamp_format(now - 40 * day, at);
    snprintf(sql, sizeof(sql),
             "INSERT INTO tasks (id, kind, state, target_id, steps, created_at, updated_at, "
             "finished_at) VALUES ('old', 'vm.stop', 'succeeded', 'x', 1, '%s', '%s', '%s')",
             at, at, at);
    exec_sql(db, sql);
    nb_timestamp_format(now - 100 * day, at);
    snprintf(sql, sizeof(sql),
             "INSERT INTO tasks (id, kind, state, target_id, steps, created_at, updated_at) "
             "VALUES ('long', 'vm.migrate', 'running', 'x', 3, '%s', '%s')",
             at, at);
    exec_sql(db, sql);
    /* Audit: 400 days (goes), 100 days (stays: audit is kept longest). */
    const int audit_ages[] = {400, 100, 0};
    for (int i = 0; i < 3; i++) {
        nb_timestamp_format(now - audit_ages[i] * day, at);
        snprintf(sql, sizeof(sql),
                 "INSERT INTO audit (at, request_id, source, method, path, action, status, "
                 "result) VALUES ('%s', 'r', 's', 'GET', '/', 'a', 200, 'ok')",
                 at);
        exec_sql(db, sql);
    }
    int64_t tasks0 = count_rows(db, "SELECT count(*) FROM tasks");

    const double windows[][2] = {
        {m - 300 * day, later}, {m - 120 * day, m}, {m - 3 * day, m - day}, {m - 60 * day, m + 1}};
    VmUsage *before[4] = {0}, *after = NULL;
    size_t n_before[4], n_after;
    for (int w = 0; w < 4; w++)
        assert_int_equal(usage_store_compute(f->s, NB_DEFAULT_PROJECT_ID, windows[w][0],
                                             windows[w][1], later, &before[w], &n_before[w], &err),
                         0);
    assert_int_equal(n_before[0], 4);
    /* b has run for 200 days and an hour, at 2 vCPUs. */
    for (size_t i = 0; i < n_before[0]; i++)
        if (strcmp(before[0][i].vm_id, "b") == 0)
            assert_true(near(before[0][i].vcpu_hours, (later - (m - 200 * day)) / 3600 * 2));

    /* Retention 0 keeps everything. */
    StoreRetention forever = {0, 0, 0};
    int64_t counts[3];
    assert_int_equal(store_prune(f->s, &forever, counts, &err), 0);
    assert_int_equal(counts[0] + counts[1] + counts[2], 0);
    assert_int_equal(count_rows(db, "SELECT count(*) FROM tasks"), tasks0);
    /* ... but rolled up: usage is the same from the days. */
    assert_true(count_rows(db, "SELECT count(*) FROM vm_usage_daily") > 0);
    for (int w = 0; w < 4; w++) {
        assert_int_equal(usage_store_compute(f->s, NB_DEFAULT_PROJECT_ID, windows[w][0],
                                             windows[w][1], later, &after, &n_after, &err),
                         0);
        usage_equal(before[w], n_before[w], after, n_after);
        free(after);
    }

    StoreRetention def = STORE_RETENTION_DEFAULT;
    assert_int_equal(store_prune(f->s, &def, counts, &err), 0);
    assert_int_equal(counts[0], 1);
    assert_int_equal(counts[1], 2); /* a's first and b's only event: older than 90 days */
    assert_int_equal(counts[2], 1);
    assert_int_equal(count_rows(db, "SELECT count(*) FROM tasks WHERE id = 'old'"), 0);
    assert_int_equal(count_rows(db, "SELECT count(*) FROM tasks WHERE id = 'long'"), 1);
    assert_int_equal(count_rows(db, "SELECT count(*) FROM tasks"), tasks0 - 1);
    assert_int_equal(count_rows(db, "SELECT count(*) FROM audit"), 2);
    for (int w = 0; w < 4; w++) {
        assert_int_equal(usage_store_compute(f->s, NB_DEFAULT_PROJECT_ID, windows[w][0],
                                             windows[w][1], later, &after, &n_after, &err),
                         0);
        usage_equal(before[w], n_before[w], after, n_after);
        free(after);
    }
    /* Again: nothing more to prune, nothing rolled up twice. */
    assert_int_equal(store_prune(f->s, &def, counts, &err), 0);
    assert_int_equal(counts[0] + counts[1] + counts[2], 0);
    assert_int_equal(usage_store_compute(f->s, NB_DEFAULT_PROJECT_ID, windows[0][0], windows[0][1],
                                         later, &after, &n_after, &err),
                     0);
    usage_equal(before[0], n_before[0], after, n_after);
    free(after);
    for (int w = 0; w < 4; w++)
        free(before[w]);
    sqlite3_close(db);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_vm_pages_during_writes, setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_vm_pages_scoped, setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_task_pages, setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_observe_batch, setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_lists, setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_prune_keeps_usage, setup, fixture_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
