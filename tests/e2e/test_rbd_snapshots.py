"""VM snapshots of VMs on Ceph RBD (docs/storage.md, "Snapshots"): one RBD snapshot
"nimbus-snap-<id>" per disk (the root disk's clone and every attached volume of an rbd pool),
with the real test Ceph and real TCG guests on the namespace test hosts of test_rbd_vms.py (its
fixture: the pool, the relay, the image). The guest marks its root disk (A) at its first boot
and prints the mark it finds at every later boot; B is written over the mark from the host side
(through QEMU while the guest runs, straight into the RBD image while it is stopped); the revert
brings A back and the guest reads it. Memory refused, delete, the disks frozen while snapshots
exist, the VM's delete leaving no RBD image or snapshot, and a nimbusd killed with the guest
paused (create) and with the domain off (revert)."""

import json
import re
import subprocess

import pytest

import nimbus_fixtures as nf
from rbd_cluster import MARK_SECTOR, marked_vm, rbd_cluster, start_daemon
from storage_backends import ceph_backend, ceph_cmd, rbd_images  # noqa: F401 (a fixture)
from test_rbd_vms import HOSTS, disk_name
from testhosts import testhosts  # noqa: F401 (the session fixture)

MARK_OFFSET = MARK_SECTOR * 512
B = b"\x42" * 32


@pytest.fixture(scope="module")
def rsenv(make_env, tiny_image, testhosts, ceph_backend):  # noqa: F811
    """The cluster of test_rbd_vms (hosts joined, the Ceph relay, the rbd pool, the image) under
    this module's own label (state dir, pool, log)."""
    with rbd_cluster(make_env, "rbdsnaps", tiny_image, testhosts, ceph_backend, HOSTS) as env:
        yield env


def rbd_snaps(env, image):
    """The snapshots of an RBD image as Ceph has them (None: no such image)."""
    p = ceph_cmd(env.cb, "snap", "ls", "--format", "json", f"{env.cb['rbd_pool']}/{image}",
                 check=False)
    return sorted(x["name"] for x in json.loads(p.stdout or "[]")) if p.returncode == 0 else None


def rbd_spec(env, vm_id):
    return f"rbd:{env.cb['rbd_pool']}/{disk_name(vm_id)}:conf={env.cb['conf']}"


def root_mark(env, vm_id, n=32):
    """n bytes at the guest's mark on the VM's root disk, as Ceph has them now (read-only)."""
    p = subprocess.run(["qemu-io", "-U", "-r", "-f", "raw", "-c", f"read -v {MARK_OFFSET} {n}",
                        rbd_spec(env, vm_id)], capture_output=True, text=True, timeout=60,
                       check=True)
    out = bytearray()
    for line in p.stdout.splitlines():
        m = re.match(r"^[0-9a-f]{8}:\s+((?:[0-9a-f]{2} )+)", line)
        if m:
            out += bytes(int(h, 16) for h in m.group(1).split())
    return bytes(out[:n])


def write_b(env, vm_id, running):
    """B over the guest's mark on the root disk, from the host side: through the running QEMU
    (HMP qemu-io, then flushed), or straight into the stopped VM's RBD image."""
    if running:
        i = HOSTS.index(env.api.vm(vm_id)["host"]) + 1
        dom = nf.vm_domain(vm_id)
        xml = env.hosts.virsh(i, "dumpxml", dom, check=True).stdout
        disk = [d for d in re.findall(r"<disk .*?</disk>", xml, re.S) if "dev='vda'" in d][0]
        alias = re.search(r"<alias name='([^']+)'/>", disk).group(1)
        for cmd in (f"write -P 0x42 {MARK_OFFSET} 512", "flush"):
            env.hosts.virsh(i, "qemu-monitor-command", dom, "--hmp",
                            f'qemu-io -d {alias}/virtio-backend "{cmd}"', check=True)
    else:
        subprocess.run(["qemu-io", "-f", "raw", "-c", f"write -P 0x42 {MARK_OFFSET} 512",
                        rbd_spec(env, vm_id)], capture_output=True, text=True, timeout=60,
                       check=True)
    assert root_mark(env, vm_id) == B


def snap_create(env, vm_id, name):
    r = env.api.ok("POST", f"/v1/vms/{vm_id}/snapshots", {"name": name}, expect=202)
    env.api.wait_task(r["task"]["id"])
    return env.api.get(f"/v1/vms/{vm_id}/snapshots/{r['snapshot']['id']}")


