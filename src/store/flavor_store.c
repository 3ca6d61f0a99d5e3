#include "store_internal.h"

#include <stdlib.h>

static void
flavor_from_row(sqlite3_stmt *st, void *elem)
{
    Flavor *f = elem;
    store_column_copy(st, 0, f->id, sizeof(f->id));
    store_column_copy(st, 1, f->name, sizeof(f->name));
    f->vcpus = (unsigned)sqlite3_column_int64(st, 2);
    f->ram_mib = (uint64_t)sqlite3_column_int64(st, 3);
    f->disk_gib = (uint64_t)sqlite3_column_int64(st, 4);
    store_column_copy(st, 5, f->created_at, sizeof(f->created_at));
    f->net_in_kbit = (uint32_t)sqlite3_column_int64(st, 6);
    f->net_out_kbit = (uint32_t)sqlite3_column_int64(st, 7);
    f->disk_iops = (uint32_t)sqlite3_column_int64(st, 8);
    f->disk_mbps = (uint32_t)sqlite3_column_int64(st, 9);
}

int
flavor_store_insert(Store *s, const Flavor *f, NbError **err)
{
    STORE_LOCKED(s);
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (store_prepare(
            s, "INSERT INTO flavors (" FLAVOR_COLUMNS ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            &st, err) < 0)
        return -1;
    sqlite3_bind_text(st, 1, f->id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, f->name, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, f->vcpus);
    sqlite3_bind_int64(st, 4, (sqlite3_int64)f->ram_mib);
    sqlite3_bind_int64(st, 5, (sqlite3_int64)f->disk_gib);
    sqlite3_bind_text(st, 6, f->created_at, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 7, f->net_in_kbit);
    sqlite3_bind_int64(st, 8, f->net_out_kbit);
    sqlite3_bind_int64(st, 9, f->disk_iops);
    sqlite3_bind_int64(st, 10, f->disk_mbps);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_CONSTRAINT)
        return nb_error_set(err, NB_ERR_NAME_TAKEN, "a flavor named '%s' already exists", f->name);
    if (rc != SQLITE_DONE)
        return store_db_error(s, "insert flavor", err);
    return 0;
}

int
flavor_store_get(Store *s, const char *id_or_name, Flavor *ret, NbError **err)
{
    STORE_READING(s);
    return store_get_by_id_or_name(s, STORE_SQL_FLAVOR_BY_ID, STORE_SQL_FLAVOR_BY_NAME, id_or_name,
                                   NULL, flavor_from_row, ret, NB_ERR_FLAVOR_NOT_FOUND, "flavor",
                                   err);
}

int
flavor_store_list(Store *s, Flavor **ret, size_t *ret_n, NbError **err)
{
    STORE_READING(s);
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (store_prepare(s, "SELECT " FLAVOR_COLUMNS " FROM flavors ORDER BY name", &st, err) < 0)
        return -1;
    return store_collect(s, st, sizeof(Flavor), flavor_from_row, NULL, (void **)ret, ret_n, err);
}

int
flavor_store_delete(Store *s, const char *id, NbError **err)
{
    STORE_LOCKED(s);
    _cleanup_stmt_ sqlite3_stmt *used = NULL, *del = NULL;
    if (store_prepare(s, "SELECT count(*) FROM vms WHERE flavor_id = ?", &used, err) < 0 ||
        store_prepare(s, "DELETE FROM flavors WHERE id = ?", &del, err) < 0)
        return -1;
    sqlite3_bind_text(used, 1, id, -1, SQLITE_STATIC);
    if (sqlite3_step(used) != SQLITE_ROW)
        return store_db_error(s, "count flavor users", err);
    if (sqlite3_column_int64(used, 0) > 0)
        return nb_error_set(err, NB_ERR_FLAVOR_IN_USE, "flavor is used by %lld VM(s)",
                            (long long)sqlite3_column_int64(used, 0));
    sqlite3_bind_text(del, 1, id, -1, SQLITE_STATIC);
    if (sqlite3_step(del) != SQLITE_DONE)
        return store_db_error(s, "delete flavor", err);
    if (sqlite3_changes(s->db) == 0)
        return nb_error_set(err, NB_ERR_FLAVOR_NOT_FOUND, "flavor not found");
    return 0;
}
