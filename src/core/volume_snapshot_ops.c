/*
 * Volume snapshots: the API's operations and their tasks. Every step is idempotent: an RBD
 * snapshot already there (EEXIST) or already gone (ENOENT) is the step done; a copy cut short by
 * a crash is made again (hv_volume_create_from replaces it). A failed create removes what it
 * made and leaves the snapshot in `error` (only delete is allowed then); a failed delete leaves
 * it in `error` too, to be deleted again.
 */
#include "volume_snapshot_ops.h"

#include <stdlib.h>
#include <string.h>

#include "../hv/pool_xml.h"
#include "../util/log.h"
#include "../util/strutil.h"
#include "metrics.h"
#include "vm_ops_internal.h"
#include "vm_rbd.h"
#include "volume_ops.h"

#define BIT(s) (1u << (unsigned)(s))

/* ---- rbd on nimbusd's host ---- */

/* "<rbd pool>/<image>@<snapshot>" of snap, and "<rbd pool>/<image>" of its volume. */
static int
vsnap_rbd_specs(const Pool *pool, const VolumeSnapshot *snap, char **ret_snap, char **ret_image,
                NbError **err)
{
    char vol[VOLUME_NAME_ON_HOST_MAX + 1], name[VOLUME_NAME_ON_HOST_MAX + 1];
    volume_name_on_host(snap->volume_id, vol);
    volume_snapshot_name_on_host(snap->id, name);
    *ret_snap = str_printf("%s/%s@%s", pool->source, vol, name);
    *ret_image = str_printf("%s/%s", pool->source, vol);
    if (!*ret_snap || !*ret_image) {
        free(*ret_snap);
        free(*ret_image);
        *ret_snap = *ret_image = NULL;
        return nb_error_set(err, NB_ERR_INTERNAL, "out of memory");
    }
    return 0;
}

/* `rbd snap <verb>` on snap (vm_rbd_snap: done already counts as done). */
static int
vsnap_rbd_snap(Core *core, const char *tag, const Pool *pool, const VolumeSnapshot *snap,
               const char *verb, NbError **err)
{
    char vol[VOLUME_NAME_ON_HOST_MAX + 1], name[VOLUME_NAME_ON_HOST_MAX + 1];
    volume_name_on_host(snap->volume_id, vol);
    volume_snapshot_name_on_host(snap->id, name);
    return vm_rbd_snap(core, tag, pool, vol, name, verb, err);
}

/* ---- where the work happens ---- */

typedef struct VsnapCtx {
    Pool pool; /* its secret wiped */
    char host[NB_NAME_MAX + 1];
    char volume[VOLUME_NAME_ON_HOST_MAX + 1];   /* the volume's name on the host */
    char snapshot[VOLUME_NAME_ON_HOST_MAX + 1]; /* the snapshot's (an RBD snap, or a volume) */
} VsnapCtx;

static int
vsnap_ctx(Core *core, const VolumeSnapshot *snap, VsnapCtx *c, NbError **err)
{
    if (pool_store_get(core->store, snap->pool_id, &c->pool, err) < 0)
        return -1;
    explicit_bzero(c->pool.secret, sizeof(c->pool.secret));
    volume_ops_work_host(core, snap->pool_id, snap->host, c->host);
    volume_name_on_host(snap->volume_id, c->volume);
    volume_snapshot_name_on_host(snap->id, c->snapshot);
    return 0;
}

/* A connection to the host of c; a delay while it may come up, or -1. */
static int
vsnap_conn(Core *core, const VsnapCtx *c, HvConn **ret, NbError **err)
{
    HvConn *hv = host_registry_conn(core, c->host);
    if (hv && hv_conn_is_alive(hv)) {
        *ret = hv;
        return 0;
    }
    hv_conn_free(hv);
    return nb_error_set(err, NB_ERR_HOST_DOWN, "host '%s' is down", c->host);
}

/* ---- the tasks ---- */

static int
step_snapshot(Core *core, Task *task, VolumeSnapshot *snap, NbError **err)
{
    VsnapCtx c;
    if (vsnap_ctx(core, snap, &c, err) < 0)
        return -1;
    if (c.pool.type == POOL_TYPE_RBD)
        return vsnap_rbd_snap(core, task->id, &c.pool, snap, "create", err);
    Volume v;
    if (volume_store_get(core->store, NULL, snap->volume_id, &v, err) < 0)
        return -1;
    HvConn *hv = NULL;
    if (vsnap_conn(core, &c, &hv, err) < 0)
        return -1;
    int r = -1;
    _cleanup_free_ char *xml = pool_xml_volume(c.snapshot, snap->size_gib << 30, v.format);
    if (!xml)
        nb_error_set(err, NB_ERR_INTERNAL, "cannot build the XML of volume %s", c.snapshot);
    else
        r = hv_volume_create_from(hv, c.pool.libvirt_name, c.snapshot, xml, c.pool.libvirt_name,
                                  c.volume, err);
    hv_conn_free(hv);
    return r;
}

