/* nimbus vm create|list|show|console-log|start|stop|reboot|pause|resume|delete|migrate, and
 * vm nic add|remove */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "../model/network.h"
#include "../model/validate.h"
#include "../util/cleanup.h"
#include "../util/strutil.h"
#include "../util/uuid.h"
#include "api.h"
#include "args.h"
#include "resource.h"

#define VM_STOP_TIMEOUT_MAX 86400
#define VM_CONSOLE_BYTES_MAX (16u * 1024 * 1024)

/* The host, or "source->destination" while the VM migrates. */
static char *
vm_fmt_host(json_t *obj, const char *key)
{
    const char *to = api_str(obj, "migrate_to");
    if (!to || !json_is_string(json_object_get(obj, key)))
        return output_fmt_plain(obj, key);
    _cleanup_free_ char *s = str_printf("%s->%s", api_str(obj, key), to);
    return s ? output_sanitize(s) : NULL;
}

static const OutputField vm_columns[] = {
    {"NAME", "name", NULL, false},
    {"STATE", "state", NULL, false},
    {"DESIRED", "desired_state", NULL, true},
    {"HOST", "host", vm_fmt_host, false},
    {"VCPUS", "vcpus", NULL, false},
    {"RAM(MiB)", "ram_mib", NULL, false},
    {"IP", "ip", NULL, false},
    {"TASK", "task_id", NULL, true},
    {"ID", "id", NULL, true},
};

static const OutputField vm_fields[] = {
    {"id", "id", NULL, false},
    {"name", "name", NULL, false},
    {"hostname", "hostname", NULL, false},
    {"state", "state", NULL, false},
    {"desired_state", "desired_state", NULL, false},
    {"task_id", "task_id", NULL, false},
    {"host", "host", NULL, false},
    {"migrate_to", "migrate_to", NULL, false}, /* shown only during a migration */
    {"group_id", "group_id", NULL, false},
    {"pool_id", "pool_id", NULL, false},
    {"labels", "labels", cli_fmt_labels, false},
    {"image_id", "image_id", NULL, false},
    {"flavor_id", "flavor_id", NULL, false},
    {"vcpus", "vcpus", NULL, false},
    {"ram_mib", "ram_mib", NULL, false},
    {"disk_gib", "disk_gib", NULL, false},
    {"mac", "mac", NULL, false},
    {"ip", "ip", NULL, false},
    {"error", "error", NULL, false},
    {"created_at", "created_at", NULL, false},
    {"updated_at", "updated_at", NULL, false},
};

static const Resource vm_resource = {
    .collection = "vms",
    .columns = vm_columns,
    .n_columns = ELEMENTSOF(vm_columns),
    .fields = vm_fields,
    .n_fields = ELEMENTSOF(vm_fields),
};

/* The network's name, else its id (a network this user cannot see by name). */
static char *
vm_fmt_nic_network(json_t *obj, const char *key)
{
    return output_fmt_plain(obj, json_is_string(json_object_get(obj, key)) ? key : "network_id");
}

static const OutputField vm_nic_columns[] = {
    {"SLOT", "slot", NULL, false},
    {"MAC", "mac", NULL, false},
    {"IP", "ip", NULL, false},
    {"NETWORK", "network", vm_fmt_nic_network, false},
    {"SECGROUPS", "secgroups", cli_fmt_strings, false},
    {"IN(Mbit/s)", "net_in_mbit", cli_fmt_mbit, false},
    {"OUT(Mbit/s)", "net_out_mbit", cli_fmt_mbit, false},
};

/* The VM as "label: value" lines (migrate_to only while it migrates) then its NICs as a
 * table, or its JSON. */
static void
vm_print(Cli *cli, json_t *vm)
{
    if (cli->json) {
        output_json(vm);
        return;
    }
    json_auto_t *copy = json_copy(vm);
    OutputField fields[ELEMENTSOF(vm_fields)];
    size_t n = 0;
    bool migrating = json_is_string(json_object_get(vm, "migrate_to"));
    if (!copy)
        return;
    if (!migrating)
        json_object_del(copy, "migrate_to");
    json_object_del(copy, "nics");
    for (size_t i = 0; i < ELEMENTSOF(vm_fields); i++) {
        if (migrating || !streq(vm_fields[i].key, "migrate_to"))
            fields[n++] = vm_fields[i];
    }
    output_show(copy, fields, n);

    json_t *nics = json_object_get(vm, "nics");
    if (json_array_size(nics) == 0)
        return;
    printf("\n");
    output_table(nics, vm_nic_columns, ELEMENTSOF(vm_nic_columns), false);
}

