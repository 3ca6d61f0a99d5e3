/* nimbus host add|list|show|set|enable|disable|maintenance|remove (admin only), and labels */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../model/validate.h"
#include "../util/cleanup.h"
#include "../util/strutil.h"
#include "../util/timeutil.h"
#include "api.h"
#include "args.h"
#include "resource.h"

#define HOST_WAIT_MAX (7 * 24 * 3600)

/* The ratio options and the API's names for them. */
static const struct {
    const char *opt;
    const char *key;
} host_ratios[] = {
    {"cpu-ratio", "cpu_ratio"},
    {"ram-ratio", "ram_ratio"},
    {"disk-ratio", "disk_ratio"},
};

/* d with at most one decimal, without a needless ".0": "24", "3.5". */
static void
host_number(double d, char out[32])
{
    snprintf(out, 32, "%.1f", d);
    size_t len = strlen(out);
    if (len > 2 && streq(out + len - 2, ".0"))
        out[len - 2] = '\0';
}

/* obj[key] is {used, capacity, ...}: "used/capacity", each divided by divisor, then the unit. */
static char *
host_fmt_usage(json_t *obj, const char *key, double divisor, const char *unit)
{
    json_t *u = json_object_get(obj, key);
    json_t *used = json_object_get(u, "used"), *cap = json_object_get(u, "capacity");
    char a[32], b[32];
    if (!json_is_number(used) || !json_is_number(cap))
        return output_fmt_plain(obj, key);
    host_number(json_number_value(used) / divisor, a);
    host_number(json_number_value(cap) / divisor, b);
    return str_printf("%s/%s%s%s", a, b, unit ? " " : "", unit ? unit : "");
}

/* For `host show`: "3.5/24 GiB used (24 GiB physical, 20.1 GiB free)". */
static char *
host_fmt_capacity(json_t *obj, const char *key, double divisor, const char *unit)
{
    json_t *u = json_object_get(obj, key);
    json_t *total = json_object_get(u, "total"), *free_ = json_object_get(u, "free");
    _cleanup_free_ char *usage = host_fmt_usage(obj, key, divisor, unit);
    char t[32] = "?", f[32] = "";
    if (!usage || !json_is_object(u))
        return TAKE_PTR(usage);
    if (json_is_number(total))
        host_number(json_number_value(total) / divisor, t);
    if (json_is_number(free_))
        host_number(json_number_value(free_) / divisor, f);
    const char *sp = unit ? " " : "", *un = unit ? unit : "";
    if (!f[0])
        return str_printf("%s used (%s%s%s physical)", usage, t, sp, un);
    return str_printf("%s used (%s%s%s physical, %s%s%s free)", usage, t, sp, un, f, sp, un);
}

static char *
host_fmt_vcpus(json_t *obj, const char *key)
{
    return host_fmt_usage(obj, key, 1, NULL);
}

static char *
host_fmt_ram(json_t *obj, const char *key)
{
    return host_fmt_usage(obj, key, 1024, "GiB");
}

static char *
host_fmt_disk(json_t *obj, const char *key)
{
    return host_fmt_usage(obj, key, 1, "GiB");
}

static char *
host_fmt_vcpus_show(json_t *obj, const char *key)
{
    return host_fmt_capacity(obj, key, 1, NULL);
}

static char *
host_fmt_ram_show(json_t *obj, const char *key)
{
    return host_fmt_capacity(obj, key, 1024, "GiB");
}

static char *
host_fmt_disk_show(json_t *obj, const char *key)
{
    return host_fmt_capacity(obj, key, 1, "GiB");
}

/* A ratio as typed: "4", "1.5" (the API sends reals, "4.0"). */
static char *
host_fmt_ratio(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    if (!json_is_number(v))
        return output_fmt_plain(obj, key);
    return str_printf("%g", json_number_value(v));
}

static char *
host_fmt_last_contact(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    return !v || json_is_null(v) ? strdup("never") : output_fmt_plain(obj, key);
}

