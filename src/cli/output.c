#include "output.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../util/cleanup.h"
#include "../util/strutil.h"

#define OUTPUT_MAX_COLS 16

char *
output_sanitize(const char *s)
{
    char *copy = strdup(s ? s : "");
    if (!copy)
        return NULL;
    for (char *p = copy; *p; p++) {
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
    }
    return copy;
}

void
output_json(json_t *j)
{
    json_dumpf(j, stdout, JSON_INDENT(2));
    fputc('\n', stdout);
}

static char *
output_value(json_t *v)
{
    if (!v || json_is_null(v))
        return strdup("-");
    if (json_is_string(v))
        return output_sanitize(json_string_value(v));
    if (json_is_integer(v))
        return str_printf("%" JSON_INTEGER_FORMAT, json_integer_value(v));
    if (json_is_true(v))
        return strdup("true");
    if (json_is_false(v))
        return strdup("false");
    if (json_is_object(v) && json_is_string(json_object_get(v, "code"))) {
        /* An error object: {"code", "message"}. */
        const char *m = json_string_value(json_object_get(v, "message"));
        _cleanup_free_ char *s =
            str_printf("%s: %s", json_string_value(json_object_get(v, "code")), m ? m : "");
        return s ? output_sanitize(s) : NULL;
    }
    _cleanup_free_ char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    return s ? output_sanitize(s) : NULL;
}

char *
output_fmt_plain(json_t *obj, const char *key)
{
    return output_value(json_object_get(obj, key));
}

char *
output_human_bytes(uint64_t n)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
    if (n < 1024)
        return str_printf("%" PRIu64 " B", n);
    double v = (double)n;
    size_t u = 0;
    while (v >= 1024.0 && u + 1 < ELEMENTSOF(units)) {
        v /= 1024.0;
        u++;
    }
    return str_printf("%.1f %s", v, units[u]);
}

char *
output_fmt_bytes(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return output_value(v);
    return output_human_bytes((uint64_t)json_integer_value(v));
}

char *
output_fmt_bytes_exact(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return output_value(v);
    _cleanup_free_ char *h = output_human_bytes((uint64_t)json_integer_value(v));
    return h ? str_printf("%" JSON_INTEGER_FORMAT " (%s)", json_integer_value(v), h) : NULL;
}

char *
output_fmt_step(json_t *obj, const char *key)
{
    json_t *step = json_object_get(obj, key);
    json_t *steps = json_object_get(obj, "steps");
    if (!json_is_integer(step) || !json_is_integer(steps))
        return output_value(step);
    return str_printf("%" JSON_INTEGER_FORMAT "/%" JSON_INTEGER_FORMAT, json_integer_value(step),
                      json_integer_value(steps));
}

char *
output_fmt_error_code(json_t *obj, const char *key)
{
    json_t *e = json_object_get(obj, key);
    if (json_is_object(e))
        return output_value(json_object_get(e, "code"));
    return output_value(e);
}

static char *
output_format(const OutputField *f, json_t *obj)
{
    return (f->format ? f->format : output_fmt_plain)(obj, f->key);
}

void
output_table(json_t *rows, const OutputField *cols, size_t n_cols, bool wide)
{
    const OutputField *shown[OUTPUT_MAX_COLS];
    size_t n = 0;
    for (size_t i = 0; i < n_cols && n < OUTPUT_MAX_COLS; i++) {
        if (!cols[i].wide || wide)
            shown[n++] = &cols[i];
    }
    size_t n_rows = json_array_size(rows);
    char **cells = calloc((n_rows + 1) * n, sizeof(char *));
    size_t width[OUTPUT_MAX_COLS] = {0};
    if (!cells)
        return;
    for (size_t c = 0; c < n; c++)
        cells[c] = strdup(shown[c]->label);
    for (size_t r = 0; r < n_rows; r++) {
        for (size_t c = 0; c < n; c++)
            cells[(r + 1) * n + c] = output_format(shown[c], json_array_get(rows, r));
    }
    for (size_t i = 0; i < (n_rows + 1) * n; i++) {
        size_t len = cells[i] ? strlen(cells[i]) : 0;
        if (len > width[i % n])
            width[i % n] = len;
    }
    for (size_t r = 0; r <= n_rows; r++) {
        for (size_t c = 0; c < n; c++) {
            const char *s = cells[r * n + c] ? cells[r * n + c] : "";
            if (c + 1 < n)
                printf("%-*s  ", (int)width[c], s);
            else
                printf("%s\n", s);
        }
    }
    for (size_t i = 0; i < (n_rows + 1) * n; i++)
        free(cells[i]);
    free(cells);
}

static bool
output_field_listed(const char *key, const OutputField *fields, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (streq(fields[i].key, key))
            return true;
    }
    return false;
}

void
output_show(json_t *obj, const OutputField *fields, size_t n_fields)
{
    size_t width = 0;
    const char *key;
    json_t *value;
    for (size_t i = 0; i < n_fields; i++) {
        if (strlen(fields[i].label) > width)
            width = strlen(fields[i].label);
    }
    json_object_foreach (obj, key, value) {
        if (!output_field_listed(key, fields, n_fields) && strlen(key) > width)
            width = strlen(key);
    }
    for (size_t i = 0; i < n_fields; i++) {
        _cleanup_free_ char *v = output_format(&fields[i], obj);
        printf("%s:%*s %s\n", fields[i].label, (int)(width - strlen(fields[i].label)), "",
               v ? v : "");
    }
    /* Fields a newer server added: shown rather than hidden. */
    json_object_foreach (obj, key, value) {
        if (output_field_listed(key, fields, n_fields))
            continue;
        _cleanup_free_ char *k = output_sanitize(key);
        _cleanup_free_ char *v = output_value(value);
        printf("%s:%*s %s\n", k ? k : "", (int)(width - strlen(key)), "", v ? v : "");
    }
}
