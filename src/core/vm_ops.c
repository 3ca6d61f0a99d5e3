/*
 * VM lifecycle as journaled tasks. Every step is idempotent: it may run again after a crash
 * that came after its hypervisor work but before its progress was persisted. A failed create
 * rolls its hypervisor parts back and leaves the VM in `error` (start retries the create, delete
 * removes it); other failed tasks leave the VM as libvirt reports it.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../hv/pool_xml.h"
#include "../model/vm_request.h"
#include "../util/log.h"
#include "../util/strutil.h"
#include "clone_ops.h"
#include "console_ops.h"
#include "metrics.h"
#include "network_ops.h"
#include "network_shaping.h"
#include "secgroup_ops.h"
#include "seed.h"
#include "vm_ops_internal.h"
#include "vm_rbd.h"
#include "volume_ops.h"

const char *
vm_ops_pool(const Core *core)
{
    return core->cfg.pool_name;
}

/* In the pool, whose path is the same on every host: the VM's host writes it (virtlogd) and
 * Nimbus reads it over libvirt, wherever the VM runs. */
static char *
vm_console_log_path(Core *core, const Vm *vm)
{
    char vol[96];
    vm_console_volume(vm, vol);
    return str_printf("%s/%s", core->cfg.pool_path, vol);
}

int
vm_ops_console_read(Core *core, const Vm *vm, uint64_t max, char **ret, size_t *ret_len,
                    NbError **err)
{
    char vol[96];
    vm_console_volume(vm, vol);
    HvConn *c = host_registry_conn(core, vm->host);
    if (!c)
        return nb_error_set(err, NB_ERR_HOST_DOWN, "host '%s' is down", vm->host);
    int r = hv_vol_read_tail(c, vm_ops_pool(core), vol, max, ret, ret_len, err);
    hv_conn_free(c);
    if (r == 0) {
        *ret = strdup("");
        *ret_len = 0;
        if (!*ret)
            return nb_error_set(err, NB_ERR_INTERNAL, "out of memory");
    }
    return r < 0 ? -1 : 0;
}

/* ---- create ---- */

#define VM_WAIT_MIN_MS 250
#define VM_WAIT_MAX_MS 5000

int
vm_ops_wait_ms(uint64_t since_ms)
{
    uint64_t now = nb_monotonic_ms();
    uint64_t quarter = now > since_ms ? (now - since_ms) / 4 : 0;
    if (quarter < VM_WAIT_MIN_MS)
        return VM_WAIT_MIN_MS;
    return quarter > VM_WAIT_MAX_MS ? VM_WAIT_MAX_MS : (int)quarter;
}

int
vm_ops_wait(TaskRun *run)
{
    if (!run->wait_since_ms)
        run->wait_since_ms = nb_monotonic_ms();
    return vm_ops_wait_ms(run->wait_since_ms);
}

char *
vm_ops_disk_from_params(const char *pool, const char *volume)
{
    json_auto_t *j = json_pack("{s:{s:s, s:s}}", "disk_from", "pool", pool, "volume", volume);
    return j ? json_dumps(j, JSON_COMPACT) : NULL;
}

/* A create with params {"disk_from": {pool, volume}}: the disk is a flattened qcow2 copy of
 * that volume on the VM's host (libvirt's qemu-img convert), made again after a crash. 1 when
 * the task names no prepared disk. */
static int
create_disk_from(Core *core, const Task *task, const Vm *vm, HvConn *hv, NbError **err)
{
    json_auto_t *p = task->params ? json_loads(task->params, 0, NULL) : NULL;
    json_t *from = json_object_get(p, "disk_from");
    const char *pool = json_string_value(json_object_get(from, "pool"));
    const char *volume = json_string_value(json_object_get(from, "volume"));
    if (!from)
        return 1;
    if (!pool || !volume)
        return nb_error_set(err, NB_ERR_INTERNAL, "the task's disk_from names no volume");
    char vol[96];
    vm_disk_volume(vm, vol);
    _cleanup_free_ char *xml = pool_xml_volume(vol, vm->disk_gib << 30, "qcow2");
    if (!xml)
        return nb_error_set(err, NB_ERR_INTERNAL, "out of memory");
    /* qemu-img convert keeps the source's virtual size: the flavor's disk may be larger. */
    if (hv_volume_create_from(hv, vm_ops_pool(core), vol, xml, pool, volume, err) < 0)
        return -1;
    return hv_volume_resize(hv, vm_ops_pool(core), vol, vm->disk_gib << 30, err);
}

static int
step_create_disk(Core *core, Task *task, Vm *vm, HvConn *hv, TaskRun *run, NbError **err)
{
    Image img;
    char vol[96];
    if (task->kind == TASK_KIND_VM_CLONE)
        return clone_ops_disk_step(core, task, vm, hv, run, err);
    char pool[POOL_LIBVIRT_NAME_MAX + 1];
    PoolType type;
    if (vm_disk_pool(core, vm, pool, &type, err) < 0)
        return -1;
    if (type == POOL_TYPE_RBD)
        return vm_rbd_create_disk(core, task, vm, hv, run, err);
    if (!vm->pool_id[0]) {
        int from = create_disk_from(core, task, vm, hv, err);
        if (from <= 0)
            return from;
    }
    if (image_store_get(core->store, NULL, vm->image_id, &img, err) < 0)
        return -1;
    /* The image's copy in the host's default pool backs the overlay, which is in the VM's dir
     * pool (docs/storage.md, "VM disks in pools") or in the default pool too. */
    int there = image_ops_ensure_on(core, &img, vm->host, hv, err);
    if (there < 0)
        return -1;
    if (there > 0) /* another task is copying the image there */
        return vm_ops_wait(run);
    vm_disk_volume(vm, vol);
    return hv_vol_create_linked_clone_of(hv, pool, vol, vm_ops_pool(core), img.volume,
                                         image_format_to_string(img.format), vm->disk_gib << 30,
                                         err);
}

