/* libvirt's event loop, run on a thread of its own: ours (hv_eventloop.c, epoll) or libvirt's
 * default one. Keepalives, lifecycle events and close callbacks are all dispatched from it. */
#include "hv_internal.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "../util/log.h"

static pthread_mutex_t hv_events_lock = PTHREAD_MUTEX_INITIALIZER;
static bool hv_events_registered; /* virEventRegisterDefaultImpl can only be done once */
static bool hv_events_thread_running;
static pthread_t hv_events_thread;
static atomic_bool hv_events_quit;
static HvEventLoop hv_events_kind = HV_EVENT_LOOP_EPOLL;
static HvEventLoop hv_events_registered_kind;

static const char *const hv_event_loop_names[_HV_EVENT_LOOP_MAX] = {
    [HV_EVENT_LOOP_EPOLL] = "epoll",
    [HV_EVENT_LOOP_LIBVIRT] = "libvirt",
};

const char *
hv_event_loop_to_string(HvEventLoop k)
{
    return k >= 0 && k < _HV_EVENT_LOOP_MAX ? hv_event_loop_names[k] : NULL;
}

HvEventLoop
hv_event_loop_from_string(const char *s)
{
    for (int i = 0; s && i < _HV_EVENT_LOOP_MAX; i++)
        if (strcmp(s, hv_event_loop_names[i]) == 0)
            return (HvEventLoop)i;
    return _HV_EVENT_LOOP_INVALID;
}

void
hv_events_set_loop(HvEventLoop kind)
{
    pthread_mutex_lock(&hv_events_lock);
    hv_events_kind = kind;
    pthread_mutex_unlock(&hv_events_lock);
}

bool
hv_events_ready(void)
{
    pthread_mutex_lock(&hv_events_lock);
    bool ready = hv_events_registered && hv_events_thread_running;
    pthread_mutex_unlock(&hv_events_lock);
    return ready;
}

/* libvirt would print every error to stderr; we copy them into NbError instead. */
static void
hv_error_func_noop(void *userdata, virErrorPtr e)
{
}

static void *
hv_events_loop(void *arg)
{
    while (!atomic_load(&hv_events_quit)) {
        if (hv_events_registered_kind == HV_EVENT_LOOP_EPOLL) {
            int r = hv_eventloop_run_once();
            if (r < 0) {
                log_error("event loop: %s", strerror(-r));
                break;
            }
        } else if (virEventRunDefaultImpl() < 0) {
            virErrorPtr e = virGetLastError();
            log_error("libvirt event loop: %s", e && e->message ? e->message : "unknown error");
            break;
        }
    }
    return NULL;
}

int
hv_events_init(NbError **err)
{
    pthread_mutex_lock(&hv_events_lock);
    int r = 0;
    if (hv_events_thread_running)
        goto out;

    if (!hv_events_registered) {
        if (virInitialize() < 0) {
            r = hv_error(err, "initializing libvirt");
            goto out;
        }
        virSetErrorFunc(NULL, hv_error_func_noop);
        if (hv_events_kind == HV_EVENT_LOOP_EPOLL) {
            int e = hv_eventloop_register();
            if (e < 0) {
                r = nb_error_set(err, NB_ERR_INTERNAL, "setting up the event loop: %s",
                                 strerror(-e));
                goto out;
            }
        } else if (virEventRegisterDefaultImpl() < 0) {
            r = hv_error(err, "registering the libvirt event loop");
            goto out;
        }
        hv_events_registered_kind = hv_events_kind;
        hv_events_registered = true;
    }

    atomic_store(&hv_events_quit, false);
    int e = pthread_create(&hv_events_thread, NULL, hv_events_loop, NULL);
    if (e != 0) {
        r = nb_error_set(err, NB_ERR_INTERNAL, "starting the libvirt event thread: %s",
                         strerror(e));
        goto out;
    }
    hv_events_thread_running = true;
out:
    pthread_mutex_unlock(&hv_events_lock);
    return r;
}

/* Fires once on the event thread so that the loop's iteration returns and it sees the quit
 * flag. */
static void
hv_events_wake(int timer, void *opaque)
{
    virEventRemoveTimeout(timer);
}

void
hv_events_shutdown(void)
{
    pthread_mutex_lock(&hv_events_lock);
    if (!hv_events_thread_running) {
        pthread_mutex_unlock(&hv_events_lock);
        return;
    }
    atomic_store(&hv_events_quit, true);
    /* A zero-interval timeout wakes the poll() the loop is sleeping in. */
    if (virEventAddTimeout(0, hv_events_wake, NULL, NULL) < 0) {
        virErrorPtr e = virGetLastError();
        log_error("waking the libvirt event loop: %s",
                  e && e->message ? e->message : "unknown error");
    }
    pthread_join(hv_events_thread, NULL);
    hv_events_thread_running = false;
    pthread_mutex_unlock(&hv_events_lock);
}
