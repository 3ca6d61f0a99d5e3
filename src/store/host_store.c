#include "store_internal.h"

#include <stdlib.h>
#include <string.h>

/*
 * Hosts. A row read back carries what the VMs claim on the host, computed by one grouped pass
 * over vms joined to hosts (not one query per host): a VM claims on its host and, while it
 * migrates, on migrate_to as well. `vms` counts the VMs placed on the host only.
 */
#define HOST_COLUMNS                                                                               \
    "id, name, uri, admin, conn, cpu_ratio, ram_ratio, disk_ratio, labels, vcpus, ram_mib, "       \
    "free_ram_mib, disk_gib, disk_free_gib, hostname, cpu_model, libvirt_version, qemu_version, "  \
    "last_contact, error, created_at, updated_at, agent_url, agent_secret, tunnel_ip, tunnel_dev"

static void
host_from_row(sqlite3_stmt *st, void *elem)
{
    Host *h = elem;
    memset(h, 0, sizeof(*h));
    store_column_copy(st, 0, h->id, sizeof(h->id));
    store_column_copy(st, 1, h->name, sizeof(h->name));
    store_column_copy(st, 2, h->uri, sizeof(h->uri));
    h->admin = host_admin_from_string((const char *)sqlite3_column_text(st, 3));
    h->conn = host_conn_from_string((const char *)sqlite3_column_text(st, 4));
    h->cpu_ratio = sqlite3_column_double(st, 5);
    h->ram_ratio = sqlite3_column_double(st, 6);
    h->disk_ratio = sqlite3_column_double(st, 7);
    labels_from_text((const char *)sqlite3_column_text(st, 8), &h->labels);
    h->facts.vcpus = (unsigned)sqlite3_column_int64(st, 9);
    h->facts.ram_mib = (uint64_t)sqlite3_column_int64(st, 10);
    h->facts.free_ram_mib = (uint64_t)sqlite3_column_int64(st, 11);
    h->facts.disk_gib = (uint64_t)sqlite3_column_int64(st, 12);
    h->facts.disk_free_gib = (uint64_t)sqlite3_column_int64(st, 13);
    store_column_copy(st, 14, h->facts.hostname, sizeof(h->facts.hostname));
    store_column_copy(st, 15, h->facts.cpu_model, sizeof(h->facts.cpu_model));
    store_column_copy(st, 16, h->facts.libvirt_version, sizeof(h->facts.libvirt_version));
    store_column_copy(st, 17, h->facts.qemu_version, sizeof(h->facts.qemu_version));
    store_column_copy(st, 18, h->last_contact, sizeof(h->last_contact));
    store_column_copy(st, 19, h->error, sizeof(h->error));
    store_column_copy(st, 20, h->created_at, sizeof(h->created_at));
    store_column_copy(st, 21, h->updated_at, sizeof(h->updated_at));
    h->vcpus_used = (uint64_t)sqlite3_column_int64(st, 22);
    h->ram_used_mib = (uint64_t)sqlite3_column_int64(st, 23);
    h->disk_used_gib = (uint64_t)sqlite3_column_int64(st, 24);
    h->vms = (unsigned)sqlite3_column_int64(st, 25);
    store_column_copy(st, 26, h->agent_url, sizeof(h->agent_url));
    store_column_copy(st, 27, h->agent_secret, sizeof(h->agent_secret));
    store_column_copy(st, 28, h->tunnel_ip, sizeof(h->tunnel_ip));
    store_column_copy(st, 29, h->tunnel_dev, sizeof(h->tunnel_dev));
}

