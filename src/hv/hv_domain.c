/* Domain lifecycle by name. Every call is an idempotent step: asking for the state a domain is
 * already in succeeds, and removing an absent domain succeeds. */
#include "hv_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../util/log.h"
#include "../util/strutil.h"
#include "../util/timeutil.h"

int
hv_domain_lookup(HvConn *c, const char *name, virDomainPtr *ret, NbError **err)
{
    virDomainPtr dom = virDomainLookupByName(c->conn, name);
    if (!dom) {
        if (hv_last_error_code() == VIR_ERR_NO_DOMAIN)
            return 0;
        return hv_error(err, "looking up domain '%s'", name);
    }
    *ret = dom;
    return 1;
}

int
hv_domain_get(HvConn *c, const char *name, virDomainPtr *ret, NbError **err)
{
    int r = hv_domain_lookup(c, name, ret, err);
    if (r == 0)
        return nb_error_set(err, NB_ERR_HYPERVISOR, "domain '%s' not found", name);
    return r < 0 ? -1 : 0;
}

HvDomainState
hv_domain_state_from_libvirt(int state)
{
    switch (state) {
    case VIR_DOMAIN_RUNNING:
        return HV_DOMAIN_RUNNING;
    case VIR_DOMAIN_PAUSED:
        return HV_DOMAIN_PAUSED;
    case VIR_DOMAIN_SHUTOFF:
        return HV_DOMAIN_SHUTOFF;
    case VIR_DOMAIN_CRASHED:
        return HV_DOMAIN_CRASHED;
    default:
        return HV_DOMAIN_OTHER;
    }
}

/* The state of a looked-up domain; a domain that vanished meanwhile is HV_DOMAIN_NONE. */
static int
hv_dom_state(virDomainPtr dom, const char *name, HvDomainState *ret, NbError **err)
{
    int state = 0, reason = 0;
    if (virDomainGetState(dom, &state, &reason, 0) < 0) {
        if (hv_last_error_code() == VIR_ERR_NO_DOMAIN) {
            *ret = HV_DOMAIN_NONE;
            return 0;
        }
        return hv_error(err, "getting the state of domain '%s'", name);
    }
    *ret = hv_domain_state_from_libvirt(state);
    return 0;
}

/* 1 if active (running, paused, ...), 0 if not or gone, -1 on error. */
static int
hv_dom_is_active(virDomainPtr dom, const char *name, NbError **err)
{
    int r = virDomainIsActive(dom);
    if (r < 0) {
        if (hv_last_error_code() == VIR_ERR_NO_DOMAIN)
            return 0;
        return hv_error(err, "checking whether domain '%s' is active", name);
    }
    return r;
}

int
hv_domain_define(HvConn *c, const char *xml, NbError **err)
{
    _cleanup_domain_ virDomainPtr dom = virDomainDefineXML(c->conn, xml);
    if (!dom)
        return hv_error(err, "defining a domain");
    return 0;
}

/* Starts the domain with flags (VIR_DOMAIN_START_*); running already: 0. */
static int
hv_dom_start(HvConn *c, const char *name, unsigned flags, NbError **err)
{
    _cleanup_domain_ virDomainPtr dom = NULL;
    if (hv_domain_get(c, name, &dom, err) < 0)
        return -1;
    int active = hv_dom_is_active(dom, name, err);
    if (active != 0)
        return active < 0 ? -1 : 0;
    if (virDomainCreateWithFlags(dom, flags) < 0) {
        /* Someone else may have started it between the check and the call. */
        if (hv_last_error_code() == VIR_ERR_OPERATION_INVALID &&
            hv_dom_is_active(dom, name, NULL) == 1)
            return 0;
        return hv_error(err, "starting domain '%s'%s", name,
                        flags & VIR_DOMAIN_START_PAUSED ? " paused" : "");
    }
    return 0;
}

int
hv_domain_start(HvConn *c, const char *name, NbError **err)
{
    return hv_dom_start(c, name, 0, err);
}

