"""Backups of VMs whose root disk is in a Ceph RBD pool (docs/storage.md, "Backups"), with the
real test Ceph (scripts/test-ceph.sh) and a real TCG guest on a namespace test host: the guest
marks its root disk (an RBD clone), a full backup is taken through the backup job (push mode)
into the host's default pool, restored as a volume whose content equals the RBD image's at
backup time (the guest paused around the backup: `rbd export` then reads what the job copies)
and as a new VM that reads the mark back; an incremental backup is refused (a raw RBD image has
no dirty bitmap); a stopped VM's backup (its domain started paused for the job only, shut off
again); a nimbusd killed during a backup leaves no orphan file, job or running domain.

The cluster (the Ceph relay into the host's network namespace, the pool, the clean-up) is
rbd_cluster.py's.
"""

import hashlib
import os
import re
import subprocess
import tempfile

import pytest

import nimbus_fixtures as nf
from rbd_cluster import USER_DATA, marked_vm, rbd_cluster, start_daemon
from storage_backends import ceph_backend  # noqa: F401 (a fixture)
from testhosts import testhosts  # noqa: F401 (the session fixture)

HOST = "kvm1"


@pytest.fixture(scope="module")
def rbenv(make_env, tiny_image, testhosts, ceph_backend):  # noqa: F811
    with rbd_cluster(make_env, "rbdbackups", tiny_image, testhosts, ceph_backend,
                     (HOST,)) as env:
        env.vm = marked_vm(env, "rbdbk", HOST)
        yield env


def dom(env):
    return nf.vm_domain(env.vm["id"])


