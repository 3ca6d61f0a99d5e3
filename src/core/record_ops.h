/*
 * Record-only writes the API makes outside tenancy: an image's row before its upload, a request
 * to cancel a task. Like tenancy_ops.h, they keep the API off the store's write functions.
 */
#pragma once

#include <jansson.h>

#include "core.h"

/* Decodes the request and inserts the image, queued (no volume yet), into project_id, checking
 * its images quota. */
int record_ops_image_create(Core *core, json_t *body, const char *project_id, Image *ret,
                            NbError **err);
/* Asks the task to stop (see task_store_request_cancel); ret: its row. TASK_NOT_FOUND,
 * TASK_NOT_CANCELLABLE. */
int record_ops_task_cancel(Core *core, const char *scope, const char *id, Task *ret, NbError **err);
/*
 * PATCH /v1/vms/{id} {labels}: replaces the labels the VM asks its host to carry (checked as at
 * create). They steer its next placement (a migration); the host it runs on is not re-checked.
 * scope as vm_store_get's; ret: the VM after the change. INVALID_REQUEST, VM_NOT_FOUND.
 */
int record_ops_vm_update(Core *core, const char *scope, const char *id_or_name, json_t *body,
                         Vm *ret, NbError **err);