int
hv_domain_start_paused(HvConn *c, const char *name, NbError **err)
{
    return hv_dom_start(c, name, VIR_DOMAIN_START_PAUSED, err);
}

/* Destroys a looked-up domain; one that is not running (any more) is fine. */
static int
hv_dom_destroy(virDomainPtr dom, const char *name, NbError **err)
{
    int active = hv_dom_is_active(dom, name, err);
    if (active <= 0)
        return active;
    if (virDomainDestroy(dom) < 0) {
        int code = hv_last_error_code();
        if (code == VIR_ERR_NO_DOMAIN)
            return 0;
        if (code == VIR_ERR_OPERATION_INVALID && hv_dom_is_active(dom, name, NULL) == 0)
            return 0;
        return hv_error(err, "destroying domain '%s'", name);
    }
    return 0;
}

int
hv_domain_destroy(HvConn *c, const char *name, NbError **err)
{
    _cleanup_domain_ virDomainPtr dom = NULL;
    int r = hv_domain_lookup(c, name, &dom, err);
    if (r <= 0)
        return r;
    return hv_dom_destroy(dom, name, err);
}

int
hv_domain_stop(HvConn *c, const char *name, uint64_t timeout_ms, NbError **err)
{
    _cleanup_domain_ virDomainPtr dom = NULL;
    if (hv_domain_get(c, name, &dom, err) < 0)
        return -1;
    int active = hv_dom_is_active(dom, name, err);
    if (active <= 0)
        return active;

    if (virDomainShutdown(dom) < 0) {
        /* Not fatal: the guest may have just stopped, or have no ACPI; destroy comes next. */
        virErrorPtr e = virGetLastError();
        log_debug("graceful shutdown of '%s' refused: %s", name,
                  e && e->message ? e->message : "unknown");
    } else {
        uint64_t deadline = nb_monotonic_ms() + timeout_ms;
        for (;;) {
            active = hv_dom_is_active(dom, name, err);
            if (active <= 0)
                return active;
            if (nb_monotonic_ms() >= deadline)
                break;
            nanosleep(&(struct timespec){.tv_nsec = 200 * 1000 * 1000}, NULL);
        }
        log_info("domain '%s' did not shut down within %llu ms, destroying it", name,
                 (unsigned long long)timeout_ms);
    }
    return hv_dom_destroy(dom, name, err);
}

/*
 * The shape of reboot, suspend and resume: the domain must be in `from`; being in `done`
 * already (when done is not `from`) counts as success, so a step that ran before a crash can
 * run again.
 */
static int
hv_domain_transition(HvConn *c, const char *name, HvDomainState from, HvDomainState done,
                     int (*call)(virDomainPtr dom), const char *doing, NbError **err)
{
    _cleanup_domain_ virDomainPtr dom = NULL;
    HvDomainState st = HV_DOMAIN_NONE;
    if (hv_domain_get(c, name, &dom, err) < 0 || hv_dom_state(dom, name, &st, err) < 0)
        return -1;
    if (st == done && done != from)
        return 0;
    if (st != from)
        return nb_error_set(err, NB_ERR_INVALID_STATE, "domain '%s' is %s, not %s", name,
                            hv_domain_state_to_string(st), hv_domain_state_to_string(from));
    if (call(dom) < 0)
        return hv_error(err, "%s domain '%s'", doing, name);
    return 0;
}

static int
hv_call_reboot(virDomainPtr dom)
{
    return virDomainReboot(dom, 0);
}

int
hv_domain_reboot(HvConn *c, const char *name, NbError **err)
{
    return hv_domain_transition(c, name, HV_DOMAIN_RUNNING, HV_DOMAIN_RUNNING, hv_call_reboot,
                                "rebooting", err);
}

int
hv_domain_suspend(HvConn *c, const char *name, NbError **err)
{
    return hv_domain_transition(c, name, HV_DOMAIN_RUNNING, HV_DOMAIN_PAUSED, virDomainSuspend,
                                "suspending", err);
}

