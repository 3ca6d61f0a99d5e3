/* Networks and ports in the store: IPAM (allocation order, explicit addresses, a full network,
 * reuse after a delete, concurrency), overlap rules, the default network, scoping, quotas, the
 * ports' life with their VM, and the hosts a network was made on. */
#include <pthread.h>
#include <sqlite3.h>

#include "store/store_internal.h"
#include "store_fixture.h"

#define IP(a, b, c, d) (((uint32_t)(a) << 24) | ((uint32_t)(b) << 16) | ((uint32_t)(c) << 8) | (d))
#define POOL IP(10, 200, 0, 0)

static int
setup(void **state)
{
    Fixture *f = fixture_new("net");
    fixture_open_seeded(f, IMAGE_STATE_ACTIVE);
    *state = f;
    return 0;
}

static void
make_project(Fixture *f, const char *name, Project *p)
{
    NbError *err = NULL;
    memset(p, 0, sizeof(*p));
    nb_uuid_generate(p->id);
    snprintf(p->name, sizeof(p->name), "%s", name);
    for (int i = 0; i < _QUOTA_MAX; i++)
        p->quota.limit[i] = -1;
    nb_timestamp_now(p->created_at);
    assert_int_equal(project_store_insert(f->s, p, &err), 0);
}

/* A network of project from a request body (as the API would decode it). */
static int
add_network(Fixture *f, const char *project, const char *body, Network *n, NbError **err)
{
    json_error_t e;
    json_t *j = json_loads(body, 0, &e);
    assert_non_null(j);
    NbError *perr = NULL;
    if (network_from_request(j, n, &perr) < 0)
        fail_msg("%s: %s", body, perr->message);
    json_decref(j);
    nb_uuid_generate(n->id);
    snprintf(n->project, sizeof(n->project), "%s", project ? project : NB_DEFAULT_PROJECT_ID);
    nb_timestamp_now(n->created_at);
    return network_store_insert(f->s, n, err);
}

static void
net_ok(Fixture *f, const char *project, const char *body, Network *n)
{
    NbError *err = NULL;
    if (add_network(f, project, body, n, &err) < 0)
        fail_msg("%s: %s %s", body, err->code, err->message);
}

/* A VM (not inserted) of project, with its create task; MACs from the fixture's counter. */
static void
make_vm_task(Fixture *f, const char *name, const char *project, Vm *vm, Task *t)
{
    memset(vm, 0, sizeof(*vm));
    nb_uuid_generate(vm->id);
    snprintf(vm->name, sizeof(vm->name), "%s", name);
    snprintf(vm->hostname, sizeof(vm->hostname), "%s", name);
    snprintf(vm->host, sizeof(vm->host), "local");
    snprintf(vm->project, sizeof(vm->project), "%s", project ? project : NB_DEFAULT_PROJECT_ID);
    snprintf(vm->mac, sizeof(vm->mac), "52:54:00:01:%02x:%02x", (f->macs >> 8) & 0xff,
             f->macs & 0xff);
    f->macs++;
    memcpy(vm->image_id, f->image.id, sizeof(vm->image_id));
    memcpy(vm->flavor_id, f->flavor.id, sizeof(vm->flavor_id));
    vm->state = VM_STATE_BUILDING;
    vm->desired = VM_POWER_RUNNING;
    vm->vcpus = 1;
    vm->ram_mib = 256;
    vm->disk_gib = 1;
    nb_timestamp_now(vm->created_at);
    memcpy(vm->updated_at, vm->created_at, sizeof(vm->updated_at));
    make_task(t, TASK_KIND_VM_CREATE, vm->id);
    memcpy(vm->task_id, t->id, sizeof(vm->task_id));
}

/* A port asked for on network (ip 0: allocate), with a fresh MAC, at slot. */
static void
make_port(Fixture *f, const Network *n, unsigned slot, uint32_t ip, Port *p)
{
    memset(p, 0, sizeof(*p));
    snprintf(p->network_id, sizeof(p->network_id), "%s", n->id);
    snprintf(p->mac, sizeof(p->mac), "52:54:00:02:%02x:%02x", (f->macs >> 8) & 0xff,
             f->macs & 0xff);
    f->macs++;
    p->slot = slot;
    p->ip = ip;
}

/* Inserts a VM of project with n_ips ports on network n (ips[i] 0: allocate). */
static int
vm_with_ports(Fixture *f, const char *name, const char *project, const Network *n,
              const uint32_t *ips, size_t n_ips, Vm *vm, Task *t, Port *ports, NbError **err)
{
    make_vm_task(f, name, project, vm, t);
    for (size_t i = 0; i < n_ips; i++)
        make_port(f, n, (unsigned)i, ips[i], &ports[i]);
    return vm_store_insert_with_task(f->s, vm, t, ports, n_ips, NULL, err);
}

/* Deletes the VM through the delete task's end, as vm.delete does. */
static void
delete_vm(Fixture *f, const Vm *vm)
{
    NbError *err = NULL;
    Task t;
    make_task(&t, TASK_KIND_VM_DELETE, vm->id);
    /* The create task first lets the VM go. */
    Vm cur;
    assert_int_equal(vm_store_get(f->s, NULL, vm->id, &cur, &err), 0);
    if (cur.task_id[0]) {
        Task create = {0};
        snprintf(create.id, sizeof(create.id), "%s", cur.task_id);
        snprintf(create.target_id, sizeof(create.target_id), "%s", vm->id);
        assert_int_equal(
            task_store_finish(f->s, &create, TASK_STATE_SUCCEEDED, NULL, NULL, -1, -1, NULL, &err),
            0);
    }
    vm_clear(&cur);
    assert_int_equal(vm_store_claim(f->s, vm->id, &t, VM_POWER_DELETED, VM_STATE_DELETING, &err),
                     0);
    assert_int_equal(task_store_finish_delete(f->s, &t, &err), 0);
}

