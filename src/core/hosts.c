/*
 * The hosts Nimbus drives: one registry entry and one libvirt connection per host. The daemon's
 * own host (its --libvirt-uri) is registered as "local"; it must answer at start, the others are
 * reached when they can be: a host that does not answer is down, its VMs unknown, and the
 * reconciler keeps trying with backoff.
 */
#include <stdlib.h>
#include <string.h>

#include "../util/log.h"
#include "../util/strutil.h"
#include "core.h"

#define HOST_BACKOFF_MAX_S 30

static CoreHost *
core_host_find_locked(Core *core, const char *name)
{
    for (size_t i = 0; i < core->n_hosts; i++) {
        if (!core->hosts[i]->removed && streq(core->hosts[i]->name, name))
            return core->hosts[i];
    }
    return NULL;
}

HvConn *
core_host_conn(Core *core, const char *host_name)
{
    pthread_mutex_lock(&core->hosts_lock);
    CoreHost *h = core_host_find_locked(core, host_name);
    HvConn *c = h ? hv_conn_ref(h->hv) : NULL;
    pthread_mutex_unlock(&core->hosts_lock);
    return c;
}

bool
core_host_is_up(Core *core, const char *host_name)
{
    HvConn *c = core_host_conn(core, host_name);
    bool up = c != NULL;
    hv_conn_free(c);
    return up;
}

HvConn *
core_local_conn(Core *core)
{
    return core_host_conn(core, core->cfg.host_name);
}

CoreHost **
core_hosts_snapshot(Core *core, size_t *ret_n)
{
    pthread_mutex_lock(&core->hosts_lock);
    CoreHost **copy = calloc(core->n_hosts ? core->n_hosts : 1, sizeof(*copy));
    size_t n = 0;
    for (size_t i = 0; copy && i < core->n_hosts; i++) {
        if (!core->hosts[i]->removed)
            copy[n++] = core->hosts[i];
    }
    pthread_mutex_unlock(&core->hosts_lock);
    *ret_n = n;
    return copy;
}

static CoreHost *
core_host_register(Core *core, const Host *h)
{
    CoreHost *ch = calloc(1, sizeof(*ch));
    if (!ch)
        return NULL;
    ch->core = core;
    memcpy(ch->id, h->id, sizeof(ch->id));
    snprintf(ch->name, sizeof(ch->name), "%s", h->name);
    snprintf(ch->uri, sizeof(ch->uri), "%s", h->uri);
    ch->backoff_s = 1;
    pthread_mutex_lock(&core->hosts_lock);
    CoreHost **grown = realloc(core->hosts, (core->n_hosts + 1) * sizeof(*grown));
    if (grown) {
        core->hosts = grown;
        core->hosts[core->n_hosts++] = ch;
    }
    pthread_mutex_unlock(&core->hosts_lock);
    if (!grown) {
        free(ch);
        return NULL;
    }
    return ch;
}

/* Installs (or, with NULL, drops) the host's connection; the old one is released. A host
 * removed while it was being connected gets none. */
static void
core_host_set_conn(Core *core, CoreHost *h, HvConn *c)
{
    pthread_mutex_lock(&core->hosts_lock);
    HvConn *old = h->hv;
    HvConn *installed = h->removed ? NULL : c;
    h->hv = installed;
    pthread_mutex_unlock(&core->hosts_lock);
    hv_conn_free(old);
    if (installed != c)
        hv_conn_free(c);
}

int
core_host_connect(Core *core, CoreHost *h, NbError **err)
{
    HvConn *c = NULL;
    HostFacts facts;
    if (reconciler_open_conn(h, &c, err) < 0 ||
        hv_pool_ensure(c, core->cfg.pool_name, core->cfg.pool_path, err) < 0 ||
        hv_network_ensure_active(c, core->cfg.network, err) < 0 ||
        hv_host_facts(c, core->cfg.pool_name, &facts, err) < 0 ||
        host_store_set_facts(core->store, h->id, HOST_CONN_UP, &facts, NULL, err) < 0) {
        hv_conn_free(c);
        return -1;
    }
    core_host_set_conn(core, h, c);
    h->down_recorded = false;
    h->backoff_s = 1;
    h->next_sync_ms = 0;
    log_info("host %s (%s): connected; %u CPUs, %ju MiB, pool %ju GiB", h->name, h->uri,
             facts.vcpus, (uintmax_t)facts.ram_mib, (uintmax_t)facts.disk_gib);
    return 0;
}

void
core_host_mark_down(Core *core, CoreHost *h, const char *why)
{
    core_host_set_conn(core, h, NULL);
    h->next_try_ms = nb_monotonic_ms() + (uint64_t)h->backoff_s * 1000;
    h->backoff_s = h->backoff_s * 2 > HOST_BACKOFF_MAX_S ? HOST_BACKOFF_MAX_S : h->backoff_s * 2;
    if (h->down_recorded)
        return;
    _cleanup_error_ NbError *err = NULL;
    log_error("host %s (%s) is down: %s; its VMs are now unknown", h->name, h->uri, why);
    if (host_store_set_facts(core->store, h->id, HOST_CONN_DOWN, NULL, why, &err) < 0 ||
        vm_store_mark_host_unknown(core->store, h->name, &err) < 0)
        log_error("host %s: cannot record it down: %s", h->name, err->message);
    else
        h->down_recorded = true;
}

