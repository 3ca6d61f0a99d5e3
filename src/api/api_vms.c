#include <string.h>

#include "../util/log.h"
#include "../util/strutil.h"
#include "api.h"

#define CONSOLE_LOG_DEFAULT_BYTES 65536
#define CONSOLE_LOG_MAX_BYTES (1024 * 1024)

static void
reply_vm_and_task(HttpRequest *r, const Vm *vm, const Task *task)
{
    http_reply_json(r, 202,
                    json_pack("{s:o, s:o}", "vm", vm_to_json(vm), "task", task_to_json(task)));
}

void
api_vms_list(HttpRequest *r, void *ctx)
{
    Core *core = ctx;
    _cleanup_error_ NbError *err = NULL;
    Vm *list = NULL;
    size_t n = 0;
    unsigned limit;
    const char *marker;
    char next[STORE_MARKER_MAX];
    if (api_page_params(r, &limit, &marker) < 0)
        return;
    /* Pages leave user_data out: it can be 64 KiB a VM, and GET /v1/vms/{id} has it. */
    if (vm_store_list_page(core->store, api_scope(r), marker, limit, &list, &n, next, &err) < 0)
        return http_reply_nb_error(r, err);
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, vm_to_json(&list[i]));
    vm_list_free(list, n);
    api_reply_page(r, "vms", arr, next);
}

void
api_vms_create(HttpRequest *r, void *ctx)
{
    Core *core = ctx;
    _cleanup_error_ NbError *err = NULL;
    Vm vm;
    Task task;
    if (vm_ops_create(core, http_request_principal(r), http_request_json(r), &vm, &task, &err) < 0)
        return http_reply_nb_error(r, err);
    reply_vm_and_task(r, &vm, &task);
    vm_clear(&vm);
    task_clear(&task);
}

void
api_vms_get(HttpRequest *r, void *ctx)
{
    Core *core = ctx;
    _cleanup_error_ NbError *err = NULL;
    Vm vm;
    json_t *nics = NULL;
    if (vm_store_get(core->store, api_lookup_scope(r, http_request_param(r, 0)),
                     http_request_param(r, 0), &vm, &err) < 0)
        return http_reply_nb_error(r, err);
    if (api_vm_nics_json(core, &vm, &nics, &err) < 0) {
        vm_clear(&vm);
        return http_reply_nb_error(r, err);
    }
    json_t *body = vm_to_json(&vm);
    /* A VM with ports has fixed addresses: its first NIC's is the VM's, whatever a lease says. */
    json_t *first = json_array_get(nics, 0);
    if (first)
        json_object_set(body, "ip", json_object_get(first, "ip"));
    json_object_set_new(body, "nics", nics);
    http_reply_json(r, 200, body);
    vm_clear(&vm);
}

/* PATCH /v1/vms/{id}: the VM's labels (record_ops_vm_update). */
void
api_vms_update(HttpRequest *r, void *ctx)
{
    Core *core = ctx;
    _cleanup_error_ NbError *err = NULL;
    Vm vm;
    if (record_ops_vm_update(core, api_lookup_scope(r, http_request_param(r, 0)),
                             http_request_param(r, 0), http_request_json(r), &vm, &err) < 0)
        return http_reply_nb_error(r, err);
    http_reply_json(r, 200, vm_to_json(&vm));
    vm_clear(&vm);
}

static void
api_vms_action(HttpRequest *r, Core *core, TaskKind kind)
{
    _cleanup_error_ NbError *err = NULL;
    Vm vm;
    Task task;
    if (vm_ops_action(core, api_lookup_scope(r, http_request_param(r, 0)), http_request_param(r, 0),
                      kind, http_request_json(r), &vm, &task, &err) < 0)
        return http_reply_nb_error(r, err);
    reply_vm_and_task(r, &vm, &task);
    vm_clear(&vm);
    task_clear(&task);
}

void
api_vms_delete(HttpRequest *r, void *ctx)
{
    api_vms_action(r, ctx, TASK_KIND_VM_DELETE);
}

void
api_vms_start(HttpRequest *r, void *ctx)
{
    api_vms_action(r, ctx, TASK_KIND_VM_START);
}

void
api_vms_stop(HttpRequest *r, void *ctx)
{
    api_vms_action(r, ctx, TASK_KIND_VM_STOP);
}

void
api_vms_reboot(HttpRequest *r, void *ctx)
{
    api_vms_action(r, ctx, TASK_KIND_VM_REBOOT);
}

void
api_vms_pause(HttpRequest *r, void *ctx)
{
    api_vms_action(r, ctx, TASK_KIND_VM_PAUSE);
}

void
api_vms_resume(HttpRequest *r, void *ctx)
{
    api_vms_action(r, ctx, TASK_KIND_VM_RESUME);
}

void
api_vms_migrate(HttpRequest *r, void *ctx)
{
    _cleanup_error_ NbError *err = NULL;
    Vm vm;
    Task task;
    if (vm_migrate_queue(ctx, api_lookup_scope(r, http_request_param(r, 0)),
                         http_request_param(r, 0), http_request_json(r), &vm, &task, &err) < 0)
        return http_reply_nb_error(r, err);
    reply_vm_and_task(r, &vm, &task);
    vm_clear(&vm);
    task_clear(&task);
}

/* The last `bytes` of the serial console log (virtlogd writes it on the VM's host; it is read
 * over libvirt). */
void
api_vms_console_log(HttpRequest *r, void *ctx)
{
    Core *core = ctx;
    _cleanup_error_ NbError *err = NULL;
    Vm vm;
    uint64_t want = CONSOLE_LOG_DEFAULT_BYTES;
    const char *q = http_request_query(r, "bytes");
    if (q && (str_to_u64(q, &want) < 0 || want == 0 || want > CONSOLE_LOG_MAX_BYTES))
        return http_reply_error(r, NB_ERR_INVALID_REQUEST, "bytes must be an integer from 1 to %d",
                                CONSOLE_LOG_MAX_BYTES);
    if (vm_store_get(core->store, api_lookup_scope(r, http_request_param(r, 0)),
                     http_request_param(r, 0), &vm, &err) < 0)
        return http_reply_nb_error(r, err);
    _cleanup_free_ char *buf = NULL;
    size_t len = 0;
    int rc = vm_ops_console_read(core, &vm, want, &buf, &len, &err);
    vm_clear(&vm);
    if (rc < 0) {
        if (streq(err->code, NB_ERR_HOST_DOWN))
            return http_reply_nb_error(r, err);
        log_warn("console log: %s", err->message);
        return http_reply_error(r, NB_ERR_CONSOLE_LOG_UNAVAILABLE,
                                "the console log cannot be read");
    }
    http_reply_text(r, 200, "text/plain; charset=utf-8", buf, len);
}
