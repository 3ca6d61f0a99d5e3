"""Remote-group rules as ipsets on a host with a nimbus-agent (issue 9): one nimbusd, the namespace
test host kvm1 with its agent (scripts/testhosts.sh), a vxlan network there.

Group "srv" accepts anything from the members of group "friends" (a remote-group rule of any
protocol: on an agent host, one constant <all ipset=...> accept in srv's filter, the members in
the agent's ipset). Server S (in srv) answers on TCP 9000, which no other rule opens; client C
(in "cl" and friends) probes it once a second and prints the result on its console:

- C in friends: 9000 answers; the set in kvm1's namespace (`ipset list`) holds exactly C;
- C taken out of friends: refused, the set is empty; put back: answers again;
- another VM created in friends: the set gets its address, and kvm1 gets no member filter
  (nimbus-sgr-*) while srv's and friends' filters keep their XML (no filter redefined);
- the agent stopped, the set emptied by hand, the agent started again: it restores the set
  from its state file (C answers again);
- a set of nimbus's form that no rule needs (made through the agent's API, as a crash between a
  group filter's removal and its set's leaves one) is removed by nimbusd's catch-up after a
  restart, and a set of another name is left alone;
- the agent killed, C taken out of friends meanwhile (the update fails there), the agent started
  again with its state lost: housekeeping notices it answers again and pushes the set (empty,
  C refused); the agent restarted with an old state: the set is pushed again (C);
- nimbusd restarted without its agent-ca-file: srv's filter is rewritten with a member filter
  (the host's form without an agent), and back to the set once the file is given again.

Guests are the tiny test image, shared by the tests of this module; everything is torn down.
"""

import json
import os
import re
import signal
import ssl
import subprocess
import time
import urllib.request
import uuid

import pytest

import nimbus_fixtures as nf
from testhosts import SET
from testhosts import testhosts  # noqa: F401 - the session fixture

CIDR = "10.62.0.0/24"
S_IP, C_IP, D_IP = "10.62.0.10", "10.62.0.20", "10.62.0.30"
SLOW = 300

SERVER = f"""#!/bin/sh
printf '#!/bin/sh\\necho banner-9000\\n' > /srv.sh; chmod +x /srv.sh
nc -ll -p 9000 -e /srv.sh &
( until ip -4 addr show eth0 | grep -q '{S_IP}/'; do sleep 1; done; echo IPS-SERVER-READY ) &
"""

CLIENT = f"""#!/bin/sh
( until ip -4 addr show eth0 | grep -q '{C_IP}/'; do sleep 1; done; echo IPS-CLIENT-READY
  n=0
  while true; do
    n=$((n+1))
    r=$(nc -w1 {S_IP} 9000 </dev/null 2>/dev/null); [ -n "$r" ] || r=FAIL
    echo "IPS-P $n $r"
    sleep 1
  done ) &
"""


def set_name(rule_id):
    """nimbus-agent's set of a remote-group rule: nbs- and the id's first 24 hex digits."""
    return "nbs-" + rule_id.replace("-", "")[:24]


class T:
    """What the module's tests share."""