/* Reads the seed ISO for the upload stream. */
static ssize_t
seed_file_source(char *buf, size_t len, void *userdata, NbError **err)
{
    int fd = *(int *)userdata;
    for (;;) {
        ssize_t n = read(fd, buf, len);
        if (n >= 0)
            return n;
        if (errno != EINTR)
            return nb_error_set(err, NB_ERR_INTERNAL, "read seed: %s", strerror(errno));
    }
}

static int
step_create_seed(Core *core, Task *task, Vm *vm, HvConn *hv, TaskRun *run, NbError **err)
{
    _cleanup_free_ char *work = str_printf("%s/tmp", core->cfg.state_dir);
    _cleanup_free_ char *iso = str_printf("%s/tmp/%s-seed.iso", core->cfg.state_dir, vm->id);
    if (!work || !iso)
        return nb_error_set(err, NB_ERR_INTERNAL, "out of memory");
    _cleanup_free_ Port *ports = NULL;
    size_t n_ports = 0;
    Network nets[VM_NICS_MAX];
    SeedNic nics[VM_NICS_MAX];
    if (port_store_list_by_vm(core->store, vm->id, &ports, &n_ports, err) < 0)
        return -1;
    for (size_t i = 0; i < n_ports && i < VM_NICS_MAX; i++) {
        Network *n = &nets[i];
        if (network_store_get(core->store, NULL, ports[i].network_id, n, err) < 0)
            return -1;
        /* The gateway's dnsmasq answers DNS (forwarding to the network's servers). */
        nics[i] = (SeedNic){.mac = ports[i].mac,
                            .ip = ports[i].ip,
                            .prefix = n->prefix,
                            .gateway = n->gateway,
                            .dns = n->gateway ? &n->gateway : n->dns,
                            .n_dns = n->gateway ? 1 : n->n_dns,
                            .mtu = n->mtu == 1500 ? 0 : n->mtu,
                            .dhcp = n->dhcp};
    }
    SeedSpec spec = {
        .instance_id = vm->id,
        .hostname = vm->hostname,
        .mac = vm->mac, /* a VM from before ports: one NIC, DHCP */
        .nics = nics,
        .n_nics = n_ports < VM_NICS_MAX ? n_ports : VM_NICS_MAX,
        .user_data = vm->user_data,
    };
    if (seed_build_iso(&spec, work, iso, err) < 0)
        return -1;

    char vol[96];
    vm_seed_volume(vm, vol);
    _cleanup_close_ int fd = open(iso, O_RDONLY | O_CLOEXEC);
    struct stat stbuf;
    int r = -1;
    if (fd < 0 || fstat(fd, &stbuf) < 0)
        nb_error_set(err, NB_ERR_INTERNAL, "open seed: %s", strerror(errno));
    else if (hv_vol_create_for_upload(hv, vm_ops_pool(core), vol, "raw", (uint64_t)stbuf.st_size,
                                      err) == 0 &&
             hv_vol_upload(hv, vm_ops_pool(core), vol, (uint64_t)stbuf.st_size, seed_file_source,
                           &fd, err) == 0)
        r = 0;
    unlink(iso);
    return r;
}

