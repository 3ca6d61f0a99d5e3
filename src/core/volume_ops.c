/*
 * Volumes: the API's operations and the volume tasks. Every step is idempotent: it may run
 * again after a crash that came after its libvirt work but before its progress was persisted.
 * A failed create deletes what it made and leaves the volume in `error` (only delete is allowed
 * then); a failed attach takes the disk out again and leaves the volume available; a detach the
 * guest never completes puts the disk back in the definition and leaves the volume attached.
 */
#include "volume_ops.h"

#include <stdlib.h>
#include <string.h>

#include "../hv/pool_xml.h"
#include "../model/json_req.h"
#include "../util/log.h"
#include "../util/strutil.h"
#include "metrics.h"
#include "snapshot_ops.h"
#include "vm_ops_internal.h"
#include "volume_snapshot_ops.h"

/* How long a detach waits for the guest to let the disk go, and how often it looks. */
#define VOLUME_UNPLUG_TIMEOUT_MS 60000
#define VOLUME_UNPLUG_POLL_MS 1000
/* How long a task waits for a host nimbusd has not reached yet since it started. */
#define VOLUME_HOST_WAIT_MS 60000
#define VOLUME_SERIAL_LEN 20

#define BIT(s) (1u << (unsigned)(s))

/* ---- shared pieces ---- */

static void
volume_serial(const Volume *v, char out[VOLUME_SERIAL_LEN + 1])
{
    snprintf(out, VOLUME_SERIAL_LEN + 1, "%.*s", VOLUME_SERIAL_LEN, v->id);
}

void
volume_ops_work_host(Core *core, const char *pool_id, const char *host, char out[NB_NAME_MAX + 1])
{
    if (host[0]) {
        snprintf(out, NB_NAME_MAX + 1, "%s", host);
        return;
    }
    snprintf(out, NB_NAME_MAX + 1, "%s", core->cfg.host_name);
    _cleanup_error_ NbError *e = NULL;
    PoolHostState *st = NULL;
    size_t n = 0;
    if (pool_store_hosts(core->store, pool_id, &st, &n, &e) < 0)
        return;
    for (size_t i = 0; i < n; i++) {
        if (streq(st[i].state, "active") && host_registry_is_up(core, st[i].host)) {
            snprintf(out, NB_NAME_MAX + 1, "%s", st[i].host);
            break;
        }
    }
    free(st);
}

/* The host where a volume's libvirt work happens. */
static void
volume_work_host(Core *core, const Volume *v, char out[NB_NAME_MAX + 1])
{
    volume_ops_work_host(core, v->pool_id, v->host, out);
}

/* The disk QoS of vm's disks: its flavor's (flavors do not change, and one in use stays). */
static int
vm_disk_iotune(Core *core, const Vm *vm, DiskIotune *ret, NbError **err)
{
    Flavor flavor;
    if (flavor_store_get(core->store, vm->flavor_id, &flavor, err) < 0)
        return -1;
    *ret = (DiskIotune){flavor.disk_iops, flavor_disk_bytes_sec(&flavor)};
    return 0;
}

/* The disk of v at target (bus) as the domain on the host behind hv has it, with its VM's disk
 * QoS (iotune). */
static char *
volume_disk_xml(Core *core, HvConn *hv, const Volume *v, const Pool *pool, const char *target,
                VolumeBus bus, const DiskIotune *iotune, NbError **err)
{
    char name[VOLUME_NAME_ON_HOST_MAX + 1], serial[VOLUME_SERIAL_LEN + 1];
    volume_name_on_host(v->id, name);
    volume_serial(v, serial);
    DiskSpec d = {
        .format = v->format,
        .target = target,
        .bus = volume_bus_to_string(bus),
        .serial = serial,
        .iotune = *iotune,
    };
    _cleanup_free_ char *path = NULL, *rbd_name = NULL;
    const char *hosts[POOL_MONITORS_MAX];
    switch (pool->type) {
    case POOL_TYPE_DIR:
    case POOL_TYPE_NETFS:
    case POOL_TYPE_LOGICAL:
        if (hv_vol_path(hv, pool->libvirt_name, name, &path, err) < 0)
            return NULL;
        d.kind = pool->type == POOL_TYPE_LOGICAL ? DISK_SOURCE_BLOCK : DISK_SOURCE_FILE;
        d.path = path;
        break;
    case POOL_TYPE_RBD:
        rbd_name = str_printf("%s/%s", pool->source, name);
        if (!rbd_name) {
            nb_error_set(err, NB_ERR_INTERNAL, "out of memory");
            return NULL;
        }
        for (size_t i = 0; i < pool->n_monitors && i < POOL_MONITORS_MAX; i++)
            hosts[i] = pool->monitors[i];
        d.kind = DISK_SOURCE_RBD;
        d.name = rbd_name;
        d.hosts = hosts;
        d.n_hosts = pool->n_monitors;
        d.auth_user = pool->auth_user[0] ? pool->auth_user : NULL;
        d.secret_uuid = pool->auth_user[0] ? pool->id : NULL;
        break;
    default:
        nb_error_set(err, NB_ERR_INVALID_REQUEST, "volumes in %s pools are not supported",
                     pool_type_to_string(pool->type));
        return NULL;
    }
    char *xml = pool_xml_disk(&d);
    if (!xml)
        nb_error_set(err, NB_ERR_INTERNAL, "cannot build the disk XML of volume %s", v->id);
    return xml;
}

/* ---- the tasks ---- */

typedef int (*VolStep)(Core *core, Task *task, Volume *v, TaskRun *run, NbError **err);

typedef struct VolTaskDef {
    const VolStep *steps;
    int n_steps;
    const char *const *step_names;
    unsigned held; /* the volume states in which this task holds the volume */
    /* After the last step: gives the volume back (the store's end of the operation). */
    int (*finish)(Core *core, Task *task, Volume *v, NbError **err);
    /* After a failure: undoes what it must and gives the volume back. */
    void (*rollback)(Core *core, Task *task, Volume *v);
} VolTaskDef;

