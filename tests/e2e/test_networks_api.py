"""Tenant networks, ports and NICs through the API (issue 9; docs/api/openapi.yaml "networks"):
create/list/show/delete, every malformed create refused with its stable code and nothing made,
scoping between two projects, a shared network seen by another project, admin-only fields,
DHCP asked for on vxlan, bridged and vlan networks answered 501 (vxlan itself: test_vxlan.py;
bridged and vlan networks with VMs: test_provider_networks.py). Own nimbusd for
the module.

The tests in section 4 ("VM-related") need core's network work (vm create with `networks`, the
default network, nic add/remove tasks): they create VMs. Networks here use 10.173.0.0/16 and the
daemon's default pool 10.174.0.0/16, away from other test files' networks on the same libvirtd.
"""

import json
import secrets
import subprocess
import urllib.parse

import pytest

import nimbus_fixtures as nf

NO_SUCH_ID = "0badc0de-0000-4000-8000-000000000000"
POOL = "10.174.0.0/16"


class T:
    """Everything the module's tests share."""


def q(s):
    return urllib.parse.quote(s, safe="")


@pytest.fixture(scope="module")
def net(make_env):
    env = make_env("networks")
    t = T()
    # the design's default pool (10.200.0.0/16) is every test daemon's: ours keeps apart when
    # nimbusd lets it
    help_text = subprocess.run([nf.NIMBUSD, "--help"], capture_output=True, text=True).stdout
    t.pool_prefix = "10.200."
    if "--default-network-pool" in help_text:
        env.daemon.extra_args = ["--default-network-pool", POOL]
        t.pool_prefix = "10.174."
    env.daemon.start()
    t.env, t.admin = env, env.api
    t.pa = t.admin.ok("POST", "/v1/projects", {"name": "net-a"}, expect=201)
    t.pb = t.admin.ok("POST", "/v1/projects", {"name": "net-b"}, expect=201)
    t.apis = {}
    for name, proj, role in (("na-member", "net-a", "member"), ("nb-member", "net-b", "member"),
                             ("na-reader", "net-a", "reader")):
        _, t.apis[name], _ = nf.make_user(t.admin, name, "pw-" + secrets.token_hex(10), proj, role)
    t.am, t.bm, t.ar = t.apis["na-member"], t.apis["nb-member"], t.apis["na-reader"]
    # A's "app" (nat), B's "app" (same name, other project), the admin's shared "pub"
    t.app = t.am.ok("POST", "/v1/networks", {"name": "app", "cidr": "10.173.1.0/24",
                                             "dns": ["1.1.1.1"], "mtu": 1400}, expect=201)
    t.b_app = t.bm.ok("POST", "/v1/networks", {"name": "app", "type": "isolated",
                                               "cidr": "10.173.3.0/24"}, expect=201)
    t.pub = t.admin.ok("POST", "/v1/networks", {"name": "pub", "cidr": "10.173.4.0/24",
                                                "shared": True}, expect=201)
    yield t
    # VMs first (their ports hold the networks), then every network, so that core removes the
    # libvirt networks it made; then whatever is left of them, by name.
    nf.delete_all_vms(env)
    ids = set()
    try:
        for n in t.admin.get("/v1/networks")["networks"]:
            ids.add(n["id"])
            t.admin.request("DELETE", f"/v1/networks/{n['id']}")
    except Exception as e:  # noqa: BLE001 - the libvirt sweep below still runs
        print(f"network teardown: {e}")
    ids |= getattr(t, "seen_network_ids", set())
    for i in ids:
        nf.virsh("net-destroy", f"nimbus-net-{i}", check=False)
        nf.virsh("net-undefine", f"nimbus-net-{i}", check=False)
    env.teardown()


def network_ids(t):
    """Every network of every project (the admin's list)."""
    return sorted(n["id"] for n in t.admin.get("/v1/networks")["networks"])


