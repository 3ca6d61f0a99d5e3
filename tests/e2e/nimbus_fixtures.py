"""Helpers for Nimbus's end-to-end tests: start/stop nimbusd, talk to its API, run the CLI, ask
libvirt (through virsh) what really exists, and clean up everything a test run created.

Everything here only ever touches libvirt objects that belong to one test environment: its own
storage pool (a unique name) and domains named after VM ids the environment created, or whose
disks live in its pool directory. Other people's domains and pools on the same libvirtd are left
alone.
"""

import fcntl
import http.client
import ipaddress
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.parse

LIBVIRT_URI = os.environ.get("NIMBUS_TEST_LIBVIRT_URI", "qemu:///system")
REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD_DIR = os.environ.get("NIMBUS_BUILD_DIR", os.path.join(REPO, "build"))
NIMBUSD = os.path.join(BUILD_DIR, "src", "daemon", "nimbusd")
NIMBUS_CLI = os.path.join(BUILD_DIR, "src", "cli", "nimbus")

UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
BOOT_TIMEOUT = float(os.environ.get("NIMBUS_E2E_BOOT_TIMEOUT", "120"))
TASK_TIMEOUT = 120.0

# A guest's root-disk mark (clone, image-from-VM and RBD tests): the script marks the root disk
# at ROOT_MARK_SECTOR once with "NIMBUS-ROOT-MARK <hostname>" and, at every later boot, prints
# the mark it finds. The body of a user-data script (no "#!" line).
ROOT_MARK_SECTOR = 2047
ROOT_MARK_SH = f"""m=$(dd if=/dev/vda bs=512 skip={ROOT_MARK_SECTOR} count=1 2>/dev/null | tr -cd 'A-Za-z0-9 ._:\\n-' | head -n 1)
case "$m" in
"NIMBUS-ROOT-MARK "*) echo "$m" ;;
*) printf 'NIMBUS-ROOT-MARK %s\\n' "$(hostname)" |
	dd of=/dev/vda bs=512 seek={ROOT_MARK_SECTOR} conv=notrunc,fsync 2>/dev/null
   sync
   echo "NIMBUS-ROOT-MARKED $(hostname)" ;;
esac
"""

# Every nimbusd process any test started, so the session teardown can kill stragglers by pid.
LIVE_DAEMONS = set()


class Timeout(AssertionError):
    pass


