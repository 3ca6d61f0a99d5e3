/*
 * The host driver: everything Nimbus asks of libvirt. One HvConn per host; libvirt's own
 * connection object is thread-safe, so workers share it. Every function that can fail on behalf
 * of a client fills an NbError with NB_ERR_HYPERVISOR (or a more precise code) and libvirt's
 * message, copied right after the failing call.
 * "Not found" is never an error for the removal calls: they are idempotent steps of tasks.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "../model/host.h"
#include "../util/error.h"

typedef struct HvConn HvConn;

/* The power state as libvirt reports it. */
typedef enum HvDomainState {
    HV_DOMAIN_NONE, /* no such domain */
    HV_DOMAIN_RUNNING,
    HV_DOMAIN_PAUSED,
    HV_DOMAIN_SHUTOFF,
    HV_DOMAIN_CRASHED,
    HV_DOMAIN_OTHER, /* shutting down, pmsuspended, blocked... */
    _HV_DOMAIN_STATE_MAX,
} HvDomainState;
const char *hv_domain_state_to_string(HvDomainState s);

/* Why a domain changed state, from libvirt lifecycle events. */
typedef enum HvEventKind {
    HV_EVENT_STARTED,
    HV_EVENT_STOPPED_SHUTDOWN, /* the guest shut itself down, or a graceful stop finished */
    HV_EVENT_STOPPED_DESTROYED,
    HV_EVENT_STOPPED_CRASHED,
    HV_EVENT_STOPPED_OTHER,
    HV_EVENT_SUSPENDED,
    HV_EVENT_RESUMED,
    HV_EVENT_UNDEFINED,
    HV_EVENT_DEFINED,
    HV_EVENT_OTHER,
    _HV_EVENT_MAX,
} HvEventKind;

typedef void (*HvLifecycleCallback)(const char *domain_name, const char *uuid, HvEventKind kind,
                                    void *userdata);
/* Called from the event thread when the connection closes (libvirtd died, network). */
typedef void (*HvCloseCallback)(void *userdata);

typedef enum HvEventLoop {
    HV_EVENT_LOOP_EPOLL,   /* ours: a wakeup costs what is ready (1,500 hosts idle cheaply) */
    HV_EVENT_LOOP_LIBVIRT, /* libvirt's default (GLib): every source looked at on each wakeup */
    _HV_EVENT_LOOP_MAX,
    _HV_EVENT_LOOP_INVALID = -1,
} HvEventLoop;
const char *hv_event_loop_to_string(HvEventLoop k);
HvEventLoop hv_event_loop_from_string(const char *s);
/* Which loop hv_events_init registers (once per process; later calls change nothing). */
void hv_events_set_loop(HvEventLoop kind);
/* Must be called once before any hv_conn_open: registers the event loop implementation and
 * starts a thread that runs it. */
int hv_events_init(NbError **err);
void hv_events_shutdown(void);

int hv_conn_open(const char *uri, HvConn **ret, NbError **err);
/* Connections are reference-counted: a task keeps the one it started with even when the
 * reconciler replaces it after a reconnect. hv_conn_free drops a reference; the last one
 * deregisters the callbacks and closes. */
HvConn *hv_conn_ref(HvConn *c);
void hv_conn_free(HvConn *c);
const char *hv_conn_uri(const HvConn *c);
/* Whether the connection is to libvirt's test driver (a simulated host, hv_sim.c): the domain
 * type must then be "test", and volume data, console logs and migrations are simulated. */
bool hv_conn_is_simulated(const HvConn *c);
bool hv_conn_is_alive(HvConn *c);
/* Registers the lifecycle and close callbacks for this connection (at most one of each). */
int hv_conn_set_callbacks(HvConn *c, HvLifecycleCallback lifecycle, HvCloseCallback on_close,
                          void *userdata, NbError **err);

/* ---- storage: one directory pool Nimbus owns ---- */
/* Defines (persistent, autostart), builds and starts a "dir" pool at path if it is missing;
 * starts it if inactive. Idempotent. */
