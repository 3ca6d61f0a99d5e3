/*
 * Browser consoles: one-time tickets, and the WebSocket that relays a VM's serial console or
 * VNC screen (docs/console.md).
 *
 * POST /v1/vms/{id}/console issues a ticket to a caller who may write to the VM: 32 random
 * bytes, valid for CONSOLE_TICKET_TTL_S, bound to the VM, the console type and the caller (and
 * the token they used). Tickets live in this process only: a restart voids them, which costs a
 * page a new ticket. GET /v1/vms/{id}/console/ws?ticket= needs no bearer token (browsers cannot
 * set headers on a WebSocket): the ticket is the credential, spent by its first presentation,
 * whatever comes of it. Everything is checked before the upgrade, so a refusal is a plain HTTP
 * answer: the Origin (a page of another site must not use a ticket it got hold of), the ticket,
 * then the console itself (the VM runs, its host is up), which is opened before the 101.
 *
 * A session is one thread of ours sleeping in poll() (ws.c); every CONSOLE_CHECK_MS it looks
 * whether the caller's token still holds and the VM still runs where it ran, and ends otherwise.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "../core/console_ops.h"
#include "../model/json_req.h"
#include "../util/log.h"
#include "../util/strutil.h"
#include "api.h"
#include "ws.h"

#define CONSOLE_TICKET_TTL_S 30
#define CONSOLE_TICKETS_MAX 4096
#define CONSOLE_TICKET_BYTES 32
#define CONSOLE_TICKET_LEN 44 /* base64url of 32 bytes, no padding: 43, and the NUL */
#define CONSOLE_CHECK_MS 3000
#define CONSOLE_VNC_CONNECT_MS 5000

typedef enum ConsoleType {
    CONSOLE_SERIAL,
    CONSOLE_VNC,
} ConsoleType;

static const char *
console_type_name(ConsoleType t)
{
    return t == CONSOLE_VNC ? "vnc" : "serial";
}

typedef struct Ticket {
    char ticket[CONSOLE_TICKET_LEN];
    char vm_id[NB_UUID_STRLEN];
    char vm_name[NB_NAME_MAX + 1];
    ConsoleType type;
    char user_id[NB_UUID_STRLEN];
    char *credential; /* the caller's token, looked up again while the session lasts */
    uint64_t expires_ms;
} Ticket;

static pthread_mutex_t tickets_lock = PTHREAD_MUTEX_INITIALIZER;
static Ticket tickets[CONSOLE_TICKETS_MAX];
static size_t n_tickets;
static char *allowed_origins; /* console-allowed-origins, set once at start */

/* Sessions under way: the daemon waits for them to end before it stops the HTTP server and
 * frees the core they use (api_console_shutdown). */
static pthread_mutex_t sessions_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t sessions_cond = PTHREAD_COND_INITIALIZER;
static unsigned n_sessions;
static bool sessions_stopping;

void
api_console_set_allowed_origins(const char *list)
{
    free(allowed_origins);
    allowed_origins = list && *list ? strdup(list) : NULL;
}

static void
ticket_clear(Ticket *t)
{
    if (t->credential) {
        sodium_memzero(t->credential, strlen(t->credential));
        free(t->credential);
    }
    sodium_memzero(t, sizeof(*t));
}

/* Drops expired tickets. Lock held. */
static void
tickets_prune_locked(uint64_t now)
{
    size_t j = 0;
    for (size_t i = 0; i < n_tickets; i++) {
        if (tickets[i].expires_ms > now) {
            if (i != j)
                tickets[j] = tickets[i];
            j++;
        } else {
            ticket_clear(&tickets[i]);
        }
    }
    for (size_t i = j; i < n_tickets; i++)
        memset(&tickets[i], 0, sizeof(tickets[i]));
    n_tickets = j;
}

static void
tickets_add(Ticket *t)
{
    pthread_mutex_lock(&tickets_lock);
    tickets_prune_locked(nb_monotonic_ms());
    if (n_tickets == CONSOLE_TICKETS_MAX) {
        /* Full of live tickets: the oldest goes (it is the next to expire anyway). */
        ticket_clear(&tickets[0]);
        memmove(&tickets[0], &tickets[1], (n_tickets - 1) * sizeof(tickets[0]));
        n_tickets--;
    }
    tickets[n_tickets++] = *t;
    memset(t, 0, sizeof(*t));
    pthread_mutex_unlock(&tickets_lock);
}

