#include "store_internal.h"

#include <string.h>

/* The projects' quota columns, in QuotaResource order (PROJECT_COLUMNS and the UPDATE below). */
_Static_assert(_QUOTA_MAX == 12, "a quota resource needs its projects column");

static void
project_from_row(sqlite3_stmt *st, void *elem)
{
    Project *p = elem;
    store_column_copy(st, 0, p->id, sizeof(p->id));
    store_column_copy(st, 1, p->name, sizeof(p->name));
    for (int i = 0; i < _QUOTA_MAX; i++)
        p->quota.limit[i] =
            sqlite3_column_type(st, 2 + i) == SQLITE_NULL ? -1 : sqlite3_column_int64(st, 2 + i);
    store_column_copy(st, 2 + _QUOTA_MAX, p->created_at, sizeof(p->created_at));
}

static void
project_bind_quota(sqlite3_stmt *st, int first, const Quota *q)
{
    for (int i = 0; i < _QUOTA_MAX; i++) {
        if (q->limit[i] < 0)
            sqlite3_bind_null(st, first + i);
        else
            sqlite3_bind_int64(st, first + i, q->limit[i]);
    }
}

int
project_store_insert(Store *s, const Project *p, NbError **err)
{
    STORE_LOCKED(s);
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (store_prepare(s,
                      "INSERT INTO projects (" PROJECT_COLUMNS
                      ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                      &st, err) < 0)
        return -1;
    sqlite3_bind_text(st, 1, p->id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, p->name, -1, SQLITE_STATIC);
    project_bind_quota(st, 3, &p->quota);
    sqlite3_bind_text(st, 3 + _QUOTA_MAX, p->created_at, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_CONSTRAINT)
        return nb_error_set(err, NB_ERR_NAME_TAKEN, "a project named '%s' already exists", p->name);
    if (rc != SQLITE_DONE)
        return store_db_error(s, "insert project", err);
    return 0;
}

int
project_store_get(Store *s, const char *scope, const char *id_or_name, Project *ret, NbError **err)
{
    STORE_READING(s);
    return store_get_by_id_or_name(s, STORE_SQL_PROJECT_BY_ID, STORE_SQL_PROJECT_BY_NAME,
                                   id_or_name, scope, project_from_row, ret,
                                   NB_ERR_PROJECT_NOT_FOUND, "project", err);
}

int
project_store_list(Store *s, const char *scope, Project **ret, size_t *ret_n, NbError **err)
{
    STORE_READING(s);
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (store_prepare(s,
                      "SELECT " PROJECT_COLUMNS " FROM projects WHERE ?1 IS NULL OR id = ?1 "
                      "ORDER BY name",
                      &st, err) < 0)
        return -1;
    store_bind_text(st, 1, scope);
    return store_collect(s, st, sizeof(Project), project_from_row, NULL, (void **)ret, ret_n, err);
}

int
project_store_set_quota(Store *s, const char *id, const Quota *q, NbError **err)
{
    STORE_LOCKED(s);
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (store_prepare(s,
                      "UPDATE projects SET quota_vcpus = ?1, quota_ram_mib = ?2, "
                      "quota_disk_gib = ?3, quota_vms = ?4, quota_images = ?5, "
                      "quota_networks = ?6, quota_ports = ?7, quota_secgroups = ?8, "
                      "quota_volumes = ?9, quota_volume_gib = ?10, quota_snapshots = ?11, "
                      "quota_backups = ?12 WHERE id = ?13",
                      &st, err) < 0)
        return -1;
    project_bind_quota(st, 1, q);
    sqlite3_bind_text(st, 1 + _QUOTA_MAX, id, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE)
        return store_db_error(s, "set quota", err);
    if (sqlite3_changes(s->db) == 0)
        return nb_error_set(err, NB_ERR_PROJECT_NOT_FOUND, "project not found");
    return 0;
}

