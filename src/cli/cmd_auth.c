/* nimbus login|logout|whoami: getting a token by password, and giving it back. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../util/cleanup.h"
#include "../util/strutil.h"
#include "api.h"
#include "args.h"
#include "config.h"
#include "output.h"
#include "prompt.h"

int
cli_whoami(Cli *cli, bool quiet, long *ret_status, json_t **ret)
{
    json_t *who = NULL;
    int r = api_call_full(cli, "GET", "/v1/auth/whoami", NULL, quiet, ret_status, &who);
    if (r != 0)
        return r;
    if (!json_is_object(json_object_get(who, "user"))) {
        fprintf(stderr, "error: INVALID_RESPONSE: whoami has no user\n");
        json_decref(who);
        return CLI_EXIT_API;
    }
    *ret = who;
    return CLI_EXIT_OK;
}

int
cli_project_or_mine(Cli *cli, const char *project_opt, char **ret)
{
    if (project_opt) {
        if (!*project_opt) {
            fprintf(stderr, "error: --project must not be empty\n");
            return CLI_EXIT_USAGE;
        }
        *ret = strdup(project_opt);
        return *ret ? CLI_EXIT_OK : CLI_EXIT_API;
    }
    json_auto_t *who = NULL;
    int r = cli_whoami(cli, false, NULL, &who);
    if (r != 0)
        return r;
    const char *id = api_str(json_object_get(who, "project"), "id")
                         ?: api_str(json_object_get(who, "user"), "project_id");
    if (!id) {
        fprintf(stderr, "error: INVALID_RESPONSE: whoami names no project\n");
        return CLI_EXIT_API;
    }
    *ret = strdup(id);
    return *ret ? CLI_EXIT_OK : CLI_EXIT_API;
}

static int
auth_login(Cli *cli, const Args *a)
{
    const char *user = args_get(a, "user");
    if (!user || !*user)
        return args_usage_error(a, "--user is required");
    _cleanup_free_ char *cfg_path = NULL;
    int r = config_user_path(&cfg_path);
    if (r < 0) {
        fprintf(stderr, "error: nowhere to keep the token: set NIMBUS_CONFIG or HOME\n");
        return CLI_EXIT_USAGE;
    }

    Password pw;
    r = prompt_password("Password: ", args_has(a, "password-stdin"), false, &pw);
    if (r != 0)
        return r;
    json_auto_t *body = json_pack("{s:s, s:s%}", "user", user, "password", pw.buf, pw.len);
    password_clear(&pw);
    if (!body)
        return CLI_EXIT_API;

    cli->anonymous = true;
    json_auto_t *resp = NULL;
    r = api_call(cli, "POST", "/v1/auth/login", body, &resp);
    api_zero_string(body, "password");
    if (r != 0)
        return r;
    const char *token = api_str(resp, "token");
    json_t *u = json_object_get(resp, "user");
    if (!token || !*token) {
        fprintf(stderr, "error: INVALID_RESPONSE: the login answer has no token\n");
        return CLI_EXIT_API;
    }

    /* A relative CA path would mean something else from another directory. */
    _cleanup_free_ char *cacert = cli->cacert ? realpath(cli->cacert, NULL) : NULL;
    const char *keys[] = {"url", "token", "cacert"};
    const char *values[] = {cli->url, token, cacert};
    r = config_update_file(cfg_path, keys, values, cacert ? 3 : 2);
    api_zero_string(resp, "token");
    if (r < 0) {
        fprintf(stderr, "error: cannot save the token in %s: %s\n", cfg_path, strerror(-r));
        return CLI_EXIT_API;
    }

    if (cli->json) {
        json_object_del(resp, "token");
        json_object_set_new(resp, "config", json_string(cfg_path));
        output_json(resp);
    } else {
        _cleanup_free_ char *name = output_sanitize(api_str(u, "name") ?: user);
        _cleanup_free_ char *role = output_sanitize(api_str(u, "role") ?: "?");
        _cleanup_free_ char *project = output_sanitize(api_str(u, "project_id") ?: "?");
        _cleanup_free_ char *expires = output_sanitize(api_str(resp, "expires_at") ?: "?");
        printf("Logged in to %s as %s (%s, project %s).\n", cli->url, name ?: "", role ?: "",
               project ?: "");
        printf("Token saved in %s; it expires at %s.\n", cfg_path, expires ?: "");
    }
    const char *env = getenv("NIMBUS_TOKEN");
    if (env && *env)
        fprintf(stderr, "warning: NIMBUS_TOKEN is set and takes precedence over the saved "
                        "token; unset it to use the new one\n");
    const char *env_cfg = getenv("NIMBUS_CONFIG");
    if ((!env_cfg || !*env_cfg) && cli->config_path && !streq(cli->config_path, cfg_path))
        fprintf(stderr, "note: %s now takes precedence over %s\n", cfg_path, cli->config_path);
    return CLI_EXIT_OK;
}