def names(api):
    return sorted(n["name"] for n in api.get("/v1/networks")["networks"])


# ---------------------------------------------------------------------------------------------
# 1. create, list, show, delete


def test_create_answers_the_network(net):
    t = net
    a = t.app
    assert nf.UUID_RE.fullmatch(a["id"]), a
    expect = {"project": t.pa["id"], "name": "app", "type": "nat", "cidr": "10.173.1.0/24",
              "gateway": "10.173.1.1", "dhcp": True, "dns": ["1.1.1.1"], "mtu": 1400,
              "shared": False, "default": False}
    assert {k: a.get(k) for k in expect} == expect, a
    assert a["created_at"].endswith("Z"), a
    for k in ("vni", "vlan", "parent"):
        assert a.get(k) is None, f"{k} on a nat network: {a}"
    # defaults: type nat, gateway the first address, dhcp on, mtu 1500, no dns
    b = t.b_app
    assert (b["type"], b["gateway"], b["dhcp"], b["mtu"], b["dns"], b["project"]) == \
        ("isolated", "10.173.3.1", True, 1500, [], t.pb["id"]), b
    assert t.pub["shared"] is True and t.pub["project"] != t.pa["id"], t.pub


def test_list_and_show_by_id_and_name(net):
    t = net
    listed = {n["id"]: n for n in t.am.get("/v1/networks")["networks"]}
    assert t.app["id"] in listed and listed[t.app["id"]] == t.app, listed
    assert t.b_app["id"] not in listed, f"A lists B's network: {listed}"
    assert t.am.get(f"/v1/networks/{t.app['id']}") == t.app
    assert t.am.get("/v1/networks/app") == t.app
    assert t.bm.get("/v1/networks/app") == t.b_app, "B's 'app' by name is B's own"
    assert t.ar.get("/v1/networks/app") == t.app, "a reader reads its project's networks"
    all_ids = set(network_ids(t))
    assert {t.app["id"], t.b_app["id"], t.pub["id"]} <= all_ids, "the admin lists every project's"
    r = t.am.request("GET", f"/v1/networks/{NO_SUCH_ID}")
    assert (r.status, r.code) == (404, "NETWORK_NOT_FOUND"), r
    r = t.am.request("GET", "/v1/networks/no-such-net")
    assert (r.status, r.code) == (404, "NETWORK_NOT_FOUND"), r


def test_delete(net):
    t = net
    n = t.am.ok("POST", "/v1/networks", {"name": "tmp", "type": "isolated", "dhcp": False,
                                         "gateway": "none", "cidr": "10.173.9.0/28"}, expect=201)
    assert n["gateway"] is None and n["dhcp"] is False, n
    assert "tmp" in names(t.am)
    assert t.am.request("DELETE", "/v1/networks/tmp").status == 204
    r = t.am.request("GET", f"/v1/networks/{n['id']}")
    assert (r.status, r.code) == (404, "NETWORK_NOT_FOUND"), r
    assert "tmp" not in names(t.am)
    r = t.am.request("DELETE", f"/v1/networks/{n['id']}")
    assert (r.status, r.code) == (404, "NETWORK_NOT_FOUND"), r
    # the CIDR is free again, by id this time
    n = t.am.ok("POST", "/v1/networks", {"name": "tmp", "cidr": "10.173.9.0/28"}, expect=201)
    assert t.am.request("DELETE", f"/v1/networks/{n['id']}").status == 204
    ev = [e for e in nf.audit_events(t.admin, limit=1000) if e["action"].startswith("network.")]
    assert {"network.create", "network.delete"} <= {e["action"] for e in ev}, ev


# ---------------------------------------------------------------------------------------------
# 2. bad input: stable code, nothing created


def base(**kw):
    body = {"name": "bad", "cidr": "10.173.20.0/24"}
    body.update(kw)
    return {k: v for k, v in body.items() if v is not None}


