/* WebSockets (RFC 6455) on libwslay: the opening handshake's checks and a relay loop between a
 * client's upgraded socket and a backend (a console stream, a TCP socket). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "http.h"

#define WS_ACCEPT_LEN 29 /* base64 of a SHA-1, with its NUL */

/* True when the request is a version 13 WebSocket opening handshake (Upgrade: websocket,
 * Connection: upgrade, a 16-byte Sec-WebSocket-Key); fills the Sec-WebSocket-Accept value. */
bool ws_handshake_check(HttpRequest *r, char accept[WS_ACCEPT_LEN]);
/* The first of the client's Sec-WebSocket-Protocol offers found in supported (NULL-terminated),
 * or NULL. */
const char *ws_pick_protocol(HttpRequest *r, const char *const *supported);

/* The backend: its fd is polled for POLLIN, plus POLLOUT when fd_out_too and there is data for
 * it. read/write are non-blocking: bytes (> 0), 0 at the end (read), -EAGAIN, else failure. */
typedef struct WsBackend {
    int fd;
    bool fd_out_too;
    ssize_t (*read)(void *be, char *buf, size_t len);
    ssize_t (*write)(void *be, const char *buf, size_t len);
    /* Asked every check_ms: false ends the session (close code 1008). */
    bool (*still_allowed)(void *be);
    void *be;
} WsBackend;

typedef struct WsRelayOptions {
    bool text; /* to the client as text frames (invalid UTF-8 becomes '?'), else binary */
    unsigned check_ms;
} WsRelayOptions;

/* Relays until either side ends (the other is then closed too) or still_allowed says no. fd is
 * the client's socket (made non-blocking); extra the bytes already read from it. Blocks the
 * calling thread, sleeping in poll() while nothing happens. */
void ws_relay(int fd, const char *extra, size_t extra_len, const WsBackend *backend,
              const WsRelayOptions *o);
