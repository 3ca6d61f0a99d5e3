"""The host side of tenant networks on the real libvirtd, without nimbusd: a NAT network as
network_xml_build writes it (tests/golden/network/nat.xml, byte-compared to the builder by
test_network_xml, moved to a free 10.254.X.0/24), and a guest with two NICs as domain_xml_nic
writes them. dnsmasq runs in static mode: the NIC with a <host> entry gets exactly that address,
the other gets nothing. Everything made here has this run's names and goes in the finally."""
import ipaddress
import os
import re
import secrets
import shutil
import subprocess
import time

import nimbus_fixtures as nf

GOLDEN = os.path.join(nf.REPO, "tests", "golden", "network", "nat.xml")


def free_subnet():
    routes = subprocess.run(["ip", "-4", "route", "show", "table", "all"], capture_output=True,
                            text=True, check=True).stdout
    used = []
    for m in re.finditer(r"^(?:\S+ )?(\d+\.\d+\.\d+\.\d+(?:/\d+)?)", routes, re.M):
        net = ipaddress.ip_network(m.group(1), strict=False)
        if net.prefixlen > 0:
            used.append(net)
    start = secrets.randbelow(50)
    for i in range(50):
        cand = ipaddress.ip_network(f"10.254.{200 + (start + i) % 50}.0/24")
        if not any(cand.overlaps(u) for u in used):
            return cand
    raise AssertionError("no free 10.254.X.0/24 on this machine")


def nic_xml(network, mac, tap=None, mtu=None):
    # domain_xml_nic's element (see tests/golden/domain/multi_nic.xml).
    x = (f"<interface type='network'>\n  <source network='{network}'/>\n"
         f"  <mac address='{mac}'/>\n  <model type='virtio'/>\n")
    if tap:
        x += f"  <target dev='{tap}'/>\n"
    if mtu:
        x += f"  <mtu size='{mtu}'/>\n"
    return x + "</interface>\n"


USER_DATA = """#!/bin/sh
cat > /dhcp.sh <<'S'
#!/bin/sh
[ "$1" = bound ] || exit 0
echo "HVNET-DHCP $interface ip=$ip mask=$mask router=$router dns=$dns"
S
chmod +x /dhcp.sh; ip link set lo up
for i in eth0 eth1; do ip link set $i up; echo "HVNET-MAC $i $(cat /sys/class/net/$i/address)"; done
udhcpc -i eth0 -s /dhcp.sh -q -n -t 5 -T 2 2>&1 | grep HVNET-
udhcpc -i eth1 -s /dhcp.sh -q -n -t 3 -T 2 >/dev/null 2>&1 || echo "HVNET-NOLEASE eth1"
echo HVNET-DONE
"""


def test_static_dhcp_on_real_libvirt(e2e_root, tiny_image):
    root, _ = e2e_root
    rid = secrets.token_hex(3)
    net_name, bridge, dom = f"nimbus-e2e-hvnet-{rid}", f"nbre2e{rid}", f"nimbus-e2e-hvnet-{rid}"
    subnet = free_subnet()
    prefix = str(subnet.network_address).rsplit(".", 1)[0] + "."
    work = os.path.join(root, f"hvnet-{rid}")
    os.makedirs(os.path.join(work, "seed"))
    try:
        with open(GOLDEN) as f:
            golden = f.read()
        xml = re.sub(r"<name>[^<]*</name>", f"<name>{net_name}</name>", golden)
        xml = re.sub(r"<bridge name='[^']*'", f"<bridge name='{bridge}'", xml)
        xml = xml.replace("10.200.0.", prefix)
        assert xml.count(prefix) == 3 and "10.200" not in xml
        net_path = os.path.join(work, "net.xml")
        with open(net_path, "w") as f:
            f.write(xml)
        nf.virsh("net-define", net_path)
        nf.virsh("net-start", net_name)

        # The golden's first host is 52:54:00:0a:00:01 -> .2; the second NIC is unknown.
        disk = os.path.join(work, "disk.qcow2")
        shutil.copy(tiny_image, disk)
        with open(os.path.join(work, "seed", "user-data"), "w") as f:
            f.write(USER_DATA)
        with open(os.path.join(work, "seed", "meta-data"), "w") as f:
            f.write(f"instance-id: {dom}\nlocal-hostname: hvnet\n")
        iso = os.path.join(work, "seed.iso")
        subprocess.run(["genisoimage", "-quiet", "-o", iso, "-V", "cidata", "-J", "-r",
                        os.path.join(work, "seed", "user-data"),
                        os.path.join(work, "seed", "meta-data")], check=True)
        console = os.path.join(work, "console.log")
        dom_xml = f"""<domain type='qemu'><name>{dom}</name><memory unit='MiB'>192</memory>
  <vcpu>1</vcpu><os><type arch='x86_64' machine='pc'>hvm</type><boot dev='hd'/></os>
  <devices>
    <disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='{disk}'/>
      <target dev='vda' bus='virtio'/></disk>
    <disk type='file' device='cdrom'><driver name='qemu' type='raw'/><source file='{iso}'/>
      <target dev='hdc' bus='ide'/><readonly/></disk>
    {nic_xml(net_name, "52:54:00:0a:00:01", f"nbte2e{rid}")}
    {nic_xml(net_name, "52:54:00:0a:00:09")}
    <serial type='file'><source path='{console}'/><target port='0'/></serial>
  </devices></domain>"""
        dom_path = os.path.join(work, "domain.xml")
        with open(dom_path, "w") as f:
            f.write(dom_xml)
        nf.virsh("define", dom_path)
        nf.virsh("start", dom)

        out = ""
        deadline = time.monotonic() + nf.BOOT_TIMEOUT
        while "HVNET-DONE" not in out and time.monotonic() < deadline:
            time.sleep(1)
            if os.path.exists(console):
                with open(console, "rb") as f:
                    out = f.read().decode(errors="replace").replace("\r", "")
        lines = [l for l in out.splitlines() if l.startswith("HVNET-")]
        assert "HVNET-DONE" in lines, f"guest did not finish:\n{out[-3000:]}"
        assert f"HVNET-DHCP eth0 ip={prefix}2 mask=24 router={prefix}1 dns={prefix}1" in lines, lines
        assert "HVNET-NOLEASE eth1" in lines, lines

        if nf.LIBVIRT_URI == "qemu:///system":
            with open(f"/var/lib/libvirt/dnsmasq/{net_name}.hostsfile") as f:
                hosts = f.read()
            assert hosts == f"52:54:00:0a:00:01,{prefix}2\n52:54:00:0a:00:02,{prefix}3\n"
            with open(f"/var/lib/libvirt/dnsmasq/{net_name}.conf") as f:
                assert f"dhcp-range={prefix}1,static" in f.read()
    finally:
        nf.virsh("destroy", dom, check=False)
        nf.virsh("undefine", dom, check=False)
        nf.virsh("net-destroy", net_name, check=False)
        nf.virsh("net-undefine", net_name, check=False)
        shutil.rmtree(work, ignore_errors=True)
    assert net_name not in nf.virsh("net-list", "--all", "--name").stdout
