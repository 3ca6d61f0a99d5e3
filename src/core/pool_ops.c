/*
 * Storage pools: create and delete for the API, and the per-host check that keeps each host's
 * libvirt pools and secrets what the store says (on connect and in every housekeeping round).
 *
 * Making and removing a pool on a host happen under that host's lock stripe, after reading the
 * pool's row again: a check running while the pool is deleted never makes it anew. The delete
 * drops the row first, so whatever a crash or a host that is down leaves on a host is a pool the
 * store does not know, which the check removes; it removes only pools whose libvirt UUID says
 * they are this site's (pool_ops_libvirt_uuid), so two controllers sharing a libvirtd (the
 * tests' daemons do) never remove each other's.
 */
#include "pool_ops.h"

#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../hv/pool_xml.h"
#include "../util/log.h"
#include "../util/strutil.h"

#define POOL_LOCK_STRIPES 64
#define POOL_NAME_PREFIX "nimbus-pool-"
#define POOL_ROOTS_MAX 16

static pthread_mutex_t pool_locks[POOL_LOCK_STRIPES] = {[0 ... POOL_LOCK_STRIPES - 1] =
                                                            PTHREAD_MUTEX_INITIALIZER};

static pthread_mutex_t *
pool_lock_for(const char *host)
{
    uint64_t h = 1469598103934665603u;
    for (const char *c = host; *c; c++)
        h = (h ^ (unsigned char)*c) * 1099511628211u;
    return &pool_locks[h % POOL_LOCK_STRIPES];
}

bool
pool_ops_belongs_on(const Pool *p, const char *host)
{
    return pool_type_is_shared(p->type) || !p->host[0] || streq(p->host, host);
}

void
pool_ops_libvirt_uuid(const char *site, const char *pool_id, char out[NB_UUID_STRLEN])
{
    unsigned char h[crypto_hash_sha256_BYTES];
    _cleanup_free_ char *in = str_printf("%s/%s", site, pool_id);
    crypto_hash_sha256(h, (const unsigned char *)(in ? in : pool_id), strlen(in ? in : pool_id));
    h[6] = (unsigned char)((h[6] & 0x0f) | 0x80);
    h[8] = (unsigned char)((h[8] & 0x3f) | 0x80);
    snprintf(out, NB_UUID_STRLEN,
             "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", h[0], h[1],
             h[2], h[3], h[4], h[5], h[6], h[7], h[8], h[9], h[10], h[11], h[12], h[13], h[14],
             h[15]);
}

/* This site's id: the default pool's (made once per store, never deleted). */
static int
pool_site(Core *core, char out[NB_UUID_STRLEN], NbError **err)
{
    Pool d;
    if (pool_store_get_default(core->store, &d, err) < 0)
        return -1;
    explicit_bzero(d.secret, sizeof(d.secret));
    memcpy(out, d.id, NB_UUID_STRLEN);
    return 0;
}

static bool
pool_has_secret(const Pool *p)
{
    return p->auth_user[0] && p->secret[0] &&
           (p->type == POOL_TYPE_RBD || p->type == POOL_TYPE_ISCSI);
}

/* The value libvirt keeps: a Ceph key's bytes (it is given base64), a CHAP password as is. */
static int
pool_secret_value(const Pool *p, unsigned char *buf, size_t size, size_t *ret_len, NbError **err)
{
    if (p->type == POOL_TYPE_RBD) {
        if (sodium_base642bin(buf, size, p->secret, strlen(p->secret), NULL, ret_len, NULL,
                              sodium_base64_VARIANT_ORIGINAL) < 0)
            return nb_error_set(err, NB_ERR_POOL_INVALID_KEY, "pool '%s': the key is not base64",
                                p->name);
        return 0;
    }
    size_t n = strlen(p->secret);
    if (n > size)
        return nb_error_set(err, NB_ERR_POOL_INVALID_KEY, "pool '%s': the password is too long",
                            p->name);
    memcpy(buf, p->secret, n);
    *ret_len = n;
    return 0;
}

