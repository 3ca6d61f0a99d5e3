#include "stack.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "../model/labels.h"
#include "../model/validate.h"
#include "../util/cleanup.h"
#include "../util/strutil.h"

#define STACK_FILE_MAX (1024 * 1024)

typedef enum FieldType {
    FIELD_STR,
    FIELD_INT,
    FIELD_BOOL,
    FIELD_LABELS,  /* a map of strings to strings */
    FIELD_STRLIST, /* a list of strings */
    FIELD_MAPLIST, /* a list of maps of `sub`; a plain string s is {sub->fields[0].key: s} */
} FieldType;

typedef struct Schema Schema;

typedef struct Field {
    const char *key;
    FieldType type;
    bool required;
    const Schema *sub;
} Field;

struct Schema {
    const char *what; /* in messages: "vm", "network of a vm" */
    const Field *fields;
    size_t n_fields;
    bool scalar_shorthand; /* FIELD_MAPLIST items may be a plain string (the first field) */
};

static const Field flavor_fields[] = {
    {"name", FIELD_STR, true, NULL},         {"vcpus", FIELD_INT, true, NULL},
    {"ram_mib", FIELD_INT, true, NULL},      {"disk_gib", FIELD_INT, true, NULL},
    {"net_in_mbit", FIELD_INT, false, NULL}, {"net_out_mbit", FIELD_INT, false, NULL},
    {"disk_iops", FIELD_INT, false, NULL},   {"disk_mbps", FIELD_INT, false, NULL},
};
static const Field image_fields[] = {
    {"name", FIELD_STR, true, NULL},
    {"file", FIELD_STR, false, NULL},
    {"disk_format", FIELD_STR, false, NULL},
};
static const Field network_fields[] = {
    {"name", FIELD_STR, true, NULL},    {"cidr", FIELD_STR, true, NULL},
    {"type", FIELD_STR, false, NULL},   {"gateway", FIELD_STR, false, NULL},
    {"dhcp", FIELD_BOOL, false, NULL},  {"dns", FIELD_STRLIST, false, NULL},
    {"mtu", FIELD_INT, false, NULL},    {"vni", FIELD_INT, false, NULL},
    {"vlan", FIELD_INT, false, NULL},   {"bridge", FIELD_STR, false, NULL},
    {"parent", FIELD_STR, false, NULL}, {"shared", FIELD_BOOL, false, NULL},
};
static const Field rule_fields[] = {
    {"direction", FIELD_STR, true, NULL},  {"protocol", FIELD_STR, false, NULL},
    {"port_min", FIELD_INT, false, NULL},  {"port_max", FIELD_INT, false, NULL},
    {"cidr", FIELD_STR, false, NULL},      {"remote_group", FIELD_STR, false, NULL},
    {"ethertype", FIELD_STR, false, NULL},
};
static const Schema rule_schema = {"rule of a secgroup", rule_fields, ELEMENTSOF(rule_fields),
                                   false};
static const Field secgroup_fields[] = {
    {"name", FIELD_STR, true, NULL},
    {"description", FIELD_STR, false, NULL},
    {"rules", FIELD_MAPLIST, false, &rule_schema},
};
static const Field group_fields[] = {
    {"name", FIELD_STR, true, NULL},
    {"policy", FIELD_STR, true, NULL},
};
static const Field nic_fields[] = {
    {"network", FIELD_STR, true, NULL},
    {"ip", FIELD_STR, false, NULL},
};
static const Schema nic_schema = {"network of a vm", nic_fields, ELEMENTSOF(nic_fields), true};
static const Field vm_fields[] = {
    {"name", FIELD_STR, true, NULL},
    {"image", FIELD_STR, true, NULL},
    {"flavor", FIELD_STR, true, NULL},
    {"count", FIELD_INT, false, NULL},
    {"hostname", FIELD_STR, false, NULL},
    {"group", FIELD_STR, false, NULL},
    {"host", FIELD_STR, false, NULL},
    {"pool", FIELD_STR, false, NULL},
    {"labels", FIELD_LABELS, false, NULL},
    {"user_data", FIELD_STR, false, NULL},
    {"user_data_file", FIELD_STR, false, NULL},
    {"networks", FIELD_MAPLIST, false, &nic_schema},
    {"secgroups", FIELD_STRLIST, false, NULL},
};