BAD = [
    # (id, body, status, code): as A's member
    ("prefix-7", base(cidr="10.0.0.0/7"), 400, "NETWORK_INVALID_CIDR"),
    ("prefix-31", base(cidr="10.173.20.0/31"), 400, "NETWORK_INVALID_CIDR"),
    ("prefix-32", base(cidr="10.173.20.0/32"), 400, "NETWORK_INVALID_CIDR"),
    ("prefix-33", base(cidr="10.173.20.0/33"), 400, "NETWORK_INVALID_CIDR"),
    ("host-bits", base(cidr="10.173.20.1/24"), 400, "NETWORK_INVALID_CIDR"),
    ("no-prefix", base(cidr="10.173.20.0"), 400, "NETWORK_INVALID_CIDR"),
    ("octet-256", base(cidr="10.173.256.0/24"), 400, "NETWORK_INVALID_CIDR"),
    ("leading-zero", base(cidr="10.173.020.0/24"), 400, "NETWORK_INVALID_CIDR"),
    ("trailing", base(cidr="10.173.20.0/24x"), 400, "NETWORK_INVALID_CIDR"),
    ("empty-cidr", base(cidr=""), 400, "INVALID_REQUEST"),
    ("gw-outside", base(gateway="10.173.21.1"), 400, "NETWORK_INVALID_GATEWAY"),
    ("gw-network", base(gateway="10.173.20.0"), 400, "NETWORK_INVALID_GATEWAY"),
    ("gw-broadcast", base(gateway="10.173.20.255"), 400, "NETWORK_INVALID_GATEWAY"),
    ("gw-garbage", base(gateway="10.173.20"), 400, "NETWORK_INVALID_GATEWAY"),
    ("gw-none-nat", base(gateway="none"), 400, "NETWORK_INVALID_GATEWAY"),
    ("gw-none-dhcp", base(type="isolated", gateway="none"), 400, "NETWORK_INVALID_GATEWAY"),
    ("type", base(type="bogus"), 400, "NETWORK_INVALID_TYPE"),
    ("type-case", base(type="NAT"), 400, "NETWORK_INVALID_TYPE"),
    ("mtu-low", base(mtu=575), 400, "NETWORK_INVALID_MTU"),
    ("mtu-high", base(mtu=9001), 400, "NETWORK_INVALID_MTU"),
    # DHCP is served on vxlan networks (the agents' dnsmasq), never on a /31 or /32.
    ("vxlan-dhcp-31", base(type="vxlan", cidr="10.173.20.0/31", dhcp=True), 400,
     "NETWORK_INVALID_CIDR"),
    ("vxlan-dhcp-32", base(type="vxlan", cidr="10.173.20.0/32", dhcp=True), 400,
     "NETWORK_INVALID_CIDR"),
    ("vni-0", base(type="vxlan", vni=0), 400, "NETWORK_INVALID_VNI"),
    ("vni-high", base(type="vxlan", vni=16777216), 400, "NETWORK_INVALID_VNI"),
    ("vni-on-nat", base(vni=5), 400, "NETWORK_INVALID_VNI"),
    ("vlan-on-nat", base(vlan=5), 400, "NETWORK_INVALID_VLAN"),
    ("bridge-on-nat", base(bridge="br0"), 400, "NETWORK_INVALID_IFNAME"),
    ("parent-on-nat", base(parent="eth0"), 400, "NETWORK_INVALID_IFNAME"),
    ("name", base(name="bad name"), 400, "INVALID_NAME"),
    ("name-uuid", base(name=NO_SUCH_ID), 400, "INVALID_NAME"),
    ("no-name", {"cidr": "10.173.20.0/24"}, 400, "INVALID_REQUEST"),
    ("no-cidr", {"name": "bad"}, 400, "INVALID_REQUEST"),
    ("unknown-field", base(color="red"), 400, "INVALID_REQUEST"),
    ("dhcp-type", base(dhcp="yes"), 400, "INVALID_REQUEST"),
    ("shared-type", base(shared="no"), 400, "INVALID_REQUEST"),
    ("dns-not-list", base(dns="1.1.1.1"), 400, "INVALID_REQUEST"),
    ("dns-too-many", base(dns=["1.1.1.1", "1.0.0.1", "8.8.8.8", "8.8.4.4"]), 400,
     "INVALID_REQUEST"),
    ("name-taken", base(name="app"), 409, "NAME_TAKEN"),
    ("overlap-own", base(type="isolated", cidr="10.173.1.128/25"), 409, "NETWORK_CIDR_OVERLAP"),
    ("overlap-other-project", base(cidr="10.173.0.0/16"), 409, "NETWORK_CIDR_OVERLAP"),
    ("overlap-shared", base(cidr="10.173.4.0/23"), 409, "NETWORK_CIDR_OVERLAP"),
    ("shared-by-member", base(shared=True), 403, "FORBIDDEN"),
    ("bridged-by-member", base(type="bridged", bridge="br0"), 403, "FORBIDDEN"),
    ("vlan-by-member", base(type="vlan", vlan=10, parent="eth0"), 403, "FORBIDDEN"),
]

