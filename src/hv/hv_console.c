/*
 * Serial consoles over libvirt streams, and the VNC server's address, for the browser consoles.
 *
 * The stream is non-blocking and its events come from our event loop (hv_eventloop.c); the
 * callback does nothing but make an eventfd readable, so a session's own thread sleeps in poll()
 * on that fd and its client's socket and costs nothing while the console is idle. The callback
 * is edge-like: it drops READABLE from the stream's events until a read finds the stream empty
 * (libvirt's remote streams fire on every loop iteration while data waits, which would spin the
 * event thread whenever a session's client reads slowly).
 */
#include "hv_console.h"

#include <errno.h>
#include <stddef.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "../model/host.h"
#include "../util/cleanup.h"
#include "../util/error_codes.h"
#include "../util/strutil.h"
#include "hv_internal.h"

/* What the event callback touches: it lives until libvirt's free callback, which may come after
 * hv_console_close. */
typedef struct ConsoleEvents {
    pthread_mutex_t lock;
    int efd;
    int events; /* VIR_STREAM_EVENT_* asked for now */
} ConsoleEvents;

struct HvConsole {
    virStreamPtr st;
    ConsoleEvents *ev; /* NULL once the callback is gone */
    int efd;
    bool write_blocked;
};

static void
console_events_free(void *opaque)
{
    ConsoleEvents *ev = opaque;
    close(ev->efd);
    pthread_mutex_destroy(&ev->lock);
    free(ev);
}

static void
console_signal(int efd)
{
    uint64_t one = 1;
    ssize_t w = write(efd, &one, sizeof(one));
    (void)w; /* EAGAIN: already signalled */
}

/* On the event loop thread. */
static void
console_stream_cb(virStreamPtr st, int events, void *opaque)
{
    ConsoleEvents *ev = opaque;
    pthread_mutex_lock(&ev->lock);
    int want = ev->events;
    if (events & VIR_STREAM_EVENT_READABLE)
        want &= ~VIR_STREAM_EVENT_READABLE;
    if (events & VIR_STREAM_EVENT_WRITABLE)
        want &= ~VIR_STREAM_EVENT_WRITABLE;
    if (events & (VIR_STREAM_EVENT_ERROR | VIR_STREAM_EVENT_HANGUP))
        want = 0; /* the reader learns the end from virStreamRecv */
    if (want != ev->events) {
        ev->events = want;
        virStreamEventUpdateCallback(st, want);
    }
    pthread_mutex_unlock(&ev->lock);
    console_signal(ev->efd);
}

static void
console_events_add(HvConsole *con, int bits)
{
    if (!con->ev)
        return;
    pthread_mutex_lock(&con->ev->lock);
    if ((con->ev->events & bits) != bits) {
        con->ev->events |= bits | VIR_STREAM_EVENT_ERROR | VIR_STREAM_EVENT_HANGUP;
        virStreamEventUpdateCallback(con->st, con->ev->events);
    }
    pthread_mutex_unlock(&con->ev->lock);
}

int
hv_console_open(HvConn *c, const char *domain, HvConsole **ret, NbError **err)
{
    _cleanup_domain_ virDomainPtr dom = NULL;
    if (hv_domain_get(c, domain, &dom, err) < 0)
        return -1;
    int active = virDomainIsActive(dom);
    if (active < 0)
        return hv_error(err, "looking at domain '%s'", domain);
    if (active == 0)
        return nb_error_set(err, NB_ERR_INVALID_STATE, "the VM is not running");

    HvConsole *con = calloc(1, sizeof(*con));
    ConsoleEvents *ev = calloc(1, sizeof(*ev));
    if (!con || !ev) {
        free(con);
        free(ev);
        return nb_error_set(err, NB_ERR_INTERNAL, "out of memory");
    }
    con->efd = -1;
    ev->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (ev->efd < 0) {
        free(con);
        free(ev);
        return nb_error_set(err, NB_ERR_INTERNAL, "eventfd: %s", strerror(errno));
    }
    pthread_mutex_init(&ev->lock, NULL);
    con->st = virStreamNew(c->conn, VIR_STREAM_NONBLOCK);
    if (!con->st) {
        hv_error(err, "creating a stream for the console of '%s'", domain);
        goto fail;
    }
    /* FORCE: a console opened again (a reloaded page, another tab) takes over, as with virsh
     * console --force; the session that had it sees its stream end. */
    if (virDomainOpenConsole(dom, NULL, con->st, VIR_DOMAIN_CONSOLE_FORCE) < 0) {
        hv_error(err, "opening the console of '%s'", domain);
        goto fail;
    }
    ev->events = VIR_STREAM_EVENT_READABLE | VIR_STREAM_EVENT_ERROR | VIR_STREAM_EVENT_HANGUP;
    if (virStreamEventAddCallback(con->st, ev->events, console_stream_cb, ev, console_events_free) <
        0) {
        hv_error(err, "watching the console of '%s'", domain);
        virStreamAbort(con->st);
        goto fail;
    }
    con->ev = ev;
    con->efd = ev->efd;
    /* Whatever came before the callback was registered is read at once. */
    console_signal(con->efd);
    *ret = con;
    return 0;
fail:
    if (con->st)
        virStreamFree(con->st);
    console_events_free(ev);
    free(con);
    return -1;
}

int
hv_console_fd(const HvConsole *con)
{
    return con->efd;
}