/* Takes the ticket out (one-time): true and *ret (to ticket_clear) when it was live. */
static bool
tickets_take(const char *value, Ticket *ret)
{
    bool found = false;
    if (strlen(value) != CONSOLE_TICKET_LEN - 1)
        return false;
    pthread_mutex_lock(&tickets_lock);
    tickets_prune_locked(nb_monotonic_ms());
    for (size_t i = 0; i < n_tickets; i++) {
        if (sodium_memcmp(tickets[i].ticket, value, CONSOLE_TICKET_LEN - 1) == 0) {
            *ret = tickets[i];
            memmove(&tickets[i], &tickets[i + 1], (n_tickets - i - 1) * sizeof(tickets[0]));
            n_tickets--;
            memset(&tickets[n_tickets], 0, sizeof(tickets[0]));
            found = true;
            break;
        }
    }
    pthread_mutex_unlock(&tickets_lock);
    return found;
}

static bool
vm_console_state_ok(VmState s)
{
    return s == VM_STATE_RUNNING || s == VM_STATE_PAUSED;
}

/* POST /v1/vms/{id}/console {"type": "serial"|"vnc"} */
void
api_console_ticket(HttpRequest *r, void *ctx)
{
    Core *core = ctx;
    _cleanup_error_ NbError *err = NULL;
    static const char *const fields[] = {"type", NULL};
    json_t *body = http_request_json(r);
    char type_s[16];
    if (json_req_check_fields(body, fields, &err) < 0 ||
        json_req_string(body, "type", 1, type_s, sizeof(type_s), &err) < 0)
        return http_reply_nb_error(r, err);
    ConsoleType type;
    if (streq(type_s, "serial"))
        type = CONSOLE_SERIAL;
    else if (streq(type_s, "vnc"))
        type = CONSOLE_VNC;
    else
        return http_reply_error(r, NB_ERR_INVALID_REQUEST, "type must be serial or vnc");

    const Principal *who = http_request_principal(r);
    const char *credential = http_request_credential(r);
    if (!credential)
        return http_reply_error(r, NB_ERR_UNAUTHORIZED, "missing or invalid credential");
    Vm vm;
    if (vm_store_get(core->store, api_lookup_scope(r, http_request_param(r, 0)),
                     http_request_param(r, 0), &vm, &err) < 0)
        return http_reply_nb_error(r, err);
    if (!vm_console_state_ok(vm.state)) {
        http_reply_error(r, NB_ERR_VM_NOT_RUNNING, "the VM is %s: consoles need it running",
                         vm_state_to_string(vm.state));
        vm_clear(&vm);
        return;
    }
    /* VNC: the password goes to the caller with the ticket (noVNC answers the server's
     * challenge itself); asking for it now also tells a VM without a screen at once. */
    ConsoleVncTarget vnc = {0};
    if (type == CONSOLE_VNC && console_ops_vnc_target(core, &vm, &vnc, &err) < 0) {
        vm_clear(&vm);
        return http_reply_nb_error(r, err);
    }

    Ticket t = {0};
    unsigned char raw[CONSOLE_TICKET_BYTES];
    randombytes_buf(raw, sizeof(raw));
    sodium_bin2base64(t.ticket, sizeof(t.ticket), raw, sizeof(raw),
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    sodium_memzero(raw, sizeof(raw));
    memcpy(t.vm_id, vm.id, sizeof(t.vm_id));
    snprintf(t.vm_name, sizeof(t.vm_name), "%s", vm.name);
    memcpy(t.user_id, who->user_id, sizeof(t.user_id));
    t.type = type;
    t.expires_ms = nb_monotonic_ms() + CONSOLE_TICKET_TTL_S * 1000;
    t.credential = strdup(credential);
    char expires[NB_TIMESTAMP_LEN];
    nb_timestamp_format(nb_epoch_now() + CONSOLE_TICKET_TTL_S, expires);
    _cleanup_free_ char *url = str_printf("/v1/vms/%s/console/ws?ticket=%s", vm.id, t.ticket);
    json_t *out = url && t.credential ? json_pack("{s:s, s:s, s:s, s:s, s:s}", "ticket", t.ticket,
                                                  "type", console_type_name(type), "vm", vm.id,
                                                  "expires_at", expires, "url", url)
                                      : NULL;
    vm_clear(&vm);
    if (out && type == CONSOLE_VNC)
        json_object_set_new(out, "password", json_string(vnc.password));
    sodium_memzero(&vnc, sizeof(vnc));
    if (!out) {
        ticket_clear(&t);
        return http_reply_error(r, NB_ERR_INTERNAL, "out of memory");
    }
    tickets_add(&t);
    http_reply_json(r, 201, out);
    http_reply_add_header(r, "Cache-Control", "no-store");
}

/* ---- the WebSocket ---- */

/* The Origin is absent (not a browser), the console's own (web-origin, or else scheme://Host:
 * api_web_origin_ok), or listed in console-allowed-origins. */
static bool
origin_allowed(HttpRequest *r)
{
    const char *origin = http_request_header(r, "Origin");
    if (!origin || api_web_origin_ok(r))
        return true;
    for (const char *p = allowed_origins; p && *p;) {
        while (*p == ' ' || *p == ',' || *p == '\t')
            p++;
        size_t n = strcspn(p, ", \t");
        if (n && strlen(origin) == n && strncasecmp(p, origin, n) == 0)
            return true;
        p += n;
    }
    return false;
}

/* The value of the session cookie in the request's Cookie header, copied into out ("" when
 * absent). */
static void
session_cookie(HttpRequest *r, char *out, size_t len)
{
    static const char name[] = API_WEB_SESSION_COOKIE "=";
    out[0] = '\0';
    const char *h = http_request_header(r, "Cookie");
    for (const char *p = h; p && *p;) {
        while (*p == ' ' || *p == ';')
            p++;
        size_t n = strcspn(p, ";");
        if (n > sizeof(name) - 1 && strncmp(p, name, sizeof(name) - 1) == 0) {
            size_t v = n - (sizeof(name) - 1);
            if (v < len) {
                memcpy(out, p + sizeof(name) - 1, v);
                out[v] = '\0';
            }
            return;
        }
        p += n;
    }
}

/* A browser sends its session cookie with the WebSocket (same site): when the request carries
 * a credential of another user than the ticket's, the ticket was not given to this caller (a
 * tenant who got hold of another's ticket). No credential, or one that is not valid: the ticket
 * alone decides. */
static bool
presenter_matches(HttpRequest *r, Core *core, const Ticket *t)
{
    char cookie[300];
    session_cookie(r, cookie, sizeof(cookie));
    const char *h = http_request_header(r, "Authorization");
    const char *bearer = NULL;
    if (h && strncasecmp(h, "Bearer ", 7) == 0)
        for (bearer = h + 7; *bearer == ' '; bearer++)
            ;
    const char *creds[] = {cookie[0] ? cookie : NULL, bearer};
    bool ok = true;
    for (size_t i = 0; i < 2 && ok; i++) {
        if (!creds[i] || !*creds[i])
            continue;
        Principal *p = auth_authenticate(creds[i], core);
        ok = !p || streq(p->user_id, t->user_id);
        auth_principal_free(p);
    }
    sodium_memzero(cookie, sizeof(cookie));
    return ok;
}

typedef struct ConsoleSession {
    Core *core;
    Ticket t;
    char host[NB_NAME_MAX + 1]; /* the VM's host when it opened */
    ConsoleStream *serial;
    int vnc_fd;
    bool text;
    char *extra;
    size_t extra_len;
    HttpUpgrade *up;
    int fd;
} ConsoleSession;

static void
console_session_free(void *cls)
{
    ConsoleSession *s = cls;
    if (!s)
        return;
    console_stream_close(s->serial);
    if (s->vnc_fd >= 0)
        close(s->vnc_fd);
    ticket_clear(&s->t);
    free(s->extra);
    free(s);
}

static bool
session_still_allowed(void *be)
{
    ConsoleSession *s = be;
    pthread_mutex_lock(&sessions_lock);
    bool stopping = sessions_stopping;
    pthread_mutex_unlock(&sessions_lock);
    if (stopping)
        return false;
    Principal *p = auth_authenticate(s->t.credential, s->core);
    bool ok = p && streq(p->user_id, s->t.user_id);
    auth_principal_free(p);
    if (!ok)
        return false;
    Vm vm;
    _cleanup_error_ NbError *err = NULL;
    if (vm_store_get(s->core->store, NULL, s->t.vm_id, &vm, &err) < 0)
        return false; /* deleted (or the store is away: end rather than guess) */
    ok = vm_console_state_ok(vm.state) && streq(vm.host, s->host);
    vm_clear(&vm);
    return ok;
}

static ssize_t
serial_read(void *be, char *buf, size_t len)
{
    return console_stream_read(((ConsoleSession *)be)->serial, buf, len);
}

static ssize_t
serial_write(void *be, const char *buf, size_t len)
{
    return console_stream_write(((ConsoleSession *)be)->serial, buf, len);
}

static ssize_t
vnc_read(void *be, char *buf, size_t len)
{
    ssize_t n = recv(((ConsoleSession *)be)->vnc_fd, buf, len, 0);
    if (n < 0)
        return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? -EAGAIN : -EIO;
    return n;
}

static ssize_t
vnc_write(void *be, const char *buf, size_t len)
{
    ssize_t n = send(((ConsoleSession *)be)->vnc_fd, buf, len, MSG_NOSIGNAL);
    if (n < 0)
        return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? -EAGAIN : -EIO;
    return n;
}

static void *
console_session_thread(void *arg)
{
    ConsoleSession *s = arg;
    WsBackend be = {
        .still_allowed = session_still_allowed,
        .be = s,
    };
    if (s->serial) {
        be.fd = console_stream_fd(s->serial);
        be.read = serial_read;
        be.write = serial_write;
    } else {
        be.fd = s->vnc_fd;
        be.fd_out_too = true;
        be.read = vnc_read;
        be.write = vnc_write;
    }
    WsRelayOptions o = {.text = s->text, .check_ms = CONSOLE_CHECK_MS};
    log_info("console: %s session of VM %s for user %s opened", console_type_name(s->t.type),
             s->t.vm_id, s->t.user_id);
    ws_relay(s->fd, s->extra, s->extra_len, &be, &o);
    log_info("console: %s session of VM %s for user %s closed", console_type_name(s->t.type),
             s->t.vm_id, s->t.user_id);
    HttpUpgrade *up = s->up;
    console_session_free(s);
    http_upgrade_close(up);
    pthread_mutex_lock(&sessions_lock);
    n_sessions--;
    pthread_cond_broadcast(&sessions_cond);
    pthread_mutex_unlock(&sessions_lock);
    return NULL;
}

/* On the connection's thread, once the 101 is out: the session gets its own thread. */
static void
console_session_start(void *cls, int fd, const char *extra_in, size_t extra_len, HttpUpgrade *up)
{
    ConsoleSession *s = cls;
    s->fd = fd;
    s->up = up;
    if (extra_len) {
        s->extra = malloc(extra_len);
        if (s->extra) {
            memcpy(s->extra, extra_in, extra_len);
            s->extra_len = extra_len;
        }
    }
    pthread_t th;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_mutex_lock(&sessions_lock);
    int rc = 0;
    if (sessions_stopping)
        rc = ESHUTDOWN;
    else if (extra_len && !s->extra)
        rc = ENOMEM;
    else
        rc = pthread_create(&th, &attr, console_session_thread, s);
    if (rc == 0)
        n_sessions++;
    pthread_mutex_unlock(&sessions_lock);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
        log_warn("console: cannot start a session: %s", strerror(rc));
        console_session_free(s);
        http_upgrade_close(up);
    }
}