def rbd_sha(env):
    """sha256 of the VM's RBD image (its clone read through to the base), by `rbd export`."""
    ref = f"{env.cb['rbd_pool']}/vm-{env.vm['id']}-disk"
    p = subprocess.Popen(["rbd", "-c", env.cb["conf"], "export", ref, "-"],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    h = hashlib.sha256()
    for chunk in iter(lambda: p.stdout.read(1 << 20), b""):
        h.update(chunk)
    assert p.wait(timeout=300) == 0, "rbd export failed"
    return h.hexdigest()


def host_file_sha(env, path):
    """sha256 of the guest-visible bytes of a qcow2 file in the host's own /var/lib/libvirt:
    converted to raw there, into /var/tmp (the same filesystem everywhere)."""
    with tempfile.TemporaryDirectory(dir="/var/tmp") as d:
        os.chmod(d, 0o777)
        raw = os.path.join(d, "disk.raw")
        p = env.hosts.exec(1, "qemu-img", "convert", "-U", "-O", "raw", path, raw, timeout=300)
        assert p.returncode == 0, p.stderr
        h = hashlib.sha256()
        with open(raw, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        return h.hexdigest()


def backup_files(env):
    p = env.hosts.virsh(1, "vol-list", env.daemon.pool_name)
    assert p.returncode == 0, p.stderr
    return sorted(l.split()[0] for l in p.stdout.splitlines()[2:]
                  if l.strip().startswith("nimbus-backup-"))


def checkpoints(env):
    p = env.hosts.virsh(1, "checkpoint-list", dom(env), "--name")
    return sorted(n for n in p.stdout.split() if n) if p.returncode == 0 else []


def no_job(env):
    p = env.hosts.virsh(1, "domjobinfo", dom(env))
    return p.returncode != 0 or re.search(r"Job type:\s+None", p.stdout) is not None


def restore_volume(env, backup, name):
    v = env.cli.json("backup", "restore", backup["id"], "--as", name, "--wait")
    assert v["state"] == "available", v
    p = env.hosts.virsh(1, "vol-path", "--pool", env.daemon.pool_name, f"nimbus-vol-{v['id']}")
    assert p.returncode == 0, p.stderr
    return v, p.stdout.strip()


def test_full_backup_of_running_vm_restores(rbenv):
    env = rbenv
    # exact: the guest paused around the backup (it is live all the same: the backup job runs)
    env.api.action("rbdbk", "pause")
    try:
        want = rbd_sha(env)
        b = env.cli.json("backup", "create", "rbdbk", "--wait")
    finally:
        env.api.action("rbdbk", "resume")
    assert (b["kind"], b["state"], b["checkpoint"], b["host"]) == ("full", "ready", None, HOST), b
    assert b["size_bytes"] == env.flavor["disk_gib"] << 30 and b["data_bytes"] > 0, b
    assert b["volume"] in backup_files(env)
    assert checkpoints(env) == [] and no_job(env)
    print(f"\nrbd backup figures: {b['data_bytes']} B at {b['mbps']:.1f} MB/s")
    v, path = restore_volume(env, b, "rbdbk-r1")
    assert host_file_sha(env, path) == want
    env.full = b

    # a backup of the running guest, restored as a new VM (in the default pool): it finds the
    # mark the source wrote on its first boot
    b2 = env.cli.json("backup", "create", "rbdbk", "--wait")
    assert (b2["state"], b2["checkpoint"]) == ("ready", None), b2
    r = env.api.ok("POST", f"/v1/backups/{b2['id']}/restore", {
        "name": "rbdbk-vm", "as_vm": True, "user_data": USER_DATA}, expect=202)
    env.remember(r["vm"]["id"])
    env.api.wait_task(r["task"]["id"])
    vm = env.api.vm("rbdbk-vm")
    assert (vm["host"], vm["pool_id"] or None) == (HOST, None), vm
    env.api.wait_console("rbdbk-vm", "NIMBUS-ROOT-MARK rbdbk")
    assert "NIMBUS-ROOT-MARKED" not in env.api.console("rbdbk-vm")
    env.api.delete_vm("rbdbk-vm")
    assert env.api.vm("rbdbk")["state"] == "running"


def test_incremental_refused(rbenv):
    env = rbenv
    before = env.api.get("/v1/backups")["backups"]
    r = env.api.request("POST", "/v1/backups", body={"vm": "rbdbk", "incremental": True})
    assert (r.status, r.code) == (409, "BACKUP_UNSUPPORTED"), r
    assert "no dirty bitmap" in r.json["error"]["message"], r
    assert env.api.get("/v1/backups")["backups"] == before
    assert checkpoints(env) == [] and no_job(env)


def test_stopped_vm(rbenv):
    env = rbenv
    env.api.action("rbdbk", "stop", body={"force": True})
    try:
        want = rbd_sha(env)
        b = env.cli.json("backup", "create", "rbdbk", "--wait")
        assert (b["kind"], b["state"], b["checkpoint"]) == ("full", "ready", None), b
        # the domain ran paused for the job only
        assert env.api.vm("rbdbk")["state"] == "stopped"
        assert dom(env) not in env.hosts.domains(1)
        assert "domain started paused for backup " + b["id"] in open(env.daemon.log_path).read()
        _, path = restore_volume(env, b, "rbdbk-r-off")
        assert host_file_sha(env, path) == want
    finally:
        env.api.action("rbdbk", "start")
    env.api.wait_console("rbdbk", "NIMBUS-ROOT-MARK rbdbk")


def agree(env):
    """The backups' rows and the files in the host's default pool agree (no orphan either way),
    once no task runs."""
    def settled():
        rows = env.api.get("/v1/backups")["backups"]
        return None if any(x["state"] in ("creating", "deleting") for x in rows) else rows
    rows = nf.wait_until(settled, 300, "backup tasks to end")
    assert backup_files(env) == sorted(x["volume"] for x in rows), rows
    return rows


@pytest.mark.parametrize("stopped,step", [(True, 0), (True, 2), (False, 1)],
                         ids=["stopped-after-prepare", "stopped-after-wait", "running-after-begin"])
def test_crash_during_rbd_backup(rbenv, stopped, step):
    env = rbenv
    if stopped:
        env.api.action("rbdbk", "stop", body={"force": True})
    before = {x["id"] for x in env.api.get("/v1/backups")["backups"]}
    nf.crash_during(env, f"backup.create:{step}", "POST", "/v1/backups", {"vm": "rbdbk"},
                    start=start_daemon)
    rows = agree(env)
    new = [x for x in rows if x["id"] not in before]
    # the restart finishes the backup; the VM is as it was, the job is gone
    assert len(new) == 1 and new[0]["state"] == "ready", new
    nf.wait_until(lambda: env.api.vm("rbdbk")["task_id"] is None, 120, "the VM to be free")
    assert env.api.vm("rbdbk")["state"] == ("stopped" if stopped else "running")
    assert (dom(env) in env.hosts.domains(1)) != stopped
    assert no_job(env) and checkpoints(env) == []
    if stopped:
        env.api.action("rbdbk", "start")
