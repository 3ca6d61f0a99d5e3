#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static LogLevel log_min_level = LOG_LEVEL_INFO;
static const char *const log_level_names[_LOG_LEVEL_MAX] = {"debug", "info", "warn", "error"};

void
log_set_level(LogLevel level)
{
    log_min_level = level;
}

int
log_level_from_string(const char *s, LogLevel *ret)
{
    for (int i = 0; i < _LOG_LEVEL_MAX; i++) {
        if (strcmp(s, log_level_names[i]) == 0) {
            *ret = (LogLevel)i;
            return 0;
        }
    }
    return -1;
}

void
log_write(LogLevel level, const char *fmt, ...)
{
    if (level < log_min_level || level >= _LOG_LEVEL_MAX)
        return;
    char line[2048];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = (int)strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
    n += snprintf(line + n, sizeof(line) - (size_t)n, ".%03ldZ %-5s ", ts.tv_nsec / 1000000,
                  log_level_names[level]);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
    va_end(ap);
    /* One fprintf per record keeps concurrent threads' lines whole. */
    fprintf(stderr, "%s\n", line);
}
