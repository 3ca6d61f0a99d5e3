/* Hypervisor hosts: one libvirt URI each. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "../util/error.h"
#include "../util/timeutil.h"
#include "../util/uuid.h"
#include "labels.h"
#include "validate.h"

#define NB_URI_MAX 255
#define NB_LOCAL_HOST_NAME "local"
#define HOST_AGENT_SECRET_LEN 64 /* hex characters: the agent's 32-byte secret */
#define HOST_AGENT_PORT 8775
#define HOST_IPV4_STRLEN 16
#define HOST_IFNAME_MAX 15

/* What the operator decided. */
typedef enum HostAdmin {
    HOST_ADMIN_ENABLED,
    HOST_ADMIN_DISABLED,    /* no new VMs; its VMs stay */
    HOST_ADMIN_MAINTENANCE, /* its VMs are moved away, then it is held empty */
    _HOST_ADMIN_MAX,
    _HOST_ADMIN_INVALID = -1,
} HostAdmin;

/* What Nimbus sees of its libvirt connection. */
typedef enum HostConn {
    HOST_CONN_CONNECTING, /* never reached since nimbusd started, or since it was added */
    HOST_CONN_UP,
    HOST_CONN_DOWN,
    _HOST_CONN_MAX,
    _HOST_CONN_INVALID = -1,
} HostConn;

const char *host_admin_to_string(HostAdmin a); /* "enabled", "disabled", "maintenance" */
HostAdmin host_admin_from_string(const char *s);
const char *host_conn_to_string(HostConn c); /* "connecting", "up", "down" */
HostConn host_conn_from_string(const char *s);

/* What libvirt last told about the host. */
typedef struct HostFacts {
    unsigned vcpus;
    uint64_t ram_mib;
    uint64_t free_ram_mib;
    uint64_t disk_gib; /* the pool's capacity */
    uint64_t disk_free_gib;
    char hostname[NB_HOSTNAME_MAX + 1];
    char cpu_model[64];
    char libvirt_version[32]; /* "9.0.0" */
    char qemu_version[32];
} HostFacts;

typedef struct Host {
    char id[NB_UUID_STRLEN];
    char name[NB_NAME_MAX + 1];
    char uri[NB_URI_MAX + 1];
    HostAdmin admin;
    HostConn conn;
    double cpu_ratio, ram_ratio, disk_ratio;
    Labels labels;
    HostFacts facts;
    char last_contact[NB_TIMESTAMP_LEN]; /* empty: never */
    char error[256];                     /* why it is down, or "" */
    char created_at[NB_TIMESTAMP_LEN];
    char updated_at[NB_TIMESTAMP_LEN];
    /* Its nimbus-agent ("" for none): the secret is a credential, kept out of every JSON and
     * log line. The tunnel is the VXLAN underlay: the address peers send to, and its device. */
    char agent_url[NB_URI_MAX + 1];
    char agent_secret[HOST_AGENT_SECRET_LEN + 1];
    char tunnel_ip[HOST_IPV4_STRLEN];
    char tunnel_dev[HOST_IFNAME_MAX + 1];
    /* filled by the store: what VMs placed on it, or migrating to it, claim */
    uint64_t vcpus_used;
    uint64_t ram_used_mib;
    uint64_t disk_used_gib;
    unsigned vms;
} Host;

/* The one word `host list` shows: down, maintenance, disabled, up (or connecting). */
const char *host_state_word(const Host *h);

/* floor(total × ratio), the ratio taken to a millionth (so 100 × 0.29 is 29, as the operator
 * meant, not 28); saturates at UINT64_MAX; 0 when total is 0 (a host never contacted) or the
 * ratio is not a positive number. What the scheduler places against and the API shows. */
uint64_t host_capacity(uint64_t total, double ratio);

#define HOST_DEFAULT_CPU_RATIO 4.0
#define HOST_DEFAULT_RAM_RATIO 1.0
#define HOST_DEFAULT_DISK_RATIO 1.0
#define HOST_RATIO_MAX 64.0

/* libvirt URIs Nimbus accepts: qemu:///system, qemu+ssh://[user@]host[:port]/system,
 * qemu+tls://host[:port]/system, qemu+tcp://host[:port]/system for test hosts, with an optional
 * query of known keys (keyfile, no_verify, pkipath, no_tty, socket), and for simulated hosts
 * test:///default or test:///ABSOLUTE/PATH.xml (libvirt's test driver reading that file).
 * INVALID_URI otherwise. */
int host_uri_validate(const char *uri, NbError **err);
/* Whether the URI names libvirt's test driver: a simulated host, with no QEMU behind it. */
bool host_uri_is_simulated(const char *uri);
/* The host part of a remote URI ("" for qemu:///system). */
void host_uri_hostname(const char *uri, char *out, size_t len);

/* An agent URL: https://HOST[:PORT] (HOST a DNS name or an IPv4 address), nothing after it.
 * INVALID_URI otherwise. */
int host_agent_url_validate(const char *url, NbError **err);

/* Strict decode of {name, uri, cpu_ratio?, ram_ratio?, disk_ratio?, labels?, agent_url?,
 * agent_secret?, tunnel_ip?, tunnel_dev?}; defaults for the missing ratios. Ratios must lie in
 * (0, 64]. agent_secret is 64 hex (INVALID_REQUEST); agent_url (INVALID_URI) defaults to
 * https://<the URI's host>:8775 when a secret is given, and needs one; tunnel_ip is a unicast
 * IPv4 address (IP_INVALID), tunnel_dev an interface name (NETWORK_INVALID_IFNAME), and each
 * needs the other and an agent. */
int host_create_request_parse(json_t *body, Host *ret, NbError **err);
/* Strict decode of {cpu_ratio?, ram_ratio?, disk_ratio?, labels?} onto h (a PATCH). */
int host_update_request_parse(json_t *body, Host *h, NbError **err);
json_t *host_to_json(const Host *h);
