/*
 * Tenant networks: the API's operations, the host side of a VM's networks (plug and unplug),
 * and the nic.add / nic.remove tasks.
 *
 * A nat or isolated network is one libvirt network per host, made when the first VM of it lands
 * on that host (the VM's own task steps plug it) and removed when the last one leaves. Each
 * port's fixed address reaches the guest by a static DHCP entry in that host's libvirt network
 * and by the seed's network-config. Making and removing a network on a host happen under that
 * host's lock stripe, so a VM arriving never meets its network being removed.
 */
#include "network_ops.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "../hv/network_xml.h"
#include "../util/log.h"
#include "../util/strutil.h"
#include "network_dhcp.h"
#include "network_segment.h"
#include "network_vxlan.h"
#include "network_shaping.h"
#include "secgroup_ops.h"
#include "vm_ops_internal.h"

#define NET_LOCK_STRIPES 64
/* How long a NIC unplug waits for the guest to let go, and how often it looks. */
#define NIC_UNPLUG_TIMEOUT_MS 60000
#define NIC_UNPLUG_POLL_MS 1000

static pthread_mutex_t net_locks[NET_LOCK_STRIPES] = {[0 ... NET_LOCK_STRIPES - 1] =
                                                          PTHREAD_MUTEX_INITIALIZER};

static pthread_mutex_t *
net_lock_for(const char *host)
{
    uint64_t h = 1469598103934665603u;
    for (const char *c = host; *c; c++)
        h = (h ^ (unsigned char)*c) * 1099511628211u;
    return &net_locks[h % NET_LOCK_STRIPES];
}

pthread_mutex_t *
network_ops_host_lock(const char *host)
{
    return net_lock_for(host);
}

static bool
net_type_is_built(NetworkType t)
{
    return t == NETWORK_TYPE_NAT || t == NETWORK_TYPE_ISOLATED || t == NETWORK_TYPE_VXLAN ||
           t == NETWORK_TYPE_BRIDGED || t == NETWORK_TYPE_VLAN;
}

int
network_ops_random_mac(char out[NB_MAC_STRLEN])
{
    unsigned char b[3];
    if (getrandom(b, sizeof(b), 0) != (ssize_t)sizeof(b))
        return -1;
    /* 52:54:00 is QEMU's locally administered prefix, as libvirt uses. */
    snprintf(out, NB_MAC_STRLEN, "52:54:00:%02x:%02x:%02x", b[0], b[1], b[2]);
    return 0;
}

/* ---- the API's operations ---- */

int
network_ops_create(Core *core, const Principal *who, json_t *body, Network *ret, NbError **err)
{
    Network n;
    if (network_from_request(body, &n, err) < 0)
        return -1;
    if (who->role != ROLE_ADMIN &&
        (n.shared || n.type == NETWORK_TYPE_BRIDGED || n.type == NETWORK_TYPE_VLAN))
        return nb_error_set(err, NB_ERR_FORBIDDEN,
                            "only admins create shared, bridged or vlan networks");
    if (!net_type_is_built(n.type))
        return nb_error_set(err, NB_ERR_NETWORK_TYPE_UNAVAILABLE,
                            "%s networks need nimbus-agent on the hosts, which this nimbusd does "
                            "not drive yet; use nat or isolated",
                            network_type_to_string(n.type));
    /* DHCP on vxlan, vlan and bridged networks is served by each host's agent
     * (network_dhcp.h); /31 and /32 are refused for every network by network_from_request. */
    nb_uuid_generate(n.id);
    memcpy(n.project, who->project_id, sizeof(n.project));
    n.is_default = false;
    nb_timestamp_now(n.created_at);
    if (network_store_insert(core->store, &n, err) < 0)
        return -1;
    /* What the store made of it (the derived bridge). */
    if (network_store_get(core->store, NULL, n.id, ret, err) < 0)
        return -1;
    log_info("network %s (%s, %s) created in project %s", n.id, n.name,
             network_type_to_string(n.type), n.project);
    return 0;
}

/* Removes the network's libvirt network from every host that has it. A host that cannot be
 * reached keeps its copy; it is unused there (no port is left) and harmless. */
