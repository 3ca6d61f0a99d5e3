/*
 * The store's hot SQL, in one place so that the EXPLAIN QUERY PLAN test (tests/unit/
 * test_store_plan.c) checks the very text the store runs: each must be an index search or walk,
 * never a scan of a whole table.
 */
#pragma once

#define VM_COLUMNS                                                                                 \
    "id, name, hostname, state, desired, task_id, host, image_id, flavor_id, vcpus, ram_mib, "     \
    "disk_gib, mac, user_data, ip, error, created_at, updated_at, project, migrate_to, group_id, " \
    "labels, owner_user_id, pool_id"

/* A page of VMs leaves user_data out (NULL): up to 64 KiB a VM that a list never shows. */
#define VM_PAGE_COLUMNS                                                                            \
    "id, name, hostname, state, desired, task_id, host, image_id, flavor_id, vcpus, ram_mib, "     \
    "disk_gib, mac, NULL, ip, error, created_at, updated_at, project, migrate_to, group_id, "      \
    "labels, owner_user_id, pool_id"

#define STORE_SQL_VM_BY_ID                                                                         \
    "SELECT " VM_COLUMNS " FROM vms WHERE id = ?1 AND (?2 IS NULL OR project = ?2)"
/* Names are unique per project: with scope NULL the first of several is as good as any. */
#define STORE_SQL_VM_BY_NAME                                                                       \
    "SELECT " VM_COLUMNS " FROM vms WHERE name = ?1 AND (?2 IS NULL OR project = ?2) LIMIT 1"
/* Keyset pages: the rows after the marker's (name, id), through vms_page_all/vms_page. */
#define STORE_SQL_VM_PAGE_ALL                                                                      \
    "SELECT " VM_PAGE_COLUMNS " FROM vms WHERE (name, id) > (?2, ?3) ORDER BY name, id LIMIT ?4"
#define STORE_SQL_VM_PAGE_SCOPED                                                                   \
    "SELECT " VM_PAGE_COLUMNS " FROM vms WHERE project = ?1 AND (name, id) > (?2, ?3) "            \
    "ORDER BY name, id LIMIT ?4"
/* A host's VMs, without user_data (NULL, like a page): the reconciler reads them at every look
 * at the host, and none of the callers needs up to 64 KiB a VM of cloud-init data. */
#define STORE_SQL_VM_BY_HOST "SELECT " VM_PAGE_COLUMNS " FROM vms WHERE host = ? ORDER BY name, id"
#define STORE_SQL_VM_CLAIM                                                                         \
    "UPDATE vms SET task_id = ?1, desired = ?2, state = coalesce(?3, state), "                     \
    "error = NULL, updated_at = ?4, migrate_to = coalesce(?6, migrate_to) "                        \
    "WHERE id = ?5 AND task_id IS NULL"
#define STORE_SQL_VM_OBSERVE                                                                       \
    "UPDATE vms SET state = ?1, desired = coalesce(?2, desired), "                                 \
    "ip = CASE WHEN ?1 = 'running' OR ?1 = 'paused' THEN ip END, "                                 \
    "updated_at = ?3 WHERE id = ?4 AND task_id IS NULL "                                           \
    "AND (state != ?1 OR desired != coalesce(?2, desired))"
/* store_observe_batch: the VM's state before, read with the same conditions as the update. */
#define STORE_SQL_OBS_VM_READ                                                                      \
    "SELECT state FROM vms WHERE id = ?1 AND task_id IS NULL AND state != 'error' AND host = ?2 "  \
    "AND (?3 IS NULL OR updated_at < ?3)"
#define STORE_SQL_OBS_VM_STATE                                                                     \
    "UPDATE vms SET state = ?1, desired = coalesce(?2, desired), "                                 \
    "ip = CASE WHEN ?1 = 'running' OR ?1 = 'paused' THEN ip END, "                                 \
    "updated_at = ?3 WHERE id = ?4 AND task_id IS NULL AND state != 'error' AND host = ?5 "        \
    "AND (state != ?1 OR desired != coalesce(?2, desired)) AND (?6 IS NULL OR updated_at < ?6)"
#define STORE_SQL_VM_SET_IP "UPDATE vms SET ip = ? WHERE id = ? AND ip IS NOT ?"
#define STORE_SQL_VM_MARK_UNKNOWN                                                                  \
    "UPDATE vms SET state = 'unknown' WHERE host = ? AND state != 'unknown'"

