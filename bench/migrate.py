#!/usr/bin/python3
"""Live migration benchmark: Nimbus API versus raw virsh migrate, on the same guest.

    bench/migrate.py [--count N] [--storage shared|local|rbd | --compare-storage] [--json FILE]

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

--storage picks where the guest's root disk is (the twin's disk is of the same kind):
  shared  the default, as above: nimbusd's pool in a temp dir both hosts see at the same path;
  local   nimbusd's pool under /var/lib/libvirt/images, which each host has to itself: Nimbus
          migrates with VIR_MIGRATE_NON_SHARED_INC (its own overlay on the destination), the twin
          with `virsh migrate --copy-storage-inc`, its overlay pre-created on the destination
          (outside the timing) and the source's removed afterwards (also outside);
  rbd     the root disk an RBD clone in an rbd pool on the test Ceph (scripts/test-ceph.sh, made
          through the API; the Ceph ports relayed into each host's namespace by the e2e tests'
          CephRelay); the twin's disk a `virsh vol-clone` of Nimbus's base image in the libvirt
          rbd pool; no storage copy, no --unsafe.  The clean-up also removes the rbd pool (and
          its libvirt pools and secrets), the relay, and, as Ceph's admin, any RBD image or
          snapshot of the run still there.
--compare-storage runs local, then rbd, with one daemon and one pair of hosts (one guest at a
time), and prints both side by side with the ratios rbd / local.
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

from benchlib import (CMD_TIMEOUT_S, POLL_S, TASK_TIMEOUT_S, BenchError, create_rbd_pool,
                      file_bytes, log, rbd_sweep, run, start_nimbusd, test_ceph_env,
                      twin_domain_xml, twin_rename)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TESTHOSTS = os.path.join(REPO, "scripts", "testhosts.sh")
LOCK_PATH = "/tmp/nimbus-testhosts.lock"

HOSTS = ("kvm1", "kvm2")
SUBNET = "10.77.0"
LOCAL_URI = "qemu:///system"
NS_PREFIX = "nbhost"  # scripts/testhosts.sh's network namespaces of set 0: nbhost1, nbhost2
LOCAL_POOL_ROOT = "/var/lib/libvirt/images"  # each test host's own (a bind mount per host)

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


def virsh_flags(storage):
    """The raw baseline's migrate options for each kind of storage."""
    return {"shared": ["--live", "--unsafe", "--persistent", "--undefinesource"],
            "local": ["--live", "--persistent", "--undefinesource", "--copy-storage-inc"],
            "rbd": ["--live", "--persistent", "--undefinesource"]}[storage]


def portable(xml):
    """What lets the twin move without Nimbus's help: its NICs on each host's own NAT network
    "default" (Nimbus's tenant network exists only on a host where one of its VMs runs, and the
    filters are Nimbus's; target device names, MTU and filter references go too), its VNC
    server on 0.0.0.0 (Nimbus's listens on the host's address and is rewritten for the
    destination in the migration's XML)."""
    root = ET.fromstring(xml)
    for g in root.findall("./devices/graphics"):
        if g.get("listen"):
            g.set("listen", "0.0.0.0")
        for lst in g.findall("listen"):
            if lst.get("address"):
                lst.set("address", "0.0.0.0")
    for nic in root.findall("./devices/interface"):
        nic.set("type", "network")
        for tag in ("source", "target", "mtu", "filterref"):
            for el in nic.findall(tag):
                nic.remove(el)
        ET.SubElement(nic, "source", {"network": "default"})
    return ET.tostring(root, encoding="unicode")


def job_ms(uri, domain):
    """Elapsed time of the last completed job (the migration) as the destination's libvirt
    recorded it, in ms; None if it does not say. Informational, read outside the timings."""
    p = run(["virsh", "-c", uri, "domjobinfo", "--completed", domain], check=False, timeout=30)
    m = re.search(r"^Time elapsed:\s+(\d+)\s*ms", p.stdout, re.M)
    return int(m.group(1)) if m else None


