"""Declarative stacks through the real CLI: nimbus apply / delete -f / export vm, against the
shared nimbusd with real guests (at most 3 tiny VMs at a time)."""

import re
import secrets

import pytest

import nimbus_fixtures as nf

STACK = """\
name: e2e-apply
groups:
  - name: e2e-apply-g
    policy: affinity
vms:
  - name: e2e-web
    image: {image}
    flavor: {flavor}
    count: {count}
    group: e2e-apply-g
    hostname: "web-{{n}}"
    labels:
{labels}
"""

LINE_COL = re.compile(r"stack\.yaml:(\d+):(\d+): ")


def write_stack(tmp_path, image, flavor, count=3, labels=None, name="stack.yaml"):
    labels = labels or {"tier": "web"}
    text = STACK.format(image=image["name"], flavor=flavor["name"], count=count,
                        labels="".join(f"      {k}: {v}\n" for k, v in labels.items()))
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def snapshot(nimbus):
    """What apply may change: every VM's id, state and updated_at, and the groups."""
    vms = {v["name"]: (v["id"], v["state"], v["updated_at"], v["task_id"])
           for v in nimbus.api.vms()}
    groups = {g["name"]: g["id"] for g in nimbus.api.get("/v1/groups")["groups"]}
    return vms, groups


@pytest.fixture
def stack_cleanup(nimbus):
    """Deletes whatever VMs named e2e-web* / e2e-apply-* and the group are left."""
    yield
    for v in nimbus.api.vms():
        if v["name"].startswith(("e2e-web", "e2e-apply")):
            if v["task_id"]:
                nimbus.api.wait_task(v["task_id"], expect=None)
            nimbus.api.delete_vm(v["id"])
    nimbus.api.request("DELETE", "/v1/groups/e2e-apply-g")
    for user in ("e2e-apply-m", "e2e-apply-r"):
        nimbus.api.request("DELETE", f"/v1/users/{user}")
    nimbus.api.request("DELETE", "/v1/projects/e2e-apply-p")
    nimbus.cli.run("host", "set", "local", "--clear-labels", check=False)