/* The snapshot goes from the host: absent is done. */
static int
step_remove(Core *core, Task *task, VolumeSnapshot *snap, NbError **err)
{
    VsnapCtx c;
    if (vsnap_ctx(core, snap, &c, err) < 0)
        return -1;
    if (c.pool.type == POOL_TYPE_RBD) {
        /* Protected when a volume was made from it (whose clone has gone since). */
        _cleanup_free_ char *spec = NULL, *image = NULL;
        if (vsnap_rbd_specs(&c.pool, snap, &spec, &image, err) < 0)
            return -1;
        const char *unprotect[] = {"snap", "unprotect", spec};
        int status = 0;
        if (vm_rbd_run(core, task->id, c.pool.id, unprotect, ELEMENTSOF(unprotect), &status, NULL,
                       err) < 0)
            return -1;
        if (status == VM_RBD_BUSY)
            return nb_error_set(err, NB_ERR_SNAPSHOT_HAS_CLONES, "RBD snapshot %s still has clones",
                                spec);
        /* 0, 22 (not protected) or 2 (no such snapshot): on to rm. */
        return vsnap_rbd_snap(core, task->id, &c.pool, snap, "rm", err);
    }
    HvConn *hv = NULL;
    if (vsnap_conn(core, &c, &hv, err) < 0)
        return -1;
    int r = hv_volume_delete(hv, c.pool.libvirt_name, c.snapshot, err);
    hv_conn_free(hv);
    return r;
}

typedef int (*VsnapStep)(Core *core, Task *task, VolumeSnapshot *snap, NbError **err);

static const VsnapStep create_steps[] = {step_snapshot};
static const char *const create_names[] = {"snapshot"};
static const VsnapStep delete_steps[] = {step_remove};
static const char *const delete_names[] = {"delete"};

static void
vsnap_task_end(Core *core, Task *task, TaskState state, const char *code, const char *msg)
{
    _cleanup_error_ NbError *err = NULL;
    if (task_store_finish(core->store, task, state, code, msg, -1, -1, NULL, &err) < 0)
        log_error("task %s: %s", task->id, err->message);
}

int
volume_snapshot_ops_step_count(TaskKind kind)
{
    return kind == TASK_KIND_VOLUME_SNAPSHOT_CREATE   ? (int)ELEMENTSOF(create_steps)
           : kind == TASK_KIND_VOLUME_SNAPSHOT_DELETE ? (int)ELEMENTSOF(delete_steps)
                                                      : 0;
}