/* A connection to host: 0 and *ret, a delay (> 0) while a host nimbusd has not reached yet
 * since it started may come up, or -1 (HOST_DOWN). */
static int
vol_conn(Core *core, const char *host, const TaskRun *run, HvConn **ret, NbError **err)
{
    HvConn *c = host_registry_conn(core, host);
    if (c && hv_conn_is_alive(c)) {
        *ret = c;
        return 0;
    }
    hv_conn_free(c);
    if (run && host_registry_state(core, host) == HOST_CONN_CONNECTING &&
        nb_monotonic_ms() - run->first_run_ms < VOLUME_HOST_WAIT_MS)
        return vm_ops_wait_ms(run->first_run_ms);
    return nb_error_set(err, NB_ERR_HOST_DOWN, "host '%s' is down", host);
}

static int
vol_get_pool(Core *core, const Volume *v, Pool *ret, NbError **err)
{
    return pool_store_get(core->store, v->pool_id, ret, err);
}

/* Where a step works on the volume: its pool, the host that holds it (or works on a shared
 * pool), a connection to that host and the volume's name there. */
typedef struct VolOnHost {
    Pool pool; /* its secret wiped: the steps need only the libvirt name */
    char host[NB_NAME_MAX + 1];
    char name[VOLUME_NAME_ON_HOST_MAX + 1];
    HvConn *hv; /* to free */
} VolOnHost;

/* 0 and *t, a delay (> 0) while the host may still come up (vol_conn), or -1. */
static int
vol_on_host(Core *core, const Volume *v, const TaskRun *run, VolOnHost *t, NbError **err)
{
    t->hv = NULL;
    if (vol_get_pool(core, v, &t->pool, err) < 0)
        return -1;
    explicit_bzero(t->pool.secret, sizeof(t->pool.secret));
    volume_work_host(core, v, t->host);
    volume_name_on_host(v->id, t->name);
    return vol_conn(core, t->host, run, &t->hv, err);
}

/* ---- create ---- */

static int
step_create(Core *core, Task *task, Volume *v, TaskRun *run, NbError **err)
{
    VolOnHost t;
    int r = vol_on_host(core, v, run, &t, err);
    if (r != 0)
        return r;
    HvConn *hv = t.hv;
    const char *host = t.host, *name = t.name;
    r = -1;
    if (v->source_snapshot[0]) {
        r = volume_snapshot_ops_make_volume(core, task, v, &t.pool, hv, err);
    } else if (v->source_image[0]) {
        Image img;
        if (image_store_get(core->store, NULL, v->source_image, &img, err) < 0)
            goto out;
        /* The image's volume on this host's Nimbus pool first (copied from the local host). */
        int there = image_ops_ensure_on(core, &img, host, hv, err);
        if (there < 0)
            goto out;
        if (there > 0) {
            r = vm_ops_wait(run);
            goto out;
        }
        _cleanup_free_ char *xml = pool_xml_volume(name, img.virtual_size_bytes, v->format);
        if (!xml) {
            nb_error_set(err, NB_ERR_INTERNAL, "cannot build the XML of volume %s", v->id);
            goto out;
        }
        r = hv_volume_create_from(hv, t.pool.libvirt_name, name, xml, core->cfg.pool_name,
                                  img.volume, err);
    } else {
        uint64_t bytes = v->size_gib << 30;
        _cleanup_free_ char *xml = pool_xml_volume(name, bytes, v->format);
        if (!xml) {
            nb_error_set(err, NB_ERR_INTERNAL, "cannot build the XML of volume %s", v->id);
            goto out;
        }
        r = hv_volume_create(hv, t.pool.libvirt_name, name, xml, bytes, err);
    }
out:
    hv_conn_free(hv);
    return r;
}

/* A copy of an image has the image's size: grown to the volume's. (An empty volume is made at
 * its size: nothing to do.) Also the resize task's step for a volume not in a running guest. */
static int
step_grow(Core *core, Task *task, Volume *v, TaskRun *run, NbError **err)
{
    VolOnHost t;
    int r = vol_on_host(core, v, run, &t, err);
    if (r != 0)
        return r;
    r = hv_volume_resize(t.hv, t.pool.libvirt_name, t.name, v->size_gib << 30, err);
    hv_conn_free(t.hv);
    return r;
}

static int
create_finish(Core *core, Task *task, Volume *v, NbError **err)
{
    return volume_store_transition(core->store, v->id, BIT(VOLUME_STATE_CREATING),
                                   VOLUME_STATE_AVAILABLE, NULL, err);
}

static int
step_delete_on_host(Core *core, Task *task, Volume *v, TaskRun *run, NbError **err)
{
    VolOnHost t;
    int r = vol_on_host(core, v, run, &t, err);
    if (r != 0)
        return r;
    r = hv_volume_delete(t.hv, t.pool.libvirt_name, t.name, err);
    hv_conn_free(t.hv);
    return r;
}

static void
create_rollback(Core *core, Task *task, Volume *v)
{
    _cleanup_error_ NbError *err = NULL;
    if (step_delete_on_host(core, task, v, NULL, &err) != 0)
        log_error("volume %s: left on its host after a failed create: %s", v->id,
                  err ? err->message : "unknown");
    nb_error_free(TAKE_PTR(err));
    if (volume_store_transition(core->store, v->id, BIT(VOLUME_STATE_CREATING), VOLUME_STATE_ERROR,
                                NULL, &err) < 0)
        log_error("volume %s: %s", v->id, err->message);
}

/* ---- attach and detach ---- */

/* The VM the volume is (being) attached to, the connection to its host and the disk's XML. */
typedef struct VolVmCtx {
    Vm vm;
    bool have_vm;
    HvConn *hv;
    char *xml;
    char domain[64];
    char serial[VOLUME_SERIAL_LEN + 1];
} VolVmCtx;

