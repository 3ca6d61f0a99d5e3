#include "pool.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "../util/strutil.h"
#include "enum_table.h"
#include "json_req.h"
#include "network.h"

static const char *const pool_type_table[_POOL_TYPE_MAX] = {
    [POOL_TYPE_DIR] = "dir",     [POOL_TYPE_LOGICAL] = "logical", [POOL_TYPE_RBD] = "rbd",
    [POOL_TYPE_ISCSI] = "iscsi", [POOL_TYPE_NETFS] = "netfs",
};
DEFINE_STRING_TABLE(pool_type, PoolType, pool_type_table)

/* iscsi-direct, not iscsi: libiscsi in QEMU and libvirt, so hosts need no kernel initiator. */
static const char *const pool_type_libvirt_table[_POOL_TYPE_MAX] = {
    [POOL_TYPE_DIR] = "dir",     [POOL_TYPE_LOGICAL] = "logical",
    [POOL_TYPE_RBD] = "rbd",     [POOL_TYPE_ISCSI] = "iscsi-direct",
    [POOL_TYPE_NETFS] = "netfs",
};

const char *
pool_type_libvirt(PoolType t)
{
    if ((int)t < 0 || t >= _POOL_TYPE_MAX)
        return NULL;
    return pool_type_libvirt_table[t];
}

bool
pool_type_is_shared(PoolType t)
{
    return t == POOL_TYPE_RBD || t == POOL_TYPE_ISCSI || t == POOL_TYPE_NETFS;
}

void
pool_libvirt_name(const char *id, char buf[POOL_LIBVIRT_NAME_MAX + 1])
{
    snprintf(buf, POOL_LIBVIRT_NAME_MAX + 1, "nimbus-pool-%s", id);
}

static bool
is_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static bool
is_digit(char c)
{
    return c >= '0' && c <= '9';
}

bool
pool_path_valid(const char *path)
{
    if (!path || path[0] != '/')
        return false;
    size_t len = strlen(path);
    if (len < 2 || len > POOL_PATH_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!is_alnum(path[i]) && !strchr("._+-/", path[i]))
            return false;
    /* Each part between slashes: not empty ("//", a trailing "/"), not "." or "..". */
    for (const char *p = path + 1;;) {
        const char *end = strchr(p, '/');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (n == 0 || (n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
            return false;
        if (!end)
            return true;
        p = end + 1;
    }
}

/* path lies strictly under root ("/" or a valid path). */
static bool
path_under(const char *path, const char *root)
{
    if (streq(root, "/"))
        return true;
    size_t n = strlen(root);
    return pool_path_valid(root) && strncmp(path, root, n) == 0 && path[n] == '/';
}

/* RFC 1123 host name: dot-separated labels of letters, digits and '-' (not at either end). */
static bool
dns_name_valid(const char *s, size_t len)
{
    if (len == 0 || len > 253)
        return false;
    size_t label = 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == '.') {
            if (label == 0 || s[i - 1] == '-')
                return false;
            label = 0;
        } else if (is_alnum(c) || c == '-') {
            if ((label == 0 && c == '-') || ++label > 63)
                return false;
        } else {
            return false;
        }
    }
    return label > 0 && s[len - 1] != '-';
}

/* A host of "host[:port]" without brackets: an IPv4 address when it has only digits and dots
 * (so "1.2.3.256" is refused, not taken for a name), else a DNS name. */
static bool
host_valid(const char *s, size_t len)
{
    char buf[256];
    if (len == 0 || len >= sizeof(buf))
        return false;
    memcpy(buf, s, len);
    buf[len] = '\0';
    if (strspn(buf, "0123456789.") == len) {
        uint32_t ip;
        return ipv4_parse(buf, &ip) == 0;
    }
    return dns_name_valid(buf, len);
}

/* 1..65535, decimal, no sign or leading zero. */
static bool
port_parse(const char *s, unsigned *ret)
{
    unsigned v = 0;
    size_t n = 0;
    for (; is_digit(s[n]); n++) {
        if (n == 5)
            return false;
        v = v * 10 + (unsigned)(s[n] - '0');
    }
    if (n == 0 || s[n] || s[0] == '0' || v > 65535)
        return false;
    *ret = v;
    return true;
}