int
vm_ops_build_domain_xml(Core *core, const Vm *vm, HvConn *hv, char **ret, NbError **err)
{
    char disk_vol[96], seed_vol[96], domain[64], rbd_name[POOL_PATH_MAX + 98];
    _cleanup_free_ char *disk_path = NULL, *seed_path = NULL, *console = NULL;
    Flavor flavor;
    Project project;
    Pool pool;
    vm_disk_volume(vm, disk_vol);
    vm_seed_volume(vm, seed_vol);
    vm_domain_name(vm, domain);
    int in_pool = vm_rbd_pool(core, vm, &pool, err);
    /* A dir pool's disk is a file like the default pool's: in_pool stays for rbd only. */
    if (in_pool > 0 && pool.type == POOL_TYPE_DIR)
        in_pool = 0;
    const char *disk_pool = vm->pool_id[0] ? pool.libvirt_name : vm_ops_pool(core);
    if (in_pool < 0 || flavor_store_get(core->store, vm->flavor_id, &flavor, err) < 0 ||
        project_store_get(core->store, NULL, vm->project, &project, err) < 0 ||
        (!in_pool && hv_vol_path(hv, disk_pool, disk_vol, &disk_path, err) < 0) ||
        hv_vol_path(hv, vm_ops_pool(core), seed_vol, &seed_path, err) < 0)
        return -1;
    console = vm_console_log_path(core, vm);
    if (!console)
        return nb_error_set(err, NB_ERR_INTERNAL, "out of memory");
    /* A VM from before ports keeps its one NIC on the configured libvirt network. */
    _cleanup_free_ Port *ports = NULL;
    size_t n_ports = 0;
    DomainNic nics[VM_NICS_MAX] = {{DOMAIN_NIC_NETWORK, core->cfg.network, vm->mac, NULL, 0}};
    char net_names[VM_NICS_MAX][64], taps[VM_NICS_MAX][NETWORK_IFNAME_MAX + 1];
    char filters[VM_NICS_MAX][NWFILTER_NAME_MAX + 1];
    if (port_store_list_by_vm(core->store, vm->id, &ports, &n_ports, err) < 0)
        return -1;
    /* The creator's account may be gone since: its id then stands for its name. */
    User owner = {0};
    if (vm->owner_user_id[0]) {
        _cleanup_error_ NbError *e = NULL;
        if (user_store_get(core->store, vm->owner_user_id, &owner, &e) < 0) {
            if (!streq(e->code, NB_ERR_USER_NOT_FOUND))
                return nb_error_propagate(err, TAKE_PTR(e));
            owner.name[0] = '\0';
        }
    }
    for (size_t i = 0; i < n_ports && i < VM_NICS_MAX; i++) {
        Network n;
        if (network_store_get(core->store, NULL, ports[i].network_id, &n, err) < 0)
            return -1;
        port_tap_name(ports[i].id, taps[i]);
        nics[i] = network_ops_domain_nic(&n, net_names[i], ports[i].mac, taps[i]);
        nics[i].filter = secgroup_ops_filter_name(hv, &ports[i], filters[i]);
        nics[i].filter_ip = ports[i].ip;
    }
    size_t n_nics = n_ports ? (n_ports < VM_NICS_MAX ? n_ports : VM_NICS_MAX) : 1;
    /* The browser console's screen: on the host's management address, a password of its own. */
    char vnc_listen[NB_URI_MAX + 1], vnc_password[CONSOLE_VNC_PASSWORD_LEN + 1];
    bool vnc = console_ops_vnc_listen(hv, vnc_listen, sizeof(vnc_listen));
    if (vnc)
        console_ops_vnc_password(vnc_password);
    DomainSpec spec = {
        .uuid = vm->id,
        .domain_name = domain,
        .vm_name = vm->name,
        .project = project.name,
        .project_id = vm->project,
        .owner_user_id = vm->owner_user_id[0] ? vm->owner_user_id : NULL,
        .owner_user_name = owner.name[0] ? owner.name : NULL,
        .flavor_name = flavor.name,
        .image_id = vm->image_id,
        /* A simulated host (libvirt's test driver) runs only domains of type test. */
        .virt_type = hv_conn_is_simulated(hv) ? VIRT_TYPE_TEST : core->cfg.virt_type,
        .vcpus = vm->vcpus,
        .ram_mib = vm->ram_mib,
        .disk_gib = vm->disk_gib,
        .disk_path = disk_path,
        .disk_iotune = {flavor.disk_iops, flavor_disk_bytes_sec(&flavor)},
        .seed_path = seed_path,
        .nics = nics,
        .n_nics = n_nics,
        /* Room to hot-plug up to VM_NICS_MAX NICs and VOLUMES_PER_VM_MAX virtio volumes (one
         * PCIe port each), the same PCI layout whatever it has now. */
        .hotplug_slots = (unsigned)(VM_NICS_MAX + VOLUMES_PER_VM_MAX - n_nics),
        .console_log = console,
        .created_at = vm->created_at,
        .vnc_listen = vnc ? vnc_listen : NULL,
        .vnc_password = vnc ? vnc_password : NULL,
    };
    if (in_pool) {
        /* vda in RBD: the clone, through the pool's monitors, with the pool's secret. */
        char rbd_disk[96];
        vm_rbd_disk_name(vm, rbd_disk);
        snprintf(rbd_name, sizeof(rbd_name), "%s/%s", pool.source, rbd_disk);
        spec.disk_rbd.name = rbd_name;
        for (size_t i = 0; i < pool.n_monitors && i < DOMAIN_RBD_HOSTS_MAX; i++)
            spec.disk_rbd.hosts[spec.disk_rbd.n_hosts++] = pool.monitors[i];
        spec.disk_rbd.user = pool.auth_user[0] ? pool.auth_user : NULL;
        spec.disk_rbd.secret = pool.auth_user[0] ? pool.id : NULL;
    }
    _cleanup_free_ char *xml = domain_xml_build(&spec);
    if (!xml)
        return nb_error_set(err, NB_ERR_INTERNAL, "cannot build the domain XML");
    /* Its attached volumes: a domain defined again from the store (a start after it vanished,
     * an offline migration) keeps them. */
    _cleanup_free_ char *disks = NULL;
    if (volume_ops_vm_disks_xml(core, vm, hv, &disks, err) < 0)
        return -1;
    char *end = disks[0] ? strstr(xml, "</devices>") : NULL;
    if (!end) {
        *ret = TAKE_PTR(xml);
        return 0;
    }
    *end = '\0';
    *ret = str_printf("%s%s</devices>%s", xml, disks, end + strlen("</devices>"));
    if (!*ret)
        return nb_error_set(err, NB_ERR_INTERNAL, "out of memory");
    return 0;
}

/* The VM's networks on its host, with its DHCP entries. */
static int
step_plug_networks(Core *core, Task *task, Vm *vm, HvConn *hv, TaskRun *run, NbError **err)
{
    _cleanup_free_ Port *ports = NULL;
    size_t n = 0;
    if (port_store_list_by_vm(core->store, vm->id, &ports, &n, err) < 0)
        return -1;
    return network_ops_plug(core, vm, vm->host, hv, ports, n, err);
}

static int
step_unplug_networks(Core *core, Task *task, Vm *vm, HvConn *hv, TaskRun *run, NbError **err)
{
    _cleanup_free_ Port *ports = NULL;
    size_t n = 0;
    if (port_store_list_by_vm(core->store, vm->id, &ports, &n, err) < 0)
        return -1;
    return network_ops_unplug(core, vm, vm->host, hv, ports, n, err);
}

static int
step_define(Core *core, Task *task, Vm *vm, HvConn *hv, TaskRun *run, NbError **err)
{
    _cleanup_free_ char *xml = NULL;
    if (vm_ops_build_domain_xml(core, vm, hv, &xml, err) < 0)
        return -1;
    return hv_domain_define(hv, xml, err);
}

static int
step_start(Core *core, Task *task, Vm *vm, HvConn *hv, TaskRun *run, NbError **err)
{
    char domain[64];
    vm_domain_name(vm, domain);
    if (hv_domain_start(hv, domain, err) < 0)
        return -1;
    network_shaping_vm_running(core, vm, vm->host);
    return 0;
}

