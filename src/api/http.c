/*
 * HTTP layer on libmicrohttpd 0.9.75.
 *
 * Threading: one thread per connection (MHD_USE_THREAD_PER_CONNECTION with the internal
 * polling thread accepting). Handlers block on libvirt calls and upload streams block on libvirt
 * streams; with MHD's thread pool a blocked handler would stall every other connection on the
 * same worker, with one thread per connection it stalls only its own client. The number of
 * threads is bounded by HTTP_MAX_CONNECTIONS, and idle or trickling clients (slowloris) are cut
 * by MHD's inactivity timeout, which is reset by every read, so a large upload that keeps
 * flowing is never cut. MHD_USE_EPOLL cannot be combined with thread-per-connection; poll() is
 * used so that descriptor numbers above FD_SETSIZE are fine.
 *
 * Replies are never queued from inside http_reply_*: MHD 0.9.75 only accepts a response on the
 * first call of the access handler (headers in) or on the last (body complete), never while
 * body data is being delivered. A reply is stored on the request and queued at the next point
 * where MHD allows it. A reply made on the first call makes MHD refuse the body and close the
 * connection after the answer. A reply made while the body flows (a stream's data() failing, a
 * chunked JSON body going over the limit) can only be sent once the body is complete, so the rest
 * is read and dropped, but at most HTTP_DRAIN_MAX bytes: past that the connection is closed
 * without an answer rather than reading a huge upload for nothing.
 *
 * Paths: routing works on the raw request target (captured in the URI log callback before MHD
 * decodes it), split on '/' and decoded one segment at a time, so "%2F" can never create a new
 * segment. A segment that decodes to '/' or NUL, or holds a malformed escape, is refused with
 * 400 INVALID_REQUEST. One trailing slash is ignored ("/v1/vms/" is "/v1/vms"); empty segments
 * elsewhere ("/v1//vms") match nothing.
 *
 * Order of checks on the first call: URL length (414), bearer token (401, skipped only for a
 * route marked public_route), then the routing answers (400/404/405), so a client without a
 * token cannot map the routes; then the body checks (413 on Content-Length, 415) or a stream's
 * begin(). All of it happens before MHD reads any body byte.
 *
 * Credentials: an "Authorization: Bearer" header, or else the session cookie (cfg.session_cookie)
 * that a browser sends by itself. Which one was used is kept (http_request_cookie_auth) because
 * a cookie rides along on cross-site requests too: the authorize hook asks cookie callers for
 * proof that the page itself sent the request (the CSRF check, api_web.c). A bad Authorization
 * header is 401 even with a good cookie. Paths outside the API (not /v1/..., not /metrics) go to
 * cfg.fallback unauthenticated: the web console's static files.
 */
#include "http.h"
#include "http_route.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../util/cleanup.h"
#include "../util/error_codes.h"
#include "../util/log.h"
#include "../util/strutil.h"
#include "../util/timeutil.h"
#include "../util/uuid.h"

#define HTTP_MAX_CONNECTIONS 256
#define HTTP_CONN_TIMEOUT_S 60
/* Bytes read and dropped after a reply was made mid-body before giving up on the client. */
#define HTTP_DRAIN_MAX (16 * 1024 * 1024)
/* No route has more segments; longer paths are 404 without further work. */

#define HTTP_LOG_PATH_MAX 200
#define HTTP_PEER_LEN (INET6_ADDRSTRLEN + 16)

struct HttpServer {
    struct MHD_Daemon *daemon;
    HttpServerConfig cfg;
    uint16_t port;
};

struct HttpRequest {
    HttpServer *server;
    struct MHD_Connection *conn;
    char id[NB_UUID_STRLEN];
    char peer[HTTP_PEER_LEN];
    uint64_t start_ms;

    size_t raw_uri_len; /* request target as sent, query included */
    char *raw_path;     /* request target up to '?', not decoded */
    char *method;
    char *path; /* decoded by MHD */

    const HttpRoute *route;
    void *principal;        /* from cfg->authenticate */
    const char *credential; /* the token it came from (MHD's copy of the header or cookie) */
    bool cookie_auth;       /* the credential came from the session cookie */
    const char *error_code; /* of the error reply, a static string */
    char *params[HTTP_MAX_PATH_PARAMS];
    unsigned n_params;

    bool started;
    bool replied;
    struct MHD_Response *response; /* NULL after replied when it could not be built */
    unsigned status;
    bool queued;
    uint64_t drained;

    /* JSON routes */
    char *body;
    size_t body_len;
    size_t body_cap;
    bool body_known_length;
    json_t *json;

