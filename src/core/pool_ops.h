/*
 * Storage pools: the API's operations and the pools' life on the hosts. A pool is a store row
 * at once; each host that should have it (every host for shared pools and for local pools
 * without a host, else the one named) gets the libvirt pool `nimbus-pool-<id>` and, when the
 * pool has a credential, the libvirt secret whose UUID is the pool's id. pool_hosts records
 * each host's state. Hosts that connect later, and every housekeeping round, bring each host
 * to what the store says.
 */
#pragma once

#include <jansson.h>
#include <stdbool.h>

#include "../model/pool.h"
#include "core.h"

/* Decodes (the daemon's pool-roots bound dir and netfs paths), stores, and makes the pool on
 * every connected host that should have it: a host where that fails keeps state "error" with
 * libvirt's message (the create still succeeds), a host that is down "pending" until it
 * connects. The decoder's POOL_INVALID_* codes, INVALID_REQUEST, INVALID_NAME, NAME_TAKEN,
 * HOST_NOT_FOUND (a local pool's host): nothing stored, nothing made. */
int pool_ops_create(Core *core, json_t *body, Pool *ret, NbError **err);
/* POOL_NOT_FOUND, POOL_IN_USE (volumes in it, or the default pool). The row goes first, then
 * each host's libvirt pool and secret (the data stay): a host that is down or a daemon killed
 * in between leaves them to the periodic check, which removes pools of this site that the
 * store no longer has. */
int pool_ops_delete(Core *core, const char *id_or_name, NbError **err);
/* At start: the default pool (dir, every host, the daemon's pool-name and pool-path) in the
 * store. */
int pool_ops_ensure_default(Core *core, NbError **err);
/* Brings one host to the store: each pool it should have is defined and active (full: its
 * definition is compared and its secret set again, as when the host has just connected;
 * otherwise a pool that is active is only looked at), pool_hosts updated where its state
 * changed, pools it should no longer have removed, and this site's libvirt pools whose id the
 * store does not know (with their secrets) removed. Problems are logged. */
int pool_ops_host_check(Core *core, const char *host, HvConn *hv, bool full, NbError **err);
/* pool_ops_host_check on every connected host. */
void pool_ops_watch(Core *core, bool full);
/* The libvirt UUID a pool of this site gets on its hosts: the first 16 bytes of
 * SHA-256("<site>/<pool id>") as an RFC 9562 version 8 UUID, site being the default pool's id
 * (random per store). A libvirt pool named like ours but without this UUID belongs to another
 * controller sharing the host and is never removed. */
void pool_ops_libvirt_uuid(const char *site, const char *pool_id, char out[NB_UUID_STRLEN]);
/* The host has the pool: shared, every-host local, or the local pool's own host. */
bool pool_ops_belongs_on(const Pool *p, const char *host);
