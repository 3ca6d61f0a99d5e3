#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../util/log.h"
#include "../util/strutil.h"
#include "core.h"
#include "pool_ops.h"
#include "volume_ops.h"

static int
core_mkdir(const char *path, mode_t mode, NbError **err)
{
    if (mkdir(path, mode) < 0 && errno != EEXIST)
        return nb_error_set(err, NB_ERR_INTERNAL, "mkdir %s: %s", path, strerror(errno));
    return 0;
}

static int
core_make_dirs(const CoreConfig *cfg, NbError **err)
{
    _cleanup_free_ char *tmp = str_printf("%s/tmp", cfg->state_dir);
    if (!tmp)
        return nb_error_set(err, NB_ERR_INTERNAL, "out of memory");
    if (core_mkdir(cfg->state_dir, 0711, err) < 0 || core_mkdir(tmp, 0700, err) < 0)
        return -1;
    /* QEMU runs as its own user (libvirt-qemu) and must traverse to the disks when the pool
     * lives inside the state directory: search permission only, no listing. */
    struct stat st;
    if (str_startswith(cfg->pool_path, cfg->state_dir) && stat(cfg->state_dir, &st) == 0 &&
        (st.st_mode & 0011) != 0011) {
        if (chmod(cfg->state_dir, (st.st_mode & 07777) | 0011) < 0)
            return nb_error_set(err, NB_ERR_INTERNAL, "chmod %s: %s", cfg->state_dir,
                                strerror(errno));
        log_info("made %s traversable for QEMU (mode %04o)", cfg->state_dir,
                 (unsigned)((st.st_mode & 07777) | 0011));
    }
    return 0;
}

/* Is this pool volume referenced by a stored image or VM? Names are derived from ids:
 * "image-<uuid>", "vm-<uuid>-disk.qcow2", "vm-<uuid>-seed.iso". */
static bool
core_volume_is_known(Core *core, const char *vol)
{
    char id[NB_UUID_STRLEN];
    _cleanup_error_ NbError *err = NULL;
    if (str_startswith(vol, "image-") && strlen(vol) == 6 + 36) {
        memcpy(id, vol + 6, sizeof(id));
        Image img;
        return !nb_uuid_is_valid(id) || image_store_get(core->store, NULL, id, &img, &err) == 0;
    }
    if (str_startswith(vol, "vm-") && strlen(vol) > 3 + 36) {
        memcpy(id, vol + 3, 36);
        id[36] = '\0';
        Vm vm;
        if (!nb_uuid_is_valid(id))
            return true;
        if (vm_store_get(core->store, NULL, id, &vm, &err) < 0)
            return false;
        vm_clear(&vm);
        return true;
    }
    return true; /* not a name Nimbus makes: not ours to judge */
}

/* The VMs' root disks in the local host's other dir pools (docs/storage.md, "VM disks in
 * pools"): one whose VM row is gone goes; nothing else there is Nimbus's to judge. */
static void
core_sweep_dir_pools(Core *core, HvConn *hv)
{
    _cleanup_error_ NbError *err = NULL;
    Pool *pools = NULL;
    size_t n = 0;
    if (pool_store_list(core->store, &pools, &n, &err) < 0) {
        log_warn("start-up sweep of the dir pools skipped: %s", err->message);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        _cleanup_error_ NbError *e = NULL;
        PoolHostState *st = NULL;
        size_t n_st = 0;
        bool active = false;
        explicit_bzero(pools[i].secret, sizeof(pools[i].secret));
        if (pools[i].type != POOL_TYPE_DIR || pools[i].is_default ||
            pool_store_hosts(core->store, pools[i].id, &st, &n_st, &e) < 0)
            continue;
        for (size_t j = 0; j < n_st; j++)
            active |= streq(st[j].host, core->cfg.host_name) && streq(st[j].state, "active");
        free(st);
        char **vols = NULL;
        if (!active || hv_pool_list_volumes(hv, pools[i].libvirt_name, &vols, &e) < 0)
            continue;
        for (size_t j = 0; vols[j]; j++) {
            size_t len = strlen(vols[j]);
            if (str_startswith(vols[j], "vm-") && len > 11 &&
                streq(vols[j] + len - 11, "-disk.qcow2") && !core_volume_is_known(core, vols[j])) {
                _cleanup_error_ NbError *d = NULL;
                log_warn("removing orphan volume %s of pool %s", vols[j], pools[i].name);
                if (hv_vol_delete(hv, pools[i].libvirt_name, vols[j], &d) < 0)
                    log_error("cannot remove %s: %s", vols[j], d->message);
            }
            free(vols[j]);
        }
        free(vols);
    }
    free(pools);
}

