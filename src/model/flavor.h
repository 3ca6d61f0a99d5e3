#pragma once

#include <jansson.h>
#include <stdint.h>

#include "../util/error.h"
#include "../util/timeutil.h"
#include "../util/uuid.h"
#include "validate.h"

#define NB_FLAVOR_VCPUS_MAX 256
#define NB_FLAVOR_RAM_MIB_MIN 16
#define NB_FLAVOR_RAM_MIB_MAX (4u * 1024 * 1024)
#define NB_FLAVOR_DISK_GIB_MAX 65536
/* Disk QoS of every disk of its VMs (libvirt <iotune>); 0: no limit. MB/s counts decimal
 * megabytes (NB_FLAVOR_DISK_MB bytes), as libvirt's total_bytes_sec is bytes per second. */
#define NB_FLAVOR_DISK_IOPS_MAX 1000000u
#define NB_FLAVOR_DISK_MBPS_MAX 100000u
#define NB_FLAVOR_DISK_MB 1000000u

typedef struct Flavor {
    char id[NB_UUID_STRLEN];
    char name[NB_NAME_MAX + 1];
    unsigned vcpus;
    uint64_t ram_mib;
    uint64_t disk_gib;
    uint32_t net_in_kbit; /* copied onto each port of its VMs; 0: unlimited (bandwidth.h) */
    uint32_t net_out_kbit;
    uint32_t disk_iops; /* total_iops_sec of each disk of its VMs; 0: unlimited */
    uint32_t disk_mbps; /* total_bytes_sec / NB_FLAVOR_DISK_MB; 0: unlimited */
    char created_at[NB_TIMESTAMP_LEN];
} Flavor;

/* Strict decode of a create request: {name, vcpus, ram_mib, disk_gib, net_in_mbit?,
 * net_out_mbit?, disk_iops?, disk_mbps?}; unknown fields refused. Fills everything but id and
 * created_at. disk_iops and disk_mbps: 0 (or absent) or 1..their max, else INVALID_REQUEST. */
int flavor_from_request(json_t *body, Flavor *ret, NbError **err);
json_t *flavor_to_json(const Flavor *f);

/* The flavor's disk limit in bytes per second (libvirt's total_bytes_sec), 0: unlimited. */
static inline uint64_t
flavor_disk_bytes_sec(const Flavor *f)
{
    return (uint64_t)f->disk_mbps * NB_FLAVOR_DISK_MB;
}
