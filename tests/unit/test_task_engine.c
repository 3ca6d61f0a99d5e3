/*
 * The task engine (src/core/task.c) with a handler table of the test's own: a task that waits
 * by timer holds no worker, its TaskRun survives between turns, and a stop does not wait for
 * waiting tasks (a stop that did would hang here for an hour, past the test's timeout), nor
 * past its deadline for a step that does not return.
 */
#include <pthread.h>

#include "core/core.h"
#include "store_fixture.h"

/* What the handler saw of the tasks, in the order they ended. */
static pthread_mutex_t seen_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t seen_cond = PTHREAD_COND_INITIALIZER;
static char finished[8][NB_UUID_STRLEN];
static int n_finished;
static int turns; /* runs of "wait" tasks */
static int long_turns;
static bool run_kept = true; /* the TaskRun came back as the handler left it */
static bool stuck_released;  /* lets a "stuck" step return */

static int
fake_step_count(TaskKind kind)
{
    return 1;
}

/* params: "wait" (three timer turns of 20 ms, then done), "long" (waits an hour, forever),
 * "stuck" (a step that does not return until stuck_released), or anything else (done at once). */
static int64_t
fake_run(Core *core, Task *task, TaskRun *run)
{
    NbError *err = NULL;
    const char *p = task->params ? task->params : "";
    if (strcmp(p, "stuck") == 0) {
        pthread_mutex_lock(&seen_lock);
        long_turns++;
        pthread_cond_broadcast(&seen_cond);
        while (!stuck_released)
            pthread_cond_wait(&seen_cond, &seen_lock);
        pthread_mutex_unlock(&seen_lock);
        return TASK_RUN_DONE;
    }
    if (strcmp(p, "long") == 0) {
        pthread_mutex_lock(&seen_lock);
        long_turns++;
        pthread_cond_broadcast(&seen_cond);
        pthread_mutex_unlock(&seen_lock);
        return 3600 * 1000;
    }
    if (strcmp(p, "wait") == 0) {
        pthread_mutex_lock(&seen_lock);
        int turn = turns++;
        if (turn == 0 && run->wait_since_ms != 0)
            run_kept = false;
        if (turn > 0 && run->wait_since_ms != 4242)
            run_kept = false;
        pthread_mutex_unlock(&seen_lock);
        run->wait_since_ms = 4242;
        if (turn < 3)
            return 20;
    }
    assert_int_equal(
        task_store_finish(core->store, task, TASK_STATE_SUCCEEDED, NULL, NULL, -1, -1, NULL, &err),
        0);
    pthread_mutex_lock(&seen_lock);
    memcpy(finished[n_finished++], task->id, NB_UUID_STRLEN);
    pthread_cond_broadcast(&seen_cond);
    pthread_mutex_unlock(&seen_lock);
    return TASK_RUN_DONE;
}

static const TaskHandler fake_handler = {TASK_KIND_VM_STOP, fake_step_count, fake_run};

const TaskHandler *
task_handlers_find(TaskKind kind)
{
    return kind == TASK_KIND_VM_STOP ? &fake_handler : NULL;
}

typedef struct EngineFixture {
    Fixture *f;
    Core core;
} EngineFixture;

static int
setup(void **state)
{
    EngineFixture *ef = calloc(1, sizeof(*ef));
    assert_non_null(ef);
    ef->f = fixture_new("tasks");
    fixture_open_seeded(ef->f, IMAGE_STATE_ACTIVE);
    ef->core.store = ef->f->s;
    n_finished = turns = long_turns = 0;
    run_kept = true;
    stuck_released = false;
    *state = ef;
    return 0;
}

static int
teardown(void **state)
{
    EngineFixture *ef = *state;
    void *f = ef->f;
    free(ef);
    return fixture_teardown(&f);
}

/* A pending task (params as given) holding a VM of its own. */
static void
add_task(EngineFixture *ef, const char *name, const char *params, Task *t)
{
    NbError *err = NULL;
    Vm vm;
    insert_vm(ef->f, name, "local", NULL, 1, 256, 1, NULL, &vm);
    task_new(t, TASK_KIND_VM_STOP, vm.id, params);
    assert_int_equal(t->steps, 1);
    assert_int_equal(vm_store_claim(ef->f->s, vm.id, t, VM_POWER_STOPPED, -1, &err), 0);
}

