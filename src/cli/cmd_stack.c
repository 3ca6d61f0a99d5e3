/* nimbus apply -f FILE, nimbus delete -f FILE, nimbus export vm NAME: declarative stacks, as a
 * client of the REST API. A stack is planned in full (GETs only) before anything changes. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../model/validate.h"
#include "../util/cleanup.h"
#include "../util/strutil.h"
#include "../util/uuid.h"
#include "api.h"
#include "args.h"
#include "stack.h"

typedef enum OpKind {
    OP_SAME,   /* "= flavor small" */
    OP_CREATE, /* "+ vm web-3" */
    OP_DELETE, /* "- vm web-4" */
    OP_CHANGE, /* "~ vm web-1 labels": a VM's labels, the one thing the API can change */
} OpKind;

typedef struct Op {
    OpKind op;
    StackKind kind;
    char *name;
    const StackItem *item; /* the stack's item (create), NULL for a delete */
    unsigned n;            /* the VM instance's number (create) */
} Op;

typedef struct Plan {
    Op *ops;
    size_t n_ops;
    unsigned n_errors; /* what cannot be changed: printed as found */
    /* Ids of the referenced objects that exist now (name -> id), per kind. */
    json_t *ids[_STACK_KIND_MAX];
} Plan;

static void
plan_clear(Plan *p)
{
    for (size_t i = 0; i < p->n_ops; i++)
        free(p->ops[i].name);
    free(p->ops);
    for (size_t k = 0; k < _STACK_KIND_MAX; k++)
        json_decref(p->ids[k]);
    *p = (Plan){0};
}

static int
plan_add(Plan *p, OpKind op, StackKind kind, const char *name, const StackItem *item, unsigned n)
{
    Op *ops = realloc(p->ops, (p->n_ops + 1) * sizeof(*ops));
    if (!ops)
        return CLI_EXIT_API;
    p->ops = ops;
    char *copy = strdup(name);
    if (!copy)
        return CLI_EXIT_API;
    p->ops[p->n_ops++] = (Op){op, kind, copy, item, n};
    return 0;
}