int
pool_hostport_parse(const char *s, char *host, size_t host_size, unsigned *port)
{
    if (!s || strlen(s) > POOL_HOSTPORT_MAX)
        return -1;
    const char *h = s, *rest;
    size_t hlen;
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (!close)
            return -1;
        h = s + 1;
        hlen = (size_t)(close - h);
        char buf[INET6_ADDRSTRLEN];
        struct in6_addr a;
        if (hlen == 0 || hlen >= sizeof(buf))
            return -1;
        memcpy(buf, h, hlen);
        buf[hlen] = '\0';
        if (inet_pton(AF_INET6, buf, &a) != 1)
            return -1;
        rest = close + 1;
    } else {
        rest = strchr(s, ':');
        if (!rest)
            rest = s + strlen(s);
        hlen = (size_t)(rest - s);
        if (!host_valid(s, hlen))
            return -1;
    }
    unsigned p = 0;
    if (*rest && (*rest != ':' || !port_parse(rest + 1, &p)))
        return -1;
    if (hlen >= host_size)
        return -1;
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    *port = p;
    return 0;
}

static bool
is_hex(char c)
{
    return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

bool
pool_iqn_valid(const char *s)
{
    if (!s || strlen(s) > POOL_IQN_MAX)
        return false;
    if (str_startswith(s, "eui.")) {
        for (size_t i = 4; i < 20; i++)
            if (!is_hex(s[i]))
                return false;
        return s[20] == '\0';
    }
    if (!str_startswith(s, "iqn."))
        return false;
    /* "iqn." YYYY "-" MM ".": the date the naming authority held its domain. */
    const char *p = s + 4;
    for (int i = 0; i < 4; i++)
        if (!is_digit(p[i]))
            return false;
    if (p[4] != '-' || !is_digit(p[5]) || !is_digit(p[6]) || p[7] != '.')
        return false;
    int month = (p[5] - '0') * 10 + (p[6] - '0');
    if (month < 1 || month > 12)
        return false;
    p += 8;
    const char *colon = strchr(p, ':');
    size_t dlen = colon ? (size_t)(colon - p) : strlen(p);
    if (!dns_name_valid(p, dlen))
        return false;
    if (!colon)
        return true;
    /* The unique part: what tgt and libiscsi take without quoting (no '/': it ends the IQN in
     * a disk's "iqn/LUN"). */
    if (!colon[1])
        return false;
    for (const char *q = colon + 1; *q; q++)
        if (!is_alnum(*q) && !strchr(".:_-", *q))
            return false;
    return true;
}

/* Standard base64 with padding; the decoded length in *ret_len. */
static bool
base64_valid(const char *s, size_t *ret_len)
{
    size_t len = strlen(s), pad = 0;
    if (len == 0 || len % 4 != 0)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == '=') {
            pad++;
            continue;
        }
        if (pad || !(is_alnum(c) || c == '+' || c == '/'))
            return false;
    }
    if (pad > 2)
        return false;
    *ret_len = len / 4 * 3 - pad;
    return true;
}

/* [A-Za-z0-9_][A-Za-z0-9._+-]*: what LVM takes as a volume group name (it refuses a leading
 * '-'; a leading '.' would also allow "." and ".."). */
bool
pool_vg_name_valid(const char *s)
{
    size_t len = s ? strlen(s) : 0;
    if (len == 0 || len > 127 || !(is_alnum(s[0]) || s[0] == '_'))
        return false;
    for (size_t i = 1; i < len; i++)
        if (!is_alnum(s[i]) && !strchr("._+-", s[i]))
            return false;
    return true;
}

/* The fields of a create request and which types may have them. */
#define T(x) (1u << POOL_TYPE_##x)
static const struct {
    const char *name;
    unsigned types;
} pool_req_fields[] = {
    {"host", T(DIR) | T(LOGICAL)}, {"path", T(DIR) | T(NETFS)}, {"monitors", T(RBD)},
    {"rbd_pool", T(RBD)},          {"user", T(RBD) | T(ISCSI)}, {"key", T(RBD) | T(ISCSI)},
    {"portal", T(ISCSI)},          {"target", T(ISCSI)},        {"initiator", T(ISCSI)},
    {"server", T(NETFS)},          {"export", T(NETFS)},        {"vg", T(LOGICAL)},
};
#undef T

