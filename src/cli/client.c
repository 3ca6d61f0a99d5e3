#include "client.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <curl/curl.h>

#include "../util/cleanup.h"
#include "../util/strutil.h"
#include "../util/timeutil.h"
#include "cli.h"

/* Bigger answers are refused: no Nimbus response comes near it. */
#define CLIENT_RESPONSE_MAX (256u * 1024 * 1024)
#define CLIENT_CONNECT_TIMEOUT_S 10L
#define CLIENT_REQUEST_TIMEOUT_S 300L

struct Client {
    CURL *curl;
    char *base_url;
    char *auth_header; /* "Authorization: Bearer ...": never printed */
    char *cacert;      /* CURLOPT_CAINFO, or NULL for the system's CAs */
    char errbuf[CURL_ERROR_SIZE];
};

typedef struct UploadState {
    int fd;
    ClientProgressFn progress;
    void *userdata;
} UploadState;

int
client_new(const char *base_url, const char *token, const char *cacert, Client **ret)
{
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return -EIO;
    Client *c = calloc(1, sizeof(*c));
    if (!c) {
        curl_global_cleanup();
        return -ENOMEM;
    }
    c->curl = curl_easy_init();
    c->base_url = strdup(base_url);
    if (token)
        c->auth_header = str_printf("Authorization: Bearer %s", token);
    if (cacert)
        c->cacert = strdup(cacert);
    if (!c->curl || !c->base_url || (token && !c->auth_header) || (cacert && !c->cacert)) {
        client_free(c);
        return -ENOMEM;
    }
    *ret = c;
    return 0;
}

void
client_free(Client *c)
{
    if (!c)
        return;
    if (c->curl)
        curl_easy_cleanup(c->curl);
    free(c->base_url);
    free(c->cacert);
    if (c->auth_header) {
        explicit_bzero(c->auth_header, strlen(c->auth_header));
        free(c->auth_header);
    }
    free(c);
    curl_global_cleanup();
}

char *
client_escape(Client *c, const char *component)
{
    char *e = curl_easy_escape(c->curl, component, 0);
    if (!e)
        return NULL;
    char *copy = strdup(e);
    curl_free(e);
    return copy;
}

void
client_response_clear(ClientResponse *r)
{
    if (r->body)
        explicit_bzero(r->body, r->body_len);
    free(r->body);
    *r = (ClientResponse){0};
}

static size_t
client_write_cb(char *data, size_t size, size_t nmemb, void *userdata)
{
    ClientResponse *r = userdata;
    size_t n = size * nmemb;
    if (n > CLIENT_RESPONSE_MAX - r->body_len)
        return 0; /* curl fails the transfer with CURLE_WRITE_ERROR */
    char *nb = realloc(r->body, r->body_len + n + 1);
    if (!nb)
        return 0;
    memcpy(nb + r->body_len, data, n);
    r->body = nb;
    r->body_len += n;
    r->body[r->body_len] = '\0';
    return n;
}

/* Copies the value of header line `data` into out when the line is header `name` ("Name:"). */
static void
client_header_value(const char *data, size_t n, const char *name, char *out, size_t out_size)
{
    size_t name_len = strlen(name);
    if (n <= name_len || strncasecmp(data, name, name_len) != 0)
        return;
    const char *v = data + name_len;
    const char *end = data + n;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
        end--;
    size_t len = (size_t)(end - v);
    if (len >= out_size)
        len = out_size - 1;
    memcpy(out, v, len);
    out[len] = '\0';
}

static size_t
client_header_cb(char *data, size_t size, size_t nmemb, void *userdata)
{
    ClientResponse *r = userdata;
    size_t n = size * nmemb;
    client_header_value(data, n, "X-Request-Id:", r->request_id, sizeof(r->request_id));
    client_header_value(data, n, "Retry-After:", r->retry_after, sizeof(r->retry_after));
    return n;
}

static size_t
client_read_cb(char *buf, size_t size, size_t nitems, void *userdata)
{
    UploadState *u = userdata;
    for (;;) {
        ssize_t n = read(u->fd, buf, size * nitems);
        if (n >= 0)
            return (size_t)n;
        if (errno != EINTR)
            return CURL_READFUNC_ABORT;
    }
}

static int
client_xferinfo_cb(void *userdata, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                   curl_off_t ulnow)
{
    UploadState *u = userdata;
    if (!u->progress)
        return 0;
    return u->progress(u->userdata, (uint64_t)ulnow, (uint64_t)ultotal);
}

static int
client_add_header(struct curl_slist **headers, const char *h)
{
    struct curl_slist *l = curl_slist_append(*headers, h);
    if (!l)
        return -ENOMEM;
    *headers = l;
    return 0;
}

