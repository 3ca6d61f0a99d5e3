#!/usr/bin/python3
"""Scale benchmark on simulated hosts: one nimbusd, many libvirt test-driver hosts.

    bench/scale.py [--hosts 1500] [--vms 15000] [--clients 32] [--gets 20000]
                   [--no-silent-host] [--workers N] [--sync-interval S] [--json FILE]

It starts its own nimbusd (local host test:///default, private state dir), writes and adds
--hosts simulated hosts (scripts/simhosts.py) plus a silent host (accepts TCP, never answers),
creates --vms VMs with --clients concurrent API clients, and prints a table: start-up to API
serving (empty store, and again on a restart with every host and VM in it), all hosts connected,
a sync sweep (after the restart, until every VM has been looked at again), creates accepted and
completed per second, GET /v1/vms/{id} requests per second and p99, a 1,000-VM page, nimbusd's
RSS and its CPU while idle (with no scraper, the metrics collector paused, and with /metrics
scraped every 15 s). Then it deletes everything, stops nimbusd and the silent host by pid
and removes its files, also on error and Ctrl-C. No QEMU, no libvirtd: what the simulation
leaves out is in docs/scale.md. Nothing here asserts on timings.

Full size (1,500 hosts, 15,000 VMs) wants a quiet machine with several cores; for a quick
look: --hosts 100 --vms 1000.
"""

import argparse
import calendar
import json
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

from benchlib import STOP, Api, BenchError, Interrupted, log

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "scripts"))
import simhosts  # noqa: E402 - the test bed's own script

# wrk: each request a random VM of the bench's, with the admin token.
WRK_SCRIPT = """
local ids = {}
for line in io.lines("IDS") do ids[#ids + 1] = line end
math.randomseed(1)
request = function()
  local id = ids[math.random(#ids)]
  return wrk.format("GET", "/v1/vms/" .. id, {["Authorization"] = "Bearer TOKEN"})
end
delay = function() return DELAY end
"""

DAEMON_START_S = 600  # a bound for a hang: start-up with 15,000 VMs in the store is measured
WAIT_S = 1800


def pct(xs, p):
    if len(xs) < 2:
        return xs[0]
    return statistics.quantiles(xs, n=100, method="inclusive")[p - 1]


def parse_ts(s):
    """The API's timestamps (2026-12-04T20:40:07.614Z) as seconds since the epoch."""
    t = time.strptime(s[:19], "%Y-%m-%dT%H:%M:%S")
    frac = float("0" + s[19:].rstrip("Z")) if len(s) > 20 else 0.0
    return calendar.timegm(t) + frac


def many(fn, items, clients):
    """fn(item) for each item, `clients` threads at a time; stops at the first error or Ctrl-C."""
    results = simhosts.parallel(fn, items, clients, stop=STOP)
    if STOP.is_set():
        raise Interrupted("interrupted")
    return results


