#!/usr/bin/python3
"""GET /metrics benchmark on simulated hosts: scrape time and size as VMs are added, and
nimbusd's RSS and CPU with the metrics collection on and off.

    bench/metrics.py [--hosts 1500] [--sizes 1000,15000] [--interval 15] [--scrapes 5]
                     [--idle-seconds 60] [--no-off-run] [--json FILE]

Run "on": a nimbusd (bench/scale.py's set-up: local host test:///default, --hosts simulated
hosts from scripts/simhosts.py, private state dir) with --metrics-interval INTERVAL; VMs are
created up to each size in turn and, once a collection has seen them all, /metrics is scraped
--scrapes times in the text format and once in OpenMetrics: median time, bytes, series, and the
collection's own duration (nimbus_metrics_collection_duration_seconds). Then nimbusd's CPU over
--idle-seconds and its RSS. Run "off": the same with --metrics-interval 0 and the largest size
only, for the idle CPU and RSS. Each run's nimbusd is stopped by pid and its files removed.
Figures, not asserts.
"""

import argparse
import http.client
import os
import re
import signal
import statistics
import sys
import time

from benchlib import STOP, BenchError, Interrupted, log

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import scale  # noqa: E402 - bench/scale.py: the daemon, hosts and API helpers

REPO = scale.REPO


