"""DHCP on a vxlan network across hosts: each host with a VM of the network runs, through its
nimbus-agent, one dnsmasq for it in a network namespace of its own (veth nbd<key> in the
network's bridge, nbe<key> inside), answering only the MACs of that host's VMs.

d1 on kvm1 and d2 on kvm2 take their Nimbus addresses by DHCP (the guest's udhcpc, as the
network-config marks the NIC "# nimbus: dhcp") and ping each other. The servers show in `port
list` as owner dhcp:<host>, with addresses of the network no VM has, and each host's hosts file
names only its own VM. d2's live migration to kvm3 moves its entry to kvm3's server (kvm2's goes,
with its veth and namespace); an agent restart on kvm1 brings its server back; then d1 and d2
stopped and started take the same addresses by DHCP again, from kvm1's restarted server and
kvm3's. nimbusd killed right after the network step of a create, and of a delete, converges
once restarted. The last VM deleted leaves no dnsmasq, veth or namespace on any host, and no
server row.

The same on a shared bridged network (provider): an operator's bridge made by the test in kvm1
and kvm2, the two joined into one L2 segment by a veth pair between the hosts' namespaces; b1
and b2 take their addresses by DHCP, ping each other, and leave nothing of the servers.

Guests are the tiny test image, shared by the tests of this module; everything is torn down.
"""

import os
import signal
import subprocess

import pytest

import nimbus_fixtures as nf
from testhosts import SET, testhosts  # noqa: F401 - the session fixture

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
HOSTS = ("kvm1", "kvm2", "kvm3")
CIDR = "10.63.0.0/24"
D1_IP, D2_IP = "10.63.0.10", "10.63.0.20"


def probe_script(name, my_ip, target):
    """user-data: once eth0 has its address (from DHCP), pings target every second:
    DH-PROBE <name> ping=ok|FAIL."""
    return f"""#!/bin/sh
( until ip -4 addr show eth0 | grep -q '{my_ip}/'; do sleep 1; done
  while true; do
    p=FAIL; ping -c1 -W2 {target} >/dev/null 2>&1 && p=ok
    echo "DH-PROBE {name} ping=$p"
    sleep 1
  done ) &
"""


def nic_line(vm):
    nic = vm["nics"][0]
    return f"NIMBUS-NIC eth0 {nic['mac']} {nic['ip']}/24 dhcp"


@pytest.fixture(scope="module")
def dh(make_env, tiny_image, testhosts):  # noqa: F811 - the fixture imported above
    if not testhosts.agent_secret_file(1):
        pytest.fail("the test hosts have no nimbus-agent (is it built in NIMBUS_BUILD_DIR?)")
    env = make_env("dhcp-overlay")
    env.daemon.extra_args += ["--agent-ca-file", testhosts.agent_ca_file()]
    env.daemon.start()
    nf.join_test_hosts(env, testhosts, tiny_image, HOSTS)
    env.hosts = testhosts
    yield env
    nf.delete_all_vms(env)
    for n in env.api.get("/v1/networks")["networks"]:
        if n["name"] in ("dhx", "dhb"):
            env.api.request("DELETE", f"/v1/networks/{n['id']}")
    env.teardown()


@pytest.fixture(scope="module")
def guests(dh):
    net = dh.api.ok("POST", "/v1/networks", {"name": "dhx", "type": "vxlan", "cidr": CIDR,
                                             "dhcp": True}, expect=201)
    assert (net["dhcp"], net["mtu"]) == (True, 1450), net
    vms = {}
    for name, host, ip, target in (("d1", "kvm1", D1_IP, D2_IP), ("d2", "kvm2", D2_IP, D1_IP)):
        r = dh.api.ok("POST", "/v1/vms", {
            "name": name, "image": dh.image["id"], "flavor": dh.flavor["id"], "host": host,
            "networks": [{"network": "dhx", "ip": ip}],
            "user_data": probe_script(name, ip, target)}, expect=202)
        dh.remember(r["vm"]["id"])
        vms[name] = r
    for name, r in vms.items():
        dh.api.wait_task(r["task"]["id"])
        vms[name] = dh.api.vm(r["vm"]["id"])
    return {"net": net, "key": net["bridge"][3:], **vms}


