#include "store_fixture.h"

static int
setup(void **state)
{
    Fixture *f = fixture_new("store");
    fixture_open_seeded(f, IMAGE_STATE_QUEUED);
    *state = f;
    return 0;
}

static void
make_vm(Fixture *f, const char *name, const char *mac, Vm *vm, Task *task)
{
    memset(vm, 0, sizeof(*vm));
    nb_uuid_generate(vm->id);
    snprintf(vm->name, sizeof(vm->name), "%s", name);
    snprintf(vm->hostname, sizeof(vm->hostname), "%s", name);
    snprintf(vm->host, sizeof(vm->host), "local");
    snprintf(vm->project, sizeof(vm->project), NB_DEFAULT_PROJECT_ID);
    snprintf(vm->mac, sizeof(vm->mac), "%s", mac);
    memcpy(vm->image_id, f->image.id, sizeof(vm->image_id));
    memcpy(vm->flavor_id, f->flavor.id, sizeof(vm->flavor_id));
    vm->state = VM_STATE_BUILDING;
    vm->desired = VM_POWER_RUNNING;
    vm->vcpus = 1;
    vm->ram_mib = 256;
    vm->disk_gib = 1;
    nb_timestamp_now(vm->created_at);
    memcpy(vm->updated_at, vm->created_at, sizeof(vm->updated_at));
    memset(task, 0, sizeof(*task));
    nb_uuid_generate(task->id);
    task->kind = TASK_KIND_VM_CREATE;
    task->state = TASK_STATE_PENDING;
    task->steps = 4;
    memcpy(task->target_id, vm->id, sizeof(task->target_id));
    nb_timestamp_now(task->created_at);
    memcpy(task->updated_at, task->created_at, sizeof(task->updated_at));
    memcpy(vm->task_id, task->id, sizeof(vm->task_id));
}

static void
test_schema_version(void **state)
{
    Fixture *f = *state;
    assert_int_equal(store_schema_version(f->s), 15);
}

static uint64_t
stats_total(const StoreStats *st, StoreTxKind k)
{
    uint64_t n = 0;
    for (int i = 0; i <= STORE_LATENCY_BUCKETS; i++)
        n += st->tx[k].counts[i];
    return n;
}

/* Each write transaction is counted once, committed or rolled back, and each read once. */
static void
test_stats(void **state)
{
    Fixture *f = *state;
    NbError *err = NULL;
    StoreStats before, after;
    store_stats(&before);
    assert_string_equal(before.tx[STORE_TX_WRITE].kind, "write");
    assert_string_equal(before.tx[STORE_TX_READ].kind, "read");
    for (int i = 1; i < STORE_LATENCY_BUCKETS; i++)
        assert_true(before.bounds[i] > before.bounds[i - 1]);
    /* Opening the store migrated its schema in transactions. */
    assert_true(stats_total(&before, STORE_TX_WRITE) >= 7);

    Vm a, b;
    Task ta, tb;
    make_vm(f, "web", "52:54:00:00:00:a1", &a, &ta);
    make_vm(f, "web", "52:54:00:00:00:a2", &b, &tb);
    assert_int_equal(vm_store_insert_with_task(f->s, &a, &ta, NULL, 0, NULL, &err), 0);
    assert_int_equal(vm_store_insert_with_task(f->s, &b, &tb, NULL, 0, NULL, &err), -1);
    expect_code(&err, NB_ERR_NAME_TAKEN);
    store_stats(&after);
    assert_int_equal(stats_total(&after, STORE_TX_WRITE), stats_total(&before, STORE_TX_WRITE) + 2);
    assert_int_equal(stats_total(&after, STORE_TX_READ), stats_total(&before, STORE_TX_READ));
    assert_true(after.tx[STORE_TX_WRITE].sum > before.tx[STORE_TX_WRITE].sum);

    before = after;
    Vm got;
    assert_int_equal(vm_store_get(f->s, NULL, a.id, &got, &err), 0);
    vm_clear(&got);
    store_stats(&after);
    assert_int_equal(stats_total(&after, STORE_TX_READ), stats_total(&before, STORE_TX_READ) + 1);
    assert_int_equal(stats_total(&after, STORE_TX_WRITE), stats_total(&before, STORE_TX_WRITE));
}