def test_stack_apply_lifecycle(nimbus, image, flavor, vms, tmp_path, stack_cleanup):
    cli = nimbus.cli
    # VM labels are the labels a VM asks its host to carry: give the host some.
    cli.run("host", "set", "local", "--label", "tier=web", "--label", "zone=a")
    path = write_stack(tmp_path, image, flavor)

    # --dry-run first: the plan, nothing made
    before = snapshot(nimbus)
    p = cli.run("apply", "-f", path, "--dry-run")
    assert "+ group e2e-apply-g" in p.stdout and "+ vm e2e-web-3" in p.stdout, p.stdout
    assert "dry run" in p.stdout, p.stdout
    assert snapshot(nimbus) == before

    # create: a group and 3 VMs, running, in the group, with the hostname pattern
    p = cli.run("apply", "-f", path, timeout=900)
    for n in (1, 2, 3):
        assert f"+ vm e2e-web-{n}" in p.stdout, p.stdout
    made = {n: nimbus.api.vm(f"e2e-web-{n}") for n in (1, 2, 3)}
    nimbus.remember(*(v["id"] for v in made.values() if v))
    group = nimbus.api.get("/v1/groups/e2e-apply-g")
    assert group["policy"] == "affinity", group
    for n, v in made.items():
        assert v and v["state"] == "running" and v["task_id"] is None, v
        assert v["group_id"] == group["id"] and v["hostname"] == f"web-{n}", v
        assert v["labels"] == {"tier": "web"}, v

    # again: nothing changes, and it says so
    before = snapshot(nimbus)
    p = cli.run("apply", "-f", path)
    assert "no changes" in p.stdout, p.stdout
    assert "= vm e2e-web-1" in p.stdout and "= group e2e-apply-g" in p.stdout, p.stdout
    assert not re.search(r"^[-+~] ", p.stdout, re.M), p.stdout
    assert snapshot(nimbus) == before

    # what the API cannot change on an existing VM (its group): an error naming it, nothing done
    moved = tmp_path / "moved.yaml"
    moved.write_text(open(path).read().replace("    group: e2e-apply-g\n",
                                               "    group: e2e-apply-g2\n"))
    p = cli.run("apply", "-f", str(moved), check=False)
    assert p.returncode == 1, p
    assert "cannot change group of vm e2e-web-1 (recreate it)" in p.stderr, p.stderr
    assert snapshot(nimbus) == before

    # count 3 -> 2 and a label: only those change (labels in place, the highest-numbered goes)
    path2 = write_stack(tmp_path, image, flavor, count=2, labels={"tier": "web", "zone": "a"},
                        name="two.yaml")
    p = cli.run("apply", "-f", path2, "--dry-run")
    assert "~ vm e2e-web-1 labels" in p.stdout and "- vm e2e-web-3" in p.stdout, p.stdout
    assert "= group e2e-apply-g" in p.stdout, p.stdout
    assert snapshot(nimbus) == before
    p = cli.run("apply", "-f", path2, timeout=600)
    assert "~ vm e2e-web-2 labels" in p.stdout and "3 changes done" in p.stdout, p.stdout
    after_vms, after_groups = snapshot(nimbus)
    assert nimbus.api.vm("e2e-web-3") is None
    for n in (1, 2):
        v = nimbus.api.vm(f"e2e-web-{n}")
        assert v["id"] == made[n]["id"] and v["state"] == "running", v
        assert v["labels"] == {"tier": "web", "zone": "a"}, v
    assert after_groups == before[1]
    assert any(e["action"] == "vm.update" for e in nf.audit_events(nimbus.api, limit=1000))
    # a label changed by hand (vm label set) is put back by the next apply
    p = cli.run("vm", "label", "set", "e2e-web-1", "tier=web")
    assert nimbus.api.vm("e2e-web-1")["labels"] == {"tier": "web"}, p.stdout
    p = cli.run("apply", "-f", path2)
    assert "~ vm e2e-web-1 labels" in p.stdout and "= vm e2e-web-2" in p.stdout, p.stdout
    assert "1 change done" in p.stdout, p.stdout
    p = cli.run("apply", "-f", path2)
    assert "no changes" in p.stdout, p.stdout

    # PATCH /v1/vms/{id} checks its body as create does
    for body in ({"labels": {"Bad Key": "x"}}, {"labels": "x"}, {"name": "y"}):
        r = nimbus.api.request("PATCH", "/v1/vms/e2e-web-1", body=body)
        assert r.status == 400, (body, r)
    assert nimbus.api.request("PATCH", "/v1/vms/e2e-nope", body={"labels": {}}).status == 404
    assert nimbus.api.vm("e2e-web-1")["labels"] == {"tier": "web", "zone": "a"}
    # ... and is scoped like every VM route: another project's VM is not found, readers cannot
    nimbus.api.ok("POST", "/v1/projects", {"name": "e2e-apply-p"}, expect=201)
    for user, role in (("e2e-apply-m", "member"), ("e2e-apply-r", "reader")):
        _, other, _ = nf.make_user(nimbus.api, user, "pw-" + secrets.token_hex(10), "e2e-apply-p",
                                   role)
        r = other.request("PATCH", f"/v1/vms/{made[1]['id']}", body={"labels": {}})
        assert r.status == (404 if role == "member" else 403), (role, r)
    assert nimbus.api.vm("e2e-web-1")["labels"] == {"tier": "web", "zone": "a"}

    # export: YAML that apply accepts and finds unchanged
    y = cli.run("export", "vm", "e2e-web-1").stdout
    assert "name: e2e-web-1" in y and "group: e2e-apply-g" in y, y
    exported = tmp_path / "export.yaml"
    exported.write_text(y)
    before = snapshot(nimbus)
    p = cli.run("apply", "-f", str(exported), "--dry-run")
    assert "= vm e2e-web-1" in p.stdout and "= group e2e-apply-g" in p.stdout, p.stdout
    assert not re.search(r"^[-+] ", p.stdout, re.M), p.stdout
    assert snapshot(nimbus) == before

    # delete -f: the stack's VMs and group, not another VM, even one named like an instance
    # (made by hand: not from the stack's image, flavor and group)
    other = vms("e2e-web-7", wait=True)["vm"]
    p = cli.run("apply", "-f", path2, "--dry-run")
    assert "e2e-web-7" not in p.stdout and "no changes" in p.stdout, p.stdout
    assert not re.search(r"^[-+~] ", p.stdout, re.M), p.stdout
    p = cli.run("delete", "-f", path2, "--dry-run")
    assert "- vm e2e-web-1" in p.stdout and "- group e2e-apply-g" in p.stdout, p.stdout
    assert "e2e-web-7" not in p.stdout, p.stdout
    assert nimbus.api.vm("e2e-web-1") is not None
    p = cli.run("delete", "-f", path2, timeout=600)
    assert "3 changes done" in p.stdout, p.stdout
    assert nimbus.api.vm("e2e-web-1") is None and nimbus.api.vm("e2e-web-2") is None
    assert nimbus.api.request("GET", "/v1/groups/e2e-apply-g").status == 404
    assert nimbus.api.vm(other["id"])["state"] == "running"


