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
host_registry_find_locked(Core *core, const char *name)
{
    for (size_t i = 0; i < core->n_hosts; i++) {
        if (!core->hosts[i]->removed && streq(core->hosts[i]->name, name))
            return core->hosts[i];
    }
    return NULL;
}

HvConn *
host_registry_conn(Core *core, const char *host_name)
{
    pthread_mutex_lock(&core->hosts_lock);
    CoreHost *h = host_registry_find_locked(core, host_name);
    HvConn *c = h ? hv_conn_ref(h->hv) : NULL;
    pthread_mutex_unlock(&core->hosts_lock);
    return c;
}

HostConn
host_registry_state(Core *core, const char *host_name)
{
    pthread_mutex_lock(&core->hosts_lock);
    CoreHost *h = host_registry_find_locked(core, host_name);
    HostConn st = !h                 ? HOST_CONN_DOWN
                  : h->hv            ? HOST_CONN_UP
                  : h->down_recorded ? HOST_CONN_DOWN
                                     : HOST_CONN_CONNECTING;
    pthread_mutex_unlock(&core->hosts_lock);
    return st;
}

bool
host_registry_is_up(Core *core, const char *host_name)
{
    HvConn *c = host_registry_conn(core, host_name);
    bool up = c != NULL;
    hv_conn_free(c);
    return up;
}

HvConn *
host_registry_local_conn(Core *core)
{
    return host_registry_conn(core, core->cfg.host_name);
}

CoreHost **
host_registry_snapshot(Core *core, size_t *ret_n)
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
host_registry_register(Core *core, const Host *h)
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
host_registry_set_conn(Core *core, CoreHost *h, HvConn *c)
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
host_registry_connect(Core *core, CoreHost *h, NbError **err)
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
    host_registry_set_conn(core, h, c);
    h->down_recorded = false;
    h->backoff_s = 1;
    h->next_sync_ms = 0;
    log_info("host %s (%s): connected; %u CPUs, %ju MiB, pool %ju GiB", h->name, h->uri,
             facts.vcpus, (uintmax_t)facts.ram_mib, (uintmax_t)facts.disk_gib);
    return 0;
}

void
host_registry_mark_down(Core *core, CoreHost *h, const char *why)
{
    host_registry_set_conn(core, h, NULL);
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
host_registry_start(Core *core, NbError **err)
{
    Host *hosts = NULL;
    size_t n = 0;
    if (host_store_ensure_local(core->store, core->cfg.host_name, core->cfg.libvirt_uri, err) < 0 ||
        host_store_list(core->store, &hosts, &n, err) < 0)
        return -1;
    int r = 0;
    for (size_t i = 0; i < n && r == 0; i++) {
        CoreHost *ch = host_registry_register(core, &hosts[i]);
        if (!ch) {
            r = nb_error_set(err, NB_ERR_INTERNAL, "out of memory");
            break;
        }
        _cleanup_error_ NbError *e = NULL;
        if (host_registry_connect(core, ch, &e) == 0)
            continue;
        if (streq(ch->name, core->cfg.host_name)) {
            nb_error_propagate(err, TAKE_PTR(e));
            r = -1;
        } else {
            host_registry_mark_down(core, ch, e->message);
        }
    }
    free(hosts);
    return r;
}

void
host_registry_stop(Core *core)
{
    for (size_t i = 0; i < core->n_hosts; i++) {
        hv_conn_free(core->hosts[i]->hv);
        free(core->hosts[i]);
    }
    free(core->hosts);
    core->hosts = NULL;
    core->n_hosts = 0;
}

int
host_registry_add(Core *core, const Host *h)
{
    if (!host_registry_register(core, h))
        return -1;
    reconciler_wake(core->reconciler);
    return 0;
}

void
host_registry_remove(Core *core, const char *name)
{
    pthread_mutex_lock(&core->hosts_lock);
    CoreHost *ch = host_registry_find_locked(core, name);
    HvConn *old = NULL;
    if (ch) {
        ch->removed = true;
        old = ch->hv;
        ch->hv = NULL;
    }
    pthread_mutex_unlock(&core->hosts_lock);
    hv_conn_free(old);
}
