/*
 * Housekeeping: a thread that prunes the journal (finished tasks, VM events, audit rows) by the
 * retention settings, and with it rolls the usage history up into daily rows, so that neither
 * the tables nor the usage computation grow with the age of the site. It also hands the
 * memory that bursts of work leave free in malloc's heaps back to the system, and looks at the
 * hosts' networks, pools, and agents (their security-group ipsets caught up when an agent
 * answers again or restarted: secgroup_ops_agents_watch).
 */
#include <errno.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../util/log.h"
#include "../util/strutil.h"
#include "core.h"
#include "network_vxlan.h"
#include "pool_ops.h"
#include "secgroup_ops.h"

struct Housekeeping {
    Core *core;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool stopping;
    /* Hosts that connected since the last look: their pools are checked in full. */
    char **hosts_up;
    size_t n_hosts_up;
};

void
housekeeping_host_up(Housekeeping *hk, const char *host)
{
    if (!hk)
        return;
    pthread_mutex_lock(&hk->lock);
    bool queued = false;
    for (size_t i = 0; i < hk->n_hosts_up && !queued; i++)
        queued = streq(hk->hosts_up[i], host);
    char **grown = queued ? NULL : realloc(hk->hosts_up, (hk->n_hosts_up + 1) * sizeof(char *));
    if (grown) {
        hk->hosts_up = grown;
        /* Lost on out-of-memory: the next round looks at the host anyway. */
        if ((hk->hosts_up[hk->n_hosts_up] = strdup(host)) != NULL)
            hk->n_hosts_up++;
    }
    pthread_cond_signal(&hk->cond);
    pthread_mutex_unlock(&hk->lock);
}

/* The full pool check of each host that connected (taken off the queue first), and its
 * security-group filters caught up if it missed a live update while away. */
static void
housekeeping_hosts_up(Housekeeping *hk)
{
    pthread_mutex_lock(&hk->lock);
    char **hosts = hk->hosts_up;
    size_t n = hk->n_hosts_up;
    hk->hosts_up = NULL;
    hk->n_hosts_up = 0;
    pthread_mutex_unlock(&hk->lock);
    for (size_t i = 0; i < n; i++) {
        HvConn *hv = host_registry_conn(hk->core, hosts[i]);
        _cleanup_error_ NbError *e = NULL;
        if (hv && pool_ops_host_check(hk->core, hosts[i], hv, true, &e) < 0)
            log_warn("pool check of host %s: %s", hosts[i], e->message);
        if (hv)
            secgroup_ops_host_up(hk->core, hosts[i], hv);
        /* Its networks too, at once: the periodic check may be minutes away at a large site. */
        Host h;
        _cleanup_error_ NbError *he = NULL;
        if (hv && host_store_get(hk->core->store, hosts[i], &h, &he) == 0) {
            explicit_bzero(h.agent_secret, sizeof(h.agent_secret));
            network_vxlan_watch_host(hk->core, &h, hv);
        }
        hv_conn_free(hv);
        free(hosts[i]);
    }
    free(hosts);
}

/* Sleeps up to ms, or until a host connects; false once stopping. */
static bool
housekeeping_wait(Housekeeping *hk, uint64_t ms)
{
    struct timespec until = nb_deadline_after_ms(CLOCK_REALTIME, ms);
    pthread_mutex_lock(&hk->lock);
    while (!hk->stopping && hk->n_hosts_up == 0) {
        if (pthread_cond_timedwait(&hk->cond, &hk->lock, &until) == ETIMEDOUT)
            break;
    }
    bool go_on = !hk->stopping;
    pthread_mutex_unlock(&hk->lock);
    return go_on;
}

/* Between two returns of free heap memory. A thousand threads (one per host, each with its
 * libvirt RPC buffers) leave glibc's arenas holding tens of MiB after a burst of creates; a trim
 * costs a few milliseconds. */
#define HOUSEKEEPING_TRIM_MS (30 * 1000)

static void
housekeeping_prune(Housekeeping *hk)
{
    _cleanup_error_ NbError *err = NULL;
    int64_t counts[3] = {0};
    if (store_prune(hk->core->store, &hk->core->cfg.retention, counts, &err) < 0)
        log_error("housekeeping: prune failed: %s", err->message);
    else if (counts[0] || counts[1] || counts[2])
        log_info("housekeeping: pruned %jd tasks, %jd VM events, %jd audit rows",
                 (intmax_t)counts[0], (intmax_t)counts[1], (intmax_t)counts[2]);
}

/* Returns free heap memory, and says at debug level what the heap holds: in use against free
 * is how much the arenas are fragmented, the figure to look at when nimbusd's RSS grows. */
