/* nimbus pool create|list|show|delete: storage pools (admins create and delete them; everyone
 * reads them to choose where volumes go). A key or password is read from a file, never taken
 * from the command line, where other users of the machine see it in the process list. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "../model/pool.h"
#include "../model/validate.h"
#include "../util/cleanup.h"
#include "../util/strutil.h"
#include "api.h"
#include "args.h"
#include "resource.h"

/* "active/total" of the pool's hosts. */
static char *
pool_fmt_hosts(json_t *obj, const char *key)
{
    json_t *hosts = json_object_get(obj, "hosts");
    size_t i, active = 0;
    json_t *h;
    json_array_foreach (hosts, i, h) {
        const char *st = json_string_value(json_object_get(h, "state"));
        active += st && streq(st, "active");
    }
    return str_printf("%zu/%zu", active, json_array_size(hosts));
}

/* What the pool holds: a shared pool's backend as one host sees it, a local pool's hosts
 * added up. */
static char *
pool_fmt_capacity(json_t *obj, const char *key)
{
    json_t *hosts = json_object_get(obj, "hosts");
    bool shared = json_is_true(json_object_get(obj, "shared"));
    uint64_t cap = 0, used = 0;
    bool any = false;
    size_t i;
    json_t *h;
    json_array_foreach (hosts, i, h) {
        json_t *c = json_object_get(h, "capacity"), *a = json_object_get(h, "allocation");
        if (!json_is_integer(c) || json_integer_value(c) < 0 || (shared && any))
            continue;
        any = true;
        cap += (uint64_t)json_integer_value(c);
        if (json_is_integer(a) && json_integer_value(a) > 0)
            used += (uint64_t)json_integer_value(a);
    }
    if (!any)
        return strdup("-");
    _cleanup_free_ char *c = output_human_bytes(cap), *u = output_human_bytes(used);
    return c && u ? str_printf("%s (%s used)", c, u) : NULL;
}

/* One line per host: "kvm1 active 10.0 GiB" or "kvm2 error: <libvirt's message>". */
static char *
pool_fmt_host_states(json_t *obj, const char *key)
{
    json_t *hosts = json_object_get(obj, key);
    if (!json_is_array(hosts) || json_array_size(hosts) == 0)
        return strdup("-");
    _cleanup_free_ char *out = strdup("");
    size_t i;
    json_t *h;
    json_array_foreach (hosts, i, h) {
        const char *name = json_string_value(json_object_get(h, "host"));
        const char *st = json_string_value(json_object_get(h, "state"));
        const char *e = json_string_value(json_object_get(h, "error"));
        json_t *c = json_object_get(h, "capacity");
        _cleanup_free_ char *cap = json_is_integer(c) && json_integer_value(c) >= 0
                                       ? output_human_bytes((uint64_t)json_integer_value(c))
                                       : NULL;
        char *next = out ? str_printf("%s%s%s %s%s%s%s%s", out, i ? "; " : "", name ? name : "?",
                                      st ? st : "?", e && *e ? ": " : "", e && *e ? e : "",
                                      cap ? ", " : "", cap ? cap : "")
                         : NULL;
        free(out);
        out = next;
    }
    return out ? output_sanitize(out) : NULL;
}

static const OutputField pool_columns[] = {
    {"NAME", "name", NULL, false},
    {"TYPE", "type", NULL, false},
    {"SHARED", "shared", NULL, false},
    {"HOSTS", "hosts", pool_fmt_hosts, false},
    {"CAPACITY", "hosts", pool_fmt_capacity, false},
    {"HOST", "host", NULL, true},
    {"DEFAULT", "default", NULL, true},
    {"CREATED", "created_at", NULL, true},
    {"ID", "id", NULL, true},
};

static const OutputField pool_fields[] = {
    {"id", "id", NULL, false},
    {"name", "name", NULL, false},
    {"type", "type", NULL, false},
    {"shared", "shared", NULL, false},
    {"default", "default", NULL, false},
    {"capacity", "hosts", pool_fmt_capacity, false},
    {"hosts", "hosts", pool_fmt_host_states, false},
    {"monitors", "monitors", cli_fmt_strings, false},
    {"created_at", "created_at", NULL, false},
    /* host, path, rbd_pool, user, portal, target, initiator, server, export, vg, secret_set:
     * after these when the pool has them */
};