BAD_ADMIN = [
    ("vlan-0", base(type="vlan", vlan=0, parent="eth0"), 400, "NETWORK_INVALID_VLAN"),
    ("vlan-4095", base(type="vlan", vlan=4095, parent="eth0"), 400, "NETWORK_INVALID_VLAN"),
    ("vlan-no-id", base(type="vlan", parent="eth0"), 400, "NETWORK_INVALID_VLAN"),
    ("vlan-no-parent", base(type="vlan", vlan=10), 400, "NETWORK_INVALID_IFNAME"),
    ("parent-slash", base(type="vlan", vlan=10, parent="eth0/1"), 400, "NETWORK_INVALID_IFNAME"),
    ("bridge-16", base(type="bridged", bridge="b" * 16), 400, "NETWORK_INVALID_IFNAME"),
    ("bridge-space", base(type="bridged", bridge="br 0"), 400, "NETWORK_INVALID_IFNAME"),
    ("bridge-dash", base(type="bridged", bridge="-br0"), 400, "NETWORK_INVALID_IFNAME"),
    ("bridge-dotdot", base(type="bridged", bridge=".."), 400, "NETWORK_INVALID_IFNAME"),
    ("bridged-no-bridge", base(type="bridged"), 400, "NETWORK_INVALID_IFNAME"),
    ("vni-on-vlan", base(type="vlan", vlan=10, parent="eth0", vni=7), 400,
     "NETWORK_INVALID_VNI"),
    ("bridged-dhcp-31", base(type="bridged", bridge="br0", cidr="10.173.20.0/31", shared=True,
                             dhcp=True), 400, "NETWORK_INVALID_CIDR"),
    ("vlan-dhcp-32", base(type="vlan", vlan=10, parent="eth0", cidr="10.173.20.0/32",
                          shared=True, dhcp=True), 400, "NETWORK_INVALID_CIDR"),
]


def check_refused(t, api, cases):
    failures = []
    before = network_ids(t)
    for ident, body, status, code in cases:
        r = api.request("POST", "/v1/networks", body)
        if (r.status, r.code) != (status, code):
            failures.append(f"{ident}: POST {json.dumps(body)} -> {r.status} {r.text[:200]}, "
                            f"expected {status} {code}")
        if r.status == 201:
            t.seen_network_ids = getattr(t, "seen_network_ids", set()) | {r.json["id"]}
            api.request("DELETE", f"/v1/networks/{r.json['id']}")
        after = network_ids(t)
        if after != before:
            failures.append(f"{ident}: the network list changed: {before} -> {after}")
            before = after
    assert not failures, "\n".join(failures)


def test_bad_input_refused_by_code(net):
    check_refused(net, net.am, BAD)


def test_bad_admin_input_refused_by_code(net):
    check_refused(net, net.admin, BAD_ADMIN)


