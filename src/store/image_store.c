#include "store_internal.h"

#include <stdlib.h>

static void
image_from_row(sqlite3_stmt *st, void *elem)
{
    Image *img = elem;
    store_column_copy(st, 0, img->id, sizeof(img->id));
    store_column_copy(st, 1, img->name, sizeof(img->name));
    img->state = image_state_from_string((const char *)sqlite3_column_text(st, 2));
    const char *fmt = (const char *)sqlite3_column_text(st, 3);
    img->format = fmt ? image_format_from_string(fmt) : IMAGE_FORMAT_UNKNOWN;
    if (img->format == _IMAGE_FORMAT_INVALID)
        img->format = IMAGE_FORMAT_UNKNOWN;
    img->size_bytes = (uint64_t)sqlite3_column_int64(st, 4);
    img->virtual_size_bytes = (uint64_t)sqlite3_column_int64(st, 5);
    store_column_copy(st, 6, img->volume, sizeof(img->volume));
    store_column_copy(st, 7, img->created_at, sizeof(img->created_at));
    store_column_copy(st, 8, img->updated_at, sizeof(img->updated_at));
    store_column_copy(st, 9, img->project, sizeof(img->project));
}

int
image_store_insert(Store *s, const Image *img, NbError **err)
{
    STORE_LOCKED(s);
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int64_t add[_QUOTA_MAX] = {[QUOTA_IMAGES] = 1};
    if (store_prepare(s,
                      "INSERT INTO images (" IMAGE_COLUMNS ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, "
                      "?)",
                      &st, err) < 0 ||
        store_begin(s, err) < 0)
        return -1;
    if (project_quota_check_locked(s, img->project, add, err) < 0) {
        store_rollback(s);
        return -1;
    }
    sqlite3_bind_text(st, 1, img->id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, img->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, image_state_to_string(img->state), -1, SQLITE_STATIC);
    store_bind_text(st, 4, image_format_to_string(img->format));
    sqlite3_bind_int64(st, 5, (sqlite3_int64)img->size_bytes);
    sqlite3_bind_int64(st, 6, (sqlite3_int64)img->virtual_size_bytes);
    sqlite3_bind_text(st, 7, img->volume, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 8, img->created_at, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 9, img->updated_at, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 10, img->project, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc != SQLITE_DONE) {
        if (rc == SQLITE_CONSTRAINT)
            nb_error_set(err, NB_ERR_NAME_TAKEN, "an image named '%s' already exists", img->name);
        else
            store_db_error(s, "insert image", err);
        store_rollback(s);
        return -1;
    }
    return store_commit(s, err);
}

int
image_store_get(Store *s, const char *scope, const char *id_or_name, Image *ret, NbError **err)
{
    STORE_READING(s);
    return store_get_by_id_or_name(s, STORE_SQL_IMAGE_BY_ID, STORE_SQL_IMAGE_BY_NAME, id_or_name,
                                   scope, image_from_row, ret, NB_ERR_IMAGE_NOT_FOUND, "image",
                                   err);
}

static int
image_store_select(Store *s, const char *sql, const char *scope, Image **ret, size_t *ret_n,
                   NbError **err)
{
    STORE_READING(s);
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (store_prepare(s, sql, &st, err) < 0)
        return -1;
    if (sqlite3_bind_parameter_count(st) >= 1)
        store_bind_text(st, 1, scope);
    return store_collect(s, st, sizeof(Image), image_from_row, NULL, (void **)ret, ret_n, err);
}

int
image_store_list(Store *s, const char *scope, Image **ret, size_t *ret_n, NbError **err)
{
    return image_store_select(
        s, "SELECT " IMAGE_COLUMNS " FROM images WHERE ?1 IS NULL OR project = ?1 ORDER BY name",
        scope, ret, ret_n, err);
}

int
image_store_list_uploading(Store *s, Image **ret, size_t *ret_n, NbError **err)
{
    return image_store_select(s, "SELECT " IMAGE_COLUMNS " FROM images WHERE state = 'uploading'",
                              NULL, ret, ret_n, err);
}

int
image_store_transition(Store *s, const char *id, ImageState from, ImageState to, NbError **err)
{
    STORE_LOCKED(s);
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    char now[NB_TIMESTAMP_LEN];
    nb_timestamp_now(now);
    if (store_prepare(s, "UPDATE images SET state = ?, updated_at = ? WHERE id = ? AND state = ?",
                      &st, err) < 0)
        return -1;
    sqlite3_bind_text(st, 1, image_state_to_string(to), -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, now, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, image_state_to_string(from), -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE)
        return store_db_error(s, "update image state", err);
    if (sqlite3_changes(s->db) == 0)
        return nb_error_set(err, NB_ERR_IMAGE_ALREADY_UPLOADED,
                            "image is not waiting for an upload (it is being uploaded or has "
                            "data already)");
    return 0;
}

int
image_store_set_active(Store *s, const Image *img, NbError **err)
{
    STORE_LOCKED(s);
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    char now[NB_TIMESTAMP_LEN];
    nb_timestamp_now(now);
    if (store_prepare(s,
                      "UPDATE images SET state = 'active', format = ?, size_bytes = ?, "
                      "virtual_size_bytes = ?, updated_at = ? WHERE id = ?",
                      &st, err) < 0)
        return -1;
    sqlite3_bind_text(st, 1, image_format_to_string(img->format), -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)img->size_bytes);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)img->virtual_size_bytes);
    sqlite3_bind_text(st, 4, now, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, img->id, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE)
        return store_db_error(s, "activate image", err);
    return 0;
}

int
image_store_delete(Store *s, const char *id, NbError **err)
{
    STORE_LOCKED(s);
    _cleanup_stmt_ sqlite3_stmt *used = NULL, *del = NULL;
    if (store_prepare(s, "SELECT count(*) FROM vms WHERE image_id = ?", &used, err) < 0 ||
        store_prepare(s, "DELETE FROM images WHERE id = ? AND state != 'uploading'", &del, err) < 0)
        return -1;
    sqlite3_bind_text(used, 1, id, -1, SQLITE_STATIC);
    if (sqlite3_step(used) != SQLITE_ROW)
        return store_db_error(s, "count image users", err);
    if (sqlite3_column_int64(used, 0) > 0)
        return nb_error_set(err, NB_ERR_IMAGE_IN_USE, "image is used by %lld VM(s)",
                            (long long)sqlite3_column_int64(used, 0));
    sqlite3_bind_text(del, 1, id, -1, SQLITE_STATIC);
    if (sqlite3_step(del) != SQLITE_DONE)
        return store_db_error(s, "delete image", err);
    if (sqlite3_changes(s->db) == 0)
        return nb_error_set(err, NB_ERR_IMAGE_IN_USE, "image is being uploaded");
    return 0;
}