int hv_pool_ensure(HvConn *c, const char *pool, const char *path, NbError **err);
/* Creates an empty volume for an upload (format raw or qcow2 as declared, capacity=bytes). If it
 * already exists it is deleted first. */
int hv_vol_create_for_upload(HvConn *c, const char *pool, const char *vol, const char *format,
                             uint64_t capacity, NbError **err);
/* Streams data into a volume created by hv_vol_create_for_upload. The source is a pull
 * callback: it fills buf with up to len bytes and returns the count, 0 at the end, or -1 on
 * failure (then the stream is aborted and hv_vol_upload fails with NB_ERR_INTERNAL unless the
 * callback has set *err itself). */
typedef ssize_t (*HvUploadSource)(char *buf, size_t len, void *userdata, NbError **err);
int hv_vol_upload(HvConn *c, const char *pool, const char *vol, uint64_t length, HvUploadSource src,
                  void *userdata, NbError **err);
/* Creates a qcow2 volume of capacity bytes whose backing store is the volume backing_vol
 * (format backing_format) in the same pool: a linked clone. Deletes a same-named volume first. */
int hv_vol_create_linked_clone(HvConn *c, const char *pool, const char *vol,
                               const char *backing_vol, const char *backing_format,
                               uint64_t capacity, NbError **err);
/* The same with the backing volume in another pool of the same host (backing_pool): the
 * overlay names it by its absolute path. */
int hv_vol_create_linked_clone_of(HvConn *c, const char *pool, const char *vol,
                                  const char *backing_pool, const char *backing_vol,
                                  const char *backing_format, uint64_t capacity, NbError **err);
int hv_vol_delete(HvConn *c, const char *pool, const char *vol, NbError **err); /* absent: 0 */
/* Path of a volume, newly allocated. NB_ERR_INTERNAL if absent. */
int hv_vol_path(HvConn *c, const char *pool, const char *vol, char **ret, NbError **err);
/* 1 if it exists, 0 if not, -1 on error. */
int hv_vol_exists(HvConn *c, const char *pool, const char *vol, NbError **err);
/* Names of the volumes in the pool, NULL-terminated array, each and the array to be freed. */
int hv_pool_list_volumes(HvConn *c, const char *pool, char ***ret, NbError **err);

/* ---- storage pools (hv_pool.c) ----
 * The pools made from the store (pool_xml.h writes their XML) and their secrets, whose values
 * reach libvirt only (never a message or a log). */
typedef struct HvPoolState {
    bool defined, active;
    int64_t capacity, allocation; /* bytes while active, else -1 */
} HvPoolState;
/* The pool's state as libvirt last saw it (no refresh): not defined is 0 with ret->defined
 * false. */
int hv_pool_state(HvConn *c, const char *name, HvPoolState *ret, NbError **err);
/* Defines the pool from xml (persistent, autostart) unless it exists; a pool that exists is
 * redefined under its own libvirt UUID, and restarted when its definition changed. uuid (may be
 * NULL) is the libvirt UUID of a pool defined anew. Builds it when build is set and it is
 * inactive (dir, netfs: mkdir), then starts it. *ret: its state after, also on failure. */
int hv_pool_apply(HvConn *c, const char *name, const char *xml, const char *uuid, bool build,
                  HvPoolState *ret, NbError **err);
/* Stops and undefines the pool; its data stay. Absent: 0. */
int hv_pool_remove(HvConn *c, const char *name, NbError **err);
typedef struct HvPoolEntry {
    char name[128];
    char uuid[NB_UUID_STRLEN]; /* libvirt's UUID of the pool */
} HvPoolEntry;
/* Every pool (active or not) whose name starts with prefix; *ret to free. */
int hv_pool_list_prefixed(HvConn *c, const char *prefix, HvPoolEntry **ret, size_t *ret_n,
                          NbError **err);
/* Defines the secret from xml unless its uuid is defined, then sets its value (len bytes). */
int hv_pool_secret_set(HvConn *c, const char *uuid, const char *xml, const unsigned char *value,
                       size_t len, NbError **err);