/*
 * What follows a 202 {vm, task}: without --wait, the VM and its task; with --wait, the VM once
 * the task ended (or "deleted"), and the task's error when it failed. doing (e.g. "migrating"),
 * when not NULL, shows the task's progress while waiting as "<doing> <VM name>: 42%".
 */
static void
vm_print_answer(Cli *cli, json_t *vm, json_t *resp)
{
    vm_print(cli, vm);
}

static int
vm_finish(Cli *cli, const Args *a, json_t *resp, uint64_t wait_s, bool deleting, const char *doing)
{
    json_t *vm;
    const char *task_id;
    int r = cli_task_answer(cli, a, resp, "vm", vm_print_answer, &vm, &task_id);
    if (r != 0 || !task_id)
        return r;

    json_auto_t *final = NULL;
    _cleanup_free_ char *what =
        doing ? str_printf("%s %s", doing, api_str(vm, "name") ?: a->positional[0]) : NULL;
    if (doing && !what)
        return CLI_EXIT_API;
    r = task_wait_progress(cli, task_id, what, wait_s, &final);
    if (r != 0)
        return r;
    bool failed = streq(api_str(final, "state"), "failed");
    if (deleting && !failed) /* the VM is gone: nothing left to show but the task */
        return cli_task_deleted(cli, final);

    json_auto_t *now = NULL;
    const char *id = api_str(vm, "id") ?: a->positional[0];
    r = resource_get(cli, &vm_resource, id, &now);
    if (r == 0)
        vm_print(cli, now);
    return failed ? cli_task_failed(final) : r;
}

static int
vm_read_user_data(const Args *a, const char *path, json_t **ret)
{
    _cleanup_free_ char *data = NULL;
    size_t len = 0;
    /* One byte over the limit tells "exactly 64 KiB" from "more". */
    int r = read_file_full(path, NB_USER_DATA_MAX + 1, &data, &len);
    if (r == -EFBIG || (r == 0 && len > NB_USER_DATA_MAX))
        return args_usage_error(a, "user-data file %s is larger than %d KiB", path,
                                NB_USER_DATA_MAX / 1024);
    if (r < 0) {
        fprintf(stderr, "error: cannot read user-data file %s: %s\n", path, strerror(-r));
        return CLI_EXIT_USAGE;
    }
    json_t *s = memchr(data, '\0', len) ? NULL : json_stringn(data, len);
    if (!s)
        return args_usage_error(a, "user-data file %s is not UTF-8 text", path);
    *ret = s;
    return 0;
}

/* The repeatable --secgroup NAME as the request's "secgroups" (absent: the server gives each new
 * port the project's default group). */
static int
vm_secgroups_from_args(const Args *a, json_t *body)
{
    const char *vals[ARGS_MAX_REPEATED];
    size_t n = args_get_all(a, "secgroup", vals, ELEMENTSOF(vals));
    if (n == 0)
        return 0;
    json_t *arr = json_array();
    if (!arr || json_object_set_new(body, "secgroups", arr) < 0)
        return CLI_EXIT_API;
    for (size_t i = 0; i < n; i++) {
        if (!nb_name_is_valid(vals[i]) && !nb_uuid_is_valid(vals[i]))
            return args_usage_error(a, "--secgroup '%s' is not a security group's name or id",
                                    vals[i]);
        json_array_append_new(arr, json_string(vals[i]));
    }
    return 0;
}

/*
 * The repeatable --network NET[:ip=IP] of vm create, in order, as the request's "networks"
 * array: [{"network": NET, "ip"?: IP}]. Nothing is added when the option is absent (the
 * server then gives the VM its project's default network).
 */
static int
vm_networks_from_args(const Args *a, json_t *body)
{
    const char *vals[VM_NICS_MAX + 1];
    size_t n = args_get_all(a, "network", vals, ELEMENTSOF(vals));
    if (n == 0)
        return 0;
    if (n > VM_NICS_MAX)
        return args_usage_error(a, "at most %d --network options (one per NIC)", VM_NICS_MAX);
    json_t *arr = json_array();
    if (!arr || json_object_set_new(body, "networks", arr) < 0)
        return CLI_EXIT_API;
    for (size_t i = 0; i < n; i++) {
        const char *colon = strchr(vals[i], ':');
        size_t len = colon ? (size_t)(colon - vals[i]) : strlen(vals[i]);
        _cleanup_free_ char *net = strndup(vals[i], len);
        if (!net)
            return CLI_EXIT_API;
        if (!nb_name_is_valid(net) && !nb_uuid_is_valid(net))
            return args_usage_error(a, "--network '%s': '%s' is not a network's name or id",
                                    vals[i], net);
        json_t *nic = json_pack("{s:s}", "network", net);
        if (!nic || json_array_append_new(arr, nic) < 0)
            return CLI_EXIT_API;
        if (!colon)
            continue;
        const char *ip = colon + 1;
        if (!str_startswith(ip, "ip=") || !cli_ipv4_is_valid(ip + 3))
            return args_usage_error(a, "--network '%s': after the name, only ':ip=A.B.C.D'",
                                    vals[i]);
        json_object_set_new(nic, "ip", json_string(ip + 3));
    }
    return 0;
}

