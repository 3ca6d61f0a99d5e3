"""vxlan networks across hosts: one nimbusd, two namespace test hosts (scripts/testhosts.sh) each
with its nimbus-agent and its eth0 as the VXLAN underlay (tunnel_ip 10.77.0.1<i>).

Project A's vxlan network carries a1 on kvm1 and a2 on kvm2, which reach each other by their
Nimbus addresses; project B's vxlan network has the same CIDR and b1 on kvm1 with a2's address:
b1 reaches nothing of A, and a1 asking "a2's address" gets a2 (each guest answers on TCP 7000
with its own name). kvm1's flood list names kvm2's tunnel address while a VM of the network is
there, and not after it is deleted. The periodic check puts back a VXLAN device the agent was
made to forget. Bad input is refused with stable codes, nothing changed.

nimbusd killed right after the plug of a third host (kvm3), and right after the unplug, converges
once restarted: the step runs again and the flood lists end exact.

Guests are the tiny test image, shared by the tests of this module; everything is torn down.
"""

import json
import re
import signal
import ssl
import urllib.request

import pytest

import nimbus_fixtures as nf
from testhosts import testhosts  # noqa: F401 - the session fixture

HOSTS = ("kvm1", "kvm2", "kvm3")
CIDR = "10.60.0.0/24"
A1_IP, A2_IP = "10.60.0.10", "10.60.0.20"
B1_IP = A2_IP  # b1 has a2's address, in B's network


def probe_script(name, my_ip, target):
    """user-data: answers "who-<name>" on TCP 7000, and once its address is up probes target
    every second: VX-PROBE <name> ping=ok|FAIL who=<the answer>|FAIL."""
    return f"""#!/bin/sh
printf '#!/bin/sh\\necho who-{name}\\n' > /who.sh; chmod +x /who.sh
nc -ll -p 7000 -e /who.sh &
( until ip -4 addr show eth0 | grep -q '{my_ip}/'; do sleep 1; done; echo VX-UP-{name}
  while true; do
    p=FAIL; ping -c1 -W2 {target} >/dev/null 2>&1 && p=ok
    w=$(nc -w3 {target} 7000 </dev/null 2>/dev/null); [ -n "$w" ] || w=FAIL
    echo "VX-PROBE {name} ping=$p who=$w"
    sleep 1
  done ) &
"""


@pytest.fixture(scope="module")
def vx(make_env, tiny_image, testhosts):  # noqa: F811 - the fixture imported above
    if not testhosts.agent_secret_file(1):
        pytest.fail("the test hosts have no nimbus-agent (is it built in NIMBUS_BUILD_DIR?)")
    env = make_env("vxlan")
    env.daemon.extra_args += ["--agent-ca-file", testhosts.agent_ca_file()]
    env.daemon.start()
    nf.join_test_hosts(env, testhosts, tiny_image, HOSTS)
    # One admin per project: VMs placed by hand (`host`) need an admin, and a network belongs
    # to its creator's project.
    env.pa = env.api.ok("POST", "/v1/projects", {"name": "vx-a"}, expect=201)
    env.pb = env.api.ok("POST", "/v1/projects", {"name": "vx-b"}, expect=201)
    _, env.ua, _ = nf.make_user(env.api, "vx-admin-a", "vx-password-a1", env.pa["id"], "admin")
    _, env.ub, _ = nf.make_user(env.api, "vx-admin-b", "vx-password-b1", env.pb["id"], "admin")
    env.images = {env.ua: nf.upload_image_as(env.ua, env, "vx-tiny", tiny_image),
                  env.ub: nf.upload_image_as(env.ub, env, "vx-tiny", tiny_image)}
    yield env
    nf.delete_all_vms(env)
    for api in (env.ua, env.ub):
        for n in api.get("/v1/networks")["networks"]:
            if n["project"] in (env.pa["id"], env.pb["id"]):
                api.request("DELETE", f"/v1/networks/{n['id']}")
    env.teardown()


