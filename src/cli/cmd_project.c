/* nimbus project create|list|show|delete|set-quota, nimbus quota show, nimbus usage */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "../model/validate.h"
#include "../util/cleanup.h"
#include "../util/strutil.h"
#include "api.h"
#include "args.h"
#include "resource.h"

/* The quota keys of the API, and the shorter names the --quota option also takes. */
static const struct {
    const char *key;
    const char *alias;
    const char *label; /* for the quota table */
} quota_keys[] = {
    {"vcpus", "vcpus", "vcpus"},
    {"ram_mib", "ram", "ram (MiB)"},
    {"disk_gib", "disk", "disk (GiB)"},
    {"vms", "vms", "vms"},
    {"images", "images", "images"},
    {"networks", "networks", "networks"},
    {"ports", "ports", "ports (NICs)"},
    {"secgroups", "secgroups", "security groups"},
    {"volumes", "volumes", "volumes"},
    {"volume_gib", "volume-gib", "volume space (GiB)"},
    {"snapshots", "snapshots", "VM snapshots"},
    {"backups", "backups", "VM backups"},
};

static char *
project_fmt_quota(json_t *obj, const char *key)
{
    json_t *v = json_object_get(json_object_get(obj, "quota"), key);
    if (!v || json_is_null(v))
        return strdup("unlimited");
    return output_fmt_plain(json_object_get(obj, "quota"), key);
}

static const OutputField project_columns[] = {
    {"NAME", "name", NULL, false},
    {"VCPUS", "vcpus", project_fmt_quota, false},
    {"RAM(MiB)", "ram_mib", project_fmt_quota, false},
    {"DISK(GiB)", "disk_gib", project_fmt_quota, false},
    {"VMS", "vms", project_fmt_quota, false},
    {"IMAGES", "images", project_fmt_quota, false},
    {"CREATED", "created_at", NULL, true},
    {"ID", "id", NULL, true},
};

static const Resource project_resource = {
    .collection = "projects",
    .columns = project_columns,
    .n_columns = ELEMENTSOF(project_columns),
};

static int
quota_key_index(const char *name, size_t len)
{
    for (size_t i = 0; i < ELEMENTSOF(quota_keys); i++) {
        if ((strlen(quota_keys[i].key) == len && strncmp(quota_keys[i].key, name, len) == 0) ||
            (strlen(quota_keys[i].alias) == len && strncmp(quota_keys[i].alias, name, len) == 0))
            return (int)i;
    }
    return -1;
}

/*
 * Parses "vcpus=16,ram=32768,vms=none" (with_values) or "vms,images" (without: each becomes
 * unlimited) into members of quota. seen[] marks the keys given, and catches repeats.
 */
static int
quota_parse(const Args *a, const char *opt, const char *spec, bool with_values, json_t *quota,
            bool seen[])
{
    const char *p = spec;
    if (!*p)
        return args_usage_error(a, "--%s must not be empty", opt);
    while (*p) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        const char *eq = memchr(p, '=', len);
        size_t key_len = eq ? (size_t)(eq - p) : len;
        int i = quota_key_index(p, key_len);
        if (i < 0)
            return args_usage_error(a,
                                    "--%s: unknown resource '%.*s' (use vcpus, ram, disk, vms, "
                                    "images)",
                                    opt, (int)key_len, p);
        if (seen[i])
            return args_usage_error(a, "--%s: '%s' is given twice", opt, quota_keys[i].alias);
        seen[i] = true;
        json_t *v;
        if (!with_values) {
            if (eq)
                return args_usage_error(a, "--%s takes resource names only: %s", opt, spec);
            v = json_null();
        } else {
            if (!eq)
                return args_usage_error(a, "--%s: expected %.*s=N", opt, (int)key_len, p);
            char value[32];
            size_t vlen = len - key_len - 1;
            uint64_t n;
            if (vlen >= sizeof(value))
                vlen = sizeof(value) - 1; /* still too many digits: refused below */
            memcpy(value, eq + 1, vlen);
            value[vlen] = '\0';
            if (len - key_len - 1 >= sizeof(value))
                v = NULL;
            else if (streq(value, "none") || streq(value, "unlimited"))
                v = json_null();
            else if (str_to_u64(value, &n) == 0 && n <= INT64_MAX)
                v = json_integer((json_int_t)n);
            else
                v = NULL;
            if (!v)
                return args_usage_error(a,
                                        "--%s: %s must be a whole number, or 'none' for no limit",
                                        opt, quota_keys[i].alias);
        }
        if (json_object_set_new(quota, quota_keys[i].key, v) < 0)
            return CLI_EXIT_API;
        p = end ? end + 1 : p + len;
        if (end && !*p)
            return args_usage_error(a, "--%s ends with a comma", opt);
    }
    return 0;
}

