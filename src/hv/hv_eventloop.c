/*
 * An epoll event loop for libvirt (virEventRegisterImpl), in place of libvirt's default one.
 *
 * Why: libvirt's default loop (GLib) looks at every registered source on every wakeup, and a
 * controller holds one connection per host. With 1,500 remote hosts, the keepalive pings alone
 * (one per connection every 5 s, from each libvirtd) woke it some 300 times a second, each wakeup
 * polling 1,500 sockets: about 60 % of a core while idle. Here a wakeup costs what is ready plus
 * the timers due: they sit in a min-heap by due time (each arming pushes an entry; an entry whose
 * timer was armed again, disabled or removed since is dropped when it reaches the top), so a
 * wakeup no longer scans every connection's keepalive timer twice (5 % of a core at 1,500 hosts).
 *
 * Contract (libvirt-event.h): add/update/remove come from any thread; callbacks run on the loop
 * thread with no lock of ours held; a free callback never runs inside the remove call (libvirt
 * would deadlock), but at the end of an iteration. A timeout of -1 is disabled, 0 fires on every
 * iteration, N fires every N ms. One fd may carry several watches with disjoint events.
 */
#include "hv_internal.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "../util/cleanup.h"
#include "../util/timeutil.h"

#define LOOP_MAX_EVENTS 64

typedef struct LoopWatch {
    int id;
    int fd;
    int events; /* VIR_EVENT_HANDLE_* asked for; 0: disabled */
    bool deleted;
    virEventHandleCallback cb;
    void *opaque;
    virFreeCallback ff;
} LoopWatch;

typedef struct LoopTimer {
    int id;
    int interval_ms; /* -1 disabled, 0 every iteration */
    uint64_t due_ms; /* next firing, on the monotonic clock */
    uint32_t gen;    /* bumped at each arming: older heap entries are stale */
    bool deleted;
    virEventTimeoutCallback cb;
    void *opaque;
    virFreeCallback ff;
} LoopTimer;

/* A timer's firing as the heap holds it. */
typedef struct LoopDue {
    uint64_t due_ms;
    int id;
    uint32_t gen;
    uint32_t slack_ms; /* loop_timer_slack_ms */
} LoopDue;

/* The watches of one fd, and what epoll is asked for on it. */
typedef struct LoopFd {
    int *ids;
    size_t n, cap;
    uint32_t armed; /* EPOLL* bits registered; 0: not in the epoll set */
} LoopFd;

static struct {
    pthread_mutex_t lock;
    int epfd, wakefd;
    pthread_t thread; /* the loop's, once it ran */
    bool have_thread;
    /* by id, ids increasing: binary search; removal compacts at the end of an iteration */
    LoopWatch *watches;
    size_t n_watches, cap_watches;
    LoopTimer *timers;
    size_t n_timers, cap_timers;
    /* min-heap by due_ms of the enabled timers' firings; heap_ok false (out of memory once):
     * rebuilt from the timers before its next use */
    LoopDue *heap;
    size_t n_heap, cap_heap;
    bool heap_ok;
    LoopFd *fds; /* indexed by fd */
    size_t cap_fds;
    int next_watch, next_timer;
    bool have_deleted;
    /* While the loop thread sleeps in epoll_wait: until when (monotonic ms; UINT64_MAX: no timer
     * is due). 0 while it is awake, as it looks at the timers again before it sleeps. */
    uint64_t sleep_until_ms;
    uint64_t iterations; /* wakeups so far (atomic) */
} loop = {.lock = PTHREAD_MUTEX_INITIALIZER, .epfd = -1, .wakefd = -1, .heap_ok = true};

/* Interrupts epoll_wait. Only a timer due before the loop would wake anyway needs this: a watch
 * added, changed or enabled from another thread takes effect through epoll_ctl alone, even in a
 * wait under way (an fd that is ready then ends the wait). Each needless wakeup is a context
 * switch, and libvirt's client changes its socket's watch around every call a thread makes. */
