/*
 * Usage metering from vm_events, the state history the triggers write (store.c, migration 2).
 * For each VM, the events are walked in order and each interval is clipped to [from, to):
 * vCPU- and RAM-hours accrue while the VM is running, disk GiB-hours while it exists.
 *
 * The history before usage_rollup.upto (a UTC midnight) is rolled up (migration 4): per VM and
 * UTC day in vm_usage_daily, with the state each VM was in at upto in vm_usage_carry. Usage is
 * then the days of the window from vm_usage_daily plus the walk of the events from upto on,
 * starting from the carried state: old events can be pruned and usage never reads the whole
 * history. A rolled-up day that the window covers only in part counts pro rata.
 */
#include "store_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define USAGE_DAY 86400.0

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

/* STORE_SQL_USAGE_RAW for every project: the roll-up. */
#define USAGE_SQL_RAW_ALL                                                                          \
    "SELECT vm_id, name, state, vcpus, ram_mib, disk_gib, at, 0 AS seq, project "                  \
    "FROM vm_usage_carry "                                                                         \
    "UNION ALL SELECT vm_id, name, state, vcpus, ram_mib, disk_gib, at, id, project "              \
    "FROM vm_events WHERE at >= ?2 AND at < ?3 ORDER BY vm_id, seq"

/* One VM's walk over the rows of STORE_SQL_USAGE_RAW. */
typedef struct UsageWalk {
    char vm_id[NB_UUID_STRLEN];
    char project[NB_UUID_STRLEN];
    char name[NB_NAME_MAX + 1];
    char state[32];
    double t_prev;
    int64_t vcpus, ram, disk;
} UsageWalk;

/* Calls interval(walk, t0, t1, arg) for each interval of constant state, per VM, the last one
 * ending at end; vm_done(walk, arg) after each VM's last interval. */
typedef int (*UsageIntervalFn)(const UsageWalk *w, double t0, double t1, void *arg);
typedef int (*UsageVmDoneFn)(const UsageWalk *w, void *arg);

static int
usage_walk(Store *s, sqlite3_stmt *st, double end, UsageIntervalFn interval, UsageVmDoneFn vm_done,
           void *arg, NbError **err)
{
    UsageWalk w = {0};
    bool have = false;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *vm_id = (const char *)sqlite3_column_text(st, 0);
        double t;
        if (nb_timestamp_parse((const char *)sqlite3_column_text(st, 6), &t) < 0)
            continue;
        if (!have || !streq(w.vm_id, vm_id)) {
            if (have && (interval(&w, w.t_prev, end, arg) < 0 || (vm_done && vm_done(&w, arg) < 0)))
                return -1;
            memset(&w, 0, sizeof(w));
            snprintf(w.vm_id, sizeof(w.vm_id), "%s", vm_id);
            have = true;
        } else if (interval(&w, w.t_prev, t, arg) < 0) {
            return -1;
        }
        store_column_copy(st, 1, w.name, sizeof(w.name));
        store_column_copy(st, 2, w.state, sizeof(w.state));
        store_column_copy(st, 8, w.project, sizeof(w.project));
        w.vcpus = sqlite3_column_int64(st, 3);
        w.ram = sqlite3_column_int64(st, 4);
        w.disk = sqlite3_column_int64(st, 5);
        w.t_prev = t;
    }
    if (rc != SQLITE_DONE)
        return store_db_error(s, "usage", err);
    if (have && (interval(&w, w.t_prev, end, arg) < 0 || (vm_done && vm_done(&w, arg) < 0)))
        return -1;
    return 0;
}

/* The roll-up's upto ("" when there was none yet) into buf, and as epoch seconds. */
static int
usage_rollup_upto(Store *s, char buf[NB_TIMESTAMP_LEN], double *ret, NbError **err)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (store_prepare(s, "SELECT upto FROM usage_rollup WHERE id = 1", &st, err) < 0)
        return -1;
    int rc = sqlite3_step(st);
    buf[0] = '\0';
    *ret = -INFINITY;
    if (rc == SQLITE_ROW) {
        store_column_copy(st, 0, buf, NB_TIMESTAMP_LEN);
        if (nb_timestamp_parse(buf, ret) < 0)
            return nb_error_set(err, NB_ERR_INTERNAL, "store: bad usage roll-up time '%s'", buf);
    } else if (rc != SQLITE_DONE) {
        return store_db_error(s, "usage roll-up", err);
    }
    return 0;
}

