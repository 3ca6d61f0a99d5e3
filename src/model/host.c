#include "host.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "../util/strutil.h"
#include "enum_table.h"
#include "json_req.h"
#include "network.h"

static const char *const host_admin_table[_HOST_ADMIN_MAX] = {
    [HOST_ADMIN_ENABLED] = "enabled",
    [HOST_ADMIN_DISABLED] = "disabled",
    [HOST_ADMIN_MAINTENANCE] = "maintenance",
};
DEFINE_STRING_TABLE(host_admin, HostAdmin, host_admin_table)

static const char *const host_conn_table[_HOST_CONN_MAX] = {
    [HOST_CONN_CONNECTING] = "connecting",
    [HOST_CONN_UP] = "up",
    [HOST_CONN_DOWN] = "down",
};
DEFINE_STRING_TABLE(host_conn, HostConn, host_conn_table)

const char *
host_state_word(const Host *h)
{
    /* What the connection says comes first: a down host is down whatever its admin state. */
    if (h->conn == HOST_CONN_DOWN)
        return "down";
    if (h->conn == HOST_CONN_CONNECTING)
        return "connecting";
    if (h->admin == HOST_ADMIN_MAINTENANCE)
        return "maintenance";
    if (h->admin == HOST_ADMIN_DISABLED)
        return "disabled";
    return "up";
}

/* ---- libvirt URIs ----
 *
 * The URI reaches virConnectOpen, and for qemu+ssh the host, user, port and some query values
 * reach an ssh command line on the daemon's machine. So nothing is passed through that is not
 * understood: a fixed set of schemes and paths, a user and a host that cannot start with '-'
 * (no ssh option injection), and a short list of query keys whose values are plain words. The
 * keys that choose commands (command, netcat, proxy, mode...) are refused.
 */

static const char *const host_uri_remote_schemes[] = {"qemu+ssh", "qemu+tls", "qemu+tcp"};

/* Each key only with the transports that read it; nothing that libvirt would pass on to the
 * remote side unread. no_verify is refused for every transport: it turns off the check of the
 * server's certificate (tls) or host key (ssh), the one thing that makes these transports safe. */
enum {
    HOST_URI_SSH = 1 << 0,
    HOST_URI_TLS = 1 << 1,
    HOST_URI_TCP = 1 << 2,
};

static const struct {
    const char *key;
    unsigned schemes;
} host_uri_query_keys[] = {
    {"keyfile", HOST_URI_SSH},
    {"no_tty", HOST_URI_SSH},
    {"socket", HOST_URI_SSH},
    /* The directory of cacert.pem, clientcert.pem and private/clientkey.pem. */
    {"pkipath", HOST_URI_TLS},
    /* libvirt's auth file with the SASL user and password (auth_tcp or auth_tls = "sasl"). */
    {"authfile", HOST_URI_TLS | HOST_URI_TCP},
};

static unsigned
host_uri_scheme_bit(const char *scheme)
{
    if (streq(scheme, "qemu+ssh"))
        return HOST_URI_SSH;
    if (streq(scheme, "qemu+tls"))
        return HOST_URI_TLS;
    return HOST_URI_TCP;
}

static bool
is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool
is_lower(char c)
{
    return c >= 'a' && c <= 'z';
}

static bool
is_alnum(char c)
{
    return is_lower(c) || (c >= 'A' && c <= 'Z') || is_digit(c);
}

/* [a-z_][a-z0-9_-]{0,31} */
static bool
host_uri_user_is_valid(const char *s, size_t n)
{
    if (n == 0 || n > 32 || !(is_lower(s[0]) || s[0] == '_'))
        return false;
    for (size_t i = 1; i < n; i++)
        if (!is_lower(s[i]) && !is_digit(s[i]) && s[i] != '_' && s[i] != '-')
            return false;
    return true;
}

/* A dotted quad of 0..255 without leading zeros (which some resolvers read as octal). */
static bool
host_uri_ipv4_is_valid(const char *s, size_t n)
{
    unsigned parts = 0;
    size_t i = 0;
    while (i < n) {
        size_t start = i;
        unsigned v = 0;
        while (i < n && is_digit(s[i]) && i - start < 3)
            v = v * 10 + (unsigned)(s[i++] - '0');
        if (i == start || v > 255 || (s[start] == '0' && i - start > 1))
            return false;
        parts++;
        if (i < n) {
            if (s[i] != '.' || i + 1 == n)
                return false;
            i++;
        }
    }
    return parts == 4;
}