int
hv_domain_resume(HvConn *c, const char *name, NbError **err)
{
    return hv_domain_transition(c, name, HV_DOMAIN_PAUSED, HV_DOMAIN_RUNNING, virDomainResume,
                                "resuming", err);
}

int
hv_domain_undefine(HvConn *c, const char *name, NbError **err)
{
    _cleanup_domain_ virDomainPtr dom = NULL;
    int r = hv_domain_lookup(c, name, &dom, err);
    if (r <= 0)
        return r;

    int persistent = virDomainIsPersistent(dom);
    if (persistent < 0) {
        if (hv_last_error_code() == VIR_ERR_NO_DOMAIN)
            return 0;
        return hv_error(err, "checking whether domain '%s' is persistent", name);
    }
    if (hv_dom_destroy(dom, name, err) < 0)
        return -1;
    if (!persistent)
        return 0; /* a transient domain is gone once destroyed */

    unsigned int flags = VIR_DOMAIN_UNDEFINE_MANAGED_SAVE | VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA |
                         VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA | VIR_DOMAIN_UNDEFINE_NVRAM;
    if (virDomainUndefineFlags(dom, flags) == 0)
        return 0;
    int code = hv_last_error_code();
    if (code == VIR_ERR_NO_DOMAIN)
        return 0;
    if (code != VIR_ERR_NO_SUPPORT && code != VIR_ERR_INVALID_ARG &&
        code != VIR_ERR_ARGUMENT_UNSUPPORTED)
        return hv_error(err, "undefining domain '%s'", name);

    /* Drivers without NVRAM (or checkpoint) support reject the flag. */
    if (virDomainUndefineFlags(
            dom, flags & ~(unsigned int)(VIR_DOMAIN_UNDEFINE_NVRAM |
                                         VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA)) < 0) {
        if (hv_last_error_code() == VIR_ERR_NO_DOMAIN)
            return 0;
        return hv_error(err, "undefining domain '%s'", name);
    }
    return 0;
}

int
hv_domain_get_state(HvConn *c, const char *name, HvDomainState *ret, NbError **err)
{
    _cleanup_domain_ virDomainPtr dom = NULL;
    int r = hv_domain_lookup(c, name, &dom, err);
    if (r < 0)
        return -1;
    if (r == 0) {
        *ret = HV_DOMAIN_NONE;
        return 0;
    }
    return hv_dom_state(dom, name, ret, err);
}

static void
hv_ifaces_free(virDomainInterfacePtr *ifaces, int n)
{
    if (!ifaces)
        return;
    for (int i = 0; i < n; i++)
        virDomainInterfaceFree(ifaces[i]);
    free(ifaces);
}

int
hv_domain_get_ipv4(HvConn *c, const char *name, char *buf, size_t len, NbError **err)
{
    if (len == 0)
        return nb_error_set(err, NB_ERR_INTERNAL, "no room for an address");
    buf[0] = '\0';
    _cleanup_domain_ virDomainPtr dom = NULL;
    if (hv_domain_get(c, name, &dom, err) < 0)
        return -1;

    virDomainInterfacePtr *ifaces = NULL;
    int n = virDomainInterfaceAddresses(dom, &ifaces, VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_LEASE, 0);
    if (n < 0)
        return hv_error(err, "reading the DHCP leases of domain '%s'", name);

    int r = 0;
    for (int i = 0; i < n && !buf[0]; i++) {
        for (unsigned int j = 0; j < ifaces[i]->naddrs; j++) {
            virDomainIPAddressPtr a = &ifaces[i]->addrs[j];
            if (a->type != VIR_IP_ADDR_TYPE_IPV4 || !a->addr)
                continue;
            if ((size_t)snprintf(buf, len, "%s", a->addr) >= len) {
                buf[0] = '\0';
                r = nb_error_set(err, NB_ERR_INTERNAL, "address '%s' does not fit", a->addr);
            }
            break;
        }
        if (r < 0)
            break;
    }
    hv_ifaces_free(ifaces, n);
    return r;
}

