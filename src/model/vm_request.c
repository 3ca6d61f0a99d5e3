#include "vm_request.h"

#include <stdio.h>
#include <string.h>

#include "../util/strutil.h"
#include "../util/uuid.h"
#include "json_req.h"

int
vm_request_parse_stop(json_t *body, VmStopRequest *ret, NbError **err)
{
    static const char *const fields[] = {"force", "timeout", NULL};
    *ret = (VmStopRequest){.timeout_s = -1};
    if (!body || json_is_null(body))
        return 0;
    if (json_req_check_fields(body, fields, err) < 0)
        return -1;
    json_t *force = json_object_get(body, "force");
    json_t *timeout = json_object_get(body, "timeout");
    if (force && !json_is_boolean(force))
        return nb_error_set(err, NB_ERR_INVALID_REQUEST, "field 'force' must be a boolean");
    if (timeout && (!json_is_integer(timeout) || json_integer_value(timeout) < 0 ||
                    json_integer_value(timeout) > VM_REQUEST_STOP_TIMEOUT_MAX_S))
        return nb_error_set(err, NB_ERR_INVALID_REQUEST,
                            "field 'timeout' must be an integer from 0 to %d (seconds)",
                            VM_REQUEST_STOP_TIMEOUT_MAX_S);
    ret->force = json_is_true(force);
    if (timeout)
        ret->timeout_s = (int)json_integer_value(timeout);
    return 0;
}

char *
vm_request_stop_to_text(const VmStopRequest *req)
{
    json_t *p = json_pack("{s:b}", "force", req->force);
    if (p && req->timeout_s >= 0)
        json_object_set_new(p, "timeout", json_integer(req->timeout_s));
    char *text = p ? json_dumps(p, JSON_COMPACT) : NULL;
    json_decref(p);
    return text;
}

void
vm_request_stop_from_text(const char *text, VmStopRequest *ret)
{
    json_t *p = text ? json_loads(text, 0, NULL) : NULL;
    if (vm_request_parse_stop(p, ret, NULL) < 0)
        *ret = (VmStopRequest){.timeout_s = -1};
    json_decref(p);
}

int
vm_request_parse_migrate(json_t *body, VmMigrateRequest *ret, NbError **err)
{
    static const char *const fields[] = {"host", "offline", "bandwidth_mib", NULL};
    *ret = (VmMigrateRequest){.offline = -1};
    if (!body || json_is_null(body))
        return 0;
    if (json_req_check_fields(body, fields, err) < 0)
        return -1;
    json_t *bw = json_object_get(body, "bandwidth_mib");
    if (bw) {
        if (!json_is_integer(bw) || json_integer_value(bw) < 1 ||
            json_integer_value(bw) > VM_REQUEST_MIGRATE_BANDWIDTH_MAX_MIB)
            return nb_error_set(err, NB_ERR_INVALID_REQUEST,
                                "field 'bandwidth_mib' must be an integer from 1 to %d (MiB/s)",
                                VM_REQUEST_MIGRATE_BANDWIDTH_MAX_MIB);
        ret->bandwidth_mib = (uint64_t)json_integer_value(bw);
    }
    json_t *host = json_object_get(body, "host");
    if (host && !json_is_null(host)) {
        const char *h = json_string_value(host);
        if (!h || (!nb_name_is_valid(h) && !nb_uuid_is_valid(h)))
            return nb_error_set(err, NB_ERR_INVALID_NAME,
                                "field 'host' must be a host's name or id");
        snprintf(ret->host, sizeof(ret->host), "%s", h);
    }
    json_t *off = json_object_get(body, "offline");
    if (off) {
        if (!json_is_boolean(off))
            return nb_error_set(err, NB_ERR_INVALID_REQUEST, "field 'offline' must be a boolean");
        ret->offline = json_is_true(off);
    }
    return 0;
}
