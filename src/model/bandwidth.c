#include "bandwidth.h"

#include "json_req.h"

int
bandwidth_field_parse(json_t *body, const char *key, uint32_t *ret_kbit, bool *ret_present,
                      NbError **err)
{
    json_t *v = json_object_get(body, key);
    if (!v) {
        if (ret_present)
            *ret_present = false;
        return 0;
    }
    /* A real (100.0) is refused too: a limit is a whole number of Mbit/s. */
    if (!json_is_integer(v) || json_integer_value(v) < 0 ||
        json_integer_value(v) > (json_int_t)NB_BANDWIDTH_MBIT_MAX)
        return nb_error_set(err, NB_ERR_BANDWIDTH_INVALID,
                            "field '%s' must be an integer from 0 (unlimited) to %u (Mbit/s)", key,
                            NB_BANDWIDTH_MBIT_MAX);
    *ret_kbit = (uint32_t)json_integer_value(v) * 1000u;
    if (ret_present)
        *ret_present = true;
    return 0;
}

int
bandwidth_patch_from_request(json_t *body, BandwidthPatch *ret, NbError **err)
{
    static const char *const fields[] = {"net_in_mbit", "net_out_mbit", NULL};
    BandwidthPatch p = {0};
    if (json_req_check_fields(body, fields, err) < 0 ||
        bandwidth_field_parse(body, "net_in_mbit", &p.in_kbit, &p.has_in, err) < 0 ||
        bandwidth_field_parse(body, "net_out_mbit", &p.out_kbit, &p.has_out, err) < 0)
        return -1;
    if (!p.has_in && !p.has_out)
        return nb_error_set(err, NB_ERR_INVALID_REQUEST,
                            "nothing to change: give net_in_mbit, net_out_mbit or both");
    *ret = p;
    return 0;
}
