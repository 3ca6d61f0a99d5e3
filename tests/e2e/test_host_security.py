"""Hardened host connections (docs/install.md): nimbusd joins hosts over qemu+tls with client
certificates, with SASL SCRAM-SHA-256 on top, and migrates between them with VIR_MIGRATE_TLS.

The hosts are a separate set of test hosts (NIMBUS_TESTHOSTS_SET=7, subnet 10.84.0.0/24) started
with NIMBUS_TESTHOSTS_SECURE=1 (scripts/testhosts.sh): a CA made with certtool, libvirtd on TLS
verifying client certificates, kvm1 on the certificate alone, kvm2 asking for SASL after it,
QEMU with migration certificates. Set 0, used by the other cluster tests, is never touched.
"""

import os
import re
import socket
import struct
import subprocess
import tempfile
import threading

import pytest

import nimbus_fixtures as nf
from testhosts import SCRIPT, TestHosts

SET = 7
STATE = f"/run/nimbus-testhosts-{SET}"
PKI = os.path.join(STATE, "pki")
CLIENT_PKI = os.path.join(PKI, "client")
AUTH_FILE = os.path.join(STATE, "sasl", "auth.conf")
TICKING = "#!/bin/sh\ntouch /tmp/tick\n"  # the test guest prints NIMBUS-TICK every 2 s


class SecureHosts(TestHosts):
    """TestHosts for set 7 in secure mode; every call of the script carries that environment,
    and the URIs are the qemu+tls ones nimbusd is given."""

    __test__ = False

    def __init__(self):
        super().__init__(state_dir=STATE)

    @staticmethod
    def env():
        return dict(os.environ, NIMBUS_TESTHOSTS_SET=str(SET), NIMBUS_TESTHOSTS_SECURE="1")

    def _script(self, *args, timeout=180):
        argv = [SCRIPT, *args, "--state", self.state_dir]
        p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=self.env())
        if p.returncode != 0:
            raise subprocess.CalledProcessError(p.returncode, argv, p.stdout, p.stderr)
        return p

    @staticmethod
    def ip(i):
        return f"10.{77 + SET}.0.{10 + i}"

    def uri(self, i):
        """kvm1 needs only the client certificate; the others also the SASL auth file."""
        q = f"pkipath={CLIENT_PKI}"
        if i != 1:
            q += f"&authfile={AUTH_FILE}"
        return f"qemu+tls://{self.ip(i)}/system?{q}"

    def exec(self, i, *argv, check=False, timeout=60):
        return subprocess.run([SCRIPT, "exec", str(i), "--state", self.state_dir, "--", *argv],
                              capture_output=True, text=True, check=check, timeout=timeout,
                              env=self.env())

    def virsh(self, i, *args, check=False, timeout=60):
        return subprocess.run(["virsh", "-c", self.uri(i), *args], capture_output=True,
                              text=True, check=check, timeout=timeout)

    def libvirt_objects(self, i):
        """Every pool, network and domain on host i, by name."""
        out = set()
        for kind, cmd in (("pool", "pool-list"), ("net", "net-list"), ("dom", "list")):
            p = self.virsh(i, cmd, "--all", "--name", check=True)
            out |= {f"{kind}:{line.strip()}" for line in p.stdout.splitlines() if line.strip()}
        return out

    def libvirtd_log(self, i):
        with open(os.path.join(STATE, f"kvm{i}", "log", "libvirtd.log"), errors="replace") as f:
            return f.read()


@pytest.fixture(scope="module")
def secure_hosts():
    hosts = SecureHosts()
    try:
        hosts.start(2)
        yield hosts
    finally:
        hosts.stop()


@pytest.fixture(scope="module")
def secure(make_env, tiny_image, secure_hosts):
    env = make_env("hostsec")
    env.daemon.start()
    nf.join_test_hosts(env, secure_hosts, tiny_image, ("kvm1", "kvm2"))
    yield env
    nf.delete_all_vms(env)
    env.teardown()


def certtool(*args, template=None):
    """certtool as docs/install.md runs it, with the template given as a file."""
    with tempfile.NamedTemporaryFile("w", suffix=".tpl") as tpl:
        argv = ["certtool", *args]
        if template is not None:
            tpl.write(template)
            tpl.flush()
            argv += ["--template", tpl.name]
        subprocess.run(argv, capture_output=True, text=True, check=True, timeout=60)


def add_host_expect_down(env, name, uri):
    """Joins a host that must not connect; returns its record once it is down with an error."""
    env.api.ok("POST", "/v1/hosts", {"name": name, "uri": uri}, expect=201)
    return nf.wait_until(
        lambda: (h := env.api.get(f"/v1/hosts/{name}"))["connection"] == "down" and h["error"]
        and h, 60, f"host {name} down with an error")