static json_t *
req_get(json_t *body, const char *key)
{
    json_t *v = json_object_get(body, key);
    return v && !json_is_null(v) ? v : NULL;
}

/* A string field (NULL when absent and !required). A string that is too long or holds a NUL is
 * refused with code, as the value it is. */
static int
req_str(json_t *body, const char *key, bool required, const char *code, size_t max,
        const char **ret, NbError **err)
{
    json_t *v = req_get(body, key);
    *ret = NULL;
    if (!v) {
        if (required)
            return nb_error_set(err, NB_ERR_INVALID_REQUEST, "field '%s' is required", key);
        return 0;
    }
    if (!json_is_string(v))
        return nb_error_set(err, NB_ERR_INVALID_REQUEST, "field '%s' must be a string", key);
    if (json_string_length(v) > max || strlen(json_string_value(v)) != json_string_length(v))
        return nb_error_set(err, code, "field '%s' must be a string of at most %zu characters", key,
                            max);
    *ret = json_string_value(v);
    return 0;
}

static int
req_path(json_t *body, const char *key, const char *const *roots, char out[POOL_PATH_MAX + 1],
         NbError **err)
{
    const char *s;
    if (req_str(body, key, true, NB_ERR_POOL_INVALID_PATH, POOL_PATH_MAX, &s, err) < 0)
        return -1;
    if (!pool_path_valid(s))
        return nb_error_set(err, NB_ERR_POOL_INVALID_PATH,
                            "field '%s' must be an absolute path without '.', '..', '//' or a "
                            "trailing '/', of letters, digits and '._+-/'",
                            key);
    bool under = false;
    for (size_t i = 0; roots && roots[i] && !under; i++)
        under = path_under(s, roots[i]);
    if (!under)
        return nb_error_set(err, NB_ERR_POOL_INVALID_PATH,
                            "path '%s' is not under a directory of the daemon's pool-roots", s);
    snprintf(out, POOL_PATH_MAX + 1, "%s", s);
    return 0;
}

/* A "host[:port]"; no port allowed when !with_port. */
static int
req_hostport(const char *key, const char *s, bool with_port, NbError **err)
{
    char host[256];
    unsigned port;
    if (pool_hostport_parse(s, host, sizeof(host), &port) < 0 || (!with_port && port))
        return nb_error_set(err, NB_ERR_POOL_INVALID_MONITOR,
                            "%s '%.64s' is not %s: a DNS name, an IPv4 address or [IPv6]%s", key, s,
                            with_port ? "host[:port]" : "a host",
                            with_port ? ", and a port from 1 to 65535" : "");
    return 0;
}

static int
req_monitors(json_t *body, Pool *p, NbError **err)
{
    json_t *v = req_get(body, "monitors");
    if (!v)
        return nb_error_set(err, NB_ERR_INVALID_REQUEST, "field 'monitors' is required");
    if (!json_is_array(v))
        return nb_error_set(err, NB_ERR_INVALID_REQUEST,
                            "field 'monitors' must be an array of \"host[:port]\" strings");
    if (json_array_size(v) < 1 || json_array_size(v) > POOL_MONITORS_MAX)
        return nb_error_set(err, NB_ERR_POOL_INVALID_MONITOR,
                            "field 'monitors' must list 1 to %d Ceph monitors", POOL_MONITORS_MAX);
    size_t i;
    json_t *m;
    json_array_foreach (v, i, m) {
        const char *s = json_string_value(m);
        if (!s)
            return nb_error_set(err, NB_ERR_INVALID_REQUEST,
                                "field 'monitors' must be an array of \"host[:port]\" strings");
        if (strlen(s) != json_string_length(m))
            return nb_error_set(err, NB_ERR_POOL_INVALID_MONITOR, "a monitor holds a NUL");
        if (req_hostport("monitor", s, true, err) < 0)
            return -1;
        for (size_t k = 0; k < i; k++)
            if (streq(p->monitors[k], s))
                return nb_error_set(err, NB_ERR_POOL_INVALID_MONITOR, "monitor '%.64s' is repeated",
                                    s);
        snprintf(p->monitors[i], sizeof(p->monitors[i]), "%s", s);
    }
    p->n_monitors = json_array_size(v);
    return 0;
}

