/*
 * The store: schema, migrations, and one file per resource. Every store_* call is atomic, and the
 * calls that must change several rows together (a VM and its task, a task's end and the VM it
 * held) are single calls, each one transaction. This interface names no SQLite type: the SQLite
 * backend's insides (connections, statement cache) are in store_internal.h.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../model/flavor.h"
#include "../model/group.h"
#include "../model/host.h"
#include "../model/image.h"
#include "../model/network.h"
#include "../model/pool.h"
#include "../model/secgroup.h"
#include "../model/backup.h"
#include "../model/snapshot.h"
#include "../model/task.h"
#include "../model/tenancy.h"
#include "../model/vm.h"
#include "../model/volume.h"
#include "../util/error.h"

typedef struct Store Store;

int store_open(const char *path, Store **ret, NbError **err);
void store_close(Store *s);
int store_schema_version(Store *s);

/* The placement generation: starts at 1 and grows with every write that can change what a host
 * has claimed or can offer (a VM inserted or its row deleted, a migration set or ended, any
 * host write but an unchanged facts refresh). Whoever caches a view of the hosts compares it
 * with the generation the view was built at. In memory only: it restarts with the daemon. */
uint64_t store_placement_generation(Store *s);

/* sync_full: synchronous=FULL (a power loss loses no committed transaction) instead of NORMAL
 * (a crash of nimbusd loses none; a power loss may lose the last ones). readers: read-only
 * connections for reads that must not wait behind the writer (0: the default, 4). */
typedef struct StoreOptions {
    bool sync_full;
    unsigned readers;
} StoreOptions;
/* store_open with options (o NULL: the defaults, like store_open). */
int store_open_opts(const char *path, const StoreOptions *o, Store **ret, NbError **err);

/* The store's latency, counted in memory for the whole process (a daemon opens one store) for
 * the metrics: a write transaction from its BEGIN to its COMMIT or ROLLBACK, and a read from
 * taking a read connection to giving it back. */
typedef enum StoreTxKind {
    STORE_TX_WRITE,
    STORE_TX_READ,
    _STORE_TX_KIND_MAX,
} StoreTxKind;
#define STORE_LATENCY_BUCKETS 12
typedef struct StoreLatency {
    const char *kind;                           /* "write", "read" */
    uint64_t counts[STORE_LATENCY_BUCKETS + 1]; /* per bucket (not cumulative); the last: +Inf */
    double sum;                                 /* seconds */
} StoreLatency;
typedef struct StoreStats {
    double bounds[STORE_LATENCY_BUCKETS]; /* the buckets' upper bounds, seconds, ascending */
    StoreLatency tx[_STORE_TX_KIND_MAX];
} StoreStats;
/* A snapshot of the counts since the process started; each count is read atomically, the set
 * as a whole is not (one observation may show in a bucket and not yet in the sum). */
void store_stats(StoreStats *ret);

/* Retention in days (0: keep forever). Defaults: STORE_RETENTION_DEFAULT. */
typedef struct StoreRetention {
    unsigned tasks_days, events_days, audit_days;
} StoreRetention;
#define STORE_RETENTION_DEFAULT ((StoreRetention){30, 90, 365})
/* Deletes finished tasks (never pending or running ones), vm_events and audit rows older than
 * their retention; vm_events are rolled up into per-VM daily usage first, so usage stays
 * right. ret_counts (may be NULL): rows deleted from tasks, vm_events, audit. */
int store_prune(Store *s, const StoreRetention *r, int64_t ret_counts[3], NbError **err);

/* ---- flavors ---- */
int flavor_store_insert(Store *s, const Flavor *f, NbError **err); /* NAME_TAKEN */
/* By id, else by name. FLAVOR_NOT_FOUND. */
int flavor_store_get(Store *s, const char *id_or_name, Flavor *ret, NbError **err);
int flavor_store_list(Store *s, Flavor **ret, size_t *ret_n, NbError **err);
int flavor_store_delete(Store *s, const char *id, NbError **err); /* FLAVOR_IN_USE */

/*
 * Project scoping: calls that take `scope` see only that project's rows (NULL: every project,
 * for admins). Another project's row is "not found", exactly like a missing one.
 */

/* ---- images ---- */
/* Inserts into img->project, checking its images quota in the same transaction. */
int image_store_insert(Store *s, const Image *img, NbError **err);
int image_store_get(Store *s, const char *scope, const char *id_or_name, Image *ret, NbError **err);
int image_store_list(Store *s, const char *scope, Image **ret, size_t *ret_n, NbError **err);
/* Compare-and-swap on the state: 0 when moved, NB_ERR_IMAGE_ALREADY_UPLOADED when the image was
 * not in `from`. */
int image_store_transition(Store *s, const char *id, ImageState from, ImageState to, NbError **err);
int image_store_set_active(Store *s, const Image *img, NbError **err);
int image_store_delete(Store *s, const char *id, NbError **err); /* IMAGE_IN_USE */
/* Images left half-uploaded by a daemon that died. */
int image_store_list_uploading(Store *s, Image **ret, size_t *ret_n, NbError **err);

