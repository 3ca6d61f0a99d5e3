#!/usr/bin/python3
"""Event latency: from a state change to the clients watching GET /v1/events.

    bench/events_latency.py [--watchers 200] [--changes 50] [--no-vm] [--gets 300]
                            [--nimbusd PATH]

Starts its own nimbusd (private state dir, storage pool and network range; TCG) and opens W
Server-Sent Events streams on GET /v1/events from this one process (one thread, epoll, plain
sockets). Then it makes N state changes one after the other, each once every watcher has seen
the one before:

* flavor: an admin creates a flavor and deletes it again (two audit events, no libvirt work);
* vm: one tiny TCG guest is paused and resumed (the tasks' and the VM's events; --no-vm skips).

Each event is timed at each watcher twice: when the kernel queued its bytes on the watcher's
socket (SO_TIMESTAMPNS: what the server's fan-out costs, without this client's own scheduling)
and when the watcher thread read them (what a client sees; the gap is this client's own
queueing, printed so that one can tell whether the client is the bottleneck). The reference is
the moment the causing API call's answer reached the driver's socket (its kernel timestamp too:
the driver shares the GIL with the watchers), and the event's own "time" (when nimbusd
published it, in whole milliseconds). p50/p99/max over every (event, watcher), with W watchers and with
1 for comparison. Also GET /v1/vms p50/p99 with no stream open and with the W streams open,
and nimbusd's threads and CPU. Everything it made is removed at the end, also on failure and
Ctrl-C. Figures only: nothing asserts on timings. See docs/benchmarks.md.
"""

import argparse
import datetime
import json
import os
import random
import selectors
import signal
import socket
import struct
import sys
import threading
import time

from benchlib import (BenchError, Workdir, create_tiny_vm, log, start_nimbusd, teardown,
                     upload_test_image)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LOCAL_URI = "qemu:///system"
DAEMON_START_S = 30
SEEN_TIMEOUT_S = 30  # every watcher has an event by then, or the run fails
# Linux's SO_TIMESTAMPNS (also the control message's type); Python's socket module lacks it.
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)


def epoch_of(stamp):
    """An RFC 3339 UTC time with milliseconds ("...T22:10:01.123Z") as seconds."""
    return datetime.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()


def pct(xs, q):
    xs = sorted(xs)
    if not xs:
        return float("nan")
    return xs[min(len(xs) - 1, max(0, int(round(q / 100 * len(xs) + 0.5)) - 1))]


def fmt_ms(xs):
    return (f"p50 {pct(xs, 50) * 1000:7.2f} ms  p99 {pct(xs, 99) * 1000:7.2f} ms  "
            f"max {max(xs) * 1000:7.2f} ms  (n={len(xs)})")


def kernel_time(cmsgs, default):
    for level, typ, cd in cmsgs:
        if level == socket.SOL_SOCKET and typ == SO_TIMESTAMPNS:
            sec, nsec = struct.unpack("qq", cd[:16])
            return sec + nsec / 1e9
    return default


