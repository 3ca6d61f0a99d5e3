"""Volumes with real guests (docs/storage.md, "Volumes"): create in the default pool, hot-plug
into a running guest that reports the disk on its console and writes a marker on it, online
resize, detach, attach to a second guest that reads the marker back; the refusals (in use,
another project's, quotas, bad input) change nothing; a VM's delete leaves its volume; a
nimbusd killed in the middle of an attach or a create ends with the store and libvirt agreeing.

Own nimbusd (the crash test restarts it) and two guests for the whole module."""

import re
import sqlite3
import subprocess

import pytest

import nimbus_fixtures as nf
from storage_backends import ceph_backend, rbd_images  # noqa: F401 (a pytest fixture)

GIB = 1 << 30


@pytest.fixture(scope="module")
def venv(make_env, tiny_image):
    env = make_env("volumes")
    env.daemon.start()
    env.image = nf.upload_image(env, "vol-tiny", tiny_image)
    env.flavor = nf.create_small_flavor(env)
    env.vms = {}
    try:
        tasks = []
        for name in ("vola", "volb"):
            r = env.api.create_vm(name, env.image["id"], env.flavor["id"], wait=False)
            env.remember(r["vm"]["id"])
            env.vms[name] = r["vm"]
            tasks.append(r["task"]["id"])
        nf.wait_tasks(env.api, tasks)
        for name in env.vms:
            env.api.wait_console(name, "NIMBUS-READY")
        yield env
    finally:
        if env.daemon.alive():
            for v in env.api.get("/v1/volumes")["volumes"]:
                if v["state"] == "attached":
                    r = env.api.request("POST", f"/v1/volumes/{v['id']}/detach", body={})
                    if r.status == 202:
                        env.api.wait_task(r.json["task"]["id"], expect=None)
            for name in env.vms:
                try:
                    env.api.delete_vm(name)
                except AssertionError as e:
                    print(f"cleanup of VM {name}: {e}")
            for v in env.api.get("/v1/volumes")["volumes"]:
                r = env.api.request("DELETE", f"/v1/volumes/{v['id']}")
                if r.status == 202:
                    env.api.wait_task(r.json["task"]["id"], expect=None)
        env.teardown()


def vol_name(v):
    return f"nimbus-vol-{v['id']}"


def libvirt_capacity(env, v):
    """The libvirt volume's capacity in bytes, None when it does not exist."""
    p = nf.virsh("vol-dumpxml", "--pool", env.daemon.pool_name, vol_name(v), check=False)
    if p.returncode != 0:
        return None
    return int(re.search(r"<capacity unit='bytes'>(\d+)</capacity>", p.stdout).group(1))


def domain_xml(vm_id, inactive=False):
    args = ["dumpxml", nf.vm_domain(vm_id)] + (["--inactive"] if inactive else [])
    return nf.virsh(*args).stdout


def serial(v):
    return v["id"][:20]


def has_disk(vm_id, v, inactive=False):
    return f"<serial>{serial(v)}</serial>" in domain_xml(vm_id, inactive)


def vol(env, ident):
    r = env.api.request("GET", f"/v1/volumes/{ident}")
    return r.json if r.status == 200 else None


def wait_task(env, resp, expect="succeeded"):
    return env.api.wait_task(resp["task"]["id"], expect=expect)