def servers(dh, net):
    """The network's DHCP servers in the port list: {host: port}."""
    ports = dh.api.get(f"/v1/ports?network={net['id']}")["ports"]
    return {p["owner"][len("dhcp:"):]: p for p in ports if p.get("owner", "").startswith("dhcp:")}


def hosts_file(dh, i, key):
    """Host i's agent's hosts file of the server, as lines; None without one."""
    path = os.path.join(dh.hosts.agent_dir(i), "state", "dhcp", f"{key}.hosts")
    try:
        with open(path) as f:
            return sorted(line.strip() for line in f if line.strip())
    except FileNotFoundError:
        return None


def dnsmasq_pids(key):
    """The pids of the dnsmasqs serving the network (the processes are in the one pid space)."""
    p = subprocess.run(["pgrep", "-f", f"dnsmasq .*interface=nbe{key}"], capture_output=True,
                       text=True)
    return {int(x) for x in p.stdout.split()}


def host_netns(i):
    return os.stat(f"/run/netns/nb{SET}_host{i}" if SET else f"/run/netns/nbhost{i}").st_ino


def veth_exists(dh, i, key):
    return dh.hosts.exec(i, "ip", "link", "show", f"nbd{key}").returncode == 0


def server_on(dh, i, key):
    """(dnsmasq pid, veth present) of the server on host i: its dnsmasq is the one whose network
    namespace's veth peer is in host i's bridge; found through the agent's pid file."""
    path = os.path.join(dh.hosts.agent_dir(i), "state", "dhcp", f"{key}.pid")
    try:
        with open(path) as f:
            pid = int(f.read().strip())
    except FileNotFoundError:
        return None, veth_exists(dh, i, key)
    return (pid if pid in dnsmasq_pids(key) else None), veth_exists(dh, i, key)


def test_guests_take_their_addresses_by_dhcp_and_reach_each_other(dh, guests):
    key = guests["key"]
    for name, ip in (("d1", D1_IP), ("d2", D2_IP)):
        vm = guests[name]
        assert vm["state"] == "running" and vm["nics"][0]["ip"] == ip, vm
        dh.api.wait_console(vm["id"], nic_line(vm))
    dh.api.wait_console(guests["d1"]["id"], "DH-PROBE d1 ping=ok", count=2)
    dh.api.wait_console(guests["d2"]["id"], "DH-PROBE d2 ping=ok", count=2)
    # One server per host of the network, each with an address of it no VM has.
    srv = servers(dh, guests["net"])
    assert set(srv) == {"kvm1", "kvm2"}, srv
    addrs = {p["ip"] for p in srv.values()}
    assert len(addrs) == 2 and not addrs & {D1_IP, D2_IP}, srv
    assert all(a.startswith("10.63.0.") and a != "10.63.0.1" for a in addrs), srv
    assert all(p["vm_id"] is None for p in srv.values()), srv
    # Each host's server knows only its own VM.
    assert hosts_file(dh, 1, key) == [f"{guests['d1']['nics'][0]['mac']},{D1_IP}"]
    assert hosts_file(dh, 2, key) == [f"{guests['d2']['nics'][0]['mac']},{D2_IP}"]
    assert hosts_file(dh, 3, key) is None
    # dnsmasq runs in a namespace of its own (not the host's), its veth in the host's bridge.
    for i in (1, 2):
        pid, veth = server_on(dh, i, key)
        assert pid and veth, (i, pid, veth)
        assert os.stat(f"/proc/{pid}/ns/net").st_ino != host_netns(i)
        link = dh.hosts.exec(i, "ip", "-o", "link", "show", f"nbd{key}").stdout
        assert f"master {guests['net']['bridge']}" in link, link
    # The CLI shows them as such.
    out = dh.cli.run("port", "list", "--network", "dhx").stdout
    assert "dhcp:kvm1" in out and "dhcp:kvm2" in out, out