/* The project as "label: value" lines, with its quota one line per resource. */
static void
project_print(Cli *cli, json_t *project)
{
    if (cli->json) {
        output_json(project);
        return;
    }
    json_auto_t *flat = json_copy(project);
    if (!flat)
        return;
    json_object_del(flat, "quota");
    OutputField fields[3 + ELEMENTSOF(quota_keys)];
    char labels[ELEMENTSOF(quota_keys)][32];
    size_t n = 0;
    fields[n++] = (OutputField){"id", "id", NULL, false};
    fields[n++] = (OutputField){"name", "name", NULL, false};
    for (size_t i = 0; i < ELEMENTSOF(quota_keys); i++) {
        _cleanup_free_ char *v = project_fmt_quota(project, quota_keys[i].key);
        snprintf(labels[i], sizeof(labels[i]), "quota.%s", quota_keys[i].key);
        json_object_set_new(flat, labels[i], json_string(v ? v : "?"));
        fields[n++] = (OutputField){labels[i], labels[i], NULL, false};
    }
    fields[n++] = (OutputField){"created_at", "created_at", NULL, false};
    output_show(flat, fields, n);
}

static int
project_get(Cli *cli, const char *id, json_t **ret)
{
    return resource_get(cli, &project_resource, id, ret);
}

static int
project_create(Cli *cli, const Args *a)
{
    const char *name = a->positional[0];
    if (!nb_name_is_valid(name))
        return args_usage_error(a,
                                "invalid name '%s': use [A-Za-z0-9][A-Za-z0-9._-]{0,62}, "
                                "not a UUID",
                                name);
    json_auto_t *body = json_pack("{s:s}", "name", name);
    if (!body)
        return CLI_EXIT_API;
    const char *spec = args_get(a, "quota");
    if (spec) {
        bool seen[ELEMENTSOF(quota_keys)] = {false};
        json_t *quota = json_object();
        if (!quota || json_object_set_new(body, "quota", quota) < 0)
            return CLI_EXIT_API;
        int r = quota_parse(a, "quota", spec, true, quota, seen);
        if (r != 0)
            return r;
    }
    json_auto_t *project = NULL;
    int r = api_call(cli, "POST", "/v1/projects", body, &project);
    if (r != 0)
        return r;
    project_print(cli, project);
    return CLI_EXIT_OK;
}

static int
project_list(Cli *cli, const Args *a)
{
    return resource_list(cli, &project_resource, "", args_has(a, "wide"));
}

static int
project_show(Cli *cli, const Args *a)
{
    json_auto_t *project = NULL;
    int r = project_get(cli, a->positional[0], &project);
    if (r != 0)
        return r;
    project_print(cli, project);
    return CLI_EXIT_OK;
}

static int
project_delete(Cli *cli, const Args *a)
{
    return resource_delete(cli, &project_resource, a->positional[0]);
}

/*
 * PUT replaces the whole quota: the project is read first, and the keys not given keep the
 * values it had. (Two admins changing one project's quota at once: the last write wins.)
 */