static int
vm_create(Cli *cli, const Args *a)
{
    const char *name = a->positional[0];
    const char *image = args_get(a, "image"), *flavor = args_get(a, "flavor");
    const char *hostname = args_get(a, "hostname"), *user_data = args_get(a, "user-data");
    const char *group = args_get(a, "group"), *host = args_get(a, "host");
    const char *pool = args_get(a, "pool");
    uint64_t wait_s;
    int r = cli_wait_timeout(a, &wait_s);
    if (r != 0)
        return r;
    if (!nb_name_is_valid(name))
        return args_usage_error(a,
                                "invalid name '%s': use [A-Za-z0-9][A-Za-z0-9._-]{0,62}, "
                                "not a UUID",
                                name);
    if (!image || !flavor || !*image || !*flavor)
        return args_usage_error(a, "--image and --flavor are required");
    if (hostname && !nb_hostname_is_valid(hostname))
        return args_usage_error(a,
                                "invalid hostname '%s': use letters, digits and '-', at most "
                                "63, not starting or ending with '-'",
                                hostname);
    if ((group && !*group) || (host && !*host))
        return args_usage_error(a, "--group and --host must not be empty");
    if (pool && !nb_name_is_valid(pool) && !nb_uuid_is_valid(pool))
        return args_usage_error(a, "--pool '%s' is not a storage pool's name or id", pool);

    json_auto_t *body =
        json_pack("{s:s, s:s, s:s}", "name", name, "image", image, "flavor", flavor);
    if (!body)
        return CLI_EXIT_API;
    if (hostname)
        json_object_set_new(body, "hostname", json_string(hostname));
    if (group)
        json_object_set_new(body, "group", json_string(group));
    if (host)
        json_object_set_new(body, "host", json_string(host));
    if (pool)
        json_object_set_new(body, "pool", json_string(pool));
    if (args_has(a, "label")) {
        json_t *labels = json_object();
        if (!labels || json_object_set_new(body, "labels", labels) < 0)
            return CLI_EXIT_API;
        r = cli_labels_from_args(a, labels);
        if (r != 0)
            return r;
    }
    r = vm_networks_from_args(a, body);
    if (r == 0)
        r = vm_secgroups_from_args(a, body);
    if (r != 0)
        return r;
    if (user_data) {
        json_t *ud = NULL;
        r = vm_read_user_data(a, user_data, &ud);
        if (r != 0)
            return r;
        json_object_set_new(body, "user_data", ud);
    }
    json_auto_t *resp = NULL;
    r = api_call(cli, "POST", "/v1/vms", body, &resp);
    if (r != 0)
        return r;
    return vm_finish(cli, a, resp, wait_s, false, NULL);
}

static int
vm_list(Cli *cli, const Args *a)
{
    unsigned limit;
    int r = resource_page_limit(a, &limit);
    if (r != 0)
        return r;
    return resource_list_pages(cli, &vm_resource, "", limit, args_has(a, "wide"));
}

static int
vm_show(Cli *cli, const Args *a)
{
    json_auto_t *vm = NULL;
    int r = resource_get(cli, &vm_resource, a->positional[0], &vm);
    if (r != 0)
        return r;
    vm_print(cli, vm);
    return CLI_EXIT_OK;
}

