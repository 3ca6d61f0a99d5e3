#pragma once

/* Migrations 1 to 11 as they shipped (migrations never change once shipped): the first N entries
 * build a database of schema version N by hand, for the tests of the migrations after it. */
static const char *const shipped_schema[] = {
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
};
