/* nimbus events: the server's event stream (GET /v1/events), one line per event. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "../util/cleanup.h"
#include "../util/strutil.h"
#include "api.h"
#include "args.h"
#include "output.h"

/* Without --since and --follow: everything the server still holds (its replay window). */
#define EVENTS_ALL_SECONDS "315360000"
#define EVENTS_RECONNECT_MS 1000
#define EVENTS_RECONNECT_TRIES 10

typedef struct EventsPrint {
    Cli *cli;
    json_t *all;       /* --json without --follow: the array printed at the end */
    bool quiet_resync; /* the default listing: a resync there only says the window is full */
    char last_id[32];
    unsigned printed;
} EventsPrint;

static const char *
str_or(json_t *o, const char *key, const char *dflt)
{
    const char *s = api_str(o, key);
    return s ? s : dflt;
}

/* What one event says, in a few words. */
static char *
events_summary(const char *type, json_t *o)
{
    if (streq(type, "task")) {
        json_t *err = json_object_get(o, "error");
        return str_printf(
            "%s %s step %lld/%lld vm %s task %s%s%s", str_or(o, "kind", "?"),
            str_or(o, "state", "?"), (long long)json_integer_value(json_object_get(o, "step")),
            (long long)json_integer_value(json_object_get(o, "steps")), str_or(o, "target_id", "?"),
            str_or(o, "id", "?"), json_is_object(err) ? " error " : "",
            json_is_object(err) ? str_or(err, "code", "?") : "");
    }
    if (streq(type, "vm")) {
        if (streq(str_or(o, "state", ""), "deleted"))
            return str_printf("%s deleted", str_or(o, "id", "?"));
        return str_printf("%s %s (desired %s) on %s id %s", str_or(o, "name", "?"),
                          str_or(o, "state", "?"), str_or(o, "desired", "?"),
                          str_or(o, "host", "?"), str_or(o, "id", "?"));
    }
    if (streq(type, "host"))
        return str_printf("%s %s%s%s", str_or(o, "name", "?"), str_or(o, "state", "?"),
                          api_str(o, "error") ? ": " : "", str_or(o, "error", ""));
    if (streq(type, "audit"))
        return str_printf("%s %s %s -> %lld %s", str_or(o, "user", "-"), str_or(o, "action", "?"),
                          str_or(o, "target", "-"),
                          (long long)json_integer_value(json_object_get(o, "status")),
                          str_or(o, "result", "?"));
    if (streq(type, "image")) {
        if (streq(str_or(o, "state", ""), "deleted"))
            return str_printf("%s deleted", str_or(o, "id", "?"));
        return str_printf("%s %s id %s", str_or(o, "name", "?"), str_or(o, "state", "?"),
                          str_or(o, "id", "?"));
    }
    if (streq(type, "quota")) {
        char *limits = json_dumps(json_object_get(o, "limits"), JSON_COMPACT | JSON_SORT_KEYS);
        char *s = str_printf("%s limits %s", str_or(o, "name", "?"), limits ? limits : "{}");
        free(limits);
        return s;
    }
    return strdup("");
}

static int
events_print_one(void *userdata, const char *id, const char *type, const char *data)
{
    EventsPrint *p = userdata;
    snprintf(p->last_id, sizeof(p->last_id), "%s", id);
    json_auto_t *d = json_loads(data, 0, NULL);
    if (streq(type, "resync")) {
        if (!p->quiet_resync && !p->cli->json)
            fprintf(stderr, "events: the server no longer holds some of the events asked for; "
                            "what follows is newer\n");
        return 0;
    }
    if (!json_is_object(d))
        return 0;
    uint64_t n = 0;
    str_to_u64(id, &n);
    json_t *o = json_object_get(d, "object");
    if (p->cli->json) {
        json_t *e = json_pack("{s:I, s:s, s:O?, s:O?, s:O?}", "id", (json_int_t)n, "type", type,
                              "time", json_object_get(d, "time"), "project_id",
                              json_object_get(d, "project_id"), "object", o);
        if (p->all) {
            json_array_append_new(p->all, e);
        } else {
            char *text = e ? json_dumps(e, JSON_COMPACT) : NULL;
            if (text)
                printf("%s\n", text);
            free(text);
            json_decref(e);
            fflush(stdout);
        }
    } else {
        _cleanup_free_ char *sum = events_summary(type, o);
        _cleanup_free_ char *clean = output_sanitize(sum ? sum : "");
        printf("%s  %-5s  %s\n", str_or(d, "time", "-"), type, clean ? clean : "");
        fflush(stdout);
    }
    p->printed++;
    return 0;
}