/* Makes the pool as the store has it on one host (the caller holds the host's lock), into st. */
static void
pool_make_on(Core *core, const Pool *p, const char *site, const char *host, HvConn *hv,
             PoolHostState *st)
{
    _cleanup_error_ NbError *e = NULL;
    HvPoolState hs = {.capacity = -1, .allocation = -1};
    if (p->is_default) {
        /* What the registry makes on every connect, from the settings (which win over the row
         * when an operator moved the pool between two starts). */
        if (hv_pool_ensure(hv, core->cfg.pool_name, core->cfg.pool_path, &e) == 0)
            hv_pool_state(hv, core->cfg.pool_name, &hs, &e);
    } else {
        if (pool_has_secret(p)) {
            unsigned char value[POOL_SECRET_MAX + 1];
            size_t len = 0;
            _cleanup_free_ char *xml = pool_xml_secret(p);
            if (!xml)
                nb_error_set(&e, NB_ERR_INTERNAL, "cannot write the secret's XML");
            else if (pool_secret_value(p, value, sizeof(value), &len, &e) == 0)
                hv_pool_secret_set(hv, p->id, xml, value, len, &e);
            explicit_bzero(value, sizeof(value));
        }
        _cleanup_free_ char *xml = e ? NULL : pool_xml_pool(p);
        char uuid[NB_UUID_STRLEN];
        pool_ops_libvirt_uuid(site, p->id, uuid);
        if (!e && !xml)
            nb_error_set(&e, NB_ERR_INTERNAL, "cannot write the pool's XML");
        if (!e)
            hv_pool_apply(hv, p->libvirt_name, xml, uuid,
                          p->type == POOL_TYPE_DIR || p->type == POOL_TYPE_NETFS, &hs, &e);
    }
    memset(st, 0, sizeof(*st));
    snprintf(st->host, sizeof(st->host), "%s", host);
    st->capacity = hs.capacity;
    st->allocation = hs.allocation;
    if (e) {
        snprintf(st->state, sizeof(st->state), "error");
        snprintf(st->error, sizeof(st->error), "%s", e->message);
        /* Logged by pool_record when the state changes: a pool that cannot start here (netfs
         * without an NFS client) is tried again every round, quietly. */
        log_debug("pool %s (%s) on host %s: %s", p->id, p->name, host, e->message);
    } else if (!hs.active) {
        snprintf(st->state, sizeof(st->state), "error");
        snprintf(st->error, sizeof(st->error), "the pool is defined but not active");
    } else {
        snprintf(st->state, sizeof(st->state), "active");
    }
}

/* Removes the pool's secret, then the pool, from a host (the caller holds its lock): secret
 * first, so that a crash in between leaves a pool of this site, which the check finds. */
static int
pool_unmake_on(const char *pool_id, const char *libvirt_name, HvConn *hv, NbError **err)
{
    char usage[128] = "";
    int r = hv_pool_secret_usage(hv, pool_id, usage, sizeof(usage), err);
    if (r < 0)
        return -1;
    /* Only the secret made for this pool: its usage names the pool. */
    if (r == 1 && streq(usage, libvirt_name) && hv_pool_secret_remove(hv, pool_id, err) < 0)
        return -1;
    return hv_pool_remove(hv, libvirt_name, err);
}

static const PoolHostState *
pool_state_of(const PoolHostState *states, size_t n, const char *host)
{
    for (size_t i = 0; i < n; i++)
        if (streq(states[i].host, host))
            return &states[i];
    return NULL;
}

static void
pool_record(Core *core, const Pool *p, const PoolHostState *st, const PoolHostState *was)
{
    if (was && streq(was->state, st->state) && streq(was->error, st->error) &&
        was->capacity == st->capacity && was->allocation == st->allocation)
        return;
    _cleanup_error_ NbError *e = NULL;
    if (pool_store_host_set(core->store, p->id, st, &e) < 0) {
        /* Not found: deleted meanwhile, and its hosts are being cleaned. */
        if (!streq(e->code, NB_ERR_POOL_NOT_FOUND))
            log_warn("pool %s: cannot record its state on host %s: %s", p->id, st->host,
                     e->message);
        return;
    }
    if (!was || !streq(was->state, st->state) || !streq(was->error, st->error))
        log_write(st->error[0] ? LOG_LEVEL_WARN : LOG_LEVEL_INFO, "pool %s (%s) on host %s: %s%s%s",
                  p->id, p->name, st->host, st->state, st->error[0] ? ": " : "", st->error);
}

/* ---- the API's operations ---- */

/* The pool-roots setting as a NULL-terminated array of its directories, pointing into buf. */
static void
pool_roots_split(const char *roots, char *buf, size_t size, const char *out[POOL_ROOTS_MAX + 1])
{
    size_t n = 0;
    snprintf(buf, size, "%s", roots ? roots : "");
    for (char *at = buf; *at && n < POOL_ROOTS_MAX;) {
        char *colon = strchr(at, ':');
        if (colon)
            *colon = '\0';
        if (*at)
            out[n++] = at;
        if (!colon)
            break;
        at = colon + 1;
    }
    out[n] = NULL;
}

