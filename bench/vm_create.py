#!/usr/bin/python3
"""VM creation benchmark: Nimbus API versus the same work done with raw virsh.

    bench/vm_create.py [--count N] [--concurrency C] [--nics K] [--cli PATH]
                       [--keep-daemon-url URL --token T]

With --cli the Nimbus side runs `nimbus vm create --wait` (that CLI binary, a process per VM)
instead of POST /v1/vms and polling the task. The bench finds the task on GET /v1/events (a
stream of its own) and polls it meanwhile for the steps' split; "CLI after" is the time from the
task's `succeeded` event to the CLI's exit.

With --nics K > 1 every VM (both sides) gets K NICs, one on each of K isolated networks with
DHCP that the benchmark makes (10.249.<k>.0/24) and removes at the end.

Without --keep-daemon-url it starts its own nimbusd (TCG, private state dir and
storage pool), which it stops and removes again at the end.  Everything the
benchmark creates (domains, volumes, pool, image, flavor, files, the daemon) is
removed on success, failure and Ctrl-C.  It prints figures only: nothing here
asserts on timings.  See docs/benchmarks.md.
"""

import argparse
import datetime
import http.client
import json
import os
import platform
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import xml.etree.ElementTree as ET

from benchlib import (CMD_TIMEOUT_S, POLL_S, STOP, TASK_TIMEOUT_S, Agent, Api, BenchError,
                      Interrupted, log, run)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

DAEMON_START_S = 30
DAEMON_STOP_S = 15
JOIN_S = CMD_TIMEOUT_S + 30  # worker threads end within this after STOP is set


# ---------------------------------------------------------------- libvirt


class Virsh:
    def __init__(self, uri):
        self.uri = uri

    def __call__(self, *args, check=True, timeout=CMD_TIMEOUT_S):
        return run(["virsh", "-q", "-c", self.uri, *args], timeout=timeout, check=check).stdout


# ---------------------------------------------------------------- the task events (--cli)


class TaskEvents:
    """Reads GET /v1/events on a thread of its own: per task, the (state, step, event time) of
    each task event, and each VM's create task by the VM's name. A task that runs several
    steps in one turn is told once, so the steps' split comes from polling the task."""

    def __init__(self, api):
        self.api = api
        self.lock = threading.Lock()
        self.tasks = {}  # task id -> [(state, step, epoch)]
        self.by_target = {}  # VM id -> its vm.create task id
        self.by_name = {}  # VM name -> (VM id, task id), from the VM's events
        self.conn = None

    def start(self):
        self.conn = http.client.HTTPConnection(self.api.host, self.api.port, timeout=None)
        self.conn.request("GET", self.api.prefix + "/v1/events",
                          headers={"Authorization": f"Bearer {self.api.token}"})
        resp = self.conn.getresponse()
        if resp.status != 200:
            raise BenchError(f"GET /v1/events: HTTP {resp.status}")
        threading.Thread(target=self.loop, args=(resp,), daemon=True).start()

    def loop(self, resp):
        etype = None
        try:
            for raw in resp:
                line = raw.decode().rstrip("\n")
                if line.startswith("event: "):
                    etype = line[7:]
                elif line.startswith("data: ") and etype == "vm":
                    v = json.loads(line[6:])["object"]
                    if v.get("name") and v.get("task_id"):
                        with self.lock:
                            self.by_name.setdefault(v["name"], (v["id"], v["task_id"]))
                elif line.startswith("data: ") and etype == "task":
                    d = json.loads(line[6:])
                    t = d["object"]
                    at = datetime.datetime.strptime(d["time"], "%Y-%m-%dT%H:%M:%S.%fZ")
                    at = at.replace(tzinfo=datetime.timezone.utc).timestamp()
                    with self.lock:
                        self.tasks.setdefault(t["id"], []).append(
                            (t["state"], int(t.get("step") or 0), at))
                        if t.get("kind") == "vm.create":
                            self.by_target[t["target_id"]] = t["id"]
                elif not line:
                    etype = None
        except (OSError, ValueError, AttributeError, http.client.HTTPException):
            pass  # the stream closed at the end of the run

    def task_of(self, name):
        with self.lock:
            return self.by_name.get(name)

    def marks(self, vm_id):
        """'queued', 'running', step k (first time a step >= k was told) and 'succeeded', as
        event times (seconds since the epoch)."""
        with self.lock:
            evs = list(self.tasks.get(self.by_target.get(vm_id), []))
        m = {}
        for state, step, at in evs:
            m.setdefault("queued", at)
            if state in ("running", "succeeded", "failed"):
                m.setdefault("running", at)
            for k in range(step + 1):
                m.setdefault(k, at)
            if state in ("succeeded", "failed"):
                m.setdefault(state, at)
        return m

    def close(self):
        if self.conn:
            try:
                self.conn.sock.shutdown(2)
            except (OSError, AttributeError):
                pass
            self.conn.close()


