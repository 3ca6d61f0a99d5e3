#include "store_internal.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "../util/uuid.h"

void
port_store_from_row(sqlite3_stmt *st, void *elem)
{
    Port *p = elem;
    memset(p, 0, sizeof(*p));
    store_column_copy(st, 0, p->id, sizeof(p->id));
    store_column_copy(st, 1, p->project, sizeof(p->project));
    store_column_copy(st, 2, p->network_id, sizeof(p->network_id));
    store_column_copy(st, 3, p->vm_id, sizeof(p->vm_id));
    p->slot = (unsigned)sqlite3_column_int(st, 4);
    store_column_copy(st, 5, p->mac, sizeof(p->mac));
    p->ip = (uint32_t)sqlite3_column_int64(st, 6);
    store_column_copy(st, 7, p->created_at, sizeof(p->created_at));
    p->net_in_kbit = (uint32_t)sqlite3_column_int64(st, 8);
    p->net_out_kbit = (uint32_t)sqlite3_column_int64(st, 9);
}

void
port_list_free(Port *p, size_t n)
{
    (void)n; /* a Port owns nothing */
    free(p);
}

int
port_store_list_by_vm(Store *s, const char *vm_id, Port **ret, size_t *ret_n, NbError **err)
{
    STORE_READING(s);
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (store_prepare(s, STORE_SQL_PORTS_BY_VM, &st, err) < 0)
        return -1;
    sqlite3_bind_text(st, 1, vm_id, -1, SQLITE_STATIC);
    return store_collect(s, st, sizeof(Port), port_store_from_row, NULL, (void **)ret, ret_n, err);
}

int
port_store_list(Store *s, const char *scope, const char *network_id, Port **ret, size_t *ret_n,
                NbError **err)
{
    STORE_READING(s);
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    const char *sql = network_id ? STORE_SQL_PORTS_BY_NETWORK
                      : scope    ? STORE_SQL_PORTS_BY_PROJECT
                                 : "SELECT " PORT_COLUMNS " FROM ports ORDER BY network_id, ip";
    if (store_prepare(s, sql, &st, err) < 0)
        return -1;
    if (network_id) {
        sqlite3_bind_text(st, 1, network_id, -1, SQLITE_STATIC);
        store_bind_text(st, 2, scope);
    } else if (scope) {
        sqlite3_bind_text(st, 1, scope, -1, SQLITE_STATIC);
    }
    return store_collect(s, st, sizeof(Port), port_store_from_row, NULL, (void **)ret, ret_n, err);
}

int
port_store_get_by_mac(Store *s, const char *vm_id, const char *mac, Port *ret, NbError **err)
{
    /* MACs are stored in lower case (as libvirt writes them). */
    char lower[NB_MAC_STRLEN];
    size_t len = mac ? strlen(mac) : 0;
    if (len == 0 || len >= sizeof(lower))
        return nb_error_set(err, NB_ERR_PORT_NOT_FOUND, "the VM has no NIC with MAC '%.32s'",
                            mac ? mac : "");
    for (size_t i = 0; i <= len; i++)
        lower[i] = (char)tolower((unsigned char)mac[i]);
    STORE_READING(s);
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (store_prepare(s, STORE_SQL_PORT_BY_MAC, &st, err) < 0)
        return -1;
    sqlite3_bind_text(st, 1, lower, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, vm_id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_DONE)
        return nb_error_set(err, NB_ERR_PORT_NOT_FOUND, "the VM has no NIC with MAC '%s'", lower);
    if (rc != SQLITE_ROW)
        return store_db_error(s, "get port", err);
    port_store_from_row(st, ret);
    return 0;
}