/* ---- image copies: an image's volume in another host's pool (cluster_store.c) ---- */
typedef enum ImageCopyState {
    IMAGE_COPY_NONE,    /* no record: never copied (or the pool is shared) */
    IMAGE_COPY_COPYING, /* a copy was started; after a crash it may be partial */
    IMAGE_COPY_READY,
} ImageCopyState;
/* The ImageCopyState of the image on host, or -1 on error. */
int image_copy_get(Store *s, const char *image_id, const char *host, NbError **err);
/* Records the state: IMAGE_COPY_COPYING or IMAGE_COPY_READY (image_copy_delete forgets). */
int image_copy_set(Store *s, const char *image_id, const char *host, ImageCopyState state,
                   NbError **err);
/* The hosts that have a record for the image, copying or ready: a NULL-terminated array of
 * strings, each and the array to free. */
int image_copy_list(Store *s, const char *image_id, char ***ret_hosts, NbError **err);
int image_copy_delete(Store *s, const char *image_id, const char *host, NbError **err);

/* ---- VMs ---- */
/* Inserts the VM and its create task, the VM held by the task, after checking vm->project's
 * quota and that its group (if any) is one of its project's, all in one transaction: concurrent
 * creates cannot pass a limit. NAME_TAKEN, QUOTA_EXCEEDED, GROUP_NOT_FOUND. ret_gen (may be
 * NULL) receives the placement generation right after the insert, read under the same lock.
 * ports (n_ports 0..VM_NICS_MAX, may be NULL when 0): the VM's NICs, inserted in the same
 * transaction; core sets network_id, mac, slot and ip (0: allocate), the store fills id,
 * project, vm_id, ip and created_at (meaningful only on success); the VM's ip becomes its first
 * port's. Each network must be the VM's
 * project's or shared (NETWORK_NOT_FOUND). Adds IP_IN_USE, IP_OUTSIDE_NETWORK, NETWORK_FULL,
 * MAC_TAKEN (of a port), TOO_MANY_NICS and QUOTA_EXCEEDED (ports). */
int vm_store_insert_with_task(Store *s, const Vm *vm, const Task *task, Port *ports, size_t n_ports,
                              uint64_t *ret_gen, NbError **err);
/* QUOTA_EXCEEDED if the VM would not fit its project's quota now (the insert checks again). */
int vm_store_quota_check(Store *s, const Vm *vm, NbError **err);
int vm_store_get(Store *s, const char *scope, const char *id_or_name, Vm *ret, NbError **err);
int vm_store_list(Store *s, const char *scope, Vm **ret, size_t *ret_n, NbError **err);
void vm_list_free(Vm *vms, size_t n);

#define STORE_MARKER_MAX 160
/* A page holds limit rows: 0 means STORE_PAGE_DEFAULT, more than STORE_PAGE_MAX that many. */
#define STORE_PAGE_DEFAULT 100
#define STORE_PAGE_MAX 1000
/* A page of VMs in a stable order (name, then id), user_data not loaded (NULL). marker: ""
 * or NULL for the first page, else a ret_next_marker from an earlier page (opaque text, safe
 * in a URL query without escaping); ret_next_marker is "" on the last page. Rows created or
 * deleted during a walk never make another row appear twice or be skipped. INVALID_MARKER. */
int vm_store_list_page(Store *s, const char *scope, const char *marker, unsigned limit, Vm **ret,
                       size_t *ret_n, char ret_next_marker[STORE_MARKER_MAX], NbError **err);
/* Takes the VM for a task: fails with VM_BUSY when another task holds it. On success the VM's
 * task_id is the task's, desired and state are set (state < 0 leaves it), and the task row is
 * inserted, all in one transaction. */
int vm_store_claim(Store *s, const char *vm_id, const Task *task, VmPower desired, int state,
                   NbError **err);
/* vm_store_claim for a vm.migrate task (state left as it is) that also starts the migration:
 * migrate_to = dest, so the VM claims on dest from this transaction on. VM_BUSY. */
int vm_store_claim_for_migration(Store *s, const char *vm_id, const Task *task, VmPower desired,
                                 const char *dest, NbError **err);
/* What the reconciler saw. Applies only while no task holds the VM (a task owns its VM's
 * state); returns 1 if applied, 0 if skipped. desired < 0 leaves it. */
int vm_store_observe(Store *s, const char *vm_id, VmState state, int desired, NbError **err);
int vm_store_set_ip(Store *s, const char *vm_id, const char *ip, NbError **err);
/* The VMs of a host that cannot be reached (vms.host = host): state unknown, whether or not a
 * task holds them. */
int vm_store_mark_host_unknown(Store *s, const char *host, NbError **err);
/* Starts (dest: a host's name) or ends (dest NULL or "") a migration: while migrate_to is set
 * the VM claims resources on both hosts. VM_NOT_FOUND. */
int vm_store_set_migration(Store *s, const char *vm_id, const char *dest, NbError **err);
/* The VM now lives on host: sets host and clears migrate_to. VM_NOT_FOUND. */
int vm_store_move(Store *s, const char *vm_id, const char *host, NbError **err);
/* Replaces the labels the VM asks its host to carry (PATCH /v1/vms/{id}); VM_NOT_FOUND. */
int vm_store_set_labels(Store *s, const char *vm_id, const Labels *labels, NbError **err);
/* VMs whose host is host, of every project, by name; without their user_data (empty). */
int vm_store_list_by_host(Store *s, const char *host, Vm **ret, size_t *ret_n, NbError **err);
/* Members of a server group, by name. */
int vm_store_list_by_group(Store *s, const char *group_id, Vm **ret, size_t *ret_n, NbError **err);

