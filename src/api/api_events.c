/*
 * GET /v1/events: the event bus (core/events.h) as Server-Sent Events. Each stream is one
 * libmicrohttpd response whose body callback blocks, on the connection's own thread, on the
 * bus's condition variable until an event the caller may see arrives, or a heartbeat is due.
 *
 * Scoping is the REST resources': an admin sees every event, anyone else only their project's
 * (readers too); events of no project (hosts, admins' own audit records) are for admins only.
 * The caller's token is looked up again every few seconds and before an event goes out after a
 * quiet second, so a revoked or expired token ends its stream soon, without a store read per
 * event per watcher.
 *
 * Where a stream starts: after the Last-Event-ID header's id (a reconnecting EventSource), else
 * after ?since_id=, else at the first event at or after ?since= (seconds ago, or an RFC 3339
 * time), else with the next event. An id the ring no longer holds gives one "resync" event first
 * (re-read what you show, then carry on). ?follow=false ends the stream once caught up.
 */
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../core/metrics.h"
#include "../util/log.h"
#include "../util/strutil.h"
#include "api.h"

#define EVENTS_HEARTBEAT_MS 15000
#define EVENTS_TOKEN_CHECK_MS 5000
#define EVENTS_TOKEN_CHECK_BUSY_MS 1000
/* How often an idle stream looks whether its client hung up. */
#define EVENTS_PEER_CHECK_MS 1000

typedef struct EventStream {
    Core *core;
    HttpRequest *r; /* valid until the reply is over (done) */
    char *token;
    bool admin;
    char project[NB_UUID_STRLEN];
    uint64_t after;
    bool follow;
    bool ended;
    uint64_t next_heartbeat_ms;
    uint64_t last_check_ms;
    char *out; /* what is still to be sent */
    size_t out_len, out_off;
} EventStream;

static void
event_stream_done(void *cls)
{
    EventStream *st = cls;
    event_bus_unsubscribe(st->core->events);
    metrics_events_subscribers_add(-1);
    if (st->token) {
        sodium_memzero(st->token, strlen(st->token));
        free(st->token);
    }
    free(st->out);
    free(st);
}

static void
event_stream_set(EventStream *st, char *text)
{
    free(st->out);
    st->out = text;
    st->out_len = text ? strlen(text) : 0;
    st->out_off = 0;
}

/* The token still names the same caller, unrevoked and unexpired. */
static bool
event_stream_token_ok(EventStream *st)
{
    st->last_check_ms = nb_monotonic_ms();
    Principal *p = auth_authenticate(st->token, st->core);
    bool ok = p && (p->role == ROLE_ADMIN) == st->admin &&
              (st->admin || streq(p->project_id, st->project));
    auth_principal_free(p);
    return ok;
}

static ssize_t
event_stream_read(void *cls, char *buf, size_t max)
{
    EventStream *st = cls;
    for (;;) {
        if (st->out_off < st->out_len) {
            size_t n = st->out_len - st->out_off;
            if (n > max)
                n = max;
            memcpy(buf, st->out + st->out_off, n);
            st->out_off += n;
            return (ssize_t)n;
        }
        if (st->ended)
            return -1;
        uint64_t now = nb_monotonic_ms();
        if (now - st->last_check_ms >= EVENTS_TOKEN_CHECK_MS && !event_stream_token_ok(st)) {
            st->ended = true;
            continue;
        }
        if (now >= st->next_heartbeat_ms) {
            st->next_heartbeat_ms = now + EVENTS_HEARTBEAT_MS;
            event_stream_set(st, strdup(": heartbeat\n\n"));
            continue;
        }
        uint64_t wake = st->next_heartbeat_ms;
        if (st->last_check_ms + EVENTS_TOKEN_CHECK_MS < wake)
            wake = st->last_check_ms + EVENTS_TOKEN_CHECK_MS;
        uint64_t timeout = st->follow && wake > now ? wake - now : 0;
        if (timeout > EVENTS_PEER_CHECK_MS)
            timeout = EVENTS_PEER_CHECK_MS;
        Event ev;
        uint64_t resume = st->after;
        switch (event_bus_next(st->core->events, st->after, st->admin ? NULL : st->project, timeout,
                               &ev, &resume)) {
        case EVENT_BUS_OK:
            if (nb_monotonic_ms() - st->last_check_ms >= EVENTS_TOKEN_CHECK_BUSY_MS &&
                !event_stream_token_ok(st)) {
                event_clear(&ev);
                st->ended = true;
                continue;
            }
            st->after = ev.id;
            event_stream_set(
                st, str_printf("id: %llu\nevent: %s\ndata: {\"time\":\"%s\",\"project_id\":%s%s%s,"
                               "\"object\":%s}\n\n",
                               (unsigned long long)ev.id, ev.type, ev.time,
                               ev.project[0] ? "\"" : "", ev.project[0] ? ev.project : "null",
                               ev.project[0] ? "\"" : "", ev.data));
            event_clear(&ev);
            if (!st->out)
                st->ended = true;
            break;
        case EVENT_BUS_RESYNC:
            st->after = resume;
            event_stream_set(st,
                             str_printf("id: %llu\nevent: resync\ndata: {\"last_id\":%llu}\n\n",
                                        (unsigned long long)resume, (unsigned long long)resume));
            if (!st->out)
                st->ended = true;
            break;
        case EVENT_BUS_TIMEOUT:
            st->after = resume;
            if (!st->follow || http_request_peer_closed(st->r))
                st->ended = true;
            break;
        case EVENT_BUS_CLOSED:
            st->ended = true;
            break;
        }
    }
}

