"""The cluster: one nimbusd driving three test hypervisor hosts (a libvirtd each, in its own
network namespace, started by scripts/testhosts.sh) over qemu+tcp, plus its own "local" host,
which these tests disable so that placement has exactly the three test hosts to choose from.
The pool directory is at the same path everywhere (the state dir under /tmp): shared storage.
"""

import concurrent.futures
import os
import re
import signal
import sqlite3
import time

import pytest

import nimbus_fixtures as nf
from testhosts import testhosts  # noqa: F401 - the session fixture

HOSTS = ("kvm1", "kvm2", "kvm3")
TICKING = "#!/bin/sh\ntouch /tmp/tick\n"  # the test guest prints NIMBUS-TICK every 2 s


@pytest.fixture(scope="module")
def cluster(make_env, tiny_image, testhosts):  # noqa: F811 - the fixture imported above
    env = make_env("cluster")
    env.daemon.start()
    nf.join_test_hosts(env, testhosts, tiny_image, HOSTS)
    yield env
    nf.delete_all_vms(env)
    env.teardown()


def hosts_by_name(env):
    return {h["name"]: h for h in env.api.get("/v1/hosts")["hosts"]}


def set_ratio(env, cpu_ratio, names=HOSTS):
    for n in names:
        env.api.ok("PUT", f"/v1/hosts/{n}", {"cpu_ratio": cpu_ratio})


def create(env, name, expect=202, wait=True, **extra):
    body = {"name": name, "image": env.image["id"], "flavor": env.flavor["id"], **extra}
    r = env.api.request("POST", "/v1/vms", body)
    assert expect is None or r.status == expect, f"create {name}: {r}"
    if r.status != 202:
        return r
    out = r.json
    env.remember(out["vm"]["id"])
    if wait:
        env.api.wait_task(out["task"]["id"])
    return out


def domains_on(env, i):
    p = env.hosts.virsh(i, "list", "--all", "--name")
    assert p.returncode == 0, p.stderr
    return {l.strip() for l in p.stdout.splitlines() if l.strip().startswith("nimbus-")}


def networks_on(env, i):
    p = env.hosts.virsh(i, "net-list", "--all", "--name")
    assert p.returncode == 0, p.stderr
    return {l.strip() for l in p.stdout.splitlines() if l.strip().startswith("nimbus-net-")}


def host_index(name):
    return HOSTS.index(name) + 1


def test_hosts_report_libvirt_facts(cluster):
    hosts = hosts_by_name(cluster)
    assert set(hosts) == {"local", *HOSTS}
    assert hosts["local"]["state"] == "disabled"
    for name in HOSTS:
        h = hosts[name]
        assert h["state"] == "up" and h["connection"] == "up", h
        assert h["vcpus"]["total"] == os.cpu_count(), h
        assert h["ram_mib"]["total"] > 1024 and h["disk_gib"]["total"] > 0, h
        assert h["hostname"] == name, h  # each test host has its own UTS namespace
        assert re.fullmatch(r"\d+\.\d+\.\d+", h["libvirt_version"]), h
        assert h["last_contact"], h
    # the CLI shows the same
    out = cluster.cli.run("host", "list").stdout
    for name in HOSTS:
        assert re.search(rf"^{name}\s+up\b", out, re.M), out


def test_anti_affinity_spreads_and_refuses_a_fourth(cluster):
    cluster.cli.run("group", "create", "web", "--policy", "anti-affinity")
    cluster.api.ok("POST", "/v1/groups", {"name": "db", "policy": "anti-affinity"}, expect=201)
    try:
        for g in ("web", "db"):
            for k in range(3):
                create(cluster, f"{g}{k}", group=g)
        vms = cluster.api.vms()
        assert len(vms) == 6
        for g in ("web", "db"):
            members = cluster.api.get(f"/v1/groups/{g}")["vm_list"]
            assert sorted(m["host"] for m in members) == sorted(HOSTS), members
        # each host runs exactly one member of each group, as libvirt on the host confirms
        for i in range(1, 4):
            assert len(domains_on(cluster, i)) == 2
        r = create(cluster, "web3", expect=409, group="web")
        assert r.code == "NO_VALID_HOST", r
        assert "3 refused by the group policy" in r.json["error"]["message"], r
        assert "web3" not in {v["name"] for v in cluster.api.vms()}
    finally:
        nf.delete_all_vms(cluster)
        for g in ("web", "db"):
            cluster.api.ok("DELETE", f"/v1/groups/{g}", expect=204)


