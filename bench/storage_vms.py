#!/usr/bin/python3
"""VM root disks on Ceph RBD: create-to-running on an rbd pool, on the default dir pool, and by
raw virsh on the same rbd pool.

    bench/storage_vms.py [--count N] [--nimbusd PATH]

Needs the test Ceph (scripts/test-ceph.sh start; its `env` gives the monitors, pool, user and
key). Starts its own nimbusd (TCG, private state dir, storage pool and network range) on the
local libvirtd, builds the test image, makes an rbd pool on the test Ceph, then, one VM at a
time: N VMs on the default pool, N on the rbd pool (the first of them also writes the image into
the pool: shown apart), and N raw guests started with virsh from the same rbd pool (vol-clone of
Nimbus's base image, the domain XML of a Nimbus VM with its own name, UUID, MAC, disk and
serial log, `virsh create`). Each figure is from the request (or the first virsh call) to
`NIMBUS-READY` on the guest's serial console; Nimbus's also to the create task's end. Everything
it made is removed at the end, also on failure and Ctrl-C. Figures only: nothing asserts on
them. See docs/benchmarks.md.
"""

import argparse
import os
import re
import shutil
import signal
import statistics
import sys
import time
import uuid

from benchlib import (BenchError, Workdir, create_flavor, create_rbd_pool, log, run,
                      start_nimbusd, stop_nimbusd, test_ceph_env, upload_test_image)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LOCAL_URI = "qemu:///system"
DAEMON_START_S = 90
BOOT_S = 300
READY = "NIMBUS-READY"


def virsh(*args, check=True, timeout=120):
    return run(["virsh", "-q", "-c", LOCAL_URI, *args], timeout=timeout, check=check)


class Bench:
    def __init__(self, args):
        self.args = args
        w = Workdir("rbd")
        self.tag, self.work, self.state, self.pool = w.tag, w.work, w.state, w.pool
        self.log_path = w.log_path
        self.daemon = self.api = self.image_id = self.flavor_id = self.rbd_pool = None
        self.vms, self.raw = [], []
        self.ceph = test_ceph_env()

    def start_daemon(self):
        self.daemon, self.api = start_nimbusd(
            self.args.nimbusd, self.state, self.pool, self.log_path,
            ["--default-network-pool", "10.248.0.0/16"], DAEMON_START_S)

    def prepare(self):
        self.image_id = upload_test_image(self.api, self.work, f"bench-rbd-{self.tag}")
        self.flavor_id = create_flavor(self.api, f"bench-rbd-{self.tag}", ram_mib=256)
        self.rbd_pool = create_rbd_pool(self.api, self.ceph, f"bench-rbd-{self.tag}")

    def console(self, vm):
        return self.api.call("GET", f"/v1/vms/{vm}/console-log?bytes=262144",
                             raw=True)[1].decode(errors="replace")

    def nimbus_vm(self, pool):
        """One VM: (seconds to the task's end, seconds to NIMBUS-READY)."""
        body = {"name": f"bench-rbd-{len(self.vms)}-{self.tag}", "image": self.image_id,
                "flavor": self.flavor_id}
        if pool:
            body["pool"] = pool
        t0 = time.monotonic()
        _, r = self.api.call("POST", "/v1/vms", body)
        vm = r["vm"]["id"]
        self.vms.append(vm)
        self.api.wait_task(r["task"]["id"], t0, deadline_s=BOOT_S)
        t_task = time.monotonic() - t0
        while READY not in self.console(vm):
            if time.monotonic() - t0 > BOOT_S:
                raise BenchError(f"VM {vm}: no {READY} after {BOOT_S} s")
            time.sleep(0.1)
        return t_task, time.monotonic() - t0

    def raw_guest(self, i, template_xml):
        """A guest by hand from the same base: vol-clone, grow, virsh create; seconds to ready."""
        name = f"bench-rbd-raw-{i}-{self.tag}"
        serial = os.path.join(self.work, f"{name}.serial")
        mac = "52:54:00:%02x:%02x:%02x" % (0xbe, i, int(self.tag[:2], 16))
        xml = re.sub(r"<name>[^<]+</name>", f"<name>{name}</name>", template_xml, count=1)
        xml = re.sub(r"<uuid>[^<]+</uuid>", f"<uuid>{uuid.uuid4()}</uuid>", xml, count=1)
        xml = re.sub(r"<mac address='[^']+'/>", f"<mac address='{mac}'/>", xml)
        xml = re.sub(r"(<source protocol='rbd' name='[^/]+/)[^']+'", rf"\g<1>{name}'", xml)
        xml = re.sub(r"<log file='[^']+'", f"<log file='{serial}'", xml)
        xml = re.sub(r"<graphics.*?</graphics>|<graphics[^>]*/>", "", xml, flags=re.S)
        path = os.path.join(self.work, f"{name}.xml")
        with open(path, "w") as f:
            f.write(xml)
        lv_pool = f"nimbus-pool-{self.rbd_pool['id']}"
        t0 = time.monotonic()
        virsh("vol-clone", "--pool", lv_pool, f"nimbus-image-{self.image_id}", name)
        self.raw.append(name)
        virsh("vol-resize", "--pool", lv_pool, name, "1G")
        virsh("create", path)
        while True:
            try:
                with open(serial, errors="replace") as f:
                    if READY in f.read():
                        break
            except FileNotFoundError:
                pass
            if time.monotonic() - t0 > BOOT_S:
                raise BenchError(f"{name}: no {READY} after {BOOT_S} s")
            time.sleep(0.1)
        took = time.monotonic() - t0
        virsh("destroy", name, check=False)
        return took

    def delete_vm(self, vm):
        _, d = self.api.call("DELETE", f"/v1/vms/{vm}", ok=(202,))
        self.api.wait_task(d["task"]["id"], time.monotonic())
        self.vms.remove(vm)

    def cleanup(self):
        lv_pool = f"nimbus-pool-{self.rbd_pool['id']}" if self.rbd_pool else None
        for name in self.raw:
            virsh("destroy", name, check=False)
            if lv_pool:
                virsh("vol-delete", "--pool", lv_pool, name, check=False)
        if self.api and self.daemon and self.daemon.poll() is None:
            for vm in list(self.vms):
                try:
                    self.delete_vm(vm)
                except BenchError as e:
                    log(f"clean-up: deleting VM {vm}: {e}")
            paths = [f"/v1/images/{self.image_id}"] * bool(self.image_id) + \
                [f"/v1/pools/{self.rbd_pool['id']}"] * bool(self.rbd_pool) + \
                [f"/v1/flavors/{self.flavor_id}"] * bool(self.flavor_id)
            for path in paths:
                try:
                    self.api.call("DELETE", path, ok=(200, 202, 204, 404))
                except BenchError as e:
                    log(f"clean-up: deleting {path}: {e}")
        stop_nimbusd(self.daemon)
        for vm in self.vms:
            for args in (["destroy", f"nimbus-{vm}"], ["undefine", f"nimbus-{vm}"]):
                virsh(*args, check=False)
        for args in (["pool-destroy", self.pool], ["pool-undefine", self.pool]):
            virsh(*args, check=False)
        shutil.rmtree(self.work, ignore_errors=True)