    /* streaming routes */
    void *stream_state;
    bool stream_begun;
    bool stream_ended;

    /* a protocol upgrade (http_reply_upgrade) */
    struct HttpUpgradeCtx *upgrade;
};

typedef struct HttpUpgradeCtx {
    HttpUpgradeRun run;
    void *cls;
    void (*cls_free)(void *cls);
    bool ran; /* run took cls over */
} HttpUpgradeCtx;

/* ---- small helpers ---- */

static void
request_free(HttpRequest *r)
{
    if (!r)
        return;
    if (r->response)
        MHD_destroy_response(r->response);
    for (unsigned i = 0; i < r->n_params; i++)
        free(r->params[i]);
    if (r->principal && r->server->cfg.principal_free)
        r->server->cfg.principal_free(r->principal);
    free(r->raw_path);
    free(r->method);
    free(r->path);
    free(r->body);
    json_decref(r->json);
    if (r->upgrade && !r->upgrade->ran && r->upgrade->cls_free)
        r->upgrade->cls_free(r->upgrade->cls);
    free(r->upgrade);
    free(r);
}

static void
format_peer(const struct sockaddr *sa, char *out, size_t n)
{
    char host[INET6_ADDRSTRLEN];

    if (sa && sa->sa_family == AF_INET) {
        const struct sockaddr_in *in4 = (const struct sockaddr_in *)(const void *)sa;
        if (inet_ntop(AF_INET, &in4->sin_addr, host, sizeof(host))) {
            snprintf(out, n, "%s:%u", host, (unsigned)ntohs(in4->sin_port));
            return;
        }
    } else if (sa && sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)sa;
        if (inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host))) {
            snprintf(out, n, "[%s]:%u", host, (unsigned)ntohs(in6->sin6_port));
            return;
        }
    }
    snprintf(out, n, "-");
}

