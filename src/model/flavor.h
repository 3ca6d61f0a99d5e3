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

typedef struct Flavor {
    char id[NB_UUID_STRLEN];
    char name[NB_NAME_MAX + 1];
    unsigned vcpus;
    uint64_t ram_mib;
    uint64_t disk_gib;
    uint32_t net_in_kbit; /* copied onto each port of its VMs; 0: unlimited (bandwidth.h) */
    uint32_t net_out_kbit;
    char created_at[NB_TIMESTAMP_LEN];
} Flavor;

/* Strict decode of a create request: {name, vcpus, ram_mib, disk_gib, net_in_mbit?,
 * net_out_mbit?}; unknown fields refused. Fills everything but id and created_at. */
int flavor_from_request(json_t *body, Flavor *ret, NbError **err);
json_t *flavor_to_json(const Flavor *f);
