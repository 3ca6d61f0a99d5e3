#include "store_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../model/tenancy.h"
#include "../util/log.h"

/*
 * Migrations, in order; each runs once, in a transaction with the version bump. Never edit one
 * that has shipped: add the next. Every resource carries a project from the start so tenancy
 * can scope queries without a data migration.
 */
static const char *const store_migrations[] = {
    /* 1 */
    "CREATE TABLE flavors ("
    "  id TEXT PRIMARY KEY, project TEXT NOT NULL DEFAULT 'default', name TEXT NOT NULL,"
    "  vcpus INTEGER NOT NULL, ram_mib INTEGER NOT NULL, disk_gib INTEGER NOT NULL,"
    "  created_at TEXT NOT NULL, UNIQUE (project, name));"
    "CREATE TABLE images ("
    "  id TEXT PRIMARY KEY, project TEXT NOT NULL DEFAULT 'default', name TEXT NOT NULL,"
    "  state TEXT NOT NULL, format TEXT, size_bytes INTEGER NOT NULL DEFAULT 0,"
    "  virtual_size_bytes INTEGER NOT NULL DEFAULT 0, volume TEXT NOT NULL,"
    "  created_at TEXT NOT NULL, updated_at TEXT NOT NULL, UNIQUE (project, name));"
    "CREATE TABLE vms ("
    "  id TEXT PRIMARY KEY, project TEXT NOT NULL DEFAULT 'default', name TEXT NOT NULL,"
    "  hostname TEXT NOT NULL, state TEXT NOT NULL, desired TEXT NOT NULL, task_id TEXT,"
    "  host TEXT NOT NULL, image_id TEXT NOT NULL REFERENCES images (id),"
    "  flavor_id TEXT NOT NULL REFERENCES flavors (id), vcpus INTEGER NOT NULL,"
    "  ram_mib INTEGER NOT NULL, disk_gib INTEGER NOT NULL, mac TEXT NOT NULL UNIQUE,"
    "  user_data TEXT, ip TEXT, error TEXT, created_at TEXT NOT NULL, updated_at TEXT NOT NULL,"
    "  UNIQUE (project, name));"
    "CREATE TABLE tasks ("
    "  id TEXT PRIMARY KEY, project TEXT NOT NULL DEFAULT 'default', kind TEXT NOT NULL,"
    "  state TEXT NOT NULL, target_id TEXT NOT NULL, step INTEGER NOT NULL DEFAULT 0,"
    "  steps INTEGER NOT NULL, params TEXT, error_code TEXT, error_message TEXT,"
    "  created_at TEXT NOT NULL, updated_at TEXT NOT NULL, finished_at TEXT);"
    "CREATE INDEX tasks_by_target ON tasks (target_id, created_at);"
    "CREATE INDEX tasks_unfinished ON tasks (state) WHERE state IN ('pending', 'running');"
    "CREATE TABLE tokens ("
    "  id TEXT PRIMARY KEY, hash TEXT NOT NULL UNIQUE, name TEXT NOT NULL,"
    "  role TEXT NOT NULL DEFAULT 'admin', created_at TEXT NOT NULL, expires_at TEXT,"
    "  revoked_at TEXT);",
    /* 2: tenancy. Resources move into the default project; the bootstrap admin owns the
     * existing tokens. vm_events is the metering journal, written by triggers so that no code
     * path can change a VM's state without it being recorded. */
    "CREATE TABLE projects ("
    "  id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, quota_vcpus INTEGER,"
    "  quota_ram_mib INTEGER, quota_disk_gib INTEGER, quota_vms INTEGER, quota_images INTEGER,"
    "  created_at TEXT NOT NULL);"
    "INSERT INTO projects (id, name, created_at) VALUES ('" NB_DEFAULT_PROJECT_ID
    "', 'default', strftime('%Y-%m-%dT%H:%M:%fZ', 'now'));"
    "UPDATE images SET project = '" NB_DEFAULT_PROJECT_ID "';"
    "UPDATE vms SET project = '" NB_DEFAULT_PROJECT_ID "';"
    "UPDATE tasks SET project = '" NB_DEFAULT_PROJECT_ID "';"
    "CREATE TABLE users ("
    "  id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, password_hash TEXT NOT NULL,"
    "  project_id TEXT NOT NULL REFERENCES projects (id), role TEXT NOT NULL,"
    "  created_at TEXT NOT NULL);"
    /* '!' is no argon2id string: the bootstrap admin cannot log in with a password. */
    "INSERT INTO users (id, name, password_hash, project_id, role, created_at) VALUES "
    "('" NB_ADMIN_USER_ID "', 'admin', '!', '" NB_DEFAULT_PROJECT_ID
    "', 'admin', strftime('%Y-%m-%dT%H:%M:%fZ', 'now'));"
    "ALTER TABLE tokens ADD COLUMN user_id TEXT NOT NULL DEFAULT '" NB_ADMIN_USER_ID "';"
    "CREATE INDEX tokens_by_user ON tokens (user_id);"
    "CREATE TABLE audit ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL, request_id TEXT NOT NULL,"
    "  user_name TEXT, project_id TEXT, source TEXT NOT NULL, method TEXT NOT NULL,"
    "  path TEXT NOT NULL, action TEXT NOT NULL, target TEXT, status INTEGER NOT NULL,"
    "  result TEXT NOT NULL);"
    "CREATE INDEX audit_by_project ON audit (project_id, id);"
    "CREATE TABLE vm_events ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT, vm_id TEXT NOT NULL, project TEXT NOT NULL,"
    "  name TEXT NOT NULL, state TEXT NOT NULL, vcpus INTEGER NOT NULL,"
    "  ram_mib INTEGER NOT NULL, disk_gib INTEGER NOT NULL, at TEXT NOT NULL);"
    "CREATE INDEX vm_events_by_project ON vm_events (project, vm_id, id);"
    "INSERT INTO vm_events (vm_id, project, name, state, vcpus, ram_mib, disk_gib, at)"
    "  SELECT id, project, name, state, vcpus, ram_mib, disk_gib, created_at FROM vms;"
    "CREATE TRIGGER vm_events_on_insert AFTER INSERT ON vms BEGIN"
    "  INSERT INTO vm_events (vm_id, project, name, state, vcpus, ram_mib, disk_gib, at)"
    "  VALUES (NEW.id, NEW.project, NEW.name, NEW.state, NEW.vcpus, NEW.ram_mib, NEW.disk_gib,"
    "          strftime('%Y-%m-%dT%H:%M:%fZ', 'now'));"
    "END;"
    "CREATE TRIGGER vm_events_on_state AFTER UPDATE OF state ON vms"
    "  WHEN OLD.state IS NOT NEW.state BEGIN"
    "  INSERT INTO vm_events (vm_id, project, name, state, vcpus, ram_mib, disk_gib, at)"
    "  VALUES (NEW.id, NEW.project, NEW.name, NEW.state, NEW.vcpus, NEW.ram_mib, NEW.disk_gib,"
    "          strftime('%Y-%m-%dT%H:%M:%fZ', 'now'));"
    "END;"
    "CREATE TRIGGER vm_events_on_delete AFTER DELETE ON vms BEGIN"
    "  INSERT INTO vm_events (vm_id, project, name, state, vcpus, ram_mib, disk_gib, at)"
    "  VALUES (OLD.id, OLD.project, OLD.name, 'deleted', OLD.vcpus, OLD.ram_mib, OLD.disk_gib,"
    "          strftime('%Y-%m-%dT%H:%M:%fZ', 'now'));"
    "END;",
    /* 3: hosts, server groups, migration. vms.host stays a host's name (existing VMs keep
     * 'local', the host the daemon registers at start); a VM being migrated claims resources on
     * migrate_to as well. Tasks gain the progress of their current step and a cancel flag. */
    "CREATE TABLE hosts ("
    "  id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, uri TEXT NOT NULL UNIQUE,"
    "  admin TEXT NOT NULL DEFAULT 'enabled', conn TEXT NOT NULL DEFAULT 'connecting',"
    "  cpu_ratio REAL NOT NULL DEFAULT 4.0, ram_ratio REAL NOT NULL DEFAULT 1.0,"
    "  disk_ratio REAL NOT NULL DEFAULT 1.0, labels TEXT NOT NULL DEFAULT '',"
    "  vcpus INTEGER NOT NULL DEFAULT 0, ram_mib INTEGER NOT NULL DEFAULT 0,"
    "  free_ram_mib INTEGER NOT NULL DEFAULT 0, disk_gib INTEGER NOT NULL DEFAULT 0,"
    "  disk_free_gib INTEGER NOT NULL DEFAULT 0, hostname TEXT, cpu_model TEXT,"
    "  libvirt_version TEXT, qemu_version TEXT, last_contact TEXT, error TEXT,"
    "  created_at TEXT NOT NULL, updated_at TEXT NOT NULL);"
    "CREATE TABLE groups ("
    "  id TEXT PRIMARY KEY, project TEXT NOT NULL, name TEXT NOT NULL, policy TEXT NOT NULL,"
    "  created_at TEXT NOT NULL, UNIQUE (project, name));"
    "ALTER TABLE vms ADD COLUMN migrate_to TEXT;"
    "ALTER TABLE vms ADD COLUMN group_id TEXT REFERENCES groups (id);"
    "ALTER TABLE vms ADD COLUMN labels TEXT NOT NULL DEFAULT '';"
    "CREATE INDEX vms_by_host ON vms (host);"
    "CREATE INDEX vms_by_migrate_to ON vms (migrate_to) WHERE migrate_to IS NOT NULL;"
    "CREATE INDEX vms_by_group ON vms (group_id) WHERE group_id IS NOT NULL;"
    "ALTER TABLE tasks ADD COLUMN progress INTEGER NOT NULL DEFAULT -1;"
    "ALTER TABLE tasks ADD COLUMN cancel_requested INTEGER NOT NULL DEFAULT 0;"
    /* Copies of an image's volume in other hosts' pools (uploads land on the local host). */
    "CREATE TABLE image_copies ("
    "  image_id TEXT NOT NULL, host TEXT NOT NULL, state TEXT NOT NULL,"
    "  updated_at TEXT NOT NULL, PRIMARY KEY (image_id, host));",
    /* 4: a controller's scale (thousands of hosts, tens of thousands of VMs). Every hot query
     * is an index search or walk (tests/unit/test_store_plan.c): look-ups by name when the
     * scope is every project, keyset pages of VMs (name, id) and of tasks (created_at, id), the
     * uses of an image or flavor, pruning by age. Usage is rolled up per VM and UTC day
     * (vm_usage_daily) up to usage_rollup.upto, where vm_usage_carry holds each VM's state; the
     * vm_events before it can then be pruned. */
    "CREATE INDEX vms_page_all ON vms (name, id);"
    "CREATE INDEX vms_page ON vms (project, name, id);"
    "CREATE INDEX vms_by_image ON vms (image_id);"
    "CREATE INDEX vms_by_flavor ON vms (flavor_id);"
    "DROP INDEX vms_by_host;"
    "CREATE INDEX vms_by_host ON vms (host, name, id);"
    "CREATE INDEX images_by_name ON images (name);"
    "CREATE INDEX flavors_by_name ON flavors (name);"
    "CREATE INDEX groups_by_name ON groups (name);"
    "CREATE INDEX users_by_project ON users (project_id);"
    "DROP INDEX tasks_by_target;"
    "CREATE INDEX tasks_by_target ON tasks (target_id, created_at, id);"
    "CREATE INDEX tasks_page_all ON tasks (created_at, id);"
    "CREATE INDEX tasks_page ON tasks (project, created_at, id);"
    "CREATE INDEX tasks_finished ON tasks (finished_at) WHERE finished_at IS NOT NULL;"
    "CREATE INDEX vm_events_by_at ON vm_events (at);"
    "CREATE INDEX vm_events_by_project_at ON vm_events (project, at);"
    "CREATE INDEX audit_by_at ON audit (at);"
    "CREATE TABLE vm_usage_daily ("
    "  vm_id TEXT NOT NULL, project TEXT NOT NULL, name TEXT NOT NULL, day INTEGER NOT NULL,"
    "  vcpu_hours REAL NOT NULL, ram_gib_hours REAL NOT NULL, disk_gib_hours REAL NOT NULL,"
    "  running_hours REAL NOT NULL, PRIMARY KEY (vm_id, day));"
    "CREATE INDEX vm_usage_daily_by_project ON vm_usage_daily (project, day);"
    "CREATE TABLE vm_usage_carry ("
    "  vm_id TEXT PRIMARY KEY, project TEXT NOT NULL, name TEXT NOT NULL, state TEXT NOT NULL,"
    "  vcpus INTEGER NOT NULL, ram_mib INTEGER NOT NULL, disk_gib INTEGER NOT NULL,"
    "  at TEXT NOT NULL);"
    "CREATE INDEX vm_usage_carry_by_project ON vm_usage_carry (project, vm_id);"
    "CREATE TABLE usage_rollup (id INTEGER PRIMARY KEY CHECK (id = 1), upto TEXT NOT NULL);",
    /* 5: tenant networks and their ports (IPAM). Addresses are host-order integers, so a
     * network's ports walk in address order through UNIQUE (network_id, ip), which is also the
     * last guard against two ports sharing an address (as UNIQUE (mac) is for MACs). A port
     * goes with its VM (ON DELETE CASCADE backs the explicit delete); a network cannot go while
     * ports use it. network_hosts: where a network's host side (libvirt network, bridge) was
     * made. Quotas gain networks and ports. Existing VMs get no ports: they keep their legacy
     * NIC. */
    "CREATE TABLE networks ("
    "  id TEXT PRIMARY KEY, project TEXT NOT NULL, name TEXT NOT NULL, type TEXT NOT NULL,"
    "  net INTEGER NOT NULL, prefix INTEGER NOT NULL, gateway INTEGER,"
    "  dhcp INTEGER NOT NULL, dns TEXT NOT NULL DEFAULT '', vni INTEGER, vlan INTEGER,"
    "  bridge TEXT, parent TEXT, mtu INTEGER NOT NULL, shared INTEGER NOT NULL DEFAULT 0,"
    "  is_default INTEGER NOT NULL DEFAULT 0, created_at TEXT NOT NULL,"
    "  UNIQUE (project, name));"
    "CREATE INDEX networks_by_name ON networks (name, shared);"
    "CREATE UNIQUE INDEX networks_one_default ON networks (project) WHERE is_default;"
    "CREATE UNIQUE INDEX networks_by_vni ON networks (vni) WHERE vni IS NOT NULL;"
    "CREATE TABLE ports ("
    "  id TEXT PRIMARY KEY, project TEXT NOT NULL,"
    "  network_id TEXT NOT NULL REFERENCES networks (id),"
    "  vm_id TEXT NOT NULL REFERENCES vms (id) ON DELETE CASCADE, slot INTEGER NOT NULL,"
    "  mac TEXT NOT NULL UNIQUE, ip INTEGER NOT NULL, created_at TEXT NOT NULL,"
    "  UNIQUE (network_id, ip), UNIQUE (vm_id, slot));"
    "CREATE INDEX ports_by_project ON ports (project, network_id, ip);"
    "CREATE TABLE network_hosts ("
    "  network_id TEXT NOT NULL REFERENCES networks (id) ON DELETE CASCADE,"
    "  host TEXT NOT NULL, created_at TEXT NOT NULL, PRIMARY KEY (network_id, host));"
    "ALTER TABLE projects ADD COLUMN quota_networks INTEGER;"
    "ALTER TABLE projects ADD COLUMN quota_ports INTEGER;",
    /* 6: security groups. A rule's remote end is a CIDR (remote_net/remote_prefix) or a group
     * (remote_group), which cannot go while a rule names it (no cascade: SECGROUP_IN_USE first).
     * The expression index is the last guard against a rule twice (NULLs are distinct in a plain
     * UNIQUE). port_secgroups follows its port (a VM's delete deletes its ports); a group cannot
     * go while a port uses it. Quotas gain secgroups. */
    "CREATE TABLE secgroups ("
    "  id TEXT PRIMARY KEY, project TEXT NOT NULL, name TEXT NOT NULL,"
    "  description TEXT NOT NULL DEFAULT '', created_at TEXT NOT NULL, UNIQUE (project, name));"
    "CREATE INDEX secgroups_by_name ON secgroups (name);"
    "CREATE TABLE secgroup_rules ("
    "  id TEXT PRIMARY KEY, group_id TEXT NOT NULL REFERENCES secgroups (id) ON DELETE CASCADE,"
    "  direction TEXT NOT NULL, protocol TEXT NOT NULL, port_min INTEGER NOT NULL DEFAULT 0,"
    "  port_max INTEGER NOT NULL DEFAULT 0, remote_net INTEGER NOT NULL DEFAULT 0,"
    "  remote_prefix INTEGER NOT NULL DEFAULT 0, remote_group TEXT REFERENCES secgroups (id),"
    "  created_at TEXT NOT NULL);"
    "CREATE UNIQUE INDEX secgroup_rules_unique ON secgroup_rules (group_id, direction, protocol,"
    "  port_min, port_max, remote_net, remote_prefix, coalesce(remote_group, ''));"
    "CREATE INDEX secgroup_rules_by_remote ON secgroup_rules (remote_group)"
    "  WHERE remote_group IS NOT NULL;"
    "CREATE TABLE port_secgroups ("
    "  port_id TEXT NOT NULL REFERENCES ports (id) ON DELETE CASCADE,"
    "  group_id TEXT NOT NULL REFERENCES secgroups (id), PRIMARY KEY (port_id, group_id));"
    "CREATE INDEX port_secgroups_by_group ON port_secgroups (group_id, port_id);"
    "ALTER TABLE projects ADD COLUMN quota_secgroups INTEGER;",
    /* 7: a host's nimbus-agent (its HTTPS URL and the host's secret, hex) and its underlay
     * address and device for VXLAN; bandwidth limits per NIC in kbit/s (0: unlimited): a
     * flavor's are copied onto the ports of a VM made with it, and a port's can change. */
    "ALTER TABLE hosts ADD COLUMN agent_url TEXT;"
    "ALTER TABLE hosts ADD COLUMN agent_secret TEXT;"
    "ALTER TABLE hosts ADD COLUMN tunnel_ip TEXT;"
    "ALTER TABLE hosts ADD COLUMN tunnel_dev TEXT;"
    "ALTER TABLE flavors ADD COLUMN net_in_kbit INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE flavors ADD COLUMN net_out_kbit INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE ports ADD COLUMN net_in_kbit INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE ports ADD COLUMN net_out_kbit INTEGER NOT NULL DEFAULT 0;",
    /* 8: the user who created a VM, written into its domain's Nova metadata; NULL for the VMs
     * from before (not known). No foreign key: a VM outlives its creator's account. */
    "ALTER TABLE vms ADD COLUMN owner_user_id TEXT;",
    /* 9: storage pools and volumes. A pool's secret (Ceph key, CHAP password) stays here and
     * goes to each host as a libvirt secret; pool_hosts records where the libvirt pool (and its
     * secret) was defined, so a pool's delete undoes exactly that. The default pool (the
     * per-host directory pool every host has had) is made at start from the daemon's settings,
     * not here. A volume's host is set for local pools only; its VM is the one it is attached
     * to (vm_id NULL: detached), and a VM's delete detaches rather than deletes (ON DELETE SET
     * NULL backs the explicit detach). UNIQUE (vm_id, target) is the last guard against two
     * volumes at one disk target. Quotas gain volumes and volume_gib. */
    "CREATE TABLE pools ("
    "  id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, type TEXT NOT NULL,"
    "  host TEXT NOT NULL DEFAULT '', libvirt_name TEXT NOT NULL UNIQUE,"
    "  is_default INTEGER NOT NULL DEFAULT 0, path TEXT NOT NULL DEFAULT '',"
    "  monitors TEXT NOT NULL DEFAULT '', source TEXT NOT NULL DEFAULT '',"
    "  initiator TEXT NOT NULL DEFAULT '', auth_user TEXT NOT NULL DEFAULT '',"
    "  secret TEXT NOT NULL DEFAULT '', created_at TEXT NOT NULL);"
    "CREATE UNIQUE INDEX pools_one_default ON pools (is_default) WHERE is_default;"
    "CREATE TABLE pool_hosts ("
    "  pool_id TEXT NOT NULL REFERENCES pools (id) ON DELETE CASCADE, host TEXT NOT NULL,"
    "  state TEXT NOT NULL, error TEXT, capacity INTEGER, allocation INTEGER,"
    "  updated_at TEXT NOT NULL, PRIMARY KEY (pool_id, host));"
    "CREATE TABLE volumes ("
    "  id TEXT PRIMARY KEY, project TEXT NOT NULL, name TEXT NOT NULL,"
    "  pool_id TEXT NOT NULL REFERENCES pools (id), host TEXT NOT NULL DEFAULT '',"
    "  size_gib INTEGER NOT NULL, format TEXT NOT NULL, state TEXT NOT NULL,"
    "  vm_id TEXT REFERENCES vms (id) ON DELETE SET NULL, bus TEXT NOT NULL DEFAULT 'virtio',"
    "  target TEXT, source_image TEXT, created_at TEXT NOT NULL, UNIQUE (project, name),"
    "  UNIQUE (vm_id, target));"
    "CREATE INDEX volumes_by_pool ON volumes (pool_id);"
    "CREATE INDEX volumes_by_name ON volumes (name);"
    "CREATE INDEX volumes_by_vm ON volumes (vm_id) WHERE vm_id IS NOT NULL;"
    "ALTER TABLE projects ADD COLUMN quota_volumes INTEGER;"
    "ALTER TABLE projects ADD COLUMN quota_volume_gib INTEGER;",
    /* 10: VM snapshots (libvirt internal snapshots named libvirt_name, "nimbus-snap-<id>").
     * A snapshot goes with its VM (the VM's delete removes them on the host first). project is
     * the VM's, kept here for quotas and scoping without a join. Quotas gain snapshots. */
    "CREATE TABLE snapshots ("
    "  id TEXT PRIMARY KEY, vm_id TEXT NOT NULL REFERENCES vms (id) ON DELETE CASCADE,"
    "  project TEXT NOT NULL, name TEXT NOT NULL, memory INTEGER NOT NULL DEFAULT 0,"
    "  description TEXT NOT NULL DEFAULT '', state TEXT NOT NULL, libvirt_name TEXT NOT NULL,"
    "  created_at TEXT NOT NULL, UNIQUE (vm_id, name));"
    "CREATE INDEX snapshots_by_project ON snapshots (project);"
    "ALTER TABLE projects ADD COLUMN quota_snapshots INTEGER;",
    /* 11: VM backups (helper "backup"). A backup outlives its VM (vm_id SET NULL, vm_name kept);
     * parent_id is the backup an incremental one builds on (its file backs this one's), never
     * deleted while a child exists. host: where the file is (a local dir pool's host). */
    "CREATE TABLE backups ("
    "  id TEXT PRIMARY KEY, vm_id TEXT REFERENCES vms (id) ON DELETE SET NULL,"
    "  vm_name TEXT NOT NULL, project TEXT NOT NULL, pool_id TEXT NOT NULL REFERENCES pools (id),"
    "  host TEXT NOT NULL, parent_id TEXT REFERENCES backups (id), kind TEXT NOT NULL,"
    "  checkpoint TEXT, state TEXT NOT NULL, volume TEXT NOT NULL,"
    "  size_bytes INTEGER NOT NULL DEFAULT 0, data_bytes INTEGER NOT NULL DEFAULT 0,"
    "  mbps REAL NOT NULL DEFAULT 0, created_at TEXT NOT NULL, finished_at TEXT);"
    "CREATE INDEX backups_by_vm ON backups (vm_id) WHERE vm_id IS NOT NULL;"
    "CREATE INDEX backups_by_project ON backups (project);"
    "CREATE INDEX backups_by_parent ON backups (parent_id) WHERE parent_id IS NOT NULL;"
    "ALTER TABLE projects ADD COLUMN quota_backups INTEGER;",
    /* 12: DHCP servers of vxlan, vlan and bridged networks, one per (network, host) where a VM
     * of the network runs: its own address of the network, taken by the ports' IPAM (which reads
     * both tables under the writer's lock, so an address is a port's or a server's), and MAC.
     * No VM and no quota: it goes when the network leaves the host, or with the network. */
    "CREATE TABLE dhcp_servers ("
    "  id TEXT PRIMARY KEY, network_id TEXT NOT NULL REFERENCES networks (id) ON DELETE CASCADE,"
    "  host TEXT NOT NULL, mac TEXT NOT NULL UNIQUE, ip INTEGER NOT NULL,"
    "  created_at TEXT NOT NULL, UNIQUE (network_id, host), UNIQUE (network_id, ip));",
    /* 13: disk QoS of a flavor's VMs (libvirt <iotune> on each disk): IOPS and MB/s (10^6
     * bytes), 0 unlimited, as every flavor before it is. */
    "ALTER TABLE flavors ADD COLUMN disk_iops INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE flavors ADD COLUMN disk_mbps INTEGER NOT NULL DEFAULT 0;",
    /* 14: the pool of a VM's root disk (an rbd pool: an RBD clone of the image); NULL: the
     * host's default pool, as for every VM before. A pool holding VMs' disks is in use. */
    "ALTER TABLE vms ADD COLUMN pool_id TEXT REFERENCES pools (id);"
    "CREATE INDEX vms_by_pool ON vms (pool_id) WHERE pool_id IS NOT NULL;",
    /* 15: volume snapshots (an RBD snapshot in rbd pools, a full copy "nimbus-vsnap-<id>" in
     * dir pools). A volume with snapshots is not deleted (VOLUME_HAS_SNAPSHOTS): no cascade.
     * project, pool_id and host are the volume's, kept for scoping and quotas (they count in
     * the project's snapshots quota, with the VM snapshots). A volume made from one records it
     * in source_snapshot (an RBD clone depends on it). */
    "CREATE TABLE volume_snapshots ("
    "  id TEXT PRIMARY KEY, volume_id TEXT NOT NULL REFERENCES volumes (id),"
    "  project TEXT NOT NULL, name TEXT NOT NULL, pool_id TEXT NOT NULL REFERENCES pools (id),"
    "  host TEXT NOT NULL DEFAULT '', size_gib INTEGER NOT NULL, state TEXT NOT NULL,"
    "  created_at TEXT NOT NULL, UNIQUE (volume_id, name));"
    "CREATE INDEX volume_snapshots_by_project ON volume_snapshots (project);"
    "ALTER TABLE volumes ADD COLUMN source_snapshot TEXT;"
    "CREATE INDEX volumes_by_source_snapshot ON volumes (source_snapshot)"
    "  WHERE source_snapshot IS NOT NULL;",
};

