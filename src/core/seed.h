/*
 * The cloud-init NoCloud seed: an ISO9660 image, volume label "cidata", holding meta-data,
 * user-data and network-config (v2). Built with genisoimage run from an argument array.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../util/error.h"

/* One NIC with a static address (a port). Addresses are host-order IPv4. */
typedef struct SeedNic {
    const char *mac;     /* xx:xx:xx:xx:xx:xx, lower-case */
    uint32_t ip;         /* inside ip/prefix, not its network or broadcast address */
    unsigned prefix;     /* NETWORK_PREFIX_MIN..NETWORK_PREFIX_MAX */
    uint32_t gateway;    /* 0: none; else inside the subnet and not ip */
    const uint32_t *dns; /* up to NETWORK_DNS_MAX, non-zero */
    size_t n_dns;
    unsigned mtu; /* NETWORK_MTU_MIN..NETWORK_MTU_MAX, or 0: no mtu line */
    bool dhcp;    /* the network also leases this address: "# nimbus: dhcp" above the entry */
} SeedNic;

typedef struct SeedSpec {
    const char *instance_id; /* the VM id (a UUID) */
    const char *hostname;    /* must pass nb_hostname_is_valid */
    /* n_nics == 0: the legacy one-NIC config, eth0 matched by `mac` with DHCP. Else one
     * ethernets entry eth<i> per nics[i] (1..VM_NICS_MAX, MACs distinct), and `mac` unused. */
    const char *mac;
    const SeedNic *nics;
    size_t n_nics;
    const char *user_data; /* verbatim, may be NULL: then "#cloud-config\n{}\n" */
} SeedSpec;

/*
 * Writes the three files into a fresh private directory under work_dir, runs genisoimage to
 * produce out_path (replacing it), and removes the directory. Refuses an invalid hostname or
 * instance id (NB_ERR_INVALID_HOSTNAME / NB_ERR_INTERNAL) before writing anything.
 */
int seed_build_iso(const SeedSpec *spec, const char *work_dir, const char *out_path, NbError **err);
/* The meta-data and network-config texts, for tests; newly allocated; NULL on an invalid spec
 * (any value that would be formatted fails validation). */
char *seed_meta_data(const SeedSpec *spec);
char *seed_network_config(const SeedSpec *spec);
