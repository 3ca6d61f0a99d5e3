/* Shared pieces of strict request decoding. */
#pragma once

#include <jansson.h>

#include "../util/error.h"

/* Refuses a body that is missing or has fields outside `allowed` (NULL-terminated). */
int json_req_check_fields(json_t *body, const char *const allowed[], NbError **err);
/* Copies a required (or optional, when required is 0) string field of at most max bytes into
 * buf; absent optional fields leave buf empty. */
int json_req_string(json_t *body, const char *key, int required, char *buf, size_t max,
                    NbError **err);
/* A required resource name, validated (INVALID_NAME): buf holds NB_NAME_MAX + 1 bytes. */
int json_req_name(json_t *body, const char *key, const char *what, char *buf, NbError **err);
/* A required integer field in [min, max]. */
int json_req_uint(json_t *body, const char *key, uint64_t min, uint64_t max, uint64_t *ret,
                  NbError **err);
/* The stored form of a string field: "" becomes JSON null. */
json_t *json_string_or_null(const char *s);