/* 1 and the secret's usage id (ceph name, iscsi target) into usage, or 0 when absent. */
int hv_pool_secret_usage(HvConn *c, const char *uuid, char *usage, size_t len, NbError **err);
int hv_pool_secret_remove(HvConn *c, const char *uuid, NbError **err); /* absent: 0 */

/* ---- volumes and disks (hv_volume.c) ----
 * Volumes in any pool, from pool_xml_volume's XML; their disks in domains from pool_xml_disk's
 * <disk>, found by target ("vdb") and known for the volume's by <serial>. A pool missing on the
 * host is NB_ERR_POOL_UNAVAILABLE. */
/* Creates the volume name (xml: its definition) unless it exists: then 0 when its capacity is at
 * least capacity bytes (a retry), else NB_ERR_HYPERVISOR. */
int hv_volume_create(HvConn *c, const char *pool, const char *name, const char *xml,
                     uint64_t capacity, NbError **err);
/* Creates name (xml) as a full copy of from_vol in from_pool, converted to xml's format
 * (virStorageVolCreateXMLFrom); a same-named volume (a copy cut short) is deleted first. */
int hv_volume_create_from(HvConn *c, const char *pool, const char *name, const char *xml,
                          const char *from_pool, const char *from_vol, NbError **err);
/* 1 and *ret (bytes) when the volume exists, 0 when not. */
int hv_volume_capacity(HvConn *c, const char *pool, const char *name, uint64_t *ret, NbError **err);
/* Grows the volume to capacity bytes (virStorageVolResize); as large already: 0. */
int hv_volume_resize(HvConn *c, const char *pool, const char *name, uint64_t capacity,
                     NbError **err);
/* Absent (or no pool): 0. */
int hv_volume_delete(HvConn *c, const char *pool, const char *name, NbError **err);
/* The same with its snapshots (an RBD image that clones were made from: libvirt's vol-clone
 * leaves a protected snapshot on it). Fails while a clone still depends on one. */
int hv_volume_delete_with_snapshots(HvConn *c, const char *pool, const char *name, NbError **err);
/* Adds the disk at target to the domain's definition and, when it runs, to the live domain,
 * wherever the disk of that serial is not there yet (a retry is harmless). Another device at
 * target, or no domain: NB_ERR_HYPERVISOR. */
int hv_domain_disk_attach(HvConn *c, const char *domain, const char *target, const char *serial,
                          const char *disk_xml, NbError **err);
/* Removes the disk of that serial at target from the definition and asks the running guest to
 * release it: 0 gone from both (or no domain, or not there), 1 the guest has not released it
 * yet: call again later. */
int hv_domain_disk_detach(HvConn *c, const char *domain, const char *target, const char *serial,
                          const char *disk_xml, NbError **err);
/* Where the disk is: 1 with *in_live / *in_config, 0 when there is no domain. */
int hv_domain_disk_present(HvConn *c, const char *domain, const char *target, const char *serial,
                           bool *in_live, bool *in_config, NbError **err);
/* Grows the running domain's disk (virDomainBlockResize: QEMU grows the image it has open):
 * 1 done (or as large already), 0 when the domain does not run it (grow the volume instead). */
int hv_domain_block_resize(HvConn *c, const char *domain, const char *target, const char *serial,
                           uint64_t bytes, NbError **err);

/* ---- VM snapshots (hv_snapshot.c) ----
 * libvirt internal snapshots of a domain (its qcow2 disks), by name. */
/* 1 when the domain has the snapshot, 0 when not (or there is no such domain), -1. */
int hv_snapshot_exists(HvConn *c, const char *domain, const char *name, NbError **err);
/* Makes it unless it exists. Of an active domain a full system checkpoint (disks and memory;
 * the guest is paused while its memory is written), of an inactive one its disks. The domain's
 * read-only disks are left out. */
int hv_snapshot_create(HvConn *c, const char *domain, const char *name, const char *description,
                       NbError **err);
/* with_memory: the domain as the snapshot has it (a checkpoint resumes where it was). Else the
 * disks only: the domain keeps its power state, an active one booting again from the reverted
 * disks. */
int hv_snapshot_revert(HvConn *c, const char *domain, const char *name, bool with_memory,
                       NbError **err);
