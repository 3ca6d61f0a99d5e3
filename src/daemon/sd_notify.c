#include "sd_notify.h"

#include <errno.h>
#include <stddef.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "../core/health.h"
#include "../util/log.h"
#include "../util/strutil.h"

int
sd_notify_send(const char *msg)
{
    const char *path = getenv("NOTIFY_SOCKET");
    if (!path || !*path)
        return 0;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    size_t len = strlen(path);
    /* "@name": an abstract socket, its name after a NUL. */
    if ((path[0] != '/' && path[0] != '@') || len >= sizeof(sa.sun_path))
        return -EINVAL;
    memcpy(sa.sun_path, path, len);
    if (path[0] == '@')
        sa.sun_path[0] = '\0';
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    ssize_t n = sendto(fd, msg, strlen(msg), MSG_NOSIGNAL, (struct sockaddr *)&sa,
                       (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len));
    int r = n < 0 ? -errno : 0;
    close(fd);
    return r;
}

static struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    pthread_t thread;
    bool running, stopping;
    Core *core;
    uint64_t interval_ms;
} wd = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};

static void *
sd_notify_watchdog_main(void *arg)
{
    (void)arg;
    bool warned = false;
    pthread_mutex_lock(&wd.lock);
    while (!wd.stopping) {
        pthread_mutex_unlock(&wd.lock);
        ReadyReport r;
        health_ready(wd.core, &r);
        /* Alive: the store answers and the workers are not stuck. Not ready for want of the
         * local libvirt is no hang of ours. */
        bool alive = streq(r.store, "ok") && r.workers_ok;
        if (alive) {
            sd_notify_send("WATCHDOG=1");
            warned = false;
        } else if (!warned) {
            log_warn("watchdog: not pinging systemd (store: %s, task workers %s)", r.store,
                     r.workers_ok ? "ok" : "stalled");
            warned = true;
        }
        pthread_mutex_lock(&wd.lock);
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += (time_t)(wd.interval_ms / 2000);
        until.tv_nsec += (long)((wd.interval_ms / 2) % 1000) * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        while (!wd.stopping && pthread_cond_timedwait(&wd.cond, &wd.lock, &until) != ETIMEDOUT)
            ;
    }
    pthread_mutex_unlock(&wd.lock);
    return NULL;
}

int
sd_notify_watchdog_start(Core *core)
{
    const char *usec = getenv("WATCHDOG_USEC"), *pid = getenv("WATCHDOG_PID");
    if (!usec || !*usec || !getenv("NOTIFY_SOCKET"))
        return 0;
    char *end = NULL;
    errno = 0;
    unsigned long long us = strtoull(usec, &end, 10);
    if (errno || !end || *end || us < 1000) {
        log_warn("watchdog: WATCHDOG_USEC '%.32s' is not a number of microseconds; no pings", usec);
        return 0;
    }
    if (pid && *pid) {
        unsigned long long p = strtoull(pid, &end, 10);
        if (*end || p != (unsigned long long)getpid())
            return 0; /* meant for another process */
    }
    wd.core = core;
    wd.interval_ms = us / 1000;
    wd.stopping = false;
    int rc = pthread_create(&wd.thread, NULL, sd_notify_watchdog_main, NULL);
    if (rc != 0)
        return -rc;
    wd.running = true;
    log_info("watchdog: pinging systemd every %llu ms", (unsigned long long)(wd.interval_ms / 2));
    return 0;
}

void
sd_notify_watchdog_stop(void)
{
    if (!wd.running)
        return;
    pthread_mutex_lock(&wd.lock);
    wd.stopping = true;
    pthread_cond_broadcast(&wd.cond);
    pthread_mutex_unlock(&wd.lock);
    pthread_join(wd.thread, NULL);
    wd.running = false;
}