class Driver:
    """The API calls that make the changes, on one kept-alive socket, each answered with the
    kernel's time of the answer's last bytes."""

    def __init__(self, host, port, token):
        self.host, self.port, self.token = host, port, token
        self.sock = None

    def _connect(self):
        self.sock = socket.create_connection((self.host, self.port), timeout=30)
        self.sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def close(self):
        if self.sock:
            self.sock.close()
            self.sock = None

    def call(self, method, path, body=None):
        """(parsed JSON or None, kernel time of the answer)."""
        if self.sock is None:
            self._connect()
        data = json.dumps(body).encode() if body is not None else b""
        head = (f"{method} {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
                f"Authorization: Bearer {self.token}\r\nContent-Length: {len(data)}\r\n")
        if body is not None:
            head += "Content-Type: application/json\r\n"
        self.sock.sendall((head + "\r\n").encode() + data)
        buf, kt, need, close = b"", None, None, False
        anc = socket.CMSG_SPACE(16)
        while need is None or len(buf) < need:
            chunk, cmsgs, _, _ = self.sock.recvmsg(65536, anc)
            if not chunk:
                self.close()
                raise BenchError(f"{method} {path}: the connection closed")
            kt = kernel_time(cmsgs, time.time())
            buf += chunk
            end = buf.find(b"\r\n\r\n")
            if need is None and end >= 0:
                lines = buf[:end].decode("latin-1").split("\r\n")
                status = int(lines[0].split()[1])
                length = 0
                for line in lines[1:]:
                    k, _, v = line.partition(":")
                    if k.strip().lower() == "content-length":
                        length = int(v)
                    if k.strip().lower() == "connection" and v.strip().lower() == "close":
                        close = True
                need = end + 4 + length
        payload = buf[buf.find(b"\r\n\r\n") + 4:]
        if close:
            self.close()
        if status >= 300:
            raise BenchError(f"{method} {path}: HTTP {status}: {payload[:300]!r}")
        return (json.loads(payload) if payload else None), kt


class Watcher:
    """One SSE stream: a socket, its HTTP head, chunked framing and SSE parsing."""

    def __init__(self, idx, sock):
        self.idx = idx
        self.sock = sock
        self.buf = b""  # raw, before the head is read / de-chunking
        self.body = b""  # de-chunked SSE text not yet parsed
        self.head = None
        self.chunked = False
        self.ended = False


