#include "api.h"

#define NIMBUS_VERSION "0.1.0"

#define R(m, p, h, access, action)                                                                 \
    {                                                                                              \
        m, p, h, NULL, false, access, action                                                       \
    }
#define ANY API_ACCESS_ANY
#define WRITE API_ACCESS_WRITE
#define ADMIN API_ACCESS_ADMIN

const HttpRoute api_routes[] = {
    {"GET", "/v1/health", api_health, NULL, true, ANY, "health"},
    {"GET", "/v1/ready", api_ready, NULL, true, ANY, "ready"},
    R("GET", "/metrics", api_metrics, API_ACCESS_METRICS, "metrics.read"),
    {"POST", "/v1/auth/login", api_auth_login, NULL, true, ANY, "auth.login"},
    /* A browser's login: audited like /v1/auth/login (auth.c), hence the same action. */
    {"POST", "/v1/auth/session", api_auth_session_create, NULL, true, ANY, "auth.login"},
    R("DELETE", "/v1/auth/session", api_auth_session_delete, ANY, "auth.logout"),
    R("GET", "/v1/auth/whoami", api_auth_whoami, ANY, "auth.whoami"),
    R("GET", "/v1/tokens", api_tokens_list, ANY, "token.list"),
    R("POST", "/v1/tokens", api_tokens_create, ANY, "token.create"),
    R("DELETE", "/v1/tokens/{}", api_tokens_revoke, ANY, "token.revoke"),
    R("GET", "/v1/projects", api_projects_list, ANY, "project.list"),
    R("POST", "/v1/projects", api_projects_create, ADMIN, "project.create"),
    R("GET", "/v1/projects/{}", api_projects_get, ANY, "project.get"),
    R("DELETE", "/v1/projects/{}", api_projects_delete, ADMIN, "project.delete"),
    R("GET", "/v1/projects/{}/quota", api_projects_quota, ANY, "project.quota"),
    R("PUT", "/v1/projects/{}/quota", api_projects_set_quota, ADMIN, "project.set-quota"),
    R("GET", "/v1/projects/{}/usage", api_projects_usage, ANY, "project.usage"),
    R("GET", "/v1/users", api_users_list, ADMIN, "user.list"),
    R("POST", "/v1/users", api_users_create, ADMIN, "user.create"),
    R("GET", "/v1/users/{}", api_users_get, ADMIN, "user.get"),
    R("DELETE", "/v1/users/{}", api_users_delete, ADMIN, "user.delete"),
    R("GET", "/v1/audit", api_audit_list, ANY, "audit.list"),
    R("GET", "/v1/flavors", api_flavors_list, ANY, "flavor.list"),
    R("POST", "/v1/flavors", api_flavors_create, ADMIN, "flavor.create"),
    R("GET", "/v1/flavors/{}", api_flavors_get, ANY, "flavor.get"),
    R("DELETE", "/v1/flavors/{}", api_flavors_delete, ADMIN, "flavor.delete"),
    R("GET", "/v1/images", api_images_list, ANY, "image.list"),
    R("POST", "/v1/images", api_images_create, WRITE, "image.create"),
    R("GET", "/v1/images/{}", api_images_get, ANY, "image.get"),
    R("DELETE", "/v1/images/{}", api_images_delete, WRITE, "image.delete"),
    {"PUT", "/v1/images/{}/file", NULL, &api_images_upload, false, WRITE, "image.upload"},
    R("GET", "/v1/vms", api_vms_list, ANY, "vm.list"),
    R("POST", "/v1/vms", api_vms_create, WRITE, "vm.create"),
    R("GET", "/v1/vms/{}", api_vms_get, ANY, "vm.get"),
    R("DELETE", "/v1/vms/{}", api_vms_delete, WRITE, "vm.delete"),
    R("PATCH", "/v1/vms/{}", api_vms_update, WRITE, "vm.update"),
    R("POST", "/v1/vms/{}/start", api_vms_start, WRITE, "vm.start"),
    R("POST", "/v1/vms/{}/stop", api_vms_stop, WRITE, "vm.stop"),
    R("POST", "/v1/vms/{}/reboot", api_vms_reboot, WRITE, "vm.reboot"),
    R("POST", "/v1/vms/{}/pause", api_vms_pause, WRITE, "vm.pause"),
    R("POST", "/v1/vms/{}/resume", api_vms_resume, WRITE, "vm.resume"),
    R("POST", "/v1/vms/{}/migrate", api_vms_migrate, ADMIN, "vm.migrate"),
    R("POST", "/v1/vms/{}/clone", api_vms_clone, WRITE, "vm.clone"),
    R("GET", "/v1/vms/{}/console-log", api_vms_console_log, ANY, "vm.console-log"),
    R("POST", "/v1/vms/{}/console", api_console_ticket, WRITE, "console.open"),
    /* The ticket in the query is the credential: browsers cannot set headers on WebSockets. */
    {"GET", "/v1/vms/{}/console/ws", api_console_ws, NULL, true, ANY, "console.connect"},
    R("POST", "/v1/vms/{}/nics", api_vms_nic_add, WRITE, "vm.nic-add"),
    R("DELETE", "/v1/vms/{}/nics/{}", api_vms_nic_remove, WRITE, "vm.nic-remove"),
    R("POST", "/v1/vms/{}/secgroups", api_vms_secgroup_add, WRITE, "vm.secgroup-add"),
    R("DELETE", "/v1/vms/{}/secgroups/{}", api_vms_secgroup_remove, WRITE, "vm.secgroup-remove"),
    R("GET", "/v1/events", api_events, ANY, "event.stream"),
    R("GET", "/v1/tasks", api_tasks_list, ANY, "task.list"),
    R("GET", "/v1/tasks/{}", api_tasks_get, ANY, "task.get"),
    R("POST", "/v1/tasks/{}/cancel", api_tasks_cancel, ADMIN, "task.cancel"),
    R("GET", "/v1/hosts", api_hosts_list, ADMIN, "host.list"),
    R("POST", "/v1/hosts", api_hosts_create, ADMIN, "host.create"),
    R("GET", "/v1/hosts/{}", api_hosts_get, ADMIN, "host.get"),
    R("PUT", "/v1/hosts/{}", api_hosts_update, ADMIN, "host.update"),
    R("DELETE", "/v1/hosts/{}", api_hosts_delete, ADMIN, "host.delete"),
    R("POST", "/v1/hosts/{}/enable", api_hosts_enable, ADMIN, "host.enable"),
    R("POST", "/v1/hosts/{}/disable", api_hosts_disable, ADMIN, "host.disable"),
    R("POST", "/v1/hosts/{}/maintenance", api_hosts_maintenance, ADMIN, "host.maintenance"),
    R("GET", "/v1/groups", api_groups_list, ANY, "group.list"),
    R("POST", "/v1/groups", api_groups_create, WRITE, "group.create"),
    R("GET", "/v1/groups/{}", api_groups_get, ANY, "group.get"),
    R("DELETE", "/v1/groups/{}", api_groups_delete, WRITE, "group.delete"),
    R("GET", "/v1/networks", api_networks_list, ANY, "network.list"),
    R("POST", "/v1/networks", api_networks_create, WRITE, "network.create"),
    R("GET", "/v1/networks/{}", api_networks_get, ANY, "network.get"),
    R("DELETE", "/v1/networks/{}", api_networks_delete, WRITE, "network.delete"),
    R("GET", "/v1/ports", api_ports_list, ANY, "port.list"),
    R("PATCH", "/v1/ports/{}", api_ports_update, WRITE, "port.update"),
    R("GET", "/v1/secgroups", api_secgroups_list, ANY, "secgroup.list"),
    R("POST", "/v1/secgroups", api_secgroups_create, WRITE, "secgroup.create"),
    R("GET", "/v1/secgroups/{}", api_secgroups_get, ANY, "secgroup.get"),
    R("DELETE", "/v1/secgroups/{}", api_secgroups_delete, WRITE, "secgroup.delete"),
    R("GET", "/v1/secgroups/{}/rules", api_secgroups_rules_list, ANY, "secgroup.rule-list"),
    R("POST", "/v1/secgroups/{}/rules", api_secgroups_rules_add, WRITE, "secgroup.rule-add"),
    R("DELETE", "/v1/secgroups/{}/rules/{}", api_secgroups_rules_delete, WRITE,
      "secgroup.rule-delete"),
    R("GET", "/v1/pools", api_pools_list, ANY, "pool.list"),
    R("POST", "/v1/pools", api_pools_create, ADMIN, "pool.create"),
    R("GET", "/v1/pools/{}", api_pools_get, ANY, "pool.get"),
    R("DELETE", "/v1/pools/{}", api_pools_delete, ADMIN, "pool.delete"),
    R("GET", "/v1/volumes", api_volumes_list, ANY, "volume.list"),
    R("POST", "/v1/volumes", api_volumes_create, WRITE, "volume.create"),
    R("GET", "/v1/volumes/{}", api_volumes_get, ANY, "volume.get"),
    R("DELETE", "/v1/volumes/{}", api_volumes_delete, WRITE, "volume.delete"),
    R("POST", "/v1/volumes/{}/attach", api_volumes_attach, WRITE, "volume.attach"),
    R("POST", "/v1/volumes/{}/detach", api_volumes_detach, WRITE, "volume.detach"),
    R("POST", "/v1/volumes/{}/resize", api_volumes_resize, WRITE, "volume.resize"),
    R("GET", "/v1/volumes/{}/snapshots", api_volume_snapshots_list, ANY, "volume.snapshot.list"),
    R("POST", "/v1/volumes/{}/snapshots", api_volume_snapshots_create, WRITE,
      "volume.snapshot.create"),
    R("GET", "/v1/volumes/{}/snapshots/{}", api_volume_snapshots_get, ANY, "volume.snapshot.get"),
    R("DELETE", "/v1/volumes/{}/snapshots/{}", api_volume_snapshots_delete, WRITE,
      "volume.snapshot.delete"),
    R("GET", "/v1/vms/{}/snapshots", api_snapshots_list, ANY, "snapshot.list"),
    R("POST", "/v1/vms/{}/snapshots", api_snapshots_create, WRITE, "snapshot.create"),
    R("GET", "/v1/vms/{}/snapshots/{}", api_snapshots_get, ANY, "snapshot.get"),
    R("DELETE", "/v1/vms/{}/snapshots/{}", api_snapshots_delete, WRITE, "snapshot.delete"),
    R("POST", "/v1/vms/{}/snapshots/{}/revert", api_snapshots_revert, WRITE, "snapshot.revert"),
    R("GET", "/v1/backups", api_backups_list, ANY, "backup.list"),
    R("POST", "/v1/backups", api_backups_create, WRITE, "backup.create"),
    R("GET", "/v1/backups/{}", api_backups_get, ANY, "backup.get"),
    R("DELETE", "/v1/backups/{}", api_backups_delete, WRITE, "backup.delete"),
    R("POST", "/v1/backups/{}/restore", api_backups_restore, WRITE, "backup.restore"),
    {NULL, NULL, NULL, NULL, false, ANY, NULL},
};