__thread Store *store_tls_conn;

/* ---- latency (store_stats): process-wide atomic counters, nothing allocated ---- */

static const double store_latency_bounds[STORE_LATENCY_BUCKETS] = {
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5};
static const char *const store_tx_kind_names[_STORE_TX_KIND_MAX] = {"write", "read"};
static uint64_t store_latency_counts[_STORE_TX_KIND_MAX][STORE_LATENCY_BUCKETS + 1];
static uint64_t store_latency_sum_ns[_STORE_TX_KIND_MAX];

static uint64_t
store_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    /* Never 0, which means "not timing". */
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec + 1;
}

static void
store_latency_observe(StoreTxKind kind, uint64_t since_ns)
{
    uint64_t now = store_now_ns();
    uint64_t ns = now > since_ns ? now - since_ns : 0;
    double secs = (double)ns / 1e9;
    unsigned i = 0;
    while (i < STORE_LATENCY_BUCKETS && secs > store_latency_bounds[i])
        i++;
    __atomic_add_fetch(&store_latency_counts[kind][i], 1, __ATOMIC_RELAXED);
    __atomic_add_fetch(&store_latency_sum_ns[kind], ns, __ATOMIC_RELAXED);
}

void
store_read_done(Store *c)
{
    store_latency_observe(STORE_TX_READ, c->read_since_ns);
    c->read_since_ns = 0;
}

