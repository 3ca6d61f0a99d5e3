"""Bandwidth limits per NIC (issue 9; docs/networking.md "Bandwidth"): flavors and ports carry
net_in_mbit / net_out_mbit, every malformed value is refused with its stable code and nothing
changes, a limited port on a host without an agent fails the create before the domain starts,
and, with a nimbus-agent on the local host, a guest's NIC is measured in both directions: within
20 % of 8 Mbit/s, then of 4 Mbit/s after a PATCH on the running VM, then well above once cleared.

Own nimbusd daemons: "bw-api" without an agent, "bw-agent" with one (started here with
scripts/start-agent.sh on 127.0.0.1 and a 1 s check interval, so the tap is shaped within a
second of appearing). Run as root (the agent shapes the host's taps).
"""

import os
import secrets
import socket
import subprocess
import time

import pytest

import nimbus_fixtures as nf

NO_SUCH_ID = "0badc0de-0000-4000-8000-000000000000"
GUEST_SINK, GUEST_SOURCE = 5001, 5003  # guest listeners: it receives on one, sends on the other


class T:
    """Everything a module fixture's tests share."""


def flavor_body(name, **extra):
    return {"name": name, "vcpus": 1, "ram_mib": 256, "disk_gib": 1, **extra}


def flavor_names(api):
    return sorted(f["name"] for f in api.get("/v1/flavors")["flavors"])


def port_of(api, vm_id):
    ports = [p for p in api.get("/v1/ports")["ports"] if p["vm_id"] == vm_id]
    assert len(ports) == 1, ports
    return ports[0]


# ---------------------------------------------------------------------------------------------
# 1. API only (no agent): flavors, bad input, a port's PATCH refused or answered without a host


@pytest.fixture(scope="module")
def api_env(make_env, tiny_image):
    env = make_env("bw-api")
    env.daemon.net_pool = "10.186.0.0/16"
    env.daemon.start()
    t = T()
    t.env, t.admin = env, env.api
    t.plain = t.admin.ok("POST", "/v1/flavors", flavor_body("bw-plain"), expect=201)
    t.pa = t.admin.ok("POST", "/v1/projects", {"name": "bw-a"}, expect=201)
    t.pb = t.admin.ok("POST", "/v1/projects", {"name": "bw-b"}, expect=201)
    _, t.am, _ = nf.make_user(t.admin, "bwa-member", "pw-" + secrets.token_hex(10), "bw-a",
                              "member")
    _, t.ar, _ = nf.make_user(t.admin, "bwa-reader", "pw-" + secrets.token_hex(10), "bw-a",
                              "reader")
    _, t.bm, _ = nf.make_user(t.admin, "bwb-member", "pw-" + secrets.token_hex(10), "bw-b",
                              "member")
    t.image = nf.upload_image_as(t.am, env, "tiny", tiny_image)
    yield t
    nf.delete_all_vms(env)
    env.teardown()


def test_flavor_limits(api_env):
    t = api_env
    f = t.admin.ok("POST", "/v1/flavors", flavor_body("bw-100-50", net_in_mbit=100,
                                                      net_out_mbit=50), expect=201)
    assert (f["net_in_mbit"], f["net_out_mbit"]) == (100, 50)
    assert t.admin.get("/v1/flavors/bw-100-50")["net_in_mbit"] == 100
    big = t.admin.ok("POST", "/v1/flavors", flavor_body("bw-max", net_in_mbit=10000,
                                                        net_out_mbit=0), expect=201)
    assert (big["net_in_mbit"], big["net_out_mbit"]) == (10000, 0)
    # without the fields: 0, unlimited
    assert (t.plain["net_in_mbit"], t.plain["net_out_mbit"]) == (0, 0)


@pytest.mark.parametrize("field", ["net_in_mbit", "net_out_mbit"])
@pytest.mark.parametrize("value", [-1, 10001, 2**63 - 1, 1.5, 8.0, "8", None, True, [8], {"a": 1}])
def test_flavor_bad_limits(api_env, field, value):
    t = api_env
    before = flavor_names(t.admin)
    r = t.admin.request("POST", "/v1/flavors", flavor_body("bw-bad", **{field: value}))
    assert (r.status, r.code) == (400, "BANDWIDTH_INVALID"), r
    assert flavor_names(t.admin) == before