def test_shared_storage_is_recorded_as_holding_the_image(cluster):
    """Each host sees the image in the shared pool: nothing is copied, and image_copies says
    ready, so later creates there skip the look and the copy lock."""
    env = cluster
    try:
        vms = [create(env, f"shared{k}", wait=False) for k in range(6)]
        nf.wait_tasks(env.api, [v["task"]["id"] for v in vms])
        used = {env.api.vm(v["vm"]["id"])["host"] for v in vms}
        db = sqlite3.connect(f"file:{env.daemon.state_dir}/nimbus.db?mode=ro", uri=True)
        try:
            rows = dict(db.execute("SELECT host, state FROM image_copies WHERE image_id = ?",
                                   (env.image["id"],)).fetchall())
        finally:
            db.close()
        assert all(rows.get(h) == "ready" for h in used), (used, rows)
        log = open(env.daemon.log_path, encoding="utf-8", errors="replace").read()
        assert f"image {env.image['id']}: copying to host" not in log
    finally:
        nf.delete_all_vms(env)


def test_capacity_next_vm_goes_elsewhere_then_clear_error(cluster):
    # 2 CPUs at a ratio of 0.5: room for one 1-vCPU VM per host
    set_ratio(cluster, 0.5)
    try:
        placed = []
        for k in range(3):
            placed.append(create(cluster, f"cap{k}")["vm"]["host"])
        assert sorted(placed) == sorted(HOSTS), placed
        r = create(cluster, "cap3", expect=409)
        assert r.code == "NO_VALID_HOST", r
        msg = r.json["error"]["message"]
        assert "3 without enough vCPUs" in msg and "(4 hosts)" in msg, msg
        # the CLI says the same, and exits non-zero
        p = cluster.cli.run("vm", "create", "cap4", "--image", "tiny", "--flavor",
                            cluster.flavor["name"], check=False)
        assert p.returncode != 0 and "NO_VALID_HOST" in p.stdout + p.stderr, p
    finally:
        nf.delete_all_vms(cluster)
        set_ratio(cluster, 4.0)


def test_concurrent_creates_never_overbook(cluster):
    set_ratio(cluster, 1.0)  # room for two 1-vCPU VMs per host: 6 in all
    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=20) as pool:
            results = list(pool.map(
                lambda k: create(cluster, f"burst{k}", expect=None, wait=False), range(20)))
        ok = [r for r in results if isinstance(r, dict)]
        refused = [r for r in results if not isinstance(r, dict)]
        assert len(ok) == 6, [getattr(r, "status", r) for r in results]
        assert all(r.status == 409 and r.code == "NO_VALID_HOST" for r in refused), refused
        for r in ok:
            cluster.api.wait_task(r["task"]["id"])
        hosts = hosts_by_name(cluster)
        for i, name in enumerate(HOSTS, start=1):
            assert hosts[name]["vcpus"]["used"] <= hosts[name]["vcpus"]["capacity"] == 2, hosts
            assert len(domains_on(cluster, i)) == 2
    finally:
        nf.delete_all_vms(cluster)
        set_ratio(cluster, 4.0)


def test_labels_steer_placement(cluster):
    cluster.cli.run("host", "set", "kvm2", "--label", "zone=b", "--label", "disk=ssd")
    try:
        h = cluster.api.get("/v1/hosts/kvm2")
        assert h["labels"] == {"zone": "b", "disk": "ssd"}, h
        vm = create(cluster, "labelled", labels={"zone": "b"})["vm"]
        assert vm["host"] == "kvm2" and vm["labels"] == {"zone": "b"}, vm
        r = create(cluster, "unplaceable", expect=409, labels={"zone": "nowhere"})
        assert r.code == "NO_VALID_HOST", r
        assert "without the labels" in r.json["error"]["message"], r
    finally:
        cluster.cli.run("host", "set", "kvm2", "--clear-labels")
        nf.delete_all_vms(cluster)
    assert cluster.api.get("/v1/hosts/kvm2")["labels"] == {}