/* The snapshot's metadata and its disks' internal snapshots deleted; absent: done (0). */
int hv_snapshot_delete(HvConn *c, const char *domain, const char *name, NbError **err);
/* Every snapshot of the domain deleted (no domain: done). */
int hv_snapshot_delete_all(HvConn *c, const char *domain, NbError **err);

/* ---- backups and checkpoints (hv_backup.c) ---- */
/* The virtual size of the domain's disk target ("vda"). */
int hv_backup_disk_capacity(HvConn *c, const char *domain, const char *target, uint64_t *ret,
                            NbError **err);
/* Starts a push-mode backup of the disk target only into the qcow2 file path: reuse, an existing
 * file of the disk's size (REUSE_EXTERNAL); else a new one libvirt makes (a point-in-time copy of
 * the whole disk, its backing chain flattened, for clones and images from VMs). Since checkpoint
 * incremental (NULL: full), making checkpoint `checkpoint` (a bitmap in that disk only; NULL:
 * none). BACKUP_UNSUPPORTED on a simulated host. */
int hv_backup_begin(HvConn *c, const char *domain, const char *target, const char *path,
                    const char *incremental, const char *checkpoint, bool reuse, NbError **err);
typedef enum HvBackupJobState {
    HV_BACKUP_JOB_NONE,      /* no backup job, and none ended that libvirt remembers */
    HV_BACKUP_JOB_RUNNING,   /* a backup job runs */
    HV_BACKUP_JOB_OTHER,     /* another job runs: not a backup, or one to another file */
    HV_BACKUP_JOB_COMPLETED, /* the last job was a backup and it completed */
    HV_BACKUP_JOB_FAILED,    /* the last job was a backup and it failed or was aborted */
} HvBackupJobState;
typedef struct HvBackupJob {
    HvBackupJobState state;
    bool is_backup;
    uint64_t processed, total; /* bytes */
    uint64_t elapsed_ms;
    char error[256];
} HvBackupJob;
/* The domain's current job, else the end of its last one (no domain: NONE). path (NULL: any):
 * the file this caller's backup writes; a backup job to another file is OTHER. */
int hv_backup_job(HvConn *c, const char *domain, const char *path, HvBackupJob *ret, NbError **err);
/* Aborts the domain's backup job to path, if one runs (no domain, no job: 0); 1 when a backup
 * job to another file runs (another task's: wait for its end). */
int hv_backup_abort(HvConn *c, const char *domain, const char *path, NbError **err);
/* 1 when the domain has the checkpoint, 0 when not (or no domain). */
int hv_checkpoint_exists(HvConn *c, const char *domain, const char *name, NbError **err);
/* Deletes the checkpoint (its bitmap merged into its parent's); absent, or no domain: 0. */
int hv_checkpoint_delete(HvConn *c, const char *domain, const char *name, NbError **err);
/* How many checkpoints the domain has (no domain: 0), or -1. */
int hv_checkpoint_count(HvConn *c, const char *domain, NbError **err);
/* Every checkpoint of the domain deleted (no domain: done). libvirt 9.0 deletes checkpoints of
 * an active domain only ("cannot delete checkpoint for inactive domain"). */
int hv_checkpoint_delete_all(HvConn *c, const char *domain, NbError **err);
/* 1 when the disks (sources) and NICs (MACs) of the definition kept with the snapshot are the
 * domain's now, 0 when not (a revert would bring the old set back), -1. */
int hv_snapshot_devices_match(HvConn *c, const char *domain, const char *name, NbError **err);

/* ---- networks ---- */
/* Starts the named network if defined and inactive; sets autostart. Idempotent. */
int hv_network_ensure_active(HvConn *c, const char *network, NbError **err);

/* ---- tenant networks and NICs (hv_network.c) ----
 * The XML comes from network_xml.h and domain_xml.h. On a simulated host NIC attach and detach
 * change the domain's persistent definition only (the test driver has no hot-plug). */
/* Defines the network (persistent, autostart) from xml unless one of that name exists (it is
 * then left as it is), and starts it if inactive. */