static void
wait_finished(int n)
{
    pthread_mutex_lock(&seen_lock);
    while (n_finished < n)
        pthread_cond_wait(&seen_cond, &seen_lock);
    pthread_mutex_unlock(&seen_lock);
}

static void
test_waiting_task_holds_no_worker(void **state)
{
    EngineFixture *ef = *state;
    NbError *err = NULL;
    Task a, b;
    add_task(ef, "a", "wait", &a);
    add_task(ef, "b", NULL, &b);
    ef->core.cfg.workers = 1;
    assert_int_equal(task_engine_start(&ef->core, &ef->core.tasks, &err), 0);
    task_engine_submit(ef->core.tasks, a.id);
    task_engine_submit(ef->core.tasks, b.id);
    wait_finished(2);
    assert_int_equal(task_engine_stop(ef->core.tasks, TASK_STOP_DEADLINE_MS), 0);
    /* One worker: b could only end first if a's waits left the worker free. */
    assert_string_equal(finished[0], b.id);
    assert_string_equal(finished[1], a.id);
    assert_int_equal(turns, 4);
    assert_true(run_kept);
    Task got;
    assert_int_equal(task_store_get(ef->f->s, NULL, a.id, &got, &err), 0);
    assert_int_equal(got.state, TASK_STATE_SUCCEEDED);
    task_clear(&got);
    task_clear(&a);
    task_clear(&b);
}

static void
test_stop_does_not_wait_for_timers(void **state)
{
    EngineFixture *ef = *state;
    NbError *err = NULL;
    Task t, quick;
    add_task(ef, "long", "long", &t);
    add_task(ef, "quick", NULL, &quick);
    ef->core.cfg.workers = 4;
    assert_int_equal(task_engine_start(&ef->core, &ef->core.tasks, &err), 0);
    task_engine_submit(ef->core.tasks, t.id);
    task_engine_submit(ef->core.tasks, quick.id);
    wait_finished(1);
    pthread_mutex_lock(&seen_lock);
    while (long_turns < 1)
        pthread_cond_wait(&seen_cond, &seen_lock);
    pthread_mutex_unlock(&seen_lock);
    assert_int_equal(task_engine_stop(ef->core.tasks, TASK_STOP_DEADLINE_MS), 0);
    assert_int_equal(long_turns, 1);
    /* Left unfinished in the journal, for the next start. */
    Task got;
    assert_int_equal(task_store_get(ef->f->s, NULL, t.id, &got, &err), 0);
    assert_int_equal(got.state, TASK_STATE_PENDING);
    task_clear(&got);
    task_clear(&t);
    task_clear(&quick);
}

/* A step that does not return (a libvirt call into a wedged libvirtd) holds the stop only until
 * its deadline; the engine is then left to its workers, and a later stop, once they are out,
 * frees it. */
static void
test_stop_gives_up_on_a_stuck_step(void **state)
{
    EngineFixture *ef = *state;
    NbError *err = NULL;
    Task t;
    add_task(ef, "stuck", "stuck", &t);
    ef->core.cfg.workers = 2;
    assert_int_equal(task_engine_start(&ef->core, &ef->core.tasks, &err), 0);
    task_engine_submit(ef->core.tasks, t.id);
    pthread_mutex_lock(&seen_lock);
    while (long_turns < 1)
        pthread_cond_wait(&seen_cond, &seen_lock);
    pthread_mutex_unlock(&seen_lock);
    assert_int_equal(task_engine_stop(ef->core.tasks, 200), -1);
    pthread_mutex_lock(&seen_lock);
    stuck_released = true;
    pthread_cond_broadcast(&seen_cond);
    pthread_mutex_unlock(&seen_lock);
    assert_int_equal(task_engine_stop(ef->core.tasks, 60 * 1000), 0);
    task_clear(&t);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_waiting_task_holds_no_worker, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_does_not_wait_for_timers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_gives_up_on_a_stuck_step, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
