#pragma once

#include <stdint.h>

/* Wall-clock time as RFC 3339 UTC with milliseconds: "2026-11-22T02:09:57.123Z". */
#define NB_TIMESTAMP_LEN 32
void nb_timestamp_now(char out[NB_TIMESTAMP_LEN]);
/* Monotonic milliseconds, for timeouts. */
uint64_t nb_monotonic_ms(void);