#define TASK_COLUMNS                                                                               \
    "id, kind, state, target_id, step, steps, params, error_code, error_message, created_at, "     \
    "updated_at, finished_at, project, progress, cancel_requested"

#define STORE_SQL_TASK_BY_ID                                                                       \
    "SELECT " TASK_COLUMNS " FROM tasks WHERE id = ?1 AND (?2 IS NULL OR project = ?2)"
/* Newest first: the rows before the marker's (created_at, id). */
#define STORE_SQL_TASK_PAGE_ALL                                                                    \
    "SELECT " TASK_COLUMNS " FROM tasks WHERE (created_at, id) < (?2, ?3) "                        \
    "ORDER BY created_at DESC, id DESC LIMIT ?4"
#define STORE_SQL_TASK_PAGE_SCOPED                                                                 \
    "SELECT " TASK_COLUMNS " FROM tasks WHERE project = ?1 AND (created_at, id) < (?2, ?3) "       \
    "ORDER BY created_at DESC, id DESC LIMIT ?4"
#define STORE_SQL_TASK_PAGE_VM                                                                     \
    "SELECT " TASK_COLUMNS " FROM tasks WHERE target_id = ?5 AND (?1 IS NULL OR project = ?1) "    \
    "AND (created_at, id) < (?2, ?3) ORDER BY created_at DESC, id DESC LIMIT ?4"
#define STORE_SQL_TASK_UNFINISHED                                                                  \
    "SELECT " TASK_COLUMNS " FROM tasks WHERE state IN ('pending', 'running') "                    \
    "ORDER BY created_at, rowid"

/* Timestamps are all RFC 3339 UTC with milliseconds, so they compare as strings. */
#define STORE_SQL_TOKEN_LOOKUP                                                                     \
    "SELECT t.id, u.id, u.name, u.project_id, u.role FROM tokens t "                               \
    "JOIN users u ON u.id = t.user_id WHERE t.hash = ? AND "                                       \
    "t.revoked_at IS NULL AND (t.expires_at IS NULL OR "                                           \
    "t.expires_at > strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))"

/* The host's columns (h) and the sums of what the claims (c) hold on it. */
#define HOST_SELECT_COLUMNS                                                                        \
    "SELECT h.id, h.name, h.uri, h.admin, h.conn, h.cpu_ratio, h.ram_ratio, h.disk_ratio, "        \
    "h.labels, h.vcpus, h.ram_mib, h.free_ram_mib, h.disk_gib, h.disk_free_gib, h.hostname, "      \
    "h.cpu_model, h.libvirt_version, h.qemu_version, h.last_contact, h.error, h.created_at, "      \
    "h.updated_at, coalesce(sum(c.vcpus), 0), coalesce(sum(c.ram_mib), 0), "                       \
    "coalesce(sum(c.disk_gib), 0), coalesce(sum(c.placed), 0), h.agent_url, h.agent_secret, "      \
    "h.tunnel_ip, h.tunnel_dev "

/* Every host: one pass over vms, grouped by the host each claim is on. */
#define HOST_SELECT_ALL                                                                            \
    HOST_SELECT_COLUMNS                                                                            \
    "FROM hosts h LEFT JOIN ("                                                                     \
    "  SELECT host AS at, vcpus, ram_mib, disk_gib, 1 AS placed FROM vms"                          \
    "  UNION ALL"                                                                                  \
    "  SELECT migrate_to, vcpus, ram_mib, disk_gib, 0 FROM vms"                                    \
    "  WHERE migrate_to IS NOT NULL AND migrate_to != host"                                        \
    ") c ON c.at = h.name GROUP BY h.id ORDER BY h.name"

/* One host whose column `key` is ?1: only its own claims are read, through the indexes on
 * vms.host and vms.migrate_to. */
#define HOST_SELECT_ONE(key)                                                                       \
    "WITH h AS (SELECT * FROM hosts WHERE " key " = ?1) " HOST_SELECT_COLUMNS "FROM h LEFT JOIN (" \
    "  SELECT vcpus, ram_mib, disk_gib, 1 AS placed FROM vms WHERE host = (SELECT name FROM h)"    \
    "  UNION ALL"                                                                                  \
    "  SELECT vcpus, ram_mib, disk_gib, 0 FROM vms WHERE migrate_to = (SELECT name FROM h)"        \
    "  AND migrate_to != host"                                                                     \
    ") c ON 1 GROUP BY h.id"