def test_migration_moves_the_entry_and_restarts_keep_the_address(dh, guests):
    key, d1, d2 = guests["key"], guests["d1"], guests["d2"]
    old_pid_kvm1, _ = server_on(dh, 1, key)
    # d2 live to kvm3: its entry moves with it; kvm2 keeps nothing of the server.
    dh.api.action(d2["id"], "migrate", {"host": "kvm3"})
    assert dh.api.vm(d2["id"])["host"] == "kvm3"
    assert hosts_file(dh, 3, key) == [f"{d2['nics'][0]['mac']},{D2_IP}"]
    assert hosts_file(dh, 2, key) is None
    assert server_on(dh, 2, key) == (None, False)
    assert set(servers(dh, guests["net"])) == {"kvm1", "kvm3"}
    assert dh.api.vm(d2["id"])["nics"][0]["ip"] == D2_IP
    # kvm1's agent restarted: its server comes back (a new dnsmasq, the same hosts).
    agent_dir = dh.hosts.agent_dir(1)
    with open(os.path.join(agent_dir, "agent.pid")) as f:
        agent_pid = int(f.read().strip())
    os.kill(agent_pid, signal.SIGTERM)
    nf.wait_until(lambda: not os.path.exists(f"/proc/{agent_pid}"), 20, "the agent stopped")
    assert server_on(dh, 1, key)[0] is None, "dnsmasq outlived its agent"
    env = dict(os.environ, NIMBUS_AGENT=os.path.join(os.environ["NIMBUS_BUILD_DIR"], "src",
                                                     "agent", "nimbus-agent"))
    ip = dh.hosts.ip(1)
    subprocess.run([os.path.join(REPO, "scripts", "start-agent.sh"), agent_dir, "--netns",
                    f"nb{SET}_host1" if SET else "nbhost1", "--listen", f"{ip}:8775", "--san", ip,
                    "--san", "kvm1", "--check-interval", "5"], env=env, check=True, timeout=60)
    pid, veth = nf.wait_until(lambda: (lambda s: s if s[0] and s[1] else None)(
        server_on(dh, 1, key)), 30, "kvm1's DHCP server back")
    assert pid != old_pid_kvm1
    assert hosts_file(dh, 1, key) == [f"{d1['nics'][0]['mac']},{D1_IP}"]
    # Stopped and started, both take the same address by DHCP again: d1 from the restarted
    # server on kvm1, d2 from kvm3's.
    for vm in (d1, d2):
        dh.api.action(vm["id"], "stop")
    for vm in (d1, d2):
        dh.api.action(vm["id"], "start")
    for vm in (d1, d2):
        dh.api.wait_console(vm["id"], nic_line(vm), count=2)
        shown = dh.api.vm(vm["id"])
        assert shown["state"] == "running" and shown["nics"][0]["ip"] == vm["nics"][0]["ip"]
    marker = len(dh.api.console(d1["id"]))
    nf.wait_until(lambda: "DH-PROBE d1 ping=ok" in dh.api.console(d1["id"])[marker:], 120,
                  "d1 pings d2 after both restarted")


def restart(dh, crash_at=None):
    if dh.daemon.alive():
        dh.daemon.stop()
    dh.daemon.start(crash_at=crash_at)


def request_and_die(dh, method, path, body=None):
    """A request to a daemon set up to SIGKILL itself at a task step; the reply may be lost."""
    try:
        r = dh.api.request(method, path, body=nf._DEFAULT if body is None else body, timeout=30)
    except AssertionError:
        r = None
    if r is not None:
        assert r.status == 202, r
    assert dh.daemon.wait_dead(60) == -signal.SIGKILL, "nimbusd did not kill itself"


def only_task(dh, vm_id, kind):
    ts = [t for t in dh.api.get(f"/v1/tasks?vm={vm_id}")["tasks"] if t["kind"] == kind]
    assert len(ts) == 1, ts
    return ts[0]


