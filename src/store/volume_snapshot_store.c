/* Volume snapshots (schema v15): a volume's, scoped by the volume's project. */
#include "store_internal.h"

#include <stdlib.h>
#include <string.h>

#define VOLUME_SNAPSHOT_COLUMNS                                                                    \
    "id, volume_id, project, name, pool_id, host, size_gib, state, created_at"

static void
volume_snapshot_from_row(sqlite3_stmt *st, void *elem)
{
    VolumeSnapshot *v = elem;
    memset(v, 0, sizeof(*v));
    store_column_copy(st, 0, v->id, sizeof(v->id));
    store_column_copy(st, 1, v->volume_id, sizeof(v->volume_id));
    store_column_copy(st, 2, v->project, sizeof(v->project));
    store_column_copy(st, 3, v->name, sizeof(v->name));
    store_column_copy(st, 4, v->pool_id, sizeof(v->pool_id));
    store_column_copy(st, 5, v->host, sizeof(v->host));
    v->size_gib = (uint64_t)sqlite3_column_int64(st, 6);
    v->state = volume_snapshot_state_from_string((const char *)sqlite3_column_text(st, 7));
    if (v->state == _VOLUME_SNAPSHOT_STATE_INVALID)
        v->state = VOLUME_SNAPSHOT_STATE_ERROR;
    store_column_copy(st, 8, v->created_at, sizeof(v->created_at));
}

void
volume_snapshot_list_free(VolumeSnapshot *v, size_t n)
{
    (void)n; /* a VolumeSnapshot owns nothing */
    free(v);
}

/* By id (of the volume's, when volume_id is given), else by name within volume_id. */
static int
volume_snapshot_get_locked(Store *s, const char *scope, const char *volume_id, const char *key,
                           VolumeSnapshot *ret, NbError **err)
{
    static const char by_id[] = "SELECT " VOLUME_SNAPSHOT_COLUMNS " FROM volume_snapshots "
                                "WHERE id = ?1 AND (?2 IS NULL OR volume_id = ?2) "
                                "AND (?3 IS NULL OR project = ?3)";
    static const char by_name[] = "SELECT " VOLUME_SNAPSHOT_COLUMNS " FROM volume_snapshots "
                                  "WHERE volume_id = ?2 AND name = ?1 "
                                  "AND (?3 IS NULL OR project = ?3)";
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1 && !volume_id)
            break;
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        if (store_prepare(s, pass == 0 ? by_id : by_name, &st, err) < 0)
            return -1;
        sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
        store_bind_text(st, 2, volume_id);
        store_bind_text(st, 3, scope);
        int rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            volume_snapshot_from_row(st, ret);
            return 0;
        }
        if (rc != SQLITE_DONE)
            return store_db_error(s, "get volume snapshot", err);
    }
    return nb_error_set(err, NB_ERR_SNAPSHOT_NOT_FOUND, "snapshot '%.64s' not found", key);
}

int
volume_snapshot_store_get(Store *s, const char *scope, const char *volume_id,
                          const char *id_or_name, VolumeSnapshot *ret, NbError **err)
{
    STORE_READING(s);
    return volume_snapshot_get_locked(s, scope, volume_id, id_or_name, ret, err);
}

int
volume_snapshot_store_list(Store *s, const char *scope, const char *volume_id, VolumeSnapshot **ret,
                           size_t *ret_n, NbError **err)
{
    STORE_READING(s);
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (store_prepare(s,
                      "SELECT " VOLUME_SNAPSHOT_COLUMNS " FROM volume_snapshots WHERE "
                      "(?1 IS NULL OR project = ?1) AND (?2 IS NULL OR volume_id = ?2) "
                      "ORDER BY created_at, id",
                      &st, err) < 0)
        return -1;
    store_bind_text(st, 1, scope);
    store_bind_text(st, 2, volume_id);
    return store_collect(s, st, sizeof(VolumeSnapshot), volume_snapshot_from_row, NULL,
                         (void **)ret, ret_n, err);
}

/* With the lock held: the first row's text column 0 of sql (?1 = key) into out; 1, 0 none, -1. */
static int
volume_snapshot_first_name(Store *s, const char *sql, const char *key, char *out, size_t len,
                           NbError **err)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (store_prepare(s, sql, &st, err) < 0)
        return -1;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_DONE)
        return 0;
    if (rc != SQLITE_ROW)
        return store_db_error(s, "volume snapshots", err);
    store_column_copy(st, 0, out, len);
    return 1;
}