def snap_task(env, vm_id, path, method="POST", body=nf._DEFAULT):
    r = env.api.ok(method, f"/v1/vms/{vm_id}/snapshots/{path}", body, expect=202)
    env.api.wait_task(r["task"]["id"])


def rbd_vm(env, name):
    return marked_vm(env, name, "kvm1")["id"]


def rbd_volume(env, name, vm_id=None):
    v = env.api.ok("POST", "/v1/volumes", {"name": name, "size_gib": 1, "pool": "ceph"},
                   expect=202)
    env.api.wait_task(v["task"]["id"])
    if vm_id:
        a = env.api.ok("POST", f"/v1/volumes/{name}/attach", {"vm": vm_id}, expect=202)
        env.api.wait_task(a["task"]["id"])
    return f"nimbus-vol-{v['volume']['id']}"


def marks(env, vm_id, name):
    text = env.api.console(vm_id)
    return text.count(f"NIMBUS-ROOT-MARK {name}"), text.count("NIMBUS-ROOT-MARKED")


def test_running_snapshot_revert_delete(rsenv):
    env, cb = rsenv, rsenv.cb
    vm_id = rbd_vm(env, "rbdsnap")
    mark = b"NIMBUS-ROOT-MARK rbdsnap"
    assert root_mark(env, vm_id, len(mark)) == mark
    vol_image = rbd_volume(env, "rsvol", vm_id)  # the snapshot covers it too

    # memory cannot be kept on RBD: refused, nothing made
    r = env.api.request("POST", f"/v1/vms/{vm_id}/snapshots", {"name": "m", "memory": True})
    assert (r.status, r.code) == (409, "SNAPSHOT_UNSUPPORTED"), r
    assert "memory" in r.json["error"]["message"], r
    assert env.api.get(f"/v1/vms/{vm_id}/snapshots")["snapshots"] == []
    assert rbd_snaps(env, disk_name(vm_id)) == [] and rbd_snaps(env, vol_image) == []

    # A, snapshot (the guest paused for it, running after), B, revert: the guest reads A
    s = snap_create(env, vm_id, "s1")
    assert (s["state"], s["memory"]) == ("ready", False), s
    tag = f"nimbus-snap-{s['id']}"
    assert rbd_snaps(env, disk_name(vm_id)) == [tag]
    assert rbd_snaps(env, vol_image) == [tag]
    assert env.api.wait_vm_state(vm_id, "running")["desired_state"] == "running"
    write_b(env, vm_id, running=True)
    seen, marked = marks(env, vm_id, "rbdsnap")
    snap_task(env, vm_id, "s1/revert", body={})
    assert root_mark(env, vm_id, len(mark)) == mark
    env.api.wait_vm_state(vm_id, "running")
    env.api.wait_console(vm_id, "NIMBUS-ROOT-MARK rbdsnap", count=seen + 1)
    assert marks(env, vm_id, "rbdsnap")[1] == marked == 1
    assert env.api.get(f"/v1/vms/{vm_id}/snapshots/s1")["state"] == "ready"
    assert rbd_snaps(env, disk_name(vm_id)) == [tag]

    # the disks stay as the snapshots have them: a detach is refused
    r = env.api.request("POST", "/v1/volumes/rsvol/detach", {})
    assert (r.status, r.code) == (409, "INVALID_STATE"), r
    assert "snapshot" in r.json["error"]["message"], r
    assert env.api.get("/v1/volumes/rsvol")["state"] == "attached"
    # the RBD snapshots are in the cluster: a migration keeps them
    env.api.action(vm_id, "migrate", {"host": "kvm2"})
    assert env.api.vm(vm_id)["host"] == "kvm2"

    # delete: the RBD snapshot goes from every disk; then the volume may go
    snap_task(env, vm_id, "s1", method="DELETE")
    r = env.api.request("GET", f"/v1/vms/{vm_id}/snapshots/s1")
    assert (r.status, r.code) == (404, "SNAPSHOT_NOT_FOUND"), r
    assert rbd_snaps(env, disk_name(vm_id)) == [] and rbd_snaps(env, vol_image) == []
    env.api.wait_task(env.api.ok("POST", "/v1/volumes/rsvol/detach", {}, expect=202)
                      ["task"]["id"])
    env.api.wait_task(env.api.ok("DELETE", "/v1/volumes/rsvol", expect=202)["task"]["id"])
    assert vol_image not in rbd_images(cb)
    env.api.delete_vm(vm_id)
    assert not {i for i in rbd_images(cb) if vm_id in i}