static void
vol_vm_ctx_clear(VolVmCtx *c)
{
    if (c->have_vm)
        vm_clear(&c->vm);
    hv_conn_free(c->hv);
    free(c->xml);
    *c = (VolVmCtx){0};
}

/* 0 ready, 1 no such VM any more (nothing to do on a host), a delay (> 1) or -1. */
static int
vol_vm_ctx(Core *core, const Volume *v, const TaskRun *run, VolVmCtx *c, NbError **err)
{
    *c = (VolVmCtx){0};
    _cleanup_error_ NbError *e = NULL;
    if (!v->vm_id[0] || vm_store_get(core->store, NULL, v->vm_id, &c->vm, &e) < 0) {
        if (e && !streq(e->code, NB_ERR_VM_NOT_FOUND))
            return nb_error_propagate(err, TAKE_PTR(e));
        return 1;
    }
    c->have_vm = true;
    Pool pool;
    if (vol_get_pool(core, v, &pool, err) < 0)
        return -1;
    if (!pool_type_is_shared(pool.type) && v->host[0] && !streq(v->host, c->vm.host))
        return nb_error_set(err, NB_ERR_VOLUME_NOT_REACHABLE,
                            "volume '%s' is on host '%s', the VM on host '%s'", v->name, v->host,
                            c->vm.host);
    int r = vol_conn(core, c->vm.host, run, &c->hv, err);
    if (r != 0)
        return r == 1 ? 2 : r;
    vm_domain_name(&c->vm, c->domain);
    volume_serial(v, c->serial);
    DiskIotune iotune;
    if (vm_disk_iotune(core, &c->vm, &iotune, err) < 0)
        return -1;
    c->xml = volume_disk_xml(core, c->hv, v, &pool, v->target, v->bus, &iotune, err);
    return c->xml ? 0 : -1;
}

static int
step_attach(Core *core, Task *task, Volume *v, TaskRun *run, NbError **err)
{
    VolVmCtx c;
    int r = vol_vm_ctx(core, v, run, &c, err);
    if (r == 1)
        r = nb_error_set(err, NB_ERR_VM_NOT_FOUND, "the VM is gone");
    else if (r == 0)
        r = hv_domain_disk_attach(c.hv, c.domain, v->target, c.serial, c.xml, err);
    vol_vm_ctx_clear(&c);
    return r;
}

static int
attach_finish(Core *core, Task *task, Volume *v, NbError **err)
{
    return volume_store_attach_end(core->store, v->id, true, err);
}

/* One detach request, no wait: the rollback of a failed attach. */
static void
attach_rollback(Core *core, Task *task, Volume *v)
{
    VolVmCtx c;
    _cleanup_error_ NbError *err = NULL;
    int r = vol_vm_ctx(core, v, NULL, &c, &err);
    if (r == 0)
        r = hv_domain_disk_detach(c.hv, c.domain, v->target, c.serial, c.xml, &err);
    if (r < 0)
        log_error("volume %s: the disk may be left in VM %s: %s", v->id, v->vm_id, err->message);
    else if (r == 1 && c.have_vm)
        log_warn("volume %s: VM %s's guest has not released disk %s yet", v->id, v->vm_id,
                 v->target);
    vol_vm_ctx_clear(&c);
    nb_error_free(TAKE_PTR(err));
    if (volume_store_attach_end(core->store, v->id, false, &err) < 0)
        log_error("volume %s: %s", v->id, err->message);
}

static int
step_detach(Core *core, Task *task, Volume *v, TaskRun *run, NbError **err)
{
    VolVmCtx c;
    int r = vol_vm_ctx(core, v, run, &c, err);
    if (r == 1)
        r = 0; /* the VM is gone, and its domain with it */
    else if (r == 0)
        r = hv_domain_disk_detach(c.hv, c.domain, v->target, c.serial, c.xml, err);
    vol_vm_ctx_clear(&c);
    if (r != 1)
        return r;
    /* The guest still holds the disk (QEMU has the image open): look again by timer; a guest
     * that never lets go fails the task with the disk in place. */
    if (!run->wait_since_ms)
        run->wait_since_ms = nb_monotonic_ms();
    if (nb_monotonic_ms() - run->wait_since_ms > VOLUME_UNPLUG_TIMEOUT_MS)
        return nb_error_set(err, NB_ERR_HYPERVISOR,
                            "the guest did not release disk %s within %d s; it keeps it", v->target,
                            VOLUME_UNPLUG_TIMEOUT_MS / 1000);
    return VOLUME_UNPLUG_POLL_MS;
}

static int
detach_finish(Core *core, Task *task, Volume *v, NbError **err)
{
    return volume_store_detach_end(core->store, v->id, err);
}

/* The guest kept the disk: it goes back into the definition too, and the volume stays
 * attached. */
static void
detach_rollback(Core *core, Task *task, Volume *v)
{
    VolVmCtx c;
    _cleanup_error_ NbError *err = NULL;
    int r = vol_vm_ctx(core, v, NULL, &c, &err);
    if (r == 0)
        r = hv_domain_disk_attach(c.hv, c.domain, v->target, c.serial, c.xml, &err);
    vol_vm_ctx_clear(&c);
    if (r < 0)
        log_error("volume %s: cannot put disk %s back into VM %s: %s", v->id, v->target, v->vm_id,
                  err->message);
    nb_error_free(TAKE_PTR(err));
    /* No VM any more (r == 1): its delete has let the volume go in the store already. */
    if (r != 1 && volume_store_transition(core->store, v->id, BIT(VOLUME_STATE_DETACHING),
                                          VOLUME_STATE_ATTACHED, NULL, &err) < 0)
        log_error("volume %s: %s", v->id, err->message);
}

/* ---- resize ---- */