/* start of a VM whose domain vanished: define it again from the stored spec, if its disk is
 * still there (a VM is never silently given a blank disk). */
static int
step_ensure_defined(Core *core, Task *task, Vm *vm, HvConn *hv, TaskRun *run, NbError **err)
{
    char domain[64], disk_vol[96];
    HvDomainState st = HV_DOMAIN_NONE;
    vm_domain_name(vm, domain);
    if (hv_domain_get_state(hv, domain, &st, err) < 0)
        return -1;
    if (st != HV_DOMAIN_NONE)
        return 0;
    vm_disk_volume(vm, disk_vol);
    int exists = vm->pool_id[0] ? vm_rbd_disk_exists(core, vm, hv, err)
                                : hv_vol_exists(hv, vm_ops_pool(core), disk_vol, err);
    if (exists < 0)
        return -1;
    if (!exists)
        return nb_error_set(err, NB_ERR_INVALID_STATE,
                            "the VM's domain and disk are gone from the hypervisor; delete it");
    char seed_vol[96];
    vm_seed_volume(vm, seed_vol);
    exists = hv_vol_exists(hv, vm_ops_pool(core), seed_vol, err);
    if (exists < 0 || (!exists && step_create_seed(core, task, vm, hv, run, err) < 0))
        return -1;
    log_warn("vm %s: domain was missing; defining it again from the stored spec", vm->id);
    return step_define(core, task, vm, hv, run, err);
}

/* ---- stop, reboot, pause, resume ---- */

/* How often a graceful stop looks whether the guest is off yet. */
#define VM_STOP_POLL_MS 250

/* A graceful stop asks the guest once, then looks again by timer (no worker waits) until the
 * guest is off or the timeout has passed, and then destroys. After a restart it asks again and
 * the timeout starts afresh. */
static int
step_stop(Core *core, Task *task, Vm *vm, HvConn *hv, TaskRun *run, NbError **err)
{
    char domain[64];
    VmStopRequest req;
    vm_domain_name(vm, domain);
    vm_request_stop_from_text(task->params, &req);
    uint64_t timeout_ms =
        req.timeout_s >= 0 ? (uint64_t)req.timeout_s * 1000u : core->cfg.stop_timeout_ms;
    if (req.force)
        return hv_domain_destroy(hv, domain, err);
    HvDomainState st = HV_DOMAIN_NONE;
    if (hv_domain_get_state(hv, domain, &st, err) < 0)
        return -1;
    if (st == HV_DOMAIN_NONE)
        return nb_error_set(err, NB_ERR_HYPERVISOR, "domain '%s' not found", domain);
    if (st == HV_DOMAIN_SHUTOFF)
        return 0;
    if (st == HV_DOMAIN_CRASHED)
        return hv_domain_destroy(hv, domain, err); /* it will not shut down */
    if (!run->wait_since_ms) {
        _cleanup_error_ NbError *e = NULL;
        int asked = hv_domain_shutdown(hv, domain, &e);
        if (asked == 0)
            return 0; /* went off meanwhile */
        if (asked < 0) {
            /* Not fatal: the guest may have no ACPI; destroy follows. */
            log_info("vm %s: graceful shutdown refused (%s); destroying", vm->id, e->message);
            return hv_domain_destroy(hv, domain, err);
        }
        run->wait_since_ms = nb_monotonic_ms();
    }
    uint64_t waited = nb_monotonic_ms() - run->wait_since_ms;
    if (waited >= timeout_ms) {
        log_info("vm %s: not shut down within %ju ms; destroying", vm->id, (uintmax_t)timeout_ms);
        return hv_domain_destroy(hv, domain, err);
    }
    uint64_t left = timeout_ms - waited;
    return (int)(left < VM_STOP_POLL_MS ? left : VM_STOP_POLL_MS);
}

static int
step_reboot(Core *core, Task *task, Vm *vm, HvConn *hv, TaskRun *run, NbError **err)
{
    char domain[64];
    vm_domain_name(vm, domain);
    return hv_domain_reboot(hv, domain, err);
}

static int
step_pause(Core *core, Task *task, Vm *vm, HvConn *hv, TaskRun *run, NbError **err)
{
    char domain[64];
    vm_domain_name(vm, domain);
    return hv_domain_suspend(hv, domain, err);
}

static int
step_resume(Core *core, Task *task, Vm *vm, HvConn *hv, TaskRun *run, NbError **err)
{
    char domain[64];
    vm_domain_name(vm, domain);
    return hv_domain_resume(hv, domain, err);
}

/* ---- delete (also the rollback of a failed create) ---- */

static int
step_undefine(Core *core, Task *task, Vm *vm, HvConn *hv, TaskRun *run, NbError **err)
{
    char domain[64];
    vm_domain_name(vm, domain);
    /* Its snapshots first, data and all: the files of its volumes outlive the domain (the
     * undefine drops only libvirt's metadata of them). Not fatal: a disk that is gone or
     * broken must not keep the VM from going. */
    _cleanup_error_ NbError *e = NULL;
    if (hv_snapshot_delete_all(hv, domain, &e) < 0)
        log_warn("vm %s: its snapshots may stay in its volumes' files: %s", vm->id, e->message);
    return hv_domain_undefine(hv, domain, err);
}

static int
step_delete_disk(Core *core, Task *task, Vm *vm, HvConn *hv, TaskRun *run, NbError **err)
{
    char vol[96];
    if (vm->pool_id[0])
        return vm_rbd_delete_disk(core, vm, hv, err);
    vm_disk_volume(vm, vol);
    return hv_vol_delete(hv, vm_ops_pool(core), vol, err);
}

