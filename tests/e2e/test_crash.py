"""nimbusd dies (SIGKILL) in the middle of a task, then restarts on the same state dir: the task
must resume and finish, and the store and libvirt must agree exactly. And restarting nimbusd,
however abruptly, never touches a running guest.

These tests run their own nimbusd (its own state dir and pool) because they restart it."""

import os
import random
import signal
import time

import pytest

import nimbus_fixtures as nf

CREATE_STEPS = ["disk", "seed", "networks", "define", "start"]
DELETE_STEPS = ["undefine", "unplug networks", "delete disk", "delete seed",
                "remove console log"]
NIC_ADD_STEPS = ["plug network", "attach"]
NIC_REMOVE_STEPS = ["detach", "unplug network", "forget port"]


@pytest.fixture(scope="module")
def cenv(make_env, tiny_image):
    env = make_env("crash")
    env.daemon.start()
    env.image = nf.upload_image(env, "crash-tiny", tiny_image)
    env.flavor = nf.create_small_flavor(env)
    yield env
    env.teardown()


def restart(env, crash_at=None, sig=signal.SIGTERM):
    if env.daemon.alive():
        env.daemon.stop(sig)
    env.daemon.start(crash_at=crash_at)


def request_and_die(env, method, path, body=nf._DEFAULT):
    """Sends a request to a daemon set up to crash; the reply may or may not make it out before
    the worker kills the process. Returns the response or None."""
    try:
        r = env.api.request(method, path, body=body, timeout=30)
    except AssertionError:
        r = None
    if r is not None:
        assert r.status == 202, f"{method} {path}: {r!r}"
    rc = env.daemon.wait_dead(60)
    assert rc == -signal.SIGKILL, f"nimbusd should have SIGKILLed itself, exit status {rc}"
    return r


def vm_tasks(env, vm_ident, kind):
    ts = env.api.get(f"/v1/tasks?vm={vm_ident}")["tasks"]
    return [t for t in ts if t["kind"] == kind]


def assert_consistent(env, what):
    problems = env.consistency()
    assert problems == [], f"{what}: store and libvirt disagree:\n  " + "\n  ".join(problems)


def port_filters(port_ids):
    """Those of the ports whose security-group filter (nimbus-port-<id>) libvirt has."""
    out = nf.virsh("nwfilter-list").stdout
    return {p for p in port_ids if f"nimbus-port-{p}" in out}


def assert_vm_gone(env, vm_id, what):
    assert env.api.vm(vm_id) is None, f"{what}: VM row still there: {env.api.vm(vm_id)}"
    left_doms = {d for d in nf.domain_names() if vm_id in d}
    left_vols = {v for v in nf.volume_names(env.daemon.pool_name) if vm_id in v}
    assert not left_doms and not left_vols, f"{what}: left in libvirt: {left_doms | left_vols}"
    assert not os.path.exists(env.daemon.console_log_path(vm_id)), f"{what}: console log left"


@pytest.mark.parametrize("step", range(len(CREATE_STEPS)),
                         ids=[f"{i}-{s}" for i, s in enumerate(CREATE_STEPS)])
def test_crash_during_create(cenv, step):
    env, name = cenv, f"crash-create-{step}"
    restart(env, crash_at=f"vm.create:{step}")
    body = {"name": name, "image": env.image["id"], "flavor": env.flavor["id"]}
    r = request_and_die(env, "POST", "/v1/vms", body)

    restart(env)
    vm = env.api.vm(name)
    assert vm is not None, f"VM {name} lost by the crash (reply {'seen' if r else 'lost'})"
    env.remember(vm["id"])
    if r:
        assert r.json["vm"]["id"] == vm["id"]
    tasks = vm_tasks(env, vm["id"], "vm.create")
    assert len(tasks) == 1, f"expected one vm.create task: {tasks}"
    t = env.api.wait_task(tasks[0]["id"])
    assert t["step"] == t["steps"] == len(CREATE_STEPS), f"task did not run all steps: {t}"
    vm = env.api.wait_vm_state(vm["id"], "running")
    dom = nf.vm_domain(vm["id"])
    assert nf.domstate(dom) == "running", f"{dom}: {nf.domstate(dom)}"
    assert_consistent(env, f"after a crash at vm.create step {step}")
    ports = {n["port_id"] for n in env.api.vm(vm["id"])["nics"]}
    assert port_filters(ports) == ports, f"a port without its filter: {ports}"

    env.api.delete_vm(vm["id"])
    assert_vm_gone(env, vm["id"], "after the clean-up delete")
    assert not port_filters(ports), f"filters left after the delete: {port_filters(ports)}"
    assert_consistent(env, "after the clean-up delete")


