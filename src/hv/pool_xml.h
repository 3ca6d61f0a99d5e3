/*
 * Storage pools, their secrets, volumes and volume disks -> libvirt XML. Pure: no I/O, no
 * libvirt calls; golden-tested. Every value is checked again here (a Pool may come from an old
 * store row), and a spec with a missing or malformed field gives NULL, never a partial document.
 * The secret's value is never written: libvirt gets it with virSecretSetValue.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "../model/pool.h"
#include "domain_xml.h"

/* The libvirt pool for p, named p->libvirt_name (secret by UUID = p->id when p has a secret).
 * NULL if invalid. */
char *pool_xml_pool(const Pool *p);
/* The secret definition (no value): ceph or iscsi usage, private, not ephemeral. NULL when the
 * pool has no credential (no auth_user, or a type without one). */
char *pool_xml_secret(const Pool *p);
/* A volume: name, capacity in bytes, format ("qcow2"/"raw"; NULL: no <target> format). With a
 * format (a file in a dir or netfs pool) the allocation is 0: a sparse file; without one
 * (rbd, logical) libvirt allocates the whole capacity, as a thin LV would be a COW snapshot. */
char *pool_xml_volume(const char *name, uint64_t capacity_bytes, const char *format);

typedef enum DiskSourceKind {
    DISK_SOURCE_FILE,
    DISK_SOURCE_BLOCK,
    DISK_SOURCE_RBD,
    DISK_SOURCE_ISCSI,
} DiskSourceKind;

typedef struct DiskSpec {
    DiskSourceKind kind;
    const char *path;         /* file, block */
    const char *name;         /* rbd: "cephpool/image"; iscsi: "iqn.../LUN" */
    const char *const *hosts; /* rbd monitors / iscsi portal, "host[:port]" each */
    size_t n_hosts;
    const char *auth_user;    /* NULL: no <auth> */
    const char *secret_uuid;  /* rbd: <secret type='ceph' uuid=...> */
    const char *secret_usage; /* iscsi: <secret type='iscsi' usage=...> */
    const char *initiator;    /* iscsi */
    const char *format;       /* "qcow2" / "raw" */
    const char *target;       /* "vdb", "sda" */
    const char *bus;          /* "virtio" / "scsi" */
    const char *serial;       /* the volume id's first 20 chars: /dev/disk/by-id in guests */
    DiskIotune iotune;        /* its VM's flavor's limits (domain_xml.h); zeros: none */
} DiskSpec;

/* One <disk> element, for attach/detach. NULL if invalid: rbd and iscsi
 * need format "raw", a target must match its bus (vd* virtio, sd* scsi). */
char *pool_xml_disk(const DiskSpec *d);
