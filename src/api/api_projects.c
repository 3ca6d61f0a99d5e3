#include <math.h>
#include <string.h>

#include "../util/strutil.h"
#include "api.h"

void
api_projects_list(HttpRequest *r, void *ctx)
{
    Core *core = ctx;
    _cleanup_error_ NbError *err = NULL;
    Project *list = NULL;
    size_t n = 0;
    if (project_store_list(core->store, api_scope(r), &list, &n, &err) < 0)
        return http_reply_nb_error(r, err);
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, project_to_json(&list[i]));
    free(list);
    http_reply_json(r, 200, json_pack("{s:o}", "projects", arr));
}

void
api_projects_create(HttpRequest *r, void *ctx)
{
    Core *core = ctx;
    _cleanup_error_ NbError *err = NULL;
    Project p;
    if (tenancy_ops_project_create(core, http_request_json(r), &p, &err) < 0)
        return http_reply_nb_error(r, err);
    http_reply_json(r, 201, project_to_json(&p));
}

void
api_projects_get(HttpRequest *r, void *ctx)
{
    Core *core = ctx;
    _cleanup_error_ NbError *err = NULL;
    Project p;
    if (project_store_get(core->store, api_scope(r), http_request_param(r, 0), &p, &err) < 0)
        return http_reply_nb_error(r, err);
    http_reply_json(r, 200, project_to_json(&p));
}

void
api_projects_delete(HttpRequest *r, void *ctx)
{
    Core *core = ctx;
    _cleanup_error_ NbError *err = NULL;
    if (tenancy_ops_project_delete(core, http_request_param(r, 0), &err) < 0)
        return http_reply_nb_error(r, err);
    http_reply_empty(r, 204);
}

void
api_projects_set_quota(HttpRequest *r, void *ctx)
{
    Core *core = ctx;
    _cleanup_error_ NbError *err = NULL;
    Project p;
    json_t *body = http_request_json(r);
    if (!body)
        return http_reply_error(r, NB_ERR_INVALID_REQUEST, "a quota object is required");
    if (tenancy_ops_project_set_quota(core, http_request_param(r, 0), body, &p, &err) < 0)
        return http_reply_nb_error(r, err);
    http_reply_json(r, 200, project_to_json(&p));
}

void
api_projects_quota(HttpRequest *r, void *ctx)
{
    Core *core = ctx;
    _cleanup_error_ NbError *err = NULL;
    Project p;
    int64_t in_use[_QUOTA_MAX];
    if (project_store_get(core->store, api_scope(r), http_request_param(r, 0), &p, &err) < 0 ||
        project_store_quota_usage(core->store, p.id, in_use, &err) < 0)
        return http_reply_nb_error(r, err);
    json_t *used = json_object();
    for (int i = 0; i < _QUOTA_MAX; i++)
        json_object_set_new(used, quota_resource_names[i], json_integer(in_use[i]));
    http_reply_json(r, 200,
                    json_pack("{s:{s:s, s:s}, s:o, s:o}", "project", "id", p.id, "name", p.name,
                              "limits", quota_to_json(&p.quota), "in_use", used));
}

/* Rounds to milli-units so the figures read well and compare exactly in tests. */
static json_t *
usage_number(double v)
{
    return json_real(round(v * 1000.0) / 1000.0);
}

void
api_projects_usage(HttpRequest *r, void *ctx)
{
    Core *core = ctx;
    _cleanup_error_ NbError *err = NULL;
    Project p;
    if (project_store_get(core->store, api_scope(r), http_request_param(r, 0), &p, &err) < 0)
        return http_reply_nb_error(r, err);

    double now = nb_epoch_now(), from, to = now;
    const char *qfrom = http_request_query(r, "from"), *qto = http_request_query(r, "to");
    if (qfrom) {
        if (nb_timestamp_parse(qfrom, &from) < 0)
            return http_reply_error(r, NB_ERR_INVALID_REQUEST,
                                    "from must be YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ");
    } else {
        /* The current calendar month so far. */
        time_t t = (time_t)now;
        struct tm tm;
        gmtime_r(&t, &tm);
        tm.tm_mday = 1;
        tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
        from = (double)timegm(&tm);
    }
    if (qto && nb_timestamp_parse(qto, &to) < 0)
        return http_reply_error(r, NB_ERR_INVALID_REQUEST,
                                "to must be YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ");
    if (to <= from)
        return http_reply_error(r, NB_ERR_INVALID_REQUEST, "to must be after from");

    VmUsage *list = NULL;
    size_t n = 0;
    if (usage_store_compute(core->store, p.id, from, to, now, &list, &n, &err) < 0)
        return http_reply_nb_error(r, err);
    json_t *vms = json_array();
    double vcpu = 0, ram = 0, disk = 0;
    for (size_t i = 0; i < n; i++) {
        json_array_append_new(vms, json_pack("{s:s, s:s, s:o, s:o, s:o, s:o}", "vm_id",
                                             list[i].vm_id, "name", list[i].name, "vcpu_hours",
                                             usage_number(list[i].vcpu_hours), "ram_gib_hours",
                                             usage_number(list[i].ram_gib_hours), "disk_gib_hours",
                                             usage_number(list[i].disk_gib_hours), "running_hours",
                                             usage_number(list[i].running_hours)));
        vcpu += list[i].vcpu_hours;
        ram += list[i].ram_gib_hours;
        disk += list[i].disk_gib_hours;
    }
    free(list);
    char sfrom[NB_TIMESTAMP_LEN], sto[NB_TIMESTAMP_LEN];
    nb_timestamp_format(from, sfrom);
    nb_timestamp_format(to, sto);
    http_reply_json(r, 200,
                    json_pack("{s:{s:s, s:s}, s:s, s:s, s:o, s:{s:o, s:o, s:o}}", "project", "id",
                              p.id, "name", p.name, "from", sfrom, "to", sto, "vms", vms, "totals",
                              "vcpu_hours", usage_number(vcpu), "ram_gib_hours", usage_number(ram),
                              "disk_gib_hours", usage_number(disk)));
}
