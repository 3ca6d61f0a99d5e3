/*
 * The task engine: journaled tasks run by a pool of workers, each kind through its handler
 * (task_handlers.c). A task that has to wait (a guest shutting down, a migration under way, a
 * host not reached yet) asks to run again later and sits in a timer queue meanwhile: no worker
 * is held by waiting. The engine knows nothing of what a task does.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "../model/task.h"
#include "../util/error.h"

struct Core;
typedef struct TaskEngine TaskEngine;

/* What the engine keeps of a task between two runs in this daemon (lost by a restart: a task
 * resumed at start-up begins its waits afresh). */
typedef struct TaskRun {
    uint64_t first_run_ms;  /* monotonic: when this daemon first ran the task */
    uint64_t wait_since_ms; /* the handler's: when the wait of the current step began, 0: none */
    uint64_t step_since_ms; /* the handler's: when the current step first ran, 0: not yet */
} TaskRun;

/* A handler's run returns TASK_RUN_DONE when the task needs the engine no more (finished and
 * recorded, or left for the next start), or a delay in ms > 0 after which to run it again. */
#define TASK_RUN_DONE 0

typedef struct TaskHandler {
    TaskKind kind;
    int (*step_count)(TaskKind kind);
    /* Runs the task from its persisted step; must return between steps once
     * task_engine_stopping. */
    int64_t (*run)(struct Core *core, Task *task, TaskRun *run);
} TaskHandler;

/* The handler of a kind (task_handlers.c), or NULL. */
const TaskHandler *task_handlers_find(TaskKind kind);

/* Starts core->cfg.workers workers. */
int task_engine_start(struct Core *core, TaskEngine **ret, NbError **err);
/* How long a stop waits for the workers' current steps (SIGTERM ends nimbusd within 5 s). */
#define TASK_STOP_DEADLINE_MS 4000
/* Returns 0 once every worker has left its current step, and frees the engine; waiting tasks are
 * dropped from memory (the journal resumes them at the next start). -1 when some worker is still
 * in a step after deadline_ms: the engine is left allocated, its workers running, and the
 * process must exit without freeing what they use. */
int task_engine_stop(TaskEngine *e, uint64_t deadline_ms);
void task_engine_submit(TaskEngine *e, const char *task_id);
typedef struct TaskEngineStats {
    unsigned workers, busy;
    size_t ready, waiting; /* queued now; waiting: on a timer */
    uint64_t stalled_ms;   /* > 0: tasks are ready, every worker is busy, none taken since */
    bool stopping;
} TaskEngineStats;
void task_engine_stats(TaskEngine *e, TaskEngineStats *ret);
/* True once stopping: workers leave their task between two steps, to resume at the next start. */
bool task_engine_stopping(TaskEngine *e);
/* Fills a new pending task; params (JSON text or NULL) is copied. */
void task_new(Task *t, TaskKind kind, const char *target_id, const char *params);
/* A handler's first run of task (or its first after a restart that found it pending): the task
 * becomes running in the store and the log says "task ID (KIND) on WHAT TARGET: running from step
 * S of N". Nothing when it runs already. false when the store refused (logged): the handler ends
 * this run. */
bool task_set_running(struct Core *core, Task *task, const char *what, const char *target,
                      int n_steps);

/* Fault injection for the crash tests: when NIMBUS_TEST_CRASH_AT is "<kind>:<step>", the daemon
 * kills itself with SIGKILL right after that step's hypervisor work and before its progress is
 * persisted: the worst moment for idempotency. Unset in production. */
void task_crash_point(TaskKind kind, int step);
