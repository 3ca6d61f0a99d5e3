/* Power requests that return at once, for tasks that wait by timer rather than in a call. */
#include "hv_internal.h"

int
hv_domain_shutdown(HvConn *c, const char *name, NbError **err)
{
    _cleanup_domain_ virDomainPtr dom = NULL;
    int found = hv_domain_lookup(c, name, &dom, err);
    if (found <= 0)
        return found;
    int active = virDomainIsActive(dom);
    if (active < 0) {
        if (hv_last_error_code() == VIR_ERR_NO_DOMAIN)
            return 0;
        return hv_error(err, "checking whether domain '%s' is active", name);
    }
    if (!active)
        return 0;
    if (virDomainShutdown(dom) < 0) {
        /* The error first: any other libvirt call resets it. */
        NbError *e = NULL;
        hv_error(&e, "asking domain '%s' to shut down", name);
        bool gone =
            hv_last_error_code() == VIR_ERR_OPERATION_INVALID && virDomainIsActive(dom) == 0;
        if (gone) {
            nb_error_free(e);
            return 0;
        }
        return nb_error_propagate(err, e);
    }
    return 1;
}
