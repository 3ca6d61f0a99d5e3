#!/usr/bin/python3
"""Disk QoS from flavors: what a guest reads from its root disk with and without a limit.

    bench/disk_qos.py [--mbps 20] [--iops 100] [--rounds 3] [--nimbusd PATH]

Starts its own nimbusd (TCG, private state dir, storage pool and network range) on the local
libvirtd, builds the test image and makes two flavors, one without limits and one with
--disk-mbps/--disk-iops. For each, one VM whose user-data script reads its own vda with
O_DIRECT (busybox dd): 64 MiB in 1 MiB blocks (bandwidth) and 1,000 blocks of 4 KiB (IOPS),
--rounds times, timed in the guest from /proc/uptime (10 ms resolution) and printed on its
serial console. Prints MB/s (10^6 bytes) and IOPS for both flavors. The VMs run one after the
other; everything it made is removed at the end, also on failure and Ctrl-C. Figures only:
nothing asserts on them. See docs/benchmarks.md.
"""

import argparse
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time

import benchlib
from benchlib import BenchError, Workdir, log, start_nimbusd, stop_nimbusd, upload_test_image

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LOCAL_URI = "qemu:///system"
DAEMON_START_S = 30
RUN_S = 900  # boot and every round of one VM on a busy machine
BIG_MIB, SMALL_N = 64, 1000

GUEST_SCRIPT = """#!/bin/sh
up() { cut -d' ' -f1 /proc/uptime; }
i=0
while [ $i -lt {rounds} ]; do
    t0=$(up); dd if=/dev/vda of=/dev/null bs=1M count={big} iflag=direct 2>/dev/null; t1=$(up)
    dd if=/dev/vda of=/dev/null bs=4k count={small} skip=50000 iflag=direct 2>/dev/null; t2=$(up)
    echo "QOS-ROUND $i big $t0 $t1 small $t1 $t2"
    i=$((i + 1))
done
echo QOS-DONE
"""


class Bench:
    def __init__(self, args):
        self.args = args
        w = Workdir("qos")
        self.tag, self.work, self.state, self.pool = w.tag, w.work, w.state, w.pool
        self.daemon = None
        self.log_path = w.log_path
        self.api = None
        self.image_id = None
        self.flavors = []
        self.vms = []

    def start_daemon(self):
        self.daemon, self.api = start_nimbusd(
            self.args.nimbusd, self.state, self.pool, self.log_path,
            ["--default-network-pool", "10.249.0.0/16"], DAEMON_START_S)

    def prepare(self):
        self.image_id = upload_test_image(self.api, self.work, f"bench-qos-{self.tag}")

    def flavor(self, name, **limits):
        _, fl = self.api.call("POST", "/v1/flavors", {"name": f"{name}-{self.tag}", "vcpus": 1,
                                                      "ram_mib": 128, "disk_gib": 1, **limits})
        self.flavors.append(fl["id"])
        return fl

    def measure(self, fl):
        """One VM of flavor fl: its rounds as [(MB/s, IOPS)]."""
        script = GUEST_SCRIPT.replace("{rounds}", str(self.args.rounds)).replace(
            "{big}", str(BIG_MIB)).replace("{small}", str(SMALL_N))
        t0 = time.monotonic()
        _, r = self.api.call("POST", "/v1/vms", {"name": f"bench-qos-{len(self.vms)}-{self.tag}",
                                                 "image": self.image_id, "flavor": fl["id"],
                                                 "user_data": script})
        vm = r["vm"]["id"]
        self.vms.append(vm)
        self.api.wait_task(r["task"]["id"], t0, deadline_s=RUN_S)
        text = ""
        while "QOS-DONE" not in text:
            if time.monotonic() - t0 > RUN_S:
                raise BenchError(f"VM {vm}: no QOS-DONE on its console after {RUN_S} s")
            time.sleep(1)
            text = self.api.call("GET", f"/v1/vms/{vm}/console-log?bytes=262144",
                                 raw=True)[1].decode(errors="replace")
        rounds = []
        for m in re.finditer(r"QOS-ROUND \d+ big ([\d.]+) ([\d.]+) small ([\d.]+) ([\d.]+)",
                             text):
            b0, b1, s0, s1 = map(float, m.groups())
            rounds.append((BIG_MIB * (1 << 20) / 1e6 / max(b1 - b0, 0.01),
                           SMALL_N / max(s1 - s0, 0.01)))
        if len(rounds) != self.args.rounds:
            raise BenchError(f"VM {vm}: {len(rounds)} rounds on its console")
        _, d = self.api.call("DELETE", f"/v1/vms/{vm}", ok=(202,))
        self.api.wait_task(d["task"]["id"], time.monotonic())
        self.vms.remove(vm)
        return rounds

    def cleanup(self):
        if self.api and self.daemon and self.daemon.poll() is None:
            for vm in list(self.vms):
                try:
                    _, r = self.api.call("DELETE", f"/v1/vms/{vm}", ok=(202, 404))
                    if r and "task" in r:
                        self.api.wait_task(r["task"]["id"], time.monotonic())
                    self.vms.remove(vm)
                except BenchError as e:
                    log(f"clean-up: deleting VM {vm}: {e}")
            for path in [f"/v1/images/{self.image_id}"] * bool(self.image_id) + \
                    [f"/v1/flavors/{f}" for f in self.flavors]:
                try:
                    self.api.call("DELETE", path, ok=(200, 202, 204, 404))
                except BenchError as e:
                    log(f"clean-up: deleting {path}: {e}")
        stop_nimbusd(self.daemon)
        for vm in self.vms:
            for args in (["destroy", f"nimbus-{vm}"], ["undefine", f"nimbus-{vm}"]):
                subprocess.run(["virsh", "-q", "-c", LOCAL_URI, *args], capture_output=True,
                               timeout=60)
        for args in (["pool-destroy", self.pool], ["pool-undefine", self.pool]):
            subprocess.run(["virsh", "-q", "-c", LOCAL_URI, *args], capture_output=True,
                           timeout=60)
        shutil.rmtree(self.work, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mbps", type=int, default=20, help="the limited flavor's disk_mbps")
    ap.add_argument("--iops", type=int, default=100, help="the limited flavor's disk_iops")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--nimbusd", default=os.path.join(REPO, "build", "src", "daemon", "nimbusd"))
    args = ap.parse_args()
    benchlib.HTTP_TIMEOUT_S = 300  # the image upload on a busy machine
    b = Bench(args)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    results = []
    try:
        b.start_daemon()
        b.prepare()
        for label, limits in (("no limit", {}),
                              (f"disk_mbps {args.mbps}, disk_iops {args.iops}",
                               {"disk_mbps": args.mbps, "disk_iops": args.iops})):
            fl = b.flavor("bench-qos-limited" if limits else "bench-qos-plain", **limits)
            log(f"measuring: {label}")
            results.append((label, b.measure(fl)))
    except (BenchError, KeyboardInterrupt) as e:
        log(f"failed: {e}")
        b.cleanup()
        return 1
    b.cleanup()
    for label, rounds in results:
        mb = [r[0] for r in rounds]
        io = [r[1] for r in rounds]
        print(f"{label}: {BIG_MIB} MiB in 1 MiB O_DIRECT reads: median {statistics.median(mb):.1f}"
              f" MB/s (min {min(mb):.1f}, max {max(mb):.1f}); {SMALL_N} 4 KiB reads: median "
              f"{statistics.median(io):.0f} IOPS (min {min(io):.0f}, max {max(io):.0f}); "
              f"{len(rounds)} rounds")
    return 0


if __name__ == "__main__":
    sys.exit(main())