static int
req_iqn(json_t *body, const char *key, bool required, char *out, size_t out_size, NbError **err)
{
    const char *s;
    if (req_str(body, key, required, NB_ERR_POOL_INVALID_SOURCE, POOL_IQN_MAX, &s, err) < 0)
        return -1;
    if (!s)
        return 0;
    if (!pool_iqn_valid(s))
        return nb_error_set(err, NB_ERR_POOL_INVALID_SOURCE,
                            "%s '%.64s' is not an iSCSI name: \"iqn.YYYY-MM.reverse.domain[:name]"
                            "\" or \"eui.\" and 16 hex digits",
                            key, s);
    snprintf(out, out_size, "%s", s);
    return 0;
}

/* cephx or CHAP user: a name ("nimbus", not Ceph's "client.nimbus"). */
static int
req_user(json_t *body, bool required, Pool *p, NbError **err)
{
    const char *s;
    if (req_str(body, "user", required, NB_ERR_INVALID_REQUEST, NB_NAME_MAX, &s, err) < 0)
        return -1;
    if (!s)
        return 0;
    if (!nb_token_is_valid(s, NB_NAME_MAX))
        return nb_error_set(err, NB_ERR_INVALID_REQUEST,
                            "field 'user' must be a letter or digit, then letters, digits, '.', "
                            "'_' or '-' (at most %d)",
                            NB_NAME_MAX);
    if (p->type == POOL_TYPE_RBD && str_startswith(s, "client."))
        return nb_error_set(err, NB_ERR_INVALID_REQUEST,
                            "field 'user' is the cephx id without \"client.\" ('%s')", s + 7);
    snprintf(p->auth_user, sizeof(p->auth_user), "%s", s);
    return 0;
}

static int
req_rbd(json_t *body, Pool *p, NbError **err)
{
    const char *rbd_pool, *key;
    size_t key_len;
    if (req_monitors(body, p, err) < 0 ||
        req_str(body, "rbd_pool", true, NB_ERR_POOL_INVALID_SOURCE, NB_NAME_MAX, &rbd_pool, err) <
            0)
        return -1;
    /* Ceph allows more, but this name reaches "pool/image" disk names and rbd's command line. */
    if (!nb_token_is_valid(rbd_pool, NB_NAME_MAX))
        return nb_error_set(err, NB_ERR_POOL_INVALID_SOURCE,
                            "field 'rbd_pool' must be a Ceph pool name: a letter or digit, then "
                            "letters, digits, '.', '_' or '-' (at most %d)",
                            NB_NAME_MAX);
    snprintf(p->source, sizeof(p->source), "%s", rbd_pool);
    if (req_user(body, true, p, err) < 0 ||
        req_str(body, "key", true, NB_ERR_POOL_INVALID_KEY, POOL_SECRET_MAX, &key, err) < 0)
        return -1;
    /* A cephx key is 16 bytes after a 12-byte header (40 base64 characters); 16..64 leaves
     * room for other key types while catching a pasted name or keyring line. */
    if (!base64_valid(key, &key_len) || key_len < 16 || key_len > 64)
        return nb_error_set(err, NB_ERR_POOL_INVALID_KEY,
                            "field 'key' must be the cephx key in base64 (16 to 64 bytes), as "
                            "`ceph auth get-key` prints it");
    snprintf(p->secret, sizeof(p->secret), "%s", key);
    return 0;
}