static int
project_set_quota(Cli *cli, const Args *a)
{
    const char *spec = args_get(a, "quota"), *unlimited = args_get(a, "unlimited");
    if (!spec && !unlimited)
        return args_usage_error(a, "give --quota, --unlimited or both");
    bool seen[ELEMENTSOF(quota_keys)] = {false};
    json_auto_t *changes = json_object();
    if (!changes)
        return CLI_EXIT_API;
    int r = spec ? quota_parse(a, "quota", spec, true, changes, seen) : 0;
    if (r == 0 && unlimited)
        r = quota_parse(a, "unlimited", unlimited, false, changes, seen);
    if (r != 0)
        return r;

    json_auto_t *project = NULL;
    r = project_get(cli, a->positional[0], &project);
    if (r != 0)
        return r;
    const char *id = api_str(project, "id");
    json_t *old = json_object_get(project, "quota");
    json_auto_t *quota = json_object();
    if (!id || !quota) {
        fprintf(stderr, "error: INVALID_RESPONSE: the project has no id\n");
        return CLI_EXIT_API;
    }
    for (size_t i = 0; i < ELEMENTSOF(quota_keys); i++) {
        const char *k = quota_keys[i].key;
        json_t *v = json_object_get(seen[i] ? changes : old, k);
        json_object_set_new(quota, k, v ? json_incref(v) : json_null());
    }
    _cleanup_free_ char *path = NULL;
    r = api_path(cli, "projects", id, "/quota", &path);
    if (r != 0)
        return r;
    json_auto_t *updated = NULL;
    r = api_call(cli, "PUT", path, quota, &updated);
    if (r != 0)
        return r;
    project_print(cli, updated ? updated : project);
    return CLI_EXIT_OK;
}

static const ArgSpec create_specs[] = {{"quota", true}};
static const ArgSpec list_specs[] = {{"wide", false}};
static const ArgSpec set_quota_specs[] = {{"quota", true}, {"unlimited", true}};

#define QUOTA_HELP                                                                                 \
    "  --quota LIMITS     comma-separated RESOURCE=N: vcpus, ram (MiB), disk (GiB), vms,\n"        \
    "                     images; N is a whole number, or 'none' for no limit.\n"                  \
    "                     Example: vcpus=16,ram=32768,disk=200,vms=20,images=10\n"

static const Command project_commands[] = {
    {"create", "NAME [--quota LIMITS]",
     "Create a project (admin). Resources not given are unlimited.", QUOTA_HELP, project_create,
     create_specs, ELEMENTSOF(create_specs), 1, 1, NULL},
    {"list", "[--wide]", "List projects with their quotas (non-admins: their own).",
     "  --wide             also show the creation time and id\n", project_list, list_specs,
     ELEMENTSOF(list_specs), 0, 0, NULL},
    {"show", "NAME|ID", "Show a project and its quota.", NULL, project_show, NULL, 0, 1, 1, NULL},
    {"delete", "NAME|ID", "Delete a project that has no VMs, images or users (admin).", NULL,
     project_delete, NULL, 0, 1, 1, NULL},
    {"set-quota", "NAME|ID [--quota LIMITS] [--unlimited RESOURCES]",
     "Change some of a project's limits; the others keep their values (admin).",
     QUOTA_HELP
     "  --unlimited LIST   comma-separated resources to make unlimited, e.g. vms,images\n",
     project_set_quota, set_quota_specs, ELEMENTSOF(set_quota_specs), 1, 1, NULL},
};

int
cmd_project(Cli *cli, int argc, char **argv)
{
    return args_dispatch(cli, "project", "Manage projects (tenants) and their quotas.",
                         project_commands, ELEMENTSOF(project_commands), argc, argv);
}

/* ---- nimbus quota show ---- */

static char *
quota_fmt_limit(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    return json_is_null(v) ? strdup("unlimited") : output_fmt_plain(obj, key);
}