/* A DNS name (RFC 1123 labels joined by '.', at most 253 bytes, no trailing dot) or an IPv4
 * address. A name made only of digits and dots must be a valid IPv4 address. */
static bool
host_uri_host_is_valid(const char *s, size_t n)
{
    if (n == 0 || n > 253)
        return false;
    bool numeric = true;
    for (size_t i = 0; i < n; i++)
        numeric &= is_digit(s[i]) || s[i] == '.';
    if (numeric)
        return host_uri_ipv4_is_valid(s, n);
    size_t i = 0;
    while (i <= n) {
        const char *dot = memchr(s + i, '.', n - i);
        size_t len = dot ? (size_t)(dot - (s + i)) : n - i;
        char label[NB_HOSTNAME_MAX + 1];
        if (len == 0 || len > NB_HOSTNAME_MAX)
            return false;
        memcpy(label, s + i, len);
        label[len] = '\0';
        if (!nb_hostname_is_valid(label))
            return false;
        i += len + 1;
    }
    return true;
}

/* 1..65535, digits only, no leading zero. */
static bool
host_uri_port_is_valid(const char *s, size_t n)
{
    char buf[8];
    uint64_t v;
    if (n == 0 || n > 5 || s[0] == '0')
        return false;
    memcpy(buf, s, n);
    buf[n] = '\0';
    return str_to_u64(buf, &v) == 0 && v >= 1 && v <= 65535;
}

/* [A-Za-z0-9._/,:-]+ */
static bool
host_uri_query_value_is_valid(const char *s, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!is_alnum(s[i]) && !strchr("._/,:-", s[i]))
            return false;
    return true;
}

static int
host_uri_check_query(const char *uri, const char *scheme, const char *q, NbError **err)
{
    unsigned bit = host_uri_scheme_bit(scheme);
    bool seen[ELEMENTSOF(host_uri_query_keys)] = {false};
    while (*q) {
        const char *amp = strchr(q, '&');
        size_t n = amp ? (size_t)(amp - q) : strlen(q);
        const char *eq = memchr(q, '=', n);
        if (!eq)
            return nb_error_set(err, NB_ERR_INVALID_URI,
                                "uri '%.64s': query parameter '%.*s' must be key=value", uri,
                                (int)(n < 64 ? n : 64), q);
        size_t klen = (size_t)(eq - q);
        size_t k;
        for (k = 0; k < ELEMENTSOF(host_uri_query_keys); k++)
            if ((host_uri_query_keys[k].schemes & bit) &&
                strlen(host_uri_query_keys[k].key) == klen &&
                memcmp(host_uri_query_keys[k].key, q, klen) == 0)
                break;
        if (k == ELEMENTSOF(host_uri_query_keys))
            return nb_error_set(err, NB_ERR_INVALID_URI,
                                "uri '%.64s': query parameter '%.*s' is not allowed with %s "
                                "(allowed: %s)",
                                uri, (int)(klen < 64 ? klen : 64), q, scheme,
                                bit == HOST_URI_SSH   ? "keyfile, no_tty, socket"
                                : bit == HOST_URI_TLS ? "pkipath, authfile"
                                                      : "authfile");
        if (seen[k])
            return nb_error_set(err, NB_ERR_INVALID_URI,
                                "uri '%.64s': query parameter '%s' is given twice", uri,
                                host_uri_query_keys[k].key);
        seen[k] = true;
        if (!host_uri_query_value_is_valid(eq + 1, n - klen - 1))
            return nb_error_set(err, NB_ERR_INVALID_URI,
                                "uri '%.64s': the value of '%s' must match [A-Za-z0-9._/,:-]+", uri,
                                host_uri_query_keys[k].key);
        q += n;
        if (*q == '&') {
            q++;
            if (!*q)
                return nb_error_set(err, NB_ERR_INVALID_URI, "uri '%.64s': the query ends with '&'",
                                    uri);
        }
    }
    return 0;
}

