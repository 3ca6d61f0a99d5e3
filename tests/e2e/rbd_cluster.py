"""A cluster of namespace test hosts whose VMs' disks are on the real test Ceph, shared by the
modules on VMs on RBD (test_rbd_vms, test_rbd_snapshots, test_rbd_backups, test_rbd_clone).

The test Ceph (scripts/test-ceph.sh) serves on 127.0.0.1 of the root namespace only. Each test
host reaches it through a CephRelay: 127.0.0.1:<port> in the host's network namespace, forwarded
to the same port in the root namespace (the mon hands out those addresses for itself and the
OSD), so the pool's monitors read 127.0.0.1:6789 everywhere.

    with rbd_cluster(make_env, "label", tiny_image, testhosts, ceph_backend, ("kvm1",)) as env:
        ...  # env.pool (the rbd pool "ceph"), env.cb (ceph_backend), env.image, env.flavor

The clean-up deletes the environment's VMs, backups, volumes, images and pool through the API
(nimbusd restarted first when a crash test left it down), then removes as Ceph's admin what a
failed run left in the pool: the image's base and the clones of the VMs the environment
remembered (env.remember) or listed in env.rbd_vms, with their snapshots.
"""

import contextlib
import ctypes
import json
import os
import re
import shutil
import socket
import subprocess
import threading

import nimbus_fixtures as nf
from storage_backends import ceph_cmd, rbd_images
from testhosts import SET

MARK_SECTOR = nf.ROOT_MARK_SECTOR
# The guest marks its root disk once and, at every later boot, prints the mark it finds; it
# also touches /tmp/tick (a running guest's sign for the tests that look).
USER_DATA = "#!/bin/sh\ntouch /tmp/tick\n" + nf.ROOT_MARK_SH

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


def marked_vm(env, name, host):
    """A VM with its root disk in the rbd pool "ceph", on host, whose guest marks its root disk
    (USER_DATA), waited for until it has: the VM's row as created."""
    r = env.api.ok("POST", "/v1/vms", {
        "name": name, "image": env.image["id"], "flavor": env.flavor["id"], "pool": "ceph",
        "host": host, "user_data": USER_DATA}, expect=202)
    env.remember(r["vm"]["id"])
    env.api.wait_task(r["task"]["id"])
    env.api.wait_console(r["vm"]["id"], f"NIMBUS-ROOT-MARKED {name}")
    return r["vm"]


def _delete_all(env, kind, key):
    for x in reversed(env.api.get(f"/v1/{kind}")[key]):
        r = env.api.request("DELETE", f"/v1/{kind}/{x['id']}")
        if r.status == 202:
            env.api.wait_task(r.json["task"]["id"], expect=None)


def _purge_ceph_leftovers(env, cb):
    image = getattr(env, "image", None)
    vms = set(getattr(env, "rbd_vms", set())) | set(env.known_ids)
    ours = [i for i in rbd_images(cb)
            if (image and image["id"] in i) or (i.startswith("vm-") and i[3:-5] in vms)]
    # clones before their base
    for name in sorted(ours, key=lambda i: i.startswith("nimbus-image-")):
        ref = f"{cb['rbd_pool']}/{name}"
        snaps = ceph_cmd(cb, "snap", "ls", "--format", "json", ref, check=False)
        for snap in json.loads(snaps.stdout or "[]"):
            ceph_cmd(cb, "snap", "unprotect", f"{ref}@{snap['name']}", check=False)
        ceph_cmd(cb, "snap", "purge", ref, check=False)
        ceph_cmd(cb, "rm", ref, check=False)


@contextlib.contextmanager
def rbd_cluster(make_env, label, tiny_image, testhosts, ceph_backend, hosts):
    """A started nimbusd (its pool under the hosts' own /var/lib/libvirt) with the test hosts
    `hosts` joined, each reaching the test Ceph through a relay, and the rbd pool "ceph" active
    on all of them; everything it and the tests made removed afterwards."""
    env = make_env(label)
    env.daemon.pool_path = f"/var/lib/libvirt/images/{env.daemon.pool_name}"
    start_daemon(env)
    ns_prefix = "nbhost" if SET == 0 else f"nb{SET}_host"  # scripts/testhosts.sh's names
    ports = ceph_ports()
    assert 6789 in ports and len(ports) >= 4, ports
    relay = CephRelay([f"{ns_prefix}{i}" for i in range(1, len(hosts) + 1)], ports)
    env.cb = ceph_backend
    env.pool = None
    env.image = None
    try:
        # the hosts reach the test Ceph (as the cephx user Nimbus gets): an rbd listing there
        for i in range(1, len(hosts) + 1):
            p = testhosts.exec(i, "env", "-u", "CEPH_CONF", "rbd", "-m", "127.0.0.1:6789", "--id",
                               ceph_backend["user"], "--keyring", ceph_backend["keyring"], "ls",
                               ceph_backend["rbd_pool"], timeout=60)
            assert p.returncode == 0, f"kvm{i} does not reach the test Ceph: {p.stderr}"
        nf.join_test_hosts(env, testhosts, tiny_image, hosts)
        env.pool = env.api.ok("POST", "/v1/pools", {
            "name": "ceph", "type": "rbd", "monitors": ceph_backend["monitors"],
            "rbd_pool": ceph_backend["rbd_pool"], "user": ceph_backend["user"],
            "key": ceph_backend["key"]}, expect=201)
        states = {h["host"]: h["state"] for h in env.pool["hosts"]}
        assert all(states.get(h) == "active" for h in hosts), env.pool
        yield env
    finally:
        if not env.daemon.alive():  # a crash test that failed half-way left it down
            try:
                start_daemon(env)
            except Exception as e:  # noqa: BLE001
                print(f"nimbusd did not start again for the clean-up: {e}")
        if env.daemon.alive():
            nf.delete_all_vms(env)
            _delete_all(env, "backups", "backups")
            _delete_all(env, "volumes", "volumes")
            for i in env.api.images():  # the test image and the images made from VMs
                env.api.request("DELETE", f"/v1/images/{i['id']}")
            if env.pool:
                env.api.request("DELETE", f"/v1/pools/{env.pool['id']}")
        _purge_ceph_leftovers(env, ceph_backend)
        env.teardown()
        relay.close()
        shutil.rmtree(env.daemon.pool_path, ignore_errors=True)
