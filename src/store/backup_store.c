#include "store_internal.h"

#include <stdlib.h>
#include <string.h>

#define BACKUP_COLUMNS                                                                             \
    "id, vm_id, vm_name, project, pool_id, host, parent_id, kind, checkpoint, state, volume, "     \
    "size_bytes, data_bytes, mbps, created_at, finished_at"

static void
backup_from_row(sqlite3_stmt *st, void *elem)
{
    Backup *b = elem;
    memset(b, 0, sizeof(*b));
    store_column_copy(st, 0, b->id, sizeof(b->id));
    store_column_copy(st, 1, b->vm_id, sizeof(b->vm_id));
    store_column_copy(st, 2, b->vm_name, sizeof(b->vm_name));
    store_column_copy(st, 3, b->project, sizeof(b->project));
    store_column_copy(st, 4, b->pool_id, sizeof(b->pool_id));
    store_column_copy(st, 5, b->host, sizeof(b->host));
    store_column_copy(st, 6, b->parent_id, sizeof(b->parent_id));
    b->kind = backup_kind_from_string((const char *)sqlite3_column_text(st, 7));
    if (b->kind == _BACKUP_KIND_INVALID)
        b->kind = BACKUP_KIND_FULL;
    store_column_copy(st, 8, b->checkpoint, sizeof(b->checkpoint));
    b->state = backup_state_from_string((const char *)sqlite3_column_text(st, 9));
    if (b->state == _BACKUP_STATE_INVALID)
        b->state = BACKUP_STATE_ERROR;
    store_column_copy(st, 10, b->volume, sizeof(b->volume));
    b->size_bytes = (uint64_t)sqlite3_column_int64(st, 11);
    b->data_bytes = (uint64_t)sqlite3_column_int64(st, 12);
    b->mbps = sqlite3_column_double(st, 13);
    store_column_copy(st, 14, b->created_at, sizeof(b->created_at));
    store_column_copy(st, 15, b->finished_at, sizeof(b->finished_at));
}

void
backup_list_free(Backup *b, size_t n)
{
    (void)n; /* a Backup owns nothing */
    free(b);
}

static int
backup_get_locked(Store *s, const char *scope, const char *id, Backup *ret, NbError **err)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (store_prepare(s,
                      "SELECT " BACKUP_COLUMNS " FROM backups WHERE id = ?1 "
                      "AND (?2 IS NULL OR project = ?2)",
                      &st, err) < 0)
        return -1;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    store_bind_text(st, 2, scope);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        backup_from_row(st, ret);
        return 0;
    }
    if (rc != SQLITE_DONE)
        return store_db_error(s, "get backup", err);
    return nb_error_set(err, NB_ERR_BACKUP_NOT_FOUND, "backup '%.64s' not found", id);
}

int
backup_store_get(Store *s, const char *scope, const char *id, Backup *ret, NbError **err)
{
    STORE_READING(s);
    return backup_get_locked(s, scope, id, ret, err);
}

int
backup_store_list(Store *s, const char *scope, const char *vm_id, Backup **ret, size_t *ret_n,
                  NbError **err)
{
    STORE_READING(s);
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (store_prepare(s,
                      "SELECT " BACKUP_COLUMNS " FROM backups WHERE "
                      "(?1 IS NULL OR project = ?1) AND (?2 IS NULL OR vm_id = ?2) "
                      "ORDER BY created_at, id",
                      &st, err) < 0)
        return -1;
    store_bind_text(st, 1, scope);
    store_bind_text(st, 2, vm_id);
    return store_collect(s, st, sizeof(Backup), backup_from_row, NULL, (void **)ret, ret_n, err);
}

int
backup_store_last_checkpoint(Store *s, const char *vm_id, Backup *ret, NbError **err)
{
    STORE_READING(s);
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (store_prepare(s,
                      "SELECT " BACKUP_COLUMNS " FROM backups WHERE vm_id = ?1 AND "
                      "checkpoint IS NOT NULL AND state IN ('ready', 'restoring') "
                      "ORDER BY created_at DESC, id DESC LIMIT 1",
                      &st, err) < 0)
        return -1;
    sqlite3_bind_text(st, 1, vm_id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        backup_from_row(st, ret);
        return 1;
    }
    return rc == SQLITE_DONE ? 0 : store_db_error(s, "last checkpoint", err);
}