/* Makes a new pool on every host that should have it, recording each host's state. */
static void
pool_make_everywhere(Core *core, const Pool *p, const char *site)
{
    Host *hosts = NULL;
    size_t n = 0;
    _cleanup_error_ NbError *e = NULL;
    if (host_store_list(core->store, &hosts, &n, &e) < 0)
        log_warn("pool %s: cannot list the hosts (the periodic check makes it): %s", p->id,
                 e->message);
    for (size_t i = 0; i < n; i++) {
        explicit_bzero(hosts[i].agent_secret, sizeof(hosts[i].agent_secret));
        if (!pool_ops_belongs_on(p, hosts[i].name))
            continue;
        PoolHostState st = {.capacity = -1, .allocation = -1};
        HvConn *hv = host_registry_conn(core, hosts[i].name);
        pthread_mutex_t *lock = pool_lock_for(hosts[i].name);
        pthread_mutex_lock(lock);
        if (hv) {
            pool_make_on(core, p, site, hosts[i].name, hv, &st);
        } else {
            snprintf(st.host, sizeof(st.host), "%s", hosts[i].name);
            snprintf(st.state, sizeof(st.state), "pending");
            snprintf(st.error, sizeof(st.error), "the host is not connected");
        }
        pool_record(core, p, &st, NULL);
        pthread_mutex_unlock(lock);
        hv_conn_free(hv);
    }
    free(hosts);
}

static int
pool_create_stored(Core *core, json_t *body, Pool *p, char site[NB_UUID_STRLEN], NbError **err)
{
    char roots_buf[4096];
    const char *roots[POOL_ROOTS_MAX + 1];
    pool_roots_split(core->cfg.pool_roots, roots_buf, sizeof(roots_buf), roots);
    if (pool_from_request(body, roots, p, err) < 0)
        return -1;
    if (p->host[0]) {
        Host h;
        if (host_store_get(core->store, p->host, &h, err) < 0)
            return -1;
        explicit_bzero(h.agent_secret, sizeof(h.agent_secret));
        /* The host's name, as pool_hosts and the registry say it (the request may use its id). */
        snprintf(p->host, sizeof(p->host), "%s", h.name);
    }
    if (pool_site(core, site, err) < 0)
        return -1;
    if (nb_uuid_generate(p->id) < 0)
        return nb_error_set(err, NB_ERR_INTERNAL, "no randomness for a UUID");
    pool_libvirt_name(p->id, p->libvirt_name);
    p->is_default = false;
    nb_timestamp_now(p->created_at);
    return pool_store_insert(core->store, p, err);
}

int
pool_ops_create(Core *core, json_t *body, Pool *ret, NbError **err)
{
    Pool p;
    char site[NB_UUID_STRLEN];
    memset(&p, 0, sizeof(p));
    if (pool_create_stored(core, body, &p, site, err) < 0) {
        explicit_bzero(p.secret, sizeof(p.secret));
        return -1;
    }
    log_info("pool %s (%s, %s) created", p.id, p.name, pool_type_to_string(p.type));
    pool_make_everywhere(core, &p, site);
    *ret = p;
    explicit_bzero(p.secret, sizeof(p.secret));
    return 0;
}

int
pool_ops_delete(Core *core, const char *id_or_name, NbError **err)
{
    Pool p;
    if (pool_store_get(core->store, id_or_name, &p, err) < 0)
        return -1;
    explicit_bzero(p.secret, sizeof(p.secret));
    PoolHostState *states = NULL;
    size_t n = 0;
    if (pool_store_hosts(core->store, p.id, &states, &n, err) < 0)
        return -1;
    /* POOL_IN_USE (volumes, the default pool) is decided here, before any host is touched. */
    if (pool_store_delete(core->store, p.id, err) < 0) {
        free(states);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        _cleanup_error_ NbError *e = NULL;
        HvConn *hv = host_registry_conn(core, states[i].host);
        pthread_mutex_t *lock = pool_lock_for(states[i].host);
        pthread_mutex_lock(lock);
        if (!hv || pool_unmake_on(p.id, p.libvirt_name, hv, &e) < 0)
            log_warn("pool %s: left on host %s until the periodic check: %s", p.id, states[i].host,
                     e ? e->message : "the host is not connected");
        pthread_mutex_unlock(lock);
        hv_conn_free(hv);
    }
    free(states);
    log_info("pool %s (%s) deleted", p.id, p.name);
    return 0;
}

