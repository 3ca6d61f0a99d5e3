/* Record-only writes on behalf of the API (see record_ops.h). */
#include <string.h>

#include "../util/timeutil.h"
#include "../util/uuid.h"
#include "../model/json_req.h"
#include "record_ops.h"

int
record_ops_image_create(Core *core, json_t *body, const char *project_id, Image *ret, NbError **err)
{
    if (image_from_request(body, ret, err) < 0)
        return -1;
    nb_uuid_generate(ret->id);
    snprintf(ret->project, sizeof(ret->project), "%s", project_id);
    /* Derived from the id, never from the user's name: see "Names on the hypervisor". */
    snprintf(ret->volume, sizeof(ret->volume), "image-%s", ret->id);
    nb_timestamp_now(ret->created_at);
    memcpy(ret->updated_at, ret->created_at, sizeof(ret->updated_at));
    if (image_store_insert(core->store, ret, err) < 0)
        return -1;
    events_publish_image(core->events, core->store, ret->id, NULL);
    return 0;
}

int
record_ops_task_cancel(Core *core, const char *scope, const char *id, Task *ret, NbError **err)
{
    return task_store_request_cancel(core->store, scope, id, ret, err);
}

int
record_ops_vm_update(Core *core, const char *scope, const char *id_or_name, json_t *body, Vm *ret,
                     NbError **err)
{
    static const char *const fields[] = {"labels", NULL};
    Labels labels;
    Vm vm;
    if (json_req_check_fields(body, fields, err) < 0)
        return -1;
    json_t *j = json_object_get(body, "labels");
    if (!json_is_object(j))
        return nb_error_set(err, NB_ERR_INVALID_REQUEST, "'labels' must be an object of strings");
    if (labels_from_json(j, &labels, err) < 0)
        return -1;
    if (vm_store_get(core->store, scope, id_or_name, &vm, err) < 0)
        return -1;
    int r = vm_store_set_labels(core->store, vm.id, &labels, err);
    if (r == 0)
        r = vm_store_get(core->store, NULL, vm.id, ret, err);
    vm_clear(&vm);
    return r < 0 ? -1 : 0;
}
