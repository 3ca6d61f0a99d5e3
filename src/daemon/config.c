#include "config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../model/network.h"
#include "../model/pool.h"
#include "../model/validate.h"
#include "../util/strutil.h"

void
daemon_config_defaults(DaemonConfig *c)
{
    memset(c, 0, sizeof(*c));
    c->listen_host = strdup("127.0.0.1");
    c->port = 8773;
    c->state_dir = strdup("/var/lib/nimbus");
    c->libvirt_uri = strdup("qemu:///system");
    c->virt_type = strdup("kvm");
    c->pool_name = strdup("nimbus");
    c->pool_roots = strdup("/var/lib/nimbus/pools:/srv/nimbus");
    c->network = strdup("default");
    c->host_name = strdup("local");
    c->placement = strdup("spread");
    c->event_loop = strdup("epoll");
    c->default_network_pool = strdup("10.200.0.0/16");
    c->log_level = strdup("info");
    c->log_format = strdup("text");
    c->workers = 16;
    c->stop_timeout_s = 60;
    c->sync_interval_s = 10;
    c->quiet_sync_interval_s = 300;
    c->pool_check_interval_s = 300;
    c->connect_timeout_s = 15;
    c->store_readers = 4;
    c->retention_tasks_days = 30;
    c->retention_events_days = 90;
    c->retention_audit_days = 365;
    c->prune_interval_s = 3600;
    c->metrics_interval_s = 15;
    c->metrics_idle_after_s = 300;
    c->max_image_size_gib = 2048;
}

void
daemon_config_free(DaemonConfig *c)
{
    free(c->listen_host);
    free(c->state_dir);
    free(c->libvirt_uri);
    free(c->virt_type);
    free(c->pool_name);
    free(c->pool_path);
    free(c->pool_roots);
    free(c->network);
    free(c->host_name);
    free(c->placement);
    free(c->event_loop);
    free(c->default_network_pool);
    free(c->log_level);
    free(c->log_format);
    free(c->tls_cert);
    free(c->tls_key);
    free(c->web_root);
    free(c->web_origin);
    free(c->agent_url);
    free(c->agent_secret_file);
    free(c->agent_ca_file);
    free(c->console_allowed_origins);
    free(c->tunnel_ip);
    free(c->tunnel_dev);
}

static int
set_string(char **field, const char *value)
{
    char *dup = strdup(value);
    if (!dup)
        return -ENOMEM;
    free(*field);
    *field = dup;
    return 0;
}

static int
set_uint(unsigned *field, const char *key, const char *value, unsigned min, unsigned max,
         NbError **err)
{
    uint64_t v;
    if (str_to_u64(value, &v) < 0 || v < min || v > max)
        return nb_error_set(err, NB_ERR_INVALID_REQUEST, "%s must be an integer from %u to %u", key,
                            min, max);
    *field = (unsigned)v;
    return 0;
}

/* "127.0.0.1:8773" or "[::1]:8773" */
static int
set_listen(DaemonConfig *c, const char *value, NbError **err)
{
    const char *colon = strrchr(value, ':');
    if (!colon)
        return nb_error_set(err, NB_ERR_INVALID_REQUEST, "listen must be ADDRESS:PORT");
    _cleanup_free_ char *host = strndup(value, (size_t)(colon - value));
    if (!host)
        return -1;
    size_t hl = strlen(host);
    if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']') {
        memmove(host, host + 1, hl - 2);
        host[hl - 2] = '\0';
    }
    unsigned char buf[sizeof(struct in6_addr)];
    if (inet_pton(AF_INET, host, buf) != 1 && inet_pton(AF_INET6, host, buf) != 1)
        return nb_error_set(err, NB_ERR_INVALID_REQUEST,
                            "listen address must be a numeric IPv4 or IPv6 address");
    unsigned port = 0;
    if (set_uint(&port, "listen port", colon + 1, 0, 65535, err) < 0)
        return -1;
    free(c->listen_host);
    c->listen_host = TAKE_PTR(host);
    c->port = (uint16_t)port;
    return 0;
}

