"""Security groups on real guests through nimbusd (issue 9): three guests on one network, a
server S in group "srv" and two clients, C1 in "default" and "friends", C2 in "default".
srv allows tcp 22 from anywhere and tcp 9000 from the members of "friends" (plus Neutron's
defaults). Each client probes S's ports 22, 8080 and 9000 once a second (one loop per port)
and prints the result on its console:

- 22 answers both; 8080 answers neither; 9000 answers C1 only (remote group);
- a rule for 8080 added to srv while the guests run: C2's 8080 answers within seconds (the time
  from the API call is printed: the issue's "rule update: API call to rule active");
- C1 taken out of "friends": its 9000 is refused from then on;
- C1 changes its IP, C2 its MAC: their traffic is dropped (clean-traffic's anti-spoofing).

Probes go guest to guest: traffic from the host to a guest's tap skips the FORWARD chain where
nwfilter's rules live (test_nwfilter_hv.py), which is how the host triggers the IP and MAC
changes (a listener in the client runs the change when the host connects).
"""

import re
import socket
import subprocess
import time

import pytest

import nimbus_fixtures as nf

CIDR, PREFIX = "10.242.9.0/24", "10.242.9."
S_IP, C1_IP, C2_IP = PREFIX + "10", PREFIX + "20", PREFIX + "30"
SPOOF_IP = PREFIX + "99"
POOL = "10.177.0.0/16"
# A live update redefines filters in the request; libvirt takes ~3 s per filter, but over a
# minute on a loaded machine (seen at load average 36): the calls and waits allow for that.
SLOW = 300

SERVER = f"""#!/bin/sh
printf '#!/bin/sh\\necho banner-$1\\n' > /srv.sh; chmod +x /srv.sh
for p in 22 8080 9000; do nc -ll -p $p -e /srv.sh $p & done
( until ip -4 addr show eth0 | grep -q {S_IP}; do sleep 1; done; echo SG-SERVER-READY ) &
"""


def client_script(my_ip, new_mac):
    return f"""#!/bin/sh
printf '#!/bin/sh\\nip addr flush dev eth0; ip addr add {SPOOF_IP}/24 dev eth0\\n' > /chip.sh
printf '#!/bin/sh\\nip link set eth0 down; ip link set eth0 address {new_mac}\\nip link set eth0 up; ip addr add {my_ip}/24 dev eth0\\n' > /chmac.sh
chmod +x /chip.sh /chmac.sh
nc -ll -p 7101 -e /chip.sh & nc -ll -p 7102 -e /chmac.sh &
( until ip -4 addr show eth0 | grep -q {my_ip}; do sleep 1; done; echo SG-CLIENT-READY
  for p in 22 8080 9000; do
    ( n=0
      while true; do
        n=$((n+1))
        r=$(nc -w1 {S_IP} $p </dev/null 2>/dev/null); [ -n "$r" ] || r=FAIL
        echo "SG-P $p $n $r"
        sleep 1
      done ) &
  done ) &
"""


class T:
    """What the module's tests share."""


def console_lines(t, vm):
    path = t.env.daemon.console_log_path(vm["id"])
    try:
        with open(path, "rb") as f:
            out = f.read().decode(errors="replace").replace("\r", "")
    except FileNotFoundError:
        return []
    return [l for l in out.splitlines() if l.startswith("SG-")]


def probes(t, vm, port):
    """[(round, result)] of the client's probes of S's port, in order."""
    out = []
    for l in console_lines(t, vm):
        m = re.match(rf"SG-P {port} (\d+) (\S+)$", l)
        if m:
            out.append((int(m.group(1)), m.group(2)))
    return out


def last_round(t, vm, port):
    p = probes(t, vm, port)
    return p[-1][0] if p else 0