/* A copy of s fit for one log line: printable ASCII only, bounded. */
static void
log_sanitize(const char *s, char *out, size_t n)
{
    size_t j = 0;
    for (size_t i = 0; s && s[i] && j + 4 < n; i++) {
        unsigned char c = (unsigned char)s[i];
        out[j++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
        if (i + 1 == HTTP_LOG_PATH_MAX && s[i + 1]) {
            out[j++] = '.';
            out[j++] = '.';
            out[j++] = '.';
            break;
        }
    }
    out[j] = '\0';
}

/* MHD counts inactivity from the last socket read or write. A handler that blocked for a long
 * time (libvirt call, stream write) must not make MHD believe the client went idle. */
static void
connection_touch(struct MHD_Connection *conn)
{
    MHD_set_connection_option(conn, MHD_CONNECTION_OPTION_TIMEOUT, 0u);
    MHD_set_connection_option(conn, MHD_CONNECTION_OPTION_TIMEOUT, (unsigned)HTTP_CONN_TIMEOUT_S);
}

/* ---- replies ---- */

static void
reply_store(HttpRequest *r, unsigned status, const char *ctype, char *data, size_t len,
            enum MHD_ResponseMemoryMode mode)
{
    if (r->replied) {
        log_error("http: request %s: handler replied twice (status %u dropped)", r->id, status);
        if (mode == MHD_RESPMEM_MUST_FREE)
            free(data);
        return;
    }
    r->replied = true;
    r->status = status;
    r->response = MHD_create_response_from_buffer(len, data, mode);
    if (!r->response) {
        if (mode == MHD_RESPMEM_MUST_FREE)
            free(data);
        return;
    }
    MHD_add_response_header(r->response, "X-Request-Id", r->id);
    if (ctype)
        MHD_add_response_header(r->response, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
}

static void
reply_add_header(HttpRequest *r, const char *name, const char *value)
{
    if (r->response)
        MHD_add_response_header(r->response, name, value);
}

void
http_reply_add_header(HttpRequest *r, const char *name, const char *value)
{
    reply_add_header(r, name, value);
}

void
http_reply_json(HttpRequest *r, unsigned status, json_t *body)
{
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (!text) {
        http_reply_error(r, NB_ERR_INTERNAL, "could not encode the response");
        return;
    }
    size_t len = strlen(text);
    char *buf = realloc(text, len + 2);
    if (!buf) {
        free(text);
        http_reply_error(r, NB_ERR_INTERNAL, "out of memory");
        return;
    }
    buf[len] = '\n';
    buf[len + 1] = '\0';
    reply_store(r, status, "application/json", buf, len + 1, MHD_RESPMEM_MUST_FREE);
}

void
http_reply_text(HttpRequest *r, unsigned status, const char *ctype, const char *data, size_t len)
{
    reply_store(r, status, ctype, (char *)data, len, MHD_RESPMEM_MUST_COPY);
}

void
http_reply_empty(HttpRequest *r, unsigned status)
{
    reply_store(r, status, NULL, NULL, 0, MHD_RESPMEM_PERSISTENT);
}

void
http_reply_fd(HttpRequest *r, unsigned status, const char *ctype, int fd, uint64_t size)
{
    if (r->replied) {
        log_error("http: request %s: handler replied twice (status %u dropped)", r->id, status);
        close(fd);
        return;
    }
    r->replied = true;
    r->status = status;
    /* MHD owns fd from here, also when this fails. */
    r->response = MHD_create_response_from_fd(size, fd);
    if (!r->response)
        return;
    MHD_add_response_header(r->response, "X-Request-Id", r->id);
    if (ctype)
        MHD_add_response_header(r->response, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
}

/* MHD calls it on the connection's thread once the 101 answer is out and while the request is
 * still alive (the completion callback comes after it). */
static void
on_upgrade(void *cls, struct MHD_Connection *conn, void *con_cls, const char *extra_in,
           size_t extra_in_size, MHD_socket sock, struct MHD_UpgradeResponseHandle *urh)
{
    (void)conn;
    (void)con_cls;
    HttpUpgradeCtx *u = cls;
    u->ran = true;
    u->run(u->cls, sock, extra_in, extra_in_size, (HttpUpgrade *)urh);
}

void
http_reply_upgrade(HttpRequest *r, const char *protocol, HttpUpgradeRun run, void *cls,
                   void (*cls_free)(void *cls))
{
    HttpUpgradeCtx *u = r->replied || r->upgrade ? NULL : calloc(1, sizeof(*u));
    if (!u) {
        if (cls_free)
            cls_free(cls);
        if (!r->replied)
            http_reply_error(r, NB_ERR_INTERNAL, "out of memory");
        return;
    }
    *u = (HttpUpgradeCtx){.run = run, .cls = cls, .cls_free = cls_free};
    r->upgrade = u; /* from here request_free releases cls unless run took it */
    r->replied = true;
    r->status = MHD_HTTP_SWITCHING_PROTOCOLS;
    r->response = MHD_create_response_for_upgrade(on_upgrade, u);
    if (!r->response)
        return;
    MHD_add_response_header(r->response, MHD_HTTP_HEADER_UPGRADE, protocol);
    MHD_add_response_header(r->response, "X-Request-Id", r->id);
}

void
http_upgrade_close(HttpUpgrade *up)
{
    MHD_upgrade_action((struct MHD_UpgradeResponseHandle *)up, MHD_UPGRADE_ACTION_CLOSE);
}

bool
http_request_peer_closed(const HttpRequest *r)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!ci)
        return false;
    struct pollfd p = {.fd = ci->connect_fd, .events = POLLRDHUP};
    return poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR));
}

typedef struct BodyStream {
    HttpBodyReader read;
    void *cls;
    void (*done)(void *cls);
} BodyStream;

static ssize_t
body_stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    BodyStream *bs = cls;
    ssize_t n = bs->read(bs->cls, buf, max);
    return n > 0 ? n : MHD_CONTENT_READER_END_OF_STREAM;
}

static void
body_stream_free(void *cls)
{
    BodyStream *bs = cls;
    if (bs->done)
        bs->done(bs->cls);
    free(bs);
}

void
http_reply_stream(HttpRequest *r, unsigned status, const char *ctype, HttpBodyReader read,
                  void *cls, void (*done)(void *cls))
{
    BodyStream *bs = calloc(1, sizeof(*bs));
    if (r->replied || !bs) {
        if (done)
            done(cls);
        free(bs);
        if (!r->replied)
            http_reply_error(r, NB_ERR_INTERNAL, "out of memory");
        return;
    }
    *bs = (BodyStream){.read = read, .cls = cls, .done = done};
    r->replied = true;
    r->status = status;
    /* MHD calls body_stream_free when the response is destroyed, also if it never got sent. */
    r->response = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, body_stream_read, bs,
                                                    body_stream_free);
    if (!r->response) {
        body_stream_free(bs);
        return;
    }
    MHD_add_response_header(r->response, "X-Request-Id", r->id);
    if (ctype)
        MHD_add_response_header(r->response, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
}

