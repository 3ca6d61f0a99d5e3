"""VM snapshots with a real guest (docs/storage.md, "Snapshots"): the guest marks a blank
volume (A: its hostname), a snapshot is taken, B is written over the mark from the host side
(through QEMU while the guest runs, with qemu-io on the file while it is stopped), the revert
brings A back and the guest reads it again. Without --memory and with it, running and stopped;
delete (libvirt's metadata and the qcow2 snapshots go), list, the refusals, a nimbusd killed
in the middle of a create and of a revert, and the VM's delete taking its snapshots along.

Own nimbusd (the crash test restarts it) and one guest with one volume for the whole module."""

import re
import subprocess

import pytest

import nimbus_fixtures as nf
from storage_backends import ceph_backend, rbd_images  # noqa: F401 (a pytest fixture)

MARK_A = b"NIMBUS-MARK snapa\n"
B = b"\x42" * 32


@pytest.fixture(scope="module")
def senv(make_env, tiny_image):
    env = make_env("snapshots")
    env.daemon.start()
    vm_id = None
    try:
        image = nf.upload_image(env, "snap-tiny", tiny_image)
        flavor = nf.create_small_flavor(env)
        r = env.api.create_vm("snapa", image["id"], flavor["id"], wait=False)
        vm_id = r["vm"]["id"]
        env.remember(vm_id)
        env.api.wait_task(r["task"]["id"])
        env.api.wait_console("snapa", "NIMBUS-READY")
        v = env.api.ok("POST", "/v1/volumes", {"name": "sdata", "size_gib": 1}, expect=202)
        env.api.wait_task(v["task"]["id"])
        a = env.api.ok("POST", "/v1/volumes/sdata/attach", {"vm": "snapa"}, expect=202)
        env.api.wait_task(a["task"]["id"])
        env.api.wait_console("snapa", "NIMBUS-DISK-MARKED vdb snapa")
        env.vm = env.api.vm("snapa")
        env.volume = env.api.get("/v1/volumes/sdata")
        env.vol_path = nf.virsh("vol-path", "--pool", env.daemon.pool_name,
                                f"nimbus-vol-{env.volume['id']}").stdout.strip()
        yield env
    finally:
        if env.daemon.alive():
            try:
                env.api.delete_vm("snapa")
            except AssertionError as e:
                print(f"cleanup of VM snapa: {e}")
            for v in env.api.get("/v1/volumes")["volumes"]:
                r = env.api.request("DELETE", f"/v1/volumes/{v['id']}")
                if r.status == 202:
                    env.api.wait_task(r.json["task"]["id"], expect=None)
        # a domain left with snapshots cannot be undefined without their metadata
        if vm_id and nf.domstate(nf.vm_domain(vm_id)) is not None:
            nf.virsh("destroy", nf.vm_domain(vm_id), check=False)
            nf.virsh("undefine", nf.vm_domain(vm_id), "--snapshots-metadata", check=False)
        env.teardown()


def dom(env):
    return nf.vm_domain(env.vm["id"])


def libvirt_snapshots(env):
    p = nf.virsh("snapshot-list", dom(env), "--name", check=False)
    return sorted(n for n in p.stdout.split() if n) if p.returncode == 0 else []


def qcow2_snapshots(path):
    """The internal snapshots' tags in a qcow2 file (read while QEMU may have it open)."""
    p = subprocess.run(["qemu-img", "snapshot", "-U", "-l", path], capture_output=True,
                       text=True, check=True)
    return sorted(re.findall(r"^\d+\s+(\S+)", p.stdout, re.M))


def sector0(path, n=32):
    """The first n bytes of the volume as its qcow2 file has them now."""
    p = subprocess.run(["qemu-io", "-U", "-r", "-f", "qcow2", "-c", f"read -v 0 {n}", path],
                       capture_output=True, text=True, check=True)
    out = bytearray()
    for line in p.stdout.splitlines():
        m = re.match(r"^[0-9a-f]{8}:\s+((?:[0-9a-f]{2} )+)", line)
        if m:
            out += bytes(int(h, 16) for h in m.group(1).split())
    return bytes(out[:n])


def drive_qdev(env):
    """The volume's device in the live domain, for HMP's qemu-io."""
    xml = nf.virsh("dumpxml", dom(env)).stdout
    serial = env.volume["id"][:20]
    for disk in re.findall(r"<disk .*?</disk>", xml, re.S):
        if f"<serial>{serial}</serial>" in disk:
            return re.search(r"<alias name='([^']+)'/>", disk).group(1)
    raise AssertionError(f"no disk with serial {serial} in {xml}")