def test_hotplug_marker_resize_and_second_guest(venv):
    env, cli = venv, venv.cli
    a, b = env.vms["vola"], env.vms["volb"]
    made = cli.json("volume", "create", "data1", "--size", "1", "--wait")
    assert (made["state"], made["size_gib"], made["format"]) == ("available", 1, "qcow2"), made
    assert made["host"] == "local" and made["vm"] is None, made
    assert libvirt_capacity(env, made) == GIB

    # attach to the running a: the guest sees vdb with the volume's serial, blank, and marks it
    att = cli.json("volume", "attach", "data1", "vola", "--wait")
    assert (att["state"], att["vm"], att["target"], att["bus"]) == (
        "attached", a["id"], "vdb", "virtio"), att
    cli.wait_console("vola", f"NIMBUS-DISK vdb serial={serial(made)} size={GIB} mark=none")
    cli.wait_console("vola", "NIMBUS-DISK-MARKED vdb vola")
    assert has_disk(a["id"], made) and has_disk(a["id"], made, inactive=True)
    assert [v["name"] for v in cli.json("volume", "list", "--vm", "vola")["volumes"]] == ["data1"]

    # in use: no delete, no second VM; nothing changes
    r = env.api.request("DELETE", "/v1/volumes/data1")
    assert (r.status, r.code) == (409, "VOLUME_IN_USE"), r
    r = env.api.request("POST", "/v1/volumes/data1/attach", body={"vm": "volb"})
    assert (r.status, r.code) == (409, "VOLUME_IN_USE"), r
    assert not has_disk(b["id"], made, inactive=True)
    assert vol(env, "data1")["state"] == "attached"

    # online resize: the running guest's disk grows
    grown = cli.json("volume", "resize", "data1", "--size", "2", "--wait")
    assert grown["size_gib"] == 2, grown
    info = nf.virsh("domblkinfo", nf.vm_domain(a["id"]), "vdb").stdout
    assert re.search(rf"Capacity:\s+{2 * GIB}\b", info), info
    cli.wait_console("vola", f"NIMBUS-DISK-SIZE vdb {2 * GIB}")
    r = env.api.request("POST", "/v1/volumes/data1/resize", body={"size_gib": 1})
    assert (r.status, r.code) == (400, "VOLUME_SHRINK"), r

    # detach: gone from the guest, the live domain and its definition
    det = cli.json("volume", "detach", "data1", "vola", "--wait")
    assert (det["state"], det["vm"], det["target"]) == ("available", None, None), det
    cli.wait_console("vola", "NIMBUS-DISK-GONE vdb")
    assert not has_disk(a["id"], made) and not has_disk(a["id"], made, inactive=True)
    r = env.api.request("POST", "/v1/volumes/data1/detach", body={})
    assert (r.status, r.code) == (409, "VOLUME_NOT_ATTACHED"), r

    # the second guest reads the marker the first one wrote
    cli.run("volume", "attach", "data1", "volb", "--wait")
    cli.wait_console("volb", f"NIMBUS-DISK vdb serial={serial(made)} size={2 * GIB} mark=vola")
    assert has_disk(b["id"], made)
    cli.run("volume", "detach", "data1", "--wait")
    cli.wait_console("volb", "NIMBUS-DISK-GONE vdb")

    # every change was audited, the refusals too
    actions = [(e["action"], e["result"]) for e in nf.audit_events(env.api)
               if e["action"].startswith("volume.")]
    for want in [("volume.create", "ok"), ("volume.attach", "ok"), ("volume.resize", "ok"),
                 ("volume.detach", "ok"), ("volume.delete", "VOLUME_IN_USE"),
                 ("volume.attach", "VOLUME_IN_USE"), ("volume.resize", "VOLUME_SHRINK")]:
        assert want in actions, (want, actions)

    cli.run("volume", "delete", "data1", "--wait")
    assert vol(env, "data1") is None and libvirt_capacity(env, made) is None