def remove_host(env, name):
    env.api.ok("DELETE", f"/v1/hosts/{name}", expect=(200, 202, 204))
    nf.wait_until(lambda: env.api.request("GET", f"/v1/hosts/{name}").status == 404, 30,
                  f"host {name} gone")


def test_tls_hosts_join_with_certificates_and_sasl(secure, secure_hosts):
    hosts = {h["name"]: h for h in secure.api.get("/v1/hosts")["hosts"]}
    for name in ("kvm1", "kvm2"):
        h = hosts[name]
        assert h["state"] == "up" and h["connection"] == "up" and not h["error"], h
        assert h["uri"].startswith("qemu+tls://"), h
        # facts read over the connection: the host's own name (its UTS namespace)
        assert h["hostname"] == name, h
        assert re.fullmatch(r"\d+\.\d+\.\d+", h["libvirt_version"]), h
    # kvm2 asked nimbusd for SASL after the certificate, and got the right password
    assert "authfile=" in hosts["kvm2"]["uri"]
    vm = secure.api.create_vm("sec1", secure.image["id"], secure.flavor["id"], host="kvm1")
    secure.remember(vm["vm"]["id"])
    got = secure.api.vm(vm["vm"]["id"])
    assert got["host"] == "kvm1" and got["state"] == "running", got
    assert nf.vm_domain(got["id"]) in {
        o.split(":", 1)[1] for o in secure_hosts.libvirt_objects(1) if o.startswith("dom:")}
    secure.api.delete_vm(got["id"])


def test_client_certificate_of_another_ca_is_refused(secure, secure_hosts, tmp_path):
    # A client that trusts the hosts' CA (so it accepts kvm1's certificate) but whose own
    # certificate comes from a CA kvm1 does not know. Its cacert.pem holds both CAs: libvirt
    # checks the client's own certificate against it before connecting, and it is kvm1's
    # refusal that is tested here.
    rogue = tmp_path / "rogue"
    rogue.mkdir()
    certtool("--generate-privkey", "--key-type=rsa", "--bits=2048",
             "--outfile", str(rogue / "ca-key.pem"))
    certtool("--generate-self-signed", "--load-privkey", str(rogue / "ca-key.pem"),
             "--outfile", str(rogue / "ca-cert.pem"),
             template="cn = Rogue CA\nca\ncert_signing_key\nexpiration_days = 2\n")
    certtool("--generate-privkey", "--key-type=rsa", "--bits=2048",
             "--outfile", str(rogue / "clientkey.pem"))
    certtool("--generate-certificate", "--load-privkey", str(rogue / "clientkey.pem"),
             "--load-ca-certificate", str(rogue / "ca-cert.pem"),
             "--load-ca-privkey", str(rogue / "ca-key.pem"),
             "--outfile", str(rogue / "clientcert.pem"),
             template="cn = nimbus-controller\ntls_www_client\nsigning_key\nencryption_key\n"
                      "expiration_days = 2\n")
    with open(os.path.join(CLIENT_PKI, "cacert.pem"), "rb") as src:
        (rogue / "cacert.pem").write_bytes(src.read() + (rogue / "ca-cert.pem").read_bytes())
    os.unlink(rogue / "ca-key.pem")

    before = secure_hosts.libvirt_objects(1)
    log_before = len(secure_hosts.libvirtd_log(1))
    uri = f"qemu+tls://{secure_hosts.ip(1)}/system?pkipath={rogue}"
    try:
        h = add_host_expect_down(secure, "rogue", uri)
        assert h["state"] != "up", h
        assert f"connecting to '{uri}'" in h["error"], h
        assert "the host refused this client's certificate" in h["error"], h
        # kvm1's libvirtd refused it on its certificate check
        log = secure_hosts.libvirtd_log(1)[log_before:]
        assert "Failed to verify peer's certificate" in log, log
        # nothing was made on the host, nothing placed on it
        assert secure_hosts.libvirt_objects(1) == before
        r = secure.api.request("POST", "/v1/vms", {
            "name": "nowhere", "image": secure.image["id"], "flavor": secure.flavor["id"],
            "host": "rogue"})
        assert r.status >= 400, r
    finally:
        remove_host(secure, "rogue")


