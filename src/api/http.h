/*
 * The HTTP layer on libmicrohttpd: request accumulation with limits, routing, bearer-token
 * check, JSON responses, error bodies, and streamed uploads. Resource handlers (api_*.c) see only
 * HttpRequest and the http_reply_* calls.
 */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "../util/error.h"

#define HTTP_MAX_BODY (1024 * 1024) /* JSON bodies */
#define HTTP_MAX_URL 2048
#define HTTP_MAX_PATH_PARAMS 4

typedef struct HttpRequest HttpRequest;
typedef struct HttpServer HttpServer;
typedef struct HttpRoute HttpRoute;

/* ---- what handlers read ---- */
const char *http_request_method(const HttpRequest *r);
const char *http_request_path(const HttpRequest *r);
const char *http_request_id(const HttpRequest *r);   /* generated per request */
const char *http_request_peer(const HttpRequest *r); /* "127.0.0.1:53422" */
/* The server's ctx (HttpServerConfig.ctx): for stream callbacks, which get no ctx argument. */
void *http_request_ctx(const HttpRequest *r);
/* What authenticate returned for this request; NULL on public routes. */
void *http_request_principal(const HttpRequest *r);
/* Monotonic ms (nb_monotonic_ms) when the request arrived. */
uint64_t http_request_start_ms(const HttpRequest *r);
/* The matched route, or NULL. */
const HttpRoute *http_request_route(const HttpRequest *r);
/* The reply's status (0 if none was sent) and, for error replies, its code (else NULL). */
unsigned http_request_status(const HttpRequest *r);
const char *http_request_error_code(const HttpRequest *r);
/* The i-th "{...}" segment of the matched route, e.g. the id in /v1/vms/{id}/start. */
const char *http_request_param(const HttpRequest *r, unsigned i);
const char *http_request_query(const HttpRequest *r, const char *key); /* NULL if absent */
const char *http_request_header(const HttpRequest *r, const char *name);
/* The JSON body, parsed (NULL when the body was empty). Borrowed. Non-object bodies and bodies
 * over HTTP_MAX_BODY never reach a handler: the layer answers 400/413 itself. */
json_t *http_request_json(const HttpRequest *r);
/* The request target up to '?', as sent (not decoded). */
const char *http_request_raw_path(const HttpRequest *r);
/* The token the caller authenticated with (bearer or session cookie), NULL if none; valid for
 * the request's life. */
const char *http_request_credential(const HttpRequest *r);
/* True when that token came from the session cookie (cfg.session_cookie), not a header. */
bool http_request_cookie_auth(const HttpRequest *r);
/* True when the server speaks HTTPS. */
bool http_request_is_tls(const HttpRequest *r);

/* ---- answers: each handler calls exactly one ---- */
void http_reply_json(HttpRequest *r, unsigned status, json_t *body); /* steals body */
void http_reply_text(HttpRequest *r, unsigned status, const char *ctype, const char *data,
                     size_t len); /* copies data */
