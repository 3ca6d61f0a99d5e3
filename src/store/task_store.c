#include "store_internal.h"

#include <stdlib.h>
#include <string.h>

static void
task_from_row(sqlite3_stmt *st, void *elem)
{
    Task *t = elem;
    memset(t, 0, sizeof(*t));
    store_column_copy(st, 0, t->id, sizeof(t->id));
    t->kind = task_kind_from_string((const char *)sqlite3_column_text(st, 1));
    t->state = task_state_from_string((const char *)sqlite3_column_text(st, 2));
    store_column_copy(st, 3, t->target_id, sizeof(t->target_id));
    t->step = sqlite3_column_int(st, 4);
    t->steps = sqlite3_column_int(st, 5);
    t->params = store_column_strdup(st, 6);
    t->error_code = store_column_strdup(st, 7);
    t->error_message = store_column_strdup(st, 8);
    store_column_copy(st, 9, t->created_at, sizeof(t->created_at));
    store_column_copy(st, 10, t->updated_at, sizeof(t->updated_at));
    store_column_copy(st, 11, t->finished_at, sizeof(t->finished_at));
    store_column_copy(st, 12, t->project, sizeof(t->project));
    t->progress = sqlite3_column_int(st, 13);
    t->cancel_requested = sqlite3_column_int(st, 14) != 0;
}

void
task_list_free(Task *tasks, size_t n)
{
    for (size_t i = 0; i < n; i++)
        task_clear(&tasks[i]);
    free(tasks);
}

static int
task_get_locked(Store *s, const char *scope, const char *id, Task *ret, NbError **err)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (store_prepare(s, STORE_SQL_TASK_BY_ID, &st, err) < 0)
        return -1;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    store_bind_text(st, 2, scope);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_DONE)
        return nb_error_set(err, NB_ERR_TASK_NOT_FOUND, "task '%.64s' not found", id);
    if (rc != SQLITE_ROW)
        return store_db_error(s, "get task", err);
    task_from_row(st, ret);
    return 0;
}

int
task_store_get(Store *s, const char *scope, const char *id, Task *ret, NbError **err)
{
    STORE_READING(s);
    return task_get_locked(s, scope, id, ret, err);
}

static void
task_clear_elem(void *elem)
{
    task_clear(elem);
}

static int
task_store_select(Store *s, sqlite3_stmt *st, Task **ret, size_t *ret_n, NbError **err)
{
    return store_collect(s, st, sizeof(Task), task_from_row, task_clear_elem, (void **)ret, ret_n,
                         err);
}

int
task_store_list_page(Store *s, const char *scope, const char *vm_id, const char *marker,
                     unsigned limit, Task **ret, size_t *ret_n,
                     char ret_next_marker[STORE_MARKER_MAX], NbError **err)
{
    /* "\x7f" sorts after every timestamp: the first page starts from the newest task. */
    char at[NB_TIMESTAMP_LEN] = "\x7f", id[NB_UUID_STRLEN] = "";
    if (marker && *marker &&
        store_marker_parse(marker, ":.-", at, sizeof(at), id, sizeof(id), err) < 0)
        return -1;
    limit = store_page_limit(limit);
    STORE_READING(s);
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    const char *sql = vm_id   ? STORE_SQL_TASK_PAGE_VM
                      : scope ? STORE_SQL_TASK_PAGE_SCOPED
                              : STORE_SQL_TASK_PAGE_ALL;
    if (store_prepare(s, sql, &st, err) < 0)
        return -1;
    if (vm_id || scope)
        store_bind_text(st, 1, scope);
    sqlite3_bind_text(st, 2, at, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, (sqlite3_int64)limit + 1);
    if (vm_id)
        sqlite3_bind_text(st, 5, vm_id, -1, SQLITE_STATIC);
    Task *list = NULL;
    size_t n = 0;
    if (task_store_select(s, st, &list, &n, err) < 0)
        return -1;
    ret_next_marker[0] = '\0';
    if (n > limit) {
        task_clear(&list[limit]);
        n = limit;
        store_marker_make(ret_next_marker, list[n - 1].created_at, list[n - 1].id);
    }
    *ret = list;
    *ret_n = n;
    return 0;
}

