/*
 * The audit log: every request that is not a read, whatever its outcome, with who, from where,
 * what and the result. Bodies are never recorded; only a created resource's "name" is read from
 * one, so passwords, tokens and user-data cannot reach the log. Login records itself (auth.c):
 * its caller has no principal yet.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <string.h>

#include "../util/log.h"
#include "../util/strutil.h"
#include "api.h"

#define AUDIT_DEFAULT_LIMIT 100
#define AUDIT_MAX_LIMIT 1000

/* Requests refused before authentication (no token, a bad, expired or revoked one) are audited
 * too, with no user; anyone can send them, so they are admitted by a token bucket and a flood
 * cannot fill the disk. What the bucket drops is counted and logged once a minute. */
#define AUDIT_ANON_BURST 120.0
#define AUDIT_ANON_PER_S 2.0

static pthread_mutex_t audit_anon_lock = PTHREAD_MUTEX_INITIALIZER;
static double audit_anon_tokens = AUDIT_ANON_BURST;
static double audit_anon_at;
static uint64_t audit_anon_dropped;
static double audit_anon_reported_at;

static bool
audit_anonymous_admit(double now)
{
    pthread_mutex_lock(&audit_anon_lock);
    audit_anon_tokens += (now - audit_anon_at) * AUDIT_ANON_PER_S;
    if (audit_anon_tokens > AUDIT_ANON_BURST || audit_anon_at == 0)
        audit_anon_tokens = AUDIT_ANON_BURST;
    audit_anon_at = now;
    bool admit = audit_anon_tokens >= 1.0;
    if (admit)
        audit_anon_tokens -= 1.0;
    else
        audit_anon_dropped++;
    uint64_t report = 0;
    if (audit_anon_dropped && now - audit_anon_reported_at >= 60.0) {
        report = audit_anon_dropped;
        audit_anon_dropped = 0;
        audit_anon_reported_at = now;
    }
    pthread_mutex_unlock(&audit_anon_lock);
    if (report)
        log_warn("audit: %" PRIu64 " unauthenticated requests not recorded (rate limit)", report);
    return admit;
}

static json_t *audit_to_json(const AuditEvent *e);

void
api_audit_request(HttpRequest *r, void *ctx)
{
    Core *core = ctx;
    const char *method = http_request_method(r);
    const HttpRoute *route = http_request_route(r);
    if (streq(method, "GET") || streq(method, "HEAD") ||
        (route && streq(route->action, "auth.login")))
        return;
    const Principal *who = http_request_principal(r);
    if (!who && !audit_anonymous_admit(nb_epoch_now()))
        return;

    AuditEvent e = {0};
    _cleanup_error_ NbError *err = NULL;
    nb_timestamp_now(e.at);
    snprintf(e.request_id, sizeof(e.request_id), "%s", http_request_id(r));
    if (who) {
        snprintf(e.user, sizeof(e.user), "%s", who->user_name);
        snprintf(e.project_id, sizeof(e.project_id), "%s", who->project_id);
    }
    auth_source_address(r, e.source, sizeof(e.source));
    snprintf(e.method, sizeof(e.method), "%s", method);
    snprintf(e.path, sizeof(e.path), "%s", http_request_path(r));
    snprintf(e.action, sizeof(e.action), "%s", route && route->action ? route->action : "unknown");
    const char *target = route ? http_request_param(r, 0) : NULL;
    json_t *name = json_object_get(http_request_json(r), "name");
    if (!target && json_is_string(name))
        target = json_string_value(name);
    snprintf(e.target, sizeof(e.target), "%s", target ? target : "");
    e.status = http_request_status(r);
    const char *code = http_request_error_code(r);
    snprintf(e.result, sizeof(e.result), "%s",
             e.status && e.status < 400 ? "ok"
             : code                     ? code
                                        : "aborted");
    if (tenancy_ops_audit_record(core, &e, &err) < 0)
        log_error("audit: %s", err->message);
    else
        event_bus_publish(core->events, "audit", e.project_id, audit_to_json(&e));
}

static json_t *
audit_to_json(const AuditEvent *e)
{
    /* Who is unknown for a failed login or a request without a valid token: null, not "". */
    return json_pack("{s:I, s:s, s:s, s:s?, s:s?, s:s, s:s, s:s, s:s, s:s, s:i, s:s}", "id",
                     (json_int_t)e->id, "at", e->at, "request_id", e->request_id, "user",
                     e->user[0] ? e->user : NULL, "project_id",
                     e->project_id[0] ? e->project_id : NULL, "source", e->source, "method",
                     e->method, "path", e->path, "action", e->action, "target", e->target, "status",
                     (int)e->status, "result", e->result);
}

void
api_audit_list(HttpRequest *r, void *ctx)
{
    Core *core = ctx;
    _cleanup_error_ NbError *err = NULL;
    const char *scope = api_scope(r);
    const char *qproject = http_request_query(r, "project");
    char project_id[NB_UUID_STRLEN] = "";
    if (qproject) {
        Project p;
        if (project_store_get(core->store, scope, qproject, &p, &err) < 0)
            return http_reply_nb_error(r, err);
        memcpy(project_id, p.id, sizeof(project_id));
    } else if (scope) {
        snprintf(project_id, sizeof(project_id), "%s", scope);
    }

    char since[NB_TIMESTAMP_LEN] = "";
    const char *qsince = http_request_query(r, "since");
    if (qsince) {
        uint64_t seconds;
        double t;
        if (str_to_u64(qsince, &seconds) == 0)
            nb_timestamp_format(nb_epoch_now() - (double)seconds, since);
        else if (nb_timestamp_parse(qsince, &t) == 0)
            nb_timestamp_format(t, since);
        else
            return http_reply_error(r, NB_ERR_INVALID_REQUEST,
                                    "since must be seconds or an RFC 3339 UTC time");
    }
    uint64_t limit = AUDIT_DEFAULT_LIMIT;
    const char *qlimit = http_request_query(r, "limit");
    if (qlimit && (str_to_u64(qlimit, &limit) < 0 || limit == 0 || limit > AUDIT_MAX_LIMIT))
        return http_reply_error(r, NB_ERR_INVALID_REQUEST, "limit must be from 1 to %d",
                                AUDIT_MAX_LIMIT);

    AuditEvent *list = NULL;
    size_t n = 0;
    if (audit_store_list(core->store, project_id[0] ? project_id : NULL, since[0] ? since : NULL,
                         (unsigned)limit, &list, &n, &err) < 0)
        return http_reply_nb_error(r, err);
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, audit_to_json(&list[i]));
    free(list);
    http_reply_json(r, 200, json_pack("{s:o}", "events", arr));
}
