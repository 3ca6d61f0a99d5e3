#include "store_internal.h"

#include <stdlib.h>
#include <string.h>

/* Server groups; `members` is counted from vms.group_id as the row is read. */
static void
group_from_row(sqlite3_stmt *st, void *elem)
{
    Group *g = elem;
    memset(g, 0, sizeof(*g));
    store_column_copy(st, 0, g->id, sizeof(g->id));
    store_column_copy(st, 1, g->name, sizeof(g->name));
    g->policy = group_policy_from_string((const char *)sqlite3_column_text(st, 2));
    store_column_copy(st, 3, g->created_at, sizeof(g->created_at));
    store_column_copy(st, 4, g->project, sizeof(g->project));
    g->members = (unsigned)sqlite3_column_int64(st, 5);
}

int
group_store_insert(Store *s, const Group *g, NbError **err)
{
    STORE_LOCKED(s);
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (store_prepare(s,
                      "INSERT INTO groups (id, name, policy, created_at, project) "
                      "VALUES (?, ?, ?, ?, ?)",
                      &st, err) < 0)
        return -1;
    sqlite3_bind_text(st, 1, g->id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, g->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, group_policy_to_string(g->policy), -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, g->created_at, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, g->project, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_CONSTRAINT)
        return nb_error_set(err, NB_ERR_NAME_TAKEN, "a group named '%s' already exists", g->name);
    if (rc != SQLITE_DONE)
        return store_db_error(s, "insert group", err);
    return 0;
}

int
group_store_get(Store *s, const char *scope, const char *id_or_name, Group *ret, NbError **err)
{
    STORE_READING(s);
    return store_get_by_id_or_name(s, STORE_SQL_GROUP_BY_ID, STORE_SQL_GROUP_BY_NAME, id_or_name,
                                   scope, group_from_row, ret, NB_ERR_GROUP_NOT_FOUND, "group",
                                   err);
}

int
group_store_list(Store *s, const char *scope, Group **ret, size_t *ret_n, NbError **err)
{
    STORE_READING(s);
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (store_prepare(s, GROUP_SELECT "WHERE ?1 IS NULL OR project = ?1 ORDER BY name", &st, err) <
        0)
        return -1;
    store_bind_text(st, 1, scope);
    return store_collect(s, st, sizeof(Group), group_from_row, NULL, (void **)ret, ret_n, err);
}

int
group_store_delete(Store *s, const char *id, NbError **err)
{
    STORE_LOCKED(s);
    _cleanup_stmt_ sqlite3_stmt *used = NULL, *del = NULL;
    if (store_prepare(s, "SELECT count(*) FROM vms WHERE group_id = ?", &used, err) < 0 ||
        store_prepare(s, "DELETE FROM groups WHERE id = ?", &del, err) < 0)
        return -1;
    /* One connection under the store lock: nothing can join the group between the two. */
    sqlite3_bind_text(used, 1, id, -1, SQLITE_STATIC);
    if (sqlite3_step(used) != SQLITE_ROW)
        return store_db_error(s, "count group members", err);
    if (sqlite3_column_int64(used, 0) > 0)
        return nb_error_set(err, NB_ERR_GROUP_NOT_EMPTY, "the group still has %lld member(s)",
                            (long long)sqlite3_column_int64(used, 0));
    sqlite3_bind_text(del, 1, id, -1, SQLITE_STATIC);
    if (sqlite3_step(del) != SQLITE_DONE)
        return store_db_error(s, "delete group", err);
    if (sqlite3_changes(s->db) == 0)
        return nb_error_set(err, NB_ERR_GROUP_NOT_FOUND, "group not found");
    return 0;
}

static void
host_count_from_row(sqlite3_stmt *st, void *elem)
{
    HostCount *c = elem;
    store_column_copy(st, 0, c->host, sizeof(c->host));
    c->n = (unsigned)sqlite3_column_int64(st, 1);
}

int
group_store_member_hosts(Store *s, const char *group_id, HostCount **ret, size_t *ret_n,
                         NbError **err)
{
    STORE_READING(s);
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (store_prepare(s,
                      "SELECT at, count(*) FROM ("
                      "  SELECT host AS at FROM vms WHERE group_id = ?1"
                      "  UNION ALL"
                      "  SELECT migrate_to FROM vms WHERE group_id = ?1"
                      "  AND migrate_to IS NOT NULL AND migrate_to != host"
                      ") GROUP BY at ORDER BY at",
                      &st, err) < 0)
        return -1;
    sqlite3_bind_text(st, 1, group_id, -1, SQLITE_STATIC);
    return store_collect(s, st, sizeof(HostCount), host_count_from_row, NULL, (void **)ret, ret_n,
                         err);
}
