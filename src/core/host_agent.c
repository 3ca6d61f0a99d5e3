/*
 * Clients of the hosts' agents, from the store's host records. The secret is read from the
 * store on each call (never cached), so a host re-added with a new secret is used at once.
 */
#include "host_agent.h"

#include <string.h>

int
host_agent_client(Core *core, const char *host, AgentClient **ret, NbError **err)
{
    Host h;
    if (host_store_get(core->store, host, &h, err) < 0)
        return -1;
    int r = -1;
    if (!h.agent_url[0] || !h.agent_secret[0]) {
        nb_error_set(err, NB_ERR_AGENT_UNAVAILABLE,
                     "host '%s' has no nimbus-agent configured (host add --agent-url, "
                     "--agent-secret-file), so it cannot carry vxlan networks or NIC bandwidth "
                     "limits",
                     h.name);
    } else if (!core->cfg.agent_ca_file) {
        nb_error_set(err, NB_ERR_AGENT_UNAVAILABLE,
                     "nimbusd has no agent-ca-file setting, so it cannot verify host '%s''s agent",
                     h.name);
    } else {
        *ret = agent_client_new(h.agent_url, h.agent_secret, core->cfg.agent_ca_file, err);
        r = *ret ? 0 : -1;
    }
    explicit_bzero(h.agent_secret, sizeof(h.agent_secret));
    return r;
}
