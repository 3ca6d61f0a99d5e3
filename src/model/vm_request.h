/* Strict decoders of the VM action bodies that carry options (stop, migrate), fuzzed with the
 * other request decoders (tests/fuzz/fuzz_json_request.c). */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "../util/error.h"
#include "validate.h"

#define VM_REQUEST_STOP_TIMEOUT_MAX_S 3600
#define VM_REQUEST_MIGRATE_BANDWIDTH_MAX_MIB 1000000

/* POST /v1/vms/{id}/stop: {force?, timeout?} */
typedef struct VmStopRequest {
    bool force;    /* destroy at once, no graceful shutdown */
    int timeout_s; /* graceful shutdown before destroy; -1: the daemon's default */
} VmStopRequest;

/* body NULL (no body) gives the defaults. */
int vm_request_parse_stop(json_t *body, VmStopRequest *ret, NbError **err);
/* The task params text of a decoded request (to free), NULL when out of memory. */
char *vm_request_stop_to_text(const VmStopRequest *req);
/* Reads the task params back (NULL: the defaults); params the daemon did not write give the
 * defaults too. */
void vm_request_stop_from_text(const char *text, VmStopRequest *ret);

/* POST /v1/vms/{id}/migrate: {host?, offline?, bandwidth_mib?} */
typedef struct VmMigrateRequest {
    char host[NB_NAME_MAX + 1]; /* a host's name or id; "": the scheduler chooses */
    int offline;                /* -1: not given (decided by the VM's state), 0 or 1 */
    uint64_t bandwidth_mib;     /* 0: unlimited */
} VmMigrateRequest;

int vm_request_parse_migrate(json_t *body, VmMigrateRequest *ret, NbError **err);
