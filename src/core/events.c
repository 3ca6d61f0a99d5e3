#include "events.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../util/cleanup.h"
#include "../util/log.h"
#include "../util/strutil.h"

typedef struct EventSlot {
    uint64_t id; /* 0: empty */
    double epoch;
    char time[NB_TIMESTAMP_LEN];
    const char *type;
    char project[NB_UUID_STRLEN];
    char *data;
} EventSlot;

struct EventBus {
    pthread_mutex_t lock;
    pthread_cond_t cond; /* CLOCK_MONOTONIC */
    EventSlot *ring;
    size_t capacity;
    uint64_t first_id; /* the first id this bus gives */
    uint64_t next_id;
    bool closed;
    unsigned subscribers;
};

void
event_clear(Event *e)
{
    if (!e)
        return;
    free(e->data);
    memset(e, 0, sizeof(*e));
}

int
event_bus_new(size_t capacity, uint64_t start_id, EventBus **ret)
{
    EventBus *b = calloc(1, sizeof(*b));
    if (!b || capacity == 0 || !(b->ring = calloc(capacity, sizeof(*b->ring)))) {
        free(b);
        return -ENOMEM;
    }
    b->capacity = capacity;
    if (!start_id) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        start_id = (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
    }
    b->first_id = b->next_id = start_id;
    pthread_mutex_init(&b->lock, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&b->cond, &attr);
    pthread_condattr_destroy(&attr);
    *ret = b;
    return 0;
}

void
event_bus_close(EventBus *b)
{
    if (!b)
        return;
    pthread_mutex_lock(&b->lock);
    b->closed = true;
    pthread_cond_broadcast(&b->cond);
    pthread_mutex_unlock(&b->lock);
}

void
event_bus_free(EventBus *b)
{
    if (!b)
        return;
    for (size_t i = 0; i < b->capacity; i++)
        free(b->ring[i].data);
    free(b->ring);
    pthread_mutex_destroy(&b->lock);
    pthread_cond_destroy(&b->cond);
    free(b);
}

uint64_t
event_bus_publish(EventBus *b, const char *type, const char *project, json_t *data)
{
    if (!b) {
        json_decref(data);
        return 0;
    }
    /* Encoded outside the lock: publishing costs subscribers nothing but a slot swap. */
    char *text = json_dumps(data ? data : json_object(), JSON_COMPACT);
    json_decref(data);
    if (!text)
        return 0;
    EventSlot slot = {.type = type, .epoch = nb_epoch_now()};
    nb_timestamp_format(slot.epoch, slot.time);
    snprintf(slot.project, sizeof(slot.project), "%s", project ? project : "");
    slot.data = text;

    pthread_mutex_lock(&b->lock);
    slot.id = b->next_id++;
    EventSlot *s = &b->ring[slot.id % b->capacity];
    char *old = s->data;
    *s = slot;
    pthread_cond_broadcast(&b->cond);
    pthread_mutex_unlock(&b->lock);
    free(old);
    return slot.id;
}

uint64_t
event_bus_last_id(EventBus *b)
{
    pthread_mutex_lock(&b->lock);
    uint64_t id = b->next_id - 1;
    pthread_mutex_unlock(&b->lock);
    return id;
}

/* The oldest id the ring holds. With b->lock held. */
static uint64_t
event_bus_oldest_locked(const EventBus *b)
{
    uint64_t n = b->next_id - b->first_id;
    return n > b->capacity ? b->next_id - b->capacity : b->first_id;
}

uint64_t
event_bus_id_before_time(EventBus *b, double epoch, bool *ret_lost)
{
    pthread_mutex_lock(&b->lock);
    uint64_t oldest = event_bus_oldest_locked(b);
    uint64_t after = b->next_id - 1;
    /* Newest first: stop at the first event older than asked. */
    while (after >= oldest && after >= b->first_id && b->ring[after % b->capacity].epoch >= epoch)
        after--;
    /* Events were dropped and every event still held is recent enough: some may be lost. */
    *ret_lost = after < oldest && oldest > b->first_id;
    pthread_mutex_unlock(&b->lock);
    return after;
}