static int
step_delete_seed(Core *core, Task *task, Vm *vm, HvConn *hv, TaskRun *run, NbError **err)
{
    char vol[96];
    vm_seed_volume(vm, vol);
    return hv_vol_delete(hv, vm_ops_pool(core), vol, err);
}

static int
step_delete_console_log(Core *core, Task *task, Vm *vm, HvConn *hv, TaskRun *run, NbError **err)
{
    char vol[96];
    vm_console_volume(vm, vol);
    return hv_vol_delete(hv, vm_ops_pool(core), vol, err);
}

VmState
vm_ops_state_from_hv(HvDomainState st)
{
    switch (st) {
    case HV_DOMAIN_RUNNING:
        return VM_STATE_RUNNING;
    case HV_DOMAIN_PAUSED:
        return VM_STATE_PAUSED;
    case HV_DOMAIN_SHUTOFF:
        return VM_STATE_STOPPED;
    case HV_DOMAIN_CRASHED:
        return VM_STATE_CRASHED;
    case HV_DOMAIN_NONE:
        return VM_STATE_MISSING;
    default:
        return VM_STATE_UNKNOWN;
    }
}

int
vm_ops_host_state(Core *core, const Vm *vm, HvConn *hv)
{
    char domain[64];
    HvDomainState st = HV_DOMAIN_NONE;
    _cleanup_error_ NbError *e = NULL;
    HvConn *own = hv ? NULL : host_registry_conn(core, vm->host);
    HvConn *c = hv ? hv : own;
    vm_domain_name(vm, domain);
    int r = c && hv_domain_get_state(c, domain, &st, &e) == 0 ? (int)vm_ops_state_from_hv(st) : -1;
    hv_conn_free(own);
    return r;
}

/* How long a task waits for a host that nimbusd has not reached yet since it started. */
#define VM_TASK_HOST_WAIT_MS 60000

/* Undoes a failed create: nothing of the VM stays on the hypervisor. */
static int
vm_create_rollback(Core *core, Task *task, Vm *vm, HvConn *hv)
{
    static const VmStep undo[] = {step_undefine, step_unplug_networks, step_delete_disk,
                                  step_delete_seed};
    TaskRun none = {0};
    if (task->kind == TASK_KIND_VM_CLONE)
        clone_ops_disk_cleanup(core, task, vm);
    for (size_t i = 0; hv && i < ELEMENTSOF(undo); i++) {
        _cleanup_error_ NbError *err = NULL;
        if (undo[i](core, task, vm, hv, &none, &err) < 0)
            log_error("vm %s: rollback step %zu failed: %s", vm->id, i, err->message);
    }
    return VM_STATE_ERROR;
}

static const VmStep create_steps[] = {step_create_disk, step_create_seed, step_plug_networks,
                                      step_define, step_start};
static const char *const create_names[] = {"create_disk", "create_seed", "plug_networks", "define",
                                           "start"};
static const VmStep start_steps[] = {step_ensure_defined, step_plug_networks, step_start};
static const char *const start_names[] = {"ensure_defined", "plug_networks", "start"};
static const VmStep stop_steps[] = {step_stop};
static const char *const stop_names[] = {"stop"};
static const VmStep reboot_steps[] = {step_reboot};
static const char *const reboot_names[] = {"reboot"};
static const VmStep pause_steps[] = {step_pause};
static const char *const pause_names[] = {"pause"};
static const VmStep resume_steps[] = {step_resume};
static const char *const resume_names[] = {"resume"};
static const VmStep delete_steps[] = {step_undefine, step_unplug_networks, step_delete_disk,
                                      step_delete_seed, step_delete_console_log};
static const char *const delete_names[] = {"undefine", "unplug_networks", "delete_disk",
                                           "delete_seed", "delete_console_log"};
_Static_assert(ELEMENTSOF(create_names) == ELEMENTSOF(create_steps), "a name per step");
_Static_assert(ELEMENTSOF(start_names) == ELEMENTSOF(start_steps), "a name per step");
_Static_assert(ELEMENTSOF(delete_names) == ELEMENTSOF(delete_steps), "a name per step");

#define TASK_DEF(s, names, claim, want, done)                                                      \
    {                                                                                              \
        .steps = s, .n_steps = (int)ELEMENTSOF(s), .step_names = names, .state_on_claim = claim,   \
        .desired = want, .state_on_success = done                                                  \
    }

static const VmTaskDef vm_task_defs[_TASK_KIND_MAX] = {
    [TASK_KIND_VM_CREATE] = {.steps = create_steps,
                             .n_steps = (int)ELEMENTSOF(create_steps),
                             .step_names = create_names,
                             .state_on_claim = VM_STATE_BUILDING,
                             .desired = VM_POWER_RUNNING,
                             .state_on_success = VM_STATE_RUNNING,
                             .rollback = vm_create_rollback},
    /* A clone is a create whose disk step copies the source's disk (clone_ops.c). */
    [TASK_KIND_VM_CLONE] = {.steps = create_steps,
                            .n_steps = (int)ELEMENTSOF(create_steps),
                            .step_names = create_names,
                            .state_on_claim = VM_STATE_BUILDING,
                            .desired = VM_POWER_RUNNING,
                            .state_on_success = VM_STATE_RUNNING,
                            .rollback = vm_create_rollback},
    [TASK_KIND_VM_START] =
        TASK_DEF(start_steps, start_names, -1, VM_POWER_RUNNING, VM_STATE_RUNNING),
    [TASK_KIND_VM_STOP] = TASK_DEF(stop_steps, stop_names, -1, VM_POWER_STOPPED, VM_STATE_STOPPED),
    [TASK_KIND_VM_REBOOT] =
        TASK_DEF(reboot_steps, reboot_names, -1, VM_POWER_RUNNING, VM_STATE_RUNNING),
    [TASK_KIND_VM_PAUSE] = TASK_DEF(pause_steps, pause_names, -1, VM_POWER_PAUSED, VM_STATE_PAUSED),
    [TASK_KIND_VM_RESUME] =
        TASK_DEF(resume_steps, resume_names, -1, VM_POWER_RUNNING, VM_STATE_RUNNING),
    [TASK_KIND_VM_DELETE] = TASK_DEF(delete_steps, delete_names, VM_STATE_DELETING,
                                     VM_POWER_DELETED, VM_STATE_DELETING),
};

