#include "network_shaping.h"

#include <pthread.h>
#include <string.h>

#include "../model/bandwidth.h"
#include "../util/log.h"
#include "host_agent.h"

/* PATCHes of ports are one at a time: the agent's entry and the store's row of a port must end
 * up with the same limits when two callers change it at once. */
static pthread_mutex_t shaping_update_lock = PTHREAD_MUTEX_INITIALIZER;

static bool
port_is_limited(const Port *p)
{
    return p->net_in_kbit || p->net_out_kbit;
}

/* Sets (limits non-zero) or clears the shaping of tap on host. */
static int
shaping_apply(Core *core, const char *host, const char *port_id, uint32_t in_kbit,
              uint32_t out_kbit, NbError **err)
{
    char tap[NETWORK_IFNAME_MAX + 1];
    AgentClient *c = NULL;
    port_tap_name(port_id, tap);
    if (host_agent_client(core, host, &c, err) < 0)
        return -1;
    int r = in_kbit || out_kbit ? agent_shaping_set(c, tap, in_kbit, out_kbit, err)
                                : agent_shaping_clear(c, tap, err);
    agent_client_free(c);
    if (r == 0 && (in_kbit || out_kbit))
        log_info("port %s: tap %s on host %s shaped to in %u / out %u kbit/s (0: unlimited)",
                 port_id, tap, host, in_kbit, out_kbit);
    else if (r == 0)
        log_info("port %s: shaping of tap %s on host %s cleared", port_id, tap, host);
    return r;
}

int
network_shaping_plug(Core *core, const char *host, const Port *ports, size_t n_ports, NbError **err)
{
    for (size_t i = 0; i < n_ports; i++) {
        if (!port_is_limited(&ports[i]))
            continue;
        if (shaping_apply(core, host, ports[i].id, ports[i].net_in_kbit, ports[i].net_out_kbit,
                          err) < 0)
            return -1;
    }
    return 0;
}

void
network_shaping_unplug(Core *core, const char *host, const Port *ports, size_t n_ports)
{
    for (size_t i = 0; i < n_ports; i++) {
        _cleanup_error_ NbError *err = NULL;
        if (port_is_limited(&ports[i]) && shaping_apply(core, host, ports[i].id, 0, 0, &err) < 0)
            log_warn("port %s: cannot clear its shaping on host %s (%s); the agent keeps an entry "
                     "for a tap that is gone there",
                     ports[i].id, host, err->message);
    }
}

int
network_shaping_port_update(Core *core, const Principal *who, const char *port_id, json_t *body,
                            Port *ret, NbError **err)
{
    BandwidthPatch patch;
    Port p;
    Vm vm;
    if (bandwidth_patch_from_request(body, &patch, err) < 0)
        return -1;
    pthread_mutex_lock(&shaping_update_lock);
    int r = -1;
    if (port_store_get(core->store, principal_scope(who), port_id, &p, err) < 0)
        goto unlock;
    if (vm_store_get(core->store, NULL, p.vm_id, &vm, err) < 0)
        goto unlock;
    uint32_t in_kbit = patch.has_in ? patch.in_kbit : p.net_in_kbit;
    uint32_t out_kbit = patch.has_out ? patch.out_kbit : p.net_out_kbit;
    bool changed = in_kbit != p.net_in_kbit || out_kbit != p.net_out_kbit;
    if (changed && vm.task_id[0]) {
        /* A start or a migration reads the port's limits for its host at some step: changing
         * them under it could leave a host with the old ones. */
        nb_error_set(err, NB_ERR_VM_BUSY,
                     "another task is working on the port's VM; retry when it has finished");
        goto out;
    }
    /* Whenever the VM has a host, running or not: a stopped VM's host keeps its tap's entry
     * (shaped again when the tap reappears), and it must not keep the old limits. */
    if (changed && vm.host[0] && (port_is_limited(&p) || in_kbit || out_kbit) &&
        shaping_apply(core, vm.host, p.id, in_kbit, out_kbit, err) < 0)
        goto out;
    if (changed && port_store_set_bandwidth(core->store, p.id, in_kbit, out_kbit, err) < 0) {
        /* The host has the new limits, the store the old: put the host back as it was. */
        _cleanup_error_ NbError *undo = NULL;
        if (vm.host[0] && (port_is_limited(&p) || in_kbit || out_kbit) &&
            shaping_apply(core, vm.host, p.id, p.net_in_kbit, p.net_out_kbit, &undo) < 0)
            log_error("port %s: cannot restore its old limits on host %s: %s", p.id, vm.host,
                      undo->message);
        goto out;
    }
    p.net_in_kbit = in_kbit;
    p.net_out_kbit = out_kbit;
    *ret = p;
    r = 0;
out:
    vm_clear(&vm);
unlock:
    pthread_mutex_unlock(&shaping_update_lock);
    return r;
}

void
network_shaping_vm_running(Core *core, const Vm *vm, const char *host)
{
    _cleanup_error_ NbError *err = NULL;
    _cleanup_free_ Port *ports = NULL;
    size_t n = 0;
    if (port_store_list_by_vm(core->store, vm->id, &ports, &n, &err) < 0 ||
        network_shaping_plug(core, host, ports, n, &err) < 0)
        log_warn("vm %s: shaping its NICs on %s now failed (the agent's check will): %s", vm->id,
                 host, err->message);
}
