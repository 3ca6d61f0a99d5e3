#include "agent_dhcp_run.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../util/cleanup.h"
#include "../util/error_codes.h"
#include "../util/log.h"
#include "../util/spawn.h"
#include "../util/strutil.h"

#define DHCP_FILE_MAX (1024 * 1024)
#define DHCP_READY_TIMEOUT_MS 5000
/* How long a new dnsmasq must stay up to count as started: it checks its options and binds
 * its socket at once, and exits if it cannot. */
#define DHCP_SETTLE_MS 300
#define DHCP_STOP_TIMEOUT_MS 3000

typedef struct Server {
    AgentDhcp conf;
    pid_t pid; /* 0: not running */
} Server;

struct AgentDhcpSet {
    char *state_dir;
    AgentNet *net;
    Server *servers;
    size_t n;
};

static void
sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

static int
file_put(const char *path, const char *text)
{
    _cleanup_free_ char *tmp = str_printf("%s.tmp", path);
    if (!tmp)
        return -ENOMEM;
    _cleanup_close_ int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    int r = write_full(fd, text, strlen(text));
    if (r == 0 && fsync(fd) < 0)
        r = -errno;
    if (r == 0 && rename(tmp, path) < 0)
        r = -errno;
    if (r < 0)
        unlink(tmp);
    return r;
}

static int
server_file_put(const AgentDhcpSet *s, const char *key, const char *ext, const char *text,
                NbError **err)
{
    char path[512];
    int r = agent_dhcp_path(s->state_dir, key, ext, path, sizeof(path));
    if (r == 0)
        r = file_put(path, text);
    if (r < 0)
        return nb_error_set(err, NB_ERR_INTERNAL, "cannot write %s/dhcp/%s.%s: %s", s->state_dir,
                            key, ext, strerror(-r));
    return 0;
}

static void
server_file_remove(const AgentDhcpSet *s, const char *key, const char *ext)
{
    char path[512];
    if (agent_dhcp_path(s->state_dir, key, ext, path, sizeof(path)) == 0)
        unlink(path);
}

static int
write_hosts(const AgentDhcpSet *s, const AgentDhcp *d, NbError **err)
{
    _cleanup_free_ char *text = agent_dhcp_hosts_text(d);
    if (!text)
        return nb_error_set(err, NB_ERR_INTERNAL, "out of memory");
    return server_file_put(s, d->key, "hosts", text, err);
}

static int
write_conf(const AgentDhcpSet *s, const AgentDhcp *d, NbError **err)
{
    json_t *j = agent_dhcp_to_json(d);
    _cleanup_free_ char *text = j ? json_dumps(j, JSON_INDENT(1) | JSON_SORT_KEYS) : NULL;
    json_decref(j);
    if (!text)
        return nb_error_set(err, NB_ERR_INTERNAL, "out of memory");
    return server_file_put(s, d->key, "json", text, err);
}

/* Whether our child pid still runs (an exited one is reaped here). */
static bool
child_alive(pid_t pid)
{
    int st;
    return pid > 0 && waitpid(pid, &st, WNOHANG) == 0;
}

