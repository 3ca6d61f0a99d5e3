#include "store_internal.h"

#include <stdlib.h>
#include <string.h>

#include "../model/tenancy.h"
#include "../util/log.h"

/*
 * Migrations, in order; each runs once, in a transaction with the version bump. Never edit one
 * that has shipped: add the next. Every resource carries a project from the start so tenancy
 * can scope queries without a data migration.
 */
static const char *const store_migrations[] = {
    /* 1 */
    "CREATE TABLE flavors ("
    "  id TEXT PRIMARY KEY, project TEXT NOT NULL DEFAULT 'default', name TEXT NOT NULL,"
    "  vcpus INTEGER NOT NULL, ram_mib INTEGER NOT NULL, disk_gib INTEGER NOT NULL,"
    "  created_at TEXT NOT NULL, UNIQUE (project, name));"
    "CREATE TABLE images ("
    "  id TEXT PRIMARY KEY, project TEXT NOT NULL DEFAULT 'default', name TEXT NOT NULL,"
    "  state TEXT NOT NULL, format TEXT, size_bytes INTEGER NOT NULL DEFAULT 0,"
    "  virtual_size_bytes INTEGER NOT NULL DEFAULT 0, volume TEXT NOT NULL,"
    "  created_at TEXT NOT NULL, updated_at TEXT NOT NULL, UNIQUE (project, name));"
    "CREATE TABLE vms ("
    "  id TEXT PRIMARY KEY, project TEXT NOT NULL DEFAULT 'default', name TEXT NOT NULL,"
    "  hostname TEXT NOT NULL, state TEXT NOT NULL, desired TEXT NOT NULL, task_id TEXT,"
    "  host TEXT NOT NULL, image_id TEXT NOT NULL REFERENCES images (id),"
    "  flavor_id TEXT NOT NULL REFERENCES flavors (id), vcpus INTEGER NOT NULL,"
    "  ram_mib INTEGER NOT NULL, disk_gib INTEGER NOT NULL, mac TEXT NOT NULL UNIQUE,"
    "  user_data TEXT, ip TEXT, error TEXT, created_at TEXT NOT NULL, updated_at TEXT NOT NULL,"
    "  UNIQUE (project, name));"
    "CREATE TABLE tasks ("
    "  id TEXT PRIMARY KEY, project TEXT NOT NULL DEFAULT 'default', kind TEXT NOT NULL,"
    "  state TEXT NOT NULL, target_id TEXT NOT NULL, step INTEGER NOT NULL DEFAULT 0,"
    "  steps INTEGER NOT NULL, params TEXT, error_code TEXT, error_message TEXT,"
    "  created_at TEXT NOT NULL, updated_at TEXT NOT NULL, finished_at TEXT);"
    "CREATE INDEX tasks_by_target ON tasks (target_id, created_at);"
    "CREATE INDEX tasks_unfinished ON tasks (state) WHERE state IN ('pending', 'running');"
    "CREATE TABLE tokens ("
    "  id TEXT PRIMARY KEY, hash TEXT NOT NULL UNIQUE, name TEXT NOT NULL,"
    "  role TEXT NOT NULL DEFAULT 'admin', created_at TEXT NOT NULL, expires_at TEXT,"
    "  revoked_at TEXT);",
    /* 2: tenancy. Resources move into the default project; the bootstrap admin owns the
     * existing tokens. vm_events is the metering journal, written by triggers so that no code
     * path can change a VM's state without it being recorded. */
    "CREATE TABLE projects ("
    "  id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, quota_vcpus INTEGER,"
    "  quota_ram_mib INTEGER, quota_disk_gib INTEGER, quota_vms INTEGER, quota_images INTEGER,"
    "  created_at TEXT NOT NULL);"
    "INSERT INTO projects (id, name, created_at) VALUES ('" NB_DEFAULT_PROJECT_ID
    "', 'default', strftime('%Y-%m-%dT%H:%M:%fZ', 'now'));"
    "UPDATE images SET project = '" NB_DEFAULT_PROJECT_ID "';"
    "UPDATE vms SET project = '" NB_DEFAULT_PROJECT_ID "';"
    "UPDATE tasks SET project = '" NB_DEFAULT_PROJECT_ID "';"
    "CREATE TABLE users ("
    "  id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, password_hash TEXT NOT NULL,"
    "  project_id TEXT NOT NULL REFERENCES projects (id), role TEXT NOT NULL,"
    "  created_at TEXT NOT NULL);"
    /* '!' is no argon2id string: the bootstrap admin cannot log in with a password. */
    "INSERT INTO users (id, name, password_hash, project_id, role, created_at) VALUES "
    "('" NB_ADMIN_USER_ID "', 'admin', '!', '" NB_DEFAULT_PROJECT_ID
    "', 'admin', strftime('%Y-%m-%dT%H:%M:%fZ', 'now'));"
    "ALTER TABLE tokens ADD COLUMN user_id TEXT NOT NULL DEFAULT '" NB_ADMIN_USER_ID "';"
    "CREATE INDEX tokens_by_user ON tokens (user_id);"
    "CREATE TABLE audit ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL, request_id TEXT NOT NULL,"
    "  user_name TEXT, project_id TEXT, source TEXT NOT NULL, method TEXT NOT NULL,"
    "  path TEXT NOT NULL, action TEXT NOT NULL, target TEXT, status INTEGER NOT NULL,"
    "  result TEXT NOT NULL);"
    "CREATE INDEX audit_by_project ON audit (project_id, id);"
    "CREATE TABLE vm_events ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT, vm_id TEXT NOT NULL, project TEXT NOT NULL,"
    "  name TEXT NOT NULL, state TEXT NOT NULL, vcpus INTEGER NOT NULL,"
    "  ram_mib INTEGER NOT NULL, disk_gib INTEGER NOT NULL, at TEXT NOT NULL);"
    "CREATE INDEX vm_events_by_project ON vm_events (project, vm_id, id);"
    "INSERT INTO vm_events (vm_id, project, name, state, vcpus, ram_mib, disk_gib, at)"
    "  SELECT id, project, name, state, vcpus, ram_mib, disk_gib, created_at FROM vms;"
    "CREATE TRIGGER vm_events_on_insert AFTER INSERT ON vms BEGIN"
    "  INSERT INTO vm_events (vm_id, project, name, state, vcpus, ram_mib, disk_gib, at)"
    "  VALUES (NEW.id, NEW.project, NEW.name, NEW.state, NEW.vcpus, NEW.ram_mib, NEW.disk_gib,"
    "          strftime('%Y-%m-%dT%H:%M:%fZ', 'now'));"
    "END;"
    "CREATE TRIGGER vm_events_on_state AFTER UPDATE OF state ON vms"
    "  WHEN OLD.state IS NOT NEW.state BEGIN"
    "  INSERT INTO vm_events (vm_id, project, name, state, vcpus, ram_mib, disk_gib, at)"
    "  VALUES (NEW.id, NEW.project, NEW.name, NEW.state, NEW.vcpus, NEW.ram_mib, NEW.disk_gib,"
    "          strftime('%Y-%m-%dT%H:%M:%fZ', 'now'));"
    "END;"
    "CREATE TRIGGER vm_events_on_delete AFTER DELETE ON vms BEGIN"
    "  INSERT INTO vm_events (vm_id, project, name, state, vcpus, ram_mib, disk_gib, at)"
    "  VALUES (OLD.id, OLD.project, OLD.name, 'deleted', OLD.vcpus, OLD.ram_mib, OLD.disk_gib,"
    "          strftime('%Y-%m-%dT%H:%M:%fZ', 'now'));"
    "END;",
    /* 3: hosts, server groups, migration. vms.host stays a host's name (existing VMs keep
     * 'local', the host the daemon registers at start); a VM being migrated claims resources on
     * migrate_to as well. Tasks gain the progress of their current step and a cancel flag. */
    "CREATE TABLE hosts ("
    "  id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, uri TEXT NOT NULL UNIQUE,"
    "  admin TEXT NOT NULL DEFAULT 'enabled', conn TEXT NOT NULL DEFAULT 'connecting',"
    "  cpu_ratio REAL NOT NULL DEFAULT 4.0, ram_ratio REAL NOT NULL DEFAULT 1.0,"
    "  disk_ratio REAL NOT NULL DEFAULT 1.0, labels TEXT NOT NULL DEFAULT '',"
    "  vcpus INTEGER NOT NULL DEFAULT 0, ram_mib INTEGER NOT NULL DEFAULT 0,"
    "  free_ram_mib INTEGER NOT NULL DEFAULT 0, disk_gib INTEGER NOT NULL DEFAULT 0,"
    "  disk_free_gib INTEGER NOT NULL DEFAULT 0, hostname TEXT, cpu_model TEXT,"
    "  libvirt_version TEXT, qemu_version TEXT, last_contact TEXT, error TEXT,"
    "  created_at TEXT NOT NULL, updated_at TEXT NOT NULL);"
    "CREATE TABLE groups ("
    "  id TEXT PRIMARY KEY, project TEXT NOT NULL, name TEXT NOT NULL, policy TEXT NOT NULL,"
    "  created_at TEXT NOT NULL, UNIQUE (project, name));"
    "ALTER TABLE vms ADD COLUMN migrate_to TEXT;"
    "ALTER TABLE vms ADD COLUMN group_id TEXT REFERENCES groups (id);"
    "ALTER TABLE vms ADD COLUMN labels TEXT NOT NULL DEFAULT '';"
    "CREATE INDEX vms_by_host ON vms (host);"
    "CREATE INDEX vms_by_migrate_to ON vms (migrate_to) WHERE migrate_to IS NOT NULL;"
    "CREATE INDEX vms_by_group ON vms (group_id) WHERE group_id IS NOT NULL;"
    "ALTER TABLE tasks ADD COLUMN progress INTEGER NOT NULL DEFAULT -1;"
    "ALTER TABLE tasks ADD COLUMN cancel_requested INTEGER NOT NULL DEFAULT 0;"
    /* Copies of an image's volume in other hosts' pools (uploads land on the local host). */
    "CREATE TABLE image_copies ("
    "  image_id TEXT NOT NULL, host TEXT NOT NULL, state TEXT NOT NULL,"
    "  updated_at TEXT NOT NULL, PRIMARY KEY (image_id, host));",
};

