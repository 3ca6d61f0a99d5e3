/*
 * Stable error codes. Clients match on these strings, so never rename one; add new ones.
 * api/api_error.c maps each to an HTTP status.
 */
#pragma once

#define NB_ERR_INTERNAL "INTERNAL_ERROR"
#define NB_ERR_HYPERVISOR "HYPERVISOR_ERROR"
#define NB_ERR_UNAUTHORIZED "UNAUTHORIZED"
#define NB_ERR_NOT_FOUND "NOT_FOUND" /* no such route */
#define NB_ERR_METHOD_NOT_ALLOWED "METHOD_NOT_ALLOWED"
#define NB_ERR_INVALID_JSON "INVALID_JSON"
#define NB_ERR_INVALID_REQUEST "INVALID_REQUEST" /* wrong field, type, unknown field */
#define NB_ERR_INVALID_NAME "INVALID_NAME"
#define NB_ERR_INVALID_HOSTNAME "INVALID_HOSTNAME"
#define NB_ERR_BODY_TOO_LARGE "BODY_TOO_LARGE"
#define NB_ERR_URI_TOO_LONG "URI_TOO_LONG"
#define NB_ERR_LENGTH_REQUIRED "LENGTH_REQUIRED"
#define NB_ERR_UNSUPPORTED_MEDIA_TYPE "UNSUPPORTED_MEDIA_TYPE"
#define NB_ERR_NAME_TAKEN "NAME_TAKEN"
#define NB_ERR_VM_NOT_FOUND "VM_NOT_FOUND"
#define NB_ERR_IMAGE_NOT_FOUND "IMAGE_NOT_FOUND"
#define NB_ERR_FLAVOR_NOT_FOUND "FLAVOR_NOT_FOUND"
#define NB_ERR_TASK_NOT_FOUND "TASK_NOT_FOUND"
#define NB_ERR_VM_BUSY "VM_BUSY"             /* another task holds the VM */
#define NB_ERR_INVALID_STATE "INVALID_STATE" /* e.g. pause a stopped VM */
#define NB_ERR_IMAGE_IN_USE "IMAGE_IN_USE"
#define NB_ERR_FLAVOR_IN_USE "FLAVOR_IN_USE"
#define NB_ERR_IMAGE_NOT_ACTIVE "IMAGE_NOT_ACTIVE"
#define NB_ERR_IMAGE_ALREADY_UPLOADED "IMAGE_ALREADY_UPLOADED"
#define NB_ERR_IMAGE_FORMAT_UNSUPPORTED "IMAGE_FORMAT_UNSUPPORTED"
#define NB_ERR_IMAGE_FORMAT_MISMATCH "IMAGE_FORMAT_MISMATCH"
#define NB_ERR_IMAGE_BACKING_FILE "IMAGE_BACKING_FILE"
#define NB_ERR_IMAGE_DATA_FILE "IMAGE_DATA_FILE"
#define NB_ERR_IMAGE_TOO_LARGE "IMAGE_TOO_LARGE"
#define NB_ERR_IMAGE_CORRUPT "IMAGE_CORRUPT"
#define NB_ERR_FLAVOR_DISK_TOO_SMALL "FLAVOR_DISK_TOO_SMALL"
#define NB_ERR_USER_DATA_TOO_LARGE "USER_DATA_TOO_LARGE"
#define NB_ERR_CONSOLE_LOG_UNAVAILABLE "CONSOLE_LOG_UNAVAILABLE"
#define NB_ERR_MAC_TAKEN "MAC_TAKEN" /* internal: vm_ops_create draws another MAC */
#define NB_ERR_FORBIDDEN "FORBIDDEN"
/* a cookie-authenticated change without the session's CSRF header, or from a foreign Origin */
#define NB_ERR_CSRF_REJECTED "CSRF_REJECTED"
#define NB_ERR_QUOTA_EXCEEDED "QUOTA_EXCEEDED"
#define NB_ERR_INVALID_CREDENTIALS "INVALID_CREDENTIALS"
#define NB_ERR_TOO_MANY_ATTEMPTS "TOO_MANY_ATTEMPTS"
#define NB_ERR_PROJECT_NOT_FOUND "PROJECT_NOT_FOUND"
#define NB_ERR_PROJECT_NOT_EMPTY "PROJECT_NOT_EMPTY"
#define NB_ERR_USER_NOT_FOUND "USER_NOT_FOUND"
#define NB_ERR_TOKEN_NOT_FOUND "TOKEN_NOT_FOUND"
#define NB_ERR_INVALID_PASSWORD "INVALID_PASSWORD"
#define NB_ERR_INVALID_URI "INVALID_URI"       /* a host's libvirt URI Nimbus does not accept */
#define NB_ERR_INVALID_MARKER "INVALID_MARKER" /* a page marker this store did not hand out */
#define NB_ERR_HOST_NOT_FOUND "HOST_NOT_FOUND"
#define NB_ERR_HOST_URI_TAKEN "HOST_URI_TAKEN"
#define NB_ERR_HOST_NOT_EMPTY "HOST_NOT_EMPTY" /* VMs are on it, or migrating to it */
#define NB_ERR_HOST_IS_LOCAL "HOST_IS_LOCAL"   /* the daemon's own host cannot be removed */
#define NB_ERR_HOST_DOWN "HOST_DOWN"
#define NB_ERR_GROUP_NOT_FOUND "GROUP_NOT_FOUND"
#define NB_ERR_GROUP_NOT_EMPTY "GROUP_NOT_EMPTY"
#define NB_ERR_NO_VALID_HOST "NO_VALID_HOST" /* no host fits the VM */
#define NB_ERR_TASK_NOT_CANCELLABLE "TASK_NOT_CANCELLABLE"
#define NB_ERR_CANCELLED "CANCELLED" /* a task stopped because a cancel was asked for */
#define NB_ERR_STORE_UNAVAILABLE "STORE_UNAVAILABLE" /* health: the store does not answer */
#define NB_ERR_NETWORK_NOT_FOUND "NETWORK_NOT_FOUND"
#define NB_ERR_NETWORK_IN_USE "NETWORK_IN_USE" /* ports remain on it */
#define NB_ERR_NETWORK_INVALID_CIDR "NETWORK_INVALID_CIDR"
#define NB_ERR_NETWORK_CIDR_OVERLAP                                                                \
    "NETWORK_CIDR_OVERLAP" /* with a network it would share hosts with */
