/* nimbusd: the Nimbus controller. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../api/api.h"
#include "../core/metrics.h"
#include "../store/store.h"
#include "../util/log.h"
#include "../util/strutil.h"
#include "config.h"
#include "sd_notify.h"

#define DEFAULT_CONFIG "/etc/nimbus/nimbusd.conf"

static void
usage(FILE *out)
{
    fprintf(out,
            "Usage: nimbusd [OPTIONS]\n"
            "  --config FILE          settings file (default " DEFAULT_CONFIG " if present)\n"
            "  --listen ADDR:PORT     API address (default 127.0.0.1:8773)\n"
            "  --state-dir DIR        store, console logs, admin token (default "
            "/var/lib/nimbus)\n"
            "  --libvirt-uri URI      hypervisor (default qemu:///system)\n"
            "  --virt-type kvm|qemu   qemu = software emulation (TCG), for tests (default kvm)\n"
            "  --pool-name NAME       libvirt storage pool Nimbus owns (default nimbus)\n"
            "  --pool-path DIR        its directory (default STATE-DIR/pool)\n"
            "  --pool-roots DIR[:DIR]...  where dir and netfs pools may be made (default\n"
            "                         /var/lib/nimbus/pools:/srv/nimbus)\n"
            "  --network NAME         libvirt network for VMs (default default)\n"
            "  --host-name NAME       the name this host is registered under (default local)\n"
            "  --placement spread|pack  spread VMs over hosts, or fill hosts in turn (default "
            "spread)\n"
            "  --workers N            task workers (default 16)\n"
            "  --stop-timeout SECONDS graceful stop before power-off (default 60)\n"
            "  --sync-interval SECONDS each host's look at its domains (default 10)\n"
            "  --quiet-sync-interval SECONDS the same look at a host where nothing happened\n"
            "                        (default 300)\n"
            "  --pool-check-interval SECONDS each host's storage pools looked at (default 300;\n"
            "                        0: only when the host connects)\n"
            "  --connect-timeout SECONDS a host not connected by then is down (default 15)\n"
            "  --store-sync normal|full  SQLite synchronous mode (default normal)\n"
            "  --store-readers N      read-only store connections (default 4)\n"
            "  --event-loop epoll|libvirt  the loop libvirt's connections run on (default epoll)\n"
            "  --default-network-pool CIDR  where projects' default networks are cut from, a /24\n"
            "                         each (default 10.200.0.0/16)\n"
            "  --retention-tasks-days N, --retention-events-days N, --retention-audit-days N\n"
            "                         how long finished tasks, VM events and audit rows are\n"
            "                         kept (defaults 30, 90, 365; 0 keeps them forever)\n"
            "  --prune-interval SECONDS between two prunes of the journal (default 3600)\n"
            "  --max-image-size-gib N refuse images larger than this (default 2048)\n"
            "  --metrics-interval SECONDS between two collections of host and VM metrics for\n"
            "                         GET /metrics (default 15; 0: off)\n"
            "  --metrics-idle-after SECONDS without a scrape after which the collection pauses\n"
            "                         until the next scrape (default 300, at least 4 intervals;\n"
            "                         0: never pauses)\n"
            "  --tls-cert FILE        serve HTTPS with this PEM certificate (chain)\n"
            "  --tls-key FILE         and this PEM private key\n"
            "  --web-root DIR         the web console's files (default " NIMBUS_WEB_ROOT ")\n"
            "  --web-origin URL       the console's origin when a proxy changes it\n"
            "                         (https://nimbus.example.com); checked against Origin\n"
            "  --console-allowed-origins LIST  other origins whose pages may open consoles\n"
            "  --agent-url URL        this host's nimbus-agent (default https://127.0.0.1:8775)\n"
            "  --agent-secret-file FILE  its secret (64 hex); without it the host has no agent\n"
            "  --agent-ca-file FILE   PEM bundle every host's agent certificate must chain to\n"
            "  --tunnel-ip IP, --tunnel-dev DEV  this host's VXLAN underlay address and device\n"
            "  --log-level LEVEL      debug, info, warn, error (default info)\n"
            "  --log-format FORMAT    text, or json: one object a line, with request, task and\n"
            "                         VM ids as fields (default text)\n"
            "  --version, --help\n");
}

static const struct option long_options[] = {
    {"config", required_argument, NULL, 'c'},
    {"listen", required_argument, NULL, 0},
    {"state-dir", required_argument, NULL, 0},
    {"libvirt-uri", required_argument, NULL, 0},
    {"virt-type", required_argument, NULL, 0},
    {"pool-name", required_argument, NULL, 0},
    {"pool-path", required_argument, NULL, 0},
    {"pool-roots", required_argument, NULL, 0},
    {"network", required_argument, NULL, 0},
    {"host-name", required_argument, NULL, 0},
    {"placement", required_argument, NULL, 0},
    {"workers", required_argument, NULL, 0},
    {"stop-timeout", required_argument, NULL, 0},
    {"sync-interval", required_argument, NULL, 0},
    {"quiet-sync-interval", required_argument, NULL, 0},
    {"pool-check-interval", required_argument, NULL, 0},
    {"connect-timeout", required_argument, NULL, 0},
    {"store-sync", required_argument, NULL, 0},
    {"store-readers", required_argument, NULL, 0},
    {"event-loop", required_argument, NULL, 0},
    {"default-network-pool", required_argument, NULL, 0},
    {"retention-tasks-days", required_argument, NULL, 0},
    {"retention-events-days", required_argument, NULL, 0},
    {"retention-audit-days", required_argument, NULL, 0},
    {"prune-interval", required_argument, NULL, 0},
    {"max-image-size-gib", required_argument, NULL, 0},
    {"metrics-interval", required_argument, NULL, 0},
    {"metrics-idle-after", required_argument, NULL, 0},
    {"log-level", required_argument, NULL, 0},
    {"log-format", required_argument, NULL, 0},
    {"tls-cert", required_argument, NULL, 0},
    {"tls-key", required_argument, NULL, 0},
    {"web-root", required_argument, NULL, 0},
    {"web-origin", required_argument, NULL, 0},
    {"console-allowed-origins", required_argument, NULL, 0},
    {"agent-url", required_argument, NULL, 0},
    {"agent-secret-file", required_argument, NULL, 0},
    {"agent-ca-file", required_argument, NULL, 0},
    {"tunnel-ip", required_argument, NULL, 0},
    {"tunnel-dev", required_argument, NULL, 0},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, 'V'},
    {NULL, 0, NULL, 0},
};

/* The installed console; a daemon run from its build directory serves the source tree's, so
 * that it can be tried and tested without installing. NULL: neither is there. */
