"""What the benchmarks share: errors, logging, the Nimbus API client and command runner.
Python 3 standard library only."""

import http.client
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid
import xml.etree.ElementTree as ET

POLL_S = 0.02  # task polling interval: the resolution of every Nimbus figure
HTTP_TIMEOUT_S = 30
CMD_TIMEOUT_S = 120
TASK_TIMEOUT_S = 300  # one task (create, stop, delete, migrate)
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

STOP = threading.Event()  # Ctrl-C, SIGTERM or a failed worker: stop taking new work


class BenchError(Exception):
    pass


class Interrupted(BenchError):
    pass


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class Api:
    """One persistent HTTP/1.1 connection per thread: nimbusd serves each connection with a
    thread of its own, so a fresh connection per poll would cost it a thread each time."""

    def __init__(self, base, token):
        u = urllib.parse.urlsplit(base)
        if u.scheme != "http" or not u.hostname:
            raise BenchError(f"{base}: only http://HOST:PORT is supported")
        self.base = base.rstrip("/")
        self.host, self.port = u.hostname, u.port or 80
        self.prefix = u.path.rstrip("/")
        self.token = token
        self.local = threading.local()

    def _conn(self):
        c = getattr(self.local, "conn", None)
        if c is None:
            c = self.local.conn = http.client.HTTPConnection(self.host, self.port,
                                                             timeout=HTTP_TIMEOUT_S)
        return c

    def call(self, method, path, body=None, data=None, ok=(200, 201, 202, 204), raw=False):
        """(status, parsed JSON or None); with raw, (status, bytes)."""
        headers = {"Authorization": f"Bearer {self.token}"}
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        elif data is not None:
            headers["Content-Type"] = "application/octet-stream"
        for attempt in (0, 1):
            c = self._conn()
            try:
                c.request(method, self.prefix + path, body=data, headers=headers)
                resp = c.getresponse()
                status, payload = resp.status, resp.read()
                if resp.will_close:
                    self._drop()
                break
            except (http.client.HTTPException, OSError) as e:
                self._drop()
                # A kept-alive connection the server closed meanwhile: one retry, for
                # requests that are safe to repeat.
                if attempt or method not in ("GET", "DELETE"):
                    raise BenchError(f"{method} {path}: {e}") from None
        if status not in ok:
            raise BenchError(f"{method} {path}: HTTP {status}: "
                             f"{payload[:300].decode(errors='replace')}")
        if raw:
            return status, payload
        return status, (json.loads(payload) if payload else None)

    def _drop(self):
        c = getattr(self.local, "conn", None)
        self.local.conn = None
        if c is not None:
            c.close()

    def wait_task(self, task_id, t0, deadline_s=TASK_TIMEOUT_S):
        """Polls a task to its end. Returns (end, marks): marks['running'] and marks[k] (first
        time step >= k was seen) as monotonic times, for the per-step breakdown."""
        marks = {}
        deadline = t0 + deadline_s
        while True:
            if STOP.is_set():
                raise Interrupted("interrupted")
            status, t = self.call("GET", f"/v1/tasks/{task_id}", ok=(200, 404))
            now = time.monotonic()
            if status == 404:  # finished and gone: counts as done
                return now, marks
            if t["state"] in ("running", "succeeded", "failed"):
                marks.setdefault("running", now)
            for k in range(int(t.get("step") or 0) + 1):
                marks.setdefault(k, now)
            if t["state"] == "succeeded":
                return now, marks
            if t["state"] == "failed":
                err = t.get("error") or {}
                raise BenchError(f"task {task_id} ({t.get('kind')}) failed at step "
                                 f"{t.get('step')}: {err.get('code')}: {err.get('message')}")
            if now > deadline:
                raise BenchError(f"task {task_id} still {t['state']} after {deadline_s} s")
            time.sleep(POLL_S)


