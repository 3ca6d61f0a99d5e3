/*
 * Volumes: a project's block devices in a pool, attachable to one VM at a time. No I/O.
 *
 * A volume lives in one pool (pool.h); in a local pool also on one host (the VM it is attached
 * to must run there). On the host it is the libvirt volume "nimbus-vol-<id>" of the pool's
 * libvirt pool: qcow2 in dir and netfs pools, raw elsewhere. Attached, it is the VM's disk
 * `target` (vdb.. on virtio, sdb.. on scsi), in the live domain and its persistent definition.
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

typedef enum VolumeState {
    VOLUME_STATE_CREATING,  /* its create task runs */
    VOLUME_STATE_AVAILABLE, /* made, not attached */
    VOLUME_STATE_ATTACHING, /* an attach task runs; vm_id is set */
    VOLUME_STATE_ATTACHED,  /* a disk of vm_id */
    VOLUME_STATE_DETACHING, /* a detach task runs */
    VOLUME_STATE_DELETING,  /* its delete task runs */
    VOLUME_STATE_ERROR,     /* a create failed and was rolled back; only delete is allowed */
    _VOLUME_STATE_MAX,
    _VOLUME_STATE_INVALID = -1,
} VolumeState;

const char *volume_state_to_string(VolumeState s);
VolumeState volume_state_from_string(const char *s);

typedef enum VolumeBus {
    VOLUME_BUS_VIRTIO, /* vdX */
    VOLUME_BUS_SCSI,   /* sdX on a virtio-scsi controller */
    _VOLUME_BUS_MAX,
    _VOLUME_BUS_INVALID = -1,
} VolumeBus;

const char *volume_bus_to_string(VolumeBus b);
VolumeBus volume_bus_from_string(const char *s);

#define VOLUME_SIZE_GIB_MAX 65536u /* 64 TiB: larger is taken as a typo */
#define VOLUMES_PER_VM_MAX 8       /* data volumes; the root disk is vda */
#define VOLUME_TARGET_MAX 8        /* "vdb", "sdc" */
#define VOLUME_NAME_ON_HOST_MAX 64 /* "nimbus-vol-" + uuid */

typedef struct Volume {
    char id[NB_UUID_STRLEN];
    char project[NB_UUID_STRLEN];
    char name[NB_NAME_MAX + 1];
    char pool_id[NB_UUID_STRLEN];
    char host[NB_NAME_MAX + 1]; /* local pools: the host it lives on; "" in a shared pool */
    uint64_t size_gib;          /* 1..VOLUME_SIZE_GIB_MAX */
    char format[8];             /* "qcow2" or "raw" */
    VolumeState state;
    char vm_id[NB_UUID_STRLEN]; /* "" when not attached */
    VolumeBus bus;
    char target[VOLUME_TARGET_MAX];    /* "" when not attached */
    char source_image[NB_UUID_STRLEN]; /* made from this image, or "" (empty volume) */
    char created_at[NB_TIMESTAMP_LEN];
    char source_snapshot[NB_UUID_STRLEN]; /* made from this volume snapshot, or "" */
} Volume;

/* Strict decode of a create request: {name, size_gib, pool?, host?, image?, from_snapshot?}
 * size_gib 1..VOLUME_SIZE_GIB_MAX (VOLUME_INVALID_SIZE); pool, image and from_snapshot by id or
 * name ("volume/snapshot" for a snapshot by names), host a host name (each checked with the
 * name rules; looked up by the caller). image and from_snapshot exclude each other. Fills name,
 * size_gib and the strings into the out parameters ("" when absent).
 * Stable codes: VOLUME_INVALID_SIZE, INVALID_REQUEST, INVALID_NAME. */
