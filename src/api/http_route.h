/* The router, on its own so it can be fuzzed. */
#pragma once

#include <stddef.h>

#include "http.h"

typedef enum HttpRouteResult {
    HTTP_ROUTE_FOUND,
    HTTP_ROUTE_BAD_PATH, /* a malformed escape, or a segment decoding to '/' or NUL */
    HTTP_ROUTE_NOT_FOUND,
    HTTP_ROUTE_WRONG_METHOD,
} HttpRouteResult;

/*
 * Matches a raw (not yet decoded, query removed) request path and a method against routes.
 * On HTTP_ROUTE_FOUND: *ret_route is the route and params[0..*ret_n_params) the decoded "{}"
 * segments, newly allocated (the caller frees them; *ret_n_params must be 0 on entry). On
 * HTTP_ROUTE_WRONG_METHOD: allow lists the methods the path has ("GET, POST"). One trailing
 * slash is ignored; empty segments match nothing.
 */
HttpRouteResult http_route_match(const HttpRoute *routes, const char *method, const char *raw_path,
                                 const HttpRoute **ret_route, char *params[HTTP_MAX_PATH_PARAMS],
                                 unsigned *ret_n_params, char *allow, size_t allow_size);