int
project_store_delete(Store *s, const char *id, NbError **err)
{
    STORE_LOCKED(s);
    _cleanup_stmt_ sqlite3_stmt *used = NULL, *del = NULL;
    if (streq(id, NB_DEFAULT_PROJECT_ID))
        return nb_error_set(err, NB_ERR_PROJECT_NOT_EMPTY, "the default project stays");
    if (store_prepare(s,
                      "SELECT (SELECT count(*) FROM vms WHERE project = ?1) + "
                      "(SELECT count(*) FROM images WHERE project = ?1) + "
                      "(SELECT count(*) FROM users WHERE project_id = ?1) + "
                      "(SELECT count(*) FROM networks WHERE project = ?1) + "
                      "(SELECT count(*) FROM volumes WHERE project = ?1) + "
                      "(SELECT count(*) FROM backups WHERE project = ?1)",
                      &used, err) < 0 ||
        store_prepare(s, "DELETE FROM projects WHERE id = ?", &del, err) < 0)
        return -1;
    sqlite3_bind_text(used, 1, id, -1, SQLITE_STATIC);
    if (sqlite3_step(used) != SQLITE_ROW)
        return store_db_error(s, "count project contents", err);
    if (sqlite3_column_int64(used, 0) > 0)
        return nb_error_set(
            err, NB_ERR_PROJECT_NOT_EMPTY,
            "the project still has VMs, images, users, networks, volumes or backups");
    sqlite3_bind_text(del, 1, id, -1, SQLITE_STATIC);
    if (sqlite3_step(del) != SQLITE_DONE)
        return store_db_error(s, "delete project", err);
    return 0;
}

static int
project_usage_locked(Store *s, const char *project, int64_t in_use[_QUOTA_MAX], NbError **err)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (store_prepare(s,
                      "SELECT coalesce(sum(vcpus), 0), coalesce(sum(ram_mib), 0), "
                      "coalesce(sum(disk_gib), 0), count(*), "
                      "(SELECT count(*) FROM images WHERE project = ?1), "
                      "(SELECT count(*) FROM networks WHERE project = ?1), "
                      "(SELECT count(*) FROM ports WHERE project = ?1), "
                      "(SELECT count(*) FROM secgroups WHERE project = ?1), "
                      "(SELECT count(*) FROM volumes WHERE project = ?1), "
                      "(SELECT coalesce(sum(size_gib), 0) FROM volumes WHERE project = ?1), "
                      "(SELECT count(*) FROM snapshots WHERE project = ?1) + "
                      "(SELECT count(*) FROM volume_snapshots WHERE project = ?1), "
                      "(SELECT count(*) FROM backups WHERE project = ?1) "
                      "FROM vms WHERE project = ?1",
                      &st, err) < 0)
        return -1;
    sqlite3_bind_text(st, 1, project, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_ROW)
        return store_db_error(s, "project usage", err);
    for (int i = 0; i < _QUOTA_MAX; i++)
        in_use[i] = sqlite3_column_int64(st, i);
    return 0;
}

int
project_store_quota_usage(Store *s, const char *project, int64_t in_use[_QUOTA_MAX], NbError **err)
{
    STORE_READING(s);
    return project_usage_locked(s, project, in_use, err);
}

/* Whether a limit applies to anything added: without one there is nothing to count (the usage sum
 * walks every VM of the project). */
static bool
project_is_limited(const Project *p, const int64_t add[_QUOTA_MAX])
{
    for (int i = 0; i < _QUOTA_MAX; i++) {
        if (add[i] > 0 && p->quota.limit[i] >= 0)
            return true;
    }
    return false;
}

int
project_quota_check_locked(Store *s, const char *project, const int64_t add[_QUOTA_MAX],
                           NbError **err)
{
    Project p;
    int64_t in_use[_QUOTA_MAX];
    if (store_get_by_id_or_name(s, "SELECT " PROJECT_COLUMNS " FROM projects WHERE id = ?1",
                                "SELECT " PROJECT_COLUMNS " FROM projects WHERE id = ?1", project,
                                NULL, project_from_row, &p, NB_ERR_PROJECT_NOT_FOUND, "project",
                                err) < 0)
        return -1;
    if (!project_is_limited(&p, add))
        return 0;
    if (project_usage_locked(s, project, in_use, err) < 0)
        return -1;
    for (int i = 0; i < _QUOTA_MAX; i++) {
        if (add[i] > 0 && p.quota.limit[i] >= 0 && in_use[i] + add[i] > p.quota.limit[i])
            return nb_error_set(err, NB_ERR_QUOTA_EXCEEDED,
                                "project %s quota: %s %lld in use of %lld, %lld more asked", p.name,
                                quota_resource_names[i], (long long)in_use[i],
                                (long long)p.quota.limit[i], (long long)add[i]);
    }
    return 0;
}