/* "yes" for a libvirt test-driver host (no QEMU behind it), "no" otherwise. */
static char *
host_fmt_simulated(json_t *obj, const char *key)
{
    return strdup(json_is_true(json_object_get(obj, key)) ? "yes" : "no");
}

/* The agent's URL, or "none"; the API never returns the secret. */
static char *
host_fmt_agent(json_t *obj, const char *key)
{
    const char *url = json_string_value(json_object_get(json_object_get(obj, key), "url"));
    return strdup(url ? url : "none");
}

static const OutputField host_columns[] = {
    {"NAME", "name", NULL, false},
    {"STATE", "state", NULL, false},
    {"VCPUS", "vcpus", host_fmt_vcpus, false},
    {"RAM", "ram_mib", host_fmt_ram, false},
    {"DISK", "disk_gib", host_fmt_disk, false},
    {"VMS", "vms", NULL, false},
    {"SIM", "simulated", host_fmt_simulated, false},
    {"URI", "uri", NULL, true},
    {"LABELS", "labels", cli_fmt_labels, true},
    {"LAST-CONTACT", "last_contact", host_fmt_last_contact, true},
    {"ID", "id", NULL, true},
};

static const OutputField host_fields[] = {
    {"id", "id", NULL, false},
    {"name", "name", NULL, false},
    {"uri", "uri", NULL, false},
    {"simulated", "simulated", host_fmt_simulated, false},
    {"state", "state", NULL, false},
    {"admin", "admin", NULL, false},
    {"connection", "connection", NULL, false},
    {"error", "error", NULL, false},
    {"last_contact", "last_contact", host_fmt_last_contact, false},
    {"hostname", "hostname", NULL, false},
    {"cpu_model", "cpu_model", NULL, false},
    {"libvirt_version", "libvirt_version", NULL, false},
    {"qemu_version", "qemu_version", NULL, false},
    {"vcpus", "vcpus", host_fmt_vcpus_show, false},
    {"ram", "ram_mib", host_fmt_ram_show, false},
    {"disk", "disk_gib", host_fmt_disk_show, false},
    {"cpu_ratio", "cpu_ratio", host_fmt_ratio, false},
    {"ram_ratio", "ram_ratio", host_fmt_ratio, false},
    {"disk_ratio", "disk_ratio", host_fmt_ratio, false},
    {"labels", "labels", cli_fmt_labels, false},
    {"agent", "agent", host_fmt_agent, false},
    {"tunnel_ip", "tunnel_ip", NULL, false},
    {"tunnel_dev", "tunnel_dev", NULL, false},
    {"vms", "vms", NULL, false},
    {"created_at", "created_at", NULL, false},
    {"updated_at", "updated_at", NULL, false},
};

static const Resource host_resource = {
    .collection = "hosts",
    .columns = host_columns,
    .n_columns = ELEMENTSOF(host_columns),
    .fields = host_fields,
    .n_fields = ELEMENTSOF(host_fields),
};

/* A host as "label: value" lines, then its VMs when the answer lists them (GET), or its JSON. */
static void
host_print(Cli *cli, json_t *host)
{
    if (cli->json) {
        output_json(host);
        return;
    }
    json_auto_t *copy = json_copy(host);
    if (!copy)
        return;
    json_object_del(copy, "vm_list");
    output_show(copy, host_fields, ELEMENTSOF(host_fields));

    json_t *vms = json_object_get(host, "vm_list");
    if (json_array_size(vms) == 0)
        return;
    static const OutputField cols[] = {
        {"VM", "name", NULL, false},
        {"STATE", "state", NULL, false},
        {"PROJECT", "project_name", NULL, false},
    };
    json_auto_t *rows = json_deep_copy(vms);
    if (!rows)
        return;
    cli_add_project_names(cli, rows, "project", "project_name");
    printf("\n");
    output_table(rows, cols, ELEMENTSOF(cols), false);
}