class MetricsBench(scale.Bench):
    def __init__(self, a, interval):
        super().__init__(a)
        self.interval = interval

    def start_daemon(self):
        # scale.Bench builds nimbusd's argv itself: wrap the binary to add the interval.
        wrapper = os.path.join(self.work, "nimbusd-wrapper")
        with open(wrapper, "w") as f:
            f.write(f'#!/bin/sh\nexec "{self.real_nimbusd}" "$@" --metrics-interval '
                    f'{self.interval}\n')
        os.chmod(wrapper, 0o755)
        self.a.nimbusd = wrapper
        try:
            return super().start_daemon()
        finally:
            self.a.nimbusd = self.real_nimbusd

    def scrape(self, openmetrics=False):
        headers = {"Authorization": f"Bearer {self.api.token}"}
        if openmetrics:
            headers["Accept"] = "application/openmetrics-text; version=1.0.0"
        # A connection of its own each time: the API's kept-alive ones may have timed out
        # while the creates ran.
        c = http.client.HTTPConnection(self.api.host, self.api.port, timeout=120)
        try:
            t = time.monotonic()
            c.request("GET", "/metrics", headers=headers)
            r = c.getresponse()
            body = r.read()
            d = time.monotonic() - t
        except (http.client.HTTPException, OSError) as e:
            alive = self.daemon.poll() is None
            raise BenchError(f"/metrics: {e!r}; nimbusd {'alive' if alive else 'exited'}:\n"
                             + self.tail()) from None
        finally:
            c.close()
        if r.status != 200:
            raise BenchError(f"/metrics: HTTP {r.status}: {body[:200]!r}")
        return d, body

    @staticmethod
    def value(body, series):
        m = re.search(rb"^" + re.escape(series.encode()) + rb" (\S+)$", body, re.M)
        return float(m.group(1)) if m else None

    def wait_collected(self, n_vms):
        """Until a collection that started after the last create has every VM's series."""
        t0 = time.time()

        def seen():
            _, body = self.scrape()
            stamp = self.value(body, "nimbus_metrics_collection_timestamp_seconds") or 0
            n = body.count(b"\nlibvirt_domain_info_cpu_time_seconds_total{")
            return stamp > t0 and n >= n_vms
        self.wait_for(f"a collection with {n_vms} VMs", seen, interval=1.0)

    def create_to(self, n, image, flavor, net, have):
        def create(i):
            _, b = self.api.call("POST", "/v1/vms", {"name": f"m{i:05d}", "image": image,
                                                     "flavor": flavor,
                                                     "networks": [{"network": net}]})
            return b["task"]["id"]
        tasks = scale.many(create, list(range(have, n)), self.a.clients)
        scale.many(self.wait_task, tasks, self.a.clients)

    def run(self):
        a = self.a
        self.start_daemon()
        hosts = scale.simhosts.write_hosts(os.path.join(self.work, "hosts"), a.hosts, "sim",
                                           "nimbus", os.path.join(self.state, "pool"), "test")
        names = [h[0] for h in hosts]
        scale.many(lambda h: self.api.call("POST", "/v1/hosts", {"name": h[0], "uri": h[1]}),
                   hosts, a.clients)
        self.wait_for("every simulated host up",
                      lambda: self.hosts_in(("up",), names) == len(names))
        img = os.path.join(self.work, "tiny.raw")
        with open(img, "wb") as f:
            f.write(b"\0" * (1 << 20))
        _, image = self.api.call("POST", "/v1/images", {"name": "metrics", "disk_format": "raw"})
        with open(img, "rb") as f:
            self.api.call("PUT", f"/v1/images/{image['id']}/file", data=f.read())
        _, flavor = self.api.call("POST", "/v1/flavors", {"name": "metrics", "vcpus": 1,
                                                          "ram_mib": 512, "disk_gib": 1})
        _, net = self.api.call("POST", "/v1/networks", {"name": "metrics",
                                                        "cidr": "10.64.0.0/14"})
        sizes = a.sizes if self.interval else a.sizes[-1:]
        have = 0
        tag = f"metrics {'on (every %d s)' % self.interval if self.interval else 'off'}"
        for n in sizes:
            self.create_to(n, image["id"], flavor["id"], net["id"], have)
            have = n
            if not self.interval:
                continue
            self.wait_collected(n)
            times, body = [], b""
            for _ in range(a.scrapes):
                d, body = self.scrape()
                times.append(d)
            d_om, body_om = self.scrape(openmetrics=True)
            series = sum(1 for line in body.split(b"\n") if line and not line.startswith(b"#"))
            took = self.value(body, "nimbus_metrics_collection_duration_seconds")
            self.row(f"{n} VMs, {a.hosts} hosts: scrape (text, median of {a.scrapes})",
                     f"{statistics.median(times) * 1000:.1f} ms, {len(body) / 1e6:.1f} MB, "
                     f"{series} series")
            self.row(f"{n} VMs: scrape (OpenMetrics)",
                     f"{d_om * 1000:.1f} ms, {len(body_om) / 1e6:.1f} MB")
            self.row(f"{n} VMs: one collection (all hosts, store counts)", f"{took:.2f} s")
        time.sleep(2 * max(self.interval, 5))
        c0, r0, w0 = self.cpu_seconds(), self.run_seconds(), time.monotonic()
        time.sleep(a.idle_seconds)
        wall = time.monotonic() - w0
        st = self.proc_status()
        self.row(f"{tag}, {have} VMs: idle CPU over {a.idle_seconds} s",
                 f"{(self.run_seconds() - r0) / wall * 100:.1f}% of one core (clock ticks: "
                 f"{(self.cpu_seconds() - c0) / wall * 100:.1f}%)")
        self.row(f"{tag}, {have} VMs: nimbusd RSS (now / peak)",
                 f"{st['VmRSS'] / 1024:.0f} MiB / {st['VmHWM'] / 1024:.0f} MiB")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hosts", type=int, default=1500)
    ap.add_argument("--sizes", default="1000,15000", help="VM counts, ascending")
    ap.add_argument("--interval", type=int, default=15, help="--metrics-interval of the on run")
    ap.add_argument("--scrapes", type=int, default=5)
    ap.add_argument("--idle-seconds", type=int, default=60)
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--sync-interval", type=int, default=10)
    ap.add_argument("--no-off-run", dest="off_run", action="store_false")
    ap.add_argument("--nimbusd", default=os.path.join(REPO, "build", "src", "daemon", "nimbusd"))
    ap.add_argument("--keep", action="store_true", help="keep the work dirs (logs, state)")
    ap.add_argument("--json", metavar="FILE")
    a = ap.parse_args()
    a.sizes = [int(s) for s in a.sizes.split(",")]
    a.workers, a.scheme, a.silent_host, a.restart = None, "test", False, False
    a.nimbusd = os.path.abspath(a.nimbusd)
    signal.signal(signal.SIGTERM, lambda *_: STOP.set())
    rows = []
    try:
        for interval in ([a.interval, 0] if a.off_run else [a.interval]):
            b = MetricsBench(a, interval)
            b.real_nimbusd = a.nimbusd
            try:
                b.run()
            finally:
                rows += b.rows
                b.cleanup()
                STOP.clear()
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    except (BenchError, Interrupted) as e:
        log(f"error: {e}")
        return 1
    finally:
        if rows:
            w = max(len(f) for f, _ in rows)
            print(f"\nNimbus /metrics benchmark, {time.strftime('%Y-%m-%d %H:%M %Z')}, "
                  f"{a.hosts} simulated hosts, {os.cpu_count()} cores, load "
                  f"{os.getloadavg()[0]:.2f}\n")
            print("\n".join(f"{f:<{w}}  {v}" for f, v in rows), flush=True)
            if a.json:
                import json
                with open(a.json, "w") as f:
                    json.dump(dict(rows), f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