/* scheme://[user@]host[:port]/system[?query], the scheme already checked. */
static int
host_uri_check_remote(const char *uri, const char *scheme, const char *rest, NbError **err)
{
    const char *slash = strchr(rest, '/');
    if (!slash || slash == rest)
        return nb_error_set(err, NB_ERR_INVALID_URI,
                            "uri '%.64s': %s needs a host: %s://[user@]host[:port]/system", uri,
                            scheme, scheme);
    const char *host = rest, *end = slash;
    const char *at = memchr(rest, '@', (size_t)(end - rest));
    if (at) {
        if (!host_uri_user_is_valid(rest, (size_t)(at - rest)))
            return nb_error_set(err, NB_ERR_INVALID_URI,
                                "uri '%.64s': the user must match [a-z_][a-z0-9_-]{0,31}", uri);
        host = at + 1;
    }
    const char *colon = memchr(host, ':', (size_t)(end - host));
    if (colon) {
        if (!host_uri_port_is_valid(colon + 1, (size_t)(end - colon - 1)))
            return nb_error_set(err, NB_ERR_INVALID_URI,
                                "uri '%.64s': the port must be a number from 1 to 65535", uri);
        end = colon;
    }
    if (!host_uri_host_is_valid(host, (size_t)(end - host)))
        return nb_error_set(err, NB_ERR_INVALID_URI,
                            "uri '%.64s': the host must be a DNS name (letters, digits, '-' and "
                            "'.') or an IPv4 address",
                            uri);
    if (!str_startswith(slash, "/system") || (slash[7] != '\0' && slash[7] != '?'))
        return nb_error_set(err, NB_ERR_INVALID_URI,
                            "uri '%.64s': the path must be /system, the system libvirtd", uri);
    if (slash[7] == '?') {
        if (slash[8] == '\0')
            return nb_error_set(err, NB_ERR_INVALID_URI, "uri '%.64s': the query is empty", uri);
        return host_uri_check_query(uri, scheme, slash + 8, err);
    }
    return 0;
}

/* The two ways to reach libvirt's test driver: in nimbusd's own process, or in the local
 * libvirtd over its UNIX socket (the simulated state then lives outside nimbusd, so that
 * nimbusd's own memory can be measured). */
static const char *
host_uri_test_scheme(const char *uri)
{
    if (str_startswith(uri, "test://"))
        return "test://";
    if (str_startswith(uri, "test+unix://"))
        return "test+unix://";
    return NULL;
}

/*
 * test:///default, or test:///ABSOLUTE/PATH.xml (or the same with test+unix): libvirt's test
 * driver reads that file (on the daemon's machine) as the simulated host's definition. The path
 * is kept to plain components ([A-Za-z0-9_-] and inner dots, none starting with '.'), so it
 * cannot climb out with "..", name a hidden file, or carry a query that libvirt would interpret.
 */
static int
host_uri_check_test(const char *uri, NbError **err)
{
    static const char usage[] = "test:///default or test:///ABSOLUTE/PATH.xml (or test+unix:)";
    const char *scheme = host_uri_test_scheme(uri);
    const char *path = scheme ? uri + strlen(scheme) : NULL;
    if (path && streq(path, "/default"))
        return 0;
    if (!path || path[0] != '/')
        return nb_error_set(err, NB_ERR_INVALID_URI,
                            "uri '%.64s': a simulated host is %s (no host part)", uri, usage);
    size_t n = strlen(path);
    if (n < strlen("/x.xml") || !streq(path + n - 4, ".xml"))
        return nb_error_set(err, NB_ERR_INVALID_URI,
                            "uri '%.64s': a simulated host is %s; the file name must end in .xml",
                            uri, usage);
    if (strstr(path, ".."))
        return nb_error_set(err, NB_ERR_INVALID_URI, "uri '%.64s': the path must not contain '..'",
                            uri);
    for (const char *c = path; *c; c++) {
        if (*c == '/') {
            if (c[1] == '/' || c[1] == '.' || c[1] == '\0')
                return nb_error_set(err, NB_ERR_INVALID_URI,
                                    "uri '%.64s': the path must be made of non-empty components "
                                    "that do not start with '.'",
                                    uri);
        } else if (!is_alnum(*c) && *c != '.' && *c != '_' && *c != '-') {
            return nb_error_set(err, NB_ERR_INVALID_URI,
                                "uri '%.64s': the path may hold only letters, digits, '.', '_', "
                                "'-' and '/'",
                                uri);
        }
    }
    return 0;
}

bool
host_uri_is_simulated(const char *uri)
{
    return uri && host_uri_test_scheme(uri) != NULL;
}