static void
test_names_unique(void **state)
{
    Fixture *f = *state;
    NbError *err = NULL;
    Flavor dup = f->flavor;
    nb_uuid_generate(dup.id);
    assert_int_equal(flavor_store_insert(f->s, &dup, &err), -1);
    expect_code(&err, NB_ERR_NAME_TAKEN);

    Vm a, b;
    Task ta, tb;
    make_vm(f, "web1", "52:54:00:00:00:01", &a, &ta);
    make_vm(f, "web1", "52:54:00:00:00:02", &b, &tb);
    assert_int_equal(vm_store_insert_with_task(f->s, &a, &ta, NULL, 0, NULL, &err), 0);
    assert_int_equal(vm_store_insert_with_task(f->s, &b, &tb, NULL, 0, NULL, &err), -1);
    expect_code(&err, NB_ERR_NAME_TAKEN);
    /* The failed insert left no task behind. */
    Task t;
    assert_int_equal(task_store_get(f->s, NULL, tb.id, &t, &err), -1);
    expect_code(&err, NB_ERR_TASK_NOT_FOUND);

    make_vm(f, "web2", "52:54:00:00:00:01", &b, &tb);
    assert_int_equal(vm_store_insert_with_task(f->s, &b, &tb, NULL, 0, NULL, &err), -1);
    expect_code(&err, NB_ERR_MAC_TAKEN);
}

static void
test_claim_is_exclusive(void **state)
{
    Fixture *f = *state;
    NbError *err = NULL;
    Vm vm, got;
    Task create, stop, start;
    make_vm(f, "web1", "52:54:00:00:00:01", &vm, &create);
    assert_int_equal(vm_store_insert_with_task(f->s, &vm, &create, NULL, 0, NULL, &err), 0);

    /* Held by its create task: another claim is refused and inserts no task. */
    memset(&stop, 0, sizeof(stop));
    nb_uuid_generate(stop.id);
    stop.kind = TASK_KIND_VM_STOP;
    stop.steps = 1;
    memcpy(stop.target_id, vm.id, sizeof(stop.target_id));
    assert_int_equal(vm_store_claim(f->s, vm.id, &stop, VM_POWER_STOPPED, -1, &err), -1);
    expect_code(&err, NB_ERR_VM_BUSY);
    Task t;
    assert_int_equal(task_store_get(f->s, NULL, stop.id, &t, &err), -1);
    expect_code(&err, NB_ERR_TASK_NOT_FOUND);

    /* The reconciler may not touch a VM a task holds. */
    assert_int_equal(vm_store_observe(f->s, vm.id, VM_STATE_STOPPED, -1, &err), 0);

    assert_int_equal(task_store_set_step(f->s, create.id, 3, &err), 0);
    assert_int_equal(task_store_finish(f->s, &create, TASK_STATE_SUCCEEDED, NULL, NULL,
                                       VM_STATE_RUNNING, VM_POWER_RUNNING, NULL, &err),
                     0);
    assert_int_equal(vm_store_get(f->s, NULL, "web1", &got, &err), 0);
    assert_string_equal(got.task_id, "");
    assert_int_equal(got.state, VM_STATE_RUNNING);
    vm_clear(&got);
    assert_int_equal(task_store_get(f->s, NULL, create.id, &t, &err), 0);
    assert_int_equal(t.state, TASK_STATE_SUCCEEDED);
    assert_int_equal(t.step, 3);
    assert_true(t.finished_at[0] != '\0');
    task_clear(&t);

    assert_int_equal(vm_store_claim(f->s, vm.id, &stop, VM_POWER_STOPPED, -1, &err), 0);
    start = stop;
    nb_uuid_generate(start.id);
    assert_int_equal(vm_store_claim(f->s, vm.id, &start, VM_POWER_RUNNING, -1, &err), -1);
    expect_code(&err, NB_ERR_VM_BUSY);
    assert_int_equal(vm_store_get(f->s, NULL, vm.id, &got, &err), 0);
    assert_string_equal(got.task_id, stop.id);
    assert_int_equal(got.desired, VM_POWER_STOPPED);
    vm_clear(&got);
}

