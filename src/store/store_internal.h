#pragma once

#include <pthread.h>
#include <sqlite3.h>

#include "../util/strutil.h"
#include "store.h"
#include "store_sql.h"

/* A connection's prepared statements, reused across calls: keyed by the SQL text. */
typedef struct StoreStmtSlot {
    sqlite3_stmt *st;
    bool in_use; /* lent out by store_prepare, not yet given back by _cleanup_stmt_ */
} StoreStmtSlot;

/*
 * A Store is the writer connection: every write goes through it, behind its mutex. It owns a
 * pool of read-only connections (WAL readers), each itself a Store with its own mutex and
 * statement cache (readers[i]->parent is the writer), so a read never waits behind a write.
 */
#define STORE_DEFAULT_READERS 4

struct Store {
    sqlite3 *db;
    pthread_mutex_t lock;
    StoreStmtSlot *stmts; /* open addressing, cap a power of two */
    size_t stmts_cap, stmts_n;
    Store *parent;   /* a reader: the writer it reads for; NULL for the writer */
    Store **readers; /* the writer's read-only connections */
    unsigned n_readers;
    unsigned next_reader; /* round robin when every reader is busy */
    /* The connection the calling thread holds (restored on unlock, so a nested lock of another
     * store, as in tests, is harmless). */
    Store *saved_tls;
    /* Bumped, with the lock held, by every write that changes what a host claims or offers
     * (store_placement_changed_locked); in memory only: readers compare it with the one their
     * cached view of the hosts was built at. */
    uint64_t placement_gen;
    /* The daemon's own host (host_store_ensure_local), which cannot be deleted; "" until set. */
    char local_host[NB_NAME_MAX + 1];
    /* Monotonic ns, with the lock held, for store_stats: when the open write transaction began
     * and when store_read_lock lent this connection out; 0: none. */
    uint64_t tx_since_ns;
    uint64_t read_since_ns;
};

/* Which connection the calling thread holds: _cleanup_stmt_ gives statements back to its cache. */
extern __thread Store *store_tls_conn;

static inline Store *
store_lock_conn(Store *c)
{
    pthread_mutex_lock(&c->lock);
    c->saved_tls = store_tls_conn;
    store_tls_conn = c;
    return c;
}

/* Counts a read that took the connection at c->read_since_ns (store_stats). */
void store_read_done(Store *c);

/* Unlocks the connection locked for the scope of the calling block. */
static inline void
store_unlockp(Store **s)
{
    if (*s) {
        if ((*s)->read_since_ns)
            store_read_done(*s);
        store_tls_conn = (*s)->saved_tls;
        pthread_mutex_unlock(&(*s)->lock);
    }
}
/* Locks the writer for the scope of the calling block. */
#define STORE_LOCKED(s)                                                                            \
    __attribute__((cleanup(store_unlockp), unused)) Store *_store_guard = store_lock_conn(s)

/* Locks a read-only connection (the writer when there are none) for the calling block. */
Store *store_read_lock(Store *s);
/* For a function that only reads: from here on `s` is a locked reader connection. Use only in
 * functions that write nothing and read no writer-only field (placement_gen, local_host). */
#define STORE_READING(s)                                                                           \
    __attribute__((cleanup(store_unlockp), unused)) Store *_store_guard = store_read_lock(s);      \
    (s) = _store_guard

/* Gives a statement from store_prepare back (reset, bindings cleared) or finalizes one that is
 * not cached. */
void store_stmt_release(sqlite3_stmt **st);
#define _cleanup_stmt_ __attribute__((cleanup(store_stmt_release)))

/* With the lock held, after a committed write that changes host claims or capacity. */
static inline void
store_placement_changed_locked(Store *s)
{
    s->placement_gen++;
}

/* The connection's cached statement for sql (prepared on first use), to be given back by
 * _cleanup_stmt_ before the lock is released; a statement already lent out gets a fresh copy.
 * On failure fills err with NB_ERR_INTERNAL. */
int store_prepare(Store *s, const char *sql, sqlite3_stmt **ret, NbError **err);
int store_exec(Store *s, const char *sql, NbError **err);
int store_db_error(Store *s, const char *what, NbError **err);
/* Transactions: call with the lock held. */
int store_begin(Store *s, NbError **err);
int store_commit(Store *s, NbError **err);
void store_rollback(Store *s);
/* Binds text, NULL for an empty string. */
int store_bind_text(sqlite3_stmt *st, int idx, const char *v);
/* Copies column text into a fixed buffer ("" for NULL). */
void store_column_copy(sqlite3_stmt *st, int col, char *buf, size_t len);
/* Column text duplicated, NULL for NULL. */
char *store_column_strdup(sqlite3_stmt *st, int col);
/* The first column of every row sql gives with ?1 bound to arg, as a NULL-terminated array of
 * strings (store_strv_free). The caller holds the store (reading or locked). what names the
 * query in an error. */
