#include "vm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../util/strutil.h"
#include "enum_table.h"
#include "json_req.h"

static const char *const vm_state_table[_VM_STATE_MAX] = {
    [VM_STATE_BUILDING] = "building", [VM_STATE_RUNNING] = "running",
    [VM_STATE_PAUSED] = "paused",     [VM_STATE_STOPPED] = "stopped",
    [VM_STATE_CRASHED] = "crashed",   [VM_STATE_MISSING] = "missing",
    [VM_STATE_UNKNOWN] = "unknown",   [VM_STATE_ERROR] = "error",
    [VM_STATE_DELETING] = "deleting",
};
DEFINE_STRING_TABLE(vm_state, VmState, vm_state_table)

static const char *const vm_power_table[_VM_POWER_MAX] = {
    [VM_POWER_RUNNING] = "running",
    [VM_POWER_STOPPED] = "stopped",
    [VM_POWER_PAUSED] = "paused",
    [VM_POWER_DELETED] = "deleted",
};
DEFINE_STRING_TABLE(vm_power, VmPower, vm_power_table)

void
vm_domain_name(const Vm *vm, char out[64])
{
    snprintf(out, 64, VM_DOMAIN_PREFIX "%s", vm->id);
}

void
vm_disk_volume(const Vm *vm, char out[96])
{
    snprintf(out, 96, "vm-%s-disk.qcow2", vm->id);
}

void
vm_seed_volume(const Vm *vm, char out[96])
{
    snprintf(out, 96, "vm-%s-seed.iso", vm->id);
}

void
vm_console_volume(const Vm *vm, char out[96])
{
    snprintf(out, 96, "vm-%s-console.log", vm->id);
}

/* An optional reference to another resource (its id or its name), checked for shape only:
 * the caller resolves it. Absent or null leaves buf empty. */
static int
vm_req_ref(json_t *body, const char *key, char buf[NB_NAME_MAX + 1], NbError **err)
{
    char tmp[256];
    if (json_req_string(body, key, 0, tmp, sizeof(tmp), err) < 0)
        return -1;
    if (!json_object_get(body, key) || json_is_null(json_object_get(body, key)))
        return 0;
    if (!nb_name_is_valid(tmp) && !nb_uuid_is_valid(tmp))
        return nb_error_set(err, NB_ERR_INVALID_REQUEST, "field '%s' must be a %s's name or id",
                            key, key);
    memcpy(buf, tmp, strlen(tmp) + 1);
    return 0;
}

/* "networks": absent or null asks for nothing (the project's default network then). */
static int
vm_req_networks(json_t *body, VmCreateRequest *r, NbError **err)
{
    json_t *nets = json_object_get(body, "networks");
    if (!nets || json_is_null(nets))
        return 0;
    if (!json_is_array(nets) || json_array_size(nets) == 0)
        return nb_error_set(err, NB_ERR_INVALID_REQUEST,
                            "field 'networks' must be an array of 1 to %d NICs", VM_NICS_MAX);
    if (json_array_size(nets) > VM_NICS_MAX)
        return nb_error_set(err, NB_ERR_TOO_MANY_NICS, "a VM has at most %d NICs (%zu asked)",
                            VM_NICS_MAX, json_array_size(nets));
    size_t i;
    json_t *v;
    json_array_foreach (nets, i, v) {
        NicRequest *nic = &r->nics[i];
        if (nic_request_parse(v, nic, err) < 0)
            return -1;
        /* Two NICs on one network are fine; two claiming the same address never can be. */
        for (size_t k = 0; k < i; k++)
            if (nic->ip && nic->ip == r->nics[k].ip && streq(nic->network, r->nics[k].network))
                return nb_error_set(err, NB_ERR_INVALID_REQUEST,
                                    "networks: NICs %zu and %zu ask for the same address", k, i);
    }
    r->n_nics = json_array_size(nets);
    return 0;
}

