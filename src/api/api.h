/* The resource handlers and the route table. */
#pragma once

#include "../core/core.h"
#include "http.h"

extern const HttpRoute api_routes[];

void api_health(HttpRequest *r, void *ctx);
void api_flavors_list(HttpRequest *r, void *ctx);
void api_flavors_create(HttpRequest *r, void *ctx);
void api_flavors_get(HttpRequest *r, void *ctx);
void api_flavors_delete(HttpRequest *r, void *ctx);
void api_images_list(HttpRequest *r, void *ctx);
void api_images_create(HttpRequest *r, void *ctx);
void api_images_get(HttpRequest *r, void *ctx);
void api_images_delete(HttpRequest *r, void *ctx);
extern const HttpStreamHandler api_images_upload;
void api_vms_list(HttpRequest *r, void *ctx);
void api_vms_create(HttpRequest *r, void *ctx);
void api_vms_get(HttpRequest *r, void *ctx);
void api_vms_delete(HttpRequest *r, void *ctx);
void api_vms_start(HttpRequest *r, void *ctx);
void api_vms_stop(HttpRequest *r, void *ctx);
void api_vms_reboot(HttpRequest *r, void *ctx);
void api_vms_pause(HttpRequest *r, void *ctx);
void api_vms_resume(HttpRequest *r, void *ctx);
void api_vms_console_log(HttpRequest *r, void *ctx);
void api_tasks_list(HttpRequest *r, void *ctx);
void api_tasks_get(HttpRequest *r, void *ctx);

/* Bearer tokens (auth.c): random 256-bit, stored as SHA-256 hashes. */
bool auth_check_token(const char *token, void *ctx);
/* Creates the admin token on first start and writes it to path (mode 0600). */
int auth_bootstrap_admin_token(Store *store, const char *path, NbError **err);
