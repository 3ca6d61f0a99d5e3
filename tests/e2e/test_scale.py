"""The scale test bed (docs/scale.md): one nimbusd whose own host is libvirt's test driver
(test:///default), NIMBUS_SCALE_HOSTS simulated hosts (test:///PATH.xml, written and added by
scripts/simhosts.py) and a silent host (a listener that accepts TCP and never answers), then
NIMBUS_SCALE_VMS VMs created through the API, 16 at a time. Everything goes through the real
connection, reconciler, task, scheduler and placement code; only the hypervisor is simulated.

Environment (CI defaults in brackets):
  NIMBUS_SCALE_HOSTS   simulated hosts [200]
  NIMBUS_SCALE_VMS     VMs [2000]
  NIMBUS_SCALE_SILENT  0 leaves the silent host out [1]

Nothing here asserts on timings; the figures are printed (pytest -s shows them).
"""

import os
import re
import subprocess
import sys
import time

import pytest

import nimbus_fixtures as nf

sys.path.insert(0, os.path.join(nf.REPO, "scripts"))
import simhosts  # noqa: E402 - the test bed's own script

HOSTS = int(os.environ.get("NIMBUS_SCALE_HOSTS", "200"))
VMS = int(os.environ.get("NIMBUS_SCALE_VMS", "2000"))
SILENT = os.environ.get("NIMBUS_SCALE_SILENT", "1") != "0"
THREADS = 16
PREFIX = "sim"
SILENT_NAME = "sim-silent"
WAIT_S = 600  # generous: a bound for a hang, not a timing assertion


def list_all(api, collection):
    """Every item of a collection, following next_marker when the API pages."""
    items, marker = [], None
    while True:
        path = f"/v1/{collection}?limit=1000" + (f"&marker={marker}" if marker else "")
        status, body = api.call("GET", path)
        assert status == 200, f"GET {path}: {status} {body}"
        items += body[collection]
        marker = body.get("next_marker")
        if not marker:
            return items


def timed(what, fn, figures):
    t0 = time.monotonic()
    r = fn()
    figures.append((what, time.monotonic() - t0))
    return r


def test_simulated_hosts_run_the_whole_lifecycle(make_env, e2e_root):
    """A daemon on test:///default: upload, create, stop, start, reboot, pause, resume, console,
    a migration between two simulated hosts, delete; all through the real task code."""
    root, _ = e2e_root
    env = make_env("simlocal")
    env.daemon.extra_args += ["--libvirt-uri", "test:///default"]
    env.daemon.start()
    api = env.api
    img_path = os.path.join(root, "simlocal.qcow2")
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", img_path, "32M"], check=True)
    image = nf.upload_image(env, "simlocal", img_path)
    assert image["state"] == "active" and image["disk_format"] == "qcow2", image
    nf.create_small_flavor(env)

    vm = api.create_vm("v1", image["id"], "e2e-small")["vm"]
    env.remember(vm["id"])
    assert api.wait_vm_state(vm["id"], "running")["host"] == "local"
    for action, state in (("stop", "stopped"), ("start", "running"), ("reboot", "running"),
                          ("pause", "paused"), ("resume", "running")):
        api.action(vm["id"], action)
        api.wait_vm_state(vm["id"], state)
    assert api.console(vm["id"]) == ""  # nothing runs, nothing prints

    hosts = simhosts.write_hosts(os.path.join(root, "simlocal-hosts"), 2, "mig",
                                 env.daemon.pool_name, env.daemon.pool_path)
    for name, uri, _, _ in hosts:
        api.ok("POST", "/v1/hosts", {"name": name, "uri": uri}, expect=201)
    simhosts.wait_hosts(simhosts.Api(env.daemon.url, env.daemon.token), [h[0] for h in hosts],
                        ("up",), 60)
    # The URI is checked before anything opens it; a file that is not there keeps the host down.
    for bad in ("test:///tmp/../etc/x.xml", "test:///tmp/x.xml?a=b", "test://h/tmp/x.xml",
                "test:///tmp/.x.xml", "test:///tmp/x"):
        r = api.request("POST", "/v1/hosts", {"name": "bad", "uri": bad})
        assert r.status == 400 and r.code == "INVALID_URI", (bad, r)
    api.ok("POST", "/v1/hosts", {"name": "nofile", "uri": f"test://{root}/nofile.xml"},
           expect=201)
    gone = nf.wait_until(lambda: (h := api.get("/v1/hosts/nofile"))["state"] == "down" and h, 60,
                         "the host without a file to be down")
    assert gone["error"] and gone["simulated"] is True, gone
    api.ok("DELETE", "/v1/hosts/nofile", expect=(200, 204))
    api.ok("POST", "/v1/hosts/local/disable")
    vm2 = api.create_vm("v2", image["id"], "e2e-small", host="mig-0001")["vm"]
    env.remember(vm2["id"])
    api.wait_vm_state(vm2["id"], "running")
    r = api.ok("POST", f"/v1/vms/{vm2['id']}/migrate", {"host": "mig-0002"}, expect=202)
    api.wait_task(r["task"]["id"])
    moved = api.wait_vm_state(vm2["id"], "running")
    assert moved["host"] == "mig-0002", moved

    for v in (vm, vm2):
        api.delete_vm(v["id"])
        assert api.vm(v["id"]) is None


