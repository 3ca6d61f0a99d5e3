#pragma once

#include <jansson.h>
#include <stdbool.h>

#include "../util/timeutil.h"
#include "../util/uuid.h"

typedef enum TaskKind {
    TASK_KIND_VM_CREATE,
    TASK_KIND_VM_START,
    TASK_KIND_VM_STOP,
    TASK_KIND_VM_REBOOT,
    TASK_KIND_VM_PAUSE,
    TASK_KIND_VM_RESUME,
    TASK_KIND_VM_DELETE,
    TASK_KIND_VM_MIGRATE,
    TASK_KIND_VM_NIC_ADD,
    TASK_KIND_VM_NIC_REMOVE,
    TASK_KIND_VOLUME_CREATE, /* target_id: the volume */
    TASK_KIND_VOLUME_ATTACH,
    TASK_KIND_VOLUME_DETACH,
    TASK_KIND_VOLUME_RESIZE,
    TASK_KIND_VOLUME_DELETE,
    TASK_KIND_SNAPSHOT_CREATE, /* target_id: the VM; params {"snapshot": id} */
    TASK_KIND_SNAPSHOT_REVERT,
    TASK_KIND_SNAPSHOT_DELETE,
    TASK_KIND_BACKUP_CREATE,  /* target_id: the VM; params: the backup's id */
    TASK_KIND_BACKUP_DELETE,  /* target_id: the backup */
    TASK_KIND_BACKUP_RESTORE, /* target_id: the new volume; params: the backup's id */
    TASK_KIND_VM_CLONE,       /* target_id: the new VM; params {"source": id, "linked": b} */
    TASK_KIND_IMAGE_FROM_VM,  /* target_id: the source VM; params {"image": id} */
    TASK_KIND_VOLUME_SNAPSHOT_CREATE, /* target_id: the volume snapshot */
    TASK_KIND_VOLUME_SNAPSHOT_DELETE,
    _TASK_KIND_MAX,
    _TASK_KIND_INVALID = -1,
} TaskKind;

typedef enum TaskState {
    TASK_STATE_PENDING,
    TASK_STATE_RUNNING,
    TASK_STATE_SUCCEEDED,
    TASK_STATE_FAILED,
    _TASK_STATE_MAX,
    _TASK_STATE_INVALID = -1,
} TaskState;

const char *task_kind_to_string(TaskKind k);
TaskKind task_kind_from_string(const char *s);
const char *task_state_to_string(TaskState s);
TaskState task_state_from_string(const char *s);

typedef struct Task {
    char id[NB_UUID_STRLEN];
    char project[NB_UUID_STRLEN];
    TaskKind kind;
    TaskState state;
    char target_id[NB_UUID_STRLEN]; /* the VM */
    int step;                       /* index of the next step to run: progress is persisted */
    int steps;                      /* how many steps the kind has */
    int progress;                   /* % of the current step's data done, -1: unknown */
    bool cancel_requested;          /* a cancel was asked; the task acts on it */
    char *params;                   /* JSON text of the request's options, owned */
    char *error_code;               /* set when failed, owned */
    char *error_message;            /* owned */
    char created_at[NB_TIMESTAMP_LEN];
    char updated_at[NB_TIMESTAMP_LEN];
    char finished_at[NB_TIMESTAMP_LEN]; /* empty while unfinished */
} Task;

void task_clear(Task *t); /* frees the owned strings */
json_t *task_to_json(const Task *t);