static void
reply_error_msg(HttpRequest *r, const char *code, const char *message)
{
    unsigned status = api_error_status(code);
    if (!r->replied)
        r->error_code = code ? code : NB_ERR_INTERNAL;
    json_t *body = json_pack("{s:{s:s, s:s, s:s}}", "error", "code", code ? code : NB_ERR_INTERNAL,
                             "message", message ? message : "", "request_id", r->id);
    if (!body) /* the message was not valid UTF-8 (it may quote client input) */
        body = json_pack("{s:{s:s, s:s, s:s}}", "error", "code", code ? code : NB_ERR_INTERNAL,
                         "message", "(message not displayable)", "request_id", r->id);
    if (!body) {
        /* Out of memory: still answer, with the status alone. */
        http_reply_empty(r, status);
        return;
    }
    http_reply_json(r, status, body);
}

void
http_reply_error(HttpRequest *r, const char *code, const char *fmt, ...)
{
    _cleanup_free_ char *msg = NULL;
    va_list ap;

    va_start(ap, fmt);
    if (vasprintf(&msg, fmt, ap) < 0)
        msg = NULL;
    va_end(ap);
    reply_error_msg(r, code, msg);
}

void
http_reply_nb_error(HttpRequest *r, const NbError *e)
{
    if (!e) {
        reply_error_msg(r, NB_ERR_INTERNAL, "internal error");
        return;
    }
    reply_error_msg(r, e->code ? e->code : NB_ERR_INTERNAL, e->message);
}

/* ---- what handlers read ---- */

const char *
http_request_method(const HttpRequest *r)
{
    return r->method;
}

const char *
http_request_path(const HttpRequest *r)
{
    return r->path;
}

const char *
http_request_id(const HttpRequest *r)
{
    return r->id;
}

const char *
http_request_peer(const HttpRequest *r)
{
    return r->peer;
}

void *
http_request_ctx(const HttpRequest *r)
{
    return r->server->cfg.ctx;
}

void *
http_request_principal(const HttpRequest *r)
{
    return r->principal;
}

const HttpRoute *
http_request_route(const HttpRequest *r)
{
    return r->route;
}

uint64_t
http_request_start_ms(const HttpRequest *r)
{
    return r->start_ms;
}

unsigned
http_request_status(const HttpRequest *r)
{
    return r->replied ? r->status : 0;
}

const char *
http_request_error_code(const HttpRequest *r)
{
    return r->error_code;
}

const char *
http_request_param(const HttpRequest *r, unsigned i)
{
    return i < r->n_params ? r->params[i] : NULL;
}

const char *
http_request_query(const HttpRequest *r, const char *key)
{
    return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, key);
}