static void
net_remove_from_hosts(Core *core, const Network *n)
{
    _cleanup_error_ NbError *err = NULL;
    char **hosts = NULL;
    char name[64];
    /* Servers before segments: a server's veth is in the segment's bridge. */
    network_dhcp_remove_everywhere(core, n);
    if (n->type == NETWORK_TYPE_VXLAN) {
        network_vxlan_remove_everywhere(core, n);
        return;
    }
    if (n->type == NETWORK_TYPE_BRIDGED || n->type == NETWORK_TYPE_VLAN) {
        network_segment_remove_everywhere(core, n);
        return;
    }
    network_libvirt_name(n, name);
    if (network_store_hosts(core->store, n->id, &hosts, &err) < 0) {
        log_warn("network %s: cannot list its hosts: %s", n->id, err->message);
        return;
    }
    for (size_t i = 0; hosts && hosts[i]; i++) {
        HvConn *c = host_registry_conn(core, hosts[i]);
        _cleanup_error_ NbError *e = NULL;
        pthread_mutex_t *lock = net_lock_for(hosts[i]);
        pthread_mutex_lock(lock);
        if (!c || hv_net_remove(c, name, &e) < 0)
            log_warn("network %s: left on host %s: %s", n->id, hosts[i],
                     e ? e->message : "the host is down");
        pthread_mutex_unlock(lock);
        hv_conn_free(c);
    }
    store_strv_free(hosts);
}

int
network_ops_delete(Core *core, const Principal *who, const char *id_or_name, NbError **err)
{
    Network n;
    if (network_store_get(core->store, principal_scope(who), id_or_name, &n, err) < 0)
        return -1;
    if (who->role != ROLE_ADMIN && !streq(n.project, who->project_id))
        return nb_error_set(err, NB_ERR_FORBIDDEN, "network '%s' is shared; only admins delete it",
                            n.name);
    /* The host side goes first: the store forgets the hosts with the row. A port made meanwhile
     * makes the delete fail below, and its VM's task plugs the network again. */
    _cleanup_free_ Port *ports = NULL;
    size_t n_ports = 0;
    if (port_store_list(core->store, NULL, n.id, &ports, &n_ports, err) < 0)
        return -1;
    if (n_ports > 0)
        return nb_error_set(err, NB_ERR_NETWORK_IN_USE, "network '%s' has %zu port%s", n.name,
                            n_ports, n_ports == 1 ? "" : "s");
    net_remove_from_hosts(core, &n);
    if (network_store_delete(core->store, NULL, n.id, err) < 0)
        return -1;
    log_info("network %s (%s) deleted", n.id, n.name);
    return 0;
}

int
network_ops_drop_default(Core *core, const char *project, NbError **err)
{
    _cleanup_free_ Network *nets = NULL;
    size_t n = 0;
    if (network_store_list(core->store, project, &nets, &n, err) < 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (!nets[i].is_default || !streq(nets[i].project, project))
            continue;
        _cleanup_free_ Port *ports = NULL;
        size_t n_ports = 0;
        if (port_store_list(core->store, NULL, nets[i].id, &ports, &n_ports, err) < 0)
            return -1;
        if (n_ports > 0)
            return 0; /* the project's VMs keep it, and the project */
        net_remove_from_hosts(core, &nets[i]);
        return network_store_delete(core->store, NULL, nets[i].id, err);
    }
    return 0;
}

/* ---- the host side ---- */

/* The network as libvirt should have it on a host, with DHCP entries for the given ports (when
 * it has DHCP). */
static char *
net_xml(const Network *n, const Port *ports, size_t n_ports)
{
    char name[64];
    /* A VM's ports, or every port on the host (its periodic check). */
    _cleanup_free_ NetXmlHost *hosts = calloc(n_ports ? n_ports : 1, sizeof(*hosts));
    size_t k = 0;
    if (!hosts)
        return NULL;
    for (size_t i = 0; n->dhcp && i < n_ports; i++) {
        if (!streq(ports[i].network_id, n->id))
            continue;
        hosts[k++] = (NetXmlHost){.mac = ports[i].mac, .ip = ports[i].ip};
    }
    network_libvirt_name(n, name);
    NetXmlSpec spec = {
        .name = name,
        .bridge = n->bridge,
        .type = n->type,
        .gateway = n->gateway,
        .prefix = n->prefix,
        .dhcp = n->dhcp,
        .dns = n->dns,
        .n_dns = n->n_dns,
        .mtu = n->mtu,
        .hosts = hosts,
        .n_hosts = k,
    };
    return network_xml_build(&spec);
}

