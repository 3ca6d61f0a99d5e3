"""A security group filter on a real guest, without nimbusd: the filter nwfilter_xml_build writes
for "ssh and ping in, anything out" (tests/golden/nwfilter/e2e_ssh.xml, byte-compared to the
builder by test_nwfilter_xml, renamed here), referenced by the server guest's interface as
nwfilter_xml_interface_ref writes it. A second guest on the same isolated network, unfiltered,
probes the server: port 22 answers, 8080 does not, and the server's own outbound connection gets
its reply (stateful). Then the filter is redefined in place with 8080 allowed
(tests/golden/nwfilter/e2e_ssh_8080.xml, the uuid kept as hv_nwfilter_define does) and 8080
answers, the guest still running. A ping from an address that is not the port's fails while one
from its own passes (anti-spoofing). The guest's nc has no UDP: the drop of DHCP server replies
is covered by the golden files only. Probes come from a guest: traffic from the host to its own
tap skips the FORWARD chain where nwfilter's iptables rules live. Everything made here has this
run's names and goes in the finally."""
import os
import re
import secrets
import shutil
import subprocess
import time

import nimbus_fixtures as nf

GOLDEN = os.path.join(nf.REPO, "tests", "golden", "nwfilter")
NET = "10.254.77."
SERVER_IP, CLIENT_IP, SPOOF_IP = NET + "10", NET + "20", NET + "99"

# The addresses come from network-config (static), after user-data: the loops wait for them.
SERVER = f"""#!/bin/sh
printf '#!/bin/sh\\necho banner-$1\\n' > /srv.sh; chmod +x /srv.sh
nc -ll -p 22 -e /srv.sh 22 & nc -ll -p 8080 -e /srv.sh 8080 &
( until ip -4 addr show eth0 | grep -q {SERVER_IP}; do sleep 1; done; echo NWF-SERVER-READY
  ip addr add {SPOOF_IP}/24 dev eth0
  while true; do
    echo "NWF-OUT $(nc -w3 {CLIENT_IP} 7000 </dev/null 2>/dev/null || echo FAIL)"
    own=FAIL; ping -c1 -W2 {CLIENT_IP} >/dev/null 2>&1 && own=ok
    spoof=FAIL; ping -c1 -W2 -I {SPOOF_IP} {CLIENT_IP} >/dev/null 2>&1 && spoof=ok
    echo "NWF-PING own=$own spoof=$spoof"
    sleep 1
  done ) &
"""

CLIENT = f"""#!/bin/sh
printf '#!/bin/sh\\necho pong\\n' > /pong.sh; chmod +x /pong.sh
nc -ll -p 7000 -e /pong.sh &
( until ip -4 addr show eth0 | grep -q {CLIENT_IP}; do sleep 1; done; echo NWF-CLIENT-READY
  n=0
  while true; do
    n=$((n+1))
    a=$(nc -w3 {SERVER_IP} 22 </dev/null 2>/dev/null || echo FAIL)
    b=$(nc -w3 {SERVER_IP} 8080 </dev/null 2>/dev/null || echo FAIL)
    echo "NWF-PROBE $n 22=$a 8080=$b"
    sleep 1
  done ) &
"""


def network_config(mac, ip):
    # What Nimbus's seed writes (network-config v2, static), parsed by tests/image/init.
    return (f"version: 2\nethernets:\n  eth0:\n    match:\n      macaddress: '{mac}'\n"
            f"    addresses: [{ip}/24]\n")


def filter_xml(case, name, uuid=None):
    with open(os.path.join(GOLDEN, case + ".xml")) as f:
        xml = f.read()
    xml = re.sub(r"<filter name='[^']*'", f"<filter name='{name}'", xml, count=1)
    if uuid:
        xml = xml.replace("chain='root'>", f"chain='root'>\n  <uuid>{uuid}</uuid>", 1)
    return xml


