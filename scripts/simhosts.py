#!/usr/bin/python3
"""Simulated hosts for a running nimbusd: the scale test bed (docs/scale.md).

    scripts/simhosts.py start --dir DIR --count N --url URL --token TOKEN
                              [--pool-name NAME --pool-path PATH] [--no-silent-host]
                              [--prefix sim] [--parallel 16] [--ttl SECONDS]
    scripts/simhosts.py stop  --dir DIR [--url URL --token TOKEN]
    scripts/simhosts.py write --dir DIR --count N [--pool-name NAME --pool-path PATH]

`start` writes N libvirt test-driver host files under DIR (each with its own host UUID, CPUs,
memory, the "default" network and, given --pool-path, nimbusd's pool), starts a "silent host"
(a listener on 127.0.0.1 that accepts TCP and never answers, as a hung libvirtd would), and adds
every host to nimbusd through its API, --parallel at a time: test:///DIR/<prefix>-NNNN.xml, and
qemu+tcp://127.0.0.1:<port>/system as <prefix>-silent. The listener runs in its own process,
ends by itself after --ttl seconds, and its pid is kept in DIR/silent.pid; `stop` ends it by
that pid, removes the hosts from nimbusd (given --url and --token; a host that still has VMs
stays) and deletes the files.

Simulated hosts go through nimbusd's real connection, reconciler, task and placement code, but
libvirt's test driver runs nothing: see LEFT_OUT, printed by `start`.

Python 3 standard library only; importable (tests/e2e/test_scale.py, bench/scale.py use it).
"""

import argparse
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid

LEFT_OUT = """\
What the simulation leaves out (libvirt's test driver, test:///PATH.xml hosts):
  - no QEMU: a "running" domain is a state in the test driver's memory; no guest boots, no
    cloud-init runs, the console log stays empty, addresses are the test driver's fakes;
  - no data: image and seed uploads and image copies create volumes of the right size and drop
    the bytes (nothing is written to disk); the image check after an upload is the header
    probe only (no qemu-img on a simulated local host);
  - no real migration: a migration between simulated hosts moves the definition (define on the
    destination, start, undefine on the source); no memory or disk is copied, and a migration
    between a simulated and a real host is refused;
  - no persistence: a test-driver host forgets its domains and volumes when its connection
    closes (nimbusd restarted or the host reconnected); the reconciler then sees the VMs as
    missing, and images uploaded to a simulated local host have lost their volumes;
  - no failures of their own: a test-driver host never drops its connection, never runs out of
    memory, and answers in microseconds; slowness and silence come only from the silent host;
  - capacity: CPUs and memory are what each file says; every pool is the test driver's fixed
    100 GiB; free memory reads 0.
"""

# The shapes the hosts cycle through: (cores, memory GiB).
SHAPES = [(16, 64), (32, 128), (48, 192), (64, 256), (8, 32)]

HTTP_TIMEOUT_S = 30


def host_name(prefix, i):
    return f"{prefix}-{i:04d}"


