/*
 * The web console's side of the daemon: its static files, served at "/" from the web root
 * (web-root; the source tree's web/ for a daemon run from its build directory), and the checks
 * that make a cookie session safe.
 *
 * Static files: GET and HEAD only; no directory listing; paths that are not under the API and
 * name no file are 404 (the console routes with "#/...", so no path needs the index as a
 * fallback, and a missing script is a clear 404 rather than HTML a browser refuses as script).
 * The path is decoded one segment at a time and each segment opened with openat(O_NOFOLLOW)
 * under the root's descriptor: "." and "..", encoded or not, an encoded '/', '\' or NUL are
 * refused before any file is looked at, and a symbolic link is never followed, so nothing
 * outside the root can be reached. Dot files (".git", ".npmrc") are not served.
 *
 * Sessions: the cookie is sent by the browser on requests other sites make too (SameSite=Strict
 * stops that in current browsers; these checks do not rely on it). So a cookie caller changing
 * anything must show the session's CSRF value in X-Nimbus-CSRF, which only pages of this origin
 * can have read (from the session answer or whoami), and an Origin header, when sent, must be
 * the console's own origin. The CSRF value is a hash of the session token: nothing to store, it
 * dies with the token, and it does not reveal the token.
 */
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../util/cleanup.h"
#include "../util/log.h"
#include "../util/strutil.h"
#include "api.h"

#define WEB_MAX_SEGMENTS 16
#define WEB_HOST_MAX 255

static char *web_root;
static char *web_origin;

int
api_web_configure(const char *root, const char *origin)
{
    free(web_root);
    free(web_origin);
    web_root = root ? strdup(root) : NULL;
    web_origin = origin ? strdup(origin) : NULL;
    if ((root && !web_root) || (origin && !web_origin))
        return -ENOMEM;
    /* An origin is compared as the browser sends it: no trailing slash. */
    size_t n = web_origin ? strlen(web_origin) : 0;
    while (n > 0 && web_origin[n - 1] == '/')
        web_origin[--n] = '\0';
    return 0;
}

/* ---- the checks for cookie sessions ---- */

void
api_web_csrf_value(const char *token, char out[API_WEB_CSRF_LEN])
{
    static const char domain[] = "nimbus-csrf-v1:";
    unsigned char h[crypto_hash_sha256_BYTES];
    crypto_hash_sha256_state st;
    crypto_hash_sha256_init(&st);
    crypto_hash_sha256_update(&st, (const unsigned char *)domain, sizeof(domain) - 1);
    crypto_hash_sha256_update(&st, (const unsigned char *)token, strlen(token));
    crypto_hash_sha256_final(&st, h);
    sodium_bin2hex(out, API_WEB_CSRF_LEN, h, sizeof(h));
}

