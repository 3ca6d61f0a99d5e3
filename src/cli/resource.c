#include "resource.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../util/cleanup.h"
#include "../util/strutil.h"
#include "api.h"

void
resource_print(Cli *cli, const Resource *res, json_t *obj)
{
    if (cli->json)
        output_json(obj);
    else
        output_show(obj, res->fields, res->n_fields);
}

/* The query with "name=value" appended ('?' or '&' as needed); value is already escaped. */
static char *
resource_query_add(const char *query, const char *name, const char *value)
{
    return str_printf("%s%c%s=%s", query, query[0] ? '&' : '?', name, value);
}

int
resource_list_pages(Cli *cli, const Resource *res, const char *query, unsigned page_limit,
                    bool wide)
{
    Client *c;
    int r = api_client(cli, &c);
    if (r != 0)
        return r;
    json_auto_t *all = json_array();
    _cleanup_free_ char *marker = NULL;
    _cleanup_free_ char *limit_s = page_limit ? str_printf("%u", page_limit) : NULL;
    _cleanup_free_ char *base =
        limit_s ? resource_query_add(query, "limit", limit_s) : strdup(query);
    if (!all || !base)
        return CLI_EXIT_API;
    /* Each page starts after the last row of the one before (keyset pages): a VM created or
     * deleted meanwhile never makes another one show twice or go missing. */
    for (;;) {
        _cleanup_free_ char *escaped = marker ? client_escape(c, marker) : NULL;
        _cleanup_free_ char *q = escaped ? resource_query_add(base, "marker", escaped) : NULL;
        _cleanup_free_ char *path = str_printf("/v1/%s%s", res->collection, q ? q : base);
        json_auto_t *resp = NULL;
        if (!path || (marker && !q))
            return CLI_EXIT_API;
        r = api_call(cli, "GET", path, NULL, &resp);
        if (r != 0)
            return r;
        json_t *items = json_object_get(resp, res->collection);
        if (!json_is_array(items)) {
            fprintf(stderr, "error: INVALID_RESPONSE: no '%s' list in the answer\n",
                    res->collection);
            return CLI_EXIT_API;
        }
        json_array_extend(all, items);
        const char *next = api_str(resp, "next_marker");
        if (!next || !*next)
            break;
        if (json_array_size(items) == 0 || (marker && streq(marker, next))) {
            fprintf(stderr, "error: INVALID_RESPONSE: the server's pages do not advance\n");
            return CLI_EXIT_API;
        }
        free(marker);
        marker = strdup(next);
        if (!marker)
            return CLI_EXIT_API;
    }
    if (cli->json) {
        json_auto_t *merged = json_pack("{s:O}", res->collection, all);
        output_json(merged);
    } else {
        output_table(all, res->columns, res->n_columns, wide);
    }
    return CLI_EXIT_OK;
}

int
resource_page_limit(const Args *a, unsigned *ret)
{
    uint64_t v = 0;
    int r = args_get_u64(a, "limit", 1, 1000, &v);
    *ret = (unsigned)v;
    return r;
}

int
resource_list(Cli *cli, const Resource *res, const char *query, bool wide)
{
    return resource_list_pages(cli, res, query, 0, wide);
}

int
resource_get(Cli *cli, const Resource *res, const char *id, json_t **ret)
{
    _cleanup_free_ char *path = NULL;
    int r = api_path(cli, res->collection, id, NULL, &path);
    if (r != 0)
        return r;
    r = api_call(cli, "GET", path, NULL, ret);
    if (r == 0 && !json_is_object(*ret)) {
        fprintf(stderr, "error: INVALID_RESPONSE: expected an object\n");
        json_decref(*ret);
        *ret = NULL;
        return CLI_EXIT_API;
    }
    return r;
}

int
resource_show(Cli *cli, const Resource *res, const char *id)
{
    json_auto_t *obj = NULL;
    int r = resource_get(cli, res, id, &obj);
    if (r != 0)
        return r;
    resource_print(cli, res, obj);
    return CLI_EXIT_OK;
}

int
resource_delete_as(Cli *cli, const Resource *res, const char *id, const char *done)
{
    _cleanup_free_ char *path = NULL;
    json_auto_t *resp = NULL;
    int r = api_path(cli, res->collection, id, NULL, &path);
    if (r != 0)
        return r;
    r = api_call(cli, "DELETE", path, NULL, &resp);
    if (r != 0)
        return r;
    if (cli->json) {
        if (resp)
            output_json(resp);
    } else {
        printf("%s\n", done);
    }
    return CLI_EXIT_OK;
}

int
resource_delete(Cli *cli, const Resource *res, const char *id)
{
    return resource_delete_as(cli, res, id, "deleted");
}