/* A TCP connection to host:port within CONSOLE_VNC_CONNECT_MS; -1 with *err. */
static int
vnc_connect(const char *host, unsigned port, NbError **err)
{
    char service[8];
    snprintf(service, sizeof(service), "%u", port);
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_family = AF_UNSPEC};
    struct addrinfo *ai = NULL;
    int g = getaddrinfo(host, service, &hints, &ai);
    if (g != 0) {
        nb_error_set(err, NB_ERR_HOST_DOWN, "cannot resolve the host %s: %s", host,
                     gai_strerror(g));
        return -1;
    }
    int fd = -1;
    for (struct addrinfo *a = ai; a && fd < 0; a = a->ai_next) {
        fd = socket(a->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
            continue;
        const int one = 1;
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        if (connect(fd, a->ai_addr, a->ai_addrlen) == 0)
            break;
        if (errno == EINPROGRESS) {
            struct pollfd p = {.fd = fd, .events = POLLOUT};
            int soerr = 0;
            socklen_t sl = sizeof(soerr);
            if (poll(&p, 1, CONSOLE_VNC_CONNECT_MS) == 1 &&
                getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == 0 && soerr == 0)
                break;
        }
        close(fd);
        fd = -1;
    }
    freeaddrinfo(ai);
    if (fd < 0)
        nb_error_set(err, NB_ERR_CONSOLE_UNAVAILABLE, "cannot reach the VM's VNC server");
    return fd;
}