def test_crash_stop_does_not_wait_for_a_stuck_step(cenv):
    """A step that never returns, as one stuck in a libvirt call of a wedged libvirtd would,
    does not hold a SIGTERM: nimbusd leaves without that worker within seconds (as after a
    crash), and the next start finishes the task."""
    env, name = cenv, "crash-stuck-step"
    if env.daemon.alive():
        env.daemon.stop()
    env.daemon.start(hang_at="vm.create:3")
    body = {"name": name, "image": env.image["id"], "flavor": env.flavor["id"]}
    r = env.api.request("POST", "/v1/vms", body)
    assert r.status == 202, r
    env.remember(r.json["vm"]["id"])

    def hanging():
        with open(env.daemon.log_path, errors="replace") as f:
            return "NIMBUS_TEST_HANG_AT=vm.create:3: this worker hangs now" in f.read()
    nf.wait_until(hanging, 120, "the create's worker to hang in its define step")
    # stop() raises when nimbusd has not exited 15 s after SIGTERM
    assert env.daemon.stop(timeout=15) == 0
    assert "leaving without them" in env.daemon.log_tail(20), env.daemon.log_tail(20)

    restart(env)
    t = env.api.wait_task(r.json["task"]["id"])
    assert t["step"] == t["steps"] == len(CREATE_STEPS), f"task did not run all steps: {t}"
    vm = env.api.wait_vm_state(r.json["vm"]["id"], "running")
    assert_consistent(env, "after a stop that left a worker stuck")
    env.api.delete_vm(vm["id"])
    assert_vm_gone(env, vm["id"], "after the clean-up delete")


@pytest.mark.parametrize("step", range(len(DELETE_STEPS)),
                         ids=[f"{i}-{s}" for i, s in enumerate(DELETE_STEPS)])
def test_crash_during_delete(cenv, step):
    env, name = cenv, f"crash-delete-{step}"
    restart(env)
    vm = env.api.create_vm(name, env.image["id"], env.flavor["id"])["vm"]
    env.remember(vm["id"])
    env.api.wait_vm_state(vm["id"], "running")
    # let the guest write to its console so that there is a log file to remove
    nf.wait_until(lambda: os.path.exists(env.daemon.console_log_path(vm["id"])), 30,
                  "a console log file")

    restart(env, crash_at=f"vm.delete:{step}")
    request_and_die(env, "DELETE", f"/v1/vms/{vm['id']}")
    restart(env)
    try:
        nf.wait_until(lambda: env.api.vm(vm["id"]) is None, nf.TASK_TIMEOUT,
                      f"VM {name} to be deleted after the restart")
    except nf.Timeout:
        raise AssertionError(f"delete did not finish after a crash at step {step}: "
                             f"{env.api.vm(vm['id'])}") from None
    assert_vm_gone(env, vm["id"], f"after a crash at vm.delete step {step}")
    assert_consistent(env, f"after a crash at vm.delete step {step}")


def domain_macs(vm_id):
    out = nf.virsh("domiflist", nf.vm_domain(vm_id)).stdout
    return sorted(l.split()[-1] for l in out.splitlines()[2:] if l.strip())


def nics_agree(env, vm_id, what):
    """The VM's ports and its domain's NICs are the same set: no port without its NIC, no NIC
    without its port."""
    ports = sorted(n["mac"] for n in env.api.vm(vm_id)["nics"])
    assert ports == domain_macs(vm_id), f"{what}: ports {ports}, domain {domain_macs(vm_id)}"


@pytest.mark.parametrize("kind,step", [("vm.nic_add", i) for i in range(len(NIC_ADD_STEPS))]
                         + [("vm.nic_remove", i) for i in range(len(NIC_REMOVE_STEPS))],
                         ids=[f"add-{i}-{s}" for i, s in enumerate(NIC_ADD_STEPS)]
                         + [f"remove-{i}-{s}" for i, s in enumerate(NIC_REMOVE_STEPS)])