/* A ports row (PORT_COLUMNS) into a Port: store_collect's row reader for every port query. */
void port_store_from_row(sqlite3_stmt *st, void *elem);
int store_strv_query(Store *s, const char *sql, const char *arg, const char *what, char ***ret,
                     NbError **err);

/* Fills one element from the current row. */
typedef void (*StoreRowFn)(sqlite3_stmt *st, void *elem);
/* Steps st to the end, collecting each row into a growing array of elem_size elements.
 * clear_elem (may be NULL) releases what row_fn allocated, on failure. */
int store_collect(Store *s, sqlite3_stmt *st, size_t elem_size, StoreRowFn row_fn,
                  void (*clear_elem)(void *elem), void **ret, size_t *ret_n, NbError **err);
/* Looks a resource up by id (sql_by_id), else by name (sql_by_name): each binds ?1 to the key
 * and, if it has a second parameter, ?2 to the project scope (NULL: every project). Two indexed
 * queries rather than one `id = ?1 OR name = ?1`, which scans. A miss, or a row of another
 * project, fills err with not_found_code ("<what> '<key>' not found"): the two cannot be told
 * apart. */
int store_get_by_id_or_name(Store *s, const char *sql_by_id, const char *sql_by_name,
                            const char *key, const char *scope, StoreRowFn row_fn, void *ret,
                            const char *not_found_code, const char *what, NbError **err);
/* Page markers: "<key>~<id>", the sort key of the last row of a page. Both parts are kept to
 * letters, digits and key_chars (the id: '-'), all safe in a URL query, and '~' is in neither.
 * store_marker_parse fills key and id (NUL-terminated, at most key_len/id_len with the NUL) or
 * fails with INVALID_MARKER. */
int store_marker_parse(const char *marker, const char *key_chars, char *key, size_t key_len,
                       char *id, size_t id_len, NbError **err);
void store_marker_make(char out[STORE_MARKER_MAX], const char *key, const char *id);
/* The number of rows a page holds: limit, or STORE_PAGE_DEFAULT for 0, at most STORE_PAGE_MAX. */
unsigned store_page_limit(unsigned limit);

/* host_store_set_facts within the caller's transaction: 0, 1 when there is no such host (err
 * untouched), -1 on error. *ret_changed: whether the placement generation must be bumped once
 * it commits. */
int host_set_facts_locked(Store *s, const char *id, HostConn conn, const HostFacts *facts,
                          const char *error, bool *ret_changed, NbError **err);
/* Rolls vm_events up into vm_usage_daily up to the UTC midnight at or before upto (epoch
 * seconds), within the caller's transaction (usage_store.c). */
int usage_rollup_locked(Store *s, double upto, NbError **err);
/* Quota (project_store.c), with the store lock held: refuses when adding `add` to what the
 * project uses would pass one of its limits. */
int project_quota_check_locked(Store *s, const char *project, const int64_t add[_QUOTA_MAX],
                               NbError **err);
/* Networks and ports (network_store.c, port_store.c), with the writer's lock held. */
/* By id only, one the scope may use (its own or shared; NULL: any). NETWORK_NOT_FOUND. */
int network_get_one_by_id_locked(Store *s, const char *scope, const char *id, Network *ret,
                                 NbError **err);
/* Inserts p (vm_id, network_id, slot, mac, ip 0: allocate) for a VM of project, within the
 * caller's transaction: fills id, project, ip, created_at. The network must be the project's or
 * shared. NETWORK_NOT_FOUND, TOO_MANY_NICS (slot), IP_OUTSIDE_NETWORK, IP_IN_USE, NETWORK_FULL,
 * MAC_TAKEN. Quotas are the caller's. */
int port_insert_locked(Store *s, const char *project, Port *p, NbError **err);
/* A VM's delete (task_store_finish_delete), in its transaction: the VM's volumes become
 * available, without VM or target (Cinder's semantics: the data stays), when the VM is held by
 * task_id (vm_store.c). */
int vm_volumes_detach_locked(Store *s, const char *vm_id, const char *task_id, NbError **err);
/* Volume snapshots (volume_snapshot_store.c), within the caller's transaction: id is ready
 * (SNAPSHOT_NOT_FOUND, SNAPSHOT_BUSY); v has no snapshot (VOLUME_HAS_SNAPSHOTS); no snapshot of
 * v is being made (VOLUME_BUSY). */
int volume_snapshot_check_ready_locked(Store *s, const char *id, NbError **err);
int volume_snapshot_none_locked(Store *s, const Volume *v, NbError **err);
int volume_snapshot_copying_locked(Store *s, const Volume *v, NbError **err);
/* Inserts the task's row, within the caller's transaction; project NULL: its target VM's. */
int task_insert_locked(Store *s, const Task *t, const char *project, NbError **err);
/* Makes task hold its target VM, within the caller's transaction, when no task holds it
 * (VM_BUSY otherwise), without changing the VM's desired power or state. */
int vm_task_hold_locked(Store *s, const Task *task, NbError **err);