def write_b(env, running):
    """B over the guest's mark, from the host side: through the running QEMU (its block layer,
    then flushed), or into the stopped VM's file."""
    if running:
        qdev = drive_qdev(env)
        for cmd in ("write -P 0x42 0 512", "flush"):
            nf.virsh("qemu-monitor-command", dom(env), "--hmp",
                     f'qemu-io -d {qdev}/virtio-backend "{cmd}"')
    else:
        subprocess.run(["qemu-io", "-f", "qcow2", "-c", "write -P 0x42 0 512", env.vol_path],
                       capture_output=True, text=True, check=True)
    assert sector0(env.vol_path) == B


def snap(env, name):
    r = env.api.request("GET", f"/v1/vms/snapa/snapshots/{name}")
    return r.json if r.status == 200 else None


def disk_reports(env):
    return env.api.console("snapa").count(
        f"NIMBUS-DISK vdb serial={env.volume['id'][:20]} size={1 << 30} mark=snapa")


def restart(env):
    env.api.action("snapa", "stop", body={"force": True})
    env.api.action("snapa", "start")


def test_revert_running_without_memory(senv):
    env, cli = senv, senv.cli
    s = cli.json("snapshot", "create", "snapa", "disks1", "--description", "before B", "--wait")
    assert (s["name"], s["state"], s["memory"], s["description"]) == (
        "disks1", "ready", False, "before B"), s
    assert f"nimbus-snap-{s['id']}" in libvirt_snapshots(env)
    assert f"nimbus-snap-{s['id']}" in qcow2_snapshots(env.vol_path)
    write_b(env, running=True)
    seen = disk_reports(env)
    r = cli.json("snapshot", "revert", "snapa", "disks1", "--wait")
    assert r["state"] == "ready", r
    # the disks only: the guest boots again from them and reads A
    assert sector0(env.vol_path, len(MARK_A)) == MARK_A
    env.api.wait_vm_state("snapa", "running")
    nf.wait_until(lambda: disk_reports(env) > seen, 120, "the guest to read A after the revert")


def test_revert_running_with_memory(senv):
    env, cli = senv, senv.cli
    s = cli.json("snapshot", "create", "snapa", "full1", "--memory", "--wait")
    assert (s["state"], s["memory"]) == ("ready", True), s
    write_b(env, running=True)
    ready = env.api.console("snapa").count("NIMBUS-READY")
    seen = disk_reports(env)
    cli.run("snapshot", "revert", "snapa", "full1", "--wait")
    # memory too: QEMU resumes where it was, no boot; the disk has A again
    vm = env.api.wait_vm_state("snapa", "running")
    assert vm["desired_state"] == "running", vm
    assert sector0(env.vol_path, len(MARK_A)) == MARK_A
    assert env.api.console("snapa").count("NIMBUS-READY") == ready
    # the guest reads it at its next boot
    restart(env)
    nf.wait_until(lambda: disk_reports(env) > seen, 120, "the guest to read A after a restart")


def test_revert_stopped_and_list(senv):
    env, cli = senv, senv.cli
    env.api.action("snapa", "stop", body={"force": True})
    r = env.api.request("POST", "/v1/vms/snapa/snapshots", body={"name": "m", "memory": True})
    assert (r.status, r.code) == (409, "INVALID_STATE"), r
    s = cli.json("snapshot", "create", "snapa", "off1", "--wait")
    assert (s["state"], s["memory"]) == ("ready", False), s
    write_b(env, running=False)
    cli.run("snapshot", "revert", "snapa", "off1", "--wait")
    assert env.api.vm("snapa")["state"] == "stopped"
    assert nf.domstate(dom(env)) == "shut off"
    assert sector0(env.vol_path, len(MARK_A)) == MARK_A
    seen = disk_reports(env)
    env.api.action("snapa", "start")
    nf.wait_until(lambda: disk_reports(env) > seen, 120, "the guest to read A after the start")

    # a memory snapshot reverted while the VM is stopped: it runs again, as it was then
    env.api.action("snapa", "stop", body={"force": True})
    cli.run("snapshot", "revert", "snapa", "full1", "--wait")
    env.api.wait_vm_state("snapa", "running")

    names = [x["name"] for x in cli.json("snapshot", "list", "snapa")["snapshots"]]
    assert names == ["disks1", "full1", "off1"], names
    table = cli.run("snapshot", "list", "snapa").stdout
    assert "disks1" in table and "off1" in table, table
    assert cli.json("snapshot", "show", "snapa", "off1")["state"] == "ready"


