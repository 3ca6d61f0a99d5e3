#pragma once

#include <stdint.h>
#include <time.h>

/* Wall-clock time as RFC 3339 UTC with milliseconds: "2026-11-22T02:09:57.123Z". */
#define NB_TIMESTAMP_LEN 32
void nb_timestamp_now(char out[NB_TIMESTAMP_LEN]);
/* Parses "YYYY-MM-DD", "YYYY-MM-DDTHH:MM:SS[.fff]Z" (UTC) into epoch seconds. 0 or -EINVAL. */
int nb_timestamp_parse(const char *s, double *ret);
/* Formats epoch seconds as nb_timestamp_now does. */
void nb_timestamp_format(double epoch, char out[NB_TIMESTAMP_LEN]);
/* Wall-clock epoch seconds. */
double nb_epoch_now(void);
/* Monotonic milliseconds, for timeouts. */
uint64_t nb_monotonic_ms(void);
/* The clock's time ms from now, for pthread_cond_timedwait and friends. */
struct timespec nb_deadline_after_ms(clockid_t clock, uint64_t ms);
