/*
 * What the reconciler saw, applied in batches: one transaction (one WAL commit) for a whole
 * pass over the hosts rather than one per VM, with the same rules as the single calls.
 */
#include "store_internal.h"

#include <string.h>

static int
store_obs_vm_state(Store *s, StoreObservation *o, const char *now, NbError **err)
{
    _cleanup_stmt_ sqlite3_stmt *cur = NULL, *st = NULL;
    if (store_prepare(s, STORE_SQL_OBS_VM_READ, &cur, err) < 0 ||
        store_prepare(s, STORE_SQL_OBS_VM_STATE, &st, err) < 0)
        return -1;
    sqlite3_bind_text(cur, 1, o->vm_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(cur, 2, o->host, -1, SQLITE_STATIC);
    store_bind_text(cur, 3, o->seen_at);
    int rc = sqlite3_step(cur);
    if (rc == SQLITE_DONE)
        return 0; /* gone, held by a task, in error, or on another host */
    if (rc != SQLITE_ROW)
        return store_db_error(s, "observe vm", err);
    VmState was = vm_state_from_string((const char *)sqlite3_column_text(cur, 0));
    sqlite3_reset(cur);
    sqlite3_bind_text(st, 1, vm_state_to_string(o->state), -1, SQLITE_STATIC);
    if (o->desired >= 0)
        sqlite3_bind_text(st, 2, vm_power_to_string((VmPower)o->desired), -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, 2);
    /* The row's time is the observation's: a later observation of the same batch (an event
     * after the look) still counts as newer. */
    sqlite3_bind_text(st, 3, o->seen_at[0] ? o->seen_at : now, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, o->vm_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, o->host, -1, SQLITE_STATIC);
    store_bind_text(st, 6, o->seen_at);
    if (sqlite3_step(st) != SQLITE_DONE)
        return store_db_error(s, "observe vm", err);
    if (sqlite3_changes(s->db) > 0) {
        o->applied = 1;
        o->was = was;
    }
    return 0;
}

static int
store_obs_vm_ip(Store *s, StoreObservation *o, NbError **err)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (store_prepare(s, STORE_SQL_VM_SET_IP, &st, err) < 0)
        return -1;
    store_bind_text(st, 1, o->ip);
    sqlite3_bind_text(st, 2, o->vm_id, -1, SQLITE_STATIC);
    store_bind_text(st, 3, o->ip);
    if (sqlite3_step(st) != SQLITE_DONE)
        return store_db_error(s, "set vm ip", err);
    o->applied = sqlite3_changes(s->db) > 0;
    return 0;
}

static int
store_obs_host(Store *s, StoreObservation *o, bool *placement_changed, NbError **err)
{
    bool down = o->kind == STORE_OBS_HOST_DOWN;
    bool changed = false;
    int rc = host_set_facts_locked(s, o->host_id, down ? HOST_CONN_DOWN : HOST_CONN_UP,
                                   !down && o->has_facts ? &o->facts : NULL, down ? o->error : NULL,
                                   &changed, err);
    if (rc < 0)
        return -1;
    if (rc == 1)
        return 0; /* removed since it was looked at: the rest of the batch still applies */
    *placement_changed |= changed;
    o->applied = 1;
    if (!down)
        return 0;
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (store_prepare(s, STORE_SQL_VM_MARK_UNKNOWN, &st, err) < 0)
        return -1;
    sqlite3_bind_text(st, 1, o->host, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE)
        return store_db_error(s, "mark vms unknown", err);
    return 0;
}

int
store_observe_batch(Store *s, StoreObservation *obs, size_t n, NbError **err)
{
    STORE_LOCKED(s);
    char now[NB_TIMESTAMP_LEN];
    nb_timestamp_now(now);
    bool placement_changed = false;
    for (size_t i = 0; i < n; i++)
        obs[i].applied = 0;
    if (n == 0)
        return 0;
    if (store_begin(s, err) < 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        StoreObservation *o = &obs[i];
        int rc;
        switch (o->kind) {
        case STORE_OBS_VM_STATE:
            rc = store_obs_vm_state(s, o, now, err);
            break;
        case STORE_OBS_VM_IP:
            rc = store_obs_vm_ip(s, o, err);
            break;
        case STORE_OBS_HOST_UP:
        case STORE_OBS_HOST_DOWN:
            rc = store_obs_host(s, o, &placement_changed, err);
            break;
        default:
            rc = nb_error_set(err, NB_ERR_INTERNAL, "store: unknown observation kind %d",
                              (int)o->kind);
        }
        if (rc < 0) {
            store_rollback(s);
            for (size_t j = 0; j < n; j++)
                obs[j].applied = 0;
            return -1;
        }
    }
    if (store_commit(s, err) < 0) {
        store_rollback(s);
        for (size_t j = 0; j < n; j++)
            obs[j].applied = 0;
        return -1;
    }
    if (placement_changed)
        store_placement_changed_locked(s);
    return 0;
}
