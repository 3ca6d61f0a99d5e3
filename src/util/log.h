/* Logging to stderr with levels; one line per record: text (time, level, message) or JSON (one
 * object a line, with the calling thread's context: request, task and VM ids). */
#pragma once

typedef enum LogLevel {
    LOG_LEVEL_DEBUG,
    LOG_LEVEL_INFO,
    LOG_LEVEL_WARN,
    LOG_LEVEL_ERROR,
    _LOG_LEVEL_MAX,
} LogLevel;

typedef enum LogFormat {
    LOG_FORMAT_TEXT,
    LOG_FORMAT_JSON,
} LogFormat;

void log_set_level(LogLevel level);
void log_set_format(LogFormat format);
int log_format_from_string(const char *s, LogFormat *ret);
/* The calling thread's context, written as fields of each JSON record while set (NULL clears):
 * the API request it serves; the task it runs and the VM that task is about. */
void log_context_request(const char *request_id);
void log_context_task(const char *task_id, const char *vm_id);
int log_level_from_string(const char *s, LogLevel *ret);
void log_write(LogLevel level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_debug(...) log_write(LOG_LEVEL_DEBUG, __VA_ARGS__)
#define log_info(...) log_write(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_warn(...) log_write(LOG_LEVEL_WARN, __VA_ARGS__)
#define log_error(...) log_write(LOG_LEVEL_ERROR, __VA_ARGS__)
