/*
 * nimbus-agent's ipsets in the kernel, through libipset (agent_ipset.h for what they are). Only
 * called with names agent_ipset.c accepted.
 */
#pragma once

#include "../util/error.h"
#include "agent_ipset.h"

typedef struct AgentIpsetRun AgentIpsetRun;

/* libipset's session (its set types loaded). NULL with HYPERVISOR_ERROR. */
AgentIpsetRun *agent_ipset_run_new(NbError **err);
void agent_ipset_run_free(AgentIpsetRun *r);

/* The set (hash:ip, family inet) made if missing, with exactly s's members, replaced at once:
 * a temporary is filled, swapped with the set and destroyed, so a packet never meets a half
 * list. HYPERVISOR_ERROR with libipset's reason. */
int agent_ipset_run_apply(AgentIpsetRun *r, const AgentIpset *s, NbError **err);
/* Destroys the set and a temporary left by a crash; absent is fine. 0: gone; 1: the kernel
 * refuses because a rule still references it (kept; try again later); -1 with *err. */
int agent_ipset_run_destroy(AgentIpsetRun *r, const char *name, NbError **err);
