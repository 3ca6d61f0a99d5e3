"""VMs whose root disk is in a Ceph RBD pool (docs/storage.md, "VM disks in pools"), with the real
test Ceph (scripts/test-ceph.sh) and real TCG guests on two namespace test hosts with local
default pools (under /var/lib/libvirt, which each host has to itself): the image is written once
into the pool, each VM's disk is an RBD clone of it (a parent, no copy), the guest boots from it
and marks it, a live migration moves no storage and keeps the same RBD image, the VM's delete
leaves no RBD image, the image's delete takes its base; bad `pool` values change nothing; a
nimbusd killed after the clone and after the define leaves no orphan image.

The test Ceph serves on 127.0.0.1 of the root namespace only. Each test host reaches it through a
relay run by this module: sockets listening on 127.0.0.1:<each Ceph port> inside the host's
network namespace, forwarding to the same port in the root namespace (the mon hands out those
addresses for itself and the OSD), so the pool's monitors read 127.0.0.1:6789 everywhere.

The module shares the session's set of test hosts (NIMBUS_TESTHOSTS_SET, scripts/testhosts.sh)
with the other modules; its crash tests run in the crash run's set."""

import ctypes
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import threading

import pytest

import nimbus_fixtures as nf
from storage_backends import ceph_backend, ceph_cmd, rbd_images  # noqa: F401 (a fixture)
from testhosts import SET, testhosts  # noqa: F401 (the session fixture)

HOSTS = ("kvm1", "kvm2")
CLONE_STEPS = 0  # vm.create's step "create_disk": the clone exists after it
DEFINE_STEP = 3
MARK_SECTOR = 2047
# The guest marks its root disk once and, at every later boot, prints the mark it finds.
USER_DATA = f"""#!/bin/sh
touch /tmp/tick
m=$(dd if=/dev/vda bs=512 skip={MARK_SECTOR} count=1 2>/dev/null | tr -cd 'A-Za-z0-9 ._:\\n-' | head -n 1)
case "$m" in
"NIMBUS-ROOT-MARK "*) echo "$m" ;;
*) printf 'NIMBUS-ROOT-MARK %s\\n' "$(hostname)" |
	dd of=/dev/vda bs=512 seek={MARK_SECTOR} conv=notrunc,fsync 2>/dev/null
   sync
   echo "NIMBUS-ROOT-MARKED $(hostname)" ;;
esac
"""

_libc = ctypes.CDLL(None, use_errno=True)
CLONE_NEWNET = 0x40000000


class CephRelay:
    """127.0.0.1:<port> in each of the network namespaces, forwarded to 127.0.0.1:<port> in the
    root namespace, for every port the test Ceph listens on."""

    def __init__(self, namespaces, ports):
        self.listeners = []
        self.errors = []
        self.closing = False

        def bind_all():
            root = os.open("/proc/self/ns/net", os.O_RDONLY)
            try:
                for ns in namespaces:
                    fd = os.open(f"/run/netns/{ns}", os.O_RDONLY)
                    try:
                        if _libc.setns(fd, CLONE_NEWNET) != 0:
                            raise OSError(ctypes.get_errno(), f"setns {ns}")
                    finally:
                        os.close(fd)
                    for port in ports:
                        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                        s.bind(("127.0.0.1", port))
                        s.listen(64)
                        self.listeners.append((s, port))
            except Exception as e:  # noqa: BLE001
                self.errors.append(e)
            finally:
                _libc.setns(root, CLONE_NEWNET)
                os.close(root)
        # setns moves only the calling thread: a thread of its own, which then ends
        t = threading.Thread(target=bind_all)
        t.start()
        t.join()
        if self.errors:
            self.close()
            raise self.errors[0]
        for s, port in self.listeners:
            threading.Thread(target=self._accept, args=(s, port), daemon=True).start()

    def _accept(self, listener, port):
        while not self.closing:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", port), timeout=10)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self):
        self.closing = True
        for s, _ in self.listeners:
            s.close()


def ceph_ports():
    """The TCP ports the test Ceph's daemons listen on (127.0.0.1)."""
    out = subprocess.run(["ss", "-Hltnp"], capture_output=True, text=True, timeout=30).stdout
    ports = set()
    for line in out.splitlines():
        m = re.search(r"127\.0\.0\.1:(\d+)\s.*\"ceph-(mon|osd|mgr)\"", line)
        if m:
            ports.add(int(m.group(1)))
    return sorted(ports)


