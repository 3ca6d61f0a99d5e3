/*
 * The task engine: a queue of task ids, a timer queue of tasks waiting to run again, and a pool
 * of workers. The journal is the store; the queues only say what to run next, so losing them (a
 * crash, a stop) loses nothing: at start-up every unfinished task is queued again and resumes
 * from its persisted step. Timers need no thread of their own: an idle worker sleeps until the
 * earliest one is due.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../util/log.h"
#include "../util/strutil.h"
#include "core.h"
#include "metrics.h"

typedef struct TaskQueueItem {
    char id[NB_UUID_STRLEN];
    TaskRun run;
    uint64_t due_ms; /* monotonic, in the timer queue */
    struct TaskQueueItem *next;
} TaskQueueItem;

struct TaskEngine {
    Core *core;
    pthread_mutex_t lock;
    pthread_cond_t cond;        /* on CLOCK_MONOTONIC, for the timed waits */
    TaskQueueItem *head, *tail; /* ready, FIFO */
    TaskQueueItem *timers;      /* waiting, by due_ms */
    bool stopping;
    unsigned n_workers;
    unsigned running;      /* workers not yet returned (task_engine_stop waits for 0) */
    pthread_cond_t exited; /* a worker returned (CLOCK_MONOTONIC, like cond) */
    unsigned busy;         /* workers inside a task's turn */
    uint64_t last_pick_ms; /* when a worker last took a task from the ready queue */
    pthread_t *workers;
};

void
task_new(Task *t, TaskKind kind, const char *target_id, const char *params)
{
    const TaskHandler *h = task_handlers_find(kind);
    memset(t, 0, sizeof(*t));
    nb_uuid_generate(t->id);
    t->progress = -1;
    t->kind = kind;
    t->state = TASK_STATE_PENDING;
    snprintf(t->target_id, sizeof(t->target_id), "%s", target_id);
    /* The store fills the task's project from its VM's. */
    t->steps = h ? h->step_count(kind) : 0;
    t->params = params ? strdup(params) : NULL;
    nb_timestamp_now(t->created_at);
    memcpy(t->updated_at, t->created_at, sizeof(t->updated_at));
}

/* With e->lock held. */
static void
task_engine_push_ready(TaskEngine *e, TaskQueueItem *item)
{
    item->next = NULL;
    if (e->tail)
        e->tail->next = item;
    else
        e->head = item;
    e->tail = item;
    pthread_cond_signal(&e->cond);
}

/* With e->lock held. */
static void
task_engine_push_timer(TaskEngine *e, TaskQueueItem *item)
{
    TaskQueueItem **p = &e->timers;
    while (*p && (*p)->due_ms <= item->due_ms)
        p = &(*p)->next;
    item->next = *p;
    *p = item;
    /* A worker asleep until a later timer must look again. */
    if (e->timers == item)
        pthread_cond_signal(&e->cond);
}

void
task_engine_submit(TaskEngine *e, const char *task_id)
{
    TaskQueueItem *item = calloc(1, sizeof(*item));
    if (!item) {
        /* The task stays pending in the journal and runs at the next start. */
        log_error("tasks: out of memory queueing task %s", task_id);
        return;
    }
    snprintf(item->id, sizeof(item->id), "%s", task_id);
    /* Before a worker can take it: its "pending" is published ahead of what the worker says. */
    events_publish_task(e->core->events, e->core->store, task_id, NULL);
    pthread_mutex_lock(&e->lock);
    task_engine_push_ready(e, item);
    pthread_mutex_unlock(&e->lock);
}

/* The next task to run, or NULL once stopping. With e->lock held; waits. */
static TaskQueueItem *
task_engine_next(TaskEngine *e)
{
    for (;;) {
        if (e->stopping)
            return NULL;
        uint64_t now = nb_monotonic_ms();
        while (e->timers && e->timers->due_ms <= now) {
            TaskQueueItem *due = e->timers;
            e->timers = due->next;
            task_engine_push_ready(e, due);
        }
        if (e->head) {
            TaskQueueItem *item = e->head;
            e->head = item->next;
            if (!e->head)
                e->tail = NULL;
            e->last_pick_ms = now;
            return item;
        }
        if (!e->timers) {
            pthread_cond_wait(&e->cond, &e->lock);
            continue;
        }
        struct timespec until = {
            .tv_sec = (time_t)(e->timers->due_ms / 1000),
            .tv_nsec = (long)(e->timers->due_ms % 1000) * 1000000L,
        };
        pthread_cond_timedwait(&e->cond, &e->lock, &until);
    }
}

