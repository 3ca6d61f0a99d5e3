/*
 * WebSockets on libwslay (framing, masking, fragments, control frames: wslay's event API) over
 * a non-blocking socket. The relay is one thread per session that sleeps in poll() on the
 * client's socket and the backend's fd; nothing runs while a console is idle but the periodic
 * permission check and a ping every WS_PING_MS (idle connections through reverse proxies).
 *
 * Flow control: while more than WS_QUEUE_MAX bytes wait to go to the client, the backend is not
 * read; while more than WS_PENDING_MAX bytes wait to go to the backend, the client is not read.
 */
#include "ws.h"

#include <errno.h>
#include <fcntl.h>
#include <gnutls/crypto.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sodium.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <wslay/wslay.h>

#include "../util/log.h"
#include "../util/strutil.h"
#include "../util/timeutil.h"

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define WS_QUEUE_MAX (1024 * 1024)
#define WS_PENDING_MAX (1024 * 1024)
#define WS_MSG_MAX (1024 * 1024)
#define WS_READ_CHUNK 16384
#define WS_PING_MS 30000
#define WS_CLOSE_GRACE_MS 2000

/* ---- handshake ---- */

/* Whether the comma-separated header value holds token (case-insensitive). */
static bool
header_has_token(const char *value, const char *token)
{
    size_t tl = strlen(token);
    for (const char *p = value; p && *p;) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        size_t n = strcspn(p, ",");
        size_t m = n;
        while (m > 0 && (p[m - 1] == ' ' || p[m - 1] == '\t'))
            m--;
        if (m == tl && strncasecmp(p, token, tl) == 0)
            return true;
        p += n;
    }
    return false;
}

bool
ws_handshake_check(HttpRequest *r, char accept[WS_ACCEPT_LEN])
{
    const char *upgrade = http_request_header(r, "Upgrade");
    const char *connection = http_request_header(r, "Connection");
    const char *version = http_request_header(r, "Sec-WebSocket-Version");
    const char *key = http_request_header(r, "Sec-WebSocket-Key");
    if (!streq(http_request_method(r), "GET") || !upgrade ||
        !header_has_token(upgrade, "websocket") || !connection ||
        !header_has_token(connection, "upgrade") || !version || !streq(version, "13") || !key)
        return false;
    unsigned char raw[32];
    size_t raw_len = 0;
    if (sodium_base642bin(raw, sizeof(raw), key, strlen(key), NULL, &raw_len, NULL,
                          sodium_base64_VARIANT_ORIGINAL) != 0 ||
        raw_len != 16)
        return false;
    _cleanup_free_ char *cat = str_printf("%s%s", key, WS_GUID);
    unsigned char sha[20];
    if (!cat || gnutls_hash_fast(GNUTLS_DIG_SHA1, cat, strlen(cat), sha) < 0)
        return false;
    sodium_bin2base64(accept, WS_ACCEPT_LEN, sha, sizeof(sha), sodium_base64_VARIANT_ORIGINAL);
    return true;
}

const char *
ws_pick_protocol(HttpRequest *r, const char *const *supported)
{
    const char *offered = http_request_header(r, "Sec-WebSocket-Protocol");
    if (!offered)
        return NULL;
    /* The client's order is its preference. */
    for (const char *p = offered; *p;) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        size_t n = strcspn(p, ", \t");
        for (size_t i = 0; n && supported[i]; i++)
            if (strlen(supported[i]) == n && strncmp(p, supported[i], n) == 0)
                return supported[i];
        p += n;
    }
    return NULL;
}

/* ---- relay ---- */

typedef struct WsSession {
    int fd;
    const char *extra;
    size_t extra_len;
    const WsBackend *be;
    bool text;
    bool peer_gone; /* the client's socket ended or failed */
    char *pending;  /* for the backend */
    size_t pending_len, pending_cap;
    bool overflow;
} WsSession;

static ssize_t
ws_recv_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags, void *user)
{
    (void)flags;
    WsSession *s = user;
    if (s->extra_len) {
        size_t n = s->extra_len < len ? s->extra_len : len;
        memcpy(buf, s->extra, n);
        s->extra += n;
        s->extra_len -= n;
        return (ssize_t)n;
    }
    for (;;) {
        ssize_t n = recv(s->fd, buf, len, 0);
        if (n > 0)
            return n;
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        } else {
            s->peer_gone = true;
            wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
        }
        return -1;
    }
}