int
daemon_config_set(DaemonConfig *c, const char *key, const char *value, NbError **err)
{
    struct {
        const char *key;
        char **field;
    } strings[] = {
        {"state-dir", &c->state_dir},
        {"libvirt-uri", &c->libvirt_uri},
        {"virt-type", &c->virt_type},
        {"pool-name", &c->pool_name},
        {"pool-path", &c->pool_path},
        {"pool-roots", &c->pool_roots},
        {"network", &c->network},
        {"host-name", &c->host_name},
        {"log-level", &c->log_level},
        {"log-format", &c->log_format},
        {"tls-cert", &c->tls_cert},
        {"tls-key", &c->tls_key},
        {"web-root", &c->web_root},
        {"web-origin", &c->web_origin},
        {"placement", &c->placement},
        {"event-loop", &c->event_loop},
        {"default-network-pool", &c->default_network_pool},
        {"agent-url", &c->agent_url},
        {"agent-secret-file", &c->agent_secret_file},
        {"agent-ca-file", &c->agent_ca_file},
        {"tunnel-ip", &c->tunnel_ip},
        {"tunnel-dev", &c->tunnel_dev},
        {"console-allowed-origins", &c->console_allowed_origins},
    };
    for (size_t i = 0; i < ELEMENTSOF(strings); i++) {
        if (streq(key, strings[i].key)) {
            if (!*value)
                return nb_error_set(err, NB_ERR_INVALID_REQUEST, "%s must not be empty", key);
            return set_string(strings[i].field, value) < 0
                       ? nb_error_set(err, NB_ERR_INTERNAL, "out of memory")
                       : 0;
        }
    }
    if (streq(key, "listen"))
        return set_listen(c, value, err);
    if (streq(key, "workers"))
        return set_uint(&c->workers, key, value, 1, 256, err);
    if (streq(key, "stop-timeout"))
        return set_uint(&c->stop_timeout_s, key, value, 0, 3600, err);
    if (streq(key, "sync-interval"))
        return set_uint(&c->sync_interval_s, key, value, 1, 3600, err);
    if (streq(key, "quiet-sync-interval"))
        return set_uint(&c->quiet_sync_interval_s, key, value, 1, 86400, err);
    if (streq(key, "pool-check-interval"))
        return set_uint(&c->pool_check_interval_s, key, value, 0, 86400, err);
    if (streq(key, "connect-timeout"))
        return set_uint(&c->connect_timeout_s, key, value, 1, 600, err);
    if (streq(key, "store-sync")) {
        if (!streq(value, "normal") && !streq(value, "full"))
            return nb_error_set(err, NB_ERR_INVALID_REQUEST, "store-sync must be normal or full");
        c->store_sync_full = streq(value, "full");
        return 0;
    }
    if (streq(key, "store-readers"))
        return set_uint(&c->store_readers, key, value, 1, 64, err);
    if (streq(key, "retention-tasks-days"))
        return set_uint(&c->retention_tasks_days, key, value, 0, 36500, err);
    if (streq(key, "retention-events-days"))
        return set_uint(&c->retention_events_days, key, value, 0, 36500, err);
    if (streq(key, "retention-audit-days"))
        return set_uint(&c->retention_audit_days, key, value, 0, 36500, err);
    if (streq(key, "prune-interval"))
        return set_uint(&c->prune_interval_s, key, value, 60, 7 * 86400, err);
    if (streq(key, "metrics-interval"))
        return set_uint(&c->metrics_interval_s, key, value, 0, 3600, err);
    if (streq(key, "metrics-idle-after"))
        return set_uint(&c->metrics_idle_after_s, key, value, 0, 7 * 86400, err);
    if (streq(key, "max-image-size-gib")) {
        unsigned v = 0;
        if (set_uint(&v, key, value, 1, 1024 * 1024, err) < 0)
            return -1;
        c->max_image_size_gib = v;
        return 0;
    }
    return nb_error_set(err, NB_ERR_INVALID_REQUEST, "unknown setting '%.64s'", key);
}

