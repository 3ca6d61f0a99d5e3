"""Security groups through the API and the CLI (issue 9; docs/api/openapi.yaml "secgroups"):
groups and rules CRUD, every malformed request refused with its stable code and nothing
changed, scoping between projects, quota, audit; then VMs: the default group, groups at create
and at nic add, a VM joining and leaving a group, each port's filter defined on the host and
referenced by its NIC, and gone with the VM. Own nimbusd for the module; its networks use
10.175.0.0/16 (default pool 10.176.0.0/16).
"""

import secrets
import subprocess

import pytest

import nimbus_fixtures as nf

NO_SUCH_ID = "0badc0de-0000-4000-8000-000000000000"
POOL = "10.176.0.0/16"


class T:
    """Everything the module's tests share."""


def nwfilters():
    out = nf.virsh("nwfilter-list").stdout
    return {w for line in out.splitlines() for w in line.split() if w.startswith("nimbus-port-")}


@pytest.fixture(scope="module")
def sg(make_env):
    env = make_env("secgroups-api")
    t = T()
    help_text = subprocess.run([nf.NIMBUSD, "--help"], capture_output=True, text=True).stdout
    if "--default-network-pool" in help_text:
        env.daemon.extra_args = ["--default-network-pool", POOL]
    env.daemon.start()
    t.env, t.admin = env, env.api
    t.pa = t.admin.ok("POST", "/v1/projects", {"name": "sg-a"}, expect=201)
    t.pb = t.admin.ok("POST", "/v1/projects", {"name": "sg-b"}, expect=201)
    _, t.am, _ = nf.make_user(t.admin, "sga-member", "pw-" + secrets.token_hex(10), "sg-a",
                              "member")
    _, t.bm, _ = nf.make_user(t.admin, "sgb-member", "pw-" + secrets.token_hex(10), "sg-b",
                              "member")
    _, t.ar, _ = nf.make_user(t.admin, "sga-reader", "pw-" + secrets.token_hex(10), "sg-a",
                              "reader")
    t.web = t.am.ok("POST", "/v1/secgroups", {"name": "web", "description": "web servers"},
                    expect=201)
    t.b_web = t.bm.ok("POST", "/v1/secgroups", {"name": "web"}, expect=201)
    t.port_ids = set()
    yield t
    nf.delete_all_vms(env)
    left = {f"nimbus-port-{p}" for p in t.port_ids} & nwfilters()
    for name in left:
        nf.virsh("nwfilter-undefine", name, check=False)
    env.teardown()
    assert not left, f"filters left behind by deleted VMs: {sorted(left)}"


def rules_of(api, group):
    return sorted(r["id"] for r in api.get(f"/v1/secgroups/{group}/rules")["rules"])


def group_ids(t):
    return sorted(g["id"] for g in t.admin.get("/v1/secgroups")["secgroups"])


# ---------------------------------------------------------------------------------------------
# 1. groups and rules


def test_new_group_has_neutron_defaults(sg):
    t = sg
    g = t.am.get("/v1/secgroups/web")
    assert g["id"] == t.web["id"] and g["description"] == "web servers"
    assert g["project"] == t.pa["id"]
    rules = {(r["direction"], r["protocol"], r["cidr"], r["remote_group"]) for r in g["rules"]}
    assert rules == {("egress", "any", "0.0.0.0/0", None), ("ingress", "any", None, g["id"])}, g
    assert t.am.get(f"/v1/secgroups/{g['id']}")["name"] == "web"
    assert [x["name"] for x in t.am.get("/v1/secgroups")["secgroups"]] == ["web"]


def test_rule_add_dedupe_and_delete(sg):
    t = sg
    body = {"direction": "ingress", "protocol": "tcp", "port_min": 80, "port_max": 81,
            "cidr": "10.0.0.0/8"}
    r1 = t.am.ok("POST", "/v1/secgroups/web/rules", body, expect=201)
    assert (r1["port_min"], r1["port_max"], r1["cidr"]) == (80, 81, "10.0.0.0/8"), r1
    r2 = t.am.ok("POST", "/v1/secgroups/web/rules", body, expect=200)
    assert r2["id"] == r1["id"]
    assert r1["id"] in rules_of(t.am, "web")
    # a rule is deleted through its own group only
    other = t.am.ok("POST", "/v1/secgroups", {"name": "other"}, expect=201)
    r = t.am.request("DELETE", f"/v1/secgroups/other/rules/{r1['id']}")
    assert (r.status, r.code) == (404, "SECGROUP_RULE_NOT_FOUND"), r
    t.am.ok("DELETE", f"/v1/secgroups/web/rules/{r1['id']}", expect=204)
    assert r1["id"] not in rules_of(t.am, "web")
    r = t.am.request("DELETE", f"/v1/secgroups/web/rules/{r1['id']}")
    assert (r.status, r.code) == (404, "SECGROUP_RULE_NOT_FOUND"), r
    t.am.ok("DELETE", f"/v1/secgroups/{other['id']}", expect=204)