def test_sasl_wrong_or_missing_password_is_refused(secure, secure_hosts, tmp_path):
    with open(AUTH_FILE) as f:
        good = f.read()
    bad = tmp_path / "bad-auth.conf"
    bad.write_text(re.sub(r"(?m)^password=.*$", "password=not-the-password", good))
    assert bad.read_text() != good
    base = f"qemu+tls://{secure_hosts.ip(2)}/system?pkipath={CLIENT_PKI}"
    before = secure_hosts.libvirt_objects(2)
    try:
        h = add_host_expect_down(secure, "badpw", f"{base}&authfile={bad}")
        assert "authentication failed" in h["error"], h
        # without any auth file the daemon does not prompt: it says what is missing
        h = add_host_expect_down(secure, "nopw", base)
        assert "no libvirt auth file supplies" in h["error"], h
        assert secure_hosts.libvirt_objects(2) == before
    finally:
        for name in ("badpw", "nopw"):
            if secure.api.request("GET", f"/v1/hosts/{name}").status == 200:
                remove_host(secure, name)


def test_scram_on_plain_tcp_is_refused_by_libvirt(secure, secure_hosts):
    """libvirt offers only SASL mechanisms with a security layer (SSF >= 56) on plain TCP, and
    SCRAM has none: qemu+tcp with the right password still fails (docs/install.md)."""
    log_before = len(secure_hosts.libvirtd_log(2))
    uri = f"qemu+tcp://{secure_hosts.ip(2)}/system?authfile={AUTH_FILE}"
    try:
        h = add_host_expect_down(secure, "plaintcp", uri)
        assert "authentication failed" in h["error"], h
        log = secure_hosts.libvirtd_log(2)[log_before:]
        assert "no SASL mechanisms are available" in log, log
    finally:
        remove_host(secure, "plaintcp")


class Sniffer:
    """Reads every frame on one interface (a test host's veth in the root namespace) and keeps
    the TCP payloads to and from QEMU's migration ports (49152-49215)."""

    def __init__(self, ifname):
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.ntohs(0x0003))
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        self.sock.bind((ifname, 0))
        self.sock.settimeout(0.5)
        self.first_payloads = []  # the first payload of each migration connection, per direction
        self.seen = set()
        self.cleartext_magic = False  # QEMU's migration stream begins with "QEVM"
        self.payload_bytes = 0
        self.stop = False
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stop:
            try:
                frame = self.sock.recv(65535)
            except socket.timeout:
                continue
            if len(frame) < 34 or frame[12:14] != b"\x08\x00" or frame[23] != 6:
                continue
            ihl = (frame[14] & 0x0F) * 4
            tcp = 14 + ihl
            sport, dport = struct.unpack("!HH", frame[tcp:tcp + 4])
            if not (49152 <= sport <= 49215 or 49152 <= dport <= 49215):
                continue
            data = frame[tcp + (frame[tcp + 12] >> 4) * 4:]
            total = struct.unpack("!H", frame[16:18])[0]
            data = data[:max(0, total - ihl - (frame[tcp + 12] >> 4) * 4)]
            if not data:
                continue
            self.payload_bytes += len(data)
            if b"QEVM" in data:
                self.cleartext_magic = True
            key = (sport, dport)
            if key not in self.seen:
                self.seen.add(key)
                self.first_payloads.append(data[:8])

    def close(self):
        self.stop = True
        self.thread.join(5)
        self.sock.close()


def test_live_migration_between_tls_hosts_is_encrypted(secure, secure_hosts):
    vm = secure.api.create_vm("secmover", secure.image["id"], secure.flavor["id"], host="kvm1",
                              user_data=TICKING)["vm"]
    secure.remember(vm["id"])
    secure.api.wait_console(vm["id"], "NIMBUS-READY")
    dom = nf.vm_domain(vm["id"])
    sniffer = Sniffer(f"nb{SET}_v1")  # every frame kvm1 sends or receives crosses its veth
    try:
        task = secure.api.action(vm["id"], "migrate", {"host": "kvm2"})
    finally:
        sniffer.close()
    after = secure.api.vm(vm["id"])
    assert after["host"] == "kvm2" and after["state"] == "running", (after, task)
    assert secure_hosts.virsh(2, "domstate", dom).stdout.strip() == "running"
    assert "dom:" + dom not in secure_hosts.libvirt_objects(1)
    # The guest's memory crossed the wire (a booted guest is megabytes), inside TLS: each
    # connection opens with a TLS handshake record, and QEMU's stream header never shows.
    assert sniffer.payload_bytes > 1 << 20, sniffer.payload_bytes
    assert sniffer.first_payloads, "no migration connection seen"
    for p in sniffer.first_payloads:
        assert p[0] == 0x16 and p[1] == 0x03, sniffer.first_payloads  # TLS handshake
    assert not sniffer.cleartext_magic
    secure.api.delete_vm(vm["id"])