static int
quota_show(Cli *cli, const Args *a)
{
    _cleanup_free_ char *project = NULL;
    int r = cli_project_or_mine(cli, args_get(a, "project"), &project);
    if (r != 0)
        return r;
    _cleanup_free_ char *path = NULL;
    r = api_path(cli, "projects", project, "/quota", &path);
    if (r != 0)
        return r;
    json_auto_t *resp = NULL;
    r = api_call(cli, "GET", path, NULL, &resp);
    if (r != 0)
        return r;
    if (cli->json) {
        output_json(resp);
        return CLI_EXIT_OK;
    }
    json_t *limits = json_object_get(resp, "limits");
    json_t *in_use = json_object_get(resp, "in_use");
    if (!json_is_object(limits) || !json_is_object(in_use)) {
        fprintf(stderr, "error: INVALID_RESPONSE: expected limits and in_use\n");
        return CLI_EXIT_API;
    }
    json_auto_t *rows = json_array();
    for (size_t i = 0; rows && i < ELEMENTSOF(quota_keys); i++) {
        const char *k = quota_keys[i].key;
        json_t *lim = json_object_get(limits, k), *use = json_object_get(in_use, k);
        json_array_append_new(rows, json_pack("{s:s, s:O, s:O}", "resource", quota_keys[i].label,
                                              "limit", lim ? lim : json_null(), "in_use",
                                              use ? use : json_null()));
    }
    static const OutputField cols[] = {
        {"RESOURCE", "resource", NULL, false},
        {"LIMIT", "limit", quota_fmt_limit, false},
        {"IN-USE", "in_use", NULL, false},
    };
    json_t *p = json_object_get(resp, "project");
    _cleanup_free_ char *name = output_sanitize(api_str(p, "name") ?: project);
    printf("Project %s\n\n", name ?: "");
    output_table(rows, cols, ELEMENTSOF(cols), false);
    return CLI_EXIT_OK;
}

static const ArgSpec quota_specs[] = {{"project", true}};

static const Command quota_commands[] = {
    {"show", "[--project NAME|ID]", "Show a project's limits and what is in use.",
     "  --project P   the project (default: your own)\n", quota_show, quota_specs,
     ELEMENTSOF(quota_specs), 0, 0, NULL},
};

int
cmd_quota(Cli *cli, int argc, char **argv)
{
    return args_dispatch(cli, "quota", "Show quotas.", quota_commands, ELEMENTSOF(quota_commands),
                         argc, argv);
}

/* ---- nimbus usage ---- */

static char *
usage_fmt_hours(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    if (!json_is_number(v))
        return output_fmt_plain(obj, key);
    return str_printf("%.2f", json_number_value(v));
}

/* YYYY-MM-DD, optionally followed by a time (checked by the server). */
static bool
usage_date_is_valid(const char *s)
{
    static const char shape[] = "dddd-dd-dd";
    for (size_t i = 0; i < sizeof(shape) - 1; i++) {
        if (shape[i] == 'd' ? !(s[i] >= '0' && s[i] <= '9') : s[i] != shape[i])
            return false;
    }
    return s[10] == '\0' || s[10] == 'T';
}

