/*
 * ?limit=&marker= for the lists that page (VMs, tasks): keyset pages, so a walk stays exact while
 * rows come and go, and no request has to build the whole collection at once.
 */
#include "../util/strutil.h"
#include "api.h"

int
api_page_params(HttpRequest *r, unsigned *ret_limit, const char **ret_marker)
{
    uint64_t limit = API_PAGE_DEFAULT;
    const char *q = http_request_query(r, "limit");
    if (q && (str_to_u64(q, &limit) < 0 || limit == 0 || limit > API_PAGE_MAX)) {
        http_reply_error(r, NB_ERR_INVALID_REQUEST, "limit must be an integer from 1 to %d",
                         API_PAGE_MAX);
        return -1;
    }
    const char *marker = http_request_query(r, "marker");
    *ret_limit = (unsigned)limit;
    *ret_marker = marker && *marker ? marker : NULL;
    return 0;
}

void
api_reply_page(HttpRequest *r, const char *collection, json_t *items, const char *next_marker)
{
    http_reply_json(
        r, 200,
        json_pack("{s:o, s:o}", collection, items, "next_marker",
                  next_marker && *next_marker ? json_string(next_marker) : json_null()));
}