def run(argv, timeout=CMD_TIMEOUT_S, check=True, inp=None):
    """Runs a command (stdin: inp, or nothing); BenchError on timeout or, with check, on a
    non-zero exit."""
    try:
        p = subprocess.run(argv, input=inp, stdin=None if inp is not None else subprocess.DEVNULL,
                           capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise BenchError(f"{' '.join(argv)}: no answer after {timeout} s") from None
    if check and p.returncode != 0:
        raise BenchError(f"{' '.join(argv)}: exit {p.returncode}: {p.stderr.strip()[:400]}")
    return p


class Workdir:
    """A bench's private files: work (0711, so that QEMU reaches the disks below it), state
    (nimbusd's --state-dir), log_path (nimbusd's stderr), a random tag for the names it makes and
    pool, the name of nimbusd's own libvirt pool ("nimbus-bench-<kind>-<tag>")."""

    def __init__(self, kind):
        self.tag = uuid.uuid4().hex[:6]
        self.work = tempfile.mkdtemp(prefix=f"nimbus-bench-{kind}-")
        os.chmod(self.work, 0o711)
        self.state = os.path.join(self.work, "state")
        os.mkdir(self.state)
        self.pool = f"nimbus-bench-{kind}-{self.tag}"
        self.log_path = os.path.join(self.work, "nimbusd.log")


def upload_test_image(api, work, name):
    """Builds the tiny test guest (scripts/build-test-image.sh) into work and uploads it as the
    image name; returns the image's id."""
    image = os.path.join(work, "tiny.qcow2")
    log("building the test image")
    run([os.path.join(REPO, "scripts", "build-test-image.sh"), image], timeout=300)
    _, img = api.call("POST", "/v1/images", {"name": name})
    with open(image, "rb") as f:
        api.call("PUT", f"/v1/images/{img['id']}/file", data=f.read())
    return img["id"]


def create_flavor(api, name, ram_mib=128, **extra):
    """A 1-vCPU, 1-GiB-disk flavor (extra: more of its fields); returns its id."""
    _, fl = api.call("POST", "/v1/flavors", {"name": name, "vcpus": 1, "ram_mib": ram_mib,
                                             "disk_gib": 1, **extra})
    return fl["id"]


def create_tiny_vm(api, name, image_id):
    """A flavor name (create_flavor's) and a VM name of it from image_id, waited for until it
    runs; returns (flavor id, VM id)."""
    flavor = create_flavor(api, name)
    _, r = api.call("POST", "/v1/vms", {"name": name, "image": image_id, "flavor": flavor})
    api.wait_task(r["task"]["id"], time.monotonic())
    log(f"VM {r['vm']['id']} running")
    return flavor, r["vm"]["id"]


def teardown(api, daemon, ids, pool, work, libvirt_uri="qemu:///system"):
    """A bench's clean-up: through the API while its nimbusd runs, the VM, image and flavor of
    ids ("vms", "images", "flavors": create_tiny_vm's and upload_test_image's); then the daemon
    (stop_nimbusd), what libvirt may still have of the VM and of the pool, and the work dir."""
    if api and daemon and daemon.poll() is None:
        if "vms" in ids:
            try:
                _, r = api.call("DELETE", f"/v1/vms/{ids['vms']}", ok=(202, 404))
                if r and "task" in r:
                    api.wait_task(r["task"]["id"], time.monotonic())
            except BenchError as e:
                log(f"clean-up: deleting the VM: {e}")
        for kind in ("images", "flavors"):
            if kind in ids:
                try:
                    api.call("DELETE", f"/v1/{kind}/{ids[kind]}", ok=(200, 202, 204, 404))
                except BenchError as e:
                    log(f"clean-up: deleting {kind}: {e}")
    stop_nimbusd(daemon)
    vm = ids.get("vms")
    for args in ([["destroy", f"nimbus-{vm}"], ["undefine", f"nimbus-{vm}"]] if vm else []) + \
            [["pool-destroy", pool], ["pool-undefine", pool]]:
        subprocess.run(["virsh", "-q", "-c", libvirt_uri, *args], capture_output=True, timeout=60)
    shutil.rmtree(work, ignore_errors=True)


def twin_rename(root, name):
    """A domain's XML tree (ElementTree) under a twin's name: its title too, no UUID (libvirt
    makes one), no metadata (nothing that says Nimbus)."""
    root.find("name").text = name
    for tag in ("uuid", "metadata"):
        el = root.find(tag)
        if el is not None:
            root.remove(el)
    title = root.find("title")
    if title is not None:
        title.text = name


def file_bytes(path):
    """A file's bytes; b"" while it does not exist (a guest's serial log before it starts)."""
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        return b""


def twin_domain_xml(xml, name, twin_dir, console_path):
    """A raw twin of a Nimbus guest for a virsh baseline: from the domain's inactive XML, the same
    definition under its own name (no UUID, no Nimbus metadata), a fresh MAC, its own disk (a
    qcow2 overlay of the same image, the same size), a copy of the seed ISO, its serial log at
    console_path; files in twin_dir. Returns (XML text, the image file its disk is backed by)."""
    root = ET.fromstring(xml)
    twin_rename(root, name)
    disk = os.path.join(twin_dir, "disk.qcow2")
    seed = os.path.join(twin_dir, "seed.iso")
    image = None
    for d in list(root.findall("./devices/disk")):
        src = d.find("source")
        if d.get("device") == "disk" and src is not None and src.get("file"):
            info = json.loads(run(["qemu-img", "info", "-U", "--output=json",
                                   src.get("file")]).stdout)
            image = info.get("full-backing-filename") or info.get("backing-filename")
            if not image:
                raise BenchError(f"{src.get('file')} has no backing file")
            fmt = info.get("backing-filename-format") or "qcow2"
            run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", fmt, "-b", image, disk,
                 str(info["virtual-size"])])
            src.set("file", disk)
        elif d.get("device") == "cdrom" and src is not None:
            shutil.copyfile(src.get("file"), seed)
            src.set("file", seed)
    if image is None:
        raise BenchError("the domain has no file disk to copy")
    mac = "52:54:00:%02x:%02x:%02x" % tuple(random.getrandbits(8) for _ in range(3))
    for m in root.findall("./devices/interface/mac"):
        m.set("address", mac)
    for lg in root.iter("log"):
        lg.set("file", console_path)
    return ET.tostring(root, encoding="unicode"), image


