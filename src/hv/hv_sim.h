/*
 * Simulated hosts (libvirt's test driver, test:///default or test:///PATH.xml): the calls the
 * test driver lacks, done as the closest simulated thing, for hv_*.c only. Every one of them is
 * used only when hv_conn_is_simulated() says so; docs/scale.md lists what they leave out.
 */
#pragma once

#include "hv_internal.h"

/* An upload into a simulated pool: the volume already has its capacity; the bytes are pulled
 * from src (so the caller sees the same pacing and short-upload errors) and dropped. */
int hv_sim_vol_upload(HvConn *c, const char *vol, uint64_t length, HvUploadSource src,
                      void *userdata, NbError **err);
/* A copy to a simulated host: a volume of the source's size appears on dst, without its bytes.
 * A simulated source cannot feed a real host (it has no bytes to give). */
int hv_sim_vol_copy(HvConn *src, HvConn *dst, const char *pool, const char *vol, NbError **err);
/* A "migration" between two simulated hosts: the definition moves (started again on dst if it
 * ran on src), the source forgets it. No memory or disk is copied. */
int hv_sim_domain_migrate(HvConn *src, HvConn *dst, const char *name, NbError **err);
/* Finds a device element in a domain's XML: its bounds, or false when it is not there. */
typedef bool (*HvSimFindDevice)(const char *xml, const void *key, const char **start,
                                const char **end);
/* The test driver has no device hot-plug: the simulated domain's definition gets device_xml
 * added before </devices> (device_xml non-NULL), or the element find() locates for key
 * removed (absent: nothing to do), by a redefinition, which is what a real host shows after the
 * next restart anyway. */
int hv_sim_device_change(HvConn *c, virDomainPtr dom, const char *domain, const char *device_xml,
                         HvSimFindDevice find, const void *key, NbError **err);
