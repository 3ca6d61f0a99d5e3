/* nimbus task show|list|cancel, and following a task until it ends (--wait). */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../util/cleanup.h"
#include "../util/strutil.h"
#include "../util/timeutil.h"
#include "../util/uuid.h"
#include "api.h"
#include "args.h"
#include "resource.h"

#define TASK_POLL_INTERVAL_MS 500
/* A stream that sends nothing this long is being buffered (a proxy): poll instead. */
#define TASK_STREAM_FIRST_BYTE_MS 5000
/* Without a terminal, a progress line is printed each time the progress moves this much. */
#define TASK_PROGRESS_STEP 10

/* The task's "progress" as 0..100, or -1 while it reports none. */
static int
task_progress(json_t *task)
{
    json_t *v = json_object_get(task, "progress");
    if (!json_is_number(v))
        return -1;
    double p = json_number_value(v);
    return p < 0 ? 0 : p > 100 ? 100 : (int)p;
}

/* "42%", or "-" while the task reports none. */
static char *
task_fmt_progress(json_t *obj, const char *key)
{
    if (!json_is_number(json_object_get(obj, key)))
        return output_fmt_plain(obj, key);
    return str_printf("%d%%", task_progress(obj));
}

static const OutputField task_columns[] = {
    {"ID", "id", NULL, false},
    {"KIND", "kind", NULL, false},
    {"STATE", "state", NULL, false},
    {"STEP", "step", output_fmt_step, false},
    {"PROGRESS", "progress", task_fmt_progress, true},
    {"TARGET", "target_id", NULL, true},
    {"CREATED", "created_at", NULL, false},
    {"FINISHED", "finished_at", NULL, true},
    {"ERROR", "error", output_fmt_error_code, false},
};

static const OutputField task_fields[] = {
    {"id", "id", NULL, false},
    {"kind", "kind", NULL, false},
    {"state", "state", NULL, false},
    {"target_id", "target_id", NULL, false},
    {"step", "step", NULL, false},
    {"steps", "steps", NULL, false},
    {"progress", "progress", task_fmt_progress, false},
    {"cancel_requested", "cancel_requested", NULL, false},
    {"error", "error", NULL, false},
    {"created_at", "created_at", NULL, false},
    {"updated_at", "updated_at", NULL, false},
    {"finished_at", "finished_at", NULL, false},
};

static const Resource task_resource = {
    .collection = "tasks",
    .columns = task_columns,
    .n_columns = ELEMENTSOF(task_columns),
    .fields = task_fields,
    .n_fields = ELEMENTSOF(task_fields),
};