def test_ceph_env():
    """The test Ceph's facts (scripts/test-ceph.sh env: CEPH_CONF, NIMBUS_TEST_CEPH_MONITORS,
    _POOL, _USER, _KEY, ...) as a dict; BenchError when it is not running."""
    p = run([os.path.join(REPO, "scripts", "test-ceph.sh"), "env"], check=False, timeout=60)
    if p.returncode != 0:
        raise BenchError("the test Ceph is not running: scripts/test-ceph.sh start")
    return dict(l.split("=", 1) for l in p.stdout.splitlines() if "=" in l)


def create_rbd_pool(api, ceph, name):
    """An rbd pool `name` on the test Ceph (test_ceph_env's dict) through the API: its row."""
    _, pool = api.call("POST", "/v1/pools", {
        "name": name, "type": "rbd", "monitors": ceph["NIMBUS_TEST_CEPH_MONITORS"].split(","),
        "rbd_pool": ceph["NIMBUS_TEST_CEPH_POOL"], "user": ceph["NIMBUS_TEST_CEPH_USER"],
        "key": ceph["NIMBUS_TEST_CEPH_KEY"]})
    return pool


def rbd_sweep(conf, pool, names):
    """Of the RBD images `names` in the Ceph pool, those still there removed as the cluster's
    admin (conf: its ceph.conf), snapshots unprotected and purged first, clones before the bases
    ("nimbus-image-*") they were made of: what a run's own clean-up could not remove (a clone
    whose QEMU had just been killed keeps a watcher for a while). Logs each; never raises."""
    try:
        p = run(["rbd", "-c", conf, "ls", pool], timeout=60, check=False)
        left = sorted((n for n in p.stdout.split() if n in names),
                      key=lambda n: n.startswith("nimbus-image-"))
        for name in left:
            ref = f"{pool}/{name}"
            log(f"clean-up: removing the RBD image {ref} left behind")
            snaps = run(["rbd", "-c", conf, "snap", "ls", "--format", "json", ref],
                        timeout=60, check=False).stdout
            for snap in json.loads(snaps or "[]"):
                run(["rbd", "-c", conf, "snap", "unprotect", f"{ref}@{snap['name']}"],
                    timeout=60, check=False)
            run(["rbd", "-c", conf, "snap", "purge", ref], timeout=60, check=False)
            run(["rbd", "-c", conf, "rm", ref], timeout=120, check=False)
    except (BenchError, ValueError) as e:
        log(f"clean-up: Ceph: {e}")