/* Options common to every request; the handle is reset first so nothing leaks between them. */
static int
client_prepare(Client *c, const char *path, ClientResponse *ret, struct curl_slist **headers)
{
    CURL *h = c->curl;
    curl_easy_reset(h);
    *ret = (ClientResponse){0};
    ret->body = calloc(1, 1);
    if (!ret->body)
        return -ENOMEM;
    _cleanup_free_ char *url = str_printf("%s%s", c->base_url, path);
    if (!url)
        return -ENOMEM;
    c->errbuf[0] = '\0';
    curl_easy_setopt(h, CURLOPT_URL, url); /* curl copies it */
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, c->errbuf);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    /* Only the API's own schemes, and no redirects: the token must not follow one elsewhere. */
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
#else
    curl_easy_setopt(h, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    /* Names are percent-encoded by us; curl must not fold "." segments away. */
    curl_easy_setopt(h, CURLOPT_PATH_AS_IS, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, CLIENT_CONNECT_TIMEOUT_S);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "nimbus-cli/" NIMBUS_VERSION);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, client_write_cb);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, ret);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, client_header_cb);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, ret);
    /* Verification stays on (curl's default); only the CAs it trusts may change. */
    if (c->cacert)
        curl_easy_setopt(h, CURLOPT_CAINFO, c->cacert);

    if (client_add_header(headers, "Accept: application/json") < 0)
        return -ENOMEM;
    if (c->auth_header && client_add_header(headers, c->auth_header) < 0)
        return -ENOMEM;
    return 0;
}

static int
client_perform(Client *c, struct curl_slist *headers, ClientResponse *ret, char **ret_error)
{
    curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, headers);
    CURLcode cc = curl_easy_perform(c->curl);
    long status = 0;
    curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(headers);
    ret->status = status;
    /* A server may answer an upload with an error and close before reading it all; the
     * answer is what matters then, not the broken send. */
    if (cc == CURLE_OK || (status >= 400 && (cc == CURLE_SEND_ERROR || cc == CURLE_RECV_ERROR)))
        return 0;
    *ret_error = strdup(c->errbuf[0] ? c->errbuf : curl_easy_strerror(cc));
    if (*ret_error) {
        size_t n = strlen(*ret_error);
        if (n > 0 && (*ret_error)[n - 1] == '\n')
            (*ret_error)[n - 1] = '\0';
    }
    client_response_clear(ret);
    return -1;
}

int
client_request(Client *c, const char *method, const char *path, const char *json_body,
               ClientResponse *ret, char **ret_error)
{
    struct curl_slist *headers = NULL;
    *ret_error = NULL;
    if (client_prepare(c, path, ret, &headers) < 0)
        goto oom;
    curl_easy_setopt(c->curl, CURLOPT_TIMEOUT, CLIENT_REQUEST_TIMEOUT_S);
    if (streq(method, "GET")) {
        curl_easy_setopt(c->curl, CURLOPT_HTTPGET, 1L);
    } else if (streq(method, "POST") || json_body) {
        /* An empty body still goes with Content-Length: 0. */
        curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, json_body ? json_body : "");
        curl_easy_setopt(c->curl, CURLOPT_POSTFIELDSIZE_LARGE,
                         (curl_off_t)(json_body ? strlen(json_body) : 0));
        curl_easy_setopt(c->curl, CURLOPT_CUSTOMREQUEST, method);
        /* "Content-Type:" with no value drops curl's form-urlencoded default. */
        if (client_add_header(&headers,
                              json_body ? "Content-Type: application/json" : "Content-Type:") < 0)
            goto oom;
    } else {
        curl_easy_setopt(c->curl, CURLOPT_CUSTOMREQUEST, method);
    }
    return client_perform(c, headers, ret, ret_error);

oom:
    curl_slist_free_all(headers);
    client_response_clear(ret);
    *ret_error = strdup("out of memory");
    return -1;
}

int
client_upload(Client *c, const char *path, int fd, uint64_t size, ClientProgressFn progress,
              void *userdata, ClientResponse *ret, char **ret_error)
{
    struct curl_slist *headers = NULL;
    UploadState u = {.fd = fd, .progress = progress, .userdata = userdata};
    *ret_error = NULL;
    if (client_prepare(c, path, ret, &headers) < 0 ||
        client_add_header(&headers, "Content-Type: application/octet-stream") < 0) {
        curl_slist_free_all(headers);
        client_response_clear(ret);
        *ret_error = strdup("out of memory");
        return -1;
    }
    curl_easy_setopt(c->curl, CURLOPT_UPLOAD, 1L); /* PUT */
    curl_easy_setopt(c->curl, CURLOPT_READFUNCTION, client_read_cb);
    curl_easy_setopt(c->curl, CURLOPT_READDATA, &u);
    curl_easy_setopt(c->curl, CURLOPT_INFILESIZE_LARGE, (curl_off_t)size);
    curl_easy_setopt(c->curl, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c->curl, CURLOPT_XFERINFOFUNCTION, client_xferinfo_cb);
    curl_easy_setopt(c->curl, CURLOPT_XFERINFODATA, &u);
    return client_perform(c, headers, ret, ret_error);
}

typedef struct EventStreamState {
    Client *c;
    ClientResponse *ret;
    ClientEventFn fn;
    void *userdata;
    bool stopped;  /* fn asked to stop */
    bool got_data; /* a body byte arrived */
    bool buffered; /* nothing within first_byte_ms */
    uint64_t start_ms, first_byte_ms;
    char line[64 * 1024];
    size_t line_len;
    bool overlong; /* the current line did not fit: the event is dropped */
    char id[32], type[32];
    char *data;
} EventStreamState;