def wait_until(pred, timeout, what, interval=0.25):
    """Polls pred() until it returns something truthy; returns that value. On timeout raises with
    `what` and the last value seen, which usually says what went wrong."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        last = pred()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise Timeout(f"timed out after {timeout:.0f}s waiting for {what}; last value: {last!r}")
        time.sleep(interval)


# ---------------------------------------------------------------------------------------------
# virsh


def virsh(*args, check=True, timeout=60):
    p = subprocess.run(["virsh", "-c", LIBVIRT_URI, *args], capture_output=True, text=True,
                       timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError(f"virsh {' '.join(args)} failed (rc {p.returncode}): "
                             f"{p.stderr.strip()}")
    return p


def domain_names():
    return {l.strip() for l in virsh("list", "--all", "--name").stdout.splitlines() if l.strip()}


def domstate(name):
    """'running', 'shut off', 'paused', ... or None when the domain does not exist."""
    p = virsh("domstate", name, check=False)
    return p.stdout.strip() if p.returncode == 0 else None


def domid(name):
    p = virsh("domid", name, check=False)
    return p.stdout.strip() if p.returncode == 0 else None


def domain_disk_sources(name):
    p = virsh("domblklist", name, check=False)
    if p.returncode != 0:
        return []
    out = []
    for line in p.stdout.splitlines()[2:]:
        parts = line.split(None, 1)
        if len(parts) == 2:
            out.append(parts[1].strip())
    return out


def pool_exists(pool):
    return virsh("pool-info", pool, check=False).returncode == 0


def volume_names(pool):
    p = virsh("vol-list", pool, check=False)
    if p.returncode != 0:
        return set()
    names = set()
    for line in p.stdout.splitlines()[2:]:
        parts = line.split()
        if parts:
            names.add(parts[0])
    return names


def vm_domain(vm_id):
    return f"nimbus-{vm_id}"


def vm_volumes(vm_id):
    return {f"vm-{vm_id}-disk.qcow2", f"vm-{vm_id}-seed.iso"}


# ---------------------------------------------------------------------------------------------
# HTTP


class Resp:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    @property
    def json(self):
        return json.loads(self.body)

    @property
    def text(self):
        return self.body.decode("utf-8", "replace")

    @property
    def code(self):
        try:
            return self.json["error"]["code"]
        except Exception:
            return None

    def __repr__(self):
        return f"<HTTP {self.status} {self.body[:300]!r}>"


_DEFAULT = object()


class Api:
    """A tiny HTTP client on http.client so that tests can send exactly the bytes they mean
    (broken JSON, odd headers, no body)."""

    def __init__(self, daemon):
        self.daemon = daemon

    def request(self, method, path, body=_DEFAULT, raw=None, headers=None, token=_DEFAULT,
                content_type=_DEFAULT, timeout=60):
        hdrs = {}
        tok = self.daemon.token if token is _DEFAULT else token
        if tok is not None:
            hdrs["Authorization"] = f"Bearer {tok}"
        data = None
        if raw is not None:
            data = raw
        elif body is not _DEFAULT:
            data = json.dumps(body).encode()
        if data is not None:
            ct = "application/json" if content_type is _DEFAULT else content_type
            if ct is not None:
                hdrs["Content-Type"] = ct
            hdrs["Content-Length"] = str(len(data))
        elif method in ("POST", "PUT", "PATCH"):
            hdrs["Content-Length"] = "0"
        hdrs.update(headers or {})
        conn = http.client.HTTPConnection("127.0.0.1", self.daemon.port, timeout=timeout)
        try:
            try:
                conn.request(method, path, body=data, headers=hdrs)
            except (BrokenPipeError, ConnectionResetError):
                # The server may answer early (413, 401, 422 on a bad image header) and close
                # while the body is still being sent: its answer is still readable.
                pass
            r = conn.getresponse()
            resp = Resp(r.status, {k.lower(): v for k, v in r.getheaders()}, r.read())
        except (ConnectionError, http.client.HTTPException) as e:
            raise AssertionError(f"{method} {path}: connection failed: {e!r}") from e
        finally:
            conn.close()
        return resp

    def ok(self, method, path, body=_DEFAULT, expect=(200, 201, 202, 204), **kw):
        r = self.request(method, path, body=body, **kw)
        if isinstance(expect, int):
            expect = (expect,)
        assert r.status in expect, f"{method} {path} -> {r.status}, expected {expect}: {r.text}"
        return r.json if r.body else None

    # shortcuts
    def get(self, path, **kw):
        return self.ok("GET", path, expect=200, **kw)

    def vms(self):
        """Every VM: all the pages of GET /v1/vms."""
        out, marker = [], None
        while True:
            page = self.get("/v1/vms" + (f"?marker={urllib.parse.quote(marker)}" if marker else ""))
            out += page["vms"]
            marker = page.get("next_marker")
            if not marker:
                return out

    def images(self):
        return self.get("/v1/images")["images"]

    def flavors(self):
        return self.get("/v1/flavors")["flavors"]

    def vm(self, ident):
        r = self.request("GET", f"/v1/vms/{urllib.parse.quote(ident)}")
        if r.status == 404:
            return None
        assert r.status == 200, f"GET vm {ident}: {r!r}"
        return r.json

    def task(self, task_id):
        return self.get(f"/v1/tasks/{task_id}")

    def wait_task(self, task_id, timeout=TASK_TIMEOUT, expect="succeeded"):
        seen = {}

        def done():
            t = seen["task"] = self.task(task_id)
            return t if t["state"] in ("succeeded", "failed") else None
        try:
            t = wait_until(done, timeout, f"task {task_id} to finish")
        except Timeout as e:
            # What the task was doing, and what every thread of nimbusd was doing then: a task
            # that never ends is a hang worth a diagnosis, not only a red test.
            raise Timeout(f"{e}; task then: {seen.get('task')}\n"
                          f"{self.daemon.thread_stacks()}") from None
        if expect:
            assert t["state"] == expect, f"task {task_id} ({t['kind']}) ended {t['state']}: {t}"
        return t

    def wait_vm_state(self, ident, state, timeout=60):
        def check():
            v = self.vm(ident)
            return v if v and v["state"] == state and not v["task_id"] else None
        try:
            return wait_until(check, timeout, f"VM {ident} to be {state} (and idle)")
        except Timeout as e:
            raise Timeout(f"{e}; VM now: {self.vm(ident)}") from None

    def action(self, ident, action, body=_DEFAULT, wait=True):
        r = self.ok("POST", f"/v1/vms/{ident}/{action}", body=body, expect=202)
        if wait:
            self.wait_task(r["task"]["id"])
        return r

    def create_vm(self, name, image, flavor, wait=True, **extra):
        body = {"name": name, "image": image, "flavor": flavor, **extra}
        r = self.ok("POST", "/v1/vms", body=body, expect=202)
        if wait:
            self.wait_task(r["task"]["id"])
        return r

    def delete_vm(self, ident, wait=True):
        r = self.request("DELETE", f"/v1/vms/{ident}")
        if r.status == 404:
            return None
        assert r.status == 202, f"DELETE vm {ident}: {r!r}"
        if wait:
            self.wait_task(r.json["task"]["id"])
        return r.json

    def console(self, ident):
        r = self.request("GET", f"/v1/vms/{ident}/console-log?bytes=1048576")
        assert r.status == 200, f"console-log {ident}: {r!r}"
        return r.text

    def wait_console(self, ident, needle, count=1, timeout=BOOT_TIMEOUT):
        """Waits until `needle` (a plain string) occurs at least `count` times in the console."""
        def check():
            text = self.console(ident)
            return text if text.count(needle) >= count else None
        try:
            return wait_until(check, timeout, f"{count}x {needle!r} on VM {ident}'s console",
                              interval=1)
        except Timeout:
            tail = self.console(ident)[-1500:]
            raise Timeout(f"timed out after {timeout:.0f}s waiting for {count}x {needle!r} on "
                          f"VM {ident}'s console; console tail:\n{tail}") from None


# ---------------------------------------------------------------------------------------------
# nimbusd


_NIMBUSD_HELP = {}


def nimbusd_has_option(opt):
    """Whether the nimbusd under test knows a command-line option (a build from before it was
    added does not: tests of other features still run there)."""
    if NIMBUSD not in _NIMBUSD_HELP:
        p = subprocess.run([NIMBUSD, "--help"], capture_output=True, text=True, timeout=30)
        _NIMBUSD_HELP[NIMBUSD] = p.stdout
    return opt in _NIMBUSD_HELP[NIMBUSD]


def _net_slot():
    """A default-network range (one of 40 /16s, 10.200-10.239) for a new daemon, and the open
    lock file that holds it (None when all are held: the range is then shared, as it always was
    before). A daemon takes the first slot whose lock file it can flock and keeps it until
    release_net_slot(), so test runs side by side (developers', helpers') do not make two
    libvirt networks on one subnet. NIMBUS_TEST_NET_OFFSET moves the first slot tried."""
    off = int(os.environ.get("NIMBUS_TEST_NET_OFFSET", "0"))
    for i in range(40):
        slot = (Daemon.count + off + i) % 40
        f = open(f"/run/nimbus-test-netslot-{slot}.lock", "w")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.close()
            continue
        return slot, f
    return (Daemon.count + off) % 40, None


class Daemon:
    """One nimbusd on one state dir. The API port changes on every start (port 0)."""

    # Daemons of one session share the local libvirtd, and a libvirt network's subnet can be
    # active only once per host: each daemon cuts its projects' default networks from its own.
    count = 0

    def __init__(self, state_dir, pool_name, log_path, max_image_gib=2, extra_args=()):
        slot, self._net_slot_lock = _net_slot()
        self.net_pool = f"10.{200 + slot}.0.0/16"
        Daemon.count += 1
        self.state_dir = state_dir
        self.pool_name = pool_name
        self.pool_path = os.path.join(state_dir, "pool")
        # where this daemon lets admins make dir and netfs pools (its --pool-roots)
        self.pool_roots = os.path.join(state_dir, "pools")
        self.log_path = log_path
        self.max_image_gib = max_image_gib
        self.extra_args = list(extra_args)
        self.extra_env = {}  # added to the daemon's environment at each start
        self.proc = None
        self.port = None
        self.token = None
        os.makedirs(state_dir, exist_ok=True)

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def start(self, crash_at=None, wait_ready=True, hang_at=None):
        assert not self.alive(), "nimbusd already running"
        env = dict(os.environ)
        env.pop("NIMBUS_TEST_CRASH_AT", None)
        env.pop("NIMBUS_TEST_HANG_AT", None)
        env.update(self.extra_env)
        if crash_at:
            env["NIMBUS_TEST_CRASH_AT"] = crash_at
        if hang_at:
            env["NIMBUS_TEST_HANG_AT"] = hang_at
        args = [NIMBUSD, "--listen", "127.0.0.1:0", "--state-dir", self.state_dir,
                "--libvirt-uri", LIBVIRT_URI, "--virt-type", "qemu",
                "--pool-name", self.pool_name, "--pool-path", self.pool_path,
                "--stop-timeout", "20", "--sync-interval", "2",
                "--max-image-size-gib", str(self.max_image_gib), "--log-level", "debug",
                "--default-network-pool", self.net_pool,
                *(["--pool-roots", self.pool_roots] if nimbusd_has_option("--pool-roots") else []),
                # a quiet host looked at every 6 syncs, not every 5 min
                *(["--quiet-sync-interval", "12"]
                  if nimbusd_has_option("--quiet-sync-interval") else []),
                # the pools' periodic look as often as the networks' (3 syncs), not every 5 min
                *(["--pool-check-interval", "6"]
                  if nimbusd_has_option("--pool-check-interval") else []),
                *self.extra_args]
        with open(self.log_path, "ab") as log:
            log.write(f"\n===== {time.strftime('%H:%M:%S')} starting nimbusd"
                      f"{' NIMBUS_TEST_CRASH_AT=' + crash_at if crash_at else ''}\n".encode())
            offset = log.tell()
            self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                         env=env, start_new_session=True)
        LIVE_DAEMONS.add(self.proc)
        self.port = None
        if not wait_ready:
            return
        pat = re.compile(rb"listening on http://127\.0\.0\.1:(\d+)")

        def listening():
            if self.proc.poll() is not None:
                raise AssertionError(f"nimbusd exited with {self.proc.returncode} at start-up:\n"
                                     f"{self.log_tail()}")
            with open(self.log_path, "rb") as f:
                f.seek(offset)
                m = pat.search(f.read())
            return m and int(m.group(1))

        self.port = wait_until(listening, 30, "nimbusd to log 'listening on'")
        with open(os.path.join(self.state_dir, "admin.token")) as f:
            self.token = f.read().strip()
        assert self.token, "empty admin.token"

    def send_signal(self, sig):
        if self.alive():
            os.kill(self.proc.pid, sig)

    def stop(self, sig=signal.SIGTERM, timeout=30):
        """Stops nimbusd; returns its exit status (negative = killed by that signal)."""
        if not self.proc:
            return None
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                stacks = self.thread_stacks()
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
                raise AssertionError(f"nimbusd did not exit within {timeout}s of signal {sig}; "
                                     f"log tail:\n{self.log_tail()}\n{stacks}") from None
        LIVE_DAEMONS.discard(self.proc)
        return self.proc.returncode

    def wait_dead(self, timeout=60):
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"nimbusd (pid {self.proc.pid}) still alive after {timeout}s; "
                                 f"log tail:\n{self.log_tail()}") from None
        LIVE_DAEMONS.discard(self.proc)
        return rc

    def release_net_slot(self):
        """Lets another daemon have this one's default-network range (its networks are gone)."""
        if self._net_slot_lock:
            self._net_slot_lock.close()
            self._net_slot_lock = None

    def thread_stacks(self):
        """Every thread's backtrace of a live nimbusd, by gdb (CI installs it), for a test that
        found the daemon stuck; a note instead when there is no daemon or no gdb."""
        if not self.proc or self.proc.poll() is not None:
            return "(nimbusd not running: no thread stacks)"
        if not shutil.which("gdb"):
            return "(no gdb: no thread stacks)"
        try:
            p = subprocess.run(["gdb", "-p", str(self.proc.pid), "-batch", "-nx",
                                "-ex", "set pagination off", "-ex", "thread apply all bt"],
                               capture_output=True, text=True, timeout=120)
        except subprocess.TimeoutExpired:
            return "(gdb took over 120 s: no thread stacks)"
        return f"----- nimbusd (pid {self.proc.pid}) thread stacks -----\n{p.stdout}"

    def log_tail(self, n=40):
        try:
            with open(self.log_path, "rb") as f:
                lines = f.read().decode("utf-8", "replace").splitlines()
            return "\n".join(lines[-n:])
        except OSError:
            return "(no log)"

    def console_log_path(self, vm_id):
        return os.path.join(self.pool_path, f"vm-{vm_id}-console.log")