/* ---- tenant networks (network_store.c) ----
 * A project sees its own networks and the shared ones (scope NULL: every network). */
/* NAME_TAKEN (per project), NETWORK_CIDR_OVERLAP (with a network of the same project, any type;
 * a nat or isolated one with every nat or isolated network), NETWORK_INVALID_VNI (a VNI is
 * taken), QUOTA_EXCEEDED (networks). n->bridge empty: derived from the id (network_bridge_name). */
int network_store_insert(Store *s, const Network *n, NbError **err);
/* By id, else by name: the scope's own network of that name first, then a shared one (scope
 * NULL: any network of that name). NETWORK_NOT_FOUND. */
int network_store_get(Store *s, const char *scope, const char *id_or_name, Network *ret,
                      NbError **err);
/* By name, then id. */
int network_store_list(Store *s, const char *scope, Network **ret, size_t *ret_n, NbError **err);
void network_list_free(Network *n, size_t count);
/* Deletes one of the scope's own networks (a shared network of another project is not the
 * scope's to delete: NETWORK_NOT_FOUND) and its host records: remove its host side first
 * (network_store_hosts). NETWORK_IN_USE while ports use it, checked in the same transaction. */
int network_store_delete(Store *s, const char *scope, const char *id, NbError **err);
/* The project's default network, made in the same transaction when it has none: type nat, the
 * first /24 of the pool (pool_net/pool_prefix, prefix 8..24) that overlaps no nat or isolated
 * network and none of the project's, gateway .1, dhcp, mtu 1500, named "default" (or
 * "default-2", ... when taken). Counts against the networks quota (QUOTA_EXCEEDED); NETWORK_FULL
 * when the pool has no /24 left. Concurrent callers get the same network. */
int network_store_ensure_default(Store *s, const char *project, uint32_t pool_net,
                                 unsigned pool_prefix, Network *ret, NbError **err);
/* The hosts a network's host side was made on: add (idempotent; NETWORK_NOT_FOUND), remove
 * (absent: 0), list (by name; NULL-terminated, free with store_strv_free). */
int network_store_host_add(Store *s, const char *network_id, const char *host, NbError **err);
int network_store_host_remove(Store *s, const char *network_id, const char *host, NbError **err);
int network_store_hosts(Store *s, const char *network_id, char ***ret_hosts, NbError **err);
/* The networks whose host side was made on host (network_hosts), by id: what a host's periodic
 * check re-ensures. */
int network_store_list_on_host(Store *s, const char *host, Network **ret, size_t *ret_n,
                               NbError **err);
/* The network's ports whose VM is on host or migrating to it, by address. */
int network_store_ports_on_host(Store *s, const char *network_id, const char *host, Port **ret,
                                size_t *ret_n, NbError **err);
/* Frees a NULL-terminated array of strings and the array (NULL: nothing). */
void store_strv_free(char **v);

/* ---- ports: VMs' NICs (port_store.c) ---- */
/* A VM's ports by slot. */
int port_store_list_by_vm(Store *s, const char *vm_id, Port **ret, size_t *ret_n, NbError **err);
/* The ports of the scope's VMs (NULL: every port) on network_id (NULL: every network), by
 * network then address. */
int port_store_list(Store *s, const char *scope, const char *network_id, Port **ret, size_t *ret_n,
                    NbError **err);
/* The VM's port with that MAC (any case). PORT_NOT_FOUND. */
int port_store_get_by_mac(Store *s, const char *vm_id, const char *mac, Port *ret, NbError **err);
/* Hot-plug: p has vm_id, network_id, mac and ip (0: allocate); fills id, project (the VM's),
 * slot (the lowest free), ip and created_at. VM_NOT_FOUND, NETWORK_NOT_FOUND (not the VM's
 * project's nor shared), TOO_MANY_NICS, IP_IN_USE, IP_OUTSIDE_NETWORK, NETWORK_FULL, MAC_TAKEN,
 * QUOTA_EXCEEDED (ports). Every port inserted (here and with its VM) gets its VM's flavor's
 * bandwidth limits (net_in_kbit, net_out_kbit), in the same transaction. */
int port_store_add(Store *s, Port *p, NbError **err);
int port_store_delete(Store *s, const char *port_id, NbError **err); /* PORT_NOT_FOUND */
/* A port by id, of the scope's project (NULL: any). PORT_NOT_FOUND. */
int port_store_get(Store *s, const char *scope, const char *id, Port *ret, NbError **err);
/* A port's own limits, kbit/s (0: unlimited). PORT_NOT_FOUND. */
int port_store_set_bandwidth(Store *s, const char *id, uint32_t in_kbit, uint32_t out_kbit,
                             NbError **err);
/* Whether a VM other than except_vm, living on host or migrating to it, has a port on the
 * network: 1, 0, or -1. (Whether the host still needs its copy of the network.) */
int port_store_network_used_on_host(Store *s, const char *network_id, const char *host,
                                    const char *except_vm, NbError **err);
void port_list_free(Port *p, size_t n);
/* The network's DHCP server on host (vxlan, vlan, bridged), made if missing: its address from
 * the ports' IPAM in the same transaction (NETWORK_FULL), mac (used only when it is made). */