def test_roles(net):
    t = net
    before = network_ids(t)
    r = t.ar.request("POST", "/v1/networks", base())
    assert (r.status, r.code) == (403, "FORBIDDEN"), r
    r = t.ar.request("DELETE", "/v1/networks/app")
    assert (r.status, r.code) == (403, "FORBIDDEN"), r
    r = t.ar.request("POST", f"/v1/vms/{NO_SUCH_ID}/nics", {"network": "app"})
    assert (r.status, r.code) == (403, "FORBIDDEN"), r
    r = t.ar.request("DELETE", f"/v1/vms/{NO_SUCH_ID}/nics/52:54:00:00:00:01")
    assert (r.status, r.code) == (403, "FORBIDDEN"), r
    assert network_ids(t) == before


def test_malformed_mac_refused_before_core(net):
    """A malformed MAC is 400 INVALID_REQUEST even for a VM that does not exist: the API checks
    it before asking core."""
    t = net
    for mac in ("nope", "52:54:00:00:00", "52:54:00:00:00:0g", "52-54-00-00-00-01",
                "52:54:00:00:00:011", "5:254:00:00:00:01"):
        for api in (t.am, t.admin):
            r = api.request("DELETE", f"/v1/vms/{NO_SUCH_ID}/nics/{q(mac)}")
            assert (r.status, r.code) == (400, "INVALID_REQUEST"), f"{mac}: {r!r}"
    # well-formed, it reaches core (VM-related: needs network_ops_nic_remove)
    r = t.am.request("DELETE", f"/v1/vms/{NO_SUCH_ID}/nics/52:54:00:00:00:01")
    assert (r.status, r.code) == (404, "VM_NOT_FOUND"), r


def test_networks_quota(net):
    t = net
    p = t.admin.ok("POST", "/v1/projects", {"name": "net-q", "quota": {"networks": 1}},
                   expect=201)
    assert p["quota"]["networks"] == 1, p
    _, api, _ = nf.make_user(t.admin, "nq-member", "pw-" + secrets.token_hex(10), "net-q",
                             "member")
    api.ok("POST", "/v1/networks", {"name": "q1", "type": "isolated", "cidr": "10.173.7.0/24"},
           expect=201)
    before = network_ids(t)
    r = api.request("POST", "/v1/networks", {"name": "q2", "type": "isolated",
                                             "cidr": "10.173.8.0/24"})
    assert (r.status, r.code) == (403, "QUOTA_EXCEEDED"), r
    assert network_ids(t) == before
    assert api.get(f"/v1/projects/{p['id']}/quota")["in_use"]["networks"] == 1
    api.ok("DELETE", "/v1/networks/q1", expect=204)
    assert api.get(f"/v1/projects/{p['id']}/quota")["in_use"]["networks"] == 0


# ---------------------------------------------------------------------------------------------
# 3. scoping between projects, shared networks


def test_other_project_gets_not_found(net):
    t = net
    before = network_ids(t)
    failures = []
    for key in (t.app["id"],):
        for method, path in (("GET", f"/v1/networks/{key}"), ("DELETE", f"/v1/networks/{key}"),
                             ("GET", f"/v1/ports?network={key}")):
            r = t.bm.request(method, path)
            if (r.status, r.code) != (404, "NETWORK_NOT_FOUND"):
                failures.append(f"{method} {path} as B -> {r!r}")
    # by name, B reaches its own "app"; a name only A has is not found for B
    t.am.ok("POST", "/v1/networks", {"name": "a-only", "type": "isolated",
                                     "cidr": "10.173.5.0/24"}, expect=201)
    for method, path in (("GET", "/v1/networks/a-only"), ("DELETE", "/v1/networks/a-only"),
                         ("GET", "/v1/ports?network=a-only")):
        r = t.bm.request(method, path)
        if (r.status, r.code) != (404, "NETWORK_NOT_FOUND"):
            failures.append(f"{method} {path} as B -> {r!r}")
    # nat and isolated networks of all projects sit side by side on a host: no overlap
    r = t.bm.request("POST", "/v1/networks", {"name": "b-over", "cidr": "10.173.1.0/25"})
    if (r.status, r.code) != (409, "NETWORK_CIDR_OVERLAP"):
        failures.append(f"B's nat over A's -> {r!r}")
    listed = json.dumps(t.bm.get("/v1/networks"))
    for leak in (t.app["id"], "a-only", t.pa["id"]):
        if leak in listed:
            failures.append(f"B's network list shows {leak}: {listed}")
    assert t.am.request("DELETE", "/v1/networks/a-only").status == 204
    assert not failures, "\n".join(failures)
    assert network_ids(t) == before


