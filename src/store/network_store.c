#include "store_internal.h"

#include <stdlib.h>
#include <string.h>

#include "../util/uuid.h"

static void
network_from_row(sqlite3_stmt *st, void *elem)
{
    Network *n = elem;
    memset(n, 0, sizeof(*n));
    store_column_copy(st, 0, n->id, sizeof(n->id));
    store_column_copy(st, 1, n->project, sizeof(n->project));
    store_column_copy(st, 2, n->name, sizeof(n->name));
    n->type = network_type_from_string((const char *)sqlite3_column_text(st, 3));
    n->net = (uint32_t)sqlite3_column_int64(st, 4);
    n->prefix = (unsigned)sqlite3_column_int(st, 5);
    n->gateway = (uint32_t)sqlite3_column_int64(st, 6); /* NULL reads as 0: none */
    n->dhcp = sqlite3_column_int(st, 7) != 0;
    /* dns: dotted quads separated by ',' (written by network_dns_text). */
    char dns[NETWORK_DNS_MAX * NB_IPV4_STRLEN + 1];
    store_column_copy(st, 8, dns, sizeof(dns));
    for (char *p = dns, *comma; *p && n->n_dns < NETWORK_DNS_MAX; p = comma + 1) {
        comma = strchr(p, ',');
        if (comma)
            *comma = '\0';
        if (ipv4_parse(p, &n->dns[n->n_dns]) == 0)
            n->n_dns++;
        if (!comma)
            break;
    }
    n->vni = (unsigned)sqlite3_column_int64(st, 9);
    n->vlan = (unsigned)sqlite3_column_int64(st, 10);
    store_column_copy(st, 11, n->bridge, sizeof(n->bridge));
    if (!n->bridge[0])
        network_bridge_name(n->id, n->bridge);
    store_column_copy(st, 12, n->parent, sizeof(n->parent));
    n->mtu = (unsigned)sqlite3_column_int(st, 13);
    n->shared = sqlite3_column_int(st, 14) != 0;
    n->is_default = sqlite3_column_int(st, 15) != 0;
    store_column_copy(st, 16, n->created_at, sizeof(n->created_at));
}

static void
network_dns_text(const Network *n, char out[NETWORK_DNS_MAX * NB_IPV4_STRLEN + 1])
{
    size_t len = 0;
    out[0] = '\0';
    for (size_t i = 0; i < n->n_dns && i < NETWORK_DNS_MAX; i++) {
        char ip[NB_IPV4_STRLEN];
        ipv4_format(n->dns[i], ip);
        len += (size_t)snprintf(out + len, NETWORK_DNS_MAX * NB_IPV4_STRLEN + 1 - len, "%s%s",
                                i ? "," : "", ip);
    }
}

void
network_list_free(Network *n, size_t count)
{
    (void)count; /* a Network owns nothing */
    free(n);
}

/* One row of sql (?1 key, ?2 scope): 1 found, 0 not, -1 error. */
static int
network_get_one(Store *s, const char *sql, const char *key, const char *scope, Network *ret,
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
        return 0;
    if (rc != SQLITE_ROW)
        return store_db_error(s, "get network", err);
    network_from_row(st, ret);
    return 1;
}

static int
network_get_locked(Store *s, const char *scope, const char *key, Network *ret, NbError **err)
{
    int rc = network_get_one(s, STORE_SQL_NETWORK_BY_ID, key, scope, ret, err);
    if (rc == 0 && scope)
        rc = network_get_one(s, STORE_SQL_NETWORK_BY_NAME_OWN, key, scope, ret, err);
    if (rc == 0)
        rc = network_get_one(
            s, scope ? STORE_SQL_NETWORK_BY_NAME_SHARED : STORE_SQL_NETWORK_BY_NAME_ANY, key, scope,
            ret, err);
    if (rc == 0)
        return nb_error_set(err, NB_ERR_NETWORK_NOT_FOUND, "network '%.64s' not found", key);
    return rc < 0 ? -1 : 0;
}

