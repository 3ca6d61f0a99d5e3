/*
 * Which code runs which kind of task: the one place that ties the generic engine (task.c) to
 * the kinds. A new kind adds its row here.
 */
#include "backup_ops.h"
#include "clone_ops.h"
#include "core.h"
#include "network_ops.h"
#include "snapshot_ops.h"
#include "volume_ops.h"
#include "volume_snapshot_ops.h"

static const TaskHandler task_handlers[] = {
    {TASK_KIND_VM_CREATE, vm_ops_step_count, vm_ops_run_task},
    {TASK_KIND_VM_START, vm_ops_step_count, vm_ops_run_task},
    {TASK_KIND_VM_STOP, vm_ops_step_count, vm_ops_run_task},
    {TASK_KIND_VM_REBOOT, vm_ops_step_count, vm_ops_run_task},
    {TASK_KIND_VM_PAUSE, vm_ops_step_count, vm_ops_run_task},
    {TASK_KIND_VM_RESUME, vm_ops_step_count, vm_ops_run_task},
    {TASK_KIND_VM_DELETE, vm_ops_step_count, vm_ops_run_task},
    {TASK_KIND_VM_MIGRATE, vm_migrate_step_count, vm_migrate_run_task},
    {TASK_KIND_VM_NIC_ADD, network_ops_nic_step_count, network_ops_nic_run_task},
    {TASK_KIND_VM_NIC_REMOVE, network_ops_nic_step_count, network_ops_nic_run_task},
    {TASK_KIND_VOLUME_CREATE, volume_ops_step_count, volume_ops_run_task},
    {TASK_KIND_VOLUME_ATTACH, volume_ops_step_count, volume_ops_run_task},
    {TASK_KIND_VOLUME_DETACH, volume_ops_step_count, volume_ops_run_task},
    {TASK_KIND_VOLUME_RESIZE, volume_ops_step_count, volume_ops_run_task},
    {TASK_KIND_VOLUME_DELETE, volume_ops_step_count, volume_ops_run_task},
    {TASK_KIND_SNAPSHOT_CREATE, snapshot_ops_step_count, snapshot_ops_run_task},
    {TASK_KIND_SNAPSHOT_REVERT, snapshot_ops_step_count, snapshot_ops_run_task},
    {TASK_KIND_SNAPSHOT_DELETE, snapshot_ops_step_count, snapshot_ops_run_task},
    {TASK_KIND_VM_CLONE, vm_ops_step_count, vm_ops_run_task},
    {TASK_KIND_IMAGE_FROM_VM, clone_ops_step_count, clone_ops_run_task},
    {TASK_KIND_BACKUP_CREATE, backup_ops_step_count, backup_ops_run_task},
    {TASK_KIND_BACKUP_DELETE, backup_ops_step_count, backup_ops_run_task},
    {TASK_KIND_BACKUP_RESTORE, backup_ops_step_count, backup_ops_run_task},
    {TASK_KIND_VOLUME_SNAPSHOT_CREATE, volume_snapshot_ops_step_count,
     volume_snapshot_ops_run_task},
    {TASK_KIND_VOLUME_SNAPSHOT_DELETE, volume_snapshot_ops_step_count,
     volume_snapshot_ops_run_task},
};

const TaskHandler *
task_handlers_find(TaskKind kind)
{
    for (size_t i = 0; i < sizeof(task_handlers) / sizeof(task_handlers[0]); i++)
        if (task_handlers[i].kind == kind)
            return &task_handlers[i];
    return NULL;
}