def test_flavor_unknown_field(api_env):
    t = api_env
    r = t.admin.request("POST", "/v1/flavors", flavor_body("bw-bad", net_in_kbit=8000))
    assert (r.status, r.code) == (400, "INVALID_REQUEST"), r
    assert "bw-bad" not in flavor_names(t.admin)


def test_cli_flavor(api_env):
    cli = api_env.env.cli
    cli.run("flavor", "create", "bw-cli", "--vcpus", "1", "--ram", "128", "--disk", "1",
            "--net-in", "100", "--net-out", "50")
    shown = cli.run("flavor", "show", "bw-cli").stdout
    assert "net_in_mbit" in shown and "100" in shown and "50" in shown, shown
    listed = cli.run("flavor", "list").stdout
    assert "IN(Mbit/s)" in listed and "unlimited" in listed, listed  # bw-plain: unlimited
    for bad in (["--net-in", "-1"], ["--net-out", "10001"], ["--net-in", "1.5"]):
        p = cli.run("flavor", "create", "bw-cli-bad", "--vcpus", "1", "--ram", "128", "--disk",
                    "1", *bad, check=False)
        assert p.returncode != 0, (bad, p.stdout)
    assert "bw-cli-bad" not in flavor_names(api_env.admin)


def test_patch_unknown_port(api_env):
    t = api_env
    r = t.admin.request("PATCH", f"/v1/ports/{NO_SUCH_ID}", {"net_in_mbit": 8})
    assert (r.status, r.code) == (404, "PORT_NOT_FOUND"), r
    r = t.admin.request("GET", f"/v1/ports/{NO_SUCH_ID}")
    assert r.status in (404, 405), r


@pytest.fixture(scope="module")
def unlimited_vm(api_env):
    """A VM of project bw-a made with the unlimited flavor on the host without an agent (it
    runs: its port has no limit, so no agent is needed): its port is what the PATCH cases
    change."""
    t = api_env
    r = t.am.create_vm("bw-plain-vm", t.image["id"], "bw-plain")
    t.env.remember(r["vm"]["id"])
    vm = t.am.vm(r["vm"]["id"])
    return vm, port_of(t.am, vm["id"])


def test_port_json(api_env, unlimited_vm):
    vm, port = unlimited_vm
    assert (port["net_in_mbit"], port["net_out_mbit"]) == (0, 0)
    nics = api_env.am.vm(vm["id"])["nics"]
    assert (nics[0]["net_in_mbit"], nics[0]["net_out_mbit"]) == (0, 0)


@pytest.mark.parametrize("body,status,code", [
    ({}, 400, "INVALID_REQUEST"),
    ({"net_in_mbit": 8, "mac": "52:54:00:00:00:01"}, 400, "INVALID_REQUEST"),
    ({"net_in_kbit": 8000}, 400, "INVALID_REQUEST"),
    ({"net_in_mbit": -1}, 400, "BANDWIDTH_INVALID"),
    ({"net_out_mbit": 10001}, 400, "BANDWIDTH_INVALID"),
    ({"net_out_mbit": 2.5}, 400, "BANDWIDTH_INVALID"),
    ({"net_in_mbit": "8"}, 400, "BANDWIDTH_INVALID"),
    ({"net_in_mbit": None}, 400, "BANDWIDTH_INVALID"),
    ({"net_in_mbit": 8, "net_out_mbit": -8}, 400, "BANDWIDTH_INVALID"),
])
def test_patch_bad_body(api_env, unlimited_vm, body, status, code):
    t = api_env
    _, port = unlimited_vm
    r = t.am.request("PATCH", f"/v1/ports/{port['id']}", body)
    assert (r.status, r.code) == (status, code), r
    assert port_of(t.am, port["vm_id"]) == port