def host_uuid(prefix, i):
    """Distinct and stable: the same prefix and index always give the same host UUID."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"nimbus-sim/{prefix}/{i}"))


def xml_escape(s):
    return (s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace("'", "&apos;").replace('"', "&quot;"))


def host_xml(prefix, i, pool_name=None, pool_path=None, network="default"):
    cores, mem_gib = SHAPES[i % len(SHAPES)]
    hid = host_uuid(prefix, i)
    pool = ""
    if pool_path:
        pool = (f"  <pool type='dir'>\n    <name>{xml_escape(pool_name)}</name>\n"
                f"    <uuid>{uuid.uuid5(uuid.NAMESPACE_URL, hid + '/pool')}</uuid>\n"
                f"    <target><path>{xml_escape(pool_path)}</path></target>\n  </pool>\n")
    return f"""<node>
  <cpu>
    <nodes>1</nodes><sockets>2</sockets><cores>{cores // 2}</cores><threads>1</threads>
    <active>{cores}</active><mhz>2400</mhz><model>sim-x86_64</model>
  </cpu>
  <memory>{mem_gib * 1024 * 1024}</memory>
  <network>
    <name>{xml_escape(network)}</name>
    <uuid>{uuid.uuid5(uuid.NAMESPACE_URL, hid + '/net')}</uuid>
    <bridge name='virbr0'/>
    <forward/>
    <ip address='192.168.122.1' netmask='255.255.255.0'>
      <dhcp><range start='192.168.122.2' end='192.168.122.254'/></dhcp>
    </ip>
  </network>
{pool}  <device>
    <name>computer</name>
    <capability type='system'>
      <hardware>
        <vendor>Nimbus</vendor><version>simulated host</version>
        <serial>{host_name(prefix, i)}</serial><uuid>{hid}</uuid>
      </hardware>
      <firmware><vendor>Nimbus</vendor><version>sim</version>
        <release_date>01/01/2026</release_date></firmware>
    </capability>
  </device>
</node>
"""


def write_hosts(directory, count, prefix="sim", pool_name=None, pool_path=None, scheme="test"):
    """Writes the host files; returns [(name, uri, vcpus, ram_mib)]. With scheme "test+unix"
    the simulated hypervisors live in the local libvirtd instead of in nimbusd's process."""
    directory = os.path.abspath(directory)
    os.makedirs(directory, exist_ok=True)
    hosts = []
    for i in range(1, count + 1):
        name = host_name(prefix, i)
        path = os.path.join(directory, name + ".xml")
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            f.write(host_xml(prefix, i, pool_name, pool_path))
        os.replace(tmp, path)
        cores, mem_gib = SHAPES[i % len(SHAPES)]
        hosts.append((name, f"{scheme}://" + path, cores, mem_gib * 1024))
    return hosts


# ---------------------------------------------------------------- the silent host


def _silent_serve(fd, ttl):
    """The listener process: accepts, holds every connection open, never writes; ends after ttl
    seconds or on SIGTERM (closing everything, which the clients see as EOF)."""
    srv = socket.socket(fileno=fd)
    srv.settimeout(1.0)
    held = []
    deadline = time.monotonic() + ttl
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        while time.monotonic() < deadline:
            try:
                conn, _ = srv.accept()
            except socket.timeout:
                continue
            held.append(conn)
            if len(held) > 4096:  # bounded: the oldest goes
                held.pop(0).close()
    finally:
        for c in held:
            c.close()
        srv.close()


class SilentHost:
    """A local listener that accepts TCP and never answers, in a child process (by pid)."""

    def __init__(self, ttl=3600, port=0):
        srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind(("127.0.0.1", port))
        srv.listen(128)
        self.port = srv.getsockname()[1]
        fd = srv.fileno()
        # Its own session: a Ctrl-C at the terminal reaches the caller, which stops it by pid.
        self.proc = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "_silent", "--fd", str(fd),
             "--ttl", str(int(ttl))],
            pass_fds=(fd,), stdin=subprocess.DEVNULL, start_new_session=True)
        srv.close()
        self.pid = self.proc.pid

    @property
    def uri(self):
        return f"qemu+tcp://127.0.0.1:{self.port}/system"

    def stop(self):
        stop_pid(self.pid)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def stop_pid(pid):
    """Ends one process we started, by its pid: SIGTERM, then SIGKILL after 5 s."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    for _ in range(50):
        try:
            os.kill(pid, 0)
            # A child of ours lingers as a zombie until reaped; reaping is the caller's.
            with open(f"/proc/{pid}/stat") as f:
                if f.read().split(") ", 1)[1].startswith("Z"):
                    return
        except (ProcessLookupError, FileNotFoundError):
            return
        time.sleep(0.1)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


# ---------------------------------------------------------------- nimbusd's API


class Api:
    """One kept-alive HTTP connection per thread."""

    def __init__(self, url, token):
        u = urllib.parse.urlsplit(url)
        if u.scheme != "http" or not u.hostname:
            raise SystemExit(f"{url}: only http://HOST:PORT is supported")
        self.host, self.port, self.token = u.hostname, u.port or 80, token
        self.local = threading.local()

    def call(self, method, path, body=None):
        """(status, parsed JSON or None)."""
        headers = {"Authorization": f"Bearer {self.token}"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        elif method in ("POST", "PUT"):
            headers["Content-Length"] = "0"
        for attempt in (0, 1):
            c = getattr(self.local, "conn", None)
            if c is None:
                c = self.local.conn = http.client.HTTPConnection(self.host, self.port,
                                                                 timeout=HTTP_TIMEOUT_S)
            try:
                c.request(method, path, body=data, headers=headers)
                r = c.getresponse()
                payload = r.read()
                if r.will_close:
                    c.close()
                    self.local.conn = None
                return r.status, (json.loads(payload) if payload else None)
            except (http.client.HTTPException, OSError):
                c.close()
                self.local.conn = None
                if attempt or method not in ("GET", "DELETE"):
                    raise


def parallel(fn, items, threads, stop=None):
    """fn(item) for every item, `threads` at a time; returns the results in order. The first
    exception is raised once all threads have stopped. stop (a threading.Event), once set, ends
    the work early; the caller checks it."""
    results = [None] * len(items)
    errors = []
    it = iter(range(len(items)))
    lock = threading.Lock()

    def worker():
        while not errors and not (stop and stop.is_set()):
            with lock:
                i = next(it, None)
            if i is None:
                return
            try:
                results[i] = fn(items[i])
            except BaseException as e:  # noqa: B036 - re-raised below
                errors.append(e)

    ts = [threading.Thread(target=worker, daemon=True) for _ in range(max(1, threads))]
    for t in ts:
        t.start()
    for t in ts:
        while t.is_alive():  # in steps, so that Ctrl-C reaches the main thread
            t.join(0.2)
    if errors:
        raise errors[0]
    return results


def add_hosts(api, hosts, threads=16):
    """POST /v1/hosts for each (name, uri, ...); a host already there with the same URI is fine.
    Returns the seconds it took."""
    t0 = time.monotonic()

    def add(h):
        status, body = api.call("POST", "/v1/hosts", {"name": h[0], "uri": h[1]})
        if status == 201:
            return
        if status == 409:
            s2, existing = api.call("GET", f"/v1/hosts/{h[0]}")
            if s2 == 200 and existing["uri"] == h[1]:
                return
        raise RuntimeError(f"adding host {h[0]} ({h[1]}): HTTP {status}: {body}")

    parallel(add, hosts, threads)
    return time.monotonic() - t0


def remove_hosts(api, names, threads=16):
    """DELETE /v1/hosts/NAME; returns the names that could not be removed, with why."""
    def rm(name):
        status, body = api.call("DELETE", f"/v1/hosts/{name}")
        if status in (200, 204, 404):
            return None
        return f"{name}: HTTP {status}: {(body or {}).get('error', {}).get('message')}"

    return [r for r in parallel(rm, names, threads) if r]


def wait_hosts(api, names, states=("up",), timeout=300, interval=0.5):
    """Waits until every named host is in one of states; returns {name: state} at the end."""
    want = set(names)
    deadline = time.monotonic() + timeout
    while True:
        _, body = api.call("GET", "/v1/hosts")
        seen = {h["name"]: h["state"] for h in body["hosts"] if h["name"] in want}
        if all(seen.get(n) in states for n in want) or time.monotonic() > deadline:
            return seen
        time.sleep(interval)


# ---------------------------------------------------------------- command line


def cmd_write(a):
    hosts = write_hosts(a.dir, a.count, a.prefix, a.pool_name, a.pool_path)
    print(f"wrote {len(hosts)} host files under {os.path.abspath(a.dir)}")
    return hosts


def cmd_start(a):
    hosts = cmd_write(a)
    api = Api(a.url, a.token)
    silent = None
    state = {"prefix": a.prefix, "hosts": [h[0] for h in hosts]}
    try:
        secs = add_hosts(api, hosts, a.parallel)
        print(f"added {len(hosts)} simulated hosts in {secs:.1f} s ({a.parallel} at a time)")
        if a.silent_host:
            silent = SilentHost(ttl=a.ttl)
            name = f"{a.prefix}-silent"
            add_hosts(api, [(name, silent.uri)], 1)
            state.update(silent_pid=silent.pid, silent_name=name, silent_uri=silent.uri)
            print(f"silent host {name}: {silent.uri} (listener pid {silent.pid}, ends by itself "
                  f"after {a.ttl} s)")
    except BaseException:
        if silent:
            silent.stop()
        raise
    with open(os.path.join(a.dir, "silent.pid"), "w") as f:
        json.dump(state, f)
    print(LEFT_OUT, end="")
    return 0


def cmd_stop(a):
    path = os.path.join(a.dir, "silent.pid")
    state = {}
    if os.path.exists(path):
        with open(path) as f:
            state = json.load(f)
    if state.get("silent_pid"):
        pid = state["silent_pid"]
        # Only our listener: check its command line before signalling the pid.
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                mine = b"_silent" in f.read()
        except OSError:
            mine = False
        if mine:
            stop_pid(pid)
            print(f"silent host listener (pid {pid}) stopped")
    rc = 0
    if a.url and a.token:
        names = state.get("hosts", [])
        if state.get("silent_name"):
            names.append(state["silent_name"])
        left = remove_hosts(Api(a.url, a.token), names, a.parallel)
        print(f"removed {len(names) - len(left)} of {len(names)} hosts from nimbusd")
        for line in left:
            print(f"  kept {line}")
        rc = 1 if left else 0
    prefix = state.get("prefix", a.prefix)
    for name in os.listdir(a.dir) if os.path.isdir(a.dir) else ():
        if name.startswith(prefix + "-") and name.endswith(".xml"):
            os.unlink(os.path.join(a.dir, name))
    if os.path.exists(path):
        os.unlink(path)
    return rc


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("write", "start", "stop"):
        p = sub.add_parser(name)
        p.add_argument("--dir", required=True, help="where the host files go")
        p.add_argument("--prefix", default="sim", help="host names: PREFIX-0001... (default sim)")
        p.add_argument("--parallel", type=int, default=16, help="API calls at a time")
        if name != "stop":
            p.add_argument("--count", type=int, required=True, help="how many hosts")
            p.add_argument("--pool-name", default="nimbus",
                           help="nimbusd's --pool-name (default nimbus)")
            p.add_argument("--pool-path",
                           help="nimbusd's --pool-path: put the pool in each host file "
                                "(without it nimbusd defines the pool when it connects)")
        if name != "write":
            p.add_argument("--url", default=os.environ.get("NIMBUS_URL"),
                           help="nimbusd's API (default $NIMBUS_URL)")
            p.add_argument("--token", default=os.environ.get("NIMBUS_TOKEN"),
                           help="an admin token (default $NIMBUS_TOKEN)")
        if name == "start":
            p.add_argument("--no-silent-host", dest="silent_host", action="store_false",
                           help="no silent host")
            p.add_argument("--ttl", type=int, default=3600,
                           help="the silent host's listener ends after this many seconds")
    s = sub.add_parser("_silent")  # the listener process itself
    s.add_argument("--fd", type=int, required=True)
    s.add_argument("--ttl", type=int, required=True)
    a = ap.parse_args(argv)
    if a.cmd == "_silent":
        _silent_serve(a.fd, a.ttl)
        return 0
    if a.cmd != "stop" and a.count < 1:
        ap.error("--count must be at least 1")
    if a.cmd == "start" and not (a.url and a.token):
        ap.error("start needs --url and --token (or NIMBUS_URL and NIMBUS_TOKEN)")
    if a.cmd == "write":
        cmd_write(a)
        print(LEFT_OUT, end="")
        return 0
    return cmd_start(a) if a.cmd == "start" else cmd_stop(a)


if __name__ == "__main__":
    sys.exit(main())