static void
child_stop(pid_t pid)
{
    if (pid <= 0 || !child_alive(pid))
        return;
    kill(pid, SIGTERM);
    for (unsigned t = 0; t < DHCP_STOP_TIMEOUT_MS; t += 20) {
        if (!child_alive(pid))
            return;
        sleep_ms(20);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

static void
server_stop(AgentDhcpSet *s, Server *sv)
{
    char host_side[AGENT_IFNAME_MAX + 1], ns_side[AGENT_IFNAME_MAX + 1];
    agent_dhcp_ifnames(sv->conf.key, host_side, ns_side);
    if (sv->pid > 0) {
        child_stop(sv->pid);
        log_info("DHCP %s: dnsmasq %d stopped", sv->conf.key, (int)sv->pid);
    }
    sv->pid = 0;
    /* The namespace went with dnsmasq, and the pair with it; the kernel does that
     * asynchronously, so the host side is deleted here too (absent is fine). */
    _cleanup_error_ NbError *e = NULL;
    if (agent_net_link_remove(s->net, host_side, &e) < 0)
        log_warn("DHCP %s: %s", sv->conf.key, e->message);
    server_file_remove(s, sv->conf.key, "pid");
}

typedef struct Sync {
    int ready_w, go_r;
    pid_t agent;
} Sync;

/* In the child, between fork and exec: async-signal-safe calls only. The namespace is the
 * child's own from here; it waits until the agent has put the veth in it. A closed pipe (the
 * agent gave up or died) ends it. */
static int
child_enter_netns(void *arg)
{
    const Sync *sy = arg;
    char c = 1;
    /* dnsmasq never outlives the agent, even a killed one: no server is left that no agent
     * knows (it keeps root, so the signal is not cleared by a change of credentials). */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != sy->agent)
        return -1;
    if (unshare(CLONE_NEWNET) < 0 || write(sy->ready_w, &c, 1) != 1)
        return -1;
    if (read(sy->go_r, &c, 1) != 1 || c != 1)
        return -1;
    return 0;
}

static int
server_start(AgentDhcpSet *s, Server *sv, NbError **err)
{
    const AgentDhcp *d = &sv->conf;
    char host_side[AGENT_IFNAME_MAX + 1], ns_side[AGENT_IFNAME_MAX + 1];
    agent_dhcp_ifnames(d->key, host_side, ns_side);
    _cleanup_free_ char *dnsmasq = NULL;
    if (spawn_find_program("dnsmasq", &dnsmasq) < 0)
        return nb_error_set(err, NB_ERR_HYPERVISOR, "dnsmasq is not installed on this host");
    char **argv = agent_dhcp_argv(d, dnsmasq, s->state_dir);
    if (!argv)
        return nb_error_set(err, NB_ERR_INTERNAL, "out of memory");
    if (write_hosts(s, d, err) < 0 ||
        agent_net_veth_make(s->net, host_side, ns_side, d->bridge, d->mtu, d->mac, err) < 0) {
        agent_dhcp_argv_free(argv);
        return -1;
    }
    int ready[2] = {-1, -1}, go[2] = {-1, -1};
    pid_t pid = -1;
    _cleanup_error_ NbError *side_err = NULL;
    if (pipe2(ready, O_CLOEXEC) < 0 || pipe2(go, O_CLOEXEC) < 0) {
        nb_error_set(err, NB_ERR_INTERNAL, "pipe: %s", strerror(errno));
        goto fail;
    }
    Sync sy = {ready[1], go[0], getpid()};
    pid = spawn_start((const char *const *)argv, child_enter_netns, &sy);
    close(ready[1]);
    close(go[0]);
    ready[1] = go[0] = -1;
    if (pid < 0) {
        nb_error_set(err, NB_ERR_HYPERVISOR, "cannot start dnsmasq: %s", strerror(-pid));
        goto fail;
    }
    struct pollfd pfd = {ready[0], POLLIN, 0};
    char c = 0;
    if (poll(&pfd, 1, DHCP_READY_TIMEOUT_MS) != 1 || read(ready[0], &c, 1) != 1) {
        nb_error_set(err, NB_ERR_HYPERVISOR,
                     "the DHCP server's process could not make its network namespace");
        goto fail;
    }
    if (agent_net_link_to_netns(s->net, ns_side, pid, err) < 0 ||
        agent_net_netns_address(pid, ns_side, d->address, d->prefix, err) < 0)
        goto fail;
    c = 1;
    if (write(go[1], &c, 1) != 1) {
        nb_error_set(err, NB_ERR_HYPERVISOR, "the DHCP server's process went away");
        goto fail;
    }
    close(go[1]);
    go[1] = -1;
    sleep_ms(DHCP_SETTLE_MS);
    int st = 0;
    if (waitpid(pid, &st, WNOHANG) == pid) {
        pid = -1;
        nb_error_set(err, NB_ERR_HYPERVISOR,
                     "dnsmasq exited at once (status %d; its reason is in the agent's log)",
                     WIFEXITED(st) ? WEXITSTATUS(st) : -1);
        goto fail;
    }
    close(ready[0]);
    agent_dhcp_argv_free(argv);
    sv->pid = pid;
    char pidtext[32];
    snprintf(pidtext, sizeof(pidtext), "%d\n", (int)pid);
    if (server_file_put(s, d->key, "pid", pidtext, &side_err) < 0)
        log_warn("DHCP %s: %s", d->key, side_err->message);
    char a[16];
    agent_ipv4_format(d->address, a);
    log_info("DHCP %s: dnsmasq %d on %s (%s/%u in bridge %s), %zu host(s)", d->key, (int)pid,
             ns_side, a, d->prefix, d->bridge, d->n_hosts);
    return 0;
fail:
    for (int i = 0; i < 2; i++) {
        if (ready[i] >= 0)
            close(ready[i]);
        if (go[i] >= 0)
            close(go[i]);
    }
    if (pid > 0) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
    }
    agent_dhcp_argv_free(argv);
    if (agent_net_link_remove(s->net, host_side, &side_err) < 0)
        log_warn("DHCP %s: %s", d->key, side_err->message);
    return -1;
}

static Server *
server_find(AgentDhcpSet *s, const char *key)
{
    for (size_t i = 0; i < s->n; i++)
        if (streq(s->servers[i].conf.key, key))
            return &s->servers[i];
    return NULL;
}

