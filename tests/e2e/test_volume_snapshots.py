"""Volume snapshots (docs/storage.md, "Volume snapshots"): in the default (dir) pool a snapshot is
a full copy taken while the volume is detached, and a volume made from it holds the data of that
instant (written and read back with qemu-io on the files); in a real Ceph rbd pool it is an RBD
snapshot taken live while a running guest has the volume, and a volume made from it is an RBD
clone with the old content. The delete rules (a volume with snapshots, a snapshot with a clone:
409), scoping (another project's volume or snapshot: 404), the shared snapshots quota, bad
input, the audit, and a nimbusd killed in each task's step (the restart finishes the task and
leaves no orphan).

Own nimbusd (the crash test restarts it) and one guest for the whole module."""

import re
import subprocess

import pytest

import nimbus_fixtures as nf
from storage_backends import ceph_backend, ceph_cmd, rbd_images  # noqa: F401 (a fixture)

GIB = 1 << 30
MIB = 1 << 20


@pytest.fixture(scope="module")
def senv(make_env, tiny_image):
    env = make_env("vsnap")
    env.daemon.start()
    env.image = nf.upload_image(env, "vsnap-tiny", tiny_image)
    env.flavor = nf.create_small_flavor(env)
    vm = None
    try:
        r = env.api.create_vm("vsg", env.image["id"], env.flavor["id"], wait=False)
        env.remember(r["vm"]["id"])
        vm = r["vm"]
        env.api.wait_task(r["task"]["id"])
        env.api.wait_console("vsg", "NIMBUS-READY")
        env.vm = vm
        yield env
    finally:
        if env.daemon.alive():
            cleanup(env)
            if vm:
                try:
                    env.api.delete_vm("vsg")
                except AssertionError as e:
                    print(f"cleanup of VM vsg: {e}")
        env.teardown()


def cleanup(env, api=None):
    """Detaches, then deletes every volume's snapshots and the volumes (clones first)."""
    api = api or env.api
    vols = api.get("/v1/volumes")["volumes"]
    for v in vols:
        if v["state"] == "attached":
            r = api.request("POST", f"/v1/volumes/{v['id']}/detach", body={})
            if r.status == 202:
                api.wait_task(r.json["task"]["id"], expect=None)
    for v in sorted(vols, key=lambda v: v["snapshot"] is None):  # clones first
        r = api.request("DELETE", f"/v1/volumes/{v['id']}")
        if r.status == 202:
            api.wait_task(r.json["task"]["id"], expect=None)
    for v in api.get("/v1/volumes")["volumes"]:
        for s in api.get(f"/v1/volumes/{v['id']}/snapshots")["snapshots"]:
            r = api.request("DELETE", f"/v1/volumes/{v['id']}/snapshots/{s['id']}")
            if r.status == 202:
                api.wait_task(r.json["task"]["id"], expect=None)
        r = api.request("DELETE", f"/v1/volumes/{v['id']}")
        if r.status == 202:
            api.wait_task(r.json["task"]["id"], expect=None)


def wait_task(env, resp, expect="succeeded"):
    return env.api.wait_task(resp["task"]["id"], expect=expect)


def vol_name(v):
    return f"nimbus-vol-{v['id']}"


def snap_name(s):
    return f"nimbus-vsnap-{s['id']}"


def vol_path(env, name):
    return nf.virsh("vol-path", "--pool", env.daemon.pool_name, name).stdout.strip()


def capacity(env, name):
    p = nf.virsh("vol-dumpxml", "--pool", env.daemon.pool_name, name, check=False)
    if p.returncode != 0:
        return None
    return int(re.search(r"<capacity unit='bytes'>(\d+)</capacity>", p.stdout).group(1))