void
store_stats(StoreStats *ret)
{
    memset(ret, 0, sizeof(*ret));
    memcpy(ret->bounds, store_latency_bounds, sizeof(ret->bounds));
    for (int k = 0; k < _STORE_TX_KIND_MAX; k++) {
        StoreLatency *l = &ret->tx[k];
        l->kind = store_tx_kind_names[k];
        for (int i = 0; i <= STORE_LATENCY_BUCKETS; i++)
            l->counts[i] = __atomic_load_n(&store_latency_counts[k][i], __ATOMIC_RELAXED);
        l->sum = (double)__atomic_load_n(&store_latency_sum_ns[k], __ATOMIC_RELAXED) / 1e9;
    }
}

int
store_db_error(Store *s, const char *what, NbError **err)
{
    return nb_error_set(err, NB_ERR_INTERNAL, "store: %s: %s", what, sqlite3_errmsg(s->db));
}

/* FNV-1a: SQL texts are a few hundred bytes; hashing one costs far less than preparing it. */
static size_t
store_sql_hash(const char *sql)
{
    uint64_t h = 1469598103934665603ULL;
    for (const unsigned char *p = (const unsigned char *)sql; *p; p++)
        h = (h ^ *p) * 1099511628211ULL;
    return (size_t)h;
}

