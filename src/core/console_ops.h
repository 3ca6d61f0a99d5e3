/* The browser consoles' reach into the VM's host (api_console.c relays): the serial console as
 * a byte stream, and the VNC server's address and password. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "core.h"

#define CONSOLE_VNC_PASSWORD_LEN 8 /* RFB's VNC authentication uses 8 bytes of it */

typedef struct ConsoleStream ConsoleStream;

/* Opens the VM's serial console on its host (taking it over from another session).
 * NB_ERR_HOST_DOWN, NB_ERR_VM_NOT_RUNNING, NB_ERR_CONSOLE_UNAVAILABLE (a simulated host). */
int console_ops_serial_open(Core *core, const Vm *vm, ConsoleStream **ret, NbError **err);
/* Poll it for reading: then console_stream_read may have something. */
int console_stream_fd(const ConsoleStream *s);
/* > 0 bytes, 0 the console ended, -EAGAIN nothing now, -EIO. */
ssize_t console_stream_read(ConsoleStream *s, char *buf, size_t len);
/* > 0 bytes taken, -EAGAIN (the fd signals when to try again), -EIO. */
ssize_t console_stream_write(ConsoleStream *s, const char *buf, size_t len);
void console_stream_close(ConsoleStream *s);

typedef struct ConsoleVncTarget {
    char host[NB_URI_MAX + 1]; /* from the host record's URI, never from a request */
    unsigned port;
    char password[CONSOLE_VNC_PASSWORD_LEN + 1];
} ConsoleVncTarget;
/* Where the running VM's VNC server listens. NB_ERR_CONSOLE_UNAVAILABLE when its domain has
 * none (defined before Nimbus gave VMs a screen: a stop and start does not redefine it; a
 * migration or re-create does). */
int console_ops_vnc_target(Core *core, const Vm *vm, ConsoleVncTarget *ret, NbError **err);

/* For the domain XML (vm_ops_build_domain_xml): the address the VNC server of a domain on the
 * host behind hv listens on (the host part of its libvirt URI; 127.0.0.1 for a local URI),
 * and a new random password (CONSOLE_VNC_PASSWORD_LEN letters and digits). False: no VNC
 * for that host (a simulated one, or an address the domain XML would refuse). */
bool console_ops_vnc_listen(HvConn *hv, char *listen, size_t len);
void console_ops_vnc_password(char password[CONSOLE_VNC_PASSWORD_LEN + 1]);