def test_crash_during_nic_change(cenv, kind, step):
    env = cenv
    name = f"crash-nic-{kind[7:]}-{step}"
    restart(env)
    vm = env.api.create_vm(name, env.image["id"], env.flavor["id"])["vm"]
    env.remember(vm["id"])
    env.api.wait_vm_state(vm["id"], "running")
    net = env.api.vm(vm["id"])["nics"][0]["network_id"]
    ports = {n["port_id"] for n in env.api.vm(vm["id"])["nics"]}
    try:
        if kind == "vm.nic_remove":
            r = env.api.request("POST", f"/v1/vms/{vm['id']}/nics", {"network": net})
            assert r.status == 202, r
            env.api.wait_task(r.json["task"]["id"])
            mac = r.json["port"]["mac"]
            ports.add(r.json["port"]["id"])
        restart(env, crash_at=f"{kind}:{step}")
        if kind == "vm.nic_add":
            r = request_and_die(env, "POST", f"/v1/vms/{vm['id']}/nics", {"network": net})
        else:
            r = request_and_die(env, "DELETE", f"/v1/vms/{vm['id']}/nics/{mac}")
        restart(env)
        ts = vm_tasks(env, vm["id"], kind)
        assert len(ts) == 1, f"expected one {kind} task: {ts}"
        t = env.api.wait_task(ts[0]["id"])
        assert t["step"] == t["steps"], f"task did not run all steps: {t}"
        want = 2 if kind == "vm.nic_add" else 1
        assert len(env.api.vm(vm["id"])["nics"]) == want, env.api.vm(vm["id"])
        nics_agree(env, vm["id"], f"after a crash at {kind} step {step}")
        assert_consistent(env, f"after a crash at {kind} step {step}")
        # each port has its filter, and a port forgotten has none left behind
        now = {n["port_id"] for n in env.api.vm(vm["id"])["nics"]}
        if r is not None and kind == "vm.nic_add":
            ports.add(r.json["port"]["id"])
        assert port_filters(ports) == now, f"filters {port_filters(ports)}, ports {now}"
        ports |= now
    finally:
        if not env.daemon.alive():
            env.daemon.start()
        env.api.delete_vm(vm["id"])
    assert_vm_gone(env, vm["id"], "after the clean-up delete")
    assert not port_filters(ports), f"filters left after the delete: {port_filters(ports)}"


# (crash point, API action, body, state after) in an order where each action is allowed
ACTION_CRASHES = [
    ("vm.pause:0", "pause", None, "paused"),
    ("vm.resume:0", "resume", None, "running"),
    ("vm.reboot:0", "reboot", None, "running"),
    ("vm.stop:0", "stop", {"force": True}, "stopped"),
    ("vm.start:0", "start", None, "running"),
    (None, "stop", {"force": True}, "stopped"),
    ("vm.start:1", "start", None, "running"),
    (None, "stop", {"force": True}, "stopped"),
    ("vm.start:2", "start", None, "running"),
]


def test_crash_during_actions(cenv):
    """The one-step and two-step actions, each killed right after its hypervisor call: on
    restart the step runs again and must be idempotent (pausing a paused domain, starting a
    running one...)."""
    env = cenv
    restart(env)
    vm = env.api.create_vm("crash-actions", env.image["id"], env.flavor["id"])["vm"]
    env.remember(vm["id"])
    dom = nf.vm_domain(vm["id"])
    want_virsh = {"running": "running", "paused": "paused", "stopped": "shut off"}
    try:
        for crash_at, action, body, state in ACTION_CRASHES:
            restart(env, crash_at=crash_at)
            path = f"/v1/vms/{vm['id']}/{action}"
            if crash_at:
                r = request_and_die(env, "POST", path, body if body else nf._DEFAULT)
                restart(env)
            else:
                r = env.api.action(vm["id"], action, body=body if body else nf._DEFAULT)
            ts = vm_tasks(env, vm["id"], f"vm.{action}")
            assert ts, f"no vm.{action} task after a crash at {crash_at}"
            last = max(ts, key=lambda t: t["created_at"])
            t = env.api.wait_task(last["id"], expect=None)
            assert t["state"] == "succeeded", f"{action} after a crash at {crash_at}: {t}"
            v = env.api.wait_vm_state(vm["id"], state)
            assert nf.domstate(dom) == want_virsh[state], \
                f"after {action} (crash at {crash_at}): API {v['state']}, virsh {nf.domstate(dom)}"
            assert_consistent(env, f"after {action} with a crash at {crash_at}")
    finally:
        if not env.daemon.alive():
            env.daemon.start()
        env.api.delete_vm(vm["id"])
    assert_vm_gone(env, vm["id"], "after the clean-up delete")


