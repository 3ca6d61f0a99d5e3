#include "store_internal.h"

#include <stdlib.h>
#include <string.h>

static void
user_from_row(sqlite3_stmt *st, void *elem)
{
    User *u = elem;
    store_column_copy(st, 0, u->id, sizeof(u->id));
    store_column_copy(st, 1, u->name, sizeof(u->name));
    store_column_copy(st, 2, u->project_id, sizeof(u->project_id));
    u->role = role_from_string((const char *)sqlite3_column_text(st, 3));
    store_column_copy(st, 4, u->created_at, sizeof(u->created_at));
}

int
user_store_insert(Store *s, const User *u, const char *password_hash, NbError **err)
{
    STORE_LOCKED(s);
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (store_prepare(s,
                      "INSERT INTO users (id, name, project_id, role, created_at, password_hash) "
                      "VALUES (?, ?, ?, ?, ?, ?)",
                      &st, err) < 0)
        return -1;
    sqlite3_bind_text(st, 1, u->id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, u->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, u->project_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, role_to_string(u->role), -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, u->created_at, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 6, password_hash, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_CONSTRAINT)
        return nb_error_set(err, NB_ERR_NAME_TAKEN, "a user named '%s' already exists", u->name);
    if (rc != SQLITE_DONE)
        return store_db_error(s, "insert user", err);
    return 0;
}

int
user_store_get(Store *s, const char *id_or_name, User *ret, NbError **err)
{
    STORE_READING(s);
    return store_get_by_id_or_name(s, STORE_SQL_USER_BY_ID, STORE_SQL_USER_BY_NAME, id_or_name,
                                   NULL, user_from_row, ret, NB_ERR_USER_NOT_FOUND, "user", err);
}

int
user_store_get_password_hash(Store *s, const char *name, User *ret, char **ret_hash)
{
    STORE_READING(s);
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (store_prepare(s, "SELECT " USER_COLUMNS ", password_hash FROM users WHERE name = ?", &st,
                      NULL) < 0)
        return -1;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_ROW)
        return 0;
    user_from_row(st, ret);
    *ret_hash = store_column_strdup(st, 5);
    return *ret_hash ? 1 : -1;
}

int
user_store_list(Store *s, User **ret, size_t *ret_n, NbError **err)
{
    STORE_READING(s);
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (store_prepare(s, "SELECT " USER_COLUMNS " FROM users ORDER BY name", &st, err) < 0)
        return -1;
    return store_collect(s, st, sizeof(User), user_from_row, NULL, (void **)ret, ret_n, err);
}

int
user_store_delete(Store *s, const char *id, NbError **err)
{
    STORE_LOCKED(s);
    if (streq(id, NB_ADMIN_USER_ID))
        return nb_error_set(err, NB_ERR_FORBIDDEN, "the bootstrap admin stays");
    if (store_begin(s, err) < 0)
        return -1;
    _cleanup_stmt_ sqlite3_stmt *revoke = NULL, *del = NULL;
    if (store_prepare(s,
                      "UPDATE tokens SET revoked_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') "
                      "WHERE user_id = ? AND revoked_at IS NULL",
                      &revoke, err) < 0 ||
        store_prepare(s, "DELETE FROM users WHERE id = ?", &del, err) < 0) {
        store_rollback(s);
        return -1;
    }
    sqlite3_bind_text(revoke, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_text(del, 1, id, -1, SQLITE_STATIC);
    if (sqlite3_step(revoke) != SQLITE_DONE || sqlite3_step(del) != SQLITE_DONE) {
        store_db_error(s, "delete user", err);
        store_rollback(s);
        return -1;
    }
    if (sqlite3_changes(s->db) == 0) {
        store_rollback(s);
        return nb_error_set(err, NB_ERR_USER_NOT_FOUND, "user not found");
    }
    return store_commit(s, err);
}