class Watchers:
    """W event streams read by one thread. Each complete event is recorded as (watcher, id,
    type, data, kernel time, read time); the driver waits for the watchers to see an event
    matching a key."""

    def __init__(self, host, port, token, n):
        self.host, self.port, self.token, self.n = host, port, token, n
        self.sel = selectors.EpollSelector()
        self.ws = []
        self.records = []
        self.lock = threading.Condition()
        self.expect = {}  # key -> {watcher idx: (kernel time, read time, event time)}
        self.ready = 0
        self.stop = threading.Event()
        self.error = None
        self.cpu = None  # the reading thread's CPU seconds and wall seconds
        self.thread = None

    def open(self):
        req = (f"GET /v1/events HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
               f"Authorization: Bearer {self.token}\r\nAccept: text/event-stream\r\n\r\n"
               ).encode()
        for i in range(self.n):
            s = socket.create_connection((self.host, self.port), timeout=10)
            s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            s.sendall(req)
            s.setblocking(False)
            w = Watcher(i, s)
            self.ws.append(w)
            self.sel.register(s, selectors.EVENT_READ, w)
        self.thread = threading.Thread(target=self.loop, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        with self.lock:
            while self.ready < self.n and self.error is None:
                if time.monotonic() > deadline:
                    raise BenchError(f"only {self.ready} of {self.n} streams started")
                self.lock.wait(0.5)
        if self.error:
            raise BenchError(self.error)

    def close(self):
        self.stop.set()
        if self.thread:
            self.thread.join(10)
        for w in self.ws:
            try:
                self.sel.unregister(w.sock)
            except (KeyError, ValueError):
                pass
            w.sock.close()
        self.sel.close()

    def watch(self, key):
        """Starts counting the events matching key = (type, substring...) before the change
        that causes them is made."""
        with self.lock:
            self.expect[key] = {}

    def wait_all(self, key, timeout=SEEN_TIMEOUT_S):
        """{watcher: (kernel time, read time, event time)} once every watcher saw key."""
        deadline = time.monotonic() + timeout
        with self.lock:
            while len(self.expect[key]) < self.n:
                if self.error:
                    raise BenchError(self.error)
                left = deadline - time.monotonic()
                if left <= 0:
                    raise BenchError(f"{len(self.expect[key])} of {self.n} watchers saw "
                                     f"{key} after {timeout} s")
                self.lock.wait(left)
            return self.expect.pop(key)

    def loop(self):
        c0, t0 = time.thread_time(), time.monotonic()
        anc = socket.CMSG_SPACE(16)
        try:
            while not self.stop.is_set():
                got = []
                for k, _ in self.sel.select(0.2):
                    w = k.data
                    try:
                        data, cmsgs, _, _ = w.sock.recvmsg(65536, anc)
                    except BlockingIOError:
                        continue
                    ut = time.time()
                    kt = kernel_time(cmsgs, ut)
                    if not data:
                        self.sel.unregister(w.sock)
                        w.ended = True
                        if not self.stop.is_set():
                            self.error = f"stream {w.idx} ended"
                        continue
                    got.append((w, data, kt, ut))
                if got:
                    with self.lock:
                        for w, data, kt, ut in got:
                            self.feed(w, data, kt, ut)
                        self.lock.notify_all()
        except Exception as e:  # noqa: BLE001 - reported by the driver
            with self.lock:
                self.error = f"watcher thread: {e!r}"
                self.lock.notify_all()
        self.cpu = (time.thread_time() - c0, time.monotonic() - t0)

    def feed(self, w, data, kt, ut):
        """With self.lock held."""
        if w.head is None:
            w.buf += data
            end = w.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            w.head, data, w.buf = w.buf[:end].decode("latin-1"), w.buf[end + 4:], b""
            status = w.head.split("\r\n", 1)[0]
            if " 200 " not in status + " ":
                self.error = f"stream {w.idx}: {status}"
                return
            w.chunked = "transfer-encoding: chunked" in w.head.lower()
            self.ready += 1
        if w.chunked:
            w.buf += data
            while True:
                eol = w.buf.find(b"\r\n")
                if eol < 0:
                    break
                size = int(w.buf[:eol].split(b";")[0], 16)
                if len(w.buf) < eol + 2 + size + 2:
                    break
                w.body += w.buf[eol + 2:eol + 2 + size]
                w.buf = w.buf[eol + 2 + size + 2:]
                if size == 0:
                    break
        else:
            w.body += data
        while True:
            end = w.body.find(b"\n\n")
            if end < 0:
                return
            block, w.body = w.body[:end].decode(), w.body[end + 2:]
            ev_id = ev_type = ev_data = None
            for line in block.split("\n"):
                if line.startswith("id: "):
                    ev_id = int(line[4:])
                elif line.startswith("event: "):
                    ev_type = line[7:]
                elif line.startswith("data: "):
                    ev_data = line[6:]
            if ev_data is None:
                continue  # a comment: the stream's start or a heartbeat
            self.records.append((w.idx, ev_id, ev_type, ev_data, kt, ut))
            for key, seen in self.expect.items():
                if w.idx not in seen and ev_type == key[0] and all(s in ev_data
                                                                   for s in key[1:]):
                    t = ev_data.split('"time":"', 1)[1].split('"', 1)[0]
                    seen[w.idx] = (kt, ut, epoch_of(t))


class Bench:
    def __init__(self, args):
        self.args = args
        w = Workdir("events")
        self.tag, self.work, self.state, self.pool = w.tag, w.work, w.state, w.pool
        self.daemon = None
        self.log_path = w.log_path
        self.api = None
        self.ids = {}
        self.flavors = set()  # made by the flavor changes, deleted at the end if still there

    # ---------------------------------------------------------------- set-up

    def start_daemon(self):
        self.daemon, self.api = start_nimbusd(
            self.args.nimbusd, self.state, self.pool, self.log_path,
            ["--default-network-pool", "10.252.0.0/16"], DAEMON_START_S)
        self.token = self.api.token

    def make_vm(self):
        self.ids["images"] = upload_test_image(self.api, self.work, f"bench-ev-{self.tag}")
        self.ids["flavors"], self.ids["vms"] = create_tiny_vm(
            self.api, f"bench-ev-{self.tag}", self.ids["images"])

    def threads(self):
        with open(f"/proc/{self.daemon.pid}/status") as f:
            return int(next(x for x in f if x.startswith("Threads:")).split()[1])

    def cpu_s(self):
        with open(f"/proc/{self.daemon.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    # ---------------------------------------------------------------- measuring

    def gets(self, n):
        """GET /v1/vms n times over one kept-alive connection, after 20 not counted."""
        out = []
        for i in range(n + 20):
            t0 = time.perf_counter()
            self.api.call("GET", "/v1/vms")
            if i >= 20:
                out.append(time.perf_counter() - t0)
        return out

    def timed(self, method, path, body=None):
        """The call; (answer, kernel time of the answer on the driver's socket)."""
        return self.driver.call(method, path, body)

    def changes(self, w):
        """N flavor create+delete pairs and N VM pause+resume pairs; per key: a list of
        (API return time, {watcher: (kernel, read, event time)})."""
        out = {"flavor": [], "vm": []}
        for i in range(self.args.changes):
            name = f"bench-ev-{self.tag}-{i}"
            key = ("audit", '"action":"flavor.create"', f'"target":"{name}"')
            w.watch(key)
            fl, t = self.timed("POST", "/v1/flavors",
                               {"name": name, "vcpus": 1, "ram_mib": 64, "disk_gib": 1})
            self.flavors.add(fl["id"])
            out["flavor"].append((t, w.wait_all(key)))
            key = ("audit", '"action":"flavor.delete"', f'"target":"{fl["id"]}"')
            w.watch(key)
            _, t = self.timed("DELETE", f"/v1/flavors/{fl['id']}")
            self.flavors.discard(fl["id"])
            out["flavor"].append((t, w.wait_all(key)))
            time.sleep(random.uniform(0.02, 0.05))
            if "vms" not in self.ids:
                continue
            vm = self.ids["vms"]
            for action, state in (("pause", "paused"), ("resume", "running")):
                key = ("vm", f'"id":"{vm}"', f'"state":"{state}"')
                w.watch(key)
                _, t = self.timed("POST", f"/v1/vms/{vm}/{action}", {})
                out["vm"].append((t, w.wait_all(key)))
                time.sleep(random.uniform(0.02, 0.05))
        return out

    def phase(self, n):
        """n watchers: streams open, threads, GETs (with n > 1), the changes."""
        host, port = self.api.host, self.api.port
        before = self.threads()
        w = Watchers(host, port, self.token, n)
        self.driver = Driver(host, port, self.token)
        try:
            w.open()
            time.sleep(1)
            res = {"threads": (before, self.threads())}
            if n > 1:
                res["gets"] = self.gets(self.args.gets)
            c0, t0 = self.cpu_s(), time.monotonic()
            res["changes"] = self.changes(w)
            res["cpu"] = (self.cpu_s() - c0) / (time.monotonic() - t0) * 100
            res["records"] = len(w.records)
            # Every event every watcher read: from its own time to the kernel's receipt.
            lat_k, lag = [], []
            for _, _, _, data, kt, ut in w.records:
                t = data.split('"time":"', 1)[1].split('"', 1)[0]
                lat_k.append(kt - epoch_of(t))
                lag.append(ut - kt)
            res["all_events"] = lat_k
            res["client_lag"] = lag
        finally:
            w.close()
            self.driver.close()
        res["client_cpu"] = w.cpu
        return res

    def cleanup(self):
        if self.api and self.daemon and self.daemon.poll() is None:
            for fid in list(self.flavors):
                try:
                    self.api.call("DELETE", f"/v1/flavors/{fid}", ok=(204, 404))
                except BenchError as e:
                    log(f"clean-up: deleting flavor {fid}: {e}")
        teardown(self.api, self.daemon, self.ids, self.pool, self.work, LOCAL_URI)


def report(args, nogets, phases):
    print(f"\nnimbusd event latency, {time.strftime('%Y-%m-%d %H:%M %Z')}, {os.cpu_count()} "
          f"cores, load average {os.getloadavg()[0]:.2f}; {args.changes} changes of each kind")
    for n, res in phases:
        print(f"\n== {n} watcher(s): nimbusd threads {res['threads'][0]} -> "
              f"{res['threads'][1]} with the streams open; nimbusd CPU during the changes "
              f"{res['cpu']:.1f} % of a core; {res['records']} events read")
        for kind, label in (("flavor", "flavor create/delete -> its audit event"),
                            ("vm", "VM pause/resume -> the VM's paused/running event")):
            rows = res["changes"][kind]
            if not rows:
                continue
            from_ret_k = [kt - t for t, seen in rows for kt, _, _ in seen.values()]
            from_ret_u = [ut - t for t, seen in rows for _, ut, _ in seen.values()]
            from_ev_k = [kt - et for _, seen in rows for kt, _, et in seen.values()]
            from_ev_u = [ut - et for _, seen in rows for _, ut, et in seen.values()]
            print(f"  {label}:")
            print(f"    from the API answer,  to the watcher's socket: {fmt_ms(from_ret_k)}")
            print(f"    from the API answer,  read by the watcher:     {fmt_ms(from_ret_u)}")
            print(f"    from the event's time, to the watcher's socket: {fmt_ms(from_ev_k)}")
            print(f"    from the event's time, read by the watcher:     {fmt_ms(from_ev_u)}")
            if n > 1:
                first = [min(kt for kt, _, _ in seen.values()) - t for t, seen in rows]
                last = [max(kt for kt, _, _ in seen.values()) - t for t, seen in rows]
                print(f"    from the API answer, first of the {n} watchers: {fmt_ms(first)}")
                print(f"    from the API answer, last of the {n} watchers:  {fmt_ms(last)}")
        print(f"  every event read (tasks, VMs, audit), from its time to the socket: "
              f"{fmt_ms(res['all_events'])}")
        cpu, wall = res["client_cpu"]
        print(f"  the client: socket -> read {fmt_ms(res['client_lag'])}; its reading thread "
              f"used {cpu / wall * 100:.1f} % of a core")
        if "gets" in res:
            print(f"  GET /v1/vms with the {n} streams open: {fmt_ms(res['gets'])}")
    print(f"\nGET /v1/vms with no stream open:   {fmt_ms(nogets)}")
    print("(event times are whole milliseconds, cut: 'from the event's time' reads up to "
          "1 ms long)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--watchers", type=int, default=200)
    ap.add_argument("--changes", type=int, default=50,
                    help="flavor create+delete pairs, and VM pause+resume pairs (default 50)")
    ap.add_argument("--no-vm", action="store_true", help="flavor changes only: no guest")
    ap.add_argument("--gets", type=int, default=300, help="GET /v1/vms timed (default 300)")
    ap.add_argument("--nimbusd",
                    default=os.path.join(REPO, "build-release", "src", "daemon", "nimbusd"))
    args = ap.parse_args()
    if not 1 <= args.watchers <= 240 or args.changes < 1 or args.gets < 1:
        ap.error("--watchers 1-240 (nimbusd takes 256 connections), --changes and --gets >= 1")
    b = Bench(args)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    try:
        b.start_daemon()
        if not args.no_vm:
            b.make_vm()
        time.sleep(1)
        nogets = b.gets(args.gets)
        phases = []
        for n in (1, args.watchers):
            log(f"{n} watcher(s): {args.changes} changes of each kind")
            phases.append((n, b.phase(n)))
            time.sleep(2)  # the streams' threads notice the hang-ups within a second
    except (BenchError, KeyboardInterrupt) as e:
        log(f"failed: {e!r}")
        b.cleanup()
        return 1
    b.cleanup()
    report(args, nogets, phases)
    return 0


if __name__ == "__main__":
    sys.exit(main())