/* A positive number: "4", "1.5", ".5". 0 or -EINVAL. */
static int
host_parse_ratio(const char *s, double *ret)
{
    char *end;
    /* strtod would also take blanks, a sign, "inf" and "nan". */
    if (!((s[0] >= '0' && s[0] <= '9') || s[0] == '.'))
        return -EINVAL;
    errno = 0;
    double d = strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0' || !isfinite(d) || d <= 0)
        return -EINVAL;
    *ret = d;
    return 0;
}

/* Sets the ratios given as options in body. The server checks their range. */
static int
host_ratios_from_args(const Args *a, json_t *body)
{
    for (size_t i = 0; i < ELEMENTSOF(host_ratios); i++) {
        const char *v = args_get(a, host_ratios[i].opt);
        double d;
        if (!v)
            continue;
        if (host_parse_ratio(v, &d) < 0)
            return args_usage_error(a, "--%s must be a number greater than 0, like 4 or 1.5",
                                    host_ratios[i].opt);
        if (json_object_set_new(body, host_ratios[i].key, json_real(d)) < 0)
            return CLI_EXIT_API;
    }
    return 0;
}

/* The agent's secret, from a file (never argv, which every local user can read in ps): its
 * first line, trimmed. The server checks the format. */
static int
host_agent_from_args(const Args *a, json_t *body)
{
    const char *file = args_get(a, "agent-secret-file");
    const char *url = args_get(a, "agent-url");
    const char *tip = args_get(a, "tunnel-ip"), *tdev = args_get(a, "tunnel-dev");
    if (url && json_object_set_new(body, "agent_url", json_string(url)) < 0)
        return args_usage_error(a, "--agent-url must be UTF-8 text");
    if (tip && json_object_set_new(body, "tunnel_ip", json_string(tip)) < 0)
        return args_usage_error(a, "--tunnel-ip must be UTF-8 text");
    if (tdev && json_object_set_new(body, "tunnel_dev", json_string(tdev)) < 0)
        return args_usage_error(a, "--tunnel-dev must be UTF-8 text");
    if (!file)
        return 0;
    _cleanup_fclose_ FILE *f = fopen(file, "re");
    char buf[256] = "";
    if (!f || !fgets(buf, sizeof(buf), f))
        return args_usage_error(a, "cannot read --agent-secret-file %s: %s", file,
                                f ? "it is empty" : strerror(errno));
    size_t n = strcspn(buf, "\r\n");
    buf[n] = '\0';
    json_t *v = json_string(buf);
    explicit_bzero(buf, sizeof(buf));
    if (!v || json_object_set_new(body, "agent_secret", v) < 0)
        return args_usage_error(a, "--agent-secret-file must hold the agent's secret (64 hex)");
    return 0;
}

static int
host_add(Cli *cli, const Args *a)
{
    const char *name = a->positional[0], *uri = args_get(a, "uri");
    if (!nb_name_is_valid(name))
        return args_usage_error(a,
                                "invalid name '%s': use [A-Za-z0-9][A-Za-z0-9._-]{0,62}, "
                                "not a UUID",
                                name);
    if (!uri || !*uri)
        return args_usage_error(a, "--uri is required");
    json_auto_t *body = json_pack("{s:s, s:s}", "name", name, "uri", uri);
    if (!body)
        return args_usage_error(a, "--uri must be UTF-8 text");
    int r = host_ratios_from_args(a, body);
    if (r == 0)
        r = host_agent_from_args(a, body);
    if (r != 0)
        return r;
    if (args_has(a, "label")) {
        json_t *labels = json_object();
        if (!labels || json_object_set_new(body, "labels", labels) < 0)
            return CLI_EXIT_API;
        r = cli_labels_from_args(a, labels);
        if (r != 0)
            return r;
    }
    json_auto_t *host = NULL;
    r = api_call(cli, "POST", "/v1/hosts", body, &host);
    if (r != 0)
        return r;
    host_print(cli, host);
    return CLI_EXIT_OK;
}

