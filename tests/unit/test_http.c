/*
 * The HTTP layer against a real client: a server on 127.0.0.1 (port 0) with fake handlers,
 * driven by libcurl. No timing asserts: concurrency is shown by a request completing while
 * another handler is parked on a condition variable. Every curl transfer has a generous timeout
 * so a broken server fails the test instead of hanging it.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <jansson.h>

#include "api/http.h"
#include "util/cleanup.h"
#include "util/log.h"
#include "util/strutil.h"
#include "util/uuid.h"

#define TOKEN "secret-token"
#define CURL_TIMEOUT_S 60L

/* ---- shared state between handlers (server threads) and tests ---- */

static pthread_mutex_t st_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t st_cond = PTHREAD_COND_INITIALIZER;
static int begin_calls, end_calls, abort_calls, fail_data_calls;
static int block_entered, block_release, block_done;

static void
counter_add(int *c)
{
    pthread_mutex_lock(&st_lock);
    (*c)++;
    pthread_cond_broadcast(&st_cond);
    pthread_mutex_unlock(&st_lock);
}

static int
counter_get(int *c)
{
    pthread_mutex_lock(&st_lock);
    int v = *c;
    pthread_mutex_unlock(&st_lock);
    return v;
}

/* Waits (at most 30 s, a safety net) until *c reaches want; returns the value seen. */
static int
counter_wait(int *c, int want)
{
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += 30;
    pthread_mutex_lock(&st_lock);
    while (*c < want && pthread_cond_timedwait(&st_cond, &st_lock, &deadline) != ETIMEDOUT)
        ;
    int v = *c;
    pthread_mutex_unlock(&st_lock);
    return v;
}

/* ---- fake handlers ---- */

static void
h_echo(HttpRequest *r, void *ctx)
{
    json_t *params = json_array();
    for (unsigned i = 0; http_request_param(r, i); i++)
        json_array_append_new(params, json_string(http_request_param(r, i)));
    const char *q = http_request_query(r, "q");
    json_t *body = http_request_json(r);
    http_reply_json(r, 200,
                    json_pack("{s:o, s:o, s:s, s:s, s:s, s:O}", "params", params, "q",
                              q ? json_string(q) : json_null(), "method", http_request_method(r),
                              "path", http_request_path(r), "peer", http_request_peer(r), "body",
                              body ? body : json_null()));
}

static void
h_created(HttpRequest *r, void *ctx)
{
    http_reply_json(r, 201, json_pack("{s:b}", "created", 1));
}

static void
h_noreply(HttpRequest *r, void *ctx)
{
}

static void
h_twice(HttpRequest *r, void *ctx)
{
    http_reply_empty(r, 204);
    http_reply_error(r, "VM_NOT_FOUND", "ignored second reply");
}

static void
h_block(HttpRequest *r, void *ctx)
{
    pthread_mutex_lock(&st_lock);
    block_entered++;
    pthread_cond_broadcast(&st_cond);
    while (!block_release)
        pthread_cond_wait(&st_cond, &st_lock);
    pthread_mutex_unlock(&st_lock);
    http_reply_text(r, 200, "text/plain", "released", 8);
    counter_add(&block_done);
}

static void
h_fast(HttpRequest *r, void *ctx)
{
    http_reply_text(r, 200, "text/plain", "fast", 4);
}

static void
h_nb_error(HttpRequest *r, void *ctx)
{
    _cleanup_error_ NbError *e = NULL;
    nb_error_set(&e, "FLAVOR_IN_USE", "flavor '%s' is used by %d VMs", "small", 3);
    http_reply_nb_error(r, e);
}

static void
h_bad_utf8(HttpRequest *r, void *ctx)
{
    http_reply_error(r, "VM_NOT_FOUND", "VM '%s' not found", "\xff\xfe");
}

typedef struct Upload {
    uint64_t bytes;
    uint64_t hash;
} Upload;

static uint64_t
fnv1a(uint64_t h, const char *buf, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)buf[i];
        h *= 1099511628211ULL;
    }
    return h;
}

static int
up_begin(HttpRequest *r, int64_t content_length, void **state)
{
    counter_add(&begin_calls);
    Upload *u = calloc(1, sizeof(*u));
    if (!u) {
        http_reply_error(r, "INTERNAL_ERROR", "oom");
        return -1;
    }
    u->hash = 14695981039346656037ULL;
    *state = u;
    return 0;
}

static int
up_data(HttpRequest *r, void *state, const char *buf, size_t len)
{
    Upload *u = state;
    u->hash = fnv1a(u->hash, buf, len);
    u->bytes += len;
    return 0;
}

static void
up_end(HttpRequest *r, void *state)
{
    Upload *u = state;
    char hex[17];
    snprintf(hex, sizeof(hex), "%016llx", (unsigned long long)u->hash);
    http_reply_json(r, 200, json_pack("{s:I, s:s}", "bytes", (json_int_t)u->bytes, "hash", hex));
    free(u);
    counter_add(&end_calls);
}

static void
up_abort(void *state)
{
    free(state);
    counter_add(&abort_calls);
}

static const HttpStreamHandler upload_stream = {up_begin, up_data, up_end, up_abort};

static int
fail_data(HttpRequest *r, void *state, const char *buf, size_t len)
{
    counter_add(&fail_data_calls);
    http_reply_error(r, "IMAGE_CORRUPT", "not an image");
    return -1;
}

static const HttpStreamHandler fail_stream = {up_begin, fail_data, up_end, up_abort};

static int
refuse_begin(HttpRequest *r, int64_t content_length, void **state)
{
    counter_add(&begin_calls);
    http_reply_error(r, "LENGTH_REQUIRED", "Content-Length required (got %lld)",
                     (long long)content_length);
    return -1;
}

static const HttpStreamHandler refuse_stream = {refuse_begin, up_data, up_end, up_abort};