int
port_store_network_used_on_host(Store *s, const char *network_id, const char *host,
                                const char *except_vm, NbError **err)
{
    STORE_READING(s);
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (store_prepare(s, STORE_SQL_PORT_NETWORK_ON_HOST, &st, err) < 0)
        return -1;
    sqlite3_bind_text(st, 1, network_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, host, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, except_vm ? except_vm : "", -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        return 1;
    return rc == SQLITE_DONE ? 0 : store_db_error(s, "look for a network's ports on a host", err);
}

/* The next address after `after` that a port of n may take, or 0 when there is none. */
static uint32_t
port_next_assignable(const Network *n, uint32_t after)
{
    uint32_t bcast = n->net | ~cidr_mask(n->prefix);
    for (uint32_t c = after + 1; c < bcast; c++)
        if (network_ip_is_assignable(n, c))
            return c;
    return 0;
}

/* With the lock held: the address after the highest one a port of n holds, read from the index
 * at once; a freed address is not handed out again at once (ARP caches and DNS may still name
 * its last holder), only when the top of the subnet is reached. */
static int
port_alloc_ip_after_highest_locked(Store *s, const Network *n, uint32_t *ret, NbError **err)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (store_prepare(s, STORE_SQL_PORT_MAX_IP, &st, err) < 0)
        return -1;
    sqlite3_bind_text(st, 1, n->id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc != SQLITE_ROW)
        return store_db_error(s, "allocate address", err);
    uint32_t highest =
        sqlite3_column_type(st, 0) == SQLITE_NULL ? n->net : (uint32_t)sqlite3_column_int64(st, 0);
    *ret = port_next_assignable(n, highest);
    return 0;
}

/* With the lock held: an address of n that no port holds. The one after the highest taken
 * (one index look-up, however full the network: a walk from the bottom cost a create some
 * milliseconds at 15,000 ports); once the top is reached, the lowest gap, found by walking the
 * network's ports in address order (UNIQUE (network_id, ip)). */
static int
port_alloc_ip_locked(Store *s, const Network *n, uint32_t *ret, NbError **err)
{
    if (port_alloc_ip_after_highest_locked(s, n, ret, err) < 0)
        return -1;
    if (*ret)
        return 0;
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    uint32_t cand = port_next_assignable(n, n->net);
    if (cand && store_prepare(s, STORE_SQL_PORT_IPS, &st, err) < 0)
        return -1;
    if (cand) {
        sqlite3_bind_text(st, 1, n->id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, cand);
        int rc = SQLITE_DONE;
        while (cand && (rc = sqlite3_step(st)) == SQLITE_ROW) {
            uint32_t taken = (uint32_t)sqlite3_column_int64(st, 0);
            if (taken > cand)
                break;
            if (taken == cand)
                cand = port_next_assignable(n, cand);
        }
        if (cand && rc != SQLITE_ROW && rc != SQLITE_DONE)
            return store_db_error(s, "allocate address", err);
    }
    if (!cand)
        return nb_error_set(err, NB_ERR_NETWORK_FULL, "network '%s' has no free address left",
                            n->name);
    *ret = cand;
    return 0;
}

/* With the lock held: whether a row answers sql (?1, ?2 bound to a, b): 1, 0, -1 error. */
static int
port_exists_locked(Store *s, const char *sql, const char *a, const char *b, int64_t ib,
                   NbError **err)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (store_prepare(s, sql, &st, err) < 0)
        return -1;
    sqlite3_bind_text(st, 1, a, -1, SQLITE_STATIC);
    if (b)
        sqlite3_bind_text(st, 2, b, -1, SQLITE_STATIC);
    else
        sqlite3_bind_int64(st, 2, ib);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        return 1;
    return rc == SQLITE_DONE ? 0 : store_db_error(s, "check port", err);
}

/* With the lock held, the VM's row written: p gets the bandwidth limits of the VM's flavor. In
 * the store, so that a VM's first ports and a NIC added later cannot disagree with the flavor,
 * however they are made (a VM whose flavor row is gone keeps 0: unlimited). */
static int
port_flavor_bandwidth_locked(Store *s, Port *p, NbError **err)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (store_prepare(s,
                      "SELECT f.net_in_kbit, f.net_out_kbit FROM vms v JOIN flavors f"
                      " ON f.id = v.flavor_id WHERE v.id = ?1",
                      &st, err) < 0)
        return -1;
    sqlite3_bind_text(st, 1, p->vm_id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    p->net_in_kbit = p->net_out_kbit = 0;
    if (rc == SQLITE_ROW) {
        p->net_in_kbit = (uint32_t)sqlite3_column_int64(st, 0);
        p->net_out_kbit = (uint32_t)sqlite3_column_int64(st, 1);
    }
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : store_db_error(s, "read flavor limits", err);
}