/* The slot holding sql, or the empty slot where it would go. */
static StoreStmtSlot *
store_stmt_slot(Store *c, const char *sql)
{
    size_t mask = c->stmts_cap - 1;
    for (size_t i = store_sql_hash(sql) & mask;; i = (i + 1) & mask) {
        StoreStmtSlot *slot = &c->stmts[i];
        if (!slot->st || streq(sqlite3_sql(slot->st), sql))
            return slot;
    }
}

static int
store_stmt_cache_grow(Store *c)
{
    size_t old_cap = c->stmts_cap;
    StoreStmtSlot *old = c->stmts;
    size_t cap = old_cap ? old_cap * 2 : 64;
    StoreStmtSlot *slots = calloc(cap, sizeof(*slots));
    if (!slots)
        return -ENOMEM;
    c->stmts = slots;
    c->stmts_cap = cap;
    for (size_t i = 0; i < old_cap; i++)
        if (old[i].st)
            *store_stmt_slot(c, sqlite3_sql(old[i].st)) = old[i];
    free(old);
    return 0;
}

int
store_prepare(Store *s, const char *sql, sqlite3_stmt **ret, NbError **err)
{
    /* Load factor at most one half keeps probes short. */
    if ((s->stmts_n + 1) * 2 > s->stmts_cap && store_stmt_cache_grow(s) < 0)
        return nb_error_set(err, NB_ERR_INTERNAL, "out of memory");
    StoreStmtSlot *slot = store_stmt_slot(s, sql);
    if (slot->st && !slot->in_use) {
        slot->in_use = true;
        *ret = slot->st;
        return 0;
    }
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL) != SQLITE_OK)
        return store_db_error(s, "prepare", err);
    if (!slot->st) {
        slot->st = st;
        slot->in_use = true;
        s->stmts_n++;
    }
    /* else: the cached copy is lent out (a nested use of the same SQL): this one is not
     * cached and store_stmt_release finalizes it. */
    *ret = st;
    return 0;
}