/* Calls fn once per distinct network of the ports, with that network. */
typedef int (*NetPortsFn)(Core *core, const Network *net, const char *host, HvConn *hv,
                          const Vm *vm, const Port *ports, size_t n_ports, NbError **err);

static int
net_for_each(Core *core, const char *host, HvConn *hv, const Vm *vm, const Port *ports,
             size_t n_ports, NetPortsFn fn, NbError **err)
{
    for (size_t i = 0; i < n_ports; i++) {
        bool seen = false;
        for (size_t j = 0; j < i && !seen; j++)
            seen = streq(ports[j].network_id, ports[i].network_id);
        if (seen)
            continue;
        Network net;
        if (network_store_get(core->store, NULL, ports[i].network_id, &net, err) < 0)
            return -1;
        if (!net_type_is_built(net.type))
            return nb_error_set(err, NB_ERR_NETWORK_TYPE_UNAVAILABLE,
                                "network '%s' is of type %s, which this nimbusd cannot make",
                                net.name, network_type_to_string(net.type));
        pthread_mutex_t *lock = net_lock_for(host);
        pthread_mutex_lock(lock);
        int r = fn(core, &net, host, hv, vm, ports, n_ports, err);
        pthread_mutex_unlock(lock);
        if (r < 0)
            return -1;
    }
    return 0;
}

/* Sets (or removes) the DHCP entries of those of the ports that are on net, when it has DHCP. */
static int
net_dhcp_entries(const Network *net, HvConn *hv, const Port *ports, size_t n_ports, bool set,
                 NbError **err)
{
    char name[64];
    network_libvirt_name(net, name);
    for (size_t i = 0; net->dhcp && i < n_ports; i++) {
        if (!streq(ports[i].network_id, net->id))
            continue;
        NetXmlHost h = {.mac = ports[i].mac, .ip = ports[i].ip};
        _cleanup_free_ char *hx = network_xml_dhcp_host(&h);
        if (!hx)
            return nb_error_set(err, NB_ERR_INTERNAL, "cannot build a DHCP entry");
        if ((set ? hv_net_dhcp_host_set(hv, name, hx, err)
                 : hv_net_dhcp_host_remove(hv, name, hx, err)) < 0)
            return -1;
    }
    return 0;
}

static int
net_plug_one(Core *core, const Network *net, const char *host, HvConn *hv, const Vm *vm,
             const Port *ports, size_t n_ports, NbError **err)
{
    char name[64];
    /* The segment first: the DHCP server's veth goes into its bridge. */
    if (net->type == NETWORK_TYPE_VXLAN)
        return network_vxlan_plug(core, net, host, err) < 0
                   ? -1
                   : network_dhcp_sync(core, net, host, NULL, NULL, err);
    if (net->type == NETWORK_TYPE_BRIDGED || net->type == NETWORK_TYPE_VLAN)
        return network_segment_plug(core, net, host, err) < 0
                   ? -1
                   : network_dhcp_sync(core, net, host, NULL, NULL, err);
    network_libvirt_name(net, name);
    _cleanup_free_ char *xml = net_xml(net, ports, n_ports);
    if (!xml)
        return nb_error_set(err, NB_ERR_INTERNAL, "cannot build the XML of network '%s'",
                            net->name);
    /* Recorded first: a crash after the define still finds the host to clean. */
    if (network_store_host_add(core->store, net->id, host, err) < 0 ||
        hv_net_ensure(hv, name, xml, err) < 0)
        return -1;
    return net_dhcp_entries(net, hv, ports, n_ports, true, err);
}