static const Schema kind_schemas[_STACK_KIND_MAX] = {
    [STACK_FLAVOR] = {"flavor", flavor_fields, ELEMENTSOF(flavor_fields), false},
    [STACK_IMAGE] = {"image", image_fields, ELEMENTSOF(image_fields), false},
    [STACK_NETWORK] = {"network", network_fields, ELEMENTSOF(network_fields), false},
    [STACK_SECGROUP] = {"secgroup", secgroup_fields, ELEMENTSOF(secgroup_fields), false},
    [STACK_GROUP] = {"group", group_fields, ELEMENTSOF(group_fields), false},
    [STACK_VM] = {"vm", vm_fields, ELEMENTSOF(vm_fields), false},
};

static const char *const kind_collections[_STACK_KIND_MAX] = {
    [STACK_FLAVOR] = "flavors",     [STACK_IMAGE] = "images", [STACK_NETWORK] = "networks",
    [STACK_SECGROUP] = "secgroups", [STACK_GROUP] = "groups", [STACK_VM] = "vms",
};

const char *
stack_kind_name(StackKind k)
{
    return k < _STACK_KIND_MAX ? kind_schemas[k].what : "?";
}

const char *
stack_kind_collection(StackKind k)
{
    return k < _STACK_KIND_MAX ? kind_collections[k] : "?";
}

typedef struct Parse {
    yaml_document_t *doc;
    const char *file;
    char *error;
} Parse;

static int __attribute__((format(printf, 3, 4)))
parse_fail(Parse *p, const yaml_node_t *node, const char *fmt, ...)
{
    va_list ap;
    _cleanup_free_ char *msg = NULL;
    va_start(ap, fmt);
    if (vasprintf(&msg, fmt, ap) < 0)
        msg = NULL;
    va_end(ap);
    if (!p->error) {
        p->error = str_printf("%s:%zu:%zu: %s", p->file, node ? node->start_mark.line + 1 : 1,
                              node ? node->start_mark.column + 1 : 1, msg ? msg : "?");
    }
    return p->error ? -EINVAL : -ENOMEM;
}

static const char *
node_type_name(const yaml_node_t *n)
{
    switch (n->type) {
    case YAML_SCALAR_NODE:
        return "a scalar";
    case YAML_SEQUENCE_NODE:
        return "a list";
    case YAML_MAPPING_NODE:
        return "a map";
    default:
        return "nothing";
    }
}

/* A scalar's text; NULL for other nodes and for text with a NUL byte. */
static const char *
node_scalar(const yaml_node_t *n)
{
    if (!n || n->type != YAML_SCALAR_NODE)
        return NULL;
    const char *s = (const char *)n->data.scalar.value;
    return strlen(s) == n->data.scalar.length ? s : NULL;
}

static bool
node_is_plain(const yaml_node_t *n)
{
    return n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE ||
           n->data.scalar.style == YAML_ANY_SCALAR_STYLE;
}

static int
parse_string(Parse *p, const yaml_node_t *n, const char *key, const char *what, json_t **ret)
{
    const char *s = node_scalar(n);
    /* A plain ~ or null is YAML's null, not the text "null". */
    if (!s || (node_is_plain(n) && (streq(s, "~") || streq(s, "null") || !*s)))
        return parse_fail(p, n, "'%s' of %s must be a string, not %s", key, what,
                          s ? "null" : node_type_name(n));
    *ret = json_string(s);
    if (!*ret)
        return parse_fail(p, n, "'%s' of %s is not UTF-8 text", key, what);
    return 0;
}

static int parse_value(Parse *p, const yaml_node_t *n, const Field *f, const char *what,
                       json_t **ret);

