#!/usr/bin/python3
"""Serial console round trip: keystroke to echo through nimbusd's console WebSocket.

    bench/console_rtt.py [--keys N] [--idle N] [--nimbusd PATH]

Starts its own nimbusd (TCG, private state dir, storage pool and network range) on the local
libvirtd, builds the test image, creates one VM and waits for the shell on its serial console
(tests/image/init). Then, through a console ticket and the WebSocket (what the browser's
terminal uses), it types N single characters one at a time and times each from the frame sent
to the frame that carries the character back (the guest's tty echoes it): the path is client ->
nimbusd (wslay) -> libvirt stream -> libvirtd -> QEMU's pty -> the guest's tty, and back.
Then the same through the guest's serial pty on
this host directly (no nimbusd, no libvirt: the baseline). Prints p50/p99/mean/max in ms.
With --idle N (default 30) it also holds N silent VNC sessions open and prints nimbusd's
threads and CPU while they sit. Everything it made is removed at the end, also on failure and
Ctrl-C. Figures only: nothing asserts on timings. See docs/benchmarks.md.
"""

import argparse
import os
import signal
import statistics
import sys
import time

import websocket

from benchlib import (BenchError, Workdir, create_tiny_vm, log, run, start_nimbusd, teardown,
                     upload_test_image)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LOCAL_URI = "qemu:///system"
DAEMON_START_S = 30
BOOT_S = 180
WARMUP = 5  # keystrokes not counted: the first ones after the console opened


