#include "store_internal.h"

#include <stdlib.h>
#include <string.h>

static void
volume_from_row(sqlite3_stmt *st, void *elem)
{
    Volume *v = elem;
    memset(v, 0, sizeof(*v));
    store_column_copy(st, 0, v->id, sizeof(v->id));
    store_column_copy(st, 1, v->project, sizeof(v->project));
    store_column_copy(st, 2, v->name, sizeof(v->name));
    store_column_copy(st, 3, v->pool_id, sizeof(v->pool_id));
    store_column_copy(st, 4, v->host, sizeof(v->host));
    v->size_gib = (uint64_t)sqlite3_column_int64(st, 5);
    store_column_copy(st, 6, v->format, sizeof(v->format));
    v->state = volume_state_from_string((const char *)sqlite3_column_text(st, 7));
    store_column_copy(st, 8, v->vm_id, sizeof(v->vm_id));
    v->bus = volume_bus_from_string((const char *)sqlite3_column_text(st, 9));
    if (v->bus == _VOLUME_BUS_INVALID)
        v->bus = VOLUME_BUS_VIRTIO;
    store_column_copy(st, 10, v->target, sizeof(v->target));
    store_column_copy(st, 11, v->source_image, sizeof(v->source_image));
    store_column_copy(st, 12, v->created_at, sizeof(v->created_at));
    store_column_copy(st, 13, v->source_snapshot, sizeof(v->source_snapshot));
}

void
volume_list_free(Volume *v, size_t n)
{
    (void)n; /* a Volume owns nothing */
    free(v);
}

static int
volume_get_locked(Store *s, const char *scope, const char *id_or_name, Volume *ret, NbError **err)
{
    return store_get_by_id_or_name(
        s, STORE_SQL_VOLUME_BY_ID, scope ? STORE_SQL_VOLUME_BY_NAME : STORE_SQL_VOLUME_BY_NAME_ANY,
        id_or_name, scope, volume_from_row, ret, NB_ERR_VOLUME_NOT_FOUND, "volume", err);
}

/* By id only (the calls that change a volume take its id). */
static int
volume_get_by_id_locked(Store *s, const char *id, Volume *ret, NbError **err)
{
    return store_get_by_id_or_name(s, STORE_SQL_VOLUME_BY_ID, STORE_SQL_VOLUME_BY_ID, id, NULL,
                                   volume_from_row, ret, NB_ERR_VOLUME_NOT_FOUND, "volume", err);
}

int
volume_store_get(Store *s, const char *scope, const char *id_or_name, Volume *ret, NbError **err)
{
    STORE_READING(s);
    return volume_get_locked(s, scope, id_or_name, ret, err);
}

int
volume_store_list(Store *s, const char *scope, const char *vm_id, const char *pool_id, Volume **ret,
                  size_t *ret_n, NbError **err)
{
    STORE_READING(s);
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    /* Each filter through its own index; the rest as conditions on the rows it finds. */
    const char *sql = vm_id     ? STORE_SQL_VOLUMES_BY_VM
                      : pool_id ? STORE_SQL_VOLUMES_BY_POOL
                      : scope   ? STORE_SQL_VOLUMES_BY_PROJECT
                                : "SELECT " VOLUME_COLUMNS " FROM volumes ORDER BY created_at, id";
    if (store_prepare(s, sql, &st, err) < 0)
        return -1;
    int n = sqlite3_bind_parameter_count(st);
    if (n >= 1)
        store_bind_text(st, 1, scope);
    if (n >= 2)
        store_bind_text(st, 2, vm_id);
    if (n >= 3)
        store_bind_text(st, 3, pool_id);
    return store_collect(s, st, sizeof(Volume), volume_from_row, NULL, (void **)ret, ret_n, err);
}

/* A busy volume's state: a task holds it. */
static bool
volume_state_is_transitional(VolumeState st)
{
    return st == VOLUME_STATE_CREATING || st == VOLUME_STATE_ATTACHING ||
           st == VOLUME_STATE_DETACHING || st == VOLUME_STATE_DELETING;
}

