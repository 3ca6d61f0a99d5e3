/* One libvirt connection per host: open, keepalive, liveness, and the event callbacks. */
#include "hv_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../util/log.h"
#include "../util/strutil.h"

static const char *const hv_domain_state_table[_HV_DOMAIN_STATE_MAX] = {
    [HV_DOMAIN_NONE] = "none",       [HV_DOMAIN_RUNNING] = "running", [HV_DOMAIN_PAUSED] = "paused",
    [HV_DOMAIN_SHUTOFF] = "shutoff", [HV_DOMAIN_CRASHED] = "crashed", [HV_DOMAIN_OTHER] = "other",
};

const char *
hv_domain_state_to_string(HvDomainState s)
{
    if ((int)s < 0 || s >= _HV_DOMAIN_STATE_MAX)
        return NULL;
    return hv_domain_state_table[s];
}

int
hv_error(NbError **err, const char *fmt, ...)
{
    /* Copy libvirt's message first: nothing below may call into libvirt. */
    virErrorPtr e = virGetLastError();
    const char *msg = e && e->message ? e->message : "unknown libvirt error";

    va_list ap;
    va_start(ap, fmt);
    _cleanup_free_ char *what = NULL;
    if (vasprintf(&what, fmt, ap) < 0)
        what = NULL;
    va_end(ap);
    return nb_error_set(err, NB_ERR_HYPERVISOR, "%s: %s", what ? what : "libvirt call", msg);
}

int
hv_last_error_code(void)
{
    return virGetLastErrorCode();
}

/* nimbusd is a daemon: nobody is there to answer a prompt. libvirt's remote driver fills what it
 * can from its auth file (the URI's authfile=, else $LIBVIRT_AUTH_FILE, else
 * $XDG_CONFIG_HOME/libvirt/auth.conf or /etc/libvirt/auth.conf) before it calls this, so this
 * runs only for what no file supplies. It answers nothing and notes that it was asked, so that
 * the error names the missing file entry instead of libvirt's "Failed to collect auth
 * credentials". libvirt calls it on the opening thread. */
static __thread bool hv_conn_auth_asked;

static int
hv_conn_auth_cb(virConnectCredentialPtr cred, unsigned int ncred, void *cbdata)
{
    (void)cred;
    (void)ncred;
    (void)cbdata;
    hv_conn_auth_asked = true;
    return -1;
}

/* The types offered to SASL, those of virConnectAuthPtrDefault: libvirt fills AUTHNAME and
 * PASSPHRASE from the auth file. Not USERNAME: offered, SCRAM asks for an authorization id too,
 * which no auth file holds, and the open fails although the password is there. */
static int hv_conn_auth_types[] = {
    VIR_CRED_AUTHNAME,   VIR_CRED_ECHOPROMPT,   VIR_CRED_REALM,
    VIR_CRED_PASSPHRASE, VIR_CRED_NOECHOPROMPT,
};

static virConnectAuth hv_conn_auth = {
    .credtype = hv_conn_auth_types,
    .ncredtype = sizeof(hv_conn_auth_types) / sizeof(hv_conn_auth_types[0]),
    .cb = hv_conn_auth_cb,
    .cbdata = NULL,
};