class Agent:
    """A nimbus-agent of a bench's own (scripts/start-agent.sh) for nimbusd's local host, on
    127.0.0.1:port, as scripts/aio.sh runs one: with it the host's remote-group rules are ipsets
    (docs/networking.md). nimbusd is the bench's binary; the agent is the one built beside it."""

    def __init__(self, nimbusd, tag, port):
        build = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(nimbusd))))
        self.binary = os.path.join(build, "src", "agent", "nimbus-agent")
        self.tag, self.port = tag, port
        self.dir = None
        self.pid = None

    def start(self):
        """Starts it; returns nimbusd's arguments to reach it."""
        # Its own directory: a bench's work dir may go before the agent does.
        self.dir = tempfile.mkdtemp(prefix=f"nimbus-bench-{self.tag}-agent-")
        listen = f"127.0.0.1:{self.port}"
        p = subprocess.run([os.path.join(REPO, "scripts", "start-agent.sh"), self.dir,
                            "--listen", listen], capture_output=True, text=True, timeout=60,
                           stdin=subprocess.DEVNULL,
                           env={**os.environ, "NIMBUS_AGENT": self.binary})
        if p.returncode != 0:
            raise BenchError(f"start-agent.sh: exit {p.returncode}: {p.stderr.strip()[:400]}")
        with open(os.path.join(self.dir, "agent.pid")) as f:
            self.pid = int(f.read().strip())
        log(f"nimbus-agent on {listen}")
        return ["--agent-url", f"https://{listen}",
                "--agent-secret-file", os.path.join(self.dir, "secret"),
                "--agent-ca-file", os.path.join(self.dir, "cert.pem")]

    def stop(self):
        """Stops it by pid, destroys the ipsets it still kept (a bench cut short) and removes its
        directory."""
        if not self.dir:
            return
        try:
            if self.pid:
                os.kill(self.pid, signal.SIGTERM)
                for _ in range(100):
                    if not os.path.exists(f"/proc/{self.pid}"):
                        break
                    time.sleep(0.1)
        except OSError as e:
            log(f"clean-up: stopping the agent: {e}")
        try:
            with open(os.path.join(self.dir, "state", "ipsets.json")) as f:
                sets = [x["name"] for x in json.load(f)["ipsets"]]
        except (OSError, ValueError, KeyError):
            sets = []
        for name in sets:
            if re.fullmatch(r"nbs-[0-9a-f]{24}", name):
                run(["ipset", "destroy", name], timeout=30, check=False)
                run(["ipset", "destroy", name + "-t"], timeout=30, check=False)
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir = None


def start_nimbusd(nimbusd, state, pool, log_path, extra_args=(), start_s=30,
                 libvirt_uri="qemu:///system"):
    """Starts a bench's own nimbusd (TCG guests, its pool under the state dir, a session of its
    own so that a Ctrl-C reaches the bench, which stops it) and waits for its address and admin
    token; returns (Popen, Api)."""
    if not os.access(nimbusd, os.X_OK):
        raise BenchError(f"{nimbusd} not found: build with 'ninja -C build'")
    argv = [nimbusd, "--listen", "127.0.0.1:0", "--state-dir", state, "--libvirt-uri",
            libvirt_uri, "--virt-type", "qemu", "--pool-name", pool, "--pool-path",
            os.path.join(state, "pool"), *extra_args]
    with open(log_path, "wb") as errf:
        daemon = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=errf, start_new_session=True)
    deadline = time.monotonic() + start_s
    url = None
    while url is None:
        if daemon.poll() is not None:
            raise BenchError(f"nimbusd exited with {daemon.returncode}")
        if time.monotonic() > deadline:
            raise BenchError("nimbusd did not report its address")
        with open(log_path, errors="replace") as f:
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
        api = Api(url, f.read().strip())
    log(f"nimbusd pid {daemon.pid} at {url}, pool {pool}")
    return daemon, api


def stop_nimbusd(daemon, timeout=15):
    """SIGTERM to a bench's nimbusd (start_nimbusd's), SIGKILL if it is not gone in timeout s."""
    if daemon is None or daemon.poll() is not None:
        return
    daemon.send_signal(signal.SIGTERM)
    try:
        daemon.wait(timeout)
    except subprocess.TimeoutExpired:
        log(f"clean-up: nimbusd pid {daemon.pid} ignored SIGTERM; killing it")
        daemon.kill()
        daemon.wait(5)
