"""nimbus-agent on two namespace "hosts" (its own network namespaces nag1 and nag2, a veth pair
between them on 10.78.0.0/24 as the underlay, eth0 in each): the VXLAN overlay carries traffic
(ping across it), the flood FDB is exactly the peers, a second VNI stays apart, shaping puts HTB
on the tap and ingress -> IFB -> HTB for the other way and limits a real TCP transfer both ways,
the state comes back after a restart and after devices are removed by hand, and the agent
refuses callers without the secret and names that are not its own.

Needs root (network namespaces). Everything it makes lives in nag1/nag2 and dies with them at the
end, failure or not; only the agents this test started are stopped, by their pid."""

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD_DIR = os.environ.get("NIMBUS_BUILD_DIR", os.path.join(REPO, "build"))
AGENT = os.path.join(BUILD_DIR, "src", "agent", "nimbus-agent")
START = os.path.join(REPO, "scripts", "start-agent.sh")

NS = ("nag1", "nag2")
UNDERLAY = {"nag1": "10.78.0.1", "nag2": "10.78.0.2"}
PEER = {"nag1": "nag2", "nag2": "nag1"}
PORT = 8775
INTERVAL = 2  # the agents' --check-interval, so the periodic check is seen within seconds
BR_A = "nbr0000000042aa"  # VNI 4242
BR_B = "nbr0000000043bb"  # VNI 4343
TAP = "nbt000000000001"
IFB = "nbi000000000001"
LATE_TAP = "nbt000000000002"
RATE_KBIT = 8000

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces")


def run(*argv, check=True, timeout=60):
    p = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} -> {p.returncode}: {p.stderr.strip()}")
    return p


def ns(name, *argv, check=True, timeout=60):
    return run("ip", "netns", "exec", name, *argv, check=check, timeout=timeout)


def cleanup_namespaces():
    for n in NS:
        if run("ip", "netns", "pids", n, check=False).returncode == 0:
            for pid in run("ip", "netns", "pids", n, check=False).stdout.split():
                # Only our own agents run there; anything left is from an earlier run of this test.
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except ProcessLookupError:
                    pass
            run("ip", "netns", "del", n, check=False)