def summary(label, xs):
    if not xs:
        return f"{label}: none"
    return (f"{label}: median {statistics.median(xs):.1f} s (min {min(xs):.1f}, max "
            f"{max(xs):.1f}; n={len(xs)})")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=3, help="VMs of each kind")
    ap.add_argument("--nimbusd", default=os.path.join(REPO, "build", "src", "daemon", "nimbusd"))
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    try:
        b = Bench(args)
    except BenchError as e:
        log(f"failed: {e}")
        return 1
    res = {"dir": [], "rbd_first": [], "rbd": [], "raw": []}
    try:
        b.start_daemon()
        b.prepare()
        for _ in range(args.count):
            log("a VM on the default dir pool")
            res["dir"].append(b.nimbus_vm(None))
            b.delete_vm(b.vms[-1])
        for i in range(args.count + 1):
            log("a VM on the rbd pool" + (" (writes the base)" if i == 0 else ""))
            res["rbd_first" if i == 0 else "rbd"].append(b.nimbus_vm(b.rbd_pool["name"]))
            if i < args.count:
                b.delete_vm(b.vms[-1])
        # the template: the last rbd VM's definition, stopped so that its seed is free to share
        last = b.vms[-1]
        template = virsh("dumpxml", "--inactive", f"nimbus-{last}").stdout
        virsh("destroy", f"nimbus-{last}", check=False)
        for i in range(args.count):
            log("a raw virsh guest on the same rbd pool")
            res["raw"].append(b.raw_guest(i, template))
    except (BenchError, KeyboardInterrupt) as e:
        log(f"failed: {e}")
        b.cleanup()
        return 1
    b.cleanup()
    print(summary("dir pool, create -> task done", [t for t, _ in res["dir"]]))
    print(summary("dir pool, create -> NIMBUS-READY", [r for _, r in res["dir"]]))
    print(summary("rbd pool, first VM (writes the base), create -> task done",
                  [t for t, _ in res["rbd_first"]]))
    print(summary("rbd pool, first VM, create -> NIMBUS-READY", [r for _, r in res["rbd_first"]]))
    print(summary("rbd pool, create -> task done", [t for t, _ in res["rbd"]]))
    print(summary("rbd pool, create -> NIMBUS-READY", [r for _, r in res["rbd"]]))
    print(summary("raw virsh on the rbd pool (vol-clone, vol-resize, create) -> NIMBUS-READY",
                  res["raw"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