static const char *
web_root_default(void)
{
    struct stat sb;
    if (stat(NIMBUS_WEB_ROOT, &sb) == 0 && S_ISDIR(sb.st_mode))
        return NIMBUS_WEB_ROOT;
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n <= 0)
        return NULL;
    exe[n] = '\0';
    if (str_startswith(exe, NIMBUS_BUILD_ROOT "/") && stat(NIMBUS_SOURCE_WEB_ROOT, &sb) == 0 &&
        S_ISDIR(sb.st_mode))
        return NIMBUS_SOURCE_WEB_ROOT;
    return NULL;
}

/* Two passes: find --config first so the command line wins over the file. */
static int
parse_args(int argc, char **argv, DaemonConfig *cfg)
{
    const char *config = access(DEFAULT_CONFIG, R_OK) == 0 ? DEFAULT_CONFIG : NULL;
    int opt, idx;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, "c:hV", long_options, &idx)) != -1) {
        if (opt == 'c')
            config = optarg;
        else if (opt == 'h') {
            usage(stdout);
            exit(EXIT_SUCCESS);
        } else if (opt == 'V') {
            printf("nimbusd 0.1.0\n");
            exit(EXIT_SUCCESS);
        } else if (opt == '?') {
            fprintf(stderr, "nimbusd: bad option '%s'\n", argv[optind - 1]);
            usage(stderr);
            return -1;
        }
    }
    if (config) {
        _cleanup_error_ NbError *err = NULL;
        if (daemon_config_load_file(cfg, config, &err) < 0) {
            fprintf(stderr, "nimbusd: %s\n", err->message);
            return -1;
        }
    }
    optind = 1;
    while ((opt = getopt_long(argc, argv, "c:hV", long_options, &idx)) != -1) {
        if (opt != 0)
            continue;
        _cleanup_error_ NbError *err = NULL;
        if (daemon_config_set(cfg, long_options[idx].name, optarg, &err) < 0) {
            fprintf(stderr, "nimbusd: --%s: %s\n", long_options[idx].name, err->message);
            return -1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "nimbusd: unexpected argument '%s'\n", argv[optind]);
        return -1;
    }
    return 0;
}

