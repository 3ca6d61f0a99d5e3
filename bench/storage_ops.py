#!/usr/bin/python3
"""VM snapshots and backups: Nimbus's API against raw virsh doing the same work on a twin of
the same guest.

    bench/storage_ops.py [--rounds 3] [--data-mib 64] [--inc-mib 16] [--nimbusd PATH]

Starts its own nimbusd (TCG, private state dir, storage pool and network range) on the local
libvirtd, builds the test image and creates one tiny VM (1 vCPU, 128 MiB, 1 GiB disk). QEMU
writes --data-mib MiB into the root disk's free area (HMP qemu-io: the guest's own partition
ends at 32 MiB), so that a full backup has data to copy. Then, --rounds times each:

- snapshot: create (libvirt's internal snapshot of the running guest, with its memory: the only
  internal one libvirt takes of a running qcow2 domain), 1 MiB written, revert (the disks only:
  reverted paused, the domain restarted), delete;
- then backup: full (push mode, with a checkpoint), --inc-mib MiB written, incremental (after
  the snapshots: QEMU refuses to load an internal snapshot while a disk has active dirty
  bitmaps, which raw virsh would hit; Nimbus's revert deletes the VM's checkpoints first).

Each Nimbus figure runs from the request to its task's end. Then the Nimbus VM is stopped and a
twin is started (the same domain XML under its own name, MAC, disk overlay on the same image,
seed copy and serial log) and the same work is timed with virsh: snapshot-create-as,
snapshot-revert --paused + destroy + start, snapshot-delete; backup-begin (push, qcow2 target,
checkpoint) to the end of the job. MB/s is the data the backup's target file holds (`qemu-img
map`: what the job wrote, for both) over the time to the task's or job's end.

With --rbd (the test Ceph running: scripts/test-ceph.sh start), a second VM with its root disk
in an rbd pool on it: snapshot create, revert, delete and a full backup (no incremental on RBD:
a raw image has no dirty bitmap) through Nimbus, and against a raw twin on an RBD clone of the
same base (virsh vol-clone) the same work by hand: virsh suspend, rbd snap create, virsh resume;
virsh destroy, rbd snap rollback, virsh start; rbd snap rm; virsh backup-begin. Everything it made is removed at the end, also on failure and Ctrl-C. Figures only:
nothing asserts on them. See docs/benchmarks.md.
"""

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import time

import benchlib
from benchlib import (BenchError, Workdir, create_rbd_pool, create_tiny_vm, file_bytes, log,
                      rbd_sweep, run, start_nimbusd, teardown, test_ceph_env, twin_domain_xml,
                      upload_test_image)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LOCAL_URI = "qemu:///system"
DAEMON_START_S = 30
BOOT_S = 300
JOB_S = 600
READY = "NIMBUS-READY"
DATA_OFF = 512 << 20  # the root disk is 1 GiB; the guest's partition ends at 32 MiB
INC_OFF = 768 << 20
SMALL_OFF = 900 << 20


def virsh(*args, check=True, timeout=JOB_S):
    return run(["virsh", "-q", "-c", LOCAL_URI, *args], timeout=timeout, check=check).stdout


def write_disk(domain, pattern, offset, mib):
    """pattern over mib MiB of the running domain's vda from offset, through QEMU (qemu-io)."""
    xml = virsh("dumpxml", domain)
    alias = None
    for disk in re.findall(r"<disk .*?</disk>", xml, re.S):
        if "<target dev='vda'" in disk:
            alias = re.search(r"<alias name='([^']+)'/>", disk).group(1)
    if not alias:
        raise BenchError(f"no vda in the definition of {domain}")
    for i in range(0, mib, 16):
        n = min(16, mib - i)
        cmd = f"write -P {pattern} {offset + (i << 20)} {n << 20}"
        virsh("qemu-monitor-command", domain, "--hmp", f'qemu-io -d {alias}/virtio-backend "{cmd}"')
    virsh("qemu-monitor-command", domain, "--hmp", f'qemu-io -d {alias}/virtio-backend "flush"')


def job_done(domain, t0):
    """Waits for the domain's (backup) job to end; returns the seconds since t0."""
    deadline = t0 + JOB_S
    while "None" not in virsh("domjobinfo", domain).split("\n", 1)[0]:
        if time.monotonic() > deadline:
            raise BenchError(f"{domain}: the backup job still runs after {JOB_S} s")
        time.sleep(benchlib.POLL_S)
    return time.monotonic() - t0