def test_patch_not_json(api_env, unlimited_vm):
    t = api_env
    _, port = unlimited_vm
    r = t.am.request("PATCH", f"/v1/ports/{port['id']}", raw=b"{net_in_mbit: 8",
                     headers={"Content-Type": "application/json"})
    assert (r.status, r.code) == (400, "INVALID_JSON"), r
    assert port_of(t.am, port["vm_id"]) == port


def test_patch_scoping(api_env, unlimited_vm):
    t = api_env
    _, port = unlimited_vm
    # another project's port does not exist for it; a reader may not write
    r = t.bm.request("PATCH", f"/v1/ports/{port['id']}", {"net_in_mbit": 8})
    assert (r.status, r.code) == (404, "PORT_NOT_FOUND"), r
    r = t.ar.request("PATCH", f"/v1/ports/{port['id']}", {"net_in_mbit": 8})
    assert r.status == 403, r
    assert port_of(t.am, port["vm_id"]) == port


def test_patch_needs_agent(api_env, unlimited_vm):
    """The VM's host has no agent: a limit cannot be applied there, so nothing is stored
    (503 AGENT_UNAVAILABLE); a PATCH that leaves an unlimited port unlimited needs no agent."""
    t = api_env
    _, port = unlimited_vm
    r = t.am.request("PATCH", f"/v1/ports/{port['id']}", {"net_in_mbit": 8, "net_out_mbit": 8})
    assert (r.status, r.code) == (503, "AGENT_UNAVAILABLE"), r
    assert port_of(t.am, port["vm_id"]) == port
    same = t.am.ok("PATCH", f"/v1/ports/{port['id']}", {"net_in_mbit": 0})
    assert (same["net_in_mbit"], same["net_out_mbit"]) == (0, 0)
    # (a request's audit row is written once its answer has gone out: a moment later)
    def audited():
        events = [e for e in nf.audit_events(t.admin, limit=1000) if e["action"] == "port.update"]
        return {e["status"] for e in events} >= {503, 200} and events
    nf.wait_until(audited, 10, "the PATCHes' audit rows, 503 and 200")


def test_limited_flavor_without_agent(api_env):
    """A VM of a limited flavor on a host without an agent: the create fails with
    AGENT_UNAVAILABLE at the network step, before its domain is started; its port carries the
    flavor's limits meanwhile."""
    t = api_env
    t.admin.ok("POST", "/v1/flavors", flavor_body("bw-8", net_in_mbit=8, net_out_mbit=8),
               expect=201)
    r = t.am.create_vm("bw-noagent", t.image["id"], "bw-8", wait=False)
    vm_id = r["vm"]["id"]
    t.env.remember(vm_id)
    task = t.am.wait_task(r["task"]["id"], expect=None)
    assert task["state"] == "failed", task
    assert "AGENT_UNAVAILABLE" in str(task.get("error")), task
    state = nf.domstate(nf.vm_domain(vm_id))
    assert state is None or "running" not in state, state


def test_cli_port(api_env, unlimited_vm):
    cli = api_env.env.cli
    vm, port = unlimited_vm
    listed = cli.run("port", "list").stdout
    assert "IN(Mbit/s)" in listed and "unlimited" in listed, listed
    shown = cli.run("vm", "show", vm["id"]).stdout
    assert "IN(Mbit/s)" in shown, shown
    p = cli.run("port", "set", port["id"], "--net-in", "-3", check=False)
    assert p.returncode != 0
    p = cli.run("port", "set", port["id"], check=False)
    assert p.returncode != 0
    p = cli.run("port", "set", port["mac"], "--net-in", "8", check=False)  # no agent: 503
    assert p.returncode != 0 and "AGENT_UNAVAILABLE" in p.stderr, (p.stdout, p.stderr)
    assert port_of(api_env.admin, vm["id"]) == port


# ---------------------------------------------------------------------------------------------
# 2. real guests: a nimbus-agent on the local host, TCP measured both ways


GUEST_SCRIPT = f"""#!/bin/sh
# sink (host -> guest) and source (guest -> host); each connection gets its own process
nc -ll -p {GUEST_SINK} -e sh -c 'cat > /dev/null' &
nc -ll -p {GUEST_SOURCE} -e sh -c 'dd if=/dev/zero bs=64k count=256 2>/dev/null' &
echo BW-LISTENING
"""