static void
housekeeping_trim(void)
{
    struct mallinfo2 before = mallinfo2();
    malloc_trim(0);
    struct mallinfo2 after = mallinfo2();
    log_debug("housekeeping: heap %zu KiB in use, %zu KiB free (%zu KiB before the trim), "
              "%zu KiB in %zu mmapped blocks",
              after.uordblks / 1024, after.fordblks / 1024, before.fordblks / 1024,
              after.hblkhd / 1024, after.hblks);
}

static void *
housekeeping_thread(void *arg)
{
    Housekeeping *hk = arg;
    const CoreConfig *cfg = &hk->core->cfg;
    uint64_t prune_ms = (uint64_t)(cfg->prune_interval_s ? cfg->prune_interval_s : 3600) * 1000;
    /* The hosts' networks are looked at every few syncs: a host that lost a bridge, a VXLAN
     * device or a libvirt network (a reboot) gets it back without waiting long. A site of many
     * hosts is looked at more slowly: ten hosts a second at most (a host's check is a few
     * queries and a libvirt call per network; 1,500 hosts every 30 s were a few percent of a
     * core). A host that connects again is checked at once whatever the pace. */
    uint64_t watch_ms = (uint64_t)(cfg->sync_interval_s ? cfg->sync_interval_s : 10) * 3000;
    /* Not at the very start: a restart after a long stop has other things to do first. */
    uint64_t now = nb_monotonic_ms();
    uint64_t next_prune = now + 30 * 1000, next_trim = now + HOUSEKEEPING_TRIM_MS;
    uint64_t next_watch = now + watch_ms;
    /* The pools less often: they rarely go, a host that connects again is looked at in full
     * anyway, and each look costs a few libvirt calls per host and pool. */
    uint64_t pool_ms = (uint64_t)cfg->pool_check_interval_s * 1000;
    uint64_t next_pools = now + pool_ms;
    /* Pools at once and in full: the hosts that connected before housekeeping started were
     * not queued. */
    pool_ops_watch(hk->core, true);
    for (;;) {
        now = nb_monotonic_ms();
        uint64_t next = next_prune < next_trim ? next_prune : next_trim;
        next = next < next_watch ? next : next_watch;
        next = pool_ms && next_pools < next ? next_pools : next;
        if (!housekeeping_wait(hk, next > now ? next - now : 0))
            break;
        housekeeping_hosts_up(hk);
        if (nb_monotonic_ms() >= next_watch) {
            uint64_t paced_ms = (uint64_t)network_vxlan_watch(hk->core) * 100;
            secgroup_ops_agents_watch(hk->core);
            next_watch = nb_monotonic_ms() + (paced_ms > watch_ms ? paced_ms : watch_ms);
        }
        if (pool_ms && nb_monotonic_ms() >= next_pools) {
            pool_ops_watch(hk->core, false);
            next_pools = nb_monotonic_ms() + pool_ms;
        }
        if (nb_monotonic_ms() >= next_prune) {
            housekeeping_prune(hk);
            next_prune = nb_monotonic_ms() + prune_ms;
        }
        if (nb_monotonic_ms() >= next_trim) {
            housekeeping_trim();
            next_trim = nb_monotonic_ms() + HOUSEKEEPING_TRIM_MS;
        }
    }
    return NULL;
}

int
housekeeping_start(Core *core, Housekeeping **ret, NbError **err)
{
    Housekeeping *hk = calloc(1, sizeof(*hk));
    if (!hk)
        return nb_error_set(err, NB_ERR_INTERNAL, "out of memory");
    hk->core = core;
    pthread_mutex_init(&hk->lock, NULL);
    pthread_cond_init(&hk->cond, NULL);
    if (pthread_create(&hk->thread, NULL, housekeeping_thread, hk) != 0) {
        pthread_mutex_destroy(&hk->lock);
        pthread_cond_destroy(&hk->cond);
        free(hk);
        return nb_error_set(err, NB_ERR_INTERNAL, "cannot start housekeeping");
    }
    *ret = hk;
    return 0;
}

void
housekeeping_stop(Housekeeping *hk)
{
    if (!hk)
        return;
    pthread_mutex_lock(&hk->lock);
    hk->stopping = true;
    pthread_cond_signal(&hk->cond);
    pthread_mutex_unlock(&hk->lock);
    pthread_join(hk->thread, NULL);
    for (size_t i = 0; i < hk->n_hosts_up; i++)
        free(hk->hosts_up[i]);
    free(hk->hosts_up);
    pthread_mutex_destroy(&hk->lock);
    pthread_cond_destroy(&hk->cond);
    free(hk);
}