@pytest.mark.parametrize("text,where,what", [
    ("name: s\nvms:\n  - name: a\n    image: [x\n", None, "invalid YAML"),
    ("name: s\nvms:\n  - name: a\n    image: x\n    flavor: y\n    colour: red\n", (6, 5),
     "unknown key 'colour' in vm"),
    ("name: s\nextra: 1\n", (2, 1), "unknown key 'extra' in the stack"),
    ("name: s\nvms:\n  - name: a\n    image: x\n    flavor: y\n    count: three\n", (6, 12),
     "'count' of vm must be a whole number"),
    ("vms: []\n", (1, 1), "the stack has no 'name'"),
    ("name: s\ngroups:\n  - name: g\n", (3, 5), "group has no 'policy'"),
])
def test_stack_bad_files(nimbus, tmp_path, text, where, what):
    path = tmp_path / "stack.yaml"
    path.write_text(text)
    before = snapshot(nimbus)
    for cmd in ("apply", "delete"):
        p = nimbus.cli.run(cmd, "-f", str(path), check=False)
        assert p.returncode == 2, p
        m = LINE_COL.search(p.stderr)
        assert m and what in p.stderr, p.stderr
        if where:
            assert (int(m.group(1)), int(m.group(2))) == where, p.stderr
    assert snapshot(nimbus) == before


def test_stack_other_kinds(nimbus, tiny_image, tmp_path):
    """Flavor, image by file, security group with a rule, group: created, then unchanged, a
    changed flavor refused, and delete -f removes them (no VM: no guest needed)."""
    api, cli = nimbus.api, nimbus.cli
    text = f"""\
name: e2e-kinds
flavors:
  - {{name: e2e-kinds-f, vcpus: 1, ram_mib: 128, disk_gib: 1}}
images:
  - name: e2e-kinds-img
    file: {tiny_image}
secgroups:
  - name: e2e-kinds-sg
    description: ssh
    rules:
      - {{direction: ingress, protocol: tcp, port_min: 22, port_max: 22, cidr: 10.0.0.0/8}}
groups:
  - {{name: e2e-kinds-g, policy: anti-affinity}}
"""
    path = tmp_path / "kinds.yaml"
    path.write_text(text)
    try:
        p = cli.run("apply", "-f", str(path), timeout=600)
        assert "4 changes done" in p.stdout, p.stdout
        img = api.get("/v1/images/e2e-kinds-img")
        nimbus.remember(img["id"])
        assert img["state"] == "active", img
        assert api.get("/v1/flavors/e2e-kinds-f")["ram_mib"] == 128
        rules = api.get("/v1/secgroups/e2e-kinds-sg/rules")["rules"]
        ingress = [(r["port_min"], r["cidr"]) for r in rules if r["direction"] == "ingress"]
        # besides the group's default rules
        assert ingress.count((22, "10.0.0.0/8")) == 1, rules
        p = cli.run("apply", "-f", str(path))
        assert "no changes" in p.stdout and "= image e2e-kinds-img" in p.stdout, p.stdout

        path.write_text(text.replace("ram_mib: 128", "ram_mib: 256"))
        p = cli.run("apply", "-f", str(path), check=False)
        assert p.returncode == 1, p
        assert "cannot change ram_mib of flavor e2e-kinds-f (recreate it)" in p.stderr, p.stderr

        p = cli.run("delete", "-f", str(path))
        assert "4 changes done" in p.stdout, p.stdout
        for what in ("flavors/e2e-kinds-f", "images/e2e-kinds-img", "secgroups/e2e-kinds-sg",
                     "groups/e2e-kinds-g"):
            assert api.request("GET", f"/v1/{what}").status == 404, what
    finally:
        for what in ("groups/e2e-kinds-g", "secgroups/e2e-kinds-sg", "images/e2e-kinds-img",
                     "flavors/e2e-kinds-f"):
            api.request("DELETE", f"/v1/{what}")