int
host_uri_validate(const char *uri, NbError **err)
{
    if (!uri || !*uri)
        return nb_error_set(err, NB_ERR_INVALID_URI, "uri must not be empty");
    size_t len = strlen(uri);
    if (len > NB_URI_MAX)
        return nb_error_set(err, NB_ERR_INVALID_URI, "uri is %zu bytes; the limit is %d", len,
                            NB_URI_MAX);
    /* Printable ASCII only, and none of what a shell, a URI or XML would treat specially. The
     * structural checks below are stricter still; this keeps the messages that echo the URI
     * free of control characters. */
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)uri[i];
        if (c <= 0x20 || c >= 0x7f || strchr("\"'`\\<>", c))
            return nb_error_set(err, NB_ERR_INVALID_URI,
                                "uri must be printable ASCII without spaces, quotes, '\\', "
                                "'<' or '>' (byte %zu)",
                                i);
    }
    const char *sep = strstr(uri, "://");
    if (!sep)
        return nb_error_set(err, NB_ERR_INVALID_URI,
                            "uri '%.64s' must look like qemu:///system or "
                            "qemu+ssh://[user@]host[:port]/system",
                            uri);
    size_t slen = (size_t)(sep - uri);
    char scheme[16] = "";
    if (slen < sizeof(scheme))
        snprintf(scheme, sizeof(scheme), "%.*s", (int)slen, uri);
    if (streq(scheme, "qemu")) {
        if (!streq(uri, "qemu:///system"))
            return nb_error_set(err, NB_ERR_INVALID_URI,
                                "uri '%.64s': a local host is exactly qemu:///system", uri);
        return 0;
    }
    if (streq(scheme, "test") || streq(scheme, "test+unix"))
        return host_uri_check_test(uri, err);
    for (size_t i = 0; i < ELEMENTSOF(host_uri_remote_schemes); i++)
        if (streq(scheme, host_uri_remote_schemes[i]))
            return host_uri_check_remote(uri, scheme, sep + 3, err);
    return nb_error_set(err, NB_ERR_INVALID_URI,
                        "uri '%.64s': the scheme must be qemu, qemu+ssh, qemu+tls, qemu+tcp or "
                        "test",
                        uri);
}

void
host_uri_hostname(const char *uri, char *out, size_t len)
{
    if (len == 0)
        return;
    out[0] = '\0';
    const char *sep = uri ? strstr(uri, "://") : NULL;
    if (!sep)
        return;
    const char *host = sep + 3;
    size_t n = strcspn(host, "/?");
    const char *at = memchr(host, '@', n);
    if (at) {
        n -= (size_t)(at + 1 - host);
        host = at + 1;
    }
    const char *colon = memchr(host, ':', n);
    if (colon)
        n = (size_t)(colon - host);
    snprintf(out, len, "%.*s", (int)n, host);
}

int
host_agent_url_validate(const char *url, NbError **err)
{
    static const char prefix[] = "https://";
    if (!url || !str_startswith(url, prefix))
        return nb_error_set(err, NB_ERR_INVALID_URI,
                            "agent_url must be https://HOST[:PORT] (the agent speaks HTTPS only)");
    const char *host = url + strlen(prefix);
    size_t n = strlen(host);
    if (n > 0 && host[n - 1] == '/')
        n--;
    const char *colon = memchr(host, ':', n);
    size_t hlen = colon ? (size_t)(colon - host) : n;
    if (!host_uri_host_is_valid(host, hlen) ||
        (colon && !host_uri_port_is_valid(colon + 1, n - hlen - 1)))
        return nb_error_set(err, NB_ERR_INVALID_URI,
                            "agent_url must be https://HOST[:PORT]: HOST a DNS name or an IPv4 "
                            "address, PORT 1..65535, nothing after it");
    return 0;
}

/* ---- requests ---- */

/* An optional string field of at most max bytes (no NUL inside): *ret NULL when absent or
 * null. */
static int
host_req_string(json_t *body, const char *key, size_t max, const char *code, const char **ret,
                NbError **err)
{
    json_t *v = json_object_get(body, key);
    *ret = NULL;
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_string(v))
        return nb_error_set(err, NB_ERR_INVALID_REQUEST, "field '%s' must be a string", key);
    if (json_string_length(v) > max || memchr(json_string_value(v), '\0', json_string_length(v)))
        return nb_error_set(err, code, "field '%s' is too long (at most %zu bytes)", key, max);
    *ret = json_string_value(v);
    return 0;
}

