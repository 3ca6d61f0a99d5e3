#!/usr/bin/python3
"""Live migration benchmark: Nimbus API versus raw virsh migrate, on the same guest.

    bench/migrate.py [--count N] [--json FILE]

Runs under an exclusive flock on /tmp/nimbus-testhosts.lock for its whole run (the test
hosts' namespace names are fixed, and other test suites start them too); it says so when it
has to wait.  It starts two test hosts (scripts/testhosts.sh start 2), its own nimbusd (TCG,
private state dir and storage pool) with kvm1 and kvm2 added and "local" disabled, creates
one VM on kvm1 and times N live migrations through the API, alternating kvm1 -> kvm2 and
back.  Then an unmanaged twin of that guest (same domain XML, own name, MAC, disk overlay on
the same image, seed copy and console log) is started on kvm1 and moved N times with
`virsh migrate --live --unsafe --persistent --undefinesource`.  The two guests never run at
the same time.  Everything it created (twin domain, Nimbus VM, image, flavor, pools, the
daemon, the test hosts, temp dirs) is removed on success, failure and Ctrl-C.  It prints
figures only: nothing here asserts on timings.  See docs/benchmarks.md.
"""

import argparse
import fcntl
import json
import os
import platform
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET

from benchlib import (CMD_TIMEOUT_S, POLL_S, TASK_TIMEOUT_S, BenchError, log, run,
                      start_nimbusd)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TESTHOSTS = os.path.join(REPO, "scripts", "testhosts.sh")
LOCK_PATH = "/tmp/nimbus-testhosts.lock"

HOSTS = ("kvm1", "kvm2")
SUBNET = "10.77.0"
LOCAL_URI = "qemu:///system"

SETTLE_S = 1.0  # pause after each migration (both sides), outside the timings
TESTHOSTS_TIMEOUT_S = 180
MIGRATE_TIMEOUT_S = 300  # one virsh migrate
HOST_UP_S = 60
BOOT_TIMEOUT_S = 180  # TCG guest to print NIMBUS-READY
DAEMON_START_S = 30
DAEMON_STOP_S = 15
READY = "NIMBUS-READY"


def host_uri(name):
    return f"qemu+tcp://{SUBNET}.{10 + int(name[3:])}/system"


# ---------------------------------------------------------------- commands


def virsh(uri, *args, check=True, timeout=CMD_TIMEOUT_S):
    return run(["virsh", "-q", "-c", uri, *args], timeout=timeout, check=check).stdout


def job_ms(uri, domain):
    """Elapsed time of the last completed job (the migration) as the destination's libvirt
    recorded it, in ms; None if it does not say. Informational, read outside the timings."""
    p = run(["virsh", "-c", uri, "domjobinfo", "--completed", domain], check=False, timeout=30)
    m = re.search(r"^Time elapsed:\s+(\d+)\s*ms", p.stdout, re.M)
    return int(m.group(1)) if m else None


# ---------------------------------------------------------------- the benchmark