def allocation_mib(uri, path):
    """A volume's allocation on a host, in MiB (None if libvirt does not say): for a local
    disk after the move, the qcow2 overlay the migration filled, i.e. about what it copied."""
    p = run(["virsh", "-c", uri, "vol-info", "--bytes", path], check=False, timeout=30)
    m = re.search(r"^Allocation:\s+(\d+)", p.stdout, re.M)
    return int(m.group(1)) / 1048576 if m else None


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
        os.mkdir(self.state)
        os.chmod(self.state, 0o711)
        self.storages = ["local", "rbd"] if args.compare_storage else [args.storage]
        self.hosts_started = False
        self.daemon = None
        self.daemon_log = os.path.join(self.work, "nimbusd.log")
        self.pool_name = f"nimbus-bench-mig-{self.tag}"
        # local and rbd: nimbusd's default pool (images, seeds; local VMs' disks) in each host's
        # own /var/lib/libvirt; shared: in the work dir, which every host sees
        self.pool_path = None if self.storages == ["shared"] else \
            os.path.join(LOCAL_POOL_ROOT, self.pool_name)
        self.relay = None
        self.ceph = None
        self.rbd_pool = None
        self.api = None
        self.image_id = None
        self.flavor_id = None
        self.vm_id = None
        self.vm_ids = set()  # every Nimbus VM made: the clean-up looks for what they left
        self.twins = []  # every twin defined
        self.twin_vols = []  # (libvirt URI, pool, volume): the twins' disks in libvirt pools
        self.local_disk = None
        self.facts = {}

    def set_storage(self, storage):
        """The names and files of this storage's round (shared: as before --storage existed)."""
        self.storage = storage
        suffix = "" if storage == "shared" else f"-{storage}"
        self.twin = f"benchmig-{self.tag}{suffix}"
        self.twin_dir = os.path.join(self.work, f"twin{suffix}")
        os.mkdir(self.twin_dir)
        os.chmod(self.twin_dir, 0o711)
        self.twin_console = os.path.join(self.twin_dir, "console.log")

    # ------------------------------------------------------------ set-up

    def start_hosts(self):
        log("starting test hosts kvm1, kvm2 (scripts/testhosts.sh start 2)")
        self.hosts_started = True  # before: a half-made start is stopped too
        run([TESTHOSTS, "start", "2"], timeout=TESTHOSTS_TIMEOUT_S)
        out = virsh(host_uri("kvm1"), "version")
        for key, label in (("Using library", "libvirt"), ("Running hypervisor", "hypervisor")):
            m = re.search(rf"^{key}:\s*(.+)$", out, re.M)
            self.facts[label] = m.group(1).strip() if m else "?"

    def start_relay(self):
        """The test Ceph (127.0.0.1 of the root namespace) reachable at the same addresses from
        inside each host's namespace: the e2e tests' relay, imported, not copied."""
        self.ceph = test_ceph_env()
        sys.path.insert(0, os.path.join(REPO, "tests", "e2e"))
        from rbd_cluster import CephRelay, ceph_ports  # tests/e2e: the e2e tests' relay
        ports = ceph_ports()
        if 6789 not in ports:
            raise BenchError(f"the test Ceph's monitor does not listen on 6789: {ports}")
        self.relay = CephRelay([f"{NS_PREFIX}{i}" for i in range(1, len(HOSTS) + 1)], ports)
        log(f"Ceph ports {ports} relayed into {', '.join(HOSTS)}")

    def start_daemon(self):
        extra = ["--pool-path", self.pool_path] if self.pool_path else []  # the last one counts
        self.daemon, self.api = start_nimbusd(self.args.nimbusd, self.state, self.pool_name,
                                              self.daemon_log, extra, start_s=DAEMON_START_S)

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

    def create_rbd_pool(self):
        self.rbd_pool = create_rbd_pool(self.api, self.ceph, f"bench-mig-{self.tag}")
        states = {h["host"]: h["state"] for h in self.rbd_pool.get("hosts", [])}
        if any(states.get(h) != "active" for h in HOSTS):
            raise BenchError(f"the rbd pool is not active on every host: {states}")
        log(f"rbd pool {self.rbd_pool['id']} active on {', '.join(HOSTS)}")

    # ------------------------------------------------------------ Nimbus

    def create_vm(self):
        log(f"creating the Nimbus VM on kvm1 ({self.storage} storage)")
        req = {"name": f"bench-mig-{self.tag}", "image": self.image_id,
               "flavor": self.flavor_id, "host": "kvm1"}
        if self.storage == "rbd":
            req["pool"] = self.rbd_pool["id"]
        t0 = time.monotonic()
        _, body = self.api.call("POST", "/v1/vms", req)
        self.vm_id = body["vm"]["id"]
        self.vm_ids.add(self.vm_id)
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
        # (the store's host), 3 cleanup; nimbusd with tenant networks has 5: 0 prepare, 1 plug
        # (the VM's networks on the destination), 2 move, 3 switch, 4 cleanup. m[k]: k done.
        run_at = m.get("running", end)
        five = max((k for k in m if isinstance(k, int)), default=0) >= 5
        at = [m.get(k, end) for k in range(1, 4 if five else 3)]
        phases = {"api+queue": run_at - t0, "prepare": at[0] - run_at}
        if five:
            phases["plug"] = at[1] - at[0]
        phases.update({"move": at[-1] - at[-2], "switch+cleanup": end - at[-1]})
        return end - t0, phases

    def nimbus_runs(self):
        n = self.args.count
        out = {"seconds": [], "directions": [], "phases": [], "job_ms": [], "disk_mib": []}
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
            disk = None
            if self.storage == "local":
                disk = allocation_mib(host_uri(dest), os.path.join(
                    self.pool_path, f"vm-{self.vm_id}-disk.qcow2"))
            log(f"Nimbus {i + 1}/{n} {src} -> {dest}: {secs:.3f} s"
                + (f" (libvirt job {jm} ms)" if jm is not None else "")
                + (f" (overlay {disk:.1f} MiB)" if disk is not None else ""))
            out["seconds"].append(secs)
            out["directions"].append(f"{src}->{dest}")
            out["phases"].append(phases)
            out["job_ms"].append(jm)
            out["disk_mib"].append(disk)
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
        inactive = virsh(host_uri("kvm1"), "dumpxml", "--inactive", domain)
        if self.storage == "shared":
            xml, self.facts["image"] = twin_domain_xml(inactive, self.twin, self.twin_dir,
                                                       self.twin_console)
        else:
            xml = self.make_twin_xml(inactive)
        self.twin_xml = os.path.join(self.twin_dir, "domain.xml")
        with open(self.twin_xml, "w") as f:
            f.write(portable(xml))
        log(f"twin {self.twin} prepared (disk "
            f"{'a clone of' if self.storage == 'rbd' else 'overlay on'} {self.facts['image']})")

    def make_twin_xml(self, inactive):
        """twin_domain_xml for disks in each host's own pool or in Ceph: the same definition
        under the twin's name (no UUID, no metadata, a new MAC, its own serial log), its disk
        made through libvirt on kvm1 (local: a qcow2 overlay of the same image in the same pool;
        rbd: a vol-clone of Nimbus's base image), the seed ISO copied from kvm1 into the work
        dir, which every host sees (a read-only CD-ROM: no migration copies it)."""
        root = ET.fromstring(inactive)
        twin_rename(root, self.twin)
        seed = os.path.join(self.twin_dir, "seed.iso")
        disk = None
        for d in root.findall("./devices/disk"):
            src = d.find("source")
            if src is None:
                continue
            if d.get("device") == "disk" and self.storage == "local" and src.get("file"):
                disk = self.local_twin_disk(src.get("file"))
                src.set("file", disk)
            elif d.get("device") == "disk" and self.storage == "rbd" and \
                    src.get("protocol") == "rbd":
                disk = self.rbd_twin_disk(src.get("name"))
                src.set("name", disk)
            elif d.get("device") == "cdrom" and src.get("file"):
                run([TESTHOSTS, "exec", "1", "--", "cp", src.get("file"), seed])
                src.set("file", seed)
        if disk is None:
            raise BenchError(f"nimbus-{self.vm_id} has no {self.storage} root disk")
        mac = "52:54:00:%02x:%02x:%02x" % tuple(random.getrandbits(8) for _ in range(3))
        for m in root.findall("./devices/interface/mac"):
            m.set("address", mac)
        for lg in root.iter("log"):
            lg.set("file", self.twin_console)
        return ET.tostring(root, encoding="unicode")

    def local_twin_disk(self, path):
        """The twin's overlay, beside the Nimbus VM's disk in kvm1's pool; its path."""
        vol = ET.fromstring(virsh(host_uri("kvm1"), "vol-dumpxml", path))
        cap, backing = vol.findtext("capacity"), vol.findtext("backingStore/path")
        if not cap or not backing:
            raise BenchError(f"{path} on kvm1: no capacity or backing file")
        fmt = vol.find("backingStore/format")
        self.local_disk = (f"{self.twin}-disk.qcow2", cap.strip(), backing.strip(),
                           fmt.get("type") if fmt is not None else "qcow2")
        self.facts["image"] = backing.strip()
        self.create_overlay("kvm1")
        return os.path.join(os.path.dirname(path), self.local_disk[0])

    def create_overlay(self, host):
        name, cap, backing, fmt = self.local_disk
        uri = host_uri(host)
        self.twin_vols.append((uri, self.pool_name, name))
        virsh(uri, "vol-create-as", self.pool_name, name, cap, "--format", "qcow2",
              "--backing-vol", backing, "--backing-vol-format", fmt)

    def delete_overlay(self, host):
        entry = (host_uri(host), self.pool_name, self.local_disk[0])
        virsh(entry[0], "vol-delete", "--pool", entry[1], entry[2])
        self.twin_vols.remove(entry)

    def rbd_twin_disk(self, name):
        """A clone of Nimbus's base image in the libvirt rbd pool (as bench/storage_vms.py makes
        its raw guests' disks), as big as the VM's disk; its rbd name."""
        uri, lv = host_uri("kvm1"), self.rbd_pool["libvirt_name"]
        cpool, vm_disk = name.split("/", 1)
        virsh(uri, "pool-refresh", lv)
        cap = ET.fromstring(virsh(uri, "vol-dumpxml", "--pool", lv, vm_disk)).findtext("capacity")
        base = f"nimbus-image-{self.image_id}"
        self.facts["image"] = f"{cpool}/{base}"
        self.twin_vols.append((uri, lv, self.twin))
        virsh(uri, "vol-clone", "--pool", lv, base, self.twin)
        virsh(uri, "vol-resize", "--pool", lv, self.twin, cap.strip())
        return f"{cpool}/{self.twin}"

    def start_twin(self):
        log(f"defining and starting the twin {self.twin} on kvm1")
        self.twins.append(self.twin)  # before: a half-made define is removed too
        uri = host_uri("kvm1")
        virsh(uri, "define", self.twin_xml)
        virsh(uri, "start", self.twin)
        self.wait_ready(lambda: file_bytes(self.twin_console), f"twin {self.twin}")

    def virsh_runs(self):
        n = self.args.count
        out = {"seconds": [], "directions": [], "job_ms": [], "disk_mib": []}
        src = "kvm1"
        for i in range(n):
            dest = "kvm2" if src == "kvm1" else "kvm1"
            argv = ["virsh", "-c", host_uri(src), "migrate", *virsh_flags(self.storage),
                    self.twin, host_uri(dest)]
            if self.storage == "local":  # as Nimbus's prepare step does, but not timed
                self.create_overlay(dest)
            t0 = time.monotonic()
            run(argv, timeout=MIGRATE_TIMEOUT_S)
            secs = time.monotonic() - t0
            if self.storage == "local":  # as Nimbus's cleanup step does, but not timed
                self.delete_overlay(src)
            state = virsh(host_uri(dest), "domstate", self.twin).strip()
            if state != "running":
                raise BenchError(f"{self.twin} is '{state}' on {dest} after the migration")
            jm = job_ms(host_uri(dest), self.twin)
            disk = None
            if self.storage == "local":
                disk = allocation_mib(host_uri(dest),
                                      os.path.join(self.pool_path, self.local_disk[0]))
            log(f"virsh {i + 1}/{n} {src} -> {dest}: {secs:.3f} s"
                + (f" (libvirt job {jm} ms)" if jm is not None else "")
                + (f" (overlay {disk:.1f} MiB)" if disk is not None else ""))
            out["seconds"].append(secs)
            out["directions"].append(f"{src}->{dest}")
            out["job_ms"].append(jm)
            out["disk_mib"].append(disk)
            src = dest
            time.sleep(SETTLE_S)
        return out

    # ------------------------------------------------------------ the run

    def run(self):
        self.start_hosts()
        if "rbd" in self.storages:
            self.start_relay()
        self.start_daemon()
        self.add_hosts()
        self.upload_image_and_flavor()
        if "rbd" in self.storages:
            self.create_rbd_pool()
        results = {}
        for storage in self.storages:
            if results:  # the guests of the round before are gone: one guest at a time
                time.sleep(SETTLE_S)
            results[storage] = self.run_storage(storage)
        return results

    def run_storage(self, storage):
        self.set_storage(storage)
        self.create_vm()
        self.prepare_twin()
        load_before = os.getloadavg()
        results = {"nimbus": self.nimbus_runs()}
        self.stop_vm()
        self.start_twin()
        results["virsh"] = self.virsh_runs()
        results["load"] = [load_before[0], os.getloadavg()[0]]
        if len(self.storages) > 1:
            log(f"removing the {storage} twin and VM")
            self.remove_twin()
            self.delete_vm()
        return results

    def remove_twin(self):
        for uri in (host_uri(h) for h in HOSTS):
            virsh(uri, "destroy", self.twin, check=False)
            virsh(uri, "undefine", self.twin, check=False)
        for uri, pool, vol in list(self.twin_vols):
            virsh(uri, "vol-delete", "--pool", pool, vol)
            self.twin_vols.remove((uri, pool, vol))

    # ------------------------------------------------------------ clean-up

    def cleanup(self):
        uris = [host_uri(h) for h in HOSTS] if self.hosts_started else []

        def quiet(uri, *args):  # a clean-up step that fails must not stop the others
            try:
                virsh(uri, *args, check=False, timeout=30)
            except BenchError as e:
                log(f"clean-up: {e}")

        for twin in self.twins:
            for uri in uris:
                quiet(uri, "destroy", twin)
                quiet(uri, "undefine", twin)
        for uri, pool, vol in self.twin_vols:
            quiet(uri, "vol-delete", "--pool", pool, vol)
        if self.api and self.daemon and self.daemon.poll() is None:
            if self.vm_id:
                try:
                    self.delete_vm()
                except BenchError as e:
                    log(f"clean-up: deleting VM {self.vm_id}: {e}")
            for kind, rid in (("images", self.image_id), ("flavors", self.flavor_id),
                              ("pools", self.rbd_pool and self.rbd_pool["id"])):
                if rid:
                    try:
                        st, body = self.api.call("DELETE", f"/v1/{kind}/{rid}",
                                                 ok=(200, 202, 204, 404))
                        if st == 202 and body and "task" in body:
                            self.api.wait_task(body["task"]["id"], time.monotonic())
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
                if self.rbd_pool:
                    quiet(uri, "pool-destroy", self.rbd_pool["libvirt_name"])
                    quiet(uri, "pool-undefine", self.rbd_pool["libvirt_name"])
                    quiet(uri, "secret-undefine", self.rbd_pool["id"])
        if self.ceph:
            self.sweep_ceph()
        if self.relay:
            self.relay.close()
        if self.pool_path:  # the root namespace's (the hosts' go with them)
            shutil.rmtree(self.pool_path, ignore_errors=True)
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

    def sweep_ceph(self):
        """What Nimbus or libvirt left in the test Ceph of this run (none when all went well),
        removed as the cluster's admin: the clones first, the base image last."""
        conf, pool = self.ceph.get("CEPH_CONF"), self.ceph.get("NIMBUS_TEST_CEPH_POOL")
        ours = set(self.twins) | {t for _, _, t in self.twin_vols} | \
            {f"vm-{v}-disk" for v in self.vm_ids}
        if self.image_id:
            ours.add(f"nimbus-image-{self.image_id}")
        rbd_sweep(conf, pool, ours)

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


