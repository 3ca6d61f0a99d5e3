/* What the CLI prints: tables for lists, "label: value" blocks for one object, or raw JSON. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Renders obj[key] as text (malloc'd); NULL only on OOM. */
typedef char *(*OutputFormatFn)(json_t *obj, const char *key);

typedef struct OutputField {
    const char *label;     /* column header or show label */
    const char *key;       /* member of the object */
    OutputFormatFn format; /* NULL: output_fmt_plain */
    bool wide;             /* table column shown only with --wide */
} OutputField;

/* A copy of s with control characters replaced by '?': server text never drives the
 * terminal. NULL on OOM. */
char *output_sanitize(const char *s);

/* Pretty-prints j on stdout. */
void output_json(json_t *j);

/* A table with one row per object of `rows`. */
void output_table(json_t *rows, const OutputField *cols, size_t n_cols, bool wide);

/* One object as aligned "label: value" lines; members not in fields follow, by key. */
void output_show(json_t *obj, const OutputField *fields, size_t n_fields);

/* "12.3 MiB" */
char *output_human_bytes(uint64_t n);

/* Formatters: strings as is, numbers in decimal, null or missing as "-". */
char *output_fmt_plain(json_t *obj, const char *key);
char *output_fmt_bytes(json_t *obj, const char *key);       /* "12.3 MiB" */
char *output_fmt_bytes_exact(json_t *obj, const char *key); /* "12897485 (12.3 MiB)" */
char *output_fmt_step(json_t *obj, const char *key);        /* "<step>/<steps>" */
char *output_fmt_error_code(json_t *obj, const char *key);  /* error.code */