class Bench:
    def __init__(self, a):
        self.a = a
        self.work = tempfile.mkdtemp(prefix="nimbus-scale-")
        self.state = os.path.join(self.work, "state")
        self.log_path = os.path.join(self.work, "nimbusd.log")
        self.daemon = None
        self.silent = None
        self.api = None
        self.rows = []  # (figure, value)
        self.raw = {}

    # ------------------------------------------------------------ nimbusd

    def idle_cpu(self, seconds, scrape_every=0):
        """nimbusd's CPU over seconds (run time, clock ticks), as a fraction of one core;
        with scrape_every, GET /metrics that often (the first at once)."""
        c0, r0, w0 = self.cpu_seconds(), self.run_seconds(), time.monotonic()
        next_scrape = w0
        while time.monotonic() - w0 < seconds and not STOP.is_set():
            if scrape_every and time.monotonic() >= next_scrape:
                self.api.call("GET", "/metrics", raw=True)
                next_scrape += scrape_every
            time.sleep(0.2)
        wall = time.monotonic() - w0
        return (self.run_seconds() - r0) / wall, (self.cpu_seconds() - c0) / wall

    def start_daemon(self):
        nimbusd = self.a.nimbusd
        if not os.access(nimbusd, os.X_OK):
            raise BenchError(f"{nimbusd} not found: build with 'ninja -C build'")
        local = "test:///default"
        if self.a.scheme != "test":
            # libvirtd keeps one test:///default for all its clients and all time: the local
            # host gets a file of its own, like the others.
            local = simhosts.write_hosts(os.path.join(self.work, "local"), 1, "local", "nimbus",
                                         os.path.join(self.state, "pool"), self.a.scheme)[0][1]
        argv = [nimbusd, "--listen", "127.0.0.1:0", "--state-dir", self.state,
                "--libvirt-uri", local, "--pool-name", "nimbus",
                "--pool-path", os.path.join(self.state, "pool"),
                "--sync-interval", str(self.a.sync_interval),
                # the metrics collector pauses a minute after the last scrape: the idle figure
                # is taken without a scraper, then again with one (docs/monitoring.md)
                "--metrics-interval", "15", "--metrics-idle-after", "60"]
        if self.a.workers:
            argv += ["--workers", str(self.a.workers)]
        with open(self.log_path, "ab") as f:
            offset = f.tell()
            t0 = time.monotonic()
            self.daemon = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                           stdout=subprocess.DEVNULL, stderr=f,
                                           start_new_session=True)
        url = None
        while url is None:
            if self.daemon.poll() is not None:
                raise BenchError(f"nimbusd exited with {self.daemon.returncode}:\n"
                                 + self.tail())
            if time.monotonic() - t0 > DAEMON_START_S or STOP.is_set():
                raise BenchError("nimbusd did not report its address:\n" + self.tail())
            with open(self.log_path, errors="replace") as f:
                f.seek(offset)
                for line in f:
                    if "listening on http://" in line:
                        url = line.split("listening on ", 1)[1].strip()
            time.sleep(0.02)
        serving = time.monotonic() - t0
        with open(os.path.join(self.state, "admin.token")) as f:
            self.api = Api(url, f.read().strip())
        return t0, serving

    def stop_daemon(self):
        if self.daemon and self.daemon.poll() is None:
            self.daemon.send_signal(signal.SIGTERM)
            try:
                self.daemon.wait(60)
            except subprocess.TimeoutExpired:
                self.daemon.kill()
                self.daemon.wait(10)

    def tail(self, n=20):
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""

    def log_has(self, text):
        """Whether the daemon's log has text in what it wrote since the last call."""
        with open(self.log_path, errors="replace") as f:
            f.seek(getattr(self, "_log_seen", 0))
            chunk = f.read()
            self._log_seen = f.tell()
        return text in chunk

    def proc_status(self):
        out = {}
        with open(f"/proc/{self.daemon.pid}/status") as f:
            for line in f:
                key, _, val = line.partition(":")
                if key in ("VmRSS", "VmHWM", "Threads"):
                    out[key] = int(val.split()[0])
        return out

    def cpu_seconds(self):
        with open(f"/proc/{self.daemon.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def run_seconds(self):
        """Time nimbusd's live threads have run, from the scheduler (nanoseconds, per thread).
        /proc/PID/stat's figures are sampled at each clock tick, which overstates a thousand
        threads that each wake for a tenth of a millisecond; this does not. Threads that ended
        are not counted: use it where none end (an idle daemon)."""
        total = 0
        base = f"/proc/{self.daemon.pid}/task"
        for tid in os.listdir(base):
            try:
                with open(f"{base}/{tid}/schedstat") as f:
                    total += int(f.read().split()[0])
            except (OSError, ValueError, IndexError):
                pass
        return total / 1e9

    # ------------------------------------------------------------ API helpers

    def list_all(self, collection):
        items, marker = [], None
        while True:
            path = f"/v1/{collection}?limit=1000" + (f"&marker={marker}" if marker else "")
            _, body = self.api.call("GET", path)
            items += body[collection]
            marker = body.get("next_marker")
            if not marker:
                return items

    def hosts_in(self, states, names):
        want = set(names)
        return sum(1 for h in self.list_all("hosts") if h["name"] in want
                   and h["state"] in states)

    def wait_for(self, what, pred, interval=0.5):
        deadline = time.monotonic() + WAIT_S
        while not pred():
            if time.monotonic() > deadline:
                raise BenchError(f"still waiting for {what} after {WAIT_S} s")
            if STOP.is_set():
                raise Interrupted("interrupted")
            time.sleep(interval)

    def wait_task(self, task_id):
        deadline = time.monotonic() + WAIT_S
        while True:
            status, t = self.api.call("GET", f"/v1/tasks/{task_id}", ok=(200, 404))
            if status == 404:
                return None  # a delete's task may go with its VM
            if t["state"] == "succeeded":
                return t
            if t["state"] == "failed":
                err = t.get("error") or {}
                raise BenchError(f"task {task_id} ({t['kind']}) failed: {err.get('code')}: "
                                 f"{err.get('message')}")
            if time.monotonic() > deadline:
                raise BenchError(f"task {task_id} still {t['state']} after {WAIT_S} s")
            if STOP.is_set():
                raise Interrupted("interrupted")
            time.sleep(0.1)

    def row(self, figure, value):
        self.rows.append((figure, value))
        log(f"{figure}: {value}")

    # ------------------------------------------------------------ the run

    def run(self):
        a = self.a
        t0, serving = self.start_daemon()
        self.row("start-up to API serving (empty store)", f"{serving:.2f} s")

        hosts = simhosts.write_hosts(os.path.join(self.work, "hosts"), a.hosts, "sim",
                                     "nimbus", os.path.join(self.state, "pool"), a.scheme)
        names = [h[0] for h in hosts]
        t1 = time.monotonic()
        many(lambda h: self.api.call("POST", "/v1/hosts", {"name": h[0], "uri": h[1]}), hosts,
             a.clients)
        added = time.monotonic() - t1
        if a.silent_host:
            self.silent = simhosts.SilentHost(ttl=WAIT_S * 4)
            self.api.call("POST", "/v1/hosts", {"name": "sim-silent", "uri": self.silent.uri})
        self.wait_for("every simulated host up",
                      lambda: self.hosts_in(("up",), names) == len(names))
        self.row(f"{a.hosts} hosts added ({a.clients} clients)",
                 f"{added:.2f} s ({a.hosts / added:.0f}/s)")
        self.row("all hosts connected (from the first add)", f"{time.monotonic() - t1:.2f} s")
        if a.silent_host:
            _, s = self.api.call("GET", "/v1/hosts/sim-silent")
            self.row("silent host", s["state"])

        img = os.path.join(self.work, "tiny.qcow2")
        if shutil.which("qemu-img"):
            subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", img, "64M"], check=True)
        else:
            with open(img, "wb") as f:
                f.write(b"\0" * (1 << 20))  # raw
        _, image = self.api.call("POST", "/v1/images", {"name": "scale"})
        with open(img, "rb") as f:
            self.api.call("PUT", f"/v1/images/{image['id']}/file", data=f.read())
        _, flavor = self.api.call("POST", "/v1/flavors", {"name": "scale", "vcpus": 1,
                                                          "ram_mib": 512, "disk_gib": 1})

        # A network for them all: a project's default one is a /24 (253 addresses).
        _, net = self.api.call("POST", "/v1/networks", {"name": "scale", "cidr": "10.64.0.0/14"})

        # -- creates
        def create(i):
            _, b = self.api.call("POST", "/v1/vms", {"name": f"s{i:05d}", "image": image["id"],
                                                     "flavor": flavor["id"],
                                                     "networks": [{"network": net["id"]}]})
            return b["task"]["id"]

        t2 = time.monotonic()
        tasks = many(create, list(range(a.vms)), a.clients)
        accepted = time.monotonic() - t2
        ends = many(self.wait_task, tasks, a.clients)
        seen = time.monotonic() - t2
        t_created = time.monotonic()
        # Server-side: first task created to last task finished.
        first = min(parse_ts(t["created_at"]) for t in ends)
        last = max(parse_ts(t["finished_at"]) for t in ends)
        self.row(f"creates accepted ({a.clients} clients)",
                 f"{a.vms / accepted:.0f}/s ({a.vms} in {accepted:.1f} s)")
        self.row("creates completed (task created -> last task finished)",
                 f"{a.vms / (last - first):.0f}/s ({last - first:.1f} s; clients saw "
                 f"{seen:.1f} s)")
        # The rate by how many VMs were there already: the store grows, the rate must not sink.
        done = sorted(parse_ts(t["finished_at"]) for t in ends)
        step = max(1, a.vms // 5)
        rates = []
        for lo in range(0, a.vms - step + 1, step):
            t0 = first if lo == 0 else done[lo - 1]
            rates.append(f"{step / max(done[lo + step - 1] - t0, 1e-6):.0f}")
        self.row(f"creates completed per {step} VMs, as the store fills", "/s, ".join(rates) + "/s")

        vms = self.list_all("vms")
        if len(vms) != a.vms or any(v["state"] != "running" for v in vms):
            bad = [v for v in vms if v["state"] != "running"]
            raise BenchError(f"{len(vms)} VMs listed, {len(bad)} not running: {bad[:3]}")
        ids = [v["id"] for v in vms]

        # -- reads
        rng = random.Random(1)
        picks = [rng.choice(ids) for _ in range(a.gets)]
        lat = []
        lat_lock = threading.Lock()

        def get(vm_id):
            s = time.monotonic()
            self.api.call("GET", f"/v1/vms/{vm_id}")
            d = time.monotonic() - s
            with lat_lock:
                lat.append(d)

        t3 = time.monotonic()
        many(get, picks, a.clients)
        wall = time.monotonic() - t3
        self.row(f"GET /v1/vms/{{id}} ({a.clients} Python clients)",
                 f"{len(lat) / wall:.0f} req/s, p50 {pct(lat, 50) * 1000:.1f} ms, "
                 f"p99 {pct(lat, 99) * 1000:.1f} ms")
        self.wrk_gets(ids)
        page = []
        size = 0
        for _ in range(5):
            s = time.monotonic()
            _, raw = self.api.call("GET", "/v1/vms?limit=1000", raw=True)
            page.append(time.monotonic() - s)
            size = len(raw)
        n_page = len(json.loads(raw)["vms"])
        self.row(f"one page of {n_page} VMs", f"median {statistics.median(page) * 1000:.0f} ms, "
                 f"{size / 1024:.0f} KiB")

        # -- idle: after two looks at every host, which record the new VMs' addresses, and
        # once the metrics collector has paused (no scrape for a minute)
        time.sleep(2 + 2 * a.sync_interval)
        t_pause = time.monotonic()
        while not self.log_has("metrics: no scrape for"):
            if time.monotonic() - t_pause > 180 or STOP.is_set():
                raise BenchError("the metrics collector did not pause:\n" + self.tail())
            time.sleep(1)
        idle, idle_ticks = self.idle_cpu(a.idle_seconds)
        st = self.proc_status()
        self.row(f"idle CPU ({a.idle_seconds} s, sync every {a.sync_interval} s, no scraper)",
                 f"{idle * 100:.1f}% of one core (clock-tick accounting: {idle_ticks * 100:.1f}%)")
        if a.settled_idle_seconds:
            # again once the site has settled: a host whose guests' addresses were looked for in
            # vain 30 times (the simulated guests never get one) is looked at as a quiet host
            settle = 30 * a.sync_interval + 2 * a.sync_interval
            time.sleep(max(0, settle - (time.monotonic() - t_created)))
            idle, idle_ticks = self.idle_cpu(a.settled_idle_seconds)
            self.row(f"idle CPU, settled ({a.settled_idle_seconds} s, {settle} s after the "
                     f"creates, no scraper)",
                     f"{idle * 100:.1f}% of one core (clock-tick accounting: "
                     f"{idle_ticks * 100:.1f}%)")
        # the same with Prometheus's part played: /metrics every 15 s, the collector at work
        idle, idle_ticks = self.idle_cpu(a.scraped_idle_seconds, scrape_every=15)
        self.row(f"idle CPU ({a.scraped_idle_seconds} s, /metrics scraped every 15 s)",
                 f"{idle * 100:.1f}% of one core (clock-tick accounting: {idle_ticks * 100:.1f}%)")
        self.row("nimbusd RSS (now / peak)",
                 f"{st['VmRSS'] / 1024:.0f} MiB / {st['VmHWM'] / 1024:.0f} MiB, "
                 f"{st['Threads']} threads")

        # -- a restart: start-up with everything in the store, and the first sync sweep (the
        # simulated hosts forget their domains with their connection, so every VM must be
        # looked at again and is found missing)
        if a.restart:
            if self.silent:
                self.silent.stop()
                self.silent = simhosts.SilentHost(ttl=WAIT_S * 4, port=self.silent.port)
            self.stop_daemon()
            t4, serving = self.start_daemon()
            self.row(f"restart to API serving ({a.hosts} hosts, {a.vms} VMs in the store)",
                     f"{serving:.2f} s")
            self.wait_for("every simulated host up again",
                          lambda: self.hosts_in(("up",), names) == len(names))
            self.row("restart to all hosts connected", f"{time.monotonic() - t4:.2f} s")
            self.wait_for("every VM looked at again",
                          lambda: all(v["state"] == "missing" for v in self.list_all("vms")),
                          interval=1.0)
            self.row("restart to a full sync sweep (every VM seen again)",
                     f"{time.monotonic() - t4:.2f} s")

        # -- deletes
        def delete(vm_id):
            status, b = self.api.call("DELETE", f"/v1/vms/{vm_id}", ok=(202, 404))
            return b["task"]["id"] if status == 202 else None

        t5 = time.monotonic()
        dtasks = [t for t in many(delete, ids, a.clients) if t]
        many(self.wait_task, dtasks, a.clients)
        d = time.monotonic() - t5
        self.row(f"deletes completed ({a.clients} clients)", f"{a.vms / d:.0f}/s ({d:.1f} s)")

    def wrk_gets(self, ids):
        """The same reads from wrk (C, two threads, keep-alive), if installed: the Python
        clients' own scheduling on this 2-core machine is much of their p99. Two runs: as fast
        as it goes, then paced at --wrk-rate (each connection waits between its requests), the
        latency an API client sees at that load."""
        wrk = shutil.which("wrk")
        if not wrk:
            log("wrk not installed (apt-get install wrk): no native-client GET figures")
            return
        ids_path = os.path.join(self.work, "ids.txt")
        with open(ids_path, "w") as f:
            f.write("\n".join(ids) + "\n")
        pace_ms = 8
        # A connection makes one request per pace plus the request's own time.
        paced_conns = max(1, -(-self.a.wrk_rate * (pace_ms + 1) // 1000))
        for conns, delay, what in ((self.a.clients, 0, "as fast as it goes"),
                                   (paced_conns, pace_ms, f"paced at {self.a.wrk_rate}/s")):
            script = os.path.join(self.work, "gets.lua")
            with open(script, "w") as f:
                f.write(WRK_SCRIPT.replace("IDS", ids_path).replace("TOKEN", self.api.token)
                        .replace("DELAY", str(delay)))
            out = subprocess.run([wrk, "-t2", f"-c{conns}", f"-d{self.a.wrk_seconds}s",
                                  "--latency", "-s", script, self.api.base], check=True,
                                 capture_output=True, text=True).stdout
            lat = dict(re.findall(r"^\s+(50|90|99)%\s+(\S+)$", out, re.M))
            rate = re.search(r"^Requests/sec:\s+(\S+)", out, re.M)
            bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
            if not rate or "99" not in lat or bad:
                raise BenchError("wrk: unexpected output:\n" + out)
            self.row(f"GET /v1/vms/{{id}} (wrk, {conns} connections, {what})",
                     f"{float(rate.group(1)):.0f} req/s, p50 {lat['50']}, p90 {lat['90']}, "
                     f"p99 {lat['99']}")

    def cleanup(self):
        STOP.set()
        if self.silent:
            self.silent.stop()
        self.stop_daemon()
        if self.a.keep:
            log(f"kept {self.work}")
        else:
            shutil.rmtree(self.work, ignore_errors=True)

    def report(self):
        a = self.a
        out = ["", f"Nimbus scale benchmark, {time.strftime('%Y-%m-%d %H:%M %Z')}: {a.hosts} "
               f"simulated hosts{' + 1 silent' if a.silent_host else ''}, {a.vms} VMs, "
               f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}",
               "simulated: libvirt's test driver, no QEMU (docs/scale.md); figures for "
               "comparison, not absolute", ""]
        w = max(len(f) for f, _ in self.rows)
        out.append(f"{'figure':<{w}}  value")
        out.append("-" * (w + 40))
        out += [f"{f:<{w}}  {v}" for f, v in self.rows]
        print("\n".join(out), flush=True)
        if a.json:
            with open(a.json, "w") as f:
                json.dump(dict(self.rows), f, indent=1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hosts", type=int, default=1500, help="simulated hosts (default 1500)")
    ap.add_argument("--vms", type=int, default=15000, help="VMs (default 15000)")
    ap.add_argument("--clients", type=int, default=32, help="concurrent API clients (32)")
    ap.add_argument("--gets", type=int, default=20000, help="GET /v1/vms/{id} requests (20000)")
    ap.add_argument("--wrk-seconds", type=int, default=10, help="each wrk GET run (10)")
    ap.add_argument("--wrk-rate", type=int, default=5000, help="the paced wrk run's rate (5000)")
    ap.add_argument("--idle-seconds", type=int, default=20, help="idle CPU sample (20)")
    ap.add_argument("--settled-idle-seconds", type=int, default=0,
                    help="another idle sample, 32 sync intervals after the creates (0: none)")
    ap.add_argument("--scraped-idle-seconds", type=int, default=60,
                    help="idle CPU sample with /metrics scraped every 15 s (60)")
    ap.add_argument("--sync-interval", type=int, default=10, help="nimbusd --sync-interval")
    ap.add_argument("--workers", type=int, help="nimbusd --workers (default: its own)")
    ap.add_argument("--no-silent-host", dest="silent_host", action="store_false")
    ap.add_argument("--sim-in-libvirtd", dest="scheme", action="store_const", const="test+unix",
                    default="test", help="run the simulated hypervisors in the local libvirtd "
                    "(test+unix:// URIs) instead of in nimbusd, so that its RSS and CPU are its "
                    "own; libvirtd must be running")
    ap.add_argument("--no-restart", dest="restart", action="store_false",
                    help="skip the restart figures")
    ap.add_argument("--nimbusd", default=os.path.join(REPO, "build", "src", "daemon", "nimbusd"))
    ap.add_argument("--keep", action="store_true", help="keep the work dir (log, state)")
    ap.add_argument("--json", metavar="FILE", help="also write the figures here")
    a = ap.parse_args()
    if min(a.hosts, a.vms, a.clients, a.gets) < 1:
        ap.error("--hosts, --vms, --clients and --gets must be at least 1")

    def on_term(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    b = Bench(a)
    rc = 0
    try:
        b.run()
    except KeyboardInterrupt:
        log("interrupted")
        rc = 130
    except BenchError as e:
        log(f"error: {e}")
        log("last lines of nimbusd's log:\n" + b.tail())
        rc = 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        log("cleaning up")
        b.cleanup()
    if b.rows:
        b.report()
    return rc


if __name__ == "__main__":
    sys.exit(main())