int port_store_dhcp_server_ensure(Store *s, const char *network_id, const char *host,
                                  const char *mac, DhcpServer *ret, NbError **err);
/* Forgets the server of (network, host), freeing its address; absent is fine. */
int port_store_dhcp_server_delete(Store *s, const char *network_id, const char *host,
                                  NbError **err);
/* The DHCP servers of the scope's networks (NULL: all), of network_id (NULL: every network);
 * free() the array. */
int port_store_dhcp_server_list(Store *s, const char *scope, const char *network_id,
                                DhcpServer **ret, size_t *ret_n, NbError **err);

/* ---- security groups (secgroup_store.c) ----
 * A project's own groups only (scope NULL: every project's); another project's group is
 * SECGROUP_NOT_FOUND, like a missing one. */
/* Inserts g (id, project, name, description, created_at set by the caller) with Neutron's two
 * default rules (egress any to 0.0.0.0/0, ingress any from the group's own members), one
 * transaction. NAME_TAKEN (per project), QUOTA_EXCEEDED (secgroups). */
int secgroup_store_insert(Store *s, const SecGroup *g, NbError **err);
/* By id, else by name. SECGROUP_NOT_FOUND. */
int secgroup_store_get(Store *s, const char *scope, const char *id_or_name, SecGroup *ret,
                       NbError **err);
/* By name, then id. */
int secgroup_store_list(Store *s, const char *scope, SecGroup **ret, size_t *ret_n, NbError **err);
/* Deletes the group and its rules. SECGROUP_IN_USE while a port is in it or a rule of another
 * group names it as remote group (checked in the same transaction); SECGROUP_NOT_FOUND. */
int secgroup_store_delete(Store *s, const char *scope, const char *id, NbError **err);
/* Adds r to the group r->group_id (id or name, the scope's). r->remote_group, when set, is the
 * id or name of a group of the same project (else SECGROUP_NOT_FOUND) and is stored as its id.
 * Fills id, group_id, remote_group and created_at. The same rule twice: r becomes the existing
 * one and 1 is returned (0: added). SECGROUP_NOT_FOUND, SECGROUP_RULE_INVALID (r not valid). */
int secgroup_store_rule_add(Store *s, const char *scope, SecRule *r, NbError **err);
/* Deletes a rule of one of the scope's groups. SECGROUP_RULE_NOT_FOUND. */
int secgroup_store_rule_delete(Store *s, const char *scope, const char *rule_id, NbError **err);
/* The group's rules, oldest first (no scope: the caller has resolved the group). */
int secgroup_store_rules(Store *s, const char *group_id, SecRule **ret, size_t *ret_n,
                         NbError **err);
/* The hosts of the VMs whose ports are in the group, each once, by name: where its filters may be.
 * *ret to free (NULL when none). */
int secgroup_store_group_hosts(Store *s, const char *group_id, char (**ret)[NB_NAME_MAX + 1],
                               size_t *ret_n, NbError **err);
/* 1 when a port of the group belongs to a VM placed on host, other than exclude_vm (NULL: none),
 * else 0; -1 on error. */
int secgroup_store_group_on_host(Store *s, const char *group_id, const char *host,
                                 const char *exclude_vm, NbError **err);
/* The rules, of any group, naming the group as remote group, by id. */
int secgroup_store_rules_naming(Store *s, const char *group_id, SecRule **ret, size_t *ret_n,
                                NbError **err);
/* Replaces the port's groups with groups[0..n) (ids or names of groups of the port's project;
 * repeats count once; n 0 clears), one transaction. PORT_NOT_FOUND, SECGROUP_NOT_FOUND. */
int secgroup_store_port_set(Store *s, const char *port_id, const char *const *groups, size_t n,
                            NbError **err);
/* The port's groups, by name. */
int secgroup_store_port_groups(Store *s, const char *port_id, SecGroup **ret, size_t *ret_n,
                               NbError **err);
/* The ports in the group, by id. */
int secgroup_store_group_ports(Store *s, const char *group_id, Port **ret, size_t *ret_n,
                               NbError **err);
/* The ports whose filters depend on the group: its members and the members of every group with
 * a rule naming it as remote group (their hosts must rebuild those filters when the group's
 * rules or members change), by id. */
int secgroup_store_affected_ports(Store *s, const char *group_id, Port **ret, size_t *ret_n,
                                  NbError **err);
/* The addresses of the group's members' ports, ascending, without repeats (a remote group
 * rule's expansion). *ret to free (NULL when none). */
int secgroup_store_member_ips(Store *s, const char *group_id, uint32_t **ret, size_t *ret_n,
                              NbError **err);
void secgroup_list_free(SecGroup *g, size_t n);
void secrule_list_free(SecRule *r, size_t n);

/* ---- pools (pool_store.c) ----
 * Pools are global (no project); every user may read them (without the secret: pool_to_json
 * never writes it), admins write them. Pool.secret is returned as stored: core gives it to
 * libvirt as a secret on each host. Monitors are kept as one comma-separated text. */
int pool_store_insert(Store *s, const Pool *p, NbError **err); /* NAME_TAKEN */
/* Inserts p (is_default set) unless a default pool exists; *ret = the default pool. Concurrent
 * callers get the same row. */