#define STORE_SQL_HOST_FACTS_READ "SELECT conn, vcpus, ram_mib, disk_gib FROM hosts WHERE id = ?"
/* Facts columns are written only when facts is given (?3 = 1). */
#define STORE_SQL_HOST_FACTS                                                                       \
    "UPDATE hosts SET conn = ?2, error = ?4,"                                                      \
    " last_contact = CASE WHEN ?2 = 'up' THEN ?5 ELSE last_contact END,"                           \
    " vcpus = CASE WHEN ?3 THEN ?6 ELSE vcpus END,"                                                \
    " ram_mib = CASE WHEN ?3 THEN ?7 ELSE ram_mib END,"                                            \
    " free_ram_mib = CASE WHEN ?3 THEN ?8 ELSE free_ram_mib END,"                                  \
    " disk_gib = CASE WHEN ?3 THEN ?9 ELSE disk_gib END,"                                          \
    " disk_free_gib = CASE WHEN ?3 THEN ?10 ELSE disk_free_gib END,"                               \
    " hostname = CASE WHEN ?3 THEN ?11 ELSE hostname END,"                                         \
    " cpu_model = CASE WHEN ?3 THEN ?12 ELSE cpu_model END,"                                       \
    " libvirt_version = CASE WHEN ?3 THEN ?13 ELSE libvirt_version END,"                           \
    " qemu_version = CASE WHEN ?3 THEN ?14 ELSE qemu_version END"                                  \
    " WHERE id = ?1"

/* Usage (usage_store.c): the carried states and the events since the roll-up, by VM then in
 * order. ?1 the project, ?2 the roll-up's upto ("" when none yet), ?3 the end ("\x7f": none). */
#define STORE_SQL_USAGE_RAW                                                                        \
    "SELECT vm_id, name, state, vcpus, ram_mib, disk_gib, at, 0 AS seq, project "                  \
    "FROM vm_usage_carry WHERE project = ?1 "                                                      \
    "UNION ALL SELECT vm_id, name, state, vcpus, ram_mib, disk_gib, at, id, project "              \
    "FROM vm_events WHERE project = ?1 AND at >= ?2 AND at < ?3 ORDER BY vm_id, seq"
/* The rolled-up days of [?2, ?3) by VM, each weighing the part of it the window covers (?4: the
 * UTC midnight at or before ?2). */
#define STORE_SQL_USAGE_DAYS                                                                       \
    "SELECT vm_id, max(name), sum(vcpu_hours * w), sum(ram_gib_hours * w), "                       \
    "sum(disk_gib_hours * w), sum(running_hours * w) FROM ("                                       \
    "  SELECT *, max(0, min(?3, day + 86400) - max(?2, day)) / 86400.0 AS w"                       \
    "  FROM vm_usage_daily WHERE project = ?1 AND day >= ?4 AND day < ?3"                          \
    ") GROUP BY vm_id ORDER BY vm_id"

/* Gets by id, then by name (store_get_by_id_or_name); with scope NULL a name's first row. */
#define IMAGE_COLUMNS                                                                              \
    "id, name, state, format, size_bytes, virtual_size_bytes, volume, created_at, updated_at, "    \
    "project"

#define STORE_SQL_IMAGE_BY_ID                                                                      \
    "SELECT " IMAGE_COLUMNS " FROM images WHERE id = ?1 AND (?2 IS NULL OR project = ?2)"
#define STORE_SQL_IMAGE_BY_NAME                                                                    \
    "SELECT " IMAGE_COLUMNS " FROM images WHERE name = ?1 AND (?2 IS NULL OR project = ?2) "       \
    "LIMIT 1"
#define GROUP_SELECT                                                                               \
    "SELECT id, name, policy, created_at, project, "                                               \
    "(SELECT count(*) FROM vms WHERE group_id = groups.id) FROM groups "

#define STORE_SQL_GROUP_BY_ID GROUP_SELECT "WHERE id = ?1 AND (?2 IS NULL OR project = ?2)"
#define STORE_SQL_GROUP_BY_NAME                                                                    \
    GROUP_SELECT "WHERE name = ?1 AND (?2 IS NULL OR project = ?2) LIMIT 1"
#define FLAVOR_COLUMNS                                                                             \
    "id, name, vcpus, ram_mib, disk_gib, created_at, net_in_kbit, net_out_kbit, disk_iops, "       \
    "disk_mbps"