void
store_stmt_release(sqlite3_stmt **stp)
{
    sqlite3_stmt *st = *stp;
    if (!st)
        return;
    Store *c = store_tls_conn;
    if (c && c->stmts && sqlite3_db_handle(st) == c->db) {
        StoreStmtSlot *slot = store_stmt_slot(c, sqlite3_sql(st));
        if (slot->st == st) {
            sqlite3_reset(st);
            sqlite3_clear_bindings(st);
            slot->in_use = false;
            return;
        }
    }
    sqlite3_finalize(st);
}

static void
store_stmt_cache_free(Store *c)
{
    for (size_t i = 0; i < c->stmts_cap; i++)
        sqlite3_finalize(c->stmts[i].st);
    free(c->stmts);
    c->stmts = NULL;
    c->stmts_cap = c->stmts_n = 0;
}

Store *
store_read_lock(Store *s)
{
    if (s->n_readers == 0) {
        store_lock_conn(s);
        s->read_since_ns = store_now_ns();
        return s;
    }
    for (unsigned i = 0; i < s->n_readers; i++) {
        Store *r = s->readers[i];
        if (pthread_mutex_trylock(&r->lock) == 0) {
            r->saved_tls = store_tls_conn;
            store_tls_conn = r;
            r->read_since_ns = store_now_ns();
            return r;
        }
    }
    /* Every reader is busy: queue on one of them, never on the writer. The wait is not the
     * read's: its time starts once it holds the connection. */
    unsigned i = __atomic_fetch_add(&s->next_reader, 1, __ATOMIC_RELAXED) % s->n_readers;
    Store *r = store_lock_conn(s->readers[i]);
    r->read_since_ns = store_now_ns();
    return r;
}