int
store_db_error(Store *s, const char *what, NbError **err)
{
    return nb_error_set(err, NB_ERR_INTERNAL, "store: %s: %s", what, sqlite3_errmsg(s->db));
}

int
store_prepare(Store *s, const char *sql, sqlite3_stmt **ret, NbError **err)
{
    if (sqlite3_prepare_v2(s->db, sql, -1, ret, NULL) != SQLITE_OK)
        return store_db_error(s, "prepare", err);
    return 0;
}

int
store_exec(Store *s, const char *sql, NbError **err)
{
    char *msg = NULL;
    if (sqlite3_exec(s->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        nb_error_set(err, NB_ERR_INTERNAL, "store: %s", msg ? msg : "exec failed");
        sqlite3_free(msg);
        return -1;
    }
    return 0;
}

int
store_begin(Store *s, NbError **err)
{
    return store_exec(s, "BEGIN IMMEDIATE", err);
}

int
store_commit(Store *s, NbError **err)
{
    return store_exec(s, "COMMIT", err);
}

void
store_rollback(Store *s)
{
    sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
}

int
store_bind_text(sqlite3_stmt *st, int idx, const char *v)
{
    if (!v || !*v)
        return sqlite3_bind_null(st, idx);
    return sqlite3_bind_text(st, idx, v, -1, SQLITE_TRANSIENT);
}

void
store_column_copy(sqlite3_stmt *st, int col, char *buf, size_t len)
{
    const unsigned char *v = sqlite3_column_text(st, col);
    snprintf(buf, len, "%s", v ? (const char *)v : "");
}

char *
store_column_strdup(sqlite3_stmt *st, int col)
{
    const unsigned char *v = sqlite3_column_text(st, col);
    return v ? strdup((const char *)v) : NULL;
}

int
store_collect(Store *s, sqlite3_stmt *st, size_t elem_size, StoreRowFn row_fn,
              void (*clear_elem)(void *elem), void **ret, size_t *ret_n, NbError **err)
{
    char *list = NULL;
    size_t n = 0, cap = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (n == cap) {
            /* Doubling: a list of 1,000 hosts must not copy itself 1,000 times. */
            size_t want = cap ? cap * 2 : 16;
            char *grown = want <= SIZE_MAX / elem_size ? realloc(list, want * elem_size) : NULL;
            if (!grown)
                break;
            list = grown;
            cap = want;
        }
        memset(list + n * elem_size, 0, elem_size);
        row_fn(st, list + n * elem_size);
        n++;
    }
    if (rc != SQLITE_DONE) {
        for (size_t i = 0; clear_elem && i < n; i++)
            clear_elem(list + i * elem_size);
        free(list);
        return rc == SQLITE_ROW ? nb_error_set(err, NB_ERR_INTERNAL, "out of memory")
                                : store_db_error(s, "list", err);
    }
    *ret = list;
    *ret_n = n;
    return 0;
}