static int
host_list(Cli *cli, const Args *a)
{
    return resource_list(cli, &host_resource, "", args_has(a, "wide"));
}

static int
host_show(Cli *cli, const Args *a)
{
    json_auto_t *host = NULL;
    int r = resource_get(cli, &host_resource, a->positional[0], &host);
    if (r != 0)
        return r;
    host_print(cli, host);
    return CLI_EXIT_OK;
}

/*
 * PUT replaces the whole set of labels: with --label, the host is read first and the labels
 * given are merged into the ones it has (two admins changing one host's labels at once: the last
 * write wins). --clear-labels starts from none instead.
 */
static int
host_set(Cli *cli, const Args *a)
{
    bool clear = args_has(a, "clear-labels"), label = args_has(a, "label"), ratio = false;
    for (size_t i = 0; i < ELEMENTSOF(host_ratios); i++)
        ratio = ratio || args_has(a, host_ratios[i].opt);
    if (!clear && !label && !ratio)
        return args_usage_error(a, "nothing to change: give a ratio, --label or --clear-labels");

    json_auto_t *body = json_object();
    json_auto_t *given = json_object();
    if (!body || !given)
        return CLI_EXIT_API;
    int r = host_ratios_from_args(a, body);
    if (r == 0 && label)
        r = cli_labels_from_args(a, given);
    if (r != 0)
        return r;

    const char *id = a->positional[0];
    json_auto_t *host = NULL;
    if (label && !clear) {
        r = resource_get(cli, &host_resource, id, &host);
        if (r != 0)
            return r;
        json_t *old = json_object_get(host, "labels");
        if (old && !json_is_null(old) && !json_is_object(old)) {
            fprintf(stderr, "error: INVALID_RESPONSE: the host's labels are not an object\n");
            return CLI_EXIT_API;
        }
        json_t *merged = json_is_object(old) ? json_copy(old) : json_object();
        if (!merged || json_object_update(merged, given) < 0 ||
            json_object_set_new(body, "labels", merged) < 0)
            return CLI_EXIT_API;
        id = api_str(host, "id") ?: id;
    } else if (clear || label) {
        if (json_object_set(body, "labels", given) < 0)
            return CLI_EXIT_API;
    }

    _cleanup_free_ char *path = NULL;
    r = api_path(cli, "hosts", id, NULL, &path);
    if (r != 0)
        return r;
    json_auto_t *updated = NULL;
    r = api_call(cli, "PUT", path, body, &updated);
    if (r != 0)
        return r;
    if (!json_is_object(updated)) {
        fprintf(stderr, "error: INVALID_RESPONSE: expected a host\n");
        return CLI_EXIT_API;
    }
    host_print(cli, updated);
    return CLI_EXIT_OK;
}

/* enable, disable: POST /v1/hosts/{id}/<action> -> 200 Host. */
static int
host_action(Cli *cli, const Args *a)
{
    _cleanup_free_ char *suffix = str_printf("/%s", a->cmd->data);
    _cleanup_free_ char *path = NULL;
    if (!suffix)
        return CLI_EXIT_API;
    int r = api_path(cli, "hosts", a->positional[0], suffix, &path);
    if (r != 0)
        return r;
    json_auto_t *host = NULL;
    r = api_call(cli, "POST", path, NULL, &host);
    if (r != 0)
        return r;
    if (!json_is_object(host)) {
        fprintf(stderr, "error: INVALID_RESPONSE: expected a host\n");
        return CLI_EXIT_API;
    }
    host_print(cli, host);
    return CLI_EXIT_OK;
}

