"""The cluster with local storage: the pool lives under /var/lib/libvirt, which every test host
has to itself (scripts/testhosts.sh bind-mounts it per host), so nothing is shared. Images reach
a host over libvirt streams, a live migration copies the disk with the memory, an offline one
copies the disk file. This daemon also runs with --placement pack.
"""

import os
import shutil

import pytest

import nimbus_fixtures as nf
from testhosts import testhosts  # noqa: F401 - the session fixture

HOSTS = ("kvm1", "kvm2", "kvm3")
TICKING = "#!/bin/sh\ntouch /tmp/tick\n"


@pytest.fixture(scope="module")
def lcluster(make_env, tiny_image, testhosts):  # noqa: F811 - the fixture imported above
    env = make_env("clocal")
    env.daemon.pool_path = f"/var/lib/libvirt/images/{env.daemon.pool_name}"
    # dir pools under the hosts' own /var/lib/libvirt too (test_dir_pool_vm_migrates)
    env.daemon.pool_roots = f"{env.daemon.pool_path}-pools"
    env.daemon.extra_args += ["--placement", "pack"]
    env.daemon.start()
    nf.join_test_hosts(env, testhosts, tiny_image, HOSTS)
    yield env
    nf.delete_all_vms(env)
    env.teardown()
    shutil.rmtree(env.daemon.pool_path, ignore_errors=True)
    shutil.rmtree(env.daemon.pool_roots, ignore_errors=True)
    for i in range(1, len(HOSTS) + 1):
        testhosts.exec(i, "rm", "-rf", env.daemon.pool_roots)


def vols(env, i):
    """Volume names in this environment's pool on test host i."""
    p = env.hosts.virsh(i, "vol-list", env.daemon.pool_name)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()[2:]
    return {l.split()[0] for l in lines if l.strip()}


def create(env, name, **extra):
    out = env.api.ok("POST", "/v1/vms", {"name": name, "image": env.image["id"],
                                         "flavor": env.flavor["id"], **extra}, expect=202)
    env.remember(out["vm"]["id"])
    env.api.wait_task(out["task"]["id"])
    return env.api.vm(out["vm"]["id"])


def test_pack_and_images_copied_over_libvirt(lcluster):
    env = lcluster
    image_vol = f"image-{env.image['id']}"
    assert os.path.isdir(env.daemon.pool_path)
    a = create(env, "a", user_data=TICKING)
    b = create(env, "b")
    # pack: the second VM joins the first on the fullest host that still fits
    assert a["host"] == b["host"] == "kvm1", (a, b)
    assert image_vol in vols(env, 1)
    assert image_vol not in vols(env, 2)
    # nothing of kvm1's pool is visible in the controller's: the storage is really local
    assert not os.path.exists(os.path.join(env.daemon.pool_path, f"vm-{a['id']}-disk.qcow2"))
    env.api.delete_vm(b["id"])
    env.api.wait_console(a["id"], "NIMBUS-READY")


def test_failed_migration_removes_the_destination_copies(lcluster):
    env = lcluster
    a = [v for v in env.api.vms() if v["name"] == "a"][0]
    mine = {f"vm-{a['id']}-{s}" for s in ("disk.qcow2", "seed.iso", "console.log")}
    r = env.api.ok("POST", f"/v1/vms/{a['id']}/migrate", {"host": "kvm3", "bandwidth_mib": 1},
                   expect=202)
    task_id = r["task"]["id"]
    nf.wait_until(lambda: (env.api.task(task_id).get("progress") or 0) > 0, 60,
                  "migration progress")
    assert mine & vols(env, 3), "the destination got no copies to migrate into"
    env.api.ok("POST", f"/v1/tasks/{task_id}/cancel", expect=202)
    t = env.api.wait_task(task_id, expect="failed")
    assert t["error"]["code"] == "CANCELLED", t
    after = env.api.vm(a["id"])
    assert after["host"] == "kvm1" and after["state"] == "running", after
    assert not mine & vols(env, 3), "copies left on the destination after the failure"
    assert {f"vm-{a['id']}-disk.qcow2", f"vm-{a['id']}-seed.iso"} <= vols(env, 1)