const char *
http_request_header(const HttpRequest *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

const char *
http_request_raw_path(const HttpRequest *r)
{
    return r->raw_path;
}

const char *
http_request_credential(const HttpRequest *r)
{
    return r->principal ? r->credential : NULL;
}

bool
http_request_cookie_auth(const HttpRequest *r)
{
    return r->principal && r->cookie_auth;
}

bool
http_request_is_tls(const HttpRequest *r)
{
    return r->server->cfg.tls_cert_pem != NULL;
}

json_t *
http_request_json(const HttpRequest *r)
{
    return r->json;
}

/* ---- request checks ---- */

static bool
request_authorized(HttpRequest *r)
{
    const HttpServerConfig *cfg = &r->server->cfg;
    const char *h = http_request_header(r, MHD_HTTP_HEADER_AUTHORIZATION);
    const char *cookie =
        !h && cfg->session_cookie
            ? MHD_lookup_connection_value(r->conn, MHD_COOKIE_KIND, cfg->session_cookie)
            : NULL;

    if (cookie && *cookie) {
        r->principal = cfg->authenticate(cookie, cfg->ctx);
        r->credential = cookie;
        r->cookie_auth = true;
        return r->principal != NULL;
    }
    if (!h || strncasecmp(h, "Bearer", 6) != 0 || (h[6] != ' ' && h[6] != '\t'))
        return false;
    const char *token = h + 6;
    while (*token == ' ' || *token == '\t')
        token++;
    if (!*token)
        return false;
    r->principal = cfg->authenticate(token, cfg->ctx);
    r->credential = token;
    return r->principal != NULL;
}

/* The optional role check; false after replying. */
static bool
request_authorize(HttpRequest *r)
{
    const HttpServerConfig *cfg = &r->server->cfg;
    if (!cfg->authorize || cfg->authorize(r, cfg->ctx))
        return true;
    if (!r->replied)
        http_reply_error(r, NB_ERR_FORBIDDEN, "not allowed");
    return false;
}

static bool
content_type_is_json(const char *ct)
{
    static const char want[] = "application/json";
    if (!ct || strncasecmp(ct, want, sizeof(want) - 1) != 0)
        return false;
    ct += sizeof(want) - 1;
    while (*ct == ' ' || *ct == '\t')
        ct++;
    return *ct == '\0' || *ct == ';';
}

/* -1 when the body is chunked, 0 when there is none. A malformed Content-Length never gets
 * here: MHD refuses it with 400. */
static int64_t
request_content_length(HttpRequest *r)
{
    if (http_request_header(r, MHD_HTTP_HEADER_TRANSFER_ENCODING))
        return -1;
    const char *cl = http_request_header(r, MHD_HTTP_HEADER_CONTENT_LENGTH);
    uint64_t v;
    if (!cl || str_to_u64(cl, &v) < 0 || v > INT64_MAX)
        return 0;
    return (int64_t)v;
}

/* Not the API's: served by cfg->fallback. "/v1" itself and everything under it stay the API's,
 * so an API path that is mistyped is an API 404, never a page. */
static bool
path_is_api(const char *raw_path)
{
    return str_startswith(raw_path, "/v1/") || streq(raw_path, "/v1") ||
           streq(raw_path, "/metrics") || str_startswith(raw_path, "/metrics/");
}

/* Finds the route for the request (sets r->route and r->params). */
static HttpRouteResult
request_route(HttpRequest *r, char *allow, size_t allow_size)
{
    return http_route_match(r->server->cfg.routes, r->method, r->raw_path, &r->route, r->params,
                            &r->n_params, allow, allow_size);
}

/* First call: the headers are in, no body has been read. May reply. */
static void
request_begin(HttpRequest *r, const char *url, const char *method)
{
    r->method = strdup(method ? method : "");
    r->path = strdup(url ? url : "");
    if (!r->method || !r->path) {
        http_reply_error(r, NB_ERR_INTERNAL, "out of memory");
        return;
    }
    if (r->raw_uri_len > HTTP_MAX_URL) {
        http_reply_error(r, NB_ERR_URI_TOO_LONG, "URL longer than %d bytes", HTTP_MAX_URL);
        return;
    }
    const HttpServerConfig *cfg = &r->server->cfg;
    if (cfg->fallback && !path_is_api(r->raw_path)) {
        cfg->fallback(r, cfg->ctx);
        if (!r->replied)
            http_reply_error(r, NB_ERR_INTERNAL, "internal error");
        return;
    }
    char allow[128];
    HttpRouteResult res = request_route(r, allow, sizeof(allow));
    /* Before any body byte is read: an unauthenticated upload is refused up front. */
    bool public_route = res == HTTP_ROUTE_FOUND && r->route->public_route;
    if (!public_route && !request_authorized(r)) {
        http_reply_error(r, NB_ERR_UNAUTHORIZED, "missing or invalid bearer token");
        reply_add_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
        return;
    }
    switch (res) {
    case HTTP_ROUTE_FOUND:
        break;
    case HTTP_ROUTE_BAD_PATH:
        http_reply_error(r, NB_ERR_INVALID_REQUEST,
                         "malformed path: bad percent-escape, or an encoded '/' or NUL");
        return;
    case HTTP_ROUTE_WRONG_METHOD:
        http_reply_error(r, NB_ERR_METHOD_NOT_ALLOWED, "method not allowed for this resource");
        reply_add_header(r, MHD_HTTP_HEADER_ALLOW, allow);
        return;
    case HTTP_ROUTE_NOT_FOUND:
        http_reply_error(r, NB_ERR_NOT_FOUND, "no such resource");
        return;
    }
    /* A streamed body is refused before a byte of it is read; a JSON body (bounded) is read
     * first, so that the completion hook can still see what was asked for. */
    if (r->route->stream && !request_authorize(r))
        return;

    int64_t content_length = request_content_length(r);
    const HttpStreamHandler *st = r->route->stream;
    if (st) {
        int rc = st->begin(r, content_length, &r->stream_state);
        connection_touch(r->conn);
        if (rc == 0)
            r->stream_begun = true;
        if (rc != 0 && !r->replied) {
            log_error("http: request %s: stream begin failed without replying", r->id);
            http_reply_error(r, NB_ERR_INTERNAL, "internal error");
        }
        return;
    }

    if (content_length > HTTP_MAX_BODY) {
        http_reply_error(r, NB_ERR_BODY_TOO_LARGE, "request body larger than %d bytes",
                         HTTP_MAX_BODY);
        return;
    }
    /* A chunked body is judged in request_finish, once it is known to be non-empty. */
    if (content_length > 0 &&
        !content_type_is_json(http_request_header(r, MHD_HTTP_HEADER_CONTENT_TYPE))) {
        http_reply_error(r, NB_ERR_UNSUPPORTED_MEDIA_TYPE, "request body must be application/json");
        return;
    }
    if (content_length > 0) {
        r->body = malloc((size_t)content_length + 1);
        if (!r->body) {
            http_reply_error(r, NB_ERR_INTERNAL, "out of memory");
            return;
        }
        r->body_cap = (size_t)content_length + 1;
        r->body_known_length = true;
    }
}

static void
request_body_append(HttpRequest *r, const char *data, size_t len)
{
    if (len > HTTP_MAX_BODY - r->body_len) {
        http_reply_error(r, NB_ERR_BODY_TOO_LARGE, "request body larger than %d bytes",
                         HTTP_MAX_BODY);
        return;
    }
    if (r->body_len + len + 1 > r->body_cap) {
        size_t cap = r->body_cap ? r->body_cap : 4096;
        while (cap < r->body_len + len + 1)
            cap *= 2;
        if (cap > HTTP_MAX_BODY + 1)
            cap = HTTP_MAX_BODY + 1;
        char *nb = realloc(r->body, cap);
        if (!nb) {
            http_reply_error(r, NB_ERR_INTERNAL, "out of memory");
            return;
        }
        r->body = nb;
        r->body_cap = cap;
    }
    memcpy(r->body + r->body_len, data, len);
    r->body_len += len;
}

static void
request_stream_data(HttpRequest *r, const char *data, size_t len)
{
    int rc = r->route->stream->data(r, r->stream_state, data, len);
    connection_touch(r->conn);
    if (rc != 0 && !r->replied) {
        log_error("http: request %s: stream data failed without replying", r->id);
        http_reply_error(r, NB_ERR_INTERNAL, "internal error");
    }
}

/* Last call: the whole body is in. Runs the handler. */
static void
request_finish(HttpRequest *r)
{
    const HttpRoute *rt = r->route;

    if (rt->stream) {
        r->stream_ended = true;
        if (rt->stream->end)
            rt->stream->end(r, r->stream_state);
        connection_touch(r->conn);
        return;
    }
    if (r->body_len > 0) {
        /* A chunked body's media type can only be judged now that it is known non-empty. */
        if (!r->body_known_length &&
            !content_type_is_json(http_request_header(r, MHD_HTTP_HEADER_CONTENT_TYPE))) {
            http_reply_error(r, NB_ERR_UNSUPPORTED_MEDIA_TYPE,
                             "request body must be application/json");
            return;
        }
        json_error_t jerr;
        r->json = json_loadb(r->body, r->body_len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
        if (!r->json) {
            http_reply_error(r, NB_ERR_INVALID_JSON, "invalid JSON: %s (line %d, column %d)",
                             jerr.text, jerr.line, jerr.column);
            return;
        }
        if (!json_is_object(r->json)) {
            http_reply_error(r, NB_ERR_INVALID_REQUEST, "request body must be a JSON object");
            return;
        }
    }
    if (!request_authorize(r))
        return;
    log_context_request(r->id);
    rt->handler(r, r->server->cfg.ctx);
    log_context_request(NULL);
    connection_touch(r->conn);
}

static enum MHD_Result
request_queue(HttpRequest *r)
{
    if (!r->response)
        return MHD_NO; /* could not even build a response: close */
    enum MHD_Result ret = MHD_queue_response(r->conn, r->status, r->response);
    MHD_destroy_response(r->response);
    r->response = NULL;
    r->queued = ret == MHD_YES;
    return ret;
}

/* ---- MHD callbacks ---- */

static void *
on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
    HttpRequest *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->server = cls;
    r->conn = conn;
    r->start_ms = nb_monotonic_ms();
    if (nb_uuid_generate(r->id) < 0)
        snprintf(r->id, sizeof(r->id), "00000000-0000-0000-0000-000000000000");
    r->raw_uri_len = uri ? strlen(uri) : 0;
    size_t plen = uri ? strcspn(uri, "?") : 0;
    if (plen > HTTP_MAX_URL)
        plen = HTTP_MAX_URL; /* only logged then: the request gets 414 */
    r->raw_path = strndup(uri ? uri : "", plen);
    if (!r->raw_path) {
        free(r);
        return NULL;
    }
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    format_peer(ci ? ci->client_addr : NULL, r->peer, sizeof(r->peer));
    return r;
}

static enum MHD_Result
on_access(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
          const char *version, const char *upload_data, size_t *upload_data_size, void **con_cls)
{
    HttpRequest *r = *con_cls;

    if (!r)
        return MHD_NO; /* on_uri ran out of memory */
    r->conn = conn;

    if (!r->started) {
        r->started = true;
        request_begin(r, url, method);
        return r->replied ? request_queue(r) : MHD_YES;
    }

    if (*upload_data_size > 0) {
        size_t len = *upload_data_size;
        *upload_data_size = 0;
        if (r->replied) {
            /* MHD cannot send the reply before the body is complete: drop the rest, up to a
             * point. */
            r->drained += len;
            if (r->drained > HTTP_DRAIN_MAX) {
                log_warn("http: request %s: closing, client kept sending after the reply", r->id);
                return MHD_NO;
            }
            return MHD_YES;
        }
        if (!r->route) /* cannot happen: a request without a route has been answered */
            return MHD_NO;
        if (r->route->stream)
            request_stream_data(r, upload_data, len);
        else
            request_body_append(r, upload_data, len);
        return MHD_YES;
    }

    if (!r->replied)
        request_finish(r);
    if (!r->replied) {
        log_error("http: request %s: handler for %s %s did not reply", r->id, r->route->method,
                  r->route->pattern);
        http_reply_error(r, NB_ERR_INTERNAL, "internal error");
    }
    return request_queue(r);
}

static void
on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
             enum MHD_RequestTerminationCode toe)
{
    HttpRequest *r = *con_cls;
    *con_cls = NULL;
    if (!r)
        return;