int
volume_snapshot_check_ready_locked(Store *s, const char *id, NbError **err)
{
    VolumeSnapshot snap;
    if (volume_snapshot_get_locked(s, NULL, NULL, id, &snap, err) < 0)
        return -1;
    if (snap.state != VOLUME_SNAPSHOT_STATE_READY)
        return nb_error_set(err, NB_ERR_SNAPSHOT_BUSY, "snapshot '%s' is %s", snap.name,
                            volume_snapshot_state_to_string(snap.state));
    return 0;
}

int
volume_snapshot_none_locked(Store *s, const Volume *v, NbError **err)
{
    char name[NB_NAME_MAX + 1];
    int r = volume_snapshot_first_name(
        s, "SELECT name FROM volume_snapshots WHERE volume_id = ?1 ORDER BY created_at LIMIT 1",
        v->id, name, sizeof(name), err);
    if (r > 0)
        return nb_error_set(err, NB_ERR_VOLUME_HAS_SNAPSHOTS,
                            "volume '%s' has snapshots (%s...): delete them first", v->name, name);
    return r;
}

int
volume_snapshot_copying_locked(Store *s, const Volume *v, NbError **err)
{
    char name[NB_NAME_MAX + 1];
    int r = volume_snapshot_first_name(s,
                                       "SELECT name FROM volume_snapshots WHERE volume_id = ?1 "
                                       "AND state = 'creating' LIMIT 1",
                                       v->id, name, sizeof(name), err);
    if (r > 0)
        return nb_error_set(err, NB_ERR_VOLUME_BUSY,
                            "snapshot '%s' of volume '%s' is being made; retry when it is ready",
                            name, v->name);
    return r;
}

static int
volume_snapshot_finish_tx(Store *s, int rc, NbError **err)
{
    if (rc < 0 || store_commit(s, err) < 0) {
        store_rollback(s);
        return -1;
    }
    return 0;
}