@pytest.fixture(scope="module")
def guests(vx):
    """Networks A and B, a1 on kvm1, a2 on kvm2 (A) and b1 on kvm1 (B), booted."""
    na = vx.ua.ok("POST", "/v1/networks", {"name": "vxa", "type": "vxlan", "cidr": CIDR},
                  expect=201)
    nb = vx.ub.ok("POST", "/v1/networks", {"name": "vxb", "type": "vxlan", "cidr": CIDR},
                  expect=201)
    assert (na["dhcp"], na["mtu"], na["gateway"]) == (False, 1450, "10.60.0.1"), na
    assert na["vni"] >= 4096 and nb["vni"] >= 4096 and na["vni"] != nb["vni"], (na, nb)
    vms = {}
    for api, name, host, net, ip, target in (
            (vx.ua, "a1", "kvm1", "vxa", A1_IP, A2_IP),
            (vx.ua, "a2", "kvm2", "vxa", A2_IP, A1_IP),
            (vx.ub, "b1", "kvm1", "vxb", B1_IP, A1_IP)):
        r = api.ok("POST", "/v1/vms", {
            "name": name, "image": vx.images[api]["id"], "flavor": vx.flavor["id"], "host": host,
            "networks": [{"network": net, "ip": ip}],
            "user_data": probe_script(name, ip, target)}, expect=202)
        vx.remember(r["vm"]["id"])
        vms[name] = r
    for name, r in vms.items():
        vx.api.wait_task(r["task"]["id"])
        vms[name] = vx.api.vm(r["vm"]["id"])
    return {"na": na, "nb": nb, **vms}


def fdb_peers(vx, i, vni):
    """The flood list (all-zero MAC entries) of nbx<vni> on host i; None without the device."""
    p = vx.hosts.exec(i, "bridge", "fdb", "show", "dev", f"nbx{vni}")
    if p.returncode != 0:
        assert "does not exist" in p.stderr or "Cannot find device" in p.stderr, p
        return None
    return {m.group(1) for m in re.finditer(r"^00:00:00:00:00:00 dst (\S+)", p.stdout, re.M)}


def link_exists(vx, i, dev):
    return vx.hosts.exec(i, "ip", "link", "show", dev).returncode == 0


def test_bad_input_refused(vx):
    nets = vx.api.get("/v1/networks")["networks"]
    hosts = vx.api.get("/v1/hosts")["hosts"]
    taken = vx.ua.ok("POST", "/v1/networks", {"name": "vx-taken", "type": "vxlan",
                                              "cidr": "10.61.0.0/24", "vni": 777}, expect=201)
    cases = [
        ({"vni": 0}, 400, "NETWORK_INVALID_VNI"),
        ({"vni": 16777216}, 400, "NETWORK_INVALID_VNI"),
        ({"vni": 777}, None, "NETWORK_INVALID_VNI"),  # taken
    ]
    for extra, status, code in cases:
        body = {"name": "vx-bad", "type": "vxlan", "cidr": "10.62.0.0/24", **extra}
        r = vx.ua.request("POST", "/v1/networks", body)
        assert r.code == code and (status is None or r.status == status), (extra, r)
    vx.ua.ok("DELETE", f"/v1/networks/{taken['id']}", expect=204)
    with open(vx.hosts.agent_secret_file(1)) as f:
        secret = f.read().strip()
    base = {"name": "vx-bad-host", "uri": "qemu+tcp://10.77.0.99/system", "agent_secret": secret}
    host_cases = [
        ({"tunnel_ip": "not-an-ip", "tunnel_dev": "eth0"}, 400, "IP_INVALID"),
        ({"agent_url": "http://10.77.0.99:8775"}, 400, "INVALID_URI"),
        ({"agent_secret": "abc"}, 400, "INVALID_REQUEST"),
        ({"tunnel_ip": "10.77.0.99", "tunnel_dev": "nbr0"}, 400, "NETWORK_INVALID_IFNAME"),
    ]
    for extra, status, code in host_cases:
        r = vx.api.request("POST", "/v1/hosts", {**base, **extra})
        assert (r.status, r.code) == (status, code), (extra, r)
        assert secret not in r.text, "the secret came back in an error"
    # The CLI reads the secret from a file.
    secret_file = vx.hosts.agent_secret_file(1)
    p = vx.cli.run("host", "add", "vx-cli", "--uri", "qemu+tcp://10.77.0.99/system",
                   "--agent-secret-file", secret_file, "--agent-url", "http://10.77.0.99:8775",
                   check=False)
    assert p.returncode != 0 and "INVALID_URI" in p.stdout + p.stderr, p
    assert vx.api.get("/v1/networks")["networks"] == nets
    after = vx.api.get("/v1/hosts")["hosts"]
    assert [h["name"] for h in after] == [h["name"] for h in hosts]
    # The secret is never shown; that it is set is.
    for h in after:
        assert secret not in json.dumps(h)
        if h["name"] in HOSTS:
            i = int(h["name"][3:])
            assert h["agent"] == {"url": vx.hosts.agent_url(i), "secret_set": True}, h
            assert (h["tunnel_ip"], h["tunnel_dev"]) == (vx.hosts.ip(i), "eth0"), h
        else:
            assert h["agent"] is None, h
    added = vx.cli.json("host", "add", "vx-cli", "--uri", "qemu+tcp://10.77.0.99/system",
                        "--agent-secret-file", secret_file, "--tunnel-ip", "10.77.0.99",
                        "--tunnel-dev", "eth0")
    assert added["agent"] == {"url": "https://10.77.0.99:8775", "secret_set": True}, added
    assert secret not in json.dumps(added)
    vx.cli.run("host", "remove", "vx-cli")


