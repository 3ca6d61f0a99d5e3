"""VMs whose root disk is in a dir pool other than the default (docs/storage.md, "VM disks in
pools"), with a real TCG guest on qemu:///system: the disk is a qcow2 overlay in that pool's
directory, backed by the image's copy in the default pool (absolute path); the guest boots from
it; a VM snapshot and its revert work on it; the pool cannot go while the disk is there; the
VM's delete removes the file. Bad `pool` values change nothing; the stack's `pool` key (apply
and export) with the real CLI; a nimbusd killed after the disk step leaves one disk, no orphan.
Clones (full and linked, of a stopped and of a running source) get their disk in the same dir
pool and boot with their own identity on the source's disk (test_clone.py's root mark); an image
made from such a VM goes in the default pool and a VM made from it finds the mark.

Own nimbusd (the crash test restarts it) and one guest shared by the checks that need one."""

import json
import os
import signal
import subprocess
import uuid

import pytest

import nimbus_fixtures as nf
from test_clone import USER_DATA, boot_report, qemu_img_info, root_mark, set_power


@pytest.fixture(scope="module")
def denv(make_env, tiny_image):
    env = make_env("dirpool")
    env.daemon.start()
    env.pool_ids = []
    try:
        env.image = nf.upload_image(env, "dp-tiny", tiny_image)
        env.flavor = nf.create_small_flavor(env)
        path = os.path.join(env.daemon.pool_roots, "fastdp")
        env.pool = env.api.ok("POST", "/v1/pools", {"name": "fastdp", "type": "dir", "path": path})
        env.pool_ids.append(env.pool["id"])
        env.pool_path = path
        yield env
    finally:
        if env.daemon.alive():
            try:
                nf.delete_all_vms(env)
            except AssertionError as e:
                print(f"cleanup of the VMs: {e}")
            for pid in env.pool_ids:
                env.api.request("DELETE", f"/v1/pools/{pid}")
        for pid in env.pool_ids:
            name = f"nimbus-pool-{pid}"
            if nf.pool_exists(name):
                nf.virsh("pool-destroy", name, check=False)
                nf.virsh("pool-undefine", name, check=False)
        env.teardown()


def lv_pool(env):
    return env.pool["libvirt_name"]


def disk_vol(vm_id):
    return f"vm-{vm_id}-disk.qcow2"


def pool_files(env):
    return sorted(os.listdir(env.pool_path)) if os.path.isdir(env.pool_path) else []


def backing_file(path):
    p = subprocess.run(["qemu-img", "info", "-U", "--output=json", path], capture_output=True,
                       text=True, check=True)
    return json.loads(p.stdout).get("backing-filename")


def create_in_pool(env, name, pool, wait=True, **extra):
    r = env.api.create_vm(name, env.image["id"], env.flavor["id"], wait=False, pool=pool, **extra)
    env.remember(r["vm"]["id"])
    if wait:
        env.api.wait_task(r["task"]["id"])
    return r


@pytest.fixture(scope="module")
def guest(denv):
    """One VM in the dir pool, booted: the checks that need a guest share it."""
    r = create_in_pool(denv, "dpvm", "fastdp")
    denv.api.wait_console("dpvm", "NIMBUS-READY")
    yield denv.api.vm("dpvm")


def test_disk_in_the_dir_pool(denv, guest):
    env = denv
    assert guest["pool_id"] == env.pool["id"], guest
    vol = disk_vol(guest["id"])
    # libvirt has it in the pool, and the file is in the pool's directory
    assert vol in nf.volume_names(lv_pool(env)), nf.volume_names(lv_pool(env))
    assert vol not in nf.volume_names(env.daemon.pool_name)
    path = os.path.join(env.pool_path, vol)
    assert os.path.isfile(path)
    # the domain runs from that file, an overlay of the image's copy in the default pool
    assert path in nf.domain_disk_sources(nf.vm_domain(guest["id"]))
    img_path = nf.virsh("vol-path", "--pool", env.daemon.pool_name,
                        f"image-{env.image['id']}").stdout.strip()
    assert backing_file(path) == img_path
    assert nf.domstate(nf.vm_domain(guest["id"])) == "running"


def test_pool_in_use(denv, guest):
    r = denv.api.request("DELETE", f"/v1/pools/{denv.pool['id']}")
    assert r.status == 409 and r.code == "POOL_IN_USE", r
    assert denv.api.get(f"/v1/pools/{denv.pool['id']}")["id"] == denv.pool["id"]