#define STORE_SQL_FLAVOR_BY_ID "SELECT " FLAVOR_COLUMNS " FROM flavors WHERE id = ?1"
#define STORE_SQL_FLAVOR_BY_NAME "SELECT " FLAVOR_COLUMNS " FROM flavors WHERE name = ?1 LIMIT 1"
#define PROJECT_COLUMNS                                                                            \
    "id, name, quota_vcpus, quota_ram_mib, quota_disk_gib, quota_vms, quota_images, "              \
    "quota_networks, quota_ports, quota_secgroups, quota_volumes, quota_volume_gib, "              \
    "quota_snapshots, quota_backups, created_at"

/* A project's scope is its own id. */
#define STORE_SQL_PROJECT_BY_ID                                                                    \
    "SELECT " PROJECT_COLUMNS " FROM projects WHERE id = ?1 AND (?2 IS NULL OR id = ?2)"
#define STORE_SQL_PROJECT_BY_NAME                                                                  \
    "SELECT " PROJECT_COLUMNS " FROM projects WHERE name = ?1 AND (?2 IS NULL OR id = ?2)"
#define USER_COLUMNS "id, name, project_id, role, created_at"

#define STORE_SQL_USER_BY_ID "SELECT " USER_COLUMNS " FROM users WHERE id = ?1"
#define STORE_SQL_USER_BY_NAME "SELECT " USER_COLUMNS " FROM users WHERE name = ?1"

#define NETWORK_COLUMNS                                                                            \
    "id, project, name, type, net, prefix, gateway, dhcp, dns, vni, vlan, bridge, parent, mtu, "   \
    "shared, is_default, created_at"
/* A project sees its own networks and the shared ones (?2 NULL: every network). */
#define STORE_SQL_NETWORK_BY_ID                                                                    \
    "SELECT " NETWORK_COLUMNS " FROM networks WHERE id = ?1 AND (?2 IS NULL OR project = ?2 OR "   \
    "shared)"
/* By name: the project's own (UNIQUE (project, name)), else a shared one; for every project, the
 * first of that name. */
#define STORE_SQL_NETWORK_BY_NAME_OWN                                                              \
    "SELECT " NETWORK_COLUMNS " FROM networks WHERE project = ?2 AND name = ?1"
#define STORE_SQL_NETWORK_BY_NAME_SHARED                                                           \
    "SELECT " NETWORK_COLUMNS " FROM networks WHERE name = ?1 AND shared = 1 LIMIT 1"
#define STORE_SQL_NETWORK_BY_NAME_ANY                                                              \
    "SELECT " NETWORK_COLUMNS " FROM networks WHERE name = ?1 ORDER BY shared DESC LIMIT 1"

#define PORT_COLUMNS                                                                               \
    "id, project, network_id, vm_id, slot, mac, ip, created_at, net_in_kbit, net_out_kbit"
#define STORE_SQL_PORTS_BY_VM "SELECT " PORT_COLUMNS " FROM ports WHERE vm_id = ?1 ORDER BY slot"
/* A network's ports in address order: also IPAM's walk for the lowest free address. */
#define STORE_SQL_PORTS_BY_NETWORK                                                                 \
    "SELECT " PORT_COLUMNS " FROM ports WHERE network_id = ?1 AND (?2 IS NULL OR project = ?2) "   \
    "ORDER BY ip"
#define STORE_SQL_PORTS_BY_PROJECT                                                                 \
    "SELECT " PORT_COLUMNS " FROM ports WHERE project = ?1 ORDER BY network_id, ip"
/* IPAM: an address is a port's or a DHCP server's (dhcp_servers), never both. */
#define STORE_SQL_PORT_IPS                                                                         \
    "SELECT ip FROM ports WHERE network_id = ?1 AND ip >= ?2"                                      \
    " UNION ALL SELECT ip FROM dhcp_servers WHERE network_id = ?1 AND ip >= ?2 ORDER BY ip"
/* NULL when neither holds one; each max() is one index look-up. */
#define STORE_SQL_PORT_MAX_IP                                                                      \
    "SELECT nullif(max(coalesce((SELECT max(ip) FROM ports WHERE network_id = ?1), 0),"            \
    " coalesce((SELECT max(ip) FROM dhcp_servers WHERE network_id = ?1), 0)), 0)"
#define STORE_SQL_PORT_IP_TAKEN                                                                    \
    "SELECT 1 FROM ports WHERE network_id = ?1 AND ip = ?2"                                        \
    " UNION ALL SELECT 1 FROM dhcp_servers WHERE network_id = ?1 AND ip = ?2"
#define DHCP_SERVER_COLUMNS "id, network_id, host, mac, ip, created_at"
/* From the host's VMs (a few) to their ports, not from the network's ports (maybe thousands):
 * the unary + keeps SQLite off the index on network_id, which it would otherwise prefer (it has
 * no statistics); at 15,000 ports a check of 1,500 hosts was 22 million rows. */
