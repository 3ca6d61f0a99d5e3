#!/usr/bin/python3
"""Security-group rule updates on a host with many running VMs: Nimbus against raw virsh doing
the same change by hand.

    bench/secgroups.py [--count 50] [--rounds 5] [--concurrency 4] [--agent] [--timeout S]

It starts its own nimbusd (TCG, private state dir and pool), creates --count VMs (the tiny test
guest, 128 MiB) in the groups "default" and a group of its own, then, --rounds times:

- Nimbus: POST a rule (tcp, a new port, from 0.0.0.0/0) to the group and DELETE it again,
  timing each call; when the POST returns, the rule must already be in the host's iptables for
  every VM's interface (libvirt applies a redefined filter before it answers): the bench counts
  them and fails if one is missing, so "call done" is "rule active";
- raw virsh: the same change to the same filter by hand: `virsh nwfilter-define` of the group's
  filter with the rule added, then without it.

--agent runs a nimbus-agent for the bench's host (in this network namespace, on 127.0.0.1, only
touching its own nbs-* ipsets) and gives it to nimbusd, so that the groups' remote-group rules
("ingress from the same group") are ipsets the agent keeps rather than member filters
(docs/networking.md); without it they are member filters. After the creates, one more VM is
created in the groups, timed alone: what a create costs with --count members (compare a run with
--agent to one without).

Then once, what the design before 2026-12-05 cost for the same change (the rules in every port's
filter): --per-port-sample port filters changed one by one with `virsh nwfilter-define`,
extrapolated to all of them. And one VM
joining and leaving a second group (Nimbus). Everything is removed at the end, also on error
and Ctrl-C. Figures only: nothing here asserts on timings. See docs/benchmarks.md.
"""

import argparse
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time

import benchlib
from benchlib import Api, BenchError, log, run
from vm_create import REPO, Bench, run_many

PORT_BASE = 20000


