/* nimbusd configuration: defaults, then the config file, then the command line. */
#pragma once

#include <stdint.h>

#include "../core/core.h"

typedef struct DaemonConfig {
    char *listen_host;
    uint16_t port;
    char *state_dir;
    char *libvirt_uri;
    char *virt_type;
    char *pool_name;
    char *pool_path;  /* default <state_dir>/pool */
    char *pool_roots; /* where dir and netfs pools may be: "dir:dir" */
    char *network;
    char *host_name;
    char *placement;            /* spread or pack */
    char *event_loop;           /* epoll or libvirt */
    char *default_network_pool; /* CIDR the projects' default networks are cut from */
    char *log_level;
    char *log_format;
    char *tls_cert; /* PEM files: HTTPS when both are set */
    char *tls_key;
    /* The web console: its files (NULL: the installed ones, see main.c) and its public origin
     * when a reverse proxy changes it (NULL: the daemon's scheme and the request's Host). */
    char *web_root;
    char *web_origin;
    /* The local host's nimbus-agent and VXLAN underlay; the CA bundle for every host's agent. */
    char *agent_url;
    char *agent_secret_file;
    char *agent_ca_file;
    char *tunnel_ip;
    char *tunnel_dev;
    /* Origins besides the daemon's own whose pages may open console WebSockets. */
    char *console_allowed_origins;
    unsigned workers;
    unsigned stop_timeout_s;
    unsigned sync_interval_s;
    unsigned quiet_sync_interval_s;
    unsigned pool_check_interval_s;
    unsigned connect_timeout_s;
    bool store_sync_full;
    unsigned store_readers;
    unsigned retention_tasks_days, retention_events_days, retention_audit_days;
    unsigned prune_interval_s;
    unsigned metrics_interval_s; /* between two collections of host and VM metrics; 0: off */
    /* The collector pauses after this long without a scrape (at least 4 intervals); 0: never. */
    unsigned metrics_idle_after_s;
    uint64_t max_image_size_gib;
} DaemonConfig;

void daemon_config_defaults(DaemonConfig *c);
/* Applies "key = value" lines; unknown keys and bad values are errors (line numbers given). */
int daemon_config_load_file(DaemonConfig *c, const char *path, NbError **err);
/* Applies one setting by its key (config file key = long option name). */
int daemon_config_set(DaemonConfig *c, const char *key, const char *value, NbError **err);
void daemon_config_free(DaemonConfig *c);
/* Fills a CoreConfig borrowing c's strings. */
int daemon_config_to_core(const DaemonConfig *c, CoreConfig *ret, NbError **err);