static bool
is_loopback(const char *host)
{
    return str_startswith(host, "127.") || streq(host, "::1");
}

/*
 * GLib (under libvirt) keeps a slab cache per thread, some 24 KiB each once a thread has made a
 * libvirt call; with a worker thread per host that was a third of nimbusd's memory at 1,500
 * hosts. G_SLICE=always-malloc turns it off (GLib 2.76 dropped the slab allocator altogether),
 * but GLib reads it in its own constructor, before main: so nimbusd starts itself again with it
 * set (same pid, same arguments). An operator's own G_SLICE is left alone; if the exec fails,
 * nimbusd goes on with the slabs.
 */
static void
daemon_use_plain_malloc(char **argv)
{
    if (getenv("G_SLICE"))
        return;
    if (setenv("G_SLICE", "always-malloc", 1) < 0)
        return;
    execv("/proc/self/exe", argv);
    unsetenv("G_SLICE");
}

int
main(int argc, char **argv)
{
    DaemonConfig cfg;
    CoreConfig core_cfg;
    Core *core = NULL;
    HttpServer *server = NULL;
    MetricsCollector *collector = NULL;
    _cleanup_free_ char *token_path = NULL, *tls_cert = NULL, *tls_key = NULL;
    _cleanup_error_ NbError *err = NULL;
    int rc = EXIT_FAILURE;

    daemon_use_plain_malloc(argv);

    daemon_config_defaults(&cfg);
    if (parse_args(argc, argv, &cfg) < 0) {
        daemon_config_free(&cfg);
        return 2;
    }
    LogLevel level;
    if (log_level_from_string(cfg.log_level, &level) < 0) {
        fprintf(stderr, "nimbusd: --log-level must be debug, info, warn or error\n");
        daemon_config_free(&cfg);
        return 2;
    }
    log_set_level(level);
    LogFormat format;
    if (log_format_from_string(cfg.log_format, &format) < 0) {
        fprintf(stderr, "nimbusd: --log-format must be text or json\n");
        daemon_config_free(&cfg);
        return 2;
    }
    log_set_format(format);
    if (!cfg.pool_path)
        cfg.pool_path = str_printf("%s/pool", cfg.state_dir);
    if (!cfg.tls_cert != !cfg.tls_key) {
        fprintf(stderr, "nimbusd: --tls-cert and --tls-key go together\n");
        daemon_config_free(&cfg);
        return 2;
    }
    if (cfg.tls_cert) {
        int r1 = read_file_full(cfg.tls_cert, 1 << 20, &tls_cert, NULL);
        int r2 = r1 < 0 ? 0 : read_file_full(cfg.tls_key, 1 << 20, &tls_key, NULL);
        if (r1 < 0 || r2 < 0) {
            fprintf(stderr, "nimbusd: cannot read %s: %s\n", r1 < 0 ? cfg.tls_cert : cfg.tls_key,
                    strerror(-(r1 < 0 ? r1 : r2)));
            daemon_config_free(&cfg);
            return 2;
        }
    }
    if (daemon_config_to_core(&cfg, &core_cfg, &err) < 0) {
        fprintf(stderr, "nimbusd: %s\n", err->message);
        daemon_config_free(&cfg);
        return 2;
    }

    /* Signals are taken synchronously by the main thread; every other thread blocks them. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    log_info("nimbusd 0.1.0 starting: libvirt %s, virt-type %s, state in %s", cfg.libvirt_uri,
             cfg.virt_type, cfg.state_dir);
    if (core_start(&core_cfg, &core, &err) < 0) {
        log_error("cannot start: %s", err->message);
        goto out;
    }
    token_path = str_printf("%s/admin.token", cfg.state_dir);
    if (!token_path || auth_bootstrap_admin_token(core, token_path, &err) < 0) {
        log_error("cannot create the admin token: %s", err ? err->message : "out of memory");
        goto out;
    }
    api_console_set_allowed_origins(cfg.console_allowed_origins);
    if (tls_cert && api_metrics_set_tls_cert(tls_cert) < 0)
        log_warn("cannot read the expiry of %s: /metrics will not export it", cfg.tls_cert);
    metrics_set_store_stats(store_stats);
    int mrc =
        metrics_collector_start(core, cfg.metrics_interval_s, cfg.metrics_idle_after_s, &collector);
    if (mrc < 0)
        log_warn("cannot start the metrics collector: %s", strerror(-mrc));
    const char *web_root = cfg.web_root ? cfg.web_root : web_root_default();
    if (api_web_configure(web_root, cfg.web_origin) < 0) {
        log_error("out of memory");
        goto out;
    }
    if (!web_root)
        log_warn("no web console: %s is missing (see --web-root)", NIMBUS_WEB_ROOT);
    HttpServerConfig http = {
        .listen_host = cfg.listen_host,
        .port = cfg.port,
        .routes = api_routes,
        .ctx = core,
        .authenticate = auth_authenticate,
        .principal_free = auth_principal_free,
        .authorize = auth_authorize,
        .on_complete = api_on_complete,
        .session_cookie = API_WEB_SESSION_COOKIE,
        .fallback = api_web_static,
        .tls_cert_pem = tls_cert,
        .tls_key_pem = tls_key,
    };
    if (http_server_start(&http, &server, &err) < 0) {
        log_error("cannot serve the API: %s", err->message);
        goto out;
    }
    if (!is_loopback(cfg.listen_host) && !tls_cert)
        log_warn("the API listens on %s without TLS: bearer tokens cross the network in clear "
                 "text; put it behind a TLS proxy or listen on loopback",
                 cfg.listen_host);
    /* The line scripts wait for: the port is real even when --listen asked for port 0. */
    log_info("listening on %s://%s%s%s:%u", tls_cert ? "https" : "http",
             strchr(cfg.listen_host, ':') ? "[" : "", cfg.listen_host,
             strchr(cfg.listen_host, ':') ? "]" : "", http_server_port(server));
    int nrc = sd_notify_send("READY=1\nSTATUS=serving the API");
    if (nrc < 0)
        log_warn("cannot notify systemd through $NOTIFY_SOCKET: %s", strerror(-nrc));
    nrc = sd_notify_watchdog_start(core);
    if (nrc < 0)
        log_warn("watchdog: cannot start its thread: %s", strerror(-nrc));

    int sig = 0;
    while (sigwait(&sigs, &sig) == 0 && sig == SIGHUP)
        log_info("SIGHUP ignored: restart nimbusd to reload its configuration");
    log_info("signal %d: stopping (running guests are left running)", sig);
    sd_notify_send("STOPPING=1");
    rc = EXIT_SUCCESS;
out:
    sd_notify_watchdog_stop();
    /* Event streams wait on the bus: woken first, or stopping the server would wait for them. */
    if (core)
        event_bus_close(core->events);
    api_console_shutdown();
    http_server_stop(server);
    metrics_collector_stop(collector);
    core_stop(core);
    daemon_config_free(&cfg);
    return rc;
}