int
port_insert_locked(Store *s, const char *project, Port *p, NbError **err)
{
    Network n;
    int rc;
    /* The VM's project's own network, or a shared one. */
    if (network_get_one_by_id_locked(s, project, p->network_id, &n, err) < 0)
        return -1;
    if (p->slot >= VM_NICS_MAX)
        return nb_error_set(err, NB_ERR_TOO_MANY_NICS, "a VM has at most %d NICs", VM_NICS_MAX);
    for (char *c = p->mac; *c; c++)
        *c = (char)tolower((unsigned char)*c);
    char ip[NB_IPV4_STRLEN];
    if (p->ip) {
        ipv4_format(p->ip, ip);
        if (!network_ip_is_assignable(&n, p->ip))
            return nb_error_set(err, NB_ERR_IP_OUTSIDE_NETWORK,
                                "%s is not an address a port of network '%s' may take (outside "
                                "it, or its network, broadcast, gateway or DNS address)",
                                ip, n.name);
        rc = port_exists_locked(s, STORE_SQL_PORT_IP_TAKEN, n.id, NULL, p->ip, err);
        if (rc < 0)
            return -1;
        if (rc)
            return nb_error_set(err, NB_ERR_IP_IN_USE, "%s is taken on network '%s'", ip, n.name);
    } else if (port_alloc_ip_locked(s, &n, &p->ip, err) < 0) {
        return -1;
    }
    /* A legacy VM's NIC has its MAC in vms.mac only. */
    rc = port_exists_locked(s, "SELECT 1 FROM vms WHERE mac = ?1 AND id != ?2", p->mac, p->vm_id, 0,
                            err);
    if (rc < 0)
        return -1;
    if (rc)
        return nb_error_set(err, NB_ERR_MAC_TAKEN, "MAC address %s is taken", p->mac);
    if (port_flavor_bandwidth_locked(s, p, err) < 0)
        return -1;
    nb_uuid_generate(p->id);
    nb_timestamp_now(p->created_at);
    snprintf(p->project, sizeof(p->project), "%s", project);
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (store_prepare(s,
                      "INSERT INTO ports (" PORT_COLUMNS ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                      &st, err) < 0)
        return -1;
    sqlite3_bind_text(st, 1, p->id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, p->project, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, p->network_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, p->vm_id, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 5, (int)p->slot);
    sqlite3_bind_text(st, 6, p->mac, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 7, p->ip);
    sqlite3_bind_text(st, 8, p->created_at, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 9, p->net_in_kbit);
    sqlite3_bind_int64(st, 10, p->net_out_kbit);
    rc = sqlite3_step(st);
    if (rc == SQLITE_DONE)
        return 0;
    const char *msg = sqlite3_errmsg(s->db);
    if (rc == SQLITE_CONSTRAINT && strstr(msg, "ports.mac"))
        return nb_error_set(err, NB_ERR_MAC_TAKEN, "MAC address %s is taken", p->mac);
    if (rc == SQLITE_CONSTRAINT && strstr(msg, "ports.ip")) {
        ipv4_format(p->ip, ip);
        return nb_error_set(err, NB_ERR_IP_IN_USE, "%s is taken on network '%s'", ip, n.name);
    }
    if (rc == SQLITE_CONSTRAINT && strstr(msg, "ports.slot"))
        return nb_error_set(err, NB_ERR_INTERNAL, "store: the VM's NIC slot %u is taken", p->slot);
    return store_db_error(s, "insert port", err);
}

