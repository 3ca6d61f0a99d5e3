#include "store_internal.h"

#include <stdlib.h>
#include <string.h>

#include "../util/uuid.h"

static void
secgroup_from_row(sqlite3_stmt *st, void *elem)
{
    SecGroup *g = elem;
    memset(g, 0, sizeof(*g));
    store_column_copy(st, 0, g->id, sizeof(g->id));
    store_column_copy(st, 1, g->project, sizeof(g->project));
    store_column_copy(st, 2, g->name, sizeof(g->name));
    store_column_copy(st, 3, g->description, sizeof(g->description));
    store_column_copy(st, 4, g->created_at, sizeof(g->created_at));
}

static void
secrule_from_row(sqlite3_stmt *st, void *elem)
{
    SecRule *r = elem;
    memset(r, 0, sizeof(*r));
    store_column_copy(st, 0, r->id, sizeof(r->id));
    store_column_copy(st, 1, r->group_id, sizeof(r->group_id));
    r->direction = secrule_direction_from_string((const char *)sqlite3_column_text(st, 2));
    r->protocol = secrule_protocol_from_string((const char *)sqlite3_column_text(st, 3));
    r->port_min = (unsigned)sqlite3_column_int(st, 4);
    r->port_max = (unsigned)sqlite3_column_int(st, 5);
    r->remote_net = (uint32_t)sqlite3_column_int64(st, 6);
    r->remote_prefix = (unsigned)sqlite3_column_int(st, 7);
    store_column_copy(st, 8, r->remote_group, sizeof(r->remote_group));
    store_column_copy(st, 9, r->created_at, sizeof(r->created_at));
}

void
secgroup_list_free(SecGroup *g, size_t n)
{
    (void)n; /* a SecGroup owns nothing */
    free(g);
}

void
secrule_list_free(SecRule *r, size_t n)
{
    (void)n;
    free(r);
}

/* With a lock held: the group key names (id, else name) within scope. SECGROUP_NOT_FOUND. */
static int
secgroup_get_locked(Store *s, const char *scope, const char *key, SecGroup *ret, NbError **err)
{
    return store_get_by_id_or_name(s, STORE_SQL_SECGROUP_BY_ID, STORE_SQL_SECGROUP_BY_NAME, key,
                                   scope, secgroup_from_row, ret, NB_ERR_SECGROUP_NOT_FOUND,
                                   "security group", err);
}

int
secgroup_store_get(Store *s, const char *scope, const char *id_or_name, SecGroup *ret,
                   NbError **err)
{
    STORE_READING(s);
    return secgroup_get_locked(s, scope, id_or_name, ret, err);
}

int
secgroup_store_list(Store *s, const char *scope, SecGroup **ret, size_t *ret_n, NbError **err)
{
    STORE_READING(s);
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (store_prepare(s,
                      "SELECT " SECGROUP_COLUMNS " FROM secgroups WHERE ?1 IS NULL OR project = ?1 "
                      "ORDER BY name, id",
                      &st, err) < 0)
        return -1;
    store_bind_text(st, 1, scope);
    return store_collect(s, st, sizeof(SecGroup), secgroup_from_row, NULL, (void **)ret, ret_n,
                         err);
}

/* What the store refuses to keep, whoever built the rule (the decoder checks the same). */
static int
secrule_check(const SecRule *r, NbError **err)
{
    bool ports = r->port_min || r->port_max;
    bool l4 = r->protocol == SECRULE_PROTO_TCP || r->protocol == SECRULE_PROTO_UDP;
    if (!secrule_direction_to_string(r->direction) || !secrule_protocol_to_string(r->protocol) ||
        (ports &&
         (!l4 || r->port_min < 1 || r->port_min > r->port_max || r->port_max > SECRULE_PORT_MAX)) ||
        r->remote_prefix > 32 || (r->remote_net & ~cidr_mask(r->remote_prefix)) ||
        (r->remote_group[0] && (r->remote_net || r->remote_prefix)))
        return nb_error_set(err, NB_ERR_SECGROUP_RULE_INVALID, "the rule is not valid");
    return 0;
}

/* With the writer's lock, in a transaction: inserts r (group_id and remote_group are ids),
 * filling id and created_at. */
