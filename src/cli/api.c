#include "api.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../util/cleanup.h"
#include "../util/strutil.h"
#include "config.h"
#include "output.h"

int
api_client(Cli *cli, Client **ret)
{
    if (!cli->client) {
        CliConfig cfg = {0};
        int r = config_load(cli->url_opt, cli->token_opt, cli->cacert_opt, &cfg);
        if (r != 0)
            return r;
        /* Login sends no token: an old, expired one has nothing to do with it. */
        r = client_new(cfg.url, cli->anonymous ? NULL : cfg.token, cfg.cacert, &cli->client);
        cli->url = TAKE_PTR(cfg.url);
        cli->cacert = TAKE_PTR(cfg.cacert);
        cli->config_path = TAKE_PTR(cfg.path);
        cli->token_source = cfg.token ? (int)cfg.token_source : CONFIG_SOURCE_NONE;
        config_clear(&cfg);
        if (r < 0) {
            fprintf(stderr, "error: cannot initialise the HTTP client: %s\n", strerror(-r));
            return CLI_EXIT_API;
        }
    }
    *ret = cli->client;
    return CLI_EXIT_OK;
}

int
api_path(Cli *cli, const char *collection, const char *id, const char *suffix, char **ret)
{
    Client *c;
    if (!id || !*id) {
        fprintf(stderr, "error: the name or id must not be empty\n");
        return CLI_EXIT_USAGE;
    }
    int r = api_client(cli, &c);
    if (r != 0)
        return r;
    /* "." and ".." survive percent-encoding but are dot-segments to every URL parser. */
    _cleanup_free_ char *escaped = streq(id, ".")    ? strdup("%2E")
                                   : streq(id, "..") ? strdup("%2E%2E")
                                                     : client_escape(c, id);
    char *path =
        escaped ? str_printf("/v1/%s/%s%s", collection, escaped, suffix ? suffix : "") : NULL;
    if (!path) {
        fprintf(stderr, "error: out of memory\n");
        return CLI_EXIT_API;
    }
    *ret = path;
    return CLI_EXIT_OK;
}

const char *
api_str(json_t *obj, const char *key)
{
    return json_string_value(json_object_get(obj, key));
}

void
api_print_error(const ClientResponse *r)
{
    json_t *j = json_loadb(r->body, r->body_len, 0, NULL);
    json_t *e = json_object_get(j, "error");
    const char *code = api_str(e, "code");
    const char *message = api_str(e, "message");
    _cleanup_free_ char *fallback = NULL;
    if (!code) {
        /* Not a Nimbus error body: a proxy's page, or an unexpected status. */
        fallback = str_printf("HTTP_%ld", r->status);
        code = fallback ? fallback : "HTTP_ERROR";
        message = r->status >= 300 && r->status < 400 ? "unexpected redirect"
                                                      : "unexpected response from the server";
    }
    _cleanup_free_ char *c = output_sanitize(code);
    _cleanup_free_ char *m = output_sanitize(message ? message : "");
    fprintf(stderr, "error: %s: %s\n", c ? c : code, m ? m : "");
    if (r->status == 429 && r->retry_after[0]) {
        _cleanup_free_ char *ra = output_sanitize(r->retry_after);
        fprintf(stderr, "Retry after %s seconds.\n", ra ? ra : "some");
    }
    json_decref(j);
}

/* Request bodies may hold a password: zeroed before they are freed. */
static void
api_free_zeroed(char **p)
{
    if (*p)
        explicit_bzero(*p, strlen(*p));
    free(*p);
}

static int
api_transport_error(Cli *cli, const char *msg)
{
    fprintf(stderr, "error: cannot connect to %s: %s\n", cli->url ? cli->url : "the API",
            msg ? msg : "out of memory");
    return CLI_EXIT_CONNECT;
}

int
api_call_full(Cli *cli, const char *method, const char *path, json_t *body, bool quiet,
              long *ret_status, json_t **ret_json)
{
    return api_call_unless(cli, method, path, body, quiet ? -1 : 0, ret_status, ret_json);
}

int
api_call_unless(Cli *cli, const char *method, const char *path, json_t *body, long silent_status,
                long *ret_status, json_t **ret_json)
{
    Client *c;
    if (ret_status)
        *ret_status = 0;
    if (ret_json)
        *ret_json = NULL;
    int r = api_client(cli, &c);
    if (r != 0)
        return r;

    _cleanup_(api_free_zeroed) char *text = NULL;
    if (body) {
        text = json_dumps(body, JSON_COMPACT);
        if (!text) {
            fprintf(stderr, "error: cannot encode the request\n");
            return CLI_EXIT_API;
        }
    }
    ClientResponse resp = {0};
    _cleanup_free_ char *err = NULL;
    if (client_request(c, method, path, text, &resp, &err) < 0)
        return api_transport_error(cli, err);
    if (ret_status)
        *ret_status = resp.status;

    r = CLI_EXIT_OK;
    bool quiet = silent_status < 0 || resp.status == silent_status;
    if (resp.status < 200 || resp.status >= 300) {
        if (!quiet)
            api_print_error(&resp);
        r = CLI_EXIT_API;
    } else if (resp.body_len > 0 && ret_json) {
        json_error_t jerr;
        *ret_json = json_loadb(resp.body, resp.body_len, 0, &jerr);
        if (!*ret_json) {
            if (!quiet)
                fprintf(stderr, "error: INVALID_RESPONSE: the server sent invalid JSON: %s\n",
                        jerr.text);
            r = CLI_EXIT_API;
        }
    }
    client_response_clear(&resp);
    return r;
}

int
api_call(Cli *cli, const char *method, const char *path, json_t *body, json_t **ret_json)
{
    return api_call_full(cli, method, path, body, false, NULL, ret_json);
}

int
api_get_raw(Cli *cli, const char *path, ClientResponse *ret)
{
    Client *c;
    int r = api_client(cli, &c);
    if (r != 0)
        return r;
    _cleanup_free_ char *err = NULL;
    if (client_request(c, "GET", path, NULL, ret, &err) < 0)
        return api_transport_error(cli, err);
    if (ret->status < 200 || ret->status >= 300) {
        api_print_error(ret);
        client_response_clear(ret);
        return CLI_EXIT_API;
    }
    return CLI_EXIT_OK;
}

void
api_zero_string(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    if (json_is_string(v))
        explicit_bzero((char *)json_string_value(v), json_string_length(v));
}