/* Why v, in its state, cannot take a change that needs another state: -1 and err set. */
static int
volume_refuse(const Volume *v, NbError **err)
{
    const char *state = volume_state_to_string(v->state);
    if (!state)
        state = "unknown";
    if (volume_state_is_transitional(v->state))
        return nb_error_set(err, NB_ERR_VOLUME_BUSY, "volume '%s' is %s: a task holds it", v->name,
                            state);
    if (v->state == VOLUME_STATE_ATTACHED)
        return nb_error_set(err, NB_ERR_VOLUME_IN_USE, "volume '%s' is attached to VM %s", v->name,
                            v->vm_id);
    return nb_error_set(err, NB_ERR_INVALID_STATE, "volume '%s' is %s", v->name, state);
}

/* Runs one UPDATE of the volume id with up to two more text parameters (?2, ?3; NULL binds NULL)
 * and, when ret is given, reads the row back. Within the caller's transaction. */
static int
volume_update_locked(Store *s, const char *sql, const char *id, const char *a, const char *b,
                     Volume *ret, NbError **err)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (store_prepare(s, sql, &st, err) < 0)
        return -1;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    int n = sqlite3_bind_parameter_count(st);
    if (n >= 2)
        store_bind_text(st, 2, a);
    if (n >= 3)
        store_bind_text(st, 3, b);
    if (sqlite3_step(st) != SQLITE_DONE)
        return store_db_error(s, "update volume", err);
    return ret ? volume_get_by_id_locked(s, id, ret, err) : 0;
}

/* Commits, or rolls back when rc < 0 or the commit fails: the usual end of a write here. */
static int
volume_finish_tx(Store *s, int rc, NbError **err)
{
    if (rc < 0 || store_commit(s, err) < 0) {
        store_rollback(s);
        return -1;
    }
    return 0;
}