    const HttpStreamHandler *st = r->route ? r->route->stream : NULL;
    if (st && r->stream_begun && !r->stream_ended && st->abort_cb)
        st->abort_cb(r->stream_state);
    const HttpServerConfig *cfg = &r->server->cfg;
    log_context_request(r->id);
    if (cfg->on_complete && r->method)
        cfg->on_complete(r, cfg->ctx);

    char path[HTTP_LOG_PATH_MAX + 8], method[24];
    log_sanitize(r->raw_path, path, sizeof(path));
    log_sanitize(r->method ? r->method : "-", method, sizeof(method));
    uint64_t ms = nb_monotonic_ms() - r->start_ms;
    if (r->queued && toe == MHD_REQUEST_TERMINATED_COMPLETED_OK)
        log_info("http: %s %s %u %llu ms id=%s peer=%s", method, path, r->status,
                 (unsigned long long)ms, r->id, r->peer);
    else
        log_info("http: %s %s %u %llu ms id=%s peer=%s (connection closed early, reason %d)",
                 method, path, r->queued ? r->status : 0u, (unsigned long long)ms, r->id, r->peer,
                 (int)toe);
    log_context_request(NULL);
    request_free(r);
}

__attribute__((format(printf, 2, 0))) static void
on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    char buf[512];
    vsnprintf(buf, sizeof(buf), fmt, ap);
    size_t n = strlen(buf);
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        buf[--n] = '\0';
    /* Mostly client misbehaviour (oversized headers, early close): info, not warn, so that a
     * client cannot fill the log with warnings. Start-up failures are reported by
     * http_server_start itself. */
    log_info("http: microhttpd: %s", buf);
}

