/* The store's hosts, server groups, migrations, task cancellation and the placement generation
 * (schema version 3). */
#include <sqlite3.h>
#include <time.h>

#include "store_fixture.h"
#include "store_shipped_schema.h"

static int
setup(void **state)
{
    Fixture *f = fixture_new("hosts");
    fixture_open_seeded(f, IMAGE_STATE_ACTIVE);
    *state = f;
    return 0;
}

/* No store yet: the test builds the database itself. */
static int
setup_empty(void **state)
{
    *state = fixture_new("hosts");
    return 0;
}

static Host *
find_host(Host *list, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(list[i].name, name) == 0)
            return &list[i];
    fail_msg("host %s not listed", name);
    return NULL;
}

/* ---- schema ---- */

static void
test_migrate_from_v2(void **state)
{
    Fixture *f = *state;
    NbError *err = NULL;
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    /* Versions 1 and 2 of the shipped schema. */
    for (size_t i = 0; i < 2; i++)
        assert_int_equal(sqlite3_exec(db, shipped_schema[i], NULL, NULL, NULL), SQLITE_OK);
    /* A VM with a finished create task, as a version 2 daemon left them. */
    const char *rows =
        "PRAGMA user_version = 2;"
        "INSERT INTO flavors (id, name, vcpus, ram_mib, disk_gib, created_at) VALUES "
        "('f1', 'small', 2, 512, 3, '2026-01-01T00:00:00.000Z');"
        "INSERT INTO images (id, project, name, state, volume, created_at, updated_at) VALUES "
        "('i1', '" NB_DEFAULT_PROJECT_ID "', 'tiny', 'active', 'image-i1', "
        "'2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z');"
        "INSERT INTO vms (id, project, name, hostname, state, desired, host, image_id, flavor_id,"
        " vcpus, ram_mib, disk_gib, mac, created_at, updated_at) VALUES "
        "('v1', '" NB_DEFAULT_PROJECT_ID "', 'web1', 'web1', 'running', 'running', 'local',"
        " 'i1', 'f1', 2, 512, 3, '52:54:00:00:00:01', '2026-01-01T00:00:00.000Z',"
        " '2026-01-01T00:00:00.000Z');"
        "INSERT INTO tasks (id, project, kind, state, target_id, step, steps, created_at,"
        " updated_at, finished_at) VALUES ('t1', '" NB_DEFAULT_PROJECT_ID "', 'vm.create',"
        " 'succeeded', 'v1', 4, 4, '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z',"
        " '2026-01-01T00:00:00.000Z');";
    assert_int_equal(sqlite3_exec(db, rows, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);

    assert_int_equal(store_open(f->path, &f->s, &err), 0);
    assert_int_equal(store_schema_version(f->s), 15);
    Vm vm;
    assert_int_equal(vm_store_get(f->s, NULL, "web1", &vm, &err), 0);
    assert_string_equal(vm.host, "local");
    assert_string_equal(vm.migrate_to, "");
    assert_string_equal(vm.group_id, "");
    assert_int_equal(vm.labels.n, 0);
    vm_clear(&vm);
    Task t;
    assert_int_equal(task_store_get(f->s, NULL, "t1", &t, &err), 0);
    assert_int_equal(t.progress, -1);
    assert_false(t.cancel_requested);
    task_clear(&t);

    /* The daemon registers its host: the old VM is on it. */
    assert_int_equal(host_store_ensure_local(f->s, NB_LOCAL_HOST_NAME, "qemu:///system", &err), 0);
    Host h;
    assert_int_equal(host_store_get(f->s, NB_LOCAL_HOST_NAME, &h, &err), 0);
    assert_int_equal(h.vms, 1);
    assert_int_equal(h.vcpus_used, 2);
    assert_int_equal(h.ram_used_mib, 512);
    assert_int_equal(h.disk_used_gib, 3);
    assert_int_equal(h.admin, HOST_ADMIN_ENABLED);
    assert_int_equal(h.conn, HOST_CONN_CONNECTING);
    assert_true(h.cpu_ratio == HOST_DEFAULT_CPU_RATIO);

    /* Opening again migrates nothing more. */
    store_close(f->s);
    assert_int_equal(store_open(f->path, &f->s, &err), 0);
    assert_int_equal(store_schema_version(f->s), 15);
}

/* ---- hosts ---- */

static void
test_host_allocations(void **state)
{
    Fixture *f = *state;
    NbError *err = NULL;
    Host h1, h2, h3, got;
    insert_host(f, &h1, "node-b", "qemu+ssh://root@10.0.0.2/system");
    insert_host(f, &h2, "node-a", "qemu+ssh://10.0.0.1:2222/system?keyfile=/etc/nimbus/id");
    insert_host(f, &h3, "node-c", "qemu+tls://node-c.example.org/system");

    Vm a, b, c;
    insert_vm(f, "a", "node-b", NULL, 2, 1024, 10, NULL, &a);
    insert_vm(f, "b", "node-b", NULL, 4, 2048, 20, NULL, &b);
    insert_vm(f, "c", "node-c", NULL, 1, 512, 5, NULL, &c);
    /* b migrates to node-a: it claims on both ends, and is counted on its host only. */
    assert_int_equal(vm_store_set_migration(f->s, b.id, "node-a", &err), 0);

    Host *list = NULL;
    size_t n = 0;
    assert_int_equal(host_store_list(f->s, &list, &n, &err), 0);
    assert_int_equal(n, 3);
    assert_string_equal(list[0].name, "node-a");
    assert_string_equal(list[1].name, "node-b");
    assert_string_equal(list[2].name, "node-c");
    Host *na = find_host(list, n, "node-a"), *nb = find_host(list, n, "node-b");
    assert_int_equal(nb->vcpus_used, 6);
    assert_int_equal(nb->ram_used_mib, 3072);
    assert_int_equal(nb->disk_used_gib, 30);
    assert_int_equal(nb->vms, 2);
    assert_int_equal(na->vcpus_used, 4);
    assert_int_equal(na->ram_used_mib, 2048);
    assert_int_equal(na->disk_used_gib, 20);
    assert_int_equal(na->vms, 0);
    assert_int_equal(find_host(list, n, "node-c")->vcpus_used, 1);
    assert_int_equal(find_host(list, n, "node-c")->vms, 1);
    free(list);

    /* By id or by name, with the same sums. */
    assert_int_equal(host_store_get(f->s, h2.id, &got, &err), 0);
    assert_string_equal(got.name, "node-a");
    assert_string_equal(got.uri, "qemu+ssh://10.0.0.1:2222/system?keyfile=/etc/nimbus/id");
    assert_int_equal(got.vcpus_used, 4);
    assert_int_equal(host_store_get(f->s, "node-b", &got, &err), 0);
    assert_int_equal(got.vms, 2);
    assert_int_equal(host_store_get(f->s, "node-x", &got, &err), -1);
    expect_code(&err, NB_ERR_HOST_NOT_FOUND);

    /* The migration ends on node-a: node-b is relieved. */
    assert_int_equal(vm_store_move(f->s, b.id, "node-a", &err), 0);
    assert_int_equal(host_store_get(f->s, "node-b", &got, &err), 0);
    assert_int_equal(got.vcpus_used, 2);
    assert_int_equal(got.vms, 1);
    assert_int_equal(host_store_get(f->s, "node-a", &got, &err), 0);
    assert_int_equal(got.vcpus_used, 4);
    assert_int_equal(got.vms, 1);
    Vm moved;
    assert_int_equal(vm_store_get(f->s, NULL, b.id, &moved, &err), 0);
    assert_string_equal(moved.host, "node-a");
    assert_string_equal(moved.migrate_to, "");
    vm_clear(&moved);

    /* A cancelled migration: the claim on the destination goes, the VM stays. */
    assert_int_equal(vm_store_set_migration(f->s, c.id, "node-a", &err), 0);
    assert_int_equal(host_store_get(f->s, "node-a", &got, &err), 0);
    assert_int_equal(got.vcpus_used, 5);
    assert_int_equal(vm_store_set_migration(f->s, c.id, NULL, &err), 0);
    assert_int_equal(host_store_get(f->s, "node-a", &got, &err), 0);
    assert_int_equal(got.vcpus_used, 4);
    assert_int_equal(vm_store_set_migration(f->s, "no-such-vm", "node-a", &err), -1);
    expect_code(&err, NB_ERR_VM_NOT_FOUND);
    assert_int_equal(vm_store_move(f->s, "no-such-vm", "node-a", &err), -1);
    expect_code(&err, NB_ERR_VM_NOT_FOUND);
}

static void
test_host_unique(void **state)
{
    Fixture *f = *state;
    NbError *err = NULL;
    Host h1, dup;
    insert_host(f, &h1, "node-a", "qemu+ssh://10.0.0.1/system");
    make_host(&dup, "node-a", "qemu+ssh://10.0.0.9/system");
    assert_int_equal(host_store_insert(f->s, &dup, &err), -1);
    expect_code(&err, NB_ERR_NAME_TAKEN);
    make_host(&dup, "node-z", "qemu+ssh://10.0.0.1/system");
    assert_int_equal(host_store_insert(f->s, &dup, &err), -1);
    expect_code(&err, NB_ERR_HOST_URI_TAKEN);
    /* The local host cannot take another host's uri either. */
    assert_int_equal(
        host_store_ensure_local(f->s, NB_LOCAL_HOST_NAME, "qemu+ssh://10.0.0.1/system", &err), -1);
    expect_code(&err, NB_ERR_HOST_URI_TAKEN);
    Host *list = NULL;
    size_t n = 0;
    assert_int_equal(host_store_list(f->s, &list, &n, &err), 0);
    assert_int_equal(n, 1);
    free(list);
}

static void
test_host_writes(void **state)
{
    Fixture *f = *state;
    NbError *err = NULL;
    Host h, got;
    insert_host(f, &h, "node-a", "qemu+ssh://10.0.0.1/system");
    assert_int_equal(host_store_set_admin(f->s, h.id, HOST_ADMIN_MAINTENANCE, &err), 0);
    h.cpu_ratio = 8;
    h.ram_ratio = 1.5;
    h.disk_ratio = 2;
    assert_int_equal(labels_add_text(&h.labels, "ssd=true", &err), 0);
    assert_int_equal(labels_add_text(&h.labels, "rack=r1", &err), 0);
    h.updated_at[0] = '\0';
    assert_int_equal(host_store_update(f->s, &h, &err), 0);
    assert_int_equal(host_store_get(f->s, h.id, &got, &err), 0);
    assert_int_equal(got.admin, HOST_ADMIN_MAINTENANCE);
    assert_true(got.cpu_ratio == 8 && got.ram_ratio == 1.5 && got.disk_ratio == 2);
    assert_int_equal(got.labels.n, 2);
    assert_string_equal(got.labels.item[0], "rack=r1");
    assert_string_equal(got.labels.item[1], "ssd=true");
    assert_true(got.updated_at[0] != '\0');
    assert_int_equal(host_store_set_admin(f->s, "nope", HOST_ADMIN_ENABLED, &err), -1);
    expect_code(&err, NB_ERR_HOST_NOT_FOUND);
    snprintf(h.id, sizeof(h.id), "nope");
    assert_int_equal(host_store_update(f->s, &h, &err), -1);
    expect_code(&err, NB_ERR_HOST_NOT_FOUND);
}

static void
test_host_delete(void **state)
{
    Fixture *f = *state;
    NbError *err = NULL;
    Host a, b, got;
    insert_host(f, &a, "node-a", "qemu+ssh://10.0.0.1/system");
    insert_host(f, &b, "node-b", "qemu+ssh://10.0.0.2/system");
    assert_int_equal(host_store_ensure_local(f->s, NB_LOCAL_HOST_NAME, "qemu:///system", &err), 0);
    Vm vm;
    insert_vm(f, "web1", "node-a", NULL, 1, 256, 1, NULL, &vm);

    assert_int_equal(host_store_delete(f->s, a.id, &err), -1);
    expect_code(&err, NB_ERR_HOST_NOT_EMPTY);
    /* A VM on its way to b holds b too. */
    assert_int_equal(vm_store_set_migration(f->s, vm.id, "node-b", &err), 0);
    assert_int_equal(host_store_delete(f->s, b.id, &err), -1);
    expect_code(&err, NB_ERR_HOST_NOT_EMPTY);
    assert_int_equal(vm_store_move(f->s, vm.id, "node-b", &err), 0);
    assert_int_equal(host_store_delete(f->s, b.id, &err), -1);
    expect_code(&err, NB_ERR_HOST_NOT_EMPTY);

    /* Empty now; its image copy records go with it. */
    assert_int_equal(image_copy_set(f->s, f->image.id, "node-a", IMAGE_COPY_READY, &err), 0);
    assert_int_equal(host_store_delete(f->s, a.id, &err), 0);
    assert_int_equal(host_store_get(f->s, "node-a", &got, &err), -1);
    expect_code(&err, NB_ERR_HOST_NOT_FOUND);
    assert_int_equal(image_copy_get(f->s, f->image.id, "node-a", &err), IMAGE_COPY_NONE);
    assert_int_equal(host_store_delete(f->s, a.id, &err), -1);
    expect_code(&err, NB_ERR_HOST_NOT_FOUND);

    /* The daemon's own host stays, even empty. */
    assert_int_equal(host_store_get(f->s, NB_LOCAL_HOST_NAME, &got, &err), 0);
    assert_int_equal(got.vms, 0);
    assert_int_equal(host_store_delete(f->s, got.id, &err), -1);
    expect_code(&err, NB_ERR_HOST_IS_LOCAL);
}

static void
test_ensure_local(void **state)
{
    Fixture *f = *state;
    NbError *err = NULL;
    Host h, again;
    assert_int_equal(host_store_ensure_local(f->s, NB_LOCAL_HOST_NAME, "qemu:///system", &err), 0);
    assert_int_equal(host_store_get(f->s, NB_LOCAL_HOST_NAME, &h, &err), 0);
    assert_string_equal(h.uri, "qemu:///system");
    assert_int_equal(h.admin, HOST_ADMIN_ENABLED);
    assert_true(h.cpu_ratio == HOST_DEFAULT_CPU_RATIO && h.ram_ratio == HOST_DEFAULT_RAM_RATIO &&
                h.disk_ratio == HOST_DEFAULT_DISK_RATIO);

    /* Again, as at every start: same row, and nothing a cache depends on changed. */
    uint64_t gen = store_placement_generation(f->s);
    assert_int_equal(host_store_ensure_local(f->s, NB_LOCAL_HOST_NAME, "qemu:///system", &err), 0);
    assert_int_equal(store_placement_generation(f->s), gen);
    assert_int_equal(host_store_get(f->s, NB_LOCAL_HOST_NAME, &again, &err), 0);
    assert_string_equal(again.id, h.id);
    assert_string_equal(again.created_at, h.created_at);

    /* An operator's settings survive a restart; a new uri is taken. */
    assert_int_equal(host_store_set_admin(f->s, h.id, HOST_ADMIN_DISABLED, &err), 0);
    assert_int_equal(host_store_ensure_local(f->s, NB_LOCAL_HOST_NAME, "test:///default", &err), 0);
    assert_int_equal(host_store_get(f->s, NB_LOCAL_HOST_NAME, &again, &err), 0);
    assert_string_equal(again.id, h.id);
    assert_string_equal(again.uri, "test:///default");
    assert_int_equal(again.admin, HOST_ADMIN_DISABLED);
    Host *list = NULL;
    size_t n = 0;
    assert_int_equal(host_store_list(f->s, &list, &n, &err), 0);
    assert_int_equal(n, 1);
    free(list);
}

static void
test_set_facts(void **state)
{
    Fixture *f = *state;
    NbError *err = NULL;
    Host h, got;
    insert_host(f, &h, "node-a", "qemu+ssh://10.0.0.1/system");
    HostFacts facts = {.vcpus = 16,
                       .ram_mib = 65536,
                       .free_ram_mib = 60000,
                       .disk_gib = 500,
                       .disk_free_gib = 400};
    snprintf(facts.hostname, sizeof(facts.hostname), "node-a");
    snprintf(facts.cpu_model, sizeof(facts.cpu_model), "EPYC");
    snprintf(facts.libvirt_version, sizeof(facts.libvirt_version), "9.0.0");
    snprintf(facts.qemu_version, sizeof(facts.qemu_version), "7.2.0");

    uint64_t gen = store_placement_generation(f->s);
    assert_int_equal(host_store_set_facts(f->s, h.id, HOST_CONN_UP, &facts, NULL, &err), 0);
    assert_true(store_placement_generation(f->s) > gen);
    assert_int_equal(host_store_get(f->s, h.id, &got, &err), 0);
    assert_int_equal(got.conn, HOST_CONN_UP);
    assert_int_equal(got.facts.vcpus, 16);
    assert_int_equal(got.facts.ram_mib, 65536);
    assert_int_equal(got.facts.free_ram_mib, 60000);
    assert_int_equal(got.facts.disk_gib, 500);
    assert_int_equal(got.facts.disk_free_gib, 400);
    assert_string_equal(got.facts.cpu_model, "EPYC");
    assert_string_equal(got.facts.libvirt_version, "9.0.0");
    assert_true(got.last_contact[0] != '\0');
    assert_string_equal(got.error, "");
    char first_contact[NB_TIMESTAMP_LEN];
    memcpy(first_contact, got.last_contact, sizeof(first_contact));

    /* A refresh that changes only what is free leaves the generation. */
    gen = store_placement_generation(f->s);
    facts.free_ram_mib = 50000;
    facts.disk_free_gib = 300;
    assert_int_equal(host_store_set_facts(f->s, h.id, HOST_CONN_UP, &facts, NULL, &err), 0);
    assert_int_equal(store_placement_generation(f->s), gen);
    assert_int_equal(host_store_get(f->s, h.id, &got, &err), 0);
    assert_int_equal(got.facts.free_ram_mib, 50000);
    assert_true(strcmp(got.last_contact, first_contact) >= 0);

    /* Capacity changes move it. */
    facts.ram_mib = 131072;
    assert_int_equal(host_store_set_facts(f->s, h.id, HOST_CONN_UP, &facts, NULL, &err), 0);
    assert_true(store_placement_generation(f->s) > gen);

    /* Down: the facts are kept, the error recorded, last_contact left. */
    gen = store_placement_generation(f->s);
    assert_int_equal(host_store_get(f->s, h.id, &got, &err), 0);
    memcpy(first_contact, got.last_contact, sizeof(first_contact));
    assert_int_equal(host_store_set_facts(f->s, h.id, HOST_CONN_DOWN, NULL, "no route", &err), 0);
    assert_true(store_placement_generation(f->s) > gen);
    assert_int_equal(host_store_get(f->s, h.id, &got, &err), 0);
    assert_int_equal(got.conn, HOST_CONN_DOWN);
    assert_string_equal(got.error, "no route");
    assert_int_equal(got.facts.ram_mib, 131072);
    assert_string_equal(got.last_contact, first_contact);
    assert_string_equal(host_state_word(&got), "down");

    /* Down again with the same error: nothing to invalidate. */
    gen = store_placement_generation(f->s);
    assert_int_equal(host_store_set_facts(f->s, h.id, HOST_CONN_DOWN, NULL, "no route", &err), 0);
    assert_int_equal(store_placement_generation(f->s), gen);

    /* Back up, the error cleared by "". */
    assert_int_equal(host_store_set_facts(f->s, h.id, HOST_CONN_UP, NULL, "", &err), 0);
    assert_int_equal(host_store_get(f->s, h.id, &got, &err), 0);
    assert_string_equal(got.error, "");
    assert_int_equal(got.facts.vcpus, 16);

    assert_int_equal(host_store_set_facts(f->s, "nope", HOST_CONN_UP, NULL, NULL, &err), -1);
    expect_code(&err, NB_ERR_HOST_NOT_FOUND);
}

static void
test_placement_generation(void **state)
{
    Fixture *f = *state;
    NbError *err = NULL;
    Host h;
    uint64_t gen = store_placement_generation(f->s);
    assert_true(gen >= 1);
    insert_host(f, &h, "node-a", "qemu+ssh://10.0.0.1/system");
    assert_true(store_placement_generation(f->s) > gen);

    /* The insert hands back the generation its own write produced. */
    Vm vm = {0};
    Task t;
    nb_uuid_generate(vm.id);
    snprintf(vm.name, sizeof(vm.name), "web1");
    snprintf(vm.hostname, sizeof(vm.hostname), "web1");
    snprintf(vm.host, sizeof(vm.host), "node-a");
    snprintf(vm.project, sizeof(vm.project), NB_DEFAULT_PROJECT_ID);
    snprintf(vm.mac, sizeof(vm.mac), "52:54:00:00:00:01");
    memcpy(vm.image_id, f->image.id, sizeof(vm.image_id));
    memcpy(vm.flavor_id, f->flavor.id, sizeof(vm.flavor_id));
    vm.vcpus = 1;
    vm.ram_mib = 256;
    vm.disk_gib = 1;
    nb_timestamp_now(vm.created_at);
    memcpy(vm.updated_at, vm.created_at, sizeof(vm.updated_at));
    make_task(&t, TASK_KIND_VM_CREATE, vm.id);
    memcpy(vm.task_id, t.id, sizeof(vm.task_id));
    gen = store_placement_generation(f->s);
    uint64_t ret_gen = 0;
    assert_int_equal(vm_store_insert_with_task(f->s, &vm, &t, NULL, 0, &ret_gen, &err), 0);
    assert_true(ret_gen > gen);
    assert_int_equal(store_placement_generation(f->s), ret_gen);

    /* Task progress and the reconciler's observations do not change claims. */
    gen = store_placement_generation(f->s);
    assert_int_equal(task_store_set_step(f->s, t.id, 1, &err), 0);
    assert_int_equal(task_store_finish(f->s, &t, TASK_STATE_SUCCEEDED, NULL, NULL, VM_STATE_RUNNING,
                                       VM_POWER_RUNNING, NULL, &err),
                     0);
    assert_int_equal(vm_store_observe(f->s, vm.id, VM_STATE_STOPPED, VM_POWER_STOPPED, &err), 1);
    assert_int_equal(store_placement_generation(f->s), gen);

    struct {
        const char *what;
        int r;
    } writes[5];
    size_t n = 0;
#define BUMPS(call)                                                                                \
    do {                                                                                           \
        uint64_t before = store_placement_generation(f->s);                                        \
        writes[n].what = #call;                                                                    \
        writes[n].r = (call);                                                                      \
        if (writes[n].r != 0 || store_placement_generation(f->s) <= before)                        \
            fail_msg("%s did not bump the generation", #call);                                     \
        n++;                                                                                       \
    } while (0)
    Host b;
    make_host(&b, "node-b", "qemu+ssh://10.0.0.2/system");
    BUMPS(host_store_insert(f->s, &b, &err));
    BUMPS(vm_store_set_migration(f->s, vm.id, "node-b", &err));
    BUMPS(vm_store_move(f->s, vm.id, "node-b", &err));
    BUMPS(host_store_set_admin(f->s, h.id, HOST_ADMIN_DISABLED, &err));
    BUMPS(host_store_update(f->s, &h, &err));
#undef BUMPS
    assert_int_equal(n, 5);

    Task del;
    make_task(&del, TASK_KIND_VM_DELETE, vm.id);
    assert_int_equal(vm_store_claim(f->s, vm.id, &del, VM_POWER_DELETED, VM_STATE_DELETING, &err),
                     0);
    gen = store_placement_generation(f->s);
    assert_int_equal(task_store_finish_delete(f->s, &del, &err), 0);
    assert_true(store_placement_generation(f->s) > gen);
    gen = store_placement_generation(f->s);
    assert_int_equal(host_store_delete(f->s, h.id, &err), 0);
    assert_true(store_placement_generation(f->s) > gen);
}

/* 1000 hosts and 10,000 VMs: the sums come from one grouped pass, not a query per host. */
static void
test_host_list_scale(void **state)
{
    Fixture *f = *state;
    NbError *err = NULL;
    sqlite3 *db = NULL;
    store_close(f->s);
    f->s = NULL;
    /* Bulk rows straight into the file, in one transaction. */
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "BEGIN", NULL, NULL, NULL), SQLITE_OK);
    char sql[1024];
    for (int i = 0; i < 1000; i++) {
        snprintf(sql, sizeof(sql),
                 "INSERT INTO hosts (id, name, uri, created_at, updated_at) VALUES ('h%04d', "
                 "'node-%04d', 'qemu+ssh://10.1.%d.%d/system', 'x', 'x')",
                 i, i, i / 256, i % 256);
        assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    }
    for (int i = 0; i < 10000; i++) {
        /* VM i lives on node-(i % 1000); every tenth migrates to the next host. */
        int host = i % 1000, dest = (host + 1) % 1000;
        char migrate[32] = "NULL";
        if (i % 10 == 0)
            snprintf(migrate, sizeof(migrate), "'node-%04d'", dest);
        snprintf(sql, sizeof(sql),
                 "INSERT INTO vms (id, project, name, hostname, state, desired, host, image_id, "
                 "flavor_id, vcpus, ram_mib, disk_gib, mac, created_at, updated_at, migrate_to) "
                 "VALUES ('v%05d', '" NB_DEFAULT_PROJECT_ID "', 'vm-%05d', 'vm', 'running', "
                 "'running', 'node-%04d', '%s', '%s', 1, 256, 2, 'mac-%05d', 'x', 'x', %s)",
                 i, i, host, f->image.id, f->flavor.id, i, migrate);
        assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    }
    assert_int_equal(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    assert_int_equal(store_open(f->path, &f->s, &err), 0);

    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    Host *list = NULL;
    size_t n = 0;
    assert_int_equal(host_store_list(f->s, &list, &n, &err), 0);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
    print_message("host_store_list: %zu hosts, 10000 VMs in %.1f ms\n", n, ms);
    assert_int_equal(n, 1000);
    uint64_t vms = 0, vcpus = 0;
    for (size_t i = 0; i < n; i++) {
        vms += list[i].vms;
        vcpus += list[i].vcpus_used;
    }
    assert_int_equal(vms, 10000);
    assert_int_equal(vcpus, 11000); /* 1000 migrations claim twice */
    /* node-0001: 10 VMs placed, and the migrations of node-0000's VMs 0, 1000, ..., 9000. */
    Host *one = find_host(list, n, "node-0001");
    assert_int_equal(one->vms, 10);
    assert_int_equal(one->vcpus_used, 20);
    assert_int_equal(one->disk_used_gib, 40);
    free(list);

    clock_gettime(CLOCK_MONOTONIC, &t0);
    Host h;
    for (int i = 0; i < 100; i++)
        assert_int_equal(host_store_get(f->s, "node-0001", &h, &err), 0);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
    print_message("host_store_get: 100 gets in %.1f ms\n", ms);
    assert_int_equal(h.vcpus_used, 20);
    /* The timings are printed, never asserted: a get reads its own host's claims only (a full
     * pass would take ~15 ms each). */
}

/* ---- VMs ---- */

static void
test_vm_placement_columns(void **state)
{
    Fixture *f = *state;
    NbError *err = NULL;
    Vm a, b, c, got;
    insert_vm(f, "b", "node-a", NULL, 1, 256, 1, NULL, &b);
    insert_vm(f, "a", "node-a", NULL, 1, 256, 1, NULL, &a);
    insert_vm(f, "c", "node-b", NULL, 1, 256, 1, NULL, &c);
    Vm *list = NULL;
    size_t n = 0;
    assert_int_equal(vm_store_list_by_host(f->s, "node-a", &list, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_string_equal(list[0].name, "a");
    assert_string_equal(list[1].name, "b");
    vm_list_free(list, n);

    assert_int_equal(vm_store_mark_host_unknown(f->s, "node-a", &err), 0);
    assert_int_equal(vm_store_get(f->s, NULL, a.id, &got, &err), 0);
    assert_int_equal(got.state, VM_STATE_UNKNOWN);
    vm_clear(&got);
    assert_int_equal(vm_store_get(f->s, NULL, c.id, &got, &err), 0);
    assert_int_equal(got.state, VM_STATE_RUNNING);
    vm_clear(&got);

    /* Labels a VM asks for come back as they were given, sorted. */
    Vm l;
    Task t;
    memset(&l, 0, sizeof(l));
    nb_uuid_generate(l.id);
    snprintf(l.name, sizeof(l.name), "labelled");
    snprintf(l.hostname, sizeof(l.hostname), "labelled");
    snprintf(l.host, sizeof(l.host), "node-b");
    snprintf(l.project, sizeof(l.project), NB_DEFAULT_PROJECT_ID);
    snprintf(l.mac, sizeof(l.mac), "52:54:00:ff:00:01");
    memcpy(l.image_id, f->image.id, sizeof(l.image_id));
    memcpy(l.flavor_id, f->flavor.id, sizeof(l.flavor_id));
    l.vcpus = 1;
    l.ram_mib = 256;
    l.disk_gib = 1;
    assert_int_equal(labels_add_text(&l.labels, "zone=b", &err), 0);
    assert_int_equal(labels_add_text(&l.labels, "gpu=", &err), 0);
    nb_timestamp_now(l.created_at);
    memcpy(l.updated_at, l.created_at, sizeof(l.updated_at));
    make_task(&t, TASK_KIND_VM_CREATE, l.id);
    memcpy(l.task_id, t.id, sizeof(l.task_id));
    assert_int_equal(vm_store_insert_with_task(f->s, &l, &t, NULL, 0, NULL, &err), 0);
    assert_int_equal(vm_store_get(f->s, NULL, "labelled", &got, &err), 0);
    assert_int_equal(got.labels.n, 2);
    assert_string_equal(got.labels.item[0], "gpu=");
    assert_string_equal(got.labels.item[1], "zone=b");
    vm_clear(&got);
}

/* ---- groups ---- */

static void
make_group(Group *g, const char *project, const char *name, GroupPolicy policy)
{
    memset(g, 0, sizeof(*g));
    nb_uuid_generate(g->id);
    snprintf(g->project, sizeof(g->project), "%s", project);
    snprintf(g->name, sizeof(g->name), "%s", name);
    g->policy = policy;
    nb_timestamp_now(g->created_at);
}

static void
test_groups(void **state)
{
    Fixture *f = *state;
    NbError *err = NULL;
    Project other = {0};
    nb_uuid_generate(other.id);
    snprintf(other.name, sizeof(other.name), "team-b");
    for (int i = 0; i < _QUOTA_MAX; i++)
        other.quota.limit[i] = -1;
    nb_timestamp_now(other.created_at);
    assert_int_equal(project_store_insert(f->s, &other, &err), 0);

    Group web, dup, theirs, got;
    make_group(&web, NB_DEFAULT_PROJECT_ID, "web", GROUP_POLICY_ANTI_AFFINITY);
    assert_int_equal(group_store_insert(f->s, &web, &err), 0);
    make_group(&dup, NB_DEFAULT_PROJECT_ID, "web", GROUP_POLICY_AFFINITY);
    assert_int_equal(group_store_insert(f->s, &dup, &err), -1);
    expect_code(&err, NB_ERR_NAME_TAKEN);
    /* Names are per project. */
    make_group(&theirs, other.id, "web", GROUP_POLICY_AFFINITY);
    assert_int_equal(group_store_insert(f->s, &theirs, &err), 0);

    assert_int_equal(group_store_get(f->s, NB_DEFAULT_PROJECT_ID, "web", &got, &err), 0);
    assert_string_equal(got.id, web.id);
    assert_int_equal(got.policy, GROUP_POLICY_ANTI_AFFINITY);
    assert_int_equal(got.members, 0);
    assert_int_equal(group_store_get(f->s, other.id, "web", &got, &err), 0);
    assert_string_equal(got.id, theirs.id);
    /* Another project's group is not found, by id or name. */
    assert_int_equal(group_store_get(f->s, other.id, web.id, &got, &err), -1);
    expect_code(&err, NB_ERR_GROUP_NOT_FOUND);
    assert_int_equal(group_store_get(f->s, NB_DEFAULT_PROJECT_ID, "nope", &got, &err), -1);
    expect_code(&err, NB_ERR_GROUP_NOT_FOUND);
    assert_int_equal(group_store_get(f->s, NULL, theirs.id, &got, &err), 0);
    Group *list = NULL;
    size_t n = 0;
    assert_int_equal(group_store_list(f->s, NB_DEFAULT_PROJECT_ID, &list, &n, &err), 0);
    assert_int_equal(n, 1);
    free(list);
    assert_int_equal(group_store_list(f->s, NULL, &list, &n, &err), 0);
    assert_int_equal(n, 2);
    free(list);

    /* Members: two on node-a, one on node-b migrating to node-c. */
    Vm a, b, c;
    insert_vm(f, "a", "node-a", NULL, 1, 256, 1, web.id, &a);
    insert_vm(f, "b", "node-a", NULL, 1, 256, 1, web.id, &b);
    insert_vm(f, "c", "node-b", NULL, 1, 256, 1, web.id, &c);
    Vm loner;
    insert_vm(f, "loner", "node-c", NULL, 1, 256, 1, NULL, &loner);
    assert_int_equal(vm_store_set_migration(f->s, c.id, "node-c", &err), 0);
    assert_int_equal(group_store_get(f->s, NULL, web.id, &got, &err), 0);
    assert_int_equal(got.members, 3);
    HostCount *counts = NULL;
    assert_int_equal(group_store_member_hosts(f->s, web.id, &counts, &n, &err), 0);
    assert_int_equal(n, 3);
    assert_string_equal(counts[0].host, "node-a");
    assert_int_equal(counts[0].n, 2);
    assert_string_equal(counts[1].host, "node-b");
    assert_int_equal(counts[1].n, 1);
    assert_string_equal(counts[2].host, "node-c");
    assert_int_equal(counts[2].n, 1);
    free(counts);
    Vm *members = NULL;
    assert_int_equal(vm_store_list_by_group(f->s, web.id, &members, &n, &err), 0);
    assert_int_equal(n, 3);
    assert_string_equal(members[0].name, "a");
    assert_string_equal(members[0].group_id, web.id);
    vm_list_free(members, n);

    /* A VM cannot join another project's group. */
    Vm sneaky;
    memset(&sneaky, 0, sizeof(sneaky));
    Task t;
    nb_uuid_generate(sneaky.id);
    snprintf(sneaky.name, sizeof(sneaky.name), "sneaky");
    snprintf(sneaky.hostname, sizeof(sneaky.hostname), "sneaky");
    snprintf(sneaky.host, sizeof(sneaky.host), "node-a");
    snprintf(sneaky.project, sizeof(sneaky.project), NB_DEFAULT_PROJECT_ID);
    snprintf(sneaky.mac, sizeof(sneaky.mac), "52:54:00:ee:00:01");
    memcpy(sneaky.group_id, theirs.id, sizeof(sneaky.group_id));
    memcpy(sneaky.image_id, f->image.id, sizeof(sneaky.image_id));
    memcpy(sneaky.flavor_id, f->flavor.id, sizeof(sneaky.flavor_id));
    nb_timestamp_now(sneaky.created_at);
    memcpy(sneaky.updated_at, sneaky.created_at, sizeof(sneaky.updated_at));
    make_task(&t, TASK_KIND_VM_CREATE, sneaky.id);
    memcpy(sneaky.task_id, t.id, sizeof(sneaky.task_id));
    assert_int_equal(vm_store_insert_with_task(f->s, &sneaky, &t, NULL, 0, NULL, &err), -1);
    expect_code(&err, NB_ERR_GROUP_NOT_FOUND);
    Task none;
    assert_int_equal(task_store_get(f->s, NULL, t.id, &none, &err), -1);
    expect_code(&err, NB_ERR_TASK_NOT_FOUND);

    /* Not while it has members. */
    assert_int_equal(group_store_delete(f->s, web.id, &err), -1);
    expect_code(&err, NB_ERR_GROUP_NOT_EMPTY);
    const Vm *gone[] = {&a, &b, &c};
    for (size_t i = 0; i < 3; i++) {
        Task del;
        make_task(&del, TASK_KIND_VM_DELETE, gone[i]->id);
        assert_int_equal(
            vm_store_claim(f->s, gone[i]->id, &del, VM_POWER_DELETED, VM_STATE_DELETING, &err), 0);
        assert_int_equal(task_store_finish_delete(f->s, &del, &err), 0);
    }
    assert_int_equal(group_store_member_hosts(f->s, web.id, &counts, &n, &err), 0);
    assert_int_equal(n, 0);
    free(counts);
    assert_int_equal(group_store_delete(f->s, web.id, &err), 0);
    assert_int_equal(group_store_delete(f->s, web.id, &err), -1);
    expect_code(&err, NB_ERR_GROUP_NOT_FOUND);
}

/* ---- tasks ---- */

static void
test_task_cancel(void **state)
{
    Fixture *f = *state;
    NbError *err = NULL;
    Project other = {0};
    nb_uuid_generate(other.id);
    snprintf(other.name, sizeof(other.name), "team-b");
    for (int i = 0; i < _QUOTA_MAX; i++)
        other.quota.limit[i] = -1;
    nb_timestamp_now(other.created_at);
    assert_int_equal(project_store_insert(f->s, &other, &err), 0);

    Vm vm, got;
    insert_vm(f, "web1", "node-a", NULL, 2, 512, 4, NULL, &vm);
    Task stop, mig, t;
    make_task(&stop, TASK_KIND_VM_STOP, vm.id);
    assert_int_equal(vm_store_claim(f->s, vm.id, &stop, VM_POWER_STOPPED, -1, &err), 0);
    /* Only migrations can be cancelled. */
    assert_int_equal(task_store_request_cancel(f->s, NULL, stop.id, &t, &err), -1);
    expect_code(&err, NB_ERR_TASK_NOT_CANCELLABLE);
    assert_false(task_store_cancel_requested(f->s, stop.id));
    assert_int_equal(task_store_finish(f->s, &stop, TASK_STATE_SUCCEEDED, NULL, NULL,
                                       VM_STATE_STOPPED, -1, NULL, &err),
                     0);

    /* The migration claims its VM and its destination in one go. */
    make_task(&mig, TASK_KIND_VM_MIGRATE, vm.id);
    uint64_t gen = store_placement_generation(f->s);
    assert_int_equal(
        vm_store_claim_for_migration(f->s, vm.id, &mig, VM_POWER_STOPPED, "node-b", &err), 0);
    assert_true(store_placement_generation(f->s) > gen);
    assert_int_equal(vm_store_get(f->s, NULL, vm.id, &got, &err), 0);
    assert_string_equal(got.migrate_to, "node-b");
    assert_string_equal(got.task_id, mig.id);
    assert_int_equal(got.state, VM_STATE_STOPPED);
    vm_clear(&got);
    Task other_task;
    make_task(&other_task, TASK_KIND_VM_MIGRATE, vm.id);
    assert_int_equal(
        vm_store_claim_for_migration(f->s, vm.id, &other_task, VM_POWER_STOPPED, "node-c", &err),
        -1);
    expect_code(&err, NB_ERR_VM_BUSY);

    /* Progress: within a step, reset by the next step. */
    assert_int_equal(task_store_get(f->s, NULL, mig.id, &t, &err), 0);
    assert_int_equal(t.progress, -1);
    task_clear(&t);
    assert_int_equal(task_store_set_progress(f->s, mig.id, 42, &err), 0);
    assert_int_equal(task_store_get(f->s, NULL, mig.id, &t, &err), 0);
    assert_int_equal(t.progress, 42);
    task_clear(&t);
    assert_int_equal(task_store_set_step(f->s, mig.id, 1, &err), 0);
    assert_int_equal(task_store_get(f->s, NULL, mig.id, &t, &err), 0);
    assert_int_equal(t.progress, -1);
    assert_int_equal(t.step, 1);
    task_clear(&t);
    assert_int_equal(task_store_set_progress(f->s, mig.id, 101, &err), -1);
    expect_code(&err, NB_ERR_INTERNAL);
    assert_int_equal(task_store_set_params(f->s, mig.id, "{\"shared\":1}", &err), 0);
    assert_int_equal(task_store_get(f->s, NULL, mig.id, &t, &err), 0);
    assert_string_equal(t.params, "{\"shared\":1}");
    task_clear(&t);

    /* Scoped like task_store_get. */
    assert_int_equal(task_store_request_cancel(f->s, other.id, mig.id, &t, &err), -1);
    expect_code(&err, NB_ERR_TASK_NOT_FOUND);
    assert_int_equal(task_store_request_cancel(f->s, NULL, "nope", &t, &err), -1);
    expect_code(&err, NB_ERR_TASK_NOT_FOUND);
    assert_false(task_store_cancel_requested(f->s, mig.id));
    assert_int_equal(task_store_request_cancel(f->s, NB_DEFAULT_PROJECT_ID, mig.id, &t, &err), 0);
    assert_true(t.cancel_requested);
    assert_int_equal(t.kind, TASK_KIND_VM_MIGRATE);
    task_clear(&t);
    assert_true(task_store_cancel_requested(f->s, mig.id));
    /* Twice is fine. */
    assert_int_equal(task_store_request_cancel(f->s, NULL, mig.id, &t, &err), 0);
    assert_true(t.cancel_requested);
    task_clear(&t);

    /* Finished: no longer cancellable. */
    assert_int_equal(vm_store_set_migration(f->s, vm.id, NULL, &err), 0);
    assert_int_equal(task_store_finish(f->s, &mig, TASK_STATE_FAILED, NB_ERR_CANCELLED, "cancelled",
                                       -1, -1, NULL, &err),
                     0);
    assert_int_equal(task_store_request_cancel(f->s, NULL, mig.id, &t, &err), -1);
    expect_code(&err, NB_ERR_TASK_NOT_CANCELLABLE);
    assert_false(task_store_cancel_requested(f->s, "nope"));
}

/* ---- image copies ---- */

static void
test_image_copies(void **state)
{
    Fixture *f = *state;
    NbError *err = NULL;
    assert_int_equal(image_copy_get(f->s, f->image.id, "node-a", &err), IMAGE_COPY_NONE);
    assert_int_equal(image_copy_set(f->s, f->image.id, "node-b", IMAGE_COPY_COPYING, &err), 0);
    assert_int_equal(image_copy_set(f->s, f->image.id, "node-a", IMAGE_COPY_COPYING, &err), 0);
    assert_int_equal(image_copy_set(f->s, f->image.id, "node-a", IMAGE_COPY_READY, &err), 0);
    assert_int_equal(image_copy_get(f->s, f->image.id, "node-a", &err), IMAGE_COPY_READY);
    assert_int_equal(image_copy_get(f->s, f->image.id, "node-b", &err), IMAGE_COPY_COPYING);
    char **hosts = NULL;
    assert_int_equal(image_copy_list(f->s, f->image.id, &hosts, &err), 0);
    assert_string_equal(hosts[0], "node-a");
    assert_string_equal(hosts[1], "node-b");
    assert_null(hosts[2]);
    for (size_t i = 0; hosts[i]; i++)
        free(hosts[i]);
    free(hosts);
    assert_int_equal(image_copy_delete(f->s, f->image.id, "node-a", &err), 0);
    assert_int_equal(image_copy_delete(f->s, f->image.id, "node-b", &err), 0);
    assert_int_equal(image_copy_set(f->s, f->image.id, "node-b", IMAGE_COPY_NONE, &err), -1);
    expect_code(&err, NB_ERR_INTERNAL);
    assert_int_equal(image_copy_list(f->s, f->image.id, &hosts, &err), 0);
    assert_null(hosts[0]);
    free(hosts);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_migrate_from_v2, setup_empty, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_host_allocations, setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_host_unique, setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_host_writes, setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_host_delete, setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_ensure_local, setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_set_facts, setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_placement_generation, setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_host_list_scale, setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_vm_placement_columns, setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_groups, setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_task_cancel, setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_image_copies, setup, fixture_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
