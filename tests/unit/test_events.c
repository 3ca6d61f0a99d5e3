/*
 * The event bus (src/core/events.c) alone: ids, the replay window and resync, scoping, and that
 * a subscriber that never reads cannot hold a producer up.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/events.h"
#include "util/timeutil.h"

#define PA "aaaaaaaa-0000-0000-0000-000000000001"
#define PB "bbbbbbbb-0000-0000-0000-000000000002"

static EventBus *
bus(size_t capacity)
{
    EventBus *b = NULL;
    assert_int_equal(event_bus_new(capacity, 100, &b), 0);
    return b;
}

static uint64_t
pub(EventBus *b, const char *project, int n)
{
    return event_bus_publish(b, "vm", project, json_pack("{s:i}", "n", n));
}

/* The next event for scope, with no wait; asserts one is there. */
static uint64_t
next_id(EventBus *b, uint64_t after, const char *scope, int *n)
{
    Event ev;
    uint64_t resume = 0;
    assert_int_equal(event_bus_next(b, after, scope, 0, &ev, &resume), EVENT_BUS_OK);
    json_t *j = json_loads(ev.data, 0, NULL);
    assert_non_null(j);
    if (n)
        *n = (int)json_integer_value(json_object_get(j, "n"));
    json_decref(j);
    uint64_t id = ev.id;
    event_clear(&ev);
    return id;
}

static void
test_ids_increase_and_replay(void **state)
{
    (void)state;
    EventBus *b = bus(8);
    assert_int_equal(event_bus_last_id(b), 99);
    uint64_t prev = 0;
    for (int i = 0; i < 5; i++) {
        uint64_t id = pub(b, PA, i);
        assert_true(id > prev);
        prev = id;
    }
    assert_int_equal(event_bus_last_id(b), prev);
    /* From the start of the bus: every event, in order. */
    uint64_t after = 99;
    for (int i = 0; i < 5; i++) {
        int n = -1;
        after = next_id(b, after, NULL, &n);
        assert_int_equal(n, i);
    }
    /* Caught up: nothing, after the timeout. */
    Event ev;
    uint64_t resume = 0;
    assert_int_equal(event_bus_next(b, after, NULL, 10, &ev, &resume), EVENT_BUS_TIMEOUT);
    assert_int_equal(resume, after);
    /* Resuming in the middle gives exactly what follows. */
    int n = -1;
    next_id(b, 101, NULL, &n);
    assert_int_equal(n, 2);
    event_bus_free(b);
}

static void
test_resync(void **state)
{
    (void)state;
    EventBus *b = bus(4);
    for (int i = 0; i < 10; i++)
        pub(b, PA, i); /* ids 100..109; the ring holds 106..109 */
    Event ev;
    uint64_t resume = 0;
    /* 105 is the last one dropped: resuming after it loses nothing. */
    int n = -1;
    next_id(b, 105, NULL, &n);
    assert_int_equal(n, 6);
    /* After 104, 105 was lost. */
    assert_int_equal(event_bus_next(b, 104, NULL, 0, &ev, &resume), EVENT_BUS_RESYNC);
    assert_int_equal(resume, 109);
    /* An id from the future (another daemon's life) is a resync too. */
    resume = 0;
    assert_int_equal(event_bus_next(b, 5000, NULL, 0, &ev, &resume), EVENT_BUS_RESYNC);
    assert_int_equal(resume, 109);
    /* From where the resync said: new events only. */
    pub(b, PA, 10);
    next_id(b, resume, NULL, &n);
    assert_int_equal(n, 10);
    event_bus_free(b);
}

static void
test_scope(void **state)
{
    (void)state;
    EventBus *b = bus(16);
    pub(b, PA, 1);
    pub(b, PB, 2);
    pub(b, NULL, 3); /* admins only */
    pub(b, PA, 4);
    int n;
    uint64_t after = next_id(b, 99, PA, &n);
    assert_int_equal(n, 1);
    after = next_id(b, after, PA, &n);
    assert_int_equal(n, 4);
    Event ev;
    uint64_t resume = 0;
    assert_int_equal(event_bus_next(b, after, PA, 0, &ev, &resume), EVENT_BUS_TIMEOUT);
    /* B sees only its own. */
    after = next_id(b, 99, PB, &n);
    assert_int_equal(n, 2);
    assert_int_equal(event_bus_next(b, after, PB, 0, &ev, &resume), EVENT_BUS_TIMEOUT);
    /* What B skipped is not looked at again: the resume point moved past it. */
    assert_int_equal(resume, 103);
    /* An admin (scope NULL) sees all four. */
    after = 99;
    for (int i = 1; i <= 4; i++) {
        after = next_id(b, after, NULL, &n);
        assert_int_equal(n, i);
    }
    /* A project's events never reach another project, even when they fill the ring. */
    for (int i = 0; i < 40; i++)
        pub(b, PB, 100 + i);
    assert_int_equal(event_bus_next(b, event_bus_last_id(b), PA, 0, &ev, &resume),
                     EVENT_BUS_TIMEOUT);
    event_bus_free(b);
}