def ticks(env, vm_id):
    return len(re.findall(r"NIMBUS-TICK", env.api.console(vm_id)))


def test_live_migration_keeps_the_guest_running(cluster):
    vm = create(cluster, "mover", host="kvm1", user_data=TICKING)["vm"]
    cluster.api.wait_console(vm["id"], "NIMBUS-READY")
    nf.wait_until(lambda: ticks(cluster, vm["id"]) >= 2, 60, "ticks before the move")
    dom = nf.vm_domain(vm["id"])
    nic = cluster.api.vm(vm["id"])["nics"][0]
    net = f"nimbus-net-{nic['network_id']}"
    # the fixed address came by DHCP from kvm1's copy of the project's network
    cluster.api.wait_console(vm["id"], f"NIMBUS-NIC eth0 {nic['mac']} {nic['ip']}/24 dhcp")
    assert net in networks_on(cluster, 1), networks_on(cluster, 1)
    p = cluster.cli.run("vm", "migrate", "mover", "--host", "kvm2", "--wait")
    assert "mover" in p.stdout
    after = cluster.api.vm(vm["id"])
    assert after["host"] == "kvm2" and after["state"] == "running", after
    assert after["migrate_to"] is None, after
    # the same address; the destination's network now carries its DHCP entry, the source's
    # copy went with its last VM
    assert after["ip"] == nic["ip"] and after["nics"] == [nic], after
    assert net in networks_on(cluster, 2), networks_on(cluster, 2)
    entry = cluster.hosts.virsh(2, "net-dumpxml", net).stdout
    assert f"mac='{nic['mac']}'" in entry and f"ip='{nic['ip']}'" in entry, entry
    if not [v for v in cluster.api.vms() if v["host"] == "kvm1"]:
        assert net not in networks_on(cluster, 1), networks_on(cluster, 1)
    assert dom not in domains_on(cluster, 1)
    assert dom in domains_on(cluster, 2)
    assert cluster.hosts.virsh(2, "domstate", dom).stdout.strip() == "running"
    task = cluster.api.get(f"/v1/tasks?vm={vm['id']}")["tasks"][0]
    assert task["kind"] == "vm.migrate" and task["state"] == "succeeded", task
    assert task["progress"] == 100, task
    # the guest never stopped: its serial console keeps counting, in the same log
    before = ticks(cluster, vm["id"])
    nf.wait_until(lambda: ticks(cluster, vm["id"]) >= before + 2, 60, "ticks after the move")
    # the scheduler picks a destination itself when none is given (never the source)
    out = cluster.api.action(vm["id"], "migrate", {})
    assert cluster.api.vm(vm["id"])["host"] in ("kvm1", "kvm3"), out
    cluster.api.delete_vm(vm["id"])
    assert all(dom not in domains_on(cluster, i) for i in range(1, 4))


def test_migration_cancel_rolls_back_to_the_source(cluster):
    vm = create(cluster, "slowmover", host="kvm3")["vm"]
    cluster.api.wait_console(vm["id"], "NIMBUS-READY")
    # 1 MiB/s: the guest's RAM takes minutes to copy, so the cancel comes mid-way
    r = cluster.api.ok("POST", f"/v1/vms/{vm['id']}/migrate",
                       {"host": "kvm1", "bandwidth_mib": 1}, expect=202)
    task_id = r["task"]["id"]
    assert r["vm"]["migrate_to"] == "kvm1", r
    nf.wait_until(lambda: (cluster.api.task(task_id).get("progress") or 0) > 0, 60,
                  "migration progress")
    cluster.cli.run("task", "cancel", task_id)
    t = cluster.api.wait_task(task_id, expect="failed")
    assert t["error"]["code"] == "CANCELLED", t
    after = cluster.api.vm(vm["id"])
    assert after["host"] == "kvm3" and after["state"] == "running", after
    assert after["migrate_to"] is None, after
    dom = nf.vm_domain(vm["id"])
    assert cluster.hosts.virsh(3, "domstate", dom).stdout.strip() == "running"
    assert dom not in domains_on(cluster, 1)
    # a finished task cannot be cancelled
    r = cluster.api.request("POST", f"/v1/tasks/{task_id}/cancel")
    assert r.status == 409 and r.code == "TASK_NOT_CANCELLABLE", r
    cluster.api.delete_vm(vm["id"])


