/* libvirt's default event loop, run on a thread of its own. Keepalives, lifecycle events and
 * close callbacks are all dispatched from it. */
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
        if (virEventRunDefaultImpl() < 0) {
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
        if (virEventRegisterDefaultImpl() < 0) {
            r = hv_error(err, "registering the libvirt event loop");
            goto out;
        }
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

/* Fires once on the event thread so that virEventRunDefaultImpl returns and the loop sees the
 * quit flag. */
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