/* ---- computing ---- */

typedef struct UsageList {
    VmUsage *v;
    size_t n, cap;
    double from, to;
} UsageList;

static VmUsage *
usage_list_add(UsageList *l, const char *vm_id, const char *name)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        VmUsage *grown = realloc(l->v, cap * sizeof(*grown));
        if (!grown)
            return NULL;
        l->v = grown;
        l->cap = cap;
    }
    VmUsage *u = &l->v[l->n++];
    memset(u, 0, sizeof(*u));
    snprintf(u->vm_id, sizeof(u->vm_id), "%s", vm_id);
    snprintf(u->name, sizeof(u->name), "%s", name);
    return u;
}

static int
usage_raw_interval(const UsageWalk *w, double t0, double t1, void *arg)
{
    UsageList *l = arg;
    if (l->n == 0 || !streq(l->v[l->n - 1].vm_id, w->vm_id)) {
        if (!usage_list_add(l, w->vm_id, w->name))
            return -1;
    }
    VmUsage *u = &l->v[l->n - 1];
    snprintf(u->name, sizeof(u->name), "%s", w->name);
    usage_close_interval(u, w->state, t0, t1, l->from, l->to, w->vcpus, w->ram, w->disk);
    return 0;
}

/* The rolled-up days of the window, by VM: each day weighs the part of it the window covers. */
static int
usage_daily(Store *s, const char *project, double from, double to, UsageList *l, NbError **err)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (store_prepare(s, STORE_SQL_USAGE_DAYS, &st, err) < 0)
        return -1;
    sqlite3_bind_text(st, 1, project, -1, SQLITE_STATIC);
    sqlite3_bind_double(st, 2, from);
    sqlite3_bind_double(st, 3, to);
    sqlite3_bind_double(st, 4, floor(from / USAGE_DAY) * USAGE_DAY);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        VmUsage *u = usage_list_add(l, (const char *)sqlite3_column_text(st, 0),
                                    (const char *)sqlite3_column_text(st, 1));
        if (!u)
            return nb_error_set(err, NB_ERR_INTERNAL, "out of memory");
        u->vcpu_hours = sqlite3_column_double(st, 2);
        u->ram_gib_hours = sqlite3_column_double(st, 3);
        u->disk_gib_hours = sqlite3_column_double(st, 4);
        u->running_hours = sqlite3_column_double(st, 5);
    }
    if (rc != SQLITE_DONE)
        return store_db_error(s, "usage days", err);
    return 0;
}

/* Merges two lists sorted by vm_id, adding up a VM in both (the raw one has the latest name). */
static int
usage_merge(UsageList *days, UsageList *raw, VmUsage **ret, size_t *ret_n, NbError **err)
{
    size_t cap = days->n + raw->n;
    VmUsage *out = malloc((cap ? cap : 1) * sizeof(*out));
    if (!out)
        return nb_error_set(err, NB_ERR_INTERNAL, "out of memory");
    size_t i = 0, j = 0, n = 0;
    while (i < days->n || j < raw->n) {
        int c = i == days->n ? 1 : j == raw->n ? -1 : strcmp(days->v[i].vm_id, raw->v[j].vm_id);
        if (c < 0) {
            out[n] = days->v[i++];
        } else if (c > 0) {
            out[n] = raw->v[j++];
        } else {
            out[n] = raw->v[j++];
            out[n].vcpu_hours += days->v[i].vcpu_hours;
            out[n].ram_gib_hours += days->v[i].ram_gib_hours;
            out[n].disk_gib_hours += days->v[i].disk_gib_hours;
            out[n].running_hours += days->v[i].running_hours;
            i++;
        }
        /* VMs that did not exist in the window add nothing: leave them out. */
        if (out[n].disk_gib_hours > 0 || out[n].vcpu_hours > 0)
            n++;
    }
    *ret = out;
    *ret_n = n;
    return 0;
}