int
store_exec(Store *s, const char *sql, NbError **err)
{
    char *msg = NULL;
    if (sqlite3_exec(s->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        nb_error_set(err, NB_ERR_INTERNAL, "store: %s", msg ? msg : "exec failed");
        sqlite3_free(msg);
        return -1;
    }
    return 0;
}

/* A write transaction's time includes BEGIN IMMEDIATE's wait for another process's write lock:
 * the caller waits for it too. */
int
store_begin(Store *s, NbError **err)
{
    uint64_t since = store_now_ns();
    if (store_exec(s, "BEGIN IMMEDIATE", err) < 0)
        return -1;
    s->tx_since_ns = since;
    return 0;
}

/* A failed COMMIT is counted by the ROLLBACK that follows it. */
int
store_commit(Store *s, NbError **err)
{
    if (store_exec(s, "COMMIT", err) < 0)
        return -1;
    if (s->tx_since_ns)
        store_latency_observe(STORE_TX_WRITE, s->tx_since_ns);
    s->tx_since_ns = 0;
    return 0;
}

void
store_rollback(Store *s)
{
    sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    if (s->tx_since_ns)
        store_latency_observe(STORE_TX_WRITE, s->tx_since_ns);
    s->tx_since_ns = 0;
}

int
store_bind_text(sqlite3_stmt *st, int idx, const char *v)
{
    if (!v || !*v)
        return sqlite3_bind_null(st, idx);
    return sqlite3_bind_text(st, idx, v, -1, SQLITE_TRANSIENT);
}

void
store_column_copy(sqlite3_stmt *st, int col, char *buf, size_t len)
{
    const unsigned char *v = sqlite3_column_text(st, col);
    snprintf(buf, len, "%s", v ? (const char *)v : "");
}

void
store_strv_free(char **v)
{
    for (size_t i = 0; v && v[i]; i++)
        free(v[i]);
    free(v);
}

int
store_strv_query(Store *s, const char *sql, const char *arg, const char *what, char ***ret,
                 NbError **err)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (store_prepare(s, sql, &st, err) < 0)
        return -1;
    sqlite3_bind_text(st, 1, arg, -1, SQLITE_STATIC);
    size_t n = 0;
    char **v = calloc(1, sizeof(*v));
    int rc = SQLITE_DONE;
    while (v && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        char **grown = realloc(v, (n + 2) * sizeof(*v));
        if (!grown) {
            rc = SQLITE_NOMEM;
            break;
        }
        v = grown;
        v[n + 1] = NULL;
        if (!(v[n] = store_column_strdup(st, 0))) {
            rc = SQLITE_NOMEM;
            break;
        }
        n++;
    }
    if (!v || rc != SQLITE_DONE) {
        store_strv_free(v);
        return !v || rc == SQLITE_NOMEM ? nb_error_set(err, NB_ERR_INTERNAL, "out of memory")
                                        : store_db_error(s, what, err);
    }
    *ret = v;
    return 0;
}