@pytest.fixture(scope="module")
def ips(make_env, tiny_image, testhosts):  # noqa: F811 - the fixture imported above
    if not testhosts.agent_secret_file(1):
        pytest.fail("the test hosts have no nimbus-agent (is it built in NIMBUS_BUILD_DIR?)")
    env = make_env("sg-ipsets")
    env.daemon.extra_args += ["--agent-ca-file", testhosts.agent_ca_file()]
    env.daemon.start()
    t = T()
    t.env, t.api, t.hosts = env, env.api, testhosts
    t.port_ids, t.vms = set(), {}
    try:
        nf.join_test_hosts(env, testhosts, tiny_image, ("kvm1",))
        api = env.api
        api.ok("POST", "/v1/networks", {"name": "ipsnet", "type": "vxlan", "cidr": CIDR},
               expect=201)
        t.srv = api.ok("POST", "/v1/secgroups", {"name": "srv"}, expect=201)
        t.friends = api.ok("POST", "/v1/secgroups", {"name": "friends"}, expect=201)
        t.cl = api.ok("POST", "/v1/secgroups", {"name": "cl"}, expect=201)
        t.rule = api.ok("POST", "/v1/secgroups/srv/rules",
                        {"direction": "ingress", "protocol": "any", "remote_group": "friends"},
                        expect=201)
        t.set = set_name(t.rule["id"])
        tasks = []
        for name, ip, groups, ud in (("ips-s", S_IP, ["srv"], SERVER),
                                     ("ips-c", C_IP, ["cl", "friends"], CLIENT)):
            r = api.ok("POST", "/v1/vms", {
                "name": name, "image": env.image["id"], "flavor": env.flavor["id"],
                "host": "kvm1", "networks": [{"network": "ipsnet", "ip": ip}],
                "secgroups": groups, "user_data": ud}, expect=202)
            env.remember(r["vm"]["id"])
            tasks.append(r["task"]["id"])
        nf.wait_tasks(api, tasks)
        for name in ("ips-s", "ips-c"):
            t.vms[name] = api.vm(name)
            t.port_ids |= {n["port_id"] for n in t.vms[name]["nics"]}
        t.s, t.c = t.vms["ips-s"], t.vms["ips-c"]
        api.wait_console(t.s["id"], "IPS-SERVER-READY")
        api.wait_console(t.c["id"], "IPS-CLIENT-READY")
        yield t
    finally:
        group_ids, rule_ids = set(), set()
        try:
            for g in env.api.get("/v1/secgroups")["secgroups"]:
                group_ids.add(g["id"])
                rule_ids |= {r["id"] for r in env.api.get(f"/v1/secgroups/{g['id']}")["rules"]}
        except Exception as e:  # noqa: BLE001 - teardown goes on
            print(f"groups not listed at teardown: {e!r}")
        nf.delete_all_vms(env)
        for n in env.api.get("/v1/networks")["networks"]:
            env.api.request("DELETE", f"/v1/networks/{n['id']}")
        # The filters and the sets go with the last port using them on the host.
        left_filters = [f for f in filter_names(testhosts)
                        if any(x in f for x in group_ids | rule_ids | t.port_ids)]
        left_sets = sorted(ipset_names(testhosts) & {set_name(r) for r in rule_ids})
        for f in left_filters:
            testhosts.virsh(1, "nwfilter-undefine", f)
        env.teardown()
    assert not left_filters, f"filters left on kvm1 after the VMs were deleted: {left_filters}"
    assert not left_sets, f"ipsets left on kvm1 after the VMs were deleted: {left_sets}"


def filter_names(hosts):
    out = hosts.virsh(1, "nwfilter-list", check=True).stdout
    return [line.split()[1] for line in out.splitlines()[2:] if len(line.split()) >= 2]


def ipset_names(hosts):
    p = hosts.exec(1, "ipset", "list", "-n", check=True)
    return {line.strip() for line in p.stdout.splitlines() if line.strip()}


def ipset_members(hosts, name):
    """The members of a set in kvm1's network namespace, or None when it does not exist."""
    p = hosts.exec(1, "ipset", "list", name)
    if p.returncode != 0:
        assert "does not exist" in p.stderr, p
        return None
    return set(p.stdout.split("Members:", 1)[1].split())


def probes(t):
    """[(round, result)] of the client's probes of S's port 9000, in order."""
    return [(int(m.group(1)), m.group(2))
            for m in re.finditer(r"^IPS-P (\d+) (\S+)\r?$", t.api.console(t.c["id"]), re.M)]


def last_round(t):
    p = probes(t)
    return p[-1][0] if p else 0