static int
net_unplug_one(Core *core, const Network *net, const char *host, HvConn *hv, const Vm *vm,
               const Port *ports, size_t n_ports, NbError **err)
{
    char name[64];
    if (network_dhcp_is_agents(net)) {
        /* Before the segment, whose bridge the server's veth is in. An agent that cannot be
         * reached keeps the server (and its row) until the periodic check: logged, the VM's
         * task goes on, as for the segment itself. */
        _cleanup_error_ NbError *derr = NULL;
        if (network_dhcp_sync(core, net, host, vm->id, NULL, &derr) < 0)
            log_warn("network %s: DHCP server on host %s not updated yet: %s", net->id, host,
                     derr->message);
    }
    if (net->type == NETWORK_TYPE_VXLAN)
        return network_vxlan_unplug(core, net, host, vm->id, err);
    if (net->type == NETWORK_TYPE_BRIDGED || net->type == NETWORK_TYPE_VLAN)
        return network_segment_unplug(core, net, host, vm->id, err);
    network_libvirt_name(net, name);
    if (net_dhcp_entries(net, hv, ports, n_ports, false, err) < 0)
        return -1;
    int used = port_store_network_used_on_host(core->store, net->id, host, vm->id, err);
    if (used < 0)
        return -1;
    if (used)
        return 0;
    if (hv_net_remove(hv, name, err) < 0)
        return -1;
    log_info("network %s: removed from host %s (no VM there uses it)", net->id, host);
    return network_store_host_remove(core->store, net->id, host, err);
}

/* An unplug removes the record under the host's lock, while the VM (and so its ports) is still
 * there. */
int
network_ops_recorded_on(Core *core, const char *network_id, const char *host, NbError **err)
{
    char **hosts = NULL;
    if (network_store_hosts(core->store, network_id, &hosts, err) < 0)
        return -1;
    int found = 0;
    for (size_t i = 0; hosts && hosts[i] && !found; i++)
        found = streq(hosts[i], host);
    store_strv_free(hosts);
    return found;
}

int
network_ops_host_check(Core *core, const char *host, HvConn *hv, NbError **err)
{
    Network *nets = NULL;
    size_t n = 0;
    if (network_store_list_on_host(core->store, host, &nets, &n, err) < 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (nets[i].type != NETWORK_TYPE_NAT && nets[i].type != NETWORK_TYPE_ISOLATED)
            continue;
        /* With the DHCP entries of the VMs there, in case it has to be defined anew. */
        _cleanup_free_ Port *ports = NULL;
        size_t n_ports = 0;
        _cleanup_error_ NbError *e = NULL;
        char name[64];
        network_libvirt_name(&nets[i], name);
        pthread_mutex_t *lock = net_lock_for(host);
        pthread_mutex_lock(lock);
        /* Looked at again under the lock: a network removed meanwhile is not made again. The
         * common case (defined and active) costs a lookup; the XML with every DHCP entry of the
         * host is built only for a network that is gone. */
        _cleanup_error_ NbError *absent = NULL;
        int used = network_ops_recorded_on(core, nets[i].id, host, &e);
        if (used > 0)
            used = port_store_network_used_on_host(core->store, nets[i].id, host, "", &e);
        if (used > 0 && hv_network_ensure_active(hv, name, &absent) < 0 &&
            network_store_ports_on_host(core->store, nets[i].id, host, &ports, &n_ports, &e) == 0) {
            log_info("network %s: missing on host %s (%s); making it again", nets[i].id, host,
                     absent->message);
            _cleanup_free_ char *xml = net_xml(&nets[i], ports, n_ports);
            if (!xml)
                nb_error_set(&e, NB_ERR_INTERNAL, "cannot build the network's XML");
            else
                hv_net_ensure(hv, name, xml, &e);
        }
        pthread_mutex_unlock(lock);
        if (e)
            log_warn("network %s: check on host %s: %s", nets[i].id, host, e->message);
    }
    network_list_free(nets, n);
    return 0;
}

