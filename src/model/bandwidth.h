/*
 * Bandwidth limits of a NIC (a flavor's, copied onto its VMs' ports; then a port's own). The API
 * speaks Mbit/s (net_in_mbit, net_out_mbit), the store and the agent kbit/s. "in" is what the
 * guest receives (host->guest), "out" what it sends (guest->host); 0 is unlimited.
 */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "../util/error.h"

#define NB_BANDWIDTH_MBIT_MAX 10000u

typedef struct BandwidthPatch {
    bool has_in, has_out;
    uint32_t in_kbit, out_kbit;
} BandwidthPatch;

/* An optional field in Mbit/s, an integer 0..NB_BANDWIDTH_MBIT_MAX: stored in *ret_kbit (kbit/s)
 * when present (*ret_present true), else both left alone (ret_present may be NULL).
 * BANDWIDTH_INVALID for null, a non-integer, a negative or too large value. */
int bandwidth_field_parse(json_t *body, const char *key, uint32_t *ret_kbit, bool *ret_present,
                          NbError **err);
/* PATCH /v1/ports/{id}: {"net_in_mbit"?, "net_out_mbit"?}, at least one of them (INVALID_REQUEST
 * otherwise, or for another field), each as above. */
int bandwidth_patch_from_request(json_t *body, BandwidthPatch *ret, NbError **err);
/* kbit/s as the API shows it, Mbit/s (rounded down: the API only ever stores whole Mbit/s). */
static inline json_int_t
bandwidth_kbit_to_mbit(uint32_t kbit)
{
    return (json_int_t)(kbit / 1000);
}