@pytest.fixture(scope="module")
def bed(make_env, e2e_root):
    root, _ = e2e_root
    env = make_env("scale")
    # The daemon's own host is simulated too: no QEMU anywhere in this test.
    env.daemon.extra_args += ["--libvirt-uri", "test:///default", "--workers", "8"]
    env.daemon.start()
    env.sim_dir = os.path.join(root, "simhosts")
    env.simapi = simhosts.Api(env.daemon.url, env.daemon.token)
    env.figures = []
    env.silent = None
    yield env
    # The silent listener first: its end is what frees a connect stuck on it.
    if env.silent:
        env.silent.stop()
    report = "\n".join(f"  {what:<44} {secs:8.1f} s" for what, secs in env.figures)
    print(f"\nscale test bed, {HOSTS} simulated hosts, {VMS} VMs, silent host "
          f"{'on' if SILENT else 'off'}:\n{report}")


def test_scale(bed, e2e_root):
    api, figures = bed.simapi, bed.figures
    local = bed.api.get("/v1/hosts/local")
    assert local["uri"] == "test:///default" and local["simulated"] is True, local

    # -- hosts: one through the CLI, the others through the API, 16 at a time
    hosts = simhosts.write_hosts(bed.sim_dir, HOSTS, PREFIX, bed.daemon.pool_name,
                                 bed.daemon.pool_path)
    name0, uri0 = hosts[0][:2]
    bed.cli.run("host", "add", name0, "--uri", uri0)
    timed(f"add {HOSTS - 1} hosts (API, {THREADS} at a time)",
          lambda: simhosts.add_hosts(api, hosts[1:], THREADS), figures)
    names = [h[0] for h in hosts]
    seen = timed("until every simulated host is up",
                 lambda: simhosts.wait_hosts(api, names, ("up",), WAIT_S), figures)
    assert all(seen.get(n) == "up" for n in names), \
        {n: s for n, s in seen.items() if s != "up"}
    by_name = {h["name"]: h for h in list_all(api, "hosts")}
    for name, _, cores, ram_mib in hosts:
        h = by_name[name]
        assert h["simulated"] is True and h["vcpus"]["total"] == cores, h
        assert h["ram_mib"]["total"] == ram_mib and h["disk_gib"]["total"] == 100, h

    if SILENT:
        bed.silent = simhosts.SilentHost(ttl=WAIT_S * 2)
        simhosts.add_hosts(api, [(SILENT_NAME, bed.silent.uri)], 1)
        time.sleep(3)
        st = bed.api.get(f"/v1/hosts/{SILENT_NAME}")
        assert st["state"] in ("connecting", "down") and st["simulated"] is False, st

    out = bed.cli.run("host", "list").stdout
    rows = {line.split()[0]: line for line in out.splitlines()[1:] if line.strip()}
    assert len(rows) == HOSTS + 1 + (1 if SILENT else 0), out[-2000:]
    assert re.search(r"^NAME\s.*\bSIM\b", out, re.M), out[:500]
    for name in names + ["local"]:
        assert re.search(r"\byes\s*$", rows[name]), rows[name]
    if SILENT:
        assert re.search(r"^\S+\s+(connecting|down)\b.*\bno\s*$", rows[SILENT_NAME]), \
            rows[SILENT_NAME]
    shown = bed.cli.run("host", "show", name0).stdout
    assert re.search(r"^simulated:\s+yes$", shown, re.M), shown

    # -- an image (a small qcow2: the simulated local host keeps no bytes) and a flavor
    img_path = os.path.join(e2e_root[0], "scale.qcow2")
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", img_path, "64M"], check=True)
    image = nf.upload_image(bed, "scale", img_path)
    assert image["virtual_size_bytes"] == 64 << 20, image
    flavor = bed.api.ok("POST", "/v1/flavors",
                        {"name": "scale", "vcpus": 1, "ram_mib": 512, "disk_gib": 1}, expect=201)

    # -- a network wide enough for them all (a project's default one is a /24: 253 addresses)
    net = bed.api.ok("POST", "/v1/networks", {"name": "scale", "cidr": "10.64.0.0/16"},
                     expect=201)

    # -- VMs: created concurrently, all running, none on the silent host, within capacity
    def create(i):
        status, body = api.call("POST", "/v1/vms", {"name": f"s{i:05d}", "image": image["id"],
                                                    "flavor": flavor["id"],
                                                    "networks": [{"network": net["id"]}]})
        assert status == 202, f"create s{i:05d}: {status} {body}"
        return body["task"]["id"]

    t0 = time.monotonic()
    tasks = simhosts.parallel(create, list(range(VMS)), THREADS)
    figures.append((f"{VMS} creates accepted ({THREADS} clients)", time.monotonic() - t0))

    def wait_task(task_id):
        deadline = time.monotonic() + WAIT_S
        while True:
            status, t = api.call("GET", f"/v1/tasks/{task_id}")
            assert status == 200, f"task {task_id}: {status} {t}"
            if t["state"] in ("succeeded", "failed"):
                return t
            assert time.monotonic() < deadline, f"task {task_id} still {t['state']}"
            time.sleep(0.2)

    ends = simhosts.parallel(wait_task, tasks, THREADS)
    figures.append((f"{VMS} creates completed (from the first POST)", time.monotonic() - t0))
    failed = [t for t in ends if t["state"] != "succeeded"]
    assert not failed, f"{len(failed)} creates failed, e.g. {failed[:3]}"

    vms = list_all(api, "vms")
    assert len(vms) == VMS and len({v["id"] for v in vms}) == VMS, len(vms)
    not_running = [v for v in vms if v["state"] != "running" or v["task_id"]]
    assert not not_running, f"{len(not_running)} not running, e.g. {not_running[:3]}"
    per_host = {}
    for v in vms:
        per_host[v["host"]] = per_host.get(v["host"], 0) + 1
    assert SILENT_NAME not in per_host
    hosts_now = {h["name"]: h for h in list_all(api, "hosts")}
    for name, h in hosts_now.items():
        assert h["vms"] == per_host.get(name, 0), (name, h["vms"], per_host.get(name))
        for res in ("vcpus", "ram_mib", "disk_gib"):
            assert h[res]["used"] <= h[res]["capacity"], (name, res, h[res])
    if SILENT:
        assert hosts_now[SILENT_NAME]["state"] in ("connecting", "down")
        assert hosts_now[SILENT_NAME]["vms"] == 0
    if VMS >= 2 * HOSTS:
        # spread: every simulated host took some
        empty = [n for n in names if per_host.get(n, 0) == 0]
        assert not empty, f"hosts without VMs: {empty[:10]}"

    # -- and all of them deleted again
    lost = []

    def delete(v):
        status, body = api.call("DELETE", f"/v1/vms/{v['id']}")
        if status == 404:
            lost.append(v["id"])  # see the assertion below
            return None
        assert status == 202, f"delete {v['name']}: {status} {body}"
        return body["task"]["id"]

    t0 = time.monotonic()
    dtasks = [t for t in simhosts.parallel(delete, vms, THREADS) if t]
    simhosts.parallel(wait_task, dtasks, THREADS)
    figures.append((f"{VMS} deletes completed ({THREADS} clients)", time.monotonic() - t0))
    left = list_all(api, "vms")
    assert not left, f"{len(left)} VMs left, e.g. {left[:3]}"
    assert all(h["vms"] == 0 for h in list_all(api, "hosts"))
    # A DELETE that queued its task must answer 202 even when the task ends before the answer
    # is written (simulated hosts are that fast).
    assert not lost, (f"{len(lost)} DELETEs answered 404 for VMs that existed, e.g. {lost[:3]}: "
                      "the VM was re-read after its delete task had already removed it")

    if SILENT:
        bed.silent.stop()
        bed.silent = None
    left = simhosts.remove_hosts(api, names + ([SILENT_NAME] if SILENT else []), THREADS)
    assert not left, left