def rule(**kw):
    body = {"direction": "ingress", "protocol": "tcp", "port_min": 22}
    body.update(kw)
    return {k: v for k, v in body.items() if v is not None}


BAD_RULES = [
    ("port 0", rule(port_min=0), 400, "SECGROUP_RULE_INVALID"),
    ("port 65536", rule(port_min=65536), 400, "SECGROUP_RULE_INVALID"),
    ("max 65536", rule(port_min=1, port_max=65536), 400, "SECGROUP_RULE_INVALID"),
    ("min > max", rule(port_min=90, port_max=80), 400, "SECGROUP_RULE_INVALID"),
    ("ports with icmp", rule(protocol="icmp"), 400, "SECGROUP_RULE_INVALID"),
    ("ports with any", rule(protocol="any"), 400, "SECGROUP_RULE_INVALID"),
    ("bad proto", rule(protocol="sctp"), 400, "SECGROUP_RULE_INVALID"),
    ("bad direction", rule(direction="inbound"), 400, "SECGROUP_RULE_INVALID"),
    ("host bits", rule(cidr="10.0.0.1/8"), 400, "SECGROUP_RULE_INVALID"),
    ("prefix 33", rule(cidr="10.0.0.0/33"), 400, "SECGROUP_RULE_INVALID"),
    ("not a cidr", rule(cidr="ten"), 400, "SECGROUP_RULE_INVALID"),
    ("cidr and group", rule(cidr="10.0.0.0/8", remote_group="web"), 400,
     "SECGROUP_RULE_INVALID"),
    ("unknown field", rule(action="drop"), 400, "SECGROUP_RULE_INVALID"),
    ("ipv6", rule(ethertype="IPv6"), 400, "SECGROUP_RULE_INVALID"),
    ("no such remote group", rule(remote_group="nope"), 404, "SECGROUP_NOT_FOUND"),
    ("another project's remote group", None, 404, "SECGROUP_NOT_FOUND"),
]


def test_bad_rules_refused_by_code(sg):
    t = sg
    failures = []
    before = rules_of(t.am, "web")
    for ident, body, status, code in BAD_RULES:
        if body is None:
            body = rule(remote_group=t.b_web["id"])
        r = t.am.request("POST", "/v1/secgroups/web/rules", body)
        if (r.status, r.code) != (status, code):
            failures.append(f"{ident}: {body} -> {r.status} {r.text[:200]}, expected {status} "
                            f"{code}")
        after = rules_of(t.am, "web")
        if after != before:
            failures.append(f"{ident}: the rules changed")
            before = after
    assert not failures, "\n".join(failures)


def test_bad_groups_refused_by_code(sg):
    t = sg
    before = group_ids(t)
    cases = [
        ({"name": "web"}, 409, "NAME_TAKEN"),
        ({"name": "bad name"}, 400, "INVALID_NAME"),
        ({"name": NO_SUCH_ID}, 400, "INVALID_NAME"),
        ({"name": "x", "colour": "red"}, 400, "INVALID_REQUEST"),
        ({"name": "x", "description": "d" * 256}, 400, "INVALID_REQUEST"),
        ({}, 400, "INVALID_REQUEST"),
    ]
    for body, status, code in cases:
        r = t.am.request("POST", "/v1/secgroups", body)
        assert (r.status, r.code) == (status, code), f"{body}: {r!r}"
    assert group_ids(t) == before


def test_scoping_and_roles(sg):
    t = sg
    before = group_ids(t)
    b_id = t.b_web["id"]
    for method, path, body in (("GET", f"/v1/secgroups/{b_id}", None),
                               ("GET", f"/v1/secgroups/{b_id}/rules", None),
                               ("POST", f"/v1/secgroups/{b_id}/rules", rule()),
                               ("DELETE", f"/v1/secgroups/{b_id}", None)):
        r = t.am.request(method, path, body) if body else t.am.request(method, path)
        assert (r.status, r.code) == (404, "SECGROUP_NOT_FOUND"), f"{method} {path}: {r!r}"
    # by name, each project sees its own "web"
    assert t.bm.get("/v1/secgroups/web")["id"] == b_id
    assert t.am.get("/v1/secgroups/web")["id"] == t.web["id"]
    # a reader reads, and writes nothing
    assert t.ar.get("/v1/secgroups/web")["id"] == t.web["id"]
    for method, path, body in (("POST", "/v1/secgroups", {"name": "r"}),
                               ("POST", "/v1/secgroups/web/rules", rule()),
                               ("DELETE", "/v1/secgroups/web", None)):
        r = t.ar.request(method, path, body) if body else t.ar.request(method, path)
        assert (r.status, r.code) == (403, "FORBIDDEN"), f"{method} {path}: {r!r}"
    # the admin sees both by id
    assert t.admin.get(f"/v1/secgroups/{b_id}")["project"] == t.pb["id"]
    assert group_ids(t) == before


