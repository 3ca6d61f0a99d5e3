/* list / show / delete, the same for every kind of resource. */
#pragma once

#include <jansson.h>
#include <stdbool.h>

#include "cli.h"
#include "output.h"

typedef struct Resource {
    const char *collection; /* "flavors": the URL segment and the list's member */
    const OutputField *columns;
    size_t n_columns;
    const OutputField *fields;
    size_t n_fields;
} Resource;

/* Prints one object: JSON with --json, else "label: value" lines. */
void resource_print(Cli *cli, const Resource *res, json_t *obj);
/* GET /v1/<collection><query>; query is "" or "?...". */
int resource_list(Cli *cli, const Resource *res, const char *query, bool wide);
int resource_get(Cli *cli, const Resource *res, const char *id, json_t **ret);
int resource_show(Cli *cli, const Resource *res, const char *id);
int resource_delete(Cli *cli, const Resource *res, const char *id);
/* The same, printing done ("removed", "revoked") instead of "deleted". */
int resource_delete_as(Cli *cli, const Resource *res, const char *id, const char *done);