static const VmTaskDef *
vm_ops_task_def(TaskKind kind)
{
    if ((int)kind < 0 || kind >= _TASK_KIND_MAX || !vm_task_defs[kind].steps)
        return NULL;
    return &vm_task_defs[kind];
}

int
vm_ops_step_count(TaskKind kind)
{
    const VmTaskDef *def = vm_ops_task_def(kind);
    return def ? def->n_steps : 0;
}

int64_t
vm_ops_run_task(Core *core, Task *task, TaskRun *run)
{
    const VmTaskDef *def = vm_ops_task_def(task->kind);
    if (!def) {
        _cleanup_error_ NbError *err = NULL;
        task_store_finish(core->store, task, TASK_STATE_FAILED, NB_ERR_INTERNAL,
                          "not a VM lifecycle task", -1, -1, NULL, &err);
        return TASK_RUN_DONE;
    }
    return vm_ops_task_run(core, task, run, def);
}

static void
vm_task_fail(Core *core, Task *task, const VmTaskDef *def, Vm *vm, HvConn *hv, const NbError *e)
{
    _cleanup_error_ NbError *err = NULL;
    const char *code = e ? e->code : NB_ERR_INTERNAL;
    const char *msg = e && e->message ? e->message : "internal error";
    int state = -1, desired = -1;

    log_warn("task %s (%s) on vm %s failed at step %d: %s: %s", task->id,
             task_kind_to_string(task->kind), vm->id, task->step, code, msg);
    if (def->rollback) {
        state = def->rollback(core, task, vm, hv);
    } else if (hv) {
        char domain[64];
        HvDomainState st = HV_DOMAIN_NONE;
        vm_domain_name(vm, domain);
        if (hv_domain_get_state(hv, domain, &st, &err) == 0)
            state = vm_ops_state_from_hv(st);
    } else {
        state = VM_STATE_UNKNOWN;
    }
    /* A failed create leaves the VM to be started (created again) or deleted. */
    if (task->kind == TASK_KIND_VM_CREATE || task->kind == TASK_KIND_VM_CLONE)
        desired = VM_POWER_STOPPED;
    /* A failed delete keeps the VM, in `deleting` no more: it shows what libvirt has. */
    if (task->kind == TASK_KIND_VM_DELETE && state < 0)
        state = VM_STATE_ERROR;
    nb_error_free(TAKE_PTR(err));
    if (task_store_finish(core->store, task, TASK_STATE_FAILED, code, msg, state, desired, msg,
                          &err) < 0)
        log_error("task %s: cannot record failure: %s", task->id, err->message);
}

/* The VM's host is not connected: wait (by timer) for one nimbusd has not reached yet since it
 * started, else fail. Returns the delay, or 0 with *err set. */
static int64_t
vm_task_host_wait(Core *core, const Task *task, const Vm *vm, const TaskRun *run, NbError **err)
{
    if (host_registry_state(core, vm->host) == HOST_CONN_CONNECTING &&
        nb_monotonic_ms() - run->first_run_ms < VM_TASK_HOST_WAIT_MS) {
        log_debug("task %s: host '%s' not reached yet; waiting", task->id, vm->host);
        return vm_ops_wait_ms(run->first_run_ms);
    }
    nb_error_set(err, NB_ERR_HOST_DOWN, "host '%s' is down", vm->host);
    return 0;
}

/* The current step ended (done or failed): its time since it first ran in this daemon. */
static void
vm_task_step_observe(const Task *task, const VmTaskDef *def, TaskRun *run)
{
    const char *name = def->step_names ? def->step_names[task->step] : "unnamed";
    metrics_task_step_observe(task->kind, task->step, name,
                              (double)(nb_monotonic_ms() - run->step_since_ms) / 1000.0);
    run->step_since_ms = 0;
}

