/*
 * Storage pools: types, validation, JSON. No I/O.
 *
 * A pool is where volumes (a VM's disks, data volumes) live. Shared pools (rbd, iscsi, netfs)
 * are one backend every host reaches under the same libvirt pool; local pools (dir, logical) are
 * a directory or volume group on each host, either on every host (host empty: the default pool
 * Nimbus has always made) or on one named host. On the hosts, a pool is the libvirt pool
 * `libvirt_name`: "nimbus-pool-<id>" for pools made through the API, the daemon's `pool-name`
 * setting for the default pool. Credentials (a Ceph key, CHAP password) are kept in the store
 * and given to libvirt as a secret on each host; they never appear in pool XML, logs or answers.
 */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../util/error.h"
#include "../util/timeutil.h"
#include "../util/uuid.h"
#include "validate.h"

typedef enum PoolType {
    POOL_TYPE_DIR,     /* local: a directory (libvirt "dir") */
    POOL_TYPE_LOGICAL, /* local: an LVM volume group (libvirt "logical") */
    POOL_TYPE_RBD,     /* shared: a Ceph RBD pool (libvirt "rbd"), disks type='network' */
    POOL_TYPE_ISCSI,   /* shared: an iSCSI target's LUNs (libvirt "iscsi-direct", libiscsi) */
    POOL_TYPE_NETFS,   /* shared: an NFS export mounted on each host (libvirt "netfs") */
    _POOL_TYPE_MAX,
    _POOL_TYPE_INVALID = -1,
} PoolType;

const char *pool_type_to_string(PoolType t);
PoolType pool_type_from_string(const char *s);
/* rbd, iscsi and netfs: one backend seen by every host. */
bool pool_type_is_shared(PoolType t);
/* The libvirt pool type: "dir", "logical", "rbd", "iscsi-direct", "netfs". */
const char *pool_type_libvirt(PoolType t);

#define POOL_MONITORS_MAX 8
#define POOL_HOSTPORT_MAX 262    /* "[" host(253) "]:" 5 digits, as typed */
#define POOL_PATH_MAX 255        /* absolute, normalised (no "..", "//", trailing "/") */
#define POOL_SECRET_MAX 1024     /* the key or password as given (base64 for Ceph) */
#define POOL_IQN_MAX 223         /* RFC 3720 */
#define POOL_LIBVIRT_NAME_MAX 64 /* "nimbus-pool-" + uuid */

typedef struct Pool {
    char id[NB_UUID_STRLEN];
    char name[NB_NAME_MAX + 1];
    PoolType type;
    /* local types only: the one host that has it, or "" for every host (each its own). */
    char host[NB_NAME_MAX + 1];
    char libvirt_name[POOL_LIBVIRT_NAME_MAX + 1];
    bool is_default; /* the default pool: VMs' root disks when no pool is asked */
    /* dir: the directory; netfs: where it is mounted on the hosts. Absolute, normalised. */
    char path[POOL_PATH_MAX + 1];
    /* rbd: monitors "host[:port]" (1..POOL_MONITORS_MAX); iscsi: the portal in monitors[0]
     * "host[:port]"; netfs: the NFS server in monitors[0] ("host", no port). */
    char monitors[POOL_MONITORS_MAX][POOL_HOSTPORT_MAX + 1];
    size_t n_monitors;
    char source[POOL_PATH_MAX + 1];   /* rbd: the Ceph pool; netfs: the export's path;
                                       * logical: the volume group; iscsi: the target IQN */
    char initiator[POOL_IQN_MAX + 1]; /* iscsi: the initiator IQN the hosts log in as */
    char auth_user[NB_NAME_MAX + 1];  /* rbd: cephx user ("nimbus", not "client.nimbus");
                                       * iscsi: CHAP user; "" for none */
    /* The secret itself: never in JSON (pool_to_json writes "secret_set"), logs or XML. */
    char secret[POOL_SECRET_MAX + 1];
    char created_at[NB_TIMESTAMP_LEN];
} Pool;

/* Strict decode of a create request (admin):
 *   {name, type, host?, path?, monitors?: [..], rbd_pool?, user?, key?, portal?, target?,
 *    initiator?, server?, export?, vg?}
 * dir: path (required; absolute, normalised, under one of allowed_roots), host?;
 * logical: vg (required; LVM name chars), host?;
 * rbd: monitors (1..8 "host[:port]", port 1..65535, host a DNS name or IPv4 or [IPv6]), rbd_pool
 *   (required; Ceph pool name chars), user (required), key (required; base64 of 16..64 bytes);
 * iscsi: portal ("host[:port]", default port 3260), target (IQN "iqn.YYYY-MM.reverse.domain[:x]"
 *   or "eui.<16 hex>"), initiator (IQN, default "iqn.2026-01.io.nimbus:<name>"), user and key
 *   (CHAP: both or neither; key any printable 12..255 chars);
 * netfs: server (host), export (absolute path), path (mount point, as for dir).
 * A field of another type is refused. allowed_roots: NULL-terminated absolute directories (the
 * daemon's `pool-roots` setting); a dir/netfs path must lie strictly under one of them.
 * Fills everything but id, libvirt_name, is_default and created_at.
 * Stable codes: POOL_INVALID_TYPE, POOL_INVALID_PATH, POOL_INVALID_MONITOR, POOL_INVALID_KEY,
 * POOL_INVALID_SOURCE (rbd_pool, vg, target, initiator, export), INVALID_REQUEST, INVALID_NAME. */
int pool_from_request(json_t *body, const char *const *allowed_roots, Pool *ret, NbError **err);
/* {id, name, type, shared, host?, default, path?, monitors?, rbd_pool?, user?, portal?, target?,
 *  initiator?, server?, export?, vg?, secret_set, created_at}: the names the request uses. */
json_t *pool_to_json(const Pool *p);
/* "nimbus-pool-<id>" into buf. */
void pool_libvirt_name(const char *id, char buf[POOL_LIBVIRT_NAME_MAX + 1]);
/* "host[:port]" check and split; port 0 when absent. -1 if malformed. */
int pool_hostport_parse(const char *s, char *host, size_t host_size, unsigned *port);
/* A normalised absolute path ("/a/b", no "." or ".." parts, no "//", no trailing "/", only
 * [A-Za-z0-9._+-/] characters). */
bool pool_path_valid(const char *path);

/* One host's view of a pool (the store's pool_hosts row). */
typedef struct PoolHostState {
    char host[NB_NAME_MAX + 1];
    char state[16];     /* "active", "error", "pending" */
    char error[256];    /* libvirt's message when state is error, else "" */
    int64_t capacity;   /* bytes, -1 unknown */
    int64_t allocation; /* bytes, -1 unknown */
    char updated_at[NB_TIMESTAMP_LEN];
} PoolHostState;

/* {host, state, error (null when empty), capacity, allocation (null when unknown),
 *  updated_at} */
json_t *pool_host_state_to_json(const PoolHostState *s);
/* An iSCSI qualified name as pool_from_request takes it: "iqn.YYYY-MM.reverse.domain[:x]" or
 * "eui.<16 hex>", at most POOL_IQN_MAX characters, no '/' (it separates the LUN in a disk). */
bool pool_iqn_valid(const char *s);
/* An LVM volume group name as pool_from_request takes it ("vg"): [A-Za-z0-9_][A-Za-z0-9._+-]*,
 * at most 127 characters. */
bool pool_vg_name_valid(const char *s);