def test_live_migration_copies_the_local_disk(lcluster):
    env = lcluster
    a = [v for v in env.api.vms() if v["name"] == "a"][0]
    disk = f"vm-{a['id']}-disk.qcow2"
    env.api.wait_console(a["id"], "NIMBUS-TICK", count=2, timeout=60)
    r = env.api.action(a["id"], "migrate", {"host": "kvm2"})
    task = env.api.task(r["task"]["id"])
    assert task["state"] == "succeeded", task
    after = env.api.vm(a["id"])
    assert after["host"] == "kvm2" and after["state"] == "running", after
    assert disk in vols(env, 2) and f"image-{env.image['id']}" in vols(env, 2)
    assert disk not in vols(env, 1), "the source's copy of the disk was not removed"
    ticks = env.api.console(a["id"]).count("NIMBUS-TICK")
    env.api.wait_console(a["id"], "NIMBUS-TICK", count=ticks + 2, timeout=60)


def test_offline_migration_copies_the_disk_file(lcluster):
    env = lcluster
    a = [v for v in env.api.vms() if v["name"] == "a"][0]
    disk = f"vm-{a['id']}-disk.qcow2"
    env.api.action(a["id"], "stop", {"force": True})
    env.api.action(a["id"], "migrate", {"host": "kvm3", "offline": True})
    assert env.api.vm(a["id"])["host"] == "kvm3"
    assert disk in vols(env, 3) and disk not in vols(env, 2)
    env.api.action(a["id"], "start")
    # it boots again from the copied disk
    env.api.wait_console(a["id"], "NIMBUS-READY", count=2)
    env.api.delete_vm(a["id"])
    assert disk not in vols(env, 3)
    # deleting the image removes the copies Nimbus made on each host
    env.api.ok("DELETE", f"/v1/images/{env.image['id']}", expect=204)
    for i in (1, 2, 3):
        assert f"image-{env.image['id']}" not in vols(env, i), i


def test_dir_pool_vm_migrates(lcluster, tiny_image):
    """A VM whose root disk is in a dir pool (each host's own directory) moves with its disk:
    live (an overlay made in the destination's pool, filled by the migration) and offline (the
    file copied); the source's copy goes, and the guest runs on from the same disk."""
    env = lcluster
    img = nf.upload_image(env, "dpm-tiny", tiny_image)
    path = os.path.join(env.daemon.pool_roots, "dpm")
    pool = env.api.ok("POST", "/v1/pools", {"name": "dpm", "type": "dir", "path": path})
    lv = pool["libvirt_name"]
    try:
        assert {h["state"] for h in pool["hosts"]} == {"active"}, pool
        d = create(env, "d", image=img["id"], pool="dpm", user_data=TICKING)
        disk = f"vm-{d['id']}-disk.qcow2"
        src = int(d["host"][3:])

        def in_pool(i):
            p = env.hosts.virsh(i, "vol-list", lv)
            assert p.returncode == 0, p.stderr
            return disk in p.stdout

        assert in_pool(src)
        env.api.wait_console(d["id"], "NIMBUS-TICK", count=2, timeout=120)
        dst = 2 if src != 2 else 3
        r = env.api.action(d["id"], "migrate", {"host": f"kvm{dst}"})
        assert env.api.task(r["task"]["id"])["state"] == "succeeded"
        after = env.api.vm(d["id"])
        assert after["host"] == f"kvm{dst}" and after["state"] == "running", after
        assert after["pool_id"] == pool["id"], after
        assert in_pool(dst) and not in_pool(src), "the disk did not move between the dir pools"
        ticks = env.api.console(d["id"]).count("NIMBUS-TICK")
        env.api.wait_console(d["id"], "NIMBUS-TICK", count=ticks + 2, timeout=60)

        env.api.action(d["id"], "stop", {"force": True})
        back = src
        env.api.action(d["id"], "migrate", {"host": f"kvm{back}", "offline": True})
        assert env.api.vm(d["id"])["host"] == f"kvm{back}"
        assert in_pool(back) and not in_pool(dst)
        env.api.action(d["id"], "start")
        env.api.wait_console(d["id"], "NIMBUS-READY", count=2)
        env.api.delete_vm(d["id"])
        assert not in_pool(back)
    finally:
        nf.delete_all_vms(env)
        env.api.request("DELETE", f"/v1/pools/{pool['id']}")
        env.api.request("DELETE", f"/v1/images/{img['id']}")
