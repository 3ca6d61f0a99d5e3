"""Tenant networks with real guests, through the real CLI: fixed addresses by DHCP and by the
seed's network-config, two NICs, NIC hot-plug and unplug seen from inside the guest, the same
address after stop/start, two guests talking over their network, and the libvirt networks
made on the host only while VMs use them. (API-level refusals: test_networks_api.py.)"""

import json

import nimbus_fixtures as nf

# Outside every daemon's default-network pool (10.200-10.239, nimbus_fixtures.Daemon).
APP_CIDR, APP_PREFIX = "10.241.7.0/24", "10.241.7."
ISO_CIDR, ISO_PREFIX = "10.241.8.0/24", "10.241.8."

# b pings a's fixed address once its NICs are up (user-data runs before the network comes up).
PING_A = """#!/bin/sh
( for i in $(seq 60); do
    if ping -c1 -W1 10.241.7.50 >/dev/null 2>&1; then echo NET-PING-A-OK; break; fi
    sleep 1
  done ) &
"""


def libvirt_networks():
    out = nf.virsh("net-list", "--all", "--name").stdout
    return {l.strip() for l in out.splitlines() if l.strip()}


def nic_line(nic, prefix, source):
    return f"NIMBUS-NIC eth{nic['slot']} {nic['mac']} {nic['ip']}/{prefix} {source}"


def test_networks_with_real_guests(nimbus, image, flavor, tmp_path):
    cli = nimbus.cli
    app = cli.json("network", "create", "e2e-app", "--cidr", APP_CIDR)
    iso = cli.json("network", "create", "e2e-iso", "--type", "isolated", "--cidr", ISO_CIDR,
                   "--gateway", "none", "--dhcp", "off")
    assert (app["type"], app["gateway"], app["dhcp"]) == ("nat", APP_PREFIX + "1", True), app
    assert (iso["type"], iso["gateway"], iso["dhcp"]) == ("isolated", None, False), iso
    names = {f"nimbus-net-{app['id']}", f"nimbus-net-{iso['id']}"}
    assert not names & libvirt_networks(), "a network was made on a host before any VM used it"

    ping = tmp_path / "ping.sh"
    ping.write_text(PING_A)
    made = []
    try:
        # a: one NIC with an address asked for; b: two NICs, the second on a network without
        # DHCP (the guest takes its address from network-config only).
        made.append("neta")
        cli.run("vm", "create", "neta", "--image", image["name"], "--flavor", flavor["name"],
                "--network", f"e2e-app:ip={APP_PREFIX}50", "--wait")
        # the same address again: refused, nothing made
        p = cli.run("vm", "create", "netx", "--image", image["name"], "--flavor",
                    flavor["name"], "--network", f"e2e-app:ip={APP_PREFIX}50", check=False)
        assert p.returncode != 0 and "IP_IN_USE" in p.stdout + p.stderr, p
        assert "netx" not in cli.run("vm", "list").stdout
        made.append("netb")
        cli.run("vm", "create", "netb", "--image", image["name"], "--flavor", flavor["name"],
                "--network", "e2e-app", "--network", "e2e-iso", "--user-data", str(ping),
                "--wait")
        a, b = cli.json("vm", "show", "neta"), cli.json("vm", "show", "netb")
        nimbus.remember(a["id"], b["id"])
        assert [n["ip"] for n in a["nics"]] == [APP_PREFIX + "50"], a["nics"]
        assert a["ip"] == APP_PREFIX + "50", a
        assert [n["network"] for n in b["nics"]] == ["e2e-app", "e2e-iso"], b["nics"]
        b0, b1 = b["nics"]
        assert b0["ip"].startswith(APP_PREFIX) and b0["ip"] != APP_PREFIX + "50", b0
        assert b1["ip"] == ISO_PREFIX + "1", b1  # the first address: e2e-iso has no gateway
        assert names <= libvirt_networks(), libvirt_networks()

        # inside the guests: DHCP leased the fixed address on the DHCP network, the static
        # configuration set it on the other; b reaches a over e2e-app
        cli.wait_console("neta", nic_line(a["nics"][0], 24, "dhcp"))
        cli.wait_console("netb", nic_line(b0, 24, "dhcp"))
        cli.wait_console("netb", nic_line(b1, 24, "static"))
        cli.wait_console("netb", "NET-PING-A-OK")

        # the port list says the same
        ports = json.loads(cli.run("--json", "port", "list", "--network", "e2e-app").stdout)
        ports = ports["ports"] if isinstance(ports, dict) else ports
        assert sorted(p["ip"] for p in ports) == sorted([APP_PREFIX + "50", b0["ip"]]), ports

        # hot-plug a third NIC into the running b, then unplug it
        cli.run("vm", "nic", "add", "netb", "--network", "e2e-app", "--wait")
        b = cli.json("vm", "show", "netb")
        assert len(b["nics"]) == 3, b["nics"]
        b2 = b["nics"][2]
        assert b2["slot"] == 2 and b2["ip"].startswith(APP_PREFIX), b2
        cli.wait_console("netb", nic_line(b2, 24, "dhcp"))
        cli.run("vm", "nic", "remove", "netb", b2["mac"], "--wait")
        assert len(cli.json("vm", "show", "netb")["nics"]) == 2
        cli.wait_console("netb", "NIMBUS-NIC-GONE eth2")
        p = cli.run("vm", "nic", "remove", "netb", "52:54:00:00:00:01", check=False)
        assert p.returncode != 0 and "PORT_NOT_FOUND" in p.stdout + p.stderr, p

        # stop/start: the same address comes back
        cli.run("vm", "stop", "neta", "--wait")
        cli.run("vm", "start", "neta", "--wait")
        cli.wait_console("neta", nic_line(a["nics"][0], 24, "dhcp"), count=2)
        assert cli.json("vm", "show", "neta")["ip"] == APP_PREFIX + "50"

        # a network with ports cannot go
        p = cli.run("network", "delete", "e2e-app", check=False)
        assert p.returncode != 0 and "NETWORK_IN_USE" in p.stdout + p.stderr, p
    finally:
        for name in made:
            cli.run("vm", "delete", name, "--wait", check=False)

    # the last VM gone, the hosts' libvirt networks go too; then the networks themselves
    assert not names & libvirt_networks(), libvirt_networks()
    cli.run("network", "delete", "e2e-app")
    cli.run("network", "delete", "e2e-iso")
    listed = cli.run("network", "list").stdout
    assert "e2e-app" not in listed and "e2e-iso" not in listed, listed