STORAGE_TEXT = {
    "shared": "the disks are in one directory both see (shared storage, --unsafe)",
    "local": "the disks are in each host's own pool (/var/lib/libvirt/images): a migration "
             "copies the disk",
    "rbd": "the root disks are RBD clones on the test Ceph (1 OSD on this machine, relayed "
           "into each host)",
}
STORAGE_MOVE = {
    "shared": "",
    "local": " (Nimbus: VIR_MIGRATE_NON_SHARED_INC, its overlay made on the destination in "
             "prepare; virsh: the overlay pre-created on the destination, not timed)",
    "rbd": " (no storage copy; the twin's disk a vol-clone of Nimbus's base)",
}


def medians(r):
    return {who: statistics.median(r[who]["seconds"]) for who in ("nimbus", "virsh")}


def job_median(r, who):
    js = [j for j in r[who]["job_ms"] if j is not None]
    return statistics.median(js) / 1000 if js else None


def report(b, results):
    a = b.args
    m = machine_facts()
    date = time.strftime("%Y-%m-%d %H:%M %Z")
    out = []
    w = out.append
    storages = list(results)
    w("")
    w(f"Nimbus live migration benchmark{', RBD against local storage' if a.compare_storage else ''}"
      f", {date}")
    w(f"machine: {m['cpus']} CPUs ({m['cpu_model']}), {m['ram_gib']} GiB RAM, "
      f"kernel {m['kernel']}; {b.facts.get('libvirt')}, {b.facts.get('hypervisor')}")
    w("hosts: kvm1, kvm2 = scripts/testhosts.sh (a libvirtd per network namespace on this "
      "machine, qemu+tcp);")
    for st in storages:
        w(f"       {st + ': ' if len(storages) > 1 else ''}{STORAGE_TEXT[st]}"
          f"{STORAGE_MOVE[st]}")
    w(f"guest: 1 vCPU / 256 MiB, TCG (--virt-type qemu, no KVM), the test image, idle after "
      f"{READY}; one guest at a time")
    for st in storages:
        ld = results[st]["load"]
        w(f"load average {ld[0]:.2f} before, {ld[1]:.2f} after"
          + (f" ({st})" if len(storages) > 1 else ""))
    w(f"N={a.count} migrations per side, alternating kvm1 -> kvm2 and back")
    w(f"per migration: Nimbus = POST /v1/vms/{{id}}/migrate -> task succeeded, polled every "
      f"{int(POLL_S * 1000)} ms;")
    for st in storages:
        w(f"               virsh  = virsh migrate {' '.join(virsh_flags(st))} (process start to "
          f"exit)" + (f" ({st})" if len(storages) > 1 else ""))
    w("")
    if len(storages) == 1:
        r = results[storages[0]]
        hdr = f"{'seconds':<10} {'median':>8} {'min':>8} {'max':>8}"
        w(hdr)
        w("-" * len(hdr))
        for who in ("nimbus", "virsh"):
            xs = r[who]["seconds"]
            w(f"{'Nimbus' if who == 'nimbus' else 'virsh':<10} {statistics.median(xs):>8.3f} "
              f"{min(xs):>8.3f} {max(xs):>8.3f}")
        med = medians(r)
        w(f"ratio of the medians (Nimbus / virsh): {med['nimbus'] / med['virsh']:.2f}")
    else:
        hdr = f"{'seconds':<10}" + "".join(
            f" {st + ' median':>13} {'min':>7} {'max':>7}" for st in storages) + \
            f" {'rbd/local':>10}"
        w(hdr)
        w("-" * len(hdr))
        for who in ("nimbus", "virsh"):
            line = f"{'Nimbus' if who == 'nimbus' else 'virsh':<10}"
            for st in storages:
                xs = results[st][who]["seconds"]
                line += f" {statistics.median(xs):>13.3f} {min(xs):>7.3f} {max(xs):>7.3f}"
            meds = [statistics.median(results[st][who]["seconds"]) for st in storages]
            w(line + f" {meds[1] / meds[0]:>10.2f}")
        for st in storages:
            med = medians(results[st])
            w(f"ratio of the medians (Nimbus / virsh), {st}: {med['nimbus'] / med['virsh']:.2f}")
    for st in storages:
        r = results[st]
        w("")
        if len(storages) > 1:
            w(f"{st}:")
        for who, label in (("nimbus", "Nimbus"), ("virsh", "virsh")):
            runs = "  ".join(f"{d} {s:.3f}" for d, s in zip(r[who]["directions"],
                                                           r[who]["seconds"]))
            w(f"{label:<7} each: {runs}")
        jn, jv = job_median(r, "nimbus"), job_median(r, "virsh")
        if jn is not None and jv is not None:
            w(f"libvirt's own job time (domjobinfo --completed on the destination), median: "
              f"Nimbus {jn:.3f} s, virsh {jv:.3f} s")
        disks = {who: [d for d in r[who]["disk_mib"] if d is not None]
                 for who in ("nimbus", "virsh")}
        if disks["nimbus"] or disks["virsh"]:
            w("the local disk's overlay on the destination after the move (vol-info "
              "allocation: about what was copied), median: "
              + ", ".join(f"{'Nimbus' if who == 'nimbus' else 'virsh'} "
                          f"{statistics.median(disks[who]):.1f} MiB"
                          for who in ("nimbus", "virsh") if disks[who]))
        ph = r["nimbus"]["phases"]
        parts = "  ".join(f"{k} {statistics.fmean(p[k] for p in ph):.3f}" for k in ph[0])
        w(f"Nimbus steps seen by polling the task (mean seconds): {parts}")
    print("\n".join(out), flush=True)
    if a.json:
        dump = dict(results[storages[0]]) if storages == ["shared"] else {"storage": results}
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
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--storage", choices=("shared", "local", "rbd"), default="shared",
                   help="where the root disks are (default shared: a directory both hosts see)")
    g.add_argument("--compare-storage", action="store_true",
                   help="local, then rbd, side by side, with the ratios rbd / local")
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