static int
req_iscsi(json_t *body, const char *name, Pool *p, NbError **err)
{
    const char *portal, *key;
    if (req_str(body, "portal", true, NB_ERR_POOL_INVALID_MONITOR, POOL_HOSTPORT_MAX, &portal,
                err) < 0 ||
        req_hostport("portal", portal, true, err) < 0)
        return -1;
    /* Stored with its port, so that every reader (XML, disks, answers) sees the same portal. */
    if (strchr(portal, ']') ? !strstr(portal, "]:") : !strchr(portal, ':'))
        snprintf(p->monitors[0], sizeof(p->monitors[0]), "%.*s:3260", POOL_HOSTPORT_MAX - 5,
                 portal);
    else
        snprintf(p->monitors[0], sizeof(p->monitors[0]), "%s", portal);
    p->n_monitors = 1;
    if (req_iqn(body, "target", true, p->source, sizeof(p->source), err) < 0 ||
        req_iqn(body, "initiator", false, p->initiator, sizeof(p->initiator), err) < 0)
        return -1;
    if (!p->initiator[0]) {
        /* IQNs compare case-insensitively; written in lower case as RFC 3722 normalises them. */
        int n = snprintf(p->initiator, sizeof(p->initiator), "iqn.2026-01.io.nimbus:%s", name);
        for (int i = 0; i < n; i++)
            p->initiator[i] = (char)tolower((unsigned char)p->initiator[i]);
    }
    if (req_user(body, false, p, err) < 0 ||
        req_str(body, "key", false, NB_ERR_POOL_INVALID_KEY, POOL_SECRET_MAX, &key, err) < 0)
        return -1;
    if (!p->auth_user[0] != !key)
        return nb_error_set(err, NB_ERR_POOL_INVALID_KEY,
                            "CHAP needs both 'user' and 'key' (or neither)");
    if (key) {
        size_t len = strlen(key);
        bool printable = len >= 12 && len <= 255;
        for (size_t i = 0; printable && i < len; i++)
            printable = key[i] >= 0x20 && key[i] < 0x7f;
        if (!printable)
            return nb_error_set(err, NB_ERR_POOL_INVALID_KEY,
                                "field 'key' must be a CHAP secret of 12 to 255 printable ASCII "
                                "characters");
        snprintf(p->secret, sizeof(p->secret), "%s", key);
    }
    return 0;
}

static int
req_netfs(json_t *body, const char *const *roots, Pool *p, NbError **err)
{
    const char *server, *export;
    if (req_str(body, "server", true, NB_ERR_POOL_INVALID_MONITOR, POOL_HOSTPORT_MAX, &server,
                err) < 0 ||
        req_hostport("server", server, false, err) < 0)
        return -1;
    snprintf(p->monitors[0], sizeof(p->monitors[0]), "%s", server);
    p->n_monitors = 1;
    if (req_str(body, "export", true, NB_ERR_POOL_INVALID_SOURCE, POOL_PATH_MAX, &export, err) < 0)
        return -1;
    if (!pool_path_valid(export))
        return nb_error_set(err, NB_ERR_POOL_INVALID_SOURCE,
                            "field 'export' must be the export's absolute path, without '.', "
                            "'..', '//' or a trailing '/', of letters, digits and '._+-/'");
    snprintf(p->source, sizeof(p->source), "%s", export);
    return req_path(body, "path", roots, p->path, err);
}

int
pool_from_request(json_t *body, const char *const *allowed_roots, Pool *ret, NbError **err)
{
    static const char *const fields[] = {"name",      "type",   "host",   "path",   "monitors",
                                         "rbd_pool",  "user",   "key",    "portal", "target",
                                         "initiator", "server", "export", "vg",     NULL};
    Pool p = {.type = _POOL_TYPE_INVALID};
    char type[32];
    if (json_req_check_fields(body, fields, err) < 0 ||
        json_req_name(body, "name", "pool", p.name, err) < 0)
        return -1;
    json_t *t = req_get(body, "type");
    if (!t)
        return nb_error_set(err, NB_ERR_INVALID_REQUEST, "field 'type' is required");
    if (!json_is_string(t))
        return nb_error_set(err, NB_ERR_INVALID_REQUEST, "field 'type' must be a string");
    snprintf(type, sizeof(type), "%s", json_string_value(t));
    p.type = pool_type_from_string(type);
    if (p.type == _POOL_TYPE_INVALID || strlen(json_string_value(t)) != json_string_length(t) ||
        json_string_length(t) >= sizeof(type))
        return nb_error_set(err, NB_ERR_POOL_INVALID_TYPE,
                            "type must be \"dir\", \"logical\", \"rbd\", \"iscsi\" or \"netfs\"");
    for (size_t i = 0; i < sizeof(pool_req_fields) / sizeof(pool_req_fields[0]); i++)
        if (req_get(body, pool_req_fields[i].name) && !(pool_req_fields[i].types & (1u << p.type)))
            return nb_error_set(err, NB_ERR_INVALID_REQUEST,
                                "field '%s' is not for a pool of type '%s'",
                                pool_req_fields[i].name, type);

    if (!pool_type_is_shared(p.type) && req_get(body, "host")) {
        const char *host;
        if (req_str(body, "host", false, NB_ERR_INVALID_NAME, NB_NAME_MAX, &host, err) < 0)
            return -1;
        if (!nb_name_is_valid(host))
            return nb_error_set(err, NB_ERR_INVALID_NAME,
                                "field 'host' must be a host's name: a letter or digit, then up "
                                "to 62 letters, digits, '.', '_' or '-'");
        snprintf(p.host, sizeof(p.host), "%s", host);
    }

    int r = 0;
    switch (p.type) {
    case POOL_TYPE_DIR:
        r = req_path(body, "path", allowed_roots, p.path, err);
        break;
    case POOL_TYPE_LOGICAL: {
        const char *vg;
        r = req_str(body, "vg", true, NB_ERR_POOL_INVALID_SOURCE, 127, &vg, err);
        if (r == 0 && !pool_vg_name_valid(vg))
            r = nb_error_set(err, NB_ERR_POOL_INVALID_SOURCE,
                             "field 'vg' must be an LVM volume group name: a letter, digit or "
                             "'_', then letters, digits and '._+-' (at most 127)");
        if (r == 0)
            snprintf(p.source, sizeof(p.source), "%s", vg);
        break;
    }
    case POOL_TYPE_RBD:
        r = req_rbd(body, &p, err);
        break;
    case POOL_TYPE_ISCSI:
        r = req_iscsi(body, p.name, &p, err);
        break;
    case POOL_TYPE_NETFS:
        r = req_netfs(body, allowed_roots, &p, err);
        break;
    default:
        r = nb_error_set(err, NB_ERR_POOL_INVALID_TYPE, "unknown pool type");
    }
    if (r < 0)
        return -1;
    *ret = p;
    return 0;
}

