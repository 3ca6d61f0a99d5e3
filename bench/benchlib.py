"""What the benchmarks share: errors, logging, the Nimbus API client and command runner.
Python 3 standard library only."""

import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.parse

POLL_S = 0.02  # task polling interval: the resolution of every Nimbus figure
HTTP_TIMEOUT_S = 30
CMD_TIMEOUT_S = 120
TASK_TIMEOUT_S = 300  # one task (create, stop, delete, migrate)

STOP = threading.Event()  # Ctrl-C, SIGTERM or a failed worker: stop taking new work


class BenchError(Exception):
    pass


class Interrupted(BenchError):
    pass


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class Api:
    """One persistent HTTP/1.1 connection per thread: nimbusd serves each connection with a
    thread of its own, so a fresh connection per poll would cost it a thread each time."""

    def __init__(self, base, token):
        u = urllib.parse.urlsplit(base)
        if u.scheme != "http" or not u.hostname:
            raise BenchError(f"{base}: only http://HOST:PORT is supported")
        self.base = base.rstrip("/")
        self.host, self.port = u.hostname, u.port or 80
        self.prefix = u.path.rstrip("/")
        self.token = token
        self.local = threading.local()

    def _conn(self):
        c = getattr(self.local, "conn", None)
        if c is None:
            c = self.local.conn = http.client.HTTPConnection(self.host, self.port,
                                                             timeout=HTTP_TIMEOUT_S)
        return c

    def call(self, method, path, body=None, data=None, ok=(200, 201, 202, 204), raw=False):
        """(status, parsed JSON or None); with raw, (status, bytes)."""
        headers = {"Authorization": f"Bearer {self.token}"}
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        elif data is not None:
            headers["Content-Type"] = "application/octet-stream"
        for attempt in (0, 1):
            c = self._conn()
            try:
                c.request(method, self.prefix + path, body=data, headers=headers)
                resp = c.getresponse()
                status, payload = resp.status, resp.read()
                if resp.will_close:
                    self._drop()
                break
            except (http.client.HTTPException, OSError) as e:
                self._drop()
                # A kept-alive connection the server closed meanwhile: one retry, for
                # requests that are safe to repeat.
                if attempt or method not in ("GET", "DELETE"):
                    raise BenchError(f"{method} {path}: {e}") from None
        if status not in ok:
            raise BenchError(f"{method} {path}: HTTP {status}: "
                             f"{payload[:300].decode(errors='replace')}")
        if raw:
            return status, payload
        return status, (json.loads(payload) if payload else None)

    def _drop(self):
        c = getattr(self.local, "conn", None)
        self.local.conn = None
        if c is not None:
            c.close()

    def wait_task(self, task_id, t0, deadline_s=TASK_TIMEOUT_S):
        """Polls a task to its end. Returns (end, marks): marks['running'] and marks[k] (first
        time step >= k was seen) as monotonic times, for the per-step breakdown."""
        marks = {}
        deadline = t0 + deadline_s
        while True:
            if STOP.is_set():
                raise Interrupted("interrupted")
            status, t = self.call("GET", f"/v1/tasks/{task_id}", ok=(200, 404))
            now = time.monotonic()
            if status == 404:  # finished and gone: counts as done
                return now, marks
            if t["state"] in ("running", "succeeded", "failed"):
                marks.setdefault("running", now)
            for k in range(int(t.get("step") or 0) + 1):
                marks.setdefault(k, now)
            if t["state"] == "succeeded":
                return now, marks
            if t["state"] == "failed":
                err = t.get("error") or {}
                raise BenchError(f"task {task_id} ({t.get('kind')}) failed at step "
                                 f"{t.get('step')}: {err.get('code')}: {err.get('message')}")
            if now > deadline:
                raise BenchError(f"task {task_id} still {t['state']} after {deadline_s} s")
            time.sleep(POLL_S)


def run(argv, timeout=CMD_TIMEOUT_S, check=True, inp=None):
    """Runs a command (stdin: inp, or nothing); BenchError on timeout or, with check, on a
    non-zero exit."""
    try:
        p = subprocess.run(argv, input=inp, stdin=None if inp is not None else subprocess.DEVNULL,
                           capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise BenchError(f"{' '.join(argv)}: no answer after {timeout} s") from None
    if check and p.returncode != 0:
        raise BenchError(f"{' '.join(argv)}: exit {p.returncode}: {p.stderr.strip()[:400]}")
    return p


def start_nimbusd(nimbusd, state, pool, log_path, extra_args=(), start_s=30,
                 libvirt_uri="qemu:///system"):
    """Starts a bench's own nimbusd (TCG guests, its pool under the state dir, a session of its
    own so that a Ctrl-C reaches the bench, which stops it) and waits for its address and admin
    token; returns (Popen, Api)."""
    if not os.access(nimbusd, os.X_OK):
        raise BenchError(f"{nimbusd} not found: build with 'ninja -C build'")
    argv = [nimbusd, "--listen", "127.0.0.1:0", "--state-dir", state, "--libvirt-uri",
            libvirt_uri, "--virt-type", "qemu", "--pool-name", pool, "--pool-path",
            os.path.join(state, "pool"), *extra_args]
    with open(log_path, "wb") as errf:
        daemon = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=errf, start_new_session=True)
    deadline = time.monotonic() + start_s
    url = None
    while url is None:
        if daemon.poll() is not None:
            raise BenchError(f"nimbusd exited with {daemon.returncode}")
        if time.monotonic() > deadline:
            raise BenchError("nimbusd did not report its address")
        with open(log_path, errors="replace") as f:
            for line in f:
                if "listening on http://" in line:
                    url = line.split("listening on ", 1)[1].strip()
        time.sleep(0.05)
    token_path = os.path.join(state, "admin.token")
    while not os.path.exists(token_path):
        if time.monotonic() > deadline:
            raise BenchError(f"{token_path} did not appear")
        time.sleep(0.05)
    with open(token_path) as f:
        api = Api(url, f.read().strip())
    log(f"nimbusd pid {daemon.pid} at {url}, pool {pool}")
    return daemon, api


def stop_nimbusd(daemon, timeout=15):
    """SIGTERM to a bench's nimbusd (start_nimbusd's), SIGKILL if it is not gone in timeout s."""
    if daemon is None or daemon.poll() is not None:
        return
    daemon.send_signal(signal.SIGTERM)
    try:
        daemon.wait(timeout)
    except subprocess.TimeoutExpired:
        log(f"clean-up: nimbusd pid {daemon.pid} ignored SIGTERM; killing it")
        daemon.kill()
        daemon.wait(5)