/* Online when a running guest has the disk (QEMU grows the image it has open, which a resize of
 * the volume underneath would not be allowed to), else the volume itself. */
static int
step_resize(Core *core, Task *task, Volume *v, TaskRun *run, NbError **err)
{
    if (v->state == VOLUME_STATE_ATTACHED) {
        VolVmCtx c;
        int r = vol_vm_ctx(core, v, run, &c, err);
        if (r == 0)
            r = hv_domain_block_resize(c.hv, c.domain, v->target, c.serial, v->size_gib << 30, err);
        else if (r == 1)
            r = 0;
        vol_vm_ctx_clear(&c);
        if (r != 0)
            return r < 0 ? -1 : r == 1 ? 0 : r;
    }
    return step_grow(core, task, v, run, err);
}

/* ---- delete ---- */

static int
delete_finish(Core *core, Task *task, Volume *v, NbError **err)
{
    return volume_store_delete(core->store, v->id, err);
}

static void
delete_rollback(Core *core, Task *task, Volume *v)
{
    _cleanup_error_ NbError *err = NULL;
    /* Still there on the host (or not reached): the user may ask again. */
    if (volume_store_transition(core->store, v->id, BIT(VOLUME_STATE_DELETING), VOLUME_STATE_ERROR,
                                NULL, &err) < 0)
        log_error("volume %s: %s", v->id, err->message);
}

/* ---- the runner ---- */

static const VolStep create_steps[] = {step_create, step_grow};
static const char *const create_names[] = {"create", "grow"};
static const VolStep attach_steps[] = {step_attach};
static const char *const attach_names[] = {"attach"};
static const VolStep detach_steps[] = {step_detach};
static const char *const detach_names[] = {"detach"};
static const VolStep resize_steps[] = {step_resize};
static const char *const resize_names[] = {"resize"};
static const VolStep delete_steps[] = {step_delete_on_host};
static const char *const delete_names[] = {"delete"};

#define VOL_DEF(s, names, held_, fin, rb)                                                          \
    {                                                                                              \
        .steps = s, .n_steps = (int)ELEMENTSOF(s), .step_names = names, .held = held_,             \
        .finish = fin, .rollback = rb                                                              \
    }

static const VolTaskDef vol_task_defs[_TASK_KIND_MAX] = {
    [TASK_KIND_VOLUME_CREATE] = VOL_DEF(create_steps, create_names, BIT(VOLUME_STATE_CREATING),
                                        create_finish, create_rollback),
    [TASK_KIND_VOLUME_ATTACH] = VOL_DEF(attach_steps, attach_names, BIT(VOLUME_STATE_ATTACHING),
                                        attach_finish, attach_rollback),
    [TASK_KIND_VOLUME_DETACH] = VOL_DEF(detach_steps, detach_names, BIT(VOLUME_STATE_DETACHING),
                                        detach_finish, detach_rollback),
    [TASK_KIND_VOLUME_RESIZE] =
        VOL_DEF(resize_steps, resize_names,
                BIT(VOLUME_STATE_AVAILABLE) | BIT(VOLUME_STATE_ATTACHED), NULL, NULL),
    [TASK_KIND_VOLUME_DELETE] = VOL_DEF(delete_steps, delete_names, BIT(VOLUME_STATE_DELETING),
                                        delete_finish, delete_rollback),
};

static const VolTaskDef *
vol_task_def(TaskKind kind)
{
    if ((int)kind < 0 || kind >= _TASK_KIND_MAX || !vol_task_defs[kind].steps)
        return NULL;
    return &vol_task_defs[kind];
}

int
volume_ops_step_count(TaskKind kind)
{
    const VolTaskDef *def = vol_task_def(kind);
    return def ? def->n_steps : 0;
}

static void
vol_task_end(Core *core, Task *task, TaskState state, const char *code, const char *msg)
{
    _cleanup_error_ NbError *err = NULL;
    if (task_store_finish(core->store, task, state, code, msg, -1, -1, NULL, &err) < 0)
        log_error("task %s: %s", task->id, err->message);
}

int64_t
volume_ops_run_task(Core *core, Task *task, TaskRun *run)
{
    _cleanup_error_ NbError *err = NULL;
    const VolTaskDef *def = vol_task_def(task->kind);
    Volume v;
    if (!def) {
        vol_task_end(core, task, TASK_STATE_FAILED, NB_ERR_INTERNAL, "not a volume task");
        return TASK_RUN_DONE;
    }
    if (volume_store_get(core->store, NULL, task->target_id, &v, &err) < 0) {
        /* A delete whose row went just before a crash is done; anything else lost its volume. */
        if (task->kind == TASK_KIND_VOLUME_DELETE && task->step >= def->n_steps)
            vol_task_end(core, task, TASK_STATE_SUCCEEDED, NULL, NULL);
        else
            vol_task_end(core, task, TASK_STATE_FAILED, NB_ERR_VOLUME_NOT_FOUND,
                         "the volume no longer exists");
        return TASK_RUN_DONE;
    }
    if (!(def->held & BIT(v.state))) {
        /* The store's end of the operation was recorded before a crash: only the task is left
         * to close. Otherwise the volume was never this task's (its claim failed). */
        if (task->step >= def->n_steps)
            vol_task_end(core, task, TASK_STATE_SUCCEEDED, NULL, NULL);
        else
            vol_task_end(core, task, TASK_STATE_FAILED, NB_ERR_VOLUME_BUSY,
                         "the volume was not held by this task");
        return TASK_RUN_DONE;
    }
    if (!task_set_running(core, task, "volume", v.id, def->n_steps))
        return TASK_RUN_DONE;
    int r = 0;
    int64_t delay = TASK_RUN_DONE;
    while (task->step < def->n_steps) {
        if (task_engine_stopping(core->tasks)) {
            log_info("task %s: daemon stopping; resumes at step %d on the next start", task->id,
                     task->step);
            return TASK_RUN_DONE;
        }
        if (!run->step_since_ms)
            run->step_since_ms = nb_monotonic_ms();
        int s = def->steps[task->step](core, task, &v, run, &err);
        if (s > 0)
            return s; /* the step waits; it runs again then */
        metrics_task_step_observe(task->kind, task->step, def->step_names[task->step],
                                  (double)(nb_monotonic_ms() - run->step_since_ms) / 1000.0);
        run->step_since_ms = 0;
        if (s < 0) {
            r = -1;
            break;
        }
        task_crash_point(task->kind, task->step);
        run->wait_since_ms = 0;
        task->step++;
        if (task_store_set_step(core->store, task->id, task->step, &err) < 0) {
            r = -1;
            break;
        }
    }
    if (r == 0 && def->finish && def->finish(core, task, &v, &err) < 0)
        r = -1;
    if (r == 0) {
        vol_task_end(core, task, TASK_STATE_SUCCEEDED, NULL, NULL);
        log_info("task %s (%s) on volume %s: succeeded", task->id, task_kind_to_string(task->kind),
                 v.id);
        return delay;
    }
    const char *code = err ? err->code : NB_ERR_INTERNAL;
    const char *msg = err && err->message ? err->message : "internal error";
    log_warn("task %s (%s) on volume %s failed at step %d: %s: %s", task->id,
             task_kind_to_string(task->kind), v.id, task->step, code, msg);
    if (def->rollback)
        def->rollback(core, task, &v);
    vol_task_end(core, task, TASK_STATE_FAILED, code, msg);
    return TASK_RUN_DONE;
}

