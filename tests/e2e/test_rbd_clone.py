"""Images made from and clones of VMs whose root disk is in a Ceph RBD pool (docs/storage.md,
"Clones and images from VMs"), with the real test Ceph (scripts/test-ceph.sh) and real TCG guests
on one namespace test host.

An image is a flattened qcow2 file in nimbusd's default pool, read by qemu-img from an RBD
snapshot of the disk taken for the purpose (the VM running or stopped), and the snapshot is gone
afterwards; a VM made from the image finds the mark the source wrote on its disk before. A clone's
disk is an RBD clone of a protected snapshot of the source's disk in the same pool: a full clone is
flattened and the snapshot removed, a linked one keeps it until the clone goes (or the source goes:
its linked clones are flattened first). Each clone boots with its own hostname and instance-id and
finds the source's mark. nimbusd killed after the copy or clone step (before it was recorded)
leaves no snapshot or RBD image behind.

The cluster (the Ceph relay into the host's network namespace, the pool, the clean-up) is
rbd_cluster.py's.
The module shares the session's set of test hosts (NIMBUS_TESTHOSTS_SET, scripts/testhosts.sh)."""

import json

import pytest

import nimbus_fixtures as nf
from rbd_cluster import USER_DATA, marked_vm, rbd_cluster, start_daemon
from storage_backends import ceph_backend, ceph_cmd, rbd_images  # noqa: F401 (a fixture)
from test_clone import boot_report, qemu_img_info, root_mark, set_power
from testhosts import testhosts  # noqa: F401 (the session fixture)

HOST = "kvm1"


@pytest.fixture(scope="module")
def rcenv(make_env, tiny_image, testhosts, ceph_backend):  # noqa: F811
    with rbd_cluster(make_env, "rbdclone", tiny_image, testhosts, ceph_backend, (HOST,)) as env:
        env.vm = marked_vm(env, "rcsrc", HOST)
        env.api.wait_console("rcsrc", "NIMBUS-READY")
        yield env


def snaps_of(cb, name):
    """The RBD snapshots of an image of the test pool, as Ceph sees them."""
    p = ceph_cmd(cb, "snap", "ls", "--format", "json", f"{cb['rbd_pool']}/{name}", check=False)
    return [s["name"] for s in json.loads(p.stdout or "[]")]


def src_snaps(env):
    return snaps_of(env.cb, f"vm-{env.vm['id']}-disk")


def local_path(env, vol):
    return nf.virsh("vol-path", "--pool", env.daemon.pool_name, vol).stdout.strip()


def check_image(env, image_id):
    """Active, qcow2 of the flavor's disk size, flattened, in nimbusd's default pool, with the
    source's mark."""
    img = env.api.get(f"/v1/images/{image_id}")
    assert img["state"] == "active" and img["disk_format"] == "qcow2", img
    assert img["virtual_size_bytes"] == env.flavor["disk_gib"] << 30, img
    assert img["size_bytes"] > 0 and img["project_id"] == env.vm["project_id"], img
    path = local_path(env, f"image-{image_id}")
    assert "backing-filename" not in qemu_img_info(path)
    assert root_mark(path) == "rcsrc"
    return img


@pytest.mark.parametrize("source_state", ["running", "stopped"])
def test_image_from_vm_on_rbd(rcenv, source_state):
    env = rcenv
    set_power(env, "rcsrc", source_state)
    r = env.api.ok("POST", "/v1/images", {"name": f"rc-{source_state}", "from_vm": "rcsrc"},
                   expect=202)
    env.remember(r["image"]["id"])
    assert r["task"]["kind"] == "image.from-vm", r
    env.api.wait_task(r["task"]["id"])
    img = check_image(env, r["image"]["id"])
    assert env.api.vm("rcsrc")["state"] == source_state  # copied without stopping it
    assert src_snaps(env) == []  # the snapshot read from is gone
    if source_state == "running":
        # a VM from the new image (on the host's default pool) finds the mark
        r = env.api.create_vm("rcfromimg", img["id"], env.flavor["id"], user_data=USER_DATA)
        env.remember(r["vm"]["id"])
        assert boot_report(env, "rcfromimg") == ("rcfromimg", r["vm"]["id"], "rcsrc")
        env.api.delete_vm("rcfromimg")
    env.api.ok("DELETE", f"/v1/images/{img['id']}", expect=204)


def test_crash_during_image_from_vm_on_rbd(rcenv):
    """nimbusd killed after the copy step (the snapshot taken, read and removed, the step not yet
    recorded): the restart copies again and the image is active; no snapshot stays."""
    env = rcenv
    set_power(env, "rcsrc", "running")
    nf.crash_during(env, "image.from-vm:0", "POST", "/v1/images",
                    {"name": "rc-crash", "from_vm": "rcsrc"}, start=start_daemon)
    img = nf.wait_until(lambda: next((i for i in env.api.images() if i["name"] == "rc-crash"
                                      and i["state"] != "uploading"), None),
                        300, "the image task to end")
    env.remember(img["id"])
    check_image(env, img["id"])
    nf.wait_until(lambda: env.api.vm("rcsrc")["task_id"] is None, 120, "the VM to be free")
    assert env.api.vm("rcsrc")["state"] == "running"
    assert src_snaps(env) == []
    env.api.ok("DELETE", f"/v1/images/{img['id']}", expect=204)