static const HttpRoute routes[] = {
    {"GET", "/v1/echo/{}/x/{}", h_echo, NULL},
    {"POST", "/v1/echo", h_echo, NULL},
    {"GET", "/v1/items", h_echo, NULL},
    {"POST", "/v1/items", h_created, NULL},
    {"DELETE", "/v1/items/{}", h_echo, NULL},
    {"GET", "/v1/noreply", h_noreply, NULL},
    {"GET", "/v1/twice", h_twice, NULL},
    {"GET", "/v1/block", h_block, NULL},
    {"GET", "/v1/fast", h_fast, NULL},
    {"GET", "/v1/nberror", h_nb_error, NULL},
    {"PUT", "/v1/upload", NULL, &upload_stream},
    {"PUT", "/v1/upload-fail", NULL, &fail_stream},
    {"PUT", "/v1/upload-refuse", NULL, &refuse_stream},
    {"GET", "/v1/health", h_fast, NULL, true},
    {"GET", "/v1/badutf8", h_bad_utf8, NULL},
    {NULL, NULL, NULL, NULL},
};

static bool
check_token(const char *token, void *ctx)
{
    return streq(token, TOKEN);
}

/* The layer wants a principal; any non-NULL pointer will do for these tests. */
static void *
authenticate(const char *token, void *ctx)
{
    static int principal;
    return check_token(token, ctx) ? &principal : NULL;
}

static HttpServer *server;
static char base_url[64];

/* ---- client ---- */

typedef struct Buf {
    char *p;
    size_t len;
} Buf;

typedef struct Resp {
    CURLcode rc;
    long status;
    char *body;
    size_t len;
    char *headers;
} Resp;

static void
resp_free(Resp *r)
{
    free(r->body);
    free(r->headers);
    memset(r, 0, sizeof(*r));
}

static size_t
append_cb(char *p, size_t size, size_t n, void *ud)
{
    Buf *b = ud;
    size_t add = size * n;
    char *nb = realloc(b->p, b->len + add + 1);
    if (!nb)
        return 0;
    memcpy(nb + b->len, p, add);
    b->len += add;
    nb[b->len] = '\0';
    b->p = nb;
    return add;
}

/* Pseudo-random upload source, hashed as it is produced. */
typedef struct Source {
    uint64_t total;
    uint64_t sent;
    uint64_t hash;
    uint32_t x;
    uint64_t abort_after; /* when set: abort the transfer after that many bytes */
} Source;

static size_t
source_read(char *buf, size_t size, size_t n, void *ud)
{
    Source *s = ud;
    size_t want = size * n;
    if (s->abort_after && s->sent >= s->abort_after)
        return CURL_READFUNC_ABORT;
    if (want > s->total - s->sent)
        want = (size_t)(s->total - s->sent);
    for (size_t i = 0; i < want; i++) {
        s->x ^= s->x << 13;
        s->x ^= s->x >> 17;
        s->x ^= s->x << 5;
        buf[i] = (char)(s->x & 0xff);
    }
    s->hash = fnv1a(s->hash, buf, want);
    s->sent += want;
    return want;
}

typedef struct Req {
    const char *method;
    const char *path; /* appended to base_url as is */
    const char *token;
    const char *ctype;
    const char *body;
    size_t body_len;
    Source *source;     /* streamed body */
    bool chunked;       /* with source: no Content-Length */
    bool no_expect;     /* suppress "Expect: 100-continue" */
    int extra_headers;  /* that many junk headers */
    const char *header; /* one more raw header line */
} Req;

static Resp
perform(const Req *q)
{
    Resp out = {0};
    Buf body = {0}, hdrs = {0};
    CURL *c = curl_easy_init();
    struct curl_slist *h = NULL;
    _cleanup_free_ char *url = str_printf("%s%s", base_url, q->path);
    _cleanup_free_ char *auth = q->token ? str_printf("Authorization: Bearer %s", q->token) : NULL;
    _cleanup_free_ char *ct = q->ctype ? str_printf("Content-Type: %s", q->ctype) : NULL;

    assert_non_null(c);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_PATH_AS_IS, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, CURL_TIMEOUT_S);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, q->method);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, append_cb);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &body);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, append_cb);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &hdrs);
    if (auth)
        h = curl_slist_append(h, auth);
    h = curl_slist_append(h, ct ? ct : "Content-Type:");
    if (q->no_expect)
        h = curl_slist_append(h, "Expect:");
    if (q->header)
        h = curl_slist_append(h, q->header);
    for (int i = 0; i < q->extra_headers; i++) {
        char line[64];
        snprintf(line, sizeof(line), "X-Junk-%d: %d", i, i);
        h = curl_slist_append(h, line);
    }
    if (q->source) {
        curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(c, CURLOPT_READFUNCTION, source_read);
        curl_easy_setopt(c, CURLOPT_READDATA, q->source);
        if (q->chunked)
            h = curl_slist_append(h, "Transfer-Encoding: chunked");
        else
            curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, (curl_off_t)q->source->total);
    } else if (q->body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, q->body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)q->body_len);
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    out.rc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &out.status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    out.body = body.p;
    out.len = body.len;
    out.headers = hdrs.p;
    return out;
}

static Resp
get(const char *path, const char *token)
{
    Req q = {.method = "GET", .path = path, .token = token};
    return perform(&q);
}

static Resp
send_json(const char *method, const char *path, const char *ctype, const char *body)
{
    Req q = {.method = method,
             .path = path,
             .token = TOKEN,
             .ctype = ctype,
             .body = body,
             .body_len = strlen(body)};
    return perform(&q);
}

/* Value of the last header called name in the response, or NULL. Caller frees. */
static char *
resp_header(const Resp *r, const char *name)
{
    char *found = NULL;
    size_t nl = strlen(name);
    for (const char *p = r->headers; p && *p;) {
        const char *eol = strstr(p, "\r\n");
        size_t ll = eol ? (size_t)(eol - p) : strlen(p);
        if (ll > nl && strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
            const char *v = p + nl + 1;
            while (*v == ' ')
                v++;
            free(found);
            found = strndup(v, ll - (size_t)(v - p));
        }
        p += ll + (eol ? 2 : 0);
    }
    return found;
}