int64_t
vm_ops_task_run(Core *core, Task *task, TaskRun *run, const VmTaskDef *def)
{
    _cleanup_error_ NbError *err = NULL;
    Vm vm;
    if (vm_store_get(core->store, NULL, task->target_id, &vm, &err) < 0) {
        /* The VM row went with a finished delete; nothing is left to do but close the task. */
        nb_error_free(TAKE_PTR(err));
        task_store_finish(core->store, task, TASK_STATE_FAILED, NB_ERR_VM_NOT_FOUND,
                          "the VM no longer exists", -1, -1, NULL, &err);
        return TASK_RUN_DONE;
    }
    if (!streq(vm.task_id, task->id)) {
        log_error("task %s: vm %s is held by task '%s'; closing this one", task->id, vm.id,
                  vm.task_id);
        task_store_finish(core->store, task, TASK_STATE_FAILED, NB_ERR_VM_BUSY,
                          "the VM was held by another task", -1, -1, NULL, &err);
        vm_clear(&vm);
        return TASK_RUN_DONE;
    }
    if (!task_set_running(core, task, "vm", vm.id, def->n_steps)) {
        vm_clear(&vm);
        return TASK_RUN_DONE;
    }

    HvConn *hv = def->own_conns ? NULL : host_registry_conn(core, vm.host);
    int r = 0;
    int64_t delay = TASK_RUN_DONE;
    if (!def->own_conns && (!hv || !hv_conn_is_alive(hv))) {
        hv_conn_free(TAKE_PTR(hv));
        delay = vm_task_host_wait(core, task, &vm, run, &err);
        r = delay > 0 ? 1 : -1;
    }
    while (r == 0 && task->step < def->n_steps) {
        if (task_engine_stopping(core->tasks)) {
            log_info("task %s: daemon stopping; resumes at step %d on the next start", task->id,
                     task->step);
            r = 1;
            break;
        }
        if (!run->step_since_ms)
            run->step_since_ms = nb_monotonic_ms();
        int s = def->steps[task->step](core, task, &vm, hv, run, &err);
        if (s > 0) {
            delay = s; /* the step waits; the same step runs again then */
            r = 1;
            break;
        }
        vm_task_step_observe(task, def, run);
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
    if (r > 0) {
        /* waiting, or left for the next start */
    } else if (r < 0) {
        vm_task_fail(core, task, def, &vm, hv, err);
    } else if (def->finish) {
        def->finish(core, task, &vm);
    } else if (task->kind == TASK_KIND_VM_DELETE) {
        if (task_store_finish_delete(core->store, task, &err) < 0)
            log_error("task %s: %s", task->id, err->message);
    } else if (task_store_finish(core->store, task, TASK_STATE_SUCCEEDED, NULL, NULL,
                                 (int)def->state_on_success, (int)def->desired, NULL, &err) < 0) {
        log_error("task %s: %s", task->id, err->message);
    }
    hv_conn_free(hv);
    if (r <= 0)
        log_info("task %s (%s) on vm %s: %s", task->id, task_kind_to_string(task->kind), vm.id,
                 r < 0 ? "failed" : "succeeded");
    vm_clear(&vm);
    return r > 0 ? delay : TASK_RUN_DONE;
}

/* ---- entry points for the API ---- */

int
vm_ops_create(Core *core, const Principal *who, json_t *body, Vm *ret_vm, Task *ret_task,
              NbError **err)
{
    VmCreateHow how = {.kind = TASK_KIND_VM_CREATE};
    return vm_ops_create_how(core, who, body, &how, ret_vm, ret_task, err);
}

int
vm_ops_create_how(Core *core, const Principal *who, json_t *body, const VmCreateHow *how,
                  Vm *ret_vm, Task *ret_task, NbError **err)
{
    VmCreateRequest req;
    Image img;
    Flavor flavor;
    Group group;
    Vm vm = {0};
    Task task;
    SecGroupList groups;
    json_auto_t *rest = NULL;

    if (secgroup_ops_request(body, &rest, &groups, err) < 0 ||
        vm_create_request_parse(rest, &req, err) < 0)
        return -1;
    int r = -1;
    if (how->host) {
        snprintf(vm.host, sizeof(vm.host), "%s", how->host);
    } else if (req.host[0]) {
        Host host;
        if (who->role != ROLE_ADMIN) {
            nb_error_set(err, NB_ERR_FORBIDDEN, "only admins choose a VM's host");
            goto out;
        }
        if (host_store_get(core->store, req.host, &host, err) < 0)
            goto out;
        snprintf(vm.host, sizeof(vm.host), "%s", host.name);
    }
    /* A group, like the image, comes from the VM's own project. */
    if (req.group[0]) {
        if (group_store_get(core->store, who->project_id, req.group, &group, err) < 0)
            goto out;
        memcpy(vm.group_id, group.id, sizeof(vm.group_id));
    }
    vm.labels = req.labels;
    /* The root disk's pool; only a plain create makes its disk from the image there, and a
     * clone copies its source's disk there (clone_ops.c). */
    if (vm_rbd_resolve_pool(core, req.pool, &vm, err) < 0)
        goto out;
    if (vm.pool_id[0] && how->kind != TASK_KIND_VM_CLONE &&
        (how->kind != TASK_KIND_VM_CREATE || how->params)) {
        nb_error_set(err, NB_ERR_INVALID_REQUEST, "this VM's disk is made in the default pool");
        goto out;
    }
    /* The image comes from the VM's own project, whoever asks. */
    if (image_store_get(core->store, who->project_id, req.image, &img, err) < 0 ||
        flavor_store_get(core->store, req.flavor, &flavor, err) < 0)
        goto out;
    if (img.state != IMAGE_STATE_ACTIVE) {
        nb_error_set(err, NB_ERR_IMAGE_NOT_ACTIVE, "image '%s' has no data yet (state %s)",
                     img.name, image_state_to_string(img.state));
        goto out;
    }
    if (flavor.disk_gib << 30 < img.virtual_size_bytes) {
        nb_error_set(err, NB_ERR_FLAVOR_DISK_TOO_SMALL,
                     "flavor '%s' has a %ju GiB disk; image '%s' needs %ju bytes", flavor.name,
                     (uintmax_t)flavor.disk_gib, img.name, (uintmax_t)img.virtual_size_bytes);
        goto out;
    }

    Port ports[VM_NICS_MAX];
    size_t n_ports = 0;
    if (network_ops_resolve_nics(core, who->project_id, req.nics, req.n_nics, ports, &n_ports,
                                 err) < 0 ||
        secgroup_ops_resolve(core, who->project_id, &groups, err) < 0)
        goto out;
    nb_uuid_generate(vm.id);
    memcpy(vm.project, who->project_id, sizeof(vm.project));
    memcpy(vm.owner_user_id, who->user_id, sizeof(vm.owner_user_id));
    snprintf(vm.name, sizeof(vm.name), "%s", req.name);
    if (req.hostname[0]) {
        snprintf(vm.hostname, sizeof(vm.hostname), "%s", req.hostname);
    } else {
        _cleanup_free_ char *h = nb_hostname_from_name(req.name);
        snprintf(vm.hostname, sizeof(vm.hostname), "%s", h ? h : "vm");
    }
    vm.state = VM_STATE_BUILDING;
    vm.desired = VM_POWER_RUNNING;
    memcpy(vm.image_id, img.id, sizeof(vm.image_id));
    memcpy(vm.flavor_id, flavor.id, sizeof(vm.flavor_id));
    vm.vcpus = flavor.vcpus;
    vm.ram_mib = flavor.ram_mib;
    vm.disk_gib = flavor.disk_gib;
    vm.user_data = req.user_data;
    nb_timestamp_now(vm.created_at);
    memcpy(vm.updated_at, vm.created_at, sizeof(vm.updated_at));
    task_new(&task, how->kind, vm.id, how->params);
    memcpy(vm.task_id, task.id, sizeof(vm.task_id));

    /* A MAC collision shows as a constraint on a mac column: draw again. The VM's own mac is
     * its first NIC's (kept for the VMs from before ports). */
    for (int attempt = 0;; attempt++) {
        _cleanup_error_ NbError *e = NULL;
        bool drawn = true;
        for (size_t i = 0; i < n_ports && drawn; i++)
            drawn = network_ops_random_mac(ports[i].mac) == 0;
        if (!drawn) {
            nb_error_set(err, NB_ERR_INTERNAL, "no randomness for a MAC address");
            break;
        }
        memcpy(vm.mac, ports[0].mac, sizeof(vm.mac));
        if (placement_create(core, &vm, &task, ports, n_ports, &e) == 0) {
            r = 0;
            break;
        }
        if (!streq(e->code, NB_ERR_MAC_TAKEN) || attempt == 8) {
            nb_error_propagate(err, TAKE_PTR(e));
            break;
        }
    }
    /* Before the task runs: its plug builds the ports' filters from their groups. A crash
     * right here leaves the ports in no group, where their filters let nothing in or out. */
    if (r == 0) {
        _cleanup_error_ NbError *e = NULL;
        if (secgroup_ops_ports_set(core, ports, n_ports, &groups, &e) < 0)
            log_error("vm %s: its ports are in no security group: %s", vm.id, e->message);
    }
    if (r == 0) {
        ipv4_format(ports[0].ip, vm.ip); /* the store recorded it with the ports */
        log_info("vm %s (%s): create on host %s queued as task %s", vm.id, vm.name, vm.host,
                 task.id);
        task_engine_submit(core->tasks, task.id);
        vm.user_data = NULL; /* owned by req */
        *ret_vm = vm;
        *ret_task = task;
        task.params = NULL;
    } else {
        task_clear(&task);
    }
    vm.user_data = NULL;
out:
    vm_create_request_clear(&req);
    return r;
}

static bool
vm_action_allowed(TaskKind kind, VmState state)
{
    switch (kind) {
    case TASK_KIND_VM_START:
        return state == VM_STATE_STOPPED || state == VM_STATE_CRASHED ||
               state == VM_STATE_MISSING || state == VM_STATE_ERROR;
    case TASK_KIND_VM_STOP:
        return state == VM_STATE_RUNNING || state == VM_STATE_PAUSED;
    case TASK_KIND_VM_REBOOT:
    case TASK_KIND_VM_PAUSE:
        return state == VM_STATE_RUNNING;
    case TASK_KIND_VM_RESUME:
        return state == VM_STATE_PAUSED;
    case TASK_KIND_VM_DELETE:
        return true;
    default:
        return false;
    }
}

int
vm_ops_action(Core *core, const char *scope, const char *id_or_name, TaskKind kind, json_t *params,
              Vm *ret_vm, Task *ret_task, NbError **err)
{
    Vm vm;
    Task task;
    _cleanup_free_ char *params_text = NULL;

    if (kind == TASK_KIND_VM_STOP) {
        VmStopRequest req;
        if (vm_request_parse_stop(params, &req, err) < 0)
            return -1;
        params_text = vm_request_stop_to_text(&req);
        if (!params_text)
            return nb_error_set(err, NB_ERR_INTERNAL, "out of memory");
    } else if (params && json_object_size(params) > 0) {
        return nb_error_set(err, NB_ERR_INVALID_REQUEST, "this action takes no body");
    }
    if (vm_store_get(core->store, scope, id_or_name, &vm, err) < 0)
        return -1;
    if (vm.task_id[0]) {
        vm_clear(&vm);
        return nb_error_set(err, NB_ERR_VM_BUSY,
                            "another task is working on this VM; retry when it has finished");
    }
    if (!vm_action_allowed(kind, vm.state)) {
        nb_error_set(err, NB_ERR_INVALID_STATE, "cannot %s a VM that is %s",
                     task_kind_to_string(kind) + 3, vm_state_to_string(vm.state));
        vm_clear(&vm);
        return -1;
    }
    /* Starting a VM whose create failed runs the create again: its steps are idempotent. */
    if (kind == TASK_KIND_VM_START && vm.state == VM_STATE_ERROR)
        kind = TASK_KIND_VM_CREATE;
    const VmTaskDef *def = &vm_task_defs[kind];
    task_new(&task, kind, vm.id, params_text);
    if (vm_store_claim(core->store, vm.id, &task, def->desired, (int)def->state_on_claim, err) <
        0) {
        task_clear(&task);
        vm_clear(&vm);
        return -1;
    }
    log_info("vm %s (%s): %s queued as task %s", vm.id, vm.name, task_kind_to_string(kind),
             task.id);
    vm_clear(&vm);
    /* The row as claimed, read before the task is queued: a quick delete may be over (the row
     * gone) by the time anything after the submit reads it. */
    int got = vm_store_get(core->store, NULL, task.target_id, ret_vm, err);
    task_engine_submit(core->tasks, task.id);
    if (got < 0) {
        task_clear(&task);
        return -1;
    }
    *ret_task = task;
    return 0;
}
