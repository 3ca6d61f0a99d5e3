/*
 * The read-only queries of the store that the API may call directly: gets, lists, pages and
 * counts, none of which changes a row. Everything else the API does to the store (every write)
 * goes through core (src/core/tenancy_ops.h, record_ops.h, the task handlers), which keeps the
 * invariants in one place. scripts/check-layers.sh reads this file: a function of the store that
 * the API library references and that is not declared here fails the check.
 *
 * The prototypes repeat store.h's; every API file sees both, so the compiler refuses any
 * difference between the two.
 */
#pragma once

#include "store.h"

int flavor_store_get(Store *s, const char *id_or_name, Flavor *ret, NbError **err);
int flavor_store_list(Store *s, Flavor **ret, size_t *ret_n, NbError **err);

int image_store_get(Store *s, const char *scope, const char *id_or_name, Image *ret, NbError **err);
int image_store_list(Store *s, const char *scope, Image **ret, size_t *ret_n, NbError **err);

int vm_store_get(Store *s, const char *scope, const char *id_or_name, Vm *ret, NbError **err);
int vm_store_list(Store *s, const char *scope, Vm **ret, size_t *ret_n, NbError **err);
int vm_store_list_page(Store *s, const char *scope, const char *marker, unsigned limit, Vm **ret,
                       size_t *ret_n, char ret_next_marker[STORE_MARKER_MAX], NbError **err);
int vm_store_list_by_host(Store *s, const char *host, Vm **ret, size_t *ret_n, NbError **err);
int vm_store_list_by_group(Store *s, const char *group_id, Vm **ret, size_t *ret_n, NbError **err);
void vm_list_free(Vm *vms, size_t n);

int network_store_get(Store *s, const char *scope, const char *id_or_name, Network *ret,
                      NbError **err);
int network_store_list(Store *s, const char *scope, Network **ret, size_t *ret_n, NbError **err);
void network_list_free(Network *n, size_t count);
int port_store_list(Store *s, const char *scope, const char *network_id, Port **ret, size_t *ret_n,
                    NbError **err);
int port_store_list_by_vm(Store *s, const char *vm_id, Port **ret, size_t *ret_n, NbError **err);
void port_list_free(Port *p, size_t n);
int port_store_dhcp_server_list(Store *s, const char *scope, const char *network_id,
                                DhcpServer **ret, size_t *ret_n, NbError **err);

int secgroup_store_get(Store *s, const char *scope, const char *id_or_name, SecGroup *ret,
                       NbError **err);
int secgroup_store_list(Store *s, const char *scope, SecGroup **ret, size_t *ret_n, NbError **err);
int secgroup_store_rules(Store *s, const char *group_id, SecRule **ret, size_t *ret_n,
                         NbError **err);
int secgroup_store_port_groups(Store *s, const char *port_id, SecGroup **ret, size_t *ret_n,
                               NbError **err);
int secgroup_store_group_ports(Store *s, const char *group_id, Port **ret, size_t *ret_n,
                               NbError **err);
void secgroup_list_free(SecGroup *g, size_t n);
void secrule_list_free(SecRule *r, size_t n);

int pool_store_get(Store *s, const char *id_or_name, Pool *ret, NbError **err);
int pool_store_get_default(Store *s, Pool *ret, NbError **err);
int pool_store_list(Store *s, Pool **ret, size_t *ret_n, NbError **err);
int pool_store_hosts(Store *s, const char *pool_id, PoolHostState **ret, size_t *ret_n,
                     NbError **err);
void pool_list_free(Pool *p, size_t n);

int volume_store_get(Store *s, const char *scope, const char *id_or_name, Volume *ret,
                     NbError **err);
int volume_store_list(Store *s, const char *scope, const char *vm_id, const char *pool_id,
                      Volume **ret, size_t *ret_n, NbError **err);
void volume_list_free(Volume *v, size_t n);
/* A volume's snapshot by id, or by name when volume_id is given; scope: the project (NULL: any).
 * SNAPSHOT_NOT_FOUND. */
int volume_snapshot_store_get(Store *s, const char *scope, const char *volume_id,
                              const char *id_or_name, VolumeSnapshot *ret, NbError **err);
/* Oldest first; volume_id NULL: every volume's. */
int volume_snapshot_store_list(Store *s, const char *scope, const char *volume_id,
                               VolumeSnapshot **ret, size_t *ret_n, NbError **err);
void volume_snapshot_list_free(VolumeSnapshot *v, size_t n);

int snapshot_store_get(Store *s, const char *scope, const char *vm_id, const char *id_or_name,
                       Snapshot *ret, NbError **err);
int snapshot_store_list(Store *s, const char *scope, const char *vm_id, Snapshot **ret,
                        size_t *ret_n, NbError **err);
void snapshot_list_free(Snapshot *v, size_t n);

int backup_store_get(Store *s, const char *scope, const char *id, Backup *ret, NbError **err);
int backup_store_list(Store *s, const char *scope, const char *vm_id, Backup **ret, size_t *ret_n,
                      NbError **err);
void backup_list_free(Backup *b, size_t n);

int task_store_get(Store *s, const char *scope, const char *id, Task *ret, NbError **err);
int task_store_list_page(Store *s, const char *scope, const char *vm_id, const char *marker,
                         unsigned limit, Task **ret, size_t *ret_n,
                         char ret_next_marker[STORE_MARKER_MAX], NbError **err);
void task_list_free(Task *tasks, size_t n);

int host_store_get(Store *s, const char *id_or_name, Host *ret, NbError **err);
int host_store_list(Store *s, Host **ret, size_t *ret_n, NbError **err);

int group_store_get(Store *s, const char *scope, const char *id_or_name, Group *ret, NbError **err);
int group_store_list(Store *s, const char *scope, Group **ret, size_t *ret_n, NbError **err);

int project_store_get(Store *s, const char *scope, const char *id_or_name, Project *ret,
                      NbError **err);
int project_store_list(Store *s, const char *scope, Project **ret, size_t *ret_n, NbError **err);
int project_store_quota_usage(Store *s, const char *project, int64_t in_use[_QUOTA_MAX],
                              NbError **err);

int user_store_get(Store *s, const char *id_or_name, User *ret, NbError **err);
int user_store_get_password_hash(Store *s, const char *name, User *ret, char **ret_hash);
int user_store_list(Store *s, User **ret, size_t *ret_n, NbError **err);

int token_store_count(Store *s, NbError **err);
int token_store_lookup(Store *s, const char *hash_hex, Principal *ret);
int token_store_list(Store *s, const char *user_id, TokenInfo **ret, size_t *ret_n, NbError **err);

int audit_store_list(Store *s, const char *project, const char *since, unsigned limit,
                     AuditEvent **ret, size_t *ret_n, NbError **err);
int usage_store_compute(Store *s, const char *project, double from, double to, double now,
                        VmUsage **ret, size_t *ret_n, NbError **err);