EventWait
event_bus_next(EventBus *b, uint64_t after, const char *scope, uint64_t timeout_ms, Event *ret,
               uint64_t *ret_resume)
{
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += (time_t)(timeout_ms / 1000);
    until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    memset(ret, 0, sizeof(*ret));
    uint64_t unused;
    if (!ret_resume)
        ret_resume = &unused;
    EventWait res = EVENT_BUS_TIMEOUT;
    pthread_mutex_lock(&b->lock);
    /* An id from the future is not of this daemon's life. */
    if (after >= b->next_id || after + 1 < event_bus_oldest_locked(b)) {
        *ret_resume = b->next_id - 1;
        pthread_mutex_unlock(&b->lock);
        return EVENT_BUS_RESYNC;
    }
    for (;;) {
        if (b->closed) {
            res = EVENT_BUS_CLOSED;
            break;
        }
        /* Overtaken while waiting or scanning: the producer never waits for us. */
        if (after + 1 < event_bus_oldest_locked(b)) {
            *ret_resume = b->next_id - 1;
            res = EVENT_BUS_RESYNC;
            break;
        }
        const EventSlot *found = NULL;
        for (uint64_t id = after + 1; id < b->next_id; id++) {
            const EventSlot *s = &b->ring[id % b->capacity];
            if (!scope || (s->project[0] && streq(s->project, scope))) {
                found = s;
                break;
            }
            after = id; /* not for this subscriber: never look at it again */
        }
        if (found) {
            ret->data = strdup(found->data);
            if (!ret->data) {
                res = EVENT_BUS_TIMEOUT;
                break;
            }
            ret->id = found->id;
            ret->type = found->type;
            memcpy(ret->time, found->time, sizeof(ret->time));
            memcpy(ret->project, found->project, sizeof(ret->project));
            res = EVENT_BUS_OK;
            break;
        }
        if (pthread_cond_timedwait(&b->cond, &b->lock, &until) == ETIMEDOUT) {
            res = EVENT_BUS_TIMEOUT;
            break;
        }
    }
    /* What was skipped (other projects' events) need not be scanned again. */
    if (res == EVENT_BUS_TIMEOUT)
        *ret_resume = after;
    pthread_mutex_unlock(&b->lock);
    return res;
}

void
event_bus_subscribe(EventBus *b)
{
    pthread_mutex_lock(&b->lock);
    b->subscribers++;
    pthread_mutex_unlock(&b->lock);
}

void
event_bus_unsubscribe(EventBus *b)
{
    pthread_mutex_lock(&b->lock);
    if (b->subscribers)
        b->subscribers--;
    pthread_mutex_unlock(&b->lock);
}

unsigned
event_bus_subscribers(EventBus *b)
{
    if (!b)
        return 0;
    pthread_mutex_lock(&b->lock);
    unsigned n = b->subscribers;
    pthread_mutex_unlock(&b->lock);
    return n;
}

/* ---- producers ---- */

void
events_publish_task(EventBus *b, Store *s, const char *task_id, const Task *before)
{
    if (!b)
        return;
    _cleanup_error_ NbError *err = NULL;
    Task t;
    if (task_store_get(s, NULL, task_id, &t, &err) < 0)
        return;
    /* A turn that only waited (a guest shutting down) changes nothing worth telling. */
    if (!before || before->state != t.state || before->step != t.step ||
        before->progress != t.progress) {
        event_bus_publish(b, "task", t.project, task_to_json(&t));
        /* A volume task's target is the volume, not a VM. */
        if (str_startswith(task_kind_to_string(t.kind), "vm."))
            events_publish_vm(b, s, t.target_id, t.project);
    }
    task_clear(&t);
}

void
events_publish_vm(EventBus *b, Store *s, const char *vm_id, const char *project_if_gone)
{
    if (!b)
        return;
    _cleanup_error_ NbError *err = NULL;
    Vm vm;
    if (vm_store_get(s, NULL, vm_id, &vm, &err) < 0) {
        if (err && err->code && streq(err->code, NB_ERR_VM_NOT_FOUND))
            event_bus_publish(b, "vm", project_if_gone,
                              json_pack("{s:s, s:s}", "id", vm_id, "state", "deleted"));
        return;
    }
    event_bus_publish(b, "vm", vm.project,
                      json_pack("{s:s, s:s, s:s, s:s, s:s, s:s?, s:s?, s:s}", "id", vm.id, "name",
                                vm.name, "state", vm_state_to_string(vm.state), "desired",
                                vm_power_to_string(vm.desired), "host", vm.host, "task_id",
                                vm.task_id[0] ? vm.task_id : NULL, "error", vm.error, "project_id",
                                vm.project));
    vm_clear(&vm);
}

void
events_publish_host(EventBus *b, const char *host, const char *state, const char *error)
{
    event_bus_publish(b, "host", NULL,
                      json_pack("{s:s, s:s, s:s?}", "name", host, "state", state, "error",
                                error && error[0] ? error : NULL));
}

void
events_publish_image(EventBus *b, Store *s, const char *image_id, const char *project_if_gone)
{
    if (!b)
        return;
    _cleanup_error_ NbError *err = NULL;
    Image img;
    if (image_store_get(s, NULL, image_id, &img, &err) < 0) {
        if (err && err->code && streq(err->code, NB_ERR_IMAGE_NOT_FOUND))
            event_bus_publish(b, "image", project_if_gone,
                              json_pack("{s:s, s:s}", "id", image_id, "state", "deleted"));
        return;
    }
    event_bus_publish(b, "image", img.project, image_to_json(&img));
}

void
events_publish_quota(EventBus *b, const char *project_id, const char *name, json_t *limits)
{
    if (!b) {
        json_decref(limits);
        return;
    }
    event_bus_publish(b, "quota", project_id,
                      json_pack("{s:s, s:s, s:o}", "project_id", project_id, "name", name, "limits",
                                limits ? limits : json_object()));
}