int pool_store_ensure_default(Store *s, const Pool *p, Pool *ret, NbError **err);
/* By id, else by name. POOL_NOT_FOUND. */
int pool_store_get(Store *s, const char *id_or_name, Pool *ret, NbError **err);
int pool_store_get_default(Store *s, Pool *ret, NbError **err); /* POOL_NOT_FOUND */
/* By name. */
int pool_store_list(Store *s, Pool **ret, size_t *ret_n, NbError **err);
/* POOL_IN_USE while volumes are in it, or for the default pool; pool_hosts rows go too.
 * POOL_NOT_FOUND. */
int pool_store_delete(Store *s, const char *id, NbError **err);
/* Records (insert or replace) the pool's state on st->host; updated_at now when empty.
 * POOL_NOT_FOUND. */
int pool_store_host_set(Store *s, const char *pool_id, const PoolHostState *st, NbError **err);
/* Absent: 0. */
int pool_store_host_remove(Store *s, const char *pool_id, const char *host, NbError **err);
/* By host name; *ret to free (NULL when none). */
int pool_store_hosts(Store *s, const char *pool_id, PoolHostState **ret, size_t *ret_n,
                     NbError **err);
void pool_list_free(Pool *p, size_t n);

/* ---- volumes (volume_store.c) ----
 * Project-owned, scoped like VMs. The state column is the volume's lock: a task takes it with
 * volume_store_transition or volume_store_attach_begin and gives it back when it ends. */
/* NAME_TAKEN (per project), QUOTA_EXCEEDED (volumes +1, volume_gib + size, same transaction),
 * POOL_NOT_FOUND. */
int volume_store_insert(Store *s, const Volume *v, NbError **err);
/* By id, else by name. VOLUME_NOT_FOUND. */
int volume_store_get(Store *s, const char *scope, const char *id_or_name, Volume *ret,
                     NbError **err);
/* vm_id / pool_id NULL: any. Ordered by created_at, id. */
int volume_store_list(Store *s, const char *scope, const char *vm_id, const char *pool_id,
                      Volume **ret, size_t *ret_n, NbError **err);
/* state -> to if the current state's bit (1u << state) is in from_mask, else VOLUME_BUSY when the
 * current state is transitional (creating/attaching/detaching/deleting), VOLUME_IN_USE when
 * attached, INVALID_STATE otherwise. *ret (may be NULL) = the row after. VOLUME_NOT_FOUND. */
int volume_store_transition(Store *s, const char *id, unsigned from_mask, VolumeState to,
                            Volume *ret, NbError **err);
/* available -> attaching with vm_id, bus and the target picked (volume_target_pick over the VM's
 * volumes) in one transaction: VOLUME_IN_USE (attached), VOLUME_BUSY, TOO_MANY_VOLUMES,
 * VM_NOT_FOUND, VOLUME_NOT_FOUND. *ret (may be NULL) = the row after. */
int volume_store_attach_begin(Store *s, const char *id, const char *vm_id, VolumeBus bus,
                              Volume *ret, NbError **err);
/* attaching -> attached (ok) or -> available with vm_id/target cleared (!ok). INVALID_STATE when
 * not attaching. */
int volume_store_attach_end(Store *s, const char *id, bool ok, NbError **err);
/* detaching -> available with vm_id/target cleared. INVALID_STATE when not detaching. */
int volume_store_detach_end(Store *s, const char *id, NbError **err);
/* A grow only (VOLUME_SHRINK); QUOTA_EXCEEDED (volume_gib, the growth); VOLUME_BUSY while a
 * snapshot of it is being made. */
int volume_store_set_size(Store *s, const char *id, uint64_t size_gib, NbError **err);
int volume_store_delete(Store *s, const char *id, NbError **err); /* VOLUME_NOT_FOUND */
void volume_list_free(Volume *v, size_t n);

/* ---- volume snapshots (volume_snapshot_store.c) ----
 * A volume's snapshot, in the volume's project (scoping) and counted in its snapshots quota. The
 * state column is its lock, taken in the same transaction as the task's row is inserted. */
/* One transaction: the volume (snap->volume_id) available, or attached unless detached_only
 * (VOLUME_IN_USE; VOLUME_BUSY, INVALID_STATE otherwise); the quota (snapshots +1); the row
 * (snap->state, normally creating; project, pool_id, host and size_gib filled from the volume:
 * NAME_TAKEN per volume); task's row when task is given. */
int volume_snapshot_store_create(Store *s, VolumeSnapshot *snap, bool detached_only,
                                 const Task *task, NbError **err);
/* One transaction: the snapshot from a state in from_mask (1u << state; 0: any) to `to`
 * (SNAPSHOT_BUSY), and task's row when given. To deleting: SNAPSHOT_HAS_CLONES while a volume
 * made from it depends on it (an RBD clone, or a copy being made). */
int volume_snapshot_store_claim(Store *s, const char *id, unsigned from_mask,
                                VolumeSnapshotState to, const Task *task, NbError **err);
int volume_snapshot_store_delete(Store *s, const char *id, NbError **err); /* SNAPSHOT_NOT_FOUND */
/* By id, or by name when volume_id is given; scope: the project (NULL: any). SNAPSHOT_NOT_FOUND. */
int volume_snapshot_store_get(Store *s, const char *scope, const char *volume_id,
                              const char *id_or_name, VolumeSnapshot *ret, NbError **err);