/* ---- the API's operations ---- */

/* Inserts the task (the volume held already) and queues it. The claim is given back if the task
 * cannot be recorded. */
static int
vol_queue(Core *core, const Volume *v, TaskKind kind, const char *params, unsigned release_from,
          VolumeState release_to, Task *ret_task, NbError **err)
{
    Task task;
    task_new(&task, kind, v->id, params);
    if (task_store_insert(core->store, &task, v->project, err) < 0) {
        _cleanup_error_ NbError *e = NULL;
        if (release_from &&
            volume_store_transition(core->store, v->id, release_from, release_to, NULL, &e) < 0)
            log_error("volume %s: left %s: %s", v->id, volume_state_to_string(v->state),
                      e->message);
        task_clear(&task);
        return -1;
    }
    log_info("volume %s (%s): %s queued as task %s", v->id, v->name, task_kind_to_string(kind),
             task.id);
    task_engine_submit(core->tasks, task.id);
    *ret_task = task;
    return 0;
}

/* The free bytes of a pool on a host as last recorded, -1 unknown. */
static int64_t
pool_free_on(const PoolHostState *st, size_t n, const char *host)
{
    for (size_t i = 0; i < n; i++)
        if (streq(st[i].host, host) && streq(st[i].state, "active") && st[i].capacity >= 0 &&
            st[i].allocation >= 0)
            return st[i].capacity - st[i].allocation;
    return -1;
}

/* A local pool's volume: the request's host (up, and the pool's when it has one), the pool's
 * own host, or the up host with the most free space in the pool. */
static int
vol_pick_host(Core *core, const Pool *pool, const char *want, char out[NB_NAME_MAX + 1],
              NbError **err)
{
    if (want[0]) {
        Host h;
        if (host_store_get(core->store, want, &h, err) < 0)
            return -1;
        if (pool->host[0] && !streq(pool->host, h.name))
            return nb_error_set(err, NB_ERR_POOL_UNAVAILABLE,
                                "pool '%s' is on host '%s' only, not on '%s'", pool->name,
                                pool->host, h.name);
        if (!host_registry_is_up(core, h.name))
            return nb_error_set(err, NB_ERR_HOST_DOWN, "host '%s' is down", h.name);
        snprintf(out, NB_NAME_MAX + 1, "%s", h.name);
        return 0;
    }
    if (pool->host[0]) {
        if (!host_registry_is_up(core, pool->host))
            return nb_error_set(err, NB_ERR_HOST_DOWN, "host '%s' (pool '%s') is down", pool->host,
                                pool->name);
        snprintf(out, NB_NAME_MAX + 1, "%s", pool->host);
        return 0;
    }
    Host *hosts = NULL;
    size_t n = 0;
    PoolHostState *st = NULL;
    size_t n_st = 0;
    if (host_store_list(core->store, &hosts, &n, err) < 0)
        return -1;
    _cleanup_error_ NbError *e = NULL;
    if (pool_store_hosts(core->store, pool->id, &st, &n_st, &e) < 0)
        n_st = 0;
    int64_t best = -2;
    out[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        if (!host_registry_is_up(core, hosts[i].name) || hosts[i].admin != HOST_ADMIN_ENABLED)
            continue;
        int64_t free_b = pool_free_on(st, n_st, hosts[i].name);
        /* The default pool is the one the hosts' facts describe. */
        if (free_b < 0 && pool->is_default)
            free_b = (int64_t)(hosts[i].facts.disk_free_gib << 30);
        if (free_b < 0 && n_st > 0)
            continue; /* recorded elsewhere, not active here */
        if (free_b > best) {
            best = free_b;
            snprintf(out, NB_NAME_MAX + 1, "%s", hosts[i].name);
        }
    }
    free(st);
    free(hosts);
    if (!out[0])
        return nb_error_set(err, NB_ERR_POOL_UNAVAILABLE, "no connected host has pool '%s' active",
                            pool->name);
    return 0;
}