def test_crash_after_plug_and_after_unplug_converges(dh, guests):
    """nimbusd killed right after the network step of a create on kvm2 (no VM of the network
    there any more), and right after the unplug of its delete: the reruns leave the server
    exact, then gone, with its row."""
    key = guests["key"]
    restart(dh, crash_at="vm.create:2")
    request_and_die(dh, "POST", "/v1/vms", {
        "name": "d3", "image": dh.image["id"], "flavor": dh.flavor["id"], "host": "kvm2",
        "networks": [{"network": "dhx", "ip": "10.63.0.30"}]})
    restart(dh)
    vm = dh.api.vm("d3")
    assert vm is not None, "VM d3 lost by the crash"
    dh.remember(vm["id"])
    dh.api.wait_task(only_task(dh, vm["id"], "vm.create")["id"])
    # The module's other guests on kvm2 (none once the migration test has moved d2 away; this
    # test may also run alone, as CI runs the crash tests apart).
    others = [f"{g['nics'][0]['mac']},{g['nics'][0]['ip']}"
              for g in (dh.api.vm(guests[n]["id"]) for n in ("d1", "d2")) if g["host"] == "kvm2"]
    assert hosts_file(dh, 2, key) == sorted(others + [f"{vm['nics'][0]['mac']},10.63.0.30"])
    assert all(server_on(dh, 2, key)), server_on(dh, 2, key)
    assert "kvm2" in servers(dh, guests["net"])
    restart(dh, crash_at="vm.delete:1")
    request_and_die(dh, "DELETE", f"/v1/vms/{vm['id']}")
    restart(dh)
    dh.api.wait_task(only_task(dh, vm["id"], "vm.delete")["id"])
    assert dh.api.vm(vm["id"]) is None
    if others:
        assert hosts_file(dh, 2, key) == sorted(others)
    else:
        assert server_on(dh, 2, key) == (None, False)
        assert hosts_file(dh, 2, key) is None
        assert "kvm2" not in servers(dh, guests["net"])


def test_last_vm_gone_leaves_nothing(dh, guests):
    key = guests["key"]
    for name in ("d1", "d2"):
        dh.api.delete_vm(guests[name]["id"])
    assert servers(dh, guests["net"]) == {}
    for i in (1, 2, 3):
        assert server_on(dh, i, key) == (None, False), i
        assert hosts_file(dh, i, key) is None, i
    assert dnsmasq_pids(key) == set()
    # No network namespace of the network's servers is left (a namespace lives as long as its
    # dnsmasq; nothing else holds one).
    ns = subprocess.run(["lsns", "-t", "net", "-o", "PID,COMMAND", "--noheadings"],
                        capture_output=True, text=True, check=True).stdout
    assert f"nbe{key}" not in ns, ns
    dh.api.ok("DELETE", f"/v1/networks/{guests['net']['id']}", expect=204)


# --- a bridged (provider) network with DHCP ---------------------------------------------------

PROV_BRIDGE = "nbtbr0"  # the operator's br0; named with the agent's tap prefix, which it allows
PROV_CIDR = "10.62.34.0/24"
B1_IP, B2_IP = "10.62.34.10", "10.62.34.20"


def netns_name(i):
    return f"nb{SET}_host{i}" if SET else f"nbhost{i}"


def ip_in(i, *argv):
    """`ip argv` in host i's network namespace, from the root one (which sees both hosts')."""
    return subprocess.run(["ip", "-n", netns_name(i), *argv], capture_output=True, text=True,
                          timeout=30)


def remove_provider_segment():
    for i in (1, 2):
        ip_in(i, "link", "del", "nbpl")  # a veth goes with its peer
        ip_in(i, "link", "del", PROV_BRIDGE)