int
task_store_list_unfinished(Store *s, Task **ret, size_t *ret_n, NbError **err)
{
    STORE_READING(s);
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (store_prepare(s, STORE_SQL_TASK_UNFINISHED, &st, err) < 0)
        return -1;
    return task_store_select(s, st, ret, ret_n, err);
}

/* One UPDATE of a task: ?1 now, ?2 the id, ?3 (if the statement has it) value. */
static int
task_store_update(Store *s, const char *sql, const char *id, int value, NbError **err)
{
    STORE_LOCKED(s);
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    char now[NB_TIMESTAMP_LEN];
    nb_timestamp_now(now);
    if (store_prepare(s, sql, &st, err) < 0)
        return -1;
    sqlite3_bind_text(st, 1, now, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, id, -1, SQLITE_STATIC);
    if (sqlite3_bind_parameter_count(st) >= 3)
        sqlite3_bind_int(st, 3, value);
    if (sqlite3_step(st) != SQLITE_DONE)
        return store_db_error(s, "update task", err);
    return 0;
}

int
task_insert_locked(Store *s, const Task *t, const char *project, NbError **err)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (store_prepare(s,
                      "INSERT INTO tasks (id, kind, state, target_id, step, steps, params, "
                      "created_at, updated_at, project) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, "
                      "?9, COALESCE(?10, (SELECT project FROM vms WHERE id = ?4)))",
                      &st, err) < 0)
        return -1;
    sqlite3_bind_text(st, 1, t->id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, task_kind_to_string(t->kind), -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, task_state_to_string(t->state), -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, t->target_id, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 5, t->step);
    sqlite3_bind_int(st, 6, t->steps);
    store_bind_text(st, 7, t->params);
    sqlite3_bind_text(st, 8, t->created_at, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 9, t->updated_at, -1, SQLITE_STATIC);
    store_bind_text(st, 10, project);
    if (sqlite3_step(st) != SQLITE_DONE)
        return store_db_error(s, "insert task", err);
    return 0;
}

/* Tasks that hold no VM (a volume's) are inserted on their own; the VM tasks' rows come with
 * their claim (vm_store.c). */
int
task_store_insert(Store *s, const Task *t, const char *project, NbError **err)
{
    STORE_LOCKED(s);
    return task_insert_locked(s, t, project, err);
}

int
task_store_set_running(Store *s, const char *id, NbError **err)
{
    return task_store_update(s, "UPDATE tasks SET state = 'running', updated_at = ?1 WHERE id = ?2",
                             id, -1, err);
}

int
task_store_set_step(Store *s, const char *id, int step, NbError **err)
{
    return task_store_update(
        s, "UPDATE tasks SET step = ?3, progress = -1, updated_at = ?1 WHERE id = ?2", id, step,
        err);
}

static int
task_finish_locked(Store *s, const Task *task, TaskState state, const char *code,
                   const char *message, const char *now, NbError **err)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (store_prepare(s,
                      "UPDATE tasks SET state = ?, error_code = ?, error_message = ?, "
                      "updated_at = ?4, finished_at = ?4 WHERE id = ?5",
                      &st, err) < 0)
        return -1;
    sqlite3_bind_text(st, 1, task_state_to_string(state), -1, SQLITE_STATIC);
    store_bind_text(st, 2, code);
    store_bind_text(st, 3, message);
    sqlite3_bind_text(st, 4, now, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, task->id, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE)
        return store_db_error(s, "finish task", err);
    return 0;
}

int
task_store_finish(Store *s, const Task *task, TaskState state, const char *code,
                  const char *message, int vm_state, int vm_desired, const char *vm_error,
                  NbError **err)
{
    STORE_LOCKED(s);
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    char now[NB_TIMESTAMP_LEN];
    nb_timestamp_now(now);
    if (store_prepare(s,
                      "UPDATE vms SET task_id = NULL, state = coalesce(?1, state), "
                      "desired = coalesce(?2, desired), error = ?3, updated_at = ?4 "
                      "WHERE id = ?5 AND task_id = ?6",
                      &st, err) < 0 ||
        store_begin(s, err) < 0)
        return -1;
    if (vm_state >= 0)
        sqlite3_bind_text(st, 1, vm_state_to_string((VmState)vm_state), -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, 1);
    if (vm_desired >= 0)
        sqlite3_bind_text(st, 2, vm_power_to_string((VmPower)vm_desired), -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, 2);
    store_bind_text(st, 3, vm_error);
    sqlite3_bind_text(st, 4, now, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, task->target_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 6, task->id, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE ||
        task_finish_locked(s, task, state, code, message, now, err) < 0 ||
        store_commit(s, err) < 0) {
        store_db_error(s, "finish task", err);
        store_rollback(s);
        return -1;
    }
    return 0;
}

