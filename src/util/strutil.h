#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

static inline bool
streq(const char *a, const char *b)
{
    return a && b && strcmp(a, b) == 0;
}

static inline bool
str_startswith(const char *s, const char *prefix)
{
    return s && strncmp(s, prefix, strlen(prefix)) == 0;
}

/* asprintf that returns NULL on failure. */
char *str_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Strict decimal parse: digits only, no sign, no overflow. 0 or -EINVAL/-ERANGE. */
int str_to_u64(const char *s, uint64_t *ret);
/* Writes the whole buffer, retrying on EINTR and short writes. 0 or -errno. */
int write_full(int fd, const void *buf, size_t len);
/* Reads a whole file of at most max bytes into a NUL-terminated buffer. 0 or -errno. */
int read_file_full(const char *path, size_t max, char **ret, size_t *ret_len);