class Bench:
    def __init__(self, args):
        self.args = args
        self.tag = "%06x" % random.getrandbits(24)
        self.work = tempfile.mkdtemp(prefix=f"nimbus-bench-migrate-{self.tag}-")
        # qemu runs as another user (on every test host): it must traverse down to the pool,
        # the twin's disk and seed; virtlogd (root) writes the console logs.
        os.chmod(self.work, 0o711)
        self.state = os.path.join(self.work, "state")
        self.twin_dir = os.path.join(self.work, "twin")
        for d in (self.state, self.twin_dir):
            os.mkdir(d)
            os.chmod(d, 0o711)
        self.hosts_started = False
        self.daemon = None
        self.daemon_log = os.path.join(self.work, "nimbusd.log")
        self.pool_name = f"nimbus-bench-mig-{self.tag}"
        self.api = None
        self.image_id = None
        self.flavor_id = None
        self.vm_id = None
        self.twin = f"benchmig-{self.tag}"
        self.twin_defined = False
        self.twin_console = os.path.join(self.twin_dir, "console.log")
        self.facts = {}

    # ------------------------------------------------------------ set-up

    def start_hosts(self):
        log("starting test hosts kvm1, kvm2 (scripts/testhosts.sh start 2)")
        self.hosts_started = True  # before: a half-made start is stopped too
        run([TESTHOSTS, "start", "2"], timeout=TESTHOSTS_TIMEOUT_S)
        out = virsh(host_uri("kvm1"), "version")
        for key, label in (("Using library", "libvirt"), ("Running hypervisor", "hypervisor")):
            m = re.search(rf"^{key}:\s*(.+)$", out, re.M)
            self.facts[label] = m.group(1).strip() if m else "?"

    def start_daemon(self):
        self.daemon, self.api = start_nimbusd(self.args.nimbusd, self.state, self.pool_name,
                                              self.daemon_log, start_s=DAEMON_START_S)

    def daemon_tail(self, n=40):
        if not os.path.exists(self.daemon_log):
            return ""
        with open(self.daemon_log, errors="replace") as f:
            return "".join(f.readlines()[-n:])

    def daemon_lines(self, pattern):
        if not os.path.exists(self.daemon_log):
            return ""
        with open(self.daemon_log, errors="replace") as f:
            return "".join(line for line in f if re.search(pattern, line, re.I))

    def add_hosts(self):
        for name in HOSTS:
            self.api.call("POST", "/v1/hosts", {"name": name, "uri": host_uri(name)})
        deadline = time.monotonic() + HOST_UP_S
        for name in HOSTS:
            while True:
                _, h = self.api.call("GET", f"/v1/hosts/{name}")
                if h.get("state") == "up":
                    break
                if time.monotonic() > deadline:
                    raise BenchError(f"host {name} still {h.get('state')} after {HOST_UP_S} s")
                time.sleep(0.2)
        self.api.call("POST", "/v1/hosts/local/disable")
        log("hosts kvm1 and kvm2 up; local disabled")

    def upload_image_and_flavor(self):
        image = os.path.join(self.work, "tiny.qcow2")
        log("building the test image")
        run([os.path.join(REPO, "scripts", "build-test-image.sh"), image], timeout=300)
        name = f"bench-mig-{self.tag}"
        _, img = self.api.call("POST", "/v1/images", {"name": name})
        self.image_id = img["id"]
        with open(image, "rb") as f:
            data = f.read()
        self.api.call("PUT", f"/v1/images/{img['id']}/file", data=data)
        _, fl = self.api.call("POST", "/v1/flavors",
                              {"name": name, "vcpus": 1, "ram_mib": 256, "disk_gib": 1})
        self.flavor_id = fl["id"]
        log(f"image {img['id']} ({len(data) >> 20} MiB) and flavor {fl['id']} "
            "(1 vCPU, 256 MiB) ready")

    # ------------------------------------------------------------ Nimbus

    def create_vm(self):
        log("creating the Nimbus VM on kvm1")
        t0 = time.monotonic()
        _, body = self.api.call("POST", "/v1/vms", {"name": f"bench-mig-{self.tag}",
                                                    "image": self.image_id,
                                                    "flavor": self.flavor_id, "host": "kvm1"})
        self.vm_id = body["vm"]["id"]
        self.api.wait_task(body["task"]["id"], t0)
        self.wait_ready(lambda: self.api.call(
            "GET", f"/v1/vms/{self.vm_id}/console-log?bytes=65536", raw=True)[1],
            f"VM {self.vm_id}")

    def wait_ready(self, read, what):
        t0 = time.monotonic()
        while READY.encode() not in read():
            if time.monotonic() - t0 > BOOT_TIMEOUT_S:
                raise BenchError(f"{what}: no {READY} on its console after {BOOT_TIMEOUT_S} s")
            time.sleep(0.5)
        log(f"{what} booted ({READY} after {time.monotonic() - t0:.1f} s)")
        time.sleep(SETTLE_S)

    def nimbus_migrate(self, dest):
        t0 = time.monotonic()
        _, body = self.api.call("POST", f"/v1/vms/{self.vm_id}/migrate", {"host": dest})
        end, m = self.api.wait_task(body["task"]["id"], t0)
        # Migrate steps: 0 prepare (storage check), 1 move (libvirt migration), 2 switch
        # (the store's host), 3 cleanup.
        run_at = m.get("running", end)
        at = [m.get(k, end) for k in range(1, 3)]
        phases = {"api+queue": run_at - t0, "prepare": at[0] - run_at, "move": at[1] - at[0],
                  "switch+cleanup": end - at[1]}
        return end - t0, phases

    def nimbus_runs(self):
        n = self.args.count
        out = {"seconds": [], "directions": [], "phases": [], "job_ms": []}
        domain = f"nimbus-{self.vm_id}"
        src = "kvm1"
        for i in range(n):
            dest = "kvm2" if src == "kvm1" else "kvm1"
            secs, phases = self.nimbus_migrate(dest)
            _, vm = self.api.call("GET", f"/v1/vms/{self.vm_id}")
            if vm["host"] != dest or vm["state"] != "running":
                raise BenchError(f"after migrating to {dest} the VM is {vm['state']} on "
                                 f"{vm['host']}")
            state = virsh(host_uri(dest), "domstate", domain).strip()
            if state != "running":
                raise BenchError(f"{domain} is '{state}' on {dest} after the migration")
            jm = job_ms(host_uri(dest), domain)
            log(f"Nimbus {i + 1}/{n} {src} -> {dest}: {secs:.3f} s"
                + (f" (libvirt job {jm} ms)" if jm is not None else ""))
            out["seconds"].append(secs)
            out["directions"].append(f"{src}->{dest}")
            out["phases"].append(phases)
            out["job_ms"].append(jm)
            src = dest
            time.sleep(SETTLE_S)
        return out

    def stop_vm(self):
        log("stopping the Nimbus VM (the twin runs alone)")
        t0 = time.monotonic()
        _, body = self.api.call("POST", f"/v1/vms/{self.vm_id}/stop", {"force": True})
        self.api.wait_task(body["task"]["id"], t0)

    # ------------------------------------------------------------ the raw virsh twin

    def prepare_twin(self):
        """The twin's XML and files, from the Nimbus domain as it runs on kvm1."""
        domain = f"nimbus-{self.vm_id}"
        root = ET.fromstring(virsh(host_uri("kvm1"), "dumpxml", "--inactive", domain))
        root.find("name").text = self.twin
        for tag in ("uuid", "metadata"):  # a fresh UUID; nothing that says "Nimbus"
            el = root.find(tag)
            if el is not None:
                root.remove(el)
        title = root.find("title")
        if title is not None:
            title.text = self.twin
        disk = os.path.join(self.twin_dir, "disk.qcow2")
        seed = os.path.join(self.twin_dir, "seed.iso")
        for d in list(root.findall("./devices/disk")):
            src = d.find("source")
            if d.get("device") == "disk":
                info = json.loads(run(["qemu-img", "info", "-U", "--output=json",
                                       src.get("file")]).stdout)
                backing = info.get("full-backing-filename") or info.get("backing-filename")
                if not backing:
                    raise BenchError(f"{src.get('file')} has no backing file")
                fmt = info.get("backing-filename-format") or "qcow2"
                # A linked clone of the same image file, the size of Nimbus's disk.
                run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", fmt, "-b", backing,
                     disk, str(info["virtual-size"])])
                src.set("file", disk)
                self.facts["image"] = backing
            elif d.get("device") == "cdrom":
                shutil.copyfile(src.get("file"), seed)
                src.set("file", seed)
        mac = "52:54:00:%02x:%02x:%02x" % tuple(random.getrandbits(8) for _ in range(3))
        for m in root.findall("./devices/interface/mac"):
            m.set("address", mac)
        for lg in root.iter("log"):
            lg.set("file", self.twin_console)
        self.twin_xml = os.path.join(self.twin_dir, "domain.xml")
        with open(self.twin_xml, "w") as f:
            f.write(ET.tostring(root, encoding="unicode"))
        log(f"twin {self.twin} prepared (disk overlay on {self.facts['image']})")

    def start_twin(self):
        log(f"defining and starting the twin {self.twin} on kvm1")
        self.twin_defined = True  # before: a half-made define is removed too
        uri = host_uri("kvm1")
        virsh(uri, "define", self.twin_xml)
        virsh(uri, "start", self.twin)

        def read():
            try:
                with open(self.twin_console, "rb") as f:
                    return f.read()
            except FileNotFoundError:
                return b""
        self.wait_ready(read, f"twin {self.twin}")

    def virsh_runs(self):
        n = self.args.count
        out = {"seconds": [], "directions": [], "job_ms": []}
        src = "kvm1"
        for i in range(n):
            dest = "kvm2" if src == "kvm1" else "kvm1"
            argv = ["virsh", "-c", host_uri(src), "migrate", "--live", "--unsafe",
                    "--persistent", "--undefinesource", self.twin, host_uri(dest)]
            t0 = time.monotonic()
            run(argv, timeout=MIGRATE_TIMEOUT_S)
            secs = time.monotonic() - t0
            state = virsh(host_uri(dest), "domstate", self.twin).strip()
            if state != "running":
                raise BenchError(f"{self.twin} is '{state}' on {dest} after the migration")
            jm = job_ms(host_uri(dest), self.twin)
            log(f"virsh {i + 1}/{n} {src} -> {dest}: {secs:.3f} s"
                + (f" (libvirt job {jm} ms)" if jm is not None else ""))
            out["seconds"].append(secs)
            out["directions"].append(f"{src}->{dest}")
            out["job_ms"].append(jm)
            src = dest
            time.sleep(SETTLE_S)
        return out

    # ------------------------------------------------------------ the run

    def run(self):
        self.start_hosts()
        self.start_daemon()
        self.add_hosts()
        self.upload_image_and_flavor()
        self.create_vm()
        self.prepare_twin()
        self.load_before = os.getloadavg()
        results = {"nimbus": self.nimbus_runs()}
        self.stop_vm()
        self.start_twin()
        results["virsh"] = self.virsh_runs()
        self.load_after = os.getloadavg()
        return results

    # ------------------------------------------------------------ clean-up

    def cleanup(self):
        uris = [host_uri(h) for h in HOSTS] if self.hosts_started else []

        def quiet(uri, *args):  # a clean-up step that fails must not stop the others
            try:
                virsh(uri, *args, check=False, timeout=30)
            except BenchError as e:
                log(f"clean-up: {e}")

        if self.twin_defined:
            for uri in uris:
                quiet(uri, "destroy", self.twin)
                quiet(uri, "undefine", self.twin)
        if self.api and self.daemon and self.daemon.poll() is None:
            if self.vm_id:
                try:
                    self.delete_vm()
                except BenchError as e:
                    log(f"clean-up: deleting VM {self.vm_id}: {e}")
            for kind, rid in (("images", self.image_id), ("flavors", self.flavor_id)):
                if rid:
                    try:
                        self.api.call("DELETE", f"/v1/{kind}/{rid}", ok=(200, 202, 204, 404))
                    except BenchError as e:
                        log(f"clean-up: deleting {kind[:-1]} {rid}: {e}")
        if self.daemon:
            if self.daemon.poll() is None:
                self.daemon.send_signal(signal.SIGTERM)
                try:
                    self.daemon.wait(DAEMON_STOP_S)
                except subprocess.TimeoutExpired:
                    log(f"clean-up: nimbusd pid {self.daemon.pid} ignored SIGTERM; killing it")
                    self.daemon.kill()
                    self.daemon.wait(5)
            # Whatever Nimbus did not get to delete: its domain, then its pools (the local
            # libvirtd's too: the daemon sets its pool up there even with "local" disabled).
            for uri in uris:
                if self.vm_id:
                    quiet(uri, "destroy", f"nimbus-{self.vm_id}")
                    quiet(uri, "undefine", f"nimbus-{self.vm_id}")
            for uri in uris + [LOCAL_URI]:
                quiet(uri, "pool-destroy", self.pool_name)
                quiet(uri, "pool-undefine", self.pool_name)
        if self.hosts_started:
            log("stopping the test hosts (scripts/testhosts.sh stop)")
            try:
                p = run([TESTHOSTS, "stop"], timeout=TESTHOSTS_TIMEOUT_S, check=False)
                if p.returncode != 0:
                    log(f"clean-up: testhosts.sh stop: exit {p.returncode}: "
                        f"{p.stderr.strip()}")
            except BenchError as e:
                log(f"clean-up: {e}")
        shutil.rmtree(self.work, ignore_errors=True)

    def delete_vm(self):
        t0 = time.monotonic()
        while True:
            status, body = self.api.call("DELETE", f"/v1/vms/{self.vm_id}", ok=(202, 404, 409))
            if status != 409:
                break
            # VM_BUSY: a task still works on it (a migration cut short by Ctrl-C).
            if time.monotonic() - t0 > TASK_TIMEOUT_S:
                raise BenchError(f"DELETE /v1/vms/{self.vm_id}: HTTP 409: {body}")
            time.sleep(0.2)
        if status == 202:
            self.api.wait_task(body["task"]["id"], t0)
        self.vm_id = None