static void
events_sleep_ms(uint64_t ms)
{
    struct timespec ts = {.tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

static int
events_run(Cli *cli, const Args *a)
{
    const char *since = args_get(a, "since");
    bool follow = args_has(a, "follow");
    uint64_t since_val = 0;
    bool since_is_id = since && *since && strspn(since, "0123456789") == strlen(since);
    bool since_is_date = since && strchr(since, '-');
    if (since && !since_is_id && !since_is_date && args_parse_duration(since, &since_val) < 0)
        return args_usage_error(a, "--since must be a duration like 10m or 1h, a date, or an "
                                   "event id");
    Client *c;
    int r = api_client(cli, &c);
    if (r != 0)
        return r;
    _cleanup_free_ char *since_text = !since ? strdup(follow ? "" : EVENTS_ALL_SECONDS)
                                      : since_is_id || since_is_date
                                          ? strdup(since)
                                          : str_printf("%" PRIu64, since_val);
    if (!since_text)
        return CLI_EXIT_API;

    EventsPrint p = {.cli = cli, .quiet_resync = !since && !follow};
    if (cli->json && !follow)
        p.all = json_array();
    unsigned failures = 0;
    for (;;) {
        _cleanup_free_ char *query = strdup("");
        r = query ? 0 : CLI_EXIT_API;
        if (r == 0 && p.last_id[0])
            r = client_query_add(c, &query, "since_id", p.last_id);
        else if (r == 0 && since_is_id)
            r = client_query_add(c, &query, "since_id", since_text);
        else if (r == 0 && since_text[0])
            r = client_query_add(c, &query, "since", since_text);
        if (r == 0 && !follow)
            r = client_query_add(c, &query, "follow", "false");
        _cleanup_free_ char *path = r == 0 ? str_printf("/v1/events%s", query) : NULL;
        if (!path) {
            json_decref(p.all);
            return CLI_EXIT_API;
        }
        ClientResponse resp;
        _cleanup_free_ char *error = NULL;
        bool buffered = false;
        unsigned before = p.printed;
        int rc = client_events(c, path, 0, 0, events_print_one, &p, &resp, &buffered, &error);
        if (rc == 0 && resp.status != 200) {
            api_print_error(&resp);
            client_response_clear(&resp);
            json_decref(p.all);
            return CLI_EXIT_API;
        }
        if (rc == 0)
            client_response_clear(&resp);
        if (rc == 0 && !follow)
            break;
        /* A follow stream that ended or broke: the server restarted or a proxy cut it. Go on
         * from the last event seen, a few times in a row at most. */
        failures = p.printed > before ? 1 : failures + 1;
        if (failures > EVENTS_RECONNECT_TRIES || (rc < 0 && !follow)) {
            fprintf(stderr, "error: CONNECTION_FAILED: %s: %s\n", cli->url ? cli->url : "",
                    error ? error : "the event stream ended");
            json_decref(p.all);
            return CLI_EXIT_CONNECT;
        }
        events_sleep_ms(EVENTS_RECONNECT_MS);
    }
    if (p.all) {
        output_json(p.all);
        json_decref(p.all);
    }
    return CLI_EXIT_OK;
}

static const ArgSpec events_specs[] = {{"follow", false}, {"since", true}};

static const Command events_command = {
    "events",
    "[--follow] [--since DURATION|DATE|ID]",
    "Print what happens: tasks, VM and host state changes, audit records.",
    "  --follow          keep printing events as they happen (until interrupted)\n"
    "  --since S         start with the events of the last 10m, 1h... or since a date, or\n"
    "                    after the event with this id; without it: everything the server\n"
    "                    still holds, or (with --follow) only new events\n",
    events_run,
    events_specs,
    ELEMENTSOF(events_specs),
    0,
    0,
    NULL,
};

int
cmd_events(Cli *cli, int argc, char **argv)
{
    return args_run(cli, &events_command, argc, argv);
}
