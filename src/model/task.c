#include "task.h"

#include <stdlib.h>

#include "enum_table.h"
#include "json_req.h"

static const char *const task_kind_table[_TASK_KIND_MAX] = {
    [TASK_KIND_VM_CREATE] = "vm.create",
    [TASK_KIND_VM_START] = "vm.start",
    [TASK_KIND_VM_STOP] = "vm.stop",
    [TASK_KIND_VM_REBOOT] = "vm.reboot",
    [TASK_KIND_VM_PAUSE] = "vm.pause",
    [TASK_KIND_VM_RESUME] = "vm.resume",
    [TASK_KIND_VM_DELETE] = "vm.delete",
    [TASK_KIND_VM_MIGRATE] = "vm.migrate",
    [TASK_KIND_VM_NIC_ADD] = "vm.nic_add",
    [TASK_KIND_VM_NIC_REMOVE] = "vm.nic_remove",
    [TASK_KIND_VOLUME_CREATE] = "volume.create",
    [TASK_KIND_VOLUME_ATTACH] = "volume.attach",
    [TASK_KIND_VOLUME_DETACH] = "volume.detach",
    [TASK_KIND_VOLUME_RESIZE] = "volume.resize",
    [TASK_KIND_VOLUME_DELETE] = "volume.delete",
    [TASK_KIND_SNAPSHOT_CREATE] = "snapshot.create",
    [TASK_KIND_SNAPSHOT_REVERT] = "snapshot.revert",
    [TASK_KIND_SNAPSHOT_DELETE] = "snapshot.delete",
    [TASK_KIND_BACKUP_CREATE] = "backup.create",
    [TASK_KIND_BACKUP_DELETE] = "backup.delete",
    [TASK_KIND_BACKUP_RESTORE] = "backup.restore",
    [TASK_KIND_VM_CLONE] = "vm.clone",
    [TASK_KIND_IMAGE_FROM_VM] = "image.from-vm",
    [TASK_KIND_VOLUME_SNAPSHOT_CREATE] = "volume.snapshot-create",
    [TASK_KIND_VOLUME_SNAPSHOT_DELETE] = "volume.snapshot-delete",
};
DEFINE_STRING_TABLE(task_kind, TaskKind, task_kind_table)

static const char *const task_state_table[_TASK_STATE_MAX] = {
    [TASK_STATE_PENDING] = "pending",
    [TASK_STATE_RUNNING] = "running",
    [TASK_STATE_SUCCEEDED] = "succeeded",
    [TASK_STATE_FAILED] = "failed",
};
DEFINE_STRING_TABLE(task_state, TaskState, task_state_table)

void
task_clear(Task *t)
{
    if (!t)
        return;
    free(t->params);
    free(t->error_code);
    free(t->error_message);
    t->params = t->error_code = t->error_message = NULL;
}

json_t *
task_to_json(const Task *t)
{
    json_t *error = json_null();
    if (t->error_code)
        error = json_pack("{s:s, s:s}", "code", t->error_code, "message",
                          t->error_message ? t->error_message : "");
    json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:i, s:i, s:o, s:s, s:s, s:o}", "id", t->id, "kind",
                          task_kind_to_string(t->kind), "state", task_state_to_string(t->state),
                          "target_id", t->target_id, "step", t->step, "steps", t->steps, "error",
                          error, "created_at", t->created_at, "updated_at", t->updated_at,
                          "finished_at", json_string_or_null(t->finished_at));
    if (j) {
        json_object_set_new(j, "project_id", json_string(t->project));
        json_object_set_new(j, "progress",
                            t->progress >= 0 ? json_integer(t->progress) : json_null());
        json_object_set_new(j, "cancel_requested", json_boolean(t->cancel_requested));
    }
    return j;
}