static int
usage_run(Cli *cli, const Args *a)
{
    const char *from = args_get(a, "from"), *to = args_get(a, "to");
    if ((from && !usage_date_is_valid(from)) || (to && !usage_date_is_valid(to)))
        return args_usage_error(a, "dates look like 2026-11-01 or 2026-11-01T00:00:00Z");
    _cleanup_free_ char *project = NULL;
    int r = cli_project_or_mine(cli, args_get(a, "project"), &project);
    if (r != 0)
        return r;
    Client *c;
    r = api_client(cli, &c);
    if (r != 0)
        return r;
    _cleanup_free_ char *query = strdup("");
    if (!query)
        return CLI_EXIT_API;
    if (from)
        r = client_query_add(c, &query, "from", from);
    if (r == 0 && to)
        r = client_query_add(c, &query, "to", to);
    _cleanup_free_ char *path = NULL;
    if (r == 0)
        r = api_path(cli, "projects", project, "/usage", &path);
    _cleanup_free_ char *full = path ? str_printf("%s%s", path, query) : NULL;
    if (r != 0)
        return r;
    if (!full)
        return CLI_EXIT_API;
    json_auto_t *resp = NULL;
    r = api_call(cli, "GET", full, NULL, &resp);
    if (r != 0)
        return r;
    if (cli->json) {
        output_json(resp);
        return CLI_EXIT_OK;
    }
    json_t *vms = json_object_get(resp, "vms");
    json_t *totals = json_object_get(resp, "totals");
    if (!json_is_array(vms) || !json_is_object(totals)) {
        fprintf(stderr, "error: INVALID_RESPONSE: expected vms and totals\n");
        return CLI_EXIT_API;
    }
    json_auto_t *rows = json_deep_copy(vms);
    json_t *total_row = json_deep_copy(totals);
    if (!rows || !total_row || json_object_set_new(total_row, "name", json_string("TOTAL")) < 0 ||
        json_array_append_new(rows, total_row) < 0)
        return CLI_EXIT_API;
    static const OutputField cols[] = {
        {"NAME", "name", NULL, false},
        {"VCPU-HOURS", "vcpu_hours", usage_fmt_hours, false},
        {"RAM-GIB-HOURS", "ram_gib_hours", usage_fmt_hours, false},
        {"DISK-GIB-HOURS", "disk_gib_hours", usage_fmt_hours, false},
        {"RUNNING-HOURS", "running_hours", usage_fmt_hours, true},
        {"ID", "vm_id", NULL, true},
    };
    json_t *p = json_object_get(resp, "project");
    _cleanup_free_ char *name = output_sanitize(api_str(p, "name") ?: project);
    _cleanup_free_ char *f = output_sanitize(api_str(resp, "from") ?: "?");
    _cleanup_free_ char *t = output_sanitize(api_str(resp, "to") ?: "?");
    printf("Project %s, from %s to %s\n\n", name ?: "", f ?: "", t ?: "");
    output_table(rows, cols, ELEMENTSOF(cols), args_has(a, "wide"));
    return CLI_EXIT_OK;
}

static const ArgSpec usage_specs[] = {
    {"project", true}, {"from", true}, {"to", true}, {"wide", false}};

static const Command usage_command = {
    "usage",
    "[--project NAME|ID] [--from DATE] [--to DATE] [--wide]",
    "Show a project's metered usage per VM: vCPU-, RAM- and disk-hours, then totals.",
    "  --project P   the project (default: your own)\n"
    "  --from DATE   start, e.g. 2026-11-01 or 2026-11-01T00:00:00Z (default: the start of\n"
    "                this month)\n"
    "  --to DATE     end (default: now)\n"
    "  --wide        also show the running hours and the VM id\n",
    usage_run,
    usage_specs,
    ELEMENTSOF(usage_specs),
    0,
    0,
    NULL};

int
cmd_usage(Cli *cli, int argc, char **argv)
{
    return args_run(cli, &usage_command, argc, argv);
}

/* ---- project names for the tables of other groups ---- */

void
cli_add_project_names(Cli *cli, json_t *rows, const char *id_key, const char *name_key)
{
    json_auto_t *resp = NULL;
    if (api_call_full(cli, "GET", "/v1/projects", NULL, true, NULL, &resp) != 0)
        resp = NULL; /* not allowed or not there: the ids stand in */
    json_t *projects = json_object_get(resp, "projects");
    size_t i;
    json_t *row;
    json_array_foreach (rows, i, row) {
        const char *id = api_str(row, id_key);
        const char *name = NULL;
        size_t j;
        json_t *p;
        json_array_foreach (projects, j, p) {
            if (id && streq(api_str(p, "id"), id)) {
                name = api_str(p, "name");
                break;
            }
        }
        json_object_set_new(row, name_key,
                            name ? json_string(name)
                            : id ? json_string(id)
                                 : json_null());
    }
}