int
volume_ops_create(Core *core, const Principal *who, json_t *body, Volume *ret, Task *ret_task,
                  NbError **err)
{
    VolumeCreateRequest req;
    Pool pool;
    Volume v = {0};
    if (volume_create_request_decode(body, &req, err) < 0)
        return -1;
    if ((req.pool[0] ? pool_store_get(core->store, req.pool, &pool, err)
                     : pool_store_get_default(core->store, &pool, err)) < 0)
        return -1;
    if (pool.type == POOL_TYPE_ISCSI)
        return nb_error_set(err, NB_ERR_INVALID_REQUEST,
                            "pool '%s' is an iSCSI target whose LUNs are fixed: volumes cannot "
                            "be made in it",
                            pool.name);
    /* libvirt's rbd backend copies only from an RBD image of the same pool (it opens the
     * source as one): an image's copy needs Nimbus's own import (later phase: images in RBD). */
    if (req.image[0] && pool.type == POOL_TYPE_RBD)
        return nb_error_set(err, NB_ERR_INVALID_REQUEST,
                            "volumes from images are not made in rbd pools yet (pool '%s'); "
                            "make an empty one, or use a dir pool",
                            pool.name);
    if (req.from_snapshot[0]) {
        /* In the snapshot's pool (and host): a clone or a copy of it there. */
        VolumeSnapshot snap;
        if (volume_snapshot_ops_resolve(core, who->project_id, req.from_snapshot, &snap, err) < 0)
            return -1;
        if (req.pool[0] && !streq(pool.id, snap.pool_id))
            return nb_error_set(err, NB_ERR_INVALID_REQUEST,
                                "a volume from a snapshot is made in the snapshot's pool, not in "
                                "'%s'",
                                pool.name);
        if (req.host[0])
            return nb_error_set(err, NB_ERR_INVALID_REQUEST,
                                "a volume from a snapshot is made on the snapshot's host");
        if (snap.state != VOLUME_SNAPSHOT_STATE_READY)
            return nb_error_set(err, NB_ERR_SNAPSHOT_BUSY, "snapshot '%s' is %s", snap.name,
                                volume_snapshot_state_to_string(snap.state));
        if (req.size_gib < snap.size_gib)
            return nb_error_set(err, NB_ERR_VOLUME_INVALID_SIZE,
                                "snapshot '%s' holds %ju GiB; %ju GiB is smaller", snap.name,
                                (uintmax_t)snap.size_gib, (uintmax_t)req.size_gib);
        if (pool_store_get(core->store, snap.pool_id, &pool, err) < 0)
            return -1;
        memcpy(v.source_snapshot, snap.id, sizeof(v.source_snapshot));
        snprintf(v.host, sizeof(v.host), "%s", snap.host);
        if (v.host[0] && !host_registry_is_up(core, v.host))
            return nb_error_set(err, NB_ERR_HOST_DOWN, "host '%s' (snapshot '%s') is down", v.host,
                                snap.name);
    }
    if (req.image[0]) {
        Image img;
        if (image_store_get(core->store, who->project_id, req.image, &img, err) < 0)
            return -1;
        if (img.state != IMAGE_STATE_ACTIVE)
            return nb_error_set(err, NB_ERR_IMAGE_NOT_ACTIVE, "image '%s' has no data yet (%s)",
                                img.name, image_state_to_string(img.state));
        if ((req.size_gib << 30) < img.virtual_size_bytes)
            return nb_error_set(err, NB_ERR_VOLUME_INVALID_SIZE,
                                "image '%s' needs %ju bytes; %ju GiB is smaller", img.name,
                                (uintmax_t)img.virtual_size_bytes, (uintmax_t)req.size_gib);
        memcpy(v.source_image, img.id, sizeof(v.source_image));
    }
    if (pool_type_is_shared(pool.type)) {
        if (req.host[0])
            return nb_error_set(err, NB_ERR_INVALID_REQUEST,
                                "pool '%s' is shared by every host: a volume in it has no host",
                                pool.name);
    } else if (!v.source_snapshot[0] && vol_pick_host(core, &pool, req.host, v.host, err) < 0) {
        return -1;
    }
    nb_uuid_generate(v.id);
    memcpy(v.project, who->project_id, sizeof(v.project));
    snprintf(v.name, sizeof(v.name), "%s", req.name);
    memcpy(v.pool_id, pool.id, sizeof(v.pool_id));
    v.size_gib = req.size_gib;
    /* qcow2 where the pool holds files (thin, and what snapshots will need), raw elsewhere. */
    snprintf(v.format, sizeof(v.format), "%s",
             pool.type == POOL_TYPE_DIR || pool.type == POOL_TYPE_NETFS ? "qcow2" : "raw");
    v.state = VOLUME_STATE_CREATING;
    v.bus = VOLUME_BUS_VIRTIO;
    nb_timestamp_now(v.created_at);
    if (volume_store_insert(core->store, &v, err) < 0)
        return -1;
    /* Not recorded: the volume is in error and only delete is left (nothing was made). */
    if (vol_queue(core, &v, TASK_KIND_VOLUME_CREATE, NULL, BIT(VOLUME_STATE_CREATING),
                  VOLUME_STATE_ERROR, ret_task, err) < 0)
        return -1;
    log_info("volume %s (%s, %ju GiB) in pool %s%s%s of project %s: create queued", v.id, v.name,
             (uintmax_t)v.size_gib, pool.name, v.host[0] ? " on host " : "", v.host, v.project);
    *ret = v;
    return 0;
}

int
volume_ops_delete(Core *core, const char *scope, const char *id_or_name, Volume *ret,
                  Task *ret_task, NbError **err)
{
    Volume v;
    if (volume_store_get(core->store, scope, id_or_name, &v, err) < 0)
        return -1;
    unsigned from = BIT(VOLUME_STATE_AVAILABLE) | BIT(VOLUME_STATE_ERROR);
    if (volume_store_transition(core->store, v.id, from, VOLUME_STATE_DELETING, &v, err) < 0)
        return -1;
    /* Back to error, not available: whether the host still has it is not known. */
    if (vol_queue(core, &v, TASK_KIND_VOLUME_DELETE, NULL, BIT(VOLUME_STATE_DELETING),
                  VOLUME_STATE_ERROR, ret_task, err) < 0)
        return -1;
    *ret = v;
    return 0;
}