void http_reply_empty(HttpRequest *r, unsigned status);
/* size bytes of the open file fd from offset 0; takes fd (closed when the reply is over). */
void http_reply_fd(HttpRequest *r, unsigned status, const char *ctype, int fd, uint64_t size);
/* {"error":{"code","message","request_id"}} with the status from api_error_status(code). */
void http_reply_error(HttpRequest *r, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void http_reply_nb_error(HttpRequest *r, const NbError *e); /* e may be NULL: internal error */
/* Adds a header to the reply just made (e.g. Retry-After). */
void http_reply_add_header(HttpRequest *r, const char *name, const char *value);
/* A reply whose body is made while the client reads it (a server-sent event stream): read(cls,
 * buf, max) runs on the connection's own thread, may block, and returns the bytes it put in buf
 * (> 0), or -1 to end the body. done(cls) is called once the reply is over, whatever happened
 * (also when it could not be sent at all). */
typedef ssize_t (*HttpBodyReader)(void *cls, char *buf, size_t max);
/* True once the client hung up: a stream that sends nothing for a while would only learn it at
 * its next write. */
bool http_request_peer_closed(const HttpRequest *r);
void http_reply_stream(HttpRequest *r, unsigned status, const char *ctype, HttpBodyReader read,
                       void *cls, void (*done)(void *cls));

/* ---- protocol upgrades (WebSocket) ----
 * http_reply_upgrade answers 101 with "Upgrade: protocol" (add the protocol's own headers with
 * http_reply_add_header). Once the answer is out, run(cls, fd, extra_in, extra_len, up) is
 * called on the connection's thread: fd is the client's byte stream (over HTTPS a socketpair
 * MHD relays through TLS), extra_in the bytes MHD already read past the request (valid only
 * during the call). run must not block: over HTTPS the relaying starts on that thread when it
 * returns; it hands fd to its own thread and calls http_upgrade_close(up) once, from any
 * thread, when done (never close(fd)). run owns cls; if the upgrade never happens (the client
 * left first), cls_free(cls) is called instead. */
typedef struct HttpUpgrade HttpUpgrade;
typedef void (*HttpUpgradeRun)(void *cls, int fd, const char *extra_in, size_t extra_len,
                               HttpUpgrade *up);
void http_reply_upgrade(HttpRequest *r, const char *protocol, HttpUpgradeRun run, void *cls,
                        void (*cls_free)(void *cls));
void http_upgrade_close(HttpUpgrade *up);

/* ---- streamed uploads (PUT with a raw body) ----
 * A route marked streaming gets its body in chunks instead of a JSON body:
 *   begin(r, &state)   once, when the headers are in (Content-Length known, may be -1 if
 *                      chunked). It may reply at once to refuse; otherwise returns 0.
 *   data(r, state, buf, len)  for each chunk, in order; returns 0, or replies and returns -1.
 *   end(r, state)      when the body is complete; must reply.
 *   abort_cb(state)    when the connection ends before end() (client went away, or any reply
 *                      was made early); must release state. Not called after end().
 * The callbacks run on the connection's own thread and may block (e.g. a libvirt stream). */
typedef struct HttpStreamHandler {
    int (*begin)(HttpRequest *r, int64_t content_length, void **state);
    int (*data)(HttpRequest *r, void *state, const char *buf, size_t len);
    void (*end)(HttpRequest *r, void *state);
    void (*abort_cb)(void *state);
} HttpStreamHandler;

typedef void (*HttpHandler)(HttpRequest *r, void *ctx);

struct HttpRoute {
    const char *method;  /* "GET", "POST", "PUT", "DELETE" */
    const char *pattern; /* "/v1/vms/{}/start": {} matches one non-empty segment */
    HttpHandler handler; /* NULL for streaming routes */
    const HttpStreamHandler *stream;
    bool public_route;  /* served without a bearer token (health, login) */
    unsigned access;    /* opaque to this layer: the authorize hook reads it */
    const char *action; /* opaque: a name for logs and audit ("vm.create") */
};

typedef struct HttpServerConfig {
    const char *listen_host; /* numeric IPv4/IPv6 address, e.g. "127.0.0.1" */
    uint16_t port;           /* 0: pick a free port (see http_server_port) */
    const HttpRoute *routes; /* terminated by a route with method NULL */
    void *ctx;               /* passed to every handler */
    /* Resolves a bearer token to the caller (any object; NULL: refused with 401). Every route
     * but public ones needs it. The result is freed with principal_free (may be NULL). */
    void *(*authenticate)(const char *token, void *ctx);
    void (*principal_free)(void *principal);
    /* Optional: after routing and authentication; for streamed routes before any body is read,
     * for JSON routes once the (bounded) body is in, so audit sees what was asked. Returns
     * false after replying (e.g. 403) to refuse. */
    bool (*authorize)(HttpRequest *r, void *ctx);
    /* Optional: the name of a cookie accepted as the credential when there is no Authorization
     * header (browser sessions); the authorize hook must then check CSRF. */
    const char *session_cookie;
    /* Optional: answers every request whose path is outside the API (not under /v1/, not
     * /metrics), before and without authentication; must reply on the first call. */
    void (*fallback)(HttpRequest *r, void *ctx);
    /* Optional: when a request is over, whatever happened (audit). */
    void (*on_complete)(HttpRequest *r, void *ctx);
    /* PEM texts: when both are set the server speaks HTTPS only. */
    const char *tls_cert_pem;
    const char *tls_key_pem;
} HttpServerConfig;

int http_server_start(const HttpServerConfig *cfg, HttpServer **ret, NbError **err);
uint16_t http_server_port(const HttpServer *s);
void http_server_stop(HttpServer *s);

/* The code -> status table (api_error.c). Unknown codes map to 500. */
unsigned api_error_status(const char *code);
/* True when the table has a row for code (the unit test checks every code in error_codes.h). */
bool api_error_code_known(const char *code);