/* Oldest first; volume_id NULL: every volume's. */
int volume_snapshot_store_list(Store *s, const char *scope, const char *volume_id,
                               VolumeSnapshot **ret, size_t *ret_n, NbError **err);
void volume_snapshot_list_free(VolumeSnapshot *v, size_t n);

/* ---- VM snapshots (snapshot_store.c) ----
 * A snapshot belongs to its VM (ON DELETE CASCADE) and counts in the VM's project's quota. Its
 * state column is its lock; its task holds the VM as well (vms.task_id), taken in the same
 * transaction as the row's state, so a snapshot is never in a task's state without that task. */
/* One transaction: the quota (snapshots +1), the row (snap->state, normally creating), and,
 * when task is not NULL, the VM held by the task (no other task holds it; state and desired
 * unchanged) and the task recorded. NAME_TAKEN (per VM), QUOTA_EXCEEDED, VM_NOT_FOUND,
 * VM_BUSY. */
int snapshot_store_create(Store *s, const Snapshot *snap, const Task *task, NbError **err);
/* One transaction: the snapshot from a state whose bit (1u << state) is in from_mask to `to`,
 * the VM held by task and the task recorded. SNAPSHOT_NOT_FOUND, SNAPSHOT_BUSY (not in
 * from_mask), VM_BUSY. */
int snapshot_store_claim(Store *s, const char *id, unsigned from_mask, SnapshotState to,
                         const Task *task, NbError **err);
/* The state to `to` when its bit is in from_mask (0: from any). SNAPSHOT_BUSY,
 * SNAPSHOT_NOT_FOUND. */
int snapshot_store_set_state(Store *s, const char *id, unsigned from_mask, SnapshotState to,
                             NbError **err);
/* By id, else (vm_id given) by name among that VM's; scope: a project or NULL (any).
 * SNAPSHOT_NOT_FOUND. */
int snapshot_store_get(Store *s, const char *scope, const char *vm_id, const char *id_or_name,
                       Snapshot *ret, NbError **err);
/* scope / vm_id NULL: any. Ordered by created_at, id. */
int snapshot_store_list(Store *s, const char *scope, const char *vm_id, Snapshot **ret,
                        size_t *ret_n, NbError **err);
int snapshot_store_delete(Store *s, const char *id, NbError **err); /* SNAPSHOT_NOT_FOUND */
void snapshot_list_free(Snapshot *v, size_t n);

/* ---- VM backups (backup_store.c) ----
 * A backup belongs to its project (quota backups) and outlives its VM (vm_id SET NULL). Its
 * state column is its lock; a create task also holds the VM (vms.task_id), in one transaction
 * with the row. */
/* One transaction: the quota (backups +1), the row, and, when task is not NULL, the VM
 * (task->target_id) held by the task and the task recorded. QUOTA_EXCEEDED, VM_BUSY. */
int backup_store_create(Store *s, const Backup *b, const Task *task, NbError **err);
/* One transaction: from a state in from_mask to `to` (to deleting: BACKUP_IN_USE while a
 * later backup builds on it) and, when task is not NULL, the task recorded (the backup's
 * project). BACKUP_NOT_FOUND, BACKUP_BUSY, BACKUP_IN_USE. */
int backup_store_claim(Store *s, const char *id, unsigned from_mask, BackupState to,
                       const Task *task, NbError **err);
int backup_store_set_state(Store *s, const char *id, unsigned from_mask, BackupState to,
                           NbError **err);
/* creating -> ready with its figures and finished_at (any other state: unchanged). */
int backup_store_finish(Store *s, const char *id, uint64_t size_bytes, uint64_t data_bytes,
                        double mbps, NbError **err);
/* The backup's checkpoint name (NULL: none). */
int backup_store_set_checkpoint(Store *s, const char *id, const char *checkpoint, NbError **err);
/* The VM's backups lose their checkpoint names (the checkpoints are gone from its domain). */
int backup_store_drop_checkpoints(Store *s, const char *vm_id, NbError **err);
int backup_store_delete(Store *s, const char *id, NbError **err); /* BACKUP_NOT_FOUND */
int backup_store_get(Store *s, const char *scope, const char *id, Backup *ret, NbError **err);
/* scope / vm_id NULL: any. Ordered by created_at, id. */
int backup_store_list(Store *s, const char *scope, const char *vm_id, Backup **ret, size_t *ret_n,
                      NbError **err);
/* 1 and *ret: the VM's newest ready backup with a checkpoint (an incremental's base), or 0. */
int backup_store_last_checkpoint(Store *s, const char *vm_id, Backup *ret, NbError **err);
void backup_list_free(Backup *b, size_t n);