static void plan_error(Plan *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
plan_error(Plan *p, const char *fmt, ...)
{
    va_list ap;
    fputs("error: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    p->n_errors++;
}

/* GET /v1/<collection>/<name>: CLI_EXIT_OK with *ret NULL when it does not exist (404). */
static int
stack_get(Cli *cli, const char *collection, const char *name, json_t **ret)
{
    _cleanup_free_ char *path = NULL;
    long status = 0;
    *ret = NULL;
    int r = api_path(cli, collection, name, NULL, &path);
    if (r != 0)
        return r;
    r = api_call_unless(cli, "GET", path, NULL, 404, &status, ret);
    if (r != 0 && status == 404)
        return CLI_EXIT_OK;
    if (r == 0 && !json_is_object(*ret)) {
        json_decref(*ret);
        *ret = NULL;
        fprintf(stderr, "error: INVALID_RESPONSE: expected an object\n");
        return CLI_EXIT_API;
    }
    return r;
}

/* Every VM of the caller's project (all pages). */
static int
stack_list_vms(Cli *cli, json_t **ret)
{
    json_auto_t *all = json_array();
    _cleanup_free_ char *marker = NULL;
    Client *c;
    int r = api_client(cli, &c);
    if (r != 0 || !all)
        return r ? r : CLI_EXIT_API;
    for (;;) {
        _cleanup_free_ char *query = strdup("");
        if (!query || client_query_add(c, &query, "limit", "1000") != 0 ||
            (marker && client_query_add(c, &query, "marker", marker) != 0))
            return CLI_EXIT_API;
        _cleanup_free_ char *path = str_printf("/v1/vms%s", query);
        json_auto_t *resp = NULL;
        if (!path)
            return CLI_EXIT_API;
        r = api_call(cli, "GET", path, NULL, &resp);
        if (r != 0)
            return r;
        json_t *items = json_object_get(resp, "vms");
        json_array_extend(all, items);
        const char *next = api_str(resp, "next_marker");
        if (!next || !*next || json_array_size(items) == 0)
            break;
        free(marker);
        marker = strdup(next);
        if (!marker)
            return CLI_EXIT_API;
    }
    *ret = TAKE_PTR(all);
    return 0;
}

/* The id of an existing object of kind k named name, from the plan's lookups or a GET; NULL
 * when it does not exist (yet). */
static int
plan_lookup_id(Cli *cli, Plan *p, StackKind k, const char *name, const char **ret)
{
    *ret = NULL;
    if (!p->ids[k] && !(p->ids[k] = json_object()))
        return CLI_EXIT_API;
    json_t *known = json_object_get(p->ids[k], name);
    if (!known) {
        json_auto_t *obj = NULL;
        int r = stack_get(cli, stack_kind_collection(k), name, &obj);
        if (r != 0)
            return r;
        const char *id = api_str(obj, "id");
        json_object_set_new(p->ids[k], name, id ? json_string(id) : json_null());
        known = json_object_get(p->ids[k], name);
    }
    *ret = json_string_value(known);
    return 0;
}

/* Keys of a spec that the API's object does not carry (or not under that name). */
static bool
stack_key_is_local(StackKind k, const char *key)
{
    return streq(key, "name") || (k == STACK_IMAGE && streq(key, "file")) ||
           (k == STACK_SECGROUP && streq(key, "rules")) || streq(key, "dns");
}

/* Plans one item that is not a VM: "=" when it exists with the same values, "+" when absent. */
static int
plan_item(Cli *cli, Plan *p, const StackItem *it)
{
    const char *name = json_string_value(json_object_get(it->spec, "name"));
    json_auto_t *now = NULL;
    int r = stack_get(cli, stack_kind_collection(it->kind), name, &now);
    if (r != 0)
        return r;
    if (!now) {
        if (it->kind == STACK_IMAGE && !json_object_get(it->spec, "file")) {
            plan_error(p, "image %s does not exist and the stack gives no 'file' to upload", name);
            return 0;
        }
        return plan_add(p, OP_CREATE, it->kind, name, it, 0);
    }
    const char *key;
    json_t *want;
    json_object_foreach (it->spec, key, want) {
        json_t *have = json_object_get(now, key);
        /* Only what the API shows can be compared; the rest was given at create. */
        if (stack_key_is_local(it->kind, key) || !have)
            continue;
        /* A network without a gateway is asked as "none" and shown as null. */
        if (streq(key, "gateway") && streq(json_string_value(want), "none") && json_is_null(have))
            continue;
        if (!json_equal(want, have))
            plan_error(p, "cannot change %s of %s %s (recreate it)", key, stack_kind_name(it->kind),
                       name);
    }
    return plan_add(p, OP_SAME, it->kind, name, it, 0);
}

/* What a VM refers to by name in a stack, and by id in the API. */
static const struct {
    const char *key, *vm_key;
    StackKind kind;
} vm_refs[] = {
    {"image", "image_id", STACK_IMAGE},
    {"flavor", "flavor_id", STACK_FLAVOR},
    {"group", "group_id", STACK_GROUP},
};

/*
 * Whether an existing VM that is not one of the item's instances now (beyond its count, or
 * named like them) was made from it: same image, flavor and group. Count-down and delete -f
 * take only those, so that a VM made by hand that happens to be named "web-7" stays.
 */
static int
plan_vm_made_from(Cli *cli, Plan *p, const StackItem *it, json_t *vm, bool *ret)
{
    *ret = true;
    for (size_t i = 0; i < ELEMENTSOF(vm_refs) && *ret; i++) {
        const char *want = api_str(it->spec, vm_refs[i].key);
        const char *have = api_str(vm, vm_refs[i].vm_key);
        const char *want_id = want;
        if (want && !nb_uuid_is_valid(want)) {
            int r = plan_lookup_id(cli, p, vm_refs[i].kind, want, &want_id);
            if (r != 0)
                return r;
        }
        *ret = want ? streq(want_id, have) : (!have || !*have);
    }
    return 0;
}

/* The differences of an existing VM from its item: errors, but for its labels (*ret_labels
 * true when they differ: PATCH /v1/vms/{id} changes them). */
static int
plan_vm_compare(Cli *cli, Plan *p, const StackItem *it, const char *name, json_t *vm,
                bool *ret_labels)
{
    for (size_t i = 0; i < ELEMENTSOF(vm_refs); i++) {
        const char *want = api_str(it->spec, vm_refs[i].key);
        const char *have = api_str(vm, vm_refs[i].vm_key);
        const char *want_id = NULL;
        if (want && !nb_uuid_is_valid(want)) {
            int r = plan_lookup_id(cli, p, vm_refs[i].kind, want, &want_id);
            if (r != 0)
                return r;
        } else {
            want_id = want;
        }
        /* A reference to something that does not exist yet cannot be what the VM has. */
        bool same = want ? streq(want_id, have) : (!have || !*have);
        if (!same)
            plan_error(p, "cannot change %s of vm %s (recreate it)", vm_refs[i].key, name);
    }
    /* The root disk's pool: the default pool, named or not, is no pool (pool_id null). */
    const char *want_pool = api_str(it->spec, "pool");
    const char *have_pool = api_str(vm, "pool_id");
    const char *want_pool_id = NULL;
    json_auto_t *pool = NULL;
    if (want_pool) {
        int r = stack_get(cli, "pools", want_pool, &pool);
        if (r != 0)
            return r;
        if (pool && !json_is_true(json_object_get(pool, "default")))
            want_pool_id = api_str(pool, "id");
    }
    if (want_pool && !pool)
        plan_error(p, "vm %s: pool %s does not exist", name, want_pool);
    else if (!streq(want_pool_id ?: "", have_pool ?: ""))
        plan_error(p, "cannot change pool of vm %s (recreate it)", name);
    json_t *want_labels = json_object_get(it->spec, "labels");
    json_t *have_labels = json_object_get(vm, "labels");
    size_t nw = json_object_size(want_labels), nh = json_object_size(have_labels);
    *ret_labels = (nw || nh) && !json_equal(want_labels, have_labels);
    return 0;
}

/* declared: every VM name the stack's items make, which count-down never takes for its own. */
static int
plan_vm(Cli *cli, Plan *p, const StackItem *it, json_t *all_vms, json_t *declared)
{
    const char *base = api_str(it->spec, "name");
    unsigned count = (unsigned)json_integer_value(json_object_get(it->spec, "count"));
    for (unsigned n = 1; n <= count; n++) {
        _cleanup_free_ char *name = stack_vm_instance_name(base, count, n);
        json_auto_t *vm = NULL;
        if (!name)
            return CLI_EXIT_API;
        int r = stack_get(cli, "vms", name, &vm);
        if (r != 0)
            return r;
        if (!vm) {
            r = plan_add(p, OP_CREATE, STACK_VM, name, it, n);
        } else {
            bool labels = false;
            r = plan_vm_compare(cli, p, it, name, vm, &labels);
            if (r == 0)
                r = plan_add(p, labels ? OP_CHANGE : OP_SAME, STACK_VM, name, it, n);
        }
        if (r != 0)
            return r;
    }
    /* Fewer than before: the instances beyond the count go, highest-numbered first. */
    size_t n_all = json_array_size(all_vms);
    unsigned *extra = calloc(n_all + 1, sizeof(*extra));
    size_t n_extra = 0;
    if (!extra)
        return CLI_EXIT_API;
    for (size_t i = 0; i < n_all; i++) {
        json_t *vm = json_array_get(all_vms, i);
        const char *name = api_str(vm, "name");
        unsigned k;
        bool mine = false;
        if (!name || json_object_get(declared, name))
            continue;
        bool numbered = stack_vm_instance_number(base, name, &k) && (count == 1 || k > count);
        bool single = count > 1 && streq(name, base); /* of a former count of 1 */
        if (!numbered && !single)
            continue;
        int r = plan_vm_made_from(cli, p, it, vm, &mine);
        if (r != 0) {
            free(extra);
            return r;
        }
        if (mine)
            extra[n_extra++] = numbered ? k : 0;
    }
    for (size_t i = 0; i < n_extra; i++) {
        for (size_t j = i + 1; j < n_extra; j++) {
            if (extra[j] > extra[i]) {
                unsigned t = extra[i];
                extra[i] = extra[j];
                extra[j] = t;
            }
        }
    }
    int r = 0;
    for (size_t i = 0; i < n_extra && r == 0; i++) {
        _cleanup_free_ char *name = extra[i] ? str_printf("%s-%u", base, extra[i]) : strdup(base);
        r = name ? plan_add(p, OP_DELETE, STACK_VM, name, NULL, 0) : CLI_EXIT_API;
    }
    free(extra);
    return r;
}

static int
plan_apply(Cli *cli, const Stack *s, Plan *p)
{
    json_auto_t *all_vms = NULL;
    json_auto_t *declared = json_object();
    int r = declared ? stack_list_vms(cli, &all_vms) : CLI_EXIT_API;
    for (size_t i = 0; i < s->n_items && r == 0; i++) {
        const StackItem *it = &s->items[i];
        unsigned count = (unsigned)json_integer_value(json_object_get(it->spec, "count"));
        for (unsigned n = 1; it->kind == STACK_VM && n <= count && r == 0; n++) {
            _cleanup_free_ char *name = stack_vm_instance_name(api_str(it->spec, "name"), count, n);
            if (!name || json_object_set_new(declared, name, json_true()) < 0)
                r = CLI_EXIT_API;
        }
    }
    for (size_t i = 0; i < s->n_items && r == 0; i++) {
        const StackItem *it = &s->items[i];
        r = it->kind == STACK_VM ? plan_vm(cli, p, it, all_vms, declared) : plan_item(cli, p, it);
    }
    return r;
}

/* What delete -f removes, in reverse order: the stack's VMs (every instance, also those beyond
 * the count), then the other kinds; images named without a file are the user's, kept. */
static int
plan_delete(Cli *cli, const Stack *s, Plan *p)
{
    json_auto_t *all_vms = NULL;
    int r = stack_list_vms(cli, &all_vms);
    for (size_t i = s->n_items; i-- > 0 && r == 0;) {
        const StackItem *it = &s->items[i];
        const char *base = api_str(it->spec, "name");
        if (it->kind == STACK_VM) {
            json_t *vm;
            size_t j;
            json_array_foreach (all_vms, j, vm) {
                const char *name = api_str(vm, "name");
                unsigned k;
                unsigned count = (unsigned)json_integer_value(json_object_get(it->spec, "count"));
                bool numbered = name && stack_vm_instance_number(base, name, &k);
                /* Its instances by name; the others named like them if made from it. */
                bool mine =
                    (count == 1 && streq(name, base)) || (count > 1 && numbered && k <= count);
                if (!mine && name && (streq(name, base) || numbered))
                    r = plan_vm_made_from(cli, p, it, vm, &mine);
                if (r == 0 && mine)
                    r = plan_add(p, OP_DELETE, STACK_VM, name, NULL, 0);
                if (r != 0)
                    break;
            }
            continue;
        }
        if (it->kind == STACK_IMAGE && !json_object_get(it->spec, "file"))
            continue;
        json_auto_t *now = NULL;
        r = stack_get(cli, stack_kind_collection(it->kind), base, &now);
        if (r == 0 && now)
            r = plan_add(p, OP_DELETE, it->kind, base, NULL, 0);
    }
    return r;
}

static void
plan_print(const Plan *p)
{
    static const char sign[] = {
        [OP_SAME] = '=', [OP_CREATE] = '+', [OP_DELETE] = '-', [OP_CHANGE] = '~'};
    for (size_t i = 0; i < p->n_ops; i++)
        printf("%c %s %s%s\n", sign[p->ops[i].op], stack_kind_name(p->ops[i].kind), p->ops[i].name,
               p->ops[i].op == OP_CHANGE ? " labels" : "");
}

/* A path of the stack file: relative ones start at the file's directory. */
static char *
stack_path(const Stack *s, const char *path)
{
    return path[0] == '/' ? strdup(path) : str_printf("%s%s", s->dir, path);
}

/* Follows the task of a 202 answer, when there is one, to its end. */
static int
exec_wait(Cli *cli, json_t *resp, const char *what)
{
    const char *task_id = api_str(json_object_get(resp, "task"), "id");
    if (!task_id)
        return 0;
    json_auto_t *final = NULL;
    int r = task_wait(cli, task_id, CLI_WAIT_DEFAULT_SECONDS, &final);
    if (r != 0)
        return r;
    if (streq(api_str(final, "state"), "failed")) {
        json_t *err = json_object_get(final, "error");
        fprintf(stderr, "error: %s: %s: %s\n", what, api_str(err, "code") ?: "TASK_FAILED",
                api_str(err, "message") ?: "the task failed");
        return CLI_EXIT_API;
    }
    return 0;
}

static int
exec_image(Cli *cli, const Stack *s, const StackItem *it, const char *name)
{
    _cleanup_free_ char *file = stack_path(s, api_str(it->spec, "file"));
    if (!file)
        return CLI_EXIT_API;
    _cleanup_close_ int fd = open(file, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        fprintf(stderr, "error: image %s: cannot open %s: %s\n", name, file,
                fd < 0 ? strerror(errno) : "not a regular file");
        return CLI_EXIT_API;
    }
    json_auto_t *body = json_pack("{s:s}", "name", name);
    json_auto_t *queued = NULL;
    if (!body)
        return CLI_EXIT_API;
    if (json_object_get(it->spec, "disk_format"))
        json_object_set(body, "disk_format", json_object_get(it->spec, "disk_format"));
    int r = api_call(cli, "POST", "/v1/images", body, &queued);
    if (r != 0)
        return r;
    const char *id = api_str(queued, "id");
    _cleanup_free_ char *path = NULL;
    Client *c;
    if (!id || api_path(cli, "images", id, "/file", &path) != 0 || api_client(cli, &c) != 0)
        return CLI_EXIT_API;
    ClientResponse resp = {0};
    _cleanup_free_ char *err = NULL;
    r = client_upload(c, path, fd, (uint64_t)st.st_size, NULL, NULL, &resp, &err);
    if (r < 0 || resp.status < 200 || resp.status >= 300) {
        if (r < 0)
            fprintf(stderr, "error: upload of image %s failed: %s\n", name, err ?: "?");
        else
            api_print_error(&resp);
        client_response_clear(&resp);
        _cleanup_free_ char *img = NULL;
        if (api_path(cli, "images", id, NULL, &img) == 0)
            api_call_full(cli, "DELETE", img, NULL, true, NULL, NULL);
        return CLI_EXIT_API;
    }
    client_response_clear(&resp);
    return 0;
}

static int
exec_secgroup(Cli *cli, const StackItem *it, const char *name)
{
    json_auto_t *body = json_pack("{s:s}", "name", name);
    json_auto_t *resp = NULL;
    if (!body)
        return CLI_EXIT_API;
    if (json_object_get(it->spec, "description"))
        json_object_set(body, "description", json_object_get(it->spec, "description"));
    int r = api_call(cli, "POST", "/v1/secgroups", body, &resp);
    if (r != 0)
        return r;
    _cleanup_free_ char *path = NULL;
    r = api_path(cli, "secgroups", name, "/rules", &path);
    json_t *rule;
    size_t i;
    json_array_foreach (json_object_get(it->spec, "rules"), i, rule) {
        json_auto_t *added = NULL;
        if (r == 0)
            r = api_call(cli, "POST", path, rule, &added);
    }
    return r;
}

static int
exec_vm(Cli *cli, const Stack *s, const StackItem *it, const char *name, unsigned n)
{
    json_auto_t *body =
        json_pack("{s:s, s:O, s:O}", "name", name, "image", json_object_get(it->spec, "image"),
                  "flavor", json_object_get(it->spec, "flavor"));
    if (!body)
        return CLI_EXIT_API;
    static const char *const copied[] = {"group",    "host",      "pool",     "labels",
                                         "networks", "secgroups", "user_data"};
    for (size_t i = 0; i < ELEMENTSOF(copied); i++) {
        json_t *v = json_object_get(it->spec, copied[i]);
        if (v)
            json_object_set(body, copied[i], v);
    }
    const char *hostname = api_str(it->spec, "hostname");
    if (hostname) {
        _cleanup_free_ char *h = stack_vm_hostname(hostname, n);
        if (!h)
            return CLI_EXIT_API;
        json_object_set_new(body, "hostname", json_string(h));
    }
    const char *ud_file = api_str(it->spec, "user_data_file");
    if (ud_file) {
        _cleanup_free_ char *path = stack_path(s, ud_file);
        _cleanup_free_ char *data = NULL;
        size_t len = 0;
        int r = path ? read_file_full(path, NB_USER_DATA_MAX + 1, &data, &len) : -ENOMEM;
        if (r == 0 && len > NB_USER_DATA_MAX)
            r = -EFBIG;
        json_t *ud = r == 0 && !memchr(data, '\0', len) ? json_stringn(data, len) : NULL;
        if (!ud) {
            fprintf(stderr, "error: vm %s: cannot use user_data_file %s: %s\n", name,
                    path ?: ud_file,
                    r == -EFBIG ? "larger than 64 KiB"
                    : r < 0     ? strerror(-r)
                                : "not UTF-8 text");
            return CLI_EXIT_API;
        }
        json_object_set_new(body, "user_data", ud);
    }
    json_auto_t *resp = NULL;
    int r = api_call(cli, "POST", "/v1/vms", body, &resp);
    if (r != 0)
        return r;
    _cleanup_free_ char *what = str_printf("vm %s", name);
    return exec_wait(cli, resp, what ?: name);
}

static int
exec_op(Cli *cli, const Stack *s, const Op *op)
{
    const char *coll = stack_kind_collection(op->kind);
    _cleanup_free_ char *what = str_printf("%s %s", stack_kind_name(op->kind), op->name);
    json_auto_t *resp = NULL;
    int r;
    if (!what)
        return CLI_EXIT_API;
    if (op->op == OP_DELETE) {
        _cleanup_free_ char *path = NULL;
        r = api_path(cli, coll, op->name, NULL, &path);
        if (r == 0)
            r = api_call(cli, "DELETE", path, NULL, &resp);
        return r != 0 ? r : exec_wait(cli, resp, what);
    }
    if (op->op == OP_CHANGE) {
        json_t *labels = json_object_get(op->item->spec, "labels");
        json_auto_t *body =
            labels ? json_pack("{s:O}", "labels", labels) : json_pack("{s:{}}", "labels");
        _cleanup_free_ char *path = NULL;
        if (!body)
            return CLI_EXIT_API;
        r = api_path(cli, "vms", op->name, NULL, &path);
        return r != 0 ? r : api_call(cli, "PATCH", path, body, &resp);
    }
    switch (op->kind) {
    case STACK_IMAGE:
        return exec_image(cli, s, op->item, op->name);
    case STACK_SECGROUP:
        return exec_secgroup(cli, op->item, op->name);
    case STACK_VM:
        return exec_vm(cli, s, op->item, op->name, op->n);
    default:
        break;
    }
    json_auto_t *body = json_deep_copy(op->item->spec);
    if (!body)
        return CLI_EXIT_API;
    _cleanup_free_ char *path = str_printf("/v1/%s", coll);
    if (!path)
        return CLI_EXIT_API;
    r = api_call(cli, "POST", path, body, &resp);
    return r != 0 ? r : exec_wait(cli, resp, what);
}

static size_t
plan_changes(const Plan *p)
{
    size_t n = 0;
    for (size_t i = 0; i < p->n_ops; i++)
        n += p->ops[i].op != OP_SAME;
    return n;
}

/* Does the plan's changes in order; stops at the first error, saying what was done. */
static int
plan_execute(Cli *cli, const Stack *s, const Plan *p)
{
    size_t done = 0, todo = plan_changes(p);
    if (todo == 0) {
        printf("no changes\n");
        return CLI_EXIT_OK;
    }
    for (size_t i = 0; i < p->n_ops; i++) {
        const Op *op = &p->ops[i];
        if (op->op == OP_SAME)
            continue;
        fflush(stdout);
        int r = exec_op(cli, s, op);
        if (r != 0) {
            fprintf(stderr, "error: stopped at %s %s: %zu of %zu changes done\n",
                    stack_kind_name(op->kind), op->name, done, todo);
            return r;
        }
        done++;
        printf("%s %s %s\n", stack_kind_name(op->kind), op->name,
               op->op == OP_CREATE   ? "created"
               : op->op == OP_DELETE ? "deleted"
                                     : "labels changed");
    }
    printf("%zu change%s done\n", done, done == 1 ? "" : "s");
    return CLI_EXIT_OK;
}

static int
stack_run(Cli *cli, const Args *a, bool deleting)
{
    const char *file = args_get(a, "file");
    if (!file)
        return args_usage_error(a, "-f FILE (--file) is required");
    _cleanup_(stack_clear) Stack s = {0};
    _cleanup_free_ char *err = NULL;
    int r = stack_load(file, &s, &err);
    if (r == -ENOMEM) {
        fprintf(stderr, "error: out of memory\n");
        return CLI_EXIT_API;
    }
    if (r < 0) {
        fprintf(stderr, "error: %s\n", err ?: "cannot read the stack");
        return CLI_EXIT_USAGE;
    }
    Plan p = {0};
    r = deleting ? plan_delete(cli, &s, &p) : plan_apply(cli, &s, &p);
    if (r == 0) {
        printf("stack %s:\n", s.name);
        plan_print(&p);
        if (p.n_errors) {
            fprintf(stderr, "error: %u thing%s of the stack cannot be changed: nothing done\n",
                    p.n_errors, p.n_errors == 1 ? "" : "s");
            r = CLI_EXIT_API;
        } else if (args_has(a, "dry-run")) {
            printf("%s\n", plan_changes(&p) ? "dry run: nothing changed" : "no changes");
        } else {
            r = plan_execute(cli, &s, &p);
        }
    }
    plan_clear(&p);
    return r;
}

static int
stack_apply(Cli *cli, const Args *a)
{
    return stack_run(cli, a, false);
}

static int
stack_delete(Cli *cli, const Args *a)
{
    return stack_run(cli, a, true);
}

/* The name of the object of collection with this id, or NULL (gone, or not visible). */
static char *
export_name(Cli *cli, const char *collection, const char *id, json_t **ret_obj)
{
    json_auto_t *obj = NULL;
    if (!id || !*id || stack_get(cli, collection, id, &obj) != 0 || !obj)
        return NULL;
    char *name = api_str(obj, "name") ? strdup(api_str(obj, "name")) : NULL;
    if (ret_obj)
        *ret_obj = TAKE_PTR(obj);
    return name;
}

static void
export_line(const char *indent, const char *key, const char *value)
{
    _cleanup_free_ char *q = stack_yaml_quote(value);
    printf("%s%s: %s\n", indent, key, q ?: "\"\"");
}

static int
stack_export(Cli *cli, const Args *a)
{
    if (!streq(a->positional[0], "vm"))
        return args_usage_error(a, "only 'export vm NAME' is supported");
    json_auto_t *vm = NULL;
    _cleanup_free_ char *path = NULL;
    int r = api_path(cli, "vms", a->positional[1], NULL, &path);
    if (r == 0)
        r = api_call(cli, "GET", path, NULL, &vm);
    if (r != 0)
        return r;
    const char *name = api_str(vm, "name");
    _cleanup_free_ char *image = export_name(cli, "images", api_str(vm, "image_id"), NULL);
    _cleanup_free_ char *flavor = export_name(cli, "flavors", api_str(vm, "flavor_id"), NULL);
    json_auto_t *group_obj = NULL;
    _cleanup_free_ char *group = export_name(cli, "groups", api_str(vm, "group_id"), &group_obj);
    _cleanup_free_ char *pool = export_name(cli, "pools", api_str(vm, "pool_id"), NULL);
    if (!name || !image || !flavor) {
        fprintf(stderr, "error: vm %s: its image or flavor no longer exists by name\n",
                a->positional[1]);
        return CLI_EXIT_API;
    }
    export_line("", "name", name);
    if (group) {
        printf("groups:\n");
        export_line("  - ", "name", group);
        export_line("    ", "policy", api_str(group_obj, "policy") ?: "anti-affinity");
    }
    printf("vms:\n");
    export_line("  - ", "name", name);
    export_line("    ", "image", image);
    export_line("    ", "flavor", flavor);
    if (api_str(vm, "hostname"))
        export_line("    ", "hostname", api_str(vm, "hostname"));
    if (group)
        export_line("    ", "group", group);
    if (pool)
        export_line("    ", "pool", pool);
    json_t *labels = json_object_get(vm, "labels");
    if (json_object_size(labels) > 0) {
        const char *k;
        json_t *v;
        printf("    labels:\n");
        json_object_foreach (labels, k, v) {
            _cleanup_free_ char *qk = stack_yaml_quote(k);
            export_line("      ", qk ?: k, json_string_value(v) ?: "");
        }
    }
    json_t *nics = json_object_get(vm, "nics");
    if (json_array_size(nics) > 0) {
        json_t *nic;
        size_t i;
        printf("    networks:\n");
        json_array_foreach (nics, i, nic) {
            const char *net = api_str(nic, "network") ?: api_str(nic, "network_id");
            export_line("      - ", "network", net ?: "");
        }
        /* The groups of the first NIC: the stack gives every NIC the same ones. */
        json_t *groups = json_object_get(json_array_get(nics, 0), "secgroups");
        if (json_array_size(groups) > 0) {
            json_t *g;
            printf("    secgroups:\n");
            json_array_foreach (groups, i, g) {
                _cleanup_free_ char *q = stack_yaml_quote(json_string_value(g) ?: "");
                printf("      - %s\n", q ?: "\"\"");
            }
        }
    }
    return CLI_EXIT_OK;
}

static const ArgSpec stack_specs[] = {{"file", true}, {"dry-run", false}};

static const Command apply_command = {
    "apply",
    "-f FILE [--dry-run]",
    "Create or change what differs from a stack file (see docs/stacks.md); prints the plan.",
    "  -f, --file FILE        the stack (YAML)\n"
    "  --dry-run              print the plan only; change nothing\n",
    stack_apply,
    stack_specs,
    ELEMENTSOF(stack_specs),
    0,
    0,
    NULL};

static const Command delete_command = {
    "delete",
    "-f FILE [--dry-run]",
    "Delete what a stack file describes: its VMs first, in the reverse order of apply.",
    "  -f, --file FILE        the stack (YAML)\n"
    "  --dry-run              print the plan only; delete nothing\n",
    stack_delete,
    stack_specs,
    ELEMENTSOF(stack_specs),
    0,
    0,
    NULL};

static const Command export_command = {"export",
                                       "vm NAME|ID",
                                       "Print the stack YAML that recreates a VM.",
                                       NULL,
                                       stack_export,
                                       NULL,
                                       0,
                                       2,
                                       2,
                                       NULL};

/* "-f FILE" is "--file FILE": args.c knows long options only. */
static void
stack_short_options(int argc, char **argv)
{
    for (int i = 0; i < argc; i++) {
        if (streq(argv[i], "-f"))
            argv[i] = (char *)"--file";
    }
}

int
cmd_apply(Cli *cli, int argc, char **argv)
{
    stack_short_options(argc, argv);
    return args_run(cli, &apply_command, argc, argv);
}

int
cmd_delete(Cli *cli, int argc, char **argv)
{
    stack_short_options(argc, argv);
    return args_run(cli, &delete_command, argc, argv);
}

int
cmd_export(Cli *cli, int argc, char **argv)
{
    return args_run(cli, &export_command, argc, argv);
}