/* Runs one turn of the task; > 0: run it again after that many ms. */
static int64_t
task_engine_run(TaskEngine *e, TaskQueueItem *item)
{
    _cleanup_error_ NbError *err = NULL;
    Task task;
    if (task_store_get(e->core->store, NULL, item->id, &task, &err) < 0) {
        log_error("tasks: cannot load task %s: %s", item->id, err->message);
        return TASK_RUN_DONE;
    }
    int64_t r = TASK_RUN_DONE;
    const TaskHandler *h = task_handlers_find(task.kind);
    if (!h)
        log_error("tasks: task %s has a kind no handler runs", task.id);
    else if (task.state == TASK_STATE_PENDING || task.state == TASK_STATE_RUNNING) {
        if (!item->run.first_run_ms)
            item->run.first_run_ms = nb_monotonic_ms();
        /* Every kind of task is about a VM (its target). */
        log_context_task(task.id, task.target_id);
        Task before = {.state = task.state, .step = task.step, .progress = task.progress};
        r = h->run(e->core, &task, &item->run);
        events_publish_task(e->core->events, e->core->store, item->id, &before);
        log_context_task(NULL, NULL);
        /* Done and not merely left for the next start: the task ended. */
        if (r == TASK_RUN_DONE && !task_engine_stopping(e))
            metrics_task_observe(task.kind,
                                 (double)(nb_monotonic_ms() - item->run.first_run_ms) / 1000.0);
    }
    task_clear(&task);
    return r;
}

static void *
task_worker(void *arg)
{
    TaskEngine *e = arg;
    pthread_mutex_lock(&e->lock);
    for (;;) {
        TaskQueueItem *item = task_engine_next(e);
        if (!item)
            break;
        e->busy++;
        pthread_mutex_unlock(&e->lock);
        int64_t delay = task_engine_run(e, item);
        pthread_mutex_lock(&e->lock);
        e->busy--;
        if (delay > 0 && !e->stopping) {
            item->due_ms = nb_monotonic_ms() + (uint64_t)delay;
            task_engine_push_timer(e, item);
        } else {
            free(item);
        }
    }
    e->running--;
    pthread_cond_broadcast(&e->exited);
    pthread_mutex_unlock(&e->lock);
    return NULL;
}

static void
task_queue_free(TaskQueueItem *item)
{
    while (item) {
        TaskQueueItem *next = item->next;
        free(item);
        item = next;
    }
}

int
task_engine_start(Core *core, TaskEngine **ret, NbError **err)
{
    TaskEngine *e = calloc(1, sizeof(*e));
    if (!e)
        return nb_error_set(err, NB_ERR_INTERNAL, "out of memory");
    e->core = core;
    pthread_mutex_init(&e->lock, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&e->cond, &attr);
    pthread_cond_init(&e->exited, &attr);
    pthread_condattr_destroy(&attr);
    e->workers = calloc(core->cfg.workers, sizeof(pthread_t));
    if (!e->workers) {
        free(e);
        return nb_error_set(err, NB_ERR_INTERNAL, "out of memory");
    }
    for (unsigned i = 0; i < core->cfg.workers; i++) {
        pthread_mutex_lock(&e->lock);
        e->running++;
        pthread_mutex_unlock(&e->lock);
        if (pthread_create(&e->workers[i], NULL, task_worker, e) != 0) {
            pthread_mutex_lock(&e->lock);
            e->running--;
            pthread_mutex_unlock(&e->lock);
            nb_error_set(err, NB_ERR_INTERNAL, "cannot start task worker");
            task_engine_stop(e, TASK_STOP_DEADLINE_MS);
            return -1;
        }
        e->n_workers++;
    }
    *ret = e;
    return 0;
}