def test_offline_migration_of_a_stopped_vm(cluster):
    vm = create(cluster, "cold", host="kvm2")["vm"]
    cluster.api.action(vm["id"], "stop", {"force": True})
    r = cluster.api.request("POST", f"/v1/vms/{vm['id']}/migrate", {"offline": False})
    assert r.status == 409 and r.code == "INVALID_STATE", r
    cluster.cli.run("vm", "migrate", "cold", "--host", "kvm3", "--offline", "--wait")
    dom = nf.vm_domain(vm["id"])
    assert dom not in domains_on(cluster, 2) and dom in domains_on(cluster, 3)
    assert cluster.api.vm(vm["id"])["host"] == "kvm3"
    cluster.api.action(vm["id"], "start")
    assert cluster.hosts.virsh(3, "domstate", dom).stdout.strip() == "running"
    cluster.api.delete_vm(vm["id"])


def test_maintenance_empties_a_host(cluster):
    a = create(cluster, "m-a", host="kvm2")["vm"]
    b = create(cluster, "m-b", host="kvm2")["vm"]
    cluster.api.action(b["id"], "stop", {"force": True})
    try:
        p = cluster.cli.run("host", "maintenance", "kvm2", "--wait")
        assert "m-a" in p.stdout and "m-b" in p.stdout, p.stdout
        h = cluster.api.get("/v1/hosts/kvm2")
        assert h["state"] == "maintenance" and h["vms"] == 0 and h["vm_list"] == [], h
        assert domains_on(cluster, 2) == set()
        assert cluster.api.vm(a["id"])["state"] == "running"
        assert cluster.api.vm(b["id"])["state"] == "stopped"
        # held empty: a new VM goes elsewhere, and an explicit choice of it is refused
        assert create(cluster, "m-c")["vm"]["host"] != "kvm2"
        r = create(cluster, "m-d", expect=409, host="kvm2")
        assert "in maintenance" in r.json["error"]["message"], r
        # a host with VMs cannot be removed; an empty one can (and comes back with add)
        r = cluster.api.request("DELETE", "/v1/hosts/kvm3")
        assert r.status == 409 and r.code in ("HOST_NOT_EMPTY",), r
    finally:
        cluster.api.ok("POST", "/v1/hosts/kvm2/enable")
        nf.delete_all_vms(cluster)


def libvirtd_pid(env, i):
    m = re.search(rf"^kvm{i} .*libvirtd pid (\d+)", env.hosts.status(), re.M)
    assert m, env.hosts.status()
    return int(m.group(1))


def test_task_waits_for_a_host_still_connecting(cluster):
    """Right after nimbusd starts, a host it has not reached yet is `connecting`: a task for one
    of its VMs waits for it (by timer) instead of failing HOST_DOWN at once."""
    env = cluster
    vm = create(env, "patient", host="kvm2")["vm"]
    env.daemon.stop()
    pid = libvirtd_pid(env, 2)
    os.kill(pid, signal.SIGSTOP)  # its TCP port still accepts: the connect hangs
    try:
        env.daemon.start()
        r = env.api.action(vm["id"], "stop", {"force": True}, wait=False)
        task_id = r["task"]["id"]
        nf.wait_until(lambda: env.api.task(task_id)["state"] == "running", 10, "the stop to run")
        time.sleep(2)  # the task looks again meanwhile; it must not give up
        t = env.api.task(task_id)
        assert t["state"] == "running", t
    finally:
        os.kill(pid, signal.SIGCONT)
    t = env.api.wait_task(task_id, timeout=60)
    assert t["state"] == "succeeded", t
    assert env.api.vm(vm["id"])["state"] == "stopped"
    nf.delete_all_vms(env)