/* What a daemon killed mid-way can leave: uploads cut short, and volumes whose row is gone
 * (an image deleted between its row and its volume). Runs before the API serves. */
static void
core_cleanup_after_crash(Core *core)
{
    _cleanup_error_ NbError *err = NULL;
    HvConn *hv = host_registry_local_conn(core);
    if (!hv)
        return;
    Image *imgs = NULL;
    size_t n = 0;
    if (image_store_list_uploading(core->store, &imgs, &n, &err) == 0) {
        for (size_t i = 0; i < n; i++) {
            _cleanup_error_ NbError *e = NULL;
            log_warn("image %s: upload was cut short by a restart; back to queued", imgs[i].id);
            hv_vol_delete(hv, core->cfg.pool_name, imgs[i].volume, &e);
            image_store_transition(core->store, imgs[i].id, IMAGE_STATE_UPLOADING,
                                   IMAGE_STATE_QUEUED, &e);
        }
        free(imgs);
    }
    char **vols = NULL;
    nb_error_free(TAKE_PTR(err));
    if (hv_pool_list_volumes(hv, core->cfg.pool_name, &vols, &err) < 0) {
        log_warn("start-up sweep skipped: %s", err->message);
        hv_conn_free(hv);
        return;
    }
    for (size_t i = 0; vols[i]; i++) {
        if (!core_volume_is_known(core, vols[i])) {
            _cleanup_error_ NbError *e = NULL;
            log_warn("removing orphan volume %s", vols[i]);
            if (hv_vol_delete(hv, core->cfg.pool_name, vols[i], &e) < 0)
                log_error("cannot remove %s: %s", vols[i], e->message);
        }
        free(vols[i]);
    }
    free(vols);
    core_sweep_dir_pools(core, hv);
    hv_conn_free(hv);
}

/* The local host's pools before the API serves, so that the first answer already has their
 * states; the other hosts' follow in housekeeping's first round. */
static void
core_local_pools(Core *core)
{
    _cleanup_error_ NbError *err = NULL;
    HvConn *hv = host_registry_local_conn(core);
    if (hv && pool_ops_host_check(core, core->cfg.host_name, hv, true, &err) < 0)
        log_warn("pool check of the local host: %s", err->message);
    hv_conn_free(hv);
}

static int
core_resume_tasks(Core *core, NbError **err)
{
    Task *tasks = NULL;
    size_t n = 0;
    if (task_store_list_unfinished(core->store, &tasks, &n, err) < 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        log_info("resuming task %s (%s) at step %d", tasks[i].id,
                 task_kind_to_string(tasks[i].kind), tasks[i].step);
        task_engine_submit(core->tasks, tasks[i].id);
    }
    task_list_free(tasks, n);
    return 0;
}