int
task_engine_stop(TaskEngine *e, uint64_t deadline_ms)
{
    if (!e)
        return 0;
    /* Workers finish the step they are in (none waits in one); the rest of each task resumes at
     * the next start. A step stuck in a libvirt call that never returns (a host's libvirtd
     * wedged while its connection stays up) would hold the stop forever: past the deadline the
     * engine is left as it is, its workers running, and the caller exits without them; that is
     * what a crash is, which every step is written to survive. */
    uint64_t until = nb_monotonic_ms() + deadline_ms;
    struct timespec ts = {.tv_sec = (time_t)(until / 1000),
                          .tv_nsec = (long)(until % 1000) * 1000000L};
    pthread_mutex_lock(&e->lock);
    e->stopping = true;
    pthread_cond_broadcast(&e->cond);
    while (e->running > 0 && pthread_cond_timedwait(&e->exited, &e->lock, &ts) != ETIMEDOUT)
        ;
    unsigned stuck = e->running;
    pthread_mutex_unlock(&e->lock);
    if (stuck) {
        log_error("tasks: %u worker(s) still inside a step %" PRIu64 " ms after the stop; leaving "
                  "without them (their tasks resume at the next start)",
                  stuck, deadline_ms);
        return -1;
    }
    for (unsigned i = 0; i < e->n_workers; i++)
        pthread_join(e->workers[i], NULL);
    task_queue_free(e->head);
    task_queue_free(e->timers);
    free(e->workers);
    pthread_mutex_destroy(&e->lock);
    pthread_cond_destroy(&e->cond);
    pthread_cond_destroy(&e->exited);
    free(e);
    return 0;
}

void
task_engine_stats(TaskEngine *e, TaskEngineStats *ret)
{
    memset(ret, 0, sizeof(*ret));
    pthread_mutex_lock(&e->lock);
    ret->workers = e->n_workers;
    ret->busy = e->busy;
    ret->stopping = e->stopping;
    for (TaskQueueItem *i = e->head; i; i = i->next)
        ret->ready++;
    for (TaskQueueItem *i = e->timers; i; i = i->next)
        ret->waiting++;
    /* Tasks ready while every worker is busy and none was taken for a while: the workers are
     * stuck (a libvirt call that never returns), not merely loaded. */
    uint64_t now = nb_monotonic_ms();
    if (e->head && e->busy == e->n_workers) {
        uint64_t since = e->last_pick_ms ? e->last_pick_ms : now;
        ret->stalled_ms = now > since ? now - since : 0;
    }
    pthread_mutex_unlock(&e->lock);
}

bool
task_set_running(Core *core, Task *task, const char *what, const char *target, int n_steps)
{
    if (task->state == TASK_STATE_RUNNING)
        return true;
    _cleanup_error_ NbError *err = NULL;
    if (task_store_set_running(core->store, task->id, &err) < 0) {
        log_error("task %s: %s", task->id, err->message);
        return false;
    }
    task->state = TASK_STATE_RUNNING;
    log_info("task %s (%s) on %s %s: running from step %d of %d", task->id,
             task_kind_to_string(task->kind), what, target, task->step, n_steps);
    return true;
}

bool
task_engine_stopping(TaskEngine *e)
{
    pthread_mutex_lock(&e->lock);
    bool stopping = e->stopping;
    pthread_mutex_unlock(&e->lock);
    return stopping;
}

void
task_crash_point(TaskKind kind, int step)
{
    const char *crash = getenv("NIMBUS_TEST_CRASH_AT");
    const char *hang = getenv("NIMBUS_TEST_HANG_AT");
    if ((!crash || !*crash) && (!hang || !*hang))
        return;
    char want[64];
    snprintf(want, sizeof(want), "%s:%d", task_kind_to_string(kind), step);
    if (crash && streq(crash, want)) {
        log_warn("NIMBUS_TEST_CRASH_AT=%s: killing the daemon now", crash);
        raise(SIGKILL);
    }
    if (hang && streq(hang, want)) {
        /* A step that never returns, as one stuck in a libvirt call would be. */
        log_warn("NIMBUS_TEST_HANG_AT=%s: this worker hangs now", hang);
        for (;;)
            pause();
    }
}