static const Resource pool_resource = {
    .collection = "pools",
    .columns = pool_columns,
    .n_columns = ELEMENTSOF(pool_columns),
    .fields = pool_fields,
    .n_fields = ELEMENTSOF(pool_fields),
};

/* The key or password in a file: its first line, without the line end or surrounding blanks. */
static int
pool_read_key(const Args *a, const char *path, json_t *body)
{
    _cleanup_free_ char *data = NULL;
    size_t len = 0;
    int r = read_file_full(path, POOL_SECRET_MAX + 2, &data, &len);
    if (r == -EFBIG || r == -E2BIG || (r == 0 && len > POOL_SECRET_MAX + 1))
        return args_usage_error(a, "--key-file %s is larger than a key (%d bytes)", path,
                                POOL_SECRET_MAX);
    if (r < 0) {
        fprintf(stderr, "error: cannot read --key-file %s: %s\n", path, strerror(-r));
        return CLI_EXIT_USAGE;
    }
    char *s = data;
    while (*s && isspace((unsigned char)*s))
        s++;
    size_t n = strcspn(s, "\r\n");
    while (n > 0 && isspace((unsigned char)s[n - 1]))
        n--;
    s[n] = '\0';
    int rc = CLI_EXIT_OK;
    if (n == 0)
        rc = args_usage_error(a, "--key-file %s is empty", path);
    else if (json_object_set_new(body, "key", json_string(s)) < 0)
        rc = args_usage_error(a, "--key-file %s is not text", path);
    explicit_bzero(data, len);
    return rc;
}

static int
pool_add_monitors(const Args *a, const char *list, json_t *body)
{
    json_t *arr = json_array();
    if (!arr || json_object_set_new(body, "monitors", arr) < 0)
        return CLI_EXIT_API;
    for (const char *at = list;;) {
        size_t len = strcspn(at, ",");
        if (len == 0 || len > POOL_HOSTPORT_MAX)
            return args_usage_error(a, "--monitors takes host[:port] addresses separated by ','");
        json_array_append_new(arr, json_stringn(at, len));
        if (!at[len])
            break;
        at += len + 1;
    }
    if (json_array_size(arr) > POOL_MONITORS_MAX)
        return args_usage_error(a, "at most %d --monitors", POOL_MONITORS_MAX);
    return 0;
}

/* The options that map to a request member of the same meaning, as the server names them. */
static const struct {
    const char *opt, *member;
} pool_string_opts[] = {
    {"host", "host"},     {"path", "path"},     {"rbd-pool", "rbd_pool"},   {"user", "user"},
    {"portal", "portal"}, {"target", "target"}, {"initiator", "initiator"}, {"server", "server"},
    {"export", "export"}, {"vg", "vg"},
};

static int
pool_create(Cli *cli, const Args *a)
{
    const char *name = a->positional[0], *type = args_get(a, "type");
    if (!nb_name_is_valid(name))
        return args_usage_error(a,
                                "invalid name '%s': use [A-Za-z0-9][A-Za-z0-9._-]{0,62}, "
                                "not a UUID",
                                name);
    if (!type)
        return args_usage_error(a, "--type is required (dir, logical, rbd, iscsi or netfs)");
    if (pool_type_from_string(type) == _POOL_TYPE_INVALID)
        return args_usage_error(a, "--type must be dir, logical, rbd, iscsi or netfs");
    json_auto_t *body = json_pack("{s:s, s:s}", "name", name, "type", type);
    if (!body)
        return CLI_EXIT_API;
    /* The server says which options a type takes (POOL_* codes); the CLI only shapes them. */
    for (size_t i = 0; i < ELEMENTSOF(pool_string_opts); i++) {
        const char *v = args_get(a, pool_string_opts[i].opt);
        if (v && json_object_set_new(body, pool_string_opts[i].member, json_string(v)) < 0)
            return args_usage_error(a, "--%s is not text", pool_string_opts[i].opt);
    }
    int r;
    if (args_has(a, "monitors") && (r = pool_add_monitors(a, args_get(a, "monitors"), body)) != 0)
        return r;
    if (args_has(a, "key-file") && (r = pool_read_key(a, args_get(a, "key-file"), body)) != 0)
        return r;
    json_auto_t *pool = NULL;
    r = api_call(cli, "POST", "/v1/pools", body, &pool);
    json_t *key = json_object_get(body, "key");
    if (key)
        explicit_bzero((char *)json_string_value(key), json_string_length(key));
    if (r != 0)
        return r;
    if (!json_is_object(pool)) {
        fprintf(stderr, "error: INVALID_RESPONSE: expected a pool\n");
        return CLI_EXIT_API;
    }
    resource_print(cli, &pool_resource, pool);
    return CLI_EXIT_OK;
}

