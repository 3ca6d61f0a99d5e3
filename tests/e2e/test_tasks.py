"""The task engine: a task that waits (a graceful stop of a guest that ignores ACPI)
holds no worker, so other tasks run meanwhile even with a single worker; SIGTERM stops nimbusd
within 5 s whatever tasks wait; and a waiting task left by a stop resumes at the next start.

Runs its own nimbusd (--workers 1) because it restarts it."""

import signal

import pytest

import nimbus_fixtures as nf

# Far longer than anything else this test waits for: if the stop held the only worker, the
# other VM's task would stay pending for all of it.
DEAF_STOP_TIMEOUT = 45


@pytest.fixture(scope="module")
def tenv(make_env, tiny_image):
    env = make_env("tasks")
    env.daemon.extra_args = ["--workers", "1"]
    env.daemon.start()
    env.image = nf.upload_image(env, "tasks-tiny", tiny_image)
    env.flavor = nf.create_small_flavor(env)
    yield env
    env.teardown()


# The guest stops its acpid: it never hears the ACPI power button. The ticks say it has run.
DEAF = "#!/bin/sh\nkill $(cat /tmp/acpid.pid)\ntouch /tmp/tick\n"


def make_vm(env, name, **extra):
    r = env.api.create_vm(name, env.image["id"], env.flavor["id"], **extra)
    env.remember(r["vm"]["id"])
    return r["vm"]["id"]


def test_waiting_stop_holds_no_worker(tenv):
    api = tenv.api
    deaf = make_vm(tenv, "tasks-deaf", user_data=DEAF)
    other = make_vm(tenv, "tasks-other")
    api.wait_console(deaf, "NIMBUS-TICK")
    stop = api.action(deaf, "stop", body={"timeout": DEAF_STOP_TIMEOUT}, wait=False)
    stop_id = stop["task"]["id"]
    nf.wait_until(lambda: api.task(stop_id)["state"] == "running", 30, "the stop to begin")

    # The only worker is free: another VM's task runs to its end while the stop waits.
    api.action(other, "pause")
    assert api.task(stop_id)["state"] == "running", api.task(stop_id)
    assert nf.domstate(nf.vm_domain(deaf)) == "running"

    # A stop of the daemon does not wait for the waiting task...
    rc = tenv.daemon.stop(signal.SIGTERM, timeout=5)
    assert rc == 0, f"nimbusd exit status {rc}"
    assert nf.domstate(nf.vm_domain(deaf)) == "running", "stopping nimbusd touched the guest"

    # ...which resumes at the next start and ends with the guest off.
    tenv.daemon.start()
    t = api.wait_task(stop_id, timeout=DEAF_STOP_TIMEOUT + 60)
    assert t["state"] == "succeeded", t
    assert api.vm(deaf)["state"] == "stopped"
    assert nf.domstate(nf.vm_domain(deaf)) == "shut off"
    api.action(other, "resume")


def test_graceful_stop_of_a_listening_guest(tenv):
    """A booted guest answers ACPI: the stop ends by itself, long before its timeout."""
    api = tenv.api
    vm = make_vm(tenv, "tasks-listening")
    api.wait_console(vm, "NIMBUS-READY")
    r = api.action(vm, "stop", body={"timeout": 600}, wait=False)
    t = api.wait_task(r["task"]["id"], timeout=300)
    assert t["state"] == "succeeded", t
    assert api.vm(vm)["state"] == "stopped"
    log = open(tenv.daemon.log_path, encoding="utf-8", errors="replace").read()
    assert f"vm {vm}: not shut down within" not in log, "the guest was destroyed, not shut down"


def test_stop_timeout_zero_destroys(tenv):
    api = tenv.api
    vm = make_vm(tenv, "tasks-zero")
    r = api.action(vm, "stop", body={"timeout": 0})
    assert api.wait_task(r["task"]["id"])["state"] == "succeeded"
    assert api.vm(vm)["state"] == "stopped"
    assert nf.domstate(nf.vm_domain(vm)) == "shut off"