static size_t
count_rows(Fixture *f, const char *sql)
{
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(f->s->db, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    size_t n = (size_t)sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return n;
}

static void
test_allocation_order(void **state)
{
    Fixture *f = *state;
    NbError *err = NULL;
    Network n;
    net_ok(f, NULL,
           "{\"name\":\"app\",\"cidr\":\"10.10.0.0/24\",\"gateway\":\"10.10.0.1\","
           "\"dns\":[\"10.10.0.3\",\"1.1.1.1\"]}",
           &n);
    Vm vm;
    Task t;
    Port ports[4];
    uint32_t ips[4] = {0, 0, 0, 0};
    assert_int_equal(vm_with_ports(f, "web1", NULL, &n, ips, 4, &vm, &t, ports, &err), 0);
    /* .1 the gateway, .3 a DNS server of the network: skipped. */
    assert_int_equal(ports[0].ip, IP(10, 10, 0, 2));
    assert_int_equal(ports[1].ip, IP(10, 10, 0, 4));
    assert_int_equal(ports[2].ip, IP(10, 10, 0, 5));
    assert_int_equal(ports[3].ip, IP(10, 10, 0, 6));
    assert_string_equal(ports[0].vm_id, vm.id);
    assert_string_equal(ports[0].project, NB_DEFAULT_PROJECT_ID);
    assert_true(nb_uuid_is_valid(ports[0].id));
    assert_true(ports[0].created_at[0]);

    /* The VM's address is its first NIC's, written in the same transaction. */
    Vm stored;
    char first[NB_IPV4_STRLEN];
    assert_int_equal(vm_store_get(f->s, NULL, vm.id, &stored, &err), 0);
    ipv4_format(ports[0].ip, first);
    assert_string_equal(stored.ip, first);
    vm_clear(&stored);

    /* What the store kept, by slot. */
    Port *got = NULL;
    size_t count = 0;
    assert_int_equal(port_store_list_by_vm(f->s, vm.id, &got, &count, &err), 0);
    assert_int_equal(count, 4);
    for (size_t i = 0; i < count; i++) {
        assert_int_equal(got[i].slot, i);
        assert_int_equal(got[i].ip, ports[i].ip);
        assert_string_equal(got[i].mac, ports[i].mac);
        assert_string_equal(got[i].id, ports[i].id);
        assert_string_equal(got[i].network_id, n.id);
    }
    port_list_free(got, count);

    /* An explicit address past the others: the next allocations go above it (a gap below is
     * left for when the top of the subnet is reached). */
    Vm vm2;
    Task t2;
    Port p2[2];
    uint32_t ips2[2] = {IP(10, 10, 0, 8), 0};
    assert_int_equal(vm_with_ports(f, "web2", NULL, &n, ips2, 2, &vm2, &t2, p2, &err), 0);
    assert_int_equal(p2[0].ip, IP(10, 10, 0, 8));
    assert_int_equal(p2[1].ip, IP(10, 10, 0, 9));
    Vm vm3;
    Task t3;
    Port p3[1];
    uint32_t ips3[1] = {0};
    assert_int_equal(vm_with_ports(f, "web3", NULL, &n, ips3, 1, &vm3, &t3, p3, &err), 0);
    assert_int_equal(p3[0].ip, IP(10, 10, 0, 10));

    /* The network's ports in address order. */
    assert_int_equal(port_store_list(f->s, NULL, n.id, &got, &count, &err), 0);
    assert_int_equal(count, 7);
    for (size_t i = 1; i < count; i++)
        assert_true(got[i - 1].ip < got[i].ip);
    port_list_free(got, count);
}

static void
test_explicit_ip_errors(void **state)
{
    Fixture *f = *state;
    NbError *err = NULL;
    Network n;
    net_ok(f, NULL, "{\"name\":\"app\",\"cidr\":\"10.10.0.0/24\",\"dns\":[\"10.10.0.53\"]}", &n);
    Vm vm, other;
    Task t;
    Port ports[2];
    uint32_t ips[1] = {IP(10, 10, 0, 20)};
    assert_int_equal(vm_with_ports(f, "web1", NULL, &n, ips, 1, &vm, &t, ports, &err), 0);
    struct {
        uint32_t ip;
        const char *code;
    } bad[] = {
        {IP(10, 10, 0, 20), NB_ERR_IP_IN_USE},
        {IP(10, 10, 1, 5), NB_ERR_IP_OUTSIDE_NETWORK},
        {IP(10, 10, 0, 0), NB_ERR_IP_OUTSIDE_NETWORK},   /* network */
        {IP(10, 10, 0, 255), NB_ERR_IP_OUTSIDE_NETWORK}, /* broadcast */
        {IP(10, 10, 0, 1), NB_ERR_IP_OUTSIDE_NETWORK},   /* gateway */
        {IP(10, 10, 0, 53), NB_ERR_IP_OUTSIDE_NETWORK},  /* its DNS server */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        /* The second NIC is the bad one: the VM, its task and its first port all go. */
        uint32_t two[2] = {0, bad[i].ip};
        assert_int_equal(vm_with_ports(f, "web2", NULL, &n, two, 2, &other, &t, ports, &err), -1);
        expect_code(&err, bad[i].code);
        Vm gone;
        assert_int_equal(vm_store_get(f->s, NULL, other.id, &gone, &err), -1);
        expect_code(&err, NB_ERR_VM_NOT_FOUND);
        Task got;
        assert_int_equal(task_store_get(f->s, NULL, t.id, &got, &err), -1);
        expect_code(&err, NB_ERR_TASK_NOT_FOUND);
    }
    assert_int_equal(count_rows(f, "SELECT count(*) FROM ports"), 1);
    assert_int_equal(count_rows(f, "SELECT count(*) FROM vms"), 1);
}

static void
test_network_fills(void **state)
{
    Fixture *f = *state;
    NbError *err = NULL;
    Network n;
    /* A /30: .0 network, .1 gateway, .3 broadcast: one address for guests. */
    net_ok(f, NULL, "{\"name\":\"tiny\",\"cidr\":\"10.9.0.0/30\"}", &n);
    Vm a, b;
    Task t;
    Port p[1];
    uint32_t ips[1] = {0};
    assert_int_equal(vm_with_ports(f, "a", NULL, &n, ips, 1, &a, &t, p, &err), 0);
    assert_int_equal(p[0].ip, IP(10, 9, 0, 2));
    assert_int_equal(vm_with_ports(f, "b", NULL, &n, ips, 1, &b, &t, p, &err), -1);
    expect_code(&err, NB_ERR_NETWORK_FULL);

    /* The delete of a's VM frees its address: the next VM gets it. */
    delete_vm(f, &a);
    assert_int_equal(count_rows(f, "SELECT count(*) FROM ports"), 0);
    assert_int_equal(vm_with_ports(f, "b", NULL, &n, ips, 1, &b, &t, p, &err), 0);
    assert_int_equal(p[0].ip, IP(10, 9, 0, 2));

    /* An isolated /30 without a gateway has two. */
    Network iso;
    net_ok(f, NULL,
           "{\"name\":\"iso\",\"type\":\"isolated\",\"cidr\":\"10.9.1.0/30\",\"gateway\":\"none\","
           "\"dhcp\":false}",
           &iso);
    uint32_t two[2] = {0, 0};
    Port p2[2];
    Vm c;
    assert_int_equal(vm_with_ports(f, "c", NULL, &iso, two, 2, &c, &t, p2, &err), 0);
    assert_int_equal(p2[0].ip, IP(10, 9, 1, 1));
    assert_int_equal(p2[1].ip, IP(10, 9, 1, 2));
}

static void
test_reuse_after_delete(void **state)
{
    Fixture *f = *state;
    NbError *err = NULL;
    Network n;
    net_ok(f, NULL, "{\"name\":\"app\",\"cidr\":\"10.10.0.0/24\"}", &n);
    Vm vms[3];
    Task t;
    Port p[1];
    uint32_t ips[1] = {0};
    for (int i = 0; i < 3; i++) {
        char name[8];
        snprintf(name, sizeof(name), "vm%d", i);
        assert_int_equal(vm_with_ports(f, name, NULL, &n, ips, 1, &vms[i], &t, p, &err), 0);
        assert_int_equal(p[0].ip, IP(10, 10, 0, 2 + i));
    }
    char freed_mac[NB_MAC_STRLEN];
    Port *got = NULL;
    size_t count = 0;
    assert_int_equal(port_store_list_by_vm(f->s, vms[1].id, &got, &count, &err), 0);
    assert_int_equal(count, 1);
    memcpy(freed_mac, got[0].mac, sizeof(freed_mac));
    port_list_free(got, count);
    /* The delete itself removes the ports, not only the foreign key's cascade. */
    assert_int_equal(sqlite3_exec(f->s->db, "PRAGMA foreign_keys = OFF", NULL, NULL, NULL),
                     SQLITE_OK);
    delete_vm(f, &vms[1]);
    assert_int_equal(sqlite3_exec(f->s->db, "PRAGMA foreign_keys = ON", NULL, NULL, NULL),
                     SQLITE_OK);
    /* No port outlives its VM. */
    assert_int_equal(port_store_list_by_vm(f->s, vms[1].id, &got, &count, &err), 0);
    assert_int_equal(count, 0);
    port_list_free(got, count);
    assert_int_equal(count_rows(f, "SELECT count(*) FROM ports p WHERE NOT EXISTS "
                                   "(SELECT 1 FROM vms v WHERE v.id = p.vm_id)"),
                     0);
    /* Its address and its MAC are free again: the address is not handed out at once (the next
     * goes above the highest), but may be asked for. */
    Vm again;
    make_vm_task(f, "again", NULL, &again, &t);
    make_port(f, &n, 0, 0, &p[0]);
    memcpy(p[0].mac, freed_mac, sizeof(p[0].mac));
    assert_int_equal(vm_store_insert_with_task(f->s, &again, &t, p, 1, NULL, &err), 0);
    assert_int_equal(p[0].ip, IP(10, 10, 0, 5));
    Vm asked;
    make_vm_task(f, "asked", NULL, &asked, &t);
    make_port(f, &n, 0, IP(10, 10, 0, 3), &p[0]);
    assert_int_equal(vm_store_insert_with_task(f->s, &asked, &t, p, 1, NULL, &err), 0);
    assert_int_equal(p[0].ip, IP(10, 10, 0, 3));
}

/* Whether a host still needs its copy of a network: another VM there (or arriving) has a port. */
static void
test_network_used_on_host(void **state)
{
    Fixture *f = *state;
    NbError *err = NULL;
    Network n;
    net_ok(f, NULL, "{\"name\":\"app\",\"cidr\":\"10.10.0.0/24\"}", &n);
    Vm a, b;
    Task t;
    Port p[1];
    uint32_t ips[1] = {0};
    assert_int_equal(vm_with_ports(f, "a", NULL, &n, ips, 1, &a, &t, p, &err), 0); /* local */
    assert_int_equal(port_store_network_used_on_host(f->s, n.id, "local", a.id, &err), 0);
    assert_int_equal(port_store_network_used_on_host(f->s, n.id, "local", "", &err), 1);
    assert_int_equal(port_store_network_used_on_host(f->s, n.id, "kvm2", "", &err), 0);
    assert_int_equal(vm_with_ports(f, "b", NULL, &n, ips, 1, &b, &t, p, &err), 0);
    assert_int_equal(port_store_network_used_on_host(f->s, n.id, "local", a.id, &err), 1);
    /* b on its way to kvm2: kvm2 needs the network, local still does (b is there too) */
    assert_int_equal(vm_store_set_migration(f->s, b.id, "kvm2", &err), 0);
    assert_int_equal(port_store_network_used_on_host(f->s, n.id, "kvm2", a.id, &err), 1);
    assert_int_equal(vm_store_move(f->s, b.id, "kvm2", &err), 0);
    assert_int_equal(port_store_network_used_on_host(f->s, n.id, "local", a.id, &err), 0);
    assert_int_equal(port_store_network_used_on_host(f->s, n.id, "kvm2", a.id, &err), 1);
    assert_int_equal(port_store_network_used_on_host(f->s, n.id, "kvm2", b.id, &err), 0);
}

static void
test_mac_rules(void **state)
{
    Fixture *f = *state;
    NbError *err = NULL;
    Network n;
    net_ok(f, NULL, "{\"name\":\"app\",\"cidr\":\"10.10.0.0/24\"}", &n);
    Vm legacy, a, b;
    insert_vm(f, "legacy", "local", NULL, 1, 256, 1, NULL, &legacy);
    Task t;
    Port p[2];
    /* A port's MAC is another VM's (legacy) NIC's. */
    make_vm_task(f, "a", NULL, &a, &t);
    make_port(f, &n, 0, 0, &p[0]);
    memcpy(p[0].mac, legacy.mac, sizeof(p[0].mac));
    assert_int_equal(vm_store_insert_with_task(f->s, &a, &t, p, 1, NULL, &err), -1);
    expect_code(&err, NB_ERR_MAC_TAKEN);
    /* Two ports with one MAC. */
    make_port(f, &n, 0, 0, &p[0]);
    make_port(f, &n, 1, 0, &p[1]);
    memcpy(p[1].mac, p[0].mac, sizeof(p[1].mac));
    assert_int_equal(vm_store_insert_with_task(f->s, &a, &t, p, 2, NULL, &err), -1);
    expect_code(&err, NB_ERR_MAC_TAKEN);
    /* The VM's own MAC is its first port's: fine. */
    make_port(f, &n, 0, 0, &p[0]);
    make_port(f, &n, 1, 0, &p[1]);
    memcpy(a.mac, p[0].mac, sizeof(a.mac));
    assert_int_equal(vm_store_insert_with_task(f->s, &a, &t, p, 2, NULL, &err), 0);
    /* A new VM whose MAC is a's second port's. */
    make_vm_task(f, "b", NULL, &b, &t);
    memcpy(b.mac, p[1].mac, sizeof(b.mac));
    assert_int_equal(vm_store_insert_with_task(f->s, &b, &t, NULL, 0, NULL, &err), -1);
    expect_code(&err, NB_ERR_MAC_TAKEN);
    /* More than VM_NICS_MAX ports, or a slot past it. */
    Port many[VM_NICS_MAX + 1];
    make_vm_task(f, "b", NULL, &b, &t);
    for (unsigned i = 0; i <= VM_NICS_MAX; i++)
        make_port(f, &n, i, 0, &many[i]);
    assert_int_equal(vm_store_insert_with_task(f->s, &b, &t, many, VM_NICS_MAX + 1, NULL, &err),
                     -1);
    expect_code(&err, NB_ERR_TOO_MANY_NICS);
    many[0].slot = VM_NICS_MAX;
    assert_int_equal(vm_store_insert_with_task(f->s, &b, &t, many, 1, NULL, &err), -1);
    expect_code(&err, NB_ERR_TOO_MANY_NICS);
}

/* A vxlan network without a VNI gets the lowest free one from 4096, as stored. */
static unsigned
auto_vni(Fixture *f, const char *name, const char *cidr)
{
    char body[256];
    Network n, got;
    NbError *err = NULL;
    snprintf(body, sizeof(body), "{\"name\":\"%s\",\"type\":\"vxlan\",\"cidr\":\"%s\"}", name,
             cidr);
    net_ok(f, NULL, body, &n);
    assert_int_equal(n.vni, 0);
    assert_int_equal(network_store_get(f->s, NULL, n.id, &got, &err), 0);
    return got.vni;
}

static void
test_vni_allocation(void **state)
{
    Fixture *f = *state;
    NbError *err = NULL;
    Network n;
    net_ok(f, NULL, "{\"name\":\"low\",\"type\":\"vxlan\",\"vni\":5,\"cidr\":\"10.1.0.0/24\"}", &n);
    assert_int_equal(auto_vni(f, "a", "10.2.0.0/24"), 4096);
    assert_int_equal(auto_vni(f, "b", "10.3.0.0/24"), 4097);
    net_ok(f, NULL, "{\"name\":\"given\",\"type\":\"vxlan\",\"vni\":4098,\"cidr\":\"10.4.0.0/24\"}",
           &n);
    assert_int_equal(auto_vni(f, "c", "10.5.0.0/24"), 4099);
    /* A freed VNI is taken again, the lowest first. */
    Network a;
    assert_int_equal(network_store_get(f->s, NULL, "a", &a, &err), 0);
    assert_int_equal(network_store_delete(f->s, NULL, a.id, &err), 0);
    assert_int_equal(auto_vni(f, "d", "10.6.0.0/24"), 4096);
    assert_int_equal(auto_vni(f, "e", "10.7.0.0/24"), 4100);
    /* A taken VNI given explicitly is refused. */
    assert_int_equal(add_network(f, NULL,
                                 "{\"name\":\"dup\",\"type\":\"vxlan\",\"vni\":4097,"
                                 "\"cidr\":\"10.8.0.0/24\"}",
                                 &n, &err),
                     -1);
    expect_code(&err, NB_ERR_NETWORK_INVALID_VNI);
}

static void
test_overlap_rules(void **state)
{
    Fixture *f = *state;
    NbError *err = NULL;
    Project p1, p2;
    make_project(f, "one", &p1);
    make_project(f, "two", &p2);
    Network n;
    net_ok(f, p1.id, "{\"name\":\"a\",\"cidr\":\"10.10.0.0/24\"}", &n);
    net_ok(f, p1.id, "{\"name\":\"ov\",\"type\":\"vxlan\",\"vni\":100,\"cidr\":\"10.20.0.0/16\"}",
           &n);
    /* Same project, any type. */
    const char *same[] = {
        "{\"name\":\"b\",\"cidr\":\"10.10.0.0/25\"}",
        "{\"name\":\"b\",\"type\":\"isolated\",\"cidr\":\"10.0.0.0/8\"}",
        "{\"name\":\"b\",\"type\":\"vxlan\",\"vni\":7,\"cidr\":\"10.10.0.128/25\"}",
        "{\"name\":\"b\",\"cidr\":\"10.20.5.0/24\"}", /* inside its vxlan network */
    };
    for (size_t i = 0; i < sizeof(same) / sizeof(same[0]); i++) {
        assert_int_equal(add_network(f, p1.id, same[i], &n, &err), -1);
        expect_code(&err, NB_ERR_NETWORK_CIDR_OVERLAP);
    }
    /* Across projects: nat and isolated must not overlap each other. */
    assert_int_equal(add_network(f, p2.id, "{\"name\":\"a\",\"cidr\":\"10.10.0.0/24\"}", &n, &err),
                     -1);
    expect_code(&err, NB_ERR_NETWORK_CIDR_OVERLAP);
    assert_int_equal(add_network(f, p2.id,
                                 "{\"name\":\"a\",\"type\":\"isolated\",\"cidr\":\"10.10.0.0/16\"}",
                                 &n, &err),
                     -1);
    expect_code(&err, NB_ERR_NETWORK_CIDR_OVERLAP);
    /* ... but a vxlan network of another project may reuse the range, and a nat network may
     * take another project's vxlan range. */
    net_ok(f, p2.id, "{\"name\":\"ov\",\"type\":\"vxlan\",\"vni\":200,\"cidr\":\"10.10.0.0/24\"}",
           &n);
    net_ok(f, p2.id, "{\"name\":\"nat\",\"cidr\":\"10.20.0.0/24\"}", &n);
    /* Adjacent ranges are fine. */
    net_ok(f, p1.id, "{\"name\":\"next\",\"cidr\":\"10.10.1.0/24\"}", &n);
    /* Names are per project; a VNI is global. */
    assert_int_equal(add_network(f, p1.id, "{\"name\":\"a\",\"cidr\":\"10.30.0.0/24\"}", &n, &err),
                     -1);
    expect_code(&err, NB_ERR_NAME_TAKEN);
    assert_int_equal(add_network(f, p2.id,
                                 "{\"name\":\"ov2\",\"type\":\"vxlan\",\"vni\":100,"
                                 "\"cidr\":\"10.40.0.0/24\"}",
                                 &n, &err),
                     -1);
    expect_code(&err, NB_ERR_NETWORK_INVALID_VNI);
    assert_int_equal(count_rows(f, "SELECT count(*) FROM networks"), 5);
}

static void
test_scoping(void **state)
{
    Fixture *f = *state;
    NbError *err = NULL;
    Project p1, p2;
    make_project(f, "one", &p1);
    make_project(f, "two", &p2);
    Network mine, theirs, shared, got, shadow;
    net_ok(f, p1.id, "{\"name\":\"app\",\"cidr\":\"10.10.0.0/24\"}", &mine);
    net_ok(f, p2.id, "{\"name\":\"secret\",\"cidr\":\"10.11.0.0/24\"}", &theirs);
    net_ok(f, NB_DEFAULT_PROJECT_ID,
           "{\"name\":\"ext\",\"type\":\"bridged\",\"bridge\":\"br0\",\"cidr\":\"192.0.2.0/24\","
           "\"shared\":true}",
           &shared);
    /* p1's own network named like the shared one wins for p1. */
    net_ok(f, p1.id, "{\"name\":\"ext\",\"type\":\"isolated\",\"cidr\":\"10.12.0.0/24\"}", &shadow);

    assert_int_equal(network_store_get(f->s, p1.id, theirs.id, &got, &err), -1);
    expect_code(&err, NB_ERR_NETWORK_NOT_FOUND);
    assert_int_equal(network_store_get(f->s, p1.id, "secret", &got, &err), -1);
    expect_code(&err, NB_ERR_NETWORK_NOT_FOUND);
    assert_int_equal(network_store_get(f->s, NULL, "secret", &got, &err), 0);
    assert_string_equal(got.id, theirs.id);
    assert_int_equal(network_store_get(f->s, p1.id, "app", &got, &err), 0);
    assert_string_equal(got.id, mine.id);
    assert_int_equal(got.net, IP(10, 10, 0, 0));
    assert_int_equal(got.gateway, IP(10, 10, 0, 1));
    assert_true(got.dhcp);
    assert_int_equal(got.mtu, 1500);
    char br[NETWORK_IFNAME_MAX + 1];
    network_bridge_name(mine.id, br);
    assert_string_equal(got.bridge, br);
    assert_int_equal(network_store_get(f->s, p1.id, "ext", &got, &err), 0);
    assert_string_equal(got.id, shadow.id);
    assert_int_equal(network_store_get(f->s, p2.id, "ext", &got, &err), 0);
    assert_string_equal(got.id, shared.id);
    assert_string_equal(got.bridge, "br0");
    assert_true(got.shared);
    assert_int_equal(network_store_get(f->s, p2.id, shared.id, &got, &err), 0);
    Network *list = NULL;
    size_t n = 0;
    assert_int_equal(network_store_list(f->s, p2.id, &list, &n, &err), 0);
    assert_int_equal(n, 2); /* ext (shared), secret */
    assert_string_equal(list[0].name, "ext");
    assert_string_equal(list[1].name, "secret");
    network_list_free(list, n);
    assert_int_equal(network_store_list(f->s, NULL, &list, &n, &err), 0);
    assert_int_equal(n, 4);
    network_list_free(list, n);

    /* A VM cannot have a port on another project's network; it may on a shared one. */
    Vm vm;
    Task t;
    Port p[1];
    uint32_t ips[1] = {0};
    assert_int_equal(vm_with_ports(f, "web1", p1.id, &theirs, ips, 1, &vm, &t, p, &err), -1);
    expect_code(&err, NB_ERR_NETWORK_NOT_FOUND);
    assert_int_equal(vm_with_ports(f, "web1", p1.id, &shared, ips, 1, &vm, &t, p, &err), 0);
    assert_string_equal(p[0].project, p1.id);
    /* Ports are seen by their VM's project, not the network's. */
    Port *ports = NULL;
    assert_int_equal(port_store_list(f->s, p1.id, shared.id, &ports, &n, &err), 0);
    assert_int_equal(n, 1);
    port_list_free(ports, n);
    assert_int_equal(port_store_list(f->s, NB_DEFAULT_PROJECT_ID, shared.id, &ports, &n, &err), 0);
    assert_int_equal(n, 0);
    port_list_free(ports, n);
    assert_int_equal(port_store_list(f->s, p1.id, NULL, &ports, &n, &err), 0);
    assert_int_equal(n, 1);
    port_list_free(ports, n);
    assert_int_equal(port_store_list(f->s, p2.id, NULL, &ports, &n, &err), 0);
    assert_int_equal(n, 0);
    port_list_free(ports, n);
    assert_int_equal(port_store_list(f->s, NULL, NULL, &ports, &n, &err), 0);
    assert_int_equal(n, 1);
    port_list_free(ports, n);

    /* Delete: not another project's (shared or not), never while ports use it. */
    assert_int_equal(network_store_delete(f->s, p1.id, theirs.id, &err), -1);
    expect_code(&err, NB_ERR_NETWORK_NOT_FOUND);
    assert_int_equal(network_store_delete(f->s, p1.id, shared.id, &err), -1);
    expect_code(&err, NB_ERR_NETWORK_NOT_FOUND);
    assert_int_equal(network_store_delete(f->s, NULL, shared.id, &err), -1);
    expect_code(&err, NB_ERR_NETWORK_IN_USE);
    delete_vm(f, &vm);
    assert_int_equal(network_store_delete(f->s, NULL, shared.id, &err), 0);
    assert_int_equal(network_store_delete(f->s, p2.id, theirs.id, &err), 0);
    assert_int_equal(network_store_get(f->s, NULL, theirs.id, &got, &err), -1);
    expect_code(&err, NB_ERR_NETWORK_NOT_FOUND);
    assert_int_equal(network_store_delete(f->s, p2.id, theirs.id, &err), -1);
    expect_code(&err, NB_ERR_NETWORK_NOT_FOUND);
}

static void
test_quotas(void **state)
{
    Fixture *f = *state;
    NbError *err = NULL;
    Project p;
    make_project(f, "small", &p);
    p.quota.limit[QUOTA_NETWORKS] = 1;
    p.quota.limit[QUOTA_PORTS] = 3;
    assert_int_equal(project_store_set_quota(f->s, p.id, &p.quota, &err), 0);
    Network n, m;
    net_ok(f, p.id, "{\"name\":\"a\",\"cidr\":\"10.10.0.0/24\"}", &n);
    assert_int_equal(add_network(f, p.id, "{\"name\":\"b\",\"cidr\":\"10.11.0.0/24\"}", &m, &err),
                     -1);
    expect_code(&err, NB_ERR_QUOTA_EXCEEDED);
    assert_int_equal(network_store_ensure_default(f->s, p.id, POOL, 16, &m, &err), -1);
    expect_code(&err, NB_ERR_QUOTA_EXCEEDED);
    Vm vm, vm2;
    Task t;
    Port ports[4];
    uint32_t ips[4] = {0};
    assert_int_equal(vm_with_ports(f, "a", p.id, &n, ips, 4, &vm, &t, ports, &err), -1);
    expect_code(&err, NB_ERR_QUOTA_EXCEEDED);
    assert_int_equal(vm_with_ports(f, "a", p.id, &n, ips, 2, &vm, &t, ports, &err), 0);
    Port hot;
    make_port(f, &n, 0, 0, &hot);
    snprintf(hot.vm_id, sizeof(hot.vm_id), "%s", vm.id);
    assert_int_equal(port_store_add(f->s, &hot, &err), 0);
    make_port(f, &n, 0, 0, &hot);
    snprintf(hot.vm_id, sizeof(hot.vm_id), "%s", vm.id);
    assert_int_equal(port_store_add(f->s, &hot, &err), -1);
    expect_code(&err, NB_ERR_QUOTA_EXCEEDED);
    assert_int_equal(vm_with_ports(f, "b", p.id, &n, ips, 1, &vm2, &t, ports, &err), -1);
    expect_code(&err, NB_ERR_QUOTA_EXCEEDED);
    int64_t in_use[_QUOTA_MAX];
    assert_int_equal(project_store_quota_usage(f->s, p.id, in_use, &err), 0);
    assert_int_equal(in_use[QUOTA_NETWORKS], 1);
    assert_int_equal(in_use[QUOTA_PORTS], 3);
    assert_int_equal(in_use[QUOTA_VMS], 1);
}

static void
test_hot_plug(void **state)
{
    Fixture *f = *state;
    NbError *err = NULL;
    Network n, other;
    net_ok(f, NULL, "{\"name\":\"app\",\"cidr\":\"10.10.0.0/24\"}", &n);
    Project p2;
    make_project(f, "two", &p2);
    net_ok(f, p2.id, "{\"name\":\"theirs\",\"cidr\":\"10.11.0.0/24\"}", &other);
    Vm vm;
    Task t;
    Port ports[3];
    uint32_t ips[3] = {0, 0, 0};
    assert_int_equal(vm_with_ports(f, "web1", NULL, &n, ips, 3, &vm, &t, ports, &err), 0);
    /* Unplug the middle NIC: the next plug takes its slot. */
    assert_int_equal(port_store_delete(f->s, ports[1].id, &err), 0);
    assert_int_equal(port_store_delete(f->s, ports[1].id, &err), -1);
    expect_code(&err, NB_ERR_PORT_NOT_FOUND);
    Port hot;
    make_port(f, &n, 7, 0, &hot);
    snprintf(hot.vm_id, sizeof(hot.vm_id), "%s", vm.id);
    /* Upper case MAC in, lower case stored. */
    hot.mac[0] = '5';
    hot.mac[15] = 'A';
    assert_int_equal(port_store_add(f->s, &hot, &err), 0);
    assert_int_equal(hot.slot, 1);
    assert_int_equal(hot.ip, IP(10, 10, 0, 5)); /* above the highest, not the one just freed */
    assert_string_equal(hot.project, NB_DEFAULT_PROJECT_ID);
    Port got;
    char upper[NB_MAC_STRLEN];
    snprintf(upper, sizeof(upper), "%s", hot.mac);
    for (char *c = upper; *c; c++)
        if (*c >= 'a' && *c <= 'f')
            *c = (char)(*c - 'a' + 'A');
    assert_int_equal(port_store_get_by_mac(f->s, vm.id, upper, &got, &err), 0);
    assert_string_equal(got.id, hot.id);
    assert_int_equal(port_store_get_by_mac(f->s, "another-vm", hot.mac, &got, &err), -1);
    expect_code(&err, NB_ERR_PORT_NOT_FOUND);
    /* Explicit address taken, another project's network, an unknown VM. */
    make_port(f, &n, 0, IP(10, 10, 0, 2), &hot);
    snprintf(hot.vm_id, sizeof(hot.vm_id), "%s", vm.id);
    assert_int_equal(port_store_add(f->s, &hot, &err), -1);
    expect_code(&err, NB_ERR_IP_IN_USE);
    make_port(f, &other, 0, 0, &hot);
    snprintf(hot.vm_id, sizeof(hot.vm_id), "%s", vm.id);
    assert_int_equal(port_store_add(f->s, &hot, &err), -1);
    expect_code(&err, NB_ERR_NETWORK_NOT_FOUND);
    make_port(f, &n, 0, 0, &hot);
    snprintf(hot.vm_id, sizeof(hot.vm_id), "no-such-vm");
    assert_int_equal(port_store_add(f->s, &hot, &err), -1);
    expect_code(&err, NB_ERR_VM_NOT_FOUND);
    /* Up to VM_NICS_MAX. */
    for (int i = 3; i < VM_NICS_MAX; i++) {
        make_port(f, &n, 0, 0, &hot);
        snprintf(hot.vm_id, sizeof(hot.vm_id), "%s", vm.id);
        assert_int_equal(port_store_add(f->s, &hot, &err), 0);
        assert_int_equal(hot.slot, i);
    }
    make_port(f, &n, 0, 0, &hot);
    snprintf(hot.vm_id, sizeof(hot.vm_id), "%s", vm.id);
    assert_int_equal(port_store_add(f->s, &hot, &err), -1);
    expect_code(&err, NB_ERR_TOO_MANY_NICS);
    Port *list = NULL;
    size_t count = 0;
    assert_int_equal(port_store_list_by_vm(f->s, vm.id, &list, &count, &err), 0);
    assert_int_equal(count, VM_NICS_MAX);
    port_list_free(list, count);
    /* All of them go with the VM. */
    delete_vm(f, &vm);
    assert_int_equal(count_rows(f, "SELECT count(*) FROM ports"), 0);
}

static void
test_default_network(void **state)
{
    Fixture *f = *state;
    NbError *err = NULL;
    Project p1, p2, p3;
    make_project(f, "one", &p1);
    make_project(f, "two", &p2);
    make_project(f, "three", &p3);
    Network d1, again, d2, n, d3;
    assert_int_equal(network_store_ensure_default(f->s, p1.id, POOL, 16, &d1, &err), 0);
    assert_string_equal(d1.name, "default");
    assert_int_equal(d1.type, NETWORK_TYPE_NAT);
    assert_int_equal(d1.net, IP(10, 200, 0, 0));
    assert_int_equal(d1.prefix, 24);
    assert_int_equal(d1.gateway, IP(10, 200, 0, 1));
    assert_true(d1.dhcp);
    assert_true(d1.is_default);
    assert_int_equal(d1.mtu, 1500);
    assert_string_equal(d1.project, p1.id);
    assert_int_equal(network_store_ensure_default(f->s, p1.id, POOL, 16, &again, &err), 0);
    assert_string_equal(again.id, d1.id);
    assert_string_equal(again.bridge, d1.bridge);
    /* p2 has a network named "default" and one in 10.200.1.0/24; another project's nat network
     * holds 10.200.2.0/24; a vxlan network of a third project does not count. */
    net_ok(f, p2.id,
           "{\"name\":\"default\",\"type\":\"vxlan\",\"vni\":9,\"cidr\":\"10.200.1.0/24\"}", &n);
    net_ok(f, p3.id, "{\"name\":\"x\",\"cidr\":\"10.200.2.0/24\"}", &n);
    net_ok(f, p3.id, "{\"name\":\"y\",\"type\":\"vxlan\",\"vni\":10,\"cidr\":\"10.200.3.0/24\"}",
           &n);
    assert_int_equal(network_store_ensure_default(f->s, p2.id, POOL, 16, &d2, &err), 0);
    assert_string_equal(d2.name, "default-2");
    assert_int_equal(d2.net, IP(10, 200, 3, 0));
    assert_int_equal(network_store_get(f->s, p2.id, "default-2", &n, &err), 0);
    assert_true(n.is_default);
    /* A pool of one /24, taken: NETWORK_FULL. */
    assert_int_equal(network_store_ensure_default(f->s, p3.id, IP(10, 200, 0, 0), 24, &d3, &err),
                     -1);
    expect_code(&err, NB_ERR_NETWORK_FULL);
    assert_int_equal(network_store_ensure_default(f->s, p3.id, IP(10, 200, 0, 0), 28, &d3, &err),
                     -1);
    expect_code(&err, NB_ERR_INTERNAL);
    /* Deleted, it is made again. */
    assert_int_equal(network_store_delete(f->s, p1.id, d1.id, &err), 0);
    assert_int_equal(network_store_ensure_default(f->s, p1.id, POOL, 16, &again, &err), 0);
    assert_string_not_equal(again.id, d1.id);
    assert_int_equal(again.net, IP(10, 200, 0, 0));
    /* A project with a network (even its default one) is not empty. */
    assert_int_equal(project_store_delete(f->s, p1.id, &err), -1);
    expect_code(&err, NB_ERR_PROJECT_NOT_EMPTY);
    assert_int_equal(network_store_delete(f->s, p1.id, again.id, &err), 0);
    assert_int_equal(project_store_delete(f->s, p1.id, &err), 0);
}

typedef struct Racer {
    Fixture *f;
    const char *project;
    Network got;
    int rc;
    pthread_barrier_t *go;
} Racer;

static void *
race_default(void *arg)
{
    Racer *r = arg;
    NbError *err = NULL;
    pthread_barrier_wait(r->go);
    r->rc = network_store_ensure_default(r->f->s, r->project, POOL, 16, &r->got, &err);
    nb_error_free(err);
    return NULL;
}

static void
test_default_concurrent(void **state)
{
    Fixture *f = *state;
    enum { THREADS = 4, ROUNDS = 20 };
    for (int round = 0; round < ROUNDS; round++) {
        Project p;
        char name[16];
        snprintf(name, sizeof(name), "p%d", round);
        make_project(f, name, &p);
        pthread_barrier_t go;
        pthread_barrier_init(&go, NULL, THREADS);
        Racer r[THREADS];
        pthread_t th[THREADS];
        for (int i = 0; i < THREADS; i++) {
            r[i] = (Racer){.f = f, .project = p.id, .go = &go};
            assert_int_equal(pthread_create(&th[i], NULL, race_default, &r[i]), 0);
        }
        for (int i = 0; i < THREADS; i++) {
            assert_int_equal(pthread_join(th[i], NULL), 0);
            assert_int_equal(r[i].rc, 0);
            assert_string_equal(r[i].got.id, r[0].got.id);
        }
        pthread_barrier_destroy(&go);
    }
    /* One default network a project, each its own /24. */
    assert_int_equal(count_rows(f, "SELECT count(*) FROM networks"), ROUNDS);
    assert_int_equal(count_rows(f, "SELECT count(DISTINCT net) FROM networks"), ROUNDS);
}

typedef struct Allocator {
    Fixture *f;
    const Network *n;
    int index;
    int failures;
    pthread_barrier_t *go;
} Allocator;

enum { ALLOC_THREADS = 8, ALLOC_EACH = 25 };

static void *
allocate_ports(void *arg)
{
    Allocator *a = arg;
    pthread_barrier_wait(a->go);
    for (int i = 0; i < ALLOC_EACH; i++) {
        NbError *err = NULL;
        Vm vm;
        Task t;
        Port p;
        int k = a->index * ALLOC_EACH + i;
        memset(&vm, 0, sizeof(vm));
        nb_uuid_generate(vm.id);
        snprintf(vm.name, sizeof(vm.name), "vm%03d", k);
        snprintf(vm.hostname, sizeof(vm.hostname), "vm%03d", k);
        snprintf(vm.host, sizeof(vm.host), "local");
        snprintf(vm.project, sizeof(vm.project), NB_DEFAULT_PROJECT_ID);
        snprintf(vm.mac, sizeof(vm.mac), "52:54:00:03:%02x:%02x", k >> 8, k & 0xff);
        memcpy(vm.image_id, a->f->image.id, sizeof(vm.image_id));
        memcpy(vm.flavor_id, a->f->flavor.id, sizeof(vm.flavor_id));
        vm.vcpus = 1;
        vm.ram_mib = 64;
        vm.disk_gib = 1;
        nb_timestamp_now(vm.created_at);
        memcpy(vm.updated_at, vm.created_at, sizeof(vm.updated_at));
        make_task(&t, TASK_KIND_VM_CREATE, vm.id);
        memcpy(vm.task_id, t.id, sizeof(vm.task_id));
        memset(&p, 0, sizeof(p));
        snprintf(p.network_id, sizeof(p.network_id), "%s", a->n->id);
        memcpy(p.mac, vm.mac, sizeof(p.mac));
        /* Half through the create, half hot-plugged onto a VM made without a port. */
        int rc;
        if (i % 2 == 0) {
            rc = vm_store_insert_with_task(a->f->s, &vm, &t, &p, 1, NULL, &err);
        } else {
            rc = vm_store_insert_with_task(a->f->s, &vm, &t, NULL, 0, NULL, &err);
            memcpy(p.vm_id, vm.id, sizeof(p.vm_id));
            if (rc == 0)
                rc = port_store_add(a->f->s, &p, &err);
        }
        if (rc < 0) {
            a->failures++;
            nb_error_free(err);
        }
    }
    return NULL;
}

static void
test_concurrent_allocation(void **state)
{
    Fixture *f = *state;
    NbError *err = NULL;
    Network n;
    net_ok(f, NULL, "{\"name\":\"busy\",\"cidr\":\"10.50.0.0/24\"}", &n);
    pthread_barrier_t go;
    pthread_barrier_init(&go, NULL, ALLOC_THREADS);
    Allocator a[ALLOC_THREADS];
    pthread_t th[ALLOC_THREADS];
    for (int i = 0; i < ALLOC_THREADS; i++) {
        a[i] = (Allocator){.f = f, .n = &n, .index = i, .go = &go};
        assert_int_equal(pthread_create(&th[i], NULL, allocate_ports, &a[i]), 0);
    }
    for (int i = 0; i < ALLOC_THREADS; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        assert_int_equal(a[i].failures, 0);
    }
    pthread_barrier_destroy(&go);
    Port *ports = NULL;
    size_t count = 0;
    assert_int_equal(port_store_list(f->s, NULL, n.id, &ports, &count, &err), 0);
    assert_int_equal(count, ALLOC_THREADS * ALLOC_EACH);
    /* 200 distinct addresses, and no gap: exactly .2 to .201. */
    for (size_t i = 0; i < count; i++)
        assert_int_equal(ports[i].ip, IP(10, 50, 0, 2) + i);
    port_list_free(ports, count);
}

static void
test_network_hosts(void **state)
{
    Fixture *f = *state;
    NbError *err = NULL;
    Network n;
    net_ok(f, NULL, "{\"name\":\"app\",\"cidr\":\"10.10.0.0/24\"}", &n);
    char **hosts = NULL;
    assert_int_equal(network_store_hosts(f->s, n.id, &hosts, &err), 0);
    assert_null(hosts[0]);
    store_strv_free(hosts);
    assert_int_equal(network_store_host_add(f->s, n.id, "node-b", &err), 0);
    assert_int_equal(network_store_host_add(f->s, n.id, "node-a", &err), 0);
    assert_int_equal(network_store_host_add(f->s, n.id, "node-a", &err), 0); /* again: no-op */
    assert_int_equal(network_store_host_add(f->s, "no-such-network", "node-a", &err), -1);
    expect_code(&err, NB_ERR_NETWORK_NOT_FOUND);
    assert_int_equal(network_store_hosts(f->s, n.id, &hosts, &err), 0);
    assert_string_equal(hosts[0], "node-a");
    assert_string_equal(hosts[1], "node-b");
    assert_null(hosts[2]);
    store_strv_free(hosts);
    assert_int_equal(network_store_host_remove(f->s, n.id, "node-b", &err), 0);
    assert_int_equal(network_store_host_remove(f->s, n.id, "node-b", &err), 0);
    assert_int_equal(network_store_hosts(f->s, n.id, &hosts, &err), 0);
    assert_string_equal(hosts[0], "node-a");
    assert_null(hosts[1]);
    store_strv_free(hosts);
    /* ... and with a host that is removed. */
    Host h;
    insert_host(f, &h, "node-c", "qemu+ssh://node-c/system");
    assert_int_equal(network_store_host_add(f->s, n.id, "node-c", &err), 0);
    assert_int_equal(host_store_delete(f->s, h.id, &err), 0);
    assert_int_equal(network_store_hosts(f->s, n.id, &hosts, &err), 0);
    assert_string_equal(hosts[0], "node-a");
    assert_null(hosts[1]);
    store_strv_free(hosts);
    /* The records go with the network. */
    assert_int_equal(network_store_delete(f->s, NULL, n.id, &err), 0);
    assert_int_equal(count_rows(f, "SELECT count(*) FROM network_hosts"), 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_allocation_order, setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_explicit_ip_errors, setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_network_fills, setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_reuse_after_delete, setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_network_used_on_host, setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_mac_rules, setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_overlap_rules, setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_vni_allocation, setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_scoping, setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_quotas, setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_hot_plug, setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_default_network, setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_default_concurrent, setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_allocation, setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_network_hosts, setup, fixture_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
