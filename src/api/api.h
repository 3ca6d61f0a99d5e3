/* The resource handlers and the route table. The API reads the store only through
 * store_query.h and writes only through core (scripts/check-layers.sh). */
#pragma once

#include <sodium.h>

#include "../core/core.h"
#include "../core/health.h"
#include "../core/record_ops.h"
#include "../core/tenancy_ops.h"
#include "../store/store_query.h"
#include "http.h"

/* Who may use a route (HttpRoute.access), checked by auth_authorize before any body is read:
 * ANY every authenticated role (reads, and token self-service), WRITE members and admins,
 * ADMIN admins only. Reads are scoped to the caller's project by the handlers. */
enum {
    API_ACCESS_ANY,
    API_ACCESS_WRITE,
    API_ACCESS_ADMIN,
    API_ACCESS_METRICS, /* GET /metrics: the metrics role and admins */
};

extern const HttpRoute api_routes[];

/* The caller's project filter for lists (NULL for admins: every project). */
static inline const char *
api_scope(HttpRequest *r)
{
    return principal_scope(http_request_principal(r));
}

/* The project filter for looking one resource up by key. Names are unique only within a
 * project, so a name always means the caller's own project's resource, admins included; an
 * admin reaches other projects' resources by id. */
static inline const char *
api_lookup_scope(HttpRequest *r, const char *key)
{
    const Principal *who = http_request_principal(r);
    return who->role == ROLE_ADMIN && nb_uuid_is_valid(key) ? NULL : who->project_id;
}

void api_health(HttpRequest *r, void *ctx);
void api_ready(HttpRequest *r, void *ctx);
/* ---- api_metrics.c ---- */
void api_metrics(HttpRequest *r, void *ctx);
/* HttpServerConfig.on_complete: the audit (api_audit_request) and the request metrics. */
void api_on_complete(HttpRequest *r, void *ctx);
/* The served certificate (PEM, its first certificate), so that /metrics exports its expiry as
 * nimbus_tls_cert_expiry_timestamp_seconds. -1 when it cannot be parsed. */
int api_metrics_set_tls_cert(const char *pem);
void api_flavors_list(HttpRequest *r, void *ctx);
void api_flavors_create(HttpRequest *r, void *ctx);
void api_flavors_get(HttpRequest *r, void *ctx);
void api_flavors_delete(HttpRequest *r, void *ctx);
void api_images_list(HttpRequest *r, void *ctx);
void api_images_create(HttpRequest *r, void *ctx);
void api_images_get(HttpRequest *r, void *ctx);
void api_images_delete(HttpRequest *r, void *ctx);
extern const HttpStreamHandler api_images_upload;
/* ---- api_clone.c ---- */
/* POST /v1/vms/{id}/clone {name, linked?, host?} -> 202 {vm, task} (vm.clone). */
void api_vms_clone(HttpRequest *r, void *ctx);
/* POST /v1/images {name, from_vm} -> 202 {image, task} (image.from-vm); api_images_create
 * hands a body with from_vm here. */
