/*
 * systemd's service notifications, without libsystemd: READY=1 once the API serves, STOPPING=1
 * on the way out, and WATCHDOG=1 pings while the daemon is alive, when the unit asks for them
 * (Type=notify, WatchdogSec=). Outside systemd ($NOTIFY_SOCKET unset) every call does nothing.
 */
#pragma once

#include "../core/core.h"

/* Sends one notification ("READY=1\nSTATUS=..."): 0, or -errno (logged once by the caller). */
int sd_notify_send(const char *msg);

/* With $WATCHDOG_USEC set (and $WATCHDOG_PID ours or unset), starts a thread that sends
 * WATCHDOG=1 every half interval while the store answers and the task workers are not stalled
 * (health_ready's liveness parts; the local libvirt being down is no reason to be restarted),
 * so that systemd restarts a nimbusd that hangs. 0 also when not asked for; -errno. */
int sd_notify_watchdog_start(Core *core);
void sd_notify_watchdog_stop(void);
