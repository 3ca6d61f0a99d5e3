"""VM backups with a real guest (docs/storage.md, "Backups"): pattern A is written into the
root disk's free area through the running QEMU (HMP qemu-io), a full backup is taken, pattern B
is written, an incremental backup is taken; both are restored as volumes whose content must
equal the disk's at backup time. "At backup time" is made exact by pausing the guest around each
backup: QEMU flushes its block layer when it stops, so `qemu-img convert -U` of the disk then
reads what the backup job copies (the guest writes nothing while paused). A stopped VM's backup
(a full copy), the delete rules of an incremental chain, quota, scoping, bad input, snapshots
next to checkpoints, a nimbusd killed during a backup, and the VM's delete (its backups stay).

Own nimbusd (the crash test restarts it) and one guest for the whole module."""

import glob
import hashlib
import json
import os
import re
import subprocess
import tempfile
import uuid

import pytest

import nimbus_fixtures as nf

A = 0x41
B = 0x42
OFF_A = 512 << 20  # the root disk is 1 GiB; the guest's partition ends at 32 MiB
OFF_B = 600 << 20


@pytest.fixture(scope="module")
def benv(make_env, tiny_image):
    env = make_env("backups")
    env.daemon.start()
    vm_id = None
    try:
        image = nf.upload_image(env, "bk-tiny", tiny_image)
        flavor = nf.create_small_flavor(env)
        r = env.api.create_vm("bka", image["id"], flavor["id"], wait=False)
        vm_id = r["vm"]["id"]
        env.remember(vm_id)
        env.api.wait_task(r["task"]["id"])
        env.api.wait_console("bka", "NIMBUS-READY")
        env.vm = env.api.vm("bka")
        env.pool_dir = os.path.dirname(root_path(env))
        yield env
    finally:
        if env.daemon.alive():
            try:
                env.api.delete_vm("bka")
            except AssertionError as e:
                print(f"cleanup of VM bka: {e}")
            # newest first: an incremental's base goes after it
            for b in reversed(env.api.get("/v1/backups")["backups"]):
                r = env.api.request("DELETE", f"/v1/backups/{b['id']}")
                if r.status == 202:
                    env.api.wait_task(r.json["task"]["id"], expect=None)
            for v in env.api.get("/v1/volumes")["volumes"]:
                r = env.api.request("DELETE", f"/v1/volumes/{v['id']}")
                if r.status == 202:
                    env.api.wait_task(r.json["task"]["id"], expect=None)
        if vm_id and nf.domstate(nf.vm_domain(vm_id)) is not None:
            nf.virsh("destroy", nf.vm_domain(vm_id), check=False)
            nf.virsh("undefine", nf.vm_domain(vm_id), "--snapshots-metadata",
                     "--checkpoints-metadata", check=False)
        env.teardown()


def dom(env):
    return nf.vm_domain(env.vm["id"])


def root_path(env):
    out = nf.virsh("domblklist", dom(env)).stdout
    return re.search(r"vda\s+(\S+)", out).group(1)


def checkpoints(env):
    p = nf.virsh("checkpoint-list", dom(env), "--name", check=False)
    return sorted(n for n in p.stdout.split() if n) if p.returncode == 0 else []


def backup_files(env):
    return sorted(os.path.basename(p) for p in glob.glob(f"{env.pool_dir}/nimbus-backup-*"))


def no_job(env):
    p = nf.virsh("domjobinfo", dom(env), check=False)
    return p.returncode != 0 or re.search(r"Job type:\s+None", p.stdout) is not None