def test_shared_network_visible_to_other_projects(net):
    t = net
    for api in (t.am, t.bm, t.ar):
        assert "pub" in names(api)
        assert api.get("/v1/networks/pub")["id"] == t.pub["id"]
        assert api.get(f"/v1/networks/{t.pub['id']}")["id"] == t.pub["id"]
        assert isinstance(api.get("/v1/ports?network=pub")["ports"], list)
    # a member may not delete it (nor a reader)
    for api in (t.bm, t.ar):
        r = api.request("DELETE", "/v1/networks/pub")
        assert (r.status, r.code) == (403, "FORBIDDEN"), r
    assert t.admin.get(f"/v1/networks/{t.pub['id']}")["shared"] is True


def test_ports_list(net):
    t = net
    for api in (t.am, t.bm, t.ar, t.admin):
        ports = api.get("/v1/ports")["ports"]
        assert isinstance(ports, list), ports
    r = t.am.request("GET", "/v1/ports?network=no-such-net")
    assert (r.status, r.code) == (404, "NETWORK_NOT_FOUND"), r
    r = t.am.request("GET", f"/v1/ports?network={NO_SUCH_ID}")
    assert (r.status, r.code) == (404, "NETWORK_NOT_FOUND"), r
    assert t.am.get("/v1/ports?network=app")["ports"] == t.am.get(
        f"/v1/ports?network={t.app['id']}")["ports"]


# ---------------------------------------------------------------------------------------------
# 4. VM-related (need core's network work: vm create with networks, nic add/remove)


@pytest.fixture(scope="module")
def vmkit(net, tiny_image):
    t = net
    t.flavor = t.admin.ok("POST", "/v1/flavors",
                          {"name": "n-small", "vcpus": 1, "ram_mib": 128, "disk_gib": 1},
                          expect=201)
    t.img = nf.upload_image_as(t.am, t.env, "img-n", tiny_image)
    t.app2 = t.am.ok("POST", "/v1/networks", {"name": "app2", "type": "isolated",
                                              "cidr": "10.173.2.0/24"}, expect=201)
    return t


def create_vm(t, api, name, **extra):
    r = api.ok("POST", "/v1/vms", {"name": name, "image": "img-n", "flavor": "n-small", **extra},
               expect=202)
    t.env.remember(r["vm"]["id"])
    api.wait_task(r["task"]["id"])
    return api.get(f"/v1/vms/{r['vm']['id']}")


def domain_macs(vm_id, inactive=False):
    """The MACs of the domain's interfaces: live, or in its persistent definition."""
    args = ["--inactive"] if inactive else []
    out = nf.virsh("domiflist", nf.vm_domain(vm_id), *args).stdout.lower()
    return {w for line in out.splitlines() for w in line.split() if w.count(":") == 5}