/* "host kvm1: maintenance, 2 migrations started, 1 VM skipped", then the two lists. */
static void
host_print_maintenance(const Args *a, json_t *host, json_t *migrations, json_t *skipped)
{
    static const OutputField migration_cols[] = {
        {"MIGRATING", "vm_name", NULL, false},
        {"TASK", "task_id", NULL, false},
    };
    static const OutputField skipped_cols[] = {
        {"SKIPPED", "vm_name", NULL, false},
        {"REASON", "reason", NULL, false},
    };
    size_t n_mig = json_array_size(migrations), n_skip = json_array_size(skipped);
    _cleanup_free_ char *name = output_sanitize(api_str(host, "name") ?: a->positional[0]);
    _cleanup_free_ char *state = output_sanitize(api_str(host, "state") ?: "?");
    printf("host %s: %s, %zu migration%s started, %zu VM%s skipped\n", name ?: "", state ?: "",
           n_mig, n_mig == 1 ? "" : "s", n_skip, n_skip == 1 ? "" : "s");
    if (n_mig > 0) {
        printf("\n");
        output_table(migrations, migration_cols, ELEMENTSOF(migration_cols), false);
    }
    if (n_skip > 0) {
        printf("\n");
        output_table(skipped, skipped_cols, ELEMENTSOF(skipped_cols), false);
    }
}

/* "succeeded", "failed: CODE: message", or why the task's end is unknown. */
static json_t *
host_migration_result(json_t *task, bool timed_out)
{
    if (!task)
        return json_string(timed_out ? "unfinished (timeout)" : "unknown");
    const char *state = api_str(task, "state");
    if (!streq(state, "failed"))
        return json_string(state ? state : "?");
    json_t *err = json_object_get(task, "error");
    _cleanup_free_ char *s = str_printf("failed: %s: %s", api_str(err, "code") ?: "TASK_FAILED",
                                        api_str(err, "message") ?: "the task failed");
    return s ? json_string(s) : NULL;
}

/* *ret is the task when it has ended, else left NULL; no error is printed. */
static void
host_task_if_ended(Cli *cli, const char *task_id, json_t **ret)
{
    _cleanup_free_ char *path = NULL;
    json_t *task = NULL;
    if (api_path(cli, "tasks", task_id, NULL, &path) != 0 ||
        api_call_full(cli, "GET", path, NULL, true, NULL, &task) != 0)
        return;
    const char *state = api_str(task, "state");
    if (streq(state, "succeeded") || streq(state, "failed"))
        *ret = task;
    else
        json_decref(task);
}

/*
 * Follows every migration task, one after the other, within one deadline for all. Sets
 * "task" (the final task, or null) and "result" in each element of migrations. Returns the
 * number that did not succeed; *ret_connect is set when the API could not be reached.
 */
static size_t
host_wait_migrations(Cli *cli, json_t *migrations, uint64_t wait_s, bool *ret_connect)
{
    uint64_t deadline = nb_monotonic_ms() + wait_s * 1000;
    size_t n = json_array_size(migrations), bad = 0, i;
    json_t *m;
    *ret_connect = false;
    json_array_foreach (migrations, i, m) {
        const char *task_id = api_str(m, "task_id");
        json_t *task = NULL;
        bool timed_out = false;
        uint64_t now = nb_monotonic_ms();
        if (task_id && !*ret_connect && now < deadline) {
            _cleanup_free_ char *what =
                str_printf("migrating %s (%zu/%zu)", api_str(m, "vm_name") ?: "?", i + 1, n);
            int r = task_wait_progress(cli, task_id, what, (deadline - now + 999) / 1000, &task);
            if (r == CLI_EXIT_CONNECT)
                *ret_connect = true;
            timed_out = r != 0 && nb_monotonic_ms() >= deadline;
        } else if (task_id && !*ret_connect) {
            /* Past the deadline, already reported: one look, in case the task has ended. */
            timed_out = true;
            host_task_if_ended(cli, task_id, &task);
        }
        if (!streq(api_str(task, "state"), "succeeded"))
            bad++;
        json_object_set_new(m, "result", host_migration_result(task, timed_out));
        json_object_set_new(m, "task", task ? task : json_null());
    }
    return bad;
}