int
usage_store_compute(Store *s, const char *project, double from, double to, double now,
                    VmUsage **ret, size_t *ret_n, NbError **err)
{
    STORE_READING(s);
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    UsageList days = {.from = from, .to = to}, raw = {.from = from, .to = to};
    char upto[NB_TIMESTAMP_LEN];
    double upto_epoch;
    /* One snapshot: a roll-up committing between the reads would count its days twice. */
    if (store_exec(s, "BEGIN", err) < 0)
        return -1;
    int rc = -1;
    if (usage_rollup_upto(s, upto, &upto_epoch, err) < 0 ||
        (upto[0] && from < upto_epoch && usage_daily(s, project, from, to, &days, err) < 0) ||
        store_prepare(s, STORE_SQL_USAGE_RAW, &st, err) < 0)
        goto out;
    sqlite3_bind_text(st, 1, project, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, upto, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, "\x7f", -1, SQLITE_STATIC);
    if (usage_walk(s, st, now, usage_raw_interval, NULL, &raw, err) < 0) {
        if (!*err)
            nb_error_set(err, NB_ERR_INTERNAL, "out of memory");
        goto out;
    }
    rc = usage_merge(&days, &raw, ret, ret_n, err);
out:
    sqlite3_reset(st);
    store_exec(s, "COMMIT", NULL);
    free(days.v);
    free(raw.v);
    return rc;
}

/* ---- rolling up ---- */

/* One VM's days while it is walked. */
typedef struct UsageRollup {
    Store *s;
    sqlite3_stmt *add;
    UsageWalk *carry; /* each VM's state at upto, written once the walk is over */
    size_t n_carry, cap_carry;
    VmUsage *days; /* [i]: the day first_day + i */
    size_t n_days;
    double first_day;
    NbError **err;
} UsageRollup;

static int
usage_rollup_interval(const UsageWalk *w, double t0, double t1, void *arg)
{
    UsageRollup *r = arg;
    for (double d = floor(t0 / USAGE_DAY) * USAGE_DAY; d < t1; d += USAGE_DAY) {
        size_t i = (size_t)((d - r->first_day) / USAGE_DAY);
        if (d < r->first_day || i >= r->n_days)
            continue;
        usage_close_interval(&r->days[i], w->state, t0, t1, d, d + USAGE_DAY, w->vcpus, w->ram,
                             w->disk);
    }
    return 0;
}

static int
usage_rollup_vm_done(const UsageWalk *w, void *arg)
{
    UsageRollup *r = arg;
    for (size_t i = 0; i < r->n_days; i++) {
        VmUsage *u = &r->days[i];
        if (u->disk_gib_hours > 0 || u->vcpu_hours > 0) {
            sqlite3_bind_text(r->add, 1, w->vm_id, -1, SQLITE_STATIC);
            sqlite3_bind_text(r->add, 2, w->project, -1, SQLITE_STATIC);
            sqlite3_bind_text(r->add, 3, w->name, -1, SQLITE_STATIC);
            sqlite3_bind_int64(r->add, 4, (sqlite3_int64)(r->first_day + (double)i * USAGE_DAY));
            sqlite3_bind_double(r->add, 5, u->vcpu_hours);
            sqlite3_bind_double(r->add, 6, u->ram_gib_hours);
            sqlite3_bind_double(r->add, 7, u->disk_gib_hours);
            sqlite3_bind_double(r->add, 8, u->running_hours);
            int rc = sqlite3_step(r->add);
            sqlite3_reset(r->add);
            if (rc != SQLITE_DONE)
                return store_db_error(r->s, "roll usage up", r->err);
        }
        memset(u, 0, sizeof(*u));
    }
    /* The walk reads vm_usage_carry: it is rewritten once the walk is over. */
    if (r->n_carry == r->cap_carry) {
        size_t cap = r->cap_carry ? r->cap_carry * 2 : 64;
        UsageWalk *grown = realloc(r->carry, cap * sizeof(*grown));
        if (!grown)
            return nb_error_set(r->err, NB_ERR_INTERNAL, "out of memory");
        r->carry = grown;
        r->cap_carry = cap;
    }
    r->carry[r->n_carry++] = *w;
    return 0;
}

