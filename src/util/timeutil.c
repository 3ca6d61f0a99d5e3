#include "timeutil.h"

#include <stdio.h>
#include <time.h>

void
nb_timestamp_now(char out[NB_TIMESTAMP_LEN])
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(out, NB_TIMESTAMP_LEN, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, NB_TIMESTAMP_LEN - n, ".%03ldZ", ts.tv_nsec / 1000000);
}

uint64_t
nb_monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}