class Agent:
    def __init__(self, netns, directory):
        self.netns = netns
        self.dir = directory
        self.cert = os.path.join(directory, "cert.pem")
        self.header = os.path.join(directory, "auth-header")

    def start(self):
        env = dict(os.environ, NIMBUS_AGENT=AGENT)
        p = subprocess.run([START, self.dir, "--netns", self.netns, "--listen",
                            f"127.0.0.1:{PORT}", "--check-interval", str(INTERVAL)],
                           capture_output=True, text=True, timeout=60, env=env)
        assert p.returncode == 0, p.stderr
        with open(os.path.join(self.dir, "secret")) as f:
            self.secret = f.read().strip()
        # The secret reaches curl through a file, never its command line.
        fd = os.open(self.header, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(f"Authorization: Bearer {self.secret}\n")

    @property
    def pid(self):
        with open(os.path.join(self.dir, "agent.pid")) as f:
            return int(f.read().strip())

    def alive(self):
        try:
            os.kill(self.pid, 0)
            return True
        except (ProcessLookupError, FileNotFoundError, ValueError):
            return False

    def stop(self):
        if not self.alive():
            return
        pid = self.pid
        os.kill(pid, signal.SIGTERM)
        for _ in range(100):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)
        os.kill(pid, signal.SIGKILL)

    def request(self, method, path, body=None, header=True, scheme="https", expect=False):
        """(status, parsed JSON or None); status 0 when no HTTP answer came at all. expect:
        send "Expect: 100-continue", so that a body refused on its headers is never sent (else
        the agent's early answer can meet a connection reset while curl is still sending)."""
        argv = ["curl", "-sS", "-o", "-", "-w", "\n%{http_code}", "--max-time", "10",
                "--cacert", self.cert, "-X", method]
        if header is True:
            argv += ["-H", f"@{self.header}"]
        elif header:
            argv += ["-H", header]
        if body is not None:
            argv += ["-H", "Content-Type: application/json", "--data-binary", "@-"]
        if expect:
            argv += ["-H", "Expect: 100-continue"]
        argv.append(f"{scheme}://127.0.0.1:{PORT}{path}")
        p = subprocess.run(["ip", "netns", "exec", self.netns] + argv, capture_output=True,
                           text=True, timeout=30,
                           input=json.dumps(body) if body is not None else None)
        text, _, code = p.stdout.rpartition("\n")
        status = int(code) if code.isdigit() else 0
        try:
            parsed = json.loads(text) if text.strip() else None
        except ValueError:
            parsed = None
        return status, parsed

    def log(self):
        try:
            with open(os.path.join(self.dir, "agent.log"), errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""


@pytest.fixture(scope="module")
def hosts():
    if not os.access(AGENT, os.X_OK):
        pytest.skip(f"{AGENT} is not built")
    cleanup_namespaces()
    root = tempfile.mkdtemp(prefix="nimbus-agent-e2e-")
    agents = {}
    try:
        for n in NS:
            run("ip", "netns", "add", n)
            # No IPv6 chatter (router solicitations, MLD): the isolation check counts packets.
            ns(n, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1")
            ns(n, "sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1")
            ns(n, "ip", "link", "set", "lo", "up")
        run("ip", "link", "add", "nagv1", "netns", "nag1", "type", "veth", "peer", "name",
            "nagv2", "netns", "nag2")
        for i, n in enumerate(NS, 1):
            ns(n, "ip", "link", "set", f"nagv{i}", "name", "eth0")
            ns(n, "ip", "addr", "add", f"{UNDERLAY[n]}/24", "dev", "eth0")
            ns(n, "ip", "link", "set", "eth0", "up")
        for n in NS:
            agents[n] = Agent(n, os.path.join(root, n))
            agents[n].start()
        yield agents
    finally:
        for a in agents.values():
            a.stop()
        failed_logs = {n: a.log() for n, a in agents.items()}
        cleanup_namespaces()
        if os.environ.get("NIMBUS_E2E_KEEP"):
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
        for n, text in failed_logs.items():
            print(f"--- agent {n} log tail ---\n" + "\n".join(text.splitlines()[-30:]))


def vxlan_body(n, bridge, peers=None):
    return {"bridge": bridge, "mtu": 1450, "local": UNDERLAY[n], "dev": "eth0",
            "peers": [UNDERLAY[PEER[n]]] if peers is None else peers}


def flood_peers(n, vni):
    out = ns(n, "bridge", "fdb", "show", "dev", f"nbx{vni}").stdout
    return sorted(re.findall(r"^00:00:00:00:00:00 dst (\S+)", out, re.M))


def ping(n, ip, count=3):
    return ns(n, "ping", "-c", str(count), "-W", "2", "-i", "0.2", ip, check=False,
              timeout=30).returncode == 0


def rx_packets(n, ifname):
    with_stats = ns(n, "cat", f"/sys/class/net/{ifname}/statistics/rx_packets").stdout
    return int(with_stats.strip())


def test_auth_refused(hosts):
    a = hosts["nag1"]
    status, body = a.request("GET", "/v1/health")
    assert status == 200 and body["version"] and body["uptime_s"] >= 0
    status, body = a.request("GET", "/v1/health", header=False)
    assert status == 401 and body["error"]["code"] == "UNAUTHORIZED"
    wrong = "0" * 64 if a.secret != "0" * 64 else "1" * 64
    status, body = a.request("GET", "/v1/state", header=f"Authorization: Bearer {wrong}")
    assert status == 401 and body["error"]["code"] == "UNAUTHORIZED"
    status, _ = a.request("GET", "/v1/state", header=f"Authorization: Bearer {a.secret[:-1]}")
    assert status == 401
    status, _ = a.request("PUT", "/v1/vxlan/4242", vxlan_body("nag1", BR_A), header=False)
    assert status == 401
    assert "nbx4242" not in ns("nag1", "ip", "link").stdout  # refused before anything was done
    # Plain HTTP gets no HTTP answer from a TLS-only listener.
    status, _ = a.request("GET", "/v1/health", scheme="http")
    assert status != 200
    assert a.secret not in a.log()


def test_foreign_names_refused(hosts):
    a = hosts["nag1"]
    status, body = a.request("PUT", "/v1/shaping/eth0", {"in_kbit": 1000, "out_kbit": 1000})
    assert status == 400 and body["error"]["code"] == "NETWORK_INVALID_IFNAME"
    status, body = a.request("DELETE", "/v1/shaping/eth0")
    assert status == 400 and body["error"]["code"] == "NETWORK_INVALID_IFNAME"
    status, body = a.request("PUT", "/v1/vxlan/4242", vxlan_body("nag1", "nbr" + "0" * 11))
    assert status == 400 and body["error"]["code"] == "NETWORK_INVALID_IFNAME"
    status, body = a.request("PUT", "/v1/vxlan/4242", vxlan_body("nag1", "eth0"))
    assert status == 400 and body["error"]["code"] == "NETWORK_INVALID_IFNAME"
    status, body = a.request("PUT", "/v1/vxlan/0", vxlan_body("nag1", BR_A))
    assert status == 400 and body["error"]["code"] == "NETWORK_INVALID_VNI"
    status, body = a.request("PUT", "/v1/vxlan/4242", dict(vxlan_body("nag1", BR_A), extra=1))
    assert status == 400 and body["error"]["code"] == "INVALID_REQUEST"
    # eth0 is untouched: no qdisc of the agent's, no new device.
    assert "htb" not in ns("nag1", "tc", "qdisc", "show", "dev", "eth0").stdout
    assert "ingress" not in ns("nag1", "tc", "qdisc", "show", "dev", "eth0").stdout
    assert not re.search(r"\bnb[rxi]", ns("nag1", "ip", "-br", "link").stdout)
    status, body = a.request("GET", "/v1/state")
    assert status == 200 and body == {"vxlans": [], "shaping": [], "vlans": [], "dhcp": []}


def test_refused_change_leaves_nothing(hosts):
    a = hosts["nag1"]
    # An MTU the underlay cannot carry (9000 + 50 > 1500) and an underlay that does not exist:
    # the host refuses, and the agent removes what it had made (the bridge) before answering.
    status, body = a.request("PUT", "/v1/vxlan/4545",
                             dict(vxlan_body("nag1", "nbr000000004545"), mtu=9000))
    assert status == 502 and body["error"]["code"] == "HYPERVISOR_ERROR", body
    status, body = a.request("PUT", "/v1/vxlan/4546",
                             dict(vxlan_body("nag1", "nbr000000004546"), dev="eth9"))
    assert status == 502 and body["error"]["code"] == "HYPERVISOR_ERROR", body
    assert not re.search(r"\bnb[rx]", ns("nag1", "ip", "-br", "link").stdout)
    status, state = a.request("GET", "/v1/state")
    assert state == {"vxlans": [], "shaping": [], "vlans": [], "dhcp": []}
    # Bodies over 64 KiB are refused.
    status, body = a.request("PUT", "/v1/vxlan/4547",
                             dict(vxlan_body("nag1", "nbr000000004547"), pad="x" * 70000),
                             expect=True)
    assert status == 413 and body["error"]["code"] == "BODY_TOO_LARGE"


def kernel_has_8021q(n):
    r = ns(n, "ip", "link", "add", "link", "eth0", "name", "nagq", "type", "vlan", "id", "9",
           check=False)
    ns(n, "ip", "link", "del", "nagq", check=False)
    return r.returncode == 0


def test_vlan_segment(hosts):
    """A VLAN segment: the bridge with an 802.1Q device on the parent as its uplink. This
    machine's kernel has no 802.1Q: the agent then answers HYPERVISOR_ERROR and keeps nothing
    (no bridge, no state); tests/unit/test_agent_net.c checks the request it sends. On a kernel
    with 802.1Q the segment is made and removed."""
    a = hosts["nag1"]
    br = "nbr0000000000aa"
    for path, body, status, code in (
            (f"/v1/vlan/{br}", {"vlan": 0, "parent": "eth0"}, 400, "NETWORK_INVALID_VLAN"),
            (f"/v1/vlan/{br}", {"vlan": 4095, "parent": "eth0"}, 400, "NETWORK_INVALID_VLAN"),
            (f"/v1/vlan/{br}", {"vlan": 42, "parent": "nbx4242"}, 400, "NETWORK_INVALID_IFNAME"),
            ("/v1/vlan/eth0", {"vlan": 42, "parent": "eth0"}, 400, "NETWORK_INVALID_IFNAME"),
            (f"/v1/vlan/{br}", {"vlan": 42, "parent": "eth0", "x": 1}, 400, "INVALID_REQUEST")):
        got, answer = a.request("PUT", path, body)
        assert (got, answer["error"]["code"]) == (status, code), (path, body, answer)
    # A bridge of a VXLAN cannot become a segment's.
    status, _ = a.request("PUT", "/v1/vxlan/4343", vxlan_body("nag1", "nbr000000004343"))
    assert status == 200
    status, body = a.request("PUT", "/v1/vlan/nbr000000004343", {"vlan": 42, "parent": "eth0"})
    assert status == 409 and body["error"]["code"] == "NAME_TAKEN", body
    assert a.request("DELETE", "/v1/vxlan/4343")[0] == 204

    status, body = a.request("PUT", f"/v1/vlan/{br}", {"vlan": 42, "parent": "eth0"})
    if kernel_has_8021q("nag1"):
        assert status == 200 and body["device"] == "nbv0000000000aa", body
        link = ns("nag1", "ip", "-d", "link", "show", "nbv0000000000aa").stdout
        assert "vlan protocol 802.1Q id 42" in link and f"master {br}" in link, link
        assert a.request("GET", "/v1/state")[1]["vlans"][0]["vlan"] == 42
        assert a.request("DELETE", f"/v1/vlan/{br}")[0] == 204
    else:
        assert status == 502 and body["error"]["code"] == "HYPERVISOR_ERROR", body
        assert "VLAN" in body["error"]["message"], body
    assert not re.search(r"\bnb[rv]0000000000aa", ns("nag1", "ip", "-br", "link").stdout)
    assert a.request("GET", "/v1/state")[1]["vlans"] == []
    assert a.request("DELETE", f"/v1/vlan/{br}")[0] == 204  # absent is done


def test_vxlan_overlay(hosts):
    for i, n in enumerate(NS, 1):
        status, body = hosts[n].request("PUT", "/v1/vxlan/4242", vxlan_body(n, BR_A))
        assert status == 200, body
        assert body["device"] == "nbx4242" and body["peers"] == [UNDERLAY[PEER[n]]]
        ns(n, "ip", "addr", "add", f"192.168.78.{i}/24", "dev", BR_A)
    for n in NS:
        detail = ns(n, "ip", "-d", "link", "show", "nbx4242").stdout
        assert re.search(rf"vxlan id 4242 local {UNDERLAY[n]} dev eth0 .*dstport 4789", detail)
        assert "nolearning" in detail and f"master {BR_A}" in detail and "mtu 1450" in detail
        assert ",UP" in detail
        assert "mtu 1450" in ns(n, "ip", "link", "show", BR_A).stdout
        assert flood_peers(n, 4242) == [UNDERLAY[PEER[n]]]
    assert ping("nag1", "192.168.78.2"), "no ping across the overlay"
    assert ping("nag2", "192.168.78.1")
    # Idempotent: the same PUT changes nothing and adds no second entry.
    status, _ = hosts["nag1"].request("PUT", "/v1/vxlan/4242", vxlan_body("nag1", BR_A))
    assert status == 200 and flood_peers("nag1", 4242) == ["10.78.0.2"]
    status, state = hosts["nag1"].request("GET", "/v1/state")
    assert status == 200 and [v["vni"] for v in state["vxlans"]] == [4242]
    # A bridge belongs to one VNI.
    status, body = hosts["nag1"].request("PUT", "/v1/vxlan/4343", vxlan_body("nag1", BR_A))
    assert status == 409 and body["error"]["code"] == "NAME_TAKEN"


def test_fdb_follows_peers(hosts):
    a = hosts["nag1"]
    extra = ["10.78.0.7", "10.78.0.2", "10.78.0.9"]
    status, _ = a.request("PUT", "/v1/vxlan/4242", vxlan_body("nag1", BR_A, extra))
    assert status == 200 and flood_peers("nag1", 4242) == sorted(extra)
    status, _ = a.request("PUT", "/v1/vxlan/4242", vxlan_body("nag1", BR_A, []))
    assert status == 200 and flood_peers("nag1", 4242) == []
    assert not ping("nag1", "192.168.78.2", count=2), "traffic without a flood entry"
    status, _ = a.request("PUT", "/v1/vxlan/4242", vxlan_body("nag1", BR_A))
    assert status == 200 and flood_peers("nag1", 4242) == ["10.78.0.2"]
    assert ping("nag1", "192.168.78.2")


def test_second_vni_stays_apart(hosts):
    for n in NS:
        status, body = hosts[n].request("PUT", "/v1/vxlan/4343", vxlan_body(n, BR_B))
        assert status == 200, body
    # Traffic of VNI 4242 reaches nbx4242 on the other host and never nbx4343 (counted while the
    # second overlay has no addresses: with IPv6 off nothing else speaks on it once the burst of
    # its first second is over).
    last, quiet_since, give_up = None, time.monotonic(), time.monotonic() + 15
    while time.monotonic() - quiet_since < 1.5 and time.monotonic() < give_up:
        now = rx_packets("nag2", "nbx4343")
        if now != last:
            last, quiet_since = now, time.monotonic()
        time.sleep(0.2)
    before_a, before_b = rx_packets("nag2", "nbx4242"), rx_packets("nag2", "nbx4343")
    assert ping("nag1", "192.168.78.2", count=5)
    after_a, after_b = rx_packets("nag2", "nbx4242"), rx_packets("nag2", "nbx4343")
    print(f"nag2 rx during 5 pings on VNI 4242: nbx4242 +{after_a - before_a}, "
          f"nbx4343 +{after_b - before_b}")
    assert after_a - before_a >= 5
    assert after_b == before_b
    for i, n in enumerate(NS, 1):
        ns(n, "ip", "addr", "add", f"192.168.79.{i}/24", "dev", BR_B)
    assert ping("nag1", "192.168.79.2"), "no ping across the second overlay"


def transfer_rate(sender_ns, receiver_ns, receiver_ip, nbytes):
    """Mbit/s of one TCP transfer, timed at the receiver from the first byte to the end."""
    port = 5201
    recv_code = (
        "import socket, time, sys\n"
        f"s = socket.create_server(('{receiver_ip}', {port}))\n"
        "print('ready', flush=True)\n"
        "c, _ = s.accept()\n"
        "n = 0; t0 = None\n"
        "while True:\n"
        "    b = c.recv(65536)\n"
        "    if not b: break\n"
        "    if t0 is None: t0 = time.monotonic()\n"
        "    n += len(b)\n"
        "print(n, time.monotonic() - t0, flush=True)\n")
    send_code = (
        "import socket\n"
        f"c = socket.create_connection(('{receiver_ip}', {port}), timeout=60)\n"
        f"c.sendall(b'x' * {nbytes})\n"
        "c.shutdown(socket.SHUT_WR); c.recv(1); c.close()\n")
    recv = subprocess.Popen(["ip", "netns", "exec", receiver_ns, "python3", "-c", recv_code],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert recv.stdout.readline().strip() == "ready"
        ns(sender_ns, "python3", "-c", send_code, timeout=120)
        out, _ = recv.communicate(timeout=120)
    finally:
        if recv.poll() is None:
            recv.kill()
            recv.wait()
    n, seconds = out.split()
    assert int(n) == nbytes
    return int(n) * 8 / float(seconds) / 1e6


def test_shaping_both_ways(hosts):
    a = hosts["nag1"]
    # The tap: a veth nbt... in nag1 (the host), its peer in nag2 (the guest's side).
    run("ip", "link", "add", TAP, "netns", "nag1", "type", "veth", "peer", "name", "nagg1",
        "netns", "nag2")
    ns("nag1", "ip", "addr", "add", "10.77.0.1/24", "dev", TAP)
    ns("nag2", "ip", "addr", "add", "10.77.0.2/24", "dev", "nagg1")
    ns("nag1", "ip", "link", "set", TAP, "up")
    ns("nag2", "ip", "link", "set", "nagg1", "up")
    assert ping("nag1", "10.77.0.2")
    free_in = transfer_rate("nag1", "nag2", "10.77.0.2", 8_000_000)
    print(f"unshaped host->guest: {free_in:.1f} Mbit/s")

    status, body = a.request("PUT", f"/v1/shaping/{TAP}",
                             {"in_kbit": RATE_KBIT, "out_kbit": RATE_KBIT})
    assert status == 200 and body["applied"] is True and body["ifb"] == IFB, body
    tap_q = ns("nag1", "tc", "qdisc", "show", "dev", TAP).stdout
    assert re.search(r"qdisc htb 1: root", tap_q) and "qdisc ingress ffff:" in tap_q
    assert "rate 8Mbit" in ns("nag1", "tc", "class", "show", "dev", TAP).stdout
    assert re.search(r"qdisc htb 1: root", ns("nag1", "tc", "qdisc", "show", "dev", IFB).stdout)
    assert "rate 8Mbit" in ns("nag1", "tc", "class", "show", "dev", IFB).stdout
    flt = ns("nag1", "tc", "filter", "show", "dev", TAP, "ingress").stdout
    assert f"Egress Redirect to device {IFB}" in flt

    nbytes = 2_000_000  # 2 s at 8 Mbit/s
    rate_in = transfer_rate("nag1", "nag2", "10.77.0.2", nbytes)   # host -> guest: tap egress
    rate_out = transfer_rate("nag2", "nag1", "10.77.0.1", nbytes)  # guest -> host: tap ingress
    print(f"limit {RATE_KBIT / 1000:.0f} Mbit/s: host->guest {rate_in:.2f} Mbit/s, "
          f"guest->host {rate_out:.2f} Mbit/s")
    limit = RATE_KBIT / 1000
    assert 0.5 * limit <= rate_in <= 1.5 * limit
    assert 0.5 * limit <= rate_out <= 1.5 * limit

    # Changing one direction only: out unlimited removes ingress and the IFB, in stays.
    status, _ = a.request("PUT", f"/v1/shaping/{TAP}", {"in_kbit": 4000, "out_kbit": 0})
    assert status == 200
    assert "ingress" not in ns("nag1", "tc", "qdisc", "show", "dev", TAP).stdout
    assert IFB not in ns("nag1", "ip", "link").stdout
    assert "rate 4Mbit" in ns("nag1", "tc", "class", "show", "dev", TAP).stdout
    status, _ = a.request("DELETE", f"/v1/shaping/{TAP}")
    assert status == 204
    assert "htb" not in ns("nag1", "tc", "qdisc", "show", "dev", TAP).stdout
    status, _ = a.request("DELETE", f"/v1/shaping/{TAP}")
    assert status == 204  # absent: fine

    # A tap that does not exist yet is shaped by the periodic check when it appears.
    status, body = a.request("PUT", f"/v1/shaping/{LATE_TAP}", {"in_kbit": 2000, "out_kbit": 1000})
    assert status == 200 and body["applied"] is False
    run("ip", "link", "add", LATE_TAP, "netns", "nag1", "type", "veth", "peer", "name", "nagg2",
        "netns", "nag2")
    ns("nag1", "ip", "link", "set", LATE_TAP, "up")
    deadline = time.monotonic() + 5 * INTERVAL
    while time.monotonic() < deadline:
        if "rate 2Mbit" in ns("nag1", "tc", "class", "show", "dev", LATE_TAP).stdout:
            break
        time.sleep(0.3)
    assert "rate 2Mbit" in ns("nag1", "tc", "class", "show", "dev", LATE_TAP).stdout
    assert "rate 1Mbit" in ns("nag1", "tc", "class", "show", "dev", "nbi000000000002").stdout


def test_restart_restores(hosts):
    a = hosts["nag1"]
    with open(os.path.join(a.dir, "state", "state.json")) as f:
        saved = json.load(f)
    assert [v["vni"] for v in saved["vxlans"]] == [4242, 4343]
    assert [s["tap"] for s in saved["shaping"]] == [LATE_TAP]
    a.stop()
    assert not a.alive()
    # The datapath survives the agent.
    assert BR_A in ns("nag1", "ip", "link").stdout
    assert ping("nag1", "192.168.78.2")
    ns("nag1", "ip", "link", "del", BR_A)
    ns("nag1", "ip", "link", "del", "nbx4343")
    assert not ping("nag1", "192.168.78.2", count=1)
    a.start()
    assert a.alive()
    links = ns("nag1", "ip", "-d", "link").stdout
    assert BR_A in links and "nbx4242" in links and "nbx4343" in links
    assert f"master {BR_A}" in ns("nag1", "ip", "link", "show", "nbx4242").stdout
    assert f"master {BR_B}" in ns("nag1", "ip", "link", "show", "nbx4343").stdout
    assert flood_peers("nag1", 4242) == ["10.78.0.2"]
    assert flood_peers("nag1", 4343) == ["10.78.0.2"]
    ns("nag1", "ip", "addr", "add", "192.168.78.1/24", "dev", BR_A)  # the test's own address
    assert ping("nag1", "192.168.78.2"), "no datapath after the restart"
    assert ping("nag1", "192.168.79.2")


def test_periodic_check_repairs(hosts):
    # A flood entry removed and a VXLAN device taken out of its bridge behind the agent's back.
    ns("nag2", "bridge", "fdb", "del", "00:00:00:00:00:00", "dev", "nbx4242", "dst", "10.78.0.1")
    ns("nag2", "ip", "link", "set", "nbx4343", "nomaster")
    assert flood_peers("nag2", 4242) == []
    deadline = time.monotonic() + 5 * INTERVAL
    while time.monotonic() < deadline:
        if (flood_peers("nag2", 4242) == ["10.78.0.1"] and
                f"master {BR_B}" in ns("nag2", "ip", "link", "show", "nbx4343").stdout):
            break
        time.sleep(0.3)
    assert flood_peers("nag2", 4242) == ["10.78.0.1"]
    assert f"master {BR_B}" in ns("nag2", "ip", "link", "show", "nbx4343").stdout
    assert "re-applying" in hosts["nag2"].log()
    assert ping("nag2", "192.168.78.1")


def test_delete(hosts):
    # Moving a VNI to another bridge takes its VXLAN device along and removes the old bridge.
    status, body = hosts["nag1"].request("PUT", "/v1/vxlan/4343",
                                         vxlan_body("nag1", "nbr0000000043cc"))
    assert status == 200, body
    assert "master nbr0000000043cc" in ns("nag1", "ip", "link", "show", "nbx4343").stdout
    assert BR_B not in ns("nag1", "ip", "link").stdout
    for n in NS:
        status, _ = hosts[n].request("DELETE", "/v1/vxlan/4343")
        assert status == 204
        links = ns(n, "ip", "link").stdout
        assert "nbx4343" not in links and BR_B not in links and "nbr0000000043cc" not in links
        status, _ = hosts[n].request("DELETE", "/v1/vxlan/4343")
        assert status == 204  # absent: fine
        status, state = hosts[n].request("GET", "/v1/state")
        assert [v["vni"] for v in state["vxlans"]] == [4242]
    assert ping("nag1", "192.168.78.2")  # the other overlay is untouched
