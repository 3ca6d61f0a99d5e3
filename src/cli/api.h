/* Calls to the Nimbus API as the commands see them: JSON in, JSON out, errors printed. */
#pragma once

#include <jansson.h>
#include <stdbool.h>

#include "cli.h"

/* The client of this run, created on first use. Returns an exit code. */
int api_client(Cli *cli, Client **ret);

/* "/v1/<collection>/<id percent-encoded><suffix>"; suffix may be NULL. Returns an exit code. */
int api_path(Cli *cli, const char *collection, const char *id, const char *suffix, char **ret);

/*
 * Sends a request with an optional JSON body. On a 2xx answer returns CLI_EXIT_OK with the
 * parsed body in *ret_json (NULL when the body is empty; ret_json may be NULL). Otherwise
 * prints "error: CODE: message" (unless quiet) and returns CLI_EXIT_API, or CLI_EXIT_CONNECT
 * when no answer came. *ret_status (may be NULL) gets the HTTP status, 0 without an answer.
 */
int api_call_full(Cli *cli, const char *method, const char *path, json_t *body, bool quiet,
                  long *ret_status, json_t **ret_json);
/* The same, but an error answer with HTTP status silent_status is not printed (-1: none is). */
int api_call_unless(Cli *cli, const char *method, const char *path, json_t *body,
                    long silent_status, long *ret_status, json_t **ret_json);
int api_call(Cli *cli, const char *method, const char *path, json_t *body, json_t **ret_json);

/* GET whose answer is not JSON (console log). Same returns; the response is the caller's. */
int api_get_raw(Cli *cli, const char *path, ClientResponse *ret);

/* Prints the API error carried by a non-2xx response. */
void api_print_error(const ClientResponse *r);

/* A string member of obj, or NULL. */
const char *api_str(json_t *obj, const char *key);

/* Overwrites the string member obj[key] (a password, a token) with zeros before it is freed. */
void api_zero_string(json_t *obj, const char *key);