/* Checks the error body shape and returns its code (borrowed from *doc). */
static const char *
check_error_body(const Resp *r, json_t **doc)
{
    _cleanup_free_ char *ct = resp_header(r, "Content-Type");
    _cleanup_free_ char *rid = resp_header(r, "X-Request-Id");
    json_error_t jerr;

    assert_non_null(r->body);
    assert_string_equal(ct, "application/json");
    assert_true(r->len > 0 && r->body[r->len - 1] == '\n');
    *doc = json_loadb(r->body, r->len, 0, &jerr);
    assert_non_null(*doc);
    json_t *err = json_object_get(*doc, "error");
    assert_true(json_is_object(err));
    assert_int_equal(json_object_size(*doc), 1);
    assert_int_equal(json_object_size(err), 3);
    assert_true(json_is_string(json_object_get(err, "code")));
    assert_true(json_is_string(json_object_get(err, "message")));
    assert_string_equal(json_string_value(json_object_get(err, "request_id")), rid);
    return json_string_value(json_object_get(err, "code"));
}

static void
expect_error(const Resp *r, long status, const char *code)
{
    json_t *doc = NULL;
    assert_int_equal(r->rc, CURLE_OK);
    assert_int_equal(r->status, status);
    assert_string_equal(check_error_body(r, &doc), code);
    json_decref(doc);
}

/* ---- setup ---- */

static int
group_setup(void **unused)
{
    NbError *err = NULL;
    HttpServerConfig cfg = {
        .listen_host = "127.0.0.1",
        .port = 0,
        .routes = routes,
        .authenticate = authenticate,
    };
    /* TEST_HTTP_VERBOSE=1 shows the per-request log lines. */
    log_set_level(getenv("TEST_HTTP_VERBOSE") ? LOG_LEVEL_DEBUG : LOG_LEVEL_WARN);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    if (http_server_start(&cfg, &server, &err) < 0) {
        fprintf(stderr, "start: %s\n", err ? err->message : "?");
        nb_error_free(err);
        return -1;
    }
    snprintf(base_url, sizeof(base_url), "http://127.0.0.1:%u", http_server_port(server));
    return 0;
}

static int
group_teardown(void **unused)
{
    http_server_stop(server);
    curl_global_cleanup();
    return 0;
}

/* ---- tests ---- */

static void
test_echo_params_query(void **unused)
{
    Resp r = get("/v1/echo/web%201/x/two?q=hello%20world&other=1", TOKEN);
    json_error_t jerr;
    assert_int_equal(r.rc, CURLE_OK);
    assert_int_equal(r.status, 200);
    json_t *doc = json_loadb(r.body, r.len, 0, &jerr);
    assert_non_null(doc);
    json_t *params = json_object_get(doc, "params");
    assert_int_equal(json_array_size(params), 2);
    assert_string_equal(json_string_value(json_array_get(params, 0)), "web 1");
    assert_string_equal(json_string_value(json_array_get(params, 1)), "two");
    assert_string_equal(json_string_value(json_object_get(doc, "q")), "hello world");
    assert_string_equal(json_string_value(json_object_get(doc, "method")), "GET");
    assert_string_equal(json_string_value(json_object_get(doc, "path")), "/v1/echo/web 1/x/two");
    assert_true(str_startswith(json_string_value(json_object_get(doc, "peer")), "127.0.0.1:"));
    assert_true(json_is_null(json_object_get(doc, "body")));
    /* Compact output with a trailing newline. */
    assert_null(strstr(r.body, ", "));
    assert_int_equal(r.body[r.len - 1], '\n');
    json_decref(doc);
    resp_free(&r);

    r = get("/v1/echo/a/x/b", TOKEN);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "\"q\":null"));
    resp_free(&r);
}

static void
test_request_id(void **unused)
{
    Resp a = get("/v1/items", TOKEN);
    Resp b = get("/v1/nothing-here", NULL);
    _cleanup_free_ char *ida = resp_header(&a, "X-Request-Id");
    _cleanup_free_ char *idb = resp_header(&b, "X-Request-Id");
    assert_int_equal(a.status, 200);
    assert_int_equal(b.status, 401);
    assert_true(nb_uuid_is_valid(ida));
    assert_true(nb_uuid_is_valid(idb));
    assert_string_not_equal(ida, idb);
    resp_free(&a);
    resp_free(&b);
}

static void
test_routing(void **unused)
{
    Resp r = get("/v1/nope", TOKEN);
    expect_error(&r, 404, "NOT_FOUND");
    resp_free(&r);

    r = get("/v1/echo/a/x", TOKEN); /* too few segments */
    expect_error(&r, 404, "NOT_FOUND");
    resp_free(&r);

    r = get("/v1/echo/a/y/b", TOKEN); /* literal mismatch */
    expect_error(&r, 404, "NOT_FOUND");
    resp_free(&r);

    r = get("/v1/echo/a/x/b/c", TOKEN); /* too many */
    expect_error(&r, 404, "NOT_FOUND");
    resp_free(&r);

    r = get("/a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p/q/r/s/t", TOKEN);
    expect_error(&r, 404, "NOT_FOUND");
    resp_free(&r);

    /* "{}" needs a non-empty segment. */
    r = get("/v1/echo//x/b", TOKEN);
    expect_error(&r, 404, "NOT_FOUND");
    resp_free(&r);

    Req q = {.method = "PUT", .path = "/v1/items", .token = TOKEN};
    r = perform(&q);
    expect_error(&r, 405, "METHOD_NOT_ALLOWED");
    _cleanup_free_ char *allow = resp_header(&r, "Allow");
    assert_string_equal(allow, "GET, POST");
    resp_free(&r);

    q.method = "GET";
    q.path = "/v1/items/abc";
    r = perform(&q);
    expect_error(&r, 405, "METHOD_NOT_ALLOWED");
    _cleanup_free_ char *allow2 = resp_header(&r, "Allow");
    assert_string_equal(allow2, "DELETE");
    resp_free(&r);

    q.method = "DELETE";
    r = perform(&q);
    assert_int_equal(r.status, 200);
    resp_free(&r);

    /* A garbage method is just a method no route has. */
    q.method = "FROB";
    q.path = "/v1/items";
    r = perform(&q);
    expect_error(&r, 405, "METHOD_NOT_ALLOWED");
    resp_free(&r);

    r = send_json("POST", "/v1/items", NULL, "");
    assert_int_equal(r.status, 201);
    resp_free(&r);
}