int
core_hosts_start(Core *core, NbError **err)
{
    Host *hosts = NULL;
    size_t n = 0;
    if (host_store_ensure_local(core->store, core->cfg.host_name, core->cfg.libvirt_uri, err) < 0 ||
        host_store_list(core->store, &hosts, &n, err) < 0)
        return -1;
    int r = 0;
    for (size_t i = 0; i < n && r == 0; i++) {
        CoreHost *ch = core_host_register(core, &hosts[i]);
        if (!ch) {
            r = nb_error_set(err, NB_ERR_INTERNAL, "out of memory");
            break;
        }
        _cleanup_error_ NbError *e = NULL;
        if (core_host_connect(core, ch, &e) == 0)
            continue;
        if (streq(ch->name, core->cfg.host_name)) {
            nb_error_propagate(err, TAKE_PTR(e));
            r = -1;
        } else {
            core_host_mark_down(core, ch, e->message);
        }
    }
    free(hosts);
    return r;
}

void
core_hosts_stop(Core *core)
{
    for (size_t i = 0; i < core->n_hosts; i++) {
        hv_conn_free(core->hosts[i]->hv);
        free(core->hosts[i]);
    }
    free(core->hosts);
    core->hosts = NULL;
    core->n_hosts = 0;
}

/* ---- the API's host operations ---- */

int
core_host_add(Core *core, json_t *body, Host *ret, NbError **err)
{
    Host h;
    if (host_create_request_parse(body, &h, err) < 0 || host_store_insert(core->store, &h, err) < 0)
        return -1;
    if (!core_host_register(core, &h))
        return nb_error_set(err, NB_ERR_INTERNAL, "out of memory");
    log_info("host %s (%s) added; connecting", h.name, h.uri);
    reconciler_wake(core->reconciler);
    return host_store_get(core->store, h.id, ret, err);
}

int
core_host_remove(Core *core, const char *id_or_name, NbError **err)
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
    pthread_mutex_lock(&core->hosts_lock);
    CoreHost *ch = core_host_find_locked(core, h.name);
    HvConn *old = NULL;
    if (ch) {
        ch->removed = true;
        old = ch->hv;
        ch->hv = NULL;
    }
    pthread_mutex_unlock(&core->hosts_lock);
    hv_conn_free(old);
    log_info("host %s (%s) removed", h.name, h.uri);
    return 0;
}

int
core_host_set_admin(Core *core, const char *id_or_name, HostAdmin admin, Host *ret, NbError **err)
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
core_host_update(Core *core, const char *id_or_name, json_t *body, Host *ret, NbError **err)
{
    Host h;
    if (host_store_get(core->store, id_or_name, &h, err) < 0 ||
        host_update_request_parse(body, &h, err) < 0 || host_store_update(core->store, &h, err) < 0)
        return -1;
    return host_store_get(core->store, h.id, ret, err);
}

int
core_host_maintenance(Core *core, const char *id_or_name, Host *ret, json_t **migrations,
                      json_t **skipped, NbError **err)
{
    Vm *vms = NULL;
    size_t n = 0;
    if (core_host_set_admin(core, id_or_name, HOST_ADMIN_MAINTENANCE, ret, err) < 0 ||
        vm_store_list_by_host(core->store, ret->name, &vms, &n, err) < 0)
        return -1;
    json_t *moving = json_array(), *left = json_array();
    for (size_t i = 0; i < n; i++) {
        Vm vm;
        Task task;
        _cleanup_error_ NbError *e = NULL;
        if (vm_ops_migrate(core, NULL, vms[i].id, NULL, &vm, &task, &e) == 0) {
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

/* ---- images on hosts ---- */

int
core_image_ensure_on(Core *core, const Image *img, const char *host_name, HvConn *dst,
                     NbError **err)
{
    if (streq(host_name, core->cfg.host_name))
        return 0; /* uploads land there */
    /* Copied already: no need to queue behind a copy under way to some host. */
    int ready = image_copy_get(core->store, img->id, host_name, err);
    if (ready < 0)
        return -1;
    if (ready == IMAGE_COPY_READY)
        return 0;
    pthread_mutex_lock(&core->copy_lock);
    int r = -1;
    int state = image_copy_get(core->store, img->id, host_name, err);
    if (state < 0)
        goto out;
    if (state == IMAGE_COPY_READY) {
        r = 0;
        goto out;
    }
    if (state == IMAGE_COPY_NONE) {
        /* Never copied there: if the host sees the volume, the pool is shared storage. */
        int seen = hv_vol_exists(dst, core->cfg.pool_name, img->volume, err);
        if (seen != 0) {
            r = seen < 0 ? -1 : 0;
            goto out;
        }
    }
    /* Not there, or a copy cut short by a crash: copy (again). */
    HvConn *src = core_local_conn(core);
    if (!src) {
        nb_error_set(err, NB_ERR_HOST_DOWN, "the local host, which holds the images, is down");
        goto out;
    }
    log_info("image %s: copying to host %s", img->id, host_name);
    if (image_copy_set(core->store, img->id, host_name, IMAGE_COPY_COPYING, err) == 0 &&
        hv_vol_copy(src, dst, core->cfg.pool_name, img->volume, err) == 0 &&
        image_copy_set(core->store, img->id, host_name, IMAGE_COPY_READY, err) == 0)
        r = 0;
    hv_conn_free(src);
out:
    pthread_mutex_unlock(&core->copy_lock);
    return r;
}