/* A dnsmasq of key left running by an agent that was killed: its pid file names it, and its
 * command line names our hosts file. Not our child: killed and waited for by polling. */
static void
leftover_kill(AgentDhcpSet *s, const char *key)
{
    char path[512], hosts[512];
    _cleanup_free_ char *text = NULL, *cmdline = NULL;
    size_t len = 0, clen = 0;
    uint64_t pid = 0;
    if (agent_dhcp_path(s->state_dir, key, "pid", path, sizeof(path)) < 0 ||
        agent_dhcp_path(s->state_dir, key, "hosts", hosts, sizeof(hosts)) < 0 ||
        read_file_full(path, 64, &text, &len) < 0)
        return;
    text[strcspn(text, "\n")] = '\0';
    if (str_to_u64(text, &pid) < 0 || pid < 2 || pid > 4194304)
        return;
    char proc[64];
    snprintf(proc, sizeof(proc), "/proc/%d/cmdline", (int)pid);
    if (read_file_full(proc, 64 * 1024, &cmdline, &clen) < 0)
        return;
    _cleanup_free_ char *want = str_printf("--dhcp-hostsfile=%s", hosts);
    bool ours = false;
    for (size_t off = 0; want && off < clen; off += strlen(cmdline + off) + 1)
        ours = ours || streq(cmdline + off, want);
    if (!ours)
        return;
    log_info("DHCP %s: replacing dnsmasq %d left by an earlier agent", key, (int)pid);
    kill((pid_t)pid, SIGKILL);
    /* Gone once its command line is (a zombie's is empty, and its namespace already freed). */
    for (unsigned t = 0; t < DHCP_STOP_TIMEOUT_MS; t += 20) {
        _cleanup_free_ char *now = NULL;
        size_t nlen = 0;
        if (read_file_full(proc, 64 * 1024, &now, &nlen) < 0 || nlen == 0)
            break;
        sleep_ms(20);
    }
}

AgentDhcpSet *
agent_dhcp_set_load(const char *state_dir, AgentNet *net, NbError **err)
{
    AgentDhcpSet *s = calloc(1, sizeof(*s));
    _cleanup_free_ char *dir = str_printf("%s/dhcp", state_dir);
    /* Absolute: dnsmasq reads its hosts file again (on SIGHUP) from another directory. */
    if (!s || !dir || !(s->state_dir = realpath(state_dir, NULL))) {
        agent_dhcp_set_free(s);
        nb_error_set(err, NB_ERR_INTERNAL, "out of memory");
        return NULL;
    }
    s->net = net;
    if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
        nb_error_set(err, NB_ERR_INTERNAL, "cannot make %s: %s", dir, strerror(errno));
        agent_dhcp_set_free(s);
        return NULL;
    }
    DIR *dp = opendir(dir);
    struct dirent *de;
    while (dp && (de = readdir(dp))) {
        size_t l = strlen(de->d_name);
        if (l != AGENT_DHCP_KEY_LEN + 5 || !streq(de->d_name + AGENT_DHCP_KEY_LEN, ".json"))
            continue;
        char key[AGENT_DHCP_KEY_LEN + 1];
        memcpy(key, de->d_name, AGENT_DHCP_KEY_LEN);
        key[AGENT_DHCP_KEY_LEN] = '\0';
        _cleanup_free_ char *path = str_printf("%s/%s", dir, de->d_name), *text = NULL;
        size_t len = 0;
        json_t *j = NULL;
        AgentDhcp d;
        _cleanup_error_ NbError *e = NULL;
        if (!path || read_file_full(path, DHCP_FILE_MAX, &text, &len) < 0 ||
            !(j = json_loadb(text, len, JSON_REJECT_DUPLICATES, NULL)) ||
            agent_dhcp_from_json(j, key, &d, &e) < 0) {
            log_error("DHCP %s: %s is unreadable; that server stays off", key,
                      path ? path : "its file");
            json_decref(j);
            continue;
        }
        json_decref(j);
        Server *grown = realloc(s->servers, (s->n + 1) * sizeof(*grown));
        if (!grown) {
            agent_dhcp_clear(&d);
            break;
        }
        s->servers = grown;
        s->servers[s->n++] = (Server){.conf = d};
        leftover_kill(s, key);
    }
    if (dp)
        closedir(dp);
    return s;
}

void
agent_dhcp_set_free(AgentDhcpSet *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n; i++)
        agent_dhcp_clear(&s->servers[i].conf);
    free(s->servers);
    free(s->state_dir);
    free(s);
}

size_t
agent_dhcp_set_count(const AgentDhcpSet *s)
{
    return s ? s->n : 0;
}