/* agent_url, agent_secret, tunnel_ip, tunnel_dev: see host.h. */
static int
host_req_agent(json_t *body, Host *h, NbError **err)
{
    const char *url, *secret, *tip, *tdev;
    if (host_req_string(body, "agent_url", NB_URI_MAX, NB_ERR_INVALID_URI, &url, err) < 0 ||
        host_req_string(body, "agent_secret", HOST_AGENT_SECRET_LEN, NB_ERR_INVALID_REQUEST,
                        &secret, err) < 0 ||
        host_req_string(body, "tunnel_ip", HOST_IPV4_STRLEN - 1, NB_ERR_IP_INVALID, &tip, err) <
            0 ||
        host_req_string(body, "tunnel_dev", HOST_IFNAME_MAX, NB_ERR_NETWORK_INVALID_IFNAME, &tdev,
                        err) < 0)
        return -1;
    if (secret) {
        if (strlen(secret) != HOST_AGENT_SECRET_LEN)
            return nb_error_set(err, NB_ERR_INVALID_REQUEST,
                                "agent_secret must be %d hex characters", HOST_AGENT_SECRET_LEN);
        for (size_t i = 0; i < HOST_AGENT_SECRET_LEN; i++) {
            char c = secret[i];
            if (!is_digit(c) && !(c >= 'a' && c <= 'f') && !(c >= 'A' && c <= 'F'))
                return nb_error_set(err, NB_ERR_INVALID_REQUEST,
                                    "agent_secret must be %d hex characters",
                                    HOST_AGENT_SECRET_LEN);
            /* Lowercase: the agent compares the bearer token byte for byte. */
            h->agent_secret[i] = (c >= 'A' && c <= 'F') ? (char)(c - 'A' + 'a') : c;
        }
        h->agent_secret[HOST_AGENT_SECRET_LEN] = '\0';
    }
    if (url) {
        if (!secret)
            return nb_error_set(err, NB_ERR_INVALID_REQUEST,
                                "agent_url needs agent_secret (the agent refuses requests "
                                "without it)");
        if (host_agent_url_validate(url, err) < 0)
            return -1;
        snprintf(h->agent_url, sizeof(h->agent_url), "%s", url);
    } else if (secret) {
        char host[NB_URI_MAX + 1];
        host_uri_hostname(h->uri, host, sizeof(host));
        if (!host[0])
            return nb_error_set(err, NB_ERR_INVALID_REQUEST,
                                "uri '%.64s' names no remote host: give agent_url", h->uri);
        /* The URI was validated: its host is at most 253 bytes, and this fits. */
        snprintf(h->agent_url, sizeof(h->agent_url), "https://%.240s:%d", host, HOST_AGENT_PORT);
        if (host_agent_url_validate(h->agent_url, err) < 0)
            return -1;
    }
    if (tip) {
        uint32_t ip;
        if (ipv4_parse(tip, &ip) < 0 || ip == 0 || ip == UINT32_MAX || (ip >> 28) == 14 ||
            (ip >> 24) == 127)
            return nb_error_set(err, NB_ERR_IP_INVALID,
                                "tunnel_ip '%.16s' must be a unicast IPv4 address", tip);
        snprintf(h->tunnel_ip, sizeof(h->tunnel_ip), "%s", tip);
    }
    if (tdev) {
        if (!network_ifname_is_valid(tdev) || str_startswith(tdev, "nb"))
            return nb_error_set(
                err, NB_ERR_NETWORK_INVALID_IFNAME,
                "tunnel_dev must be a host interface name ([A-Za-z0-9][A-Za-z0-9_.-]"
                "{0,14}, not one of Nimbus's nb* devices)");
        snprintf(h->tunnel_dev, sizeof(h->tunnel_dev), "%s", tdev);
    }
    if (!tip != !tdev)
        return nb_error_set(err, NB_ERR_INVALID_REQUEST,
                            "tunnel_ip and tunnel_dev go together (the VXLAN underlay's address "
                            "and its device)");
    if (tip && !h->agent_url[0])
        return nb_error_set(err, NB_ERR_INVALID_REQUEST,
                            "a tunnel needs the host's agent: give agent_secret (and agent_url)");
    return 0;
}