# ---------------------------------------------------------------- report


def machine_facts():
    model = platform.processor() or "?"
    mem_gib = None
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    mem_gib = int(line.split()[1]) / (1 << 20)
    except OSError:
        pass
    return {"cpu_model": model, "cpus": os.cpu_count(),
            "ram_gib": round(mem_gib, 1) if mem_gib else None, "kernel": platform.release()}


def report(b, results):
    a = b.args
    m = machine_facts()
    date = time.strftime("%Y-%m-%d %H:%M %Z")
    out = []
    w = out.append
    w("")
    w(f"Nimbus live migration benchmark, {date}")
    w(f"machine: {m['cpus']} CPUs ({m['cpu_model']}), {m['ram_gib']} GiB RAM, "
      f"kernel {m['kernel']}; {b.facts.get('libvirt')}, {b.facts.get('hypervisor')}")
    w("hosts: kvm1, kvm2 = scripts/testhosts.sh (a libvirtd per network namespace on this "
      "machine, qemu+tcp);")
    w("       the disks are in one directory both see (shared storage, --unsafe)")
    w(f"guest: 1 vCPU / 256 MiB, TCG (--virt-type qemu, no KVM), the test image, idle after "
      f"{READY}; one guest at a time")
    w(f"load average {b.load_before[0]:.2f} before, {b.load_after[0]:.2f} after")
    w(f"N={a.count} migrations per side, alternating kvm1 -> kvm2 and back")
    w(f"per migration: Nimbus = POST /v1/vms/{{id}}/migrate -> task succeeded, polled every "
      f"{int(POLL_S * 1000)} ms;")
    w("               virsh  = virsh migrate --live --unsafe --persistent --undefinesource "
      "(process start to exit)")
    w("")
    hdr = f"{'seconds':<10} {'median':>8} {'min':>8} {'max':>8}"
    w(hdr)
    w("-" * len(hdr))
    for who in ("nimbus", "virsh"):
        xs = results[who]["seconds"]
        w(f"{'Nimbus' if who == 'nimbus' else 'virsh':<10} {statistics.median(xs):>8.3f} "
          f"{min(xs):>8.3f} {max(xs):>8.3f}")
    nmed = statistics.median(results["nimbus"]["seconds"])
    vmed = statistics.median(results["virsh"]["seconds"])
    w(f"ratio of the medians (Nimbus / virsh): {nmed / vmed:.2f}")
    w("")
    for who, label in (("nimbus", "Nimbus"), ("virsh", "virsh")):
        runs = "  ".join(f"{d} {s:.3f}" for d, s in zip(results[who]["directions"],
                                                       results[who]["seconds"]))
        w(f"{label:<7} each: {runs}")
    jobs = {who: [j for j in results[who]["job_ms"] if j is not None]
            for who in ("nimbus", "virsh")}
    if jobs["nimbus"] and jobs["virsh"]:
        w(f"libvirt's own job time (domjobinfo --completed on the destination), median: "
          f"Nimbus {statistics.median(jobs['nimbus']) / 1000:.3f} s, "
          f"virsh {statistics.median(jobs['virsh']) / 1000:.3f} s")
    ph = results["nimbus"]["phases"]
    parts = "  ".join(f"{k} {statistics.fmean(p[k] for p in ph):.3f}" for k in ph[0])
    w(f"Nimbus steps seen by polling the task (mean seconds): {parts}")
    print("\n".join(out), flush=True)
    if a.json:
        dump = dict(results)
        dump["date"] = date
        dump["machine"] = m
        dump["versions"] = b.facts
        dump["count"] = a.count
        dump["poll_ms"] = int(POLL_S * 1000)
        with open(a.json, "w") as f:
            json.dump(dump, f, indent=1)


