#include "store_internal.h"

#include <stdlib.h>
#include <string.h>

/* Monitors are kept as one text, "a,b,c": a "host[:port]" never holds a comma. */
static void
pool_monitors_split(const char *text, Pool *p)
{
    p->n_monitors = 0;
    for (const char *at = text; *at && p->n_monitors < POOL_MONITORS_MAX;) {
        size_t len = strcspn(at, ",");
        if (len > 0 && len <= POOL_HOSTPORT_MAX) {
            memcpy(p->monitors[p->n_monitors], at, len);
            p->monitors[p->n_monitors][len] = '\0';
            p->n_monitors++;
        }
        at += len + (at[len] == ',');
    }
}

static void
pool_monitors_join(const Pool *p, char out[POOL_MONITORS_MAX * (POOL_HOSTPORT_MAX + 1) + 1])
{
    size_t len = 0, size = POOL_MONITORS_MAX * (POOL_HOSTPORT_MAX + 1) + 1;
    out[0] = '\0';
    for (size_t i = 0; i < p->n_monitors && i < POOL_MONITORS_MAX; i++)
        len += (size_t)snprintf(out + len, size - len, "%s%s", i ? "," : "", p->monitors[i]);
}

static void
pool_from_row(sqlite3_stmt *st, void *elem)
{
    Pool *p = elem;
    memset(p, 0, sizeof(*p));
    store_column_copy(st, 0, p->id, sizeof(p->id));
    store_column_copy(st, 1, p->name, sizeof(p->name));
    p->type = pool_type_from_string((const char *)sqlite3_column_text(st, 2));
    store_column_copy(st, 3, p->host, sizeof(p->host));
    store_column_copy(st, 4, p->libvirt_name, sizeof(p->libvirt_name));
    p->is_default = sqlite3_column_int(st, 5) != 0;
    store_column_copy(st, 6, p->path, sizeof(p->path));
    const unsigned char *monitors = sqlite3_column_text(st, 7);
    pool_monitors_split(monitors ? (const char *)monitors : "", p);
    store_column_copy(st, 8, p->source, sizeof(p->source));
    store_column_copy(st, 9, p->initiator, sizeof(p->initiator));
    store_column_copy(st, 10, p->auth_user, sizeof(p->auth_user));
    store_column_copy(st, 11, p->secret, sizeof(p->secret));
    store_column_copy(st, 12, p->created_at, sizeof(p->created_at));
}

/* Wipes the secrets a list held before freeing it: a pool list travels through the API's
 * handlers, whose freed memory may be reused for anything. */
void
pool_list_free(Pool *p, size_t n)
{
    for (size_t i = 0; p && i < n; i++)
        explicit_bzero(p[i].secret, sizeof(p[i].secret));
    free(p);
}

static int
pool_get_locked(Store *s, const char *id_or_name, Pool *ret, NbError **err)
{
    return store_get_by_id_or_name(s, STORE_SQL_POOL_BY_ID, STORE_SQL_POOL_BY_NAME, id_or_name,
                                   NULL, pool_from_row, ret, NB_ERR_POOL_NOT_FOUND, "pool", err);
}

int
pool_store_get(Store *s, const char *id_or_name, Pool *ret, NbError **err)
{
    STORE_READING(s);
    return pool_get_locked(s, id_or_name, ret, err);
}

/* The default pool: 1 found, 0 none, -1 error. */
static int
pool_default_locked(Store *s, Pool *ret, NbError **err)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (store_prepare(s, STORE_SQL_POOL_DEFAULT, &st, err) < 0)
        return -1;
    int rc = sqlite3_step(st);
    if (rc == SQLITE_DONE)
        return 0;
    if (rc != SQLITE_ROW)
        return store_db_error(s, "get default pool", err);
    pool_from_row(st, ret);
    return 1;
}

int
pool_store_get_default(Store *s, Pool *ret, NbError **err)
{
    STORE_READING(s);
    int rc = pool_default_locked(s, ret, err);
    if (rc == 0)
        return nb_error_set(err, NB_ERR_POOL_NOT_FOUND, "there is no default pool");
    return rc < 0 ? -1 : 0;
}