int
pool_ops_ensure_default(Core *core, NbError **err)
{
    Pool p, got;
    memset(&p, 0, sizeof(p));
    if (nb_uuid_generate(p.id) < 0)
        return nb_error_set(err, NB_ERR_INTERNAL, "no randomness for a UUID");
    snprintf(p.name, sizeof(p.name), "default");
    p.type = POOL_TYPE_DIR;
    p.is_default = true;
    if (strlen(core->cfg.pool_name) > POOL_LIBVIRT_NAME_MAX ||
        strlen(core->cfg.pool_path) > POOL_PATH_MAX)
        return nb_error_set(err, NB_ERR_INVALID_REQUEST, "pool-name or pool-path is too long");
    snprintf(p.libvirt_name, sizeof(p.libvirt_name), "%s", core->cfg.pool_name);
    snprintf(p.path, sizeof(p.path), "%s", core->cfg.pool_path);
    nb_timestamp_now(p.created_at);
    if (pool_store_ensure_default(core->store, &p, &got, err) < 0)
        return -1;
    /* The settings win over the row: the operator may have moved the pool (pool-name, pool-path)
     * between two starts, and every host gets the pool the registry makes from them. */
    if (!streq(got.libvirt_name, p.libvirt_name) || !streq(got.path, p.path))
        log_warn("the default pool '%s' was stored as %s at %s; the daemon now uses %s at %s",
                 got.name, got.libvirt_name, got.path, p.libvirt_name, p.path);
    return 0;
}

/* ---- the host check ---- */

/* One pool on one host: made or looked at when it belongs there, else removed. */
static void
pool_check_one(Core *core, const char *site, const char *pool_id, const char *host, HvConn *hv,
               bool full)
{
    _cleanup_error_ NbError *e = NULL;
    pthread_mutex_t *lock = pool_lock_for(host);
    pthread_mutex_lock(lock);
    Pool p;
    PoolHostState *states = NULL;
    size_t n = 0;
    /* Read again under the lock: a pool deleted meanwhile is not made again. */
    if (pool_store_get(core->store, pool_id, &p, &e) < 0 ||
        pool_store_hosts(core->store, pool_id, &states, &n, &e) < 0) {
        pthread_mutex_unlock(lock);
        if (!streq(e->code, NB_ERR_POOL_NOT_FOUND))
            log_warn("pool %s: check on host %s: %s", pool_id, host, e->message);
        return;
    }
    const PoolHostState *was = pool_state_of(states, n, host);
    if (pool_ops_belongs_on(&p, host)) {
        PoolHostState st = {.capacity = -1, .allocation = -1};
        HvPoolState hs;
        /* The common case costs one look-up: defined, active, its figures as libvirt has
         * them. */
        const char *name = p.is_default ? core->cfg.pool_name : p.libvirt_name;
        if (!full && hv_pool_state(hv, name, &hs, &e) == 0 && hs.active) {
            snprintf(st.host, sizeof(st.host), "%s", host);
            snprintf(st.state, sizeof(st.state), "active");
            st.capacity = hs.capacity;
            st.allocation = hs.allocation;
        } else {
            nb_error_free(TAKE_PTR(e));
            pool_make_on(core, &p, site, host, hv, &st);
        }
        pool_record(core, &p, &st, was);
    } else if (was) {
        if (pool_unmake_on(p.id, p.libvirt_name, hv, &e) < 0)
            log_warn("pool %s: cannot remove it from host %s: %s", p.id, host, e->message);
        else if (pool_store_host_remove(core->store, p.id, host, &e) < 0)
            log_warn("pool %s: %s", p.id, e->message);
    }
    explicit_bzero(p.secret, sizeof(p.secret));
    free(states);
    pthread_mutex_unlock(lock);
}

/* This site's libvirt pools on the host that the store does not know: what a delete left on a
 * host that was down, or a daemon killed between the row and the hosts. Only names
 * "nimbus-pool-<uuid>" exactly, only with this site's libvirt UUID for that id. */
