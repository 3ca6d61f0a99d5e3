#include "agent_client.h"

#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../util/cleanup.h"
#include "../util/error_codes.h"
#include "../util/strutil.h"

#define AGENT_SECRET_LEN 64
#define AGENT_CONNECT_TIMEOUT_MS 5000L
#define AGENT_TOTAL_TIMEOUT_MS 15000L
#define AGENT_REPLY_MAX (1024 * 1024)

struct AgentClient {
    char *url; /* without a trailing slash */
    char *ca_file;
    char auth[sizeof("Authorization: Bearer ") + AGENT_SECRET_LEN];
};

/* The codes an agent answers with, as the static strings NbError wants. */
static const char *const agent_codes[] = {
    NB_ERR_UNAUTHORIZED,
    NB_ERR_NOT_FOUND,
    NB_ERR_METHOD_NOT_ALLOWED,
    NB_ERR_INVALID_JSON,
    NB_ERR_INVALID_REQUEST,
    NB_ERR_BODY_TOO_LARGE,
    NB_ERR_NAME_TAKEN,
    NB_ERR_HYPERVISOR,
    NB_ERR_INTERNAL,
    NB_ERR_NETWORK_INVALID_IFNAME,
    NB_ERR_NETWORK_INVALID_VNI,
    NB_ERR_NETWORK_INVALID_MTU,
    NB_ERR_IP_INVALID,
    NB_ERR_INVALID_NAME,
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void
curl_start(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

AgentClient *
agent_client_new(const char *url, const char *secret_hex, const char *ca_file, NbError **err)
{
    if (!url || !str_startswith(url, "https://") || strlen(url) <= strlen("https://") ||
        strlen(url) > 512) {
        nb_error_set(err, NB_ERR_INVALID_REQUEST, "the agent URL must be https://HOST:PORT");
        return NULL;
    }
    bool ok = secret_hex && strlen(secret_hex) == AGENT_SECRET_LEN;
    for (size_t i = 0; ok && i < AGENT_SECRET_LEN; i++) {
        char ch = secret_hex[i];
        ok = (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') || (ch >= 'A' && ch <= 'F');
    }
    if (!ok) {
        nb_error_set(err, NB_ERR_INVALID_REQUEST, "the agent secret must be 64 hex characters");
        return NULL;
    }
    if (!ca_file || access(ca_file, R_OK) < 0) {
        nb_error_set(err, NB_ERR_INVALID_REQUEST, "cannot read the agent CA file %s",
                     ca_file ? ca_file : "(none)");
        return NULL;
    }
    pthread_once(&curl_once, curl_start);
    AgentClient *c = calloc(1, sizeof(*c));
    if (!c || !(c->url = strdup(url)) || !(c->ca_file = strdup(ca_file))) {
        agent_client_free(c);
        nb_error_set(err, NB_ERR_INTERNAL, "out of memory");
        return NULL;
    }
    size_t n = strlen(c->url);
    while (n > strlen("https://") && c->url[n - 1] == '/')
        c->url[--n] = '\0';
    snprintf(c->auth, sizeof(c->auth), "Authorization: Bearer %s", secret_hex);
    return c;
}

void
agent_client_free(AgentClient *c)
{
    if (!c)
        return;
    explicit_bzero(c->auth, sizeof(c->auth));
    free(c->url);
    free(c->ca_file);
    free(c);
}

typedef struct Buf {
    char *data;
    size_t len;
} Buf;

static size_t
on_data(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    Buf *b = userdata;
    size_t n = size * nmemb;
    if (b->len + n > AGENT_REPLY_MAX)
        return 0; /* aborts the transfer */
    char *d = realloc(b->data, b->len + n + 1);
    if (!d)
        return 0;
    memcpy(d + b->len, ptr, n);
    b->len += n;
    d[b->len] = '\0';
    b->data = d;
    return n;
}

/* One request. body may be NULL. On 2xx *ret (when ret) gets the parsed reply (or NULL for an
 * empty one). */
static int
agent_request(AgentClient *c, const char *method, const char *path, json_t *body, json_t **ret,
              NbError **err)
{
    _cleanup_free_ char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    _cleanup_free_ char *url = str_printf("%s%s", c->url, path);
    if ((body && !text) || !url)
        return nb_error_set(err, NB_ERR_INTERNAL, "out of memory");
    CURL *h = curl_easy_init();
    if (!h)
        return nb_error_set(err, NB_ERR_INTERNAL, "cannot start a curl handle");
    struct curl_slist *hdrs = curl_slist_append(NULL, c->auth);
    if (hdrs && text)
        hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
    Buf reply = {0};
    char curl_err[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "https");
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_CAINFO, c->ca_file);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, AGENT_CONNECT_TIMEOUT_MS);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, AGENT_TOTAL_TIMEOUT_MS);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &reply);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, curl_err);
    if (text) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, text);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(text));
    }
    CURLcode cr = hdrs ? curl_easy_perform(h) : CURLE_OUT_OF_MEMORY;
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(hdrs); /* holds a copy of the secret: libcurl frees, the heap keeps it */
    curl_easy_cleanup(h);
    _cleanup_free_ char *data = reply.data;
    if (cr != CURLE_OK)
        return nb_error_set(err, NB_ERR_AGENT_UNAVAILABLE, "agent %s: %s", c->url,
                            curl_err[0] ? curl_err : curl_easy_strerror(cr));

    json_t *j = data && reply.len ? json_loadb(data, reply.len, 0, NULL) : NULL;
    if (status >= 200 && status < 300) {
        if (ret)
            *ret = j;
        else
            json_decref(j);
        return 0;
    }
    const char *code = NULL, *msg = NULL;
    json_t *e = json_object_get(j, "error");
    code = json_string_value(json_object_get(e, "code"));
    msg = json_string_value(json_object_get(e, "message"));
    const char *known = NULL;
    for (size_t i = 0; code && !known && i < ELEMENTSOF(agent_codes); i++)
        if (streq(code, agent_codes[i]))
            known = agent_codes[i];
    if (!code) {
        json_decref(j);
        return nb_error_set(err, NB_ERR_AGENT_UNAVAILABLE, "agent %s answered %ld without an error",
                            c->url, status);
    }
    if (known)
        nb_error_set(err, known, "agent %s: %s", c->url, msg ? msg : code);
    else
        nb_error_set(err, NB_ERR_HYPERVISOR, "agent %s: %s: %s", c->url, code, msg ? msg : "");
    json_decref(j);
    return -1;
}