def test_stopped_snapshot_revert_and_vm_delete(rsenv):
    env, cb = rsenv, rsenv.cb
    vm_id = rbd_vm(env, "rbdsnapoff")
    mark = b"NIMBUS-ROOT-MARK rbdsnapoff"
    vol_image = rbd_volume(env, "rsvol2", vm_id)
    env.api.action(vm_id, "stop", body={"force": True})
    s = snap_create(env, vm_id, "off1")
    assert s["state"] == "ready", s
    write_b(env, vm_id, running=False)
    snap_task(env, vm_id, "off1/revert", body={})
    vm = env.api.vm(vm_id)
    assert (vm["state"], vm["desired_state"]) == ("stopped", "stopped"), vm
    assert root_mark(env, vm_id, len(mark)) == mark
    seen, _ = marks(env, vm_id, "rbdsnapoff")
    env.api.action(vm_id, "start")
    env.api.wait_console(vm_id, "NIMBUS-ROOT-MARK rbdsnapoff", count=seen + 1)
    assert marks(env, vm_id, "rbdsnapoff")[1] == 1

    # no volume attached while snapshots exist
    other = rbd_volume(env, "rsvol3")
    r = env.api.request("POST", "/v1/volumes/rsvol3/attach", {"vm": vm_id})
    assert (r.status, r.code) == (409, "INVALID_STATE"), r
    assert env.api.get("/v1/volumes/rsvol3")["state"] == "available"
    env.api.wait_task(env.api.ok("DELETE", "/v1/volumes/rsvol3", expect=202)["task"]["id"])
    assert other not in rbd_images(cb)

    # the VM's delete with two snapshots: no image of it left; the volume outlives it without
    # the VM's snapshots, and can be deleted
    snap_create(env, vm_id, "on2")
    assert len(rbd_snaps(env, vol_image)) == 2
    env.api.delete_vm(vm_id)
    assert not {i for i in rbd_images(cb) if vm_id in i}
    assert env.api.get("/v1/volumes/rsvol2")["state"] == "available"
    assert rbd_snaps(env, vol_image) == []
    env.api.wait_task(env.api.ok("DELETE", "/v1/volumes/rsvol2", expect=202)["task"]["id"])
    assert vol_image not in rbd_images(cb)


def crash_at(env, at, method, path, body, dom, state):
    """nf.crash_during at `at`, with the domain dom found in `state` while nimbusd is dead."""
    def dom_state():
        assert env.hosts.virsh(1, "domstate", dom).stdout.strip() == state, at
    nf.crash_during(env, at, method, path, body, start=start_daemon, while_dead=dom_state)


def settled(env, vm_id):
    def done():
        rows = env.api.get(f"/v1/vms/{vm_id}/snapshots")["snapshots"]
        busy = [x for x in rows if x["state"] in ("creating", "reverting", "deleting")]
        return rows if not busy and not env.api.vm(vm_id)["task_id"] else None
    return nf.wait_until(done, 180, "the snapshot tasks to end")


def test_crash_during_snapshot_and_revert(rsenv):
    env = rsenv
    vm_id = rbd_vm(env, "rbdsnapcrash")
    dom = nf.vm_domain(vm_id)
    mark = b"NIMBUS-ROOT-MARK rbdsnapcrash"
    # killed with the guest paused (after the create's pause step): the restart takes the
    # snapshot and the guest runs again
    crash_at(env, "snapshot.create:0", "POST", f"/v1/vms/{vm_id}/snapshots", {"name": "c1"},
             dom, "paused")
    rows = settled(env, vm_id)
    assert [(x["name"], x["state"]) for x in rows] == [("c1", "ready")], rows
    assert rbd_snaps(env, disk_name(vm_id)) == [f"nimbus-snap-{rows[0]['id']}"]
    env.api.wait_vm_state(vm_id, "running")
    assert env.hosts.virsh(1, "domstate", dom).stdout.strip() == "running"

    # killed after the revert's stop (the domain off): the restart rolls the disk back and
    # starts the guest again
    write_b(env, vm_id, running=True)
    crash_at(env, "snapshot.revert:1", "POST", f"/v1/vms/{vm_id}/snapshots/c1/revert", {},
             dom, "shut off")
    rows = settled(env, vm_id)
    assert [(x["name"], x["state"]) for x in rows] == [("c1", "ready")], rows
    env.api.wait_vm_state(vm_id, "running")
    assert env.hosts.virsh(1, "domstate", dom).stdout.strip() == "running"
    assert root_mark(env, vm_id, len(mark)) == mark
    env.api.delete_vm(vm_id)
    assert not {i for i in rbd_images(env.cb) if vm_id in i}