def test_snapshot_and_revert(denv, guest):
    env = denv
    path = os.path.join(env.pool_path, disk_vol(guest["id"]))
    r = env.api.ok("POST", "/v1/vms/dpvm/snapshots", {"name": "s1"}, expect=202)
    env.api.wait_task(r["task"]["id"])
    tags = subprocess.run(["qemu-img", "snapshot", "-U", "-l", path], capture_output=True,
                          text=True, check=True).stdout
    # an internal snapshot of the file in the dir pool (libvirt's tag: nimbus-snap-<id>)
    assert f"nimbus-snap-{r['snapshot']['id']}" in tags, tags
    r = env.api.ok("POST", "/v1/vms/dpvm/snapshots/s1/revert", {}, expect=202)
    env.api.wait_task(r["task"]["id"])
    env.api.wait_vm_state("dpvm", "running")
    r = env.api.request("DELETE", "/v1/vms/dpvm/snapshots/s1")
    assert r.status == 202, r
    env.api.wait_task(r.json["task"]["id"])


def backup_of(env):
    """A full backup of dpvm (--wait), and whether its file has the disk's content now."""
    b = env.cli.json("backup", "create", "dpvm", "--wait")
    assert (b["kind"], b["state"]) == ("full", "ready"), b
    path = nf.virsh("vol-path", "--pool", env.daemon.pool_name, b["volume"]).stdout.strip()
    disk = os.path.join(env.pool_path, disk_vol(env.api.vm("dpvm")["id"]))
    same = subprocess.run(["qemu-img", "compare", "-U", disk, path], capture_output=True,
                          text=True)
    return b, same.returncode == 0, same.stdout + same.stderr


def test_backups(denv, guest):
    """A backup reads the disk in the dir pool: through the running QEMU (paused, so that the
    disk stays as the job copies it) and, stopped, as a copy of the file's chain."""
    env = denv
    made = []
    try:
        env.api.action("dpvm", "pause")
        try:
            b, same, why = backup_of(env)
            made.append(b["id"])
            assert same, why
        finally:
            env.api.action("dpvm", "resume")
        env.api.action("dpvm", "stop", body={"force": True})
        try:
            b, same, why = backup_of(env)
            made.append(b["id"])
            assert same, why
        finally:
            env.api.action("dpvm", "start")
    finally:
        for bid in reversed(made):
            r = env.api.request("DELETE", f"/v1/backups/{bid}")
            if r.status == 202:
                env.api.wait_task(r.json["task"]["id"])


def test_not_yet(denv, guest):
    """What is not done to such a VM yet is refused with a stable code, nothing changed."""
    r = denv.api.request("POST", "/v1/vms/dpvm/migrate", {})
    assert r.status in (409, 400) and r.code in ("INVALID_STATE", "NO_VALID_HOST"), r
    assert [v["name"] for v in denv.api.vms()] == ["dpvm"]


def test_stack_pool_key(denv, guest, tmp_path):
    cli = denv.cli
    y = cli.run("export", "vm", "dpvm").stdout
    assert "pool: fastdp" in y, y
    f = tmp_path / "dp.yaml"
    f.write_text(y)
    p = cli.run("apply", "-f", str(f), "--dry-run")
    assert "= vm dpvm" in p.stdout, p.stdout
    # the default pool by name is not where this VM's disk is: a change apply cannot make
    f.write_text(y.replace("pool: fastdp", "pool: default"))
    p = cli.run("apply", "-f", str(f), "--dry-run", check=False)
    assert p.returncode != 0 and "cannot change pool of vm dpvm" in p.stdout + p.stderr, p


def test_delete_removes_the_file(denv, guest):
    env = denv
    path = os.path.join(env.pool_path, disk_vol(guest["id"]))
    assert os.path.isfile(path)
    env.api.delete_vm("dpvm")
    assert not os.path.exists(path)
    assert disk_vol(guest["id"]) not in nf.volume_names(lv_pool(env))
    assert pool_files(env) == []


def test_unknown_pool(denv):
    before = denv.api.vms()
    r = denv.api.request("POST", "/v1/vms", {"name": "dpx", "image": denv.image["id"],
                                            "flavor": denv.flavor["id"], "pool": "no-such-pool"})
    assert r.status == 404 and r.code == "POOL_NOT_FOUND", r
    assert denv.api.vms() == before