static void
pool_collect_strays(Core *core, const char *site, const char *host, HvConn *hv)
{
    _cleanup_error_ NbError *e = NULL;
    _cleanup_free_ HvPoolEntry *found = NULL;
    size_t n = 0;
    if (hv_pool_list_prefixed(hv, POOL_NAME_PREFIX, &found, &n, &e) < 0) {
        log_warn("pool check on host %s: %s", host, e->message);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        const char *id = found[i].name + strlen(POOL_NAME_PREFIX);
        char mine[NB_UUID_STRLEN];
        if (strlen(id) != NB_UUID_STRLEN - 1 || !nb_uuid_is_valid(id))
            continue;
        pool_ops_libvirt_uuid(site, id, mine);
        if (strcasecmp(found[i].uuid, mine) != 0)
            continue; /* another controller's, or an operator's */
        pthread_mutex_t *lock = pool_lock_for(host);
        pthread_mutex_lock(lock);
        Pool p;
        _cleanup_error_ NbError *ge = NULL;
        int r = pool_store_get(core->store, id, &p, &ge);
        explicit_bzero(p.secret, sizeof(p.secret));
        /* Only a definite "not found": a store that does not answer removes nothing. */
        if (r < 0 && streq(ge->code, NB_ERR_POOL_NOT_FOUND)) {
            _cleanup_error_ NbError *re = NULL;
            log_warn("pool check on host %s: removing %s, which no pool of the store has", host,
                     found[i].name);
            if (pool_unmake_on(id, found[i].name, hv, &re) < 0)
                log_warn("pool check on host %s: %s", host, re->message);
        }
        pthread_mutex_unlock(lock);
    }
}

int
pool_ops_host_check(Core *core, const char *host, HvConn *hv, bool full, NbError **err)
{
    char site[NB_UUID_STRLEN];
    Pool *pools = NULL;
    size_t n = 0;
    if (pool_site(core, site, err) < 0 || pool_store_list(core->store, &pools, &n, err) < 0)
        return -1;
    /* Ids only: each pool is read again under the host's lock. */
    char(*ids)[NB_UUID_STRLEN] = calloc(n ? n : 1, sizeof(*ids));
    for (size_t i = 0; ids && i < n; i++)
        memcpy(ids[i], pools[i].id, NB_UUID_STRLEN);
    pool_list_free(pools, n);
    if (!ids)
        return nb_error_set(err, NB_ERR_INTERNAL, "out of memory");
    for (size_t i = 0; i < n; i++)
        pool_check_one(core, site, ids[i], host, hv, full);
    free(ids);
    pool_collect_strays(core, site, host, hv);
    return 0;
}

/* Drops the states recorded on hosts that were removed from the site. */
static void
pool_forget_removed_hosts(Core *core, const Host *hosts, size_t n_hosts)
{
    _cleanup_error_ NbError *e = NULL;
    Pool *pools = NULL;
    size_t n = 0;
    if (pool_store_list(core->store, &pools, &n, &e) < 0)
        return;
    for (size_t i = 0; i < n; i++) {
        PoolHostState *states = NULL;
        size_t k = 0;
        if (pool_store_hosts(core->store, pools[i].id, &states, &k, &e) < 0)
            break;
        for (size_t j = 0; j < k; j++) {
            bool known = false;
            for (size_t h = 0; h < n_hosts && !known; h++)
                known = streq(hosts[h].name, states[j].host);
            if (!known && pool_store_host_remove(core->store, pools[i].id, states[j].host, &e) == 0)
                log_info("pool %s: host %s is gone from the site; its state is forgotten",
                         pools[i].id, states[j].host);
        }
        free(states);
    }
    pool_list_free(pools, n);
}

void
pool_ops_watch(Core *core, bool full)
{
    _cleanup_error_ NbError *err = NULL;
    Host *hosts = NULL;
    size_t n = 0;
    if (host_store_list(core->store, &hosts, &n, &err) < 0) {
        log_warn("pool check: cannot list the hosts: %s", err->message);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        explicit_bzero(hosts[i].agent_secret, sizeof(hosts[i].agent_secret));
        /* A host that is down is looked at when it connects again. */
        HvConn *hv = host_registry_conn(core, hosts[i].name);
        if (!hv)
            continue;
        _cleanup_error_ NbError *e = NULL;
        if (pool_ops_host_check(core, hosts[i].name, hv, full, &e) < 0)
            log_warn("pool check of host %s: %s", hosts[i].name, e->message);
        hv_conn_free(hv);
    }
    pool_forget_removed_hosts(core, hosts, n);
    free(hosts);
}