def test_delete_refused_while_a_rule_names_it(sg):
    t = sg
    db = t.am.ok("POST", "/v1/secgroups", {"name": "db"}, expect=201)
    r1 = t.am.ok("POST", "/v1/secgroups/db/rules",
                 rule(port_min=5432, remote_group="web"), expect=201)
    assert r1["remote_group"] == t.web["id"]
    r = t.am.request("DELETE", "/v1/secgroups/web")
    assert (r.status, r.code) == (409, "SECGROUP_IN_USE"), r
    t.am.ok("DELETE", f"/v1/secgroups/db/rules/{r1['id']}", expect=204)
    t.am.ok("DELETE", f"/v1/secgroups/{db['id']}", expect=204)
    r = t.am.request("GET", f"/v1/secgroups/{db['id']}")
    assert (r.status, r.code) == (404, "SECGROUP_NOT_FOUND"), r


def test_quota(sg):
    t = sg
    p = t.admin.ok("POST", "/v1/projects", {"name": "sg-q", "quota": {"secgroups": 1}},
                   expect=201)
    _, api, _ = nf.make_user(t.admin, "sgq-member", "pw-" + secrets.token_hex(10), "sg-q",
                             "member")
    api.ok("POST", "/v1/secgroups", {"name": "q1"}, expect=201)
    before = group_ids(t)
    r = api.request("POST", "/v1/secgroups", {"name": "q2"})
    assert (r.status, r.code) == (403, "QUOTA_EXCEEDED"), r
    assert group_ids(t) == before
    assert api.get(f"/v1/projects/{p['id']}/quota")["in_use"]["secgroups"] == 1
    api.ok("DELETE", "/v1/secgroups/q1", expect=204)


def test_writes_audited(sg):
    t = sg
    events = nf.audit_events(t.admin, limit=1000)
    actions = {e["action"] for e in events}
    for a in ("secgroup.create", "secgroup.rule-add", "secgroup.rule-delete",
              "secgroup.delete"):
        assert a in actions, f"{a} not audited: {sorted(actions)}"
    refused = [e for e in events if e["action"] == "secgroup.rule-add" and e["status"] == 400]
    assert refused, "refused rule adds are audited too"


def test_cli(sg):
    t = sg
    cli = t.env.cli
    cli.run("secgroup", "create", "cli-g", "--description", "from the CLI")
    out = cli.run("secgroup", "rule", "add", "cli-g", "--ingress", "--proto", "tcp", "--port",
                  "8000-8080", "--cidr", "192.0.2.0/24").stdout
    assert "8000-8080" in out and "192.0.2.0/24" in out, out
    cli.run("secgroup", "rule", "add", "cli-g", "--egress", "--proto", "udp", "--port", "53",
            "--remote-group", "cli-g")
    show = cli.run("secgroup", "show", "cli-g").stdout
    assert "from the CLI" in show and "group cli-g" in show and "8000-8080" in show, show
    rules = cli.json("secgroup", "rule", "list", "cli-g")["rules"]
    assert len(rules) == 4, rules
    p = cli.run("secgroup", "rule", "add", "cli-g", "--ingress", "--port", "0", check=False)
    assert p.returncode == 2, p
    p = cli.run("secgroup", "rule", "add", "cli-g", "--ingress", "--egress", check=False)
    assert p.returncode == 2, p
    tcp = next(r for r in rules if r["protocol"] == "tcp")
    cli.run("secgroup", "rule", "delete", "cli-g", tcp["id"])
    assert len(cli.json("secgroup", "rule", "list", "cli-g")["rules"]) == 3
    assert "cli-g" in cli.run("secgroup", "list").stdout
    # the admin's own project holds it; its rule names it, which does not keep it
    cli.run("secgroup", "delete", "cli-g")
    assert "cli-g" not in cli.run("secgroup", "list").stdout


# ---------------------------------------------------------------------------------------------
# 2. VMs: groups of ports and their filters