int
agent_health(AgentClient *c, char **ret_version, uint64_t *ret_uptime_s, NbError **err)
{
    json_t *j = NULL;
    if (agent_request(c, "GET", "/v1/health", NULL, &j, err) < 0)
        return -1;
    const char *v = json_string_value(json_object_get(j, "version"));
    json_t *up = json_object_get(j, "uptime_s");
    if (!v || !json_is_integer(up)) {
        json_decref(j);
        return nb_error_set(err, NB_ERR_AGENT_UNAVAILABLE, "agent %s: malformed health reply",
                            c->url);
    }
    if (ret_version && !(*ret_version = strdup(v))) {
        json_decref(j);
        return nb_error_set(err, NB_ERR_INTERNAL, "out of memory");
    }
    if (ret_uptime_s)
        *ret_uptime_s = (uint64_t)json_integer_value(up);
    json_decref(j);
    return 0;
}

int
agent_vxlan_ensure(AgentClient *c, unsigned vni, const char *bridge, unsigned mtu,
                   const char *local_ip, const char *dev, const char *const *peers, size_t n_peers,
                   NbError **err)
{
    if (!bridge || !local_ip || !dev || (n_peers && !peers))
        return nb_error_set(err, NB_ERR_INVALID_REQUEST, "bridge, local_ip and dev are required");
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < n_peers; i++)
        if (!peers[i] || json_array_append_new(arr, json_string(peers[i])) < 0) {
            json_decref(arr);
            return nb_error_set(err, NB_ERR_INVALID_REQUEST, "peers[%zu] is not a string", i);
        }
    json_t *body = json_pack("{s:s, s:I, s:s, s:s, s:o*}", "bridge", bridge, "mtu", (json_int_t)mtu,
                             "local", local_ip, "dev", dev, "peers", arr);
    if (!body)
        return nb_error_set(err, NB_ERR_INVALID_REQUEST, "bridge, local_ip or dev is not UTF-8");
    char path[32];
    snprintf(path, sizeof(path), "/v1/vxlan/%u", vni);
    int r = agent_request(c, "PUT", path, body, NULL, err);
    json_decref(body);
    return r;
}