/* Maps a failed insert or update of a host row to the column that clashed. */
static int
host_constraint_error(Store *s, int rc, const char *name, const char *uri, const char *what,
                      NbError **err)
{
    if (rc == SQLITE_CONSTRAINT && strstr(sqlite3_errmsg(s->db), "hosts.uri"))
        return nb_error_set(err, NB_ERR_HOST_URI_TAKEN, "another host already has uri '%.255s'",
                            uri ? uri : "");
    if (rc == SQLITE_CONSTRAINT && strstr(sqlite3_errmsg(s->db), "hosts.name"))
        return nb_error_set(err, NB_ERR_NAME_TAKEN, "a host named '%s' already exists",
                            name ? name : "");
    return store_db_error(s, what, err);
}

static int
host_insert_locked(Store *s, const Host *h, NbError **err)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    _cleanup_free_ char *labels = labels_to_text(&h->labels);
    if (!labels)
        return nb_error_set(err, NB_ERR_INTERNAL, "out of memory");
    if (store_prepare(s,
                      "INSERT INTO hosts (" HOST_COLUMNS ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
                      "?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                      &st, err) < 0)
        return -1;
    sqlite3_bind_text(st, 1, h->id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, h->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, h->uri, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, host_admin_to_string(h->admin), -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, host_conn_to_string(h->conn), -1, SQLITE_STATIC);
    sqlite3_bind_double(st, 6, h->cpu_ratio);
    sqlite3_bind_double(st, 7, h->ram_ratio);
    sqlite3_bind_double(st, 8, h->disk_ratio);
    sqlite3_bind_text(st, 9, labels, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 10, h->facts.vcpus);
    sqlite3_bind_int64(st, 11, (sqlite3_int64)h->facts.ram_mib);
    sqlite3_bind_int64(st, 12, (sqlite3_int64)h->facts.free_ram_mib);
    sqlite3_bind_int64(st, 13, (sqlite3_int64)h->facts.disk_gib);
    sqlite3_bind_int64(st, 14, (sqlite3_int64)h->facts.disk_free_gib);
    store_bind_text(st, 15, h->facts.hostname);
    store_bind_text(st, 16, h->facts.cpu_model);
    store_bind_text(st, 17, h->facts.libvirt_version);
    store_bind_text(st, 18, h->facts.qemu_version);
    store_bind_text(st, 19, h->last_contact);
    store_bind_text(st, 20, h->error);
    sqlite3_bind_text(st, 21, h->created_at, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 22, h->updated_at, -1, SQLITE_STATIC);
    store_bind_text(st, 23, h->agent_url);
    store_bind_text(st, 24, h->agent_secret);
    store_bind_text(st, 25, h->tunnel_ip);
    store_bind_text(st, 26, h->tunnel_dev);
    int rc = sqlite3_step(st);
    if (rc != SQLITE_DONE)
        return host_constraint_error(s, rc, h->name, h->uri, "insert host", err);
    return 0;
}

int
host_store_insert(Store *s, const Host *h, NbError **err)
{
    STORE_LOCKED(s);
    if (host_insert_locked(s, h, err) < 0)
        return -1;
    store_placement_changed_locked(s);
    return 0;
}

int
host_store_get(Store *s, const char *id_or_name, Host *ret, NbError **err)
{
    STORE_READING(s);
    return store_get_by_id_or_name(s, HOST_SELECT_ONE("id"), HOST_SELECT_ONE("name"), id_or_name,
                                   NULL, host_from_row, ret, NB_ERR_HOST_NOT_FOUND, "host", err);
}

int
host_store_list(Store *s, Host **ret, size_t *ret_n, NbError **err)
{
    STORE_READING(s);
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (store_prepare(s, HOST_SELECT_ALL, &st, err) < 0)
        return -1;
    return store_collect(s, st, sizeof(Host), host_from_row, NULL, (void **)ret, ret_n, err);
}

/* Runs an UPDATE of one host whose last parameter (?n) is the id, with the other parameters
 * already bound; HOST_NOT_FOUND when no row changed. Bumps the placement generation. */
static int
host_update_locked(Store *s, sqlite3_stmt *st, const char *name, const char *uri, const char *what,
                   NbError **err)
{
    int rc = sqlite3_step(st);
    if (rc != SQLITE_DONE)
        return host_constraint_error(s, rc, name, uri, what, err);
    if (sqlite3_changes(s->db) == 0)
        return nb_error_set(err, NB_ERR_HOST_NOT_FOUND, "host not found");
    store_placement_changed_locked(s);
    return 0;
}

int
host_store_set_admin(Store *s, const char *id, HostAdmin admin, NbError **err)
{
    STORE_LOCKED(s);
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    char now[NB_TIMESTAMP_LEN];
    nb_timestamp_now(now);
    if (store_prepare(s, "UPDATE hosts SET admin = ?, updated_at = ? WHERE id = ?", &st, err) < 0)
        return -1;
    sqlite3_bind_text(st, 1, host_admin_to_string(admin), -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, now, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, id, -1, SQLITE_STATIC);
    return host_update_locked(s, st, NULL, NULL, "set host admin state", err);
}

int
host_store_update(Store *s, const Host *h, NbError **err)
{
    STORE_LOCKED(s);
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    _cleanup_free_ char *labels = labels_to_text(&h->labels);
    char now[NB_TIMESTAMP_LEN];
    nb_timestamp_now(now);
    if (!labels)
        return nb_error_set(err, NB_ERR_INTERNAL, "out of memory");
    if (store_prepare(s,
                      "UPDATE hosts SET cpu_ratio = ?, ram_ratio = ?, disk_ratio = ?, labels = ?, "
                      "updated_at = ? WHERE id = ?",
                      &st, err) < 0)
        return -1;
    sqlite3_bind_double(st, 1, h->cpu_ratio);
    sqlite3_bind_double(st, 2, h->ram_ratio);
    sqlite3_bind_double(st, 3, h->disk_ratio);
    sqlite3_bind_text(st, 4, labels, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, h->updated_at[0] ? h->updated_at : now, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 6, h->id, -1, SQLITE_STATIC);
    return host_update_locked(s, st, h->name, h->uri, "update host", err);
}

int
host_set_facts_locked(Store *s, const char *id, HostConn conn, const HostFacts *facts,
                      const char *error, bool *ret_changed, NbError **err)
{
    _cleanup_stmt_ sqlite3_stmt *cur = NULL, *st = NULL;
    char now[NB_TIMESTAMP_LEN];
    nb_timestamp_now(now);
    if (store_prepare(s, STORE_SQL_HOST_FACTS_READ, &cur, err) < 0 ||
        store_prepare(s, STORE_SQL_HOST_FACTS, &st, err) < 0)
        return -1;
    sqlite3_bind_text(cur, 1, id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(cur);
    if (rc != SQLITE_ROW) {
        return rc == SQLITE_DONE ? 1 : store_db_error(s, "read host", err);
    }
    /* A periodic refresh that changes nothing a placement depends on leaves the generation, so
     * cached views of the hosts stay valid. */
    bool changed = host_conn_from_string((const char *)sqlite3_column_text(cur, 0)) != conn;
    if (facts)
        changed |= (uint64_t)sqlite3_column_int64(cur, 1) != facts->vcpus ||
                   (uint64_t)sqlite3_column_int64(cur, 2) != facts->ram_mib ||
                   (uint64_t)sqlite3_column_int64(cur, 3) != facts->disk_gib;
    sqlite3_reset(cur);

    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, host_conn_to_string(conn), -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 3, facts != NULL);
    store_bind_text(st, 4, error);
    sqlite3_bind_text(st, 5, now, -1, SQLITE_STATIC);
    if (facts) {
        sqlite3_bind_int64(st, 6, facts->vcpus);
        sqlite3_bind_int64(st, 7, (sqlite3_int64)facts->ram_mib);
        sqlite3_bind_int64(st, 8, (sqlite3_int64)facts->free_ram_mib);
        sqlite3_bind_int64(st, 9, (sqlite3_int64)facts->disk_gib);
        sqlite3_bind_int64(st, 10, (sqlite3_int64)facts->disk_free_gib);
        store_bind_text(st, 11, facts->hostname);
        store_bind_text(st, 12, facts->cpu_model);
        store_bind_text(st, 13, facts->libvirt_version);
        store_bind_text(st, 14, facts->qemu_version);
    }
    if (sqlite3_step(st) != SQLITE_DONE)
        return store_db_error(s, "set host facts", err);
    *ret_changed = changed;
    return 0;
}

int
host_store_set_facts(Store *s, const char *id, HostConn conn, const HostFacts *facts,
                     const char *error, NbError **err)
{
    STORE_LOCKED(s);
    bool changed = false;
    if (store_begin(s, err) < 0)
        return -1;
    int rc = host_set_facts_locked(s, id, conn, facts, error, &changed, err);
    if (rc == 1)
        nb_error_set(err, NB_ERR_HOST_NOT_FOUND, "host '%.64s' not found", id);
    if (rc != 0 || store_commit(s, err) < 0) {
        store_rollback(s);
        return -1;
    }
    if (changed)
        store_placement_changed_locked(s);
    return 0;
}

int
host_store_delete(Store *s, const char *id, NbError **err)
{
    STORE_LOCKED(s);
    _cleanup_stmt_ sqlite3_stmt *get = NULL, *used = NULL, *del = NULL, *copies = NULL,
                                *nets = NULL;
    if (store_prepare(s, "SELECT name FROM hosts WHERE id = ?", &get, err) < 0 ||
        store_prepare(s,
                      "SELECT (SELECT count(*) FROM vms WHERE host = ?1) + "
                      "(SELECT count(*) FROM vms WHERE migrate_to = ?1)",
                      &used, err) < 0 ||
        store_prepare(s, "DELETE FROM hosts WHERE id = ?", &del, err) < 0 ||
        store_prepare(s, "DELETE FROM image_copies WHERE host = ?", &copies, err) < 0 ||
        store_prepare(s, "DELETE FROM network_hosts WHERE host = ?", &nets, err) < 0 ||
        store_begin(s, err) < 0)
        return -1;
    sqlite3_bind_text(get, 1, id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(get);
    if (rc != SQLITE_ROW) {
        if (rc == SQLITE_DONE)
            nb_error_set(err, NB_ERR_HOST_NOT_FOUND, "host '%.64s' not found", id);
        else
            store_db_error(s, "read host", err);
        store_rollback(s);
        return -1;
    }
    char name[NB_NAME_MAX + 1];
    store_column_copy(get, 0, name, sizeof(name));
    sqlite3_reset(get);
    if (streq(name, s->local_host)) {
        store_rollback(s);
        return nb_error_set(err, NB_ERR_HOST_IS_LOCAL,
                            "host '%s' is the one nimbusd runs on; it cannot be removed", name);
    }
    sqlite3_bind_text(used, 1, name, -1, SQLITE_STATIC);
    if (sqlite3_step(used) != SQLITE_ROW) {
        store_db_error(s, "count host vms", err);
        store_rollback(s);
        return -1;
    }
    long long n = sqlite3_column_int64(used, 0);
    sqlite3_reset(used);
    if (n > 0) {
        store_rollback(s);
        return nb_error_set(err, NB_ERR_HOST_NOT_EMPTY,
                            "host '%s' still has %lld VM(s) on it or migrating to it; move them "
                            "away first",
                            name, n);
    }
    sqlite3_bind_text(del, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_text(copies, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_text(nets, 1, name, -1, SQLITE_STATIC);
    if (sqlite3_step(del) != SQLITE_DONE || sqlite3_step(copies) != SQLITE_DONE ||
        sqlite3_step(nets) != SQLITE_DONE || store_commit(s, err) < 0) {
        store_db_error(s, "delete host", err);
        store_rollback(s);
        return -1;
    }
    store_placement_changed_locked(s);
    return 0;
}

int
host_store_set_agent(Store *s, const char *name, const char *agent_url, const char *agent_secret,
                     const char *tunnel_ip, const char *tunnel_dev, NbError **err)
{
    STORE_LOCKED(s);
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    char now[NB_TIMESTAMP_LEN];
    nb_timestamp_now(now);
    if (store_prepare(s,
                      "UPDATE hosts SET agent_url = ?, agent_secret = ?, tunnel_ip = ?, "
                      "tunnel_dev = ?, updated_at = ? WHERE name = ?",
                      &st, err) < 0)
        return -1;
    store_bind_text(st, 1, agent_url);
    store_bind_text(st, 2, agent_secret);
    store_bind_text(st, 3, tunnel_ip);
    store_bind_text(st, 4, tunnel_dev);
    sqlite3_bind_text(st, 5, now, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 6, name, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE)
        return store_db_error(s, "set host agent", err);
    if (sqlite3_changes(s->db) == 0)
        return nb_error_set(err, NB_ERR_HOST_NOT_FOUND, "host '%.64s' not found", name);
    return 0;
}

int
host_store_ensure_local(Store *s, const char *name, const char *uri, NbError **err)
{
    STORE_LOCKED(s);
    _cleanup_stmt_ sqlite3_stmt *get = NULL, *upd = NULL;
    char now[NB_TIMESTAMP_LEN];
    nb_timestamp_now(now);
    if (store_prepare(s, "SELECT uri FROM hosts WHERE name = ?", &get, err) < 0 ||
        store_prepare(s, "UPDATE hosts SET uri = ?, updated_at = ? WHERE name = ?", &upd, err) <
            0 ||
        store_begin(s, err) < 0)
        return -1;
    sqlite3_bind_text(get, 1, name, -1, SQLITE_STATIC);
    int rc = sqlite3_step(get);
    bool changed = false;
    if (rc == SQLITE_DONE) {
        Host h = {
            .admin = HOST_ADMIN_ENABLED,
            .conn = HOST_CONN_CONNECTING,
            .cpu_ratio = HOST_DEFAULT_CPU_RATIO,
            .ram_ratio = HOST_DEFAULT_RAM_RATIO,
            .disk_ratio = HOST_DEFAULT_DISK_RATIO,
        };
        if (nb_uuid_generate(h.id) < 0) {
            store_rollback(s);
            return nb_error_set(err, NB_ERR_INTERNAL, "cannot generate a host id");
        }
        snprintf(h.name, sizeof(h.name), "%s", name);
        snprintf(h.uri, sizeof(h.uri), "%s", uri);
        memcpy(h.created_at, now, sizeof(h.created_at));
        memcpy(h.updated_at, now, sizeof(h.updated_at));
        if (host_insert_locked(s, &h, err) < 0) {
            store_rollback(s);
            return -1;
        }
        changed = true;
    } else if (rc == SQLITE_ROW) {
        bool same = streq((const char *)sqlite3_column_text(get, 0), uri);
        sqlite3_reset(get);
        if (!same) {
            sqlite3_bind_text(upd, 1, uri, -1, SQLITE_STATIC);
            sqlite3_bind_text(upd, 2, now, -1, SQLITE_STATIC);
            sqlite3_bind_text(upd, 3, name, -1, SQLITE_STATIC);
            rc = sqlite3_step(upd);
            if (rc != SQLITE_DONE) {
                host_constraint_error(s, rc, name, uri, "update local host", err);
                store_rollback(s);
                return -1;
            }
            changed = true;
        }
    } else {
        store_db_error(s, "read local host", err);
        store_rollback(s);
        return -1;
    }
    if (store_commit(s, err) < 0) {
        store_rollback(s);
        return -1;
    }
    snprintf(s->local_host, sizeof(s->local_host), "%s", name);
    if (changed)
        store_placement_changed_locked(s);
    return 0;
}