/* The task recorded in the caller's transaction; with hold_vm, the VM (task->target_id) held
 * by it (no other task holds it). */
static int
backup_task_locked(Store *s, const Task *task, const char *project, bool hold_vm, NbError **err)
{
    if (hold_vm && vm_task_hold_locked(s, task, err) < 0)
        return -1;
    return task_insert_locked(s, task, project, err);
}

static int
backup_finish_tx(Store *s, int rc, NbError **err)
{
    if (rc < 0 || store_commit(s, err) < 0) {
        store_rollback(s);
        return -1;
    }
    return 0;
}

static int
backup_insert_locked(Store *s, const Backup *b, const Task *task, NbError **err)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int64_t add[_QUOTA_MAX] = {[QUOTA_BACKUPS] = 1};
    if (project_quota_check_locked(s, b->project, add, err) < 0)
        return -1;
    if (store_prepare(s,
                      "INSERT INTO backups (" BACKUP_COLUMNS
                      ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                      &st, err) < 0)
        return -1;
    sqlite3_bind_text(st, 1, b->id, -1, SQLITE_STATIC);
    store_bind_text(st, 2, b->vm_id);
    sqlite3_bind_text(st, 3, b->vm_name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, b->project, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, b->pool_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 6, b->host, -1, SQLITE_STATIC);
    store_bind_text(st, 7, b->parent_id);
    sqlite3_bind_text(st, 8, backup_kind_to_string(b->kind), -1, SQLITE_STATIC);
    store_bind_text(st, 9, b->checkpoint);
    sqlite3_bind_text(st, 10, backup_state_to_string(b->state), -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 11, b->volume, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 12, (sqlite3_int64)b->size_bytes);
    sqlite3_bind_int64(st, 13, (sqlite3_int64)b->data_bytes);
    sqlite3_bind_double(st, 14, b->mbps);
    sqlite3_bind_text(st, 15, b->created_at, -1, SQLITE_STATIC);
    store_bind_text(st, 16, b->finished_at);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_CONSTRAINT)
        return nb_error_set(err, NB_ERR_INVALID_STATE, "backup %s: %s", b->id,
                            sqlite3_errmsg(s->db));
    if (rc != SQLITE_DONE)
        return store_db_error(s, "insert backup", err);
    return task ? backup_task_locked(s, task, b->project, true, err) : 0;
}

int
backup_store_create(Store *s, const Backup *b, const Task *task, NbError **err)
{
    if (!backup_state_to_string(b->state) || !backup_kind_to_string(b->kind))
        return nb_error_set(err, NB_ERR_INTERNAL, "store: backup %s is not valid", b->id);
    STORE_LOCKED(s);
    if (store_begin(s, err) < 0)
        return -1;
    return backup_finish_tx(s, backup_insert_locked(s, b, task, err), err);
}

static int
backup_transition_locked(Store *s, const char *id, unsigned from_mask, BackupState to,
                         NbError **err)
{
    Backup cur;
    if (backup_get_locked(s, NULL, id, &cur, err) < 0)
        return -1;
    if (from_mask && !(from_mask & (1u << (unsigned)cur.state)))
        return nb_error_set(err, NB_ERR_BACKUP_BUSY, "backup %s is %s", cur.id,
                            backup_state_to_string(cur.state));
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (store_prepare(s, "UPDATE backups SET state = ?1 WHERE id = ?2", &st, err) < 0)
        return -1;
    sqlite3_bind_text(st, 1, backup_state_to_string(to), -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, cur.id, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE)
        return store_db_error(s, "set backup state", err);
    return 0;
}