int
agent_vxlan_remove(AgentClient *c, unsigned vni, NbError **err)
{
    char path[32];
    snprintf(path, sizeof(path), "/v1/vxlan/%u", vni);
    return agent_request(c, "DELETE", path, NULL, NULL, err);
}

/* A tap name goes into the path: only what can be an interface name, so it cannot add
 * segments or a query. The agent checks its own rule (nbt + 12 hex) itself. */
static int
tap_path(const char *tap, char out[64], NbError **err)
{
    size_t n = tap ? strlen(tap) : 0;
    bool ok = n > 0 && n <= 15;
    for (size_t i = 0; ok && i < n; i++) {
        char ch = tap[i];
        ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
             ch == '_' || ch == '-' || (ch == '.' && i > 0);
    }
    if (!ok)
        return nb_error_set(err, NB_ERR_NETWORK_INVALID_IFNAME, "'%.32s' is not a tap name",
                            tap ? tap : "");
    snprintf(out, 64, "/v1/shaping/%s", tap);
    return 0;
}

/* The bridge goes into the path: nbr and 12 hex, so it cannot add segments or a query. */
static int
vlan_path(const char *bridge, char out[64], NbError **err)
{
    size_t n = bridge ? strlen(bridge) : 0;
    bool ok = n == 15 && strncmp(bridge, "nbr", 3) == 0;
    for (size_t i = 3; ok && i < n; i++)
        ok = (bridge[i] >= '0' && bridge[i] <= '9') || (bridge[i] >= 'a' && bridge[i] <= 'f');
    if (!ok)
        return nb_error_set(err, NB_ERR_NETWORK_INVALID_IFNAME,
                            "'%.32s' is not a segment's bridge name", bridge ? bridge : "");
    snprintf(out, 64, "/v1/vlan/%s", bridge);
    return 0;
}

int
agent_vlan_ensure(AgentClient *c, const char *bridge, unsigned vlan, const char *parent,
                  unsigned mtu, NbError **err)
{
    char path[64];
    if (vlan_path(bridge, path, err) < 0)
        return -1;
    if (!parent)
        return nb_error_set(err, NB_ERR_INVALID_REQUEST, "parent is required");
    json_t *body = json_pack("{s:I, s:s, s:I}", "vlan", (json_int_t)vlan, "parent", parent, "mtu",
                             (json_int_t)mtu);
    if (!body)
        return nb_error_set(err, NB_ERR_INVALID_REQUEST, "parent is not UTF-8");
    int r = agent_request(c, "PUT", path, body, NULL, err);
    json_decref(body);
    return r;
}

int
agent_vlan_remove(AgentClient *c, const char *bridge, NbError **err)
{
    char path[64];
    if (vlan_path(bridge, path, err) < 0)
        return -1;
    return agent_request(c, "DELETE", path, NULL, NULL, err);
}