/* Unauthenticated and polled: what it says is cheap to learn (health.h) and names nothing. A
 * store that does not answer is 503 with the usual error body, so a load balancer sees it by the
 * status alone. */
void
api_health(HttpRequest *r, void *ctx)
{
    Core *core = ctx;
    _cleanup_error_ NbError *err = NULL;
    HealthReport h;
    if (health_check(core, &h, &err) < 0)
        return http_reply_nb_error(r, err);
    json_t *hosts = json_pack("{s:I}", "total", (json_int_t)h.hosts_total);
    for (int i = 0; i < _HOST_CONN_MAX; i++)
        json_object_set_new(hosts, host_conn_to_string((HostConn)i), json_integer(h.hosts[i]));
    http_reply_json(r, 200,
                    json_pack("{s:s, s:s, s:s, s:o}", "status", "ok", "version", NIMBUS_VERSION,
                              "store", "ok", "hosts", hosts));
}

/* Readiness, for a load balancer or a service manager deciding whether to send work here:
 * 200 when the store answers, the local host is connected and the task workers run; else 503
 * with the same body, saying what failed. Unauthenticated like /v1/health, and as cheap. */
void
api_ready(HttpRequest *r, void *ctx)
{
    Core *core = ctx;
    ReadyReport rr;
    health_ready(core, &rr);
    const char *workers = rr.workers_ok ? "ok" : rr.tasks.stopping ? "stopping" : "stalled";
    json_t *tasks = json_pack("{s:s, s:i, s:i, s:I, s:I, s:I}", "status", workers, "workers",
                              (int)rr.tasks.workers, "busy", (int)rr.tasks.busy, "ready",
                              (json_int_t)rr.tasks.ready, "waiting", (json_int_t)rr.tasks.waiting,
                              "stalled_ms", (json_int_t)rr.tasks.stalled_ms);
    http_reply_json(r, rr.ready ? 200 : 503,
                    json_pack("{s:s, s:s, s:{s:s, s:s}, s:o}", "status",
                              rr.ready ? "ready" : "not_ready", "store", rr.store, "local_host",
                              "name", core->cfg.host_name, "connection",
                              host_conn_to_string(rr.local), "tasks", tasks));
}