/* ---- batched observations (the reconciler's thread is the only caller) ---- */
typedef enum StoreObsKind {
    STORE_OBS_VM_STATE,  /* vm_id, host, state, desired (<0 leaves it) */
    STORE_OBS_VM_IP,     /* vm_id, ip ("" clears) */
    STORE_OBS_HOST_UP,   /* host_id, facts (has_facts false keeps the stored ones) */
    STORE_OBS_HOST_DOWN, /* host_id, host (name), error: the host down, its VMs unknown */
} StoreObsKind;
typedef struct StoreObservation {
    StoreObsKind kind;
    char vm_id[NB_UUID_STRLEN];
    char host_id[NB_UUID_STRLEN];
    char host[NB_NAME_MAX + 1];
    VmState state;
    int desired;
    char ip[64];
    bool has_facts;
    HostFacts facts;
    char error[256];
    /* VM_STATE: when libvirt was asked (a timestamp; "" for no guard). A VM row written since
     * (a task ended, a claim) is newer than what was seen, and is left alone. */
    char seen_at[NB_TIMESTAMP_LEN];
    int applied; /* out: 1 when a row changed, else 0 */
    VmState was; /* out, VM_STATE applied: the state before */
} StoreObservation;
/* Applies the observations in order, in one transaction. VM_STATE applies only while no task
 * holds the VM, the VM is not in `error`, and vms.host = host (an event from a migration's
 * other end changes nothing); it clears the ip unless running/paused, like vm_store_observe.
 * HOST_UP/HOST_DOWN do what host_store_set_facts (and for DOWN vm_store_mark_host_unknown)
 * do, bumping the placement generation under the same rules. */
int store_observe_batch(Store *s, StoreObservation *obs, size_t n, NbError **err);

/* ---- tasks ---- */
int task_store_get(Store *s, const char *scope, const char *id, Task *ret, NbError **err);
void task_list_free(Task *tasks, size_t n);
/* Tasks newest first (created_at, then id, descending); vm_id NULL: all. Same marker rules. */
int task_store_list_page(Store *s, const char *scope, const char *vm_id, const char *marker,
                         unsigned limit, Task **ret, size_t *ret_n,
                         char ret_next_marker[STORE_MARKER_MAX], NbError **err);
int task_store_list_unfinished(Store *s, Task **ret, size_t *ret_n, NbError **err);
/* A task that holds no VM (a volume's: its state column is its lock), in project. */
int task_store_insert(Store *s, const Task *task, const char *project, NbError **err);
int task_store_set_running(Store *s, const char *id, NbError **err);
/* Persists progress: the next step to run (and resets the step's progress to -1). */
int task_store_set_step(Store *s, const char *id, int step, NbError **err);
/* Ends a task and releases its VM in one transaction. vm_state/vm_desired < 0 leave them;
 * vm_error NULL clears the VM's error. */
int task_store_finish(Store *s, const Task *task, TaskState state, const char *code,
                      const char *message, int vm_state, int vm_desired, const char *vm_error,
                      NbError **err);
/* Ends a delete task: removes the VM row and marks the task succeeded, one transaction. */
int task_store_finish_delete(Store *s, const Task *task, NbError **err);
/* Rewrites the task's params (JSON text; NULL clears): what a step learnt for the next ones
 * (cluster_store.c). */
int task_store_set_params(Store *s, const char *id, const char *params, NbError **err);
/* Progress within the current step, 0..100 (-1: unknown). task_store_set_step resets it to -1. */
int task_store_set_progress(Store *s, const char *id, int progress, NbError **err);
/* Asks a task to stop and returns its row (cancel_requested set). Only an unfinished (pending or
 * running) vm.migrate can be cancelled: TASK_NOT_CANCELLABLE otherwise; TASK_NOT_FOUND scoped
 * like task_store_get. Asking twice is no error. */
int task_store_request_cancel(Store *s, const char *scope, const char *id, Task *ret,
                              NbError **err);
/* Whether a cancel was asked for (false too when the task cannot be read). */
bool task_store_cancel_requested(Store *s, const char *id);

/* ---- hosts (host_store.c) ----
 * Rows read back carry what the VMs claim on the host: vcpus_used, ram_used_mib and
 * disk_used_gib sum the VMs placed on it (vms.host) and those migrating to it (vms.migrate_to),
 * as a migration claims on both ends; `vms` counts only the VMs placed on it. Every write bumps
 * the placement generation, but a facts refresh that changes neither the connection state nor
 * the capacity (vcpus, ram_mib, disk_gib). */
int host_store_insert(Store *s, const Host *h, NbError **err); /* NAME_TAKEN, HOST_URI_TAKEN */
/* By id, else by name. HOST_NOT_FOUND. */
int host_store_get(Store *s, const char *id_or_name, Host *ret, NbError **err);
/* Every host, by name. */
int host_store_list(Store *s, Host **ret, size_t *ret_n, NbError **err);
int host_store_set_admin(Store *s, const char *id, HostAdmin admin, NbError **err);
/* Writes h's ratios and labels, and its updated_at (now when empty). HOST_NOT_FOUND. */
int host_store_update(Store *s, const Host *h, NbError **err);
/* What the connection saw: conn, the facts (NULL keeps the stored ones) and the error (NULL or
 * "" clears it). last_contact becomes now when conn is up. updated_at is left alone: it follows
 * the operator's changes, not the periodic refresh. HOST_NOT_FOUND. */
int host_store_set_facts(Store *s, const char *id, HostConn conn, const HostFacts *facts,
                         const char *error, NbError **err);
/* HOST_NOT_EMPTY while a VM is on the host or migrating to it (checked in the same
 * transaction); HOST_IS_LOCAL for the daemon's own host; HOST_NOT_FOUND. The host's image copy
 * and network (network_store_hosts) records go with it: a host added again under that name is
 * checked afresh. */
