/*
 * The event bus: what changed, as it happens, for GET /v1/events. A bounded in-memory ring of
 * the last events (the replay window of a reconnecting client); nothing is persisted. Producers
 * publish and never wait for a subscriber: a subscriber reads the ring at its own pace, and one
 * that falls behind by more than the ring holds is told to resync (EVENT_BUS_RESYNC) instead of
 * slowing anybody down.
 *
 * Ids are monotonic within a daemon's life and start from the wall clock in microseconds at
 * start-up, so that an id kept by a client across a daemon restart is older than every id of the
 * new ring (a resync) instead of silently matching unrelated events.
 */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../store/store.h"
#include "../util/timeutil.h"
#include "../util/uuid.h"

#define EVENT_BUS_DEFAULT_CAPACITY 4096

typedef struct EventBus EventBus;

/* One event as a subscriber gets it: its own copies. */
typedef struct Event {
    uint64_t id;
    char time[NB_TIMESTAMP_LEN];
    const char *type;             /* "task", "vm", "host", "audit", "image", "quota": static */
    char project[NB_UUID_STRLEN]; /* "" : for admins only */
    char *data;                   /* compact JSON text, owned */
} Event;

void event_clear(Event *e);

typedef enum EventWait {
    EVENT_BUS_OK,      /* *ret is the next event after `after` the scope may see */
    EVENT_BUS_TIMEOUT, /* nothing new for the scope within the timeout */
    EVENT_BUS_RESYNC,  /* events after `after` were dropped from the ring (or `after` is not of
                        * this daemon): *ret_resume is where to go on from (the newest id) */
    EVENT_BUS_CLOSED,  /* the daemon is stopping */
} EventWait;

/* start_id 0: from the wall clock (see above). */
int event_bus_new(size_t capacity, uint64_t start_id, EventBus **ret);
/* Wakes every waiting subscriber with EVENT_BUS_CLOSED; later waits return it at once. */
void event_bus_close(EventBus *b);
void event_bus_free(EventBus *b);

/* Takes data (may be NULL: {}); project NULL or "": admins only. Returns the event's id, 0 when
 * b is NULL or memory ran out. Safe from any thread; holds the bus lock only to swap a slot. */
uint64_t event_bus_publish(EventBus *b, const char *type, const char *project, json_t *data);

/* The newest id published (start_id - 1 before any). */
uint64_t event_bus_last_id(EventBus *b);
/* The id to resume after so as to get the events published at or after `epoch` (seconds);
 * *ret_lost is set when the ring no longer holds all of them. */
uint64_t event_bus_id_before_time(EventBus *b, double epoch, bool *ret_lost);

/* The first event with id > after that scope may see (scope NULL: every event; else only events
 * of that project), waiting at most timeout_ms for one. *ret_resume (may be NULL) is where to go
 * on from after RESYNC, and after TIMEOUT (past the events the scope may not see). */
EventWait event_bus_next(EventBus *b, uint64_t after, const char *scope, uint64_t timeout_ms,
                         Event *ret, uint64_t *ret_resume);

/* Subscribers, for the nimbus_events_subscribers gauge. */
void event_bus_subscribe(EventBus *b);
void event_bus_unsubscribe(EventBus *b);
unsigned event_bus_subscribers(EventBus *b);

/* ---- producers' one-line hooks: each reads the row it describes and publishes it ---- */
/* A task as stored now (its state, step, progress, error), then its VM. before: the task as it
 * was, to publish nothing when neither state, step nor progress changed (NULL: publish). */
void events_publish_task(EventBus *b, Store *s, const char *task_id, const Task *before);
/* A VM as stored now; a VM whose row is gone is published as {"id", "state": "deleted"} with
 * the project given (may be NULL when unknown: admins only then). */
void events_publish_vm(EventBus *b, Store *s, const char *vm_id, const char *project_if_gone);
/* A host's connection changing: state "up" or "down", error may be "". */
void events_publish_host(EventBus *b, const char *host, const char *state, const char *error);
/* An image as stored now (image_to_json); one whose row is gone is published as {"id", "state":
 * "deleted"} with the project given (may be NULL: admins only then). */
void events_publish_image(EventBus *b, Store *s, const char *image_id, const char *project_if_gone);
/* A project's quota just set: {"project_id", "name", "limits"}, scoped to that project. */
void events_publish_quota(EventBus *b, const char *project_id, const char *name, json_t *limits);