char *
store_column_strdup(sqlite3_stmt *st, int col)
{
    const unsigned char *v = sqlite3_column_text(st, col);
    return v ? strdup((const char *)v) : NULL;
}

int
store_collect(Store *s, sqlite3_stmt *st, size_t elem_size, StoreRowFn row_fn,
              void (*clear_elem)(void *elem), void **ret, size_t *ret_n, NbError **err)
{
    char *list = NULL;
    size_t n = 0, cap = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (n == cap) {
            /* Doubling: a list of 1,000 hosts must not copy itself 1,000 times. */
            size_t want = cap ? cap * 2 : 16;
            char *grown = want <= SIZE_MAX / elem_size ? realloc(list, want * elem_size) : NULL;
            if (!grown)
                break;
            list = grown;
            cap = want;
        }
        memset(list + n * elem_size, 0, elem_size);
        row_fn(st, list + n * elem_size);
        n++;
    }
    if (rc != SQLITE_DONE) {
        for (size_t i = 0; clear_elem && i < n; i++)
            clear_elem(list + i * elem_size);
        free(list);
        return rc == SQLITE_ROW ? nb_error_set(err, NB_ERR_INTERNAL, "out of memory")
                                : store_db_error(s, "list", err);
    }
    *ret = list;
    *ret_n = n;
    return 0;
}

/* One row of sql (?1 key, ?2 scope when it has two parameters): 1 found, 0 not, -1 error. */
static int
store_get_one(Store *s, const char *sql, const char *key, const char *scope, StoreRowFn row_fn,
              void *ret, NbError **err)
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
        return store_db_error(s, "get", err);
    row_fn(st, ret);
    return 1;
}

int
store_get_by_id_or_name(Store *s, const char *sql_by_id, const char *sql_by_name, const char *key,
                        const char *scope, StoreRowFn row_fn, void *ret, const char *not_found_code,
                        const char *what, NbError **err)
{
    int rc = store_get_one(s, sql_by_id, key, scope, row_fn, ret, err);
    if (rc == 0)
        rc = store_get_one(s, sql_by_name, key, scope, row_fn, ret, err);
    if (rc == 0)
        return nb_error_set(err, not_found_code, "%s '%.64s' not found", what, key);
    return rc < 0 ? -1 : 0;
}

/* Whether v is 1..max characters, each a letter, a digit or one of extra. */
static bool
store_marker_part_valid(const char *v, size_t len, size_t max, const char *extra)
{
    if (len == 0 || len > max)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = v[i];
        bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        if (!alnum && (c == '\0' || !strchr(extra, c)))
            return false;
    }
    return true;
}

