/*
 * Fuzzes the strict request decoders of src/model: the input is parsed as the HTTP layer parses
 * a body (jansson, duplicate keys refused) and, when it is an object, handed to every decoder.
 * Beyond memory errors, it checks the decoders' contract: a failure always comes with an error
 * (code and message), and what a success returns respects the documented limits.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "model/bandwidth.h"
#include "model/flavor.h"
#include "model/group.h"
#include "model/host.h"
#include "model/image.h"
#include "model/network.h"
#include "model/pool.h"
#include "model/tenancy.h"
#include "model/validate.h"
#include "model/vm.h"
#include "model/vm_request.h"
#include "model/volume.h"
#include "util/error.h"

/* A decoder's outcome: exactly one of success or an error with a code and a message. */
static void
check_outcome(int r, NbError *err)
{
    if (r < 0) {
        FUZZ_CHECK(r == -1);
        FUZZ_CHECK(err && err->code && err->message);
    } else {
        FUZZ_CHECK(r == 0);
        FUZZ_CHECK(!err);
    }
    nb_error_free(err);
}

static void
fuzz_vm(json_t *body)
{
    VmCreateRequest req = {0};
    NbError *err = NULL;
    int r = vm_create_request_parse(body, &req, &err);
    if (r == 0) {
        FUZZ_CHECK(nb_name_is_valid(req.name));
        /* May be "": resolving it finds nothing (IMAGE_NOT_FOUND / FLAVOR_NOT_FOUND). */
        FUZZ_CHECK(strlen(req.image) <= NB_NAME_MAX);
        FUZZ_CHECK(strlen(req.flavor) <= NB_NAME_MAX);
        FUZZ_CHECK(!req.hostname[0] || nb_hostname_is_valid(req.hostname));
        FUZZ_CHECK(!req.user_data || strlen(req.user_data) <= NB_USER_DATA_MAX);
    }
    check_outcome(r, err);
    vm_create_request_clear(&req);
}

static void
fuzz_flavor(json_t *body)
{
    Flavor f = {0};
    NbError *err = NULL;
    int r = flavor_from_request(body, &f, &err);
    if (r == 0) {
        FUZZ_CHECK(nb_name_is_valid(f.name));
        FUZZ_CHECK(f.vcpus >= 1 && f.vcpus <= NB_FLAVOR_VCPUS_MAX);
        FUZZ_CHECK(f.ram_mib >= NB_FLAVOR_RAM_MIB_MIN && f.ram_mib <= NB_FLAVOR_RAM_MIB_MAX);
        FUZZ_CHECK(f.disk_gib >= 1 && f.disk_gib <= NB_FLAVOR_DISK_GIB_MAX);
        FUZZ_CHECK(f.net_in_kbit <= NB_BANDWIDTH_MBIT_MAX * 1000 && f.net_in_kbit % 1000 == 0);
        FUZZ_CHECK(f.net_out_kbit <= NB_BANDWIDTH_MBIT_MAX * 1000 && f.net_out_kbit % 1000 == 0);
        FUZZ_CHECK(f.disk_iops <= NB_FLAVOR_DISK_IOPS_MAX &&
                   f.disk_mbps <= NB_FLAVOR_DISK_MBPS_MAX);
        json_t *j = flavor_to_json(&f);
        FUZZ_CHECK(j);
        json_decref(j);
    }
    check_outcome(r, err);
}

static void
fuzz_image(json_t *body)
{
    Image img = {0};
    NbError *err = NULL;
    int r = image_from_request(body, &img, &err);
    if (r == 0) {
        FUZZ_CHECK(nb_name_is_valid(img.name));
        FUZZ_CHECK(img.format >= 0 && img.format < _IMAGE_FORMAT_MAX);
        FUZZ_CHECK(img.state == IMAGE_STATE_QUEUED);
    }
    check_outcome(r, err);
}

static void
check_quota(const Quota *q)
{
    for (int i = 0; i < _QUOTA_MAX; i++)
        FUZZ_CHECK(q->limit[i] == -1 || (q->limit[i] >= 0 && q->limit[i] <= INT64_C(1) << 50));
}