int host_store_delete(Store *s, const char *id, NbError **err);
/* Registers the daemon's own host: inserts it (defaults, enabled) when no host has that name,
 * else updates its uri if it changed (HOST_URI_TAKEN when another host has that uri). That host
 * then cannot be deleted. */
int host_store_ensure_local(Store *s, const char *name, const char *uri, NbError **err);
/* Sets (NULL or "": clears) the agent and tunnel of the host by name: the daemon's settings for
 * its own host. HOST_NOT_FOUND. */
int host_store_set_agent(Store *s, const char *name, const char *agent_url,
                         const char *agent_secret, const char *tunnel_ip, const char *tunnel_dev,
                         NbError **err);

/* ---- server groups (group_store.c) ---- */
int group_store_insert(Store *s, const Group *g, NbError **err); /* NAME_TAKEN per project */
/* By id, else by name, scoped. GROUP_NOT_FOUND. members is filled. */
int group_store_get(Store *s, const char *scope, const char *id_or_name, Group *ret, NbError **err);
int group_store_list(Store *s, const char *scope, Group **ret, size_t *ret_n, NbError **err);
int group_store_delete(Store *s, const char *id, NbError **err); /* GROUP_NOT_EMPTY */
typedef struct HostCount {
    char host[NB_NAME_MAX + 1];
    unsigned n;
} HostCount;
/* How many members of the group are on each host, by host name: a VM counts at its host and,
 * while it migrates, at migrate_to as well. */
int group_store_member_hosts(Store *s, const char *group_id, HostCount **ret, size_t *ret_n,
                             NbError **err);

/* ---- projects (project_store.c) ---- */
int project_store_insert(Store *s, const Project *p, NbError **err); /* NAME_TAKEN */
int project_store_get(Store *s, const char *scope, const char *id_or_name, Project *ret,
                      NbError **err);
int project_store_list(Store *s, const char *scope, Project **ret, size_t *ret_n, NbError **err);
int project_store_set_quota(Store *s, const char *id, const Quota *q, NbError **err);
int project_store_delete(Store *s, const char *id, NbError **err); /* PROJECT_NOT_EMPTY */
/* What the project uses, indexed by QuotaResource. */
int project_store_quota_usage(Store *s, const char *project, int64_t in_use[_QUOTA_MAX],
                              NbError **err);

/* ---- users (user_store.c) ---- */
int user_store_insert(Store *s, const User *u, const char *password_hash, NbError **err);
int user_store_get(Store *s, const char *id_or_name, User *ret, NbError **err);
/* For login: 1 and the user with its argon2id hash (to free), 0 if no such user, -1 on error. */
int user_store_get_password_hash(Store *s, const char *name, User *ret, char **ret_hash);
int user_store_list(Store *s, User **ret, size_t *ret_n, NbError **err);
int user_store_delete(Store *s, const char *id, NbError **err); /* and revokes its tokens */

/* ---- API tokens (token_store.c) ---- */
typedef struct TokenInfo {
    char id[NB_UUID_STRLEN];
    char name[NB_NAME_MAX + 1];
    char user_id[NB_UUID_STRLEN];
    char created_at[NB_TIMESTAMP_LEN];
    char expires_at[NB_TIMESTAMP_LEN]; /* empty: never */
    char revoked_at[NB_TIMESTAMP_LEN]; /* empty: live */
} TokenInfo;
int token_store_count(Store *s, NbError **err);
int token_store_insert(Store *s, const TokenInfo *t, const char *hash_hex, NbError **err);
/* 1 and the principal when a live (unrevoked, unexpired) token has this hash; 0 if not. */
int token_store_lookup(Store *s, const char *hash_hex, Principal *ret);
/* user_id NULL: every user's tokens. */
int token_store_list(Store *s, const char *user_id, TokenInfo **ret, size_t *ret_n, NbError **err);
/* Revokes the token if it belongs to user_id (NULL: anyone's). TOKEN_NOT_FOUND otherwise. */
int token_store_revoke(Store *s, const char *id, const char *user_id, NbError **err);

/* ---- audit (audit_store.c) ---- */
typedef struct AuditEvent {
    int64_t id;
    char at[NB_TIMESTAMP_LEN];
    char request_id[NB_UUID_STRLEN];
    char user[NB_NAME_MAX + 1];
    char project_id[NB_UUID_STRLEN];
    char source[64];
    char method[16];
    char path[256];
    char action[32];
    char target[NB_NAME_MAX + 1];
    unsigned status;
    char result[48];
} AuditEvent;
int audit_store_insert(Store *s, const AuditEvent *e, NbError **err);
/* Newest first; project NULL: all; since NULL: from the start. */
int audit_store_list(Store *s, const char *project, const char *since, unsigned limit,
                     AuditEvent **ret, size_t *ret_n, NbError **err);

/* ---- usage (usage_store.c) ---- */
typedef struct VmUsage {
    char vm_id[NB_UUID_STRLEN];
    char name[NB_NAME_MAX + 1];
    double vcpu_hours;
    double ram_gib_hours;
    double disk_gib_hours;
    double running_hours;
} VmUsage;
/* Usage of every VM of the project within [from, to) (epoch seconds); `now` ends the interval
 * of VMs still in their last state. */
int usage_store_compute(Store *s, const char *project, double from, double to, double now,
                        VmUsage **ret, size_t *ret_n, NbError **err);