DomainNic
network_ops_domain_nic(const Network *n, char source[64], const char *mac, const char *tap)
{
    /* vxlan and vlan networks are the agent's bridge on the host, bridged ones the operator's:
     * not libvirt networks. */
    bool bridge = n->type == NETWORK_TYPE_VXLAN || n->type == NETWORK_TYPE_BRIDGED ||
                  n->type == NETWORK_TYPE_VLAN;
    if (bridge)
        snprintf(source, 64, "%s", n->bridge);
    else
        network_libvirt_name(n, source);
    return (DomainNic){bridge ? DOMAIN_NIC_BRIDGE : DOMAIN_NIC_NETWORK, source, mac, tap,
                       n->mtu == 1500 ? 0 : n->mtu};
}

int
network_ops_plug(Core *core, const Vm *vm, const char *host, HvConn *hv, const Port *ports,
                 size_t n_ports, NbError **err)
{
    if (network_shaping_plug(core, host, ports, n_ports, err) < 0 ||
        net_for_each(core, host, hv, vm, ports, n_ports, net_plug_one, err) < 0)
        return -1;
    return secgroup_ops_plug(core, host, hv, ports, n_ports, err);
}

int
network_ops_unplug(Core *core, const Vm *vm, const char *host, HvConn *hv, const Port *ports,
                   size_t n_ports, NbError **err)
{
    secgroup_ops_unplug(core, host, hv, ports, n_ports, vm->state == VM_STATE_DELETING);
    network_shaping_unplug(core, host, ports, n_ports);
    return net_for_each(core, host, hv, vm, ports, n_ports, net_unplug_one, err);
}

int
network_ops_resolve_nics(Core *core, const char *project, const NicRequest *nics, size_t n_nics,
                         Port *ret_ports, size_t *ret_n, NbError **err)
{
    size_t n = 0;
    if (n_nics == 0) {
        /* No network asked for: the project's default one, made on first use. */
        const char *pool =
            core->cfg.default_network_pool ? core->cfg.default_network_pool : "10.200.0.0/16";
        uint32_t net = 0;
        unsigned prefix = 0;
        Network def;
        if (cidr_parse(pool, &net, &prefix) < 0)
            return nb_error_set(err, NB_ERR_INTERNAL, "default-network-pool '%s' is no CIDR", pool);
        if (network_store_ensure_default(core->store, project, net, prefix, &def, err) < 0)
            return -1;
        ret_ports[0] = (Port){.slot = 0};
        memcpy(ret_ports[0].network_id, def.id, sizeof(def.id));
        *ret_n = 1;
        return 0;
    }
    for (size_t i = 0; i < n_nics && i < VM_NICS_MAX; i++) {
        Network net;
        if (network_store_get(core->store, project, nics[i].network, &net, err) < 0)
            return -1;
        if (!net_type_is_built(net.type))
            return nb_error_set(err, NB_ERR_NETWORK_TYPE_UNAVAILABLE,
                                "network '%s' is of type %s, which this nimbusd cannot make",
                                net.name, network_type_to_string(net.type));
        ret_ports[n] = (Port){.slot = (unsigned)i, .ip = nics[i].ip};
        memcpy(ret_ports[n].network_id, net.id, sizeof(net.id));
        n++;
    }
    *ret_n = n;
    return 0;
}

/* ---- NIC hot-plug tasks ---- */

static int
nic_task_port(Core *core, const Task *task, Port *ret, NbError **err)
{
    _cleanup_free_ Port *ports = NULL;
    size_t n = 0;
    if (port_store_list_by_vm(core->store, task->target_id, &ports, &n, err) < 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (task->params && streq(ports[i].id, task->params)) {
            *ret = ports[i];
            return 1;
        }
    }
    return 0;
}

static char *
nic_xml(Core *core, HvConn *hv, const Port *p, NbError **err)
{
    Network net;
    char name[64], tap[NETWORK_IFNAME_MAX + 1], filter[NWFILTER_NAME_MAX + 1];
    if (network_store_get(core->store, NULL, p->network_id, &net, err) < 0)
        return NULL;
    port_tap_name(p->id, tap);
    DomainNic nic = network_ops_domain_nic(&net, name, p->mac, tap);
    nic.filter = secgroup_ops_filter_name(hv, p, filter);
    nic.filter_ip = p->ip;
    char *xml = domain_xml_nic(&nic);
    if (!xml)
        nb_error_set(err, NB_ERR_INTERNAL, "cannot build the NIC's XML");
    return xml;
}

