/* nimbus user create|list|show|delete (admin only) */
#include <stdio.h>
#include <string.h>

#include "../model/validate.h"
#include "../util/cleanup.h"
#include "../util/strutil.h"
#include "api.h"
#include "args.h"
#include "prompt.h"
#include "resource.h"

static const OutputField user_columns[] = {
    {"NAME", "name", NULL, false},
    {"ROLE", "role", NULL, false},
    {"PROJECT", "project", NULL, false},
    {"CREATED", "created_at", NULL, false},
    {"PROJECT-ID", "project_id", NULL, true},
    {"ID", "id", NULL, true},
};

static const OutputField user_fields[] = {
    {"id", "id", NULL, false},           {"name", "name", NULL, false},
    {"role", "role", NULL, false},       {"project_id", "project_id", NULL, false},
    {"project", "project", NULL, false}, {"created_at", "created_at", NULL, false},
};

static const Resource user_resource = {
    .collection = "users",
    .columns = user_columns,
    .n_columns = ELEMENTSOF(user_columns),
    .fields = user_fields,
    .n_fields = ELEMENTSOF(user_fields),
};

/* Prints a user with its project's name next to the id (the API gives only the id). */
static void
user_print(Cli *cli, json_t *user)
{
    if (cli->json) {
        output_json(user);
        return;
    }
    json_auto_t *rows = json_pack("[O]", user);
    if (rows)
        cli_add_project_names(cli, rows, "project_id", "project");
    output_show(user, user_fields, ELEMENTSOF(user_fields));
}

static bool
user_role_is_valid(const char *role)
{
    return streq(role, "admin") || streq(role, "member") || streq(role, "reader") ||
           streq(role, "metrics");
}

static int
user_create(Cli *cli, const Args *a)
{
    const char *name = a->positional[0];
    const char *project = args_get(a, "project"), *role = args_get(a, "role");
    if (!nb_name_is_valid(name))
        return args_usage_error(a,
                                "invalid name '%s': use [A-Za-z0-9][A-Za-z0-9._-]{0,62}, "
                                "not a UUID",
                                name);
    if (!project || !*project || !role)
        return args_usage_error(a, "--project and --role are required");
    if (!user_role_is_valid(role))
        return args_usage_error(a, "--role must be admin, member, reader or metrics");

    _cleanup_free_ char *prompt = str_printf("Password for %s: ", name);
    if (!prompt)
        return CLI_EXIT_API;
    Password pw;
    int r = prompt_password(prompt, args_has(a, "password-stdin"), true, &pw);
    if (r != 0)
        return r;
    if (pw.len < PROMPT_PASSWORD_MIN) {
        password_clear(&pw);
        fprintf(stderr, "error: the password must have at least %d bytes\n", PROMPT_PASSWORD_MIN);
        return CLI_EXIT_USAGE;
    }
    json_auto_t *body = json_pack("{s:s, s:s%, s:s, s:s}", "name", name, "password", pw.buf, pw.len,
                                  "project", project, "role", role);
    password_clear(&pw);
    if (!body)
        return CLI_EXIT_API;
    json_auto_t *user = NULL;
    r = api_call(cli, "POST", "/v1/users", body, &user);
    api_zero_string(body, "password");
    if (r != 0)
        return r;
    user_print(cli, user);
    return CLI_EXIT_OK;
}

static int
user_list(Cli *cli, const Args *a)
{
    if (cli->json)
        return resource_list(cli, &user_resource, "", false);
    json_auto_t *resp = NULL;
    int r = api_call(cli, "GET", "/v1/users", NULL, &resp);
    if (r != 0)
        return r;
    json_t *users = json_object_get(resp, "users");
    if (!json_is_array(users)) {
        fprintf(stderr, "error: INVALID_RESPONSE: no 'users' list in the answer\n");
        return CLI_EXIT_API;
    }
    cli_add_project_names(cli, users, "project_id", "project");
    output_table(users, user_columns, ELEMENTSOF(user_columns), args_has(a, "wide"));
    return CLI_EXIT_OK;
}

static int
user_show(Cli *cli, const Args *a)
{
    json_auto_t *user = NULL;
    int r = resource_get(cli, &user_resource, a->positional[0], &user);
    if (r != 0)
        return r;
    user_print(cli, user);
    return CLI_EXIT_OK;
}

static int
user_delete(Cli *cli, const Args *a)
{
    return resource_delete(cli, &user_resource, a->positional[0]);
}

static const ArgSpec create_specs[] = {
    {"project", true}, {"role", true}, {"password-stdin", false}};
static const ArgSpec list_specs[] = {{"wide", false}};

static const Command user_commands[] = {
    {"create", "NAME --project NAME|ID --role admin|member|reader|metrics [--password-stdin]",
     "Create a user; the password is asked twice on the terminal.",
     "  --project P       the user's project (name or id)\n"
     "  --role ROLE       admin: everything; member: its project's VMs and images;\n"
     "                    reader: read-only on its project\n"
     "                    metrics: GET /metrics only (a Prometheus scraper)\n"
     "  --password-stdin  read the password (8 to 1024 bytes) from the first line of\n"
     "                    standard input\n",
     user_create, create_specs, ELEMENTSOF(create_specs), 1, 1, NULL},
    {"list", "[--wide]", "List users.",
     "  --wide            also show the project id and user id\n", user_list, list_specs,
     ELEMENTSOF(list_specs), 0, 0, NULL},
    {"show", "NAME|ID", "Show a user.", NULL, user_show, NULL, 0, 1, 1, NULL},
    {"delete", "NAME|ID", "Delete a user and revoke its tokens.", NULL, user_delete, NULL, 0, 1, 1,
     NULL},
};

int
cmd_user(Cli *cli, int argc, char **argv)
{
    return args_dispatch(cli, "user", "Manage users (admin only).", user_commands,
                         ELEMENTSOF(user_commands), argc, argv);
}