void api_images_create_from_vm(HttpRequest *r, void *ctx);
void api_vms_list(HttpRequest *r, void *ctx);
void api_vms_create(HttpRequest *r, void *ctx);
void api_vms_get(HttpRequest *r, void *ctx);
void api_vms_delete(HttpRequest *r, void *ctx);
void api_vms_update(HttpRequest *r, void *ctx);
void api_vms_start(HttpRequest *r, void *ctx);
void api_vms_stop(HttpRequest *r, void *ctx);
void api_vms_reboot(HttpRequest *r, void *ctx);
void api_vms_pause(HttpRequest *r, void *ctx);
void api_vms_resume(HttpRequest *r, void *ctx);
void api_vms_console_log(HttpRequest *r, void *ctx);
void api_vms_migrate(HttpRequest *r, void *ctx);
void api_tasks_cancel(HttpRequest *r, void *ctx);
void api_hosts_list(HttpRequest *r, void *ctx);
void api_hosts_create(HttpRequest *r, void *ctx);
void api_hosts_get(HttpRequest *r, void *ctx);
void api_hosts_update(HttpRequest *r, void *ctx);
void api_hosts_delete(HttpRequest *r, void *ctx);
void api_hosts_enable(HttpRequest *r, void *ctx);
void api_hosts_disable(HttpRequest *r, void *ctx);
void api_hosts_maintenance(HttpRequest *r, void *ctx);
void api_groups_list(HttpRequest *r, void *ctx);
void api_groups_create(HttpRequest *r, void *ctx);
void api_groups_get(HttpRequest *r, void *ctx);
void api_groups_delete(HttpRequest *r, void *ctx);
void api_networks_list(HttpRequest *r, void *ctx);
void api_networks_create(HttpRequest *r, void *ctx);
void api_networks_get(HttpRequest *r, void *ctx);
void api_networks_delete(HttpRequest *r, void *ctx);
void api_ports_list(HttpRequest *r, void *ctx);
void api_ports_update(HttpRequest *r, void *ctx);
void api_secgroups_list(HttpRequest *r, void *ctx);
void api_secgroups_create(HttpRequest *r, void *ctx);
void api_secgroups_get(HttpRequest *r, void *ctx);
void api_secgroups_delete(HttpRequest *r, void *ctx);
void api_secgroups_rules_list(HttpRequest *r, void *ctx);
void api_secgroups_rules_add(HttpRequest *r, void *ctx);
void api_secgroups_rules_delete(HttpRequest *r, void *ctx);
void api_vms_secgroup_add(HttpRequest *r, void *ctx);
void api_vms_secgroup_remove(HttpRequest *r, void *ctx);
void api_vms_nic_add(HttpRequest *r, void *ctx);
void api_vms_nic_remove(HttpRequest *r, void *ctx);
void api_tasks_list(HttpRequest *r, void *ctx);
void api_tasks_get(HttpRequest *r, void *ctx);
void api_projects_list(HttpRequest *r, void *ctx);
void api_projects_create(HttpRequest *r, void *ctx);
void api_projects_get(HttpRequest *r, void *ctx);
void api_projects_delete(HttpRequest *r, void *ctx);
void api_projects_set_quota(HttpRequest *r, void *ctx);
void api_projects_quota(HttpRequest *r, void *ctx);
void api_projects_usage(HttpRequest *r, void *ctx);
void api_users_list(HttpRequest *r, void *ctx);
void api_users_create(HttpRequest *r, void *ctx);
void api_users_get(HttpRequest *r, void *ctx);
void api_users_delete(HttpRequest *r, void *ctx);
void api_audit_list(HttpRequest *r, void *ctx);
void api_auth_login(HttpRequest *r, void *ctx);
void api_auth_whoami(HttpRequest *r, void *ctx);
/* POST and DELETE /v1/auth/session: a browser's login (the session cookie) and logout. */
void api_auth_session_create(HttpRequest *r, void *ctx);
void api_auth_session_delete(HttpRequest *r, void *ctx);
void api_tokens_create(HttpRequest *r, void *ctx);
void api_tokens_list(HttpRequest *r, void *ctx);
void api_tokens_revoke(HttpRequest *r, void *ctx);
/* ---- api_pools.c ---- */
void api_pools_list(HttpRequest *r, void *ctx);
void api_pools_create(HttpRequest *r, void *ctx);
void api_pools_get(HttpRequest *r, void *ctx);
void api_pools_delete(HttpRequest *r, void *ctx);

/* ---- api_volumes.c ---- */
void api_volumes_list(HttpRequest *r, void *ctx);
void api_volumes_create(HttpRequest *r, void *ctx);
void api_volumes_get(HttpRequest *r, void *ctx);
void api_volumes_delete(HttpRequest *r, void *ctx);
void api_volumes_attach(HttpRequest *r, void *ctx);
void api_volumes_detach(HttpRequest *r, void *ctx);
void api_volumes_resize(HttpRequest *r, void *ctx);
void api_volume_snapshots_list(HttpRequest *r, void *ctx);
void api_volume_snapshots_create(HttpRequest *r, void *ctx);
void api_volume_snapshots_get(HttpRequest *r, void *ctx);
void api_volume_snapshots_delete(HttpRequest *r, void *ctx);

/* ---- api_snapshots.c ---- */
void api_snapshots_list(HttpRequest *r, void *ctx);
void api_snapshots_create(HttpRequest *r, void *ctx);
void api_snapshots_get(HttpRequest *r, void *ctx);
void api_snapshots_revert(HttpRequest *r, void *ctx);
void api_snapshots_delete(HttpRequest *r, void *ctx);