def sha_of(path, share=False):
    """sha256 of the disk's guest-visible bytes (its backing chain read through), by a raw
    copy (sparse) that qemu-img writes to a file: it cannot write raw to a pipe."""
    with tempfile.TemporaryDirectory(dir="/var/tmp") as d:
        raw = os.path.join(d, "disk.raw")
        subprocess.run(["qemu-img", "convert"] + (["-U"] if share else []) +
                       ["-O", "raw", path, raw], check=True, capture_output=True)
        h = hashlib.sha256()
        with open(raw, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        return h.hexdigest()


def qdev(env):
    xml = nf.virsh("dumpxml", dom(env)).stdout
    for disk in re.findall(r"<disk .*?</disk>", xml, re.S):
        if "<target dev='vda'" in disk:
            return re.search(r"<alias name='([^']+)'/>", disk).group(1)
    raise AssertionError(f"no vda in {xml}")


def write_root(env, pattern, offset, length=1 << 20):
    """pattern over [offset, offset+length) of the running guest's root disk, through QEMU."""
    q = qdev(env)
    for cmd in (f"write -P {pattern} {offset} {length}", "flush"):
        nf.virsh("qemu-monitor-command", dom(env), "--hmp",
                 f'qemu-io -d {q}/virtio-backend "{cmd}"')


def paused_backup(env, *args):
    """A backup of the paused guest, and the disk's checksum while it was paused."""
    env.api.action("bka", "pause")
    try:
        want = sha_of(root_path(env), share=True)
        b = env.cli.json("backup", "create", "bka", *args, "--wait")
    finally:
        env.api.action("bka", "resume")
    return b, want


def restore(env, backup, name):
    v = env.cli.json("backup", "restore", backup["id"], "--as", name, "--wait")
    vol = env.api.get(f"/v1/volumes/{name}")
    assert vol["state"] == "available", vol
    path = nf.virsh("vol-path", "--pool", env.daemon.pool_name,
                    f"nimbus-vol-{vol['id']}").stdout.strip()
    return v, vol, path


def backing_of(path):
    info = json.loads(subprocess.run(["qemu-img", "info", "-U", "--output=json", path],
                                     capture_output=True, text=True, check=True).stdout)
    return info.get("backing-filename"), info["virtual-size"]


def test_full_then_incremental_restore(benv):
    env = benv
    write_root(env, A, OFF_A)
    full, sha_full = paused_backup(env)
    assert (full["kind"], full["state"], full["parent"]) == ("full", "ready", None), full
    assert full["checkpoint"] == f"nimbus-ckpt-{full['id']}", full
    assert full["size_bytes"] == 1 << 30 and full["data_bytes"] > 0, full
    assert full["mbps"] > 0 and full["finished_at"], full
    assert checkpoints(env) == [full["checkpoint"]]
    assert no_job(env)

    write_root(env, B, OFF_A, 4096)
    write_root(env, B, OFF_B)
    inc, sha_inc = paused_backup(env, "--incremental")
    assert sha_inc != sha_full
    assert (inc["kind"], inc["state"], inc["parent"]) == ("incremental", "ready", full["id"]), inc
    # only what changed was copied, into a file backed by the full backup's
    assert 0 < inc["data_bytes"] < full["data_bytes"], (inc, full)
    backing, size = backing_of(f"{env.pool_dir}/{inc['volume']}")
    assert backing and backing.endswith(full["volume"]) and size == 1 << 30, backing
    assert sorted(checkpoints(env)) == sorted([full["checkpoint"], inc["checkpoint"]])
    # figures, not asserts (issue 10's benchmark): bytes the job went through, and MB/s
    print(f"\nbackup figures: full {full['data_bytes']} B at {full['mbps']:.1f} MB/s, "
          f"incremental {inc['data_bytes']} B at {inc['mbps']:.1f} MB/s")

    _, _, p_full = restore(env, full, "bk-r-full")
    _, vol_inc, p_inc = restore(env, inc, "bk-r-inc")
    assert sha_of(p_full) == sha_full
    assert sha_of(p_inc) == sha_inc
    # a restored volume stands alone: the chain is flattened
    assert backing_of(p_inc)[0] is None
    assert vol_inc["size_gib"] == 1
    assert env.api.get(f"/v1/backups/{inc['id']}")["state"] == "ready"
    env.full, env.inc = full, inc

    rows = env.cli.json("backup", "list", "bka")["backups"]
    assert [x["id"] for x in rows] == [full["id"], inc["id"]], rows
    table = env.cli.run("backup", "list").stdout
    assert full["id"] in table and "incremental" in table, table


def test_stopped_vm(benv):
    env = benv
    env.api.action("bka", "stop", body={"force": True})
    try:
        r = env.api.request("POST", "/v1/backups", body={"vm": "bka", "incremental": True})
        assert (r.status, r.code) == (409, "BACKUP_NO_BASE"), r
        want = sha_of(root_path(env))
        b = env.cli.json("backup", "create", "bka", "--wait")
        assert (b["kind"], b["state"], b["checkpoint"]) == ("full", "ready", None), b
        _, _, path = restore(env, b, "bk-r-off")
        assert sha_of(path) == want
        env.off = b
    finally:
        env.api.action("bka", "start")
    env.api.wait_console("bka", "NIMBUS-READY")
    # the chain goes on from the last checkpoint (a stopped VM's backup makes none)
    inc2, want2 = paused_backup(env, "--incremental")
    assert inc2["parent"] == env.inc["id"], inc2
    _, _, path = restore(env, inc2, "bk-r-inc2")
    assert sha_of(path) == want2
    env.inc2 = inc2


def test_delete_rules(benv):
    env = benv
    for base in (env.full, env.inc):
        r = env.api.request("DELETE", f"/v1/backups/{base['id']}")
        assert (r.status, r.code) == (409, "BACKUP_IN_USE"), r
    # the newest link goes; its checkpoint too, the chain below stays restorable
    out = env.cli.run("backup", "delete", env.inc2["id"], "--wait").stdout
    assert "deleted" in out, out
    assert env.inc2["checkpoint"] not in checkpoints(env)
    assert env.inc2["volume"] not in backup_files(env)
    r = env.api.request("GET", f"/v1/backups/{env.inc2['id']}")
    assert (r.status, r.code) == (404, "BACKUP_NOT_FOUND"), r
    # an incremental from the remaining checkpoint is still right
    write_root(env, A, OFF_B, 8192)
    inc3, want3 = paused_backup(env, "--incremental")
    assert inc3["parent"] == env.inc["id"], inc3
    _, _, path = restore(env, inc3, "bk-r-inc3")
    assert sha_of(path) == want3
    env.inc3 = inc3


def test_other_pools(benv):
    """A backup in a second dir pool, restored into the default pool; a pool backups cannot use
    (netfs: a shared pool whose files no backup job writes here) is refused."""
    env = benv
    root = env.daemon.pool_roots
    nfs = env.api.ok("POST", "/v1/pools", {
        "name": "bknfs", "type": "netfs", "server": "127.0.0.1", "export": "/nimbus-e2e",
        "path": os.path.join(root, "bknfs")}, expect=201)
    dirp = env.api.ok("POST", "/v1/pools", {"name": "bkdir", "type": "dir",
                                            "path": os.path.join(root, "bkdir")}, expect=201)
    b = None
    try:
        r = env.api.request("POST", "/v1/backups", body={"vm": "bka", "pool": "bknfs"})
        assert (r.status, r.code) == (409, "BACKUP_UNSUPPORTED"), r
        # an incremental goes beside its base: not into another pool
        r = env.api.request("POST", "/v1/backups",
                            body={"vm": "bka", "pool": "bkdir", "incremental": True})
        assert (r.status, r.code) == (409, "BACKUP_NO_BASE"), r
        b, want = paused_backup(env, "--pool", "bkdir")
        assert b["pool"] == dirp["id"], b
        assert os.path.exists(os.path.join(root, "bkdir", b["volume"]))
        v = env.cli.json("backup", "restore", b["id"], "--as", "bk-r-other", "--pool",
                         "default", "--wait")
        assert v["state"] == "available", v
        path = nf.virsh("vol-path", "--pool", env.daemon.pool_name,
                        f"nimbus-vol-{v['id']}").stdout.strip()
        assert sha_of(path) == want
        p = env.cli.run("backup", "restore", b["id"], "--as", "x", "--pool", "bknfs",
                        check=False)
        assert p.returncode != 0 and "BACKUP_UNSUPPORTED" in p.stderr, p
    finally:
        if b:
            env.cli.run("backup", "delete", b["id"], "--wait")
            assert not os.path.exists(os.path.join(root, "bkdir", b["volume"]))
        for pool in (nfs, dirp):
            env.api.request("DELETE", f"/v1/pools/{pool['id']}")


def sector(path, offset, n=16):
    p = subprocess.run(["qemu-io", "-U", "-r", "-f", "qcow2", "-c", f"read -v {offset} {n}",
                        path], capture_output=True, text=True, check=True)
    out = bytearray()
    for line in p.stdout.splitlines():
        m = re.match(r"^[0-9a-f]{8}:\s+((?:[0-9a-f]{2} )+)", line)
        if m:
            out += bytes(int(h, 16) for h in m.group(1).split())
    return bytes(out[:n])


def test_restore_as_vm(benv):
    env = benv
    r = env.api.request("POST", f"/v1/backups/{env.full['id']}/restore",
                        body={"name": "bkvm", "as_vm": True, "pool": "default"})
    assert (r.status, r.code) == (400, "INVALID_REQUEST"), r
    try:
        vm = env.cli.json("backup", "restore", env.full["id"], "--as-vm", "bkvm", "--wait")
        env.remember(vm["id"])
        assert vm["name"] == "bkvm" and vm["host"] == env.full["host"], vm
        env.api.wait_console("bkvm", "NIMBUS-READY")
        disk = re.search(r"vda\s+(\S+)", nf.virsh("domblklist", nf.vm_domain(vm["id"])).stdout)
        # the backup's content, not the image's: A where the full backup had it, no B
        assert sector(disk.group(1), OFF_A) == bytes([A]) * 16
        assert sector(disk.group(1), OFF_B) == bytes(16)
    finally:
        r = env.api.request("DELETE", "/v1/vms/bkvm")
        if r.status == 202:
            env.api.wait_task(r.json["task"]["id"], expect=None)


def test_refusals_scope_quota(benv):
    env = benv
    before = sorted(x["id"] for x in env.api.get("/v1/backups")["backups"])
    for body, status, code in [
        ({}, 400, None),
        ({"vm": "bad name!"}, 400, "INVALID_NAME"),
        ({"vm": "bka", "incremental": "yes"}, 400, "INVALID_REQUEST"),
        ({"vm": "bka", "colour": "red"}, 400, "INVALID_REQUEST"),
        ({"vm": "nosuchvm"}, 404, "VM_NOT_FOUND"),
        ({"vm": "bka", "pool": "nosuchpool"}, 404, "POOL_NOT_FOUND"),
    ]:
        r = env.api.request("POST", "/v1/backups", body=body)
        assert r.status == status and (code is None or r.code == code), (body, r)
    r = env.api.request("POST", f"/v1/backups/{env.full['id']}/restore",
                        body={"name": "bk-r-full"})
    assert (r.status, r.code) == (409, "NAME_TAKEN"), r
    r = env.api.request("POST", f"/v1/backups/{env.full['id']}/restore", body={"name": "x y"})
    assert (r.status, r.code) == (400, "INVALID_NAME"), r
    r = env.api.request("POST", f"/v1/backups/{uuid.uuid4()}/restore", body={"name": "zz"})
    assert (r.status, r.code) == (404, "BACKUP_NOT_FOUND"), r
    p = env.cli.run("backup", "show", "not-an-id", check=False)
    assert p.returncode != 0, p

    proj = env.api.ok("POST", "/v1/projects", {"name": "bkq"}, expect=201)
    _, other, _ = nf.make_user(env.api, "bkq-user", "bkq-password-1", proj["id"], "member")
    assert other.get("/v1/backups")["backups"] == []
    for method, path, body in [
            ("GET", f"/v1/backups/{env.full['id']}", nf._DEFAULT),
            ("DELETE", f"/v1/backups/{env.inc3['id']}", nf._DEFAULT),
            ("POST", f"/v1/backups/{env.full['id']}/restore", {"name": "theirs"})]:
        r = other.request(method, path, body=body)
        assert (r.status, r.code) == (404, "BACKUP_NOT_FOUND"), (method, path, r)
    r = other.request("POST", "/v1/backups", body={"vm": env.vm["id"]})
    assert (r.status, r.code) == (404, "VM_NOT_FOUND"), r

    pid = env.vm["project_id"]
    quota = env.api.get(f"/v1/projects/{pid}/quota")
    in_use = quota["in_use"]["backups"]
    assert in_use == len(before), quota
    try:
        env.api.ok("PUT", f"/v1/projects/{pid}/quota", {**quota["limits"], "backups": in_use},
                   expect=200)
        r = env.api.request("POST", "/v1/backups", body={"vm": "bka"})
        assert (r.status, r.code) == (403, "QUOTA_EXCEEDED"), r
    finally:
        env.api.ok("PUT", f"/v1/projects/{pid}/quota", quota["limits"], expect=200)
    assert sorted(x["id"] for x in env.api.get("/v1/backups")["backups"]) == before
    env.api.request("DELETE", f"/v1/projects/{proj['id']}")

    actions = [(e["action"], e["result"]) for e in nf.audit_events(env.api)
               if e["action"].startswith("backup.")]
    for want in [("backup.create", "ok"), ("backup.restore", "ok"), ("backup.delete", "ok"),
                 ("backup.create", "QUOTA_EXCEEDED"), ("backup.delete", "BACKUP_IN_USE")]:
        assert want in actions, (want, actions)


def agree(env):
    """No backup in a task's state, the VM free, no libvirt job; libvirt's checkpoints and the
    pool's backup files are exactly the store's."""
    def settled():
        rows = env.api.get("/v1/backups")["backups"]
        busy = [x for x in rows if x["state"] in ("creating", "deleting", "restoring")]
        return rows if not busy and not env.api.vm("bka")["task_id"] else None
    rows = nf.wait_until(settled, 180, "the backup tasks to end")
    assert no_job(env)
    assert checkpoints(env) == sorted(x["checkpoint"] for x in rows
                                      if x["checkpoint"] and x["vm"] == env.vm["id"])
    assert backup_files(env) == sorted(x["volume"] for x in rows)
    return rows


@pytest.mark.parametrize("step", [0, 1, 2])
def test_crash_during_backup(benv, step):
    env = benv
    # An incremental backup needs a base: this test may run alone (CI runs the crash tests
    # apart from the others), so it makes one when no backup of bka has a checkpoint yet.
    if not checkpoints(env):
        env.cli.json("backup", "create", "bka", "--wait")
    before = {x["id"] for x in env.api.get("/v1/backups")["backups"]}
    nf.crash_during(env, f"backup.create:{step}", "POST", "/v1/backups",
                    {"vm": "bka", "incremental": True})
    rows = agree(env)
    new = [x for x in rows if x["id"] not in before]
    # the restart finishes the backup (or, had it failed, takes it all away)
    assert len(new) == 1 and new[0]["state"] == "ready", new
    assert env.api.vm("bka")["state"] == "running"


def test_snapshot_next_to_checkpoints(benv):
    """libvirt 9.0 snapshots a disk that has checkpoints; a revert changes the disk behind their
    bitmaps, so it takes the checkpoints away: the next backup must be full."""
    env = benv
    assert checkpoints(env)
    s = env.cli.json("snapshot", "create", "bka", "withckpt", "--wait")
    assert s["state"] == "ready", s
    env.cli.run("snapshot", "revert", "bka", "withckpt", "--wait")
    env.api.wait_vm_state("bka", "running")
    assert checkpoints(env) == []
    assert all(x["checkpoint"] is None for x in env.api.get("/v1/backups?vm=bka")["backups"])
    r = env.api.request("POST", "/v1/backups", body={"vm": "bka", "incremental": True})
    assert (r.status, r.code) == (409, "BACKUP_NO_BASE"), r
    b = env.cli.json("backup", "create", "bka", "--wait")
    assert b["checkpoint"] and checkpoints(env) == [b["checkpoint"]], b
    env.cli.run("snapshot", "delete", "bka", "withckpt", "--wait")


def test_stopped_vm_with_checkpoints(benv):
    """libvirt 9.0 deletes checkpoints of a running domain only. A stopped VM's revert still
    takes them away (its domain runs paused for that, then is shut off again; the VM stays
    stopped); a backup's delete, which does not hold the VM, is refused until the VM runs."""
    env = benv
    ckpt = [x for x in env.api.get("/v1/backups?vm=bka")["backups"] if x["checkpoint"]]
    assert len(ckpt) == 1 and checkpoints(env) == [ckpt[0]["checkpoint"]], ckpt
    env.cli.json("snapshot", "create", "bka", "offckpt", "--wait")
    env.api.action("bka", "stop", body={"force": True})
    try:
        r = env.api.request("DELETE", f"/v1/backups/{ckpt[0]['id']}")
        assert (r.status, r.code) == (409, "INVALID_STATE"), r
        assert "start the VM" in r.json["error"]["message"], r
        assert env.api.get(f"/v1/backups/{ckpt[0]['id']}")["state"] == "ready"
        assert checkpoints(env) == [ckpt[0]["checkpoint"]]

        env.cli.run("snapshot", "revert", "bka", "offckpt", "--wait")
        assert env.api.vm("bka")["state"] == "stopped"
        assert nf.domstate(dom(env)) == "shut off"
        assert checkpoints(env) == []
        assert env.api.get(f"/v1/backups/{ckpt[0]['id']}")["checkpoint"] is None
        # without its checkpoint the backup goes while the VM is stopped
        env.cli.run("backup", "delete", ckpt[0]["id"], "--wait")
        r = env.api.request("GET", f"/v1/backups/{ckpt[0]['id']}")
        assert r.status == 404, r
    finally:
        env.api.action("bka", "start")
    env.api.wait_console("bka", "NIMBUS-READY")
    env.cli.run("snapshot", "delete", "bka", "offckpt", "--wait")


def test_vm_delete_keeps_backups(benv):
    env = benv
    full = env.full
    env.api.delete_vm("bka")
    assert nf.domstate(dom(env)) is None
    b = env.api.get(f"/v1/backups/{full['id']}")
    assert (b["vm"], b["vm_name"], b["state"]) == (None, "bka", "ready"), b
    _, _, path = restore(env, full, "bk-r-after")
    assert sha_of(path) == sha_of(f"{env.pool_dir}/nimbus-vol-"
                                  f"{env.api.get('/v1/volumes/bk-r-full')['id']}")
    rows = env.api.get(f"/v1/backups?vm={env.vm['id']}")["backups"]
    assert {x["id"] for x in rows} == set(), rows  # its backups no longer name it