/* ---- server ---- */

static int
listen_socket_open(const char *host, uint16_t port, int *ret_fd, uint16_t *ret_port, bool *ret_ipv6,
                   NbError **err)
{
    struct sockaddr_storage ss;
    socklen_t sslen;
    struct sockaddr_in *in4 = (struct sockaddr_in *)(void *)&ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)(void *)&ss;
    const int on = 1;

    memset(&ss, 0, sizeof(ss));
    if (host && inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
        in4->sin_family = AF_INET;
        in4->sin_port = htons(port);
        sslen = sizeof(*in4);
    } else if (host && inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(port);
        sslen = sizeof(*in6);
    } else {
        return nb_error_set(err, NB_ERR_INTERNAL, "listen address '%s' is not a numeric IP",
                            host ? host : "");
    }

    /* Non-blocking from the start: MHD needs it, and a failing fcntl inside MHD would make it
     * close a socket it does not own on the error path. */
    _cleanup_close_ int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return nb_error_set(err, NB_ERR_INTERNAL, "socket: %s", strerror(errno));
    /* SO_REUSEADDR only: restarting nimbusd must not wait for TIME_WAIT, but a second daemon on
     * the same port must still fail (MHD's own "reuse" option would add SO_REUSEPORT). */
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) < 0)
        return nb_error_set(err, NB_ERR_INTERNAL, "SO_REUSEADDR: %s", strerror(errno));
    if (ss.ss_family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on)) < 0)
        return nb_error_set(err, NB_ERR_INTERNAL, "IPV6_V6ONLY: %s", strerror(errno));
    if (bind(fd, (struct sockaddr *)&ss, sslen) < 0)
        return nb_error_set(err, NB_ERR_INTERNAL, "cannot listen on %s port %u: %s", host,
                            (unsigned)port, strerror(errno));
    if (listen(fd, SOMAXCONN) < 0)
        return nb_error_set(err, NB_ERR_INTERNAL, "listen: %s", strerror(errno));
    sslen = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &sslen) < 0)
        return nb_error_set(err, NB_ERR_INTERNAL, "getsockname: %s", strerror(errno));
    *ret_port = ntohs(ss.ss_family == AF_INET6 ? in6->sin6_port : in4->sin_port);
    *ret_ipv6 = ss.ss_family == AF_INET6;
    *ret_fd = TAKE_FD(fd);
    return 0;
}