def test_vxlan_reaches_across_hosts_and_isolates_projects(vx, guests):
    vni_a, vni_b = guests["na"]["vni"], guests["nb"]["vni"]
    for name in ("a1", "a2", "b1"):
        vm = guests[name]
        assert vm["state"] == "running", vm
        assert vm["nics"][0]["ip"] == {"a1": A1_IP, "a2": A2_IP, "b1": B1_IP}[name], vm
    # The domain's NIC is on the agent's bridge, with the network's MTU.
    xml = vx.hosts.virsh(1, "dumpxml", nf.vm_domain(guests["a1"]["id"]), check=True).stdout
    assert f"<source bridge='{guests['na']['bridge']}'/>" in xml, xml
    assert "<mtu size='1450'/>" in xml, xml
    # a1 and a2 reach each other; a1 asking a2's address gets a2, never b1 (same address in B).
    vx.api.wait_console(guests["a1"]["id"], "VX-PROBE a1 ping=ok who=who-a2", count=2)
    vx.api.wait_console(guests["a2"]["id"], "VX-PROBE a2 ping=ok who=who-a1", count=2)
    # b1 (kvm1, like a1) reaches nothing of A: several probes, none answered.
    vx.api.wait_console(guests["b1"]["id"], "VX-PROBE b1 ping=FAIL who=FAIL", count=3)
    assert "ping=ok" not in vx.api.console(guests["b1"]["id"])
    assert "who=who-a1" not in vx.api.console(guests["b1"]["id"])
    assert "who-b1" not in vx.api.console(guests["a1"]["id"])
    # Flood lists: kvm1 <-> kvm2 for A; B only on kvm1, with no peer; nothing on kvm3.
    assert fdb_peers(vx, 1, vni_a) == {vx.hosts.ip(2)}
    assert fdb_peers(vx, 2, vni_a) == {vx.hosts.ip(1)}
    assert fdb_peers(vx, 1, vni_b) == set()
    assert fdb_peers(vx, 3, vni_a) is None and fdb_peers(vx, 2, vni_b) is None


def agent_delete_vxlan(vx, i, vni):
    """Makes host i's agent forget a VXLAN (as a reboot with a lost state would): DELETE
    /v1/vxlan/{vni} with the host's own secret, the agent's certificate checked."""
    with open(vx.hosts.agent_secret_file(i)) as f:
        secret = f.read().strip()
    ctx = ssl.create_default_context(cafile=vx.hosts.agent_ca_file())
    req = urllib.request.Request(f"{vx.hosts.agent_url(i)}/v1/vxlan/{vni}", method="DELETE",
                                 headers={"Authorization": f"Bearer {secret}"})
    with urllib.request.urlopen(req, context=ctx, timeout=10) as r:
        assert r.status == 204


