#include "store_internal.h"

#include <stdlib.h>
#include <string.h>

#define SNAPSHOT_COLUMNS                                                                           \
    "id, vm_id, project, name, memory, description, state, libvirt_name, created_at"

static void
snapshot_from_row(sqlite3_stmt *st, void *elem)
{
    Snapshot *v = elem;
    memset(v, 0, sizeof(*v));
    store_column_copy(st, 0, v->id, sizeof(v->id));
    store_column_copy(st, 1, v->vm_id, sizeof(v->vm_id));
    store_column_copy(st, 2, v->project, sizeof(v->project));
    store_column_copy(st, 3, v->name, sizeof(v->name));
    v->memory = sqlite3_column_int(st, 4) != 0;
    store_column_copy(st, 5, v->description, sizeof(v->description));
    v->state = snapshot_state_from_string((const char *)sqlite3_column_text(st, 6));
    if (v->state == _SNAPSHOT_STATE_INVALID)
        v->state = SNAPSHOT_STATE_ERROR;
    store_column_copy(st, 7, v->libvirt_name, sizeof(v->libvirt_name));
    store_column_copy(st, 8, v->created_at, sizeof(v->created_at));
}

void
snapshot_list_free(Snapshot *v, size_t n)
{
    (void)n; /* a Snapshot owns nothing */
    free(v);
}

/* By id (of the VM's, when vm_id is given), else by name within vm_id. */
static int
snapshot_get_locked(Store *s, const char *scope, const char *vm_id, const char *key, Snapshot *ret,
                    NbError **err)
{
    static const char by_id[] = "SELECT " SNAPSHOT_COLUMNS " FROM snapshots WHERE id = ?1 "
                                "AND (?2 IS NULL OR vm_id = ?2) AND (?3 IS NULL OR project = ?3)";
    static const char by_name[] = "SELECT " SNAPSHOT_COLUMNS " FROM snapshots WHERE vm_id = ?2 "
                                  "AND name = ?1 AND (?3 IS NULL OR project = ?3)";
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1 && !vm_id)
            break;
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        if (store_prepare(s, pass == 0 ? by_id : by_name, &st, err) < 0)
            return -1;
        sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
        store_bind_text(st, 2, vm_id);
        store_bind_text(st, 3, scope);
        int rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            snapshot_from_row(st, ret);
            return 0;
        }
        if (rc != SQLITE_DONE)
            return store_db_error(s, "get snapshot", err);
    }
    return nb_error_set(err, NB_ERR_SNAPSHOT_NOT_FOUND, "snapshot '%.64s' not found", key);
}

int
snapshot_store_get(Store *s, const char *scope, const char *vm_id, const char *id_or_name,
                   Snapshot *ret, NbError **err)
{
    STORE_READING(s);
    return snapshot_get_locked(s, scope, vm_id, id_or_name, ret, err);
}

int
snapshot_store_list(Store *s, const char *scope, const char *vm_id, Snapshot **ret, size_t *ret_n,
                    NbError **err)
{
    STORE_READING(s);
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (store_prepare(s,
                      "SELECT " SNAPSHOT_COLUMNS " FROM snapshots WHERE "
                      "(?1 IS NULL OR project = ?1) AND (?2 IS NULL OR vm_id = ?2) "
                      "ORDER BY created_at, id",
                      &st, err) < 0)
        return -1;
    store_bind_text(st, 1, scope);
    store_bind_text(st, 2, vm_id);
    return store_collect(s, st, sizeof(Snapshot), snapshot_from_row, NULL, (void **)ret, ret_n,
                         err);
}

/* With the lock held: task holds the VM and its row is inserted, in the caller's transaction. */
static int
snapshot_claim_vm_locked(Store *s, const Task *task, NbError **err)
{
    return vm_task_hold_locked(s, task, err) < 0 ? -1 : task_insert_locked(s, task, NULL, err);
}

static int
snapshot_finish_tx(Store *s, int rc, NbError **err)
{
    if (rc < 0 || store_commit(s, err) < 0) {
        store_rollback(s);
        return -1;
    }
    return 0;
}

