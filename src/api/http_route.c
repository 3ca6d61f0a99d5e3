/* The router: splits a raw request path into decoded segments and matches the route table. Pure:
 * no I/O, shared by the server and the fuzz target. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../util/cleanup.h"
#include "../util/strutil.h"
#include "http_route.h"

#define HTTP_MAX_SEGMENTS 16

static int
hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decodes one path segment of length n. NULL with errno EINVAL when it holds a malformed escape
 * or decodes to '/' or NUL. */
static char *
segment_decode(const char *s, size_t n)
{
    _cleanup_free_ char *out = malloc(n + 1);
    size_t j = 0;

    if (!out)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '%') {
            int hi = n - i >= 3 ? hex_value(s[i + 1]) : -1;
            int lo = n - i >= 3 ? hex_value(s[i + 2]) : -1;
            if (hi < 0 || lo < 0) {
                errno = EINVAL;
                return NULL;
            }
            c = (char)(hi * 16 + lo);
            i += 2;
            if (c == '/' || c == '\0') {
                errno = EINVAL;
                return NULL;
            }
        }
        out[j++] = c;
    }
    out[j] = '\0';
    return TAKE_PTR(out);
}

HttpRouteResult
http_route_match(const HttpRoute *routes, const char *method, const char *raw,
                 const HttpRoute **ret_route, char *params[HTTP_MAX_PATH_PARAMS],
                 unsigned *ret_n_params, char *allow, size_t allow_size)
{
    char *segs[HTTP_MAX_SEGMENTS];
    unsigned n = 0;
    bool too_many = false, bad = false;

    allow[0] = '\0';
    if (raw[0] != '/')
        return HTTP_ROUTE_NOT_FOUND;
    size_t len = strlen(raw);
    if (len > 1 && raw[len - 1] == '/')
        len--; /* one trailing slash is ignored */
    for (size_t i = 1; len > 1 && i <= len;) {
        size_t end = i;
        while (end < len && raw[end] != '/')
            end++;
        if (n == HTTP_MAX_SEGMENTS) {
            too_many = true;
            break;
        }
        segs[n] = segment_decode(raw + i, end - i);
        if (!segs[n]) {
            bad = true;
            break;
        }
        n++;
        i = end + 1;
    }

    size_t allow_len = 0;
    const HttpRoute *found = NULL;

    for (const HttpRoute *rt = routes; !bad && !too_many && rt->method; rt++) {
        const char *p = rt->pattern;
        unsigned k = 0, nparam = 0;
        bool match = true;

        if (*p == '/')
            p++;
        while (match && *p) {
            const char *e = strchr(p, '/');
            size_t plen = e ? (size_t)(e - p) : strlen(p);
            if (k >= n)
                match = false;
            else if (plen == 2 && p[0] == '{' && p[1] == '}')
                match = segs[k][0] != '\0' && ++nparam <= HTTP_MAX_PATH_PARAMS;
            else
                match = strlen(segs[k]) == plen && memcmp(segs[k], p, plen) == 0;
            k++;
            p = e ? e + 1 : p + plen;
        }
        if (!match || k != n)
            continue;
        if (streq(rt->method, method)) {
            found = rt;
            break;
        }
        size_t ml = strlen(rt->method);
        if (!strstr(allow, rt->method) && allow_len + ml + 3 < allow_size) {
            if (allow_len) {
                memcpy(allow + allow_len, ", ", 2);
                allow_len += 2;
            }
            memcpy(allow + allow_len, rt->method, ml);
            allow_len += ml;
            allow[allow_len] = '\0';
        }
    }

    HttpRouteResult res = bad         ? HTTP_ROUTE_BAD_PATH
                          : found     ? HTTP_ROUTE_FOUND
                          : allow_len ? HTTP_ROUTE_WRONG_METHOD
                                      : HTTP_ROUTE_NOT_FOUND;
    if (found) {
        /* Keep the values of the "{}" segments, in order. */
        const char *p = found->pattern[0] == '/' ? found->pattern + 1 : found->pattern;
        for (unsigned k = 0; k < n; k++) {
            if (p[0] == '{' && p[1] == '}' && (p[2] == '/' || p[2] == '\0'))
                params[(*ret_n_params)++] = TAKE_PTR(segs[k]);
            const char *e = strchr(p, '/');
            p = e ? e + 1 : p + strlen(p);
        }
        *ret_route = found;
    }
    for (unsigned k = 0; k < n; k++)
        free(segs[k]);
    return res;
}
