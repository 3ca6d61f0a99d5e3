"""Test hypervisor hosts for the cluster end-to-end tests: a thin wrapper around
scripts/testhosts.sh (read its header for what a host is).

Host i (1-based) is kvm<i>; its libvirtd listens on qemu+tcp://10.77.0.<10+i>/system, reachable
from the root namespace (where the tests and nimbusd run) without auth. Everything outside
/run/libvirt, /var/lib/libvirt, /var/log/libvirt, /etc/libvirt and /var/cache/libvirt is the
same filesystem on every host, so a disk under /tmp or /var/lib/nimbus is "shared storage".

Things a test must know:
  - QEMU runs as libvirt-qemu: every directory above a disk, seed or console log must be
    traversable by it (chmod 0711 a mkdtemp() directory).
  - Live migration between hosts needs VIR_MIGRATE_UNSAFE (virsh migrate --unsafe): libvirt
    only counts NFS, GFS2, Ceph... as shared storage, and a local directory is none of those.
  - Each host has its own NAT network "default" (192.168.122.0/24 in its own namespace), so a
    guest's DHCP lease lives in the dnsmasq of the host that gave it.

Usage, from a test module:

    from testhosts import testhosts  # noqa: F401  (the session fixture)

    def test_migrate(testhosts):
        testhosts.virsh(1, "list")
        testhosts.exec(2, "virsh", "-c", "qemu:///system", "list")
"""

import os
import subprocess

import pytest

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SCRIPT = os.path.join(REPO, "scripts", "testhosts.sh")
# NIMBUS_TESTHOSTS_SET=S (1..9) runs a separate set beside set 0 (scripts/testhosts.sh): its
# own namespaces, bridge, state dir and subnet 10.(77+S).0.0/24.
SET = int(os.environ.get("NIMBUS_TESTHOSTS_SET", "0") or 0)
SUBNET = f"10.{77 + SET}.0"
DEFAULT_STATE = "/run/nimbus-testhosts" + (f"-{SET}" if SET else "")


class TestHosts:
    """Starts, stops and reaches the test hosts. Every method runs scripts/testhosts.sh (as
    root) and raises CalledProcessError, with the script's stderr, if it fails."""

    __test__ = False  # not a test class, whatever pytest thinks of the name

    def __init__(self, state_dir=None):
        self.state_dir = state_dir  # None: the script's default, /run/nimbus-testhosts
        self.count = 0  # hosts started by start()

    # --- the script -----------------------------------------------------------------------

    def _script(self, *args, timeout=120):
        argv = [SCRIPT, *args]
        if self.state_dir:
            argv += ["--state", self.state_dir]
        p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        if p.returncode != 0:
            raise subprocess.CalledProcessError(p.returncode, argv, p.stdout, p.stderr)
        return p

    # --- lifecycle ------------------------------------------------------------------------

    def start(self, n):
        """Starts kvm1..kvm<n> (1 <= n <= 8), tearing down any earlier set first. Returns once
        every libvirtd answers over TCP and its network "default" is active."""
        self._script("start", str(n))
        self.count = n

    def stop(self):
        """Destroys the hosts' guests, ends every process of the hosts and removes their
        namespaces, bridge and state. Safe to call when nothing runs."""
        self._script("stop")
        self.count = 0

    def kill_libvirtd(self, i):
        """SIGKILLs host i's libvirtd; its guests (QEMU processes) keep running."""
        self._script("kill-libvirtd", str(i))

    def start_libvirtd(self, i):
        """Starts host i's libvirtd again (in the same namespaces) and waits until it answers."""
        self._script("start-libvirtd", str(i))

    def status(self):
        """One line per host: 'kvm<i> <uri> up (libvirtd pid N)' or '... down'."""
        return self._script("status").stdout

    # --- reaching a host ------------------------------------------------------------------

    def hosts(self):
        """Host numbers started, 1..count."""
        return list(range(1, self.count + 1))

    @staticmethod
    def name(i):
        return f"kvm{i}"

    @staticmethod
    def ip(i):
        return f"{SUBNET}.{10 + i}"

    def uri(self, i):
        """The libvirt URI of host i, usable from the root namespace (and from other hosts)."""
        return f"qemu+tcp://{self.ip(i)}/system"

    # --- its nimbus-agent -------------------------------------------------------------------

    def agent_dir(self, i):
        """Host i's agent directory (cert.pem, secret, state/, agent.log), made by
        scripts/start-agent.sh inside the test hosts' state dir."""
        return os.path.join(self.state_dir or DEFAULT_STATE, f"kvm{i}", "agent")

    def agent_url(self, i):
        return f"https://{self.ip(i)}:8775"

    def agent_secret_file(self, i):
        """The file with host i's agent secret, or None when the host has no agent (not built)."""
        f = os.path.join(self.agent_dir(i), "secret")
        return f if os.path.exists(f) else None

    def agent_ca_file(self):
        """Every host's agent certificate in one PEM bundle: nimbusd's agent-ca-file."""
        return os.path.join(self.state_dir or DEFAULT_STATE, "agents-ca.pem")

    def tunnel_ip(self, i):
        """The VXLAN underlay address of host i (its eth0), and tunnel_dev() its device."""
        return self.ip(i)

    @staticmethod
    def tunnel_dev(i):
        return "eth0"

    def exec(self, i, *argv, check=False, timeout=60):
        """Runs argv inside host i (its network, mount and UTS namespaces); returns the
        CompletedProcess (text output captured). check=True raises on a non-zero exit."""
        argv_all = [SCRIPT, "exec", str(i)]
        if self.state_dir:
            argv_all += ["--state", self.state_dir]
        argv_all += ["--", *argv]
        return subprocess.run(argv_all, capture_output=True, text=True, check=check,
                              timeout=timeout)

    def virsh(self, i, *args, check=False, timeout=60):
        """Runs `virsh -c <uri(i)> args...` from the root namespace; returns the
        CompletedProcess (text output captured). check=True raises on a non-zero exit."""
        return subprocess.run(["virsh", "-c", self.uri(i), *args], capture_output=True,
                              text=True, check=check, timeout=timeout)

    def domains(self, i):
        """Names of the running domains on host i."""
        out = self.virsh(i, "list", "--name", check=True).stdout
        return {line.strip() for line in out.splitlines() if line.strip()}


@pytest.fixture(scope="session")
def testhosts():
    """Three test hosts (kvm1..kvm3) for the whole session; always stopped at the end, even
    when a test failed or the start itself failed half-way."""
    hosts = TestHosts()
    try:
        hosts.start(3)
        yield hosts
    finally:
        hosts.stop()