@pytest.fixture(scope="module")
def renv(make_env, tiny_image, testhosts, ceph_backend):  # noqa: F811
    env = make_env("rbdvms")
    env.daemon.pool_path = f"/var/lib/libvirt/images/{env.daemon.pool_name}"
    start_daemon(env)
    ns_prefix = "nbhost" if SET == 0 else f"nb{SET}_host"  # scripts/testhosts.sh's names
    ports = ceph_ports()
    assert 6789 in ports and len(ports) >= 4, ports
    relay = CephRelay([f"{ns_prefix}{i}" for i in range(1, len(HOSTS) + 1)], ports)
    env.cb = ceph_backend
    env.pool = None
    try:
        # the hosts reach the test Ceph (as the cephx user Nimbus gets): an rbd listing there
        for i in range(1, len(HOSTS) + 1):
            p = testhosts.exec(i, "env", "-u", "CEPH_CONF", "rbd", "-m", "127.0.0.1:6789", "--id",
                               ceph_backend["user"], "--keyring", ceph_backend["keyring"], "ls",
                               ceph_backend["rbd_pool"], timeout=60)
            assert p.returncode == 0, f"kvm{i} does not reach the test Ceph: {p.stderr}"
        nf.join_test_hosts(env, testhosts, tiny_image, HOSTS)
        env.pool = env.api.ok("POST", "/v1/pools", {
            "name": "ceph", "type": "rbd", "monitors": ceph_backend["monitors"],
            "rbd_pool": ceph_backend["rbd_pool"], "user": ceph_backend["user"],
            "key": ceph_backend["key"]}, expect=201)
        states = {h["host"]: h["state"] for h in env.pool["hosts"]}
        assert all(states.get(h) == "active" for h in HOSTS), env.pool
        yield env
    finally:
        if not env.daemon.alive():  # a crash test that failed half-way left it down
            try:
                start_daemon(env)
            except Exception as e:  # noqa: BLE001
                print(f"nimbusd did not start again for the clean-up: {e}")
        nf.delete_all_vms(env)
        image = getattr(env, "image", None)
        if env.daemon.alive():
            if image:
                env.api.request("DELETE", f"/v1/images/{image['id']}")
            if env.pool:
                env.api.request("DELETE", f"/v1/pools/{env.pool['id']}")
        # what a failed run left in Ceph: this module's clones and base, removed as the admin
        ours = [i for i in rbd_images(ceph_backend)
                if (image and image["id"] in i) or i.startswith("vm-")
                and i[3:-5] in getattr(env, "rbd_vms", set())]
        for name in sorted(ours, key=lambda i: i.startswith("nimbus-image-")):
            ref = f"{ceph_backend['rbd_pool']}/{name}"
            snaps = ceph_cmd(ceph_backend, "snap", "ls", "--format", "json", ref, check=False)
            for snap in json.loads(snaps.stdout or "[]"):
                ceph_cmd(ceph_backend, "snap", "unprotect", f"{ref}@{snap['name']}", check=False)
            ceph_cmd(ceph_backend, "snap", "purge", ref, check=False)
            ceph_cmd(ceph_backend, "rm", ref, check=False)
        env.teardown()
        relay.close()
        shutil.rmtree(env.daemon.pool_path, ignore_errors=True)


def start_daemon(env, crash_at=None, timeout=120):
    """Daemon.start with more time: on a shared, busy machine the local libvirtd can take over
    the fixture's 30 s to answer nimbusd's first look at it."""
    d = env.daemon
    offset = os.path.getsize(d.log_path) if os.path.exists(d.log_path) else 0
    d.start(crash_at=crash_at, wait_ready=False)
    pat = re.compile(rb"listening on http://127\.0\.0\.1:(\d+)")

    def listening():
        assert d.alive(), f"nimbusd exited at start-up:\n{d.log_tail()}"
        with open(d.log_path, "rb") as f:
            f.seek(offset)
            m = pat.search(f.read())
        return m and int(m.group(1))
    d.port = nf.wait_until(listening, timeout, "nimbusd to log 'listening on'")
    with open(os.path.join(d.state_dir, "admin.token")) as f:
        d.token = f.read().strip()


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

    # what covers qcow2 files only in this version refuses, and changes nothing
    for path, body, code in [
            (f"/v1/vms/{vm['id']}/snapshots", {"name": "s1"}, "SNAPSHOT_UNSUPPORTED"),
            ("/v1/backups", {"vm": vm["id"]}, "BACKUP_UNSUPPORTED"),
            (f"/v1/vms/{vm['id']}/clone", {"name": "rbdclone"}, "INVALID_STATE")]:
        r = env.api.request("POST", path, body)
        assert (r.status, r.code) == (409, code), (path, r)
    assert env.api.vm("rbdclone") is None
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
    env.daemon.stop()
    start_daemon(env, crash_at=f"vm.create:{step}")
    try:
        env.api.request("POST", "/v1/vms", body={"name": name, "image": env.image["id"],
                                                 "flavor": env.flavor["id"], "pool": "ceph"},
                        timeout=60)
    except AssertionError:
        pass  # the reply may not make it out before the kill
    assert env.daemon.wait_dead(180) == -signal.SIGKILL
    start_daemon(env)
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