static void
test_trailing_slash(void **unused)
{
    /* One trailing slash is ignored; an empty segment elsewhere matches nothing. */
    Resp r = get("/v1/items/", TOKEN);
    assert_int_equal(r.status, 200);
    resp_free(&r);

    r = get("/v1/echo/a/x/b/", TOKEN);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "\"params\":[\"a\",\"b\"]"));
    resp_free(&r);

    r = get("/v1/items//", TOKEN);
    expect_error(&r, 404, "NOT_FOUND");
    resp_free(&r);

    r = get("/v1//items", TOKEN);
    expect_error(&r, 404, "NOT_FOUND");
    resp_free(&r);
}

static void
test_encoded_segments(void **unused)
{
    /* An encoded slash never creates a segment: refused. */
    Resp r = get("/v1/echo/a%2Fb/x/c", TOKEN);
    expect_error(&r, 400, "INVALID_REQUEST");
    resp_free(&r);

    r = get("/v1/echo/a%2fb/x/c", TOKEN);
    expect_error(&r, 400, "INVALID_REQUEST");
    resp_free(&r);

    r = get("/v1/echo/a%00b/x/c", TOKEN);
    expect_error(&r, 400, "INVALID_REQUEST");
    resp_free(&r);

    r = get("/v1/echo/a%zzb/x/c", TOKEN);
    expect_error(&r, 400, "INVALID_REQUEST");
    resp_free(&r);

    r = get("/v1/echo/a%2/x/c", TOKEN);
    expect_error(&r, 400, "INVALID_REQUEST");
    resp_free(&r);

    /* Other escapes decode inside their segment, literals too. */
    r = get("/v1/%65cho/a%2Eb/x/%41", TOKEN);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "\"params\":[\"a.b\",\"A\"]"));
    resp_free(&r);
}

static void
test_auth(void **unused)
{
    Resp r = get("/v1/items", NULL);
    expect_error(&r, 401, "UNAUTHORIZED");
    _cleanup_free_ char *www = resp_header(&r, "WWW-Authenticate");
    assert_string_equal(www, "Bearer");
    resp_free(&r);

    r = get("/v1/items", "wrong");
    expect_error(&r, 401, "UNAUTHORIZED");
    resp_free(&r);

    Req q = {.method = "GET", .path = "/v1/items", .header = "Authorization: Basic Zm9vOmJhcg=="};
    r = perform(&q);
    expect_error(&r, 401, "UNAUTHORIZED");
    resp_free(&r);

    q.header = "Authorization: Bearer";
    r = perform(&q);
    expect_error(&r, 401, "UNAUTHORIZED");
    resp_free(&r);

    q.header = "Authorization: bearer  " TOKEN;
    r = perform(&q);
    assert_int_equal(r.status, 200);
    resp_free(&r);

    /* Unknown paths are not revealed without a token. */
    r = get("/v1/nope", NULL);
    expect_error(&r, 401, "UNAUTHORIZED");
    resp_free(&r);

    /* A public route needs no token, but only for its own method. */
    r = get("/v1/health", NULL);
    assert_int_equal(r.status, 200);
    resp_free(&r);
    r = get("/v1/health/", "wrong");
    assert_int_equal(r.status, 200);
    resp_free(&r);
    r = send_json("POST", "/v1/health", "application/json", "{}");
    assert_int_equal(r.status, 405);
    resp_free(&r);
    q.method = "POST";
    q.path = "/v1/health";
    q.header = NULL;
    r = perform(&q);
    expect_error(&r, 401, "UNAUTHORIZED");
    resp_free(&r);
}

static void
test_auth_before_stream(void **unused)
{
    int before = counter_get(&begin_calls);
    Source src = {.total = 10 << 20, .x = 7};
    Req q = {.method = "PUT", .path = "/v1/upload", .token = "wrong", .source = &src};
    Resp r = perform(&q);
    expect_error(&r, 401, "UNAUTHORIZED");
    resp_free(&r);

    /* Also when the client does not wait for 100-continue. */
    Source src2 = {.total = 64 << 10, .x = 7};
    q.source = &src2;
    q.no_expect = true;
    q.token = NULL;
    r = perform(&q);
    assert_int_equal(r.status, 401);
    resp_free(&r);
    assert_int_equal(counter_get(&begin_calls), before);
}

static void
test_stream_upload(void **unused)
{
    int ends = counter_get(&end_calls);
    for (int chunked = 0; chunked <= 1; chunked++) {
        Source src = {
            .total = 10 << 20, .x = 12345u + (unsigned)chunked, .hash = 14695981039346656037ULL};
        Req q = {.method = "PUT",
                 .path = "/v1/upload",
                 .token = TOKEN,
                 .ctype = "application/octet-stream",
                 .source = &src,
                 .chunked = chunked};
        Resp r = perform(&q);
        json_error_t jerr;
        assert_int_equal(r.rc, CURLE_OK);
        assert_int_equal(r.status, 200);
        json_t *doc = json_loadb(r.body, r.len, 0, &jerr);
        assert_non_null(doc);
        assert_int_equal(json_integer_value(json_object_get(doc, "bytes")), 10 << 20);
        char hex[17];
        snprintf(hex, sizeof(hex), "%016llx", (unsigned long long)src.hash);
        assert_string_equal(json_string_value(json_object_get(doc, "hash")), hex);
        json_decref(doc);
        resp_free(&r);
    }
    assert_int_equal(counter_get(&end_calls), ends + 2);
}