static int
parse_map(Parse *p, const yaml_node_t *n, const Schema *schema, json_t **ret)
{
    if (n->type != YAML_MAPPING_NODE)
        return parse_fail(p, n, "%s must be a map, not %s", schema->what, node_type_name(n));
    json_auto_t *obj = json_object();
    if (!obj)
        return -ENOMEM;
    for (yaml_node_pair_t *pair = n->data.mapping.pairs.start; pair < n->data.mapping.pairs.top;
         pair++) {
        yaml_node_t *k = yaml_document_get_node(p->doc, pair->key);
        yaml_node_t *v = yaml_document_get_node(p->doc, pair->value);
        const char *key = node_scalar(k);
        if (!key || !v)
            return parse_fail(p, k, "the keys of %s must be strings", schema->what);
        const Field *f = NULL;
        for (size_t i = 0; i < schema->n_fields; i++) {
            if (streq(schema->fields[i].key, key))
                f = &schema->fields[i];
        }
        if (!f) {
            _cleanup_free_ char *known = NULL;
            for (size_t i = 0; i < schema->n_fields; i++) {
                char *next = str_printf("%s%s%s", known ? known : "", known ? ", " : "",
                                        schema->fields[i].key);
                free(known);
                known = next;
                if (!known)
                    return -ENOMEM;
            }
            return parse_fail(p, k, "unknown key '%s' in %s (known: %s)", key, schema->what, known);
        }
        if (json_object_get(obj, key))
            return parse_fail(p, k, "key '%s' given twice in %s", key, schema->what);
        json_t *val = NULL;
        int r = parse_value(p, v, f, schema->what, &val);
        if (r < 0)
            return r;
        if (json_object_set_new(obj, key, val) < 0)
            return -ENOMEM;
    }
    for (size_t i = 0; i < schema->n_fields; i++) {
        if (schema->fields[i].required && !json_object_get(obj, schema->fields[i].key))
            return parse_fail(p, n, "%s has no '%s'", schema->what, schema->fields[i].key);
    }
    *ret = TAKE_PTR(obj);
    return 0;
}

static int
parse_value(Parse *p, const yaml_node_t *n, const Field *f, const char *what, json_t **ret)
{
    switch (f->type) {
    case FIELD_STR:
        return parse_string(p, n, f->key, what, ret);
    case FIELD_INT: {
        const char *s = node_scalar(n);
        uint64_t v;
        if (!s || !node_is_plain(n) || str_to_u64(s, &v) < 0 || v > INT64_MAX)
            return parse_fail(p, n, "'%s' of %s must be a whole number", f->key, what);
        *ret = json_integer((json_int_t)v);
        return *ret ? 0 : -ENOMEM;
    }
    case FIELD_BOOL: {
        const char *s = node_scalar(n);
        if (!s || !node_is_plain(n) || (!streq(s, "true") && !streq(s, "false")))
            return parse_fail(p, n, "'%s' of %s must be true or false", f->key, what);
        *ret = json_boolean(streq(s, "true"));
        return 0;
    }
    case FIELD_LABELS: {
        if (n->type != YAML_MAPPING_NODE)
            return parse_fail(p, n, "'%s' of %s must be a map of strings", f->key, what);
        json_auto_t *obj = json_object();
        if (!obj)
            return -ENOMEM;
        for (yaml_node_pair_t *pair = n->data.mapping.pairs.start; pair < n->data.mapping.pairs.top;
             pair++) {
            yaml_node_t *k = yaml_document_get_node(p->doc, pair->key);
            yaml_node_t *v = yaml_document_get_node(p->doc, pair->value);
            const char *key = node_scalar(k);
            json_t *val = NULL;
            if (!key || !*key)
                return parse_fail(p, k, "the keys of '%s' must be strings", f->key);
            if (json_object_get(obj, key))
                return parse_fail(p, k, "label '%s' given twice", key);
            if (json_object_size(obj) >= NB_LABELS_MAX)
                return parse_fail(p, k, "at most %d labels", NB_LABELS_MAX);
            /* Label values are strings: 1 and true are taken as their text. */
            const char *vs = node_scalar(v);
            if (!vs)
                return parse_fail(p, v, "label '%s' must be a string, not %s", key,
                                  v ? node_type_name(v) : "nothing");
            val = json_string(vs);
            if (!val || json_object_set_new(obj, key, val) < 0)
                return parse_fail(p, v, "label '%s' is not UTF-8 text", key);
        }
        *ret = TAKE_PTR(obj);
        return 0;
    }
    case FIELD_STRLIST:
    case FIELD_MAPLIST: {
        if (n->type != YAML_SEQUENCE_NODE)
            return parse_fail(p, n, "'%s' of %s must be a list, not %s", f->key, what,
                              node_type_name(n));
        json_auto_t *arr = json_array();
        if (!arr)
            return -ENOMEM;
        for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top;
             it++) {
            yaml_node_t *item = yaml_document_get_node(p->doc, *it);
            json_t *val = NULL;
            int r;
            if (!item)
                return parse_fail(p, n, "an empty item in '%s'", f->key);
            if (f->type == FIELD_STRLIST) {
                r = parse_string(p, item, f->key, what, &val);
            } else if (item->type == YAML_SCALAR_NODE && f->sub->scalar_shorthand) {
                json_t *s = NULL;
                r = parse_string(p, item, f->key, what, &s);
                if (r == 0) {
                    val = json_object();
                    if (!val || json_object_set_new(val, f->sub->fields[0].key, s) < 0)
                        r = -ENOMEM;
                }
            } else {
                r = parse_map(p, item, f->sub, &val);
            }
            if (r < 0)
                return r;
            if (json_array_append_new(arr, val) < 0)
                return -ENOMEM;
        }
        *ret = TAKE_PTR(arr);
        return 0;
    }
    }
    return -EINVAL;
}