int64_t
volume_snapshot_ops_run_task(Core *core, Task *task, TaskRun *run)
{
    _cleanup_error_ NbError *err = NULL;
    bool creating = task->kind == TASK_KIND_VOLUME_SNAPSHOT_CREATE;
    const VsnapStep *steps = creating ? create_steps : delete_steps;
    const char *const *names = creating ? create_names : delete_names;
    int n_steps = volume_snapshot_ops_step_count(task->kind);
    VolumeSnapshotState held =
        creating ? VOLUME_SNAPSHOT_STATE_CREATING : VOLUME_SNAPSHOT_STATE_DELETING;
    VolumeSnapshot snap;
    if (n_steps == 0) {
        vsnap_task_end(core, task, TASK_STATE_FAILED, NB_ERR_INTERNAL, "not a snapshot task");
        return TASK_RUN_DONE;
    }
    if (volume_snapshot_store_get(core->store, NULL, NULL, task->target_id, &snap, &err) < 0) {
        /* A delete whose row went just before a crash is done. */
        if (!creating && task->step >= n_steps)
            vsnap_task_end(core, task, TASK_STATE_SUCCEEDED, NULL, NULL);
        else
            vsnap_task_end(core, task, TASK_STATE_FAILED, NB_ERR_SNAPSHOT_NOT_FOUND,
                           "the snapshot no longer exists");
        return TASK_RUN_DONE;
    }
    if (snap.state != held) {
        /* The store's end was recorded before a crash: only the task is left to close. */
        if (task->step >= n_steps)
            vsnap_task_end(core, task, TASK_STATE_SUCCEEDED, NULL, NULL);
        else
            vsnap_task_end(core, task, TASK_STATE_FAILED, NB_ERR_SNAPSHOT_BUSY,
                           "the snapshot was not held by this task");
        return TASK_RUN_DONE;
    }
    if (!task_set_running(core, task, "volume snapshot", snap.id, n_steps))
        return TASK_RUN_DONE;
    int r = 0;
    while (task->step < n_steps) {
        if (task_engine_stopping(core->tasks)) {
            log_info("task %s: daemon stopping; resumes at step %d on the next start", task->id,
                     task->step);
            return TASK_RUN_DONE;
        }
        uint64_t since = nb_monotonic_ms();
        if (steps[task->step](core, task, &snap, &err) < 0) {
            r = -1;
            break;
        }
        metrics_task_step_observe(task->kind, task->step, names[task->step],
                                  (double)(nb_monotonic_ms() - since) / 1000.0);
        task_crash_point(task->kind, task->step);
        task->step++;
        if (task_store_set_step(core->store, task->id, task->step, &err) < 0) {
            r = -1;
            break;
        }
    }
    if (r == 0) {
        r = creating ? volume_snapshot_store_claim(core->store, snap.id, BIT(held),
                                                   VOLUME_SNAPSHOT_STATE_READY, NULL, &err)
                     : volume_snapshot_store_delete(core->store, snap.id, &err);
    }
    if (r == 0) {
        vsnap_task_end(core, task, TASK_STATE_SUCCEEDED, NULL, NULL);
        log_info("task %s (%s) on volume snapshot %s: succeeded", task->id,
                 task_kind_to_string(task->kind), snap.id);
        return TASK_RUN_DONE;
    }
    const char *code = err ? err->code : NB_ERR_INTERNAL;
    const char *msg = err && err->message ? err->message : "internal error";
    log_warn("task %s (%s) on volume snapshot %s failed at step %d: %s: %s", task->id,
             task_kind_to_string(task->kind), snap.id, task->step, code, msg);
    _cleanup_error_ NbError *e = NULL;
    /* A create cut short: what it made goes (an RBD snapshot, a copy); absent is fine. */
    if (creating && step_remove(core, task, &snap, &e) < 0) {
        log_error("volume snapshot %s: left on its host after a failed create: %s", snap.id,
                  e->message);
        nb_error_free(TAKE_PTR(e));
    }
    if (volume_snapshot_store_claim(core->store, snap.id, BIT(held), VOLUME_SNAPSHOT_STATE_ERROR,
                                    NULL, &e) < 0)
        log_error("volume snapshot %s: %s", snap.id, e->message);
    vsnap_task_end(core, task, TASK_STATE_FAILED, code, msg);
    return TASK_RUN_DONE;
}

/* ---- the API's operations ---- */

static void
vsnap_queued(Core *core, const VolumeSnapshot *snap, Task *task)
{
    log_info("volume snapshot %s (%s) of volume %s: %s queued as task %s", snap->id, snap->name,
             snap->volume_id, task_kind_to_string(task->kind), task->id);
    task_engine_submit(core->tasks, task->id);
}

int
volume_snapshot_ops_create(Core *core, const char *scope, const char *volume_key, json_t *body,
                           VolumeSnapshot *ret, Task *ret_task, NbError **err)
{
    char name[NB_NAME_MAX + 1];
    Volume v;
    Pool pool;
    if (volume_snapshot_create_request_decode(body, name, err) < 0 ||
        volume_store_get(core->store, scope, volume_key, &v, err) < 0 ||
        pool_store_get(core->store, v.pool_id, &pool, err) < 0)
        return -1;
    explicit_bzero(pool.secret, sizeof(pool.secret));
    if (pool.type == POOL_TYPE_ISCSI)
        return nb_error_set(err, NB_ERR_SNAPSHOT_UNSUPPORTED,
                            "volume '%s' is a LUN of iSCSI pool '%s', which has no snapshots",
                            v.name, pool.name);
    VolumeSnapshot snap = {0};
    nb_uuid_generate(snap.id);
    memcpy(snap.volume_id, v.id, sizeof(snap.volume_id));
    snprintf(snap.name, sizeof(snap.name), "%s", name);
    snap.state = VOLUME_SNAPSHOT_STATE_CREATING;
    nb_timestamp_now(snap.created_at);
    Task task;
    task_new(&task, TASK_KIND_VOLUME_SNAPSHOT_CREATE, snap.id, NULL);
    if (volume_snapshot_store_create(core->store, &snap, pool.type != POOL_TYPE_RBD, &task, err) <
        0) {
        task_clear(&task);
        return -1;
    }
    vsnap_queued(core, &snap, &task);
    *ret = snap;
    *ret_task = task;
    return 0;
}