def test_kill9_at_random_moments(cenv):
    """Plain kill -9 while creates and deletes are in flight, at random moments."""
    env = cenv
    seed = int(os.environ.get("NIMBUS_E2E_SEED", str(int(time.time()))))
    rng = random.Random(seed)
    restart(env)
    created = []
    for i in range(3):
        name = f"kill9-{i}"
        delay = rng.uniform(0, 0.12)
        r = env.api.request("POST", "/v1/vms", {"name": name, "image": env.image["id"],
                                                "flavor": env.flavor["id"]})
        assert r.status == 202, r
        env.remember(r.json["vm"]["id"])
        time.sleep(delay)
        env.daemon.stop(signal.SIGKILL)
        restart(env)
        t = env.api.wait_task(r.json["task"]["id"], expect=None)
        assert t["state"] == "succeeded", \
            f"create killed after {delay:.3f}s (seed {seed}) ended {t['state']}: {t}"
        env.api.wait_vm_state(name, "running")
        assert_consistent(env, f"create of {name} killed after {delay:.3f}s (seed {seed})")
        created.append(r.json["vm"]["id"])
    for vm_id in created:
        delay = rng.uniform(0, 0.08)
        r = env.api.request("DELETE", f"/v1/vms/{vm_id}")
        assert r.status == 202, r
        time.sleep(delay)
        env.daemon.stop(signal.SIGKILL)
        restart(env)
        nf.wait_until(lambda: env.api.vm(vm_id) is None, nf.TASK_TIMEOUT,
                      f"VM {vm_id} deleted (killed after {delay:.3f}s, seed {seed})")
        assert_vm_gone(env, vm_id, f"delete killed after {delay:.3f}s (seed {seed})")
        assert_consistent(env, f"delete killed after {delay:.3f}s (seed {seed})")


@pytest.fixture(scope="module")
def survivor(cenv):
    """One booted guest that prints NIMBUS-TICK every 2 s, shared by the restart tests."""
    env = cenv
    restart(env)
    vm = env.api.create_vm("survivor", env.image["id"], env.flavor["id"],
                           user_data="#!/bin/sh\ntouch /tmp/tick\n")["vm"]
    env.remember(vm["id"])
    env.api.wait_console(vm["id"], "NIMBUS-READY")
    env.api.wait_console(vm["id"], "NIMBUS-TICK", count=1, timeout=30)
    yield vm
    if not env.daemon.alive():
        env.daemon.start()
    env.api.delete_vm(vm["id"])
    assert_vm_gone(env, vm["id"], "after the clean-up delete")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_restart_leaves_guest_running(cenv, survivor, sig):
    env, vm = cenv, survivor
    if not env.daemon.alive():
        env.daemon.start()
    dom = nf.vm_domain(vm["id"])
    assert nf.domstate(dom) == "running", f"{dom} not running before the restart"
    dom_id = nf.domid(dom)
    assert dom_id and dom_id != "-", f"{dom} has no id: {dom_id!r}"

    rc = env.daemon.stop(sig)
    assert nf.domstate(dom) == "running", f"{sig.name} to nimbusd (rc {rc}) stopped the guest"
    time.sleep(3)  # the guest runs on without its controller
    assert nf.domstate(dom) == "running" and nf.domid(dom) == dom_id, \
        f"guest changed while nimbusd was down: {nf.domstate(dom)} id {nf.domid(dom)}"

    env.daemon.start()
    ticks = env.api.console(vm["id"]).count("NIMBUS-TICK")
    # a few sync intervals: the reconciler must re-attach, not restart or stop the guest
    env.api.wait_console(vm["id"], "NIMBUS-TICK", count=ticks + 3, timeout=30)
    v = env.api.vm(vm["id"])
    assert v["state"] == "running" and v["desired_state"] == "running", v
    assert nf.domid(dom) == dom_id, f"domain id changed: {dom_id} -> {nf.domid(dom)}"
    text = env.api.console(vm["id"])
    assert text.count("NIMBUS-READY") == 1, "the guest booted again across the restart"
    assert "NIMBUS-POWEROFF" not in text, "the guest was told to power off"
    assert_consistent(env, f"after a {sig.name} restart")
