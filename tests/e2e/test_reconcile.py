"""Drift made behind Nimbus's back with virsh, and conflicting API calls at the same moment.
The tests share one VM (one guest boot instead of five); each starts by bringing it back to a
running, booted state."""

import threading
import time

import pytest

import nimbus_fixtures as nf

SYNC = 2  # --sync-interval the daemon runs with
DRIFT_TIMEOUT = 3 * SYNC + 6  # events are the fast path; a full sync must catch anything missed


@pytest.fixture(scope="module")
def rvm(nimbus, image, flavor):
    r = nimbus.api.create_vm("recon1", image["id"], flavor["id"])
    vm_id = r["vm"]["id"]
    nimbus.remember(vm_id)
    yield vm_id
    v = nimbus.api.vm(vm_id)
    if v and v["task_id"]:
        nimbus.api.wait_task(v["task_id"], expect=None)
    nimbus.api.delete_vm(vm_id)


def ready_count(api, vm_id):
    return api.console(vm_id).count("NIMBUS-READY")


def ensure_running(nimbus, vm_id, booted=True):
    """Brings the VM to running (starting it if needed) and, if booted, waits for a fresh
    NIMBUS-READY when it had to start it, or for the first one."""
    api = nimbus.api
    v = api.vm(vm_id)
    if v["task_id"]:
        api.wait_task(v["task_id"], expect=None)
        v = api.vm(vm_id)
    before = ready_count(api, vm_id)
    if v["state"] == "paused":
        api.action(vm_id, "resume")
    elif v["state"] != "running":
        api.action(vm_id, "start")
        if booted:
            api.wait_console(vm_id, "NIMBUS-READY", count=before + 1)
    elif booted and before == 0:
        api.wait_console(vm_id, "NIMBUS-READY")
    api.wait_vm_state(vm_id, "running")


def timed_wait_state(api, vm_id, state, why):
    t0 = time.monotonic()
    try:
        v = api.wait_vm_state(vm_id, state, timeout=DRIFT_TIMEOUT)
    except nf.Timeout as e:
        raise AssertionError(f"after {why}, the API did not show {state!r} within "
                             f"{DRIFT_TIMEOUT}s: {e}") from None
    return v, time.monotonic() - t0


def test_destroy_undefine_start(nimbus, rvm):
    api, dom = nimbus.api, nf.vm_domain(rvm)
    ensure_running(nimbus, rvm, booted=False)

    nf.virsh("destroy", dom)
    v, took = timed_wait_state(api, rvm, "stopped", "virsh destroy")
    assert v["desired_state"] == "stopped", f"destroy by an operator is the new intent: {v}"

    nf.virsh("undefine", dom)
    v, took = timed_wait_state(api, rvm, "missing", "virsh undefine")
    assert nf.domstate(dom) is None

    before = ready_count(api, rvm)
    api.action(rvm, "start")
    v = api.wait_vm_state(rvm, "running")
    assert nf.domstate(dom) == "running", f"domain after start of a missing VM: {nf.domstate(dom)}"
    assert nf.vm_volumes(rvm) <= nf.volume_names(nimbus.daemon.pool_name)
    # It boots again from the same disk, with the same identity.
    api.wait_console(rvm, f"NIMBUS-READY hostname=recon1 instance-id={rvm}", count=before + 1)
    assert nimbus.consistency() == []


def test_guest_powers_off(nimbus, rvm):
    api, dom = nimbus.api, nf.vm_domain(rvm)
    ensure_running(nimbus, rvm)  # acpid must be up to hear the button
    offs = api.console(rvm).count("NIMBUS-POWEROFF")

    def pressed():
        # An ACPI press before the guest's acpid is up is lost: press again until heard.
        if api.console(rvm).count("NIMBUS-POWEROFF") > offs:
            return True
        if nf.domstate(dom) == "running":
            nf.virsh("shutdown", dom, check=False)
        return False
    nf.wait_until(pressed, nf.BOOT_TIMEOUT, "the guest to print NIMBUS-POWEROFF", interval=3)
    v, _ = timed_wait_state(api, rvm, "stopped", "the guest powered itself off")
    assert v["desired_state"] == "stopped", v
    assert nf.domstate(dom) == "shut off"


def test_started_and_suspended_outside(nimbus, rvm):
    api, dom = nimbus.api, nf.vm_domain(rvm)
    ensure_running(nimbus, rvm, booted=False)
    api.action(rvm, "stop", body={"force": True})
    assert api.vm(rvm)["state"] == "stopped"
    nf.virsh("start", dom)
    v, _ = timed_wait_state(api, rvm, "running", "virsh start")
    assert v["desired_state"] == "running", v
    nf.virsh("suspend", dom)
    v, _ = timed_wait_state(api, rvm, "paused", "virsh suspend")
    nf.virsh("resume", dom)
    timed_wait_state(api, rvm, "running", "virsh resume")