int
http_server_start(const HttpServerConfig *cfg, HttpServer **ret, NbError **err)
{
    if (!cfg || !cfg->routes || !cfg->authenticate || !ret ||
        !cfg->tls_cert_pem != !cfg->tls_key_pem)
        return nb_error_set(err, NB_ERR_INTERNAL, "HTTP server: incomplete configuration");
    for (const HttpRoute *rt = cfg->routes; rt->method; rt++) {
        bool ok = rt->pattern &&
                  (rt->stream ? rt->stream->begin && rt->stream->data : rt->handler != NULL);
        if (!ok)
            return nb_error_set(err, NB_ERR_INTERNAL, "HTTP server: bad route %s %s", rt->method,
                                rt->pattern ? rt->pattern : "(null)");
    }

    _cleanup_free_ HttpServer *s = calloc(1, sizeof(*s));
    if (!s)
        return nb_error_set(err, NB_ERR_INTERNAL, "out of memory");
    s->cfg = *cfg;

    _cleanup_close_ int fd = -1;
    bool ipv6 = false;
    if (listen_socket_open(cfg->listen_host, cfg->port, &fd, &s->port, &ipv6, err) < 0)
        return -1;

    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
                     MHD_USE_POLL | MHD_USE_ITC | MHD_USE_ERROR_LOG | MHD_ALLOW_UPGRADE;
    if (ipv6)
        flags |= MHD_USE_IPv6;
    struct MHD_OptionItem tls[] = {
        {MHD_OPTION_HTTPS_MEM_CERT, 0, (void *)cfg->tls_cert_pem},
        {MHD_OPTION_HTTPS_MEM_KEY, 0, (void *)cfg->tls_key_pem},
        {MHD_OPTION_END, 0, NULL},
    };
    if (cfg->tls_cert_pem)
        flags |= MHD_USE_TLS;
    else
        tls[0].option = MHD_OPTION_END;
    s->daemon = MHD_start_daemon(
        flags, 0, NULL, NULL, on_access, s, MHD_OPTION_ARRAY, tls, MHD_OPTION_EXTERNAL_LOGGER,
        on_mhd_log, NULL, MHD_OPTION_LISTEN_SOCKET, (MHD_socket)fd, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned)HTTP_MAX_CONNECTIONS, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)HTTP_CONN_TIMEOUT_S, MHD_OPTION_URI_LOG_CALLBACK, on_uri, s,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, s, MHD_OPTION_END);
    if (!s->daemon)
        return nb_error_set(err, NB_ERR_INTERNAL, "cannot start the HTTP daemon on %s port %u",
                            cfg->listen_host, (unsigned)s->port);
    TAKE_FD(fd); /* MHD closes it in MHD_stop_daemon */
    log_info("http: listening on %s port %u", cfg->listen_host, (unsigned)s->port);
    *ret = TAKE_PTR(s);
    return 0;
}

uint16_t
http_server_port(const HttpServer *s)
{
    return s ? s->port : 0;
}

void
http_server_stop(HttpServer *s)
{
    if (!s)
        return;
    /* Closes the listening socket, shuts every connection down and joins the connection
     * threads: handlers still running finish first, then their requests are completed (and
     * freed) in on_completed. */
    MHD_stop_daemon(s->daemon);
    free(s);
}
