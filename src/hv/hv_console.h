/* A domain's serial console as a non-blocking byte stream, and where its VNC server listens:
 * what the browser consoles (api_console.c) relay. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <libvirt/libvirt.h>

#include "hv.h"

typedef struct HvConsole HvConsole;

/* Opens the domain's serial console (virDomainOpenConsole on a non-blocking stream), taking it
 * over from any other session holding it (that one ends). NB_ERR_INVALID_STATE when the domain
 * is not running. */
int hv_console_open(HvConn *c, const char *domain, HvConsole **ret, NbError **err);
/* Readable when hv_console_read may have something (data, the end, an error): libvirt's stream
 * events, which run on the event loop thread, only signal this descriptor. */
int hv_console_fd(const HvConsole *con);
/* > 0 bytes read, 0 the console ended (domain stopped, another session took it), -EAGAIN
 * nothing now, -EIO. Also clears the descriptor's readiness. */
ssize_t hv_console_read(HvConsole *con, char *buf, size_t len);
/* Bytes taken (> 0), -EAGAIN (the fd signals when writing may go on), -EIO. */
ssize_t hv_console_write(HvConsole *con, const char *buf, size_t len);
void hv_console_close(HvConsole *con);

/* The running domain's VNC server: its TCP port and password, from the live definition (read
 * with the secure flag). 0 when the domain has no VNC graphics (defined before Nimbus had them),
 * 1 with the values, -1 (NB_ERR_INVALID_STATE when the domain does not run). */
int hv_domain_vnc(HvConn *c, const char *domain, unsigned *port, char *password, size_t len,
                  NbError **err);

/* For a live migration (hv_host.c): the domain's XML for the destination when its VNC server
 * listens on the source's address, which the destination does not have: the same with the
 * destination's address (from dst_uri); the running definition, or with persistent the one it
 * keeps for its next start. NULL when nothing needs changing (no VNC, or the same
 * address); *failed set when the XML could not be made. */
char *hv_console_migrate_xml(virDomainPtr dom, const char *dst_uri, bool persistent, bool *failed);
/* The pure part: xml with the VNC listen address replaced by dst (NULL: nothing to replace,
 * or out of memory). */
char *hv_console_xml_relisten(const char *xml, const char *dst);