int
task_store_finish_delete(Store *s, const Task *task, NbError **err)
{
    STORE_LOCKED(s);
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    char now[NB_TIMESTAMP_LEN];
    nb_timestamp_now(now);
    /* The VM's ports (NICs, their addresses) go with it. ON DELETE CASCADE does it already; the
     * explicit delete keeps it so for a connection without foreign keys. */
    _cleanup_stmt_ sqlite3_stmt *ports = NULL;
    if (store_prepare(s, "DELETE FROM vms WHERE id = ? AND task_id = ?", &st, err) < 0 ||
        store_prepare(s,
                      "DELETE FROM ports WHERE vm_id = ?1 AND NOT EXISTS "
                      "(SELECT 1 FROM vms WHERE id = ?1)",
                      &ports, err) < 0 ||
        store_begin(s, err) < 0)
        return -1;
    sqlite3_bind_text(st, 1, task->target_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, task->id, -1, SQLITE_STATIC);
    sqlite3_bind_text(ports, 1, task->target_id, -1, SQLITE_STATIC);
    if (vm_volumes_detach_locked(s, task->target_id, task->id, err) < 0 ||
        sqlite3_step(st) != SQLITE_DONE || sqlite3_step(ports) != SQLITE_DONE ||
        task_finish_locked(s, task, TASK_STATE_SUCCEEDED, NULL, NULL, now, err) < 0 ||
        store_commit(s, err) < 0) {
        store_db_error(s, "finish delete", err);
        store_rollback(s);
        return -1;
    }
    /* The VM's claim on its host (and on a migration's destination) is gone. */
    store_placement_changed_locked(s);
    return 0;
}

int
task_store_set_progress(Store *s, const char *id, int progress, NbError **err)
{
    if (progress < -1 || progress > 100)
        return nb_error_set(err, NB_ERR_INTERNAL, "store: task progress %d is out of range",
                            progress);
    return task_store_update(s, "UPDATE tasks SET progress = ?3, updated_at = ?1 WHERE id = ?2", id,
                             progress, err);
}

int
task_store_request_cancel(Store *s, const char *scope, const char *id, Task *ret, NbError **err)
{
    STORE_LOCKED(s);
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    Task t;
    char now[NB_TIMESTAMP_LEN];
    nb_timestamp_now(now);
    if (store_prepare(s,
                      "UPDATE tasks SET cancel_requested = 1, updated_at = ?1 WHERE id = ?2 "
                      "AND NOT cancel_requested",
                      &st, err) < 0 ||
        store_begin(s, err) < 0)
        return -1;
    if (task_get_locked(s, scope, id, &t, err) < 0) {
        store_rollback(s);
        return -1;
    }
    if ((t.state != TASK_STATE_PENDING && t.state != TASK_STATE_RUNNING) ||
        t.kind != TASK_KIND_VM_MIGRATE) {
        const char *kind = task_kind_to_string(t.kind);
        if (t.kind != TASK_KIND_VM_MIGRATE)
            nb_error_set(err, NB_ERR_TASK_NOT_CANCELLABLE,
                         "only a migration (vm.migrate) can be cancelled, not a %s task",
                         kind ? kind : "unknown");
        else
            nb_error_set(err, NB_ERR_TASK_NOT_CANCELLABLE, "the migration has finished");
        task_clear(&t);
        store_rollback(s);
        return -1;
    }
    sqlite3_bind_text(st, 1, now, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, id, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE || store_commit(s, err) < 0) {
        store_db_error(s, "cancel task", err);
        task_clear(&t);
        store_rollback(s);
        return -1;
    }
    if (!t.cancel_requested) {
        t.cancel_requested = true;
        memcpy(t.updated_at, now, sizeof(t.updated_at));
    }
    *ret = t;
    return 0;
}

bool
task_store_cancel_requested(Store *s, const char *id)
{
    STORE_READING(s);
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (store_prepare(s, "SELECT cancel_requested FROM tasks WHERE id = ?", &st, NULL) < 0)
        return false;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    return sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int(st, 0) != 0;
}