# ---------------------------------------------------------------- main


def take_lock():
    """The test hosts' names are fixed: one user at a time, for the whole run. The file stays
    open (and locked) until the process exits; children do not inherit it (O_CLOEXEC)."""
    f = open(LOCK_PATH, "a")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        log(f"waiting for the exclusive lock on {LOCK_PATH} (another run uses the test hosts)")
        t0 = time.monotonic()
        fcntl.flock(f, fcntl.LOCK_EX)
        log(f"got the lock after {time.monotonic() - t0:.0f} s")
    return f


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--count", type=int, default=5,
                    help="migrations per side (default 5)")
    ap.add_argument("--nimbusd", default=os.path.join(REPO, "build", "src", "daemon", "nimbusd"))
    ap.add_argument("--json", metavar="FILE", help="also write the raw figures here")
    a = ap.parse_args()
    if a.count < 1:
        ap.error("--count must be at least 1")
    if os.geteuid() != 0:
        ap.error("must run as root (scripts/testhosts.sh, libvirt qemu:///system)")

    def on_term(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with it ignored
    try:
        lock = take_lock()
    except KeyboardInterrupt:
        log("interrupted while waiting for the lock")
        return 130
    b = None
    rc = 0
    try:
        b = Bench(a)
        results = b.run()
    except KeyboardInterrupt:
        log("interrupted")
        rc = 130
    except BenchError as e:
        log(f"error: {e}")
        if b:
            lines = b.daemon_lines(r"migrat")
            if lines:
                log("nimbusd's log lines about migration:\n" + lines)
            tail = b.daemon_tail()
            if tail:
                log("last lines of nimbusd's log:\n" + tail)
        rc = 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if b:
            log("cleaning up")
            b.cleanup()
        lock.close()
    if rc == 0:
        report(b, results)
    return rc


if __name__ == "__main__":
    sys.exit(main())