def test_refusals_change_nothing(venv):
    env = venv
    base = env.api.ok("POST", "/v1/volumes", {"name": "base", "size_gib": 1}, expect=202)
    wait_task(env, base)
    before = (sorted(v["id"] for v in env.api.get("/v1/volumes")["volumes"]),
              nf.volume_names(env.daemon.pool_name))
    bad = [
        ({"name": "v0", "size_gib": 0}, 400, "VOLUME_INVALID_SIZE"),
        ({"name": "v1", "size_gib": 65537}, 400, "VOLUME_INVALID_SIZE"),
        ({"name": "v2", "size_gib": "x"}, 400, None),
        ({"name": "v3", "size_gib": 1, "colour": "red"}, 400, "INVALID_REQUEST"),
        ({"name": "v4", "size_gib": 1, "pool": "no-such-pool"}, 404, "POOL_NOT_FOUND"),
        ({"name": "v5", "size_gib": 1, "image": "no-such-image"}, 404, "IMAGE_NOT_FOUND"),
        ({"name": "base", "size_gib": 1}, 409, "NAME_TAKEN"),
        ({"name": "bad name!", "size_gib": 1}, 400, None),
    ]
    for body, status, code in bad:
        r = env.api.request("POST", "/v1/volumes", body=body)
        assert r.status == status and (code is None or r.code == code), (body, r)
    for body, status, code in [({"vm": "vola", "bus": "ide"}, 400, "VOLUME_INVALID_BUS"),
                               ({"vm": "vola", "extra": 1}, 400, "INVALID_REQUEST"),
                               ({"vm": "no-such-vm"}, 404, "VM_NOT_FOUND")]:
        r = env.api.request("POST", "/v1/volumes/base/attach", body=body)
        assert (r.status, r.code) == (status, code), (body, r)
    for body, code in [({"size_gib": 1}, "VOLUME_SHRINK"), ({"size_gib": 0}, None),
                       ({"size_gib": "x"}, None), ({"size_gib": 2, "x": 1}, "INVALID_REQUEST")]:
        r = env.api.request("POST", "/v1/volumes/base/resize", body=body)
        assert r.status == 400 and (code is None or r.code == code), (body, r)
    p = env.cli.run("volume", "create", "v6", "--size", "x", check=False)
    assert p.returncode == 2 and "--size" in p.stderr, p
    p = env.cli.run("volume", "attach", "base", "vola", "--bus", "ide", check=False)
    assert p.returncode == 1 and "VOLUME_INVALID_BUS" in p.stdout + p.stderr, p
    after = (sorted(v["id"] for v in env.api.get("/v1/volumes")["volumes"]),
             nf.volume_names(env.daemon.pool_name))
    assert after == before
    assert vol(env, "base")["size_gib"] == 1 and vol(env, "base")["state"] == "available"

    # another project: its user sees none of ours (404), and quotas hold in its project
    p = env.api.ok("POST", "/v1/projects", {"name": "volq", "quota": {"volumes": 1,
                                                                      "volume_gib": 3}},
                   expect=201)
    _, other, _ = nf.make_user(env.api, "volq-user", "volq-password-1", p["id"], "member")
    for method, path, body in [("GET", "/v1/volumes/base", nf._DEFAULT),
                               ("DELETE", "/v1/volumes/base", nf._DEFAULT),
                               ("POST", f"/v1/volumes/{base['volume']['id']}/attach",
                                {"vm": "vola"}),
                               ("POST", f"/v1/volumes/{base['volume']['id']}/resize",
                                {"size_gib": 5})]:
        r = other.request(method, path, body=body)
        assert (r.status, r.code) == (404, "VOLUME_NOT_FOUND"), (method, path, r)
    assert other.get("/v1/volumes")["volumes"] == []
    r = other.request("POST", "/v1/volumes", body={"name": "big", "size_gib": 4})
    assert r.status >= 400 and r.code == "QUOTA_EXCEEDED", r
    one = other.ok("POST", "/v1/volumes", {"name": "q1", "size_gib": 2}, expect=202)
    wait_task(env, one)
    r = other.request("POST", "/v1/volumes", body={"name": "q2", "size_gib": 1})
    assert r.code == "QUOTA_EXCEEDED", r
    r = other.request("POST", "/v1/volumes/q1/resize", body={"size_gib": 4})
    assert r.code == "QUOTA_EXCEEDED", r
    assert [v["name"] for v in other.get("/v1/volumes")["volumes"]] == ["q1"]
    assert other.get("/v1/volumes/q1")["size_gib"] == 2
    # the other project's VM name does not reach ours
    r = other.request("POST", "/v1/volumes/q1/attach", body={"vm": "vola"})
    assert (r.status, r.code) == (404, "VM_NOT_FOUND"), r
    wait_task(env, other.ok("DELETE", "/v1/volumes/q1", expect=202))
    wait_task(env, env.api.ok("DELETE", "/v1/volumes/base", expect=202))


def test_from_image_stopped_vm_scsi_and_no_migration(venv):
    env, cli = venv, venv.cli
    a = env.vms["vola"]
    # a full copy of the image, grown to the volume's size
    img = cli.json("volume", "create", "fromimg", "--size", "1", "--from-image", "vol-tiny",
                   "--wait")
    assert (img["state"], img["image"]) == ("available", env.image["id"]), img
    assert libvirt_capacity(env, img) == GIB
    path = nf.virsh("vol-path", "--pool", env.daemon.pool_name, vol_name(img)).stdout.strip()
    src = nf.virsh("vol-path", "--pool", env.daemon.pool_name,
                   f"image-{env.image['id']}").stdout.strip()
    p = subprocess.run(["qemu-img", "compare", "-U", src, path], capture_output=True,
                          text=True)
    assert p.returncode == 0, p.stdout + p.stderr

    # attached to a stopped VM: its definition only. Then the domain vanishes: the start
    # defines it again from the store, volume included, and the guest finds it when it boots
    env.api.action("vola", "stop", body={"force": True})
    att = cli.json("volume", "attach", "fromimg", "vola", "--wait")
    assert att["state"] == "attached", att
    assert has_disk(a["id"], img, inactive=True)
    nf.virsh("undefine", nf.vm_domain(a["id"]))
    env.api.action("vola", "start")
    # not blank (the image's boot sector): reported, and left unmarked
    cli.wait_console("vola", f"NIMBUS-DISK vdb serial={serial(img)} size={GIB} mark=none")
    assert has_disk(a["id"], img)

    # local volumes cannot follow a migration in this phase
    r = env.api.request("POST", "/v1/vms/vola/migrate", body={})
    assert r.code == "INVALID_STATE" and "fromimg" in r.text, r

    # a second volume on the scsi bus: sdb (sda is the seed CD-ROM)
    sc = env.api.ok("POST", "/v1/volumes", {"name": "scsi1", "size_gib": 1}, expect=202)
    wait_task(env, sc)
    att = env.api.ok("POST", "/v1/volumes/scsi1/attach", {"vm": "vola", "bus": "scsi"},
                     expect=202)
    wait_task(env, att)
    now = vol(env, "scsi1")
    assert (now["state"], now["bus"], now["target"]) == ("attached", "scsi", "sdb"), now
    assert re.search(r"<target dev='sdb' bus='scsi'/>", domain_xml(a["id"]))
    gone = env.api.console("vola").count("NIMBUS-DISK-GONE vdb")
    for name in ("scsi1", "fromimg"):
        wait_task(env, env.api.ok("POST", f"/v1/volumes/{name}/detach", {}, expect=202))
        assert not has_disk(a["id"], vol(env, name))
        wait_task(env, env.api.ok("DELETE", f"/v1/volumes/{name}", expect=202))
    cli.wait_console("vola", "NIMBUS-DISK-GONE vdb", count=gone + 1)