int
volume_ops_attach(Core *core, const char *scope, const char *id_or_name, json_t *body, Volume *ret,
                  Task *ret_task, NbError **err)
{
    char vm_key[NB_NAME_MAX + 1];
    VolumeBus bus;
    Volume v;
    Vm vm;
    Pool pool;
    if (volume_attach_request_decode(body, vm_key, &bus, err) < 0 ||
        volume_store_get(core->store, scope, id_or_name, &v, err) < 0)
        return -1;
    /* Early answers; the store's claim below decides under races. */
    if (v.state == VOLUME_STATE_ATTACHED)
        return nb_error_set(err, NB_ERR_VOLUME_IN_USE, "volume '%s' is attached to a VM already",
                            v.name);
    if (v.state != VOLUME_STATE_AVAILABLE && v.state != VOLUME_STATE_ERROR &&
        v.state != VOLUME_STATE_CREATING)
        return nb_error_set(err, NB_ERR_VOLUME_BUSY, "volume '%s' is %s", v.name,
                            volume_state_to_string(v.state));
    /* The VM as the volume's own project sees it (an admin's call included). */
    if (vm_store_get(core->store, v.project, vm_key, &vm, err) < 0)
        return -1;
    int r = -1;
    if (vm.task_id[0]) {
        nb_error_set(err, NB_ERR_VM_BUSY,
                     "another task is working on this VM; retry when it has finished");
        goto out;
    }
    if (vm.state != VM_STATE_RUNNING && vm.state != VM_STATE_STOPPED &&
        vm.state != VM_STATE_PAUSED) {
        nb_error_set(err, NB_ERR_INVALID_STATE, "cannot attach a volume to a VM that is %s",
                     vm_state_to_string(vm.state));
        goto out;
    }
    char what[NB_NAME_MAX + 32];
    snprintf(what, sizeof(what), "attaching volume '%s'", v.name);
    if (snapshot_ops_vm_check_disks_change(core, vm.id, what, err) < 0 ||
        pool_store_get(core->store, v.pool_id, &pool, err) < 0)
        goto out;
    if (!pool_type_is_shared(pool.type) && !streq(v.host, vm.host)) {
        nb_error_set(err, NB_ERR_VOLUME_NOT_REACHABLE,
                     "volume '%s' is on host '%s' (pool '%s' is local); VM '%s' runs on '%s'",
                     v.name, v.host, pool.name, vm.name, vm.host);
        goto out;
    }
    if (volume_store_attach_begin(core->store, v.id, vm.id, bus, &v, err) < 0)
        goto out;
    r = vol_queue(core, &v, TASK_KIND_VOLUME_ATTACH, NULL, 0, VOLUME_STATE_AVAILABLE, ret_task,
                  err);
    if (r < 0) {
        _cleanup_error_ NbError *e = NULL;
        if (volume_store_attach_end(core->store, v.id, false, &e) < 0)
            log_error("volume %s: left attaching: %s", v.id, e->message);
        goto out;
    }
    *ret = v;
out:
    vm_clear(&vm);
    return r;
}

int
volume_ops_detach(Core *core, const char *scope, const char *id_or_name, json_t *body, Volume *ret,
                  Task *ret_task, NbError **err)
{
    static const char *const fields[] = {"vm", NULL};
    char vm_key[NB_NAME_MAX + 1] = "";
    Volume v;
    if (body && !json_is_object(body))
        return nb_error_set(err, NB_ERR_INVALID_REQUEST, "the body must be a JSON object");
    if (body && (json_req_check_fields(body, fields, err) < 0 ||
                 json_req_string(body, "vm", 0, vm_key, sizeof(vm_key), err) < 0))
        return -1;
    if (volume_store_get(core->store, scope, id_or_name, &v, err) < 0)
        return -1;
    if (v.state == VOLUME_STATE_AVAILABLE || v.state == VOLUME_STATE_ERROR)
        return nb_error_set(err, NB_ERR_VOLUME_NOT_ATTACHED, "volume '%s' is not attached", v.name);
    if (vm_key[0] && v.state == VOLUME_STATE_ATTACHED) {
        Vm vm;
        _cleanup_error_ NbError *e = NULL;
        bool same = vm_store_get(core->store, v.project, vm_key, &vm, &e) == 0;
        if (same) {
            same = streq(vm.id, v.vm_id);
            vm_clear(&vm);
        }
        if (!same)
            return nb_error_set(err, NB_ERR_VOLUME_NOT_ATTACHED,
                                "volume '%s' is not attached to VM '%s'", v.name, vm_key);
    }
    char what[NB_NAME_MAX + 32];
    snprintf(what, sizeof(what), "detaching volume '%s'", v.name);
    if (v.vm_id[0] && snapshot_ops_vm_check_disks_change(core, v.vm_id, what, err) < 0)
        return -1;
    if (volume_store_transition(core->store, v.id, BIT(VOLUME_STATE_ATTACHED),
                                VOLUME_STATE_DETACHING, &v, err) < 0)
        return -1;
    if (vol_queue(core, &v, TASK_KIND_VOLUME_DETACH, NULL, BIT(VOLUME_STATE_DETACHING),
                  VOLUME_STATE_ATTACHED, ret_task, err) < 0)
        return -1;
    *ret = v;
    return 0;
}

