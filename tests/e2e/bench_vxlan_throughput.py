"""Throughput between two guests of one vxlan network: across two hosts (VXLAN encapsulation over
the test hosts' underlay) against both on one host (the same bridge, no encapsulation). Not a
test: bench/vxlan_throughput.py runs it (pytest names it bench_*, so the suite never collects
it) and prints figures only, asserting nothing about them.

A source guest on kvm1 serves BENCH_MIB MiB of zeros on TCP 5002 to whoever connects; a client
guest pulls them BENCH_ROUNDS times, timing each pull with /proc/uptime, first on kvm1 beside
the source, then (after the first is deleted) on kvm2. Same network, same MTU (1450) both ways.
"""

import os
import re
import statistics

import nimbus_fixtures as nf
from testhosts import testhosts  # noqa: F401 - the session fixture

CIDR, SRC_IP, CLIENT_IP = "10.63.0.0/24", "10.63.0.10", "10.63.0.20"
MIB = int(os.environ.get("BENCH_MIB", "48"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))

SOURCE = f"""#!/bin/sh
nc -ll -p 5002 -e sh -c 'dd if=/dev/zero bs=64k count={MIB * 16} 2>/dev/null' &
( until ip -4 addr show eth0 | grep -q '{SRC_IP}/'; do sleep 1; done; echo VX-SOURCE-UP ) &
"""


def client_script(tag):
    return f"""#!/bin/sh
( until ip -4 addr show eth0 | grep -q '{CLIENT_IP}/'; do sleep 1; done
  until ping -c1 -W1 {SRC_IP} >/dev/null 2>&1; do sleep 1; done
  i=0
  while [ $i -lt {ROUNDS} ]; do
    i=$((i+1))
    read t0 rest < /proc/uptime
    n=$(nc -w 20 {SRC_IP} 5002 </dev/null | wc -c)
    read t1 rest < /proc/uptime
    echo "VX-TPUT {tag} $i $n $t0 $t1"
    sleep 1
  done
  echo VX-TPUT-DONE-{tag} ) &
"""


def pulls(text, tag):
    """Mbit/s of each complete pull the console reports, and the byte counts of the others."""
    out, short = [], []
    for m in re.finditer(rf"VX-TPUT {tag} \d+ (\d+) ([\d.]+) ([\d.]+)", text):
        n, t0, t1 = int(m.group(1)), float(m.group(2)), float(m.group(3))
        if n == MIB << 20 and t1 > t0:
            out.append(n * 8 / (t1 - t0) / 1e6)
        else:
            short.append(n)
    return out, short


def test_vxlan_throughput(make_env, tiny_image, testhosts):  # noqa: F811 - fixture above
    env = make_env("vxbench")
    env.daemon.extra_args += ["--agent-ca-file", testhosts.agent_ca_file()]
    env.daemon.start()
    try:
        nf.join_test_hosts(env, testhosts, tiny_image, ("kvm1", "kvm2"))
        env.api.ok("POST", "/v1/networks", {"name": "vxb", "type": "vxlan", "cidr": CIDR},
                   expect=201)
        # room for the source and a client on one host
        fl = env.api.ok("POST", "/v1/flavors", {"name": "vxb-f", "vcpus": 1, "ram_mib": 128,
                                                "disk_gib": 1}, expect=201)

        def create(name, host, ip, ud):
            r = env.api.ok("POST", "/v1/vms", {
                "name": name, "image": env.image["id"], "flavor": fl["id"], "host": host,
                "networks": [{"network": "vxb", "ip": ip}], "user_data": ud}, expect=202)
            env.remember(r["vm"]["id"])
            env.api.wait_task(r["task"]["id"])
            return r["vm"]["id"]

        src = create("vxb-src", "kvm1", SRC_IP, SOURCE)
        env.api.wait_console(src, "VX-SOURCE-UP", timeout=nf.BOOT_TIMEOUT)
        results = {}
        for tag, host in (("near", "kvm1"), ("far", "kvm2")):
            c = create(f"vxb-{tag}", host, CLIENT_IP, client_script(tag))
            env.api.wait_console(c, f"VX-TPUT-DONE-{tag}", timeout=nf.BOOT_TIMEOUT + 60 * ROUNDS)
            results[tag], short = pulls(env.api.console(c), tag)
            if short:
                print(f"\n{tag}: {len(short)} pull(s) cut short: {short} bytes")
            env.api.delete_vm(c)
        near, far = results["near"], results["far"]
        assert near and far, f"no complete pull: {results}"
        load = os.getloadavg()[0]
        print(f"\nvxlan throughput, {MIB} MiB pulls, {ROUNDS} rounds, TCG guests, "
              f"load average {load:.1f}")
        print(f"{'path':<44}{'median Mbit/s':>14}{'min':>8}{'max':>8}")
        for what, xs in (("one host, one bridge (no encapsulation)", near),
                         ("across two hosts over VXLAN", far)):
            print(f"{what:<44}{statistics.median(xs):>14.1f}{min(xs):>8.1f}{max(xs):>8.1f}")
        print(f"ratio across / one bridge (median): "
              f"{statistics.median(far) / statistics.median(near):.2f}")
    finally:
        nf.delete_all_vms(env)
        for n in env.api.get("/v1/networks")["networks"]:
            env.api.request("DELETE", f"/v1/networks/{n['id']}")
        env.teardown()