static void
test_stream_refused(void **unused)
{
    /* begin() refuses at once: its reply goes out and no data is fed. */
    int aborts = counter_get(&abort_calls);
    Source src = {.total = 1 << 20, .x = 3};
    Req q = {.method = "PUT",
             .path = "/v1/upload-refuse",
             .token = TOKEN,
             .source = &src,
             .chunked = true};
    Resp r = perform(&q);
    expect_error(&r, 411, "LENGTH_REQUIRED");
    assert_non_null(strstr(r.body, "got -1"));
    resp_free(&r);

    /* data() fails on the first chunk: the reply is sent once the (small) body is in. */
    int fails = counter_get(&fail_data_calls);
    Source src2 = {.total = 512 << 10, .x = 5};
    q.path = "/v1/upload-fail";
    q.source = &src2;
    q.chunked = false;
    r = perform(&q);
    expect_error(&r, 422, "IMAGE_CORRUPT");
    resp_free(&r);
    assert_int_equal(counter_get(&fail_data_calls), fails + 1);
    assert_int_equal(counter_wait(&abort_calls, aborts + 1), aborts + 1);

    /* A body far past the drain budget: the server stops reading and closes; whatever curl
     * reports, it does not hang, data() is not called again, and abort_cb runs once. */
    Source src3 = {.total = 64 << 20, .x = 9};
    q.source = &src3;
    r = perform(&q);
    assert_true(r.rc != CURLE_OPERATION_TIMEDOUT);
    assert_true(src3.sent < src3.total || r.status == 422);
    resp_free(&r);
    assert_int_equal(counter_get(&fail_data_calls), fails + 2);
    assert_int_equal(counter_wait(&abort_calls, aborts + 2), aborts + 2);
}

static void
test_stream_client_gone(void **unused)
{
    /* The client aborts mid-upload: abort_cb releases the state. */
    int aborts = counter_get(&abort_calls);
    int ends = counter_get(&end_calls);
    Source src = {.total = 10 << 20, .x = 11, .abort_after = 3 << 20};
    Req q = {.method = "PUT", .path = "/v1/upload", .token = TOKEN, .source = &src};
    Resp r = perform(&q);
    assert_int_equal(r.rc, CURLE_ABORTED_BY_CALLBACK);
    resp_free(&r);
    assert_int_equal(counter_wait(&abort_calls, aborts + 1), aborts + 1);
    assert_int_equal(counter_get(&end_calls), ends);
}

static void
test_body_limits(void **unused)
{
    _cleanup_free_ char *big = malloc(HTTP_MAX_BODY + 2);
    assert_non_null(big);
    big[0] = '"';
    memset(big + 1, 'a', HTTP_MAX_BODY);
    big[HTTP_MAX_BODY + 1] = '\0';

    /* Content-Length over the limit: refused before the body is read. */
    Resp r = send_json("POST", "/v1/echo", "application/json", big);
    expect_error(&r, 413, "BODY_TOO_LARGE");
    resp_free(&r);

    Req q = {.method = "POST",
             .path = "/v1/echo",
             .token = TOKEN,
             .ctype = "application/json",
             .body = big,
             .body_len = strlen(big),
             .no_expect = true};
    r = perform(&q);
    expect_error(&r, 413, "BODY_TOO_LARGE");
    resp_free(&r);

    /* Chunked: counted as it arrives. */
    Source src = {.total = 2 * HTTP_MAX_BODY, .x = 1};
    Req c = {.method = "POST",
             .path = "/v1/echo",
             .token = TOKEN,
             .ctype = "application/json",
             .source = &src,
             .chunked = true};
    r = perform(&c);
    expect_error(&r, 413, "BODY_TOO_LARGE");
    resp_free(&r);

    /* Exactly at the limit is fine (a JSON string is not an object: 400, not 413). */
    big[HTTP_MAX_BODY - 1] = '"';
    big[HTTP_MAX_BODY] = '\0';
    r = send_json("POST", "/v1/echo", "application/json", big);
    expect_error(&r, 400, "INVALID_REQUEST");
    resp_free(&r);
}

static void
test_json_bodies(void **unused)
{
    Resp r = send_json("POST", "/v1/echo", "application/json", "{\"a\":1,\"a\":2}");
    expect_error(&r, 400, "INVALID_JSON");
    assert_non_null(strstr(r.body, "duplicate"));
    resp_free(&r);

    r = send_json("POST", "/v1/echo", "application/json", "{\"a\":\n  tru}");
    expect_error(&r, 400, "INVALID_JSON");
    assert_non_null(strstr(r.body, "line 2"));
    assert_non_null(strstr(r.body, "column"));
    resp_free(&r);

    r = send_json("POST", "/v1/echo", "application/json", "{} trailing");
    expect_error(&r, 400, "INVALID_JSON");
    resp_free(&r);

    r = send_json("POST", "/v1/echo", "application/json", "[1,2]");
    expect_error(&r, 400, "INVALID_REQUEST");
    resp_free(&r);

    r = send_json("POST", "/v1/echo", "application/json", "42");
    expect_error(&r, 400, "INVALID_REQUEST");
    resp_free(&r);

    r = send_json("POST", "/v1/echo", "text/plain", "{}");
    expect_error(&r, 415, "UNSUPPORTED_MEDIA_TYPE");
    resp_free(&r);

    r = send_json("POST", "/v1/echo", NULL, "{}");
    expect_error(&r, 415, "UNSUPPORTED_MEDIA_TYPE");
    resp_free(&r);

    r = send_json("POST", "/v1/echo", "application/jsonx", "{}");
    expect_error(&r, 415, "UNSUPPORTED_MEDIA_TYPE");
    resp_free(&r);

    r = send_json("POST", "/v1/echo", "Application/JSON; charset=utf-8", "{\"k\":\"v\"}");
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "\"body\":{\"k\":\"v\"}"));
    resp_free(&r);

    /* Empty body: no media type needed, the handler sees NULL. */
    r = send_json("POST", "/v1/echo", NULL, "");
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "\"body\":null"));
    resp_free(&r);

    /* Chunked JSON with the right type works; with the wrong type it is 415. */
    const char *doc = "{\"x\":[1,2,3]}";
    Req q = {.method = "POST",
             .path = "/v1/echo",
             .token = TOKEN,
             .ctype = "application/json",
             .body = doc,
             .body_len = strlen(doc),
             .header = "Transfer-Encoding: chunked"};
    r = perform(&q);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "\"body\":{\"x\":[1,2,3]}"));
    resp_free(&r);
    q.ctype = "text/plain";
    r = perform(&q);
    expect_error(&r, 415, "UNSUPPORTED_MEDIA_TYPE");
    resp_free(&r);
}