static char *
trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
    return s;
}

int
daemon_config_load_file(DaemonConfig *c, const char *path, NbError **err)
{
    _cleanup_fclose_ FILE *f = fopen(path, "re");
    if (!f)
        return nb_error_set(err, NB_ERR_INVALID_REQUEST, "cannot open %s: %s", path,
                            strerror(errno));
    char line[1024];
    for (unsigned lineno = 1; fgets(line, sizeof(line), f); lineno++) {
        char *s = trim(line);
        if (!*s || *s == '#')
            continue;
        char *eq = strchr(s, '=');
        if (!eq)
            return nb_error_set(err, NB_ERR_INVALID_REQUEST, "%s:%u: expected key = value", path,
                                lineno);
        *eq = '\0';
        _cleanup_error_ NbError *e = NULL;
        if (daemon_config_set(c, trim(s), trim(eq + 1), &e) < 0)
            return nb_error_set(err, e->code, "%s:%u: %s", path, lineno, e->message);
    }
    return 0;
}

/* The local host's agent settings: the secret read from its file (64 hex, a trailing newline
 * is fine), the URL defaulting to the agent on this machine. */
static int
config_agent(const DaemonConfig *c, CoreConfig *ret, NbError **err)
{
    if (c->agent_url && !c->agent_secret_file)
        return nb_error_set(err, NB_ERR_INVALID_REQUEST, "agent-url needs agent-secret-file");
    if ((c->agent_secret_file || c->agent_url) && !c->agent_ca_file)
        return nb_error_set(err, NB_ERR_INVALID_REQUEST,
                            "an agent needs agent-ca-file (the PEM its certificate chains to)");
    if (!c->tunnel_ip != !c->tunnel_dev)
        return nb_error_set(err, NB_ERR_INVALID_REQUEST, "tunnel-ip and tunnel-dev go together");
    if (c->tunnel_ip && !c->agent_secret_file)
        return nb_error_set(err, NB_ERR_INVALID_REQUEST,
                            "tunnel-ip needs the local agent (agent-secret-file)");
    uint32_t ip;
    if (c->tunnel_ip && (ipv4_parse(c->tunnel_ip, &ip) < 0 || ip == 0 || ip == UINT32_MAX))
        return nb_error_set(err, NB_ERR_INVALID_REQUEST, "tunnel-ip must be an IPv4 address");
    if (c->tunnel_dev && !network_ifname_is_valid(c->tunnel_dev))
        return nb_error_set(err, NB_ERR_INVALID_REQUEST, "tunnel-dev must be an interface name");
    if (c->agent_url && host_agent_url_validate(c->agent_url, err) < 0)
        return -1;
    ret->agent_url = c->agent_url ? c->agent_url : "https://127.0.0.1:8775";
    ret->agent_ca_file = c->agent_ca_file;
    ret->tunnel_ip = c->tunnel_ip;
    ret->tunnel_dev = c->tunnel_dev;
    if (!c->agent_secret_file) {
        ret->agent_url = NULL;
        return 0;
    }
    _cleanup_fclose_ FILE *f = fopen(c->agent_secret_file, "re");
    char buf[128] = "";
    if (!f || !fgets(buf, sizeof(buf), f))
        return nb_error_set(err, NB_ERR_INVALID_REQUEST, "cannot read agent-secret-file %s: %s",
                            c->agent_secret_file, f ? "it is empty" : strerror(errno));
    char *s = trim(buf);
    size_t n = strlen(s);
    bool hex = n == HOST_AGENT_SECRET_LEN;
    for (size_t i = 0; hex && i < n; i++)
        hex = isxdigit((unsigned char)s[i]);
    if (!hex)
        return nb_error_set(err, NB_ERR_INVALID_REQUEST,
                            "agent-secret-file %s must hold %d hex characters",
                            c->agent_secret_file, HOST_AGENT_SECRET_LEN);
    for (size_t i = 0; i < n; i++)
        ret->agent_secret[i] = (char)tolower((unsigned char)s[i]);
    ret->agent_secret[n] = '\0';
    explicit_bzero(buf, sizeof(buf));
    return 0;
}