def to_guest(ip, nbytes, timeout=120):
    """Sends nbytes to the guest's sink and waits until the guest has read them all (it closes
    its end after EOF); Mbit/s over the whole exchange."""
    chunk = b"\0" * 65536
    with socket.create_connection((ip, GUEST_SINK), timeout=timeout) as s:
        t0 = time.monotonic()
        sent = 0
        while sent < nbytes:
            sent += s.send(chunk[:min(len(chunk), nbytes - sent)])
        s.shutdown(socket.SHUT_WR)
        while s.recv(65536):
            pass
        dt = time.monotonic() - t0
    return nbytes * 8 / dt / 1e6


def from_guest(ip, nbytes, timeout=120):
    """Reads from the guest's source up to nbytes (it sends 64 KiB blocks until it is done or we
    close); Mbit/s from the first byte to the last."""
    got = 0
    with socket.create_connection((ip, GUEST_SOURCE), timeout=timeout) as s:
        data = s.recv(65536)
        t0 = time.monotonic()
        got = 0
        while data and got < nbytes:
            data = s.recv(65536)
            got += len(data)
        dt = time.monotonic() - t0
    return got * 8 / dt / 1e6


def wait_reachable(api, vm_id, ip):
    """The guest's address may come by DHCP after its READY line: wait until its sink answers."""
    api.wait_console(vm_id, "NIMBUS-READY")

    def up():
        try:
            with socket.create_connection((ip, GUEST_SINK), timeout=2):
                return True
        except OSError:
            return False
    try:
        nf.wait_until(up, 60, f"the guest's port {GUEST_SINK} at {ip}", interval=1)
    except nf.Timeout:
        raise AssertionError(f"guest {ip} not reachable; console:\n{api.console(vm_id)[-2000:]}")


def measure(ip, mbit, seconds=4):
    """(in, out) Mbit/s: about `seconds` of traffic at mbit each way."""
    nbytes = int(mbit * 1e6 / 8 * seconds)
    return to_guest(ip, nbytes), from_guest(ip, nbytes)


@pytest.fixture(scope="module")
def agent_env(make_env, e2e_root, tiny_image):
    if os.geteuid() != 0:
        pytest.skip("the agent shapes the host's taps: run as root")
    root, _ = e2e_root
    adir = os.path.join(root, "agent-bw")
    agent = nf.LocalAgent(adir, "--check-interval", "1")
    env = make_env("bw-agent")
    env.daemon.net_pool = "10.187.0.0/16"  # apart from other daemons' default networks
    env.daemon.extra_args = list(agent.daemon_args)
    t = T()
    t.env, t.api, t.adir = env, env.api, adir
    try:
        env.daemon.start()
        t.image = nf.upload_image(env, "tiny", tiny_image)
        yield t
    finally:
        nf.delete_all_vms(env)
        env.teardown()
        agent.stop()


def open_guest_ports(api):
    """Security groups (when this nimbusd has them) admit only the group's members by default:
    the host's measuring connections need a rule in the project's default group, which exists
    once a VM was made."""
    if api.request("GET", "/v1/secgroups/default").status == 200:
        api.ok("POST", "/v1/secgroups/default/rules",
               {"direction": "ingress", "protocol": "tcp", "port_min": GUEST_SINK,
                "port_max": GUEST_SOURCE, "cidr": "0.0.0.0/0"}, expect=(200, 201))


def tc_show(*args):
    return subprocess.run(["tc", *args], capture_output=True, text=True).stdout