def test_delete(senv):
    env, cli = senv, senv.cli
    s = snap(env, "disks1")
    libvirt_name = f"nimbus-snap-{s['id']}"
    out = cli.run("snapshot", "delete", "snapa", "disks1", "--wait").stdout
    assert "deleted" in out, out
    assert snap(env, "disks1") is None
    assert libvirt_name not in libvirt_snapshots(env)
    assert libvirt_name not in qcow2_snapshots(env.vol_path)
    root = nf.virsh("domblklist", dom(env)).stdout
    root_path = re.search(r"vda\s+(\S+)", root).group(1)
    assert libvirt_name not in qcow2_snapshots(root_path)
    r = env.api.request("DELETE", "/v1/vms/snapa/snapshots/disks1")
    assert (r.status, r.code) == (404, "SNAPSHOT_NOT_FOUND"), r


def test_refusals(senv):
    env = senv
    before = (sorted(x["id"] for x in env.api.get("/v1/vms/snapa/snapshots")["snapshots"]),
              libvirt_snapshots(env))
    for body, status, code in [
        ({"name": "bad name!"}, 400, "INVALID_NAME"),
        ({"name": ""}, 400, None),
        ({}, 400, None),
        ({"name": "x" * 64}, 400, "INVALID_NAME"),
        ({"name": "ok1", "memory": "yes"}, 400, "INVALID_REQUEST"),
        ({"name": "ok1", "colour": "red"}, 400, "INVALID_REQUEST"),
        ({"name": "ok1", "description": "a\nb"}, 400, "INVALID_REQUEST"),
        ({"name": "ok1", "description": "d" * 256}, 400, "INVALID_REQUEST"),
        ({"name": "full1"}, 409, "NAME_TAKEN"),
    ]:
        r = env.api.request("POST", "/v1/vms/snapa/snapshots", body=body)
        assert r.status == status and (code is None or r.code == code), (body, r)
    for method, path in [("POST", "/v1/vms/nosuchvm/snapshots"),
                         ("GET", "/v1/vms/nosuchvm/snapshots")]:
        r = env.api.request(method, path, body={"name": "s"} if method == "POST" else nf._DEFAULT)
        assert (r.status, r.code) == (404, "VM_NOT_FOUND"), r
    r = env.api.request("POST", "/v1/vms/snapa/snapshots/nosuch/revert", body={})
    assert (r.status, r.code) == (404, "SNAPSHOT_NOT_FOUND"), r
    r = env.api.request("POST", "/v1/vms/snapa/snapshots/full1/revert", body={"x": 1})
    assert (r.status, r.code) == (400, "INVALID_REQUEST"), r
    p = env.cli.run("snapshot", "create", "snapa", "bad name!", check=False)
    assert p.returncode == 1 and "INVALID_NAME" in p.stdout + p.stderr, p

    # another project sees none of it: 404 on the VM, by name and by id
    proj = env.api.ok("POST", "/v1/projects", {"name": "snapq"}, expect=201)
    _, other, _ = nf.make_user(env.api, "snapq-user", "snapq-password-1", proj["id"], "member")
    full1 = snap(env, "full1")
    for ident in ("snapa", env.vm["id"]):
        for method, path, body in [
                ("GET", f"/v1/vms/{ident}/snapshots", nf._DEFAULT),
                ("POST", f"/v1/vms/{ident}/snapshots", {"name": "theirs"}),
                ("GET", f"/v1/vms/{ident}/snapshots/{full1['id']}", nf._DEFAULT),
                ("POST", f"/v1/vms/{ident}/snapshots/full1/revert", {}),
                ("DELETE", f"/v1/vms/{ident}/snapshots/full1", nf._DEFAULT)]:
            r = other.request(method, path, body=body)
            assert (r.status, r.code) == (404, "VM_NOT_FOUND"), (method, path, r)

    # the quota on snapshots, in the VM's project
    pid = env.vm["project_id"]
    quota = env.api.get(f"/v1/projects/{pid}/quota")
    in_use = quota["in_use"]["snapshots"]
    assert in_use == len(before[0]), quota
    try:
        env.api.ok("PUT", f"/v1/projects/{pid}/quota", {**quota["limits"], "snapshots": in_use},
                   expect=200)
        r = env.api.request("POST", "/v1/vms/snapa/snapshots", body={"name": "over"})
        assert (r.status, r.code) == (403, "QUOTA_EXCEEDED"), r
    finally:
        env.api.ok("PUT", f"/v1/projects/{pid}/quota", quota["limits"], expect=200)

    # snapshots do not follow a migration (libvirt keeps their metadata behind)
    r = env.api.request("POST", "/v1/vms/snapa/migrate", body={})
    assert r.code == "INVALID_STATE" and "snapshot" in r.text, r

    after = (sorted(x["id"] for x in env.api.get("/v1/vms/snapa/snapshots")["snapshots"]),
             libvirt_snapshots(env))
    assert after == before
    env.api.request("DELETE", f"/v1/projects/{proj['id']}")

    actions = [(e["action"], e["result"]) for e in nf.audit_events(env.api)
               if e["action"].startswith("snapshot.")]
    for want in [("snapshot.create", "ok"), ("snapshot.revert", "ok"), ("snapshot.delete", "ok"),
                 ("snapshot.create", "NAME_TAKEN"), ("snapshot.create", "QUOTA_EXCEEDED")]:
        assert want in actions, (want, actions)


