/* Clones of VMs (POST /v1/vms/{vm}/clone) and images made from VMs (POST /v1/images with
 * from_vm): tasks queued by core (clone_ops.h), answered 202 with the new object and the task. */
#include "../core/clone_ops.h"
#include "api.h"

void
api_vms_clone(HttpRequest *r, void *ctx)
{
    _cleanup_error_ NbError *err = NULL;
    const char *key = http_request_param(r, 0);
    Vm vm;
    Task task;
    if (clone_ops_vm_clone(ctx, http_request_principal(r), api_lookup_scope(r, key), key,
                           http_request_json(r), &vm, &task, &err) < 0)
        return http_reply_nb_error(r, err);
    http_reply_json(r, 202,
                    json_pack("{s:o, s:o}", "vm", vm_to_json(&vm), "task", task_to_json(&task)));
    vm_clear(&vm);
    task_clear(&task);
}

void
api_images_create_from_vm(HttpRequest *r, void *ctx)
{
    _cleanup_error_ NbError *err = NULL;
    json_t *body = http_request_json(r);
    const char *key = json_string_value(json_object_get(body, "from_vm"));
    Image img;
    Task task;
    if (clone_ops_image_from_vm(ctx, http_request_principal(r), api_lookup_scope(r, key ? key : ""),
                                body, &img, &task, &err) < 0)
        return http_reply_nb_error(r, err);
    http_reply_json(
        r, 202, json_pack("{s:o, s:o}", "image", image_to_json(&img), "task", task_to_json(&task)));
    task_clear(&task);
}