static int
pool_list(Cli *cli, const Args *a)
{
    return resource_list(cli, &pool_resource, "", args_has(a, "wide"));
}

static int
pool_show(Cli *cli, const Args *a)
{
    return resource_show(cli, &pool_resource, a->positional[0]);
}

static int
pool_delete(Cli *cli, const Args *a)
{
    return resource_delete(cli, &pool_resource, a->positional[0]);
}

static const ArgSpec create_specs[] = {
    {"type", true},   {"host", true},     {"path", true},   {"monitors", true}, {"rbd-pool", true},
    {"user", true},   {"key-file", true}, {"portal", true}, {"target", true},   {"initiator", true},
    {"server", true}, {"export", true},   {"vg", true},
};
static const ArgSpec list_specs[] = {{"wide", false}};

static const Command pool_commands[] = {
    {"create",
     "NAME --type dir|logical|rbd|iscsi|netfs [--host H] [--path P] [--monitors A,B] "
     "[--rbd-pool P] [--user U] [--key-file F] [--portal HOST:PORT] [--target IQN] "
     "[--initiator IQN] [--server S] [--export P] [--vg VG]",
     "Create a storage pool (admin).",
     "  --type TYPE            dir: a directory on each host (local); logical: an LVM volume\n"
     "                         group (local); rbd: a Ceph RBD pool, iscsi: an iSCSI target's\n"
     "                         LUNs, netfs: an NFS export (shared by every host)\n"
     "  --host H               dir, logical: only on this host (default: each host its own)\n"
     "  --path P               dir: the directory; netfs: the mount point (under the daemon's\n"
     "                         pool-roots)\n"
     "  --monitors A,B         rbd: Ceph monitors, host[:port] each (at most 8)\n"
     "  --rbd-pool P           rbd: the Ceph pool\n"
     "  --user U               rbd: the cephx user (without 'client.'); iscsi: the CHAP user\n"
     "  --key-file F           rbd: a file with the user's key (base64, as 'ceph auth get-key'\n"
     "                         prints it); iscsi: with the CHAP password\n"
     "  --portal HOST:PORT     iscsi: the target's portal (port default 3260)\n"
     "  --target IQN           iscsi: the target\n"
     "  --initiator IQN        iscsi: the IQN the hosts log in as\n"
     "  --server S             netfs: the NFS server\n"
     "  --export P             netfs: the export's path\n"
     "  --vg VG                logical: the volume group\n",
     pool_create, create_specs, ELEMENTSOF(create_specs), 1, 1, NULL},
    {"list", "[--wide]", "List the storage pools, with how many hosts have each active.",
     "  --wide                 also show the host, default, creation time and id\n", pool_list,
     list_specs, ELEMENTSOF(list_specs), 0, 0, NULL},
    {"show", "NAME|ID", "Show a pool and its state on each host.", NULL, pool_show, NULL, 0, 1, 1,
     NULL},
    {"delete", "NAME|ID",
     "Delete a pool that holds no volumes (admin): it leaves the hosts; its data stay.", NULL,
     pool_delete, NULL, 0, 1, 1, NULL},
};

int
cmd_pool(Cli *cli, int argc, char **argv)
{
    return args_dispatch(cli, "pool", "Manage storage pools: where volumes and disks live.",
                         pool_commands, ELEMENTSOF(pool_commands), argc, argv);
}