/* Each VM's state at upto carries over; a deleted VM has nothing more to carry. */
static int
usage_carry_write(Store *s, const UsageRollup *r, const char *upto_text, NbError **err)
{
    _cleanup_stmt_ sqlite3_stmt *carry = NULL, *uncarry = NULL;
    if (store_prepare(s,
                      "INSERT OR REPLACE INTO vm_usage_carry (vm_id, project, name, state, vcpus, "
                      "ram_mib, disk_gib, at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                      &carry, err) < 0 ||
        store_prepare(s, "DELETE FROM vm_usage_carry WHERE vm_id = ?1", &uncarry, err) < 0)
        return -1;
    for (size_t i = 0; i < r->n_carry; i++) {
        const UsageWalk *w = &r->carry[i];
        sqlite3_stmt *st = streq(w->state, "deleted") ? uncarry : carry;
        sqlite3_bind_text(st, 1, w->vm_id, -1, SQLITE_STATIC);
        if (st == carry) {
            sqlite3_bind_text(st, 2, w->project, -1, SQLITE_STATIC);
            sqlite3_bind_text(st, 3, w->name, -1, SQLITE_STATIC);
            sqlite3_bind_text(st, 4, w->state, -1, SQLITE_STATIC);
            sqlite3_bind_int64(st, 5, w->vcpus);
            sqlite3_bind_int64(st, 6, w->ram);
            sqlite3_bind_int64(st, 7, w->disk);
            sqlite3_bind_text(st, 8, upto_text, -1, SQLITE_STATIC);
        }
        int rc = sqlite3_step(st);
        sqlite3_reset(st);
        if (rc != SQLITE_DONE)
            return store_db_error(s, "carry usage", err);
    }
    return 0;
}

int
usage_rollup_locked(Store *s, double upto, NbError **err)
{
    char prev[NB_TIMESTAMP_LEN], upto_text[NB_TIMESTAMP_LEN];
    double prev_epoch;
    upto = floor(upto / USAGE_DAY) * USAGE_DAY;
    if (usage_rollup_upto(s, prev, &prev_epoch, err) < 0)
        return -1;
    if (upto <= prev_epoch)
        return 0;
    nb_timestamp_format(upto, upto_text);
    _cleanup_stmt_ sqlite3_stmt *first = NULL, *walk = NULL, *add = NULL, *mark = NULL;
    double first_day = prev_epoch;
    if (!prev[0]) {
        /* The first roll-up starts at the oldest event. */
        if (store_prepare(s, "SELECT min(at) FROM vm_events", &first, err) < 0)
            return -1;
        if (sqlite3_step(first) != SQLITE_ROW)
            return store_db_error(s, "usage roll-up", err);
        const char *oldest = (const char *)sqlite3_column_text(first, 0);
        if (!oldest || nb_timestamp_parse(oldest, &first_day) < 0)
            first_day = upto;
        first_day = floor(first_day / USAGE_DAY) * USAGE_DAY;
    }
    if (store_prepare(s, USAGE_SQL_RAW_ALL, &walk, err) < 0 ||
        store_prepare(
            s,
            "INSERT INTO vm_usage_daily (vm_id, project, name, day, vcpu_hours, "
            "ram_gib_hours, disk_gib_hours, running_hours) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (vm_id, day) DO UPDATE SET name = excluded.name, "
            "vcpu_hours = vcpu_hours + excluded.vcpu_hours, "
            "ram_gib_hours = ram_gib_hours + excluded.ram_gib_hours, "
            "disk_gib_hours = disk_gib_hours + excluded.disk_gib_hours, "
            "running_hours = running_hours + excluded.running_hours",
            &add, err) < 0 ||
        store_prepare(s,
                      "INSERT INTO usage_rollup (id, upto) VALUES (1, ?1) "
                      "ON CONFLICT (id) DO UPDATE SET upto = excluded.upto",
                      &mark, err) < 0)
        return -1;
    UsageRollup r = {
        .s = s,
        .add = add,
        .n_days = upto > first_day ? (size_t)((upto - first_day) / USAGE_DAY) : 0,
        .first_day = first_day,
        .err = err,
    };
    if (r.n_days == 0)
        r.n_days = 1;
    r.days = calloc(r.n_days, sizeof(*r.days));
    if (!r.days)
        return nb_error_set(err, NB_ERR_INTERNAL, "out of memory");
    sqlite3_bind_text(walk, 2, prev, -1, SQLITE_STATIC);
    sqlite3_bind_text(walk, 3, upto_text, -1, SQLITE_STATIC);
    int rc = usage_walk(s, walk, upto, usage_rollup_interval, usage_rollup_vm_done, &r, err);
    sqlite3_reset(walk);
    if (rc == 0)
        rc = usage_carry_write(s, &r, upto_text, err);
    free(r.days);
    free(r.carry);
    if (rc < 0)
        return -1;
    sqlite3_bind_text(mark, 1, upto_text, -1, SQLITE_STATIC);
    if (sqlite3_step(mark) != SQLITE_DONE)
        return store_db_error(s, "usage roll-up", err);
    return 0;
}