int
port_store_add(Store *s, Port *p, NbError **err)
{
    STORE_LOCKED(s);
    _cleanup_stmt_ sqlite3_stmt *vm = NULL, *slots = NULL;
    if (store_prepare(s, "SELECT project FROM vms WHERE id = ?", &vm, err) < 0 ||
        store_prepare(s, "SELECT slot FROM ports WHERE vm_id = ? ORDER BY slot", &slots, err) < 0 ||
        store_begin(s, err) < 0)
        return -1;
    sqlite3_bind_text(vm, 1, p->vm_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(slots, 1, p->vm_id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(vm);
    if (rc != SQLITE_ROW) {
        store_rollback(s);
        if (rc == SQLITE_DONE)
            return nb_error_set(err, NB_ERR_VM_NOT_FOUND, "VM '%.64s' not found", p->vm_id);
        return store_db_error(s, "add port", err);
    }
    char project[NB_UUID_STRLEN];
    store_column_copy(vm, 0, project, sizeof(project));
    /* The lowest slot no port of the VM holds. */
    unsigned slot = 0;
    while ((rc = sqlite3_step(slots)) == SQLITE_ROW &&
           (unsigned)sqlite3_column_int(slots, 0) == slot)
        slot++;
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        store_db_error(s, "add port", err);
        store_rollback(s);
        return -1;
    }
    if (slot >= VM_NICS_MAX) {
        store_rollback(s);
        return nb_error_set(err, NB_ERR_TOO_MANY_NICS,
                            "the VM has %d NICs already, the most it may", VM_NICS_MAX);
    }
    p->slot = slot;
    int64_t add[_QUOTA_MAX] = {[QUOTA_PORTS] = 1};
    if (project_quota_check_locked(s, project, add, err) < 0 ||
        port_insert_locked(s, project, p, err) < 0 || store_commit(s, err) < 0) {
        store_rollback(s);
        return -1;
    }
    return 0;
}

int
port_store_delete(Store *s, const char *port_id, NbError **err)
{
    STORE_LOCKED(s);
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (store_prepare(s, "DELETE FROM ports WHERE id = ?", &st, err) < 0)
        return -1;
    sqlite3_bind_text(st, 1, port_id, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE)
        return store_db_error(s, "delete port", err);
    if (sqlite3_changes(s->db) == 0)
        return nb_error_set(err, NB_ERR_PORT_NOT_FOUND, "port '%.64s' not found", port_id);
    return 0;
}

int
port_store_get(Store *s, const char *scope, const char *id, Port *ret, NbError **err)
{
    STORE_READING(s);
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (store_prepare(s,
                      "SELECT " PORT_COLUMNS " FROM ports WHERE id = ?1 AND (?2 IS NULL OR "
                      "project = ?2)",
                      &st, err) < 0)
        return -1;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    store_bind_text(st, 2, scope);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_DONE)
        return nb_error_set(err, NB_ERR_PORT_NOT_FOUND, "port '%.64s' not found", id);
    if (rc != SQLITE_ROW)
        return store_db_error(s, "get port", err);
    port_store_from_row(st, ret);
    return 0;
}

int
port_store_set_bandwidth(Store *s, const char *id, uint32_t in_kbit, uint32_t out_kbit,
                         NbError **err)
{
    STORE_LOCKED(s);
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (store_prepare(s, "UPDATE ports SET net_in_kbit = ?2, net_out_kbit = ?3 WHERE id = ?1", &st,
                      err) < 0)
        return -1;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, in_kbit);
    sqlite3_bind_int64(st, 3, out_kbit);
    if (sqlite3_step(st) != SQLITE_DONE)
        return store_db_error(s, "set port limits", err);
    if (sqlite3_changes(s->db) == 0)
        return nb_error_set(err, NB_ERR_PORT_NOT_FOUND, "port '%.64s' not found", id);
    return 0;
}

/* ---- DHCP servers of vxlan, vlan and bridged networks (dhcp_servers) ---- */

static void
dhcp_server_from_row(sqlite3_stmt *st, void *elem)
{
    DhcpServer *d = elem;
    memset(d, 0, sizeof(*d));
    store_column_copy(st, 0, d->id, sizeof(d->id));
    store_column_copy(st, 1, d->network_id, sizeof(d->network_id));
    store_column_copy(st, 2, d->host, sizeof(d->host));
    store_column_copy(st, 3, d->mac, sizeof(d->mac));
    d->ip = (uint32_t)sqlite3_column_int64(st, 4);
    store_column_copy(st, 5, d->created_at, sizeof(d->created_at));
}