int
volume_ops_resize(Core *core, const char *scope, const char *id_or_name, json_t *body, Volume *ret,
                  Task *ret_task, NbError **err)
{
    uint64_t size_gib = 0;
    Volume v;
    if (volume_resize_request_decode(body, &size_gib, err) < 0 ||
        volume_store_get(core->store, scope, id_or_name, &v, err) < 0)
        return -1;
    if (size_gib <= v.size_gib)
        return nb_error_set(err, NB_ERR_VOLUME_SHRINK,
                            "volume '%s' has %ju GiB; a resize only grows it", v.name,
                            (uintmax_t)v.size_gib);
    if (v.state != VOLUME_STATE_AVAILABLE && v.state != VOLUME_STATE_ATTACHED)
        return nb_error_set(
            err, v.state == VOLUME_STATE_ERROR ? NB_ERR_INVALID_STATE : NB_ERR_VOLUME_BUSY,
            "volume '%s' is %s", v.name, volume_state_to_string(v.state));
    /* Recorded (and counted) first; the task makes the host agree, and a retry of the same
     * size is refused as no growth: ask for more. */
    if (volume_store_set_size(core->store, v.id, size_gib, err) < 0 ||
        volume_store_get(core->store, NULL, v.id, &v, err) < 0)
        return -1;
    char params[48];
    snprintf(params, sizeof(params), "{\"size_gib\":%ju}", (uintmax_t)size_gib);
    if (vol_queue(core, &v, TASK_KIND_VOLUME_RESIZE, params, 0, VOLUME_STATE_AVAILABLE, ret_task,
                  err) < 0)
        return -1;
    *ret = v;
    return 0;
}

/* ---- for the VM tasks ---- */

int
volume_ops_vm_disks_xml(Core *core, const Vm *vm, HvConn *hv, char **ret, NbError **err)
{
    Volume *vols = NULL;
    size_t n = 0;
    *ret = NULL;
    DiskIotune iotune;
    if (vm_disk_iotune(core, vm, &iotune, err) < 0 ||
        volume_store_list(core->store, NULL, vm->id, NULL, &vols, &n, err) < 0)
        return -1;
    char *all = strdup("");
    int r = all ? 0 : nb_error_set(err, NB_ERR_INTERNAL, "out of memory");
    for (size_t i = 0; i < n && r == 0; i++) {
        /* Attached ones; one being attached gets in through its own task. */
        if (vols[i].state != VOLUME_STATE_ATTACHED && vols[i].state != VOLUME_STATE_DETACHING)
            continue;
        Pool pool;
        if (pool_store_get(core->store, vols[i].pool_id, &pool, err) < 0) {
            r = -1;
            break;
        }
        _cleanup_free_ char *disk =
            volume_disk_xml(core, hv, &vols[i], &pool, vols[i].target, vols[i].bus, &iotune, err);
        char *more = disk ? str_printf("%s%s", all, disk) : NULL;
        if (!more) {
            r = disk ? nb_error_set(err, NB_ERR_INTERNAL, "out of memory") : -1;
            break;
        }
        free(all);
        all = more;
    }
    volume_list_free(vols, n);
    if (r < 0) {
        free(all);
        return -1;
    }
    *ret = all;
    return 0;
}

int
volume_ops_vm_check_migrate(Core *core, const Vm *vm, NbError **err)
{
    Volume *vols = NULL;
    size_t n = 0;
    if (volume_store_list(core->store, NULL, vm->id, NULL, &vols, &n, err) < 0)
        return -1;
    int r = 0;
    for (size_t i = 0; i < n && r == 0; i++) {
        Pool pool;
        if (pool_store_get(core->store, vols[i].pool_id, &pool, err) < 0) {
            r = -1;
        } else if (!pool_type_is_shared(pool.type)) {
            r = nb_error_set(err, NB_ERR_INVALID_STATE,
                             "VM '%s' has volume '%s' in local pool '%s', which cannot follow it "
                             "to another host; detach it first",
                             vm->name, vols[i].name, pool.name);
        } else if (vols[i].state != VOLUME_STATE_ATTACHED) {
            r = nb_error_set(err, NB_ERR_INVALID_STATE,
                             "volume '%s' of VM '%s' is %s; retry when its task has finished",
                             vols[i].name, vm->name, volume_state_to_string(vols[i].state));
        }
    }
    volume_list_free(vols, n);
    return r;
}

/* ---- after a restart ---- */

void
volume_ops_recover(Core *core)
{
    _cleanup_error_ NbError *err = NULL;
    Task *tasks = NULL;
    Volume *vols = NULL;
    size_t n_tasks = 0, n = 0;
    if (task_store_list_unfinished(core->store, &tasks, &n_tasks, &err) < 0 ||
        volume_store_list(core->store, NULL, NULL, NULL, &vols, &n, &err) < 0) {
        log_warn("volumes: the start-up check was skipped: %s", err->message);
        task_list_free(tasks, n_tasks);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        TaskKind kind = vols[i].state == VOLUME_STATE_CREATING    ? TASK_KIND_VOLUME_CREATE
                        : vols[i].state == VOLUME_STATE_ATTACHING ? TASK_KIND_VOLUME_ATTACH
                        : vols[i].state == VOLUME_STATE_DETACHING ? TASK_KIND_VOLUME_DETACH
                        : vols[i].state == VOLUME_STATE_DELETING  ? TASK_KIND_VOLUME_DELETE
                                                                  : _TASK_KIND_INVALID;
        bool held = false;
        for (size_t j = 0; j < n_tasks && !held; j++)
            held = streq(tasks[j].target_id, vols[i].id);
        if (kind == _TASK_KIND_INVALID || held)
            continue;
        /* Claimed, but the daemon died before the task was recorded (two transactions): the
         * task the claim was for is made again, and finishes or rolls back as any would. */
        Task t;
        _cleanup_error_ NbError *e = NULL;
        log_warn("volume %s (%s) was left %s with no task; queueing %s", vols[i].id, vols[i].name,
                 volume_state_to_string(vols[i].state), task_kind_to_string(kind));
        if (vol_queue(core, &vols[i], kind, NULL, 0, VOLUME_STATE_AVAILABLE, &t, &e) < 0)
            log_error("volume %s: %s", vols[i].id, e->message);
        else
            task_clear(&t);
    }
    volume_list_free(vols, n);
    task_list_free(tasks, n_tasks);
}