int
network_get_one_by_id_locked(Store *s, const char *scope, const char *id, Network *ret,
                             NbError **err)
{
    int rc = network_get_one(s, STORE_SQL_NETWORK_BY_ID, id, scope, ret, err);
    if (rc == 0)
        return nb_error_set(err, NB_ERR_NETWORK_NOT_FOUND, "network '%.64s' not found", id);
    return rc < 0 ? -1 : 0;
}

int
network_store_get(Store *s, const char *scope, const char *id_or_name, Network *ret, NbError **err)
{
    STORE_READING(s);
    return network_get_locked(s, scope, id_or_name, ret, err);
}

int
network_store_list(Store *s, const char *scope, Network **ret, size_t *ret_n, NbError **err)
{
    STORE_READING(s);
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (store_prepare(s,
                      "SELECT " NETWORK_COLUMNS " FROM networks WHERE ?1 IS NULL OR project = ?1 "
                      "OR shared ORDER BY name, id",
                      &st, err) < 0)
        return -1;
    store_bind_text(st, 1, scope);
    return store_collect(s, st, sizeof(Network), network_from_row, NULL, (void **)ret, ret_n, err);
}

static bool
network_is_host_local(NetworkType t)
{
    return t == NETWORK_TYPE_NAT || t == NETWORK_TYPE_ISOLATED;
}

/* A network a new one must not overlap. */
typedef struct NetRange {
    uint32_t net;
    unsigned prefix;
    bool same; /* of the same project */
    char name[NB_NAME_MAX + 1];
} NetRange;

/* With the lock held: the networks a new network of type in project must not overlap. Within a
 * project no two networks overlap (a VM on both could not route); nat and isolated networks of
 * every project sit side by side on a host, each with a host address on its bridge, so they
 * must not overlap each other either. A vxlan (or bridged, vlan) network is its own segment:
 * other projects may reuse its range. */
static int
network_ranges_locked(Store *s, const char *project, NetworkType type, NetRange **ret,
                      size_t *ret_n, NbError **err)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (store_prepare(s,
                      "SELECT name, net, prefix, project, type FROM networks "
                      "WHERE project = ?1 OR type IN ('nat', 'isolated')",
                      &st, err) < 0)
        return -1;
    sqlite3_bind_text(st, 1, project, -1, SQLITE_STATIC);
    NetRange *list = NULL;
    size_t n = 0, cap = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        bool same = streq((const char *)sqlite3_column_text(st, 3), project);
        NetworkType other = network_type_from_string((const char *)sqlite3_column_text(st, 4));
        if (!same && !(network_is_host_local(type) && network_is_host_local(other)))
            continue;
        if (n == cap) {
            NetRange *grown = realloc(list, (cap = cap ? cap * 2 : 16) * sizeof(*list));
            if (!grown) {
                free(list);
                return nb_error_set(err, NB_ERR_INTERNAL, "out of memory");
            }
            list = grown;
        }
        NetRange *r = &list[n++];
        r->net = (uint32_t)sqlite3_column_int64(st, 1);
        r->prefix = (unsigned)sqlite3_column_int(st, 2);
        r->same = same;
        store_column_copy(st, 0, r->name, sizeof(r->name));
    }
    if (rc != SQLITE_DONE) {
        free(list);
        return store_db_error(s, "check network overlap", err);
    }
    *ret = list;
    *ret_n = n;
    return 0;
}

/* The first of ranges that net/prefix overlaps, or NULL. */
static const NetRange *
network_overlap(const NetRange *ranges, size_t n, uint32_t net, unsigned prefix)
{
    for (size_t i = 0; i < n; i++)
        if (cidr_overlaps(net, prefix, ranges[i].net, ranges[i].prefix))
            return &ranges[i];
    return NULL;
}