def test_vm_without_networks_gets_the_default_network(vmkit):
    t = vmkit
    vm = create_vm(t, t.am, "vm-d")
    try:
        nics = vm["nics"]
        assert len(nics) == 1, vm
        nic = nics[0]
        assert (nic["slot"], nic["network"]) == (0, "default"), nic
        d = t.am.get("/v1/networks/default")
        assert (d["default"], d["type"], d["dhcp"], d["project"]) == \
            (True, "nat", True, t.pa["id"]), d
        assert d["cidr"].startswith(t.pool_prefix) and d["cidr"].endswith("/24"), d
        assert nic["network_id"] == d["id"] and vm["ip"] == nic["ip"], (vm, d)
        assert nic["mac"] in domain_macs(vm["id"]), nic
        ports = t.am.get("/v1/ports?network=default")["ports"]
        assert [(p["id"], p["vm_id"], p["mac"], p["ip"]) for p in ports] == \
            [(nic["port_id"], vm["id"], nic["mac"], nic["ip"])], ports
        # the VM list is unchanged in shape: no nics per row
        assert all("nics" not in v for v in t.am.vms()), "VM list rows carry nics"
    finally:
        t.am.delete_vm(vm["id"])
    assert t.am.get("/v1/ports?network=default")["ports"] == [], "the VM's port outlived it"


def test_vm_create_with_bad_networks_creates_nothing(vmkit):
    t = vmkit
    before = (sorted(v["id"] for v in t.admin.vms()), t.admin.get("/v1/ports")["ports"])
    cases = [
        ([{"network": "no-such-net"}], 404, "NETWORK_NOT_FOUND"),
        ([{"network": t.b_app["id"]}], 404, "NETWORK_NOT_FOUND"),
        ([{"network": "app", "ip": "10.173.9.9"}], 400, "IP_OUTSIDE_NETWORK"),
        ([{"network": "app", "ip": "10.173.1.1"}], 400, "IP_OUTSIDE_NETWORK"),
        ([{"network": "app", "ip": "10.173.1.255"}], 400, "IP_OUTSIDE_NETWORK"),
        ([{"network": "app", "ip": "10.173.1.0"}], 400, "IP_OUTSIDE_NETWORK"),
        ([{"network": "app", "ip": "10.173.1"}], 400, "IP_INVALID"),
        ([{"network": "app"}] * 9, 400, "TOO_MANY_NICS"),
        ([{"network": "app", "ip": "10.173.1.9"}, {"network": "app", "ip": "10.173.1.9"}], 400,
         "INVALID_REQUEST"),
        ([{"network": "app", "color": "red"}], 400, "INVALID_REQUEST"),
        ([], 400, "INVALID_REQUEST"),
        ("app", 400, "INVALID_REQUEST"),
    ]
    failures = []
    for networks, status, code in cases:
        r = t.am.request("POST", "/v1/vms", {"name": "vm-bad", "image": "img-n",
                                             "flavor": "n-small", "networks": networks})
        if r.status == 202:
            t.env.remember(r.json["vm"]["id"])
        if (r.status, r.code) != (status, code):
            failures.append(f"networks={json.dumps(networks)} -> {r!r}, expected {status} {code}")
    after = (sorted(v["id"] for v in t.admin.vms()), t.admin.get("/v1/ports")["ports"])
    assert not failures, "\n".join(failures)
    assert after == before


