#!/usr/bin/python3
"""Port allocation benchmark: Nimbus's IPAM in the store beside raw virsh reserving fixed
addresses by hand.

    bench/ports.py [--ports N] [--virsh-ops M] [--build DIR]

Nimbus: build/bench/port_bench (N ports on one network: with VM creates, by NIC hot-plug, from
8 threads at once; every address checked unique). virsh: the same reservation an operator makes
without IPAM, a fixed MAC->IP DHCP entry (`net-update add ip-dhcp-host --live --config`), M times
on a scratch network this script defines and removes (its live updates cost seconds each, so M
stays small and the total for N is extrapolated). Prints figures only.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NET = "nimbus-bench-ports"


def virsh(*args, check=True):
    return subprocess.run(["virsh", "-q", "-c", "qemu:///system", *args], check=check,
                          capture_output=True, text=True, timeout=120)


def virsh_side(ops):
    xml = (f"<network><name>{NET}</name><bridge name='nbbenchp0'/>"
           "<ip address='10.65.0.1' prefix='16'><dhcp/></ip></network>")
    with tempfile.NamedTemporaryFile("w", suffix=".xml", delete=False) as f:
        f.write(xml)
    virsh("net-destroy", NET, check=False)
    virsh("net-undefine", NET, check=False)
    lat = []
    try:
        virsh("net-define", f.name)
        virsh("net-start", NET)
        for i in range(ops):
            entry = f"<host mac='52:54:00:65:{i >> 8:02x}:{i & 0xff:02x}' ip='10.65.1.{i % 250 + 2}'/>"
            t0 = time.monotonic()
            virsh("net-update", NET, "add-last", "ip-dhcp-host", entry, "--live", "--config")
            lat.append(time.monotonic() - t0)
    finally:
        virsh("net-destroy", NET, check=False)
        virsh("net-undefine", NET, check=False)
        os.unlink(f.name)
    return lat


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ports", type=int, default=1000)
    ap.add_argument("--virsh-ops", type=int, default=20)
    ap.add_argument("--build", default=os.path.join(REPO, "build"))
    a = ap.parse_args()
    if a.ports < 10 or not 1 <= a.virsh_ops <= 250:
        ap.error("--ports at least 10, --virsh-ops from 1 to 250")
    binary = os.path.join(a.build, "bench", "port_bench")
    if not os.access(binary, os.X_OK):
        ap.error(f"{binary} not found: build with 'ninja -C {a.build}'")
    print(f"Port allocations, {time.strftime('%Y-%m-%d %H:%M %Z')}, {os.cpu_count()} cores")
    print("\nNimbus (store IPAM, no hypervisor):")
    out = subprocess.run([binary, "--ports", str(a.ports)], check=True, capture_output=True,
                         text=True, timeout=600)
    print(out.stdout.rstrip())
    lat = virsh_side(a.virsh_ops)
    med = statistics.median(lat)
    print(f"\nraw virsh, a fixed address by hand (net-update add ip-dhcp-host --live --config), "
          f"{a.virsh_ops} times:")
    print(f"  median {med * 1e3:.0f} ms, max {max(lat) * 1e3:.0f} ms; "
          f"{a.ports} of them at that rate: {med * a.ports:.0f} s")
    print("\nNimbus allocates the address in the store (unique by a constraint, decided in the"
          "\nwriter's transaction); the DHCP entry on the host is one net-update per VM either way"
          "\n(see bench/vm_create.py --nics).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