def wait_probe(t, vm, port, pred, after, timeout, what):
    """The first probe after round `after` whose result satisfies pred: (round, result, when)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for n, r in probes(t, vm, port):
            if n > after and pred(r):
                return n, r, time.monotonic()
        time.sleep(0.2)
    raise AssertionError(f"{what}: not seen within {timeout} s; last probes of {port}: "
                         f"{probes(t, vm, port)[-10:]}")


def wait_steady(t, vm, port, want, after, rounds=3, timeout=SLOW):
    """`rounds` probes in a row, after round `after`, all giving want."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        seq = [r for n, r in probes(t, vm, port) if n > after]
        run = 0
        for r in seq:
            run = run + 1 if r == want else 0
            if run >= rounds:
                return
        time.sleep(0.5)
    raise AssertionError(f"port {port}: not {rounds}x {want} in a row after round {after}: "
                         f"{probes(t, vm, port)[-12:]}")


def host_trigger(ip, port):
    with socket.create_connection((ip, port), timeout=5) as s:
        s.settimeout(5)
        try:
            s.recv(64)
        except OSError:
            pass


@pytest.fixture(scope="module")
def sg(make_env, tiny_image, tmp_path_factory):
    env = make_env("secgroups")
    help_text = subprocess.run([nf.NIMBUSD, "--help"], capture_output=True, text=True).stdout
    if "--default-network-pool" in help_text:
        env.daemon.extra_args = ["--default-network-pool", POOL]
    env.daemon.start()
    t = T()
    t.env, api = env, env.api
    t.api = api
    api.ok("POST", "/v1/flavors", {"name": "sg-tiny", "vcpus": 1, "ram_mib": 128,
                                   "disk_gib": 1}, expect=201)
    nf.upload_image(env, "sg-img", tiny_image)
    api.ok("POST", "/v1/networks", {"name": "sgnet", "cidr": CIDR}, expect=201)
    t.srv = api.ok("POST", "/v1/secgroups", {"name": "srv"}, expect=201)
    t.friends = api.ok("POST", "/v1/secgroups", {"name": "friends"}, expect=201)
    api.ok("POST", "/v1/secgroups/srv/rules", {"direction": "ingress", "protocol": "tcp",
                                               "port_min": 22}, expect=201)
    api.ok("POST", "/v1/secgroups/srv/rules", {"direction": "ingress", "protocol": "tcp",
                                               "port_min": 9000, "remote_group": "friends"},
           expect=201)
    t.port_ids = set()
    tasks = []
    specs = (("sg-s", S_IP, ["srv"], SERVER),
             ("sg-c1", C1_IP, ["default", "friends"], client_script(C1_IP, "52:54:00:ee:ee:01")),
             ("sg-c2", C2_IP, ["default"], client_script(C2_IP, "52:54:00:ee:ee:02")))
    vms = {}
    try:
        for name, ip, groups, ud in specs:
            r = api.ok("POST", "/v1/vms", {"name": name, "image": "sg-img", "flavor": "sg-tiny",
                                           "networks": [{"network": "sgnet", "ip": ip}],
                                           "secgroups": groups, "user_data": ud}, expect=202)
            env.remember(r["vm"]["id"])
            tasks.append(r["task"]["id"])
        nf.wait_tasks(api, tasks)
        for name, *_ in specs:
            vms[name] = api.get(f"/v1/vms/{name}")
            t.port_ids |= {n["port_id"] for n in vms[name]["nics"]}
        t.s, t.c1, t.c2 = vms["sg-s"], vms["sg-c1"], vms["sg-c2"]
        for vm, line in ((t.s, "SG-SERVER-READY"), (t.c1, "SG-CLIENT-READY"),
                         (t.c2, "SG-CLIENT-READY")):
            nf.wait_until(lambda: line in console_lines(t, vm), nf.BOOT_TIMEOUT,
                          f"{vm['name']}: {line}", interval=1)
        yield t
    finally:
        rule_ids, group_ids = set(), set()
        try:
            for g in api.get("/v1/secgroups")["secgroups"]:
                group_ids.add(g["id"])
                rule_ids |= {r["id"] for r in api.get(f"/v1/secgroups/{g['id']}")["rules"]}
        except Exception as e:  # noqa: BLE001 - teardown goes on
            print(f"rules not listed at teardown: {e!r}")
        nf.delete_all_vms(env)
        filters = nf.virsh("nwfilter-list").stdout
        left = [f"nimbus-port-{p}" for p in t.port_ids if f"nimbus-port-{p}" in filters]
        # the groups' filters and the remote-group rules' member filters go with the last port
        # using them on the host
        left += [f"nimbus-sg-{g}" for g in group_ids if f"nimbus-sg-{g}" in filters]
        left += [f"nimbus-sgr-{r}" for r in rule_ids if f"nimbus-sgr-{r}" in filters]
        for f in left:
            nf.virsh("nwfilter-undefine", f, check=False)
        env.teardown()
    assert not left, f"filters left after the VMs were deleted: {left}"