typedef struct VolumeCreateRequest {
    char name[NB_NAME_MAX + 1];
    uint64_t size_gib;
    char pool[NB_NAME_MAX + 1];
    char host[NB_NAME_MAX + 1];
    char image[NB_NAME_MAX + 1];
    char from_snapshot[2 * NB_NAME_MAX + 2]; /* "<snapshot id>" or "<volume>/<snapshot>" */
} VolumeCreateRequest;
int volume_create_request_decode(json_t *body, VolumeCreateRequest *ret, NbError **err);
/* {vm, bus?}: bus "virtio" (default) or "scsi". Codes: VOLUME_INVALID_BUS, INVALID_REQUEST. */
int volume_attach_request_decode(json_t *body, char vm[NB_NAME_MAX + 1], VolumeBus *bus,
                                 NbError **err);
/* {size_gib}: a grow only; the caller compares with the current size (VOLUME_SHRINK). */
int volume_resize_request_decode(json_t *body, uint64_t *size_gib, NbError **err);
/* {id, name, project, pool (id), host?, size_gib, format, state, vm?, bus?, target?, image?,
 *  snapshot?, created_at} */
json_t *volume_to_json(const Volume *v);
/* "nimbus-vol-<id>" into buf. */
void volume_name_on_host(const char *id, char buf[VOLUME_NAME_ON_HOST_MAX + 1]);
/* The first target of the bus not in used[] (n_used entries, any bus): "vdb".."vdi" for
 * virtio (vda is the root disk), "sdb".."sdi" for scsi (sda is the seed CD-ROM, on SATA, that
 * domain_xml.c gives a VM). -1 when VOLUMES_PER_VM_MAX are used, on both buses together. */
int volume_target_pick(VolumeBus bus, const char *const *used, size_t n_used,
                       char buf[VOLUME_TARGET_MAX]);

/*
 * Volume snapshots: a volume's data at one instant, in the volume's pool. In an rbd pool the RBD
 * snapshot "<volume's image>@nimbus-vsnap-<id>" (taken live: crash-consistent); in a dir or netfs
 * pool a full qcow2 copy, the libvirt volume "nimbus-vsnap-<id>" beside the volume (taken while
 * the volume is detached). The state column is its lock while a task works on it.
 */
typedef enum VolumeSnapshotState {
    VOLUME_SNAPSHOT_STATE_CREATING, /* its create task runs */
    VOLUME_SNAPSHOT_STATE_READY,    /* made: volumes can be made from it, it can be deleted */
    VOLUME_SNAPSHOT_STATE_DELETING, /* its delete task runs */
    VOLUME_SNAPSHOT_STATE_ERROR,    /* a create or delete failed; only delete is allowed */
    _VOLUME_SNAPSHOT_STATE_MAX,
    _VOLUME_SNAPSHOT_STATE_INVALID = -1,
} VolumeSnapshotState;

const char *volume_snapshot_state_to_string(VolumeSnapshotState s);
VolumeSnapshotState volume_snapshot_state_from_string(const char *s);

typedef struct VolumeSnapshot {
    char id[NB_UUID_STRLEN];
    char volume_id[NB_UUID_STRLEN];
    char project[NB_UUID_STRLEN]; /* the volume's */
    char name[NB_NAME_MAX + 1];   /* unique per volume */
    char pool_id[NB_UUID_STRLEN]; /* the volume's */
    char host[NB_NAME_MAX + 1];   /* the volume's ("" in a shared pool) */
    uint64_t size_gib;            /* the volume's when taken */
    VolumeSnapshotState state;
    char created_at[NB_TIMESTAMP_LEN];
} VolumeSnapshot;

/* Strict decode of {name}: the name rules (INVALID_NAME), INVALID_REQUEST. */
int volume_snapshot_create_request_decode(json_t *body, char name[NB_NAME_MAX + 1], NbError **err);
/* {id, name, volume, project, pool, size_gib, state, created_at} */
json_t *volume_snapshot_to_json(const VolumeSnapshot *s);
/* "nimbus-vsnap-<id>" into buf: the RBD snapshot's name, or the copy's libvirt volume. */
void volume_snapshot_name_on_host(const char *id, char buf[VOLUME_NAME_ON_HOST_MAX + 1]);
