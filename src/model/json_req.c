#include <stdint.h>
#include <string.h>

#include "json_req.h"
#include "validate.h"

int
json_req_check_fields(json_t *body, const char *const allowed[], NbError **err)
{
    if (!body || !json_is_object(body))
        return nb_error_set(err, NB_ERR_INVALID_REQUEST, "request body must be a JSON object");
    const char *key;
    json_t *v;
    json_object_foreach (body, key, v) {
        int known = 0;
        for (size_t i = 0; allowed[i]; i++)
            known |= strcmp(key, allowed[i]) == 0;
        if (!known)
            return nb_error_set(err, NB_ERR_INVALID_REQUEST, "unknown field '%.64s'", key);
    }
    return 0;
}

int
json_req_string(json_t *body, const char *key, int required, char *buf, size_t max, NbError **err)
{
    json_t *v = json_object_get(body, key);
    buf[0] = '\0';
    if (!v || json_is_null(v)) {
        if (required)
            return nb_error_set(err, NB_ERR_INVALID_REQUEST, "field '%s' is required", key);
        return 0;
    }
    if (!json_is_string(v))
        return nb_error_set(err, NB_ERR_INVALID_REQUEST, "field '%s' must be a string", key);
    size_t len = json_string_length(v);
    if (required && len == 0)
        return nb_error_set(err, NB_ERR_INVALID_REQUEST, "field '%s' must not be empty", key);
    if (len >= max || memchr(json_string_value(v), '\0', len))
        return nb_error_set(err, NB_ERR_INVALID_REQUEST,
                            "field '%s' must be a string of at most %zu bytes", key, max - 1);
    memcpy(buf, json_string_value(v), len + 1);
    return 0;
}

int
json_req_uint(json_t *body, const char *key, uint64_t min, uint64_t max, uint64_t *ret,
              NbError **err)
{
    json_t *v = json_object_get(body, key);
    if (!v)
        return nb_error_set(err, NB_ERR_INVALID_REQUEST, "field '%s' is required", key);
    if (!json_is_integer(v) || json_integer_value(v) < 0 || (uint64_t)json_integer_value(v) < min ||
        (uint64_t)json_integer_value(v) > max)
        return nb_error_set(err, NB_ERR_INVALID_REQUEST,
                            "field '%s' must be an integer from %ju to %ju", key, (uintmax_t)min,
                            (uintmax_t)max);
    *ret = (uint64_t)json_integer_value(v);
    return 0;
}

json_t *
json_string_or_null(const char *s)
{
    return s && *s ? json_string(s) : json_null();
}

int
json_req_name(json_t *body, const char *key, const char *what, char *buf, NbError **err)
{
    /* Read into a larger buffer so an over-long name is reported as INVALID_NAME. */
    char tmp[256];
    if (!json_object_get(body, key) || json_is_null(json_object_get(body, key)))
        return nb_error_set(err, NB_ERR_INVALID_REQUEST, "field '%s' is required", key);
    /* Not "required" here: an empty name is an invalid name, not a missing field. */
    if (json_req_string(body, key, 0, tmp, sizeof(tmp), err) < 0 ||
        nb_name_check(what, tmp, err) < 0)
        return -1;
    memcpy(buf, tmp, strlen(tmp) + 1);
    return 0;
}