int
store_marker_parse(const char *marker, const char *key_chars, char *key, size_t key_len, char *id,
                   size_t id_len, NbError **err)
{
    const char *sep = marker ? strchr(marker, '~') : NULL;
    if (!sep || !store_marker_part_valid(marker, (size_t)(sep - marker), key_len - 1, key_chars) ||
        !store_marker_part_valid(sep + 1, strlen(sep + 1), id_len - 1, "-"))
        return nb_error_set(err, NB_ERR_INVALID_MARKER,
                            "marker '%.64s' is not one a previous page returned", marker);
    snprintf(key, key_len, "%.*s", (int)(sep - marker), marker);
    snprintf(id, id_len, "%s", sep + 1);
    return 0;
}

void
store_marker_make(char out[STORE_MARKER_MAX], const char *key, const char *id)
{
    snprintf(out, STORE_MARKER_MAX, "%s~%s", key, id);
}

unsigned
store_page_limit(unsigned limit)
{
    if (limit == 0)
        return STORE_PAGE_DEFAULT;
    return limit > STORE_PAGE_MAX ? STORE_PAGE_MAX : limit;
}

uint64_t
store_placement_generation(Store *s)
{
    STORE_LOCKED(s);
    return s->placement_gen;
}

int
store_schema_version(Store *s)
{
    STORE_LOCKED(s);
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(s->db, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK ||
        sqlite3_step(st) != SQLITE_ROW)
        return -1;
    return sqlite3_column_int(st, 0);
}

static int
store_migrate(Store *s, NbError **err)
{
    int version = store_schema_version(s);
    if (version < 0)
        return store_db_error(s, "read schema version", err);
    int latest = (int)ELEMENTSOF(store_migrations);
    if (version > latest)
        return nb_error_set(err, NB_ERR_INTERNAL,
                            "store schema version %d is newer than this nimbusd (%d)", version,
                            latest);
    for (int v = version; v < latest; v++) {
        char bump[64];
        snprintf(bump, sizeof(bump), "PRAGMA user_version = %d", v + 1);
        if (store_begin(s, err) < 0)
            return -1;
        if (store_exec(s, store_migrations[v], err) < 0 || store_exec(s, bump, err) < 0) {
            store_rollback(s);
            return -1;
        }
        if (store_commit(s, err) < 0)
            return -1;
        log_info("store: migrated schema to version %d", v + 1);
    }
    return 0;
}

/* Opens one connection with the pragmas every connection of the store shares. */
static int
store_conn_open(Store *c, const char *path, bool reader, bool sync_full, NbError **err)
{
    pthread_mutex_init(&c->lock, NULL);
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | (reader ? 0 : SQLITE_OPEN_CREATE);
    if (sqlite3_open_v2(path, &c->db, flags, NULL) != SQLITE_OK)
        return nb_error_set(err, NB_ERR_INTERNAL, "store: open %s: %s", path,
                            c->db ? sqlite3_errmsg(c->db) : "out of memory");
    sqlite3_busy_timeout(c->db, 5000);
    /* WAL: readers see the last commit and never block the writer nor wait for it. NORMAL
     * syncs at checkpoints only: a crash of nimbusd loses nothing committed (the WAL is in the
     * OS's page cache), a power loss may lose the last transactions; FULL syncs every commit. */
    const char *pragmas = reader      ? "PRAGMA query_only = 1; PRAGMA foreign_keys = ON;"
                          : sync_full ? "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;"
                                        "PRAGMA foreign_keys = ON;"
                                      : "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;"
                                        "PRAGMA foreign_keys = ON;";
    return store_exec(c, pragmas, err);
}

static void
store_conn_close(Store *c)
{
    store_stmt_cache_free(c);
    sqlite3_close(c->db);
    pthread_mutex_destroy(&c->lock);
}

int
store_open_opts(const char *path, const StoreOptions *o, Store **ret, NbError **err)
{
    StoreOptions opts = o ? *o : (StoreOptions){0};
    unsigned n_readers = opts.readers ? opts.readers : STORE_DEFAULT_READERS;
    /* An in-memory database is private to its connection: nothing to share with readers. */
    if (!*path || streq(path, ":memory:") || strncmp(path, "file:", 5) == 0)
        n_readers = 0;
    Store *s = calloc(1, sizeof(*s));
    if (!s)
        return nb_error_set(err, NB_ERR_INTERNAL, "out of memory");
    s->placement_gen = 1;
    if (store_conn_open(s, path, false, opts.sync_full, err) < 0 || store_migrate(s, err) < 0) {
        store_close(s);
        return -1;
    }
    s->readers = calloc(n_readers ? n_readers : 1, sizeof(*s->readers));
    if (!s->readers) {
        store_close(s);
        return nb_error_set(err, NB_ERR_INTERNAL, "out of memory");
    }
    for (unsigned i = 0; i < n_readers; i++) {
        Store *r = calloc(1, sizeof(*r));
        if (!r) {
            store_close(s);
            return nb_error_set(err, NB_ERR_INTERNAL, "out of memory");
        }
        r->parent = s;
        s->readers[s->n_readers++] = r;
        if (store_conn_open(r, path, true, opts.sync_full, err) < 0) {
            store_close(s);
            return -1;
        }
    }
    *ret = s;
    return 0;
}

int
store_open(const char *path, Store **ret, NbError **err)
{
    return store_open_opts(path, NULL, ret, err);
}

void
store_close(Store *s)
{
    if (!s)
        return;
    for (unsigned i = 0; i < s->n_readers; i++) {
        store_conn_close(s->readers[i]);
        free(s->readers[i]);
    }
    free(s->readers);
    store_conn_close(s);
    free(s);
}