def race(api, requests):
    """Fires all requests at the same instant; returns the responses in order."""
    barrier = threading.Barrier(len(requests))
    out = [None] * len(requests)

    def go(i, method, path, body):
        barrier.wait()
        out[i] = api.request(method, path, body=body) if body is not None else \
            api.request(method, path)
    threads = [threading.Thread(target=go, args=(i, *req)) for i, req in enumerate(requests)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return out


def test_concurrent_stops(nimbus, rvm):
    """Four stops at the same instant: a graceful stop holds the VM for seconds, so exactly one
    wins and the others are told VM_BUSY."""
    api = nimbus.api
    ensure_running(nimbus, rvm)
    # graceful for up to 5 s (the guest may still be booting and deaf to ACPI), then forced
    resp = race(api, [("POST", f"/v1/vms/{rvm}/stop", {"timeout": 5})] * 4)
    desc = [f"{r.status} {r.code}" for r in resp]
    won = [r for r in resp if r.status == 202]
    try:
        assert len(won) == 1, f"exactly one stop must win: {desc}"
        assert all(r.status == 409 and r.code == "VM_BUSY" for r in resp if r.status != 202), desc
    finally:
        for r in won:
            api.wait_task(r.json["task"]["id"], expect=None)
    assert api.vm(rvm)["state"] == "stopped"
    assert nf.domstate(nf.vm_domain(rvm)) == "shut off"


def test_concurrent_mixed_actions(nimbus, rvm):
    """Different actions at once: never two tasks on the VM at the same time, and the VM ends in a
    state libvirt agrees with."""
    api, dom = nimbus.api, nf.vm_domain(rvm)
    for attempt in range(3):
        ensure_running(nimbus, rvm, booted=False)
        reqs = [("POST", f"/v1/vms/{rvm}/reboot", None), ("POST", f"/v1/vms/{rvm}/pause", None),
                ("POST", f"/v1/vms/{rvm}/stop", {"force": True}),
                ("POST", f"/v1/vms/{rvm}/stop", {"force": True})]
        resp = race(api, reqs)
        desc = [f"{p.rsplit('/', 1)[-1]} -> {r.status} {r.code}" for (_, p, _), r in
                zip(reqs, resp)]
        won = [r for r in resp if r.status == 202]
        assert won, f"attempt {attempt}: no action won: {desc}"
        for r in resp:
            if r.status != 202:
                assert r.status == 409 and r.code in ("VM_BUSY", "INVALID_STATE"), desc
        # A fast winner (pause, reboot) may finish before a later request arrives, which then
        # legitimately wins too: what must hold is that the VM ends coherent.
        for r in won:
            api.wait_task(r.json["task"]["id"], expect=None)
        v = api.vm(rvm)
        assert v["task_id"] is None, v
        want = {"running": "running", "paused": "paused", "stopped": "shut off"}[v["state"]]
        nf.wait_until(lambda: nf.domstate(dom) == want, 10,
                      f"virsh domstate {want!r} to match the API's {v['state']!r} ({desc})")


def test_sequential_busy(nimbus, rvm):
    """A graceful stop takes the guest seconds: meanwhile the VM is held."""
    api = nimbus.api
    ensure_running(nimbus, rvm, booted=False)
    r = api.action(rvm, "stop", body={"timeout": 5}, wait=False)
    for method, path in [("POST", f"/v1/vms/{rvm}/start"), ("POST", f"/v1/vms/{rvm}/reboot"),
                         ("DELETE", f"/v1/vms/{rvm}")]:
        other = api.request(method, path)
        if api.task(r["task"]["id"])["state"] in ("pending", "running"):
            assert other.status == 409 and other.code == "VM_BUSY", \
                f"{method} {path} during a stop: {other!r}"
    api.wait_task(r["task"]["id"])
    assert api.vm(rvm)["state"] == "stopped"


def test_concurrent_create_same_name(nimbus, image, flavor):
    api = nimbus.api
    body = {"name": "twin", "image": image["id"], "flavor": flavor["id"]}
    resp = race(api, [("POST", "/v1/vms", body)] * 3)
    desc = [f"{r.status} {r.code}" for r in resp]
    won = [r for r in resp if r.status == 202]
    for r in won:
        nimbus.remember(r.json["vm"]["id"])
    try:
        assert len(won) == 1, f"exactly one create of 'twin' must win: {desc}"
        assert all(r.status == 409 and r.code == "NAME_TAKEN" for r in resp if r.status != 202), \
            desc
    finally:
        for r in won:
            api.wait_task(r.json["task"]["id"], expect=None)
            api.delete_vm(r.json["vm"]["id"])
    assert [v for v in api.vms() if v["name"] == "twin"] == []
    assert nimbus.consistency() == []


def test_delete_of_missing_vm(nimbus, vms):
    """A VM whose domain vanished can still be deleted, and leaves nothing behind."""
    api = nimbus.api
    vm_id = vms("gone1")["vm"]["id"]
    dom = nf.vm_domain(vm_id)
    nf.virsh("destroy", dom)
    nf.virsh("undefine", dom)
    timed_wait_state(api, vm_id, "missing", "virsh destroy + undefine")
    api.delete_vm(vm_id)
    assert api.vm(vm_id) is None
    left = {v for v in nf.volume_names(nimbus.daemon.pool_name) if vm_id in v}
    assert not left, f"volumes left: {left}"
    assert nimbus.consistency() == []


def test_start_without_disk_is_refused(nimbus, vms):
    """A VM whose domain and disk are both gone is never given a blank disk: start fails."""
    api = nimbus.api
    vm_id = vms("nodisk1")["vm"]["id"]
    dom = nf.vm_domain(vm_id)
    nf.virsh("destroy", dom)
    nf.virsh("undefine", dom)
    timed_wait_state(api, vm_id, "missing", "virsh destroy + undefine")
    nf.virsh("vol-delete", "--pool", nimbus.daemon.pool_name, f"vm-{vm_id}-disk.qcow2")
    r = api.action(vm_id, "start", wait=False)
    t = api.wait_task(r["task"]["id"], expect="failed")
    assert t["error"] and t["error"]["code"] == "INVALID_STATE", t
    v = api.vm(vm_id)
    assert v["task_id"] is None and v["state"] in ("missing", "error"), v
    assert nf.domstate(dom) is None, "a domain was defined without its disk"
    assert f"vm-{vm_id}-disk.qcow2" not in nf.volume_names(nimbus.daemon.pool_name), \
        "a blank disk was created"
    api.delete_vm(vm_id)
    assert {v for v in nf.volume_names(nimbus.daemon.pool_name) if vm_id in v} == set()
