/*
 * Retention: finished tasks, the vm_events journal and the audit trail are deleted once older
 * than their retention. The journal is rolled up first (usage_store.c), so that usage never
 * needs the events it loses. Deletes go in chunks, each its own transaction, so that a first
 * prune of a large database never holds the writer for long.
 */
#include "store_internal.h"

#include <math.h>

#define STORE_PRUNE_CHUNK 5000

/* Deletes the rows sql selects (?1 the cutoff, ?2 the chunk size), a chunk per transaction. */
static int
store_prune_table(Store *s, const char *sql, const char *cutoff, int64_t *ret_count, NbError **err)
{
    *ret_count = 0;
    for (;;) {
        STORE_LOCKED(s);
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        if (store_prepare(s, sql, &st, err) < 0)
            return -1;
        sqlite3_bind_text(st, 1, cutoff, -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 2, STORE_PRUNE_CHUNK);
        if (sqlite3_step(st) != SQLITE_DONE)
            return store_db_error(s, "prune", err);
        int n = sqlite3_changes(s->db);
        *ret_count += n;
        if (n < STORE_PRUNE_CHUNK)
            return 0;
    }
}

/* The timestamp `days` days before now. */
static void
store_prune_cutoff(double now, unsigned days, char out[NB_TIMESTAMP_LEN])
{
    nb_timestamp_format(now - (double)days * 86400.0, out);
}

int
store_prune(Store *s, const StoreRetention *r, int64_t ret_counts[3], NbError **err)
{
    StoreRetention keep = r ? *r : STORE_RETENTION_DEFAULT;
    int64_t counts[3] = {0, 0, 0};
    double now = nb_epoch_now();
    char cutoff[NB_TIMESTAMP_LEN];
    {
        /* Roll the journal up to today's midnight: usage then reads the days, whatever the
         * retention, and the events about to go are all rolled up. */
        STORE_LOCKED(s);
        if (store_begin(s, err) < 0)
            return -1;
        if (usage_rollup_locked(s, now, err) < 0 || store_commit(s, err) < 0) {
            store_rollback(s);
            return -1;
        }
    }
    if (keep.tasks_days) {
        store_prune_cutoff(now, keep.tasks_days, cutoff);
        /* Never a pending or running task, nor one a VM still names as its holder. */
        if (store_prune_table(s,
                              "DELETE FROM tasks WHERE rowid IN (SELECT rowid FROM tasks "
                              "WHERE finished_at < ?1 AND state NOT IN ('pending', 'running') "
                              "AND id NOT IN (SELECT task_id FROM vms WHERE task_id IS NOT NULL) "
                              "LIMIT ?2)",
                              cutoff, &counts[0], err) < 0)
            return -1;
    }
    if (keep.events_days) {
        store_prune_cutoff(now, keep.events_days, cutoff);
        if (store_prune_table(s,
                              "DELETE FROM vm_events WHERE id IN (SELECT id FROM vm_events "
                              "WHERE at < ?1 AND at < (SELECT upto FROM usage_rollup) LIMIT ?2)",
                              cutoff, &counts[1], err) < 0)
            return -1;
    }
    if (keep.audit_days) {
        store_prune_cutoff(now, keep.audit_days, cutoff);
        if (store_prune_table(s,
                              "DELETE FROM audit WHERE id IN (SELECT id FROM audit WHERE at < ?1 "
                              "LIMIT ?2)",
                              cutoff, &counts[2], err) < 0)
            return -1;
    }
    if (ret_counts)
        for (int i = 0; i < 3; i++)
            ret_counts[i] = counts[i];
    return 0;
}