static int
secrule_insert_locked(Store *s, SecRule *r, NbError **err)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (store_prepare(s,
                      "INSERT INTO secgroup_rules (" SECRULE_COLUMNS
                      ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                      &st, err) < 0)
        return -1;
    nb_uuid_generate(r->id);
    nb_timestamp_now(r->created_at);
    sqlite3_bind_text(st, 1, r->id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, r->group_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, secrule_direction_to_string(r->direction), -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, secrule_protocol_to_string(r->protocol), -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 5, (int)r->port_min);
    sqlite3_bind_int(st, 6, (int)r->port_max);
    sqlite3_bind_int64(st, 7, r->remote_net);
    sqlite3_bind_int(st, 8, (int)r->remote_prefix);
    store_bind_text(st, 9, r->remote_group);
    sqlite3_bind_text(st, 10, r->created_at, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE)
        return store_db_error(s, "insert security group rule", err);
    return 0;
}

int
secgroup_store_insert(Store *s, const SecGroup *g, NbError **err)
{
    STORE_LOCKED(s);
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (store_prepare(s, "INSERT INTO secgroups (" SECGROUP_COLUMNS ") VALUES (?, ?, ?, ?, ?)", &st,
                      err) < 0 ||
        store_begin(s, err) < 0)
        return -1;
    int64_t add[_QUOTA_MAX] = {[QUOTA_SECGROUPS] = 1};
    if (project_quota_check_locked(s, g->project, add, err) < 0) {
        store_rollback(s);
        return -1;
    }
    sqlite3_bind_text(st, 1, g->id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, g->project, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, g->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, g->description, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, g->created_at, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc != SQLITE_DONE) {
        if (rc == SQLITE_CONSTRAINT && strstr(sqlite3_errmsg(s->db), "secgroups.name"))
            nb_error_set(err, NB_ERR_NAME_TAKEN, "a security group named '%s' already exists",
                         g->name);
        else
            store_db_error(s, "insert security group", err);
        store_rollback(s);
        return -1;
    }
    SecRule defaults[2];
    secgroup_default_rules(g->id, defaults);
    if (secrule_insert_locked(s, &defaults[0], err) < 0 ||
        secrule_insert_locked(s, &defaults[1], err) < 0 || store_commit(s, err) < 0) {
        store_rollback(s);
        return -1;
    }
    return 0;
}

int
secgroup_store_delete(Store *s, const char *scope, const char *id, NbError **err)
{
    STORE_LOCKED(s);
    _cleanup_stmt_ sqlite3_stmt *users = NULL, *rules = NULL, *del = NULL;
    if (store_prepare(s, STORE_SQL_SECGROUP_USERS, &users, err) < 0 ||
        store_prepare(s, "DELETE FROM secgroup_rules WHERE group_id = ?", &rules, err) < 0 ||
        store_prepare(s, "DELETE FROM secgroups WHERE id = ?", &del, err) < 0 ||
        store_begin(s, err) < 0)
        return -1;
    SecGroup g;
    if (secgroup_get_locked(s, scope, id, &g, err) < 0) {
        store_rollback(s);
        return -1;
    }
    sqlite3_bind_text(users, 1, g.id, -1, SQLITE_STATIC);
    if (sqlite3_step(users) != SQLITE_ROW) {
        store_db_error(s, "delete security group", err);
        store_rollback(s);
        return -1;
    }
    int64_t ports = sqlite3_column_int64(users, 0), refs = sqlite3_column_int64(users, 1);
    if (ports > 0 || refs > 0) {
        store_rollback(s);
        if (ports > 0)
            return nb_error_set(err, NB_ERR_SECGROUP_IN_USE,
                                "security group '%s' is used by %lld port%s", g.name,
                                (long long)ports, ports == 1 ? "" : "s");
        return nb_error_set(err, NB_ERR_SECGROUP_IN_USE,
                            "security group '%s' is the remote group of %lld rule%s of other "
                            "groups",
                            g.name, (long long)refs, refs == 1 ? "" : "s");
    }
    sqlite3_bind_text(rules, 1, g.id, -1, SQLITE_STATIC);
    sqlite3_bind_text(del, 1, g.id, -1, SQLITE_STATIC);
    if (sqlite3_step(rules) != SQLITE_DONE || sqlite3_step(del) != SQLITE_DONE) {
        store_db_error(s, "delete security group", err);
        store_rollback(s);
        return -1;
    }
    return store_commit(s, err) < 0 ? (store_rollback(s), -1) : 0;
}

/* With the writer's lock, in a transaction: the rule that allows what r allows, 1 (into *ret),
 * 0 none, -1 error. */