static int
volume_snapshot_insert_locked(Store *s, VolumeSnapshot *snap, bool detached_only, const Task *task,
                              NbError **err)
{
    Volume v;
    _cleanup_stmt_ sqlite3_stmt *vol = NULL, *st = NULL;
    if (store_prepare(s,
                      "SELECT project, pool_id, host, size_gib, state, name FROM volumes "
                      "WHERE id = ?1",
                      &vol, err) < 0)
        return -1;
    sqlite3_bind_text(vol, 1, snap->volume_id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(vol);
    if (rc == SQLITE_DONE)
        return nb_error_set(err, NB_ERR_VOLUME_NOT_FOUND, "volume '%.64s' not found",
                            snap->volume_id);
    if (rc != SQLITE_ROW)
        return store_db_error(s, "insert volume snapshot", err);
    memset(&v, 0, sizeof(v));
    store_column_copy(vol, 0, snap->project, sizeof(snap->project));
    store_column_copy(vol, 1, snap->pool_id, sizeof(snap->pool_id));
    store_column_copy(vol, 2, snap->host, sizeof(snap->host));
    snap->size_gib = (uint64_t)sqlite3_column_int64(vol, 3);
    VolumeState state = volume_state_from_string((const char *)sqlite3_column_text(vol, 4));
    store_column_copy(vol, 5, v.name, sizeof(v.name));
    if (state == VOLUME_STATE_ATTACHED && detached_only)
        return nb_error_set(
            err, NB_ERR_VOLUME_IN_USE,
            "volume '%s' is attached: in this pool a snapshot is a copy, made while "
            "the volume is detached",
            v.name);
    if (state != VOLUME_STATE_AVAILABLE && state != VOLUME_STATE_ATTACHED)
        return nb_error_set(err,
                            state == VOLUME_STATE_ERROR ? NB_ERR_INVALID_STATE : NB_ERR_VOLUME_BUSY,
                            "volume '%s' is %s", v.name, volume_state_to_string(state));
    int64_t add[_QUOTA_MAX] = {[QUOTA_SNAPSHOTS] = 1};
    if (project_quota_check_locked(s, snap->project, add, err) < 0)
        return -1;
    if (store_prepare(s,
                      "INSERT INTO volume_snapshots (" VOLUME_SNAPSHOT_COLUMNS
                      ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                      &st, err) < 0)
        return -1;
    sqlite3_bind_text(st, 1, snap->id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, snap->volume_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, snap->project, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, snap->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, snap->pool_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 6, snap->host, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 7, (sqlite3_int64)snap->size_gib);
    sqlite3_bind_text(st, 8, volume_snapshot_state_to_string(snap->state), -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 9, snap->created_at, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    if (rc == SQLITE_CONSTRAINT && strstr(sqlite3_errmsg(s->db), "volume_snapshots.name"))
        return nb_error_set(err, NB_ERR_NAME_TAKEN, "volume '%s' has a snapshot named '%s' already",
                            v.name, snap->name);
    if (rc != SQLITE_DONE)
        return store_db_error(s, "insert volume snapshot", err);
    return task ? task_insert_locked(s, task, snap->project, err) : 0;
}

int
volume_snapshot_store_create(Store *s, VolumeSnapshot *snap, bool detached_only, const Task *task,
                             NbError **err)
{
    if (!volume_snapshot_state_to_string(snap->state))
        return nb_error_set(err, NB_ERR_INTERNAL, "store: snapshot '%s' has no valid state",
                            snap->name);
    STORE_LOCKED(s);
    if (store_begin(s, err) < 0)
        return -1;
    return volume_snapshot_finish_tx(
        s, volume_snapshot_insert_locked(s, snap, detached_only, task, err), err);
}

static int
volume_snapshot_transition_locked(Store *s, const char *id, unsigned from_mask,
                                  VolumeSnapshotState to, NbError **err)
{
    VolumeSnapshot cur;
    if (volume_snapshot_get_locked(s, NULL, NULL, id, &cur, err) < 0)
        return -1;
    if (from_mask && !(from_mask & (1u << (unsigned)cur.state)))
        return nb_error_set(err, NB_ERR_SNAPSHOT_BUSY, "snapshot '%s' is %s", cur.name,
                            volume_snapshot_state_to_string(cur.state));
    if (to == VOLUME_SNAPSHOT_STATE_DELETING) {
        /* An RBD clone depends on its snapshot for ever (until flattened); a copy in a dir pool
         * only while it is made. */
        char name[NB_NAME_MAX + 1];
        int r = volume_snapshot_first_name(
            s,
            "SELECT v.name FROM volumes v JOIN pools p ON p.id = v.pool_id "
            "WHERE v.source_snapshot = ?1 AND (v.state = 'creating' OR p.type = 'rbd') LIMIT 1",
            id, name, sizeof(name), err);
        if (r < 0)
            return -1;
        if (r > 0)
            return nb_error_set(err, NB_ERR_SNAPSHOT_HAS_CLONES,
                                "volume '%s' was made from snapshot '%s' and depends on it: "
                                "delete that volume first",
                                name, cur.name);
    }
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (store_prepare(s, "UPDATE volume_snapshots SET state = ?1 WHERE id = ?2", &st, err) < 0)
        return -1;
    sqlite3_bind_text(st, 1, volume_snapshot_state_to_string(to), -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, cur.id, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE)
        return store_db_error(s, "set volume snapshot state", err);
    return 0;
}

int
volume_snapshot_store_claim(Store *s, const char *id, unsigned from_mask, VolumeSnapshotState to,
                            const Task *task, NbError **err)
{
    if (!volume_snapshot_state_to_string(to))
        return nb_error_set(err, NB_ERR_INTERNAL, "store: not a volume snapshot state");
    STORE_LOCKED(s);
    if (store_begin(s, err) < 0)
        return -1;
    VolumeSnapshot cur;
    int rc = volume_snapshot_get_locked(s, NULL, NULL, id, &cur, err);
    if (rc == 0)
        rc = volume_snapshot_transition_locked(s, id, from_mask, to, err);
    if (rc == 0 && task)
        rc = task_insert_locked(s, task, cur.project, err);
    return volume_snapshot_finish_tx(s, rc, err);
}

int
volume_snapshot_store_delete(Store *s, const char *id, NbError **err)
{
    STORE_LOCKED(s);
    if (store_begin(s, err) < 0)
        return -1;
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int rc = store_prepare(s, "DELETE FROM volume_snapshots WHERE id = ?1", &st, err);
    if (rc == 0) {
        sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
        if (sqlite3_step(st) != SQLITE_DONE)
            rc = store_db_error(s, "delete volume snapshot", err);
        else if (sqlite3_changes(s->db) == 0)
            rc = nb_error_set(err, NB_ERR_SNAPSHOT_NOT_FOUND, "snapshot '%.64s' not found", id);
    }
    return volume_snapshot_finish_tx(s, rc, err);
}