static void
test_url_limits(void **unused)
{
    /* Over HTTP_MAX_URL but within MHD's buffer: our 414 with an error body. */
    size_t n = HTTP_MAX_URL + 100;
    _cleanup_free_ char *path = malloc(n + 1);
    assert_non_null(path);
    memcpy(path, "/v1/items?q=", 12);
    memset(path + 12, 'a', n - 12);
    path[n] = '\0';
    Resp r = get(path, TOKEN);
    expect_error(&r, 414, "URI_TOO_LONG");
    resp_free(&r);

    /* Exactly at the limit is routed normally. */
    path[HTTP_MAX_URL] = '\0';
    r = get(path, TOKEN);
    assert_int_equal(r.status, 200);
    resp_free(&r);

    /* Far past MHD's own buffer: MHD answers itself, still a 4xx. */
    size_t huge = 200 * 1024;
    _cleanup_free_ char *hp = malloc(huge + 1);
    assert_non_null(hp);
    memcpy(hp, "/v1/items/", 10);
    memset(hp + 10, 'b', huge - 10);
    hp[huge] = '\0';
    r = get(hp, TOKEN);
    assert_int_equal(r.rc, CURLE_OK);
    assert_true(r.status >= 400 && r.status < 500);
    resp_free(&r);

    /* Thousands of headers: MHD refuses with a 4xx, the server lives on. */
    Req q = {.method = "GET", .path = "/v1/items", .token = TOKEN, .extra_headers = 5000};
    r = perform(&q);
    assert_int_equal(r.rc, CURLE_OK);
    assert_true(r.status >= 400 && r.status < 500);
    resp_free(&r);

    r = get("/v1/items", TOKEN);
    assert_int_equal(r.status, 200);
    resp_free(&r);
}

static void
test_handler_replies(void **unused)
{
    Resp r = get("/v1/noreply", TOKEN);
    expect_error(&r, 500, "INTERNAL_ERROR");
    resp_free(&r);

    /* A second reply is dropped: the first one stands. */
    r = get("/v1/twice", TOKEN);
    assert_int_equal(r.status, 204);
    assert_int_equal(r.len, 0);
    resp_free(&r);

    r = get("/v1/nberror", TOKEN);
    expect_error(&r, 409, "FLAVOR_IN_USE");
    assert_non_null(strstr(r.body, "flavor 'small' is used by 3 VMs"));
    resp_free(&r);

    /* A message that is not UTF-8 still gives a well-formed error body. */
    r = get("/v1/badutf8", TOKEN);
    expect_error(&r, 404, "VM_NOT_FOUND");
    resp_free(&r);

    /* The server keeps serving after errors. */
    r = get("/v1/fast", TOKEN);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "fast");
    resp_free(&r);
}

/* Sends raw bytes on a fresh connection and reads until the server closes it. Returns what came
 * back (caller frees). */
static char *
raw_exchange(const char *data, size_t len)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(http_server_port(server))};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    _cleanup_close_ int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct timeval tv = {.tv_sec = 30};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(write_full(fd, data, len), 0);
    shutdown(fd, SHUT_WR);
    Buf b = {0};
    char buf[4096];
    ssize_t n;
    while ((n = read(fd, buf, sizeof(buf))) > 0)
        append_cb(buf, 1, (size_t)n, &b);
    return b.p ? b.p : strdup("");
}

static void
test_garbage_requests(void **unused)
{
    static const char *const inputs[] = {
        "\x01\x02\x03 garbage\r\n\r\n",
        "GET\r\n\r\n",
        "GET /v1/items HTTP/9.9\r\nAuthorization: Bearer " TOKEN "\r\n\r\n",
        "GET /v1/items HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
        "POST /v1/echo HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " TOKEN
        "\r\nTransfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\nzz\r\n",
        "GET /v1/items HTTP/1.1\r\nHost: x\r\nBroken header line\r\n\r\n",
        "GET v1/items HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " TOKEN "\r\n\r\n",
    };
    for (size_t i = 0; i < ELEMENTSOF(inputs); i++) {
        _cleanup_free_ char *out = raw_exchange(inputs[i], strlen(inputs[i]));
        /* Whatever the answer (often a 4xx or just a close), the server lives on. */
        (void)out;
        Resp r = get("/v1/fast", TOKEN);
        assert_int_equal(r.status, 200);
        resp_free(&r);
    }
}

typedef struct Worker {
    pthread_t tid;
    const char *path;
    Resp resp;
    int done;
} Worker;

static void *
worker_run(void *ud)
{
    Worker *w = ud;
    Req q = {.method = "GET", .path = w->path, .token = TOKEN};
    w->resp = perform(&q);
    counter_add(&w->done);
    return NULL;
}

static void
test_concurrency(void **unused)
{
    Worker blocker = {.path = "/v1/block"};
    Worker fast[7];

    pthread_mutex_lock(&st_lock);
    block_entered = 0;
    block_release = 0;
    pthread_mutex_unlock(&st_lock);
    assert_int_equal(pthread_create(&blocker.tid, NULL, worker_run, &blocker), 0);
    assert_int_equal(counter_wait(&block_entered, 1), 1);

    /* Seven more requests complete while the first handler is still parked. */
    for (int i = 0; i < 7; i++) {
        fast[i] = (Worker){.path = "/v1/fast"};
        assert_int_equal(pthread_create(&fast[i].tid, NULL, worker_run, &fast[i]), 0);
    }
    for (int i = 0; i < 7; i++) {
        pthread_join(fast[i].tid, NULL);
        assert_int_equal(fast[i].resp.status, 200);
        resp_free(&fast[i].resp);
    }
    assert_int_equal(counter_get(&blocker.done), 0);

    pthread_mutex_lock(&st_lock);
    block_release = 1;
    pthread_cond_broadcast(&st_cond);
    pthread_mutex_unlock(&st_lock);
    pthread_join(blocker.tid, NULL);
    assert_int_equal(blocker.resp.status, 200);
    assert_string_equal(blocker.resp.body, "released");
    resp_free(&blocker.resp);
}