static int
secrule_find_same_locked(Store *s, const SecRule *r, SecRule *ret, NbError **err)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (store_prepare(s, STORE_SQL_SECRULE_SAME, &st, err) < 0)
        return -1;
    sqlite3_bind_text(st, 1, r->group_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, secrule_direction_to_string(r->direction), -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, secrule_protocol_to_string(r->protocol), -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 4, (int)r->port_min);
    sqlite3_bind_int(st, 5, (int)r->port_max);
    sqlite3_bind_int64(st, 6, r->remote_net);
    sqlite3_bind_int(st, 7, (int)r->remote_prefix);
    sqlite3_bind_text(st, 8, r->remote_group, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_DONE)
        return 0;
    if (rc != SQLITE_ROW)
        return store_db_error(s, "find security group rule", err);
    secrule_from_row(st, ret);
    return 1;
}

int
secgroup_store_rule_add(Store *s, const char *scope, SecRule *r, NbError **err)
{
    if (secrule_check(r, err) < 0)
        return -1;
    STORE_LOCKED(s);
    if (store_begin(s, err) < 0)
        return -1;
    SecGroup g, remote;
    SecRule want = *r, same;
    int rc = secgroup_get_locked(s, scope, r->group_id, &g, err);
    /* The remote group is looked up in the rule's group's project, whoever asks. */
    if (rc == 0 && want.remote_group[0])
        rc = secgroup_get_locked(s, g.project, want.remote_group, &remote, err);
    if (rc == 0) {
        memcpy(want.group_id, g.id, sizeof(want.group_id));
        if (want.remote_group[0])
            snprintf(want.remote_group, sizeof(want.remote_group), "%s", remote.id);
        rc = secrule_find_same_locked(s, &want, &same, err);
    }
    if (rc == 1) {
        store_rollback(s);
        *r = same;
        return 1;
    }
    if (rc < 0 || secrule_insert_locked(s, &want, err) < 0 || store_commit(s, err) < 0) {
        store_rollback(s);
        return -1;
    }
    *r = want;
    return 0;
}

int
secgroup_store_rule_delete(Store *s, const char *scope, const char *rule_id, NbError **err)
{
    STORE_LOCKED(s);
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (store_prepare(s,
                      "DELETE FROM secgroup_rules WHERE id = ?1 AND group_id IN "
                      "(SELECT id FROM secgroups WHERE ?2 IS NULL OR project = ?2)",
                      &st, err) < 0)
        return -1;
    sqlite3_bind_text(st, 1, rule_id, -1, SQLITE_STATIC);
    store_bind_text(st, 2, scope);
    if (sqlite3_step(st) != SQLITE_DONE)
        return store_db_error(s, "delete security group rule", err);
    if (sqlite3_changes(s->db) == 0)
        return nb_error_set(err, NB_ERR_SECGROUP_RULE_NOT_FOUND,
                            "security group rule '%.64s' not found", rule_id);
    return 0;
}

/* A list by one key (?1): rows of sql into an array of elem_size elements. */
static int
secgroup_list_by(Store *s, const char *sql, const char *key, size_t elem_size, StoreRowFn row_fn,
                 void **ret, size_t *ret_n, NbError **err)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (store_prepare(s, sql, &st, err) < 0)
        return -1;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    return store_collect(s, st, elem_size, row_fn, NULL, ret, ret_n, err);
}

int
secgroup_store_rules(Store *s, const char *group_id, SecRule **ret, size_t *ret_n, NbError **err)
{
    STORE_READING(s);
    return secgroup_list_by(s, STORE_SQL_SECRULES_OF_GROUP, group_id, sizeof(SecRule),
                            secrule_from_row, (void **)ret, ret_n, err);
}

static void
secgroup_host_from_row(sqlite3_stmt *st, void *elem)
{
    store_column_copy(st, 0, elem, NB_NAME_MAX + 1);
}

int
secgroup_store_group_hosts(Store *s, const char *group_id, char (**ret)[NB_NAME_MAX + 1],
                           size_t *ret_n, NbError **err)
{
    STORE_READING(s);
    return secgroup_list_by(s, STORE_SQL_SECGROUP_HOSTS, group_id, NB_NAME_MAX + 1,
                            secgroup_host_from_row, (void **)ret, ret_n, err);
}