def test_pool_on_no_host(denv):
    """A dir pool active on no host (its path is a file: it cannot start): 409 NO_VALID_HOST,
    and nothing is made."""
    env = denv
    path = os.path.join(env.daemon.pool_roots, "brokendp")
    os.makedirs(env.daemon.pool_roots, exist_ok=True)
    with open(path, "w") as fh:
        fh.write("not a directory\n")
    try:
        r = env.api.request("POST", "/v1/pools", {"name": "brokendp", "type": "dir", "path": path})
        assert r.status in (200, 201), r
        env.pool_ids.append(r.json["id"])
        states = [h["state"] for h in env.api.get("/v1/pools/brokendp").get("hosts", [])]
        assert "active" not in states, states
        before = env.api.vms()
        r = env.api.request("POST", "/v1/vms", {"name": "dpy", "image": env.image["id"],
                                               "flavor": env.flavor["id"], "pool": "brokendp"})
        assert r.status == 409 and r.code == "NO_VALID_HOST", r
        assert env.api.vms() == before
        env.api.ok("DELETE", "/v1/pools/brokendp")
    finally:
        os.unlink(path)


def test_default_pool_by_name(denv):
    r = denv.api.request("POST", "/v1/vms", {"name": "dpz", "image": denv.image["id"],
                                            "flavor": denv.flavor["id"], "pool": "default"})
    # the default pool by name is the same as no pool
    assert r.status == 202, r
    denv.remember(r.json["vm"]["id"])
    denv.api.wait_task(r.json["task"]["id"])
    assert denv.api.vm("dpz")["pool_id"] in (None, "")
    denv.api.delete_vm("dpz")


def test_crash_after_disk_step(denv):
    """nimbusd SIGKILLed right after a dir-pool VM's disk step: the restart finishes the create
    with exactly one disk in the pool, and the delete leaves none. The start-up sweep removes a
    VM disk in the pool whose VM row does not exist, and leaves a file not named like Nimbus's."""
    env = denv
    orphan = f"vm-{uuid.uuid4()}-disk.qcow2"
    for vol in (orphan, "operator.qcow2"):
        nf.virsh("vol-create-as", lv_pool(env), vol, "1M", "--format", "qcow2")
    assert {orphan, "operator.qcow2"} <= set(pool_files(env))
    env.daemon.stop()
    env.daemon.start(crash_at="vm.create:0")
    try:
        r = env.api.request("POST", "/v1/vms", {"name": "dpcrash", "image": env.image["id"],
                                               "flavor": env.flavor["id"], "pool": "fastdp"},
                            timeout=30)
    except AssertionError:
        r = None
    rc = env.daemon.wait_dead(60)
    assert rc == -signal.SIGKILL, rc
    files = pool_files(env)
    assert orphan not in files and "operator.qcow2" in files, files
    nf.virsh("vol-delete", "--pool", lv_pool(env), "operator.qcow2")
    env.daemon.start()
    vm = env.api.vm("dpcrash")
    env.remember(vm["id"])
    task = [t for t in env.api.get(f"/v1/tasks?vm={vm['id']}")["tasks"]
            if t["kind"] == "vm.create"][0]
    env.api.wait_task(task["id"])
    assert pool_files(env) == [disk_vol(vm["id"])]
    # the rest of the VM where it always is: its seed in the default pool, its domain defined
    assert f"vm-{vm['id']}-seed.iso" in nf.volume_names(env.daemon.pool_name)
    assert disk_vol(vm["id"]) not in nf.volume_names(env.daemon.pool_name)
    assert nf.domstate(nf.vm_domain(vm["id"])) == "running"
    env.api.delete_vm("dpcrash")
    assert pool_files(env) == []


# ---- clones and images of a VM in the dir pool (after the checks above: they count files) ----


def scratch_files(env):
    """clone-<task>.qcow2 scratch files left in the dir pool or in the default pool."""
    return [v for v in pool_files(env) + sorted(nf.volume_names(env.daemon.pool_name))
            if v.startswith("clone-")]


@pytest.fixture(scope="module")
def msrc(denv):
    """A VM in the dir pool whose user-data marks its root disk (test_clone.py's), booted."""
    r = create_in_pool(denv, "dpsrc", "fastdp", user_data=USER_DATA)
    denv.api.wait_console("dpsrc", "NIMBUS-ROOT-MARKED dpsrc")
    denv.api.wait_console("dpsrc", "NIMBUS-READY")
    return denv.api.vm(r["vm"]["id"])