/* Checks of an item beyond its types: names, the VM's count and hostname pattern. */
static int
stack_check_item(Parse *p, const yaml_node_t *n, StackKind kind, json_t *spec)
{
    const char *name = json_string_value(json_object_get(spec, "name"));
    if (!nb_name_is_valid(name))
        return parse_fail(p, n, "invalid %s name '%s': use [A-Za-z0-9][A-Za-z0-9._-]{0,62}",
                          stack_kind_name(kind), name);
    if (kind != STACK_VM)
        return 0;
    json_t *count = json_object_get(spec, "count");
    json_int_t c = count ? json_integer_value(count) : 1;
    if (c < 1 || c > STACK_VM_COUNT_MAX)
        return parse_fail(p, n, "count of vm %s must be 1 to %d", name, STACK_VM_COUNT_MAX);
    if (!count && json_object_set_new(spec, "count", json_integer(1)) < 0)
        return -ENOMEM;
    if (json_object_get(spec, "user_data") && json_object_get(spec, "user_data_file"))
        return parse_fail(p, n, "vm %s has both user_data and user_data_file", name);
    const char *hostname = json_string_value(json_object_get(spec, "hostname"));
    if (hostname) {
        if (c > 1 && !strstr(hostname, "{n}"))
            return parse_fail(p, n, "hostname of vm %s must contain {n} when count > 1", name);
        _cleanup_free_ char *h = stack_vm_hostname(hostname, (unsigned)c);
        if (!h)
            return -ENOMEM;
        if (!nb_hostname_is_valid(h))
            return parse_fail(p, n, "invalid hostname '%s' for vm %s", h, name);
    }
    /* The longest instance name must be a valid name too. */
    _cleanup_free_ char *last = stack_vm_instance_name(name, (unsigned)c, (unsigned)c);
    if (!last)
        return -ENOMEM;
    if (!nb_name_is_valid(last))
        return parse_fail(p, n, "vm name '%s' is too long", last);
    return 0;
}

static int
stack_item_cmp(const void *a, const void *b)
{
    const StackItem *x = a, *y = b;
    if (x->kind != y->kind)
        return x->kind < y->kind ? -1 : 1;
    if (x->line != y->line)
        return x->line < y->line ? -1 : 1;
    return x->column < y->column ? -1 : (x->column > y->column);
}

