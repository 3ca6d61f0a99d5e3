/* /v1/networks, /v1/ports and a VM's NICs (/v1/vms/{id}/nics). A non-admin sees its project's
 * networks and the shared ones; writes go through core (network_ops.h), which checks the
 * admin-only fields. */
#include <ctype.h>
#include <string.h>

#include "../core/network_ops.h"
#include "../core/network_shaping.h"
#include "../model/bandwidth.h"
#include "../core/secgroup_ops.h"
#include "../model/network.h"
#include "../util/strutil.h"
#include "api.h"

void
api_networks_list(HttpRequest *r, void *ctx)
{
    Core *core = ctx;
    _cleanup_error_ NbError *err = NULL;
    Network *list = NULL;
    size_t n = 0;
    if (network_store_list(core->store, api_scope(r), &list, &n, &err) < 0)
        return http_reply_nb_error(r, err);
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, network_to_json(&list[i]));
    network_list_free(list, n);
    http_reply_json(r, 200, json_pack("{s:o}", "networks", arr));
}

void
api_networks_create(HttpRequest *r, void *ctx)
{
    Core *core = ctx;
    _cleanup_error_ NbError *err = NULL;
    Network net;
    if (network_ops_create(core, http_request_principal(r), http_request_json(r), &net, &err) < 0)
        return http_reply_nb_error(r, err);
    http_reply_json(r, 201, network_to_json(&net));
}

void
api_networks_get(HttpRequest *r, void *ctx)
{
    Core *core = ctx;
    _cleanup_error_ NbError *err = NULL;
    const char *key = http_request_param(r, 0);
    Network net;
    if (network_store_get(core->store, api_lookup_scope(r, key), key, &net, &err) < 0)
        return http_reply_nb_error(r, err);
    http_reply_json(r, 200, network_to_json(&net));
}

void
api_networks_delete(HttpRequest *r, void *ctx)
{
    Core *core = ctx;
    _cleanup_error_ NbError *err = NULL;
    if (network_ops_delete(core, http_request_principal(r), http_request_param(r, 0), &err) < 0)
        return http_reply_nb_error(r, err);
    http_reply_empty(r, 204);
}

/* The caller's ports (every project's for admins), optionally of one network; the network is
 * looked up like GET /v1/networks/{id} so that another project's is NETWORK_NOT_FOUND. */
void
api_ports_list(HttpRequest *r, void *ctx)
{
    Core *core = ctx;
    _cleanup_error_ NbError *err = NULL;
    const char *qnetwork = http_request_query(r, "network");
    Network net;
    if (qnetwork &&
        network_store_get(core->store, api_lookup_scope(r, qnetwork), qnetwork, &net, &err) < 0)
        return http_reply_nb_error(r, err);
    Port *list = NULL;
    size_t n = 0;
    if (port_store_list(core->store, api_scope(r), qnetwork ? net.id : NULL, &list, &n, &err) < 0)
        return http_reply_nb_error(r, err);
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
        json_t *p = port_to_json(&list[i]);
        json_object_set_new(p, "secgroups", secgroup_ops_port_groups_json(core, list[i].id));
        json_array_append_new(arr, p);
    }
    port_list_free(list, n);
    /* The DHCP servers of the scope's vxlan, vlan and bridged networks hold addresses too. */
    _cleanup_free_ DhcpServer *servers = NULL;
    if (port_store_dhcp_server_list(core->store, api_scope(r), qnetwork ? net.id : NULL, &servers,
                                    &n, &err) < 0) {
        json_decref(arr);
        return http_reply_nb_error(r, err);
    }
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, dhcp_server_to_json(&servers[i]));
    http_reply_json(r, 200, json_pack("{s:o}", "ports", arr));
}

/* PATCH /v1/ports/{id}: the port's bandwidth limits, live on its VM's host (network_shaping.h). */
void
api_ports_update(HttpRequest *r, void *ctx)
{
    Core *core = ctx;
    _cleanup_error_ NbError *err = NULL;
    Port p;
    if (network_shaping_port_update(core, http_request_principal(r), http_request_param(r, 0),
                                    http_request_json(r), &p, &err) < 0)
        return http_reply_nb_error(r, err);
    json_t *j = port_to_json(&p);
    json_object_set_new(j, "secgroups", secgroup_ops_port_groups_json(core, p.id));
    http_reply_json(r, 200, j);
}