def data_bytes(path):
    """The bytes of data a qcow2 file holds itself (not its backing file's): what a backup job
    wrote into it."""
    extents = json.loads(run(["qemu-img", "map", "-U", "--output=json", path]).stdout)
    return sum(e["length"] for e in extents if e.get("data") and e.get("depth", 0) == 0)


class Bench:
    def __init__(self, args):
        self.args = args
        w = Workdir("sops")
        self.tag, self.work, self.state, self.pool = w.tag, w.work, w.state, w.pool
        self.log_path = w.log_path
        self.daemon = self.api = None
        self.ids = {}
        self.backups = []
        self.twin = f"bench-sops-twin-{self.tag}"
        self.twin_dir = os.path.join(self.work, "twin")
        os.mkdir(self.twin_dir)
        self.twin_console = os.path.join(self.twin_dir, "console.log")
        self.twin_defined = False
        self.nimbus = {k: [] for k in ("snap_create", "snap_revert", "snap_delete", "full",
                                       "full_mbps", "inc", "inc_mbps", "full_bytes",
                                       "inc_bytes")}
        self.raw = {k: [] for k in self.nimbus}
        # --rbd: the same on a VM whose root disk is on the test Ceph
        self.rbd_pool = self.rbd_vm = None
        self.rbd_twin = f"bench-sops-rtwin-{self.tag}"
        self.rbd_twin_console = os.path.join(self.twin_dir, "rbd-console.log")
        self.rbd_twin_made = self.rbd_twin_defined = False
        self.rbd_nimbus = {k: [] for k in ("snap_create", "snap_revert", "snap_delete", "full",
                                           "full_mbps", "full_bytes")}
        self.rbd_raw = {k: [] for k in self.rbd_nimbus}

    # ------------------------------------------------------------------ Nimbus

    def start(self):
        self.daemon, self.api = start_nimbusd(
            self.args.nimbusd, self.state, self.pool, self.log_path,
            ["--default-network-pool", "10.247.0.0/16"], DAEMON_START_S)
        self.ids["images"] = upload_test_image(self.api, self.work, f"bench-sops-{self.tag}")
        self.ids["flavors"], self.ids["vms"] = create_tiny_vm(
            self.api, f"bench-sops-{self.tag}", self.ids["images"])
        self.domain = f"nimbus-{self.ids['vms']}"
        self.wait_ready(lambda: self.api.call(
            "GET", f"/v1/vms/{self.ids['vms']}/console-log?bytes=65536", raw=True)[1],
            "the Nimbus VM")

    @staticmethod
    def wait_ready(read, what, count=1):
        deadline = time.monotonic() + BOOT_S
        while read().count(READY.encode()) < count:
            if time.monotonic() > deadline:
                raise BenchError(f"{what}: no {READY} after {BOOT_S} s")
            time.sleep(0.5)

    def task(self, method, path, body=None):
        t0 = time.monotonic()
        _, r = self.api.call(method, path, body)
        self.api.wait_task(r["task"]["id"], t0, deadline_s=JOB_S)
        return time.monotonic() - t0, r

    def nimbus_runs(self):
        vm = self.ids["vms"]
        write_disk(self.domain, 0x41, DATA_OFF, self.args.data_mib)
        for i in range(self.args.rounds):
            log(f"Nimbus round {i + 1}: snapshot create, revert, delete")
            secs, _ = self.task("POST", f"/v1/vms/{vm}/snapshots", {"name": f"s{i}"})
            self.nimbus["snap_create"].append(secs)
            write_disk(self.domain, 0x42, SMALL_OFF, 1)
            secs, _ = self.task("POST", f"/v1/vms/{vm}/snapshots/s{i}/revert", {})
            self.nimbus["snap_revert"].append(secs)
            secs, _ = self.task("DELETE", f"/v1/vms/{vm}/snapshots/s{i}")
            self.nimbus["snap_delete"].append(secs)
        for i in range(self.args.rounds):
            log(f"Nimbus round {i + 1}: full backup, {self.args.inc_mib} MiB written, "
                "incremental")
            for kind in ("full", "inc"):
                if kind == "inc":
                    write_disk(self.domain, 0x43 + i, INC_OFF, self.args.inc_mib)
                secs, r = self.task("POST", "/v1/backups",
                                    {"vm": vm, "incremental": kind == "inc"})
                self.backups.append(r["backup"]["id"])
                _, b = self.api.call("GET", f"/v1/backups/{r['backup']['id']}")
                done = data_bytes(os.path.join(self.state, "pool", b["volume"]))
                self.nimbus[kind].append(secs)
                self.nimbus[f"{kind}_bytes"].append(done)
                self.nimbus[f"{kind}_mbps"].append(done / 1e6 / secs)
        # while the VM runs: deleting a checkpoint needs a running domain (libvirt 9.0)
        self.delete_backups()
        self.task("POST", f"/v1/vms/{vm}/stop", {"force": True})

    def delete_backups(self):
        for b in reversed(list(self.backups)):
            try:
                t0 = time.monotonic()
                _, r = self.api.call("DELETE", f"/v1/backups/{b}", ok=(202, 404))
                if r and "task" in r:
                    self.api.wait_task(r["task"]["id"], t0)
                self.backups.remove(b)
            except BenchError as e:
                log(f"deleting backup {b}: {e}")

    # ------------------------------------------------------------------ the raw twin

    def start_twin(self):
        xml, image = twin_domain_xml(virsh("dumpxml", "--inactive", self.domain), self.twin,
                                     self.twin_dir, self.twin_console)
        path = os.path.join(self.twin_dir, "domain.xml")
        with open(path, "w") as f:
            f.write(xml)
        log(f"twin {self.twin}: overlay on {image}; defining and starting it")
        self.twin_defined = True
        virsh("define", path)
        virsh("start", self.twin)
        self.wait_ready(lambda: file_bytes(self.twin_console), f"twin {self.twin}")

    def raw_backup(self, name, incremental_from=None):
        target = os.path.join(self.twin_dir, f"{name}.qcow2")
        inc = f"<incremental>{incremental_from}</incremental>" if incremental_from else ""
        bx = os.path.join(self.twin_dir, f"{name}-backup.xml")
        cx = os.path.join(self.twin_dir, f"{name}-checkpoint.xml")
        with open(bx, "w") as f:
            f.write(f"<domainbackup mode='push'>{inc}<disks><disk name='vda' type='file'>"
                    f"<target file='{target}'/><driver type='qcow2'/></disk></disks>"
                    "</domainbackup>")
        with open(cx, "w") as f:
            f.write(f"<domaincheckpoint><name>{name}</name><disks><disk name='vda' "
                    "checkpoint='bitmap'/></disks></domaincheckpoint>")
        t0 = time.monotonic()
        virsh("backup-begin", self.twin, "--backupxml", bx, "--checkpointxml", cx)
        return job_done(self.twin, t0), data_bytes(target)

    def raw_runs(self):
        write_disk(self.twin, 0x41, DATA_OFF, self.args.data_mib)
        # snapshots first: QEMU's loadvm refuses a disk with active dirty bitmaps (checkpoints)
        for i in range(self.args.rounds):
            log(f"virsh round {i + 1}: snapshot create, revert, delete")
            t0 = time.monotonic()
            virsh("snapshot-create-as", self.twin, f"raw-s{i}")
            self.raw["snap_create"].append(time.monotonic() - t0)
            write_disk(self.twin, 0x42, SMALL_OFF, 1)
            t0 = time.monotonic()
            virsh("snapshot-revert", self.twin, f"raw-s{i}", "--paused")
            virsh("destroy", self.twin)
            virsh("start", self.twin)
            self.raw["snap_revert"].append(time.monotonic() - t0)
            t0 = time.monotonic()
            virsh("snapshot-delete", self.twin, f"raw-s{i}")
            self.raw["snap_delete"].append(time.monotonic() - t0)
        for i in range(self.args.rounds):
            log(f"virsh round {i + 1}: full backup, {self.args.inc_mib} MiB written, incremental")
            secs, done = self.raw_backup(f"raw-full{i}")
            self.raw["full"].append(secs)
            self.raw["full_bytes"].append(done)
            self.raw["full_mbps"].append(done / 1e6 / secs)
            write_disk(self.twin, 0x43 + i, INC_OFF, self.args.inc_mib)
            secs, done = self.raw_backup(f"raw-inc{i}", incremental_from=f"raw-full{i}")
            self.raw["inc"].append(secs)
            self.raw["inc_bytes"].append(done)
            self.raw["inc_mbps"].append(done / 1e6 / secs)

    # ------------------------------------------------------------------ on RBD (--rbd)

    def rbd(self, *args):
        return run(["rbd", "--conf", self.ceph["CEPH_CONF"], *args], timeout=JOB_S).stdout

    def rbd_start(self):
        self.ceph = test_ceph_env()
        self.rbd_pool = create_rbd_pool(self.api, self.ceph, f"bench-sops-{self.tag}")
        t0 = time.monotonic()
        _, r = self.api.call("POST", "/v1/vms", {
            "name": f"bench-sops-rbd-{self.tag}", "image": self.ids["images"],
            "flavor": self.ids["flavors"], "pool": self.rbd_pool["id"]})
        self.rbd_vm = r["vm"]["id"]
        self.api.wait_task(r["task"]["id"], t0, deadline_s=JOB_S)
        self.wait_ready(lambda: self.api.call(
            "GET", f"/v1/vms/{self.rbd_vm}/console-log?bytes=65536", raw=True)[1], "the RBD VM")

    def rbd_nimbus_runs(self):
        vm, dom = self.rbd_vm, f"nimbus-{self.rbd_vm}"
        write_disk(dom, 0x41, DATA_OFF, self.args.data_mib)
        for i in range(self.args.rounds):
            log(f"Nimbus on RBD, round {i + 1}: snapshot create, revert, delete; full backup")
            secs, _ = self.task("POST", f"/v1/vms/{vm}/snapshots", {"name": f"r{i}"})
            self.rbd_nimbus["snap_create"].append(secs)
            write_disk(dom, 0x42, SMALL_OFF, 1)
            secs, _ = self.task("POST", f"/v1/vms/{vm}/snapshots/r{i}/revert", {})
            self.rbd_nimbus["snap_revert"].append(secs)
            secs, _ = self.task("DELETE", f"/v1/vms/{vm}/snapshots/r{i}")
            self.rbd_nimbus["snap_delete"].append(secs)
            secs, r = self.task("POST", "/v1/backups", {"vm": vm})
            self.backups.append(r["backup"]["id"])
            _, b = self.api.call("GET", f"/v1/backups/{r['backup']['id']}")
            done = data_bytes(os.path.join(self.state, "pool", b["volume"]))
            self.rbd_nimbus["full"].append(secs)
            self.rbd_nimbus["full_bytes"].append(done)
            self.rbd_nimbus["full_mbps"].append(done / 1e6 / secs)
        self.task("POST", f"/v1/vms/{vm}/stop", {"force": True})

    def rbd_start_twin(self):
        """The raw twin on RBD: a clone of Nimbus's base by virsh vol-clone (as Nimbus's disk is
        made), the Nimbus domain's XML with its own name, MAC, disk and serial log."""
        lv_pool = self.rbd_pool["libvirt_name"]
        xml = virsh("dumpxml", "--inactive", f"nimbus-{self.rbd_vm}")
        xml = re.sub(r"<name>[^<]+</name>", f"<name>{self.rbd_twin}</name>", xml, count=1)
        xml = re.sub(r"<uuid>[^<]+</uuid>", "", xml, count=1)
        xml = re.sub(r"<metadata>.*?</metadata>", "", xml, flags=re.S)
        xml = re.sub(r"<mac address='[^']+'/>", "<mac address='52:54:00:be:5e:01'/>", xml)
        xml = re.sub(r"(<source protocol='rbd' name='[^/]+/)[^']+'", rf"\g<1>{self.rbd_twin}'",
                     xml)
        xml = re.sub(r"<log file='[^']+'", f"<log file='{self.rbd_twin_console}'", xml)
        path = os.path.join(self.twin_dir, "rbd-domain.xml")
        with open(path, "w") as f:
            f.write(xml)
        log(f"RBD twin {self.rbd_twin}: vol-clone of the base, define, start")
        self.rbd_twin_made = True
        virsh("vol-clone", "--pool", lv_pool, f"nimbus-image-{self.ids['images']}",
              self.rbd_twin)
        virsh("vol-resize", "--pool", lv_pool, self.rbd_twin, "1G")
        self.rbd_twin_defined = True
        virsh("define", path)
        virsh("start", self.rbd_twin)
        self.wait_ready(lambda: file_bytes(self.rbd_twin_console), f"twin {self.rbd_twin}")

    def rbd_raw_runs(self):
        """What Nimbus's tasks do, by hand: virsh suspend, rbd snap create, virsh resume;
        virsh destroy, rbd snap rollback, virsh start; rbd snap rm; a push backup (no
        checkpoint: a raw RBD image has no dirty bitmap)."""
        dom, image = self.rbd_twin, f"{self.ceph['NIMBUS_TEST_CEPH_POOL']}/{self.rbd_twin}"
        write_disk(dom, 0x41, DATA_OFF, self.args.data_mib)
        for i in range(self.args.rounds):
            log(f"virsh+rbd on RBD, round {i + 1}: snapshot create, revert, delete; full backup")
            t0 = time.monotonic()
            virsh("suspend", dom)
            self.rbd("snap", "create", f"{image}@r{i}")
            virsh("resume", dom)
            self.rbd_raw["snap_create"].append(time.monotonic() - t0)
            write_disk(dom, 0x42, SMALL_OFF, 1)
            t0 = time.monotonic()
            virsh("destroy", dom)
            self.rbd("snap", "rollback", "--no-progress", f"{image}@r{i}")
            virsh("start", dom)
            self.rbd_raw["snap_revert"].append(time.monotonic() - t0)
            t0 = time.monotonic()
            self.rbd("snap", "rm", "--no-progress", f"{image}@r{i}")
            self.rbd_raw["snap_delete"].append(time.monotonic() - t0)
            target = os.path.join(self.twin_dir, f"rbd-full{i}.qcow2")
            bx = os.path.join(self.twin_dir, f"rbd-full{i}.xml")
            with open(bx, "w") as f:
                f.write("<domainbackup mode='push'><disks><disk name='vda' type='file'>"
                        f"<target file='{target}'/><driver type='qcow2'/></disk>"
                        "</disks></domainbackup>")
            t0 = time.monotonic()
            virsh("backup-begin", dom, "--backupxml", bx)
            secs = job_done(dom, t0)
            done = data_bytes(target)
            self.rbd_raw["full"].append(secs)
            self.rbd_raw["full_bytes"].append(done)
            self.rbd_raw["full_mbps"].append(done / 1e6 / secs)

    def rbd_cleanup(self):
        if self.rbd_twin_defined:
            for args in (["destroy", self.rbd_twin], ["undefine", self.rbd_twin]):
                subprocess.run(["virsh", "-q", "-c", LOCAL_URI, *args], capture_output=True,
                               timeout=60)
        if self.rbd_twin_made:
            image = f"{self.ceph['NIMBUS_TEST_CEPH_POOL']}/{self.rbd_twin}"
            subprocess.run(["rbd", "--conf", self.ceph["CEPH_CONF"], "snap", "purge", image],
                           capture_output=True, timeout=120)
            subprocess.run(["virsh", "-q", "-c", LOCAL_URI, "vol-delete", "--pool",
                            self.rbd_pool["libvirt_name"], self.rbd_twin],
                           capture_output=True, timeout=120)
        if self.api and self.daemon and self.daemon.poll() is None:
            self.delete_backups()
            try:
                # both VMs, then the image (IMAGE_IN_USE while one has it), then the pool: the
                # image's delete removes its base from the pool
                for vm in (self.rbd_vm, self.ids.get("vms")):
                    if vm:
                        t0 = time.monotonic()
                        _, r = self.api.call("DELETE", f"/v1/vms/{vm}", ok=(202, 404))
                        if r and "task" in r:
                            self.api.wait_task(r["task"]["id"], t0)
                if self.ids.get("images"):
                    self.api.call("DELETE", f"/v1/images/{self.ids.pop('images')}",
                                  ok=(200, 202, 204, 404))
                if self.rbd_pool:
                    self.api.call("DELETE", f"/v1/pools/{self.rbd_pool['id']}",
                                  ok=(200, 202, 204, 404))
            except BenchError as e:
                log(f"clean-up on RBD: {e}")

    # ------------------------------------------------------------------ clean-up

    def cleanup(self):
        image = self.ids.get("images")
        if self.rbd_pool:
            self.rbd_cleanup()
        if self.twin_defined:
            subprocess.run(["virsh", "-q", "-c", LOCAL_URI, "destroy", self.twin],
                           capture_output=True, timeout=60)
            subprocess.run(["virsh", "-q", "-c", LOCAL_URI, "undefine", self.twin,
                            "--snapshots-metadata", "--checkpoints-metadata"],
                           capture_output=True, timeout=60)
        if self.api and self.daemon and self.daemon.poll() is None:
            self.delete_backups()
        teardown(self.api, self.daemon, self.ids, self.pool, self.work)
        if self.rbd_pool:
            rbd_sweep(self.ceph["CEPH_CONF"], self.ceph["NIMBUS_TEST_CEPH_POOL"],
                      {self.rbd_twin, f"vm-{self.rbd_vm}-disk", f"nimbus-image-{image}"})