/* ---- session cookie and fallback (a second server: its config differs) ---- */

/* Says how the caller authenticated. */
static void
h_credential(HttpRequest *r, void *ctx)
{
    const char *cred = http_request_credential(r);
    http_reply_json(r, 200,
                    json_pack("{s:b, s:s}", "cookie", http_request_cookie_auth(r), "credential",
                              cred ? cred : ""));
}

static void
h_page(HttpRequest *r, void *ctx)
{
    _cleanup_free_ char *text = str_printf("page %s", http_request_raw_path(r));
    http_reply_text(r, 200, "text/plain", text, strlen(text));
}

static const HttpRoute cookie_routes[] = {
    {"GET", "/v1/cred", h_credential, NULL},
    {NULL, NULL, NULL, NULL},
};

static void
test_session_cookie_and_fallback(void **unused)
{
    NbError *err = NULL;
    HttpServer *s2 = NULL;
    HttpServerConfig cfg = {
        .listen_host = "127.0.0.1",
        .routes = cookie_routes,
        .authenticate = authenticate,
        .session_cookie = "sess",
        .fallback = h_page,
    };
    assert_int_equal(http_server_start(&cfg, &s2, &err), 0);
    char saved[sizeof(base_url)];
    memcpy(saved, base_url, sizeof(saved));
    snprintf(base_url, sizeof(base_url), "http://127.0.0.1:%u", http_server_port(s2));

    /* The cookie is a credential when there is no Authorization header, and is told apart. */
    Req q = {.method = "GET", .path = "/v1/cred", .header = "Cookie: other=1; sess=" TOKEN};
    Resp r = perform(&q);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "\"cookie\":true"));
    assert_non_null(strstr(r.body, "\"credential\":\"" TOKEN "\""));
    resp_free(&r);
    r = get("/v1/cred", TOKEN);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "\"cookie\":false"));
    resp_free(&r);
    /* A bad cookie, or a bad header next to a good cookie, is refused. */
    q.header = "Cookie: sess=wrong";
    r = perform(&q);
    expect_error(&r, 401, "UNAUTHORIZED");
    resp_free(&r);
    q.token = "wrong";
    q.header = "Cookie: sess=" TOKEN;
    r = perform(&q);
    expect_error(&r, 401, "UNAUTHORIZED");
    resp_free(&r);

    /* Outside the API the fallback answers, unauthenticated; the API's paths never reach it. */
    r = get("/index.html", NULL);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "page /index.html");
    resp_free(&r);
    r = get("/a/%2e%2e/b", NULL);
    assert_string_equal(r.body, "page /a/%2e%2e/b"); /* raw: the fallback judges the path */
    resp_free(&r);
    const char *api_paths[] = {"/v1", "/v1/", "/v1/nope", "/v1/../x", "/metrics"};
    for (size_t i = 0; i < ELEMENTSOF(api_paths); i++) {
        r = get(api_paths[i], NULL);
        expect_error(&r, 401, "UNAUTHORIZED");
        resp_free(&r);
    }

    memcpy(base_url, saved, sizeof(saved));
    http_server_stop(s2);
}

static void
test_start_errors(void **unused)
{
    HttpServer *s = NULL;
    NbError *err = NULL;
    HttpServerConfig cfg = {
        .listen_host = "not-an-ip", .routes = routes, .authenticate = authenticate};

    assert_int_equal(http_server_start(&cfg, &s, &err), -1);
    assert_non_null(err);
    assert_null(s);
    nb_error_free(err);
    err = NULL;

    /* The port is taken by the running server. */
    cfg.listen_host = "127.0.0.1";
    cfg.port = http_server_port(server);
    assert_int_equal(http_server_start(&cfg, &s, &err), -1);
    assert_non_null(err);
    assert_non_null(strstr(err->message, "in use"));
    nb_error_free(err);
    err = NULL;

    /* No token check: refused. */
    cfg.port = 0;
    cfg.authenticate = NULL;
    assert_int_equal(http_server_start(&cfg, &s, &err), -1);
    nb_error_free(err);
    err = NULL;

    /* IPv6 loopback, when the machine has it. */
    cfg.listen_host = "::1";
    cfg.authenticate = authenticate;
    if (http_server_start(&cfg, &s, &err) < 0) {
        nb_error_free(err);
        return;
    }
    uint16_t port = http_server_port(s);
    assert_int_not_equal(port, 0);
    char url[64];
    snprintf(url, sizeof(url), "http://[::1]:%u/v1/items", port);
    CURL *c = curl_easy_init();
    struct curl_slist *h = curl_slist_append(NULL, "Authorization: Bearer " TOKEN);
    _cleanup_free_ char *body = NULL;
    Buf sink = {0};
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, CURL_TIMEOUT_S);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, append_cb);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &sink);
    assert_int_equal(curl_easy_perform(c), CURLE_OK);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    assert_int_equal(status, 200);
    body = sink.p;
    assert_non_null(strstr(body, "\"peer\":\"[::1]:"));
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    http_server_stop(s);
}

typedef struct Stopper {
    pthread_t tid;
    HttpServer *s;
    int handler_done_at_return;
} Stopper;

static void *
stopper_run(void *ud)
{
    Stopper *st = ud;
    http_server_stop(st->s);
    st->handler_done_at_return = counter_get(&block_done);
    return NULL;
}