@pytest.fixture(scope="module")
def vmkit(sg, tiny_image):
    t = sg
    t.admin.ok("POST", "/v1/flavors", {"name": "sg-small", "vcpus": 1, "ram_mib": 128,
                                       "disk_gib": 1}, expect=201)
    nf.upload_image_as(t.am, t.env, "img-sg", tiny_image)
    nf.upload_image(t.env, "img-sg", tiny_image)  # the admin's project: the CLI's VMs
    t.am.ok("POST", "/v1/networks", {"name": "sgnet", "cidr": "10.175.1.0/24"}, expect=201)
    t.am.ok("POST", "/v1/networks", {"name": "sgnet2", "type": "isolated",
                                     "cidr": "10.175.2.0/24"}, expect=201)
    return t


def create_vm(t, api, name, wait=True, **extra):
    r = api.ok("POST", "/v1/vms", {"name": name, "image": "img-sg", "flavor": "sg-small",
                                   **extra}, expect=202)
    t.env.remember(r["vm"]["id"])
    if wait:
        api.wait_task(r["task"]["id"])
    vm = api.get(f"/v1/vms/{r['vm']['id']}")
    t.port_ids |= {n["port_id"] for n in vm.get("nics", [])}
    return vm


def filterrefs(vm_id):
    """{MAC: (filter, IP, MAC parameter)} of the domain's live interfaces."""
    import xml.etree.ElementTree as ET
    root = ET.fromstring(nf.virsh("dumpxml", nf.vm_domain(vm_id)).stdout)
    out = {}
    for iface in root.iter("interface"):
        mac = iface.find("mac").get("address")
        ref = iface.find("filterref")
        if ref is None:
            out[mac] = None
            continue
        params = {p.get("name"): p.get("value") for p in ref.findall("parameter")}
        out[mac] = (ref.get("filter"), params.get("IP"), params.get("MAC"))
    return out


def test_vm_gets_the_default_group_and_a_filter(vmkit):
    t = vmkit
    vm = create_vm(t, t.am, "sg-plain", networks=[{"network": "sgnet"}])
    nic = vm["nics"][0]
    assert nic["secgroups"] == ["default"], vm["nics"]
    d = t.am.get("/v1/secgroups/default")
    assert {(r["direction"], r["remote_group"]) for r in d["rules"]} == \
        {("egress", None), ("ingress", d["id"])}, d
    assert f"nimbus-port-{nic['port_id']}" in nwfilters()
    assert filterrefs(vm["id"]) == {nic["mac"]: (f"nimbus-port-{nic['port_id']}", nic["ip"],
                                                 nic["mac"])}
    ports = t.am.get("/v1/ports")["ports"]
    assert next(p for p in ports if p["id"] == nic["port_id"])["secgroups"] == ["default"]
    # the CLI shows them too
    assert "default" in t.env.cli.run("port", "list").stdout
    r = t.am.request("DELETE", "/v1/secgroups/default")
    assert (r.status, r.code) == (409, "SECGROUP_IN_USE"), r
    t.am.delete_vm(vm["id"])
    assert f"nimbus-port-{nic['port_id']}" not in nwfilters()


