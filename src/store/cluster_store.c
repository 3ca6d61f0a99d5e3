/* What the cluster adds beside hosts and groups: where images have been copied, and the
 * parameters a migration task settles as it runs. */
#include "store_internal.h"

#include <stdlib.h>
#include <string.h>

static const char *const image_copy_states[] = {
    [IMAGE_COPY_COPYING] = "copying",
    [IMAGE_COPY_READY] = "ready",
};

int
image_copy_get(Store *s, const char *image_id, const char *host, NbError **err)
{
    STORE_READING(s);
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (store_prepare(s, "SELECT state FROM image_copies WHERE image_id = ? AND host = ?", &st,
                      err) < 0)
        return -1;
    sqlite3_bind_text(st, 1, image_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, host, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_DONE)
        return IMAGE_COPY_NONE;
    if (rc != SQLITE_ROW)
        return store_db_error(s, "read image copy", err);
    const char *state = (const char *)sqlite3_column_text(st, 0);
    return state && streq(state, "ready") ? IMAGE_COPY_READY : IMAGE_COPY_COPYING;
}

int
image_copy_set(Store *s, const char *image_id, const char *host, ImageCopyState state,
               NbError **err)
{
    STORE_LOCKED(s);
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    char now[NB_TIMESTAMP_LEN];
    nb_timestamp_now(now);
    if (state != IMAGE_COPY_COPYING && state != IMAGE_COPY_READY)
        return nb_error_set(err, NB_ERR_INTERNAL, "bad image copy state %d", (int)state);
    if (store_prepare(s,
                      "INSERT INTO image_copies (image_id, host, state, updated_at) "
                      "VALUES (?1, ?2, ?3, ?4) ON CONFLICT (image_id, host) "
                      "DO UPDATE SET state = ?3, updated_at = ?4",
                      &st, err) < 0)
        return -1;
    sqlite3_bind_text(st, 1, image_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, host, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, image_copy_states[state], -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, now, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE)
        return store_db_error(s, "record image copy", err);
    return 0;
}

int
image_copy_list(Store *s, const char *image_id, char ***ret, NbError **err)
{
    STORE_READING(s);
    return store_strv_query(s, "SELECT host FROM image_copies WHERE image_id = ?1 ORDER BY host",
                            image_id, "list image copies", ret, err);
}

int
image_copy_delete(Store *s, const char *image_id, const char *host, NbError **err)
{
    STORE_LOCKED(s);
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (store_prepare(s, "DELETE FROM image_copies WHERE image_id = ? AND host = ?", &st, err) < 0)
        return -1;
    sqlite3_bind_text(st, 1, image_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, host, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE)
        return store_db_error(s, "delete image copy", err);
    return 0;
}

int
task_store_set_params(Store *s, const char *id, const char *params, NbError **err)
{
    STORE_LOCKED(s);
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    char now[NB_TIMESTAMP_LEN];
    nb_timestamp_now(now);
    if (store_prepare(s, "UPDATE tasks SET params = ?, updated_at = ? WHERE id = ?", &st, err) < 0)
        return -1;
    store_bind_text(st, 1, params);
    sqlite3_bind_text(st, 2, now, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, id, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE)
        return store_db_error(s, "update task params", err);
    return 0;
}
