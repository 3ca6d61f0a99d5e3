/*
 * Fuzzes the HTTP router (http_route_match). The input is "METHOD PATH": the method is what
 * comes before the first space, the path the rest up to '?' (as the server hands it over: the
 * raw request target without its query). Each input is matched against the real route table
 * (api_routes) and a synthetic one with the patterns' edge cases. Beyond memory errors, it
 * checks the contract: a found route has the method asked and its "{}" segments come back as
 * non-empty decoded parameters without '/', and nothing is returned or allocated otherwise.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "api/http_route.h"
#include "fuzz.h"

#define ALLOW_SIZE 128 /* as in the server */
#define METHOD_MAX 32

static const HttpRoute edge_routes[] = {
    {.method = "GET", .pattern = "/"},
    {.method = "GET", .pattern = "/a"},
    {.method = "PUT", .pattern = "/a/{}"},
    {.method = "DELETE", .pattern = "/a/{}"},
    {.method = "POST", .pattern = "/a/{}/b/{}"},
    {.method = "GET", .pattern = "/{}/{}/{}/{}"},
    {.method = "GET", .pattern = "/p/{}/{}/{}/{}/{}"}, /* more params than the server keeps */
    {.method = "PATCH", .pattern = "/x/y/z/"},
    {.method = "GET", .pattern = "/{}x/{"}, /* "{}" only counts as a whole segment */
    {.method = "OPTIONS", .pattern = "/%2F/{}"},
    {.method = NULL},
};

/* Number of "{}" segments in a pattern. */
static unsigned
pattern_params(const char *p)
{
    unsigned n = 0;
    if (*p == '/')
        p++;
    while (*p) {
        const char *e = strchr(p, '/');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len == 2 && p[0] == '{' && p[1] == '}')
            n++;
        p = e ? e + 1 : p + len;
    }
    return n;
}

/* allow is "M1, M2": each a method of the table, none the one asked (that would be found). */
static void
check_allow(const HttpRoute *routes, const char *method, const char *allow)
{
    for (const char *p = allow; *p;) {
        const char *e = strstr(p, ", ");
        size_t len = e ? (size_t)(e - p) : strlen(p);
        FUZZ_CHECK(len > 0);
        FUZZ_CHECK(strlen(method) != len || memcmp(method, p, len) != 0);
        bool known = false;
        for (const HttpRoute *rt = routes; rt->method && !known; rt++)
            known = strlen(rt->method) == len && memcmp(rt->method, p, len) == 0;
        FUZZ_CHECK(known);
        p = e ? e + 2 : p + len;
    }
}

static void
match_one(const HttpRoute *routes, const char *method, const char *path)
{
    const HttpRoute *route = NULL;
    char *params[HTTP_MAX_PATH_PARAMS] = {0};
    unsigned n_params = 0;
    char allow[ALLOW_SIZE];
    memset(allow, 'x', sizeof(allow));

    HttpRouteResult res =
        http_route_match(routes, method, path, &route, params, &n_params, allow, sizeof(allow));
    FUZZ_CHECK(memchr(allow, '\0', sizeof(allow)));
    switch (res) {
    case HTTP_ROUTE_FOUND:
        FUZZ_CHECK(route && strcmp(route->method, method) == 0);
        FUZZ_CHECK(n_params == pattern_params(route->pattern));
        FUZZ_CHECK(n_params <= HTTP_MAX_PATH_PARAMS);
        for (unsigned i = 0; i < n_params; i++)
            FUZZ_CHECK(params[i] && params[i][0] && !strchr(params[i], '/'));
        break;
    case HTTP_ROUTE_WRONG_METHOD:
        FUZZ_CHECK(allow[0] && !route && n_params == 0);
        check_allow(routes, method, allow);
        break;
    case HTTP_ROUTE_BAD_PATH:
    case HTTP_ROUTE_NOT_FOUND:
        FUZZ_CHECK(!route && n_params == 0);
        break;
    default:
        FUZZ_CHECK(!"unknown HttpRouteResult");
    }
    for (unsigned i = 0; i < HTTP_MAX_PATH_PARAMS; i++) {
        FUZZ_CHECK(i < n_params || !params[i]);
        free(params[i]);
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *sp = memchr(data, ' ', size);
    if (!sp || sp - data > METHOD_MAX)
        return 0;
    size_t mlen = (size_t)(sp - data);
    size_t plen = size - mlen - 1;
    if (plen > HTTP_MAX_URL)
        return 0; /* the server answers 414 before routing */
    const uint8_t *q = memchr(sp + 1, '?', plen);
    if (q)
        plen = (size_t)(q - (sp + 1));

    char method[METHOD_MAX + 1];
    memcpy(method, data, mlen);
    method[mlen] = '\0';
    char *path = strndup((const char *)sp + 1, plen); /* stops at a NUL, like a C string */
    if (!path)
        return 0;
    match_one(api_routes, method, path);
    match_one(edge_routes, method, path);
    free(path);
    return 0;
}