/* With the lock held: the server of (network, host): 1 (in *ret), 0 none, -1. */
static int
dhcp_server_get_locked(Store *s, const char *network_id, const char *host, DhcpServer *ret,
                       NbError **err)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (store_prepare(s,
                      "SELECT " DHCP_SERVER_COLUMNS
                      " FROM dhcp_servers WHERE network_id = ?1 AND host = ?2",
                      &st, err) < 0)
        return -1;
    sqlite3_bind_text(st, 1, network_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, host, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        dhcp_server_from_row(st, ret);
        return 1;
    }
    return rc == SQLITE_DONE ? 0 : store_db_error(s, "get DHCP server", err);
}

int
port_store_dhcp_server_ensure(Store *s, const char *network_id, const char *host, const char *mac,
                              DhcpServer *ret, NbError **err)
{
    STORE_LOCKED(s);
    if (store_begin(s, err) < 0)
        return -1;
    Network n;
    DhcpServer d = {0};
    int found = dhcp_server_get_locked(s, network_id, host, &d, err);
    if (found < 0)
        goto fail;
    if (!found) {
        /* The same IPAM as a port's, under the same lock: no port can take it after. */
        if (network_get_one_by_id_locked(s, NULL, network_id, &n, err) < 0 ||
            port_alloc_ip_locked(s, &n, &d.ip, err) < 0)
            goto fail;
        nb_uuid_generate(d.id);
        nb_timestamp_now(d.created_at);
        snprintf(d.network_id, sizeof(d.network_id), "%s", network_id);
        snprintf(d.host, sizeof(d.host), "%s", host);
        for (size_t i = 0; mac[i] && i + 1 < sizeof(d.mac); i++)
            d.mac[i] = (char)tolower((unsigned char)mac[i]);
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        if (store_prepare(
                s, "INSERT INTO dhcp_servers (" DHCP_SERVER_COLUMNS ") VALUES (?, ?, ?, ?, ?, ?)",
                &st, err) < 0)
            goto fail;
        sqlite3_bind_text(st, 1, d.id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, d.network_id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, d.host, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 4, d.mac, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 5, d.ip);
        sqlite3_bind_text(st, 6, d.created_at, -1, SQLITE_STATIC);
        int rc = sqlite3_step(st);
        if (rc == SQLITE_CONSTRAINT && strstr(sqlite3_errmsg(s->db), "dhcp_servers.mac")) {
            nb_error_set(err, NB_ERR_MAC_TAKEN, "MAC address %s is taken", d.mac);
            goto fail;
        }
        if (rc != SQLITE_DONE) {
            store_db_error(s, "insert DHCP server", err);
            goto fail;
        }
    }
    if (store_commit(s, err) < 0)
        goto fail;
    *ret = d;
    return 0;
fail:
    store_rollback(s);
    return -1;
}

int
port_store_dhcp_server_delete(Store *s, const char *network_id, const char *host, NbError **err)
{
    STORE_LOCKED(s);
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (store_prepare(s, "DELETE FROM dhcp_servers WHERE network_id = ?1 AND host = ?2", &st, err) <
        0)
        return -1;
    sqlite3_bind_text(st, 1, network_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, host, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE)
        return store_db_error(s, "delete DHCP server", err);
    return 0;
}

int
port_store_dhcp_server_list(Store *s, const char *scope, const char *network_id, DhcpServer **ret,
                            size_t *ret_n, NbError **err)
{
    STORE_READING(s);
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (store_prepare(s,
                      "SELECT d.id, d.network_id, d.host, d.mac, d.ip, d.created_at"
                      " FROM dhcp_servers d JOIN networks n ON n.id = d.network_id"
                      " WHERE (?1 IS NULL OR d.network_id = ?1) AND (?2 IS NULL OR n.project = ?2)"
                      " ORDER BY d.network_id, d.ip",
                      &st, err) < 0)
        return -1;
    store_bind_text(st, 1, network_id);
    store_bind_text(st, 2, scope);
    return store_collect(s, st, sizeof(DhcpServer), dhcp_server_from_row, NULL, (void **)ret, ret_n,
                         err);
}