/* PUT /v1/projects/{id}/quota: the body is the quota object itself. */
static void
fuzz_quota(json_t *body)
{
    Quota q;
    NbError *err = NULL;
    int r = quota_from_json(body, &q, &err);
    if (r == 0) {
        check_quota(&q);
        json_t *j = quota_to_json(&q);
        FUZZ_CHECK(j);
        json_decref(j);
    }
    check_outcome(r, err);
}

static void
fuzz_project(json_t *body)
{
    Project p = {0};
    NbError *err = NULL;
    int r = project_from_request(body, &p, &err);
    if (r == 0) {
        FUZZ_CHECK(nb_name_is_valid(p.name));
        check_quota(&p.quota);
    }
    check_outcome(r, err);
}

static void
fuzz_user(json_t *body)
{
    UserCreateRequest u = {0};
    NbError *err = NULL;
    int r = user_create_request_parse(body, &u, &err);
    if (r == 0) {
        FUZZ_CHECK(nb_name_is_valid(u.name));
        FUZZ_CHECK(strlen(u.project) <= NB_NAME_MAX);
        FUZZ_CHECK(u.role >= 0 && u.role < _ROLE_MAX && role_to_string(u.role));
        FUZZ_CHECK(u.password);
        size_t len = strlen(u.password);
        FUZZ_CHECK(len >= NB_PASSWORD_MIN && len <= NB_PASSWORD_MAX);
    }
    check_outcome(r, err);
    user_create_request_clear(&u);
}

static void
check_labels(const Labels *l)
{
    FUZZ_CHECK(l->n <= NB_LABELS_MAX);
    for (size_t i = 0; i < l->n; i++) {
        FUZZ_CHECK(strchr(l->item[i], '=') != NULL);
        FUZZ_CHECK(!strpbrk(l->item[i], "\n\r\t \"'"));
    }
}

static void
fuzz_host(json_t *body)
{
    Host h = {0};
    NbError *err = NULL;
    int r = host_create_request_parse(body, &h, &err);
    if (r == 0) {
        NbError *uri_err = NULL;
        FUZZ_CHECK(nb_name_is_valid(h.name));
        FUZZ_CHECK(host_uri_validate(h.uri, &uri_err) == 0);
        FUZZ_CHECK(h.cpu_ratio > 0 && h.cpu_ratio <= HOST_RATIO_MAX);
        FUZZ_CHECK(h.ram_ratio > 0 && h.ram_ratio <= HOST_RATIO_MAX);
        FUZZ_CHECK(h.disk_ratio > 0 && h.disk_ratio <= HOST_RATIO_MAX);
        check_labels(&h.labels);
        nb_error_free(uri_err);
        /* An agent comes with its secret; a tunnel with an agent; the URL is https. */
        FUZZ_CHECK(!h.agent_url[0] || strlen(h.agent_secret) == HOST_AGENT_SECRET_LEN);
        FUZZ_CHECK(!h.agent_secret[0] || host_agent_url_validate(h.agent_url, NULL) == 0);
        FUZZ_CHECK(!h.tunnel_ip[0] == !h.tunnel_dev[0]);
        FUZZ_CHECK(!h.tunnel_ip[0] || h.agent_url[0]);
        FUZZ_CHECK(!h.tunnel_dev[0] || network_ifname_is_valid(h.tunnel_dev));
    }
    check_outcome(r, err);
    err = NULL;
    r = host_update_request_parse(body, &h, &err);
    if (r == 0)
        check_labels(&h.labels);
    check_outcome(r, err);
}

static void
fuzz_group(json_t *body)
{
    char name[NB_NAME_MAX + 1];
    GroupPolicy policy;
    NbError *err = NULL;
    int r = group_create_request_parse(body, name, &policy, &err);
    if (r == 0) {
        FUZZ_CHECK(nb_name_is_valid(name));
        FUZZ_CHECK(policy >= 0 && policy < _GROUP_POLICY_MAX);
    }
    check_outcome(r, err);
}

/* The bodies of POST /v1/vms/{id}/stop and /migrate; the stop request also round-trips through
 * the task params it is stored as. */