def median(xs):
    return statistics.median(xs) if xs else float("nan")


def table(rows, n, r):
    print(f"{'operation':<62} {'Nimbus':>24} {'raw':>24} {'ratio':>6}")
    for label, key, unit in rows:
        def cell(xs):
            return f"{median(xs):.2f} {unit} ({min(xs):.2f}-{max(xs):.2f})" if xs else "-"
        ratio = median(n[key]) / median(r[key]) if n[key] and r[key] and median(r[key]) \
            else float("nan")
        print(f"{label:<62} {cell(n[key]):>24} {cell(r[key]):>24} {ratio:>6.2f}")


def report(b):
    n, r = b.nimbus, b.raw
    rows = [("snapshot create (running, with memory)", "snap_create", "s"),
            ("snapshot revert (disks; domain restarted)", "snap_revert", "s"),
            ("snapshot delete", "snap_delete", "s"),
            (f"full backup ({b.args.data_mib} MiB written + the image's data)", "full", "s"),
            ("  its rate", "full_mbps", "MB/s"),
            (f"incremental backup ({b.args.inc_mib} MiB changed)", "inc", "s"),
            ("  its rate", "inc_mbps", "MB/s")]
    print(f"\n{b.args.rounds} rounds, medians (min-max)")
    table(rows, n, r)
    if b.args.rbd:
        rows = [("on RBD: snapshot create (guest paused for rbd snap)", "snap_create", "s"),
                ("on RBD: snapshot revert (destroy, rbd snap rollback, start)", "snap_revert",
                 "s"),
                ("on RBD: snapshot delete (rbd snap rm)", "snap_delete", "s"),
                ("on RBD: full backup (no checkpoint)", "full", "s"),
                ("  its rate", "full_mbps", "MB/s")]
        table(rows, b.rbd_nimbus, b.rbd_raw)
    for who, d in (("Nimbus", n), ("raw virsh", r)):
        print(f"{who}: data written by the job: full {median(d['full_bytes']) / 1e6:.1f} MB, "
              f"incremental {median(d['inc_bytes']) / 1e6:.1f} MB; full/incremental time "
              f"{median(d['full']) / median(d['inc']):.2f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--data-mib", type=int, default=64, help="written before the first backup")
    ap.add_argument("--inc-mib", type=int, default=16, help="written before each incremental")
    ap.add_argument("--rbd", action="store_true",
                    help="also on a VM whose root disk is on the test Ceph (scripts/test-ceph.sh)")
    ap.add_argument("--nimbusd", default=os.path.join(REPO, "build", "src", "daemon", "nimbusd"))
    args = ap.parse_args()
    benchlib.HTTP_TIMEOUT_S = 300  # the image upload on a busy machine
    b = Bench(args)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    try:
        b.start()
        b.nimbus_runs()
        b.start_twin()
        b.raw_runs()
        if args.rbd:
            virsh("destroy", b.twin)
            b.rbd_start()
            b.rbd_nimbus_runs()
            b.rbd_start_twin()
            b.rbd_raw_runs()
    except (BenchError, KeyboardInterrupt) as e:
        log(f"failed: {e}")
        b.cleanup()
        return 1
    b.cleanup()
    report(b)
    return 0


if __name__ == "__main__":
    sys.exit(main())
