/*
 * Usage metering from vm_events, the state history the triggers write (store.c, migration 2).
 * For each VM, the events are walked in order and each interval is clipped to [from, to):
 * vCPU- and RAM-hours accrue while the VM is running, disk GiB-hours while it exists.
 */
#include "store_internal.h"

#include <stdlib.h>
#include <string.h>

static void
usage_close_interval(VmUsage *u, const char *state, double t0, double t1, double from, double to,
                     int64_t vcpus, int64_t ram_mib, int64_t disk_gib)
{
    double a = t0 > from ? t0 : from, b = t1 < to ? t1 : to;
    if (b <= a || streq(state, "deleted"))
        return;
    double hours = (b - a) / 3600.0;
    u->disk_gib_hours += hours * (double)disk_gib;
    if (streq(state, "running")) {
        u->running_hours += hours;
        u->vcpu_hours += hours * (double)vcpus;
        u->ram_gib_hours += hours * (double)ram_mib / 1024.0;
    }
}

int
usage_store_compute(Store *s, const char *project, double from, double to, double now,
                    VmUsage **ret, size_t *ret_n, NbError **err)
{
    STORE_LOCKED(s);
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (store_prepare(s,
                      "SELECT vm_id, name, state, vcpus, ram_mib, disk_gib, at FROM vm_events "
                      "WHERE project = ?1 ORDER BY vm_id, id",
                      &st, err) < 0)
        return -1;
    sqlite3_bind_text(st, 1, project, -1, SQLITE_STATIC);

    VmUsage *list = NULL;
    size_t n = 0;
    VmUsage *cur = NULL;
    char state[32] = "";
    double t_prev = 0;
    int64_t vcpus = 0, ram = 0, disk = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *vm_id = (const char *)sqlite3_column_text(st, 0);
        double t;
        if (nb_timestamp_parse((const char *)sqlite3_column_text(st, 6), &t) < 0)
            continue;
        if (!cur || !streq(cur->vm_id, vm_id)) {
            if (cur)
                usage_close_interval(cur, state, t_prev, now, from, to, vcpus, ram, disk);
            VmUsage *grown = realloc(list, (n + 1) * sizeof(*list));
            if (!grown) {
                free(list);
                return nb_error_set(err, NB_ERR_INTERNAL, "out of memory");
            }
            list = grown;
            cur = &list[n++];
            memset(cur, 0, sizeof(*cur));
            snprintf(cur->vm_id, sizeof(cur->vm_id), "%s", vm_id);
        } else {
            usage_close_interval(cur, state, t_prev, t, from, to, vcpus, ram, disk);
        }
        store_column_copy(st, 1, cur->name, sizeof(cur->name));
        store_column_copy(st, 2, state, sizeof(state));
        vcpus = sqlite3_column_int64(st, 3);
        ram = sqlite3_column_int64(st, 4);
        disk = sqlite3_column_int64(st, 5);
        t_prev = t;
    }
    if (cur)
        usage_close_interval(cur, state, t_prev, now, from, to, vcpus, ram, disk);
    if (rc != SQLITE_DONE) {
        free(list);
        return store_db_error(s, "usage", err);
    }
    /* VMs that did not exist in the window add nothing: leave them out. */
    size_t kept = 0;
    for (size_t i = 0; i < n; i++)
        if (list[i].disk_gib_hours > 0 || list[i].vcpu_hours > 0)
            list[kept++] = list[i];
    *ret = list;
    *ret_n = kept;
    return 0;
}