static int
vm_console_log(Cli *cli, const Args *a)
{
    uint64_t bytes = 0;
    int r = args_get_u64(a, "bytes", 1, VM_CONSOLE_BYTES_MAX, &bytes);
    if (r != 0)
        return r;
    _cleanup_free_ char *query = bytes ? str_printf("?bytes=%" PRIu64, bytes) : strdup("");
    _cleanup_free_ char *path = NULL;
    if (!query)
        return CLI_EXIT_API;
    r = api_path(cli, "vms", a->positional[0], "/console-log", &path);
    if (r != 0)
        return r;
    _cleanup_free_ char *full = str_printf("%s%s", path, query);
    if (!full)
        return CLI_EXIT_API;
    ClientResponse resp = {0};
    r = api_get_raw(cli, full, &resp);
    if (r != 0)
        return r;
    /* The guest's serial output, byte for byte, also with --json (the API has no JSON here). */
    size_t len = resp.body_len;
    size_t n = fwrite(resp.body, 1, len, stdout);
    client_response_clear(&resp);
    if (fflush(stdout) != 0 || n != len) {
        fprintf(stderr, "error: cannot write the console log: %s\n", strerror(errno));
        return CLI_EXIT_API;
    }
    return CLI_EXIT_OK;
}

static int
vm_action(Cli *cli, const Args *a)
{
    const char *action = a->cmd->data;
    uint64_t wait_s, timeout = 0;
    int r = cli_wait_timeout(a, &wait_s);
    if (r != 0)
        return r;
    json_auto_t *body = NULL;
    if (streq(action, "stop") && (args_has(a, "force") || args_has(a, "timeout"))) {
        r = args_get_u64(a, "timeout", 0, VM_STOP_TIMEOUT_MAX, &timeout);
        if (r != 0)
            return r;
        body = json_object();
        if (!body)
            return CLI_EXIT_API;
        if (args_has(a, "force"))
            json_object_set_new(body, "force", json_true());
        if (args_has(a, "timeout"))
            json_object_set_new(body, "timeout", json_integer((json_int_t)timeout));
    }
    _cleanup_free_ char *suffix = str_printf("/%s", action);
    _cleanup_free_ char *path = NULL;
    if (!suffix)
        return CLI_EXIT_API;
    r = api_path(cli, "vms", a->positional[0], suffix, &path);
    if (r != 0)
        return r;
    json_auto_t *resp = NULL;
    r = api_call(cli, "POST", path, body, &resp);
    if (r != 0)
        return r;
    return vm_finish(cli, a, resp, wait_s, false, NULL);
}

static int
vm_migrate(Cli *cli, const Args *a)
{
    const char *host = args_get(a, "host");
    uint64_t wait_s;
    int r = cli_wait_timeout(a, &wait_s);
    if (r != 0)
        return r;
    if (host && !*host)
        return args_usage_error(a, "--host must not be empty");
    json_auto_t *body = NULL;
    if (host || args_has(a, "offline")) {
        body = json_object();
        if (!body)
            return CLI_EXIT_API;
        if (host)
            json_object_set_new(body, "host", json_string(host));
        if (args_has(a, "offline"))
            json_object_set_new(body, "offline", json_true());
    }
    _cleanup_free_ char *path = NULL;
    r = api_path(cli, "vms", a->positional[0], "/migrate", &path);
    if (r != 0)
        return r;
    json_auto_t *resp = NULL;
    r = api_call(cli, "POST", path, body, &resp);
    if (r != 0)
        return r;
    return vm_finish(cli, a, resp, wait_s, false, "migrating");
}

static int
vm_clone(Cli *cli, const Args *a)
{
    const char *host = args_get(a, "host");
    uint64_t wait_s;
    int r = cli_wait_timeout(a, &wait_s);
    if (r != 0)
        return r;
    if (!nb_name_is_valid(a->positional[1]))
        return args_usage_error(a, "invalid name '%s'", a->positional[1]);
    json_auto_t *body = json_pack("{s:s}", "name", a->positional[1]);
    if (!body)
        return CLI_EXIT_API;
    if (args_has(a, "linked"))
        json_object_set_new(body, "linked", json_true());
    if (host)
        json_object_set_new(body, "host", json_string(host));
    _cleanup_free_ char *path = NULL;
    r = api_path(cli, "vms", a->positional[0], "/clone", &path);
    if (r != 0)
        return r;
    json_auto_t *resp = NULL;
    r = api_call(cli, "POST", path, body, &resp);
    if (r != 0)
        return r;
    return vm_finish(cli, a, resp, wait_s, false, NULL);
}

static int
vm_delete(Cli *cli, const Args *a)
{
    uint64_t wait_s;
    int r = cli_wait_timeout(a, &wait_s);
    if (r != 0)
        return r;
    _cleanup_free_ char *path = NULL;
    r = api_path(cli, "vms", a->positional[0], NULL, &path);
    if (r != 0)
        return r;
    json_auto_t *resp = NULL;
    r = api_call(cli, "DELETE", path, NULL, &resp);
    if (r != 0)
        return r;
    return vm_finish(cli, a, resp, wait_s, true, NULL);
}

