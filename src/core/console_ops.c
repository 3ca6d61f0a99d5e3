/*
 * The browser consoles' host side. The VNC server of a VM listens on its host's management
 * address, the one in the host's libvirt URI, which nimbusd reaches already, with a random
 * password of the domain's own (libvirt keeps it in the definition; it is read back with the
 * secure flag, so Nimbus stores nothing). See docs/console.md.
 */
#include "console_ops.h"

#include <errno.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "../hv/hv_console.h"
#include "../util/log.h"
#include "../util/strutil.h"

struct ConsoleStream {
    HvConn *hv;
    HvConsole *con;
};

static HvConn *
console_conn(Core *core, const Vm *vm, NbError **err)
{
    HvConn *c = host_registry_conn(core, vm->host);
    if (!c) {
        nb_error_set(err, NB_ERR_HOST_DOWN, "host '%s' is down", vm->host);
        return NULL;
    }
    if (hv_conn_is_simulated(c)) {
        hv_conn_free(c);
        nb_error_set(err, NB_ERR_CONSOLE_UNAVAILABLE, "a simulated host has no consoles");
        return NULL;
    }
    return c;
}

static void
console_state_error(NbError **err)
{
    if (*err && streq((*err)->code, NB_ERR_INVALID_STATE)) {
        nb_error_free(*err);
        *err = NULL;
        nb_error_set(err, NB_ERR_VM_NOT_RUNNING, "the VM is not running");
    }
}

int
console_ops_serial_open(Core *core, const Vm *vm, ConsoleStream **ret, NbError **err)
{
    char domain[64];
    vm_domain_name(vm, domain);
    HvConn *c = console_conn(core, vm, err);
    if (!c)
        return -1;
    ConsoleStream *s = calloc(1, sizeof(*s));
    if (!s) {
        hv_conn_free(c);
        return nb_error_set(err, NB_ERR_INTERNAL, "out of memory");
    }
    s->hv = c;
    if (hv_console_open(c, domain, &s->con, err) < 0) {
        console_state_error(err);
        hv_conn_free(c);
        free(s);
        return -1;
    }
    *ret = s;
    return 0;
}

int
console_stream_fd(const ConsoleStream *s)
{
    return hv_console_fd(s->con);
}

ssize_t
console_stream_read(ConsoleStream *s, char *buf, size_t len)
{
    return hv_console_read(s->con, buf, len);
}

ssize_t
console_stream_write(ConsoleStream *s, const char *buf, size_t len)
{
    return hv_console_write(s->con, buf, len);
}

void
console_stream_close(ConsoleStream *s)
{
    if (!s)
        return;
    hv_console_close(s->con);
    hv_conn_free(s->hv);
    free(s);
}

/* The host part of a libvirt URI, or the loopback address for a local one. */
static void
console_uri_address(const char *uri, char *out, size_t len)
{
    host_uri_hostname(uri, out, len);
    if (!out[0])
        snprintf(out, len, "127.0.0.1");
}

int
console_ops_vnc_target(Core *core, const Vm *vm, ConsoleVncTarget *ret, NbError **err)
{
    char domain[64];
    vm_domain_name(vm, domain);
    memset(ret, 0, sizeof(*ret));
    Host host;
    if (host_store_get(core->store, vm->host, &host, err) < 0)
        return -1;
    HvConn *c = console_conn(core, vm, err);
    if (!c)
        return -1;
    int r = hv_domain_vnc(c, domain, &ret->port, ret->password, sizeof(ret->password), err);
    hv_conn_free(c);
    if (r < 0) {
        console_state_error(err);
        return -1;
    }
    if (r == 0)
        return nb_error_set(err, NB_ERR_CONSOLE_UNAVAILABLE,
                            "the VM has no VNC screen (defined before Nimbus had them): "
                            "migrate it or create it again");
    console_uri_address(host.uri, ret->host, sizeof(ret->host));
    return 0;
}

bool
console_ops_vnc_listen(HvConn *hv, char *listen, size_t len)
{
    if (hv_conn_is_simulated(hv))
        return false;
    console_uri_address(hv_conn_uri(hv), listen, len);
    for (const char *p = listen; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '.' || *p == '-'))
            return false;
    return listen[0] != '\0';
}

void
console_ops_vnc_password(char password[CONSOLE_VNC_PASSWORD_LEN + 1])
{
    static const char alphabet[] = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    for (size_t i = 0; i < CONSOLE_VNC_PASSWORD_LEN; i++)
        password[i] = alphabet[randombytes_uniform(sizeof(alphabet) - 1)];
    password[CONSOLE_VNC_PASSWORD_LEN] = '\0';
}