#define STORE_SQL_PORT_NETWORK_ON_HOST                                                             \
    "SELECT 1 FROM vms v JOIN ports p ON p.vm_id = v.id"                                           \
    " WHERE v.host = ?2 AND v.id != ?3 AND +p.network_id = ?1"                                     \
    " UNION ALL SELECT 1 FROM vms v JOIN ports p ON p.vm_id = v.id"                                \
    " WHERE v.migrate_to = ?2 AND v.id != ?3 AND +p.network_id = ?1 LIMIT 1"
#define STORE_SQL_PORT_BY_MAC "SELECT " PORT_COLUMNS " FROM ports WHERE mac = ?1 AND vm_id = ?2"

/* Security groups (secgroup_store.c). */
#define SECGROUP_COLUMNS "id, project, name, description, created_at"
#define STORE_SQL_SECGROUP_BY_ID                                                                   \
    "SELECT " SECGROUP_COLUMNS " FROM secgroups WHERE id = ?1 AND (?2 IS NULL OR project = ?2)"
#define STORE_SQL_SECGROUP_BY_NAME                                                                 \
    "SELECT " SECGROUP_COLUMNS " FROM secgroups WHERE name = ?1 AND (?2 IS NULL OR project = ?2) " \
    "LIMIT 1"
#define SECRULE_COLUMNS                                                                            \
    "id, group_id, direction, protocol, port_min, port_max, remote_net, remote_prefix, "           \
    "remote_group, created_at"
#define STORE_SQL_SECRULES_OF_GROUP                                                                \
    "SELECT " SECRULE_COLUMNS " FROM secgroup_rules WHERE group_id = ?1 ORDER BY created_at, id"
/* Where a group's filters may be: the hosts of its ports' VMs. */
#define STORE_SQL_SECGROUP_HOSTS                                                                   \
    "SELECT DISTINCT v.host FROM port_secgroups ps JOIN ports p ON p.id = ps.port_id "             \
    "JOIN vms v ON v.id = p.vm_id WHERE ps.group_id = ?1 AND v.host != '' ORDER BY v.host"
/* Whether a group has a port on a host, but those of one VM (?3, may be NULL); from the host's
 * VMs, as above (a project's default group holds every port of the project). */
#define STORE_SQL_SECGROUP_ON_HOST                                                                 \
    "SELECT EXISTS (SELECT 1 FROM vms v JOIN ports p ON p.vm_id = v.id "                           \
    "JOIN port_secgroups ps ON ps.port_id = p.id WHERE v.host = ?2 AND +ps.group_id = ?1 "         \
    "AND (?3 IS NULL OR v.id != ?3))"
/* The rules, of any group, naming the group as remote group. */
#define STORE_SQL_SECRULES_NAMING_GROUP                                                            \
    "SELECT " SECRULE_COLUMNS " FROM secgroup_rules WHERE remote_group = ?1 ORDER BY id"
/* The same rule (dedupe), through secgroup_rules_unique. */
#define STORE_SQL_SECRULE_SAME                                                                     \
    "SELECT " SECRULE_COLUMNS " FROM secgroup_rules WHERE group_id = ?1 AND direction = ?2 AND "   \
    "protocol = ?3 AND port_min = ?4 AND port_max = ?5 AND remote_net = ?6 AND "                   \
    "remote_prefix = ?7 AND coalesce(remote_group, '') = ?8"
/* What keeps a group: the ports in it, and the rules of other groups naming it. */
#define STORE_SQL_SECGROUP_USERS                                                                   \
    "SELECT (SELECT count(*) FROM port_secgroups WHERE group_id = ?1), "                           \
    "(SELECT count(*) FROM secgroup_rules WHERE remote_group = ?1 AND group_id != ?1)"
#define STORE_SQL_SECGROUPS_OF_PORT                                                                \
    "SELECT " SECGROUP_COLUMNS " FROM secgroups WHERE id IN "                                      \
    "(SELECT group_id FROM port_secgroups WHERE port_id = ?1) ORDER BY name, id"
#define STORE_SQL_PORTS_OF_SECGROUP                                                                \
    "SELECT " PORT_COLUMNS " FROM ports WHERE id IN "                                              \
    "(SELECT port_id FROM port_secgroups WHERE group_id = ?1) ORDER BY id"