def qemu_io(target, fmt, *cmds, read_only=False):
    args = ["qemu-io", "-f", fmt] + (["-r"] if read_only else [])
    for c in cmds:
        args += ["-c", c]
    p = subprocess.run(args + [target], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    return p.stdout


# The data the tests write and read back: the volume's second MiB (the test guest writes a
# marker on the first sector of a disk it finds blank).
def has_pattern(target, fmt, byte):
    out = qemu_io(target, fmt, f"read -P {byte:#x} 1M 1M", read_only=True)
    return "Pattern verification failed" not in out and "read 1048576/1048576" in out


def snaps(env, volume, api=None):
    return [s["name"] for s in (api or env.api).get(f"/v1/volumes/{volume}/snapshots")["snapshots"]]


def test_dir_snapshot_copy_and_volume_from_it(senv):
    env, cli = senv, senv.cli
    d1 = cli.json("volume", "create", "d1", "--size", "1", "--wait")
    path = vol_path(env, vol_name(d1))
    qemu_io(path, "qcow2", "write -P 0x41 1M 1M")

    s1 = cli.json("volume", "snapshot", "create", "d1", "s1", "--wait")
    assert (s1["state"], s1["volume"], s1["size_gib"], s1["pool"]) == (
        "ready", d1["id"], 1, d1["pool"]), s1
    assert capacity(env, snap_name(s1)) == GIB
    assert [s["name"] for s in cli.json("volume", "snapshot", "list", "d1")["snapshots"]] == ["s1"]
    # the volume moves on; the snapshot keeps the instant
    qemu_io(path, "qcow2", "write -P 0x42 1M 1M")

    d2 = cli.json("volume", "create", "d2", "--size", "2", "--from-snapshot", "d1/s1", "--wait")
    assert (d2["state"], d2["size_gib"], d2["snapshot"], d2["host"]) == (
        "available", 2, s1["id"], d1["host"]), d2
    assert capacity(env, vol_name(d2)) == 2 * GIB
    assert has_pattern(vol_path(env, vol_name(d2)), "qcow2", 0x41)
    assert has_pattern(path, "qcow2", 0x42)
    # by the snapshot's id too
    d3 = env.api.ok("POST", "/v1/volumes", {"name": "d3", "size_gib": 1,
                                            "from_snapshot": s1["id"]}, expect=202)
    wait_task(env, d3)
    assert has_pattern(vol_path(env, vol_name(d3["volume"])), "qcow2", 0x41)

    # attached: in a dir pool the copy waits for a detach
    wait_task(env, env.api.ok("POST", "/v1/volumes/d1/attach", {"vm": "vsg"}, expect=202))
    cli.wait_console("vsg", f"NIMBUS-DISK vdb serial={d1['id'][:20]} size={GIB}")
    r = env.api.request("POST", "/v1/volumes/d1/snapshots", body={"name": "s2"})
    assert (r.status, r.code) == (409, "VOLUME_IN_USE"), r
    wait_task(env, env.api.ok("POST", "/v1/volumes/d1/detach", {}, expect=202))
    cli.wait_console("vsg", "NIMBUS-DISK-GONE vdb")
    assert snaps(env, "d1") == ["s1"]

    # a volume with snapshots stays; a copy has no tie to its snapshot once made
    r = env.api.request("DELETE", "/v1/volumes/d1")
    assert (r.status, r.code) == (409, "VOLUME_HAS_SNAPSHOTS"), r
    assert env.api.get("/v1/volumes/d1")["state"] == "available"
    cli.run("volume", "snapshot", "delete", "d1", "s1", "--wait")
    assert snaps(env, "d1") == [] and capacity(env, snap_name(s1)) is None
    assert has_pattern(vol_path(env, vol_name(d2)), "qcow2", 0x41)

    actions = [(e["action"], e["result"]) for e in nf.audit_events(env.api)
               if e["action"].startswith("volume.snapshot")]
    for want in [("volume.snapshot.create", "ok"), ("volume.snapshot.create", "VOLUME_IN_USE"),
                 ("volume.snapshot.delete", "ok")]:
        assert want in actions, (want, actions)
    for name in ("d1", "d2", "d3"):
        cli.run("volume", "delete", name, "--wait")
    assert nf.check_consistency(env.api, env.daemon, env.known_ids) == []


def test_refusals_scoping_and_quota(senv):
    env = senv
    base = env.api.ok("POST", "/v1/volumes", {"name": "sb", "size_gib": 2}, expect=202)
    wait_task(env, base)
    s = env.api.ok("POST", "/v1/volumes/sb/snapshots", {"name": "k1"}, expect=202)
    wait_task(env, s)
    sid = s["snapshot"]["id"]
    before = (sorted(v["id"] for v in env.api.get("/v1/volumes")["volumes"]),
              nf.volume_names(env.daemon.pool_name), snaps(env, "sb"))
    for body, status, code in [({"name": "bad name!"}, 400, "INVALID_NAME"),
                               ({"name": "k2", "x": 1}, 400, "INVALID_REQUEST"),
                               ({}, 400, None),
                               ({"name": "k1"}, 409, "NAME_TAKEN")]:
        r = env.api.request("POST", "/v1/volumes/sb/snapshots", body=body)
        assert r.status == status and (code is None or r.code == code), (body, r)
    r = env.api.request("POST", "/v1/volumes/nosuch/snapshots", body={"name": "k"})
    assert (r.status, r.code) == (404, "VOLUME_NOT_FOUND"), r
    r = env.api.request("DELETE", "/v1/volumes/sb/snapshots/nosuch")
    assert (r.status, r.code) == (404, "SNAPSHOT_NOT_FOUND"), r
    fresh = "0b6f4a7e-1c1d-4d6e-9a4b-3c2d1e0f9a8b"
    for body, status, code in [
            ({"from_snapshot": "bad!"}, 400, "INVALID_NAME"),
            ({"from_snapshot": "k1"}, 400, "INVALID_NAME"),  # a bare name: VOLUME/NAME
            ({"from_snapshot": "sb/../x"}, 400, "INVALID_NAME"),
            ({"from_snapshot": fresh}, 404, "SNAPSHOT_NOT_FOUND"),
            ({"from_snapshot": "sb/nosuch"}, 404, "SNAPSHOT_NOT_FOUND"),
            ({"from_snapshot": "nosuch/k1"}, 404, "VOLUME_NOT_FOUND"),
            ({"from_snapshot": "sb/k1", "image": "vsnap-tiny"}, 400, "INVALID_REQUEST"),
            ({"from_snapshot": "sb/k1", "host": "local"}, 400, "INVALID_REQUEST")]:
        r = env.api.request("POST", "/v1/volumes", body=dict({"name": "fx", "size_gib": 2}, **body))
        assert (r.status, r.code) == (status, code), (body, r)
    # smaller than the snapshot; the CLI's answer to a bad reference
    r = env.api.request("POST", "/v1/volumes", body={"name": "fx", "size_gib": 1,
                                                     "from_snapshot": "sb/k1"})
    assert (r.status, r.code) == (400, "VOLUME_INVALID_SIZE"), r
    p = env.cli.run("volume", "create", "fx", "--size", "2", "--from-snapshot", "sb/bad name",
                    check=False)
    assert p.returncode == 1 and "INVALID_NAME" in p.stdout + p.stderr, p
    after = (sorted(v["id"] for v in env.api.get("/v1/volumes")["volumes"]),
             nf.volume_names(env.daemon.pool_name), snaps(env, "sb"))
    assert after == before

    # another project: nothing of ours is found, and the snapshots quota holds in its project
    proj = env.api.ok("POST", "/v1/projects", {"name": "vsq", "quota": {"snapshots": 1}},
                      expect=201)
    _, other, _ = nf.make_user(env.api, "vsq-user", "vsq-password-1", proj["id"], "member")
    vid = base["volume"]["id"]
    for method, path, body in [("GET", f"/v1/volumes/{vid}/snapshots", nf._DEFAULT),
                               ("POST", f"/v1/volumes/{vid}/snapshots", {"name": "x"}),
                               ("GET", f"/v1/volumes/{vid}/snapshots/{sid}", nf._DEFAULT),
                               ("DELETE", f"/v1/volumes/{vid}/snapshots/{sid}", nf._DEFAULT),
                               ("GET", "/v1/volumes/sb/snapshots", nf._DEFAULT)]:
        r = other.request(method, path, body=body)
        assert (r.status, r.code) == (404, "VOLUME_NOT_FOUND"), (method, path, r)
    r = other.request("POST", "/v1/volumes", body={"name": "steal", "size_gib": 1,
                                                   "from_snapshot": sid})
    assert (r.status, r.code) == (404, "SNAPSHOT_NOT_FOUND"), r
    assert other.get("/v1/volumes")["volumes"] == []
    q = other.ok("POST", "/v1/volumes", {"name": "q", "size_gib": 1}, expect=202)
    wait_task(env, q)
    wait_task(env, other.ok("POST", "/v1/volumes/q/snapshots", {"name": "one"}, expect=202))
    r = other.request("POST", "/v1/volumes/q/snapshots", body={"name": "two"})
    assert r.status >= 400 and r.code == "QUOTA_EXCEEDED", r
    assert snaps(env, "q", api=other) == ["one"]
    cleanup(env, api=other)
    assert other.get("/v1/volumes")["volumes"] == []
    cleanup(env)


def test_crash_during_snapshot_create_and_delete(senv):
    env = senv
    wait_task(env, env.api.ok("POST", "/v1/volumes", {"name": "cv", "size_gib": 1}, expect=202))
    # killed after the copy was made, before the step was recorded: the restart makes it again
    nf.crash_during(env, "volume.snapshot-create:0", "POST", "/v1/volumes/cv/snapshots",
                    {"name": "c1"})
    s = nf.wait_until(lambda: [x for x in env.api.get("/v1/volumes/cv/snapshots")["snapshots"]
                               if x["state"] == "ready"], 60, "the snapshot to be ready")[0]
    assert capacity(env, snap_name(s)) == GIB
    nf.crash_during(env, "volume.snapshot-delete:0", "DELETE", "/v1/volumes/cv/snapshots/c1",
                    nf._DEFAULT)
    nf.wait_until(lambda: snaps(env, "cv") == [], 60, "the snapshot's delete to end")
    assert capacity(env, snap_name(s)) is None
    wait_task(env, env.api.ok("DELETE", "/v1/volumes/cv", expect=202))
    assert nf.check_consistency(env.api, env.daemon, env.known_ids) == []


def test_rbd_live_snapshot_clone_and_delete_rules(senv, ceph_backend):  # noqa: F811
    env, cb = senv, ceph_backend
    pool = env.api.ok("POST", "/v1/pools", {
        "name": "vsrbd", "type": "rbd", "monitors": cb["monitors"], "rbd_pool": cb["rbd_pool"],
        "user": cb["user"], "key": cb["key"]}, expect=201)

    def rbd_target(name):
        return f"rbd:{cb['rbd_pool']}/{name}:conf={cb['conf']}"

    try:
        r = env.api.ok("POST", "/v1/volumes", {"name": "r1", "size_gib": 1, "pool": "vsrbd"},
                       expect=202)
        wait_task(env, r)
        r1 = r["volume"]
        qemu_io(rbd_target(vol_name(r1)), "raw", "write -P 0x41 1M 1M")
        # the snapshot is taken while the running guest has the volume
        seen = env.api.console("vsg").count(f"NIMBUS-DISK vdb serial={r1['id'][:20]}")
        wait_task(env, env.api.ok("POST", "/v1/volumes/r1/attach", {"vm": "vsg"}, expect=202))
        env.cli.wait_console("vsg", f"NIMBUS-DISK vdb serial={r1['id'][:20]}", count=seen + 1)
        s = env.cli.json("volume", "snapshot", "create", "r1", "live", "--wait")
        assert s["state"] == "ready", s
        assert env.api.get("/v1/volumes/r1")["state"] == "attached"
        out = ceph_cmd(cb, "snap", "ls", f"{cb['rbd_pool']}/{vol_name(r1)}").stdout
        assert snap_name(s) in out, out
        gone = env.api.console("vsg").count("NIMBUS-DISK-GONE vdb")
        wait_task(env, env.api.ok("POST", "/v1/volumes/r1/detach", {}, expect=202))
        env.cli.wait_console("vsg", "NIMBUS-DISK-GONE vdb", count=gone + 1)
        # the volume moves on
        qemu_io(rbd_target(vol_name(r1)), "raw", "write -P 0x5a 1M 1M")

        c = env.cli.json("volume", "create", "r2", "--size", "2", "--from-snapshot", "r1/live",
                         "--wait")
        assert (c["state"], c["size_gib"], c["pool"], c["snapshot"]) == (
            "available", 2, pool["id"], s["id"]), c
        assert vol_name(c) in rbd_images(cb)
        info = ceph_cmd(cb, "info", f"{cb['rbd_pool']}/{vol_name(c)}").stdout
        assert f"parent: {cb['rbd_pool']}/{vol_name(r1)}@{snap_name(s)}" in info, info
        assert "size 2 GiB" in info, info
        assert has_pattern(rbd_target(vol_name(c)), "raw", 0x41)
        assert has_pattern(rbd_target(vol_name(r1)), "raw", 0x5a)

        # killed after the clone was made, before the step was recorded: the restart finishes
        nf.crash_during(env, "volume.create:0", "POST", "/v1/volumes",
                        {"name": "r3", "size_gib": 1, "from_snapshot": "r1/live"})
        r3 = nf.wait_until(lambda: [v for v in env.api.get("/v1/volumes")["volumes"]
                                    if v["name"] == "r3" and v["state"] == "available"],
                           60, "the clone's create to end")[0]
        assert has_pattern(rbd_target(vol_name(r3)), "raw", 0x41)
        wait_task(env, env.api.ok("DELETE", "/v1/volumes/r3", expect=202))
        assert vol_name(r3) not in rbd_images(cb)

        # killed after the RBD snapshot was taken, then after it was removed: each task finishes
        # on the restart, with exactly that snapshot made, then none left
        nf.crash_during(env, "volume.snapshot-create:0", "POST", "/v1/volumes/r1/snapshots",
                        {"name": "crashed"})
        k = nf.wait_until(lambda: [x for x in env.api.get("/v1/volumes/r1/snapshots")["snapshots"]
                                   if x["name"] == "crashed" and x["state"] == "ready"],
                          60, "the snapshot to be ready")[0]
        out = ceph_cmd(cb, "snap", "ls", f"{cb['rbd_pool']}/{vol_name(r1)}").stdout
        assert out.count("nimbus-vsnap-") == 2 and snap_name(k) in out, out
        nf.crash_during(env, "volume.snapshot-delete:0", "DELETE",
                        "/v1/volumes/r1/snapshots/crashed", nf._DEFAULT)
        nf.wait_until(lambda: snaps(env, "r1") == ["live"], 60, "the snapshot's delete to end")
        out = ceph_cmd(cb, "snap", "ls", f"{cb['rbd_pool']}/{vol_name(r1)}").stdout
        assert snap_name(k) not in out and snap_name(s) in out, out

        # delete rules: the clone keeps its snapshot, the snapshot its volume
        r = env.api.request("DELETE", "/v1/volumes/r1/snapshots/live")
        assert (r.status, r.code) == (409, "SNAPSHOT_HAS_CLONES"), r
        r = env.api.request("DELETE", "/v1/volumes/r1")
        assert (r.status, r.code) == (409, "VOLUME_HAS_SNAPSHOTS"), r
        assert snaps(env, "r1") == ["live"]
        wait_task(env, env.api.ok("DELETE", "/v1/volumes/r2", expect=202))
        assert vol_name(c) not in rbd_images(cb)
        env.cli.run("volume", "snapshot", "delete", "r1", "live", "--wait")
        out = ceph_cmd(cb, "snap", "ls", f"{cb['rbd_pool']}/{vol_name(r1)}").stdout
        assert snap_name(s) not in out, out
        wait_task(env, env.api.ok("DELETE", "/v1/volumes/r1", expect=202))
        assert vol_name(r1) not in rbd_images(cb)
    finally:
        cleanup(env)
        env.api.request("DELETE", f"/v1/pools/{pool['id']}")
