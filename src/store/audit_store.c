#include "store_internal.h"

#include <string.h>

#define AUDIT_COLUMNS                                                                              \
    "id, at, request_id, user_name, project_id, source, method, path, action, target, status, "    \
    "result"

int
audit_store_insert(Store *s, const AuditEvent *e, NbError **err)
{
    STORE_LOCKED(s);
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (store_prepare(s,
                      "INSERT INTO audit (at, request_id, user_name, project_id, source, method, "
                      "path, action, target, status, result) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, "
                      "?, ?)",
                      &st, err) < 0)
        return -1;
    sqlite3_bind_text(st, 1, e->at, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, e->request_id, -1, SQLITE_STATIC);
    store_bind_text(st, 3, e->user);
    store_bind_text(st, 4, e->project_id);
    sqlite3_bind_text(st, 5, e->source, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 6, e->method, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 7, e->path, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 8, e->action, -1, SQLITE_STATIC);
    store_bind_text(st, 9, e->target);
    sqlite3_bind_int(st, 10, (int)e->status);
    sqlite3_bind_text(st, 11, e->result, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE)
        return store_db_error(s, "insert audit event", err);
    return 0;
}

static void
audit_from_row(sqlite3_stmt *st, void *elem)
{
    AuditEvent *e = elem;
    e->id = sqlite3_column_int64(st, 0);
    store_column_copy(st, 1, e->at, sizeof(e->at));
    store_column_copy(st, 2, e->request_id, sizeof(e->request_id));
    store_column_copy(st, 3, e->user, sizeof(e->user));
    store_column_copy(st, 4, e->project_id, sizeof(e->project_id));
    store_column_copy(st, 5, e->source, sizeof(e->source));
    store_column_copy(st, 6, e->method, sizeof(e->method));
    store_column_copy(st, 7, e->path, sizeof(e->path));
    store_column_copy(st, 8, e->action, sizeof(e->action));
    store_column_copy(st, 9, e->target, sizeof(e->target));
    e->status = (unsigned)sqlite3_column_int(st, 10);
    store_column_copy(st, 11, e->result, sizeof(e->result));
}

int
audit_store_list(Store *s, const char *project, const char *since, unsigned limit, AuditEvent **ret,
                 size_t *ret_n, NbError **err)
{
    STORE_READING(s);
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    /* A project's events walk audit_by_project; `?1 IS NULL OR project_id = ?1` would walk
     * every project's. */
    if (store_prepare(s,
                      project ? "SELECT " AUDIT_COLUMNS " FROM audit WHERE project_id = ?1 "
                                "AND (?2 IS NULL OR at >= ?2) ORDER BY id DESC LIMIT ?3"
                              : "SELECT " AUDIT_COLUMNS " FROM audit WHERE (?2 IS NULL OR "
                                "at >= ?2) ORDER BY id DESC LIMIT ?3",
                      &st, err) < 0)
        return -1;
    if (project)
        sqlite3_bind_text(st, 1, project, -1, SQLITE_STATIC);
    store_bind_text(st, 2, since);
    sqlite3_bind_int(st, 3, (int)limit);
    return store_collect(s, st, sizeof(AuditEvent), audit_from_row, NULL, (void **)ret, ret_n, err);
}