# ---------------------------------------------------------------- what the run created


class Resources:
    """Everything to remove at the end. Entries are added before the thing is created."""

    def __init__(self):
        self.lock = threading.Lock()
        self.nimbus_vms = {}  # id -> name
        self.raw_domains = set()
        self.raw_filters = set()
        self.networks = []  # Nimbus network ids made by the benchmark (--nics)
        self.raw_vols = set()  # (pool, volume)
        self.image_id = None
        self.flavor_id = None

    def add(self, attr, item, value=None):
        with self.lock:
            target = getattr(self, attr)
            if isinstance(target, dict):
                target[item] = value
            else:
                target.add(item)

    def drop(self, attr, item):
        with self.lock:
            target = getattr(self, attr)
            if isinstance(target, dict):
                target.pop(item, None)
            else:
                target.discard(item)


# ---------------------------------------------------------------- workers


def run_many(fn, n, concurrency, threads):
    """fn(i) for i in range(n), `concurrency` at a time. Returns (results, wall seconds).
    Each worker's end Event goes into `threads` so that the clean-up can wait for them."""
    results = [None] * n
    errors = []
    nxt = iter(range(n))
    lock = threading.Lock()

    def worker(done):
        try:
            while not STOP.is_set():
                with lock:
                    i = next(nxt, None)
                if i is None:
                    return
                try:
                    results[i] = fn(i)
                except BaseException as e:  # noqa: B036 - reported by the main thread
                    errors.append(e)
                    STOP.set()
                    return
        finally:
            done.set()

    t0 = time.monotonic()
    # Completion is an Event, not Thread.join: a join cut short by Ctrl-C can leave the
    # thread looking finished while it still runs (CPython before 3.13).
    dones = [threading.Event() for _ in range(max(1, concurrency))]
    threads.extend(dones)
    for d in dones:
        threading.Thread(target=worker, args=(d,), daemon=True).start()
    for d in dones:
        while not d.wait(0.2):
            pass
    wall = time.monotonic() - t0
    if errors:
        raise errors[0]
    if STOP.is_set():
        raise Interrupted("interrupted")
    return results, wall