int
pool_store_list(Store *s, Pool **ret, size_t *ret_n, NbError **err)
{
    STORE_READING(s);
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (store_prepare(s, "SELECT " POOL_COLUMNS " FROM pools ORDER BY name", &st, err) < 0)
        return -1;
    return store_collect(s, st, sizeof(Pool), pool_from_row, NULL, (void **)ret, ret_n, err);
}

/* With the lock held: inserts p, is_default as given. The text columns are NOT NULL ('' when
 * unused), so they are bound as given, never as NULL. */
static int
pool_insert_locked(Store *s, const Pool *p, bool is_default, NbError **err)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (store_prepare(s,
                      "INSERT INTO pools (" POOL_COLUMNS
                      ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                      &st, err) < 0)
        return -1;
    const char *type = pool_type_to_string(p->type);
    if (!type)
        return nb_error_set(err, NB_ERR_POOL_INVALID_TYPE, "pool '%s' has no valid type", p->name);
    char monitors[POOL_MONITORS_MAX * (POOL_HOSTPORT_MAX + 1) + 1];
    pool_monitors_join(p, monitors);
    sqlite3_bind_text(st, 1, p->id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, p->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, type, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, p->host, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, p->libvirt_name, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 6, is_default);
    sqlite3_bind_text(st, 7, p->path, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 8, monitors, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 9, p->source, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 10, p->initiator, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 11, p->auth_user, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 12, p->secret, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 13, p->created_at, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_DONE)
        return 0;
    const char *msg = sqlite3_errmsg(s->db);
    if (rc == SQLITE_CONSTRAINT && strstr(msg, "pools.name"))
        return nb_error_set(err, NB_ERR_NAME_TAKEN, "a pool named '%s' already exists", p->name);
    if (rc == SQLITE_CONSTRAINT && strstr(msg, "pools.libvirt_name"))
        return nb_error_set(err, NB_ERR_NAME_TAKEN, "a pool already uses the libvirt pool '%s'",
                            p->libvirt_name);
    if (rc == SQLITE_CONSTRAINT && strstr(msg, "pools.is_default"))
        return nb_error_set(err, NB_ERR_INTERNAL, "store: there is a default pool already");
    return store_db_error(s, "insert pool", err);
}

int
pool_store_insert(Store *s, const Pool *p, NbError **err)
{
    STORE_LOCKED(s);
    return pool_insert_locked(s, p, p->is_default, err);
}

int
pool_store_ensure_default(Store *s, const Pool *p, Pool *ret, NbError **err)
{
    STORE_LOCKED(s);
    if (store_begin(s, err) < 0)
        return -1;
    int rc = pool_default_locked(s, ret, err);
    if (rc == 0 && pool_insert_locked(s, p, true, err) == 0)
        rc = pool_default_locked(s, ret, err);
    if (rc <= 0) {
        /* 0 here: the row just inserted cannot be read back. */
        if (rc == 0)
            store_db_error(s, "ensure default pool", err);
        store_rollback(s);
        return -1;
    }
    if (store_commit(s, err) < 0) {
        store_rollback(s);
        return -1;
    }
    return 0;
}