def wait_steady(t, want, after, rounds=3, timeout=SLOW):
    """`rounds` probes in a row, after round `after`, all giving want."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = 0
        for _, r in (p for p in probes(t) if p[0] > after):
            run = run + 1 if r == want else 0
            if run >= rounds:
                return
        time.sleep(1)
    raise AssertionError(f"not {rounds}x {want} in a row after round {after}: {probes(t)[-12:]}")


def member_filters(t):
    """The member filters (nimbus-sgr-<rule id>) of this module's rules on kvm1 (a test host
    starts with a copy of the root libvirt's filters, which may hold other runs' ones)."""
    ids = {r["id"] for g in (t.srv, t.friends, t.cl)
           for r in t.api.get(f"/v1/secgroups/{g['id']}")["rules"]}
    return [f for f in filter_names(t.hosts) if f.startswith("nimbus-sgr-") and f[11:] in ids]


def group_filter_xml(t, group):
    return t.hosts.virsh(1, "nwfilter-dumpxml", f"nimbus-sg-{group['id']}", check=True).stdout


def test_member_answers_and_set_holds_the_members(ips):
    t = ips
    wait_steady(t, "banner-9000", 0)
    assert ipset_members(t.hosts, t.set) == {C_IP}
    # srv's filter matches the set (no member filter anywhere on the host)
    xml = group_filter_xml(t, t.srv)
    assert f"ipset='{t.set}'" in xml and "ipsetflags='src'" in xml, xml
    assert not member_filters(t)
    # the rule matches the set's members only: iptables in kvm1's namespace says so
    rules = t.hosts.exec(1, "iptables", "-S", check=True).stdout
    assert re.search(rf"--match-set {t.set} src -j ACCEPT", rules), rules


def test_leaving_and_rejoining_the_group(ips):
    t = ips
    wait_steady(t, "banner-9000", last_round(t) - 1)
    before = last_round(t)
    t.api.ok("DELETE", "/v1/vms/ips-c/secgroups/friends", expect=(200, 204), timeout=SLOW)
    wait_steady(t, "FAIL", before)
    assert ipset_members(t.hosts, t.set) == set()
    before = last_round(t)
    t.api.ok("POST", "/v1/vms/ips-c/secgroups", {"secgroup": "friends"}, expect=(200, 201, 204),
             timeout=SLOW)
    wait_steady(t, "banner-9000", before)
    assert ipset_members(t.hosts, t.set) == {C_IP}


def test_new_member_redefines_no_filter(ips):
    t = ips
    srv_xml, friends_xml = group_filter_xml(t, t.srv), group_filter_xml(t, t.friends)
    r = t.api.ok("POST", "/v1/vms", {
        "name": "ips-d", "image": t.env.image["id"], "flavor": t.env.flavor["id"],
        "host": "kvm1", "networks": [{"network": "ipsnet", "ip": D_IP}],
        "secgroups": ["friends"]}, expect=202)
    t.env.remember(r["vm"]["id"])
    t.api.wait_task(r["task"]["id"])
    d = t.api.vm("ips-d")
    t.port_ids |= {n["port_id"] for n in d["nics"]}
    assert ipset_members(t.hosts, t.set) == {C_IP, D_IP}
    assert not member_filters(t)
    # the group filters naming friends' members are the same, uuid and all
    assert group_filter_xml(t, t.srv) == srv_xml
    assert group_filter_xml(t, t.friends) == friends_xml
    t.api.delete_vm(d["id"])
    assert ipset_members(t.hosts, t.set) == {C_IP}
    wait_steady(t, "banner-9000", last_round(t))


def agent_stop(t, sig=signal.SIGTERM):
    """Stops kvm1's agent (the test hosts' one, by the pid in its pid file)."""
    with open(os.path.join(t.hosts.agent_dir(1), "agent.pid")) as f:
        pid = int(f.read().strip())
    os.kill(pid, sig)
    nf.wait_until(lambda: not os.path.exists(f"/proc/{pid}"), 30, "the agent stopped")


def agent_start(t):
    """Starts kvm1's agent again, as scripts/testhosts.sh does."""
    ip = t.hosts.ip(1)
    s = SET
    subprocess.run([os.path.join(nf.REPO, "scripts", "start-agent.sh"), t.hosts.agent_dir(1),
                    "--netns", f"nb{s}_host1" if s else "nbhost1",
                    "--listen", f"{ip}:8775", "--san", ip, "--san", "kvm1",
                    "--check-interval", "5"],
                   check=True, capture_output=True, text=True, timeout=60,
                   env={**os.environ, "NIMBUS_AGENT": os.path.join(
                       nf.BUILD_DIR, "src", "agent", "nimbus-agent")})


def agent_state_file(t):
    return os.path.join(t.hosts.agent_dir(1), "state", "ipsets.json")


def agent_call(t, method, path, body=None):
    """kvm1's agent API with its own secret, its certificate checked: (status, JSON or None)."""
    with open(t.hosts.agent_secret_file(1)) as f:
        secret = f.read().strip()
    ctx = ssl.create_default_context(cafile=t.hosts.agent_ca_file())
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"{t.hosts.agent_url(1)}{path}", data=data, method=method,
                                 headers={"Authorization": f"Bearer {secret}",
                                          "Content-Type": "application/json"})
    with urllib.request.urlopen(req, context=ctx, timeout=20) as r:
        raw = r.read()
        return r.status, json.loads(raw) if raw else None


def agent_sets(t):
    """{name: members} of the sets kvm1's agent keeps (GET /v1/ipsets)."""
    _, body = agent_call(t, "GET", "/v1/ipsets")
    return {e["name"]: set(e["members"]) for e in body["ipsets"]}


def restart_daemon(t, extra_args=None):
    t.env.daemon.stop()
    if extra_args is not None:
        t.env.daemon.extra_args = extra_args
    t.env.daemon.start()