#define NB_ERR_NETWORK_INVALID_GATEWAY "NETWORK_INVALID_GATEWAY"
#define NB_ERR_NETWORK_INVALID_TYPE "NETWORK_INVALID_TYPE"
#define NB_ERR_NETWORK_TYPE_UNAVAILABLE "NETWORK_TYPE_UNAVAILABLE" /* valid, not built yet */
#define NB_ERR_NETWORK_DHCP_UNAVAILABLE "NETWORK_DHCP_UNAVAILABLE" /* vxlan: no DHCP yet */
#define NB_ERR_NETWORK_INVALID_VNI "NETWORK_INVALID_VNI"
#define NB_ERR_NETWORK_INVALID_VLAN "NETWORK_INVALID_VLAN"
#define NB_ERR_NETWORK_INVALID_IFNAME "NETWORK_INVALID_IFNAME" /* bridge or parent */
#define NB_ERR_NETWORK_INVALID_MTU "NETWORK_INVALID_MTU"
#define NB_ERR_NETWORK_FULL "NETWORK_FULL" /* no address left to allocate */
#define NB_ERR_IP_INVALID "IP_INVALID"     /* not a dotted quad */
#define NB_ERR_IP_OUTSIDE_NETWORK                                                                  \
    "IP_OUTSIDE_NETWORK" /* or reserved: network, broadcast, gateway */