def test_rbd_volume_hotplug_and_online_resize(venv, ceph_backend):  # noqa: F811
    env, cb = venv, ceph_backend
    a = env.vms["vola"]
    pool = env.api.ok("POST", "/v1/pools", {
        "name": "volrbd", "type": "rbd", "monitors": cb["monitors"], "rbd_pool": cb["rbd_pool"],
        "user": cb["user"], "key": cb["key"]}, expect=201)
    v = None
    try:
        r = env.api.ok("POST", "/v1/volumes", {"name": "rbd1", "size_gib": 1, "pool": "volrbd"},
                       expect=202)
        v = r["volume"]
        wait_task(env, r)
        v = vol(env, "rbd1")
        assert (v["state"], v["format"], v["host"], v["pool"]) == (
            "available", "raw", None, pool["id"]), v
        assert vol_name(v) in rbd_images(cb)
        image = vol_name(v)
        r = env.api.request("POST", "/v1/volumes", body={
            "name": "rbd2", "size_gib": 1, "pool": "volrbd", "image": env.image["id"]})
        assert (r.status, r.code) == (400, "INVALID_REQUEST"), r
        assert vol(env, "rbd2") is None
        # on a host: a network disk over librbd, the key from the pool's libvirt secret
        marked = env.api.console("vola").count("NIMBUS-DISK-MARKED vdb vola")
        wait_task(env, env.api.ok("POST", "/v1/volumes/rbd1/attach", {"vm": "vola"}, expect=202))
        live = domain_xml(a["id"])
        assert f"protocol='rbd' name='{cb['rbd_pool']}/{vol_name(v)}'" in live, live
        env.cli.wait_console("vola", f"NIMBUS-DISK vdb serial={serial(v)} size={GIB} mark=none")
        env.cli.wait_console("vola", "NIMBUS-DISK-MARKED vdb vola", count=marked + 1)
        wait_task(env, env.api.ok("POST", "/v1/volumes/rbd1/resize", {"size_gib": 2},
                                  expect=202))
        info = nf.virsh("domblkinfo", nf.vm_domain(a["id"]), "vdb").stdout
        assert re.search(rf"Capacity:\s+{2 * GIB}\b", info), info
        gone = env.api.console("vola").count("NIMBUS-DISK-GONE vdb")
        wait_task(env, env.api.ok("POST", "/v1/volumes/rbd1/detach", {}, expect=202))
        env.cli.wait_console("vola", "NIMBUS-DISK-GONE vdb", count=gone + 1)
        assert not has_disk(a["id"], v) and not has_disk(a["id"], v, inactive=True)
        wait_task(env, env.api.ok("DELETE", "/v1/volumes/rbd1", expect=202))
        v = None
        r = env.api.request("GET", "/v1/volumes/rbd1")
        assert r.status == 404, r
        assert image not in rbd_images(cb)
    finally:
        if v:
            for method, path, body in [("POST", "/v1/volumes/rbd1/detach", {}),
                                       ("DELETE", "/v1/volumes/rbd1", nf._DEFAULT)]:
                r = env.api.request(method, path, body=body)
                if r.status == 202:
                    env.api.wait_task(r.json["task"]["id"], expect=None)
        env.api.request("DELETE", f"/v1/pools/{pool['id']}")