/* Takes the token out of the config file it came from, if it came from one. */
static int
auth_forget_token(Cli *cli, const char **ret_path)
{
    *ret_path = NULL;
    if (cli->token_source != CONFIG_SOURCE_FILE || !cli->config_path) {
        fprintf(stderr, "note: the token came from %s; no config file was changed\n",
                cli->token_source == CONFIG_SOURCE_ENV ? "NIMBUS_TOKEN" : "--token");
        return CLI_EXIT_OK;
    }
    const char *keys[] = {"token"};
    const char *values[] = {NULL};
    int r = config_update_file(cli->config_path, keys, values, 1);
    if (r < 0) {
        fprintf(stderr, "error: cannot remove the token from %s: %s\n", cli->config_path,
                strerror(-r));
        return CLI_EXIT_API;
    }
    *ret_path = cli->config_path;
    return CLI_EXIT_OK;
}

static int
auth_logout(Cli *cli, const Args *a)
{
    Client *c;
    int r = api_client(cli, &c);
    if (r != 0)
        return r;
    if (cli->token_source == CONFIG_SOURCE_NONE) {
        fprintf(stderr, "not logged in: no token\n");
        return CLI_EXIT_OK;
    }

    /* An expired or revoked token is already worthless: only the config file needs cleaning. */
    long status = 0;
    json_auto_t *who = NULL;
    r = api_call_unless(cli, "GET", "/v1/auth/whoami", NULL, 401, &status, &who);
    bool already_invalid = r == CLI_EXIT_API && status == 401;
    if (r != 0 && !already_invalid)
        return r;
    const char *token_id = already_invalid ? NULL : api_str(who, "token_id");
    if (!already_invalid) {
        if (!token_id || !*token_id) {
            fprintf(stderr, "error: INVALID_RESPONSE: whoami does not name the token\n");
            return CLI_EXIT_API;
        }
        _cleanup_free_ char *path = NULL;
        r = api_path(cli, "tokens", token_id, NULL, &path);
        if (r == 0)
            r = api_call(cli, "DELETE", path, NULL, NULL);
        if (r != 0)
            return r;
    }

    const char *changed = NULL;
    r = auth_forget_token(cli, &changed);
    if (cli->json) {
        json_auto_t *out = json_pack("{s:s?, s:b, s:s?}", "token_id", token_id, "revoked",
                                     !already_invalid, "config", changed);
        if (out)
            output_json(out);
    } else {
        _cleanup_free_ char *id = token_id ? output_sanitize(token_id) : NULL;
        if (already_invalid)
            printf("The token was no longer valid (expired or revoked).\n");
        else
            printf("Token %s revoked.\n", id ?: "");
        if (changed)
            printf("Removed it from %s.\n", changed);
    }
    return r;
}

static int
auth_whoami(Cli *cli, const Args *a)
{
    json_auto_t *who = NULL;
    int r = cli_whoami(cli, false, NULL, &who);
    if (r != 0)
        return r;
    if (cli->json) {
        output_json(who);
        return CLI_EXIT_OK;
    }
    json_t *u = json_object_get(who, "user");
    json_t *p = json_object_get(who, "project");
    json_auto_t *flat =
        json_pack("{s:O?, s:O?, s:O?, s:O?, s:O?, s:O?, s:s?}", "user", json_object_get(u, "name"),
                  "user_id", json_object_get(u, "id"), "role", json_object_get(u, "role"),
                  "project", json_object_get(p, "name"), "project_id",
                  json_object_get(p, "id") ?: json_object_get(u, "project_id"), "token_id",
                  json_object_get(who, "token_id"), "url", cli->url);
    static const OutputField fields[] = {
        {"user", "user", NULL, false},
        {"user_id", "user_id", NULL, false},
        {"role", "role", NULL, false},
        {"project", "project", NULL, false},
        {"project_id", "project_id", NULL, false},
        {"token_id", "token_id", NULL, false},
        {"url", "url", NULL, false},
    };
    if (!flat)
        return CLI_EXIT_API;
    output_show(flat, fields, ELEMENTSOF(fields));
    return CLI_EXIT_OK;
}

static const ArgSpec login_specs[] = {{"user", true}, {"password-stdin", false}};

static const Command login_command = {
    "login",
    "--user NAME [--password-stdin]",
    "Log in with a password and save the token (24 h) in the config file.",
    "  --user NAME       the user to log in as\n"
    "  --password-stdin  read the password from the first line of standard input instead of\n"
    "                    asking on the terminal\n"
    "\nThe URL (and the --cacert file, if any) are saved with the token in $NIMBUS_CONFIG or\n"
    "~/.config/nimbus/config (mode 0600); other lines of the file are kept.\n",
    auth_login,
    login_specs,
    ELEMENTSOF(login_specs),
    0,
    0,
    NULL};

static const Command logout_command = {
    "logout", "",          "Revoke the current token and remove it from the config file.",
    NULL,     auth_logout, NULL,
    0,        0,           0,
    NULL};

static const Command whoami_command = {
    "whoami", "",          "Show the user, role and project of the current token.",
    NULL,     auth_whoami, NULL,
    0,        0,           0,
    NULL};

int
cmd_login(Cli *cli, int argc, char **argv)
{
    return args_run(cli, &login_command, argc, argv);
}

int
cmd_logout(Cli *cli, int argc, char **argv)
{
    return args_run(cli, &logout_command, argc, argv);
}

int
cmd_whoami(Cli *cli, int argc, char **argv)
{
    return args_run(cli, &whoami_command, argc, argv);
}