static int
step_nic_plug(Core *core, Task *task, Vm *vm, HvConn *hv, TaskRun *run, NbError **err)
{
    Port p;
    int got = nic_task_port(core, task, &p, err);
    if (got <= 0)
        return got < 0 ? -1 : nb_error_set(err, NB_ERR_PORT_NOT_FOUND, "the port is gone");
    return network_ops_plug(core, vm, vm->host, hv, &p, 1, err);
}

static int
step_nic_attach(Core *core, Task *task, Vm *vm, HvConn *hv, TaskRun *run, NbError **err)
{
    Port p;
    char domain[64];
    int got = nic_task_port(core, task, &p, err);
    if (got <= 0)
        return got < 0 ? -1 : nb_error_set(err, NB_ERR_PORT_NOT_FOUND, "the port is gone");
    _cleanup_free_ char *xml = nic_xml(core, hv, &p, err);
    if (!xml)
        return -1;
    vm_domain_name(vm, domain);
    if (hv_domain_nic_attach(hv, domain, xml, err) < 0)
        return -1;
    /* On a running guest the tap exists now: shaped at once, not at the agent's next check. */
    return network_shaping_plug(core, vm->host, &p, 1, err);
}

static int
step_nic_detach(Core *core, Task *task, Vm *vm, HvConn *hv, TaskRun *run, NbError **err)
{
    Port p;
    char domain[64];
    int got = nic_task_port(core, task, &p, err);
    if (got <= 0)
        return got < 0 ? -1 : 0; /* forgotten already: a retry after the last step */
    _cleanup_free_ char *xml = nic_xml(core, hv, &p, err);
    if (!xml)
        return -1;
    vm_domain_name(vm, domain);
    int r = hv_domain_nic_detach(hv, domain, xml, err);
    if (r <= 0)
        return r;
    /* The guest still holds the NIC: its port (and address) must not be freed yet. Look again
     * by timer; a guest that never lets go fails the task with the NIC in place. */
    if (!run->wait_since_ms)
        run->wait_since_ms = nb_monotonic_ms();
    if (nb_monotonic_ms() - run->wait_since_ms > NIC_UNPLUG_TIMEOUT_MS)
        return nb_error_set(err, NB_ERR_HYPERVISOR,
                            "the guest did not release NIC %s within %d s; it keeps it", p.mac,
                            NIC_UNPLUG_TIMEOUT_MS / 1000);
    return NIC_UNPLUG_POLL_MS;
}

static int
step_nic_unplug(Core *core, Task *task, Vm *vm, HvConn *hv, TaskRun *run, NbError **err)
{
    Port p;
    int got = nic_task_port(core, task, &p, err);
    if (got <= 0)
        return got < 0 ? -1 : 0;
    /* The port is still in the store: the network is used on this host by this VM only if
     * another of its ports is on it, which the store's check (other VMs) does not see. */
    _cleanup_free_ Port *ports = NULL;
    size_t n = 0;
    if (port_store_list_by_vm(core->store, vm->id, &ports, &n, err) < 0)
        return -1;
    secgroup_ops_unplug(core, vm->host, hv, &p, 1, true);
    for (size_t i = 0; i < n; i++) {
        if (!streq(ports[i].id, p.id) && streq(ports[i].network_id, p.network_id)) {
            /* Another NIC of the VM stays on the network: only this entry goes. */
            network_shaping_unplug(core, vm->host, &p, 1);
            Network net;
            if (network_store_get(core->store, NULL, p.network_id, &net, err) < 0)
                return -1;
            if (network_dhcp_is_agents(&net)) {
                pthread_mutex_t *lock = net_lock_for(vm->host);
                pthread_mutex_lock(lock);
                int r = network_dhcp_sync(core, &net, vm->host, NULL, p.id, err);
                pthread_mutex_unlock(lock);
                return r;
            }
            return net_dhcp_entries(&net, hv, &p, 1, false, err);
        }
    }
    return network_ops_unplug(core, vm, vm->host, hv, &p, 1, err);
}

