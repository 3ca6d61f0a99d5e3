"""GET /v1/health checks something real: the store answers, and it counts the hosts by their
connection state. No token needed; a store that does not answer is 503 STORE_UNAVAILABLE.
GET /v1/ready says whether this daemon can do its work now: the store answers, the local host is
connected and the task workers run; 503 with the same body saying what failed otherwise."""

import os
import socket
import sqlite3
import threading
import time

import pytest

import nimbus_fixtures as nf


@pytest.fixture(scope="module")
def health_env(make_env):
    env = make_env("health")
    env.daemon.start()
    yield env
    env.teardown()


def health(env):
    return env.api.request("GET", "/v1/health", token=None)


def ready(env):
    return env.api.request("GET", "/v1/ready", token=None)


def store_sql(env, sql):
    """Changes the daemon's store from outside, the way a broken disk or a stray tool would."""
    db = sqlite3.connect(os.path.join(env.daemon.state_dir, "nimbus.db"), timeout=30)
    try:
        db.execute(sql)
        db.commit()
    finally:
        db.close()


def test_health_ok_counts_hosts(health_env):
    r = health(health_env)
    assert r.status == 200, r
    body = r.json
    assert body["status"] == "ok" and body["store"] == "ok", body
    assert body["hosts"] == {"total": 1, "up": 1, "down": 0, "connecting": 0}, body

    # A host nobody listens for: it is counted, and ends up down (never up).
    health_env.api.ok("POST", "/v1/hosts",
                      {"name": "nowhere", "uri": "qemu+tcp://127.0.0.1:1/system"}, expect=201)
    body = nf.wait_until(lambda: (lambda b: b if b["hosts"]["down"] == 1 else None)(
        health(health_env).json), 60, "the unreachable host counted down")
    assert body["hosts"] == {"total": 2, "up": 1, "down": 1, "connecting": 0}, body
    assert body["status"] == "ok", "an unreachable host is not the controller's ill health"

    health_env.api.ok("DELETE", "/v1/hosts/nowhere", expect=204)
    body = nf.wait_until(lambda: (lambda b: b if b["hosts"]["total"] == 1 else None)(
        health(health_env).json), 30, "the removed host no longer counted")
    assert body["hosts"]["up"] == 1, body


def test_health_503_when_store_does_not_answer(health_env):
    assert health(health_env).status == 200
    # The hosts table gone: every query of it fails, as it would on a store that lost its file.
    store_sql(health_env, "ALTER TABLE hosts RENAME TO hosts_away")
    try:
        r = health(health_env)
        assert r.status == 503, r
        assert r.code == "STORE_UNAVAILABLE", r
        assert r.json["error"]["request_id"] == r.headers.get("x-request-id"), r
        r = ready(health_env)
        assert r.status == 503 and r.json["status"] == "not_ready", r
        assert r.json["store"] != "ok" and "hosts" in r.json["store"], r.json
        assert r.json["local_host"]["connection"] == "up", r.json
    finally:
        store_sql(health_env, "ALTER TABLE hosts_away RENAME TO hosts")
    r = nf.wait_until(lambda: (lambda x: x if x.status == 200 else None)(health(health_env)), 30,
                      "health ok again once the store answers")
    assert r.json["status"] == "ok", r


def test_ready(health_env):
    r = ready(health_env)
    assert r.status == 200, r
    body = r.json
    assert body["status"] == "ready" and body["store"] == "ok", body
    assert body["local_host"]["connection"] == "up", body
    tasks = body["tasks"]
    assert tasks["status"] == "ok" and tasks["workers"] >= 1, body
    assert 0 <= tasks["busy"] <= tasks["workers"] and tasks["stalled_ms"] == 0, body