static int
host_maintenance(Cli *cli, const Args *a)
{
    uint64_t wait_s = CLI_WAIT_DEFAULT_SECONDS;
    int r = args_get_u64(a, "timeout-wait", 1, HOST_WAIT_MAX, &wait_s);
    if (r != 0)
        return r;
    _cleanup_free_ char *path = NULL;
    r = api_path(cli, "hosts", a->positional[0], "/maintenance", &path);
    if (r != 0)
        return r;
    json_auto_t *resp = NULL;
    r = api_call(cli, "POST", path, NULL, &resp);
    if (r != 0)
        return r;
    json_t *host = json_object_get(resp, "host");
    json_t *migrations = json_object_get(resp, "migrations");
    json_t *skipped = json_object_get(resp, "skipped");
    if (!json_is_array(migrations) || !json_is_array(skipped)) {
        fprintf(stderr,
                "error: INVALID_RESPONSE: expected {\"host\", \"migrations\", \"skipped\"}\n");
        return CLI_EXIT_API;
    }
    if (cli->json && !args_has(a, "wait")) {
        output_json(resp);
        return CLI_EXIT_OK;
    }
    if (!cli->json) {
        host_print_maintenance(a, host, migrations, skipped);
        fflush(stdout);
    }
    if (!args_has(a, "wait"))
        return CLI_EXIT_OK;

    /* --json: the answer, with each migration's final "task" and "result" added. */
    bool connect_failed;
    size_t n = json_array_size(migrations);
    size_t bad = host_wait_migrations(cli, migrations, wait_s, &connect_failed);
    if (cli->json) {
        output_json(resp);
    } else if (n > 0) {
        static const OutputField report_cols[] = {
            {"VM", "vm_name", NULL, false},
            {"TASK", "task_id", NULL, false},
            {"RESULT", "result", NULL, false},
        };
        printf("\n");
        output_table(migrations, report_cols, ELEMENTSOF(report_cols), false);
    }
    if (bad == 0)
        return CLI_EXIT_OK;
    fflush(stdout);
    fprintf(stderr, "error: MIGRATION_FAILED: %zu of %zu migrations did not succeed\n", bad, n);
    return connect_failed ? CLI_EXIT_CONNECT : CLI_EXIT_API;
}

static int
host_remove(Cli *cli, const Args *a)
{
    return resource_delete_as(cli, &host_resource, a->positional[0], "removed");
}

static const ArgSpec add_specs[] = {
    {"uri", true},         {"cpu-ratio", true}, {"ram-ratio", true},         {"disk-ratio", true},
    {"label", true, true}, {"agent-url", true}, {"agent-secret-file", true}, {"tunnel-ip", true},
    {"tunnel-dev", true},
};
static const ArgSpec list_specs[] = {{"wide", false}};
static const ArgSpec set_specs[] = {
    {"cpu-ratio", true},   {"ram-ratio", true},     {"disk-ratio", true},
    {"label", true, true}, {"clear-labels", false},
};
static const ArgSpec maintenance_specs[] = {{"wait", false}, {"timeout-wait", true}};

#define RATIO_HELP                                                                                 \
    "  --cpu-ratio X          vCPUs the host may give out per physical CPU (default 4)\n"          \
    "  --ram-ratio X          the same for RAM (default 1)\n"                                      \
    "  --disk-ratio X         the same for disk (default 1)\n"

