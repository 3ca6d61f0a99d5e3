#include "timeutil.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
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

struct timespec
nb_deadline_after_ms(clockid_t clock, uint64_t ms)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    ts.tv_sec += (time_t)(ms / 1000);
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

int
nb_timestamp_parse(const char *s, double *ret)
{
    struct tm tm = {0};
    int ms = 0, n = 0;
    if (!s)
        return -EINVAL;
    size_t len = strlen(s);
    if (len == 10) {
        if (sscanf(s, "%4d-%2d-%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &n) != 3 || n != 10)
            return -EINVAL;
    } else if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                      &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &n) == 6 &&
               n == 19) {
        const char *rest = s + 19;
        if (rest[0] == '.') {
            int digits = 0;
            for (rest++; *rest >= '0' && *rest <= '9'; rest++, digits++)
                if (digits < 3)
                    ms = ms * 10 + (*rest - '0');
            for (; digits < 3; digits++)
                ms *= 10;
        }
        if (strcmp(rest, "Z") != 0)
            return -EINVAL;
    } else {
        return -EINVAL;
    }
    if (tm.tm_mon < 1 || tm.tm_mon > 12 || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 ||
        tm.tm_min > 59 || tm.tm_sec > 60 || tm.tm_year < 1970)
        return -EINVAL;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    time_t t = timegm(&tm);
    if (t == (time_t)-1)
        return -EINVAL;
    *ret = (double)t + ms / 1000.0;
    return 0;
}

void
nb_timestamp_format(double epoch, char out[NB_TIMESTAMP_LEN])
{
    time_t secs = (time_t)epoch;
    long ms = (long)((epoch - (double)secs) * 1000.0);
    struct tm tm;
    gmtime_r(&secs, &tm);
    size_t n = strftime(out, NB_TIMESTAMP_LEN, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, NB_TIMESTAMP_LEN - n, ".%03ldZ", ms);
}

double
nb_epoch_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}