/* With the lock held: 0 when net/prefix may be added, else NETWORK_CIDR_OVERLAP (or an error). */
static int
network_overlap_check_locked(Store *s, const char *project, NetworkType type, uint32_t net,
                             unsigned prefix, NbError **err)
{
    _cleanup_free_ NetRange *ranges = NULL;
    size_t n = 0;
    if (network_ranges_locked(s, project, type, &ranges, &n, err) < 0)
        return -1;
    const NetRange *r = network_overlap(ranges, n, net, prefix);
    if (!r)
        return 0;
    char a[NB_IPV4_STRLEN], b[NB_IPV4_STRLEN];
    ipv4_format(net, a);
    ipv4_format(r->net, b);
    /* Another project's network is named by its range only. */
    if (r->same)
        return nb_error_set(err, NB_ERR_NETWORK_CIDR_OVERLAP, "%s/%u overlaps network '%s' (%s/%u)",
                            a, prefix, r->name, b, r->prefix);
    return nb_error_set(err, NB_ERR_NETWORK_CIDR_OVERLAP,
                        "%s/%u overlaps %s/%u, a nat or isolated network of another project", a,
                        prefix, b, r->prefix);
}

/* With the lock held, in a transaction: the insert itself, after the quota, VNI and overlap
 * checks. */
