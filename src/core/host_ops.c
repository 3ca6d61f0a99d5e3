/*
 * The operator's host operations: add, change, enable or disable, remove, and maintenance (which
 * queues a migration for each VM on the host). The registry of connections is hosts.c.
 */
#include <stdlib.h>
#include <string.h>

#include "../util/log.h"
#include "../util/strutil.h"
#include "core.h"

int
host_ops_add(Core *core, json_t *body, Host *ret, NbError **err)
{
    Host h;
    if (host_create_request_parse(body, &h, err) < 0 || host_store_insert(core->store, &h, err) < 0)
        return -1;
    if (host_registry_add_host(core->registry, &h) < 0)
        return nb_error_set(err, NB_ERR_INTERNAL, "out of memory");
    log_info("host %s (%s) added; connecting", h.name, h.uri);
    return host_store_get(core->store, h.id, ret, err);
}

int
host_ops_remove(Core *core, const char *id_or_name, NbError **err)
{
    Host h;
    if (host_store_get(core->store, id_or_name, &h, err) < 0)
        return -1;
    if (streq(h.name, core->cfg.host_name))
        return nb_error_set(err, NB_ERR_HOST_IS_LOCAL,
                            "host '%s' is the daemon's own host (its --libvirt-uri)", h.name);
    /* Under the placement lock: no create can choose the host between the check and the
     * removal. */
    placement_lock(core->placement);
    int r = host_store_delete(core->store, h.id, err);
    placement_unlock(core->placement);
    if (r < 0)
        return -1;
    host_registry_remove_host(core->registry, h.name);
    log_info("host %s (%s) removed", h.name, h.uri);
    return 0;
}

int
host_ops_set_admin(Core *core, const char *id_or_name, HostAdmin admin, Host *ret, NbError **err)
{
    Host h;
    if (host_store_get(core->store, id_or_name, &h, err) < 0)
        return -1;
    placement_lock(core->placement);
    int r = host_store_set_admin(core->store, h.id, admin, err);
    placement_unlock(core->placement);
    if (r < 0)
        return -1;
    log_info("host %s is now %s", h.name, host_admin_to_string(admin));
    return host_store_get(core->store, h.id, ret, err);
}

int
host_ops_update(Core *core, const char *id_or_name, json_t *body, Host *ret, NbError **err)
{
    Host h;
    if (host_store_get(core->store, id_or_name, &h, err) < 0 ||
        host_update_request_parse(body, &h, err) < 0 || host_store_update(core->store, &h, err) < 0)
        return -1;
    return host_store_get(core->store, h.id, ret, err);
}

int
host_ops_maintenance(Core *core, const char *id_or_name, Host *ret, json_t **migrations,
                     json_t **skipped, NbError **err)
{
    Vm *vms = NULL;
    size_t n = 0;
    if (host_ops_set_admin(core, id_or_name, HOST_ADMIN_MAINTENANCE, ret, err) < 0 ||
        vm_store_list_by_host(core->store, ret->name, &vms, &n, err) < 0)
        return -1;
    json_t *moving = json_array(), *left = json_array();
    for (size_t i = 0; i < n; i++) {
        Vm vm;
        Task task;
        _cleanup_error_ NbError *e = NULL;
        if (vm_migrate_queue(core, NULL, vms[i].id, NULL, &vm, &task, &e) == 0) {
            json_array_append_new(moving, json_pack("{s:s, s:s, s:s}", "vm_id", vm.id, "vm_name",
                                                    vm.name, "task_id", task.id));
            vm_clear(&vm);
            task_clear(&task);
        } else {
            json_array_append_new(left,
                                  json_pack("{s:s, s:s, s:s, s:s}", "vm_id", vms[i].id, "vm_name",
                                            vms[i].name, "code", e->code, "reason", e->message));
        }
    }
    /* VMs on their way here arrive after this: say so, for the operator to move them again. */
    Vm *all = NULL;
    size_t n_all = 0;
    _cleanup_error_ NbError *e = NULL;
    if (vm_store_list(core->store, NULL, &all, &n_all, &e) == 0) {
        for (size_t i = 0; i < n_all; i++) {
            if (streq(all[i].migrate_to, ret->name))
                json_array_append_new(
                    left, json_pack("{s:s, s:s, s:s, s:s}", "vm_id", all[i].id, "vm_name",
                                    all[i].name, "code", NB_ERR_VM_BUSY, "reason",
                                    "migrating to this host; migrate it again once it arrives"));
        }
        vm_list_free(all, n_all);
    }
    log_info("host %s: maintenance; %zu migrations queued, %zu VMs skipped", ret->name,
             json_array_size(moving), json_array_size(left));
    vm_list_free(vms, n);
    *migrations = moving;
    *skipped = left;
    return 0;
}