int
agent_shaping_set(AgentClient *c, const char *tap, unsigned in_kbit, unsigned out_kbit,
                  NbError **err)
{
    char path[64];
    if (tap_path(tap, path, err) < 0)
        return -1;
    json_t *body =
        json_pack("{s:I, s:I}", "in_kbit", (json_int_t)in_kbit, "out_kbit", (json_int_t)out_kbit);
    if (!body)
        return nb_error_set(err, NB_ERR_INTERNAL, "out of memory");
    int r = agent_request(c, "PUT", path, body, NULL, err);
    json_decref(body);
    return r;
}

int
agent_shaping_clear(AgentClient *c, const char *tap, NbError **err)
{
    char path[64];
    if (tap_path(tap, path, err) < 0)
        return -1;
    return agent_request(c, "DELETE", path, NULL, NULL, err);
}

/* The key goes into the path: 12 lowercase hex digits, so it cannot add segments or a query. */
static int
dhcp_path(const char *key, char out[64], NbError **err)
{
    bool ok = key && strlen(key) == 12;
    for (size_t i = 0; ok && i < 12; i++)
        ok = (key[i] >= '0' && key[i] <= '9') || (key[i] >= 'a' && key[i] <= 'f');
    if (!ok)
        return nb_error_set(err, NB_ERR_NETWORK_INVALID_IFNAME,
                            "'%.32s' is not a DHCP server's key", key ? key : "");
    snprintf(out, 64, "/v1/dhcp/%s", key);
    return 0;
}

int
agent_dhcp_ensure(AgentClient *c, const char *key, const char *bridge, const char *mac,
                  const char *address, unsigned prefix, const char *router, const char *const *dns,
                  size_t n_dns, unsigned mtu, const AgentDhcpEntry *entries, size_t n_entries,
                  NbError **err)
{
    char path[64];
    if (dhcp_path(key, path, err) < 0)
        return -1;
    if (!bridge || !mac || !address || (n_dns && !dns) || (n_entries && !entries))
        return nb_error_set(err, NB_ERR_INVALID_REQUEST, "bridge, mac and address are required");
    json_t *jd = json_array(), *jh = json_array();
    for (size_t i = 0; jd && i < n_dns; i++)
        json_array_append_new(jd, json_string(dns[i]));
    for (size_t i = 0; jh && i < n_entries; i++)
        json_array_append_new(jh,
                              json_pack("{s:s, s:s}", "mac", entries[i].mac, "ip", entries[i].ip));
    json_t *body = json_pack("{s:s, s:s, s:s, s:I, s:o*, s:I, s:o*}", "bridge", bridge, "mac", mac,
                             "address", address, "prefix", (json_int_t)prefix, "dns", jd, "mtu",
                             (json_int_t)mtu, "hosts", jh);
    if (!body)
        return nb_error_set(err, NB_ERR_INTERNAL, "out of memory");
    if (router)
        json_object_set_new(body, "router", json_string(router));
    int r = agent_request(c, "PUT", path, body, NULL, err);
    json_decref(body);
    return r;
}

int
agent_dhcp_remove(AgentClient *c, const char *key, NbError **err)
{
    char path[64];
    if (dhcp_path(key, path, err) < 0)
        return -1;
    return agent_request(c, "DELETE", path, NULL, NULL, err);
}

/* nbs- and 24 lowercase hex: the only sets nimbusd asks for. */
static bool
ipset_name_is_valid(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    bool ok = n == 4 + 24 && strncmp(name, "nbs-", 4) == 0;
    for (size_t i = 4; ok && i < n; i++)
        ok = (name[i] >= '0' && name[i] <= '9') || (name[i] >= 'a' && name[i] <= 'f');
    return ok;
}

/* The set's name goes into the path: nbs- and 24 hex, so it cannot add segments or a query. */
static int
ipset_path(const char *name, char out[64], NbError **err)
{
    if (!ipset_name_is_valid(name))
        return nb_error_set(err, NB_ERR_INVALID_NAME, "'%.32s' is not an ipset name of nimbus",
                            name ? name : "");
    snprintf(out, 64, "/v1/ipsets/%s", name);
    return 0;
}

