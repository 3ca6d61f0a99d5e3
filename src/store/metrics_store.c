#include "metrics_store.h"

#include <stdlib.h>
#include <string.h>

#include "../util/timeutil.h"
#include "store_internal.h"

int
metrics_store_task_counts(Store *s, MetricsTaskCounts *ret, NbError **err)
{
    STORE_READING(s);
    memset(ret, 0, sizeof(*ret));
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (store_prepare(s,
                      "SELECT kind, state, count(*), min(CASE WHEN state IN ('pending', 'running') "
                      "THEN created_at END) FROM tasks GROUP BY kind, state",
                      &st, err) < 0)
        return -1;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        TaskKind k = task_kind_from_string((const char *)sqlite3_column_text(st, 0));
        TaskState t = task_state_from_string((const char *)sqlite3_column_text(st, 1));
        if (k < 0 || t < 0)
            continue;
        ret->n[k][t] = sqlite3_column_int64(st, 2);
        const char *oldest = (const char *)sqlite3_column_text(st, 3);
        double when = 0;
        if (oldest && nb_timestamp_parse(oldest, &when) == 0 &&
            (ret->oldest_unfinished[k] == 0 || when < ret->oldest_unfinished[k]))
            ret->oldest_unfinished[k] = when;
    }
    if (rc != SQLITE_DONE)
        return store_db_error(s, "count tasks", err);
    return 0;
}

int
metrics_store_vm_counts(Store *s, bool by_host, MetricsVmCounts **ret, size_t *ret_n, NbError **err)
{
    STORE_READING(s);
    *ret = NULL;
    *ret_n = 0;
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (store_prepare(s,
                      by_host ? "SELECT host, state, count(*) FROM vms GROUP BY host, state "
                                "ORDER BY host"
                              : "SELECT project, state, count(*) FROM vms GROUP BY project, state "
                                "ORDER BY project",
                      &st, err) < 0)
        return -1;
    MetricsVmCounts *out = NULL;
    size_t n = 0, cap = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *key = (const char *)sqlite3_column_text(st, 0);
        VmState state = vm_state_from_string((const char *)sqlite3_column_text(st, 1));
        if (!key || state < 0 || state >= _VM_STATE_MAX)
            continue;
        /* Ordered by key (BINARY collation: strcmp's order), so a key's states are adjacent
         * and the result is sorted for bsearch. */
        if (n == 0 || strcmp(out[n - 1].key, key) != 0) {
            if (n == cap) {
                size_t ncap = cap ? cap * 2 : 64;
                MetricsVmCounts *g = realloc(out, ncap * sizeof(*g));
                if (!g) {
                    free(out);
                    return nb_error_set(err, NB_ERR_INTERNAL, "out of memory");
                }
                out = g;
                cap = ncap;
            }
            memset(&out[n], 0, sizeof(out[n]));
            snprintf(out[n].key, sizeof(out[n].key), "%s", key);
            n++;
        }
        out[n - 1].n[state] += (unsigned)sqlite3_column_int64(st, 2);
    }
    if (rc != SQLITE_DONE) {
        free(out);
        return store_db_error(s, "count VMs", err);
    }
    *ret = out;
    *ret_n = n;
    return 0;
}

static void
metrics_vm_labels_from_row(sqlite3_stmt *st, void *elem)
{
    MetricsVmLabels *v = elem;
    store_column_copy(st, 0, v->id, sizeof(v->id));
    store_column_copy(st, 1, v->name, sizeof(v->name));
    store_column_copy(st, 2, v->project, sizeof(v->project));
    store_column_copy(st, 3, v->flavor_id, sizeof(v->flavor_id));
}

int
metrics_store_host_vms(Store *s, const char *host, MetricsVmLabels **ret, size_t *ret_n,
                       NbError **err)
{
    STORE_READING(s);
    *ret = NULL;
    *ret_n = 0;
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    /* vms_by_host finds them; the ORDER BY sorts a host's few rows. */
    if (store_prepare(s, "SELECT id, name, project, flavor_id FROM vms WHERE host = ?1 ORDER BY id",
                      &st, err) < 0)
        return -1;
    sqlite3_bind_text(st, 1, host, -1, SQLITE_STATIC);
    return store_collect(s, st, sizeof(MetricsVmLabels), metrics_vm_labels_from_row, NULL,
                         (void **)ret, ret_n, err);
}