def test_shaped_guest(agent_env, tmp_path):
    t = agent_env
    api = t.api
    api.ok("POST", "/v1/flavors", flavor_body("bw-free"), expect=201)
    api.ok("POST", "/v1/flavors", flavor_body("bw-8", net_in_mbit=8, net_out_mbit=8), expect=201)

    # The unlimited rate first: the limits below must sit well under what TCG moves here.
    ud = GUEST_SCRIPT
    free = api.create_vm("bw-free", t.image["id"], "bw-free", user_data=ud)
    t.env.remember(free["vm"]["id"])
    vm = api.vm(free["vm"]["id"])
    open_guest_ports(api)
    ip = vm["ip"]
    wait_reachable(api, vm["id"], ip)
    unl_in, unl_out = measure(ip, 40, seconds=2)
    print(f"\nbandwidth: unlimited guest: in {unl_in:.1f} Mbit/s, out {unl_out:.1f} Mbit/s")
    api.delete_vm(vm["id"])
    if min(unl_in, unl_out) < 20:
        pytest.skip(f"this machine moves only {min(unl_in, unl_out):.1f} Mbit/s to a guest "
                    "unshaped: too slow to tell 8 Mbit/s from it")

    r = api.create_vm("bw-8", t.image["id"], "bw-8", user_data=ud)
    vm_id = r["vm"]["id"]
    t.env.remember(vm_id)
    vm = api.vm(vm_id)
    port = port_of(api, vm_id)
    assert (port["net_in_mbit"], port["net_out_mbit"]) == (8, 8)
    assert (vm["nics"][0]["net_in_mbit"], vm["nics"][0]["net_out_mbit"]) == (8, 8)
    tap = "nbt" + port["id"].replace("-", "")[:12]
    ip = vm["ip"]
    wait_reachable(api, vm_id, ip)
    nf.wait_until(lambda: "htb" in tc_show("qdisc", "show", "dev", tap), 10, f"HTB on {tap}")

    def check(limit, what):
        got_in, got_out = measure(ip, limit)
        print(f"bandwidth: {what}: limit {limit} Mbit/s each way; measured in {got_in:.2f}, "
              f"out {got_out:.2f} Mbit/s")
        for d, got in (("in", got_in), ("out", got_out)):
            assert abs(got - limit) <= 0.2 * limit, f"{what}: {d} {got:.2f} Mbit/s, limit {limit}"

    check(8, "flavor 8/8")

    # live change on the running VM, through the CLI as a user would
    t.env.cli.run("port", "set", port["id"], "--net-in", "4", "--net-out", "4")
    assert port_of(api, vm_id)["net_in_mbit"] == 4
    check(4, "after port set 4/4")

    # cleared: the agent's shaping goes, the rate goes well above the old limit
    cleared = api.ok("PATCH", f"/v1/ports/{port['id']}", {"net_in_mbit": 0, "net_out_mbit": 0})
    assert (cleared["net_in_mbit"], cleared["net_out_mbit"]) == (0, 0)
    assert "htb" not in tc_show("qdisc", "show", "dev", tap)
    got_in, got_out = measure(ip, 40, seconds=2)
    print(f"bandwidth: cleared: in {got_in:.1f}, out {got_out:.1f} Mbit/s")
    assert got_in > 2 * 4 and got_out > 2 * 4, (got_in, got_out)

    # a NIC added later gets the flavor's limits, shaped as soon as it is attached; removed,
    # its IFB goes with the agent's entry
    r = api.ok("POST", f"/v1/vms/{vm_id}/nics", {"network": "default"}, expect=202)
    api.wait_task(r["task"]["id"])
    added = r["port"]
    assert (added["net_in_mbit"], added["net_out_mbit"]) == (8, 8), added
    tap2 = "nbt" + added["id"].replace("-", "")[:12]
    ifb2 = "nbi" + added["id"].replace("-", "")[:12]
    assert "htb" in tc_show("qdisc", "show", "dev", tap2), tc_show("qdisc", "show", "dev", tap2)
    assert "htb" in tc_show("qdisc", "show", "dev", ifb2)
    r = api.ok("DELETE", f"/v1/vms/{vm_id}/nics/{added['mac']}", expect=202)
    api.wait_task(r["task"]["id"])
    assert subprocess.run(["ip", "link", "show", ifb2], capture_output=True).returncode != 0

    # deleting the VM clears its entry on the agent
    api.delete_vm(vm_id)
    assert "htb" not in tc_show("qdisc", "show", "dev", tap)