static ssize_t
ws_send_cb(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags, void *user)
{
    (void)flags;
    WsSession *s = user;
    for (;;) {
        ssize_t n = send(s->fd, data, len, MSG_NOSIGNAL);
        if (n >= 0)
            return n;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        } else {
            s->peer_gone = true;
            wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
        }
        return -1;
    }
}

static void
ws_msg_cb(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *arg, void *user)
{
    (void)ctx;
    WsSession *s = user;
    if (arg->opcode != WSLAY_TEXT_FRAME && arg->opcode != WSLAY_BINARY_FRAME)
        return; /* wslay answers pings and closes itself */
    if (s->pending_len + arg->msg_length > s->pending_cap) {
        size_t cap = s->pending_cap ? s->pending_cap : 4096;
        while (cap < s->pending_len + arg->msg_length)
            cap *= 2;
        char *p = realloc(s->pending, cap);
        if (!p) {
            s->overflow = true;
            return;
        }
        s->pending = p;
        s->pending_cap = cap;
    }
    memcpy(s->pending + s->pending_len, arg->msg, arg->msg_length);
    s->pending_len += arg->msg_length;
}

/* Guest output as text: bytes that are not valid UTF-8 (also a sequence cut at the chunk's
 * end) become '?', as a text frame must be valid UTF-8. */
static void
ws_make_utf8(char *buf, size_t len)
{
    unsigned char *b = (unsigned char *)buf;
    for (size_t i = 0; i < len;) {
        unsigned char c = b[i];
        size_t n = c < 0x80                   ? 1
                   : (c >= 0xc2 && c <= 0xdf) ? 2
                   : (c >= 0xe0 && c <= 0xef) ? 3
                   : (c >= 0xf0 && c <= 0xf4) ? 4
                                              : 0;
        bool ok = n > 0 && i + n <= len;
        for (size_t k = 1; ok && k < n; k++)
            ok = (b[i + k] & 0xc0) == 0x80;
        /* overlong 3-byte forms, surrogates, and code points past U+10FFFF */
        if (ok && n == 3 && ((c == 0xe0 && b[i + 1] < 0xa0) || (c == 0xed && b[i + 1] >= 0xa0)))
            ok = false;
        if (ok && n == 4 && ((c == 0xf0 && b[i + 1] < 0x90) || (c == 0xf4 && b[i + 1] >= 0x90)))
            ok = false;
        if (!ok) {
            b[i++] = '?';
            continue;
        }
        i += n;
    }
}

static void
ws_queue(wslay_event_context_ptr ctx, bool text, const char *buf, size_t len)
{
    struct wslay_event_msg m = {.opcode = text ? WSLAY_TEXT_FRAME : WSLAY_BINARY_FRAME,
                                .msg = (const uint8_t *)buf,
                                .msg_length = len};
    wslay_event_queue_msg(ctx, &m);
}

static void
ws_close(wslay_event_context_ptr ctx, uint16_t code, const char *reason)
{
    if (!wslay_event_get_close_sent(ctx))
        wslay_event_queue_close(ctx, code, (const uint8_t *)reason, strlen(reason));
}