int
agent_ipset_set(AgentClient *c, const char *name, const uint32_t *ips, size_t n_ips, NbError **err)
{
    char path[64];
    if (ipset_path(name, path, err) < 0)
        return -1;
    json_t *members = json_array();
    json_t *body = json_pack("{s:o}", "members", members);
    if (!body)
        return nb_error_set(err, NB_ERR_INTERNAL, "out of memory");
    for (size_t i = 0; i < n_ips; i++) {
        char ip[16];
        snprintf(ip, sizeof(ip), "%u.%u.%u.%u", ips[i] >> 24, (ips[i] >> 16) & 0xff,
                 (ips[i] >> 8) & 0xff, ips[i] & 0xff);
        if (json_array_append_new(members, json_string(ip)) < 0) {
            json_decref(body);
            return nb_error_set(err, NB_ERR_INTERNAL, "out of memory");
        }
    }
    int r = agent_request(c, "PUT", path, body, NULL, err);
    json_decref(body);
    return r;
}

int
agent_ipset_remove(AgentClient *c, const char *name, NbError **err)
{
    char path[64];
    if (ipset_path(name, path, err) < 0)
        return -1;
    return agent_request(c, "DELETE", path, NULL, NULL, err);
}

/* A dotted quad (each part 0..255, digits only, no leading zero), host order. */
static bool
ipset_ipv4_parse(const char *s, uint32_t *ret)
{
    uint32_t ip = 0;
    for (int part = 0; part < 4; part++) {
        unsigned v = 0;
        size_t digits = 0;
        for (; s[digits] >= '0' && s[digits] <= '9' && digits < 4; digits++)
            v = v * 10 + (unsigned)(s[digits] - '0');
        if (digits == 0 || digits > 3 || v > 255 || (digits > 1 && s[0] == '0'))
            return false;
        s += digits;
        if (part < 3 && *s++ != '.')
            return false;
        ip = ip << 8 | v;
    }
    if (*s)
        return false;
    *ret = ip;
    return true;
}

void
agent_ipset_list_free(AgentIpsetInfo *l, size_t n)
{
    for (size_t i = 0; l && i < n; i++)
        free(l[i].members);
    free(l);
}

int
agent_ipset_list(AgentClient *c, AgentIpsetInfo **ret, size_t *ret_n, NbError **err)
{
    json_t *j = NULL;
    if (agent_request(c, "GET", "/v1/ipsets", NULL, &j, err) < 0)
        return -1;
    json_t *arr = json_object_get(j, "ipsets");
    size_t n = json_array_size(arr);
    AgentIpsetInfo *l = json_is_array(arr) ? calloc(n ? n : 1, sizeof(*l)) : NULL;
    bool ok = l != NULL;
    for (size_t i = 0; ok && i < n; i++) {
        json_t *e = json_array_get(arr, i);
        const char *name = json_string_value(json_object_get(e, "name"));
        json_t *members = json_object_get(e, "members"), *doomed = json_object_get(e, "doomed");
        ok = ipset_name_is_valid(name) && (!members || json_is_array(members)) &&
             (!doomed || json_is_boolean(doomed));
        size_t k = json_array_size(members);
        if (ok && k && !(l[i].members = calloc(k, sizeof(*l[i].members))))
            ok = false;
        for (size_t m = 0; ok && m < k; m++) {
            const char *ip = json_string_value(json_array_get(members, m));
            ok = ip && ipset_ipv4_parse(ip, &l[i].members[m]);
        }
        if (ok) {
            snprintf(l[i].name, sizeof(l[i].name), "%s", name);
            l[i].n_members = k;
            l[i].doomed = json_is_true(doomed);
        }
    }
    json_decref(j);
    if (!ok) {
        agent_ipset_list_free(l, n);
        return nb_error_set(err, NB_ERR_AGENT_UNAVAILABLE,
                            "agent %s: a malformed ipset list (or out of memory)", c->url);
    }
    *ret = l;
    *ret_n = n;
    return 0;
}