static const Command host_commands[] = {
    {"add",
     "NAME --uri URI [--cpu-ratio X] [--ram-ratio X] [--disk-ratio X] [--label KEY=VALUE]... "
     "[--agent-secret-file F [--agent-url URL]] [--tunnel-ip IP --tunnel-dev DEV]",
     "Add a hypervisor host; nimbusd connects to it.",
     "  --uri URI              libvirt URI, e.g. "
     "qemu+ssh://root@kvm1.example.org/system\n" RATIO_HELP
     "  --label KEY=VALUE      a label VMs can ask for; repeatable\n"
     "  --agent-secret-file F  the host's nimbus-agent secret (64 hex), read from this file\n"
     "  --agent-url URL        the agent (default https://<the URI's host>:8775)\n"
     "  --tunnel-ip IP         the host's VXLAN underlay address (vxlan networks)\n"
     "  --tunnel-dev DEV       and the host interface that has it\n",
     host_add, add_specs, ELEMENTSOF(add_specs), 1, 1, NULL},
    {"list", "[--wide]", "List hosts with what is used of their capacity.",
     "  --wide                 also show the URI, labels, last contact and id\n", host_list,
     list_specs, ELEMENTSOF(list_specs), 0, 0, NULL},
    {"show", "NAME|ID", "Show a host, its capacity and its VMs.", NULL, host_show, NULL, 0, 1, 1,
     NULL},
    {"set",
     "NAME|ID [--cpu-ratio X] [--ram-ratio X] [--disk-ratio X] [--label KEY=VALUE]... "
     "[--clear-labels]",
     "Change a host's allocation ratios or labels; what is not given keeps its value.",
     RATIO_HELP "  --label KEY=VALUE      add or change a label; repeatable\n"
                "  --clear-labels         remove every label (then add those of --label)\n",
     host_set, set_specs, ELEMENTSOF(set_specs), 1, 1, NULL},
    {"enable", "NAME|ID", "Let the scheduler place VMs on a host again.", NULL, host_action, NULL,
     0, 1, 1, "enable"},
    {"disable", "NAME|ID", "Place no new VMs on a host; the VMs it has stay.", NULL, host_action,
     NULL, 0, 1, 1, "disable"},
    {"maintenance", "NAME|ID [--wait] [--timeout-wait SECONDS]",
     "Move a host's VMs away and hold it empty ('host enable' ends it).",
     "  --wait                 follow every migration to its end and print a report; exit 1\n"
     "                         if any failed\n"
     "  --timeout-wait SECONDS give up waiting after this long, for all migrations together\n"
     "                         (default 600)\n",
     host_maintenance, maintenance_specs, ELEMENTSOF(maintenance_specs), 1, 1, NULL},
    {"remove", "NAME|ID", "Remove a host; move its VMs away first ('host maintenance').", NULL,
     host_remove, NULL, 0, 1, 1, NULL},
};

int
cmd_host(Cli *cli, int argc, char **argv)
{
    return args_dispatch(cli, "host", "Manage hypervisor hosts (admin only).", host_commands,
                         ELEMENTSOF(host_commands), argc, argv);
}

/* ---- labels, also for vm create ---- */

int
cli_labels_from_args(const Args *a, json_t *labels)
{
    const char *values[ARGS_MAX_REPEATED];
    size_t n = args_get_all(a, "label", values, ELEMENTSOF(values));
    for (size_t i = 0; i < n && i < ELEMENTSOF(values); i++) {
        const char *eq = strchr(values[i], '=');
        if (!eq || eq == values[i])
            return args_usage_error(a, "--label must be KEY=VALUE with a non-empty KEY: '%s'",
                                    values[i]);
        _cleanup_free_ char *key = strndup(values[i], (size_t)(eq - values[i]));
        if (!key)
            return CLI_EXIT_API;
        if (json_object_get(labels, key))
            return args_usage_error(a, "--label %s is given twice", key);
        json_t *value = json_string(eq + 1);
        if (!value || json_object_set_new(labels, key, value) < 0)
            return args_usage_error(a, "--label must be UTF-8 text: '%s'", values[i]);
    }
    return 0;
}

char *
cli_fmt_labels(json_t *obj, const char *key)
{
    json_t *labels = json_object_get(obj, key);
    if (!json_is_object(labels))
        return output_fmt_plain(obj, key);
    if (json_object_size(labels) == 0)
        return strdup("-");
    _cleanup_free_ char *text = strdup("");
    const char *k;
    json_t *v;
    json_object_foreach (labels, k, v) {
        if (!text)
            return NULL;
        const char *s = json_string_value(v);
        char *next = str_printf("%s%s%s=%s", text, *text ? "," : "", k, s ? s : "?");
        free(text);
        text = next;
    }
    return text ? output_sanitize(text) : NULL;
}