static void
test_stop_waits_for_handlers(void **unused)
{
    HttpServer *s = NULL;
    NbError *err = NULL;
    HttpServerConfig cfg = {
        .listen_host = "127.0.0.1", .routes = routes, .authenticate = authenticate};
    char saved[64];

    assert_int_equal(http_server_start(&cfg, &s, &err), 0);
    pthread_mutex_lock(&st_lock);
    block_entered = 0;
    block_release = 0;
    pthread_mutex_unlock(&st_lock);

    memcpy(saved, base_url, sizeof(saved));
    snprintf(base_url, sizeof(base_url), "http://127.0.0.1:%u", http_server_port(s));
    Worker blocker = {.path = "/v1/block"};
    assert_int_equal(pthread_create(&blocker.tid, NULL, worker_run, &blocker), 0);
    assert_int_equal(counter_wait(&block_entered, 1), 1);
    memcpy(base_url, saved, sizeof(saved));

    /* Stop while the handler is parked: it returns only after the handler has finished. */
    int done = counter_get(&block_done);
    Stopper st = {.s = s};
    assert_int_equal(pthread_create(&st.tid, NULL, stopper_run, &st), 0);
    pthread_mutex_lock(&st_lock);
    block_release = 1;
    pthread_cond_broadcast(&st_cond);
    pthread_mutex_unlock(&st_lock);
    pthread_join(st.tid, NULL);
    assert_int_equal(st.handler_done_at_return, done + 1);
    pthread_join(blocker.tid, NULL);
    resp_free(&blocker.resp);
}

/* ---- the status table ---- */

static void
test_error_status_table(void **unused)
{
    static const struct {
        const char *code;
        unsigned status;
    } want[] = {
        {"INTERNAL_ERROR", 500},
        {"HYPERVISOR_ERROR", 502},
        {"UNAUTHORIZED", 401},
        {"NOT_FOUND", 404},
        {"METHOD_NOT_ALLOWED", 405},
        {"INVALID_JSON", 400},
        {"INVALID_REQUEST", 400},
        {"INVALID_NAME", 400},
        {"INVALID_HOSTNAME", 400},
        {"BODY_TOO_LARGE", 413},
        {"URI_TOO_LONG", 414},
        {"LENGTH_REQUIRED", 411},
        {"UNSUPPORTED_MEDIA_TYPE", 415},
        {"NAME_TAKEN", 409},
        {"VM_NOT_FOUND", 404},
        {"IMAGE_NOT_FOUND", 404},
        {"FLAVOR_NOT_FOUND", 404},
        {"TASK_NOT_FOUND", 404},
        {"VM_BUSY", 409},
        {"INVALID_STATE", 409},
        {"IMAGE_IN_USE", 409},
        {"FLAVOR_IN_USE", 409},
        {"IMAGE_NOT_ACTIVE", 409},
        {"IMAGE_ALREADY_UPLOADED", 409},
        {"IMAGE_FORMAT_UNSUPPORTED", 422},
        {"IMAGE_FORMAT_MISMATCH", 422},
        {"IMAGE_BACKING_FILE", 422},
        {"IMAGE_DATA_FILE", 422},
        {"IMAGE_TOO_LARGE", 422},
        {"IMAGE_CORRUPT", 422},
        {"FLAVOR_DISK_TOO_SMALL", 422},
        {"USER_DATA_TOO_LARGE", 413},
        {"CONSOLE_LOG_UNAVAILABLE", 404},
    };
    for (size_t i = 0; i < ELEMENTSOF(want); i++) {
        assert_true(api_error_code_known(want[i].code));
        if (api_error_status(want[i].code) != want[i].status)
            fail_msg("%s: got %u, want %u", want[i].code, api_error_status(want[i].code),
                     want[i].status);
    }
    assert_false(api_error_code_known("NO_SUCH_CODE"));
    assert_int_equal(api_error_status("NO_SUCH_CODE"), 500);
    assert_int_equal(api_error_status(NULL), 500);
    assert_false(api_error_code_known(NULL));
}

/* Every code error_codes.h defines, read from the header itself, has a row in the table: a code
 * added there without a status fails here. */
static void
test_error_codes_header_covered(void **unused)
{
    /* GOLDEN_DIR is <source root>/tests/unit/../golden. */
    const char *golden = GOLDEN_DIR;
    const char *cut = strstr(golden, "/tests/unit/");
    assert_non_null(cut);
    _cleanup_free_ char *path =
        str_printf("%.*s/src/util/error_codes.h", (int)(cut - golden), golden);
    _cleanup_fclose_ FILE *f = fopen(path, "re");
    if (!f)
        fail_msg("cannot open %s: %s", path, strerror(errno));

    char line[512];
    int found = 0, missing = 0;
    while (fgets(line, sizeof(line), f)) {
        char name[128], code[128];
        if (sscanf(line, " #define NB_ERR_%127[A-Za-z0-9_] \"%127[^\"]\"", name, code) != 2)
            continue;
        found++;
        if (!api_error_code_known(code)) {
            fprintf(stderr, "error code %s (NB_ERR_%s) has no HTTP status in api_error.c\n", code,
                    name);
            missing++;
        }
    }
    assert_true(found >= 33);
    assert_int_equal(missing, 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_error_status_table),
        cmocka_unit_test(test_error_codes_header_covered),
        cmocka_unit_test(test_echo_params_query),
        cmocka_unit_test(test_request_id),
        cmocka_unit_test(test_routing),
        cmocka_unit_test(test_trailing_slash),
        cmocka_unit_test(test_encoded_segments),
        cmocka_unit_test(test_auth),
        cmocka_unit_test(test_auth_before_stream),
        cmocka_unit_test(test_stream_upload),
        cmocka_unit_test(test_stream_refused),
        cmocka_unit_test(test_stream_client_gone),
        cmocka_unit_test(test_body_limits),
        cmocka_unit_test(test_json_bodies),
        cmocka_unit_test(test_url_limits),
        cmocka_unit_test(test_handler_replies),
        cmocka_unit_test(test_garbage_requests),
        cmocka_unit_test(test_concurrency),
        cmocka_unit_test(test_session_cookie_and_fallback),
        cmocka_unit_test(test_start_errors),
        cmocka_unit_test(test_stop_waits_for_handlers),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