def test_host_down_and_back(cluster):
    vm = create(cluster, "survivor", host="kvm3")["vm"]
    dom = nf.vm_domain(vm["id"])
    group = cluster.api.get("/v1/secgroups/default")
    group_filter = f"nimbus-sg-{group['id']}"

    def kvm3_group_filter():
        return cluster.hosts.virsh(3, "nwfilter-dumpxml", group_filter).stdout

    assert "'8443'" not in kvm3_group_filter()
    rule = None
    cluster.hosts.kill_libvirtd(3)
    try:
        start = time.monotonic()
        nf.wait_until(lambda: cluster.api.get("/v1/hosts/kvm3")["state"] == "down", 30,
                      "kvm3 down")
        print(f"kvm3 seen down after {time.monotonic() - start:.1f} s")
        assert cluster.api.vm(vm["id"])["state"] == "unknown"
        # nothing is placed on a host that is down
        r = create(cluster, "nowhere", expect=409, host="kvm3")
        assert r.code == "NO_VALID_HOST", r
        # a rule added while kvm3 is away: its filter there cannot follow now; nimbusd restarts
        # before kvm3 is back and must still remember to catch kvm3 up
        rule = cluster.api.ok("POST", "/v1/secgroups/default/rules",
                              {"direction": "ingress", "protocol": "tcp", "port_min": 8443},
                              expect=201)
        cluster.daemon.stop()
        cluster.daemon.start()
    finally:
        cluster.hosts.start_libvirtd(3)
    try:
        nf.wait_until(lambda: cluster.api.get("/v1/hosts/kvm3")["state"] == "up", 60,
                      "kvm3 up again")
        cluster.api.wait_vm_state(vm["id"], "running", timeout=30)
        assert cluster.hosts.virsh(3, "domstate", dom).stdout.strip() == "running"
        # caught up when kvm3 connected again, not at the VM's next start
        nf.wait_until(lambda: "'8443'" in kvm3_group_filter(), 30,
                      "kvm3's group filter to get the rule added while it was down")
    finally:
        if rule:
            cluster.api.ok("DELETE", f"/v1/secgroups/default/rules/{rule['id']}", expect=204)
    cluster.api.delete_vm(vm["id"])


def test_bad_cluster_input_is_refused(cluster):
    bad = [
        ({"name": "x", "uri": "qemu+ssh://h/system?command=rm"}, "INVALID_URI"),
        ({"name": "x", "uri": "qemu:///session"}, "INVALID_URI"),
        ({"name": "x", "uri": "qemu+tcp://h o/system"}, "INVALID_URI"),
        ({"name": "x", "uri": cluster.hosts.uri(1)}, "HOST_URI_TAKEN"),
        ({"name": "kvm1", "uri": "qemu+tcp://10.77.0.99/system"}, "NAME_TAKEN"),
        ({"name": "../x", "uri": "qemu+tcp://10.77.0.99/system"}, "INVALID_NAME"),
        ({"name": "x", "uri": "qemu+tcp://10.77.0.99/system", "cpu_ratio": 0}, "INVALID_REQUEST"),
        ({"name": "x", "uri": "qemu+tcp://10.77.0.99/system", "labels": {"a b": "c"}},
         "INVALID_REQUEST"),
    ]
    before = hosts_by_name(cluster)
    for body, code in bad:
        r = cluster.api.request("POST", "/v1/hosts", body)
        assert r.status in (400, 409) and r.code == code, (body, r)
    assert hosts_by_name(cluster).keys() == before.keys()
    r = cluster.api.request("DELETE", "/v1/hosts/local")
    assert r.status == 409 and r.code == "HOST_IS_LOCAL", r
    # a host that never answers is down, takes nothing, and (empty) can be removed
    cluster.cli.run("host", "add", "ghost", "--uri", "qemu+tcp://10.77.0.99/system")
    nf.wait_until(lambda: cluster.api.get("/v1/hosts/ghost")["state"] == "down", 60,
                  "ghost down")
    assert cluster.api.get("/v1/hosts/ghost")["error"], "a down host says why"
    cluster.cli.run("host", "remove", "ghost")
    assert "ghost" not in hosts_by_name(cluster)
    r = cluster.api.request("POST", "/v1/groups", {"name": "g", "policy": "sometimes"})
    assert r.status == 400, r
    r = cluster.api.request("POST", "/v1/vms/nope/migrate", {"host": "kvm2"})
    assert r.status == 404, r
    r = create(cluster, "badgroup", expect=404, group="nope")
    assert r.code == "GROUP_NOT_FOUND", r
    r = create(cluster, "badhost", expect=404, host="nope")
    assert r.code == "HOST_NOT_FOUND", r
    assert not [v for v in cluster.api.vms() if v["name"].startswith("bad")]