static int
volume_insert_locked(Store *s, const Volume *v, NbError **err)
{
    if (v->size_gib < 1 || v->size_gib > VOLUME_SIZE_GIB_MAX)
        return nb_error_set(err, NB_ERR_VOLUME_INVALID_SIZE, "a volume is 1 to %u GiB, not %llu",
                            VOLUME_SIZE_GIB_MAX, (unsigned long long)v->size_gib);
    const char *state = volume_state_to_string(v->state);
    if (!state)
        return nb_error_set(err, NB_ERR_INTERNAL, "store: volume '%s' has no valid state", v->name);
    const char *bus = volume_bus_to_string(v->bus);
    _cleanup_stmt_ sqlite3_stmt *pool = NULL, *st = NULL;
    if (store_prepare(s, "SELECT 1 FROM pools WHERE id = ?1", &pool, err) < 0)
        return -1;
    sqlite3_bind_text(pool, 1, v->pool_id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(pool);
    if (rc == SQLITE_DONE)
        return nb_error_set(err, NB_ERR_POOL_NOT_FOUND, "pool '%.64s' not found", v->pool_id);
    if (rc != SQLITE_ROW)
        return store_db_error(s, "insert volume", err);
    int64_t add[_QUOTA_MAX] = {[QUOTA_VOLUMES] = 1, [QUOTA_VOLUME_GIB] = (int64_t)v->size_gib};
    if (project_quota_check_locked(s, v->project, add, err) < 0)
        return -1;
    /* From a snapshot: it is ready, and stays while this volume depends on it (its delete looks
     * for volumes made from it, under this same lock). */
    if (v->source_snapshot[0] && volume_snapshot_check_ready_locked(s, v->source_snapshot, err) < 0)
        return -1;
    if (store_prepare(s,
                      "INSERT INTO volumes (" VOLUME_COLUMNS
                      ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                      &st, err) < 0)
        return -1;
    sqlite3_bind_text(st, 1, v->id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, v->project, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, v->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, v->pool_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, v->host, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 6, (sqlite3_int64)v->size_gib);
    sqlite3_bind_text(st, 7, v->format, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 8, state, -1, SQLITE_STATIC);
    store_bind_text(st, 9, v->vm_id);
    sqlite3_bind_text(st, 10, bus ? bus : "virtio", -1, SQLITE_STATIC);
    store_bind_text(st, 11, v->target);
    store_bind_text(st, 12, v->source_image);
    sqlite3_bind_text(st, 13, v->created_at, -1, SQLITE_STATIC);
    store_bind_text(st, 14, v->source_snapshot);
    rc = sqlite3_step(st);
    if (rc == SQLITE_DONE)
        return 0;
    const char *msg = sqlite3_errmsg(s->db);
    if (rc == SQLITE_CONSTRAINT && strstr(msg, "volumes.name"))
        return nb_error_set(err, NB_ERR_NAME_TAKEN, "a volume named '%s' already exists", v->name);
    if (rc == SQLITE_CONSTRAINT && strstr(msg, "FOREIGN KEY"))
        return nb_error_set(err, NB_ERR_VM_NOT_FOUND, "VM '%.64s' not found", v->vm_id);
    return store_db_error(s, "insert volume", err);
}

int
volume_store_insert(Store *s, const Volume *v, NbError **err)
{
    STORE_LOCKED(s);
    if (store_begin(s, err) < 0)
        return -1;
    return volume_finish_tx(s, volume_insert_locked(s, v, err), err);
}

int
volume_store_transition(Store *s, const char *id, unsigned from_mask, VolumeState to, Volume *ret,
                        NbError **err)
{
    const char *to_text = volume_state_to_string(to);
    if (!to_text)
        return nb_error_set(err, NB_ERR_INTERNAL, "store: no such volume state %d", (int)to);
    STORE_LOCKED(s);
    if (store_begin(s, err) < 0)
        return -1;
    Volume v;
    int rc = volume_get_by_id_locked(s, id, &v, err);
    if (rc == 0 && (v.state < 0 || !(from_mask & (1u << v.state))))
        rc = volume_refuse(&v, err);
    /* As Cinder: a volume with snapshots is not deleted; its snapshots go first. */
    if (rc == 0 && to == VOLUME_STATE_DELETING)
        rc = volume_snapshot_none_locked(s, &v, err);
    if (rc == 0)
        rc = volume_update_locked(s, "UPDATE volumes SET state = ?2 WHERE id = ?1", id, to_text,
                                  NULL, ret, err);
    return volume_finish_tx(s, rc, err);
}

/* With the lock held: the disk targets the VM's volumes hold, into used (at most max). */
static int
volume_vm_targets_locked(Store *s, const char *vm_id, char (*used)[VOLUME_TARGET_MAX], size_t max,
                         size_t *ret_n, NbError **err)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (store_prepare(s, STORE_SQL_VOLUME_TARGETS_OF_VM, &st, err) < 0)
        return -1;
    sqlite3_bind_text(st, 1, vm_id, -1, SQLITE_STATIC);
    size_t n = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        /* More than max rows cannot be (TOO_MANY_VOLUMES stops them): count them anyway. */
        if (n < max)
            store_column_copy(st, 0, used[n], VOLUME_TARGET_MAX);
        n++;
    }
    if (rc != SQLITE_DONE)
        return store_db_error(s, "read a VM's disk targets", err);
    *ret_n = n;
    return 0;
}

