/* Shared by the hv_*.c files only: the connection object, libvirt cleanup helpers and the error
 * helper that copies libvirt's thread-local error. */
#pragma once

#include <pthread.h>
#include <stdbool.h>

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include "hv.h"

struct HvConn {
    virConnectPtr conn; /* thread-safe itself; never replaced after open */
    char *uri;
    pthread_mutex_t lock; /* guards the callback registrations below */
    int lifecycle_id;     /* -1 when none registered */
    bool close_registered;
    int refs; /* hv_conn_ref / hv_conn_free; atomic */
};

/*
 * Fills *err with NB_ERR_HYPERVISOR and "<what>: <libvirt's last error message>". Call it right
 * after the failing libvirt call: any other libvirt call (even virDomainFree) resets the
 * thread-local error. Returns -1.
 */
int hv_error(NbError **err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* libvirt's last error code on this thread (VIR_ERR_OK when none). */
int hv_last_error_code(void);
/* libvirt's virDomainState as Nimbus's. */
HvDomainState hv_domain_state_from_libvirt(int state);
/* True once hv_events_init has registered the event loop implementation. */
bool hv_events_ready(void);
/* hv_eventloop.c: the epoll loop. register: before any connection (-errno); run_once: one
 * iteration, on the event thread (-errno). */
int hv_eventloop_register(void);
int hv_eventloop_run_once(void);
/* How many times the loop has woken up (tests: timers that share a wakeup). */
uint64_t hv_eventloop_iterations(void);

/* libvirt's object types are pointer typedefs, so these take a pointer to the pointer. Note
 * that every vir*Free resets libvirt's thread-local error: copy the error before scope exit. */
static inline void
hv_domain_freep(virDomainPtr *p)
{
    if (*p)
        virDomainFree(*p);
}

static inline void
hv_pool_freep(virStoragePoolPtr *p)
{
    if (*p)
        virStoragePoolFree(*p);
}

static inline void
hv_vol_freep(virStorageVolPtr *p)
{
    if (*p)
        virStorageVolFree(*p);
}

static inline void
hv_network_freep(virNetworkPtr *p)
{
    if (*p)
        virNetworkFree(*p);
}

static inline void
hv_stream_freep(virStreamPtr *p)
{
    if (*p)
        virStreamFree(*p);
}

#define _cleanup_domain_ _cleanup_(hv_domain_freep)
#define _cleanup_pool_ _cleanup_(hv_pool_freep)
#define _cleanup_vol_ _cleanup_(hv_vol_freep)
#define _cleanup_network_ _cleanup_(hv_network_freep)
#define _cleanup_stream_ _cleanup_(hv_stream_freep)

/* Looks a domain up by name: 1 and *ret when found, 0 when absent, -1 with *err on failure. */
int hv_domain_lookup(HvConn *c, const char *name, virDomainPtr *ret, NbError **err);
/* Like hv_domain_lookup, but absence is an error (0 or -1). */
int hv_domain_get(HvConn *c, const char *name, virDomainPtr *ret, NbError **err);