static int
step_nic_forget(Core *core, Task *task, Vm *vm, HvConn *hv, TaskRun *run, NbError **err)
{
    Port p;
    int got = nic_task_port(core, task, &p, err);
    if (got <= 0)
        return got < 0 ? -1 : 0;
    return port_store_delete(core->store, p.id, err);
}

/* A failed nic.add takes the NIC back out: the port is forgotten, the VM keeps what it had. */
static int
nic_add_rollback(Core *core, Task *task, Vm *vm, HvConn *hv)
{
    static const VmStep undo[] = {step_nic_detach, step_nic_unplug, step_nic_forget};
    TaskRun none = {0};
    for (size_t i = 0; i < ELEMENTSOF(undo); i++) {
        _cleanup_error_ NbError *err = NULL;
        if ((hv || undo[i] == step_nic_forget) && undo[i](core, task, vm, hv, &none, &err) < 0)
            log_error("vm %s: nic.add rollback step %zu failed: %s", vm->id, i, err->message);
    }
    return -1;
}

static void
nic_task_finish(Core *core, Task *task, Vm *vm)
{
    _cleanup_error_ NbError *err = NULL;
    if (task_store_finish(core->store, task, TASK_STATE_SUCCEEDED, NULL, NULL, -1, -1, NULL, &err) <
        0)
        log_error("task %s: %s", task->id, err->message);
}

static const VmStep nic_add_steps[] = {step_nic_plug, step_nic_attach};
static const char *const nic_add_names[] = {"plug", "attach"};
static const VmStep nic_remove_steps[] = {step_nic_detach, step_nic_unplug, step_nic_forget};
static const char *const nic_remove_names[] = {"detach", "unplug", "forget"};
_Static_assert(ELEMENTSOF(nic_add_names) == ELEMENTSOF(nic_add_steps), "a name per step");
_Static_assert(ELEMENTSOF(nic_remove_names) == ELEMENTSOF(nic_remove_steps), "a name per step");

static const VmTaskDef nic_add_def = {
    .steps = nic_add_steps,
    .n_steps = (int)ELEMENTSOF(nic_add_steps),
    .step_names = nic_add_names,
    .state_on_claim = -1,
    .finish = nic_task_finish,
    .rollback = nic_add_rollback,
};
static const VmTaskDef nic_remove_def = {
    .steps = nic_remove_steps,
    .n_steps = (int)ELEMENTSOF(nic_remove_steps),
    .step_names = nic_remove_names,
    .state_on_claim = -1,
    .finish = nic_task_finish,
};

static const VmTaskDef *
nic_task_def(TaskKind kind)
{
    return kind == TASK_KIND_VM_NIC_ADD ? &nic_add_def : &nic_remove_def;
}

int
network_ops_nic_step_count(TaskKind kind)
{
    return nic_task_def(kind)->n_steps;
}

int64_t
network_ops_nic_run_task(Core *core, Task *task, TaskRun *run)
{
    return vm_ops_task_run(core, task, run, nic_task_def(task->kind));
}

/* The VM for a NIC change: found in the caller's scope, not held by a task, in a state where
 * its domain is defined. */
static int
nic_vm_get(Core *core, const Principal *who, const char *id_or_name, Vm *ret, NbError **err)
{
    if (vm_store_get(core->store, principal_scope(who), id_or_name, ret, err) < 0)
        return -1;
    if (ret->task_id[0]) {
        vm_clear(ret);
        return nb_error_set(err, NB_ERR_VM_BUSY,
                            "another task is working on this VM; retry when it has finished");
    }
    if (ret->state != VM_STATE_RUNNING && ret->state != VM_STATE_STOPPED &&
        ret->state != VM_STATE_PAUSED) {
        nb_error_set(err, NB_ERR_INVALID_STATE, "cannot change the NICs of a VM that is %s",
                     vm_state_to_string(ret->state));
        vm_clear(ret);
        return -1;
    }
    return 0;
}