static int
network_insert_locked(Store *s, const Network *n, NbError **err)
{
    int64_t add[_QUOTA_MAX] = {[QUOTA_NETWORKS] = 1};
    if (project_quota_check_locked(s, n->project, add, err) < 0)
        return -1;
    if (network_overlap_check_locked(s, n->project, n->type, n->net, n->prefix, err) < 0)
        return -1;
    int rc;
    _cleanup_stmt_ sqlite3_stmt *vni = NULL, *st = NULL, *pick = NULL;
    Network picked;
    if (n->type == NETWORK_TYPE_VXLAN && n->vni == 0) {
        /* The lowest free VNI from NETWORK_VNI_AUTO_MIN, in this transaction: 1..4095 stay for
         * operators who number their own segments. */
        if (store_prepare(s,
                          "SELECT CASE WHEN NOT EXISTS (SELECT 1 FROM networks WHERE vni = ?1) "
                          "THEN ?1 ELSE (SELECT min(a.vni) + 1 FROM networks a WHERE a.vni >= ?1 "
                          "AND NOT EXISTS (SELECT 1 FROM networks b WHERE b.vni = a.vni + 1)) END",
                          &pick, err) < 0)
            return -1;
        sqlite3_bind_int64(pick, 1, NETWORK_VNI_AUTO_MIN);
        if (sqlite3_step(pick) != SQLITE_ROW)
            return store_db_error(s, "pick a vni", err);
        sqlite3_int64 v = sqlite3_column_int64(pick, 0);
        if (v < NETWORK_VNI_AUTO_MIN || v > NETWORK_VNI_MAX)
            return nb_error_set(err, NB_ERR_NETWORK_INVALID_VNI,
                                "no VNI is free from %u to %u; give one", NETWORK_VNI_AUTO_MIN,
                                NETWORK_VNI_MAX);
        picked = *n;
        picked.vni = (unsigned)v;
        n = &picked;
    }
    if (n->type == NETWORK_TYPE_VXLAN) {
        if (store_prepare(s, "SELECT 1 FROM networks WHERE vni = ?", &vni, err) < 0)
            return -1;
        sqlite3_bind_int64(vni, 1, n->vni);
        rc = sqlite3_step(vni);
        if (rc == SQLITE_ROW)
            return nb_error_set(err, NB_ERR_NETWORK_INVALID_VNI, "VNI %u is taken", n->vni);
        if (rc != SQLITE_DONE)
            return store_db_error(s, "check vni", err);
    }
    if (store_prepare(s,
                      "INSERT INTO networks (" NETWORK_COLUMNS
                      ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                      &st, err) < 0)
        return -1;
    char dns[NETWORK_DNS_MAX * NB_IPV4_STRLEN + 1], bridge[NETWORK_IFNAME_MAX + 1];
    network_dns_text(n, dns);
    if (n->bridge[0])
        memcpy(bridge, n->bridge, sizeof(bridge));
    else
        network_bridge_name(n->id, bridge);
    sqlite3_bind_text(st, 1, n->id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, n->project, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, n->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, network_type_to_string(n->type), -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, n->net);
    sqlite3_bind_int(st, 6, (int)n->prefix);
    if (n->gateway)
        sqlite3_bind_int64(st, 7, n->gateway);
    else
        sqlite3_bind_null(st, 7);
    sqlite3_bind_int(st, 8, n->dhcp);
    sqlite3_bind_text(st, 9, dns, -1, SQLITE_TRANSIENT);
    if (n->type == NETWORK_TYPE_VXLAN)
        sqlite3_bind_int64(st, 10, n->vni);
    else
        sqlite3_bind_null(st, 10);
    if (n->type == NETWORK_TYPE_VLAN)
        sqlite3_bind_int64(st, 11, n->vlan);
    else
        sqlite3_bind_null(st, 11);
    sqlite3_bind_text(st, 12, bridge, -1, SQLITE_TRANSIENT);
    store_bind_text(st, 13, n->parent);
    sqlite3_bind_int(st, 14, (int)n->mtu);
    sqlite3_bind_int(st, 15, n->shared);
    sqlite3_bind_int(st, 16, n->is_default);
    sqlite3_bind_text(st, 17, n->created_at, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    if (rc == SQLITE_DONE)
        return 0;
    const char *msg = sqlite3_errmsg(s->db);
    if (rc == SQLITE_CONSTRAINT && strstr(msg, "networks.name"))
        return nb_error_set(err, NB_ERR_NAME_TAKEN, "a network named '%s' already exists", n->name);
    if (rc == SQLITE_CONSTRAINT && strstr(msg, "networks.vni"))
        return nb_error_set(err, NB_ERR_NETWORK_INVALID_VNI, "VNI %u is taken", n->vni);
    return store_db_error(s, "insert network", err);
}

int
network_store_insert(Store *s, const Network *n, NbError **err)
{
    STORE_LOCKED(s);
    if (store_begin(s, err) < 0)
        return -1;
    if (network_insert_locked(s, n, err) < 0 || store_commit(s, err) < 0) {
        store_rollback(s);
        return -1;
    }
    return 0;
}

int
network_store_delete(Store *s, const char *scope, const char *id, NbError **err)
{
    STORE_LOCKED(s);
    _cleanup_stmt_ sqlite3_stmt *own = NULL, *used = NULL, *hosts = NULL, *del = NULL;
    if (store_prepare(s, "SELECT 1 FROM networks WHERE id = ?1 AND (?2 IS NULL OR project = ?2)",
                      &own, err) < 0 ||
        store_prepare(s, "SELECT count(*) FROM ports WHERE network_id = ?", &used, err) < 0 ||
        store_prepare(s, "DELETE FROM network_hosts WHERE network_id = ?", &hosts, err) < 0 ||
        store_prepare(s, "DELETE FROM networks WHERE id = ?", &del, err) < 0 ||
        store_begin(s, err) < 0)
        return -1;
    sqlite3_bind_text(own, 1, id, -1, SQLITE_STATIC);
    store_bind_text(own, 2, scope);
    sqlite3_bind_text(used, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_text(hosts, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_text(del, 1, id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(own);
    if (rc == SQLITE_DONE) {
        store_rollback(s);
        return nb_error_set(err, NB_ERR_NETWORK_NOT_FOUND, "network '%.64s' not found", id);
    }
    if (rc != SQLITE_ROW || sqlite3_step(used) != SQLITE_ROW) {
        store_db_error(s, "delete network", err);
        store_rollback(s);
        return -1;
    }
    int64_t ports = sqlite3_column_int64(used, 0);
    if (ports > 0) {
        store_rollback(s);
        return nb_error_set(err, NB_ERR_NETWORK_IN_USE, "the network still has %lld port%s",
                            (long long)ports, ports == 1 ? "" : "s");
    }
    if (sqlite3_step(hosts) != SQLITE_DONE || sqlite3_step(del) != SQLITE_DONE ||
        store_commit(s, err) < 0) {
        store_db_error(s, "delete network", err);
        store_rollback(s);
        return -1;
    }
    return 0;
}

/* With the lock held: the project's default network; 1 found, 0 none, -1 error. */
static int
network_default_locked(Store *s, const char *project, Network *ret, NbError **err)
{
    return network_get_one(
        s, "SELECT " NETWORK_COLUMNS " FROM networks WHERE project = ?1 AND is_default", project,
        NULL, ret, err);
}

/* With the lock held: whether the project has a network of that name: 1, 0, -1 error. */
static int
network_name_taken_locked(Store *s, const char *project, const char *name, NbError **err)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (store_prepare(s, "SELECT 1 FROM networks WHERE project = ?1 AND name = ?2", &st, err) < 0)
        return -1;
    sqlite3_bind_text(st, 1, project, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        return 1;
    return rc == SQLITE_DONE ? 0 : store_db_error(s, "check network name", err);
}

/* With the lock held, in a transaction: makes the project's default network into *n. */
static int
network_make_default_locked(Store *s, const char *project, uint32_t pool_net, unsigned pool_prefix,
                            Network *n, NbError **err)
{
    *n = (Network){.type = NETWORK_TYPE_NAT, .prefix = 24, .dhcp = true, .is_default = true};
    n->mtu = network_default_mtu(NETWORK_TYPE_NAT);
    snprintf(n->project, sizeof(n->project), "%s", project);
    nb_uuid_generate(n->id);
    nb_timestamp_now(n->created_at);
    /* The pool's /24s in order: the first that overlaps nothing it must not. */
    _cleanup_free_ NetRange *ranges = NULL;
    size_t n_ranges = 0;
    if (network_ranges_locked(s, project, NETWORK_TYPE_NAT, &ranges, &n_ranges, err) < 0)
        return -1;
    uint32_t count = 1u << (24 - pool_prefix);
    bool found = false;
    for (uint32_t i = 0; i < count && !found; i++) {
        n->net = pool_net + (i << 8);
        found = !network_overlap(ranges, n_ranges, n->net, 24);
    }
    if (!found) {
        char pool[NB_IPV4_STRLEN];
        ipv4_format(pool_net, pool);
        return nb_error_set(err, NB_ERR_NETWORK_FULL,
                            "the default network pool %s/%u has no free /24 left", pool,
                            pool_prefix);
    }
    n->gateway = n->net + 1;
    /* "default", else the first of "default-2", "default-3", ... the project has not taken. */
    for (unsigned k = 1;; k++) {
        if (k == 1)
            snprintf(n->name, sizeof(n->name), "default");
        else
            snprintf(n->name, sizeof(n->name), "default-%u", k);
        int rc = network_name_taken_locked(s, project, n->name, err);
        if (rc < 0)
            return -1;
        if (rc == 0)
            break;
    }
    return network_insert_locked(s, n, err);
}

int
network_store_ensure_default(Store *s, const char *project, uint32_t pool_net, unsigned pool_prefix,
                             Network *ret, NbError **err)
{
    if (pool_prefix < NETWORK_PREFIX_MIN || pool_prefix > 24 ||
        (pool_net & ~cidr_mask(pool_prefix)))
        return nb_error_set(err, NB_ERR_INTERNAL,
                            "store: the default network pool must be a network of /%d to /24",
                            NETWORK_PREFIX_MIN);
    /* Most calls find it: a read, without taking the writer. */
    {
        Store *r = s;
        STORE_READING(r);
        int rc = network_default_locked(r, project, ret, err);
        if (rc != 0)
            return rc < 0 ? -1 : 0;
    }
    /* Look again under the writer's lock: a concurrent caller may have just made it. */
    STORE_LOCKED(s);
    if (store_begin(s, err) < 0)
        return -1;
    Network n;
    int rc = network_default_locked(s, project, &n, err);
    if (rc == 0)
        rc = network_make_default_locked(s, project, pool_net, pool_prefix, &n, err) < 0 ? -1 : 0;
    if (rc < 0 || store_commit(s, err) < 0) {
        store_rollback(s);
        return -1;
    }
    /* What a read gives back (the derived bridge). */
    network_bridge_name(n.id, n.bridge);
    *ret = n;
    return 0;
}

int
network_store_host_add(Store *s, const char *network_id, const char *host, NbError **err)
{
    STORE_LOCKED(s);
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    char now[NB_TIMESTAMP_LEN];
    nb_timestamp_now(now);
    if (store_prepare(s,
                      "INSERT OR IGNORE INTO network_hosts (network_id, host, created_at) "
                      "SELECT id, ?2, ?3 FROM networks WHERE id = ?1",
                      &st, err) < 0)
        return -1;
    sqlite3_bind_text(st, 1, network_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, host, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, now, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE)
        return store_db_error(s, "add network host", err);
    if (sqlite3_changes(s->db) > 0)
        return 0;
    /* Either recorded already, or no such network. */
    Network n;
    int rc = network_get_one(s, STORE_SQL_NETWORK_BY_ID, network_id, NULL, &n, err);
    if (rc == 0)
        return nb_error_set(err, NB_ERR_NETWORK_NOT_FOUND, "network '%.64s' not found", network_id);
    return rc < 0 ? -1 : 0;
}

int
network_store_host_remove(Store *s, const char *network_id, const char *host, NbError **err)
{
    STORE_LOCKED(s);
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (store_prepare(s, "DELETE FROM network_hosts WHERE network_id = ? AND host = ?", &st, err) <
        0)
        return -1;
    sqlite3_bind_text(st, 1, network_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, host, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE)
        return store_db_error(s, "remove network host", err);
    return 0;
}

int
network_store_hosts(Store *s, const char *network_id, char ***ret_hosts, NbError **err)
{
    STORE_READING(s);
    return store_strv_query(s, "SELECT host FROM network_hosts WHERE network_id = ?1 ORDER BY host",
                            network_id, "list network hosts", ret_hosts, err);
}

int
network_store_list_on_host(Store *s, const char *host, Network **ret, size_t *ret_n, NbError **err)
{
    STORE_READING(s);
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (store_prepare(s,
                      "SELECT " NETWORK_COLUMNS " FROM networks WHERE id IN "
                      "(SELECT network_id FROM network_hosts WHERE host = ?1) ORDER BY id",
                      &st, err) < 0)
        return -1;
    sqlite3_bind_text(st, 1, host, -1, SQLITE_STATIC);
    return store_collect(s, st, sizeof(Network), network_from_row, NULL, (void **)ret, ret_n, err);
}

int
network_store_ports_on_host(Store *s, const char *network_id, const char *host, Port **ret,
                            size_t *ret_n, NbError **err)
{
    STORE_READING(s);
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (store_prepare(s,
                      /* From the host's VMs (see STORE_SQL_PORT_NETWORK_ON_HOST). */
                      "SELECT " PORT_COLUMNS " FROM ports WHERE +network_id = ?1 AND vm_id IN "
                      "(SELECT id FROM vms WHERE host = ?2 UNION SELECT id FROM vms WHERE "
                      "migrate_to = ?2) ORDER BY ip",
                      &st, err) < 0)
        return -1;
    sqlite3_bind_text(st, 1, network_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, host, -1, SQLITE_STATIC);
    return store_collect(s, st, sizeof(Port), port_store_from_row, NULL, (void **)ret, ret_n, err);
}