int
hv_conn_open(const char *uri, HvConn **ret, NbError **err)
{
    if (!hv_events_ready())
        return nb_error_set(err, NB_ERR_INTERNAL, "hv_events_init was not called");

    HvConn *c = calloc(1, sizeof(*c));
    if (!c)
        return nb_error_set(err, NB_ERR_INTERNAL, "out of memory");
    c->lifecycle_id = -1;
    c->refs = 1;
    c->uri = strdup(uri);
    if (!c->uri) {
        free(c);
        return nb_error_set(err, NB_ERR_INTERNAL, "out of memory");
    }
    pthread_mutex_init(&c->lock, NULL);

    hv_conn_auth_asked = false;
    c->conn = virConnectOpenAuth(uri, &hv_conn_auth, 0);
    if (!c->conn) {
        /* After the handshake libvirtd checks the client's certificate and, if it refuses it,
         * closes the connection without a word: libvirt only says it could not read the
         * confirmation byte. */
        virErrorPtr e = virGetLastError();
        bool cert_refused = str_startswith(uri, "qemu+tls://") && e && e->message &&
                            strstr(e->message, "TLS confirmation");
        const char *hint =
            hv_conn_auth_asked
                ? " (the host asks for credentials that no libvirt auth file supplies: give one "
                  "with authfile= in the URI or LIBVIRT_AUTH_FILE)"
            : cert_refused ? " (the host refused this client's certificate: not signed by a CA "
                             "the host trusts, expired, or not in its tls_allowed_dn_list)"
                           : "";
        int r = hv_error(err, "connecting to '%s'%s", uri, hint);
        hv_conn_free(c);
        return r;
    }
    /* Detects a dead libvirtd within about 20 s. Local drivers without a daemon cannot do
     * keepalive; that is not worth failing the connection for. */
    int k = virConnectSetKeepAlive(c->conn, 5, 3);
    if (k < 0 && hv_conn_is_simulated(c)) {
        /* In-process: there is no peer to lose. */
    } else if (k < 0) {
        virErrorPtr e = virGetLastError();
        log_warn("no keepalive on '%s': %s", uri, e && e->message ? e->message : "unknown");
    } else if (k == 1) {
        log_warn("no keepalive on '%s': the remote side does not support it", uri);
    }
    *ret = c;
    return 0;
}

/* Each registration owns its own context, freed by libvirt (through the free callback) once the
 * callback can no longer run, so an event in flight never sees a freed HvConn. */
typedef struct HvCallbackCtx {
    HvLifecycleCallback lifecycle;
    HvCloseCallback on_close;
    void *userdata;
} HvCallbackCtx;

static void
hv_callback_ctx_free(void *opaque)
{
    free(opaque);
}

static HvEventKind
hv_event_kind(int event, int detail)
{
    switch (event) {
    case VIR_DOMAIN_EVENT_STARTED:
        return HV_EVENT_STARTED;
    case VIR_DOMAIN_EVENT_SUSPENDED:
        return HV_EVENT_SUSPENDED;
    case VIR_DOMAIN_EVENT_RESUMED:
        return HV_EVENT_RESUMED;
    case VIR_DOMAIN_EVENT_STOPPED:
        switch (detail) {
        case VIR_DOMAIN_EVENT_STOPPED_SHUTDOWN:
            return HV_EVENT_STOPPED_SHUTDOWN;
        case VIR_DOMAIN_EVENT_STOPPED_DESTROYED:
            return HV_EVENT_STOPPED_DESTROYED;
        case VIR_DOMAIN_EVENT_STOPPED_CRASHED:
            return HV_EVENT_STOPPED_CRASHED;
        default:
            return HV_EVENT_STOPPED_OTHER;
        }
    case VIR_DOMAIN_EVENT_CRASHED:
        return HV_EVENT_STOPPED_CRASHED;
    case VIR_DOMAIN_EVENT_UNDEFINED:
        return HV_EVENT_UNDEFINED;
    case VIR_DOMAIN_EVENT_DEFINED:
        return HV_EVENT_DEFINED;
    default:
        /* SHUTDOWN (in progress), PMSUSPENDED: the state change that matters comes next. */
        return HV_EVENT_OTHER;
    }
}

static int
hv_lifecycle_cb(virConnectPtr conn, virDomainPtr dom, int event, int detail, void *opaque)
{
    HvCallbackCtx *ctx = opaque;
    char uuid[VIR_UUID_STRING_BUFLEN] = "";
    if (virDomainGetUUIDString(dom, uuid) < 0)
        uuid[0] = '\0';
    const char *name = virDomainGetName(dom);
    ctx->lifecycle(name ? name : "", uuid, hv_event_kind(event, detail), ctx->userdata);
    return 0;
}