typedef struct Waiter {
    EventBus *b;
    uint64_t after;
    EventWait res;
    uint64_t id;
} Waiter;

static void *
waiter(void *arg)
{
    Waiter *w = arg;
    Event ev;
    uint64_t resume = 0;
    w->res = event_bus_next(w->b, w->after, PA, 60000, &ev, &resume);
    w->id = ev.id;
    event_clear(&ev);
    return NULL;
}

/* A subscriber that never reads cannot slow a producer: publishing many times the ring's size
 * returns (this test would time out otherwise), and that subscriber is told to resync. */
static void
test_slow_subscriber_never_blocks(void **state)
{
    (void)state;
    EventBus *b = bus(64);
    event_bus_subscribe(b);
    assert_int_equal(event_bus_subscribers(b), 1);
    uint64_t slow_after = event_bus_last_id(b);
    for (int i = 0; i < 64 * 100; i++)
        assert_true(pub(b, PA, i) > 0);
    Event ev;
    uint64_t resume = 0;
    assert_int_equal(event_bus_next(b, slow_after, PA, 0, &ev, &resume), EVENT_BUS_RESYNC);
    assert_int_equal(resume, event_bus_last_id(b));
    event_bus_unsubscribe(b);
    assert_int_equal(event_bus_subscribers(b), 0);

    /* A waiting subscriber is woken by a publish of its project, not by another's. */
    Waiter w = {.b = b, .after = event_bus_last_id(b)};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, waiter, &w), 0);
    pub(b, PB, 1);
    uint64_t want = pub(b, PA, 2);
    pthread_join(t, NULL);
    assert_int_equal(w.res, EVENT_BUS_OK);
    assert_int_equal(w.id, want);

    /* Closing wakes waiters at once (the 60 s wait would time the test out). */
    w = (Waiter){.b = b, .after = event_bus_last_id(b)};
    assert_int_equal(pthread_create(&t, NULL, waiter, &w), 0);
    event_bus_close(b);
    pthread_join(t, NULL);
    assert_int_equal(w.res, EVENT_BUS_CLOSED);
    event_bus_free(b);
}

static void
test_since_time(void **state)
{
    (void)state;
    EventBus *b = bus(4);
    bool lost = true;
    /* Nothing published: start with the next event, nothing lost. */
    assert_int_equal(event_bus_id_before_time(b, 0, &lost), 99);
    assert_false(lost);
    pub(b, PA, 1);
    pub(b, PA, 2);
    double now = nb_epoch_now();
    /* Everything since a minute ago: from the first event. */
    assert_int_equal(event_bus_id_before_time(b, now - 60, &lost), 99);
    assert_false(lost);
    /* Since a time after both: the next one. */
    assert_int_equal(event_bus_id_before_time(b, now + 60, &lost), 101);
    assert_false(lost);
    /* Once the ring dropped events that were recent enough, say so. */
    for (int i = 0; i < 6; i++)
        pub(b, PA, i);
    assert_int_equal(event_bus_id_before_time(b, now - 60, &lost), 103);
    assert_true(lost);
    event_bus_free(b);
}

static void
test_null_bus(void **state)
{
    (void)state;
    /* Producers in processes without a bus (unit tests of other parts) publish into nothing. */
    assert_int_equal(event_bus_publish(NULL, "vm", PA, json_object()), 0);
    events_publish_host(NULL, "h1", "up", NULL);
    events_publish_task(NULL, NULL, "x", NULL);
    events_publish_vm(NULL, NULL, "x", NULL);
    events_publish_image(NULL, NULL, "x", NULL);
    events_publish_quota(NULL, PA, "a", json_pack("{s:i}", "vms", 1)); /* limits freed */
}

static void
test_quota_event_scoped(void **state)
{
    (void)state;
    EventBus *b = bus(8);
    events_publish_quota(b, PA, "proj-a", json_pack("{s:i, s:n}", "vms", 7, "images"));
    Event ev;
    uint64_t resume = 0;
    /* Another project's watcher gets nothing; the project's own gets the limits. */
    assert_int_equal(event_bus_next(b, 99, PB, 0, &ev, &resume), EVENT_BUS_TIMEOUT);
    assert_int_equal(event_bus_next(b, 99, PA, 0, &ev, &resume), EVENT_BUS_OK);
    assert_string_equal(ev.type, "quota");
    assert_string_equal(ev.project, PA);
    json_t *j = json_loads(ev.data, 0, NULL);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "project_id")), PA);
    assert_string_equal(json_string_value(json_object_get(j, "name")), "proj-a");
    json_t *limits = json_object_get(j, "limits");
    assert_int_equal(json_integer_value(json_object_get(limits, "vms")), 7);
    assert_true(json_is_null(json_object_get(limits, "images")));
    json_decref(j);
    event_clear(&ev);
    event_bus_free(b);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ids_increase_and_replay),
        cmocka_unit_test(test_resync),
        cmocka_unit_test(test_scope),
        cmocka_unit_test(test_slow_subscriber_never_blocks),
        cmocka_unit_test(test_since_time),
        cmocka_unit_test(test_null_bus),
        cmocka_unit_test(test_quota_event_scoped),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