json_t *
pool_to_json(const Pool *p)
{
    json_t *j =
        json_pack("{s:s, s:s, s:s?, s:b, s:b, s:s, s:b, s:s}", "id", p->id, "name", p->name, "type",
                  pool_type_to_string(p->type), "shared", pool_type_is_shared(p->type), "default",
                  p->is_default, "libvirt_name", p->libvirt_name, "secret_set",
                  p->secret[0] != '\0', "created_at", p->created_at);
    if (!j)
        return NULL;
    size_t n_mon = p->n_monitors < POOL_MONITORS_MAX ? p->n_monitors : POOL_MONITORS_MAX;
    switch (p->type) {
    case POOL_TYPE_DIR:
        json_object_set_new(j, "host", json_string_or_null(p->host));
        json_object_set_new(j, "path", json_string(p->path));
        break;
    case POOL_TYPE_LOGICAL:
        json_object_set_new(j, "host", json_string_or_null(p->host));
        json_object_set_new(j, "vg", json_string(p->source));
        break;
    case POOL_TYPE_RBD: {
        json_t *mons = json_array();
        for (size_t i = 0; mons && i < n_mon; i++)
            json_array_append_new(mons, json_string(p->monitors[i]));
        json_object_set_new(j, "monitors", mons ? mons : json_null());
        json_object_set_new(j, "rbd_pool", json_string(p->source));
        json_object_set_new(j, "user", json_string_or_null(p->auth_user));
        break;
    }
    case POOL_TYPE_ISCSI:
        json_object_set_new(j, "portal", json_string_or_null(n_mon ? p->monitors[0] : ""));
        json_object_set_new(j, "target", json_string(p->source));
        json_object_set_new(j, "initiator", json_string(p->initiator));
        json_object_set_new(j, "user", json_string_or_null(p->auth_user));
        break;
    case POOL_TYPE_NETFS:
        json_object_set_new(j, "server", json_string_or_null(n_mon ? p->monitors[0] : ""));
        json_object_set_new(j, "export", json_string(p->source));
        json_object_set_new(j, "path", json_string(p->path));
        break;
    default:
        break;
    }
    return j;
}

json_t *
pool_host_state_to_json(const PoolHostState *s)
{
    return json_pack("{s:s, s:s, s:o, s:o, s:o, s:s}", "host", s->host, "state", s->state, "error",
                     json_string_or_null(s->error), "capacity",
                     s->capacity < 0 ? json_null() : json_integer(s->capacity), "allocation",
                     s->allocation < 0 ? json_null() : json_integer(s->allocation), "updated_at",
                     s->updated_at);
}