def test_allowed_port_answers_blocked_does_not(sg):
    t = sg
    for c in (t.c1, t.c2):
        n, _, _ = wait_probe(t, c, 22, lambda r: r == "banner-22", 0, 120,
                             f"{c['name']}: port 22 answering")
        wait_steady(t, c, 22, "banner-22", n - 1)
        assert all(r == "FAIL" for _, r in probes(t, c, 8080)), probes(t, c, 8080)
    # 9000: only from the members of "friends"
    wait_steady(t, t.c1, 9000, "banner-9000", 0)
    wait_steady(t, t.c2, 9000, "FAIL", 0)
    assert all(r == "FAIL" for _, r in probes(t, t.c2, 9000)), probes(t, t.c2, 9000)


def test_rule_added_to_running_vm_group_takes_effect(sg):
    t = sg
    before = last_round(t, t.c2, 8080)
    assert before > 0 and probes(t, t.c2, 8080)[-1][1] == "FAIL"
    t0 = time.monotonic()
    rule = t.api.ok("POST", "/v1/secgroups/srv/rules",
                    {"direction": "ingress", "protocol": "tcp", "port_min": 8080,
                     "cidr": CIDR}, expect=201, timeout=SLOW)
    t_api = time.monotonic() - t0
    n, _, when = wait_probe(t, t.c2, 8080, lambda r: r == "banner-8080", before, SLOW,
                            "port 8080 answering after the rule was added")
    print(f"\nrule update: API call to rule active: {when - t0:.1f} s (the call itself "
          f"{t_api:.2f} s; probe round {n}, one probe a second)")
    wait_steady(t, t.c2, 8080, "banner-8080", n - 1)
    # and gone again with the rule
    before = last_round(t, t.c2, 8080)
    t.api.ok("DELETE", f"/v1/secgroups/srv/rules/{rule['id']}", expect=204, timeout=SLOW)
    wait_steady(t, t.c2, 8080, "FAIL", before)
    assert t.api.get("/v1/vms/sg-s")["state"] == "running"


def test_remote_group_member_removed_is_refused(sg):
    t = sg
    wait_steady(t, t.c1, 9000, "banner-9000", last_round(t, t.c1, 9000) - 1)
    before = last_round(t, t.c1, 9000)
    t0 = time.monotonic()
    out = t.env.cli.json("vm", "secgroup", "remove", "sg-c1", "friends")
    assert out["nics"][0]["secgroups"] == ["default"], out
    n, _, when = wait_probe(t, t.c1, 9000, lambda r: r == "FAIL", before, SLOW,
                            "port 9000 refused after leaving friends")
    print(f"\nmembership update: API call to member refused: {when - t0:.1f} s")
    wait_steady(t, t.c1, 9000, "FAIL", n - 1)
    # 22 still answers it: only the remote-group rule changed
    wait_steady(t, t.c1, 22, "banner-22", n)


def test_guest_changing_its_ip_or_mac_loses_traffic(sg):
    t = sg
    for c, port, what in ((t.c1, 7101, "IP"), (t.c2, 7102, "MAC")):
        ip = c["nics"][0]["ip"]
        wait_steady(t, c, 22, "banner-22", last_round(t, c, 22) - 1)
        before = last_round(t, c, 22)
        host_trigger(ip, port)
        wait_steady(t, c, 22, "FAIL", before, rounds=5)
        print(f"\n{c['name']}: after changing its {what}, port 22 no longer answers")