static const OutputField vm_port_fields[] = {
    {"id", "id", NULL, false},
    {"network_id", "network_id", NULL, false},
    {"vm_id", "vm_id", NULL, false},
    {"slot", "slot", NULL, false},
    {"mac", "mac", NULL, false},
    {"ip", "ip", NULL, false},
    {"created_at", "created_at", NULL, false},
};

/*
 * What follows a 202 {port?, task} of nic add or remove: without --wait, the new port (add)
 * and the task; with --wait, the VM with its NICs once the task ended, and the task's error
 * when it failed.
 */
static int
vm_nic_finish(Cli *cli, const Args *a, json_t *resp, uint64_t wait_s)
{
    json_t *task = json_object_get(resp, "task");
    json_t *port = json_object_get(resp, "port");
    const char *task_id = api_str(task, "id");
    if (!task_id) {
        fprintf(stderr, "error: INVALID_RESPONSE: expected a task\n");
        return CLI_EXIT_API;
    }
    if (!args_has(a, "wait")) {
        if (cli->json) {
            output_json(resp);
            return CLI_EXIT_OK;
        }
        if (json_is_object(port)) {
            output_show(port, vm_port_fields, ELEMENTSOF(vm_port_fields));
            printf("\n");
        }
        printf("task %s: %s %s\n", task_id, api_str(task, "kind") ?: "?",
               api_str(task, "state") ?: "?");
        return CLI_EXIT_OK;
    }
    json_auto_t *final = NULL;
    int r = task_wait(cli, task_id, wait_s, &final);
    if (r != 0)
        return r;
    json_auto_t *now = NULL;
    r = resource_get(cli, &vm_resource, a->positional[0], &now);
    if (r == 0)
        vm_print(cli, now);
    if (streq(api_str(final, "state"), "failed")) {
        return cli_task_failed(final);
    }
    return r;
}

/* vm secgroup add|remove VM GROUP: every NIC of the VM joins or leaves the group; prints the
 * NICs with their groups. */
static int
vm_secgroup_change(Cli *cli, const Args *a)
{
    bool add = streq(a->cmd->data, "add");
    const char *group = a->positional[1];
    if (!nb_name_is_valid(group) && !nb_uuid_is_valid(group))
        return args_usage_error(a, "'%s' is not a security group's name or id", group);
    _cleanup_free_ char *suffix = add ? strdup("/secgroups") : str_printf("/secgroups/%s", group);
    _cleanup_free_ char *path = NULL;
    if (!suffix)
        return CLI_EXIT_API;
    int r = api_path(cli, "vms", a->positional[0], suffix, &path);
    if (r != 0)
        return r;
    json_auto_t *body = add ? json_pack("{s:s}", "secgroup", group) : NULL;
    json_auto_t *resp = NULL;
    r = api_call(cli, add ? "POST" : "DELETE", path, body, &resp);
    if (r != 0)
        return r;
    if (cli->json) {
        output_json(resp);
        return CLI_EXIT_OK;
    }
    output_table(json_object_get(resp, "nics"), vm_nic_columns, ELEMENTSOF(vm_nic_columns), false);
    return CLI_EXIT_OK;
}

static int
vm_secgroup_group(Cli *cli, const Args *a)
{
    return args_usage_error(a, "use 'nimbus vm secgroup add' or 'nimbus vm secgroup remove'");
}

static int
vm_nic_add(Cli *cli, const Args *a)
{
    const char *network = args_get(a, "network"), *ip = args_get(a, "ip");
    uint64_t wait_s;
    int r = cli_wait_timeout(a, &wait_s);
    if (r != 0)
        return r;
    if (!network)
        return args_usage_error(a, "--network is required");
    if (!nb_name_is_valid(network) && !nb_uuid_is_valid(network))
        return args_usage_error(a, "--network '%s' is not a network's name or id", network);
    if (ip && !cli_ipv4_is_valid(ip))
        return args_usage_error(a, "--ip '%s' is not an IPv4 address", ip);
    json_auto_t *body = json_pack("{s:s}", "network", network);
    if (!body)
        return CLI_EXIT_API;
    if (ip)
        json_object_set_new(body, "ip", json_string(ip));
    r = vm_secgroups_from_args(a, body);
    if (r != 0)
        return r;
    _cleanup_free_ char *path = NULL;
    r = api_path(cli, "vms", a->positional[0], "/nics", &path);
    if (r != 0)
        return r;
    json_auto_t *resp = NULL;
    r = api_call(cli, "POST", path, body, &resp);
    if (r != 0)
        return r;
    return vm_nic_finish(cli, a, resp, wait_s);
}