def boot(work, tiny_image, dom, net_name, mac, ip, tap, user_data, filterref=""):
    d = os.path.join(work, dom)
    os.makedirs(os.path.join(d, "seed"))
    disk = os.path.join(d, "disk.qcow2")
    shutil.copy(tiny_image, disk)
    with open(os.path.join(d, "seed", "user-data"), "w") as f:
        f.write(user_data)
    with open(os.path.join(d, "seed", "meta-data"), "w") as f:
        f.write(f"instance-id: {dom}\nlocal-hostname: nwf\n")
    with open(os.path.join(d, "seed", "network-config"), "w") as f:
        f.write(network_config(mac, ip))
    iso = os.path.join(d, "seed.iso")
    subprocess.run(["genisoimage", "-quiet", "-o", iso, "-V", "cidata", "-J", "-r",
                    os.path.join(d, "seed", "user-data"), os.path.join(d, "seed", "meta-data"),
                    os.path.join(d, "seed", "network-config")],
                   check=True)
    console = os.path.join(d, "console.log")
    xml = f"""<domain type='qemu'><name>{dom}</name><memory unit='MiB'>192</memory>
  <vcpu>1</vcpu><os><type arch='x86_64' machine='pc'>hvm</type><boot dev='hd'/></os>
  <devices>
    <disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='{disk}'/>
      <target dev='vda' bus='virtio'/></disk>
    <disk type='file' device='cdrom'><driver name='qemu' type='raw'/><source file='{iso}'/>
      <target dev='hdc' bus='ide'/><readonly/></disk>
    <interface type='network'><source network='{net_name}'/><mac address='{mac}'/>
      <model type='virtio'/><target dev='{tap}'/>{filterref}</interface>
    <serial type='file'><source path='{console}'/><target port='0'/></serial>
  </devices></domain>"""
    path = os.path.join(d, "domain.xml")
    with open(path, "w") as f:
        f.write(xml)
    nf.virsh("define", path)
    nf.virsh("start", dom)
    return console


def console_lines(console):
    if not os.path.exists(console):
        return []
    with open(console, "rb") as f:
        out = f.read().decode(errors="replace").replace("\r", "")
    # A line may start with something else the console printed (a shell's prompt): from NWF-.
    return [l[l.index("NWF-"):] for l in out.splitlines() if "NWF-" in l]


