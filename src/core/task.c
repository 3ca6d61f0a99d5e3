/*
 * The task engine: a queue of task ids and a fixed pool of workers. The journal is the store;
 * the queue only says what to run next, so losing it (a crash) loses nothing: at start-up every
 * unfinished task is queued again and resumes from its persisted step.
 */
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "../util/log.h"
#include "../util/strutil.h"
#include "core.h"

typedef struct TaskQueueItem {
    char id[NB_UUID_STRLEN];
    struct TaskQueueItem *next;
} TaskQueueItem;

struct TaskEngine {
    Core *core;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    TaskQueueItem *head, *tail;
    bool stopping;
    unsigned n_workers;
    pthread_t *workers;
};

void
task_new(Task *t, TaskKind kind, const char *target_id, const char *params)
{
    memset(t, 0, sizeof(*t));
    nb_uuid_generate(t->id);
    t->progress = -1;
    t->kind = kind;
    t->state = TASK_STATE_PENDING;
    snprintf(t->target_id, sizeof(t->target_id), "%s", target_id);
    /* The store fills the task's project from its VM's. */
    t->steps = vm_ops_step_count(kind);
    t->params = params ? strdup(params) : NULL;
    nb_timestamp_now(t->created_at);
    memcpy(t->updated_at, t->created_at, sizeof(t->updated_at));
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
    pthread_mutex_lock(&e->lock);
    if (e->tail)
        e->tail->next = item;
    else
        e->head = item;
    e->tail = item;
    pthread_cond_signal(&e->cond);
    pthread_mutex_unlock(&e->lock);
}

static void *
task_worker(void *arg)
{
    TaskEngine *e = arg;
    for (;;) {
        pthread_mutex_lock(&e->lock);
        while (!e->head && !e->stopping)
            pthread_cond_wait(&e->cond, &e->lock);
        if (e->stopping) {
            pthread_mutex_unlock(&e->lock);
            return NULL;
        }
        TaskQueueItem *item = e->head;
        e->head = item->next;
        if (!e->head)
            e->tail = NULL;
        pthread_mutex_unlock(&e->lock);

        _cleanup_error_ NbError *err = NULL;
        Task task;
        if (task_store_get(e->core->store, NULL, item->id, &task, &err) < 0) {
            log_error("tasks: cannot load task %s: %s", item->id, err->message);
        } else {
            if (task.state == TASK_STATE_PENDING || task.state == TASK_STATE_RUNNING)
                vm_ops_run_task(e->core, &task);
            task_clear(&task);
        }
        free(item);
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
    pthread_cond_init(&e->cond, NULL);
    e->workers = calloc(core->cfg.workers, sizeof(pthread_t));
    if (!e->workers) {
        free(e);
        return nb_error_set(err, NB_ERR_INTERNAL, "out of memory");
    }
    for (unsigned i = 0; i < core->cfg.workers; i++) {
        if (pthread_create(&e->workers[i], NULL, task_worker, e) != 0) {
            nb_error_set(err, NB_ERR_INTERNAL, "cannot start task worker");
            task_engine_stop(e);
            return -1;
        }
        e->n_workers++;
    }
    *ret = e;
    return 0;
}

void
task_engine_stop(TaskEngine *e)
{
    if (!e)
        return;
    pthread_mutex_lock(&e->lock);
    e->stopping = true;
    pthread_cond_broadcast(&e->cond);
    pthread_mutex_unlock(&e->lock);
    /* Workers finish the step they are in; the rest of each task resumes at the next start. */
    for (unsigned i = 0; i < e->n_workers; i++)
        pthread_join(e->workers[i], NULL);
    while (e->head) {
        TaskQueueItem *next = e->head->next;
        free(e->head);
        e->head = next;
    }
    free(e->workers);
    pthread_mutex_destroy(&e->lock);
    pthread_cond_destroy(&e->cond);
    free(e);
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
core_crash_point(TaskKind kind, int step)
{
    const char *spec = getenv("NIMBUS_TEST_CRASH_AT");
    if (!spec || !*spec)
        return;
    char want[64];
    snprintf(want, sizeof(want), "%s:%d", task_kind_to_string(kind), step);
    if (streq(spec, want)) {
        log_warn("NIMBUS_TEST_CRASH_AT=%s: killing the daemon now", spec);
        raise(SIGKILL);
    }
}
