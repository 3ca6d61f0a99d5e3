#include "api.h"

#define NIMBUS_VERSION "0.1.0"

const HttpRoute api_routes[] = {
    {"GET", "/v1/health", api_health, NULL, true},
    {"GET", "/v1/flavors", api_flavors_list, NULL, false},
    {"POST", "/v1/flavors", api_flavors_create, NULL, false},
    {"GET", "/v1/flavors/{}", api_flavors_get, NULL, false},
    {"DELETE", "/v1/flavors/{}", api_flavors_delete, NULL, false},
    {"GET", "/v1/images", api_images_list, NULL, false},
    {"POST", "/v1/images", api_images_create, NULL, false},
    {"GET", "/v1/images/{}", api_images_get, NULL, false},
    {"DELETE", "/v1/images/{}", api_images_delete, NULL, false},
    {"PUT", "/v1/images/{}/file", NULL, &api_images_upload, false},
    {"GET", "/v1/vms", api_vms_list, NULL, false},
    {"POST", "/v1/vms", api_vms_create, NULL, false},
    {"GET", "/v1/vms/{}", api_vms_get, NULL, false},
    {"DELETE", "/v1/vms/{}", api_vms_delete, NULL, false},
    {"POST", "/v1/vms/{}/start", api_vms_start, NULL, false},
    {"POST", "/v1/vms/{}/stop", api_vms_stop, NULL, false},
    {"POST", "/v1/vms/{}/reboot", api_vms_reboot, NULL, false},
    {"POST", "/v1/vms/{}/pause", api_vms_pause, NULL, false},
    {"POST", "/v1/vms/{}/resume", api_vms_resume, NULL, false},
    {"GET", "/v1/vms/{}/console-log", api_vms_console_log, NULL, false},
    {"GET", "/v1/tasks", api_tasks_list, NULL, false},
    {"GET", "/v1/tasks/{}", api_tasks_get, NULL, false},
    {NULL, NULL, NULL, NULL, false},
};

void
api_health(HttpRequest *r, void *ctx)
{
    http_reply_json(r, 200, json_pack("{s:s, s:s}", "status", "ok", "version", NIMBUS_VERSION));
}