static int
nic_queue(Core *core, Vm *vm, TaskKind kind, const char *port_id, Task *ret_task, NbError **err)
{
    Task task;
    task_new(&task, kind, vm->id, port_id);
    if (vm_store_claim(core->store, vm->id, &task, vm->desired, -1, err) < 0) {
        task_clear(&task);
        return -1;
    }
    log_info("vm %s (%s): %s of port %s queued as task %s", vm->id, vm->name,
             task_kind_to_string(kind), port_id, task.id);
    task_engine_submit(core->tasks, task.id);
    *ret_task = task;
    return 0;
}

int
network_ops_nic_add(Core *core, const Principal *who, const char *vm_id_or_name, json_t *body,
                    Port *ret_port, Task *ret_task, NbError **err)
{
    NicRequest req;
    Vm vm;
    Network net;
    SecGroupList groups;
    json_auto_t *rest = NULL;
    if (secgroup_ops_request(body, &rest, &groups, err) < 0 ||
        nic_request_parse(rest, &req, err) < 0 ||
        nic_vm_get(core, who, vm_id_or_name, &vm, err) < 0)
        return -1;
    int r = -1;
    if (secgroup_ops_resolve(core, vm.project, &groups, err) < 0)
        goto out;
    /* The network as the VM's own project sees it (an admin's call included). */
    if (network_store_get(core->store, vm.project, req.network, &net, err) < 0)
        goto out;
    if (!net_type_is_built(net.type)) {
        nb_error_set(err, NB_ERR_NETWORK_TYPE_UNAVAILABLE,
                     "network '%s' is of type %s, which this nimbusd cannot make", net.name,
                     network_type_to_string(net.type));
        goto out;
    }
    /* Refused before a port is made: the VM's host cannot carry it. */
    if (net.type == NETWORK_TYPE_VXLAN && network_vxlan_check_host(core, vm.host, err) < 0)
        goto out;
    if (network_segment_check_host(core, &net, vm.host, err) < 0)
        goto out;
    Port p = {.ip = req.ip};
    memcpy(p.vm_id, vm.id, sizeof(p.vm_id));
    memcpy(p.network_id, net.id, sizeof(p.network_id));
    for (int attempt = 0;; attempt++) {
        _cleanup_error_ NbError *e = NULL;
        if (network_ops_random_mac(p.mac) < 0) {
            nb_error_set(err, NB_ERR_INTERNAL, "no randomness for a MAC address");
            goto out;
        }
        if (port_store_add(core->store, &p, &e) == 0)
            break;
        if (!streq(e->code, NB_ERR_MAC_TAKEN) || attempt == 8) {
            nb_error_propagate(err, TAKE_PTR(e));
            goto out;
        }
    }
    /* The port exists before the task that plugs it: if the claim fails, it goes again. */
    if (secgroup_ops_ports_set(core, &p, 1, &groups, err) < 0 ||
        nic_queue(core, &vm, TASK_KIND_VM_NIC_ADD, p.id, ret_task, err) < 0) {
        _cleanup_error_ NbError *e = NULL;
        if (port_store_delete(core->store, p.id, &e) < 0)
            log_error("port %s: cannot forget it after a failed claim: %s", p.id, e->message);
        goto out;
    }
    *ret_port = p;
    r = 0;
out:
    vm_clear(&vm);
    return r;
}

int
network_ops_nic_remove(Core *core, const Principal *who, const char *vm_id_or_name, const char *mac,
                       Task *ret_task, NbError **err)
{
    Vm vm;
    Port p;
    if (nic_vm_get(core, who, vm_id_or_name, &vm, err) < 0)
        return -1;
    int r = -1;
    _cleanup_free_ Port *ports = NULL;
    size_t n = 0;
    if (port_store_get_by_mac(core->store, vm.id, mac, &p, err) < 0 ||
        port_store_list_by_vm(core->store, vm.id, &ports, &n, err) < 0)
        goto out;
    if (n <= 1) {
        nb_error_set(err, NB_ERR_INVALID_REQUEST,
                     "%s is the VM's last NIC; add another before removing it", p.mac);
        goto out;
    }
    r = nic_queue(core, &vm, TASK_KIND_VM_NIC_REMOVE, p.id, ret_task, err);
out:
    vm_clear(&vm);
    return r;
}