/* xx:xx:xx:xx:xx:xx in either case, into out in lower case (the API's form). */
static bool
vm_mac_normalize(const char *mac, char out[NB_MAC_STRLEN])
{
    if (strlen(mac) != NB_MAC_STRLEN - 1)
        return false;
    for (size_t i = 0; i < NB_MAC_STRLEN - 1; i++) {
        char c = mac[i];
        if (i % 3 == 2) {
            if (c != ':')
                return false;
        } else if (c >= 'A' && c <= 'F') {
            c = (char)(c - 'A' + 'a');
        } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
            return false;
        }
        out[i] = c;
    }
    out[NB_MAC_STRLEN - 1] = '\0';
    return true;
}

static int
vm_nic_remove(Cli *cli, const Args *a)
{
    char mac[NB_MAC_STRLEN];
    uint64_t wait_s;
    int r = cli_wait_timeout(a, &wait_s);
    if (r != 0)
        return r;
    if (!vm_mac_normalize(a->positional[1], mac))
        return args_usage_error(a, "'%s' is not a MAC address (xx:xx:xx:xx:xx:xx)",
                                a->positional[1]);
    _cleanup_free_ char *suffix = str_printf("/nics/%s", mac);
    _cleanup_free_ char *path = NULL;
    if (!suffix)
        return CLI_EXIT_API;
    r = api_path(cli, "vms", a->positional[0], suffix, &path);
    if (r != 0)
        return r;
    json_auto_t *resp = NULL;
    r = api_call(cli, "DELETE", path, NULL, &resp);
    if (r != 0)
        return r;
    return vm_nic_finish(cli, a, resp, wait_s);
}

/* Only listed in the group's help: cmd_vm hands "vm nic ..." to the nic commands. */
static int
vm_nic_group(Cli *cli, const Args *a)
{
    (void)cli;
    return args_usage_error(a, "use 'nimbus vm nic add' or 'nimbus vm nic remove'");
}

/* Only listed in the group's help: cmd_vm hands "vm label ..." to vm_label. */
static int
vm_label_group(Cli *cli, const Args *a)
{
    return args_usage_error(a, "use 'nimbus vm label set NAME [KEY=VALUE]...'");
}

static const ArgSpec create_specs[] = {
    {"image", true}, {"flavor", true},       {"hostname", true},       {"user-data", true},
    {"group", true}, {"host", true},         {"label", true, true},    {"network", true, true},
    {"wait", false}, {"timeout-wait", true}, {"secgroup", true, true}, {"pool", true},
};
static const ArgSpec list_specs[] = {{"wide", false}, {"limit", true}};
static const ArgSpec console_specs[] = {{"bytes", true}};
static const ArgSpec wait_specs[] = {{"wait", false}, {"timeout-wait", true}};
static const ArgSpec stop_specs[] = {
    {"wait", false}, {"timeout-wait", true}, {"force", false}, {"timeout", true}};
static const ArgSpec migrate_specs[] = {
    {"host", true}, {"offline", false}, {"wait", false}, {"timeout-wait", true}};
static const ArgSpec clone_specs[] = {
    {"linked", false}, {"host", true}, {"wait", false}, {"timeout-wait", true}};
static const ArgSpec nic_add_specs[] = {{"network", true},
                                        {"ip", true},
                                        {"wait", false},
                                        {"timeout-wait", true},
                                        {"secgroup", true, true}};

#define WAIT_HELP                                                                                  \
    "  --wait                 follow the task until it ends; exit 1 if it failed\n"                \
    "  --timeout-wait SECONDS give up waiting after this long (default 600)\n"