int
store_get_by_id_or_name(Store *s, const char *sql, const char *key, const char *scope,
                        StoreRowFn row_fn, void *ret, const char *not_found_code, const char *what,
                        NbError **err)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (store_prepare(s, sql, &st, err) < 0)
        return -1;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    if (sqlite3_bind_parameter_count(st) >= 2)
        store_bind_text(st, 2, scope);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_DONE)
        return nb_error_set(err, not_found_code, "%s '%.64s' not found", what, key);
    if (rc != SQLITE_ROW)
        return store_db_error(s, "get", err);
    row_fn(st, ret);
    return 0;
}

uint64_t
store_placement_generation(Store *s)
{
    STORE_LOCKED(s);
    return s->placement_gen;
}

int
store_schema_version(Store *s)
{
    STORE_LOCKED(s);
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(s->db, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK ||
        sqlite3_step(st) != SQLITE_ROW)
        return -1;
    return sqlite3_column_int(st, 0);
}

static int
store_migrate(Store *s, NbError **err)
{
    int version = store_schema_version(s);
    if (version < 0)
        return store_db_error(s, "read schema version", err);
    int latest = (int)ELEMENTSOF(store_migrations);
    if (version > latest)
        return nb_error_set(err, NB_ERR_INTERNAL,
                            "store schema version %d is newer than this nimbusd (%d)", version,
                            latest);
    for (int v = version; v < latest; v++) {
        char bump[64];
        snprintf(bump, sizeof(bump), "PRAGMA user_version = %d", v + 1);
        if (store_begin(s, err) < 0)
            return -1;
        if (store_exec(s, store_migrations[v], err) < 0 || store_exec(s, bump, err) < 0) {
            store_rollback(s);
            return -1;
        }
        if (store_commit(s, err) < 0)
            return -1;
        log_info("store: migrated schema to version %d", v + 1);
    }
    return 0;
}

int
store_open(const char *path, Store **ret, NbError **err)
{
    Store *s = calloc(1, sizeof(*s));
    if (!s)
        return nb_error_set(err, NB_ERR_INTERNAL, "out of memory");
    pthread_mutex_init(&s->lock, NULL);
    s->placement_gen = 1;
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX;
    if (sqlite3_open_v2(path, &s->db, flags, NULL) != SQLITE_OK) {
        nb_error_set(err, NB_ERR_INTERNAL, "store: open %s: %s", path,
                     s->db ? sqlite3_errmsg(s->db) : "out of memory");
        store_close(s);
        return -1;
    }
    sqlite3_busy_timeout(s->db, 5000);
    /* WAL + synchronous=FULL: a committed step survives kill -9 and power loss alike. */
    if (store_exec(s,
                   "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;"
                   "PRAGMA foreign_keys = ON;",
                   err) < 0 ||
        store_migrate(s, err) < 0) {
        store_close(s);
        return -1;
    }
    *ret = s;
    return 0;
}

void
store_close(Store *s)
{
    if (!s)
        return;
    sqlite3_close(s->db);
    pthread_mutex_destroy(&s->lock);
    free(s);
}