static void
test_observe_and_delete(void **state)
{
    Fixture *f = *state;
    NbError *err = NULL;
    Vm vm, got;
    Task create;
    make_vm(f, "web1", "52:54:00:00:00:01", &vm, &create);
    assert_int_equal(vm_store_insert_with_task(f->s, &vm, &create, NULL, 0, NULL, &err), 0);
    assert_int_equal(task_store_finish(f->s, &create, TASK_STATE_SUCCEEDED, NULL, NULL,
                                       VM_STATE_RUNNING, VM_POWER_RUNNING, NULL, &err),
                     0);
    assert_int_equal(vm_store_observe(f->s, vm.id, VM_STATE_STOPPED, VM_POWER_STOPPED, &err), 1);
    assert_int_equal(vm_store_observe(f->s, vm.id, VM_STATE_STOPPED, VM_POWER_STOPPED, &err), 0);
    assert_int_equal(vm_store_get(f->s, NULL, vm.id, &got, &err), 0);
    assert_int_equal(got.state, VM_STATE_STOPPED);
    assert_int_equal(got.desired, VM_POWER_STOPPED);
    vm_clear(&got);

    /* In use: neither image nor flavor can go. */
    assert_int_equal(image_store_delete(f->s, f->image.id, &err), -1);
    expect_code(&err, NB_ERR_IMAGE_IN_USE);
    assert_int_equal(flavor_store_delete(f->s, f->flavor.id, &err), -1);
    expect_code(&err, NB_ERR_FLAVOR_IN_USE);

    Task del = create;
    nb_uuid_generate(del.id);
    del.kind = TASK_KIND_VM_DELETE;
    assert_int_equal(vm_store_claim(f->s, vm.id, &del, VM_POWER_DELETED, VM_STATE_DELETING, &err),
                     0);
    Task *unfinished = NULL;
    size_t n = 0;
    assert_int_equal(task_store_list_unfinished(f->s, &unfinished, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_string_equal(unfinished[0].id, del.id);
    task_list_free(unfinished, n);
    assert_int_equal(task_store_finish_delete(f->s, &del, &err), 0);
    assert_int_equal(vm_store_get(f->s, NULL, vm.id, &got, &err), -1);
    expect_code(&err, NB_ERR_VM_NOT_FOUND);
    assert_int_equal(image_store_delete(f->s, f->image.id, &err), 0);
    assert_int_equal(flavor_store_delete(f->s, f->flavor.id, &err), 0);
}

static void
test_image_transitions(void **state)
{
    Fixture *f = *state;
    NbError *err = NULL;
    assert_int_equal(
        image_store_transition(f->s, f->image.id, IMAGE_STATE_QUEUED, IMAGE_STATE_UPLOADING, &err),
        0);
    /* A second upload loses the race. */
    assert_int_equal(
        image_store_transition(f->s, f->image.id, IMAGE_STATE_QUEUED, IMAGE_STATE_UPLOADING, &err),
        -1);
    expect_code(&err, NB_ERR_IMAGE_ALREADY_UPLOADED);
    Image *list = NULL;
    size_t n = 0;
    assert_int_equal(image_store_list_uploading(f->s, &list, &n, &err), 0);
    assert_int_equal(n, 1);
    free(list);
}

static void
test_reopen_keeps_data(void **state)
{
    Fixture *f = *state;
    NbError *err = NULL;
    store_close(f->s);
    assert_int_equal(store_open(f->path, &f->s, &err), 0);
    assert_int_equal(store_schema_version(f->s), 15);
    Flavor got;
    assert_int_equal(flavor_store_get(f->s, "small", &got, &err), 0);
    assert_string_equal(got.id, f->flavor.id);
    assert_int_equal(flavor_store_get(f->s, f->flavor.id, &got, &err), 0);
}

static void
test_tokens(void **state)
{
    Fixture *f = *state;
    NbError *err = NULL;
    TokenInfo t = {0};
    Principal who;
    snprintf(t.id, sizeof(t.id), "t1");
    snprintf(t.name, sizeof(t.name), "test");
    snprintf(t.user_id, sizeof(t.user_id), NB_ADMIN_USER_ID);
    nb_timestamp_now(t.created_at);
    assert_int_equal(token_store_count(f->s, &err), 0);
    assert_int_equal(token_store_insert(f->s, &t, "abcd", &err), 0);
    assert_int_equal(token_store_count(f->s, &err), 1);
    assert_int_equal(token_store_lookup(f->s, "abcd", &who), 1);
    assert_string_equal(who.user_name, "admin");
    assert_int_equal(who.role, ROLE_ADMIN);
    assert_string_equal(who.project_id, NB_DEFAULT_PROJECT_ID);
    assert_int_equal(token_store_lookup(f->s, "abce", &who), 0);
    assert_int_equal(token_store_lookup(f->s, "' OR 1=1 --", &who), 0);

    /* Expired and revoked tokens are refused. */
    snprintf(t.id, sizeof(t.id), "t2");
    nb_timestamp_format(nb_epoch_now() - 1, t.expires_at);
    assert_int_equal(token_store_insert(f->s, &t, "dead", &err), 0);
    assert_int_equal(token_store_lookup(f->s, "dead", &who), 0);
    assert_int_equal(token_store_revoke(f->s, "t1", "someone-else", &err), -1);
    assert_string_equal(err->code, NB_ERR_TOKEN_NOT_FOUND);
    nb_error_free(err);
    err = NULL;
    assert_int_equal(token_store_lookup(f->s, "abcd", &who), 1);
    assert_int_equal(token_store_revoke(f->s, "t1", NB_ADMIN_USER_ID, &err), 0);
    assert_int_equal(token_store_lookup(f->s, "abcd", &who), 0);
}

static void
test_project_scope_and_quota(void **state)
{
    Fixture *f = *state;
    NbError *err = NULL;
    Project a = {0};
    nb_uuid_generate(a.id);
    snprintf(a.name, sizeof(a.name), "team-a");
    for (int i = 0; i < _QUOTA_MAX; i++)
        a.quota.limit[i] = -1;
    a.quota.limit[QUOTA_VMS] = 1;
    nb_timestamp_now(a.created_at);
    assert_int_equal(project_store_insert(f->s, &a, &err), 0);

    Vm vm, got;
    Task t;
    make_vm(f, "web1", "52:54:00:00:00:01", &vm, &t);
    memcpy(vm.project, a.id, sizeof(vm.project));
    assert_int_equal(vm_store_insert_with_task(f->s, &vm, &t, NULL, 0, NULL, &err), 0);
    /* The task inherits its VM's project. */
    Task got_task;
    assert_int_equal(task_store_get(f->s, a.id, t.id, &got_task, &err), 0);
    assert_string_equal(got_task.project, a.id);
    task_clear(&got_task);

    /* Another project sees nothing of it, by id or by name. */
    assert_int_equal(vm_store_get(f->s, NB_DEFAULT_PROJECT_ID, vm.id, &got, &err), -1);
    expect_code(&err, NB_ERR_VM_NOT_FOUND);
    assert_int_equal(vm_store_get(f->s, NB_DEFAULT_PROJECT_ID, "web1", &got, &err), -1);
    expect_code(&err, NB_ERR_VM_NOT_FOUND);
    assert_int_equal(task_store_get(f->s, NB_DEFAULT_PROJECT_ID, t.id, &got_task, &err), -1);
    expect_code(&err, NB_ERR_TASK_NOT_FOUND);
    Vm *list = NULL;
    size_t n = 0;
    assert_int_equal(vm_store_list(f->s, NB_DEFAULT_PROJECT_ID, &list, &n, &err), 0);
    assert_int_equal(n, 0);
    vm_list_free(list, n);
    assert_int_equal(vm_store_get(f->s, a.id, "web1", &got, &err), 0);
    vm_clear(&got);

    /* vms=1: the second VM is refused, and nothing of it is left. */
    Vm second;
    Task t2;
    make_vm(f, "web2", "52:54:00:00:00:02", &second, &t2);
    memcpy(second.project, a.id, sizeof(second.project));
    assert_int_equal(vm_store_insert_with_task(f->s, &second, &t2, NULL, 0, NULL, &err), -1);
    expect_code(&err, NB_ERR_QUOTA_EXCEEDED);
    assert_int_equal(task_store_get(f->s, NULL, t2.id, &got_task, &err), -1);
    expect_code(&err, NB_ERR_TASK_NOT_FOUND);
    int64_t in_use[_QUOTA_MAX];
    assert_int_equal(project_store_quota_usage(f->s, a.id, in_use, &err), 0);
    assert_int_equal(in_use[QUOTA_VMS], 1);
    assert_int_equal(in_use[QUOTA_RAM_MIB], 256);

    assert_int_equal(project_store_delete(f->s, a.id, &err), -1);
    expect_code(&err, NB_ERR_PROJECT_NOT_EMPTY);
}

static void
test_usage_from_history(void **state)
{
    Fixture *f = *state;
    NbError *err = NULL;
    Vm vm;
    Task t;
    make_vm(f, "web1", "52:54:00:00:00:01", &vm, &t);
    double t0 = nb_epoch_now();
    assert_int_equal(vm_store_insert_with_task(f->s, &vm, &t, NULL, 0, NULL, &err), 0);
    assert_int_equal(task_store_finish(f->s, &t, TASK_STATE_SUCCEEDED, NULL, NULL, VM_STATE_RUNNING,
                                       VM_POWER_RUNNING, NULL, &err),
                     0);
    VmUsage *u = NULL;
    size_t n = 0;
    /* An hour from now: the VM has been running all along (it still is). */
    assert_int_equal(usage_store_compute(f->s, NB_DEFAULT_PROJECT_ID, t0 - 10, t0 + 3600, t0 + 3600,
                                         &u, &n, &err),
                     0);
    assert_int_equal(n, 1);
    /* Event times have millisecond resolution: allow that much either side. */
    assert_true(u[0].vcpu_hours > 0.99 && u[0].vcpu_hours < 1.001);
    assert_true(u[0].ram_gib_hours > 0.24 && u[0].ram_gib_hours < 0.2501);
    assert_true(u[0].disk_gib_hours > 0.99 && u[0].disk_gib_hours < 1.001);
    free(u);
    /* Stopped: running time stops accruing, disk time does not. */
    assert_int_equal(vm_store_observe(f->s, vm.id, VM_STATE_STOPPED, VM_POWER_STOPPED, &err), 1);
    assert_int_equal(usage_store_compute(f->s, NB_DEFAULT_PROJECT_ID, t0 - 10, t0 + 7200, t0 + 7200,
                                         &u, &n, &err),
                     0);
    assert_int_equal(n, 1);
    assert_true(u[0].vcpu_hours < 0.01);
    assert_true(u[0].disk_gib_hours > 1.99);
    free(u);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_schema_version, setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_stats, setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_names_unique, setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_claim_is_exclusive, setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_observe_and_delete, setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_image_transitions, setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_reopen_keeps_data, setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_tokens, setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_project_scope_and_quota, setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_usage_from_history, setup, fixture_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