static void
loop_wake_locked(void)
{
    /* The loop thread itself re-reads its tables before sleeping again. */
    if (loop.have_thread && pthread_equal(loop.thread, pthread_self()))
        return;
    uint64_t one = 1;
    ssize_t w = write(loop.wakefd, &one, sizeof(one));
    (void)w; /* EAGAIN: the counter is already non-zero, a wakeup is pending */
}

static LoopWatch *
loop_watch_find(int id)
{
    size_t lo = 0, hi = loop.n_watches;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (loop.watches[mid].id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < loop.n_watches && loop.watches[lo].id == id ? &loop.watches[lo] : NULL;
}

static LoopTimer *
loop_timer_find(int id)
{
    size_t lo = 0, hi = loop.n_timers;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (loop.timers[mid].id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < loop.n_timers && loop.timers[lo].id == id ? &loop.timers[lo] : NULL;
}

static uint32_t
loop_to_epoll(int events)
{
    uint32_t e = 0;
    if (events & VIR_EVENT_HANDLE_READABLE)
        e |= EPOLLIN;
    if (events & VIR_EVENT_HANDLE_WRITABLE)
        e |= EPOLLOUT;
    return e;
}

static int
loop_from_epoll(uint32_t e)
{
    int events = 0;
    if (e & EPOLLIN)
        events |= VIR_EVENT_HANDLE_READABLE;
    if (e & EPOLLOUT)
        events |= VIR_EVENT_HANDLE_WRITABLE;
    if (e & EPOLLERR)
        events |= VIR_EVENT_HANDLE_ERROR;
    if (e & EPOLLHUP)
        events |= VIR_EVENT_HANDLE_HANGUP;
    return events;
}

/* Makes epoll's interest in fd the union of its live, enabled watches. A disabled watch is not
 * polled at all (as in libvirt's own loops), so a hung-up socket nobody listens to cannot spin.
 * force: fd may be a new file behind a number epoll knew (closed and reused): register again. */
static void
loop_fd_rearm_locked(int fd, bool force)
{
    if (fd < 0 || (size_t)fd >= loop.cap_fds)
        return;
    LoopFd *f = &loop.fds[fd];
    uint32_t want = 0;
    for (size_t i = 0; i < f->n; i++) {
        LoopWatch *w = loop_watch_find(f->ids[i]);
        if (w && !w->deleted)
            want |= loop_to_epoll(w->events);
    }
    if (want == f->armed && !(force && want))
        return;
    struct epoll_event ev = {.events = want, .data.fd = fd};
    int r;
    if (!want)
        r = epoll_ctl(loop.epfd, EPOLL_CTL_DEL, fd, NULL);
    else if (!f->armed || force)
        r = epoll_ctl(loop.epfd, EPOLL_CTL_ADD, fd, &ev);
    else
        r = epoll_ctl(loop.epfd, EPOLL_CTL_MOD, fd, &ev);
    if (r < 0 && want && errno == ENOENT) /* closed and reopened behind our back */
        r = epoll_ctl(loop.epfd, EPOLL_CTL_ADD, fd, &ev);
    else if (r < 0 && want && errno == EEXIST)
        r = epoll_ctl(loop.epfd, EPOLL_CTL_MOD, fd, &ev);
    /* EBADF/ENOENT on a delete: the fd was closed already, and epoll forgot it itself. */
    f->armed = r == 0 ? want : 0;
}

static int
loop_add_handle(int fd, int events, virEventHandleCallback cb, void *opaque, virFreeCallback ff)
{
    if (fd < 0 || !cb)
        return -1;
    pthread_mutex_lock(&loop.lock);
    int id = -1;
    if ((size_t)fd >= loop.cap_fds) {
        size_t cap = loop.cap_fds ? loop.cap_fds : 64;
        while (cap <= (size_t)fd)
            cap *= 2;
        LoopFd *fds = realloc(loop.fds, cap * sizeof(*fds));
        if (!fds)
            goto out;
        memset(fds + loop.cap_fds, 0, (cap - loop.cap_fds) * sizeof(*fds));
        loop.fds = fds;
        loop.cap_fds = cap;
    }
    LoopFd *f = &loop.fds[fd];
    if (f->n == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 2;
        int *ids = realloc(f->ids, cap * sizeof(*ids));
        if (!ids)
            goto out;
        f->ids = ids;
        f->cap = cap;
    }
    if (loop.n_watches == loop.cap_watches) {
        size_t cap = loop.cap_watches ? loop.cap_watches * 2 : 64;
        LoopWatch *ws = realloc(loop.watches, cap * sizeof(*ws));
        if (!ws)
            goto out;
        loop.watches = ws;
        loop.cap_watches = cap;
    }
    if (loop.next_watch == INT32_MAX)
        goto out;
    id = ++loop.next_watch;
    loop.watches[loop.n_watches++] =
        (LoopWatch){.id = id, .fd = fd, .events = events, .cb = cb, .opaque = opaque, .ff = ff};
    f->ids[f->n++] = id;
    loop_fd_rearm_locked(fd, true);
out:
    pthread_mutex_unlock(&loop.lock);
    return id;
}

static void
loop_update_handle(int id, int events)
{
    pthread_mutex_lock(&loop.lock);
    LoopWatch *w = loop_watch_find(id);
    if (w && !w->deleted && w->events != events) {
        w->events = events;
        loop_fd_rearm_locked(w->fd, false);
    }
    pthread_mutex_unlock(&loop.lock);
}

static int
loop_remove_handle(int id)
{
    pthread_mutex_lock(&loop.lock);
    LoopWatch *w = loop_watch_find(id);
    int r = -1;
    if (w && !w->deleted) {
        w->deleted = true;
        loop.have_deleted = true;
        LoopFd *f = &loop.fds[w->fd];
        for (size_t i = 0; i < f->n; i++) {
            if (f->ids[i] == id) {
                f->ids[i] = f->ids[--f->n];
                break;
            }
        }
        loop_fd_rearm_locked(w->fd, false);
        loop_wake_locked(); /* the free callback runs at the end of the next iteration */
        r = 0;
    }
    pthread_mutex_unlock(&loop.lock);
    return r;
}

/* ---- the timer heap ---- */

static void
loop_heap_swap(size_t a, size_t b)
{
    LoopDue x = loop.heap[a];
    loop.heap[a] = loop.heap[b];
    loop.heap[b] = x;
}

static void
loop_heap_up(size_t i)
{
    while (i > 0 && loop.heap[(i - 1) / 2].due_ms > loop.heap[i].due_ms) {
        loop_heap_swap(i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
}

static void
loop_heap_down(size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < loop.n_heap && loop.heap[l].due_ms < loop.heap[m].due_ms)
            m = l;
        if (r < loop.n_heap && loop.heap[r].due_ms < loop.heap[m].due_ms)
            m = r;
        if (m == i)
            return;
        loop_heap_swap(i, m);
        i = m;
    }
}

static void
loop_heap_pop(void)
{
    loop.heap[0] = loop.heap[--loop.n_heap];
    loop_heap_down(0);
}

/* Whether a heap entry still stands for its timer's next firing. */
static bool
loop_due_is_live(const LoopDue *d)
{
    const LoopTimer *t = loop_timer_find(d->id);
    return t && !t->deleted && t->interval_ms >= 0 && t->gen == d->gen;
}

/* How late a timer may fire so that timers due close together share one wakeup: a 32nd of its
 * interval, at most 250 ms, for intervals of a second or more (libvirt's keepalive timers, one per
 * connection every few seconds, which need no precision); none for shorter ones. */
static uint32_t
loop_timer_slack_ms(const LoopTimer *t)
{
    if (t->interval_ms < 1000)
        return 0;
    uint32_t slack = (uint32_t)t->interval_ms / 32;
    return slack < 250 ? slack : 250;
}

static void
loop_heap_push(const LoopTimer *t)
{
    if (!loop.heap_ok || t->interval_ms < 0)
        return;
    if (loop.n_heap == loop.cap_heap) {
        size_t cap = loop.cap_heap ? loop.cap_heap * 2 : 64;
        LoopDue *h = realloc(loop.heap, cap * sizeof(*h));
        if (!h) {
            loop.heap_ok = false;
            return;
        }
        loop.heap = h;
        loop.cap_heap = cap;
    }
    loop.heap[loop.n_heap] = (LoopDue){t->due_ms, t->id, t->gen, loop_timer_slack_ms(t)};
    loop_heap_up(loop.n_heap++);
}

/* One entry per enabled timer, stale ones gone: after an allocation failure, and when stale
 * entries (timers armed again and again before they fire) outnumber the live ones. */
static void
loop_heap_rebuild_locked(void)
{
    loop.n_heap = 0;
    loop.heap_ok = true;
    for (size_t i = 0; i < loop.n_timers && loop.heap_ok; i++)
        if (!loop.timers[i].deleted)
            loop_heap_push(&loop.timers[i]);
}

/* The heap's top after dropping stale entries; NULL: no enabled timer. */
static const LoopDue *
loop_heap_top_locked(void)
{
    if (!loop.heap_ok || loop.n_heap > 4 * loop.n_timers + 64)
        loop_heap_rebuild_locked();
    while (loop.n_heap > 0 && !loop_due_is_live(&loop.heap[0]))
        loop_heap_pop();
    return loop.n_heap ? &loop.heap[0] : NULL;
}

static void
loop_timer_arm(LoopTimer *t, uint64_t now)
{
    t->due_ms = t->interval_ms > 0 ? now + (uint64_t)t->interval_ms : now;
    t->gen++;
    loop_heap_push(t);
}

/* Wakes the loop if t, just armed, is due before the loop's sleep ends. */
static void
loop_wake_for_timer_locked(const LoopTimer *t)
{
    if (t->interval_ms >= 0 && t->due_ms + loop_timer_slack_ms(t) < loop.sleep_until_ms)
        loop_wake_locked();
}

static int
loop_add_timeout(int interval_ms, virEventTimeoutCallback cb, void *opaque, virFreeCallback ff)
{
    if (!cb)
        return -1;
    pthread_mutex_lock(&loop.lock);
    int id = -1;
    if (loop.n_timers == loop.cap_timers) {
        size_t cap = loop.cap_timers ? loop.cap_timers * 2 : 64;
        LoopTimer *ts = realloc(loop.timers, cap * sizeof(*ts));
        if (!ts)
            goto out;
        loop.timers = ts;
        loop.cap_timers = cap;
    }
    if (loop.next_timer == INT32_MAX)
        goto out;
    id = ++loop.next_timer;
    LoopTimer *t = &loop.timers[loop.n_timers++];
    *t = (LoopTimer){.id = id, .interval_ms = interval_ms, .cb = cb, .opaque = opaque, .ff = ff};
    loop_timer_arm(t, nb_monotonic_ms());
    loop_wake_for_timer_locked(t);
out:
    pthread_mutex_unlock(&loop.lock);
    return id;
}

static void
loop_update_timeout(int id, int interval_ms)
{
    pthread_mutex_lock(&loop.lock);
    LoopTimer *t = loop_timer_find(id);
    if (t && !t->deleted) {
        t->interval_ms = interval_ms;
        loop_timer_arm(t, nb_monotonic_ms());
        loop_wake_for_timer_locked(t);
    }
    pthread_mutex_unlock(&loop.lock);
}

static int
loop_remove_timeout(int id)
{
    pthread_mutex_lock(&loop.lock);
    LoopTimer *t = loop_timer_find(id);
    int r = -1;
    if (t && !t->deleted) {
        t->deleted = true;
        loop.have_deleted = true;
        loop_wake_locked();
        r = 0;
    }
    pthread_mutex_unlock(&loop.lock);
    return r;
}

/* How long epoll may sleep (-1: no timer): until the first timer's due time plus its slack. Every
 * timer due by then fires in that wakeup. (Only the first timer's slack counts: a timer due just
 * after it with less slack may fire up to that much late.) */
static int
loop_sleep_ms_locked(uint64_t now)
{
    const LoopDue *top = loop_heap_top_locked();
    if (!top)
        return -1;
    uint64_t until = top->due_ms + top->slack_ms;
    uint64_t left = until > now ? until - now : 0;
    return left > INT32_MAX ? INT32_MAX : (int)left;
}

/* Fires the timers due at now. Each is looked up again right before its call: an earlier
 * callback may have removed or changed it. The due entries are all taken off the heap first,
 * so that a timer re-armed for now (interval 0) fires once per iteration, not in a loop. */
static void
loop_run_timers(uint64_t now)
{
    pthread_mutex_lock(&loop.lock);
    loop.sleep_until_ms = 0;
    int *due = NULL;
    size_t n_due = 0, cap = 0;
    const LoopDue *top;
    while ((top = loop_heap_top_locked()) && top->due_ms <= now) {
        if (n_due == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            int *d = realloc(due, ncap * sizeof(*d));
            if (!d)
                break; /* the rest stay on the heap for the next iteration */
            due = d;
            cap = ncap;
        }
        due[n_due++] = top->id;
        loop_heap_pop();
    }
    pthread_mutex_unlock(&loop.lock);
    for (size_t i = 0; i < n_due; i++) {
        pthread_mutex_lock(&loop.lock);
        LoopTimer *t = loop_timer_find(due[i]);
        virEventTimeoutCallback cb = NULL;
        void *opaque = NULL;
        if (t && !t->deleted && t->interval_ms >= 0 && t->due_ms <= now) {
            cb = t->cb;
            opaque = t->opaque;
            loop_timer_arm(t, now);
        }
        pthread_mutex_unlock(&loop.lock);
        if (cb)
            cb(due[i], opaque);
    }
    free(due);
}

static void
loop_run_handles(const struct epoll_event *evs, int n)
{
    for (int i = 0; i < n; i++) {
        int fd = evs[i].data.fd;
        int got = loop_from_epoll(evs[i].events);
        /* The watch ids now on fd; each is checked again right before its call. */
        int ids[8];
        size_t n_ids = 0;
        pthread_mutex_lock(&loop.lock);
        if ((size_t)fd < loop.cap_fds) {
            LoopFd *f = &loop.fds[fd];
            for (size_t j = 0; j < f->n && n_ids < ELEMENTSOF(ids); j++)
                ids[n_ids++] = f->ids[j];
        }
        pthread_mutex_unlock(&loop.lock);
        for (size_t j = 0; j < n_ids; j++) {
            pthread_mutex_lock(&loop.lock);
            LoopWatch *w = loop_watch_find(ids[j]);
            virEventHandleCallback cb = NULL;
            void *opaque = NULL;
            int events = 0;
            if (w && !w->deleted && w->events) {
                /* Errors and hang-ups go to every enabled watch, as poll() reports them. */
                events = got & (w->events | VIR_EVENT_HANDLE_ERROR | VIR_EVENT_HANDLE_HANGUP);
                cb = w->cb;
                opaque = w->opaque;
            }
            pthread_mutex_unlock(&loop.lock);
            if (cb && events)
                cb(ids[j], fd, events, opaque);
        }
    }
}

typedef struct LoopFree {
    virFreeCallback ff;
    void *opaque;
} LoopFree;

/* Drops what was removed, then calls the free callbacks with no lock held. */
static void
loop_cleanup(void)
{
    pthread_mutex_lock(&loop.lock);
    if (!loop.have_deleted) {
        pthread_mutex_unlock(&loop.lock);
        return;
    }
    loop.have_deleted = false;
    size_t n_free = 0;
    LoopFree *frees = malloc((loop.n_watches + loop.n_timers + 1) * sizeof(*frees));
    size_t k = 0;
    for (size_t i = 0; i < loop.n_watches; i++) {
        LoopWatch *w = &loop.watches[i];
        if (!w->deleted) {
            loop.watches[k++] = *w;
        } else if (w->ff) {
            if (frees)
                frees[n_free++] = (LoopFree){w->ff, w->opaque};
        }
    }
    loop.n_watches = k;
    k = 0;
    for (size_t i = 0; i < loop.n_timers; i++) {
        LoopTimer *t = &loop.timers[i];
        if (!t->deleted) {
            loop.timers[k++] = *t;
        } else if (t->ff) {
            if (frees)
                frees[n_free++] = (LoopFree){t->ff, t->opaque};
        }
    }
    loop.n_timers = k;
    pthread_mutex_unlock(&loop.lock);
    /* Out of memory for the list leaks the opaque data rather than freeing it under a lock. */
    for (size_t i = 0; i < n_free; i++)
        frees[i].ff(frees[i].opaque);
    free(frees);
}

int
hv_eventloop_register(void)
{
    pthread_mutex_lock(&loop.lock);
    int r = 0;
    if (loop.epfd < 0) {
        loop.epfd = epoll_create1(EPOLL_CLOEXEC);
        loop.wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        struct epoll_event ev = {.events = EPOLLIN, .data.fd = -1};
        if (loop.epfd < 0 || loop.wakefd < 0 ||
            epoll_ctl(loop.epfd, EPOLL_CTL_ADD, loop.wakefd, &ev) < 0) {
            r = -errno;
            if (loop.epfd >= 0)
                close(loop.epfd);
            if (loop.wakefd >= 0)
                close(loop.wakefd);
            loop.epfd = loop.wakefd = -1;
        }
    }
    pthread_mutex_unlock(&loop.lock);
    if (r == 0)
        virEventRegisterImpl(loop_add_handle, loop_update_handle, loop_remove_handle,
                             loop_add_timeout, loop_update_timeout, loop_remove_timeout);
    return r;
}

int
hv_eventloop_run_once(void)
{
    pthread_mutex_lock(&loop.lock);
    if (!loop.have_thread) {
        loop.thread = pthread_self();
        loop.have_thread = true;
    }
    uint64_t now = nb_monotonic_ms();
    int sleep_ms = loop_sleep_ms_locked(now);
    loop.sleep_until_ms = sleep_ms < 0 ? UINT64_MAX : now + (uint64_t)sleep_ms;
    pthread_mutex_unlock(&loop.lock);

    struct epoll_event evs[LOOP_MAX_EVENTS];
    int n = epoll_wait(loop.epfd, evs, LOOP_MAX_EVENTS, sleep_ms);
    if (n < 0 && errno != EINTR)
        return -errno;
    if (n < 0)
        n = 0;
    __atomic_add_fetch(&loop.iterations, 1, __ATOMIC_RELAXED);
    /* The wake-up eventfd is not a watch: drain it and leave it out. */
    int k = 0;
    for (int i = 0; i < n; i++) {
        if (evs[i].data.fd == -1) {
            uint64_t v;
            ssize_t rd = read(loop.wakefd, &v, sizeof(v));
            (void)rd;
        } else {
            evs[k++] = evs[i];
        }
    }
    loop_run_timers(nb_monotonic_ms());
    loop_run_handles(evs, k);
    loop_cleanup();
    return 0;
}

uint64_t
hv_eventloop_iterations(void)
{
    return __atomic_load_n(&loop.iterations, __ATOMIC_RELAXED);
}