/* ---- api_backups.c ---- */
void api_backups_list(HttpRequest *r, void *ctx);
void api_backups_create(HttpRequest *r, void *ctx);
void api_backups_get(HttpRequest *r, void *ctx);
void api_backups_delete(HttpRequest *r, void *ctx);
void api_backups_restore(HttpRequest *r, void *ctx);

/* ---- api_networks.c ---- */
/* GET /v1/vms/{id}'s "nics": [{slot, mac, ip, network_id, network (its name), port_id}]. */
int api_vm_nics_json(Core *core, const Vm *vm, json_t **ret, NbError **err);

/* ---- api_page.c: ?limit=&marker= ---- */
#define API_PAGE_DEFAULT 1000
#define API_PAGE_MAX 1000
/* The page asked for (marker NULL: the first page); on a bad limit replies 400 and returns -1.
 * The marker itself is checked by the store (INVALID_MARKER). */
int api_page_params(HttpRequest *r, unsigned *ret_limit, const char **ret_marker);
/* 200 {collection: items, "next_marker": next or null on the last page}; takes items. */
void api_reply_page(HttpRequest *r, const char *collection, json_t *items, const char *next_marker);

/* ---- auth.c ---- */
/* HttpServerConfig hooks: token -> Principal (malloc'd), its free, and the role check. */
void *auth_authenticate(const char *token, void *ctx);
void auth_principal_free(void *principal);
bool auth_authorize(HttpRequest *r, void *ctx);
/* Creates the admin token on first start and writes it to path (mode 0600). */
int auth_bootstrap_admin_token(Core *core, const char *path, NbError **err);
int auth_hash_password(const char *password, char out[crypto_pwhash_STRBYTES], NbError **err);
/* The caller's address without the port. */
void auth_source_address(const HttpRequest *r, char *out, size_t len);

/* ---- api_web.c: the web console's files and the browser session's checks ---- */
#define API_WEB_SESSION_COOKIE "nimbus_session"
#define API_WEB_CSRF_HEADER "X-Nimbus-CSRF"
#define API_WEB_CSRF_LEN 65 /* hex SHA-256 and its NUL */
/* Where the files are (NULL: none are served) and the console's origin as browsers send it
 * ("https://nimbus.example.com"; NULL: the scheme of the daemon and the request's Host). */
int api_web_configure(const char *root, const char *origin);
/* HttpServerConfig.fallback: GET/HEAD of a file under the web root. */
void api_web_static(HttpRequest *r, void *ctx);
/* The session's CSRF value, derived from its token. */
void api_web_csrf_value(const char *token, char out[API_WEB_CSRF_LEN]);
/* For a cookie caller's change (not GET/HEAD): the CSRF header and the Origin; false after
 * replying 403 CSRF_REJECTED. True for everyone else. */
bool api_web_csrf_check(HttpRequest *r);
/* An Origin header, when present, is the console's own. */
bool api_web_origin_ok(HttpRequest *r);
/* Whether the session cookie gets the Secure flag (HTTPS here or at the configured origin). */
bool api_web_cookie_secure(HttpRequest *r);

/* ---- api_events.c ---- */
/* GET /v1/events: Server-Sent Events from core->events, scoped to the caller's project. */
void api_events(HttpRequest *r, void *ctx);

/* ---- api_console.c: browser consoles (docs/console.md) ---- */
/* POST /v1/vms/{id}/console: a one-time ticket; GET /v1/vms/{id}/console/ws?ticket=: the
 * WebSocket (public route: the ticket is the credential). */
void api_console_ticket(HttpRequest *r, void *ctx);
void api_console_ws(HttpRequest *r, void *ctx);
/* console-allowed-origins: origins besides the daemon's own whose pages may open consoles
 * (comma- or space-separated "scheme://host[:port]"; NULL: none). Call before serving. */
void api_console_set_allowed_origins(const char *list);
/* Ends the console sessions (close code 1008) and waits for them, a few seconds at most: before
 * http_server_stop, as they use the server's connections and the core. */
void api_console_shutdown(void);

/* ---- api_audit.c ---- */
/* HttpServerConfig.on_complete: records every request that is not a read. */
void api_audit_request(HttpRequest *r, void *ctx);