def test_agent_restart_restores_the_sets(ips):
    t = ips
    agent_stop(t)
    # what a reboot does to the kernel's copy, as far as iptables lets us (it references it)
    t.hosts.exec(1, "ipset", "flush", t.set, check=True)
    before = last_round(t)
    wait_steady(t, "FAIL", before)
    agent_start(t)
    assert ipset_members(t.hosts, t.set) == {C_IP}
    wait_steady(t, "banner-9000", last_round(t))
    with open(os.path.join(t.hosts.agent_dir(1), "agent.log")) as f:
        assert re.search(r"\d+ ipsets in the state", f.read())


def test_catch_up_removes_sets_no_rule_needs(ips):
    t = ips
    # a set of nimbus's form whose rule does not exist (a crash between a group filter's
    # removal and its set's leaves such a set), through the agent as nimbusd makes them
    orphan = "nbs-" + uuid.uuid4().hex[:24]
    status, _ = agent_call(t, "PUT", f"/v1/ipsets/{orphan}", {"members": ["10.62.0.99"]})
    assert status == 200
    # and a set of another name in the host's kernel, which is none of nimbus's business
    other = f"nbtest-{uuid.uuid4().hex[:8]}"
    t.hosts.exec(1, "ipset", "create", other, "hash:ip", check=True)
    try:
        assert ipset_members(t.hosts, orphan) == {"10.62.0.99"}
        restart_daemon(t)
        # housekeeping's first round catches kvm1 up (every 3 syncs of 2 s in the tests)
        nf.wait_until(lambda: orphan not in agent_sets(t), 90,
                      f"{orphan} removed by nimbusd's catch-up")
        assert ipset_members(t.hosts, orphan) is None
        assert ipset_members(t.hosts, other) == set()
        assert agent_sets(t)[t.set] == {C_IP}
        assert ipset_members(t.hosts, t.set) == {C_IP}
    finally:
        t.hosts.exec(1, "ipset", "destroy", other)
        t.hosts.exec(1, "ipset", "destroy", orphan)


def test_agent_back_gets_the_sets(ips):
    t = ips
    wait_steady(t, "banner-9000", last_round(t) - 1)
    agent_stop(t, signal.SIGKILL)
    # the update cannot reach the agent: the call succeeds, the host is behind
    t.api.ok("DELETE", "/v1/vms/ips-c/secgroups/friends", expect=(200, 204), timeout=SLOW)
    assert ipset_members(t.hosts, t.set) == {C_IP}
    # the agent comes back with its state lost (the kernel's set, referenced by iptables, keeps
    # the old member)
    os.unlink(agent_state_file(t))
    agent_start(t)
    before = last_round(t)
    nf.wait_until(lambda: agent_sets(t).get(t.set) == set(), 90,
                  "the set pushed again, empty, once the agent answers")
    assert ipset_members(t.hosts, t.set) == set()
    wait_steady(t, "FAIL", before)
    t.api.ok("POST", "/v1/vms/ips-c/secgroups", {"secgroup": "friends"}, expect=(200, 201, 204),
             timeout=SLOW)
    assert ipset_members(t.hosts, t.set) == {C_IP}
    # restarted with an old state (C missing): nimbusd sees the restart (the agent's uptime)
    # and pushes the set again, though the agent never stopped answering for long
    agent_stop(t)
    with open(agent_state_file(t)) as f:
        state = json.load(f)
    for e in state["ipsets"]:
        if e["name"] == t.set:
            e["members"] = []
    with open(agent_state_file(t), "w") as f:
        json.dump(state, f)
    agent_start(t)
    nf.wait_until(lambda: agent_sets(t).get(t.set) == {C_IP}, 90,
                  "the set pushed again with its member after the agent's restart")
    assert ipset_members(t.hosts, t.set) == {C_IP}
    wait_steady(t, "banner-9000", last_round(t))


def test_filters_follow_the_agent_setting(ips):
    t = ips
    member_filter = f"nimbus-sgr-{t.rule['id']}"
    args = list(t.env.daemon.extra_args)
    i = args.index("--agent-ca-file")
    # without agent-ca-file nimbusd cannot reach kvm1's agent: member filters there
    restart_daemon(t, args[:i] + args[i + 2:])
    try:
        nf.wait_until(lambda: member_filter in filter_names(t.hosts), 90,
                      "srv's filter rewritten with a member filter")
        assert "ipset=" not in group_filter_xml(t, t.srv)
        wait_steady(t, "banner-9000", last_round(t))
    finally:
        restart_daemon(t, args)
    nf.wait_until(lambda: member_filter not in filter_names(t.hosts), 90,
                  "srv's filter back with the set, its member filter gone")
    assert f"ipset='{t.set}'" in group_filter_xml(t, t.srv)
    assert ipset_members(t.hosts, t.set) == {C_IP}
    wait_steady(t, "banner-9000", last_round(t))