void
ws_relay(int fd, const char *extra, size_t extra_len, const WsBackend *be, const WsRelayOptions *o)
{
    WsSession s = {.fd = fd, .extra = extra, .extra_len = extra_len, .be = be, .text = o->text};
    struct wslay_event_callbacks cb = {.recv_callback = ws_recv_cb,
                                       .send_callback = ws_send_cb,
                                       .on_msg_recv_callback = ws_msg_cb};
    wslay_event_context_ptr ctx = NULL;
    /* Keystrokes are small frames: Nagle's algorithm with the peer's delayed ACKs would hold
     * each echo back ~40 ms. Over HTTPS fd is a socketpair, where this fails harmlessly. */
    const int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 ||
        wslay_event_context_server_init(&ctx, &cb, &s) != 0) {
        log_warn("console: cannot set the WebSocket up");
        return;
    }
    wslay_event_config_set_max_recv_msg_length(ctx, WS_MSG_MAX);

    char buf[WS_READ_CHUNK];
    bool be_ended = false;
    bool be_readable = true; /* try once: data may be there before the first signal */
    uint64_t now = nb_monotonic_ms();
    uint64_t next_check = now + o->check_ms, next_ping = now + WS_PING_MS, close_deadline = 0;

    for (;;) {
        now = nb_monotonic_ms();
        if (s.peer_gone || s.overflow)
            break;
        /* Backend to client. */
        while (!be_ended && be_readable && wslay_event_get_queued_msg_length(ctx) < WS_QUEUE_MAX) {
            ssize_t n = be->read(be->be, buf, sizeof(buf));
            if (n > 0) {
                if (s.text)
                    ws_make_utf8(buf, (size_t)n);
                ws_queue(ctx, s.text, buf, (size_t)n);
            } else if (n == -EAGAIN) {
                be_readable = false;
            } else {
                be_ended = true;
                ws_close(ctx, 1000, n == 0 ? "console ended" : "console failed");
            }
        }
        /* Client to backend. */
        if (!be_ended && s.pending_len) {
            ssize_t n = be->write(be->be, s.pending, s.pending_len);
            if (n > 0) {
                memmove(s.pending, s.pending + n, s.pending_len - (size_t)n);
                s.pending_len -= (size_t)n;
            } else if (n != -EAGAIN) {
                be_ended = true;
                ws_close(ctx, 1011, "console failed");
            }
        }
        if (!be_ended && now >= next_check) {
            next_check = now + o->check_ms;
            if (!be->still_allowed(be->be)) {
                be_ended = true;
                ws_close(ctx, 1008, "session ended");
            }
        }
        if (now >= next_ping) {
            next_ping = now + WS_PING_MS;
            struct wslay_event_msg ping = {.opcode = WSLAY_PING};
            wslay_event_queue_msg(ctx, &ping);
        }
        if (wslay_event_want_write(ctx) && wslay_event_send(ctx) != 0)
            break;
        if (wslay_event_get_close_received(ctx) && !be_ended) {
            be_ended = true; /* the client closed: wslay has queued its answer */
        }
        if (be_ended && !close_deadline)
            close_deadline = now + WS_CLOSE_GRACE_MS;
        if (!wslay_event_want_read(ctx) && !wslay_event_want_write(ctx))
            break;
        if (close_deadline && now >= close_deadline)
            break;
        if (be_ended && wslay_event_get_close_sent(ctx) && !wslay_event_want_write(ctx) &&
            wslay_event_get_close_received(ctx))
            break;

        /* Sleep until something can move. */
        struct pollfd p[2] = {{.fd = fd}, {.fd = be->fd}};
        if (wslay_event_want_read(ctx) && s.pending_len < WS_PENDING_MAX)
            p[0].events |= POLLIN;
        if (wslay_event_want_write(ctx))
            p[0].events |= POLLOUT;
        nfds_t np = 1;
        if (!be_ended) {
            if (wslay_event_get_queued_msg_length(ctx) < WS_QUEUE_MAX)
                p[1].events |= POLLIN;
            if (be->fd_out_too && s.pending_len)
                p[1].events |= POLLOUT;
            np = 2;
        }
        uint64_t wake = next_check < next_ping ? next_check : next_ping;
        if (close_deadline && close_deadline < wake)
            wake = close_deadline;
        now = nb_monotonic_ms();
        int timeout = wake > now ? (int)(wake - now) : 0;
        if (s.extra_len)
            timeout = 0;
        int pr = poll(p, np, timeout);
        if (pr < 0 && errno != EINTR)
            break;
        if (pr <= 0 && !s.extra_len)
            continue;
        if (p[0].revents & (POLLIN | POLLHUP | POLLERR) || s.extra_len) {
            if (wslay_event_recv(ctx) != 0)
                break;
        }
        if (np == 2 && (p[1].revents & (POLLIN | POLLHUP | POLLERR)))
            be_readable = true;
        /* POLLOUT on the backend: the write is tried at the top of the loop. */
    }
    wslay_event_context_free(ctx);
    free(s.pending);
}