static void
hv_close_cb(virConnectPtr conn, int reason, void *opaque)
{
    HvCallbackCtx *ctx = opaque;
    ctx->on_close(ctx->userdata);
}

/* Called with c->lock held. Errors are ignored: on a dead connection the local side is still
 * dropped (and the context freed), which is all that matters here. */
static void
hv_conn_unregister_locked(HvConn *c)
{
    if (c->lifecycle_id >= 0) {
        if (virConnectDomainEventDeregisterAny(c->conn, c->lifecycle_id) < 0)
            log_debug("deregistering the lifecycle callback failed");
        c->lifecycle_id = -1;
    }
    if (c->close_registered) {
        if (virConnectUnregisterCloseCallback(c->conn, hv_close_cb) < 0)
            log_debug("unregistering the close callback failed");
        c->close_registered = false;
    }
}

int
hv_conn_set_callbacks(HvConn *c, HvLifecycleCallback lifecycle, HvCloseCallback on_close,
                      void *userdata, NbError **err)
{
    int r = 0;
    pthread_mutex_lock(&c->lock);
    hv_conn_unregister_locked(c);

    if (lifecycle) {
        HvCallbackCtx *ctx = calloc(1, sizeof(*ctx));
        if (!ctx) {
            r = nb_error_set(err, NB_ERR_INTERNAL, "out of memory");
            goto out;
        }
        *ctx = (HvCallbackCtx){.lifecycle = lifecycle, .userdata = userdata};
        int id = virConnectDomainEventRegisterAny(c->conn, NULL, VIR_DOMAIN_EVENT_ID_LIFECYCLE,
                                                  VIR_DOMAIN_EVENT_CALLBACK(hv_lifecycle_cb), ctx,
                                                  hv_callback_ctx_free);
        if (id < 0) {
            r = hv_error(err, "registering for domain lifecycle events");
            free(ctx); /* libvirt calls the free callback only for a registered callback */
            goto out;
        }
        c->lifecycle_id = id;
    }

    if (on_close) {
        HvCallbackCtx *ctx = calloc(1, sizeof(*ctx));
        if (!ctx) {
            r = nb_error_set(err, NB_ERR_INTERNAL, "out of memory");
            goto out;
        }
        *ctx = (HvCallbackCtx){.on_close = on_close, .userdata = userdata};
        if (virConnectRegisterCloseCallback(c->conn, hv_close_cb, ctx, hv_callback_ctx_free) < 0) {
            r = hv_error(err, "registering the connection close callback");
            free(ctx);
            goto out;
        }
        c->close_registered = true;
    }
out:
    if (r < 0)
        hv_conn_unregister_locked(c);
    pthread_mutex_unlock(&c->lock);
    return r;
}

bool
hv_conn_is_alive(HvConn *c)
{
    return c && c->conn && virConnectIsAlive(c->conn) == 1;
}

HvConn *
hv_conn_ref(HvConn *c)
{
    if (c)
        __atomic_add_fetch(&c->refs, 1, __ATOMIC_RELAXED);
    return c;
}

const char *
hv_conn_uri(const HvConn *c)
{
    return c->uri;
}

void
hv_conn_free(HvConn *c)
{
    if (!c || __atomic_sub_fetch(&c->refs, 1, __ATOMIC_ACQ_REL) > 0)
        return;
    if (c->conn) {
        pthread_mutex_lock(&c->lock);
        /* The close callback holds a reference on the connection: drop it before closing. */
        hv_conn_unregister_locked(c);
        pthread_mutex_unlock(&c->lock);
        int refs = virConnectClose(c->conn);
        if (refs > 0)
            log_debug("libvirt connection '%s' still has %d references", c->uri, refs);
    }
    pthread_mutex_destroy(&c->lock);
    free(c->uri);
    free(c);
}