/* Registers the daemon's own host in the store, then starts every host's worker. */
static int
core_hosts_start(Core *core, NbError **err)
{
    const CoreConfig *cfg = &core->cfg;
    HostRegistryConfig rc = {
        .pool_name = cfg->pool_name,
        .pool_path = cfg->pool_path,
        .network = cfg->network,
        .sync_interval_s = cfg->sync_interval_s,
        .quiet_sync_interval_s = cfg->quiet_sync_interval_s,
        .connect_timeout_s = cfg->connect_timeout_s,
    };
    Host *hosts = NULL;
    size_t n = 0;
    if (host_registry_new(&rc, reconciler_report, core->reconciler, &core->registry) < 0)
        return nb_error_set(err, NB_ERR_INTERNAL, "out of memory");
    if (host_store_ensure_local(core->store, cfg->host_name, cfg->libvirt_uri, err) < 0 ||
        host_store_set_agent(core->store, cfg->host_name, cfg->agent_url, cfg->agent_secret,
                             cfg->tunnel_ip, cfg->tunnel_dev, err) < 0 ||
        host_store_list(core->store, &hosts, &n, err) < 0)
        return -1;
    int r = host_registry_start(core->registry, hosts, n, err);
    free(hosts);
    if (r < 0)
        return -1;
    /* The local host must answer (images are uploaded there, and the start-up clean-up looks
     * at its pool); the others come up on their own time, while the API serves. */
    uint64_t timeout_ms = (uint64_t)(cfg->connect_timeout_s ? cfg->connect_timeout_s : 15) * 1000;
    if (host_registry_wait(core->registry, cfg->host_name, timeout_ms) != HOST_CONN_UP)
        return nb_error_set(err, NB_ERR_HOST_DOWN, "cannot reach the local host (%s)",
                            cfg->libvirt_uri);
    /* Its first look applied before serving: after a restart, the API never shows the local
     * VMs' states from before it. */
    if (!reconciler_wait_local_synced(core->reconciler, timeout_ms))
        log_warn("the local host's first sync is late; serving anyway");
    return 0;
}

int
core_start(const CoreConfig *cfg, Core **ret, NbError **err)
{
    Core *core = calloc(1, sizeof(*core));
    if (!core)
        return nb_error_set(err, NB_ERR_INTERNAL, "out of memory");
    core->cfg = *cfg;
    /* First: the task engine and the reconciler publish from their start. */
    if (event_bus_new(EVENT_BUS_DEFAULT_CAPACITY, 0, &core->events) < 0) {
        free(core);
        return nb_error_set(err, NB_ERR_INTERNAL, "out of memory");
    }
    pthread_mutex_init(&core->copy_lock, NULL);
    _cleanup_free_ char *db = str_printf("%s/nimbus.db", cfg->state_dir);
    hv_events_set_loop(cfg->event_loop);
    if (!db || core_make_dirs(cfg, err) < 0 ||
        store_open_opts(db, &cfg->store, &core->store, err) < 0 ||
        pool_ops_ensure_default(core, err) < 0 || placement_new(core, &core->placement) < 0 ||
        hv_events_init(err) < 0 || reconciler_new(core, &core->reconciler, err) < 0 ||
        core_hosts_start(core, err) < 0)
        goto fail;
    core_cleanup_after_crash(core);
    core_local_pools(core);
    if (task_engine_start(core, &core->tasks, err) < 0 || core_resume_tasks(core, err) < 0 ||
        housekeeping_start(core, &core->housekeeping, err) < 0)
        goto fail;
    volume_ops_recover(core);
    *ret = core;
    return 0;
fail:
    core_stop(core);
    return -1;
}

void
core_stop(Core *core)
{
    if (!core)
        return;
    /* Hosts first: no worker reports after this, and none waits on a task. */
    host_registry_stop(core->registry);
    if (task_engine_stop(core->tasks, TASK_STOP_DEADLINE_MS) < 0) {
        /* A worker is stuck in a step and still uses the store, the hosts and the rest: nothing
         * is freed or closed under it. The process exits now, as after a crash; committed work
         * is on disk and the journal resumes the rest. */
        return;
    }
    reconciler_free(core->reconciler);
    core->reconciler = NULL;
    /* After the reconciler, which hands it the hosts that connect. */
    housekeeping_stop(core->housekeeping);
    core->housekeeping = NULL;
    host_registry_free(core->registry);
    hv_events_shutdown();
    store_close(core->store);
    placement_free(core->placement);
    pthread_mutex_destroy(&core->copy_lock);
    event_bus_free(core->events);
    free(core);
}