/* GET /v1/vms/{id}/console/ws?ticket=T[&type=serial|vnc] */
void
api_console_ws(HttpRequest *r, void *ctx)
{
    Core *core = ctx;
    _cleanup_error_ NbError *err = NULL;
    const char *value = http_request_query(r, "ticket");
    /* Spent by its first presentation, whatever follows. */
    Ticket t = {0};
    bool have = value && tickets_take(value, &t);
    if (!origin_allowed(r)) {
        ticket_clear(&t);
        return http_reply_error(r, NB_ERR_CONSOLE_ORIGIN_FORBIDDEN,
                                "WebSocket from another origin (console-allowed-origins)");
    }
    const char *id = http_request_param(r, 0);
    const char *type = http_request_query(r, "type");
    if (!have || !(streq(id, t.vm_id) || streq(id, t.vm_name)) ||
        (type && !streq(type, console_type_name(t.type))) || !presenter_matches(r, core, &t)) {
        ticket_clear(&t);
        return http_reply_error(r, NB_ERR_CONSOLE_TICKET_INVALID,
                                "no valid console ticket for this VM (they are one-time and "
                                "last %d seconds)",
                                CONSOLE_TICKET_TTL_S);
    }
    char accept[WS_ACCEPT_LEN];
    if (!ws_handshake_check(r, accept)) {
        ticket_clear(&t);
        return http_reply_error(r, NB_ERR_WEBSOCKET_REQUIRED, "not a WebSocket handshake");
    }
    static const char *const serial_protocols[] = {"binary", "text", NULL};
    static const char *const vnc_protocols[] = {"binary", NULL};
    const char *protocol =
        ws_pick_protocol(r, t.type == CONSOLE_VNC ? vnc_protocols : serial_protocols);

    ConsoleSession *s = calloc(1, sizeof(*s));
    if (!s) {
        ticket_clear(&t);
        return http_reply_error(r, NB_ERR_INTERNAL, "out of memory");
    }
    s->core = core;
    s->t = t;
    s->vnc_fd = -1;
    s->text = protocol && streq(protocol, "text");
    Vm vm;
    if (vm_store_get(core->store, NULL, t.vm_id, &vm, &err) < 0) {
        console_session_free(s);
        return http_reply_nb_error(r, err);
    }
    snprintf(s->host, sizeof(s->host), "%s", vm.host);
    int rc = 0;
    if (!vm_console_state_ok(vm.state)) {
        rc =
            nb_error_set(&err, NB_ERR_VM_NOT_RUNNING, "the VM is %s", vm_state_to_string(vm.state));
    } else if (t.type == CONSOLE_SERIAL) {
        rc = console_ops_serial_open(core, &vm, &s->serial, &err);
    } else {
        ConsoleVncTarget vnc;
        rc = console_ops_vnc_target(core, &vm, &vnc, &err);
        if (rc == 0) {
            s->vnc_fd = vnc_connect(vnc.host, vnc.port, &err);
            rc = s->vnc_fd < 0 ? -1 : 0;
        }
        sodium_memzero(&vnc, sizeof(vnc));
    }
    vm_clear(&vm);
    if (rc < 0) {
        log_info("console: %s console of VM %s not opened: %s", console_type_name(t.type), t.vm_id,
                 err ? err->message : "unknown error");
        console_session_free(s);
        return http_reply_nb_error(r, err);
    }
    http_reply_upgrade(r, "websocket", console_session_start, s, console_session_free);
    http_reply_add_header(r, "Sec-WebSocket-Accept", accept);
    if (protocol)
        http_reply_add_header(r, "Sec-WebSocket-Protocol", protocol);
}

void
api_console_shutdown(void)
{
    pthread_mutex_lock(&sessions_lock);
    sessions_stopping = true;
    /* Each session looks every CONSOLE_CHECK_MS, then closes within ws.c's grace period. */
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 8;
    while (n_sessions > 0 &&
           pthread_cond_timedwait(&sessions_cond, &sessions_lock, &until) != ETIMEDOUT)
        ;
    if (n_sessions > 0)
        log_warn("console: %u session(s) still open at shutdown", n_sessions);
    pthread_mutex_unlock(&sessions_lock);
}
