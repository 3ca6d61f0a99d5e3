/* The daemon's health (see health.h). */
#include <stdio.h>
#include <string.h>

#include "../util/error_codes.h"
#include "health.h"

static void
health_count_hosts(Core *core, HealthReport *ret)
{
    host_registry_counts(core->registry, ret->hosts);
    for (int i = 0; i < _HOST_CONN_MAX; i++)
        ret->hosts_total += ret->hosts[i];
}

int
health_check(Core *core, HealthReport *ret, NbError **err)
{
    memset(ret, 0, sizeof(*ret));
    health_count_hosts(core, ret);
    /* A read of a real table, not a pragma: the hosts table is what a store that lost its schema
     * or its file no longer has. The local host is always registered, so this finds a row. */
    Host local;
    _cleanup_error_ NbError *store_err = NULL;
    if (host_store_get(core->store, core->cfg.host_name, &local, &store_err) < 0)
        return nb_error_set(err, NB_ERR_STORE_UNAVAILABLE, "the store does not answer: %s",
                            store_err ? store_err->message : "unknown error");
    return 0;
}

void
health_ready(Core *core, ReadyReport *ret)
{
    memset(ret, 0, sizeof(*ret));
    HealthReport h;
    _cleanup_error_ NbError *err = NULL;
    bool store_ok = health_check(core, &h, &err) == 0;
    snprintf(ret->store, sizeof(ret->store), "%s", store_ok ? "ok" : err->message);
    ret->local = host_registry_get_state(core->registry, core->cfg.host_name);
    task_engine_stats(core->tasks, &ret->tasks);
    ret->workers_ok = ret->tasks.workers > 0 && !ret->tasks.stopping &&
                      ret->tasks.stalled_ms < HEALTH_WORKERS_STALLED_MS;
    ret->ready = store_ok && ret->local == HOST_CONN_UP && ret->workers_ok;
}