/* With the lock held, in a transaction: attach_begin's checks and update. */
static int
volume_attach_begin_locked(Store *s, const char *id, const char *vm_id, VolumeBus bus, Volume *ret,
                           NbError **err)
{
    const char *bus_text = volume_bus_to_string(bus);
    if (!bus_text)
        return nb_error_set(err, NB_ERR_VOLUME_INVALID_BUS, "no such bus %d", (int)bus);
    Volume v;
    if (volume_get_by_id_locked(s, id, &v, err) < 0)
        return -1;
    if (v.state != VOLUME_STATE_AVAILABLE)
        return volume_refuse(&v, err);
    /* A snapshot being copied (dir pools) reads the volume: no guest may write it meanwhile. */
    if (volume_snapshot_copying_locked(s, &v, err) < 0)
        return -1;
    /* The VM must be the volume's project's: another project's VM is not found, as it would be
     * for the caller. */
    _cleanup_stmt_ sqlite3_stmt *vm = NULL;
    if (store_prepare(s, "SELECT project, host FROM vms WHERE id = ?1", &vm, err) < 0)
        return -1;
    sqlite3_bind_text(vm, 1, vm_id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(vm);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return store_db_error(s, "attach volume", err);
    if (rc == SQLITE_DONE || !streq((const char *)sqlite3_column_text(vm, 0), v.project))
        return nb_error_set(err, NB_ERR_VM_NOT_FOUND, "VM '%.64s' not found", vm_id);
    /* A volume in a local pool is on its host only; checked here too, so a VM moved since the
     * caller looked cannot get it. */
    const char *vm_host = (const char *)sqlite3_column_text(vm, 1);
    if (v.host[0] && !streq(vm_host ? vm_host : "", v.host))
        return nb_error_set(err, NB_ERR_VOLUME_NOT_REACHABLE,
                            "volume '%s' is on host %s, the VM on %s", v.name, v.host,
                            vm_host ? vm_host : "none");
    char used[VOLUMES_PER_VM_MAX][VOLUME_TARGET_MAX];
    const char *used_p[VOLUMES_PER_VM_MAX];
    size_t n_used = 0;
    if (volume_vm_targets_locked(s, vm_id, used, VOLUMES_PER_VM_MAX, &n_used, err) < 0)
        return -1;
    char target[VOLUME_TARGET_MAX];
    for (size_t i = 0; i < n_used && i < VOLUMES_PER_VM_MAX; i++)
        used_p[i] = used[i];
    if (n_used >= VOLUMES_PER_VM_MAX || volume_target_pick(bus, used_p, n_used, target) < 0)
        return nb_error_set(err, NB_ERR_TOO_MANY_VOLUMES, "the VM has %d volumes, the most it may",
                            VOLUMES_PER_VM_MAX);
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (store_prepare(s,
                      "UPDATE volumes SET state = 'attaching', vm_id = ?2, bus = ?3, target = ?4 "
                      "WHERE id = ?1 AND state = 'available'",
                      &st, err) < 0)
        return -1;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, vm_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, bus_text, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, target, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    if (rc == SQLITE_CONSTRAINT)
        return nb_error_set(err, NB_ERR_INTERNAL, "store: disk target %s of VM %s is taken", target,
                            vm_id);
    if (rc != SQLITE_DONE)
        return store_db_error(s, "attach volume", err);
    return ret ? volume_get_by_id_locked(s, id, ret, err) : 0;
}

int
volume_store_attach_begin(Store *s, const char *id, const char *vm_id, VolumeBus bus, Volume *ret,
                          NbError **err)
{
    STORE_LOCKED(s);
    if (store_begin(s, err) < 0)
        return -1;
    return volume_finish_tx(s, volume_attach_begin_locked(s, id, vm_id, bus, ret, err), err);
}

/* Detached: back to available, no VM, no target. */
#define VOLUME_SQL_RELEASE                                                                         \
    "UPDATE volumes SET state = 'available', vm_id = NULL, target = NULL WHERE id = ?1"

int
volume_store_attach_end(Store *s, const char *id, bool ok, NbError **err)
{
    STORE_LOCKED(s);
    if (store_begin(s, err) < 0)
        return -1;
    Volume v;
    int rc = volume_get_by_id_locked(s, id, &v, err);
    if (rc == 0 && v.state == VOLUME_STATE_ATTACHING)
        rc = volume_update_locked(
            s, ok ? "UPDATE volumes SET state = 'attached' WHERE id = ?1" : VOLUME_SQL_RELEASE, id,
            NULL, NULL, NULL, err);
    else if (rc == 0 && !(ok && v.state == VOLUME_STATE_ATTACHED) &&
             !(!ok && v.state == VOLUME_STATE_AVAILABLE))
        /* Ending twice is fine (a task's step run again after a crash); anything else is not
         * this attach's to end. */
        rc = nb_error_set(err, NB_ERR_INVALID_STATE, "volume '%s' is not attaching", v.name);
    return volume_finish_tx(s, rc, err);
}

int
volume_store_detach_end(Store *s, const char *id, NbError **err)
{
    STORE_LOCKED(s);
    if (store_begin(s, err) < 0)
        return -1;
    Volume v;
    int rc = volume_get_by_id_locked(s, id, &v, err);
    if (rc == 0 && v.state == VOLUME_STATE_DETACHING)
        rc = volume_update_locked(s, VOLUME_SQL_RELEASE, id, NULL, NULL, NULL, err);
    else if (rc == 0 && v.state != VOLUME_STATE_AVAILABLE)
        rc = nb_error_set(err, NB_ERR_INVALID_STATE, "volume '%s' is not detaching", v.name);
    return volume_finish_tx(s, rc, err);
}

static int
volume_set_size_locked(Store *s, const char *id, uint64_t size_gib, NbError **err)
{
    Volume v;
    if (volume_get_by_id_locked(s, id, &v, err) < 0)
        return -1;
    if (size_gib < v.size_gib)
        return nb_error_set(err, NB_ERR_VOLUME_SHRINK,
                            "volume '%s' is %llu GiB: it can grow, not shrink to %llu GiB", v.name,
                            (unsigned long long)v.size_gib, (unsigned long long)size_gib);
    if (size_gib > VOLUME_SIZE_GIB_MAX)
        return nb_error_set(err, NB_ERR_VOLUME_INVALID_SIZE, "a volume is at most %u GiB",
                            VOLUME_SIZE_GIB_MAX);
    if (size_gib == v.size_gib)
        return 0;
    /* A snapshot being made records the size it copies or snapshots. */
    if (volume_snapshot_copying_locked(s, &v, err) < 0)
        return -1;
    int64_t add[_QUOTA_MAX] = {[QUOTA_VOLUME_GIB] = (int64_t)(size_gib - v.size_gib)};
    if (project_quota_check_locked(s, v.project, add, err) < 0)
        return -1;
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (store_prepare(s, "UPDATE volumes SET size_gib = ?2 WHERE id = ?1", &st, err) < 0)
        return -1;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)size_gib);
    if (sqlite3_step(st) != SQLITE_DONE)
        return store_db_error(s, "resize volume", err);
    return 0;
}

int
volume_store_set_size(Store *s, const char *id, uint64_t size_gib, NbError **err)
{
    STORE_LOCKED(s);
    if (store_begin(s, err) < 0)
        return -1;
    return volume_finish_tx(s, volume_set_size_locked(s, id, size_gib, err), err);
}

int
volume_store_delete(Store *s, const char *id, NbError **err)
{
    STORE_LOCKED(s);
    if (store_begin(s, err) < 0)
        return -1;
    Volume v;
    int rc = volume_get_by_id_locked(s, id, &v, err);
    /* The last guard: a volume a VM still has is never forgotten. */
    if (rc == 0 && v.vm_id[0])
        rc = nb_error_set(err, NB_ERR_VOLUME_IN_USE, "volume '%s' is attached to VM %s", v.name,
                          v.vm_id);
    if (rc == 0) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        rc = store_prepare(s, "DELETE FROM volumes WHERE id = ?1", &st, err);
        if (rc == 0) {
            sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
            if (sqlite3_step(st) != SQLITE_DONE)
                rc = store_db_error(s, "delete volume", err);
        }
    }
    return volume_finish_tx(s, rc, err);
}