class UnixProxy:
    """A TCP listener on 127.0.0.1 relaying each connection to a unix socket: the local host's
    libvirt reached over qemu+tcp, so the test can cut the connection (stop) and give it back
    (start) without touching the shared libvirtd."""

    def __init__(self, path):
        self.path, self.port, self.conns, self.lsock = path, None, [], None

    def start(self):
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", self.port or 0))
        self.port = self.lsock.getsockname()[1]
        self.lsock.listen(16)
        threading.Thread(target=self._accept, args=(self.lsock,), daemon=True).start()

    def _accept(self, lsock):
        while True:
            try:
                c, _ = lsock.accept()
            except OSError:
                return
            u = socket.socket(socket.AF_UNIX)
            u.connect(self.path)
            self.conns += [c, u]
            for a, b in ((c, u), (u, c)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(a, b):
        try:
            while (data := a.recv(65536)):
                b.sendall(data)
        except OSError:
            pass
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def stop(self):
        try:
            self.lsock.shutdown(socket.SHUT_RDWR)  # wakes the accept, which holds the socket
        except OSError:
            pass
        self.lsock.close()
        for s in self.conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()
        self.conns = []


def test_not_ready_without_local_libvirt(make_env):
    """A daemon whose local libvirt stops answering is alive (health 200: the process and its
    store work) but not ready: it cannot place or start VMs on its own host. Ready again once
    the connection is back."""
    proxy = UnixProxy("/run/libvirt/libvirt-sock")
    proxy.start()
    env = make_env("ready-proxy")
    env.daemon.extra_args = ["--libvirt-uri", f"qemu+tcp://127.0.0.1:{proxy.port}/system"]
    env.daemon.start()
    try:
        r = nf.wait_until(lambda: (lambda x: x if x.status == 200 else None)(ready(env)), 60,
                          "ready through the relay")
        assert r.json["local_host"]["connection"] == "up", r.json
        proxy.stop()
        r = nf.wait_until(lambda: (lambda x: x if x.status == 503 else None)(ready(env)), 60,
                          "not ready once the local libvirt is gone")
        assert r.json["status"] == "not_ready", r.json
        assert r.json["local_host"]["connection"] != "up", r.json
        assert r.json["store"] == "ok" and r.json["tasks"]["status"] == "ok", r.json
        assert health(env).status == 200
        proxy.start()
        r = nf.wait_until(lambda: (lambda x: x if x.status == 200 else None)(ready(env)), 90,
                          "ready again once the local libvirt answers")
        assert r.json["status"] == "ready", r.json
    finally:
        proxy.stop()
        env.teardown()


def test_systemd_notify_and_watchdog(make_env, tmp_path):
    """Under systemd (Type=notify, WatchdogSec=): READY=1 once the API serves, WATCHDOG=1 every
    half interval while the daemon is alive, STOPPING=1 on SIGTERM. The test plays systemd's
    notification socket."""
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(1)
    got = []

    def collect(until, want):
        deadline = time.monotonic() + until
        while time.monotonic() < deadline and not want(got):
            try:
                got.append(sock.recv(4096).decode())
            except socket.timeout:
                pass
        return want(got)

    env = make_env("notify")
    env.daemon.extra_env = {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "2000000"}
    env.daemon.start()
    try:
        assert collect(30, lambda g: any("READY=1" in m for m in g)), got
        assert ready(env).status == 200
        # every second (half of 2 s): three within 5 s
        assert collect(5, lambda g: sum(m == "WATCHDOG=1" for m in g) >= 3), got
        assert "watchdog: pinging systemd every 1000 ms" in env.daemon.log_tail(400)
        env.daemon.stop(timeout=20)
        assert collect(5, lambda g: any("STOPPING=1" in m for m in g)), got
        n = sum(m == "WATCHDOG=1" for m in got)
        assert not collect(3, lambda g: sum(m == "WATCHDOG=1" for m in g) > n), got
    finally:
        sock.close()
        env.teardown()
    # Meant for another process (WATCHDOG_PID not ours): no pings, READY all the same.
    got.clear()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    os.unlink(path)
    sock.bind(path)
    sock.settimeout(1)
    env = make_env("notify-other")
    env.daemon.extra_env = {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "2000000",
                            "WATCHDOG_PID": "1"}
    env.daemon.start()
    try:
        assert collect(30, lambda g: any("READY=1" in m for m in g)), got
        assert not collect(4, lambda g: any(m == "WATCHDOG=1" for m in g)), got
    finally:
        sock.close()
        env.teardown()