def test_bridged_network_dhcp_across_hosts(dh):
    """kvm1 and kvm2 each have the operator's bridge, joined into one L2 segment by a veth pair
    between their namespaces; a shared bridged network with DHCP on it: b1 on kvm1 and b2 on
    kvm2 take their addresses from their host's agent's dnsmasq, whose veth is in the operator's
    bridge, and ping each other. The last VM gone leaves no server, veth or namespace; the
    operator's bridges stay (the test removes them)."""
    remove_provider_segment()  # what an interrupted earlier run left
    net, vm_ids = None, []
    try:
        for i in (1, 2):
            for argv in (("link", "add", PROV_BRIDGE, "type", "bridge"),
                         ("link", "set", PROV_BRIDGE, "up")):
                r = ip_in(i, *argv)
                assert r.returncode == 0, (i, argv, r.stderr)
        r = ip_in(1, "link", "add", "nbpl", "type", "veth", "peer", "name", "nbpl", "netns",
                  netns_name(2))
        assert r.returncode == 0, r.stderr
        for i in (1, 2):
            r = ip_in(i, "link", "set", "nbpl", "master", PROV_BRIDGE, "up")
            assert r.returncode == 0, (i, r.stderr)
        net = dh.api.ok("POST", "/v1/networks", {
            "name": "dhb", "type": "bridged", "bridge": PROV_BRIDGE, "cidr": PROV_CIDR,
            "dhcp": True, "shared": True}, expect=201)
        assert (net["type"], net["bridge"], net["dhcp"]) == ("bridged", PROV_BRIDGE, True), net
        key = net["id"].replace("-", "")[:12]
        vms = {}
        for name, host, ip, target in (("b1", "kvm1", B1_IP, B2_IP),
                                       ("b2", "kvm2", B2_IP, B1_IP)):
            r = dh.api.ok("POST", "/v1/vms", {
                "name": name, "image": dh.image["id"], "flavor": dh.flavor["id"], "host": host,
                "networks": [{"network": "dhb", "ip": ip}],
                "user_data": probe_script(name, ip, target)}, expect=202)
            dh.remember(r["vm"]["id"])
            vm_ids.append(r["vm"]["id"])
            vms[name] = r
        for name, r in vms.items():
            dh.api.wait_task(r["task"]["id"])
            vms[name] = dh.api.vm(r["vm"]["id"])
        for name, ip in (("b1", B1_IP), ("b2", B2_IP)):
            vm = vms[name]
            assert vm["state"] == "running" and vm["nics"][0]["ip"] == ip, vm
            # udhcpc printed what it was given: the guest's Nimbus address came by DHCP.
            dh.api.wait_console(vm["id"], nic_line(vm))
        # One server per host, in the operator's bridge, each on its own namespace.
        srv = servers(dh, net)
        assert set(srv) == {"kvm1", "kvm2"}, srv
        assert not {p["ip"] for p in srv.values()} & {B1_IP, B2_IP}, srv
        assert hosts_file(dh, 1, key) == [f"{vms['b1']['nics'][0]['mac']},{B1_IP}"]
        assert hosts_file(dh, 2, key) == [f"{vms['b2']['nics'][0]['mac']},{B2_IP}"]
        for i in (1, 2):
            pid, veth = server_on(dh, i, key)
            assert pid and veth, (i, pid, veth)
            assert os.stat(f"/proc/{pid}/ns/net").st_ino != host_netns(i)
            link = dh.hosts.exec(i, "ip", "-o", "link", "show", f"nbd{key}").stdout
            assert f"master {PROV_BRIDGE}" in link, link
        dh.api.wait_console(vms["b1"]["id"], "DH-PROBE b1 ping=ok", count=2)
        dh.api.wait_console(vms["b2"]["id"], "DH-PROBE b2 ping=ok", count=2)
        # The last VM gone: no server, veth, dnsmasq or namespace is left; the bridges stay.
        for name in ("b1", "b2"):
            dh.api.delete_vm(vms[name]["id"])
        assert servers(dh, net) == {}
        for i in (1, 2, 3):
            assert server_on(dh, i, key) == (None, False), i
            assert hosts_file(dh, i, key) is None, i
        assert dnsmasq_pids(key) == set()
        ns = subprocess.run(["lsns", "-t", "net", "-o", "PID,COMMAND", "--noheadings"],
                            capture_output=True, text=True, check=True).stdout
        assert f"nbe{key}" not in ns, ns
        dh.api.ok("DELETE", f"/v1/networks/{net['id']}", expect=204)
        net = None
        for i in (1, 2):
            assert ip_in(i, "link", "show", PROV_BRIDGE).returncode == 0, \
                "the operator's bridge must stay"
    finally:
        if net is not None:
            for vm_id in vm_ids:  # the module's teardown deletes what is still left
                try:
                    v = dh.api.vm(vm_id)
                    if v and v["task_id"]:
                        dh.api.wait_task(v["task_id"], expect=None)
                    dh.api.delete_vm(vm_id)
                except AssertionError as e:
                    print(f"cleanup of VM {vm_id} failed: {e}")
            dh.api.request("DELETE", f"/v1/networks/{net['id']}")
        remove_provider_segment()