void
api_events(HttpRequest *r, void *ctx)
{
    Core *core = ctx;
    const Principal *who = http_request_principal(r);
    /* The bearer token, or a browser's session cookie (EventSource sends no headers). */
    const char *token = http_request_credential(r);
    if (!token)
        return http_reply_error(r, NB_ERR_UNAUTHORIZED, "missing or invalid bearer token");

    uint64_t after = event_bus_last_id(core->events);
    const char *last = http_request_header(r, "Last-Event-ID");
    const char *since_id = last && *last ? last : http_request_query(r, "since_id");
    const char *since = http_request_query(r, "since");
    bool lost = false;
    if (since_id) {
        if (str_to_u64(since_id, &after) < 0)
            return http_reply_error(r, NB_ERR_INVALID_REQUEST,
                                    "since_id and Last-Event-ID must be an event id");
    } else if (since) {
        uint64_t seconds;
        double t;
        if (str_to_u64(since, &seconds) == 0)
            t = nb_epoch_now() - (double)seconds;
        else if (nb_timestamp_parse(since, &t) < 0)
            return http_reply_error(r, NB_ERR_INVALID_REQUEST,
                                    "since must be seconds or an RFC 3339 UTC time");
        after = event_bus_id_before_time(core->events, t, &lost);
    }
    const char *follow = http_request_query(r, "follow");
    bool no_follow = follow && (streq(follow, "false") || streq(follow, "0"));
    if (follow && !no_follow && !streq(follow, "true") && !streq(follow, "1"))
        return http_reply_error(r, NB_ERR_INVALID_REQUEST, "follow must be true or false");

    EventStream *st = calloc(1, sizeof(*st));
    if (!st || !(st->token = strdup(token))) {
        free(st);
        return http_reply_error(r, NB_ERR_INTERNAL, "out of memory");
    }
    st->core = core;
    st->r = r;
    st->admin = who->role == ROLE_ADMIN;
    memcpy(st->project, who->project_id, sizeof(st->project));
    st->after = after;
    st->follow = !no_follow;
    st->last_check_ms = nb_monotonic_ms();
    st->next_heartbeat_ms = st->last_check_ms + EVENTS_HEARTBEAT_MS;
    event_bus_subscribe(core->events);
    metrics_events_subscribers_add(1);
    /* Something at once: the client sees the headers now, not at the first event. A time that
     * reaches past the ring's window is told like an old id. */
    if (lost)
        event_stream_set(st, str_printf(": events\n\nid: %llu\nevent: resync\ndata: "
                                        "{\"last_id\":%llu}\n\n",
                                        (unsigned long long)after, (unsigned long long)after));
    else
        event_stream_set(st, strdup(": events\n\n"));
    http_reply_stream(r, 200, "text/event-stream", event_stream_read, st, event_stream_done);
    http_reply_add_header(r, "Cache-Control", "no-cache");
    /* nginx and similar proxies: do not buffer the stream. */
    http_reply_add_header(r, "X-Accel-Buffering", "no");
}