static void
task_sleep_ms(uint64_t ms)
{
    struct timespec ts = {.tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

int
task_wait(Cli *cli, const char *task_id, uint64_t timeout_s, json_t **ret_task)
{
    return task_wait_progress(cli, task_id, NULL, timeout_s, ret_task);
}

int
cli_wait_timeout(const Args *a, uint64_t *ret)
{
    *ret = CLI_WAIT_DEFAULT_SECONDS;
    return args_get_u64(a, "timeout-wait", 1, 7 * 24 * 3600, ret);
}

int
cli_task_answer(Cli *cli, const Args *a, json_t *resp, const char *key,
                void (*print)(Cli *cli, json_t *obj, json_t *resp), json_t **ret_obj,
                const char **ret_task_id)
{
    json_t *obj = json_object_get(resp, key);
    json_t *task = json_object_get(resp, "task");
    const char *task_id = api_str(task, "id");
    *ret_obj = obj;
    *ret_task_id = NULL;
    if (!json_is_object(obj) || !task_id) {
        fprintf(stderr, "error: INVALID_RESPONSE: expected {\"%s\", \"task\"}\n", key);
        return CLI_EXIT_API;
    }
    if (args_has(a, "wait")) {
        *ret_task_id = task_id;
        return CLI_EXIT_OK;
    }
    if (cli->json) {
        output_json(resp);
    } else {
        print(cli, obj, resp);
        printf("\ntask %s: %s %s\n", task_id, api_str(task, "kind") ?: "?",
               api_str(task, "state") ?: "?");
    }
    return CLI_EXIT_OK;
}

int
cli_task_failed(json_t *task)
{
    json_t *err = json_object_get(task, "error");
    _cleanup_free_ char *code = output_sanitize(api_str(err, "code") ?: "TASK_FAILED");
    _cleanup_free_ char *msg = output_sanitize(api_str(err, "message") ?: "the task failed");
    fprintf(stderr, "error: %s: %s\n", code ?: "TASK_FAILED", msg ?: "");
    return CLI_EXIT_API;
}

int
cli_task_deleted(Cli *cli, json_t *task)
{
    if (cli->json)
        output_json(task);
    else
        printf("deleted\n");
    return CLI_EXIT_OK;
}

/* What a wait shows while a task runs, whether its states come by polling or by the stream. */
typedef struct TaskWatch {
    const char *task_id;
    const char *label;
    bool status_line;
    int shown; /* the progress last printed as a line of its own (no terminal) */
    json_t *final;
    bool resync;
} TaskWatch;

/* Shows the task's state; true once it ended. */
static bool
task_watch_show(TaskWatch *w, json_t *task)
{
    const char *state = api_str(task, "state");
    bool done = streq(state, "succeeded") || streq(state, "failed");
    int progress = task_progress(task);
    if (w->label && !w->status_line && progress >= 0 &&
        (w->shown < 0 || progress - w->shown >= TASK_PROGRESS_STEP ||
         w->shown - progress >= TASK_PROGRESS_STEP ||
         (progress == 100 && w->shown != 100 && streq(state, "succeeded")))) {
        fprintf(stderr, "%s: %d%%\n", w->label, progress);
        w->shown = progress;
    }
    if (done || !w->status_line)
        return done;
    json_t *step = json_object_get(task, "step"), *steps = json_object_get(task, "steps");
    _cleanup_free_ char *pct = progress >= 0 ? str_printf(", %d%%", progress) : NULL;
    if (w->label && progress >= 0)
        fprintf(stderr, "\r\033[K%s: %d%%", w->label, progress);
    else
        fprintf(stderr, "\r\033[K%s: %s %s, step %lld/%lld%s", w->label ? w->label : "waiting",
                api_str(task, "kind") ? api_str(task, "kind") : "task", state ? state : "?",
                (long long)json_integer_value(step), (long long)json_integer_value(steps),
                pct ? pct : "");
    return false;
}

static int
task_watch_event(void *userdata, const char *id, const char *type, const char *data)
{
    (void)id;
    TaskWatch *w = userdata;
    if (streq(type, "resync")) {
        w->resync = true; /* events were missed: the polling loop takes over */
        return 1;
    }
    if (!streq(type, "task"))
        return 0;
    json_auto_t *d = json_loads(data, 0, NULL);
    json_t *task = json_object_get(d, "object");
    if (!json_is_object(task) || !streq(api_str(task, "id"), w->task_id))
        return 0;
    if (!task_watch_show(w, task))
        return 0;
    w->final = json_incref(task);
    return 1;
}

/* Follows the task on the event stream, from its creation (so nothing between the caller's
 * look and the stream's start is missed). 1: it ended (*ret_task set); 0: the stream could not
 * say (refused, buffered by a proxy, broken, events missed): poll instead. */
static int
task_wait_stream(Cli *cli, TaskWatch *w, const char *created_at, uint64_t deadline_ms,
                 json_t **ret_task)
{
    Client *c;
    if (!created_at || api_client(cli, &c) != 0)
        return 0;
    _cleanup_free_ char *query = strdup("");
    if (!query || client_query_add(c, &query, "since", created_at) != 0)
        return 0;
    _cleanup_free_ char *path = str_printf("/v1/events%s", query);
    uint64_t now = nb_monotonic_ms();
    if (!path || now >= deadline_ms)
        return 0;
    ClientResponse resp;
    _cleanup_free_ char *error = NULL;
    bool buffered = false;
    int rc = client_events(c, path, (deadline_ms - now + 999) / 1000, TASK_STREAM_FIRST_BYTE_MS,
                           task_watch_event, w, &resp, &buffered, &error);
    if (rc == 0)
        client_response_clear(&resp);
    if (!w->final)
        return 0;
    *ret_task = TAKE_PTR(w->final);
    return 1;
}

int
task_wait_progress(Cli *cli, const char *task_id, const char *what, uint64_t timeout_s,
                   json_t **ret_task)
{
    /* A status line only for a person watching; scripts read the final output. */
    uint64_t deadline = nb_monotonic_ms() + timeout_s * 1000;
    _cleanup_free_ char *label = what ? output_sanitize(what) : NULL;
    TaskWatch w = {
        .task_id = task_id, .label = label, .status_line = isatty(STDERR_FILENO), .shown = -1};
    bool streamed = false;
    int r;

    for (;;) {
        json_t *task = NULL;
        r = resource_get(cli, &task_resource, task_id, &task);
        if (r != 0)
            break;
        if (task_watch_show(&w, task)) {
            *ret_task = task;
            break;
        }
        /* The stream once, after the first look; polling if it cannot tell. */
        if (!streamed) {
            streamed = true;
            json_t *final = NULL;
            if (task_wait_stream(cli, &w, api_str(task, "created_at"), deadline, &final) == 1) {
                json_decref(task);
                *ret_task = final;
                break;
            }
        }
        json_decref(task);
        if (nb_monotonic_ms() >= deadline) {
            if (w.status_line)
                fputs("\r\033[K", stderr);
            w.status_line = false;
            fprintf(stderr,
                    "error: TIMEOUT: task %s still unfinished after %llu s (it goes on; "
                    "see 'nimbus task show %s')\n",
                    task_id, (unsigned long long)timeout_s, task_id);
            r = CLI_EXIT_API;
            break;
        }
        task_sleep_ms(TASK_POLL_INTERVAL_MS);
    }
    if (w.status_line)
        fputs("\r\033[K", stderr);
    return r;
}

#define TASK_FOLLOW_MAX_S (7 * 24 * 3600)

static int
task_show(Cli *cli, const Args *a)
{
    if (!args_has(a, "follow"))
        return resource_show(cli, &task_resource, a->positional[0]);
    /* Live progress on stderr (a terminal), then the task as it ended; failed: exit 1. */
    json_auto_t *task = NULL;
    int r = task_wait_progress(cli, a->positional[0], NULL, TASK_FOLLOW_MAX_S, &task);
    if (r != 0)
        return r;
    resource_print(cli, &task_resource, task);
    return streq(api_str(task, "state"), "succeeded") ? CLI_EXIT_OK : CLI_EXIT_API;
}

static int
task_list(Cli *cli, const Args *a)
{
    const char *vm = args_get(a, "vm");
    unsigned limit;
    int r = resource_page_limit(a, &limit);
    if (r != 0)
        return r;
    if (!vm)
        return resource_list_pages(cli, &task_resource, "", limit, args_has(a, "wide"));

    /* The API filters by VM id; a name is resolved first. */
    _cleanup_free_ char *vm_id = NULL;
    if (nb_uuid_is_valid(vm)) {
        vm_id = strdup(vm);
    } else {
        _cleanup_free_ char *path = NULL;
        json_auto_t *obj = NULL;
        r = api_path(cli, "vms", vm, NULL, &path);
        if (r == 0)
            r = api_call(cli, "GET", path, NULL, &obj);
        if (r != 0)
            return r;
        const char *id = api_str(obj, "id");
        if (!id) {
            fprintf(stderr, "error: INVALID_RESPONSE: the VM has no id\n");
            return CLI_EXIT_API;
        }
        vm_id = strdup(id);
    }
    Client *c;
    r = api_client(cli, &c);
    if (r != 0)
        return r;
    _cleanup_free_ char *escaped = vm_id ? client_escape(c, vm_id) : NULL;
    _cleanup_free_ char *query = escaped ? str_printf("?vm=%s", escaped) : NULL;
    if (!query)
        return CLI_EXIT_API;
    return resource_list_pages(cli, &task_resource, query, limit, args_has(a, "wide"));
}

static int
task_cancel(Cli *cli, const Args *a)
{
    _cleanup_free_ char *path = NULL;
    int r = api_path(cli, "tasks", a->positional[0], "/cancel", &path);
    if (r != 0)
        return r;
    json_auto_t *task = NULL;
    r = api_call(cli, "POST", path, NULL, &task);
    if (r != 0)
        return r;
    if (!json_is_object(task)) {
        fprintf(stderr, "error: INVALID_RESPONSE: expected a task\n");
        return CLI_EXIT_API;
    }
    resource_print(cli, &task_resource, task);
    return CLI_EXIT_OK;
}

static const ArgSpec show_specs[] = {{"follow", false}};
static const ArgSpec list_specs[] = {{"vm", true}, {"wide", false}, {"limit", true}};

static const Command task_commands[] = {
    {"show", "ID [--follow]", "Show a task.",
     "  --follow               follow it as it runs (live, from the event stream), then show\n"
     "                         it as it ended; exit 1 if it failed\n",
     task_show, show_specs, ELEMENTSOF(show_specs), 1, 1, NULL},
    {"list", "[--vm NAME|ID] [--wide] [--limit N]", "List tasks, newest first.",
     "  --vm VM                only the tasks of this VM\n"
     "  --wide                 also show the target VM id, the progress and the finish "
     "time\n" RESOURCE_LIMIT_HELP,
     task_list, list_specs, ELEMENTSOF(list_specs), 0, 0, NULL},
    {"cancel", "ID", "Ask the server to cancel a running task (e.g. a migration).", NULL,
     task_cancel, NULL, 0, 1, 1, NULL},
};

int
cmd_task(Cli *cli, int argc, char **argv)
{
    return args_dispatch(cli, "task", "Follow the tasks that carry out VM operations.",
                         task_commands, ELEMENTSOF(task_commands), argc, argv);
}