int
pool_store_delete(Store *s, const char *id, NbError **err)
{
    STORE_LOCKED(s);
    _cleanup_stmt_ sqlite3_stmt *used = NULL, *hosts = NULL, *del = NULL;
    if (store_prepare(s, STORE_SQL_POOL_VOLUMES, &used, err) < 0 ||
        store_prepare(s, "DELETE FROM pool_hosts WHERE pool_id = ?", &hosts, err) < 0 ||
        store_prepare(s, "DELETE FROM pools WHERE id = ?", &del, err) < 0 ||
        store_begin(s, err) < 0)
        return -1;
    Pool p;
    int rc = store_get_by_id_or_name(s, STORE_SQL_POOL_BY_ID, STORE_SQL_POOL_BY_ID, id, NULL,
                                     pool_from_row, &p, NB_ERR_POOL_NOT_FOUND, "pool", err);
    explicit_bzero(p.secret, sizeof(p.secret));
    if (rc < 0) {
        store_rollback(s);
        return -1;
    }
    if (p.is_default) {
        store_rollback(s);
        return nb_error_set(err, NB_ERR_POOL_IN_USE, "the default pool '%s' cannot be deleted",
                            p.name);
    }
    sqlite3_bind_text(used, 1, id, -1, SQLITE_STATIC);
    if (sqlite3_step(used) != SQLITE_ROW) {
        store_db_error(s, "delete pool", err);
        store_rollback(s);
        return -1;
    }
    int64_t volumes = sqlite3_column_int64(used, 0);
    if (volumes > 0) {
        store_rollback(s);
        return nb_error_set(err, NB_ERR_POOL_IN_USE,
                            "pool '%s' still holds %lld volume%s or VM disk%s", p.name,
                            (long long)volumes, volumes == 1 ? "" : "s", volumes == 1 ? "" : "s");
    }
    sqlite3_bind_text(hosts, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_text(del, 1, id, -1, SQLITE_STATIC);
    if (sqlite3_step(hosts) != SQLITE_DONE || sqlite3_step(del) != SQLITE_DONE) {
        store_db_error(s, "delete pool", err);
        store_rollback(s);
        return -1;
    }
    if (store_commit(s, err) < 0) {
        store_rollback(s);
        return -1;
    }
    return 0;
}

int
pool_store_host_set(Store *s, const char *pool_id, const PoolHostState *hs, NbError **err)
{
    STORE_LOCKED(s);
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    char now[NB_TIMESTAMP_LEN];
    if (hs->updated_at[0])
        snprintf(now, sizeof(now), "%s", hs->updated_at);
    else
        nb_timestamp_now(now);
    /* From the pools row, so that a pool deleted meanwhile gets no orphan record. */
    if (store_prepare(s,
                      "INSERT INTO pool_hosts (pool_id, " POOL_HOST_COLUMNS ") "
                      "SELECT id, ?2, ?3, ?4, ?5, ?6, ?7 FROM pools WHERE id = ?1 "
                      "ON CONFLICT (pool_id, host) DO UPDATE SET state = excluded.state, "
                      "error = excluded.error, capacity = excluded.capacity, "
                      "allocation = excluded.allocation, updated_at = excluded.updated_at",
                      &st, err) < 0)
        return -1;
    sqlite3_bind_text(st, 1, pool_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, hs->host, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, hs->state[0] ? hs->state : "pending", -1, SQLITE_STATIC);
    store_bind_text(st, 4, hs->error);
    if (hs->capacity >= 0)
        sqlite3_bind_int64(st, 5, hs->capacity);
    else
        sqlite3_bind_null(st, 5);
    if (hs->allocation >= 0)
        sqlite3_bind_int64(st, 6, hs->allocation);
    else
        sqlite3_bind_null(st, 6);
    sqlite3_bind_text(st, 7, now, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE)
        return store_db_error(s, "set pool host state", err);
    if (sqlite3_changes(s->db) == 0)
        return nb_error_set(err, NB_ERR_POOL_NOT_FOUND, "pool '%.64s' not found", pool_id);
    return 0;
}

int
pool_store_host_remove(Store *s, const char *pool_id, const char *host, NbError **err)
{
    STORE_LOCKED(s);
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (store_prepare(s, "DELETE FROM pool_hosts WHERE pool_id = ? AND host = ?", &st, err) < 0)
        return -1;
    sqlite3_bind_text(st, 1, pool_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, host, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE)
        return store_db_error(s, "remove pool host", err);
    return 0;
}

static void
pool_host_from_row(sqlite3_stmt *st, void *elem)
{
    PoolHostState *h = elem;
    memset(h, 0, sizeof(*h));
    store_column_copy(st, 0, h->host, sizeof(h->host));
    store_column_copy(st, 1, h->state, sizeof(h->state));
    store_column_copy(st, 2, h->error, sizeof(h->error));
    h->capacity = sqlite3_column_type(st, 3) == SQLITE_NULL ? -1 : sqlite3_column_int64(st, 3);
    h->allocation = sqlite3_column_type(st, 4) == SQLITE_NULL ? -1 : sqlite3_column_int64(st, 4);
    store_column_copy(st, 5, h->updated_at, sizeof(h->updated_at));
}

int
pool_store_hosts(Store *s, const char *pool_id, PoolHostState **ret, size_t *ret_n, NbError **err)
{
    STORE_READING(s);
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (store_prepare(s, STORE_SQL_POOL_HOSTS, &st, err) < 0)
        return -1;
    sqlite3_bind_text(st, 1, pool_id, -1, SQLITE_STATIC);
    return store_collect(s, st, sizeof(PoolHostState), pool_host_from_row, NULL, (void **)ret,
                         ret_n, err);
}