int
volume_snapshot_ops_delete(Core *core, const char *scope, const char *volume_key,
                           const char *snap_key, VolumeSnapshot *ret, Task *ret_task, NbError **err)
{
    Volume v;
    VolumeSnapshot snap;
    if (volume_store_get(core->store, scope, volume_key, &v, err) < 0 ||
        volume_snapshot_store_get(core->store, scope, v.id, snap_key, &snap, err) < 0)
        return -1;
    Task task;
    task_new(&task, TASK_KIND_VOLUME_SNAPSHOT_DELETE, snap.id, NULL);
    unsigned from = BIT(VOLUME_SNAPSHOT_STATE_READY) | BIT(VOLUME_SNAPSHOT_STATE_ERROR);
    if (volume_snapshot_store_claim(core->store, snap.id, from, VOLUME_SNAPSHOT_STATE_DELETING,
                                    &task, err) < 0) {
        task_clear(&task);
        return -1;
    }
    snap.state = VOLUME_SNAPSHOT_STATE_DELETING;
    vsnap_queued(core, &snap, &task);
    *ret = snap;
    *ret_task = task;
    return 0;
}

/* ---- volumes made from a snapshot ---- */

int
volume_snapshot_ops_resolve(Core *core, const char *project, const char *ref, VolumeSnapshot *ret,
                            NbError **err)
{
    const char *slash = strchr(ref, '/');
    if (!slash)
        return volume_snapshot_store_get(core->store, project, NULL, ref, ret, err);
    char vol[NB_NAME_MAX + 1];
    snprintf(vol, sizeof(vol), "%.*s", (int)(slash - ref), ref);
    Volume v;
    if (volume_store_get(core->store, project, vol, &v, err) < 0)
        return -1;
    return volume_snapshot_store_get(core->store, project, v.id, slash + 1, ret, err);
}

int
volume_snapshot_ops_make_volume(Core *core, const Task *task, const Volume *v, const Pool *pool,
                                HvConn *hv, NbError **err)
{
    VolumeSnapshot snap;
    char name[VOLUME_NAME_ON_HOST_MAX + 1], snap_name[VOLUME_NAME_ON_HOST_MAX + 1];
    if (volume_snapshot_store_get(core->store, NULL, NULL, v->source_snapshot, &snap, err) < 0)
        return -1;
    volume_name_on_host(v->id, name);
    volume_snapshot_name_on_host(snap.id, snap_name);
    if (pool->type != POOL_TYPE_RBD) {
        _cleanup_free_ char *xml = pool_xml_volume(name, snap.size_gib << 30, v->format);
        if (!xml)
            return nb_error_set(err, NB_ERR_INTERNAL, "cannot build the XML of volume %s", v->id);
        return hv_volume_create_from(hv, pool->libvirt_name, name, xml, pool->libvirt_name,
                                     snap_name, err);
    }
    /* A clone needs its parent snapshot protected (RBD clone format 1); protected already: 16. */
    if (vsnap_rbd_snap(core, task->id, pool, &snap, "protect", err) < 0)
        return -1;
    _cleanup_free_ char *spec = NULL, *image = NULL, *child = NULL;
    if (vsnap_rbd_specs(pool, &snap, &spec, &image, err) < 0)
        return -1;
    child = str_printf("%s/%s", pool->source, name);
    if (!child)
        return nb_error_set(err, NB_ERR_INTERNAL, "out of memory");
    const char *clone[] = {"clone", spec, child};
    int status = 0;
    if (vm_rbd_run(core, task->id, pool->id, clone, ELEMENTSOF(clone), &status, NULL, err) < 0)
        return -1;
    if (status != 0 && status != VM_RBD_EXISTS)
        return nb_error_set(err, NB_ERR_HYPERVISOR, "rbd clone of %s into %s failed (status %d)",
                            spec, child, status);
    /* libvirt lists what it made itself: the clone is seen after a refresh. */
    return hv_pool_refresh(hv, pool->libvirt_name, err);
}