void
api_vms_nic_add(HttpRequest *r, void *ctx)
{
    Core *core = ctx;
    _cleanup_error_ NbError *err = NULL;
    Port port;
    Task task;
    if (network_ops_nic_add(core, http_request_principal(r), http_request_param(r, 0),
                            http_request_json(r), &port, &task, &err) < 0)
        return http_reply_nb_error(r, err);
    http_reply_json(
        r, 202, json_pack("{s:o, s:o}", "port", port_to_json(&port), "task", task_to_json(&task)));
    task_clear(&task);
}

/* "52:54:00:ab:cd:ef" in either case, lowered into out: the store keeps MACs in lower case. */
static bool
mac_normalize(const char *s, char out[NB_MAC_STRLEN])
{
    if (strlen(s) != NB_MAC_STRLEN - 1)
        return false;
    for (size_t i = 0; i < NB_MAC_STRLEN - 1; i++) {
        bool colon = i % 3 == 2;
        if (colon ? s[i] != ':' : !isxdigit((unsigned char)s[i]))
            return false;
        out[i] = (char)tolower((unsigned char)s[i]);
    }
    out[NB_MAC_STRLEN - 1] = '\0';
    return true;
}

void
api_vms_nic_remove(HttpRequest *r, void *ctx)
{
    Core *core = ctx;
    _cleanup_error_ NbError *err = NULL;
    char mac[NB_MAC_STRLEN];
    Task task;
    if (!mac_normalize(http_request_param(r, 1), mac))
        return http_reply_error(r, NB_ERR_INVALID_REQUEST,
                                "a NIC is named by its MAC address, e.g. 52:54:00:ab:cd:ef");
    json_t *body = http_request_json(r);
    if (body && json_object_size(body) > 0)
        return http_reply_error(r, NB_ERR_INVALID_REQUEST, "this action takes no body");
    if (network_ops_nic_remove(core, http_request_principal(r), http_request_param(r, 0), mac,
                               &task, &err) < 0)
        return http_reply_nb_error(r, err);
    http_reply_json(r, 202, json_pack("{s:o}", "task", task_to_json(&task)));
    task_clear(&task);
}

/* GET /v1/vms/{id}'s "nics": its ports by slot, each with its network's name. */
int
api_vm_nics_json(Core *core, const Vm *vm, json_t **ret, NbError **err)
{
    Port *ports = NULL;
    size_t n = 0;
    if (port_store_list_by_vm(core->store, vm->id, &ports, &n, err) < 0)
        return -1;
    json_t *arr = json_array();
    Network net = {{0}};
    for (size_t i = 0; i < n; i++) {
        /* A VM's NICs are usually on one or two networks: look each up once in a row. */
        if (!streq(net.id, ports[i].network_id) &&
            network_store_get(core->store, NULL, ports[i].network_id, &net, err) < 0) {
            json_decref(arr);
            port_list_free(ports, n);
            return -1;
        }
        char ip[NB_IPV4_STRLEN];
        ipv4_format(ports[i].ip, ip);
        json_t *nic = json_pack(
            "{s:I, s:s, s:s, s:s, s:s, s:s, s:o}", "slot", (json_int_t)ports[i].slot, "mac",
            ports[i].mac, "ip", ip, "network_id", ports[i].network_id, "network", net.name,
            "port_id", ports[i].id, "secgroups", secgroup_ops_port_groups_json(core, ports[i].id));
        json_object_set_new(nic, "net_in_mbit",
                            json_integer(bandwidth_kbit_to_mbit(ports[i].net_in_kbit)));
        json_object_set_new(nic, "net_out_mbit",
                            json_integer(bandwidth_kbit_to_mbit(ports[i].net_out_kbit)));
        json_array_append_new(arr, nic);
    }
    port_list_free(ports, n);
    *ret = arr;
    return 0;
}
