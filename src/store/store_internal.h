#pragma once

#include <pthread.h>
#include <sqlite3.h>

#include "../util/strutil.h"
#include "store.h"

struct Store {
    sqlite3 *db;
    pthread_mutex_t lock;
    /* Bumped, with the lock held, by every write that changes what a host claims or offers
     * (store_placement_changed_locked); in memory only: readers compare it with the one their
     * cached view of the hosts was built at. */
    uint64_t placement_gen;
    /* The daemon's own host (host_store_ensure_local), which cannot be deleted; "" until set. */
    char local_host[NB_NAME_MAX + 1];
};

/* Locks the store for the scope of the calling block. */
static inline void
store_unlockp(Store **s)
{
    if (*s)
        pthread_mutex_unlock(&(*s)->lock);
}
#define STORE_LOCKED(s)                                                                            \
    __attribute__((cleanup(store_unlockp), unused)) Store *_store_guard =                          \
        (pthread_mutex_lock(&(s)->lock), (s))

static inline void
sqlite3_finalizep(sqlite3_stmt **st)
{
    if (*st)
        sqlite3_finalize(*st);
}
#define _cleanup_stmt_ __attribute__((cleanup(sqlite3_finalizep)))

/* With the lock held, after a committed write that changes host claims or capacity. */
static inline void
store_placement_changed_locked(Store *s)
{
    s->placement_gen++;
}

/* Prepares sql; on failure fills err with NB_ERR_INTERNAL. */
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

/* Fills one element from the current row. */
typedef void (*StoreRowFn)(sqlite3_stmt *st, void *elem);
/* Steps st to the end, collecting each row into a growing array of elem_size elements.
 * clear_elem (may be NULL) releases what row_fn allocated, on failure. */
int store_collect(Store *s, sqlite3_stmt *st, size_t elem_size, StoreRowFn row_fn,
                  void (*clear_elem)(void *elem), void **ret, size_t *ret_n, NbError **err);
/* Looks a resource up by id, else by name: sql binds ?1 to the key and, if it has a second
 * parameter, ?2 to the project scope (NULL: every project). A miss, or a row of another project,
 * fills err with not_found_code ("<what> '<key>' not found"): the two cannot be told apart. */
int store_get_by_id_or_name(Store *s, const char *sql, const char *key, const char *scope,
                            StoreRowFn row_fn, void *ret, const char *not_found_code,
                            const char *what, NbError **err);
/* Quota (project_store.c), with the store lock held: refuses when adding `add` to what the
 * project uses would pass one of its limits. */
int project_quota_check_locked(Store *s, const char *project, const int64_t add[_QUOTA_MAX],
                               NbError **err);
