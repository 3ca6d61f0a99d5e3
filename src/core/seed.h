/*
 * The cloud-init NoCloud seed: an ISO9660 image, volume label "cidata", holding meta-data,
 * user-data and network-config (v2). Built with genisoimage run from an argument array.
 */
#pragma once

#include "../util/error.h"

typedef struct SeedSpec {
    const char *instance_id; /* the VM id (a UUID) */
    const char *hostname;    /* must pass nb_hostname_is_valid */
    const char *mac;         /* the NIC's MAC, for network-config's match */
    const char *user_data;   /* verbatim, may be NULL: then "#cloud-config\n{}\n" */
} SeedSpec;

/*
 * Writes the three files into a fresh private directory under work_dir, runs genisoimage to
 * produce out_path (replacing it), and removes the directory. Refuses an invalid hostname or
 * instance id (NB_ERR_INVALID_HOSTNAME / NB_ERR_INTERNAL) before writing anything.
 */
int seed_build_iso(const SeedSpec *spec, const char *work_dir, const char *out_path, NbError **err);
/* The meta-data and network-config texts, for tests; newly allocated. */
char *seed_meta_data(const SeedSpec *spec);
char *seed_network_config(const SeedSpec *spec);