static const Command vm_commands[] = {
    {"create",
     "NAME --image IMAGE --flavor FLAVOR [--hostname HOST] [--user-data FILE] [--group GROUP] "
     "[--host HOST] [--label KEY=VALUE]... [--network NET[:ip=IP]]... [--secgroup G]... "
     "[--pool POOL] [--wait]",
     "Create and start a VM.",
     "  --image IMAGE          image name or id\n"
     "  --flavor FLAVOR        flavor name or id\n"
     "  --hostname HOST        guest hostname (default: derived from NAME)\n"
     "  --user-data FILE       cloud-init user-data, at most 64 KiB of text\n"
     "  --group GROUP          server group (name or id): placed by the group's policy\n"
     "  --host HOST            run on this host (admin)\n"
     "  --label KEY=VALUE      only on a host that has this label; repeatable\n"
     "  --network NET[:ip=IP]  a NIC on network NET (name or id), with this fixed address\n"
     "                         (default: the next free one); repeatable, one NIC each, in\n"
     "                         order (eth0, eth1, ...), at most 8. Without it: one NIC on\n"
     "                         the project's default network\n"
     "  --secgroup G           a security group of every NIC (name or id); repeatable.\n"
     "                         Without it: the project's 'default' group\n"
     "  --pool POOL            the root disk's storage pool (name or id): a dir pool makes\n"
     "                         it a qcow2 overlay there (only on a host that has the pool),\n"
     "                         an rbd pool an RBD clone of the image there (default: the\n"
     "                         host's default pool, a qcow2 overlay)\n" WAIT_HELP,
     vm_create, create_specs, ELEMENTSOF(create_specs), 1, 1, NULL},
    {"list", "[--wide] [--limit N]", "List VMs, by name.",
     "  --wide                 also show desired state, task and id\n" RESOURCE_LIMIT_HELP, vm_list,
     list_specs, ELEMENTSOF(list_specs), 0, 0, NULL},
    {"show", "NAME|ID", "Show a VM.", NULL, vm_show, NULL, 0, 1, 1, NULL},
    {"console-log", "NAME|ID [--bytes N]", "Print the end of the VM's serial console output.",
     "  --bytes N              how many bytes from the end (server default 65536)\n",
     vm_console_log, console_specs, ELEMENTSOF(console_specs), 1, 1, NULL},
    {"start", "NAME|ID [--wait]", "Start a stopped VM.", WAIT_HELP, vm_action, wait_specs,
     ELEMENTSOF(wait_specs), 1, 1, "start"},
    {"stop", "NAME|ID [--force] [--timeout SECONDS] [--wait]", "Stop a VM.",
     "  --force                power off at once, without asking the guest\n"
     "  --timeout SECONDS      how long the guest gets to shut down before power-off\n" WAIT_HELP,
     vm_action, stop_specs, ELEMENTSOF(stop_specs), 1, 1, "stop"},
    {"reboot", "NAME|ID [--wait]", "Reboot a VM.", WAIT_HELP, vm_action, wait_specs,
     ELEMENTSOF(wait_specs), 1, 1, "reboot"},
    {"pause", "NAME|ID [--wait]", "Pause a running VM.", WAIT_HELP, vm_action, wait_specs,
     ELEMENTSOF(wait_specs), 1, 1, "pause"},
    {"resume", "NAME|ID [--wait]", "Resume a paused VM.", WAIT_HELP, vm_action, wait_specs,
     ELEMENTSOF(wait_specs), 1, 1, "resume"},
    {"delete", "NAME|ID [--wait]", "Delete a VM and its disks.", WAIT_HELP, vm_delete, wait_specs,
     ELEMENTSOF(wait_specs), 1, 1, NULL},
    {"migrate", "NAME|ID [--host HOST] [--offline] [--wait]", "Move a VM to another host (admin).",
     "  --host HOST            the destination (default: the scheduler picks one)\n"
     "  --offline              an offline (cold) migration instead of a live one\n" WAIT_HELP
     "                         With --wait, the progress is shown on stderr; Ctrl-C stops\n"
     "                         waiting, not the migration: see 'nimbus task cancel'.\n",
     vm_migrate, migrate_specs, ELEMENTSOF(migrate_specs), 1, 1, NULL},
    {"clone", "SOURCE NEW [--linked] [--host HOST] [--wait]",
     "A new VM from a VM's root disk, running or stopped.",
     "  --linked               the clone's disk holds only the source's own changes, on the\n"
     "                         same image (default: a full, independent copy)\n"
     "  --host HOST            the source's host (clones are made there)\n"
     "  The clone gets the source's flavor, networks (new MACs and addresses), security\n"
     "  groups, labels and user-data, and its own id and hostname (NEW): cloud-init runs\n"
     "  again. Attached volumes are not cloned.\n" WAIT_HELP,
     vm_clone, clone_specs, ELEMENTSOF(clone_specs), 2, 2, NULL},
    {"nic", "add|remove ...", "Add or remove a NIC of a VM (see 'nimbus vm nic --help').", NULL,
     vm_nic_group, NULL, 0, 0, 0, NULL},
    {"secgroup", "add|remove ...",
     "Put a VM in a security group or take it out (see 'nimbus vm secgroup --help').", NULL,
     vm_secgroup_group, NULL, 0, 0, 0, NULL},
    {"label", "set NAME|ID [KEY=VALUE]...", "Replace a VM's labels (see 'nimbus vm label --help').",
     NULL, vm_label_group, NULL, 0, 0, 0, NULL},
};

