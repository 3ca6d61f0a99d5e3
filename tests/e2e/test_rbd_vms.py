"""VMs whose root disk is in a Ceph RBD pool (docs/storage.md, "VM disks in pools"), with the real
test Ceph (scripts/test-ceph.sh) and real TCG guests on two namespace test hosts with local
default pools (under /var/lib/libvirt, which each host has to itself): the image is written once
into the pool, each VM's disk is an RBD clone of it (a parent, no copy), the guest boots from it
and marks it, a live migration moves no storage and keeps the same RBD image, the VM's delete
leaves no RBD image, the image's delete takes its base; bad `pool` values change nothing; a
nimbusd killed after the clone and after the define leaves no orphan image.

The cluster (the test hosts reaching the test Ceph through a relay, the rbd pool, the clean-up) is
rbd_cluster.py's, shared with the other modules on VMs on RBD.

The module shares the session's set of test hosts (NIMBUS_TESTHOSTS_SET, scripts/testhosts.sh)
with the other modules; its crash tests run in the crash run's set."""

import json
import os
import re

import pytest

import nimbus_fixtures as nf
from rbd_cluster import USER_DATA, rbd_cluster, start_daemon
from storage_backends import ceph_backend, ceph_cmd, rbd_images  # noqa: F401 (a fixture)
from testhosts import testhosts  # noqa: F401 (the session fixture)

HOSTS = ("kvm1", "kvm2")
CLONE_STEPS = 0  # vm.create's step "create_disk": the clone exists after it
DEFINE_STEP = 3


@pytest.fixture(scope="module")
def renv(make_env, tiny_image, testhosts, ceph_backend):  # noqa: F811
    with rbd_cluster(make_env, "rbdvms", tiny_image, testhosts, ceph_backend, HOSTS) as env:
        yield env


def rbd_info(env, name):
    out = ceph_cmd(env.cb, "info", "--format", "json", f"{env.cb['rbd_pool']}/{name}").stdout
    return json.loads(out)


def base_name(env):
    return f"nimbus-image-{env.image['id']}"


def disk_name(vm_id):
    return f"vm-{vm_id}-disk"


def create(env, name, expect=202, **extra):
    body = {"name": name, "image": env.image["id"], "flavor": env.flavor["id"], **extra}
    r = env.api.request("POST", "/v1/vms", body)
    assert r.status == expect, f"create {name}: {r!r}"
    if r.status != 202:
        return r
    env.remember(r.json["vm"]["id"])
    env.rbd_vms = getattr(env, "rbd_vms", set()) | {r.json["vm"]["id"]}
    return r.json


def default_pool_vols(env, i):
    p = env.hosts.virsh(i, "vol-list", env.daemon.pool_name)
    assert p.returncode == 0, p.stderr
    return {l.split()[0] for l in p.stdout.splitlines()[2:] if l.strip()}


def log_text(env):
    with open(env.daemon.log_path, errors="replace") as f:
        return f.read()


def test_vm_on_rbd_boots_migrates_live_without_copy_and_goes(renv):
    env, cb = renv, renv.cb
    out = create(env, "rbdvm", pool="ceph", host="kvm1", user_data=USER_DATA)
    vm = out["vm"]
    assert vm["pool_id"] == env.pool["id"], vm
    env.api.wait_task(out["task"]["id"])
    env.api.wait_console(vm["id"], "NIMBUS-ROOT-MARKED rbdvm")
    # the base once, the VM's disk a copy-on-write clone of it, grown to the flavor's disk
    images = rbd_images(cb)
    assert {base_name(env), disk_name(vm["id"])} <= images, images
    info = rbd_info(env, disk_name(vm["id"]))
    assert info["parent"]["image"] == base_name(env), info
    assert info["parent"]["pool"] == cb["rbd_pool"], info
    assert info["size"] == env.flavor["disk_gib"] << 30, info
    # the domain's vda is a network disk over librbd; nothing of it in the default pool
    dom = nf.vm_domain(vm["id"])
    xml = env.hosts.virsh(1, "dumpxml", dom).stdout
    assert f"protocol='rbd' name='{cb['rbd_pool']}/{disk_name(vm['id'])}'" in xml, xml
    assert f"<secret type='ceph' uuid='{env.pool['id']}'/>" in xml, xml
    assert not any(vm["id"] in v and "disk" in v for v in default_pool_vols(env, 1))
    assert cb["key"] not in log_text(env)

    # live migration: no storage copy, the same RBD image (id and parent) on the other host
    before = log_text(env).count("storage copy: no")
    r = env.api.action(vm["id"], "migrate", {"host": "kvm2"})
    moved = env.api.vm(vm["id"])
    assert (moved["host"], moved["state"]) == ("kvm2", "running"), moved
    started = re.findall(rf"task {r['task']['id']}: live migration of {dom} started "
                         r"\(storage copy: (\w+)\)", log_text(env))
    assert started == ["no"], started
    assert log_text(env).count("storage copy: no") == before + 1
    after = rbd_info(env, disk_name(vm["id"]))
    assert (after["id"], after["parent"]) == (info["id"], info["parent"]), (info, after)
    assert dom in env.hosts.domains(2) and dom not in env.hosts.domains(1)
    assert not any(vm["id"] in v and "disk" in v for v in default_pool_vols(env, 2))
    # the guest kept running and reads its mark back from the same disk after a reboot there
    seen = env.api.console(vm["id"]).count("NIMBUS-ROOT-MARK rbdvm")
    env.api.action(vm["id"], "reboot")
    env.api.wait_console(vm["id"], "NIMBUS-ROOT-MARK rbdvm", count=seen + 1)
    assert env.api.console(vm["id"]).count("NIMBUS-ROOT-MARKED") == 1

    # a second VM from the same image: a second clone of the one base
    out2 = create(env, "rbdvm2", pool=env.pool["id"])
    env.api.wait_task(out2["task"]["id"])
    assert rbd_info(env, disk_name(out2["vm"]["id"]))["parent"]["image"] == base_name(env)
    assert sum(1 for i in rbd_images(cb) if i.startswith(f"nimbus-image-{env.image['id']}")) == 1

    # what covers qcow2 files only in this version refuses, and changes nothing (clones and
    # images from such a VM: test_rbd_clone.py)
    for path, body, code in [
            ("/v1/backups", {"vm": vm["id"], "incremental": True}, "BACKUP_UNSUPPORTED")]:
        r = env.api.request("POST", path, body)
        assert (r.status, r.code) == (409, code), (path, r)
    assert env.api.get(f"/v1/vms/{vm['id']}/snapshots")["snapshots"] == []

    # the pool holds VMs' disks: it cannot go
    r = env.api.request("DELETE", "/v1/pools/ceph")
    assert (r.status, r.code) == (409, "POOL_IN_USE"), r

    # delete: the clones go; the base stays until the image goes
    for v in (vm, out2["vm"]):
        env.api.delete_vm(v["id"])
        assert disk_name(v["id"]) not in rbd_images(cb)
    assert base_name(env) in rbd_images(cb)