def image_of(env, name):
    r = env.api.ok("POST", "/v1/images", {"name": name, "from_vm": "dpsrc"}, expect=202)
    env.remember(r["image"]["id"])
    assert r["task"]["kind"] == "image.from-vm", r
    env.api.wait_task(r["task"]["id"])
    img = env.api.get(f"/v1/images/{r['image']['id']}")
    assert img["state"] == "active" and img["disk_format"] == "qcow2", img
    # in the default pool (where images live), flattened: nothing of it in the dir pool
    path = nf.virsh("vol-path", "--pool", env.daemon.pool_name, f"image-{img['id']}").stdout.strip()
    assert "backing-filename" not in qemu_img_info(path)
    assert root_mark(path) == "dpsrc"
    return img


def test_image_from_vm_in_dir_pool(denv, msrc):
    env = denv
    before = pool_files(env)
    set_power(env, "dpsrc", "running")
    img = image_of(env, "dp-from-running")
    assert env.api.vm("dpsrc")["state"] == "running"
    # a VM from the new image finds the mark written before the image was made
    r = env.api.create_vm("dpfromimg", img["id"], env.flavor["id"], user_data=USER_DATA)
    env.remember(r["vm"]["id"])
    assert boot_report(env, "dpfromimg") == ("dpfromimg", r["vm"]["id"], "dpsrc")
    env.api.delete_vm("dpfromimg")
    set_power(env, "dpsrc", "stopped")
    img2 = image_of(env, "dp-from-stopped")
    assert env.api.vm("dpsrc")["state"] == "stopped"
    assert pool_files(env) == before and scratch_files(env) == []
    for i in (img, img2):
        env.api.ok("DELETE", f"/v1/images/{i['id']}", expect=204)


# Two of the four cases (each boots a guest): a running source linked is the crash test's; a
# stopped one full is libvirt's copy across pools that test_image_from_vm_in_dir_pool makes too.
@pytest.mark.parametrize("source_state,linked", [("stopped", True), ("running", False)])
def test_clone_in_dir_pool(denv, msrc, source_state, linked):
    env = denv
    before = pool_files(env)
    set_power(env, "dpsrc", source_state)
    name = f"dpcl-{source_state[:3]}-{'lnk' if linked else 'full'}"
    r = env.api.ok("POST", "/v1/vms/dpsrc/clone", {"name": name, "linked": linked}, expect=202)
    env.remember(r["vm"]["id"])
    env.api.wait_task(r["task"]["id"])
    vm = env.api.vm(name)
    assert vm["pool_id"] == env.pool["id"], vm
    assert env.api.vm("dpsrc")["state"] == source_state
    # its own hostname and instance-id, on a copy of the source's disk
    assert boot_report(env, name) == (name, vm["id"], "dpsrc")
    # its disk in the dir pool, the domain running from it; linked: on the image's copy
    path = os.path.join(env.pool_path, disk_vol(vm["id"]))
    assert path in nf.domain_disk_sources(nf.vm_domain(vm["id"]))
    assert disk_vol(vm["id"]) not in nf.volume_names(env.daemon.pool_name)
    img_path = nf.virsh("vol-path", "--pool", env.daemon.pool_name,
                        f"image-{env.image['id']}").stdout.strip()
    assert qemu_img_info(path).get("backing-filename") == (img_path if linked else None)
    assert scratch_files(env) == []
    env.api.delete_vm(name)
    assert pool_files(env) == before


def test_crash_during_clone_in_dir_pool(denv, msrc):
    """nimbusd killed after a linked clone's disk step (a running source: backup job, rebase,
    scratch file removed; the step not recorded): the restart copies again and finishes the
    clone, with one disk in the dir pool and no scratch file; its delete leaves none."""
    env = denv
    before = pool_files(env)
    set_power(env, "dpsrc", "running")
    nf.crash_during(env, "vm.clone:0", "POST", "/v1/vms/dpsrc/clone",
                    {"name": "dpcl-crash", "linked": True})
    vm = env.api.vm("dpcl-crash")
    env.remember(vm["id"])
    nf.wait_until(lambda: env.api.vm("dpcl-crash")["task_id"] is None, 300, "the clone to end")
    assert env.api.vm("dpcl-crash")["state"] == "running"
    assert boot_report(env, "dpcl-crash") == ("dpcl-crash", vm["id"], "dpsrc")
    assert pool_files(env) == sorted(before + [disk_vol(vm["id"])]) and scratch_files(env) == []
    env.api.delete_vm("dpcl-crash")
    assert pool_files(env) == before