int
vm_create_request_parse(json_t *body, VmCreateRequest *ret, NbError **err)
{
    static const char *const fields[] = {"name",      "image", "flavor", "hostname",
                                         "user_data", "group", "host",   "labels",
                                         "networks",  "pool",  NULL};
    VmCreateRequest r = {0};
    char hostname[256];

    if (json_req_check_fields(body, fields, err) < 0 ||
        json_req_name(body, "name", "VM", r.name, err) < 0 ||
        /* image/flavor may be a UUID (37 bytes) or a name (64 bytes) */
        json_req_string(body, "image", 1, r.image, sizeof(r.image), err) < 0 ||
        json_req_string(body, "flavor", 1, r.flavor, sizeof(r.flavor), err) < 0 ||
        json_req_string(body, "hostname", 0, hostname, sizeof(hostname), err) < 0 ||
        vm_req_ref(body, "group", r.group, err) < 0 || vm_req_ref(body, "host", r.host, err) < 0 ||
        vm_req_ref(body, "pool", r.pool, err) < 0 ||
        labels_from_json(json_object_get(body, "labels"), &r.labels, err) < 0 ||
        vm_req_networks(body, &r, err) < 0)
        return -1;
    if (hostname[0] && !nb_hostname_is_valid(hostname))
        return nb_error_set(err, NB_ERR_INVALID_HOSTNAME,
                            "hostname must be an RFC 1123 label: letters, digits and '-', at "
                            "most 63 characters, not starting or ending with '-'");
    memcpy(r.hostname, hostname, strlen(hostname) + 1);
    json_t *ud = json_object_get(body, "user_data");
    if (ud && !json_is_null(ud)) {
        if (!json_is_string(ud))
            return nb_error_set(err, NB_ERR_INVALID_REQUEST, "field 'user_data' must be a string");
        size_t len = json_string_length(ud);
        if (len > NB_USER_DATA_MAX)
            return nb_error_set(err, NB_ERR_USER_DATA_TOO_LARGE,
                                "user_data is %zu bytes; the limit is %d", len, NB_USER_DATA_MAX);
        if (memchr(json_string_value(ud), '\0', len))
            return nb_error_set(err, NB_ERR_INVALID_REQUEST, "user_data must not contain NUL");
        r.user_data = strdup(json_string_value(ud));
        if (!r.user_data)
            return nb_error_set(err, NB_ERR_INTERNAL, "out of memory");
    }
    *ret = r;
    return 0;
}

void
vm_create_request_clear(VmCreateRequest *r)
{
    free(r->user_data);
    r->user_data = NULL;
}

void
vm_clear(Vm *vm)
{
    if (!vm)
        return;
    free(vm->user_data);
    free(vm->error);
    vm->user_data = vm->error = NULL;
}

json_t *
vm_to_json(const Vm *vm)
{
    json_t *j = json_pack(
        "{s:s, s:s, s:s, s:s, s:s, s:o, s:s, s:s, s:s, s:I, s:I, s:I, s:s, s:o, "
        "s:o, s:s, s:s}",
        "id", vm->id, "name", vm->name, "hostname", vm->hostname, "state",
        vm_state_to_string(vm->state), "desired_state", vm_power_to_string(vm->desired), "task_id",
        json_string_or_null(vm->task_id), "host", vm->host, "image_id", vm->image_id, "flavor_id",
        vm->flavor_id, "vcpus", (json_int_t)vm->vcpus, "ram_mib", (json_int_t)vm->ram_mib,
        "disk_gib", (json_int_t)vm->disk_gib, "mac", vm->mac, "ip", json_string_or_null(vm->ip),
        "error", json_string_or_null(vm->error), "created_at", vm->created_at, "updated_at",
        vm->updated_at);
    if (j) {
        json_object_set_new(j, "project_id", json_string(vm->project));
        json_object_set_new(j, "migrate_to", json_string_or_null(vm->migrate_to));
        json_object_set_new(j, "group_id", json_string_or_null(vm->group_id));
        json_object_set_new(j, "labels", labels_to_json(&vm->labels));
        json_object_set_new(j, "owner_user_id", json_string_or_null(vm->owner_user_id));
        json_object_set_new(j, "pool_id", json_string_or_null(vm->pool_id));
    }
    return j;
}