/* An optional ratio: absent or null leaves *ret; a number in (0, HOST_RATIO_MAX] otherwise.
 * *given tells whether the field was there. */
static int
host_req_ratio(json_t *body, const char *key, double *ret, bool *given, NbError **err)
{
    json_t *v = json_object_get(body, key);
    if (!v || json_is_null(v))
        return 0;
    double d = json_is_number(v) ? json_number_value(v) : NAN;
    if (!(d > 0 && d <= HOST_RATIO_MAX))
        return nb_error_set(err, NB_ERR_INVALID_REQUEST,
                            "field '%s' must be a number greater than 0 and at most %g", key,
                            HOST_RATIO_MAX);
    *ret = d;
    *given = true;
    return 0;
}

static int
host_req_ratios_and_labels(json_t *body, Host *h, bool *given, NbError **err)
{
    if (host_req_ratio(body, "cpu_ratio", &h->cpu_ratio, given, err) < 0 ||
        host_req_ratio(body, "ram_ratio", &h->ram_ratio, given, err) < 0 ||
        host_req_ratio(body, "disk_ratio", &h->disk_ratio, given, err) < 0)
        return -1;
    json_t *labels = json_object_get(body, "labels");
    if (labels && !json_is_null(labels)) {
        if (labels_from_json(labels, &h->labels, err) < 0)
            return -1;
        *given = true;
    }
    return 0;
}

int
host_create_request_parse(json_t *body, Host *ret, NbError **err)
{
    static const char *const fields[] = {"name",       "uri",        "cpu_ratio", "ram_ratio",
                                         "disk_ratio", "labels",     "agent_url", "agent_secret",
                                         "tunnel_ip",  "tunnel_dev", NULL};
    Host h = {
        .admin = HOST_ADMIN_ENABLED,
        .conn = HOST_CONN_CONNECTING,
        .cpu_ratio = HOST_DEFAULT_CPU_RATIO,
        .ram_ratio = HOST_DEFAULT_RAM_RATIO,
        .disk_ratio = HOST_DEFAULT_DISK_RATIO,
    };
    bool given = false;

    if (json_req_check_fields(body, fields, err) < 0 ||
        json_req_name(body, "name", "host", h.name, err) < 0)
        return -1;
    /* Read the URI as it is, so an over-long one is INVALID_URI rather than a size error. */
    json_t *uri = json_object_get(body, "uri");
    if (!uri || json_is_null(uri))
        return nb_error_set(err, NB_ERR_INVALID_REQUEST, "field 'uri' is required");
    if (!json_is_string(uri))
        return nb_error_set(err, NB_ERR_INVALID_REQUEST, "field 'uri' must be a string");
    if (json_string_length(uri) > NB_URI_MAX)
        return nb_error_set(err, NB_ERR_INVALID_URI, "uri is %zu bytes; the limit is %d",
                            json_string_length(uri), NB_URI_MAX);
    if (memchr(json_string_value(uri), '\0', json_string_length(uri)))
        return nb_error_set(err, NB_ERR_INVALID_URI, "uri must not contain NUL");
    if (host_uri_validate(json_string_value(uri), err) < 0)
        return -1;
    memcpy(h.uri, json_string_value(uri), json_string_length(uri) + 1);
    if (host_req_ratios_and_labels(body, &h, &given, err) < 0 || host_req_agent(body, &h, err) < 0)
        return -1;
    if (nb_uuid_generate(h.id) < 0)
        return nb_error_set(err, NB_ERR_INTERNAL, "cannot generate a host id");
    nb_timestamp_now(h.created_at);
    memcpy(h.updated_at, h.created_at, sizeof(h.updated_at));
    *ret = h;
    return 0;
}

int
host_update_request_parse(json_t *body, Host *h, NbError **err)
{
    static const char *const fields[] = {"cpu_ratio", "ram_ratio", "disk_ratio", "labels", NULL};
    Host copy = *h;
    bool given = false;

    /* Into a copy: a refused request leaves *h as it was. */
    if (json_req_check_fields(body, fields, err) < 0 ||
        host_req_ratios_and_labels(body, &copy, &given, err) < 0)
        return -1;
    if (!given)
        return nb_error_set(err, NB_ERR_INVALID_REQUEST,
                            "nothing to change: give cpu_ratio, ram_ratio, disk_ratio or labels");
    nb_timestamp_now(copy.updated_at);
    *h = copy;
    return 0;
}