def kill_all_daemons():
    for p in list(LIVE_DAEMONS):
        if p.poll() is None:
            try:
                os.kill(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                pass
        LIVE_DAEMONS.discard(p)


# ---------------------------------------------------------------------------------------------
# CLI


class Cli:
    def __init__(self, daemon, home):
        self.daemon = daemon
        self.home = home
        os.makedirs(home, exist_ok=True)
        self.empty_config = os.path.join(home, "empty.conf")
        open(self.empty_config, "w").close()

    def run(self, *args, check=True, timeout=180):
        env = dict(os.environ, NIMBUS_URL=self.daemon.url, NIMBUS_TOKEN=self.daemon.token,
                   HOME=self.home, NIMBUS_CONFIG=self.empty_config)
        p = subprocess.run([NIMBUS_CLI, *args], capture_output=True, text=True, env=env,
                           timeout=timeout)
        if check and p.returncode != 0:
            raise AssertionError(f"`nimbus {' '.join(args)}` exited {p.returncode}\n"
                                 f"stdout: {p.stdout}\nstderr: {p.stderr}")
        return p

    def console(self, name):
        """The VM's serial console log, read through `nimbus vm console-log`."""
        return self.run("vm", "console-log", name, "--bytes", "1048576").stdout

    def wait_console(self, name, needle, count=1, timeout=None):
        timeout = BOOT_TIMEOUT if timeout is None else timeout
        try:
            return wait_until(lambda: self.console(name).count(needle) >= count, timeout,
                              f"{count}x {needle!r} on {name}'s console", interval=1)
        except Timeout:
            raise Timeout(f"no {count}x {needle!r} on {name}'s console within {timeout}s; "
                          f"tail:\n{self.console(name)[-2000:]}") from None

    def json(self, *args, **kw):
        p = self.run("--json", *args, **kw)
        try:
            return json.loads(p.stdout)
        except ValueError:
            raise AssertionError(f"`nimbus --json {' '.join(args)}` printed no JSON: "
                                 f"{p.stdout!r}") from None


# ---------------------------------------------------------------------------------------------
# common resources (env: conftest.Env)


def upload_image(env, name, path, disk_format="qcow2"):
    img = env.api.ok("POST", "/v1/images", {"name": name, "disk_format": disk_format}, expect=201)
    with open(path, "rb") as f:
        data = f.read()
    img = env.api.ok("PUT", f"/v1/images/{img['id']}/file", raw=data,
                     content_type="application/octet-stream", expect=200)
    assert img["state"] == "active", f"uploaded image not active: {img}"
    env.remember(img["id"])
    return img


def join_test_hosts(env, hosts, tiny_image, names=("kvm1", "kvm2", "kvm3")):
    """Cluster set-up shared by the cluster tests: env's (started) daemon gets the test hosts
    (testhosts.TestHosts) under `names`, waits until each is up, disables its own `local` host
    so placement has exactly these, and gets an image (env.image) and a flavor (env.flavor)."""
    env.hosts = hosts
    for i, name in enumerate(names, start=1):
        body = {"name": name, "uri": hosts.uri(i)}
        secret_file = hosts.agent_secret_file(i)
        if secret_file:  # the host's agent and VXLAN underlay (vxlan networks, NIC limits)
            with open(secret_file) as f:
                body.update(agent_url=hosts.agent_url(i), agent_secret=f.read().strip(),
                            tunnel_ip=hosts.tunnel_ip(i), tunnel_dev=hosts.tunnel_dev(i))
        env.api.ok("POST", "/v1/hosts", body, expect=201)
    for name in names:
        wait_until(lambda n=name: env.api.get(f"/v1/hosts/{n}")["state"] == "up", 60,
                   f"host {name} up")
    env.api.ok("POST", "/v1/hosts/local/disable")
    env.image = upload_image(env, "tiny", tiny_image)
    env.flavor = create_small_flavor(env)


def crash_during(env, crash_at, method, path, body, start=None, while_dead=None):
    """Restarts env's nimbusd to kill itself at crash_at (NIMBUS_TEST_CRASH_AT "<kind>:<step>"),
    sends the request that gets there, checks it died by SIGKILL, runs while_dead() (checks of
    what the kill left), and starts it again normally. start(env, crash_at=None) starts the
    daemon (default: env.daemon.start; rbd_cluster.start_daemon waits longer)."""
    if start is None:
        def start(e, crash_at=None):
            e.daemon.start(crash_at=crash_at)
    env.daemon.stop()
    start(env, crash_at=crash_at)
    try:
        env.api.request(method, path, body=body, timeout=60)
    except AssertionError:
        pass  # the reply may not make it out before the kill
    assert env.daemon.wait_dead(180) == -signal.SIGKILL, crash_at
    if while_dead:
        while_dead()
    start(env)


def delete_all_vms(env):
    """Deletes every VM of env through the API, waiting for tasks under way; never raises (the
    session teardown purges what is left)."""
    for v in env.api.vms():
        try:
            if v["task_id"]:
                env.api.wait_task(v["task_id"], expect=None)
            env.api.delete_vm(v["id"])
        except Exception as e:  # noqa: BLE001
            print(f"cleanup of VM {v['id']} failed: {e}")


def create_small_flavor(env, name="e2e-small"):
    return env.api.ok("POST", "/v1/flavors",
                      {"name": name, "vcpus": 1, "ram_mib": 256, "disk_gib": 1}, expect=201)


# ---------------------------------------------------------------------------------------------
# state snapshots and consistency


def our_domains(daemon, known_ids=()):
    """Domains belonging to this environment: named after one of its VM ids, or with a disk in
    its pool directory."""
    known = {vm_domain(i) for i in known_ids}
    mine = set()
    for d in domain_names():
        if not d.startswith("nimbus-"):
            continue
        if d in known or any(s.startswith(daemon.pool_path + "/")
                             for s in domain_disk_sources(d)):
            mine.add(d)
    return mine


def libvirt_snapshot(daemon, known_ids=()):
    return {"domains": sorted(our_domains(daemon, known_ids)),
            "volumes": sorted(volume_names(daemon.pool_name))}


def store_snapshot(api):
    strip = lambda rows, keys: sorted(  # noqa: E731
        (tuple((k, r.get(k)) for k in keys) for r in rows))
    return {
        "vms": strip(api.vms(), ("id", "name", "state", "desired_state", "task_id")),
        "images": strip(api.images(), ("id", "name", "state")),
        "flavors": strip(api.flavors(), ("id", "name")),
    }


def check_consistency(api, daemon, known_ids=()):
    """Every VM row has exactly its domain and its two volumes; nothing in libvirt belongs to a VM
    without a row; every image volume belongs to an active image. Returns a list of problems."""
    problems = []
    vms = api.vms()
    images = api.images()
    vm_ids = {v["id"] for v in vms}
    ids = set(known_ids) | vm_ids
    doms = our_domains(daemon, ids)
    vols = volume_names(daemon.pool_name)
    for v in vms:
        if v["task_id"]:
            problems.append(f"VM {v['name']} ({v['id']}) still held by task {v['task_id']}")
        if v["state"] == "error":
            continue  # a rolled-back create has no domain by design
        if vm_domain(v["id"]) not in doms:
            problems.append(f"VM {v['name']} ({v['id']}, {v['state']}) has no domain")
        for vol in sorted(vm_volumes(v["id"]) - vols):
            problems.append(f"VM {v['name']} ({v['id']}) lacks volume {vol}")
    for d in sorted(doms):
        if d[len("nimbus-"):] not in vm_ids:
            problems.append(f"orphan domain {d} (no VM row)")
    active_images = {i["id"] for i in images if i["state"] == "active"}
    # Volumes (nimbus-vol-<id>) in the default pool: each one a volume row's.
    r = api.request("GET", "/v1/volumes")
    volume_ids = {v["id"] for v in r.json["volumes"]} if r.status == 200 else set()
    for vol in sorted(vols):
        m = re.match(r"nimbus-vol-(" + UUID_RE.pattern + r")$", vol)
        if m:
            if m.group(1) not in volume_ids:
                problems.append(f"orphan volume {vol} (no volume row)")
            continue
        m = re.match(r"vm-(" + UUID_RE.pattern + r")-(disk\.qcow2|seed\.iso|console\.log)$", vol)
        if m:
            if m.group(1) not in vm_ids:
                problems.append(f"orphan volume {vol} (no VM row)")
            continue
        m = re.match(r"image-(" + UUID_RE.pattern + r")$", vol)
        if m:
            if m.group(1) not in active_images:
                problems.append(f"volume {vol} belongs to no active image")
            continue
        # A volume snapshot's copy (nimbus-vsnap-<id>): a snapshot row's of one of the volumes.
        m = re.match(r"nimbus-vsnap-(" + UUID_RE.pattern + r")$", vol)
        if m:
            snap_ids = set()
            for vid in volume_ids:
                sr = api.request("GET", f"/v1/volumes/{vid}/snapshots")
                if sr.status == 200:
                    snap_ids |= {x["id"] for x in sr.json["snapshots"]}
            if m.group(1) not in snap_ids:
                problems.append(f"orphan volume snapshot {vol} (no snapshot row)")
            continue
        problems.append(f"unexpected volume {vol} in the pool")
    return problems


# ---------------------------------------------------------------------------------------------
# teardown


def libvirt_network_names():
    out = virsh("net-list", "--all", "--name", check=False).stdout
    return {l.strip() for l in out.splitlines() if l.strip()}


def libvirt_networks_of(daemon, known_ids=()):
    """The libvirt networks a daemon made: nimbus-net-<id> for the ids known, and those whose
    address is in its default-network pool."""
    pool = ipaddress.ip_network(daemon.net_pool)
    mine = []
    for name in libvirt_network_names():
        if not name.startswith("nimbus-net-"):
            continue
        if name[len("nimbus-net-"):] in known_ids:
            mine.append(name)
            continue
        xml = virsh("net-dumpxml", name, check=False).stdout
        m = re.search(r"<ip address='([0-9.]+)'", xml)
        if m and ipaddress.ip_address(m.group(1)) in pool:
            mine.append(name)
    return mine


def _filter_refs(xml, prefix):
    return set(re.findall(r"<filterref filter='(" + re.escape(prefix) + r"[0-9a-f-]+)'", xml))


def purge_filters(port_filters):
    """Undefines the security-group filters behind the given port filters: the port filters,
    the group filters they name, and the member filters those name (nwfilter_xml.h), in that
    order. Returns the errors."""
    errors, groups, members = [], set(), set()
    for level, names in (("port", port_filters), ("group", groups), ("member", members)):
        for f in sorted(names):
            xml = virsh("nwfilter-dumpxml", f, check=False).stdout
            groups |= _filter_refs(xml, "nimbus-sg-")
            members |= _filter_refs(xml, "nimbus-sgr-")
            p = virsh("nwfilter-undefine", f, check=False)
            if p.returncode != 0 and xml:
                errors.append(f"nwfilter-undefine {f} ({level}): {p.stderr.strip()}")
    return errors


def purge_environment(daemon, known_ids=()):
    """Removes everything an environment created: its domains (by id or disk location) and the
    security-group filters they used, its networks, its pool, and its state dir. Safe to call
    twice; never raises."""
    errors = []
    port_filters = set()
    try:
        for d in our_domains(daemon, known_ids):
            port_filters |= _filter_refs(virsh("dumpxml", "--inactive", d, check=False).stdout,
                                         "nimbus-port-")
            virsh("destroy", d, check=False)
            p = virsh("undefine", d, "--snapshots-metadata", check=False)
            if p.returncode != 0 and domstate(d) is not None:
                errors.append(f"undefine {d}: {p.stderr.strip()}")
    except Exception as e:  # noqa: BLE001 - teardown must go on
        errors.append(f"domains: {e!r}")
    try:
        # A daemon that died (or was stopped) with VMs left never removed their filters.
        errors += purge_filters(port_filters)
    except Exception as e:  # noqa: BLE001
        errors.append(f"filters: {e!r}")
    try:
        # Networks: by the ids seen, and any whose address lies in the daemon's default pool
        # (the daemon may have died before telling its networks).
        for net in libvirt_networks_of(daemon, known_ids):
            virsh("net-destroy", net, check=False)
            p = virsh("net-undefine", net, check=False)
            if p.returncode != 0 and net in libvirt_network_names():
                errors.append(f"net-undefine {net}: {p.stderr.strip()}")
    except Exception as e:  # noqa: BLE001
        errors.append(f"networks: {e!r}")
    try:
        if pool_exists(daemon.pool_name):
            virsh("pool-destroy", daemon.pool_name, check=False)
            virsh("pool-undefine", daemon.pool_name, check=False)
    except Exception as e:  # noqa: BLE001
        errors.append(f"pool: {e!r}")
    shutil.rmtree(daemon.state_dir, ignore_errors=True)
    return errors


# ---------------------------------------------------------------------------------------------
# tenancy: users, their tokens, projects, audit (docs/security.md, docs/api/openapi.yaml)


class UserApi(Api):
    """An Api that sends a given user's token by default (daemon.token stays the admin's); it
    follows the daemon across restarts like Api does."""

    def __init__(self, daemon, token, name=None):
        super().__init__(daemon)
        self.user_token = token
        self.name = name

    def request(self, method, path, body=_DEFAULT, token=_DEFAULT, **kw):
        return super().request(method, path, body=body,
                               token=self.user_token if token is _DEFAULT else token, **kw)


def login(api, user, password):
    """POST /v1/auth/login without any bearer token; returns the Resp."""
    return api.request("POST", "/v1/auth/login", {"user": user, "password": password},
                       token=None)


def make_user(admin_api, name, password, project, role):
    """Creates a user and logs it in; returns (user, UserApi, login answer)."""
    user = admin_api.ok("POST", "/v1/users", {"name": name, "password": password,
                                              "project": project, "role": role}, expect=201)
    r = login(admin_api, name, password)
    assert r.status == 201, f"login of new user {name}: {r!r}"
    return user, UserApi(admin_api.daemon, r.json["token"], name), r.json


def upload_image_as(api, env, name, path):
    """Like upload_image, but as the user behind `api` (so the image lands in its project)."""
    img = api.ok("POST", "/v1/images", {"name": name}, expect=201)
    env.remember(img["id"])
    with open(path, "rb") as f:
        data = f.read()
    img = api.ok("PUT", f"/v1/images/{img['id']}/file", raw=data,
                 content_type="application/octet-stream", expect=200)
    assert img["state"] == "active", f"uploaded image not active: {img}"
    return img


def audit_events(api, **params):
    q = urllib.parse.urlencode(params)
    return api.get("/v1/audit" + (f"?{q}" if q else ""))["events"]


def event_user(ev):
    """An audit event's user as a name, whether the server gives a name or an object."""
    u = ev.get("user")
    if isinstance(u, dict):
        return u.get("name")
    return u


def parse_ts(s):
    """ISO 8601 (as the API writes it, 'Z' or an offset, optional fraction) -> epoch seconds."""
    import datetime
    s = s.strip().replace("Z", "+00:00")
    return datetime.datetime.fromisoformat(s).timestamp()


def iso_utc(epoch):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def wait_tasks(api, task_ids, timeout=TASK_TIMEOUT, expect="succeeded"):
    return [api.wait_task(t, timeout=timeout, expect=expect) for t in task_ids]


class LocalAgent:
    """A nimbus-agent on 127.0.0.1 started by scripts/start-agent.sh (its secret and certificate
    in `directory`), and the nimbusd settings that use it. stop() ends it by its pid."""

    def __init__(self, directory, *extra):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.dir = directory
        p = subprocess.run([os.path.join(REPO, "scripts", "start-agent.sh"), directory,
                            "--listen", f"127.0.0.1:{self.port}", *extra],
                           capture_output=True, text=True, timeout=60,
                           env=dict(os.environ, NIMBUS_BUILD_DIR=BUILD_DIR))
        assert p.returncode == 0, f"start-agent.sh failed:\n{p.stdout}\n{p.stderr}"
        with open(os.path.join(directory, "agent.pid")) as f:
            self.pid = int(f.read().strip())
        self.daemon_args = ["--agent-url", f"https://127.0.0.1:{self.port}",
                            "--agent-secret-file", os.path.join(directory, "secret"),
                            "--agent-ca-file", os.path.join(directory, "cert.pem")]

    def stop(self):
        try:
            os.kill(self.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