def test_bad_pool_is_refused_and_nothing_made(renv):
    env, cb = renv, renv.cb
    vms_before = {v["id"] for v in env.api.vms()}
    images_before = rbd_images(cb)
    cases = [
        ("no-such-pool", 404, "POOL_NOT_FOUND"),
        ("../etc", 400, "INVALID_REQUEST"),
        ("default", None, None),  # the default pool by name: as without `pool`
    ]
    for pool, status, code in cases:
        if status is None:
            continue
        r = env.api.request("POST", "/v1/vms", {"name": "badpool", "image": env.image["id"],
                                                "flavor": env.flavor["id"], "pool": pool})
        assert (r.status, r.code) == (status, code), (pool, r)
    # a netfs pool is no place for a root disk (only a dir or an rbd pool; test_vm_dir_pool.py)
    d = env.api.ok("POST", "/v1/pools", {
        "name": "localnfs", "type": "netfs", "server": "127.0.0.1", "export": "/nimbus-e2e",
        "path": os.path.join(env.daemon.pool_roots, "rbdtest-nfs")}, expect=201)
    try:
        r = env.api.request("POST", "/v1/vms", {"name": "badpool", "image": env.image["id"],
                                                "flavor": env.flavor["id"], "pool": "localnfs"})
        assert (r.status, r.code) == (400, "INVALID_REQUEST"), r
    finally:
        env.api.request("DELETE", f"/v1/pools/{d['id']}")
    # an rbd pool no host has active (its Ceph pool does not exist): no host fits, 409
    broken = env.api.ok("POST", "/v1/pools", {
        "name": "broken", "type": "rbd", "monitors": cb["monitors"], "rbd_pool": "no-such-pool",
        "user": cb["user"], "key": cb["key"]}, expect=201)
    try:
        assert all(h["state"] != "active" for h in broken["hosts"]), broken
        r = env.api.request("POST", "/v1/vms", {"name": "badpool", "image": env.image["id"],
                                                "flavor": env.flavor["id"], "pool": "broken"})
        assert (r.status, r.code) == (409, "NO_VALID_HOST"), r
        assert "without the VM's storage pool active" in r.json["error"]["message"], r
    finally:
        env.api.request("DELETE", "/v1/pools/broken")
    assert {v["id"] for v in env.api.vms()} == vms_before
    assert rbd_images(cb) == images_before


@pytest.mark.parametrize("step", [CLONE_STEPS, DEFINE_STEP], ids=["after-clone", "after-define"])
def test_crash_during_create_on_rbd(renv, step):
    env, cb = renv, renv.cb
    name = f"rbdcrash{step}"
    nf.crash_during(env, f"vm.create:{step}", "POST", "/v1/vms",
                    {"name": name, "image": env.image["id"], "flavor": env.flavor["id"],
                     "pool": "ceph"}, start=start_daemon)
    vm = env.api.vm(name)
    assert vm is not None, "the VM was lost by the crash"
    env.remember(vm["id"])
    env.rbd_vms = getattr(env, "rbd_vms", set()) | {vm["id"]}
    task = [t for t in env.api.get(f"/v1/tasks?vm={vm['id']}")["tasks"]
            if t["kind"] == "vm.create"]
    assert len(task) == 1, task
    env.api.wait_task(task[0]["id"])
    env.api.wait_vm_state(vm["id"], "running")
    # one clone, the VM's, with the base as parent; nothing else of it
    images = {i for i in rbd_images(cb) if vm["id"] in i}
    assert images == {disk_name(vm["id"])}, images
    assert rbd_info(env, disk_name(vm["id"]))["parent"]["image"] == base_name(env)
    env.api.delete_vm(vm["id"])
    assert not {i for i in rbd_images(cb) if vm["id"] in i}


def test_image_delete_takes_its_base(renv):
    env, cb = renv, renv.cb
    nf.delete_all_vms(env)
    assert base_name(env) in rbd_images(cb)
    env.api.ok("DELETE", f"/v1/images/{env.image['id']}")
    nf.wait_until(lambda: base_name(env) not in rbd_images(cb), 60, "the image's base to go")
    env.image = None