def wait_line(console, pred, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for l in console_lines(console):
            if pred(l):
                return l
        time.sleep(1)
    raise AssertionError(f"{what}: not seen in {timeout} s; console:\n" +
                         "\n".join(console_lines(console)[-30:]))


def probes(console):
    out = []
    for l in console_lines(console):
        m = re.match(r"NWF-PROBE (\d+) 22=(\S+) 8080=(\S+)", l)
        if m:
            out.append((int(m.group(1)), m.group(2), m.group(3)))
    return out


def test_security_group_filter_on_real_guest(e2e_root, tiny_image):
    root, _ = e2e_root
    rid = secrets.token_hex(3)
    net_name, bridge = f"nimbus-e2e-nwf-{rid}", f"nbre2ef{rid}"
    server, client = f"nimbus-e2e-nwf-s-{rid}", f"nimbus-e2e-nwf-c-{rid}"
    fname = f"nimbus-e2e-nwf-{rid}"
    server_mac, client_mac = "52:54:00:6e:00:0a", "52:54:00:6e:00:14"
    work = os.path.join(root, f"nwf-{rid}")
    os.makedirs(work)
    try:
        # An isolated bridge without a host address: only the two guests on it.
        net_path = os.path.join(work, "net.xml")
        with open(net_path, "w") as f:
            f.write(f"<network><name>{net_name}</name>"
                    f"<bridge name='{bridge}' stp='on' delay='0'/></network>\n")
        nf.virsh("net-define", net_path)
        nf.virsh("net-start", net_name)

        fpath = os.path.join(work, "filter.xml")
        with open(fpath, "w") as f:
            f.write(filter_xml("e2e_ssh", fname))
        nf.virsh("nwfilter-define", fpath)
        ref = (f"<filterref filter='{fname}'>\n  <parameter name='IP' value='{SERVER_IP}'/>\n"
               f"  <parameter name='MAC' value='{server_mac}'/>\n</filterref>")
        s_con = boot(work, tiny_image, server, net_name, server_mac, SERVER_IP, f"nbtes{rid}",
                     SERVER, ref)
        c_con = boot(work, tiny_image, client, net_name, client_mac, CLIENT_IP, f"nbtec{rid}",
                     CLIENT)
        wait_line(s_con, lambda l: l == "NWF-SERVER-READY", nf.BOOT_TIMEOUT, "server ready")
        # Allowed port answers; the blocked one does not (same probe round).
        first_ok = wait_line(c_con, lambda l: re.match(r"NWF-PROBE \d+ 22=banner-22 ", l),
                             nf.BOOT_TIMEOUT, "port 22 answering")
        n_ok = int(first_ok.split()[1])
        assert first_ok.endswith("8080=FAIL"), first_ok
        # The server's own connection out gets its reply: stateful.
        wait_line(s_con, lambda l: l == "NWF-OUT pong", 60, "the server's outbound reply")
        # A few more rounds: 8080 stays blocked while 22 keeps answering.
        wait_line(c_con, lambda l: l.startswith(f"NWF-PROBE {n_ok + 3} "), 60, "more probes")
        before = max(n for n, _, _ in probes(c_con))
        rounds = [p for p in probes(c_con) if n_ok <= p[0] <= before]
        assert all(p[2] == "FAIL" for p in rounds), rounds
        assert sum(p[1] == "banner-22" for p in rounds) >= len(rounds) - 1, rounds
        # The same filter redefined in place (its uuid) with 8080 allowed: the running guest's
        # 8080 answers (the listener was there all along: the filter dropped it).
        uuid = nf.virsh("nwfilter-dumpxml", fname).stdout
        uuid = re.search(r"<uuid>([^<]+)</uuid>", uuid).group(1)
        with open(fpath, "w") as f:
            f.write(filter_xml("e2e_ssh_8080", fname, uuid))
        t0 = time.monotonic()
        nf.virsh("nwfilter-define", fpath)
        line = wait_line(c_con, lambda l: (re.match(r"NWF-PROBE (\d+) 22=banner-22 "
                                                    r"8080=banner-8080", l) and
                                           int(l.split()[1]) > before),
                         60, "port 8080 answering after the live update")
        print(f"\nfilter update to 8080 answering: {time.monotonic() - t0:.1f} s ({line})")
        assert nf.virsh("domstate", server).stdout.strip() == "running"
        # Anti-spoofing: a ping from an address that is not the port's fails, one from its own
        # passes (in the same round).
        wait_line(s_con, lambda l: l == "NWF-PING own=ok spoof=FAIL", 60,
                  "a spoofed ping failing")
        pings = [l for l in console_lines(s_con) if l.startswith("NWF-PING")]
        assert all(l.endswith("spoof=FAIL") for l in pings), pings
        assert re.search(r"<uuid>([^<]+)</uuid>",
                         nf.virsh("nwfilter-dumpxml", fname).stdout).group(1) == uuid
        # A redefinition without the uuid is refused (what hv_nwfilter_define avoids).
        with open(fpath, "w") as f:
            f.write(filter_xml("e2e_ssh", fname))
        r = nf.virsh("nwfilter-define", fpath, check=False)
        assert r.returncode != 0 and "uuid" in (r.stderr + r.stdout), r
    finally:
        for dom in (server, client):
            nf.virsh("destroy", dom, check=False)
            nf.virsh("undefine", dom, check=False)
        nf.virsh("nwfilter-undefine", fname, check=False)
        nf.virsh("net-destroy", net_name, check=False)
        nf.virsh("net-undefine", net_name, check=False)
        shutil.rmtree(work, ignore_errors=True)
    assert fname not in nf.virsh("nwfilter-list").stdout