static int
stack_parse_section(Parse *p, StackKind kind, const yaml_node_t *list, Stack *s)
{
    if (list->type != YAML_SEQUENCE_NODE)
        return parse_fail(p, list, "'%s' must be a list, not %s", stack_kind_collection(kind),
                          node_type_name(list));
    for (yaml_node_item_t *it = list->data.sequence.items.start; it < list->data.sequence.items.top;
         it++) {
        yaml_node_t *n = yaml_document_get_node(p->doc, *it);
        json_t *spec = NULL;
        if (!n)
            return parse_fail(p, list, "an empty item in '%s'", stack_kind_collection(kind));
        int r = parse_map(p, n, &kind_schemas[kind], &spec);
        if (r < 0)
            return r;
        StackItem *items = realloc(s->items, (s->n_items + 1) * sizeof(*items));
        if (!items) {
            json_decref(spec);
            return -ENOMEM;
        }
        s->items = items;
        s->items[s->n_items++] = (StackItem){kind, spec, (unsigned)n->start_mark.line + 1,
                                             (unsigned)n->start_mark.column + 1};
        r = stack_check_item(p, n, kind, spec);
        if (r < 0)
            return r;
        for (size_t i = 0; i + 1 < s->n_items; i++) {
            if (s->items[i].kind == kind && json_equal(json_object_get(s->items[i].spec, "name"),
                                                       json_object_get(spec, "name")))
                return parse_fail(
                    p, n, "%s %s is listed twice (first at line %u)", stack_kind_name(kind),
                    json_string_value(json_object_get(spec, "name")), s->items[i].line);
        }
    }
    return 0;
}

static int
stack_parse_root(Parse *p, const yaml_node_t *root, Stack *s)
{
    if (!root)
        return parse_fail(p, NULL, "the stack is empty");
    if (root->type != YAML_MAPPING_NODE)
        return parse_fail(p, root, "the stack must be a map, not %s", node_type_name(root));
    for (yaml_node_pair_t *pair = root->data.mapping.pairs.start;
         pair < root->data.mapping.pairs.top; pair++) {
        yaml_node_t *k = yaml_document_get_node(p->doc, pair->key);
        yaml_node_t *v = yaml_document_get_node(p->doc, pair->value);
        const char *key = node_scalar(k);
        int r;
        if (!key || !v)
            return parse_fail(p, k, "the keys of the stack must be strings");
        if (streq(key, "name")) {
            if (s->name)
                return parse_fail(p, k, "key 'name' given twice");
            const char *name = node_scalar(v);
            if (!name || !nb_name_is_valid(name))
                return parse_fail(p, v, "the stack's name must be [A-Za-z0-9][A-Za-z0-9._-]{0,62}");
            s->name = strdup(name);
            if (!s->name)
                return -ENOMEM;
            continue;
        }
        StackKind kind = _STACK_KIND_MAX;
        for (StackKind i = 0; i < _STACK_KIND_MAX; i++) {
            if (streq(key, kind_collections[i]))
                kind = i;
        }
        if (kind == _STACK_KIND_MAX)
            return parse_fail(p, k,
                              "unknown key '%s' in the stack (known: name, flavors, images, "
                              "networks, secgroups, groups, vms)",
                              key);
        for (yaml_node_pair_t *q = root->data.mapping.pairs.start; q < pair; q++) {
            if (streq(node_scalar(yaml_document_get_node(p->doc, q->key)), key))
                return parse_fail(p, k, "key '%s' given twice", key);
        }
        /* An empty section ("vms:") is allowed: nothing of that kind. */
        const char *empty = node_scalar(v);
        if (empty && node_is_plain(v) && (!*empty || streq(empty, "~") || streq(empty, "null")))
            continue;
        r = stack_parse_section(p, kind, v, s);
        if (r < 0)
            return r;
    }
    if (!s->name)
        return parse_fail(p, root, "the stack has no 'name'");
    if (s->n_items > 1)
        qsort(s->items, s->n_items, sizeof(*s->items), stack_item_cmp);
    return 0;
}

