#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static LogLevel log_min_level = LOG_LEVEL_INFO;
static LogFormat log_format = LOG_FORMAT_TEXT;
static const char *const log_level_names[_LOG_LEVEL_MAX] = {"debug", "info", "warn", "error"};

/* Ids are UUIDs or request ids: short and plain (anything else is cut or dropped by the
 * escaping below). */
typedef struct LogContext {
    char request_id[48];
    char task_id[48];
    char vm_id[48];
} LogContext;
static __thread LogContext log_ctx;

void
log_set_format(LogFormat format)
{
    log_format = format;
}

int
log_format_from_string(const char *s, LogFormat *ret)
{
    if (strcmp(s, "text") == 0)
        *ret = LOG_FORMAT_TEXT;
    else if (strcmp(s, "json") == 0)
        *ret = LOG_FORMAT_JSON;
    else
        return -1;
    return 0;
}

void
log_context_request(const char *request_id)
{
    snprintf(log_ctx.request_id, sizeof(log_ctx.request_id), "%s", request_id ? request_id : "");
}

void
log_context_task(const char *task_id, const char *vm_id)
{
    snprintf(log_ctx.task_id, sizeof(log_ctx.task_id), "%s", task_id ? task_id : "");
    snprintf(log_ctx.vm_id, sizeof(log_ctx.vm_id), "%s", vm_id ? vm_id : "");
}

/* Length of the valid UTF-8 sequence at s (1-4), or 0. */
static size_t
utf8_seq_len(const unsigned char *s, size_t left)
{
    size_t n = s[0] < 0xc2 ? 0 : s[0] < 0xe0 ? 2 : s[0] < 0xf0 ? 3 : s[0] < 0xf5 ? 4 : 0;
    if (n == 0 || n > left)
        return 0;
    for (size_t i = 1; i < n; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    if ((s[0] == 0xe0 && s[1] < 0xa0) || (s[0] == 0xed && s[1] > 0x9f) ||
        (s[0] == 0xf0 && s[1] < 0x90) || (s[0] == 0xf4 && s[1] > 0x8f))
        return 0; /* overlong, surrogate, or above U+10FFFF */
    return n;
}

/* Appends s as a JSON string (quotes included) at out+*n, never past len - 1. Bytes that are
 * not UTF-8 become U+FFFD, so a record is always valid JSON whatever a message holds. */
static void
json_append_string(char *out, size_t len, size_t *n, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t left = strlen(s);
#define PUT(str, k)                                                                                \
    do {                                                                                           \
        if (*n + (k) + 2 >= len)                                                                   \
            goto done;                                                                             \
        memcpy(out + *n, (str), (k));                                                              \
        *n += (k);                                                                                 \
    } while (0)
    PUT("\"", 1);
    while (left > 0) {
        char esc[8];
        if (*p == '"' || *p == '\\') {
            esc[0] = '\\';
            esc[1] = (char)*p;
            PUT(esc, 2);
        } else if (*p < 0x20 || *p == 0x7f) {
            snprintf(esc, sizeof(esc), "\\u%04x", *p);
            PUT(esc, 6);
        } else if (*p < 0x80) {
            PUT(p, 1);
        } else {
            size_t k = utf8_seq_len(p, left);
            if (k == 0) {
                PUT("\\ufffd", 6);
                p++;
                left--;
                continue;
            }
            PUT(p, k);
            p += k;
            left -= k;
            continue;
        }
        p++;
        left--;
    }
done:
    if (*n + 2 <= len) {
        out[(*n)++] = '"';
        out[*n] = '\0';
    }
#undef PUT
}

static void
json_append_field(char *out, size_t len, size_t *n, const char *key, const char *value)
{
    if (!value[0] || *n + strlen(key) + 8 >= len)
        return;
    *n += (size_t)snprintf(out + *n, len - *n, ", \"%s\": ", key);
    json_append_string(out, len, n, value);
}

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
    char msg[2048], stamp[40];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t k = strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(stamp + k, sizeof(stamp) - k, ".%03ldZ", ts.tv_nsec / 1000000);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    /* One fprintf per record keeps concurrent threads' lines whole. */
    if (log_format == LOG_FORMAT_TEXT) {
        fprintf(stderr, "%s %-5s %s\n", stamp, log_level_names[level], msg);
        return;
    }
    char line[4096];
    size_t n = (size_t)snprintf(line, sizeof(line), "{\"time\": \"%s\", \"level\": \"%s\"", stamp,
                                log_level_names[level]);
    json_append_field(line, sizeof(line) - 1, &n, "request_id", log_ctx.request_id);
    json_append_field(line, sizeof(line) - 1, &n, "task_id", log_ctx.task_id);
    json_append_field(line, sizeof(line) - 1, &n, "vm_id", log_ctx.vm_id);
    /* The message last: a long one is cut, the ids before it never are. */
    n += (size_t)snprintf(line + n, sizeof(line) - n, ", \"msg\": ");
    json_append_string(line, sizeof(line) - 1, &n, msg);
    fprintf(stderr, "%s}\n", line);
}
