/* The epoll event loop behind libvirt (hv_eventloop.c), driven through libvirt's own public
 * virEvent* calls as libvirt's client code drives it: handles on pipes, timers, removal from
 * inside a callback, free callbacks off the remover's stack. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libvirt/libvirt.h>

#include "hv/hv.h"
#include "hv/hv_internal.h"

#define WAIT_MS 5000

typedef struct Probe {
    atomic_int calls;
    atomic_int last_events;
    atomic_int freed;
    atomic_bool freed_on_caller; /* the free callback ran on the thread that removed */
    pthread_t remover;
    int remove_self_after; /* >0: the callback removes its own watch or timer on that call */
} Probe;

static void
sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Polls until *v reaches at least want, or WAIT_MS passes. */
static bool
wait_for(atomic_int *v, int want)
{
    for (int i = 0; i < WAIT_MS; i++) {
        if (atomic_load(v) >= want)
            return true;
        sleep_ms(1);
    }
    return false;
}

static void
on_handle(int watch, int fd, int events, void *opaque)
{
    Probe *p = opaque;
    int n = atomic_fetch_add(&p->calls, 1) + 1;
    atomic_store(&p->last_events, events);
    if (events & VIR_EVENT_HANDLE_READABLE) {
        char buf[64];
        ssize_t r = read(fd, buf, sizeof(buf));
        (void)r;
    }
    if (p->remove_self_after && n == p->remove_self_after) {
        p->remover = pthread_self();
        virEventRemoveHandle(watch);
    }
}

static void
on_timer(int timer, void *opaque)
{
    Probe *p = opaque;
    int n = atomic_fetch_add(&p->calls, 1) + 1;
    if (p->remove_self_after && n == p->remove_self_after) {
        p->remover = pthread_self();
        virEventRemoveTimeout(timer);
    }
}

static void
on_free(void *opaque)
{
    Probe *p = opaque;
    if (pthread_equal(pthread_self(), p->remover))
        atomic_store(&p->freed_on_caller, true);
    atomic_fetch_add(&p->freed, 1);
}

static int
setup(void **state)
{
    NbError *err = NULL;
    hv_events_set_loop(HV_EVENT_LOOP_EPOLL);
    if (hv_events_init(&err) < 0) {
        print_error("hv_events_init: %s\n", err->message);
        nb_error_free(err);
        return -1;
    }
    return 0;
}

static void
test_handle_readable_disable_enable(void **state)
{
    int fds[2];
    assert_int_equal(pipe2(fds, O_CLOEXEC | O_NONBLOCK), 0);
    Probe p = {0};
    p.remover = pthread_self();
    int w = virEventAddHandle(fds[0], VIR_EVENT_HANDLE_READABLE, on_handle, &p, on_free);
    assert_true(w > 0);
    assert_int_equal(write(fds[1], "x", 1), 1);
    assert_true(wait_for(&p.calls, 1));
    assert_int_equal(atomic_load(&p.last_events) & VIR_EVENT_HANDLE_READABLE,
                     VIR_EVENT_HANDLE_READABLE);

    /* Disabled: data waits, no call. */
    virEventUpdateHandle(w, 0);
    int before = atomic_load(&p.calls);
    assert_int_equal(write(fds[1], "y", 1), 1);
    sleep_ms(100);
    assert_int_equal(atomic_load(&p.calls), before);
    /* Enabled again: the waiting byte is seen. */
    virEventUpdateHandle(w, VIR_EVENT_HANDLE_READABLE);
    assert_true(wait_for(&p.calls, before + 1));

    assert_int_equal(virEventRemoveHandle(w), 0);
    assert_int_equal(virEventRemoveHandle(w), -1); /* twice: refused */
    assert_true(wait_for(&p.freed, 1));
    assert_false(atomic_load(&p.freed_on_caller));
    int after = atomic_load(&p.calls);
    assert_int_equal(write(fds[1], "z", 1), 1);
    sleep_ms(100);
    assert_int_equal(atomic_load(&p.calls), after);
    close(fds[0]);
    close(fds[1]);
}

static void
test_two_watches_on_one_fd(void **state)
{
    int fds[2];
    assert_int_equal(pipe2(fds, O_CLOEXEC | O_NONBLOCK), 0);
    Probe r = {0}, wr = {0};
    /* libvirt allows one fd several times with disjoint events: the write end is writable. */
    int a = virEventAddHandle(fds[1], VIR_EVENT_HANDLE_WRITABLE, on_handle, &wr, NULL);
    int b = virEventAddHandle(fds[0], VIR_EVENT_HANDLE_READABLE, on_handle, &r, NULL);
    assert_true(a > 0 && b > 0);
    assert_true(wait_for(&wr.calls, 3)); /* level-triggered: again and again */
    virEventRemoveHandle(a);
    assert_int_equal(write(fds[1], "x", 1), 1);
    assert_true(wait_for(&r.calls, 1));
    virEventRemoveHandle(b);

    /* Same fd, two watches. */
    Probe x = {0}, y = {0};
    int c = virEventAddHandle(fds[0], VIR_EVENT_HANDLE_READABLE, on_handle, &x, NULL);
    int d = virEventAddHandle(fds[0], VIR_EVENT_HANDLE_WRITABLE, on_handle, &y, NULL);
    assert_true(c > 0 && d > 0 && c != d);
    assert_int_equal(write(fds[1], "x", 1), 1);
    assert_true(wait_for(&x.calls, 1));
    /* A read end is never writable: y must not be called for x's data. */
    assert_int_equal(atomic_load(&y.calls), 0);
    virEventRemoveHandle(c);
    virEventRemoveHandle(d);
    close(fds[0]);
    close(fds[1]);
}