static const Command vm_secgroup_commands[] = {
    {"add", "NAME|ID GROUP", "Put every NIC of the VM in the security group (applied live).", NULL,
     vm_secgroup_change, NULL, 0, 2, 2, "add"},
    {"remove", "NAME|ID GROUP", "Take every NIC of the VM out of the security group.", NULL,
     vm_secgroup_change, NULL, 0, 2, 2, "remove"},
};

static const Command vm_nic_commands[] = {
    {"add", "NAME|ID --network NET [--ip IP] [--secgroup G]... [--wait]",
     "Add a NIC on a network to a VM (hot-plugged when it runs).",
     "  --network NET          the network, name or id\n"
     "  --ip IP                its fixed address (default: the next free one)\n"
     "  --secgroup G           a security group of the NIC; repeatable (default: "
     "'default')\n" WAIT_HELP,
     vm_nic_add, nic_add_specs, ELEMENTSOF(nic_add_specs), 1, 1, NULL},
    {"remove", "NAME|ID MAC [--wait]", "Remove the VM's NIC with this MAC (see 'vm show').",
     WAIT_HELP, vm_nic_remove, wait_specs, ELEMENTSOF(wait_specs), 2, 2, NULL},
};

static const char vm_label_usage[] =
    "usage: nimbus vm label set NAME|ID [KEY=VALUE]...\n"
    "\n"
    "Replace the labels the VM asks its host to carry (none given: clear them). They steer its\n"
    "next placement (a migration); the host it runs on is not checked again.\n";

/* vm label set NAME K=V...: any number of labels, so parsed here rather than by args.c. */
static int
vm_label(Cli *cli, int argc, char **argv)
{
    if (argc >= 1 && (streq(argv[0], "-h") || streq(argv[0], "--help"))) {
        fputs(vm_label_usage, stdout);
        return CLI_EXIT_OK;
    }
    if (argc < 2 || !streq(argv[0], "set")) {
        fprintf(stderr, "error: expected 'set NAME [KEY=VALUE]...'\n%s", vm_label_usage);
        return CLI_EXIT_USAGE;
    }
    json_auto_t *labels = json_object();
    json_auto_t *body = labels ? json_pack("{s:O}", "labels", labels) : NULL;
    if (!body)
        return CLI_EXIT_API;
    json_t *set = json_object_get(body, "labels");
    for (int i = 2; i < argc; i++) {
        const char *eq = strchr(argv[i], '=');
        _cleanup_free_ char *key =
            eq && eq != argv[i] ? strndup(argv[i], (size_t)(eq - argv[i])) : NULL;
        if (!key || json_object_get(set, key)) {
            fprintf(stderr, "error: '%s': give each label once, as KEY=VALUE\n%s", argv[i],
                    vm_label_usage);
            return CLI_EXIT_USAGE;
        }
        json_object_set_new(set, key, json_string(eq + 1));
    }
    _cleanup_free_ char *path = NULL;
    json_auto_t *vm = NULL;
    int r = api_path(cli, "vms", argv[1], NULL, &path);
    if (r == 0)
        r = api_call(cli, "PATCH", path, body, &vm);
    if (r != 0)
        return r;
    if (cli->json)
        output_json(vm);
    else
        output_show(vm, vm_fields, ELEMENTSOF(vm_fields));
    return CLI_EXIT_OK;
}

int
cmd_vm(Cli *cli, int argc, char **argv)
{
    if (argc >= 1 && streq(argv[0], "label"))
        return vm_label(cli, argc - 1, argv + 1);
    if (argc >= 1 && streq(argv[0], "secgroup"))
        return args_dispatch(cli, "vm secgroup", "Change the security groups of a VM's NICs.",
                             vm_secgroup_commands, ELEMENTSOF(vm_secgroup_commands), argc - 1,
                             argv + 1);
    if (argc >= 1 && streq(argv[0], "nic"))
        return args_dispatch(cli, "vm nic", "Add or remove a VM's NICs.", vm_nic_commands,
                             ELEMENTSOF(vm_nic_commands), argc - 1, argv + 1);
    return args_dispatch(cli, "vm", "Manage virtual machines.", vm_commands,
                         ELEMENTSOF(vm_commands), argc, argv);
}
