/* list / show / delete, the same for every kind of resource. */
#pragma once

#include <jansson.h>
#include <stdbool.h>

#include "args.h"
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
/* GET /v1/<collection><query>; query is "" or "?...". Follows "next_marker" through every
 * page and prints them as one list (--json: {"<collection>": [every item]}). */
int resource_list(Cli *cli, const Resource *res, const char *query, bool wide);
/* The same with pages of page_limit items (0: the server's default). */
int resource_list_pages(Cli *cli, const Resource *res, const char *query, unsigned page_limit,
                        bool wide);
/* --limit N (1 to 1000, the API's page size): *ret 0 when absent. Prints the error and returns
 * CLI_EXIT_USAGE on a bad value. */
int resource_page_limit(const Args *a, unsigned *ret);
#define RESOURCE_LIMIT_HELP                                                                        \
    "  --limit N              fetch N items per request (1-1000, default 1000); every page is\n"   \
    "                         fetched and printed in order either way\n"
int resource_get(Cli *cli, const Resource *res, const char *id, json_t **ret);
int resource_show(Cli *cli, const Resource *res, const char *id);
int resource_delete(Cli *cli, const Resource *res, const char *id);
/* The same, printing done ("removed", "revoked") instead of "deleted". */
int resource_delete_as(Cli *cli, const Resource *res, const char *id, const char *done);