/* BACKUP_IN_USE when a later backup builds on id. */
static int
backup_no_children_locked(Store *s, const char *id, NbError **err)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (store_prepare(s, "SELECT id FROM backups WHERE parent_id = ?1 LIMIT 1", &st, err) < 0)
        return -1;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        return nb_error_set(err, NB_ERR_BACKUP_IN_USE,
                            "backup %s is the base of incremental backup %s; delete that one "
                            "first",
                            id, (const char *)sqlite3_column_text(st, 0));
    return rc == SQLITE_DONE ? 0 : store_db_error(s, "backup children", err);
}

int
backup_store_claim(Store *s, const char *id, unsigned from_mask, BackupState to, const Task *task,
                   NbError **err)
{
    if (!backup_state_to_string(to))
        return nb_error_set(err, NB_ERR_INTERNAL, "store: not a backup state");
    STORE_LOCKED(s);
    if (store_begin(s, err) < 0)
        return -1;
    Backup cur;
    int rc = backup_get_locked(s, NULL, id, &cur, err);
    if (rc == 0 && to == BACKUP_STATE_DELETING)
        rc = backup_no_children_locked(s, id, err);
    if (rc == 0)
        rc = backup_transition_locked(s, id, from_mask, to, err);
    if (rc == 0 && task)
        rc = backup_task_locked(s, task, cur.project, false, err);
    return backup_finish_tx(s, rc, err);
}

int
backup_store_set_state(Store *s, const char *id, unsigned from_mask, BackupState to, NbError **err)
{
    if (!backup_state_to_string(to))
        return nb_error_set(err, NB_ERR_INTERNAL, "store: not a backup state");
    STORE_LOCKED(s);
    if (store_begin(s, err) < 0)
        return -1;
    return backup_finish_tx(s, backup_transition_locked(s, id, from_mask, to, err), err);
}

int
backup_store_finish(Store *s, const char *id, uint64_t size_bytes, uint64_t data_bytes, double mbps,
                    NbError **err)
{
    STORE_LOCKED(s);
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    char now[NB_TIMESTAMP_LEN];
    nb_timestamp_now(now);
    if (store_prepare(s,
                      "UPDATE backups SET state = 'ready', size_bytes = ?1, data_bytes = ?2, "
                      "mbps = ?3, finished_at = ?4 WHERE id = ?5 AND state = 'creating'",
                      &st, err) < 0)
        return -1;
    sqlite3_bind_int64(st, 1, (sqlite3_int64)size_bytes);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)data_bytes);
    sqlite3_bind_double(st, 3, mbps);
    sqlite3_bind_text(st, 4, now, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, id, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE)
        return store_db_error(s, "finish backup", err);
    return 0;
}

int
backup_store_set_checkpoint(Store *s, const char *id, const char *checkpoint, NbError **err)
{
    STORE_LOCKED(s);
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (store_prepare(s, "UPDATE backups SET checkpoint = ?1 WHERE id = ?2", &st, err) < 0)
        return -1;
    store_bind_text(st, 1, checkpoint);
    sqlite3_bind_text(st, 2, id, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE)
        return store_db_error(s, "set backup checkpoint", err);
    return 0;
}

int
backup_store_drop_checkpoints(Store *s, const char *vm_id, NbError **err)
{
    STORE_LOCKED(s);
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (store_prepare(s, "UPDATE backups SET checkpoint = NULL WHERE vm_id = ?1", &st, err) < 0)
        return -1;
    sqlite3_bind_text(st, 1, vm_id, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE)
        return store_db_error(s, "drop checkpoints", err);
    return 0;
}

int
backup_store_delete(Store *s, const char *id, NbError **err)
{
    STORE_LOCKED(s);
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (store_prepare(s, "DELETE FROM backups WHERE id = ?1", &st, err) < 0)
        return -1;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_CONSTRAINT)
        return nb_error_set(err, NB_ERR_BACKUP_IN_USE,
                            "backup %s is the base of a later incremental backup", id);
    if (rc != SQLITE_DONE)
        return store_db_error(s, "delete backup", err);
    if (sqlite3_changes(s->db) == 0)
        return nb_error_set(err, NB_ERR_BACKUP_NOT_FOUND, "backup '%.64s' not found", id);
    return 0;
}