int hv_net_ensure(HvConn *c, const char *name, const char *xml, NbError **err);
/* Stops and undefines the network. Absent: 0. */
int hv_net_remove(HvConn *c, const char *name, NbError **err);
/* Adds a static DHCP host entry (network_xml_dhcp_host's <host mac ip/>) to the live network
 * and its persistent definition, first deleting any entry with the same MAC or the same IP.
 * NB_ERR_HYPERVISOR if the network is not defined. */
int hv_net_dhcp_host_set(HvConn *c, const char *name, const char *host_xml, NbError **err);
/* Deletes the entry with host_xml's MAC, whatever its IP. No network or no entry: 0. */
int hv_net_dhcp_host_remove(HvConn *c, const char *name, const char *host_xml, NbError **err);
/* Adds the NIC (domain_xml_nic) to the domain's definition, and to the running domain when it
 * is active, wherever a NIC of that MAC is not there yet (so a retry is harmless).
 * NB_ERR_HYPERVISOR if the domain does not exist. */
int hv_domain_nic_attach(HvConn *c, const char *domain, const char *nic_xml, NbError **err);
/* Removes the NIC of nic_xml's MAC from the definition and asks the running domain to unplug
 * it. 0: gone from both (or no domain, or no such NIC); 1: the definition no longer has it but
 * the guest has not released it yet (libvirt waits a few seconds for that and returns): call
 * again later, which asks again and looks again. */
int hv_domain_nic_detach(HvConn *c, const char *domain, const char *nic_xml, NbError **err);

/* ---- security group filters (hv_nwfilter.c) ----
 * One libvirt nwfilter per port (nwfilter_xml.h). A domain's interface references it; libvirt
 * applies a redefinition live to every running interface that references it. On a simulated
 * host (libvirt's test driver has no nwfilter) these calls change nothing and find nothing. */
/* The filter's uuid: 1 and out (NB_UUID_STRLEN bytes) when it exists, 0 when absent. */
int hv_nwfilter_uuid(HvConn *c, const char *name, char *out, NbError **err);
/* Defines the filter from xml (which must be the filter called name), or redefines it in place:
 * the existing filter's uuid is looked up and written into the XML (replacing any <uuid> in it).
 * NB_ERR_INTERNAL when xml is not that filter's, NB_ERR_HYPERVISOR when libvirt refuses it. */
int hv_nwfilter_define(HvConn *c, const char *name, const char *xml, NbError **err);
/* Undefines the filter. Absent: 0. libvirt refuses while an interface references it. */
int hv_nwfilter_undefine(HvConn *c, const char *name, NbError **err);

/* ---- domains (by name) ---- */
int hv_domain_define(HvConn *c, const char *xml, NbError **err); /* redefines if present */
int hv_domain_start(HvConn *c, const char *name, NbError **err); /* running already: 0 */
/* Starts it with its vCPUs stopped (a job on its disks only); running already: 0. */
int hv_domain_start_paused(HvConn *c, const char *name, NbError **err);
/* ACPI shutdown, wait up to timeout_ms for shutoff, then destroy. Shut off already: 0. */
int hv_domain_stop(HvConn *c, const char *name, uint64_t timeout_ms, NbError **err);
/* ACPI shutdown request, returning at once (hv_power.c): 1 when asked, 0 when the domain is absent
 * or not running. The caller watches the state and destroys after its own timeout. */
int hv_domain_shutdown(HvConn *c, const char *name, NbError **err);
int hv_domain_destroy(HvConn *c, const char *name, NbError **err); /* not running: 0 */
int hv_domain_reboot(HvConn *c, const char *name, NbError **err);
int hv_domain_suspend(HvConn *c, const char *name, NbError **err); /* paused already: 0 */
int hv_domain_resume(HvConn *c, const char *name, NbError **err);  /* running already: 0 */
/* Destroys if running, then undefines (with managed save, snapshots metadata, nvram). */
int hv_domain_undefine(HvConn *c, const char *name, NbError **err); /* absent: 0 */
int hv_domain_get_state(HvConn *c, const char *name, HvDomainState *ret, NbError **err);
/* First IPv4 address for the MAC from the network's DHCP leases; "" when none yet. */
int hv_domain_get_ipv4(HvConn *c, const char *name, char *buf, size_t len, NbError **err);