int
secgroup_store_group_on_host(Store *s, const char *group_id, const char *host,
                             const char *exclude_vm, NbError **err)
{
    STORE_READING(s);
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (store_prepare(s, STORE_SQL_SECGROUP_ON_HOST, &st, err) < 0)
        return -1;
    sqlite3_bind_text(st, 1, group_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, host, -1, SQLITE_STATIC);
    if (exclude_vm)
        sqlite3_bind_text(st, 3, exclude_vm, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_ROW)
        return store_db_error(s, "look for a security group's ports on a host", err);
    return sqlite3_column_int(st, 0) ? 1 : 0;
}

int
secgroup_store_rules_naming(Store *s, const char *group_id, SecRule **ret, size_t *ret_n,
                            NbError **err)
{
    STORE_READING(s);
    return secgroup_list_by(s, STORE_SQL_SECRULES_NAMING_GROUP, group_id, sizeof(SecRule),
                            secrule_from_row, (void **)ret, ret_n, err);
}

int
secgroup_store_port_groups(Store *s, const char *port_id, SecGroup **ret, size_t *ret_n,
                           NbError **err)
{
    STORE_READING(s);
    return secgroup_list_by(s, STORE_SQL_SECGROUPS_OF_PORT, port_id, sizeof(SecGroup),
                            secgroup_from_row, (void **)ret, ret_n, err);
}

int
secgroup_store_group_ports(Store *s, const char *group_id, Port **ret, size_t *ret_n, NbError **err)
{
    STORE_READING(s);
    return secgroup_list_by(s, STORE_SQL_PORTS_OF_SECGROUP, group_id, sizeof(Port),
                            port_store_from_row, (void **)ret, ret_n, err);
}

int
secgroup_store_affected_ports(Store *s, const char *group_id, Port **ret, size_t *ret_n,
                              NbError **err)
{
    STORE_READING(s);
    return secgroup_list_by(s, STORE_SQL_PORTS_AFFECTED_BY_SECGROUP, group_id, sizeof(Port),
                            port_store_from_row, (void **)ret, ret_n, err);
}

static void
secgroup_ip_from_row(sqlite3_stmt *st, void *elem)
{
    *(uint32_t *)elem = (uint32_t)sqlite3_column_int64(st, 0);
}

int
secgroup_store_member_ips(Store *s, const char *group_id, uint32_t **ret, size_t *ret_n,
                          NbError **err)
{
    STORE_READING(s);
    return secgroup_list_by(s, STORE_SQL_SECGROUP_MEMBER_IPS, group_id, sizeof(uint32_t),
                            secgroup_ip_from_row, (void **)ret, ret_n, err);
}

int
secgroup_store_port_set(Store *s, const char *port_id, const char *const *groups, size_t n,
                        NbError **err)
{
    STORE_LOCKED(s);
    _cleanup_stmt_ sqlite3_stmt *port = NULL, *clear = NULL, *add = NULL;
    if (store_prepare(s, "SELECT project FROM ports WHERE id = ?", &port, err) < 0 ||
        store_prepare(s, "DELETE FROM port_secgroups WHERE port_id = ?", &clear, err) < 0 ||
        store_prepare(s, "INSERT OR IGNORE INTO port_secgroups (port_id, group_id) VALUES (?, ?)",
                      &add, err) < 0 ||
        store_begin(s, err) < 0)
        return -1;
    sqlite3_bind_text(port, 1, port_id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(port);
    if (rc != SQLITE_ROW) {
        store_rollback(s);
        if (rc == SQLITE_DONE)
            return nb_error_set(err, NB_ERR_PORT_NOT_FOUND, "port '%.64s' not found", port_id);
        return store_db_error(s, "set port security groups", err);
    }
    char project[NB_UUID_STRLEN];
    store_column_copy(port, 0, project, sizeof(project));
    sqlite3_bind_text(clear, 1, port_id, -1, SQLITE_STATIC);
    if (sqlite3_step(clear) != SQLITE_DONE) {
        store_db_error(s, "set port security groups", err);
        store_rollback(s);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        SecGroup g;
        /* Only the port's project's groups: another project's is "not found". */
        if (secgroup_get_locked(s, project, groups[i], &g, err) < 0) {
            store_rollback(s);
            return -1;
        }
        sqlite3_reset(add);
        sqlite3_bind_text(add, 1, port_id, -1, SQLITE_STATIC);
        sqlite3_bind_text(add, 2, g.id, -1, SQLITE_TRANSIENT);
        if (sqlite3_step(add) != SQLITE_DONE) {
            store_db_error(s, "set port security groups", err);
            store_rollback(s);
            return -1;
        }
    }
    return store_commit(s, err) < 0 ? (store_rollback(s), -1) : 0;
}
