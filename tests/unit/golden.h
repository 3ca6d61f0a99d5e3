/*
 * Golden files for the unit tests: text a test builds is compared with tests/golden/<name>;
 * NIMBUS_GOLDEN_UPDATE=1 writes the file instead (review the diff before committing it).
 * Include after <cmocka.h>; GOLDEN_DIR comes from tests/unit/meson.build.
 */
#pragma once

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The file's text (at most 64 KiB), to free; NULL when it cannot be read. */
static inline char *
golden_read(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = calloc(1, 65536);
    size_t n = buf ? fread(buf, 1, 65535, f) : 0;
    fclose(f);
    if (buf)
        buf[n] = '\0';
    return buf;
}

/* Fails the test unless text is tests/golden/<name> exactly. */
static inline void
golden_check(const char *name, const char *text)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", GOLDEN_DIR, name);
    if (getenv("NIMBUS_GOLDEN_UPDATE")) {
        FILE *f = fopen(path, "w");
        assert_non_null(f);
        fputs(text, f);
        fclose(f);
    }
    char *want = golden_read(path);
    if (!want)
        fail_msg("no golden file %s (NIMBUS_GOLDEN_UPDATE=1 writes it)", path);
    if (strcmp(want, text) != 0)
        fail_msg("%s differs:\n--- want\n%s--- got\n%s", name, want, text);
    free(want);
}
