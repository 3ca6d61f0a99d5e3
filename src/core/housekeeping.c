/*
 * Housekeeping: a thread that prunes the journal (finished tasks, VM events, audit rows) by the
 * retention settings, and with it rolls the usage history up into daily rows, so that neither
 * the tables nor the usage computation grow with the age of the site. It also hands the
 * memory that bursts of work leave free in malloc's heaps back to the system.
 */
#include <errno.h>
#include <malloc.h>
#include <stdlib.h>
#include <time.h>

#include "../util/log.h"
#include "core.h"
#include "network_vxlan.h"

struct Housekeeping {
    Core *core;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool stopping;
};

/* Sleeps up to ms; false once stopping. */
static bool
housekeeping_wait(Housekeeping *hk, uint64_t ms)
{
    struct timespec until = nb_deadline_after_ms(CLOCK_REALTIME, ms);
    pthread_mutex_lock(&hk->lock);
    while (!hk->stopping) {
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
     * device or a libvirt network (a reboot) gets it back without waiting long. */
    uint64_t watch_ms = (uint64_t)(cfg->sync_interval_s ? cfg->sync_interval_s : 10) * 3000;
    /* Not at the very start: a restart after a long stop has other things to do first. */
    uint64_t now = nb_monotonic_ms();
    uint64_t next_prune = now + 30 * 1000, next_trim = now + HOUSEKEEPING_TRIM_MS;
    uint64_t next_watch = now + watch_ms;
    for (;;) {
        now = nb_monotonic_ms();
        uint64_t next = next_prune < next_trim ? next_prune : next_trim;
        next = next < next_watch ? next : next_watch;
        if (!housekeeping_wait(hk, next > now ? next - now : 0))
            break;
        if (nb_monotonic_ms() >= next_watch) {
            network_vxlan_watch(hk->core);
            next_watch = nb_monotonic_ms() + watch_ms;
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
    pthread_mutex_destroy(&hk->lock);
    pthread_cond_destroy(&hk->cond);
    free(hk);
}