ssize_t
hv_console_read(HvConsole *con, char *buf, size_t len)
{
    uint64_t v;
    ssize_t r = read(con->efd, &v, sizeof(v));
    (void)r; /* EAGAIN: not signalled, the read below tells */
    int n = virStreamRecv(con->st, buf, len);
    if (n > 0)
        return n;
    if (n == 0)
        return 0;
    if (n == -2) {
        console_events_add(con, VIR_STREAM_EVENT_READABLE);
        /* Data may have come between the look and the re-arm: look again. */
        n = virStreamRecv(con->st, buf, len);
        if (n > 0 || n == 0)
            return n;
        if (n == -2)
            return -EAGAIN;
    }
    virResetLastError();
    return -EIO;
}

ssize_t
hv_console_write(HvConsole *con, const char *buf, size_t len)
{
    int n = virStreamSend(con->st, buf, len);
    if (n > 0)
        return n;
    if (n == -2 || n == 0) {
        console_events_add(con, VIR_STREAM_EVENT_WRITABLE);
        return -EAGAIN;
    }
    virResetLastError();
    return -EIO;
}

void
hv_console_close(HvConsole *con)
{
    if (!con)
        return;
    if (con->ev) {
        /* Removing the callback hands ev to libvirt's free callback. */
        if (virStreamEventRemoveCallback(con->st) < 0)
            virResetLastError();
        con->ev = NULL;
    }
    if (virStreamAbort(con->st) < 0)
        virResetLastError();
    virStreamFree(con->st);
    free(con);
}

/* The value of attr='...' inside the tag that starts at tag (up to its '>'), or "" */
static void
xml_attr(const char *tag, const char *attr, char *out, size_t len)
{
    out[0] = '\0';
    const char *end = strchr(tag, '>');
    _cleanup_free_ char *pat = str_printf(" %s='", attr);
    if (!end || !pat)
        return;
    const char *p = strstr(tag, pat);
    if (!p || p > end)
        return;
    p += strlen(pat);
    const char *q = strchr(p, '\'');
    if (!q || q > end || (size_t)(q - p) >= len)
        return;
    memcpy(out, p, (size_t)(q - p));
    out[q - p] = '\0';
}

int
hv_domain_vnc(HvConn *c, const char *domain, unsigned *port, char *password, size_t len,
              NbError **err)
{
    _cleanup_domain_ virDomainPtr dom = NULL;
    if (hv_domain_get(c, domain, &dom, err) < 0)
        return -1;
    int active = virDomainIsActive(dom);
    if (active < 0)
        return hv_error(err, "looking at domain '%s'", domain);
    if (active == 0)
        return nb_error_set(err, NB_ERR_INVALID_STATE, "the VM is not running");
    /* SECURE: the password is in the definition only then. */
    _cleanup_free_ char *xml = virDomainGetXMLDesc(dom, VIR_DOMAIN_XML_SECURE);
    if (!xml)
        return hv_error(err, "reading the definition of '%s'", domain);
    /* libvirt writes its XML with single-quoted attributes, type first. */
    const char *g = strstr(xml, "<graphics type='vnc'");
    if (!g)
        return 0;
    char p[16];
    uint64_t v = 0;
    xml_attr(g, "port", p, sizeof(p));
    if (str_to_u64(p, &v) < 0 || v == 0 || v > 65535)
        return nb_error_set(err, NB_ERR_HYPERVISOR, "the VNC server of '%s' has no port", domain);
    xml_attr(g, "passwd", password, len);
    *port = (unsigned)v;
    return 1;
}

char *
hv_console_xml_relisten(const char *xml, const char *dst)
{
    const char *g = strstr(xml, "<graphics type='vnc'");
    const char *g_end = g ? strstr(g, "</graphics>") : NULL;
    char src[256];
    if (!g || !g_end)
        return NULL;
    xml_attr(g, "listen", src, sizeof(src));
    if (!src[0] || streq(src, dst))
        return NULL;
    /* Every 'SRC' inside the graphics element: its listen attribute and <listen address>. */
    _cleanup_free_ char *quoted = str_printf("'%s'", src);
    if (!quoted)
        return NULL;
    size_t cap = strlen(xml) + 64 * (strlen(dst) + 2) + 1, len = 0;
    char *out = malloc(cap);
    if (!out)
        return NULL;
    memcpy(out, xml, (size_t)(g - xml));
    len = (size_t)(g - xml);
    unsigned n = 0;
    for (const char *p = g; p < g_end;) {
        const char *hit = strstr(p, quoted);
        if (!hit || hit >= g_end || ++n > 64)
            hit = g_end;
        memcpy(out + len, p, (size_t)(hit - p));
        len += (size_t)(hit - p);
        if (hit == g_end)
            break;
        len += (size_t)snprintf(out + len, cap - len, "'%s'", dst);
        p = hit + strlen(quoted);
    }
    memcpy(out + len, g_end, strlen(g_end) + 1);
    return out;
}

char *
hv_console_migrate_xml(virDomainPtr dom, const char *dst_uri, bool persistent, bool *failed)
{
    *failed = false;
    /* SECURE: the password must go along. */
    unsigned flags = VIR_DOMAIN_XML_SECURE | VIR_DOMAIN_XML_MIGRATABLE;
    if (persistent)
        flags |= VIR_DOMAIN_XML_INACTIVE;
    _cleanup_free_ char *xml = virDomainGetXMLDesc(dom, flags);
    if (!xml) {
        virResetLastError();
        *failed = true;
        return NULL;
    }
    char dst[256];
    host_uri_hostname(dst_uri, dst, sizeof(dst));
    if (!dst[0])
        snprintf(dst, sizeof(dst), "127.0.0.1");
    return hv_console_xml_relisten(xml, dst);
}
