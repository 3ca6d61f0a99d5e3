#include "resource.h"

#include <stdio.h>
#include <stdlib.h>

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

int
resource_list(Cli *cli, const Resource *res, const char *query, bool wide)
{
    _cleanup_free_ char *path = str_printf("/v1/%s%s", res->collection, query);
    json_auto_t *resp = NULL;
    if (!path)
        return CLI_EXIT_API;
    int r = api_call(cli, "GET", path, NULL, &resp);
    if (r != 0)
        return r;
    json_t *items = json_object_get(resp, res->collection);
    if (!json_is_array(items)) {
        fprintf(stderr, "error: INVALID_RESPONSE: no '%s' list in the answer\n", res->collection);
        return CLI_EXIT_API;
    }
    if (cli->json)
        output_json(resp);
    else
        output_table(items, res->columns, res->n_columns, wide);
    return CLI_EXIT_OK;
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
