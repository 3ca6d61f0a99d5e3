#include "flavor.h"

#include <string.h>

#include "bandwidth.h"
#include "json_req.h"

/* An optional limit: absent is 0 (unlimited), else an integer 0..max. */
static int
flavor_limit_field(json_t *body, const char *key, uint32_t max, uint32_t *ret, NbError **err)
{
    json_t *v = json_object_get(body, key);
    *ret = 0;
    if (!v)
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > (json_int_t)max)
        return nb_error_set(err, NB_ERR_INVALID_REQUEST,
                            "field '%s' must be an integer from 1 to %u, or 0 for no limit", key,
                            max);
    *ret = (uint32_t)json_integer_value(v);
    return 0;
}

int
flavor_from_request(json_t *body, Flavor *ret, NbError **err)
{
    static const char *const fields[] = {"name",      "vcpus",       "ram_mib",
                                         "disk_gib",  "net_in_mbit", "net_out_mbit",
                                         "disk_iops", "disk_mbps",   NULL};
    Flavor f = {0};
    uint64_t vcpus = 0;

    if (json_req_check_fields(body, fields, err) < 0 ||
        json_req_name(body, "name", "flavor", f.name, err) < 0 ||
        json_req_uint(body, "vcpus", 1, NB_FLAVOR_VCPUS_MAX, &vcpus, err) < 0 ||
        json_req_uint(body, "ram_mib", NB_FLAVOR_RAM_MIB_MIN, NB_FLAVOR_RAM_MIB_MAX, &f.ram_mib,
                      err) < 0 ||
        json_req_uint(body, "disk_gib", 1, NB_FLAVOR_DISK_GIB_MAX, &f.disk_gib, err) < 0 ||
        bandwidth_field_parse(body, "net_in_mbit", &f.net_in_kbit, NULL, err) < 0 ||
        bandwidth_field_parse(body, "net_out_mbit", &f.net_out_kbit, NULL, err) < 0 ||
        flavor_limit_field(body, "disk_iops", NB_FLAVOR_DISK_IOPS_MAX, &f.disk_iops, err) < 0 ||
        flavor_limit_field(body, "disk_mbps", NB_FLAVOR_DISK_MBPS_MAX, &f.disk_mbps, err) < 0)
        return -1;
    f.vcpus = (unsigned)vcpus;
    *ret = f;
    return 0;
}

json_t *
flavor_to_json(const Flavor *f)
{
    return json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:s}", "id", f->id, "name",
                     f->name, "vcpus", (json_int_t)f->vcpus, "ram_mib", (json_int_t)f->ram_mib,
                     "disk_gib", (json_int_t)f->disk_gib, "net_in_mbit",
                     bandwidth_kbit_to_mbit(f->net_in_kbit), "net_out_mbit",
                     bandwidth_kbit_to_mbit(f->net_out_kbit), "disk_iops", (json_int_t)f->disk_iops,
                     "disk_mbps", (json_int_t)f->disk_mbps, "created_at", f->created_at);
}