/* The ports whose filters change with the group's rules or members: its own, and those of the
 * groups with a rule naming it as remote group. */
#define STORE_SQL_PORTS_AFFECTED_BY_SECGROUP                                                       \
    "SELECT " PORT_COLUMNS " FROM ports WHERE id IN "                                              \
    "(SELECT port_id FROM port_secgroups WHERE group_id = ?1 UNION "                               \
    "SELECT ps.port_id FROM secgroup_rules r JOIN port_secgroups ps ON ps.group_id = r.group_id "  \
    "WHERE r.remote_group = ?1) ORDER BY id"
#define STORE_SQL_SECGROUP_MEMBER_IPS                                                              \
    "SELECT DISTINCT ip FROM ports WHERE id IN "                                                   \
    "(SELECT port_id FROM port_secgroups WHERE group_id = ?1) ORDER BY ip"

/* Storage pools (pool_store.c): global, looked up by id or by name (both UNIQUE). */
#define POOL_COLUMNS                                                                               \
    "id, name, type, host, libvirt_name, is_default, path, monitors, source, initiator, "          \
    "auth_user, secret, created_at"
#define STORE_SQL_POOL_BY_ID "SELECT " POOL_COLUMNS " FROM pools WHERE id = ?1"
#define STORE_SQL_POOL_BY_NAME "SELECT " POOL_COLUMNS " FROM pools WHERE name = ?1"
/* Through the partial index pools_one_default (its WHERE term, then its column). */
#define STORE_SQL_POOL_DEFAULT                                                                     \
    "SELECT " POOL_COLUMNS " FROM pools WHERE is_default AND is_default = 1"
#define POOL_HOST_COLUMNS "host, state, error, capacity, allocation, updated_at"
#define STORE_SQL_POOL_HOSTS                                                                       \
    "SELECT " POOL_HOST_COLUMNS " FROM pool_hosts WHERE pool_id = ?1 ORDER BY host"
#define STORE_SQL_POOL_VOLUMES                                                                     \
    "SELECT (SELECT count(*) FROM volumes WHERE pool_id = ?1) + "                                  \
    "(SELECT count(*) FROM vms WHERE pool_id = ?1)"

/* Volumes (volume_store.c): a project's, scoped like VMs. */
#define VOLUME_COLUMNS                                                                             \
    "id, project, name, pool_id, host, size_gib, format, state, vm_id, bus, target, "              \
    "source_image, created_at, source_snapshot"
#define STORE_SQL_VOLUME_BY_ID                                                                     \
    "SELECT " VOLUME_COLUMNS " FROM volumes WHERE id = ?1 AND (?2 IS NULL OR project = ?2)"
/* By name within a project: UNIQUE (project, name). */
#define STORE_SQL_VOLUME_BY_NAME                                                                   \
    "SELECT " VOLUME_COLUMNS " FROM volumes WHERE project = ?2 AND name = ?1"
/* By name in every project (admins): the oldest of that name. No index on name alone (schema
 * v9 has none): a scan of the volumes, only for an admin naming a volume. */
#define STORE_SQL_VOLUME_BY_NAME_ANY                                                               \
    "SELECT " VOLUME_COLUMNS " FROM volumes WHERE name = ?1 ORDER BY created_at, id LIMIT 1"
/* A VM's volumes (volumes_by_vm); ?1 the scope (NULL: any), ?3 a pool (NULL: any). */
#define STORE_SQL_VOLUMES_BY_VM                                                                    \
    "SELECT " VOLUME_COLUMNS " FROM volumes WHERE vm_id = ?2 AND (?1 IS NULL OR project = ?1) "    \
    "AND (?3 IS NULL OR pool_id = ?3) ORDER BY created_at, id"
/* A pool's volumes (volumes_by_pool); ?1 the scope (NULL: any). */
#define STORE_SQL_VOLUMES_BY_POOL                                                                  \
    "SELECT " VOLUME_COLUMNS " FROM volumes WHERE pool_id = ?3 AND (?1 IS NULL OR project = ?1) "  \
    "ORDER BY created_at, id"
#define STORE_SQL_VOLUMES_BY_PROJECT                                                               \
    "SELECT " VOLUME_COLUMNS " FROM volumes WHERE project = ?1 ORDER BY created_at, id"
/* The disk targets a VM's volumes hold (attaching, attached or detaching). */
#define STORE_SQL_VOLUME_TARGETS_OF_VM                                                             \
    "SELECT target FROM volumes WHERE vm_id = ?1 AND target IS NOT NULL ORDER BY target"