typedef struct HvDomainInfo {
    char name[128]; /* Nimbus names domains after their VM's id: the name is all it needs */
    HvDomainState state;
} HvDomainInfo;
/* Every domain (active and inactive) whose name starts with prefix. */
int hv_domain_list(HvConn *c, const char *prefix, HvDomainInfo **ret, size_t *ret_n, NbError **err);

/* ---- hosts (hv_host.c) ---- */
/* Node info, free memory, versions and (pool non-NULL) the pool's capacity and free space. */
int hv_host_facts(HvConn *c, const char *pool, HostFacts *ret, NbError **err);
/* Copies a volume's bytes from one host's pool to the same-named pool on another host over
 * libvirt streams (replacing any same-named volume there). */
int hv_vol_copy(HvConn *src, HvConn *dst, const char *pool, const char *vol, NbError **err);

/* The last max bytes of a volume (all of a shorter one), read over a libvirt stream: 1 with the
 * data (NUL-terminated, to free), 0 when there is no such volume. */
int hv_vol_read_tail(HvConn *c, const char *pool, const char *vol, uint64_t max, char **ret,
                     size_t *ret_len, NbError **err);

typedef struct HvMigrateOptions {
    bool copy_storage;       /* local disks: copy their data (the top layer) with the memory */
    const char *migrate_uri; /* "tcp://address" the source's QEMU connects to, or NULL */
    uint64_t bandwidth_mib;  /* MiB/s the migration may use; 0: unlimited */
} HvMigrateOptions;
/* Moves a running domain (live); blocks until done. On failure the domain stays on the source
 * (libvirt rolls a live migration back before the switch-over). */
int hv_domain_migrate(HvConn *src, HvConn *dst, const char *name, const HvMigrateOptions *o,
                      NbError **err);
/* Percent done of the domain's current job (migration): 1 and *ret, or 0 with *ret = -1 when
 * there is no job or no domain. */
int hv_domain_job_progress(HvConn *c, const char *name, int *ret, NbError **err);
/* Aborts the domain's current job: 1 when asked, 0 when there was nothing to abort. */
int hv_domain_abort_job(HvConn *c, const char *name, NbError **err);

/* ---- domain statistics for metrics (hv_stats.c) ---- */
typedef struct HvBlockStats {
    char dev[32]; /* target device: vda */
    uint64_t read_bytes, read_requests, write_bytes, write_requests;
} HvBlockStats;
typedef struct HvIfaceStats {
    char dev[32]; /* target device: vnet3 */
    uint64_t rx_bytes, rx_packets, rx_errors, rx_drops;
    uint64_t tx_bytes, tx_packets, tx_errors, tx_drops;
} HvIfaceStats;
typedef struct HvDomainStats {
    char name[128];
    HvDomainState state;
    uint64_t cpu_time_ns;
    uint64_t memory_kib, max_memory_kib; /* balloon current and maximum */
    unsigned vcpus;
    HvBlockStats *blocks;
    size_t n_blocks;
    HvIfaceStats *ifaces;
    size_t n_ifaces;
} HvDomainStats;
/* Every domain whose name starts with prefix, with its state, CPU, balloon, vCPU, interface and
 * block statistics, in one virConnectGetAllDomainStats call. */
int hv_domain_stats_all(HvConn *c, const char *prefix, HvDomainStats **ret, size_t *ret_n,
                        NbError **err);
void hv_domain_stats_free(HvDomainStats *s, size_t n);

/* ---- copies of a VM's root disk: clones, images from VMs (hv_clone.c) ---- */
/* Makes libvirt look at the pool's directory again: a file written there becomes a volume. */
int hv_pool_refresh(HvConn *c, const char *pool, NbError **err);
/* A new volume name in pool holding from_vol's bytes as they are (a qcow2 overlay keeps its
 * backing file); an earlier name (a copy cut short) is replaced. */
int hv_vol_copy_bytes(HvConn *c, const char *pool, const char *from_vol, const char *name,
                      NbError **err);
