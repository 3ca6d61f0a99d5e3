"""nimbusd as an unprivileged user in the group libvirt, as the Debian unit runs it (User=nimbus,
no capability): it uploads an image (which it checks with qemu-img on the volume's file) and
creates, starts and deletes a VM on qemu:///system.

libvirt lets the group libvirt in through its polkit rule; this machine has neither D-Bus nor
polkitd, so the test hands nimbusd a socket of its own that a proxy in the test (running as
root) forwards to libvirtd's. libvirtd then sees root on the other end, which is what the
polkit rule grants the group anyway; what the test is about is everything else nimbusd does as
that user: files it opens in the pool and the state directory, and the programs it runs."""

import grp
import os
import pwd
import shutil
import socket
import stat
import subprocess
import threading

import pytest

import nimbus_fixtures as nf

USER = "nimbus-e2e"
LIBVIRT_SOCK = "/run/libvirt/libvirt-sock"


def ensure_user():
    """The system user, in the group libvirt, and whether this call made it."""
    if os.geteuid() != 0:
        pytest.skip("needs root to make the user and run nimbusd as it")
    if not shutil.which("setpriv"):
        pytest.skip("setpriv (util-linux) is not installed")
    try:
        grp.getgrnam("libvirt")
    except KeyError:
        pytest.skip("no group libvirt (libvirt-daemon-system is not installed)")
    made = False
    try:
        pw = pwd.getpwnam(USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
                        "--groups", "libvirt", USER], check=True)
        made = True
        pw = pwd.getpwnam(USER)
    if USER not in grp.getgrnam("libvirt").gr_mem:
        subprocess.run(["usermod", "-a", "-G", "libvirt", USER], check=True)
    return pw, made


class SocketProxy:
    """Listens on a unix socket only USER may use and copies bytes both ways to libvirtd's."""

    def __init__(self, path, uid, gid):
        self.path = path
        self.srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.srv.bind(path)
        os.chown(path, uid, gid)
        os.chmod(path, 0o600)
        self.srv.listen(16)
        self.conns = []
        self.stopping = False
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while not self.stopping:
            try:
                c, _ = self.srv.accept()
            except OSError:
                return
            u = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            u.connect(LIBVIRT_SOCK)
            self.conns += [c, u]
            for a, b in ((c, u), (u, c)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src, dst):
        try:
            while True:
                data = src.recv(1 << 16)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self):
        self.stopping = True
        try:
            self.srv.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.srv.close()
        for s in self.conns:
            s.close()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass


@pytest.fixture
def nonroot_env(make_env, monkeypatch):
    pw, made = ensure_user()
    env = make_env("nonroot")
    state = env.daemon.state_dir
    os.chown(state, pw.pw_uid, pw.pw_gid)
    os.chmod(state, 0o711)  # libvirt-qemu traverses it to the pool, as StateDirectoryMode=0711
    run_dir = os.path.join(os.path.dirname(state), "nonroot-run")
    os.makedirs(run_dir, mode=0o711, exist_ok=True)
    proxy = SocketProxy(os.path.join(run_dir, "libvirt-sock"), pw.pw_uid, pw.pw_gid)
    # nimbusd execs as USER with its groups (libvirt among them), like systemd's User=.
    wrapper = os.path.join(run_dir, "nimbusd-as-user")
    with open(wrapper, "w") as f:
        f.write(f"#!/bin/sh\nexec setpriv --reuid={USER} --regid={pw.pw_gid} --init-groups "
                f"--inh-caps=-all --bounding-set=-all {nf.NIMBUSD} \"$@\"\n")
    os.chmod(wrapper, 0o755)
    monkeypatch.setattr(nf, "NIMBUSD", wrapper)
    monkeypatch.setattr(nf, "LIBVIRT_URI", f"qemu+unix:///system?socket={proxy.path}")
    try:
        yield env, pw
    finally:
        try:
            env.teardown()
        finally:
            proxy.close()
            shutil.rmtree(run_dir, ignore_errors=True)
            if made:
                subprocess.run(["userdel", USER], check=False)


def test_nonroot_upload_and_vm(nonroot_env, tiny_image):
    env, pw = nonroot_env
    env.daemon.start()
    # it runs as the user, without a capability
    with open(f"/proc/{env.daemon.pid}/status") as f:
        status = dict(line.split(":", 1) for line in f.read().splitlines() if ":" in line)
    assert status["Uid"].split()[1] == str(pw.pw_uid), status["Uid"]
    assert int(status["CapEff"], 16) == 0 and int(status["CapAmb"], 16) == 0, status
    assert grp.getgrnam("libvirt").gr_gid in {int(g) for g in status["Groups"].split()}

    image = nf.upload_image(env, "nonroot-tiny", tiny_image)
    assert image["virtual_size_bytes"] > image["size_bytes"] > 0, image
    # The image's volume is readable by nimbusd's group and no one else; still root's.
    vols = [v for v in os.listdir(env.daemon.pool_path) if image["id"] in v]
    assert len(vols) == 1, vols
    vol = os.path.join(env.daemon.pool_path, vols[0])
    st = os.stat(vol)
    assert st.st_uid == 0 and st.st_gid == pw.pw_gid, (vol, st.st_uid, st.st_gid)
    assert stat.S_IMODE(st.st_mode) & 0o007 == 0, oct(st.st_mode)

    flavor = nf.create_small_flavor(env, "nonroot-small")
    r = env.api.create_vm("nonroot-vm", image["id"], flavor["id"])
    vm_id = r["vm"]["id"]
    env.remember(vm_id)
    vm = env.api.wait_vm_state(vm_id, "running")
    assert vm["state"] == "running", vm
    env.api.delete_vm(vm_id)
    nf.wait_until(lambda: not nf.our_domains(env.daemon, {vm_id}), 60,
                  "the VM's domain to be gone")
    env.api.ok("DELETE", f"/v1/images/{image['id']}", expect=204)
    assert not os.path.exists(vol), vol
