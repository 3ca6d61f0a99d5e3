/* nimbus token create|list|revoke: API tokens of the current user (admin: of everyone). */
#include <stdio.h>
#include <string.h>

#include "../util/cleanup.h"
#include "../util/strutil.h"
#include "../util/timeutil.h"
#include "api.h"
#include "args.h"
#include "resource.h"

#define TOKEN_EXPIRES_MIN 60
#define TOKEN_EXPIRES_MAX (366 * 86400)

static const OutputField token_columns[] = {
    {"ID", "id", NULL, false},
    {"NAME", "name", NULL, false},
    {"USER", "user", NULL, false},
    {"STATE", "state", NULL, false},
    {"EXPIRES", "expires_at", NULL, false},
    {"CREATED", "created_at", NULL, true},
    {"REVOKED", "revoked_at", NULL, true},
    {"USER-ID", "user_id", NULL, true},
};

static const OutputField token_fields[] = {
    {"id", "id", NULL, false},
    {"name", "name", NULL, false},
    {"user_id", "user_id", NULL, false},
    {"created_at", "created_at", NULL, false},
    {"expires_at", "expires_at", NULL, false},
    {"token", "token", NULL, false},
};

static const Resource token_resource = {
    .collection = "tokens",
    .columns = token_columns,
    .n_columns = ELEMENTSOF(token_columns),
    .fields = token_fields,
    .n_fields = ELEMENTSOF(token_fields),
};

static int
token_create(Cli *cli, const Args *a)
{
    const char *name = args_get(a, "name"), *expires = args_get(a, "expires");
    json_auto_t *body = json_object();
    if (!body)
        return CLI_EXIT_API;
    if (name) {
        if (!*name)
            return args_usage_error(a, "--name must not be empty");
        json_object_set_new(body, "name", json_string(name));
    }
    if (expires) {
        uint64_t s;
        if (args_parse_duration(expires, &s) < 0 || s < TOKEN_EXPIRES_MIN || s > TOKEN_EXPIRES_MAX)
            return args_usage_error(a, "--expires must be a duration from 60s to 366d, like 30d, "
                                       "12h, 90m, 3600s or 3600");
        json_object_set_new(body, "expires_in", json_integer((json_int_t)s));
    }
    json_auto_t *resp = NULL;
    int r = api_call(cli, "POST", "/v1/tokens", body, &resp);
    if (r != 0)
        return r;
    if (!api_str(resp, "token")) {
        fprintf(stderr, "error: INVALID_RESPONSE: the answer has no token\n");
        return CLI_EXIT_API;
    }
    resource_print(cli, &token_resource, resp);
    fflush(stdout);
    fprintf(stderr, "warning: the token is shown only this once; store it somewhere safe now\n");
    api_zero_string(resp, "token");
    return CLI_EXIT_OK;
}

/* {"<user id>": "<name>"} as far as the caller may know them. */
static json_t *
token_user_names(Cli *cli)
{
    json_t *names = json_object();
    json_auto_t *resp = NULL;
    size_t i;
    json_t *u;
    if (!names)
        return NULL;
    if (api_call_full(cli, "GET", "/v1/users", NULL, true, NULL, &resp) == 0) {
        json_array_foreach (json_object_get(resp, "users"), i, u) {
            if (api_str(u, "id") && api_str(u, "name"))
                json_object_set(names, api_str(u, "id"), json_object_get(u, "name"));
        }
    } else if (api_call_full(cli, "GET", "/v1/auth/whoami", NULL, true, NULL, &resp) == 0) {
        /* Not an admin: every token listed is the caller's own. */
        u = json_object_get(resp, "user");
        if (api_str(u, "id") && api_str(u, "name"))
            json_object_set(names, api_str(u, "id"), json_object_get(u, "name"));
    }
    return names;
}

static int
token_list(Cli *cli, const Args *a)
{
    if (cli->json)
        return resource_list(cli, &token_resource, "", false);
    json_auto_t *resp = NULL;
    int r = api_call(cli, "GET", "/v1/tokens", NULL, &resp);
    if (r != 0)
        return r;
    json_t *tokens = json_object_get(resp, "tokens");
    if (!json_is_array(tokens)) {
        fprintf(stderr, "error: INVALID_RESPONSE: no 'tokens' list in the answer\n");
        return CLI_EXIT_API;
    }
    json_auto_t *names = token_user_names(cli);
    char now[NB_TIMESTAMP_LEN];
    nb_timestamp_now(now);
    size_t i;
    json_t *t;
    json_array_foreach (tokens, i, t) {
        const char *uid = api_str(t, "user_id");
        json_t *uname = uid ? json_object_get(names, uid) : NULL;
        json_object_set(t, "user", uname ? uname : json_object_get(t, "user_id"));
        /* Timestamps are RFC 3339 UTC: they compare as strings. */
        const char *exp = api_str(t, "expires_at");
        const char *state = "active";
        if (api_str(t, "revoked_at"))
            state = "revoked";
        else if (exp && strcmp(exp, now) <= 0)
            state = "expired";
        json_object_set_new(t, "state", json_string(state));
    }
    output_table(tokens, token_columns, ELEMENTSOF(token_columns), args_has(a, "wide"));
    return CLI_EXIT_OK;
}

static int
token_revoke(Cli *cli, const Args *a)
{
    return resource_delete_as(cli, &token_resource, a->positional[0], "revoked");
}

static const ArgSpec create_specs[] = {{"name", true}, {"expires", true}};
static const ArgSpec list_specs[] = {{"wide", false}};

static const Command token_commands[] = {
    {"create", "[--name NAME] [--expires DURATION]",
     "Create an API token for yourself; its secret is printed this once only.",
     "  --name NAME          a label to recognise it by\n"
     "  --expires DURATION   lifetime: 30d, 12h, 90m, 3600s or seconds; 60s to 366d\n"
     "                       (default 30d)\n",
     token_create, create_specs, ELEMENTSOF(create_specs), 0, 0, NULL},
    {"list", "[--wide]", "List your tokens (admin: everyone's), without their secrets.",
     "  --wide               also show creation and revocation times, and the user id\n",
     token_list, list_specs, ELEMENTSOF(list_specs), 0, 0, NULL},
    {"revoke", "ID", "Revoke a token: it stops working at once.", NULL, token_revoke, NULL, 0, 1, 1,
     NULL},
};

int
cmd_token(Cli *cli, int argc, char **argv)
{
    return args_dispatch(cli, "token", "Manage API tokens.", token_commands,
                         ELEMENTSOF(token_commands), argc, argv);
}