#define NB_ERR_IP_IN_USE "IP_IN_USE"
#define NB_ERR_PORT_NOT_FOUND "PORT_NOT_FOUND" /* also a NIC (by MAC) a VM does not have */
#define NB_ERR_TOO_MANY_NICS "TOO_MANY_NICS"
#define NB_ERR_AGENT_UNAVAILABLE "AGENT_UNAVAILABLE" /* connect, TLS, timeout */
#define NB_ERR_BANDWIDTH_INVALID "BANDWIDTH_INVALID" /* net_in/out_mbit: not 0..100000 */
#define NB_ERR_SECGROUP_NOT_FOUND "SECGROUP_NOT_FOUND"
#define NB_ERR_SECGROUP_IN_USE "SECGROUP_IN_USE" /* a port uses it, or a rule names it */
#define NB_ERR_SECGROUP_RULE_INVALID "SECGROUP_RULE_INVALID"
#define NB_ERR_SECGROUP_RULE_NOT_FOUND "SECGROUP_RULE_NOT_FOUND"
#define NB_ERR_POOL_NOT_FOUND "POOL_NOT_FOUND"
#define NB_ERR_POOL_IN_USE "POOL_IN_USE" /* volumes or VMs' disks remain in it */
#define NB_ERR_POOL_INVALID_TYPE "POOL_INVALID_TYPE"
#define NB_ERR_POOL_INVALID_PATH "POOL_INVALID_PATH"       /* relative, "..", outside pool-roots */
#define NB_ERR_POOL_INVALID_MONITOR "POOL_INVALID_MONITOR" /* not host[:port] */
#define NB_ERR_POOL_INVALID_KEY "POOL_INVALID_KEY"         /* not base64, wrong length */
#define NB_ERR_POOL_INVALID_SOURCE "POOL_INVALID_SOURCE"   /* rbd pool, vg, IQN, export */
#define NB_ERR_POOL_UNAVAILABLE "POOL_UNAVAILABLE" /* no host up reaches it, or it failed there */
#define NB_ERR_VOLUME_NOT_FOUND "VOLUME_NOT_FOUND"
#define NB_ERR_VOLUME_IN_USE "VOLUME_IN_USE" /* attached: no delete, no second attach */
#define NB_ERR_VOLUME_BUSY "VOLUME_BUSY"     /* another task holds it */
#define NB_ERR_VOLUME_INVALID_SIZE "VOLUME_INVALID_SIZE"
#define NB_ERR_VOLUME_SHRINK "VOLUME_SHRINK" /* a resize to less than its size */
#define NB_ERR_VOLUME_INVALID_BUS "VOLUME_INVALID_BUS"
#define NB_ERR_VOLUME_NOT_REACHABLE "VOLUME_NOT_REACHABLE" /* local pool, VM on another host */
#define NB_ERR_VOLUME_NOT_ATTACHED "VOLUME_NOT_ATTACHED"
#define NB_ERR_TOO_MANY_VOLUMES "TOO_MANY_VOLUMES"         /* VOLUMES_PER_VM_MAX */
#define NB_ERR_VOLUME_HAS_SNAPSHOTS "VOLUME_HAS_SNAPSHOTS" /* a delete while it has snapshots */
#define NB_ERR_SNAPSHOT_HAS_CLONES "SNAPSHOT_HAS_CLONES"   /* a volume made from it depends on it */
#define NB_ERR_SNAPSHOT_NOT_FOUND "SNAPSHOT_NOT_FOUND"
#define NB_ERR_SNAPSHOT_BUSY "SNAPSHOT_BUSY"               /* a task works on it, or error */
#define NB_ERR_SNAPSHOT_UNSUPPORTED "SNAPSHOT_UNSUPPORTED" /* a disk is not a qcow2 file */
#define NB_ERR_BACKUP_NOT_FOUND "BACKUP_NOT_FOUND"
#define NB_ERR_BACKUP_BUSY "BACKUP_BUSY"       /* a task works on it */
#define NB_ERR_BACKUP_IN_USE "BACKUP_IN_USE"   /* a later incremental backup builds on it */
#define NB_ERR_BACKUP_NO_BASE "BACKUP_NO_BASE" /* incremental: no checkpoint to start from */
#define NB_ERR_BACKUP_UNSUPPORTED "BACKUP_UNSUPPORTED"   /* a pool or disk backups cannot use */
#define NB_ERR_VM_NOT_RUNNING "VM_NOT_RUNNING"           /* a console of a VM that does not run */
#define NB_ERR_CONSOLE_UNAVAILABLE "CONSOLE_UNAVAILABLE" /* no such console (simulated host...) */
#define NB_ERR_CONSOLE_TICKET_INVALID                                                              \
    "CONSOLE_TICKET_INVALID" /* missing, unknown, expired, used, other VM or type */
#define NB_ERR_CONSOLE_ORIGIN_FORBIDDEN "CONSOLE_ORIGIN_FORBIDDEN" /* WebSocket from elsewhere */
#define NB_ERR_WEBSOCKET_REQUIRED "WEBSOCKET_REQUIRED" /* not a WebSocket opening handshake */