class Bench:
    def __init__(self, args):
        self.args = args
        self.virsh = Virsh(args.libvirt_uri)
        self.res = Resources()
        self.threads = []
        self.tag = "%06x" % random.getrandbits(24)
        self.work = tempfile.mkdtemp(prefix=f"nimbus-bench-{self.tag}-")
        # qemu runs as another user: it must be able to traverse down to the pool.
        os.chmod(self.work, 0o711)
        self.raw_dir = os.path.join(self.work, "raw")
        os.makedirs(os.path.join(self.raw_dir, "console"), mode=0o750)
        self.daemon = None
        self.daemon_log = None
        self.pool_name = None  # own daemon's pool (removed at the end)
        self.api = None
        self.events = None  # TaskEvents, with --cli
        self.rss = {}
        # filled from the warm-up VM
        self.pool = None
        self.pool_dir = None
        self.backing_path = None
        self.backing_format = None
        self.template = None
        self.agent = None  # benchlib.Agent, with --agent

    # ------------------------------------------------------------ set-up

    def ensure_libvirt(self):
        if self._virsh_ok():
            return
        if self.args.libvirt_uri == "qemu:///system":
            log("libvirtd does not answer: running scripts/start-libvirt.sh")
            run([os.path.join(REPO, "scripts", "start-libvirt.sh")], timeout=60)
        if not self._virsh_ok():
            raise BenchError(f"libvirt at {self.args.libvirt_uri} does not answer")

    def _virsh_ok(self):
        return run(["virsh", "-c", self.args.libvirt_uri, "version"], timeout=20,
                   check=False).returncode == 0

    def start_daemon(self):
        nimbusd = self.args.nimbusd
        if not os.access(nimbusd, os.X_OK):
            raise BenchError(f"{nimbusd} not found: build with 'ninja -C build'")
        state = os.path.join(self.work, "state")
        os.makedirs(state, mode=0o755)
        self.pool_name = f"nimbus-bench-{self.tag}"
        self.daemon_log = os.path.join(self.work, "nimbusd.log")
        argv = [nimbusd, "--listen", "127.0.0.1:0", "--state-dir", state,
                "--libvirt-uri", self.args.libvirt_uri, "--virt-type", "qemu",
                "--pool-name", self.pool_name, "--pool-path", os.path.join(state, "pool"),
                "--workers", str(self.args.workers),
                # Clear of the e2e daemons' pools (10.200-10.239) that may share the libvirtd.
                "--default-network-pool", "10.250.0.0/16"]
        if self.args.agent:
            # As scripts/aio.sh runs the all-in-one host: remote-group rules are ipsets.
            self.agent = Agent(self.args.nimbusd, self.tag, self.args.agent_port)
            argv += self.agent.start()
        with open(self.daemon_log, "wb") as errf:
            # Own session: a Ctrl-C in the terminal reaches us, not the daemon; we stop it.
            self.daemon = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                           stdout=subprocess.DEVNULL, stderr=errf,
                                           start_new_session=True)
        deadline = time.monotonic() + DAEMON_START_S
        url = None
        while url is None:
            if self.daemon.poll() is not None:
                raise BenchError(f"nimbusd exited with {self.daemon.returncode}:\n"
                                 + self.daemon_tail())
            if time.monotonic() > deadline or STOP.is_set():
                raise BenchError("nimbusd did not report its address:\n" + self.daemon_tail())
            with open(self.daemon_log, errors="replace") as f:
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
            token = f.read().strip()
        log(f"nimbusd pid {self.daemon.pid} at {url}, pool {self.pool_name}")
        time.sleep(1.0)  # settle: the start-up sync has run
        self.rss["idle"] = self.read_rss()
        return url, token

    def daemon_tail(self, n=20):
        if not self.daemon_log or not os.path.exists(self.daemon_log):
            return ""
        with open(self.daemon_log, errors="replace") as f:
            return "".join(f.readlines()[-n:])

    def read_rss(self):
        out = {}
        with open(f"/proc/{self.daemon.pid}/status") as f:
            for line in f:
                key, _, val = line.partition(":")
                if key in ("VmRSS", "VmHWM"):
                    out[key] = int(val.split()[0])  # kB
        return out

    def upload_image_and_flavor(self):
        image = os.path.join(self.work, "tiny.qcow2")
        log("building the test image")
        run([os.path.join(REPO, "scripts", "build-test-image.sh"), image], timeout=300)
        name = f"bench-{self.tag}"
        _, img = self.api.call("POST", "/v1/images", {"name": name})
        self.res.image_id = img["id"]
        with open(image, "rb") as f:
            data = f.read()
        self.api.call("PUT", f"/v1/images/{img['id']}/file", data=data)
        if self.daemon:
            # Its own daemon only: room for every VM of a mode (plus the warm-up) on this
            # host's CPUs, which the default ratio of 4 would not give a 2-core machine.
            self.api.call("PUT", "/v1/hosts/local", {"cpu_ratio": 32})
        _, fl = self.api.call("POST", "/v1/flavors",
                              {"name": name, "vcpus": 1, "ram_mib": 128, "disk_gib": 1})
        self.res.flavor_id = fl["id"]
        log(f"image {img['id']} ({len(data) >> 20} MiB) and flavor {fl['id']} ready")
        for k in range(self.args.nics if self.args.nics > 1 else 0):
            _, net = self.api.call("POST", "/v1/networks",
                                   {"name": f"bench-{self.tag}-n{k}", "type": "isolated",
                                    "cidr": f"10.249.{k}.0/24", "dhcp": True})
            self.res.networks.append(net["id"])
        if self.res.networks:
            log(f"{len(self.res.networks)} networks for {self.args.nics} NICs a VM")

    # ------------------------------------------------------------ Nimbus

    def nimbus_create(self, name):
        if self.args.cli and not name.endswith("-warmup"):
            return self.nimbus_create_cli(name)
        t0 = time.monotonic()
        req = {"name": name, "image": self.res.image_id, "flavor": self.res.flavor_id}
        if self.res.networks:
            req["networks"] = [{"network": n} for n in self.res.networks]
        _, body = self.api.call("POST", "/v1/vms", req)
        vm_id = body["vm"]["id"]
        self.res.add("nimbus_vms", vm_id, name)
        end, m = self.api.wait_task(body["task"]["id"], t0)
        # Create steps: 0 disk clone, 1 seed ISO + upload, 2 network + DHCP entry, 3 define,
        # 4 start.
        run_at = m.get("running", end)
        at = [m.get(k, end) for k in range(1, 5)]
        phases = {"api+queue": run_at - t0, "disk": at[0] - run_at, "seed": at[1] - at[0],
                  "network": at[2] - at[1], "define": at[3] - at[2], "start": end - at[3]}
        return {"id": vm_id, "seconds": end - t0, "phases": phases}

    def nimbus_create_cli(self, name):
        """`nimbus --json vm create NAME --image --flavor --wait`, a process of its own (it
        follows its task on the event stream). Meanwhile the task is polled like the API mode
        does, for the steps' split; 'CLI after' is from the task's succeeded event (its server
        time) to the CLI's exit."""
        argv = [self.args.cli, "--json", "vm", "create", name, "--image", self.res.image_id,
                "--flavor", self.res.flavor_id, "--wait"]
        for n in self.res.networks:
            argv += ["--network", n]
        w0 = time.time()
        t0 = time.monotonic()
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        polled = None
        try:
            while polled is None and p.poll() is None:
                if STOP.is_set():
                    raise Interrupted("interrupted")
                known = self.events.task_of(name)
                if known:
                    self.res.add("nimbus_vms", known[0], name)
                    polled = self.api.wait_task(known[1], t0)
                else:
                    time.sleep(0.005)
            out, err = p.communicate(timeout=CMD_TIMEOUT_S)
        except BaseException:
            p.kill()
            p.wait()
            raise
        end = time.monotonic()
        w_end = w0 + (end - t0)
        if p.returncode != 0:
            raise BenchError(f"{' '.join(argv)}: exit {p.returncode}: {err.strip()[:400]}")
        vm_id = json.loads(out)["id"]
        self.res.add("nimbus_vms", vm_id, name)
        # The task's last events may still be on their way to the bench's own stream.
        deadline = time.monotonic() + 5
        m = self.events.marks(vm_id)
        while "succeeded" not in m and time.monotonic() < deadline:
            time.sleep(0.01)
            m = self.events.marks(vm_id)
        done = m.get("succeeded", w_end)
        pend, pm = polled if polled else (end, {})
        run_at = pm.get("running", pend)
        at = [pm.get(k, pend) for k in range(1, 5)]
        phases = {"api+queue": run_at - t0, "disk": at[0] - run_at, "seed": at[1] - at[0],
                  "network": at[2] - at[1], "define": at[3] - at[2], "start": pend - at[3],
                  "CLI after": w_end - done}
        return {"id": vm_id, "seconds": end - t0, "phases": phases}

    def nimbus_delete(self, vm_id, busy_wait_s=0):
        t0 = time.monotonic()
        while True:
            status, body = self.api.call("DELETE", f"/v1/vms/{vm_id}", ok=(202, 404, 409))
            if status != 409:
                break
            # VM_BUSY: a task still works on it (e.g. a delete cut short by Ctrl-C).
            if time.monotonic() - t0 > busy_wait_s:
                raise BenchError(f"DELETE /v1/vms/{vm_id}: HTTP 409: {body}")
            time.sleep(0.2)
        if status == 202:
            end, _ = self.api.wait_task(body["task"]["id"], t0)
        else:
            end = time.monotonic()
        self.res.drop("nimbus_vms", vm_id)
        return end - t0

    def nimbus_mode(self, label, concurrency):
        n = self.args.count
        log(f"Nimbus {label}: {n} VMs, {concurrency} in flight")
        names = [f"bench-{self.tag}-{label[:3]}-{i}" for i in range(n)]
        created, wall = run_many(lambda i: self.nimbus_create(names[i]), n, concurrency,
                                 self.threads)
        log(f"Nimbus {label}: created in {wall:.2f} s; deleting")
        deleted, del_wall = run_many(lambda i: self.nimbus_delete(created[i]["id"]), n,
                                     concurrency, self.threads)
        return {"create": [c["seconds"] for c in created], "wall": wall,
                "phases": [c["phases"] for c in created], "delete": deleted,
                "delete_wall": del_wall}

    def warm_up(self):
        """One Nimbus VM, not measured: warms the caches and gives the pool, the image
        volume, the network and the domain XML the raw virsh runs copy. It stays (stopped) until
        the end, so that its project's network stays on the host for both sides: Nimbus makes a
        network on a host with its first VM there, which neither side's figures include."""
        log("warm-up VM (not measured)")
        vm = self.nimbus_create(f"bench-{self.tag}-warmup")
        domain = f"nimbus-{vm['id']}"
        xml = self.virsh("dumpxml", "--inactive", domain)
        root = ET.fromstring(xml)
        disk_path = None
        for disk in root.findall("./devices/disk"):
            if disk.get("device") == "disk":
                disk_path = disk.find("source").get("file")
        if not disk_path:
            raise BenchError(f"no disk in the XML of {domain}")
        self.pool = self.virsh("vol-pool", disk_path).strip()
        pool_xml = ET.fromstring(self.virsh("pool-dumpxml", self.pool))
        self.pool_dir = pool_xml.find("./target/path").text
        vol_xml = ET.fromstring(self.virsh("vol-dumpxml", disk_path))
        backing = vol_xml.find("./backingStore")
        if backing is None:
            raise BenchError(f"{disk_path} has no backing store")
        self.backing_path = backing.find("path").text
        fmt = backing.find("format")
        self.backing_format = fmt.get("type") if fmt is not None else "qcow2"
        self.template = xml
        # Each NIC's network and the first three octets of its subnet, in the domain's order.
        self.nets = []
        for iface in root.findall("./devices/interface"):
            net = iface.find("source").get("network")
            net_ip = ET.fromstring(self.virsh("net-dumpxml", net)).find("ip")
            self.nets.append((net, net_ip.get("address").rsplit(".", 1)[0]))
        self.raw_ips = iter(range(100, 250))
        self.raw_ip_of = {}
        _, task = self.api.call("POST", f"/v1/vms/{vm['id']}/stop", {"force": True})
        self.api.wait_task(task["task"]["id"], time.monotonic())
        log(f"pool {self.pool} ({self.pool_dir}), image volume {self.backing_path}, "
            f"networks {', '.join(n for n, _ in self.nets)}")

    # ------------------------------------------------------------ raw virsh

    def raw_filter(self, name, k, template_filter, mac, ip):
        """What Nimbus does for a port's security: its own nwfilter (a copy of the warm-up
        port's, under a new name) with the NIC's MAC and IP as parameters."""
        root = ET.fromstring(self.virsh("nwfilter-dumpxml", template_filter))
        fname = f"{name}-nic{k}"
        root.set("name", fname)
        u = root.find("uuid")
        if u is not None:
            root.remove(u)
        path = os.path.join(self.raw_dir, f"{fname}.xml")
        with open(path, "w") as f:
            f.write(ET.tostring(root, encoding="unicode"))
        self.res.add("raw_filters", fname)
        self.virsh("nwfilter-define", path)
        os.unlink(path)
        return fname

    def raw_domain_xml(self, name, dom_uuid, disk, seed, nics, console):
        root = ET.fromstring(self.template)
        root.find("name").text = name
        root.find("uuid").text = dom_uuid
        title = root.find("title")
        if title is not None:
            title.text = name
        # Nimbus's metadata would make a Nimbus daemon take the domain for one of its own.
        meta = root.find("metadata")
        if meta is not None:
            root.remove(meta)
        for d in root.findall("./devices/disk"):
            src = d.find("source")
            if d.get("device") == "disk":
                src.set("file", disk)
            elif d.get("device") == "cdrom":
                src.set("file", seed)
        for k, iface in enumerate(root.findall("./devices/interface")):
            mac, ip = nics[k]
            iface.find("mac").set("address", mac)
            target = iface.find("target")  # Nimbus's tap name is its port's
            if target is not None:
                iface.remove(target)
            fref = iface.find("filterref")
            if fref is not None:
                fref.set("filter", self.raw_filter(name, k, fref.get("filter"), mac, ip))
                for param in fref.findall("parameter"):
                    if param.get("name") == "IP":
                        param.set("value", ip)
                    elif param.get("name") == "MAC":
                        param.set("value", mac)
        for lg in root.iter("log"):
            lg.set("file", console)
        return ET.tostring(root, encoding="unicode")

    def raw_create(self, label, i):
        name = f"benchraw-{self.tag}-{label[:3]}-{i}"
        disk_vol, seed_vol = f"{name}-disk.qcow2", f"{name}-seed.iso"
        disk_path = os.path.join(self.pool_dir, disk_vol)
        seed_path = os.path.join(self.pool_dir, seed_vol)
        dom_uuid = str(uuid.uuid4())
        host_part = next(self.raw_ips)
        nics = [("52:54:00:%02x:%02x:%02x" % tuple(random.getrandbits(8) for _ in range(3)),
                 f"{prefix}.{host_part}") for _, prefix in self.nets]
        tmp = tempfile.mkdtemp(prefix=f"{name}-", dir=self.raw_dir)
        iso = os.path.join(tmp, "seed.iso")
        self.res.add("raw_vols", (self.pool, disk_vol))
        self.res.add("raw_vols", (self.pool, seed_vol))
        self.res.add("raw_domains", name)
        v = self.virsh

        t0 = time.monotonic()
        v("vol-create-as", self.pool, disk_vol, "1G", "--format", "qcow2",
          "--backing-vol", self.backing_path, "--backing-vol-format", self.backing_format)
        t1 = time.monotonic()
        # The same NoCloud seed Nimbus writes (see src/core/seed.c), built the same way.
        netcfg = "version: 2\nethernets:\n" + "".join(
            f"  eth{k}:\n    match:\n      macaddress: \"{mac}\"\n    set-name: eth{k}\n"
            f"    addresses: [{ip}/24]\n" for k, (mac, ip) in enumerate(nics))
        files = {"user-data": "#cloud-config\n{}\n",
                 "meta-data": f"instance-id: {dom_uuid}\nlocal-hostname: {name}\n",
                 "network-config": netcfg}
        for fname, content in files.items():
            with open(os.path.join(tmp, fname), "w") as f:
                f.write(content)
        run(["genisoimage", "-quiet", "-output", iso, "-volid", "cidata", "-joliet", "-rock",
             "-input-charset", "utf-8"] + [os.path.join(tmp, f) for f in files])
        t2 = time.monotonic()
        v("vol-create-as", self.pool, seed_vol, str(os.path.getsize(iso)), "--format", "raw")
        v("vol-upload", "--pool", self.pool, seed_vol, iso)
        t3 = time.monotonic()
        xml_path = os.path.join(tmp, "domain.xml")
        with open(xml_path, "w") as f:
            f.write(self.raw_domain_xml(name, dom_uuid, disk_path, seed_path, nics,
                                        os.path.join(self.raw_dir, "console", f"{name}.log")))
        # What Nimbus does for a VM's fixed addresses: a static DHCP entry in each network.
        self.raw_ip_of[name] = nics
        for (net, _), (mac, ip) in zip(self.nets, nics):
            v("net-update", net, "add-last", "ip-dhcp-host", f"<host mac='{mac}' ip='{ip}'/>",
              "--live", "--config")
        t4 = time.monotonic()
        v("create", xml_path)
        t5 = time.monotonic()
        shutil.rmtree(tmp, ignore_errors=True)
        return {"name": name, "seconds": t5 - t0,
                "phases": {"disk": t1 - t0, "genisoimage": t2 - t1, "seed upload": t3 - t2,
                           "dhcp entry": t4 - t3, "create": t5 - t4}}

    def raw_delete(self, name):
        t0 = time.monotonic()
        self.virsh("destroy", name)
        self.res.drop("raw_domains", name)
        for (net, _), (mac, ip) in zip(self.nets, self.raw_ip_of.pop(name)):
            self.virsh("net-update", net, "delete", "ip-dhcp-host",
                       f"<host mac='{mac}' ip='{ip}'/>", "--live", "--config")
        for k in range(len(self.nets)):
            if f"{name}-nic{k}" in self.res.raw_filters:
                self.virsh("nwfilter-undefine", f"{name}-nic{k}")
                self.res.drop("raw_filters", f"{name}-nic{k}")
        for vol in (f"{name}-disk.qcow2", f"{name}-seed.iso"):
            self.virsh("vol-delete", "--pool", self.pool, vol)
            self.res.drop("raw_vols", (self.pool, vol))
        t1 = time.monotonic()
        try:
            os.unlink(os.path.join(self.raw_dir, "console", f"{name}.log"))
        except FileNotFoundError:
            pass
        return t1 - t0

    def raw_mode(self, label, concurrency):
        n = self.args.count
        log(f"raw virsh {label}: {n} VMs, {concurrency} in flight")
        created, wall = run_many(lambda i: self.raw_create(label, i), n, concurrency,
                                 self.threads)
        log(f"raw virsh {label}: created in {wall:.2f} s; deleting")
        deleted, del_wall = run_many(lambda i: self.raw_delete(created[i]["name"]), n,
                                     concurrency, self.threads)
        return {"create": [c["seconds"] for c in created], "wall": wall,
                "phases": [c["phases"] for c in created], "delete": deleted,
                "delete_wall": del_wall}

    # ------------------------------------------------------------ the run

    def run(self):
        self.ensure_libvirt()
        if self.args.keep_daemon_url:
            self.api = Api(self.args.keep_daemon_url, self.args.token)
        else:
            self.api = Api(*self.start_daemon())
        if self.args.cli:
            os.environ["NIMBUS_URL"] = self.api.base
            os.environ["NIMBUS_TOKEN"] = self.api.token
            self.events = TaskEvents(self.api)
            self.events.start()
        self.foreign = len(self.virsh("list", "--name").split())
        self.load_before = os.getloadavg()
        self.upload_image_and_flavor()
        self.warm_up()
        results = {}
        c = self.args.concurrency
        # Interleaved so that each pair runs under the same background load.
        results["nimbus", "sequential"] = self.nimbus_mode("sequential", 1)
        results["virsh", "sequential"] = self.raw_mode("sequential", 1)
        results["nimbus", "concurrent"] = self.nimbus_mode("concurrent", c)
        results["virsh", "concurrent"] = self.raw_mode("concurrent", c)
        if self.daemon:
            self.rss["end"] = self.read_rss()
        self.load_after = os.getloadavg()
        return results

    # ------------------------------------------------------------ clean-up

    def cleanup(self):
        STOP.set()
        deadline = time.monotonic() + JOIN_S
        for done in self.threads:
            done.wait(max(0.0, deadline - time.monotonic()))
        STOP.clear()  # the clean-up below polls tasks too
        if self.events:
            self.events.close()
        v = self.virsh
        for name in sorted(self.res.raw_domains):
            v("destroy", name, check=False)
        for pool, vol in sorted(self.res.raw_vols):
            v("vol-delete", "--pool", pool, vol, check=False)
        for fname in sorted(self.res.raw_filters):
            v("nwfilter-undefine", fname, check=False)
        if self.api and (self.daemon is None or self.daemon.poll() is None):
            # A CLI cut short made a VM whose id the bench never read (secgroups.py has no --cli).
            if getattr(self.args, "cli", None):
                try:
                    _, page = self.api.call("GET", "/v1/vms?limit=1000")
                    for vm in page.get("vms", []):
                        if vm["name"].startswith(f"bench-{self.tag}-"):
                            self.res.add("nimbus_vms", vm["id"], vm["name"])
                except BenchError as e:
                    log(f"clean-up: listing VMs: {e}")
            for vm_id in list(self.res.nimbus_vms):
                try:
                    self.nimbus_delete(vm_id, busy_wait_s=TASK_TIMEOUT_S)
                except BenchError as e:
                    log(f"clean-up: deleting VM {vm_id}: {e}")
            for net in self.res.networks:
                try:
                    self.api.call("DELETE", f"/v1/networks/{net}", ok=(204, 404))
                except BenchError as e:
                    log(f"clean-up: deleting network {net}: {e}")
            for kind, rid in (("images", self.res.image_id), ("flavors", self.res.flavor_id)):
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
                    self.daemon.kill()
                    self.daemon.wait(5)
            # Whatever Nimbus did not get to delete: its domains, then its whole pool.
            for vm_id in list(self.res.nimbus_vms):
                v("destroy", f"nimbus-{vm_id}", check=False)
                v("undefine", f"nimbus-{vm_id}", check=False)
            if self.pool_name:
                vols = v("vol-list", "--pool", self.pool_name, check=False)
                for line in vols.splitlines():
                    if line.split():
                        v("vol-delete", "--pool", self.pool_name, line.split()[0], check=False)
                v("pool-destroy", self.pool_name, check=False)
                v("pool-undefine", self.pool_name, check=False)
        elif self.res.nimbus_vms:
            log("clean-up: VMs left on the daemon: " + ", ".join(self.res.nimbus_vms))
        if self.agent:
            self.agent.stop()
        shutil.rmtree(self.work, ignore_errors=True)