class SgBench(Bench):
    def __init__(self, args):
        super().__init__(args)
        self.group = None
        self.group2 = None

    def nimbus_create(self, name):
        t0 = time.monotonic()
        req = {"name": name, "image": self.res.image_id, "flavor": self.res.flavor_id,
               "secgroups": ["default", self.group["name"]]}
        _, body = self.api.call("POST", "/v1/vms", req)
        self.res.add("nimbus_vms", body["vm"]["id"], name)
        end, _ = self.api.wait_task(body["task"]["id"], t0)
        return {"id": body["vm"]["id"], "seconds": end - t0}

    def rules_in_iptables(self, port):
        out = run(["iptables-save"], timeout=60).stdout
        return len(re.findall(rf"--dport {port}\b", out))

    def group_filter(self):
        return f"nimbus-sg-{self.group['id']}"

    def virsh_define(self, xml):
        with tempfile.NamedTemporaryFile("w", suffix=".xml", dir=self.work, delete=False) as f:
            f.write(xml)
        t0 = time.monotonic()
        self.virsh("nwfilter-define", f.name)
        took = time.monotonic() - t0
        os.unlink(f.name)
        return took

    def cleanup(self):
        # The group and rule filters (nimbus-sg-<group>, nimbus-sgr-<rule>) of this daemon's
        # groups, its project's default group among them, stay in libvirt after its VMs go:
        # their names are read while the daemon runs and undefined once it is gone.
        names = set()
        if self.api and (self.daemon is None or self.daemon.poll() is None):
            try:
                _, body = self.api.call("GET", "/v1/secgroups")
                for g in body.get("secgroups", []):
                    names.add(f"nimbus-sg-{g['id']}")
                    _, rules = self.api.call("GET", f"/v1/secgroups/{g['id']}/rules")
                    names.update(f"nimbus-sgr-{r['id']}" for r in rules.get("rules", []))
            except BenchError as e:
                log(f"clean-up: listing the groups: {e}")
        super().cleanup()
        listed = set(self.virsh("nwfilter-list", check=False).split())
        for name in sorted(names & listed):
            self.virsh("nwfilter-undefine", name, check=False)

    def run(self):
        a = self.args
        self.ensure_libvirt()
        self.api_start()
        self.load_before = os.getloadavg()
        self.upload_image_and_flavor()
        tag = self.tag
        _, self.group = self.api.call("POST", "/v1/secgroups", {"name": f"bench-{tag}"})
        _, self.group2 = self.api.call("POST", "/v1/secgroups", {"name": f"bench-{tag}-2"})
        log(f"creating {a.count} VMs, {a.concurrency} at a time")
        names = [f"bench-{tag}-sg-{i}" for i in range(a.count)]
        created, wall = run_many(lambda i: self.nimbus_create(names[i]), a.count,
                                 a.concurrency, self.threads)
        self.vms = created
        log(f"{a.count} VMs running after {wall:.1f} s")
        r = {"count": a.count, "create_wall": wall, "nimbus_add": [], "nimbus_delete": [],
             "virsh_add": [], "virsh_delete": [], "active": [], "agent": a.agent}
        # one more VM in the groups, alone: its create with a.count members there (a GET first
        # renews this thread's connection, idle since the upload, without timing it)
        self.api.call("GET", "/v1/vms?limit=1")
        nxt = self.nimbus_create(f"bench-{tag}-sg-next")
        self.vms.append(nxt)
        r["create_next"] = nxt["seconds"]
        log(f"VM {a.count + 1} created alone in {nxt['seconds']:.2f} s "
            f"({'ipsets' if a.agent else 'member filters'})")
        gid = self.group["id"]
        for k in range(a.rounds):
            port = PORT_BASE + k
            t0 = time.monotonic()
            _, rule = self.api.call("POST", f"/v1/secgroups/{gid}/rules",
                                    {"direction": "ingress", "protocol": "tcp",
                                     "port_min": port, "cidr": "0.0.0.0/0"})
            r["nimbus_add"].append(time.monotonic() - t0)
            n = self.rules_in_iptables(port)
            r["active"].append(n)
            if n < a.count:
                raise BenchError(f"rule for port {port}: in iptables for {n} of {a.count} "
                                 "interfaces when the call returned")
            t0 = time.monotonic()
            self.api.call("DELETE", f"/v1/secgroups/{gid}/rules/{rule['id']}")
            r["nimbus_delete"].append(time.monotonic() - t0)
            # raw virsh: the same change to the same filter by hand
            base = self.virsh("nwfilter-dumpxml", self.group_filter())
            rule_xml = (f"<rule action='accept' direction='in' priority='500'>"
                        f"<tcp dstportstart='{port + 1000}' state='NEW'/></rule>")
            with_rule = base.replace("</filter>", rule_xml + "</filter>")
            r["virsh_add"].append(self.virsh_define(with_rule))
            if self.rules_in_iptables(port + 1000) < a.count:
                raise BenchError("the hand-made rule is not in iptables for every interface")
            r["virsh_delete"].append(self.virsh_define(base))
            log(f"round {k + 1}: Nimbus add {r['nimbus_add'][-1]:.2f} s, delete "
                f"{r['nimbus_delete'][-1]:.2f} s; virsh add {r['virsh_add'][-1]:.2f} s, delete "
                f"{r['virsh_delete'][-1]:.2f} s")
        # the design before: the rules in every port's filter, so one change redefined them
        # all, each redefinition costing libvirt a pass over every interface. A sample of the
        # port filters gets a rule added by hand (a changed filter: libvirt skips an unchanged
        # one), extrapolated to all of them.
        sample = self.vms[:min(a.per_port_sample, len(self.vms))]
        t0 = time.monotonic()
        for k, vm in enumerate(sample):
            _, v = self.api.call("GET", f"/v1/vms/{vm['id']}")
            for nic in v["nics"]:
                xml = self.virsh("nwfilter-dumpxml", f"nimbus-port-{nic['port_id']}")
                extra = (f"<rule action='accept' direction='in' priority='500'>"
                         f"<tcp dstportstart='{PORT_BASE + 2000 + k}' state='NEW'/></rule>")
                self.virsh_define(xml.replace("</filter>", extra + "</filter>"))
        r["per_port_sample"] = len(sample)
        r["per_port_seconds"] = time.monotonic() - t0
        log(f"{len(sample)} port filters changed one by one: {r['per_port_seconds']:.1f} s")
        # one VM joining and leaving a second group
        vm0 = self.vms[0]["id"]
        t0 = time.monotonic()
        self.api.call("POST", f"/v1/vms/{vm0}/secgroups", {"secgroup": self.group2["name"]})
        r["join"] = time.monotonic() - t0
        t0 = time.monotonic()
        self.api.call("DELETE", f"/v1/vms/{vm0}/secgroups/{self.group2['id']}")
        r["leave"] = time.monotonic() - t0
        self.load_after = os.getloadavg()
        return r

    def api_start(self):
        # The groups need no clean-up of their own: their filters go with the last VM's on the
        # host, their rows with the daemon's state dir (Bench.cleanup).
        self.api = Api(*self.start_daemon())