/* One complete line of the stream (without its newline). Returns false to stop. */
static bool
client_event_line(EventStreamState *st, const char *line)
{
    if (!*line) {
        int stop = 0;
        if (st->data && !st->overlong)
            stop = st->fn(st->userdata, st->id, st->type[0] ? st->type : "message", st->data);
        free(st->data);
        st->data = NULL;
        st->type[0] = '\0';
        st->overlong = false;
        return stop == 0;
    }
    if (*line == ':')
        return true; /* a comment: the heartbeat */
    const char *colon = strchr(line, ':');
    size_t klen = colon ? (size_t)(colon - line) : strlen(line);
    const char *v = colon ? colon + 1 : "";
    if (*v == ' ')
        v++;
    if (klen == 2 && strncmp(line, "id", 2) == 0)
        snprintf(st->id, sizeof(st->id), "%s", v);
    else if (klen == 5 && strncmp(line, "event", 5) == 0)
        snprintf(st->type, sizeof(st->type), "%s", v);
    else if (klen == 4 && strncmp(line, "data", 4) == 0) {
        char *d = st->data ? str_printf("%s\n%s", st->data, v) : strdup(v);
        free(st->data);
        st->data = d;
    }
    return true;
}

static size_t
client_event_write_cb(char *data, size_t size, size_t nmemb, void *userdata)
{
    EventStreamState *st = userdata;
    size_t n = size * nmemb;
    long status = 0;
    curl_easy_getinfo(st->c->curl, CURLINFO_RESPONSE_CODE, &status);
    if (status != 200) /* an error body: kept for the caller */
        return client_write_cb(data, size, nmemb, st->ret);
    st->got_data = true;
    for (size_t i = 0; i < n; i++) {
        if (data[i] == '\r')
            continue;
        if (data[i] != '\n') {
            if (st->line_len + 1 < sizeof(st->line))
                st->line[st->line_len++] = data[i];
            else
                st->overlong = true;
            continue;
        }
        st->line[st->line_len] = '\0';
        st->line_len = 0;
        if (!client_event_line(st, st->line)) {
            st->stopped = true;
            return 0; /* ends the transfer */
        }
    }
    return n;
}

static int
client_event_progress_cb(void *userdata, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                         curl_off_t ulnow)
{
    (void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
    EventStreamState *st = userdata;
    if (!st->got_data && st->first_byte_ms &&
        nb_monotonic_ms() - st->start_ms > st->first_byte_ms) {
        st->buffered = true;
        return 1;
    }
    return 0;
}

int
client_events(Client *c, const char *path, uint64_t timeout_s, uint64_t first_byte_ms,
              ClientEventFn fn, void *userdata, ClientResponse *ret, bool *ret_buffered,
              char **ret_error)
{
    struct curl_slist *headers = NULL;
    *ret_error = NULL;
    *ret_buffered = false;
    EventStreamState *st = calloc(1, sizeof(*st));
    if (!st || client_prepare(c, path, ret, &headers) < 0 ||
        client_add_header(&headers, "Accept: text/event-stream") < 0) {
        free(st);
        curl_slist_free_all(headers);
        client_response_clear(ret);
        *ret_error = strdup("out of memory");
        return -1;
    }
    *st = (EventStreamState){.c = c,
                             .ret = ret,
                             .fn = fn,
                             .userdata = userdata,
                             .start_ms = nb_monotonic_ms(),
                             .first_byte_ms = first_byte_ms};
    curl_easy_setopt(c->curl, CURLOPT_HTTPGET, 1L);
    curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, client_event_write_cb);
    curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, st);
    if (timeout_s)
        curl_easy_setopt(c->curl, CURLOPT_TIMEOUT, (long)timeout_s);
    /* The server sends a heartbeat every 15 s: a minute of silence is a dead connection. */
    curl_easy_setopt(c->curl, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(c->curl, CURLOPT_LOW_SPEED_TIME, 60L);
    curl_easy_setopt(c->curl, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c->curl, CURLOPT_XFERINFOFUNCTION, client_event_progress_cb);
    curl_easy_setopt(c->curl, CURLOPT_XFERINFODATA, st);
    int r = client_perform(c, headers, ret, ret_error);
    if (r < 0 && st->stopped) {
        /* Stopped by fn: not a failure. */
        free(*ret_error);
        *ret_error = NULL;
        ret->status = 200;
        ret->body = calloc(1, 1);
        r = ret->body ? 0 : -1;
        if (r < 0)
            *ret_error = strdup("out of memory");
    }
    *ret_buffered = st->buffered;
    free(st->data);
    free(st);
    return r;
}

int
client_query_add(Client *c, char **query, const char *name, const char *value)
{
    _cleanup_free_ char *e = client_escape(c, value);
    char *q = e ? str_printf("%s%c%s=%s", *query, **query ? '&' : '?', name, e) : NULL;
    if (!q)
        return CLI_EXIT_API;
    free(*query);
    *query = q;
    return 0;
}