# ---------------------------------------------------------------- report


def p95(xs):
    if len(xs) < 2:
        return xs[0]
    return statistics.quantiles(xs, n=20, method="inclusive")[18]


def machine_label():
    model = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{os.cpu_count()} cores ({model}), TCG guests (--virt-type qemu, no KVM)"


def report(b, results):
    a = b.args
    out = []
    w = out.append
    w("")
    w(f"Nimbus VM create benchmark, {time.strftime('%Y-%m-%d %H:%M %Z')}")
    w(f"machine: {machine_label()}")
    w(f"NOTE: guests are TCG (software emulation) on a {os.cpu_count()}-core machine; the running guests")
    w("      compete with nimbusd and libvirtd for CPU. Figures are for comparison, not absolute.")
    w(f"N={a.count} VMs per mode, concurrency C={a.concurrency}, nimbusd workers={a.workers}; "
      f"flavor 1 vCPU / 128 MiB / 1 GiB; {len(b.nets)} NIC(s) a VM")
    w(f"other domains already running on this libvirtd: {b.foreign}; load average "
      f"{b.load_before[0]:.2f} before, {b.load_after[0]:.2f} after")
    if a.cli:
        w("per VM: Nimbus = `nimbus vm create --wait` (a process, following its task on the event "
          "stream) from exec to exit; split by polling the task meanwhile")
    else:
        w("per VM: Nimbus = POST /v1/vms -> task succeeded (domain running), polled every "
          f"{int(POLL_S * 1000)} ms;")
    w("        virsh  = vol-create-as (linked clone) + genisoimage + vol-create-as + vol-upload "
      "(seed) + net-update (DHCP entry, each NIC) + nwfilter-define (each NIC, when Nimbus "
      "filters ports) + virsh create")
    w("")
    hdr = (f"{'mode':<12} {'Nimbus med':>10} {'p95':>7} {'virsh med':>10} {'p95':>7} "
           f"{'ratio med':>10} {'p95':>7}")
    w("create, seconds per VM")
    w(hdr)
    w("-" * len(hdr))
    for mode in ("sequential", "concurrent"):
        nm, vr = results["nimbus", mode]["create"], results["virsh", mode]["create"]
        nmed, vmed, n95, v95 = statistics.median(nm), statistics.median(vr), p95(nm), p95(vr)
        w(f"{mode:<12} {nmed:>10.3f} {n95:>7.3f} {vmed:>10.3f} {v95:>7.3f} "
          f"{nmed / vmed:>10.2f} {n95 / v95:>7.2f}")
    nw, vw = results["nimbus", "concurrent"]["wall"], results["virsh", "concurrent"]["wall"]
    w(f"concurrent wall-clock total for {a.count} VMs: Nimbus {nw:.2f} s, virsh {vw:.2f} s, "
      f"ratio {nw / vw:.2f}")
    w("")
    w("delete, seconds per VM (Nimbus DELETE -> task done; virsh destroy + 2 vol-delete)")
    for mode in ("sequential", "concurrent"):
        nd, vd = results["nimbus", mode]["delete"], results["virsh", mode]["delete"]
        w(f"{mode:<12} Nimbus median {statistics.median(nd):.3f}  virsh median "
          f"{statistics.median(vd):.3f}")
    w("")
    w("where the time goes (mean seconds per VM; Nimbus steps seen by polling the task"
      + ("; CLI after: from the task's succeeded event to the CLI's exit)" if a.cli else ")"))
    for mode in ("sequential", "concurrent"):
        for who in ("nimbus", "virsh"):
            ph = results[who, mode]["phases"]
            parts = "  ".join(f"{k} {statistics.fmean(p[k] for p in ph):.3f}" for k in ph[0])
            w(f"{mode:<12} {who:<7} {parts}")
    w("")
    if b.daemon:
        idle, end = b.rss["idle"], b.rss["end"]
        w(f"nimbusd RSS: idle after start-up {idle['VmRSS'] / 1024:.1f} MiB; "
          f"peak (VmHWM at the end) {end['VmHWM'] / 1024:.1f} MiB; "
          f"at the end {end['VmRSS'] / 1024:.1f} MiB")
    else:
        w("nimbusd RSS: n/a (external daemon, --keep-daemon-url)")
    print("\n".join(out), flush=True)
    if a.json:
        dump = {f"{who}/{mode}": r for (who, mode), r in results.items()}
        dump["rss_kib"] = b.rss
        dump["machine"] = machine_label()
        with open(a.json, "w") as f:
            json.dump(dump, f, indent=1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--count", type=int, default=10, help="VMs per mode (default 10)")
    ap.add_argument("--concurrency", type=int, default=4, help="in flight (default 4)")
    ap.add_argument("--keep-daemon-url", metavar="URL",
                    help="use this running nimbusd instead of starting one")
    ap.add_argument("--token", help="its bearer token (with --keep-daemon-url)")
    ap.add_argument("--nimbusd", default=os.path.join(REPO, "build", "src", "daemon", "nimbusd"))
    ap.add_argument("--libvirt-uri", default="qemu:///system")
    ap.add_argument("--workers", type=int, default=4, help="nimbusd --workers (default 4)")
    ap.add_argument("--nics", type=int, default=1, help="NICs a VM, 1-8 (default 1)")
    ap.add_argument("--json", metavar="FILE", help="also write the raw figures here")
    ap.add_argument("--cli", metavar="PATH",
                    help="create through this `nimbus` binary's `vm create --wait`")
    ap.add_argument("--agent", action="store_true",
                    help="give the host a nimbus-agent, as scripts/aio.sh does: remote-group "
                    "rules as ipsets (without: member filters)")
    ap.add_argument("--agent-port", type=int, default=18775, help="its port (default 18775)")
    a = ap.parse_args()
    if a.count < 1 or a.concurrency < 1 or a.workers < 1:
        ap.error("--count, --concurrency and --workers must be at least 1")
    if not 1 <= a.nics <= 8:
        ap.error("--nics must be from 1 to 8")
    if bool(a.keep_daemon_url) != bool(a.token):
        ap.error("--keep-daemon-url and --token go together")

    def on_term(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with it ignored
    b = Bench(a)
    rc = 0
    try:
        results = b.run()
    except KeyboardInterrupt:
        log("interrupted")
        rc = 130
    except BenchError as e:
        log(f"error: {e}")
        tail = b.daemon_tail()
        if tail:
            log("last lines of nimbusd's log:\n" + tail)
        rc = 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        log("cleaning up")
        b.cleanup()
    if rc == 0:
        report(b, results)
    return rc


if __name__ == "__main__":
    sys.exit(main())