def test_vm_create_with_groups_and_nic_add(vmkit):
    t = vmkit
    t.am.ok("POST", "/v1/secgroups", {"name": "ssh"}, expect=201)
    vm = create_vm(t, t.am, "sg-two", networks=[{"network": "sgnet"}], secgroups=["web", "ssh"])
    assert sorted(vm["nics"][0]["secgroups"]) == ["ssh", "web"], vm["nics"]
    r = t.am.ok("POST", f"/v1/vms/{vm['id']}/nics", {"network": "sgnet2", "secgroups": ["ssh"]},
                expect=202)
    t.port_ids.add(r["port"]["id"])
    t.am.wait_task(r["task"]["id"])
    vm = t.am.get(f"/v1/vms/{vm['id']}")
    assert [sorted(n["secgroups"]) for n in vm["nics"]] == [["ssh", "web"], ["ssh"]], vm["nics"]
    refs = filterrefs(vm["id"])
    for n in vm["nics"]:
        assert refs[n["mac"]] == (f"nimbus-port-{n['port_id']}", n["ip"], n["mac"]), refs
        assert f"nimbus-port-{n['port_id']}" in nwfilters()
    # the VM leaves "web" and joins "other"; "web" is then free
    out = t.am.ok("DELETE", f"/v1/vms/{vm['id']}/secgroups/web", expect=200, timeout=300)
    assert [n["secgroups"] for n in out["nics"]] == [["ssh"], ["ssh"]], out
    r = t.am.request("DELETE", f"/v1/vms/{vm['id']}/secgroups/web", timeout=300)
    assert (r.status, r.code) == (404, "SECGROUP_NOT_FOUND"), r
    t.am.ok("POST", "/v1/secgroups", {"name": "extra"}, expect=201)
    # the admin's CLI: the group is looked up in the VM's project
    out = t.env.cli.json("vm", "secgroup", "add", vm["id"], "extra")
    assert [sorted(n["secgroups"]) for n in out["nics"]] == [["extra", "ssh"]] * 2, out
    r = t.am.request("POST", f"/v1/vms/{vm['id']}/secgroups", {"secgroup": "extra", "x": 1})
    assert (r.status, r.code) == (400, "INVALID_REQUEST"), r
    r = t.bm.request("POST", f"/v1/vms/{vm['id']}/secgroups", {"secgroup": "web"})
    assert (r.status, r.code) == (404, "VM_NOT_FOUND"), r
    # the NIC removed takes its filter with it
    second = vm["nics"][1]
    r = t.am.ok("DELETE", f"/v1/vms/{vm['id']}/nics/{second['mac']}", expect=202)
    t.am.wait_task(r["task"]["id"])
    assert f"nimbus-port-{second['port_id']}" not in nwfilters()
    assert f"nimbus-port-{vm['nics'][0]['port_id']}" in nwfilters()
    t.am.delete_vm(vm["id"])
    assert not {f"nimbus-port-{n['port_id']}" for n in vm["nics"]} & nwfilters()


def test_vm_create_with_bad_groups_creates_nothing(vmkit):
    t = vmkit
    before = {v["id"] for v in t.admin.get("/v1/vms")["vms"]}
    ports_before = len(t.admin.get("/v1/ports")["ports"])
    for groups, status, code in ((["nope"], 404, "SECGROUP_NOT_FOUND"),
                                 ([t.b_web["id"]], 404, "SECGROUP_NOT_FOUND"),
                                 ("web", 400, "INVALID_REQUEST"),
                                 (["bad name"], 400, "INVALID_REQUEST"),
                                 (["web"] * 17, 400, "INVALID_REQUEST")):
        r = t.am.request("POST", "/v1/vms", {"name": "sg-bad", "image": "img-sg",
                                             "flavor": "sg-small", "secgroups": groups})
        assert (r.status, r.code) == (status, code), f"{groups}: {r!r}"
    assert {v["id"] for v in t.admin.get("/v1/vms")["vms"]} == before
    assert len(t.admin.get("/v1/ports")["ports"]) == ports_before


def test_cli_vm_create_with_secgroups(vmkit):
    t = vmkit
    cli = t.env.cli
    cli.run("secgroup", "create", "cli-web")
    out = cli.json("vm", "create", "sg-cli", "--image", "img-sg", "--flavor", "sg-small",
                   "--secgroup", "cli-web", "--secgroup", "default", "--wait")
    vm = out.get("vm", out)
    t.env.remember(vm["id"])
    shown = t.admin.get(f"/v1/vms/{vm['id']}")
    assert sorted(shown["nics"][0]["secgroups"]) == ["cli-web", "default"], shown
    out = cli.run("vm", "show", vm["id"]).stdout
    assert "SECGROUPS" in out and "cli-web" in out, out
    out = cli.run("vm", "secgroup", "remove", vm["id"], "cli-web").stdout
    assert "cli-web" not in out, out
    t.admin.delete_vm(vm["id"])


def test_project_delete_takes_its_groups(sg):
    t = sg
    p = t.admin.ok("POST", "/v1/projects", {"name": "sg-gone"}, expect=201)
    _, api, _ = nf.make_user(t.admin, "sggone-member", "pw-" + secrets.token_hex(10), "sg-gone",
                             "member")
    api.ok("POST", "/v1/secgroups", {"name": "a"}, expect=201)
    api.ok("POST", "/v1/secgroups", {"name": "b"}, expect=201)
    api.ok("POST", "/v1/secgroups/a/rules", rule(remote_group="b"), expect=201)
    api.ok("POST", "/v1/secgroups/b/rules", rule(remote_group="a"), expect=201)
    mine = {g["id"] for g in t.admin.get("/v1/secgroups")["secgroups"]
            if g["project"] == p["id"]}
    assert len(mine) == 2
    t.admin.ok("DELETE", "/v1/users/sggone-member", expect=204)
    t.admin.ok("DELETE", f"/v1/projects/{p['id']}", expect=204)
    assert not {g["id"] for g in t.admin.get("/v1/secgroups")["secgroups"]} & mine
