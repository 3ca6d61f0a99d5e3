/* nimbus audit list: the record of every mutating request. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "../util/cleanup.h"
#include "../util/strutil.h"
#include "api.h"
#include "args.h"
#include "output.h"

#define AUDIT_LIMIT_MAX 1000

static const OutputField audit_columns[] = {
    {"AT", "at", NULL, false},
    {"USER", "user", NULL, false},
    {"PROJECT", "project", NULL, false},
    {"SOURCE", "source", NULL, false},
    {"ACTION", "action", NULL, false},
    {"TARGET", "target", NULL, false},
    {"STATUS", "status", NULL, false},
    {"RESULT", "result", NULL, false},
    {"METHOD", "method", NULL, true},
    {"PATH", "path", NULL, true},
    {"REQUEST-ID", "request_id", NULL, true},
};

static int
audit_list(Cli *cli, const Args *a)
{
    const char *project = args_get(a, "project"), *since = args_get(a, "since");
    uint64_t limit = 0, since_s = 0;
    int r = args_get_u64(a, "limit", 1, AUDIT_LIMIT_MAX, &limit);
    if (r != 0)
        return r;
    if (project && !*project)
        return args_usage_error(a, "--project must not be empty");
    /* A duration becomes seconds; a date (2026-11-01, 2026-11-01T00:00:00Z) goes as is. */
    bool since_is_date = since && strchr(since, '-');
    if (since && !since_is_date && args_parse_duration(since, &since_s) < 0)
        return args_usage_error(a, "--since must be a duration like 30m, 1h, 2d, or a date");

    Client *c;
    r = api_client(cli, &c);
    if (r != 0)
        return r;
    _cleanup_free_ char *query = strdup("");
    _cleanup_free_ char *since_text =
        since_is_date ? strdup(since) : str_printf("%" PRIu64, since_s);
    _cleanup_free_ char *limit_text = str_printf("%" PRIu64, limit);
    if (!query || !since_text || !limit_text)
        return CLI_EXIT_API;
    if (project)
        r = client_query_add(c, &query, "project", project);
    if (r == 0 && since)
        r = client_query_add(c, &query, "since", since_text);
    if (r == 0 && limit)
        r = client_query_add(c, &query, "limit", limit_text);
    _cleanup_free_ char *path = r == 0 ? str_printf("/v1/audit%s", query) : NULL;
    if (!path)
        return CLI_EXIT_API;

    json_auto_t *resp = NULL;
    r = api_call(cli, "GET", path, NULL, &resp);
    if (r != 0)
        return r;
    json_t *events = json_object_get(resp, "events");
    if (!json_is_array(events)) {
        fprintf(stderr, "error: INVALID_RESPONSE: no 'events' list in the answer\n");
        return CLI_EXIT_API;
    }
    if (cli->json) {
        output_json(resp);
        return CLI_EXIT_OK;
    }
    cli_add_project_names(cli, events, "project_id", "project");
    output_table(events, audit_columns, ELEMENTSOF(audit_columns), args_has(a, "wide"));
    return CLI_EXIT_OK;
}

static const ArgSpec list_specs[] = {
    {"project", true}, {"since", true}, {"limit", true}, {"wide", false}};

static const Command audit_commands[] = {
    {"list", "[--project NAME|ID] [--since DURATION|DATE] [--limit N] [--wide]",
     "List audit events, newest first (non-admins: their own project's).",
     "  --project P       only this project's events (admin; others see only their own)\n"
     "  --since D         only events of the last 30m, 1h, 2d... or since a date\n"
     "  --limit N         at most N events, 1 to 1000 (server default 100)\n"
     "  --wide            also show the method, path and request id\n",
     audit_list, list_specs, ELEMENTSOF(list_specs), 0, 0, NULL},
};

int
cmd_audit(Cli *cli, int argc, char **argv)
{
    return args_dispatch(cli, "audit", "Read the audit log of mutating requests.", audit_commands,
                         ELEMENTSOF(audit_commands), argc, argv);
}
