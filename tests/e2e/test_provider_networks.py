"""Provider networks (admin, usually shared): bridged and vlan (issue 9; docs/networking.md).

- bridged: a real guest on an existing host bridge (made here in the root namespace, with the
  provider's gateway address on it) comes up with its Nimbus address from network-config, and
  the host reaches it over the bridge; its NIC is a plain bridge interface.
- vlan: the segment is the agent's (a bridge with an 802.1Q uplink on the parent). This machine's
  kernel has no 802.1Q, so the VM's create fails with the kernel's refusal and leaves nothing
  (no bridge, no port, no record of the network on the host); on a kernel with 802.1Q the VM
  runs with its NIC in the segment's bridge. What the agent asks the kernel for is golden-tested
  (tests/unit/test_agent_net.c).
Own nimbusd with a local nimbus-agent (scripts/start-agent.sh), addresses in 192.0.2.0/24
(TEST-NET-1) and 10.188.0.0/16.
"""

import os
import subprocess
import xml.etree.ElementTree as ET

import pytest

import nimbus_fixtures as nf

BRIDGE = "nbprov0"  # not one of the agent's own prefixes (nbr, nbx, nbv, nbi, nbt)
GATEWAY = "192.0.2.1"


class T:
    pass


def run(*argv, check=True):
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=check)


@pytest.fixture(scope="module")
def prov(make_env, e2e_root, tiny_image):
    if os.geteuid() != 0:
        pytest.skip("makes a host bridge and runs the agent: run as root")
    root, _ = e2e_root
    run("ip", "link", "del", BRIDGE, check=False)
    run("ip", "link", "add", BRIDGE, "type", "bridge")
    run("ip", "addr", "add", f"{GATEWAY}/24", "dev", BRIDGE)
    run("ip", "link", "set", BRIDGE, "up")
    agent = nf.LocalAgent(os.path.join(root, "agent-prov"))
    env = make_env("prov")
    env.daemon.net_pool = "10.188.0.0/16"
    env.daemon.extra_args = list(agent.daemon_args)
    t = T()
    t.env, t.api = env, env.api
    try:
        env.daemon.start()
        t.image = nf.upload_image(env, "tiny", tiny_image)
        nf.create_small_flavor(env)
        yield t
    finally:
        nf.delete_all_vms(env)
        env.teardown()
        agent.stop()
        run("ip", "link", "del", BRIDGE, check=False)


def test_bridged_guest_on_host_bridge(prov):
    t = prov
    net = t.api.ok("POST", "/v1/networks", {"name": "prov", "type": "bridged", "bridge": BRIDGE,
                                            "cidr": "192.0.2.0/24", "gateway": GATEWAY,
                                            "shared": True}, expect=201)
    assert (net["type"], net["bridge"], net["dhcp"]) == ("bridged", BRIDGE, False), net
    r = t.api.ok("POST", "/v1/vms", {"name": "pv1", "image": t.image["id"],
                                     "flavor": "e2e-small", "networks": [{"network": "prov"}]},
                 expect=202)
    vm = r["vm"]
    t.env.remember(vm["id"])
    t.api.wait_task(r["task"]["id"])
    vm = t.api.vm(vm["id"])
    nic = vm["nics"][0]
    ip = nic["ip"]
    assert ip.startswith("192.0.2.") and ip != GATEWAY, nic
    root = ET.fromstring(nf.virsh("dumpxml", nf.vm_domain(vm["id"])).stdout)
    iface = root.find("./devices/interface")
    assert iface.get("type") == "bridge" and iface.find("source").get("bridge") == BRIDGE, \
        ET.tostring(iface, encoding="unicode")
    t.api.wait_console(vm["id"], f"NIMBUS-NIC eth0 {nic['mac']} {ip}/24 static")
    # Security groups (the project's default one) admit only members: let the host's pings in.
    if t.api.request("GET", "/v1/secgroups/default").status == 200:
        t.api.ok("POST", "/v1/secgroups/default/rules",
                 {"direction": "ingress", "protocol": "icmp", "cidr": f"{GATEWAY}/32"},
                 expect=(200, 201))
    nf.wait_until(lambda: run("ping", "-c", "1", "-W", "1", ip, check=False).returncode == 0,
                  60, f"the guest {ip} answering pings over {BRIDGE}")
    # The network is in use while the VM has a port on it.
    r = t.api.request("DELETE", "/v1/networks/prov")
    assert (r.status, r.code) == (409, "NETWORK_IN_USE"), r
    t.api.delete_vm(vm["id"])
    t.api.ok("DELETE", "/v1/networks/prov", expect=204)
    assert run("ip", "link", "show", BRIDGE, check=False).returncode == 0, \
        "the operator's bridge must stay"


def kernel_has_8021q():
    r = run("ip", "link", "add", "link", BRIDGE, "name", "nbprovq", "type", "vlan", "id", "9",
            check=False)
    run("ip", "link", "del", "nbprovq", check=False)
    return r.returncode == 0


def test_vlan_segment(prov):
    t = prov
    net = t.api.ok("POST", "/v1/networks", {"name": "v42", "type": "vlan", "vlan": 42,
                                            "parent": BRIDGE, "cidr": "198.51.100.0/24",
                                            "shared": True}, expect=201)
    seg_bridge = net["bridge"]
    assert seg_bridge.startswith("nbr") and net["vlan"] == 42 and net["dhcp"] is False, net
    r = t.api.ok("POST", "/v1/vms", {"name": "pv2", "image": t.image["id"],
                                     "flavor": "e2e-small", "networks": [{"network": "v42"}]},
                 expect=202)
    vm_id = r["vm"]["id"]
    t.env.remember(vm_id)
    dev = "nbv" + seg_bridge[3:]
    if kernel_has_8021q():
        t.api.wait_task(r["task"]["id"])
        link = run("ip", "-d", "link", "show", dev).stdout
        assert "vlan protocol 802.1Q id 42" in link and f"master {seg_bridge}" in link, link
        t.api.delete_vm(vm_id)
    else:
        task = t.api.wait_task(r["task"]["id"], expect="failed")
        assert task["error"]["code"] == "HYPERVISOR_ERROR", task
        assert "VLAN" in task["error"]["message"], task
        vm = t.api.vm(vm_id)
        assert nf.domstate(nf.vm_domain(vm_id)) != "running", vm
        t.api.delete_vm(vm_id)
    # Nothing of the segment is left on the host, and the network can go.
    links = run("ip", "-br", "link").stdout
    assert seg_bridge not in links and dev not in links, links
    assert t.api.get("/v1/ports?network=v42")["ports"] == []
    t.api.ok("DELETE", "/v1/networks/v42", expect=204)
