/* HTTP transport of the CLI (libcurl): one connection reused for every request of a run. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct Client Client;

typedef struct ClientResponse {
    long status;
    char *body; /* NUL-terminated (the NUL is not counted in body_len), never NULL after success */
    size_t body_len;
    char request_id[128]; /* X-Request-Id, empty when absent */
    char retry_after[32]; /* Retry-After (a 429's seconds), empty when absent */
} ClientResponse;

/* Called while uploading; a non-zero return aborts the transfer. */
typedef int (*ClientProgressFn)(void *userdata, uint64_t sent, uint64_t total);

/*
 * base_url has no trailing slash; token may be NULL; cacert (may be NULL) is a PEM file of the
 * CAs that https:// servers are verified against instead of the system's. Certificate and host
 * name verification are never turned off. 0 or -errno.
 */
int client_new(const char *base_url, const char *token, const char *cacert, Client **ret);
void client_free(Client *c);

/* Percent-encodes one path or query component (a name given by the user). NULL on OOM. */
char *client_escape(Client *c, const char *component);
/* Appends "?name=value" (or "&name=value") to *query, value percent-encoded. 0 or
 * CLI_EXIT_API. */
int client_query_add(Client *c, char **query, const char *name, const char *value);

/*
 * Sends method + path (starting with "/v1/...") with an optional JSON body. Returns 0 when an
 * HTTP response arrived, whatever its status, or -1 when none did, with a message in
 * *ret_error (to free).
 */
int client_request(Client *c, const char *method, const char *path, const char *json_body,
                   ClientResponse *ret, char **ret_error);

/* PUTs size bytes read from fd as application/octet-stream, streamed. Same returns. */
int client_upload(Client *c, const char *path, int fd, uint64_t size, ClientProgressFn progress,
                  void *userdata, ClientResponse *ret, char **ret_error);

/* One server-sent event (GET /v1/events): returns 0 to go on, non-zero to stop reading. */
typedef int (*ClientEventFn)(void *userdata, const char *id, const char *type, const char *data);

/*
 * GETs path as a server-sent event stream and calls fn for each event until fn asks to stop
 * (returns 0), the server ends the stream (0), or timeout_s passes (-1, "timed out"). A stream
 * that sends nothing at all for first_byte_ms (a proxy buffering it) fails with -1 and
 * *ret_buffered set, so that the caller can poll instead. A non-200 answer returns 0 with its
 * status and body in *ret, like client_request; errors as client_request's.
 */
int client_events(Client *c, const char *path, uint64_t timeout_s, uint64_t first_byte_ms,
                  ClientEventFn fn, void *userdata, ClientResponse *ret, bool *ret_buffered,
                  char **ret_error);

/* Frees the body, zeroed first: answers may carry secrets (a new token). */
void client_response_clear(ClientResponse *r);