def report(r):
    def med(xs):
        return statistics.median(xs)

    print()
    print(f"Nimbus security-group benchmark, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print(f"{r['count']} running TCG guests on one host, each in 'default' and the bench's group "
          f"(one port, one filter each); {len(r['nimbus_add'])} rounds")
    print(f"load average {r['load_before'][0]:.2f} before, {r['load_after'][0]:.2f} after")
    print()
    print(f"{'change':<42}{'Nimbus med':>11}{'max':>8}{'virsh med':>11}{'max':>8}{'ratio':>7}")
    for what, nk, vk in (("rule added (call -> active everywhere)", "nimbus_add", "virsh_add"),
                         ("rule deleted", "nimbus_delete", "virsh_delete")):
        n, v = r[nk], r[vk]
        print(f"{what:<42}{med(n):>10.2f}s{max(n):>7.2f}s{med(v):>10.2f}s{max(v):>7.2f}s"
              f"{med(n) / med(v):>7.2f}")
    print()
    print(f"rule active for all {r['count']} interfaces when the call returned: "
          f"{min(r['active'])} or more iptables rules each time")
    per = r["per_port_seconds"] / r["per_port_sample"]
    print(f"the design before (the rule in every port's filter): {r['per_port_sample']} port "
          f"filters changed by virsh in {r['per_port_seconds']:.1f} s, {per:.2f} s each: "
          f"{per * r['count']:.0f} s for all {r['count']} (extrapolated)")
    print(f"one VM joining a group: {r['join']:.2f} s, leaving it: {r['leave']:.2f} s")
    print(f"VM {r['count'] + 1} created alone in groups of {r['count']} members: "
          f"{r['create_next']:.2f} s (remote-group rules as "
          f"{'ipsets, --agent' if r['agent'] else 'member filters'})")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--count", type=int, default=50, help="running VMs (default 50)")
    ap.add_argument("--rounds", type=int, default=5, help="rule add/delete rounds (default 5)")
    ap.add_argument("--concurrency", type=int, default=4, help="creates in flight (default 4)")
    ap.add_argument("--per-port-sample", type=int, default=10,
                    help="port filters changed one by one for the old design's figure (10)")
    ap.add_argument("--nimbusd", default=os.path.join(REPO, "build", "src", "daemon", "nimbusd"))
    ap.add_argument("--libvirt-uri", default="qemu:///system")
    ap.add_argument("--workers", type=int, default=4, help="nimbusd --workers (default 4)")
    ap.add_argument("--agent", action="store_true",
                    help="give the host a nimbus-agent: remote-group rules as ipsets")
    ap.add_argument("--agent-port", type=int, default=18775, help="its port (default 18775)")
    ap.add_argument("--timeout", type=float,
                    help="seconds an API call may take (default 30 + 6 per VM: a rule update "
                    "re-instantiates every interface, 208.8 s at 50 VMs on a loaded machine)")
    a = ap.parse_args()
    if a.count < 1 or a.rounds < 1 or a.concurrency < 1:
        ap.error("--count, --rounds and --concurrency must be at least 1")
    if a.timeout is not None and a.timeout <= 0:
        ap.error("--timeout must be positive")
    # every connection of the bench's Api, opened after this
    benchlib.HTTP_TIMEOUT_S = a.timeout if a.timeout is not None else 30 + 6 * (a.count + 1)
    a.nics, a.keep_daemon_url, a.token = 1, None, None

    def on_term(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    b = SgBench(a)
    rc, r = 0, None
    try:
        r = b.run()
        r["load_before"], r["load_after"] = b.load_before, b.load_after
    except KeyboardInterrupt:
        log("interrupted")
        rc = 130
    except (BenchError, subprocess.SubprocessError) as e:
        log(f"error: {e}")
        tail = b.daemon_tail()
        if tail:
            log("last lines of nimbusd's log:\n" + tail)
        rc = 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        log("cleaning up")
        b.cleanup()
    if rc == 0:
        report(r)
    return rc


if __name__ == "__main__":
    sys.exit(main())
