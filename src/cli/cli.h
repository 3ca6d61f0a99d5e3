/* State shared by every command of the `nimbus` CLI, and the entry points of the command groups. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "client.h"

#ifndef NIMBUS_VERSION
#define NIMBUS_VERSION "unknown"
#endif

/* Exit codes are part of the CLI's contract: scripts test them. */
enum {
    CLI_EXIT_OK = 0,
    CLI_EXIT_API = 1,     /* the API answered with an error, a task failed, or a local failure */
    CLI_EXIT_USAGE = 2,   /* bad command line or invalid input found before any request */
    CLI_EXIT_CONNECT = 3, /* no HTTP answer: connection refused, DNS, TLS, timeout */
};

#define CLI_DEFAULT_URL "http://127.0.0.1:8773"
#define CLI_WAIT_DEFAULT_SECONDS 600

typedef struct Args Args;

typedef struct Cli {
    bool json;              /* --json: print the API's JSON instead of tables */
    const char *url_opt;    /* --url, may be NULL */
    const char *token_opt;  /* --token, may be NULL */
    const char *cacert_opt; /* --cacert, may be NULL */
    bool anonymous;         /* send no token (login); set before the first request */
    /* Set with the client, from the configuration: */
    char *cacert;      /* the CA file in use, or NULL */
    char *config_path; /* the config file read, or NULL */
    int token_source;  /* ConfigSource of the token */
    Client *client;    /* created on first use from the options, environment and config */
    char *url;         /* the base URL in use, for messages */
} Cli;

void cli_clear(Cli *cli);

int cmd_vm(Cli *cli, int argc, char **argv);
int cmd_image(Cli *cli, int argc, char **argv);
int cmd_flavor(Cli *cli, int argc, char **argv);
int cmd_task(Cli *cli, int argc, char **argv);
int cmd_login(Cli *cli, int argc, char **argv);
int cmd_logout(Cli *cli, int argc, char **argv);
int cmd_whoami(Cli *cli, int argc, char **argv);
int cmd_project(Cli *cli, int argc, char **argv);
int cmd_quota(Cli *cli, int argc, char **argv);
int cmd_usage(Cli *cli, int argc, char **argv);
int cmd_user(Cli *cli, int argc, char **argv);
int cmd_token(Cli *cli, int argc, char **argv);
int cmd_audit(Cli *cli, int argc, char **argv);
int cmd_events(Cli *cli, int argc, char **argv);
int cmd_host(Cli *cli, int argc, char **argv);
int cmd_group(Cli *cli, int argc, char **argv);
int cmd_network(Cli *cli, int argc, char **argv);
int cmd_port(Cli *cli, int argc, char **argv);
int cmd_secgroup(Cli *cli, int argc, char **argv);
int cmd_pool(Cli *cli, int argc, char **argv);
int cmd_volume(Cli *cli, int argc, char **argv);
int cmd_snapshot(Cli *cli, int argc, char **argv);
int cmd_backup(Cli *cli, int argc, char **argv);
int cmd_apply(Cli *cli, int argc, char **argv);
int cmd_delete(Cli *cli, int argc, char **argv);
int cmd_export(Cli *cli, int argc, char **argv);

/*
 * GET /v1/auth/whoami. Returns an exit code; on success *ret is the answer, to json_decref.
 * quiet: print nothing on an API error (*ret_status tells it, may be NULL).
 */
int cli_whoami(Cli *cli, bool quiet, long *ret_status, json_t **ret);
/* Sets rows[i][name_key] to the name of the project whose id is rows[i][id_key] (the id when
 * the caller cannot see it). */
void cli_add_project_names(Cli *cli, json_t *rows, const char *id_key, const char *name_key);
/* The --project value as given (name or id), else the id of the current user's project
 * (whoami). Returns an exit code; *ret is to free. */
int cli_project_or_mine(Cli *cli, const char *project_opt, char **ret);

/*
 * Polls GET /v1/tasks/{id} until the task succeeds or fails, or timeout_s passes. Returns
 * CLI_EXIT_OK with the final task in *ret_task (whatever its state), or an exit code after
 * printing why it could not follow the task.
 */
int task_wait(Cli *cli, const char *task_id, uint64_t timeout_s, json_t **ret_task);
/*
 * task_wait, showing on stderr the "progress" (0..100) of a task that reports one as
 * "<what>: 42%" (what: e.g. "migrating web1"): one line updated in place on a terminal,
 * otherwise a line each time the progress moves by 10 points or more.
 */
int task_wait_progress(Cli *cli, const char *task_id, const char *what, uint64_t timeout_s,
                       json_t **ret_task);

/*
 * Commands answered by 202 {<key>, task} (a VM's, a volume's, a snapshot's...). These give
 * them one shape: without --wait the answer is shown (as JSON, or the object by print and a
 * "task ID: KIND STATE" line); with --wait the command follows the task, then shows the object
 * again, "deleted" for a delete, or the task's error (exit 1).
 */
/* --timeout-wait SECONDS (default CLI_WAIT_DEFAULT_SECONDS, at most a week). Exit code. */
int cli_wait_timeout(const Args *a, uint64_t *ret);
/* Checks the answer's shape (INVALID_RESPONSE otherwise) and, without --wait, shows it; print
 * shows the object (obj is resp's <key>). *ret_obj: the object; *ret_task_id: the task to follow
 * (NULL: nothing more to do, without --wait). Exit code. */
int cli_task_answer(Cli *cli, const Args *a, json_t *resp, const char *key,
                    void (*print)(Cli *cli, json_t *obj, json_t *resp), json_t **ret_obj,
                    const char **ret_task_id);
/* A task that ended failed: its error on stderr; CLI_EXIT_API. */
int cli_task_failed(json_t *task);
/* A delete's task that ended well: the task as JSON, or "deleted". CLI_EXIT_OK. */
int cli_task_deleted(Cli *cli, json_t *task);

/*
 * Adds the values of the repeatable option --label KEY=VALUE to labels (a JSON object of
 * strings). Only the form is checked here, a '=' after a non-empty key, and that no key is given
 * twice; the server checks the rest. 0, or an exit code after printing why.
 */
int cli_labels_from_args(const Args *a, json_t *labels);
/* An array of strings as "a, b", "-" when empty (an OutputFormatFn). */
char *cli_fmt_strings(json_t *obj, const char *key);
/* Mbit/s, "unlimited" for 0 (an OutputFormatFn; cmd_port.c). */
char *cli_fmt_mbit(json_t *obj, const char *key);
/* A dotted-quad IPv4 address other than 0.0.0.0: the form only, the server checks the rest. */
bool cli_ipv4_is_valid(const char *s);
/* An object of labels as "k1=v1,k2=v2", "-" when there are none (an OutputFormatFn). */
char *cli_fmt_labels(json_t *obj, const char *key);