/* Ratios are taken to a millionth, so that capacity is an exact integer floor: 100 × 0.29 is
 * 28.999999999999996 in binary floating point, but the operator meant 29. */
#define RATIO_SCALE UINT64_C(1000000)
static uint64_t
add_sat(uint64_t a, uint64_t b)
{
    uint64_t r;
    return __builtin_add_overflow(a, b, &r) ? UINT64_MAX : r;
}

static uint64_t
mul_sat(uint64_t a, uint64_t b)
{
    uint64_t r;
    return __builtin_mul_overflow(a, b, &r) ? UINT64_MAX : r;
}

uint64_t
host_capacity(uint64_t raw, double ratio)
{
    if (raw == 0 || !(ratio > 0.0))
        return 0;
    double scaled = ratio * (double)RATIO_SCALE + 0.5;
    if (!(scaled < 18446744073709551616.0)) /* 2^64, and +inf */
        return UINT64_MAX;
    uint64_t r = (uint64_t)scaled; /* ratio × 10^6, rounded */
    /* raw × r / S = raw × rq + q × rr + rem × rr / S, with raw = q S + rem and r = rq S + rr;
     * the first two terms are whole, and rem × rr < S² cannot overflow. */
    uint64_t q = raw / RATIO_SCALE, rem = raw % RATIO_SCALE;
    uint64_t rq = r / RATIO_SCALE, rr = r % RATIO_SCALE;
    return add_sat(add_sat(mul_sat(raw, rq), mul_sat(q, rr)), rem * rr / RATIO_SCALE);
}

/* {used, total, capacity[, free]}: capacity is what the ratio lets Nimbus place. */
static json_t *
host_resource_json(uint64_t used, uint64_t total, double ratio, const uint64_t *free_)
{
    json_t *j = json_pack("{s:I, s:I, s:I}", "used", (json_int_t)used, "total", (json_int_t)total,
                          "capacity", (json_int_t)host_capacity(total, ratio));
    if (j && free_)
        json_object_set_new(j, "free", json_integer((json_int_t)*free_));
    return j;
}

/* {"url", "secret_set"} or null: the secret itself never leaves the store. */
static json_t *
host_agent_json(const Host *h)
{
    if (!h->agent_url[0])
        return json_null();
    return json_pack("{s:s, s:b}", "url", h->agent_url, "secret_set", h->agent_secret[0] != '\0');
}

json_t *
host_to_json(const Host *h)
{
    const HostFacts *f = &h->facts;
    json_t *j = json_pack(
        "{s:s, s:s, s:s, s:s, s:s, s:s, s:f, s:f, s:f, s:o, s:o, s:o, s:o, s:I, s:o, s:o, s:o, "
        "s:o, s:o, s:o, s:s, s:s, s:b}",
        "id", h->id, "name", h->name, "uri", h->uri, "state", host_state_word(h), "admin",
        host_admin_to_string(h->admin), "connection", host_conn_to_string(h->conn), "cpu_ratio",
        h->cpu_ratio, "ram_ratio", h->ram_ratio, "disk_ratio", h->disk_ratio, "labels",
        labels_to_json(&h->labels), "vcpus",
        host_resource_json(h->vcpus_used, f->vcpus, h->cpu_ratio, NULL), "ram_mib",
        host_resource_json(h->ram_used_mib, f->ram_mib, h->ram_ratio, &f->free_ram_mib), "disk_gib",
        host_resource_json(h->disk_used_gib, f->disk_gib, h->disk_ratio, &f->disk_free_gib), "vms",
        (json_int_t)h->vms, "hostname", json_string_or_null(f->hostname), "cpu_model",
        json_string_or_null(f->cpu_model), "libvirt_version",
        json_string_or_null(f->libvirt_version), "qemu_version",
        json_string_or_null(f->qemu_version), "last_contact", json_string_or_null(h->last_contact),
        "error", json_string_or_null(h->error), "created_at", h->created_at, "updated_at",
        h->updated_at, "simulated", host_uri_is_simulated(h->uri));
    if (j) {
        json_object_set_new(j, "agent", host_agent_json(h));
        json_object_set_new(j, "tunnel_ip", json_string_or_null(h->tunnel_ip));
        json_object_set_new(j, "tunnel_dev", json_string_or_null(h->tunnel_dev));
    }
    return j;
}