class Bench:
    def __init__(self, args):
        self.args = args
        w = Workdir("console")
        self.tag, self.work, self.state, self.pool = w.tag, w.work, w.state, w.pool
        self.daemon = None
        self.log_path = w.log_path
        self.api = None
        self.ids = {}

    def start_daemon(self):
        self.daemon, self.api = start_nimbusd(
            self.args.nimbusd, self.state, self.pool, self.log_path,
            ["--default-network-pool", "10.251.0.0/16"], DAEMON_START_S)
        self.url = self.api.base

    def make_vm(self):
        self.ids["images"] = upload_test_image(self.api, self.work, f"bench-con-{self.tag}")
        self.ids["flavors"], self.ids["vms"] = create_tiny_vm(
            self.api, f"bench-con-{self.tag}", self.ids["images"])

    def connect(self):
        _, t = self.api.call("POST", f"/v1/vms/{self.ids['vms']}/console", {"type": "serial"})
        ws_url = "ws://" + self.url.split("://", 1)[1].rstrip("/") + t["url"]
        return websocket.create_connection(ws_url, timeout=30, subprotocols=["binary"])

    def measure(self):
        ws = self.connect()
        try:
            # The shell: type until a command's output comes back.
            seen, deadline, next_send = b"", time.monotonic() + BOOT_S, 0
            while b"nimbus-42" not in seen:
                if time.monotonic() > deadline:
                    raise BenchError("no shell on the serial console")
                if time.monotonic() >= next_send:
                    ws.send_binary(b"echo nimbus-$((6*7))\n")
                    next_send = time.monotonic() + 5
                ws.settimeout(0.5)
                try:
                    seen += ws.recv_data()[1]
                except websocket.WebSocketTimeoutException:
                    pass
            time.sleep(1)
            ws.settimeout(0.2)
            try:  # drain
                while True:
                    ws.recv_data()
            except websocket.WebSocketTimeoutException:
                pass
            rtts = []
            ws.settimeout(10)
            for i in range(self.args.keys + WARMUP):
                ch = b"abcdefghijklmnopqrstuvwxyz"[i % 26:i % 26 + 1]
                t0 = time.perf_counter()
                ws.send_binary(ch)
                got = b""
                while ch not in got:
                    got += ws.recv_data()[1]
                rtts.append((time.perf_counter() - t0) * 1000)
                if i % 20 == 19:
                    ws.send_binary(b"\x15")  # ^U: the line never grows long
                    time.sleep(0.05)
                    ws.settimeout(0.1)
                    try:
                        while True:
                            ws.recv_data()
                    except websocket.WebSocketTimeoutException:
                        pass
                    ws.settimeout(10)
            ws.send_binary(b"\x15")
            return rtts[WARMUP:]
        finally:
            ws.close()

    def measure_pty(self):
        """The same keystrokes straight into the guest's serial pty on this host (QEMU's
        <serial type='pty'>), without nimbusd or libvirt in the path: the baseline."""
        import re
        import termios
        import tty
        xml = run(["virsh", "-q", "-c", LOCAL_URI, "dumpxml", f"nimbus-{self.ids['vms']}"]).stdout
        m = re.search(r"<serial type='pty'>\s*<source path='([^']+)'", xml)
        if not m:
            raise BenchError("no serial pty in the domain XML")
        fd = os.open(m.group(1), os.O_RDWR | os.O_NOCTTY)
        try:
            tty.setraw(fd)
            termios.tcflush(fd, termios.TCIOFLUSH)
            rtts = []
            for i in range(self.args.keys + WARMUP):
                ch = b"abcdefghijklmnopqrstuvwxyz"[i % 26:i % 26 + 1]
                t0 = time.perf_counter()
                os.write(fd, ch)
                got = b""
                while ch not in got:
                    got += os.read(fd, 4096)
                rtts.append((time.perf_counter() - t0) * 1000)
                if i % 20 == 19:
                    os.write(fd, b"\x15")
                    time.sleep(0.05)
                    termios.tcflush(fd, termios.TCIFLUSH)
            os.write(fd, b"\x15")
            return rtts[WARMUP:]
        finally:
            os.close(fd)

    def measure_idle(self, n, seconds=20):
        """n idle VNC sessions (QEMU's VNC server takes up to 32 clients a VM): nimbusd's
        threads and CPU time while they sit there."""
        def threads():
            with open(f"/proc/{self.daemon.pid}/status") as f:
                return int(next(x for x in f if x.startswith("Threads:")).split()[1])

        def cpu_s():
            with open(f"/proc/{self.daemon.pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

        before = threads()
        socks = []
        try:
            for _ in range(n):
                _, t = self.api.call("POST", f"/v1/vms/{self.ids['vms']}/console", {"type": "vnc"})
                url = "ws://" + self.url.split("://", 1)[1].rstrip("/") + t["url"]
                ws = websocket.create_connection(url, timeout=30, subprotocols=["binary"])
                ws.recv_data()  # the server's RFB banner: the session is up
                socks.append(ws)
            time.sleep(2)
            during = threads()
            c0, t0 = cpu_s(), time.monotonic()
            time.sleep(seconds)
            cpu = (cpu_s() - c0) / (time.monotonic() - t0) * 100
            return before, during, cpu
        finally:
            for ws in socks:
                ws.close()

    def cleanup(self):
        teardown(self.api, self.daemon, self.ids, self.pool, self.work, LOCAL_URI)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keys", type=int, default=100)
    ap.add_argument("--idle", type=int, default=30,
                    help="idle VNC sessions held open to measure their cost (0: skip; max 32)")
    ap.add_argument("--nimbusd", default=os.path.join(REPO, "build", "src", "daemon", "nimbusd"))
    args = ap.parse_args()
    b = Bench(args)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    try:
        b.start_daemon()
        b.make_vm()
        rtts = b.measure()
        base = b.measure_pty()
        idle = b.measure_idle(args.idle) if args.idle else None
    except (BenchError, KeyboardInterrupt) as e:
        log(f"failed: {e}")
        b.cleanup()
        return 1
    b.cleanup()
    for label, xs in (("nimbusd WebSocket", rtts), ("raw pty (baseline)", base)):
        q = statistics.quantiles(xs, n=100)
        print(f"{label}: keystroke-to-echo round trip over {len(xs)} keystrokes: "
              f"p50 {q[49]:.2f} ms, p99 {q[98]:.2f} ms, mean {statistics.mean(xs):.2f} ms, "
              f"max {max(xs):.2f} ms")
    if idle:
        print(f"{args.idle} idle console sessions: nimbusd threads {idle[0]} -> {idle[1]}, "
              f"CPU {idle[2]:.2f} % of a core while they sat for 20 s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
