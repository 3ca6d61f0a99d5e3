/* The one table from error code to HTTP status. Every code in util/error_codes.h needs a row:
 * test_http parses that header and checks api_error_code_known() for each code it finds. */
#include "http.h"

#include "../util/error_codes.h"
#include "../util/strutil.h"

static const struct {
    const char *code;
    unsigned status;
} api_error_table[] = {
    {NB_ERR_INTERNAL, 500},
    {NB_ERR_HYPERVISOR, 502},
    {NB_ERR_UNAUTHORIZED, 401},
    {NB_ERR_NOT_FOUND, 404},
    {NB_ERR_METHOD_NOT_ALLOWED, 405},
    {NB_ERR_INVALID_JSON, 400},
    {NB_ERR_INVALID_REQUEST, 400},
    {NB_ERR_INVALID_NAME, 400},
    {NB_ERR_INVALID_HOSTNAME, 400},
    {NB_ERR_BODY_TOO_LARGE, 413},
    {NB_ERR_URI_TOO_LONG, 414},
    {NB_ERR_LENGTH_REQUIRED, 411},
    {NB_ERR_UNSUPPORTED_MEDIA_TYPE, 415},
    {NB_ERR_NAME_TAKEN, 409},
    {NB_ERR_VM_NOT_FOUND, 404},
    {NB_ERR_IMAGE_NOT_FOUND, 404},
    {NB_ERR_FLAVOR_NOT_FOUND, 404},
    {NB_ERR_TASK_NOT_FOUND, 404},
    {NB_ERR_VM_BUSY, 409},
    {NB_ERR_INVALID_STATE, 409},
    {NB_ERR_IMAGE_IN_USE, 409},
    {NB_ERR_FLAVOR_IN_USE, 409},
    {NB_ERR_IMAGE_NOT_ACTIVE, 409},
    {NB_ERR_IMAGE_ALREADY_UPLOADED, 409},
    {NB_ERR_IMAGE_FORMAT_UNSUPPORTED, 422},
    {NB_ERR_IMAGE_FORMAT_MISMATCH, 422},
    {NB_ERR_IMAGE_BACKING_FILE, 422},
    {NB_ERR_IMAGE_DATA_FILE, 422},
    {NB_ERR_IMAGE_TOO_LARGE, 422},
    {NB_ERR_IMAGE_CORRUPT, 422},
    {NB_ERR_FLAVOR_DISK_TOO_SMALL, 422},
    {NB_ERR_USER_DATA_TOO_LARGE, 413},
    {NB_ERR_CONSOLE_LOG_UNAVAILABLE, 404},
    /* Handled inside vm_ops_create (another MAC is drawn); reaching a client is a bug. */
    {NB_ERR_MAC_TAKEN, 500},
    {NB_ERR_FORBIDDEN, 403},
    {NB_ERR_CSRF_REJECTED, 403},
    {NB_ERR_QUOTA_EXCEEDED, 403},
    {NB_ERR_INVALID_CREDENTIALS, 401},
    {NB_ERR_TOO_MANY_ATTEMPTS, 429},
    {NB_ERR_PROJECT_NOT_FOUND, 404},
    {NB_ERR_PROJECT_NOT_EMPTY, 409},
    {NB_ERR_USER_NOT_FOUND, 404},
    {NB_ERR_TOKEN_NOT_FOUND, 404},
    {NB_ERR_INVALID_PASSWORD, 400},
    {NB_ERR_INVALID_URI, 400},
    {NB_ERR_INVALID_MARKER, 400},
    {NB_ERR_HOST_NOT_FOUND, 404},
    {NB_ERR_HOST_URI_TAKEN, 409},
    {NB_ERR_HOST_NOT_EMPTY, 409},
    {NB_ERR_HOST_IS_LOCAL, 409},
    {NB_ERR_HOST_DOWN, 409},
    {NB_ERR_GROUP_NOT_FOUND, 404},
    {NB_ERR_GROUP_NOT_EMPTY, 409},
    {NB_ERR_NO_VALID_HOST, 409},
    {NB_ERR_TASK_NOT_CANCELLABLE, 409},
    /* Like HYPERVISOR_ERROR: the libvirt side of the migration failed. */
    /* A task's outcome, read from the task; a request that meets it has lost a race. */
    {NB_ERR_CANCELLED, 409},
    {NB_ERR_STORE_UNAVAILABLE, 503},
    {NB_ERR_NETWORK_NOT_FOUND, 404},
    {NB_ERR_NETWORK_IN_USE, 409},
    {NB_ERR_NETWORK_INVALID_CIDR, 400},
    {NB_ERR_NETWORK_CIDR_OVERLAP, 409},
    {NB_ERR_NETWORK_INVALID_GATEWAY, 400},
    {NB_ERR_NETWORK_INVALID_TYPE, 400},
    {NB_ERR_NETWORK_TYPE_UNAVAILABLE, 501},
    {NB_ERR_NETWORK_DHCP_UNAVAILABLE, 501},
    {NB_ERR_NETWORK_INVALID_VNI, 400},
    {NB_ERR_NETWORK_INVALID_VLAN, 400},
    {NB_ERR_NETWORK_INVALID_IFNAME, 400},
    {NB_ERR_NETWORK_INVALID_MTU, 400},
    {NB_ERR_NETWORK_FULL, 409},
    {NB_ERR_IP_INVALID, 400},
    {NB_ERR_IP_OUTSIDE_NETWORK, 400},
    {NB_ERR_IP_IN_USE, 409},
    {NB_ERR_PORT_NOT_FOUND, 404},
    {NB_ERR_TOO_MANY_NICS, 400},
    {NB_ERR_AGENT_UNAVAILABLE, 503},
    {NB_ERR_BANDWIDTH_INVALID, 400},
    {NB_ERR_SECGROUP_NOT_FOUND, 404},
    {NB_ERR_SECGROUP_IN_USE, 409},
    {NB_ERR_SECGROUP_RULE_INVALID, 400},
    {NB_ERR_SECGROUP_RULE_NOT_FOUND, 404},
    {NB_ERR_POOL_NOT_FOUND, 404},
    {NB_ERR_POOL_IN_USE, 409},
    {NB_ERR_POOL_INVALID_TYPE, 400},
    {NB_ERR_POOL_INVALID_PATH, 400},
    {NB_ERR_POOL_INVALID_MONITOR, 400},
    {NB_ERR_POOL_INVALID_KEY, 400},
    {NB_ERR_POOL_INVALID_SOURCE, 400},
    {NB_ERR_POOL_UNAVAILABLE, 503},
    {NB_ERR_VOLUME_NOT_FOUND, 404},
    {NB_ERR_VOLUME_IN_USE, 409},
    {NB_ERR_VOLUME_BUSY, 409},
    {NB_ERR_VOLUME_INVALID_SIZE, 400},
    {NB_ERR_VOLUME_SHRINK, 400},
    {NB_ERR_VOLUME_INVALID_BUS, 400},
    {NB_ERR_VOLUME_NOT_REACHABLE, 409},
    {NB_ERR_VOLUME_NOT_ATTACHED, 409},
    {NB_ERR_TOO_MANY_VOLUMES, 409},
    {NB_ERR_VOLUME_HAS_SNAPSHOTS, 409},
    {NB_ERR_SNAPSHOT_HAS_CLONES, 409},
    {NB_ERR_SNAPSHOT_NOT_FOUND, 404},
    {NB_ERR_SNAPSHOT_BUSY, 409},
    {NB_ERR_SNAPSHOT_UNSUPPORTED, 409},
    {NB_ERR_BACKUP_NOT_FOUND, 404},
    {NB_ERR_BACKUP_BUSY, 409},
    {NB_ERR_BACKUP_IN_USE, 409},
    {NB_ERR_BACKUP_NO_BASE, 409},
    {NB_ERR_BACKUP_UNSUPPORTED, 409},
    {NB_ERR_VM_NOT_RUNNING, 409},
    {NB_ERR_CONSOLE_UNAVAILABLE, 409},
    {NB_ERR_CONSOLE_TICKET_INVALID, 403},
    {NB_ERR_CONSOLE_ORIGIN_FORBIDDEN, 403},
    {NB_ERR_WEBSOCKET_REQUIRED, 400},
};

static unsigned
api_error_lookup(const char *code)
{
    for (size_t i = 0; i < ELEMENTSOF(api_error_table); i++)
        if (streq(api_error_table[i].code, code))
            return api_error_table[i].status;
    return 0;
}

unsigned
api_error_status(const char *code)
{
    unsigned status = api_error_lookup(code);
    return status ? status : 500;
}

bool
api_error_code_known(const char *code)
{
    return api_error_lookup(code) != 0;
}
