#include "store_internal.h"

#include <string.h>

int
token_store_count(Store *s, NbError **err)
{
    STORE_READING(s);
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (store_prepare(s, "SELECT count(*) FROM tokens WHERE revoked_at IS NULL", &st, err) < 0)
        return -1;
    if (sqlite3_step(st) != SQLITE_ROW)
        return store_db_error(s, "count tokens", err);
    return sqlite3_column_int(st, 0);
}

int
token_store_insert(Store *s, const TokenInfo *t, const char *hash_hex, NbError **err)
{
    STORE_LOCKED(s);
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (store_prepare(s,
                      "INSERT INTO tokens (id, hash, name, user_id, created_at, expires_at) "
                      "VALUES (?, ?, ?, ?, ?, ?)",
                      &st, err) < 0)
        return -1;
    sqlite3_bind_text(st, 1, t->id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, hash_hex, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, t->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, t->user_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, t->created_at, -1, SQLITE_STATIC);
    store_bind_text(st, 6, t->expires_at);
    if (sqlite3_step(st) != SQLITE_DONE)
        return store_db_error(s, "insert token", err);
    return 0;
}

int
token_store_lookup(Store *s, const char *hash_hex, Principal *ret)
{
    STORE_READING(s);
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    /* Timestamps are all RFC 3339 UTC with milliseconds, so they compare as strings. */
    if (store_prepare(s, STORE_SQL_TOKEN_LOOKUP, &st, NULL) < 0)
        return -1;
    sqlite3_bind_text(st, 1, hash_hex, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_ROW)
        return 0;
    memset(ret, 0, sizeof(*ret));
    store_column_copy(st, 0, ret->token_id, sizeof(ret->token_id));
    store_column_copy(st, 1, ret->user_id, sizeof(ret->user_id));
    store_column_copy(st, 2, ret->user_name, sizeof(ret->user_name));
    store_column_copy(st, 3, ret->project_id, sizeof(ret->project_id));
    ret->role = role_from_string((const char *)sqlite3_column_text(st, 4));
    return ret->role == _ROLE_INVALID ? 0 : 1;
}

static void
token_from_row(sqlite3_stmt *st, void *elem)
{
    TokenInfo *t = elem;
    store_column_copy(st, 0, t->id, sizeof(t->id));
    store_column_copy(st, 1, t->name, sizeof(t->name));
    store_column_copy(st, 2, t->user_id, sizeof(t->user_id));
    store_column_copy(st, 3, t->created_at, sizeof(t->created_at));
    store_column_copy(st, 4, t->expires_at, sizeof(t->expires_at));
    store_column_copy(st, 5, t->revoked_at, sizeof(t->revoked_at));
}

int
token_store_list(Store *s, const char *user_id, TokenInfo **ret, size_t *ret_n, NbError **err)
{
    STORE_READING(s);
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (store_prepare(s,
                      "SELECT id, name, user_id, created_at, expires_at, revoked_at FROM tokens "
                      "WHERE ?1 IS NULL OR user_id = ?1 ORDER BY created_at DESC",
                      &st, err) < 0)
        return -1;
    store_bind_text(st, 1, user_id);
    return store_collect(s, st, sizeof(TokenInfo), token_from_row, NULL, (void **)ret, ret_n, err);
}

int
token_store_revoke(Store *s, const char *id, const char *user_id, NbError **err)
{
    STORE_LOCKED(s);
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (store_prepare(s,
                      "UPDATE tokens SET revoked_at = coalesce(revoked_at, "
                      "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')) "
                      "WHERE id = ?1 AND (?2 IS NULL OR user_id = ?2)",
                      &st, err) < 0)
        return -1;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    store_bind_text(st, 2, user_id);
    if (sqlite3_step(st) != SQLITE_DONE)
        return store_db_error(s, "revoke token", err);
    if (sqlite3_changes(s->db) == 0)
        return nb_error_set(err, NB_ERR_TOKEN_NOT_FOUND, "token '%.64s' not found", id);
    return 0;
}