static int
snapshot_insert_locked(Store *s, const Snapshot *v, const Task *task, NbError **err)
{
    _cleanup_stmt_ sqlite3_stmt *vm = NULL, *st = NULL;
    if (store_prepare(s, "SELECT project FROM vms WHERE id = ?1", &vm, err) < 0)
        return -1;
    sqlite3_bind_text(vm, 1, v->vm_id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(vm);
    if (rc == SQLITE_DONE)
        return nb_error_set(err, NB_ERR_VM_NOT_FOUND, "VM '%.64s' not found", v->vm_id);
    if (rc != SQLITE_ROW)
        return store_db_error(s, "insert snapshot", err);
    int64_t add[_QUOTA_MAX] = {[QUOTA_SNAPSHOTS] = 1};
    if (project_quota_check_locked(s, v->project, add, err) < 0)
        return -1;
    if (store_prepare(
            s, "INSERT INTO snapshots (" SNAPSHOT_COLUMNS ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            &st, err) < 0)
        return -1;
    sqlite3_bind_text(st, 1, v->id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, v->vm_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, v->project, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, v->name, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 5, v->memory ? 1 : 0);
    sqlite3_bind_text(st, 6, v->description, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 7, snapshot_state_to_string(v->state), -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 8, v->libvirt_name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 9, v->created_at, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    if (rc == SQLITE_CONSTRAINT && strstr(sqlite3_errmsg(s->db), "snapshots.name"))
        return nb_error_set(err, NB_ERR_NAME_TAKEN, "the VM has a snapshot named '%s' already",
                            v->name);
    if (rc != SQLITE_DONE)
        return store_db_error(s, "insert snapshot", err);
    return task ? snapshot_claim_vm_locked(s, task, err) : 0;
}

int
snapshot_store_create(Store *s, const Snapshot *snap, const Task *task, NbError **err)
{
    if (!snapshot_state_to_string(snap->state))
        return nb_error_set(err, NB_ERR_INTERNAL, "store: snapshot '%s' has no valid state",
                            snap->name);
    STORE_LOCKED(s);
    if (store_begin(s, err) < 0)
        return -1;
    return snapshot_finish_tx(s, snapshot_insert_locked(s, snap, task, err), err);
}

static int
snapshot_transition_locked(Store *s, const char *id, unsigned from_mask, SnapshotState to,
                           NbError **err)
{
    Snapshot cur;
    if (snapshot_get_locked(s, NULL, NULL, id, &cur, err) < 0)
        return -1;
    if (from_mask && !(from_mask & (1u << (unsigned)cur.state)))
        return nb_error_set(err, NB_ERR_SNAPSHOT_BUSY, "snapshot '%s' is %s", cur.name,
                            snapshot_state_to_string(cur.state));
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (store_prepare(s, "UPDATE snapshots SET state = ?1 WHERE id = ?2", &st, err) < 0)
        return -1;
    sqlite3_bind_text(st, 1, snapshot_state_to_string(to), -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, cur.id, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE)
        return store_db_error(s, "set snapshot state", err);
    return 0;
}

int
snapshot_store_claim(Store *s, const char *id, unsigned from_mask, SnapshotState to,
                     const Task *task, NbError **err)
{
    if (!snapshot_state_to_string(to))
        return nb_error_set(err, NB_ERR_INTERNAL, "store: not a snapshot state");
    STORE_LOCKED(s);
    if (store_begin(s, err) < 0)
        return -1;
    int rc = snapshot_transition_locked(s, id, from_mask, to, err);
    if (rc == 0)
        rc = snapshot_claim_vm_locked(s, task, err);
    return snapshot_finish_tx(s, rc, err);
}

int
snapshot_store_set_state(Store *s, const char *id, unsigned from_mask, SnapshotState to,
                         NbError **err)
{
    if (!snapshot_state_to_string(to))
        return nb_error_set(err, NB_ERR_INTERNAL, "store: not a snapshot state");
    STORE_LOCKED(s);
    if (store_begin(s, err) < 0)
        return -1;
    return snapshot_finish_tx(s, snapshot_transition_locked(s, id, from_mask, to, err), err);
}

int
snapshot_store_delete(Store *s, const char *id, NbError **err)
{
    STORE_LOCKED(s);
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (store_prepare(s, "DELETE FROM snapshots WHERE id = ?1", &st, err) < 0)
        return -1;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE)
        return store_db_error(s, "delete snapshot", err);
    if (sqlite3_changes(s->db) == 0)
        return nb_error_set(err, NB_ERR_SNAPSHOT_NOT_FOUND, "snapshot '%.64s' not found", id);
    return 0;
}
