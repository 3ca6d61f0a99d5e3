#pragma once

#include <jansson.h>
#include <stdint.h>

#include "../util/error.h"
#include "../util/timeutil.h"
#include "../util/uuid.h"
#include "labels.h"
#include "network.h"
#include "validate.h"

/* What the VM is, as last observed (the hypervisor is authoritative for power state). */
typedef enum VmState {
    VM_STATE_BUILDING, /* create task under way */
    VM_STATE_RUNNING,
    VM_STATE_PAUSED,
    VM_STATE_STOPPED,
    VM_STATE_CRASHED, /* guest crashed; desired state unchanged */
    VM_STATE_MISSING, /* the domain vanished from libvirt behind Nimbus's back; start re-creates */
    VM_STATE_UNKNOWN, /* the host cannot be reached */
    VM_STATE_ERROR,   /* create failed; its hypervisor parts were rolled back */
    VM_STATE_DELETING,
    _VM_STATE_MAX,
    _VM_STATE_INVALID = -1,
} VmState;

/* What the user asked for (the store is authoritative for intent). */
typedef enum VmPower {
    VM_POWER_RUNNING,
    VM_POWER_STOPPED,
    VM_POWER_PAUSED,
    VM_POWER_DELETED,
    _VM_POWER_MAX,
    _VM_POWER_INVALID = -1,
} VmPower;

const char *vm_state_to_string(VmState s);
VmState vm_state_from_string(const char *s);
const char *vm_power_to_string(VmPower p);
VmPower vm_power_from_string(const char *s);

typedef struct Vm {
    char id[NB_UUID_STRLEN];
    char project[NB_UUID_STRLEN];
    char name[NB_NAME_MAX + 1];
    char hostname[NB_HOSTNAME_MAX + 1];
    VmState state;
    VmPower desired;
    char task_id[NB_UUID_STRLEN];     /* empty when no task holds the VM */
    char host[NB_NAME_MAX + 1];       /* the host's name; "local" in all-in-one */
    char migrate_to[NB_NAME_MAX + 1]; /* destination of a migration under way, or "" */
    char group_id[NB_UUID_STRLEN];    /* its server group, or "" */
    Labels labels;                    /* labels it asked its host to carry */
    char image_id[NB_UUID_STRLEN];
    char flavor_id[NB_UUID_STRLEN];
    unsigned vcpus; /* copied from the flavor at create: flavors may change */
    uint64_t ram_mib;
    uint64_t disk_gib;
    char mac[NB_MAC_STRLEN];
    char *user_data; /* owned; never logged nor returned by the API */
    char ip[64];     /* last address seen in the DHCP leases, may be empty */
    char *error;     /* owned: why the last task failed, if it did */
    char created_at[NB_TIMESTAMP_LEN];
    char updated_at[NB_TIMESTAMP_LEN];
    /* The user who created it; "" for the VMs from before that was recorded. */
    char owner_user_id[NB_UUID_STRLEN];
    /* The pool of its root disk (an rbd pool: an RBD clone of the image), or "" for the host's
     * default pool (a qcow2 overlay on the image). */
    char pool_id[NB_UUID_STRLEN];
} Vm;

/* Names of the hypervisor objects that belong to a VM: derived from the id only, so no user
 * string reaches libvirt names or paths. */
#define VM_DOMAIN_PREFIX "nimbus-"
void vm_domain_name(const Vm *vm, char out[64]);
void vm_disk_volume(const Vm *vm, char out[96]);
void vm_seed_volume(const Vm *vm, char out[96]);
/* The serial console log: a file virtlogd writes in the pool, read back over libvirt. */
void vm_console_volume(const Vm *vm, char out[96]);

/* Strict decode of {name, image, flavor, hostname?, user_data?, group?, host?, labels?,
 * networks?, pool?}. image/flavor/group/host/pool and each NIC's network are returned as given (id
 * or name) for the caller to resolve. networks: [{"network", "ip"?}...], 1 to VM_NICS_MAX
 * (TOO_MANY_NICS); the same network twice with the same explicit ip is INVALID_REQUEST. */
typedef struct VmCreateRequest {
    char name[NB_NAME_MAX + 1];
    char image[NB_NAME_MAX + 1];
    char flavor[NB_NAME_MAX + 1];
    char hostname[NB_HOSTNAME_MAX + 1];
    char *user_data;             /* owned */
    char group[NB_NAME_MAX + 1]; /* "" when absent */
    char host[NB_NAME_MAX + 1];  /* "" when absent; admins only */
    char pool[NB_NAME_MAX + 1];  /* "" when absent: the default pool */
    Labels labels;
    NicRequest nics[VM_NICS_MAX]; /* in slot order; n_nics 0: none asked (the default network) */
    size_t n_nics;
} VmCreateRequest;

int vm_create_request_parse(json_t *body, VmCreateRequest *ret, NbError **err);
void vm_create_request_clear(VmCreateRequest *r);
void vm_clear(Vm *vm);
json_t *vm_to_json(const Vm *vm);