/* pool-roots: one to 16 absolute, normalised directories, colon-separated, none "/". */
static int
config_pool_roots_check(const char *roots, NbError **err)
{
    size_t n = 0;
    for (const char *at = roots;; n++) {
        size_t len = strcspn(at, ":");
        char dir[POOL_PATH_MAX + 1];
        if (len == 0 || len > POOL_PATH_MAX || n >= 16)
            return nb_error_set(err, NB_ERR_INVALID_REQUEST,
                                "pool-roots must be 1 to 16 absolute directories separated by "
                                "':'");
        memcpy(dir, at, len);
        dir[len] = '\0';
        if (!pool_path_valid(dir) || streq(dir, "/"))
            return nb_error_set(err, NB_ERR_INVALID_REQUEST,
                                "pool-roots: '%s' is not an absolute, normalised directory other "
                                "than /",
                                dir);
        if (!at[len])
            return 0;
        at += len + 1;
    }
}

int
daemon_config_to_core(const DaemonConfig *c, CoreConfig *ret, NbError **err)
{
    VirtType vt = virt_type_from_string(c->virt_type);
    /* "test" is not a choice: simulated hosts get it whatever this says (hv_conn_is_simulated). */
    if (vt == _VIRT_TYPE_INVALID || vt == VIRT_TYPE_TEST)
        return nb_error_set(err, NB_ERR_INVALID_REQUEST, "virt-type must be kvm or qemu");
    if (c->state_dir[0] != '/')
        return nb_error_set(err, NB_ERR_INVALID_REQUEST, "state-dir must be an absolute path");
    if (!streq(c->placement, "spread") && !streq(c->placement, "pack"))
        return nb_error_set(err, NB_ERR_INVALID_REQUEST, "placement must be spread or pack");
    if (hv_event_loop_from_string(c->event_loop) == _HV_EVENT_LOOP_INVALID)
        return nb_error_set(err, NB_ERR_INVALID_REQUEST, "event-loop must be epoll or libvirt");
    uint32_t pool_net;
    unsigned pool_prefix;
    if (cidr_parse(c->default_network_pool, &pool_net, &pool_prefix) < 0 || pool_prefix > 24)
        return nb_error_set(err, NB_ERR_INVALID_REQUEST,
                            "default-network-pool must be a network of /8 to /24, host bits "
                            "zero (like 10.200.0.0/16)");
    if (!nb_name_is_valid(c->host_name))
        return nb_error_set(err, NB_ERR_INVALID_REQUEST,
                            "host-name must be a name: letters, digits, '.', '_' and '-'");
    if (config_pool_roots_check(c->pool_roots, err) < 0)
        return -1;
    *ret = (CoreConfig){
        .state_dir = c->state_dir,
        .libvirt_uri = c->libvirt_uri,
        .host_name = c->host_name,
        .pool_name = c->pool_name,
        .pool_path = c->pool_path,
        .pool_roots = c->pool_roots,
        .network = c->network,
        .virt_type = vt,
        .placement = streq(c->placement, "pack") ? SCHED_PACK : SCHED_SPREAD,
        .workers = c->workers,
        .stop_timeout_ms = (uint64_t)c->stop_timeout_s * 1000u,
        .sync_interval_s = c->sync_interval_s,
        .quiet_sync_interval_s = c->quiet_sync_interval_s,
        .pool_check_interval_s = c->pool_check_interval_s,
        .connect_timeout_s = c->connect_timeout_s,
        .store = {.sync_full = c->store_sync_full, .readers = c->store_readers},
        .retention = {.tasks_days = c->retention_tasks_days,
                      .events_days = c->retention_events_days,
                      .audit_days = c->retention_audit_days},
        .prune_interval_s = c->prune_interval_s,
        .event_loop = hv_event_loop_from_string(c->event_loop),
        .default_network_pool = c->default_network_pool,
        .max_image_virtual_bytes = c->max_image_size_gib << 30,
    };
    return config_agent(c, ret, err);
}