static void
fuzz_vm_actions(json_t *body)
{
    VmStopRequest stop;
    NbError *err = NULL;
    int r = vm_request_parse_stop(body, &stop, &err);
    if (r == 0) {
        FUZZ_CHECK(stop.timeout_s >= -1 && stop.timeout_s <= VM_REQUEST_STOP_TIMEOUT_MAX_S);
        char *text = vm_request_stop_to_text(&stop);
        FUZZ_CHECK(text);
        VmStopRequest back;
        vm_request_stop_from_text(text, &back);
        FUZZ_CHECK(back.force == stop.force && back.timeout_s == stop.timeout_s);
        free(text);
    }
    check_outcome(r, err);

    VmMigrateRequest mig;
    err = NULL;
    r = vm_request_parse_migrate(body, &mig, &err);
    if (r == 0) {
        FUZZ_CHECK(!mig.host[0] || nb_name_is_valid(mig.host) || nb_uuid_is_valid(mig.host));
        FUZZ_CHECK(mig.offline >= -1 && mig.offline <= 1);
        FUZZ_CHECK(mig.bandwidth_mib <= VM_REQUEST_MIGRATE_BANDWIDTH_MAX_MIB);
    }
    check_outcome(r, err);
}

/* POST /v1/networks, and one NIC of a VM create or a nic add: what a success returns is inside
 * the documented ranges, and its CIDR, gateway and DNS servers agree with each other. */
static void
fuzz_network(json_t *body)
{
    Network n = {0};
    NbError *err = NULL;
    int r = network_from_request(body, &n, &err);
    if (r == 0) {
        FUZZ_CHECK(nb_name_is_valid(n.name));
        FUZZ_CHECK(n.type >= 0 && n.type < _NETWORK_TYPE_MAX);
        FUZZ_CHECK(n.prefix >= NETWORK_PREFIX_MIN && n.prefix <= NETWORK_PREFIX_MAX);
        FUZZ_CHECK((n.net & ~cidr_mask(n.prefix)) == 0);
        FUZZ_CHECK(!n.gateway || cidr_contains(n.net, n.prefix, n.gateway));
        FUZZ_CHECK(n.mtu >= NETWORK_MTU_MIN && n.mtu <= NETWORK_MTU_MAX);
        FUZZ_CHECK(n.n_dns <= NETWORK_DNS_MAX);
        /* vni 0: not given, the store picks one. */
        FUZZ_CHECK(n.vni <= NETWORK_VNI_MAX && (n.type == NETWORK_TYPE_VXLAN || n.vni == 0));
        FUZZ_CHECK(n.type != NETWORK_TYPE_VLAN || (n.vlan >= 1 && n.vlan <= NETWORK_VLAN_MAX));
        FUZZ_CHECK(!n.bridge[0] || network_ifname_is_valid(n.bridge));
        FUZZ_CHECK(!n.parent[0] || network_ifname_is_valid(n.parent));
        json_t *j = network_to_json(&n);
        FUZZ_CHECK(j);
        json_decref(j);
    }
    check_outcome(r, err);

    NicRequest nic;
    err = NULL;
    r = nic_request_parse(body, &nic, &err);
    if (r == 0)
        FUZZ_CHECK(nic.network[0] && strlen(nic.network) <= NB_NAME_MAX);
    check_outcome(r, err);
}

/* PATCH /v1/ports/{id}: at least one limit, each a whole number of Mbit/s in range. */
static void
fuzz_bandwidth(json_t *body)
{
    BandwidthPatch p;
    NbError *err = NULL;
    int r = bandwidth_patch_from_request(body, &p, &err);
    if (r == 0) {
        FUZZ_CHECK(p.has_in || p.has_out);
        FUZZ_CHECK(p.in_kbit <= NB_BANDWIDTH_MBIT_MAX * 1000 && p.in_kbit % 1000 == 0);
        FUZZ_CHECK(p.out_kbit <= NB_BANDWIDTH_MBIT_MAX * 1000 && p.out_kbit % 1000 == 0);
    }
    check_outcome(r, err);
}

/* POST /v1/pools (admin): a success is of a known type, holds only values that may reach
 * libvirt XML and paths unescaped, and its JSON never carries the secret. */