# ---- clones ----


def rbd_info(env, name):
    out = ceph_cmd(env.cb, "info", "--format", "json", f"{env.cb['rbd_pool']}/{name}").stdout
    return json.loads(out)


def check_clone(env, name, linked):
    """Its own identity on a copy of the source's disk, an RBD clone in the same pool (linked: of
    a snapshot that stays; full: flattened, no snapshot left on the source)."""
    vm = env.api.vm(name)
    assert vm["pool_id"] == env.pool["id"] and vm["host"] == HOST, vm
    assert boot_report(env, name) == (name, vm["id"], "rcsrc")
    info = rbd_info(env, f"vm-{vm['id']}-disk")
    assert info["size"] == env.flavor["disk_gib"] << 30, info
    if linked:
        parent = info.get("parent", {})
        assert parent.get("image") == f"vm-{env.vm['id']}-disk", info
        assert parent.get("snapshot", "").startswith("nimbus-clone-"), info
        assert src_snaps(env) == [parent["snapshot"]]
    else:
        assert "parent" not in info, info
        assert src_snaps(env) == []
    return vm


def clone(env, name, linked):
    r = env.api.ok("POST", "/v1/vms/rcsrc/clone", {"name": name, "linked": linked}, expect=202)
    env.remember(r["vm"]["id"])
    assert r["task"]["kind"] == "vm.clone", r
    env.api.wait_task(r["task"]["id"])
    return r["vm"]


# Two of the four cases (each boots a guest): a running source linked is the last test's, a
# running one full the crash test's; a stopped one full differs from linked only by the flatten.
@pytest.mark.parametrize("source_state,linked", [("running", False), ("stopped", True)])
def test_clone_on_rbd(rcenv, source_state, linked):
    env = rcenv
    set_power(env, "rcsrc", source_state)
    name = f"rc-{source_state[:3]}-{'lnk' if linked else 'full'}"
    vm = clone(env, name, linked)
    assert env.api.vm("rcsrc")["state"] == source_state
    check_clone(env, name, linked)
    env.api.delete_vm(name)
    # its disk gone, and with it the snapshot it was made of
    assert f"vm-{vm['id']}-disk" not in rbd_images(env.cb)
    assert src_snaps(env) == []


def test_crash_during_clone_on_rbd(rcenv):
    """nimbusd killed after the clone's disk step (snapshot, clone, flatten and the snapshot's
    removal done, the step not recorded): the restart goes through it again and finishes the
    clone; no snapshot is left on the source; its delete leaves no RBD image."""
    env = rcenv
    set_power(env, "rcsrc", "running")
    nf.crash_during(env, "vm.clone:0", "POST", "/v1/vms/rcsrc/clone", {"name": "rc-crash"},
                    start=start_daemon)
    vm = env.api.vm("rc-crash")
    env.remember(vm["id"])
    nf.wait_until(lambda: env.api.vm("rc-crash")["task_id"] is None, 300, "the clone to end")
    assert env.api.vm("rc-crash")["state"] == "running"
    check_clone(env, "rc-crash", False)
    env.api.delete_vm("rc-crash")
    assert [i for i in rbd_images(env.cb) if vm["id"] in i] == []


def test_source_delete_flattens_linked_clones(rcenv):
    """Last: it deletes the source. Its linked clone is flattened first and runs on; the
    snapshot it was made of goes with the source's disk."""
    env = rcenv
    set_power(env, "rcsrc", "running")
    vm = clone(env, "rc-child", True)
    check_clone(env, "rc-child", True)
    env.api.delete_vm("rcsrc")
    assert f"vm-{env.vm['id']}-disk" not in rbd_images(env.cb)
    info = rbd_info(env, f"vm-{vm['id']}-disk")
    assert "parent" not in info, info
    assert env.api.vm("rc-child")["state"] == "running"
    # booted again from its own (flattened) disk, it finds the source's mark there
    seen = env.api.console("rc-child").count("NIMBUS-ROOT-MARK rcsrc")
    set_power(env, "rc-child", "stopped")
    set_power(env, "rc-child", "running")
    nf.wait_until(lambda: env.api.console("rc-child").count("NIMBUS-ROOT-MARK rcsrc") > seen, 300,
                  "the clone to boot again and print the mark")
    env.api.delete_vm("rc-child")
    assert [i for i in rbd_images(env.cb) if vm["id"] in i] == []
