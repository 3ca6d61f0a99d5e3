/*
 * Each host's nimbus-agent, for the host networking libvirt cannot do (VXLAN bridges and their
 * flood lists, bandwidth shaping). A host's agent URL and secret are in its store record (`host
 * add --agent-url`, `--agent-secret-file`); the agents' certificates are checked against the
 * daemon's `agent-ca-file` (one bundle for all hosts).
 */
#pragma once

#include "../hv/agent_client.h"
#include "core.h"

/* A new client of host's agent: agent_client_free it. One request per call on its own
 * connection, so it is cheap. AGENT_UNAVAILABLE (503) when the host has no agent configured;
 * HOST_NOT_FOUND. */
int host_agent_client(Core *core, const char *host, AgentClient **ret, NbError **err);