static void
fuzz_pool(json_t *body)
{
    static const char *const roots[] = {"/srv", "/var/lib/nimbus/pools", NULL};
    Pool p = {0};
    NbError *err = NULL;
    int r = pool_from_request(body, roots, &p, &err);
    if (r == 0) {
        FUZZ_CHECK(nb_name_is_valid(p.name));
        FUZZ_CHECK(p.type >= 0 && p.type < _POOL_TYPE_MAX);
        FUZZ_CHECK(p.n_monitors <= POOL_MONITORS_MAX);
        FUZZ_CHECK(!p.host[0] || (!pool_type_is_shared(p.type) && nb_name_is_valid(p.host)));
        for (size_t i = 0; i < p.n_monitors; i++) {
            char host[POOL_HOSTPORT_MAX + 1];
            unsigned port;
            FUZZ_CHECK(pool_hostport_parse(p.monitors[i], host, sizeof(host), &port) == 0);
        }
        FUZZ_CHECK(!p.path[0] || pool_path_valid(p.path));
        FUZZ_CHECK(!p.path[0] == (p.type != POOL_TYPE_DIR && p.type != POOL_TYPE_NETFS));
        FUZZ_CHECK(p.type != POOL_TYPE_ISCSI ||
                   (pool_iqn_valid(p.source) && pool_iqn_valid(p.initiator)));
        FUZZ_CHECK(p.type != POOL_TYPE_LOGICAL || pool_vg_name_valid(p.source));
        FUZZ_CHECK(p.type != POOL_TYPE_RBD || (p.n_monitors >= 1 && p.auth_user[0] && p.secret[0]));
        FUZZ_CHECK(!p.auth_user[0] == !p.secret[0]);
        json_t *j = pool_to_json(&p);
        FUZZ_CHECK(j);
        char *text = json_dumps(j, 0);
        FUZZ_CHECK(text);
        FUZZ_CHECK(!p.secret[0] || !strstr(text, p.secret));
        free(text);
        json_decref(j);
    }
    check_outcome(r, err);
}

/* POST /v1/volumes and the attach and resize actions. */
static void
fuzz_volume(json_t *body)
{
    VolumeCreateRequest c;
    NbError *err = NULL;
    int r = volume_create_request_decode(body, &c, &err);
    if (r == 0) {
        FUZZ_CHECK(nb_name_is_valid(c.name));
        FUZZ_CHECK(c.size_gib >= 1 && c.size_gib <= VOLUME_SIZE_GIB_MAX);
        FUZZ_CHECK(!c.pool[0] || nb_name_is_valid(c.pool) || nb_uuid_is_valid(c.pool));
        FUZZ_CHECK(!c.host[0] || nb_name_is_valid(c.host) || nb_uuid_is_valid(c.host));
        FUZZ_CHECK(!c.image[0] || nb_name_is_valid(c.image) || nb_uuid_is_valid(c.image));
    }
    check_outcome(r, err);

    char vm[NB_NAME_MAX + 1];
    VolumeBus bus;
    err = NULL;
    r = volume_attach_request_decode(body, vm, &bus, &err);
    if (r == 0) {
        FUZZ_CHECK(nb_name_is_valid(vm) || nb_uuid_is_valid(vm));
        FUZZ_CHECK(bus == VOLUME_BUS_VIRTIO || bus == VOLUME_BUS_SCSI);
    }
    check_outcome(r, err);

    uint64_t size;
    err = NULL;
    r = volume_resize_request_decode(body, &size, &err);
    if (r == 0)
        FUZZ_CHECK(size >= 1 && size <= VOLUME_SIZE_GIB_MAX);
    check_outcome(r, err);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_error_t jerr;
    json_t *body =
        json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    if (!body)
        return 0;
    if (json_is_object(body)) {
        fuzz_vm(body);
        fuzz_flavor(body);
        fuzz_image(body);
        fuzz_quota(body);
        fuzz_project(body);
        fuzz_user(body);
        fuzz_host(body);
        fuzz_group(body);
        fuzz_vm_actions(body);
        fuzz_network(body);
        fuzz_bandwidth(body);
        fuzz_pool(body);
        fuzz_volume(body);
    }
    json_decref(body);
    return 0;
}