static void
test_hangup_and_remove_from_callback(void **state)
{
    int fds[2];
    assert_int_equal(pipe2(fds, O_CLOEXEC | O_NONBLOCK), 0);
    Probe p = {0};
    p.remove_self_after = 1;
    int w = virEventAddHandle(fds[0], VIR_EVENT_HANDLE_READABLE, on_handle, &p, on_free);
    assert_true(w > 0);
    close(fds[1]); /* the reader sees a hang-up */
    assert_true(wait_for(&p.calls, 1));
    assert_true(atomic_load(&p.last_events) & VIR_EVENT_HANDLE_HANGUP);
    assert_true(wait_for(&p.freed, 1));
    /* Removed inside its callback: the free waited for the end of the iteration, and the
     * hang-up (still there) brought no second call. */
    sleep_ms(100);
    assert_int_equal(atomic_load(&p.calls), 1);
    assert_int_equal(atomic_load(&p.freed), 1);
    close(fds[0]);
}

static void
test_timers(void **state)
{
    Probe every = {0}, periodic = {0}, off = {0}, self = {0};
    int t0 = virEventAddTimeout(0, on_timer, &every, on_free);
    int t1 = virEventAddTimeout(20, on_timer, &periodic, on_free);
    int t2 = virEventAddTimeout(-1, on_timer, &off, on_free);
    self.remove_self_after = 3;
    int t3 = virEventAddTimeout(5, on_timer, &self, on_free);
    assert_true(t0 > 0 && t1 > 0 && t2 > 0 && t3 > 0);
    assert_true(wait_for(&every.calls, 50)); /* 0: on every iteration */
    assert_true(wait_for(&periodic.calls, 3));
    assert_true(wait_for(&self.freed, 1));
    assert_int_equal(atomic_load(&self.calls), 3);
    assert_int_equal(atomic_load(&off.calls), 0); /* -1: disabled */

    every.remover = pthread_self();
    assert_int_equal(virEventRemoveTimeout(t0), 0);
    assert_true(wait_for(&every.freed, 1));
    assert_false(atomic_load(&every.freed_on_caller));

    /* Disabled, then enabled with an interval. */
    virEventUpdateTimeout(t1, -1);
    sleep_ms(30); /* a firing under way may still land */
    int n = atomic_load(&periodic.calls);
    sleep_ms(100);
    assert_int_equal(atomic_load(&periodic.calls), n);
    virEventUpdateTimeout(t2, 10);
    assert_true(wait_for(&off.calls, 2));
    virEventRemoveTimeout(t1);
    virEventRemoveTimeout(t2);
    assert_true(wait_for(&periodic.freed, 1));
    assert_true(wait_for(&off.freed, 1));
    assert_int_equal(virEventRemoveTimeout(t2), -1);
}

/* The loop asleep until a timer far off: a timer added, or one moved earlier, from this thread
 * still fires on time (the loop is woken only for those; watches need no wakeup). */
static void
test_timer_earlier_than_sleep(void **state)
{
    Probe far = {0}, near = {0}, moved = {0};
    int tf = virEventAddTimeout(60000, on_timer, &far, on_free);
    int tm = virEventAddTimeout(60000, on_timer, &moved, on_free);
    assert_true(tf > 0 && tm > 0);
    sleep_ms(50); /* the loop is asleep until the far timers */
    int tn = virEventAddTimeout(20, on_timer, &near, on_free);
    assert_true(tn > 0);
    assert_true(wait_for(&near.calls, 1));
    virEventRemoveTimeout(tn);
    sleep_ms(50);
    virEventUpdateTimeout(tm, 20);
    assert_true(wait_for(&moved.calls, 1));
    assert_int_equal(atomic_load(&far.calls), 0);
    virEventRemoveTimeout(tf);
    virEventRemoveTimeout(tm);
    assert_true(wait_for(&far.freed, 1));
    assert_true(wait_for(&moved.freed, 1));
    assert_true(wait_for(&near.freed, 1));
}

/* Timers of a second or more may fire a little late so that those due close together share a
 * wakeup: two 3.2 s timers armed 40 ms apart (slack 100 ms) fire in the same iteration. */
static atomic_uint_fast64_t slack_iter[2];

static void
on_slack_timer(int timer, void *opaque)
{
    atomic_store(&slack_iter[(intptr_t)opaque], hv_eventloop_iterations());
    virEventUpdateTimeout(timer, -1);
}