/* A Host header fit to be repeated in an origin and a header: a name or address and a port. */
static bool
host_is_plain(const char *host)
{
    size_t n = host ? strlen(host) : 0;
    if (n == 0 || n > WEB_HOST_MAX)
        return false;
    return strspn(host, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-:[]") == n;
}

bool
api_web_origin_ok(HttpRequest *r)
{
    const char *origin = http_request_header(r, "Origin");
    if (!origin)
        return true; /* not a browser, or a same-origin GET: nothing to compare */
    if (web_origin)
        return streq(origin, web_origin);
    /* Without a configured origin, the daemon's own is the one the browser asked for: its Host
     * header, with the scheme the daemon speaks. */
    const char *host = http_request_header(r, "Host");
    if (!host_is_plain(host))
        return false;
    const char *scheme = http_request_is_tls(r) ? "https://" : "http://";
    return str_startswith(origin, scheme) && strcasecmp(origin + strlen(scheme), host) == 0;
}

bool
api_web_cookie_secure(HttpRequest *r)
{
    return http_request_is_tls(r) || (web_origin && str_startswith(web_origin, "https://"));
}

bool
api_web_csrf_check(HttpRequest *r)
{
    const char *method = http_request_method(r);
    if (!http_request_cookie_auth(r) || streq(method, "GET") || streq(method, "HEAD"))
        return true;
    const char *sent = http_request_header(r, API_WEB_CSRF_HEADER);
    char want[API_WEB_CSRF_LEN];
    api_web_csrf_value(http_request_credential(r), want);
    bool ok = sent && strlen(sent) == API_WEB_CSRF_LEN - 1 &&
              sodium_memcmp(sent, want, API_WEB_CSRF_LEN - 1) == 0;
    sodium_memzero(want, sizeof(want));
    if (!ok) {
        http_reply_error(r, NB_ERR_CSRF_REJECTED,
                         "a session cookie needs the " API_WEB_CSRF_HEADER " header for %s",
                         method);
        return false;
    }
    if (!api_web_origin_ok(r)) {
        http_reply_error(r, NB_ERR_CSRF_REJECTED, "request from a foreign origin");
        return false;
    }
    return true;
}

/* ---- static files ---- */

static const struct {
    const char *ext;
    const char *type;
} web_types[] = {
    {".html", "text/html; charset=utf-8"},
    {".js", "text/javascript; charset=utf-8"},
    {".mjs", "text/javascript; charset=utf-8"},
    {".css", "text/css; charset=utf-8"},
    {".json", "application/json"},
    {".map", "application/json"},
    {".svg", "image/svg+xml"},
    {".png", "image/png"},
    {".ico", "image/x-icon"},
    {".woff2", "font/woff2"},
    {".txt", "text/plain; charset=utf-8"},
};

static const char *
web_content_type(const char *name)
{
    const char *dot = strrchr(name, '.');
    for (size_t i = 0; dot && i < ELEMENTSOF(web_types); i++)
        if (strcasecmp(dot, web_types[i].ext) == 0)
            return web_types[i].type;
    return "application/octet-stream";
}

/* Headers on every answer from the web root, HTML or not (an error answer may be shown too). */
static void
web_add_security_headers(HttpRequest *r)
{
    const char *host = http_request_header(r, "Host");
    char ws[2 * WEB_HOST_MAX + 32] = "";
    /* 'self' covers ws: and wss: to the same host only in CSP level 3 browsers. */
    if (host_is_plain(host))
        snprintf(ws, sizeof(ws), " ws://%s wss://%s", host, host);
    /* Scripts only from files here, never inline: an injected string cannot run. Styles may be
     * inline: xterm.js and noVNC size and colour their elements with style attributes and
     * <style> elements, and a style cannot run code. */
    _cleanup_free_ char *csp =
        str_printf("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
                   "img-src 'self' data: blob:; font-src 'self'; connect-src 'self'%s; "
                   "object-src 'none'; base-uri 'none'; form-action 'self'; "
                   "frame-ancestors 'none'",
                   ws);
    if (csp)
        http_reply_add_header(r, "Content-Security-Policy", csp);
    http_reply_add_header(r, "X-Content-Type-Options", "nosniff");
    http_reply_add_header(r, "Referrer-Policy", "same-origin");
    http_reply_add_header(r, "X-Frame-Options", "DENY");
}

static void
web_error(HttpRequest *r, const char *code, const char *message)
{
    http_reply_error(r, code, "%s", message);
    web_add_security_headers(r);
}

/* Decodes one path segment into out; false when it is malformed or may not be served: a bad
 * escape, an encoded '/', '\' or NUL, a control character, "." or ".." (encoded or not). */
static bool
web_segment_decode(const char *s, size_t len, char *out, size_t out_size)
{
    size_t j = 0;
    for (size_t i = 0; i < len; i++) {
        int c = (unsigned char)s[i];
        if (c == '%') {
            if (i + 2 >= len)
                return false;
            char hex[3] = {s[i + 1], s[i + 2], '\0'};
            char *end;
            long v = strtol(hex, &end, 16);
            if (*end || !hex[0] || !hex[1] || hex[0] == '-' || hex[0] == '+')
                return false;
            c = (int)v;
            i += 2;
        }
        if (c == '/' || c == '\\' || c < 0x20 || c == 0x7f || j + 1 >= out_size)
            return false;
        out[j++] = (char)c;
    }
    out[j] = '\0';
    return j > 0 && !streq(out, ".") && !streq(out, "..");
}

void
api_web_static(HttpRequest *r, void *ctx)
{
    (void)ctx;
    const char *method = http_request_method(r);
    if (!streq(method, "GET") && !streq(method, "HEAD")) {
        web_error(r, NB_ERR_METHOD_NOT_ALLOWED, "the web console's files are read-only");
        http_reply_add_header(r, "Allow", "GET, HEAD");
        return;
    }
    const char *path = http_request_raw_path(r);
    if (!web_root || path[0] != '/')
        return web_error(r, NB_ERR_NOT_FOUND, "no such page");

    /* The segments, decoded; "/" is the index, "/a/" the same as "/a". */
    char segs[WEB_MAX_SEGMENTS][256];
    unsigned n = 0;
    const char *p = path + 1;
    while (*p) {
        size_t len = strcspn(p, "/");
        if (len == 0 && p[len] == '/')
            return web_error(r, NB_ERR_NOT_FOUND, "no such page");
        if (n == WEB_MAX_SEGMENTS)
            return web_error(r, NB_ERR_NOT_FOUND, "no such page");
        if (!web_segment_decode(p, len, segs[n], sizeof(segs[n])))
            return web_error(r, NB_ERR_INVALID_REQUEST, "path not allowed");
        if (segs[n][0] == '.')
            return web_error(r, NB_ERR_NOT_FOUND, "no such page");
        n++;
        p += len;
        if (*p == '/')
            p++;
    }
    if (n == 0)
        snprintf(segs[n++], sizeof(segs[0]), "index.html");

    _cleanup_close_ int dir = open(web_root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir < 0) {
        log_warn("web: cannot open the web root %s: %s", web_root, strerror(errno));
        return web_error(r, NB_ERR_NOT_FOUND, "no such page");
    }
    for (unsigned i = 0; i + 1 < n; i++) {
        int next = openat(dir, segs[i], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (next < 0)
            return web_error(r, NB_ERR_NOT_FOUND, "no such page");
        close(dir);
        dir = next;
    }
    _cleanup_close_ int fd = openat(dir, segs[n - 1], O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode))
        return web_error(r, NB_ERR_NOT_FOUND, "no such page");

    /* The files carry no version in their names: the browser revalidates each time, and the
     * ETag makes that a 304 without a body. */
    char etag[64];
    snprintf(etag, sizeof(etag), "\"%llx-%llx\"", (unsigned long long)sb.st_size,
             (unsigned long long)sb.st_mtim.tv_sec * 1000000000ull +
                 (unsigned long long)sb.st_mtim.tv_nsec);
    const char *inm = http_request_header(r, "If-None-Match");
    if (inm && streq(inm, etag))
        http_reply_empty(r, 304);
    else
        http_reply_fd(r, 200, web_content_type(segs[n - 1]), TAKE_FD(fd), (uint64_t)sb.st_size);
    http_reply_add_header(r, "ETag", etag);
    http_reply_add_header(r, "Cache-Control", "no-cache");
    web_add_security_headers(r);
}