def test_periodic_check_restores_a_lost_vxlan(vx, guests):
    vni = guests["na"]["vni"]
    agent_delete_vxlan(vx, 2, vni)
    assert not link_exists(vx, 2, f"nbx{vni}")
    # nimbusd's own check (every 3 syncs; the e2e daemon syncs every 2 s) makes it again.
    # (The agent's DELETE took the bridge too, so a2's tap is out of it until a2 restarts:
    # what a reboot leaves is a bridge and a device to make, with no VM running yet.)
    nf.wait_until(lambda: fdb_peers(vx, 2, vni) == {vx.hosts.ip(1)}, 60,
                  f"nbx{vni} back on kvm2 with kvm1 as its peer")
    assert link_exists(vx, 2, guests["na"]["bridge"])


def request_and_die(vx, api, method, path, body=None):
    """A request to a daemon set up to SIGKILL itself at a task step; the reply may be lost."""
    try:
        r = api.request(method, path, body=nf._DEFAULT if body is None else body, timeout=30)
    except AssertionError:
        r = None
    if r is not None:
        assert r.status == 202, r
    assert vx.daemon.wait_dead(60) == -signal.SIGKILL, "nimbusd did not kill itself"


def restart(vx, crash_at=None):
    if vx.daemon.alive():
        vx.daemon.stop()
    vx.daemon.start(crash_at=crash_at)


def only_task(api, vm_id, kind):
    ts = [t for t in api.get(f"/v1/tasks?vm={vm_id}")["tasks"] if t["kind"] == kind]
    assert len(ts) == 1, ts
    return ts[0]


def test_crash_after_plug_and_after_unplug_converges(vx, guests):
    vni = guests["na"]["vni"]
    # vm.create step 2 is "networks": killed once it is done, before it is recorded.
    restart(vx, crash_at="vm.create:2")
    request_and_die(vx, vx.ua, "POST", "/v1/vms", {
        "name": "a3", "image": vx.images[vx.ua]["id"], "flavor": vx.flavor["id"], "host": "kvm3",
        "networks": [{"network": "vxa", "ip": "10.60.0.30"}]})
    restart(vx)
    vm = vx.ua.vm("a3")
    assert vm is not None, "VM a3 lost by the crash"
    task = only_task(vx.ua, vm["id"], "vm.create")
    vx.remember(vm["id"])
    vx.api.wait_task(task["id"])
    ip = vx.hosts.ip
    assert fdb_peers(vx, 1, vni) == {ip(2), ip(3)}
    assert fdb_peers(vx, 2, vni) == {ip(1), ip(3)}
    assert fdb_peers(vx, 3, vni) == {ip(1), ip(2)}
    # vm.delete step 1 is "unplug networks".
    restart(vx, crash_at="vm.delete:1")
    request_and_die(vx, vx.api, "DELETE", f"/v1/vms/{vm['id']}")
    restart(vx)
    task = only_task(vx.api, vm["id"], "vm.delete")
    vx.api.wait_task(task["id"])
    assert vx.api.vm(vm["id"]) is None
    assert fdb_peers(vx, 1, vni) == {ip(2)} and fdb_peers(vx, 2, vni) == {ip(1)}
    assert fdb_peers(vx, 3, vni) is None
    assert not link_exists(vx, 3, guests["na"]["bridge"])


def test_flood_list_follows_the_vms(vx, guests):
    vni = guests["na"]["vni"]
    assert fdb_peers(vx, 1, vni) == {vx.hosts.ip(2)}
    vx.api.delete_vm(guests["a2"]["id"])
    # kvm2 has no VM of A left: its devices are gone, and kvm1 floods to nobody.
    assert fdb_peers(vx, 1, vni) == set()
    assert not link_exists(vx, 2, f"nbx{vni}")
    assert not link_exists(vx, 2, guests["na"]["bridge"])
    assert link_exists(vx, 1, guests["na"]["bridge"])
    # b1's network is untouched.
    assert fdb_peers(vx, 1, guests["nb"]["vni"]) == set()
    vx.api.delete_vm(guests["a1"]["id"])
    assert fdb_peers(vx, 1, vni) is None and not link_exists(vx, 1, guests["na"]["bridge"])
    # The network goes once unused; its VNI is free again.
    vx.ua.ok("DELETE", f"/v1/networks/{guests['na']['id']}", expect=204)