static void
hv_domains_free(virDomainPtr *doms, int n)
{
    if (!doms)
        return;
    for (int i = 0; i < n; i++)
        virDomainFree(doms[i]);
    free(doms);
}

/* The name of a listed domain: false when it is not one of prefix's (or its name does not fit). */
static bool
hv_domain_info_fill(virDomainPtr dom, const char *prefix, HvDomainInfo *info)
{
    const char *name = virDomainGetName(dom);
    if (!name || !str_startswith(name, prefix ? prefix : ""))
        return false;
    if ((size_t)snprintf(info->name, sizeof(info->name), "%s", name) >= sizeof(info->name)) {
        log_warn("skipping domain with an overlong name '%s'", name);
        return false;
    }
    return true;
}

/* One fallback per domain: libvirt before 1.2.8, or a driver without bulk stats. */
static int
hv_domain_list_one_by_one(HvConn *c, const char *prefix, HvDomainInfo **ret, size_t *ret_n,
                          NbError **err)
{
    virDomainPtr *doms = NULL;
    int n = virConnectListAllDomains(c->conn, &doms, 0);
    if (n < 0)
        return hv_error(err, "listing domains");

    int r = 0;
    size_t count = 0;
    HvDomainInfo *infos = calloc(n > 0 ? (size_t)n : 1, sizeof(*infos));
    if (!infos) {
        r = nb_error_set(err, NB_ERR_INTERNAL, "out of memory");
        goto out;
    }
    for (int i = 0; i < n; i++) {
        HvDomainInfo *info = &infos[count];
        if (!hv_domain_info_fill(doms[i], prefix, info))
            continue;
        if (hv_dom_state(doms[i], info->name, &info->state, err) < 0) {
            r = -1;
            goto out;
        }
        if (info->state == HV_DOMAIN_NONE)
            continue; /* undefined since the listing */
        count++;
    }
out:
    hv_domains_free(doms, n);
    if (r < 0) {
        free(infos);
        return r;
    }
    *ret = infos;
    *ret_n = count;
    return 0;
}

int
hv_domain_list(HvConn *c, const char *prefix, HvDomainInfo **ret, size_t *ret_n, NbError **err)
{
    /* One round trip for every domain and its state: a host with hundreds of domains costs no
     * more calls than one with a single domain. */
    virDomainStatsRecordPtr *recs = NULL;
    int n = virConnectGetAllDomainStats(c->conn, VIR_DOMAIN_STATS_STATE, &recs, 0);
    if (n < 0) {
        if (hv_last_error_code() == VIR_ERR_NO_SUPPORT)
            return hv_domain_list_one_by_one(c, prefix, ret, ret_n, err);
        return hv_error(err, "listing domains");
    }
    int r = 0;
    size_t count = 0;
    HvDomainInfo *infos = calloc(n > 0 ? (size_t)n : 1, sizeof(*infos));
    if (!infos) {
        r = nb_error_set(err, NB_ERR_INTERNAL, "out of memory");
        goto out;
    }
    for (int i = 0; i < n; i++) {
        HvDomainInfo *info = &infos[count];
        if (!hv_domain_info_fill(recs[i]->dom, prefix, info))
            continue;
        int state = -1;
        for (int j = 0; j < recs[i]->nparams; j++) {
            virTypedParameterPtr p = &recs[i]->params[j];
            if (strcmp(p->field, "state.state") == 0 && p->type == VIR_TYPED_PARAM_INT)
                state = p->value.i;
        }
        if (state < 0)
            continue; /* no state in the record: the next sync will tell */
        info->state = hv_domain_state_from_libvirt(state);
        count++;
    }
out:
    virDomainStatsRecordListFree(recs);
    if (r < 0) {
        free(infos);
        return r;
    }
    *ret = infos;
    *ret_n = count;
    return 0;
}