def agree(env):
    """No snapshot left in a task's state, the VM free, and libvirt has exactly the store's."""
    def settled():
        rows = env.api.get("/v1/vms/snapa/snapshots")["snapshots"]
        vm = env.api.vm("snapa")
        busy = [x for x in rows if x["state"] in ("creating", "reverting", "deleting")]
        return rows if not busy and not vm["task_id"] else None
    rows = nf.wait_until(settled, 120, "the snapshot tasks to end")
    assert sorted(f"nimbus-snap-{x['id']}" for x in rows) == libvirt_snapshots(env)
    return rows


def test_crash_during_create_and_revert(senv):
    env = senv
    # killed after libvirt made the snapshot (step 1; steps 0 and 2, the pause and the resume
    # of a VM on RBD, do nothing here), before the step was recorded
    nf.crash_during(env, "snapshot.create:1", "POST", "/v1/vms/snapa/snapshots",
                    {"name": "crash1"})
    rows = agree(env)
    c = [x for x in rows if x["name"] == "crash1"]
    assert c and c[0]["state"] == "ready", rows
    assert f"nimbus-snap-{c[0]['id']}" in qcow2_snapshots(env.vol_path)

    # killed after the revert's libvirt work: the restart finishes it
    write_b(env, running=True)
    nf.crash_during(env, "snapshot.revert:2", "POST", "/v1/vms/snapa/snapshots/crash1/revert", {})
    agree(env)
    assert snap(env, "crash1")["state"] == "ready"
    assert sector0(env.vol_path, len(MARK_A)) == MARK_A
    env.api.wait_vm_state("snapa", "running")
    assert nf.check_consistency(env.api, env.daemon, env.known_ids) == []


def test_rbd_volume_is_unsupported(senv, ceph_backend):  # noqa: F811
    env, cb = senv, ceph_backend
    pool = env.api.ok("POST", "/v1/pools", {
        "name": "snaprbd", "type": "rbd", "monitors": cb["monitors"], "rbd_pool": cb["rbd_pool"],
        "user": cb["user"], "key": cb["key"]}, expect=201)
    made = None
    try:
        r = env.api.ok("POST", "/v1/volumes", {"name": "srbd", "size_gib": 1, "pool": "snaprbd"},
                       expect=202)
        made = r["volume"]
        env.api.wait_task(r["task"]["id"])
        r = env.api.ok("POST", "/v1/volumes/srbd/attach", {"vm": "snapa"}, expect=202)
        env.api.wait_task(r["task"]["id"])
        before = libvirt_snapshots(env)
        r = env.api.request("POST", "/v1/vms/snapa/snapshots", body={"name": "withrbd"})
        assert (r.status, r.code) == (409, "SNAPSHOT_UNSUPPORTED"), r
        assert "srbd" in r.text, r
        assert snap(env, "withrbd") is None and libvirt_snapshots(env) == before
    finally:
        if made:
            for method, path, body in [("POST", "/v1/volumes/srbd/detach", {}),
                                       ("DELETE", "/v1/volumes/srbd", nf._DEFAULT)]:
                r = env.api.request(method, path, body=body)
                if r.status == 202:
                    env.api.wait_task(r.json["task"]["id"], expect=None)
        env.api.request("DELETE", f"/v1/pools/{pool['id']}")
    assert not made or f"nimbus-vol-{made['id']}" not in rbd_images(cb)


def test_vm_delete_takes_its_snapshots(senv):
    env = senv
    tags = qcow2_snapshots(env.vol_path)
    assert tags, "earlier tests left snapshots to delete"
    env.api.delete_vm("snapa")
    assert nf.domstate(dom(env)) is None
    r = env.api.request("GET", "/v1/vms/snapa/snapshots")
    assert (r.status, r.code) == (404, "VM_NOT_FOUND"), r
    # the volume outlives the VM, without the VM's snapshots in it
    v = env.api.get("/v1/volumes/sdata")
    assert v["state"] == "available", v
    assert qcow2_snapshots(env.vol_path) == []
    pid = env.vm["project_id"]
    assert env.api.get(f"/v1/projects/{pid}/quota")["in_use"]["snapshots"] == 0