static void
test_timer_slack_shares_wakeup(void **state)
{
    int a = virEventAddTimeout(3200, on_slack_timer, (void *)(intptr_t)0, NULL);
    sleep_ms(40);
    int b = virEventAddTimeout(3200, on_slack_timer, (void *)(intptr_t)1, NULL);
    assert_true(a > 0 && b > 0);
    for (int i = 0;
         i < 2 * WAIT_MS && !(atomic_load(&slack_iter[0]) && atomic_load(&slack_iter[1])); i++)
        sleep_ms(1);
    assert_true(atomic_load(&slack_iter[0]) > 0);
    assert_int_equal(atomic_load(&slack_iter[0]), atomic_load(&slack_iter[1]));
    virEventRemoveTimeout(a);
    virEventRemoveTimeout(b);
}

/* Many timers, as with a keepalive per host: each fires at its own pace; one re-armed over and
 * over (its older firings stale) fires only once it is left alone; disabled and removed ones
 * never fire again; a timer due later than the rest does not hold the earlier ones back. */
static void
test_many_timers(void **state)
{
    enum { N = 400 };
    static Probe probes[N];
    static int timers[N];
    memset(probes, 0, sizeof(probes));
    for (int i = 0; i < N; i++) {
        /* intervals 20 ms .. 60 ms, and every tenth timer at 10 s */
        timers[i] =
            virEventAddTimeout(i % 10 == 9 ? 10000 : 20 + (i % 5) * 10, on_timer, &probes[i], NULL);
        assert_true(timers[i] > 0);
    }
    /* Timer 0 re-armed every 5 ms for 400 ms, longer than its 250 ms interval: each update
     * pushes it back a whole interval, so it must not fire, unless the machine stalled this
     * thread for a whole interval between two updates (then it may, rightly: not judged). */
    virEventUpdateTimeout(timers[0], 250);
    struct timespec prev, now;
    clock_gettime(CLOCK_MONOTONIC, &prev);
    bool stalled = false;
    for (int k = 0; k < 80; k++) {
        virEventUpdateTimeout(timers[0], 250);
        clock_gettime(CLOCK_MONOTONIC, &now);
        long gap_ms = (now.tv_sec - prev.tv_sec) * 1000 + (now.tv_nsec - prev.tv_nsec) / 1000000;
        stalled = stalled || gap_ms >= 200;
        prev = now;
        sleep_ms(5);
    }
    if (!stalled)
        assert_int_equal(atomic_load(&probes[0].calls), 0);
    virEventUpdateTimeout(timers[1], -1); /* disabled after 400 ms: a few firings at most */
    virEventRemoveTimeout(timers[2]);
    sleep_ms(30); /* a firing under way may still land */
    int n1 = atomic_load(&probes[1].calls), n2 = atomic_load(&probes[2].calls);
    sleep_ms(300);
    for (int i = 3; i < N; i++) {
        int calls = atomic_load(&probes[i].calls);
        if (i % 10 == 9) {
            assert_int_equal(calls, 0);
        } else {
            /* 530 ms at 20-60 ms: 8 to 26 firings; allow for a loaded machine's lateness */
            if (calls < 3)
                fail_msg("timer %d (every %d ms) fired %d times in 530 ms", i, 20 + (i % 5) * 10,
                         calls);
        }
    }
    assert_true(wait_for(&probes[0].calls, 1)); /* left alone: it fires */
    assert_int_equal(atomic_load(&probes[1].calls), n1);
    assert_int_equal(atomic_load(&probes[2].calls), n2);
    for (int i = 0; i < N; i++)
        if (i != 2)
            virEventRemoveTimeout(timers[i]);
}

/* Many fds and timers at once, as with hundreds of hosts: each ready fd reaches its own watch. */
static void
test_many_handles(void **state)
{
    enum { N = 300 };
    static int fds[N][2];
    static Probe probes[N];
    static int watches[N];
    memset(probes, 0, sizeof(probes));
    for (int i = 0; i < N; i++) {
        assert_int_equal(pipe2(fds[i], O_CLOEXEC | O_NONBLOCK), 0);
        watches[i] =
            virEventAddHandle(fds[i][0], VIR_EVENT_HANDLE_READABLE, on_handle, &probes[i], NULL);
        assert_true(watches[i] > 0);
    }
    for (int i = 0; i < N; i += 3)
        assert_int_equal(write(fds[i][1], "x", 1), 1);
    for (int i = 0; i < N; i += 3)
        assert_true(wait_for(&probes[i].calls, 1));
    sleep_ms(50);
    for (int i = 0; i < N; i++)
        assert_int_equal(atomic_load(&probes[i].calls), i % 3 == 0 ? 1 : 0);
    for (int i = 0; i < N; i++) {
        virEventRemoveHandle(watches[i]);
        close(fds[i][0]);
        close(fds[i][1]);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_handle_readable_disable_enable),
        cmocka_unit_test(test_two_watches_on_one_fd),
        cmocka_unit_test(test_hangup_and_remove_from_callback),
        cmocka_unit_test(test_timers),
        cmocka_unit_test(test_timer_earlier_than_sleep),
        cmocka_unit_test(test_timer_slack_shares_wakeup),
        cmocka_unit_test(test_many_handles),
        cmocka_unit_test(test_many_timers),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