int
stack_parse(const char *text, size_t len, const char *file, Stack *ret, char **ret_error)
{
    yaml_parser_t parser;
    yaml_document_t doc;
    Parse p = {.doc = &doc, .file = file};
    Stack s = {0};
    int r;

    *ret_error = NULL;
    if (!yaml_parser_initialize(&parser))
        return -ENOMEM;
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    if (!yaml_parser_load(&parser, &doc)) {
        const yaml_mark_t *m =
            parser.problem_mark.line || parser.problem_mark.column || !parser.context
                ? &parser.problem_mark
                : &parser.context_mark;
        /* The context ("while parsing a flow sequence") says where the broken part began. */
        _cleanup_free_ char *context = parser.context ? str_printf(" %s at %zu:%zu", parser.context,
                                                                   parser.context_mark.line + 1,
                                                                   parser.context_mark.column + 1)
                                                      : strdup("");
        *ret_error = str_printf("%s:%zu:%zu: invalid YAML: %s%s", file, m->line + 1, m->column + 1,
                                parser.problem ? parser.problem : "error", context ? context : "");
        yaml_parser_delete(&parser);
        return *ret_error ? -EINVAL : -ENOMEM;
    }
    /* One document: a second one would be silently ignored otherwise. */
    yaml_document_t extra;
    bool more = false;
    if (yaml_document_get_root_node(&doc)) {
        if (!yaml_parser_load(&parser, &extra)) {
            more = true;
            p.error = str_printf("%s:%zu:%zu: invalid YAML: %s", file, parser.problem_mark.line + 1,
                                 parser.problem_mark.column + 1,
                                 parser.problem ? parser.problem : "error");
        } else {
            yaml_node_t *root2 = yaml_document_get_root_node(&extra);
            if (root2) {
                more = true;
                parse_fail(&p, root2, "only one YAML document is allowed");
            }
            yaml_document_delete(&extra);
        }
    }
    r = more ? -EINVAL : stack_parse_root(&p, yaml_document_get_root_node(&doc), &s);
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    if (r < 0) {
        stack_clear(&s);
        *ret_error = p.error;
        return r;
    }
    free(p.error);
    const char *slash = strrchr(file, '/');
    s.dir = slash ? strndup(file, (size_t)(slash - file) + 1) : strdup("");
    if (!s.dir) {
        stack_clear(&s);
        return -ENOMEM;
    }
    *ret = s;
    return 0;
}

int
stack_load(const char *path, Stack *ret, char **ret_error)
{
    _cleanup_free_ char *text = NULL;
    size_t len = 0;
    *ret_error = NULL;
    int r = read_file_full(path, STACK_FILE_MAX, &text, &len);
    if (r < 0) {
        *ret_error = str_printf("cannot read %s: %s", path,
                                r == -EFBIG ? "larger than 1 MiB" : strerror(-r));
        return r;
    }
    return stack_parse(text, len, path, ret, ret_error);
}

void
stack_clear(Stack *s)
{
    for (size_t i = 0; i < s->n_items; i++)
        json_decref(s->items[i].spec);
    free(s->items);
    free(s->name);
    free(s->dir);
    *s = (Stack){0};
}

char *
stack_vm_instance_name(const char *base, unsigned count, unsigned n)
{
    return count == 1 ? strdup(base) : str_printf("%s-%u", base, n);
}

char *
stack_vm_hostname(const char *pattern, unsigned n)
{
    _cleanup_free_ char *out = strdup("");
    const char *p = pattern;
    while (out) {
        const char *hit = strstr(p, "{n}");
        char *next =
            hit ? str_printf("%s%.*s%u", out, (int)(hit - p), p, n) : str_printf("%s%s", out, p);
        free(out);
        out = next;
        if (!hit)
            break;
        p = hit + 3;
    }
    return TAKE_PTR(out);
}

bool
stack_vm_instance_number(const char *base, const char *name, unsigned *ret_k)
{
    size_t bl = strlen(base);
    if (strncmp(name, base, bl) != 0 || name[bl] != '-')
        return false;
    const char *d = name + bl + 1;
    uint64_t k;
    if (*d < '1' || *d > '9' || str_to_u64(d, &k) < 0 || k > 100000)
        return false;
    *ret_k = (unsigned)k;
    return true;
}

char *
stack_yaml_quote(const char *s)
{
    bool plain = *s && nb_name_is_valid(s);
    /* Names that YAML would read as something else than a string. */
    static const char *const special[] = {"true", "false", "yes", "no", "on",
                                          "off",  "null",  "y",   "n",  "~"};
    for (size_t i = 0; plain && i < ELEMENTSOF(special); i++) {
        if (strcasecmp(s, special[i]) == 0)
            plain = false;
    }
    if (plain) {
        bool numeric = true;
        for (const char *c = s; *c; c++) {
            if (!strchr("0123456789.-+eE_xXoO", *c))
                numeric = false;
        }
        plain = !numeric;
    }
    if (plain)
        return strdup(s);
    /* A JSON string is a valid YAML double-quoted scalar. */
    json_auto_t *j = json_string(s);
    return j ? json_dumps(j, JSON_ENCODE_ANY) : NULL;
}