def test_vm_multi_nic_hotplug_and_in_use(vmkit):
    t = vmkit
    vm = create_vm(t, t.am, "vm-m", networks=[{"network": "app"}, {"network": "pub"},
                                              {"network": "app2", "ip": "10.173.2.50"}])
    vid = vm["id"]
    nics = vm["nics"]
    assert [(n["slot"], n["network"], n["ip"]) for n in nics] == \
        [(0, "app", "10.173.1.2"), (1, "pub", "10.173.4.2"), (2, "app2", "10.173.2.50")], nics
    assert vm["ip"] == "10.173.1.2", vm
    assert {n["mac"] for n in nics} <= domain_macs(vid), (nics, domain_macs(vid))
    assert nf.virsh("net-info", f"nimbus-net-{t.app['id']}", check=False).returncode == 0, \
        "the nat network was not made on the VM's host"

    # in use: neither the own network nor the shared one can go
    for api, key in ((t.am, "app"), (t.admin, t.pub["id"])):
        r = api.request("DELETE", f"/v1/networks/{key}")
        assert (r.status, r.code) == (409, "NETWORK_IN_USE"), r
    assert t.am.get("/v1/networks/app")["id"] == t.app["id"]
    # another project sees nothing of the VM's ports on the shared network
    assert t.bm.get("/v1/ports?network=pub")["ports"] == []
    assert len(t.am.get("/v1/ports?network=pub")["ports"]) == 1

    # hot-plug
    r = t.am.ok("POST", f"/v1/vms/{vid}/nics", {"network": "app"}, expect=202)
    port = r["port"]
    assert (port["vm_id"], port["network_id"], port["slot"], port["ip"]) == \
        (vid, t.app["id"], 3, "10.173.1.3"), r
    t.am.wait_task(r["task"]["id"])
    vm = t.am.get(f"/v1/vms/{vid}")
    assert [n["mac"] for n in vm["nics"]][3] == port["mac"], vm["nics"]
    assert port["mac"] in domain_macs(vid)

    # refusals: other project, unknown network/MAC, another project's network, IP taken
    failures = []
    for api, method, path, body, status, code in (
            (t.bm, "POST", f"/v1/vms/{vid}/nics", {"network": "pub"}, 404, "VM_NOT_FOUND"),
            (t.bm, "DELETE", f"/v1/vms/{vid}/nics/{q(port['mac'])}", None, 404, "VM_NOT_FOUND"),
            (t.am, "POST", f"/v1/vms/{vid}/nics", {"network": t.b_app["id"]}, 404,
             "NETWORK_NOT_FOUND"),
            (t.am, "POST", f"/v1/vms/{vid}/nics", {"network": "app", "ip": "10.173.1.3"}, 409,
             "IP_IN_USE"),
            (t.am, "POST", f"/v1/vms/{vid}/nics", {}, 400, "INVALID_REQUEST"),
            (t.am, "DELETE", f"/v1/vms/{vid}/nics/52:54:00:00:00:01", None, 404,
             "PORT_NOT_FOUND")):
        kw = {"body": body} if body is not None else {}
        r = api.request(method, path, **kw)
        if (r.status, r.code) != (status, code):
            failures.append(f"{method} {path} {body} -> {r!r}, expected {status} {code}")
    assert not failures, "\n".join(failures)
    assert len(t.am.get(f"/v1/vms/{vid}")["nics"]) == 4

    # hot-unplug, by the MAC in upper case
    r = t.am.ok("DELETE", f"/v1/vms/{vid}/nics/{port['mac'].upper()}", expect=202)
    assert set(r) == {"task"}, r
    t.am.wait_task(r["task"]["id"])
    vm = t.am.get(f"/v1/vms/{vid}")
    assert [n["slot"] for n in vm["nics"]] == [0, 1, 2], vm["nics"]
    assert port["mac"] not in domain_macs(vid, inactive=True)
    # the port's address is free once the task succeeded: the NIC must be gone from the guest
    # too, or the next VM given that address would share it with this one
    assert port["mac"] not in domain_macs(vid), \
        f"vm.nic_remove succeeded but the running domain still has NIC {port['mac']}"
    acts = {e["action"] for e in nf.audit_events(t.am, limit=1000)}
    assert {"vm.nic-add", "vm.nic-remove"} <= acts, acts

    # the VM's delete frees its ports: the networks can go (and their libvirt networks with them)
    t.am.delete_vm(vid)
    assert t.am.get("/v1/ports")["ports"] == []
    assert t.am.request("DELETE", "/v1/networks/app2").status == 204
    tmp = t.am.ok("POST", "/v1/networks", {"name": "app3", "cidr": "10.173.6.0/24"}, expect=201)
    assert t.am.request("DELETE", f"/v1/networks/{tmp['id']}").status == 204