def test_crash_during_attach_then_create(venv):
    env = venv
    a = env.vms["vola"]
    v = env.api.ok("POST", "/v1/volumes", {"name": "crashv", "size_gib": 1}, expect=202)
    wait_task(env, v)
    v = v["volume"]
    # killed right after the disk went into the domain, before the step was recorded
    nf.crash_during(env, "volume.attach:0", "POST", "/v1/volumes/crashv/attach", {"vm": "vola"})

    def settled():
        now = vol(env, "crashv")
        return now if now["state"] in ("attached", "available") else None
    now = nf.wait_until(settled, 60, "the volume to leave attaching")
    assert has_disk(a["id"], v) == (now["state"] == "attached"), now
    assert has_disk(a["id"], v, inactive=True) == (now["state"] == "attached"), now
    if now["state"] == "attached":
        env.cli.wait_console("vola", f"NIMBUS-DISK vdb serial={serial(v)}")
        gone = env.api.console("vola").count("NIMBUS-DISK-GONE vdb")
        env.cli.run("volume", "detach", "crashv", "--wait")
        env.cli.wait_console("vola", "NIMBUS-DISK-GONE vdb", count=gone + 1)

    # killed after a create's libvirt work: the restart finishes it (or rolls it back)
    nf.crash_during(env, "volume.create:0", "POST", "/v1/volumes",
                    {"name": "crashc", "size_gib": 1})

    def created():
        now = vol(env, "crashc")
        return now if now and now["state"] in ("available", "error") else None
    c = nf.wait_until(created, 60, "the create to end")
    assert (libvirt_capacity(env, c) is not None) == (c["state"] == "available"), c
    # killed after a detach's, a delete's and a resize's libvirt work: each finishes after the
    # restart
    seen = env.api.console("vola").count(f"NIMBUS-DISK vdb serial={serial(v)}")
    wait_task(env, env.api.ok("POST", "/v1/volumes/crashv/attach", {"vm": "vola"}, expect=202))
    env.cli.wait_console("vola", f"NIMBUS-DISK vdb serial={serial(v)}", count=seen + 1)
    nf.crash_during(env, "volume.detach:0", "POST", "/v1/volumes/crashv/detach", {})
    nf.wait_until(lambda: vol(env, "crashv")["state"] == "available", 60, "the detach to end")
    assert not has_disk(a["id"], v) and not has_disk(a["id"], v, inactive=True)
    nf.crash_during(env, "volume.delete:0", "DELETE", "/v1/volumes/crashc", nf._DEFAULT)
    nf.wait_until(lambda: vol(env, "crashc") is None, 60, "the delete to end")
    assert libvirt_capacity(env, c) is None
    nf.crash_during(env, "volume.resize:0", "POST", "/v1/volumes/crashv/resize", {"size_gib": 2})
    nf.wait_until(lambda: not [t for t in env.api.get("/v1/tasks")["tasks"]
                               if t["state"] in ("pending", "running")], 60, "the resize to end")
    assert libvirt_capacity(env, v) == 2 * GIB and vol(env, "crashv")["size_gib"] == 2

    # claimed in the store but killed before its task was recorded: the start-up check queues
    # the task again (made here by hand: no crash point sits between the two transactions)
    env.daemon.stop()
    db = sqlite3.connect(f"{env.daemon.state_dir}/nimbus.db")
    with db:
        db.execute("UPDATE volumes SET state = 'deleting' WHERE name = 'crashv'")
    db.close()
    env.daemon.start()
    nf.wait_until(lambda: vol(env, "crashv") is None, 60, "the orphaned claim's delete")
    assert libvirt_capacity(env, v) is None
    assert nf.check_consistency(env.api, env.daemon, env.known_ids) == []


def test_vm_delete_leaves_volume(venv):
    env = venv
    b = env.vms["volb"]
    v = env.api.ok("POST", "/v1/volumes", {"name": "keep", "size_gib": 1}, expect=202)
    wait_task(env, v)
    wait_task(env, env.api.ok("POST", "/v1/volumes/keep/attach", body={"vm": "volb"},
                              expect=202))
    assert has_disk(b["id"], v["volume"])
    env.api.delete_vm("volb")
    env.vms.pop("volb")
    now = vol(env, "keep")
    assert (now["state"], now["vm"], now["target"]) == ("available", None, None), now
    assert libvirt_capacity(env, now) == GIB
    wait_task(env, env.api.ok("DELETE", "/v1/volumes/keep", expect=202))
    assert libvirt_capacity(env, now) is None