int
agent_dhcp_set_put(AgentDhcpSet *s, AgentDhcp *d, NbError **err)
{
    Server *sv = server_find(s, d->key);
    if (sv && sv->pid > 0 && child_alive(sv->pid) && agent_dhcp_same_server(&sv->conf, d)) {
        bool same_hosts =
            sv->conf.n_hosts == d->n_hosts &&
            (!d->n_hosts || memcmp(sv->conf.hosts, d->hosts, d->n_hosts * sizeof(*d->hosts)) == 0);
        if (same_hosts) { /* nimbusd's periodic check: nothing to do */
            agent_dhcp_clear(d);
            return 0;
        }
        /* Only the hosts changed: dnsmasq reads its hosts file again on SIGHUP. */
        if (write_hosts(s, d, err) < 0 || write_conf(s, d, err) < 0)
            return -1;
        kill(sv->pid, SIGHUP);
        agent_dhcp_clear(&sv->conf);
        sv->conf = *d;
        *d = (AgentDhcp){0};
        log_info("DHCP %s: %zu host(s)", sv->conf.key, sv->conf.n_hosts);
        return 0;
    }
    if (sv)
        server_stop(s, sv);
    else {
        Server *grown = realloc(s->servers, (s->n + 1) * sizeof(*grown));
        if (!grown)
            return nb_error_set(err, NB_ERR_INTERNAL, "out of memory");
        s->servers = grown;
        sv = &s->servers[s->n++];
        *sv = (Server){0};
    }
    agent_dhcp_clear(&sv->conf);
    sv->conf = *d;
    *d = (AgentDhcp){0};
    if (server_start(s, sv, err) < 0 || write_conf(s, &sv->conf, err) < 0) {
        /* Nothing of it stays: a caller never leaves a half-made server behind. */
        char key[AGENT_DHCP_KEY_LEN + 1];
        memcpy(key, sv->conf.key, sizeof(key));
        _cleanup_error_ NbError *e = NULL;
        agent_dhcp_set_delete(s, key, &e);
        return -1;
    }
    return 0;
}

int
agent_dhcp_set_delete(AgentDhcpSet *s, const char *key, NbError **err)
{
    if (!agent_dhcp_key_is_valid(key))
        return nb_error_set(err, NB_ERR_NETWORK_INVALID_IFNAME,
                            "a DHCP server's key is 12 lowercase hex digits");
    Server *sv = server_find(s, key);
    char host_side[AGENT_IFNAME_MAX + 1], ns_side[AGENT_IFNAME_MAX + 1];
    agent_dhcp_ifnames(key, host_side, ns_side);
    if (sv) {
        server_stop(s, sv);
        agent_dhcp_clear(&sv->conf);
        size_t at = (size_t)(sv - s->servers);
        memmove(sv, sv + 1, (s->n - at - 1) * sizeof(*sv));
        s->n--;
    } else if (agent_net_link_remove(s->net, host_side, err) < 0) {
        return -1;
    }
    /* The request first: a crash from here on leaves no server to restore. */
    server_file_remove(s, key, "json");
    server_file_remove(s, key, "hosts");
    server_file_remove(s, key, "leases");
    server_file_remove(s, key, "pid");
    log_info("DHCP %s: removed", key);
    return 0;
}

void
agent_dhcp_set_check(AgentDhcpSet *s, bool at_start)
{
    for (size_t i = 0; i < s->n; i++) {
        Server *sv = &s->servers[i];
        char host_side[AGENT_IFNAME_MAX + 1], ns_side[AGENT_IFNAME_MAX + 1];
        agent_dhcp_ifnames(sv->conf.key, host_side, ns_side);
        if (!at_start && sv->pid > 0 && child_alive(sv->pid) &&
            agent_net_veth_intact(s->net, host_side, sv->conf.bridge))
            continue;
        if (!at_start)
            log_warn("DHCP %s: dnsmasq or its veth is gone: starting it again", sv->conf.key);
        server_stop(s, sv);
        _cleanup_error_ NbError *e = NULL;
        if (server_start(s, sv, &e) < 0)
            log_error("DHCP %s: cannot start: %s", sv->conf.key, e ? e->message : "?");
    }
}

void
agent_dhcp_set_stop_all(AgentDhcpSet *s)
{
    for (size_t i = 0; s && i < s->n; i++)
        server_stop(s, &s->servers[i]);
}

json_t *
agent_dhcp_set_to_json(const AgentDhcpSet *s)
{
    json_t *arr = json_array();
    for (size_t i = 0; arr && s && i < s->n; i++) {
        json_t *j = agent_dhcp_to_json(&s->servers[i].conf);
        if (!j)
            continue;
        json_object_set_new(j, "key", json_string(s->servers[i].conf.key));
        json_object_set_new(j, "pid", json_integer(s->servers[i].pid));
        json_array_append_new(arr, j);
    }
    return arr;
}
