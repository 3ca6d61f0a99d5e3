"""The host registry: each host has a worker of its own, so a host whose connect hangs (a local
listener that accepts TCP and never answers, the fault a firewall that drops packets makes)
delays neither the API's start-up nor any other host, and SIGTERM still stops nimbusd.

Every host here but the silent one is simulated (libvirt's test driver, scripts/simhosts.py):
the registry, reconciler and store code are the real ones. Bounds on waits are there to catch a
hang, never to measure.
"""

import os
import signal
import sys

import pytest

import nimbus_fixtures as nf

sys.path.insert(0, os.path.join(nf.REPO, "scripts"))
import simhosts  # noqa: E402 - the test bed's own script

SIM_HOSTS = 3


def host_states(api):
    return {h["name"]: h["connection"] for h in api.get("/v1/hosts")["hosts"]}


def health(api):
    r = api.request("GET", "/v1/health", token=None)
    assert r.status == 200, r
    return r.json


@pytest.fixture
def registry_env(make_env, e2e_root, request):
    root, _ = e2e_root
    label = "registry-" + request.node.name.removeprefix("test_")[:20]
    env = make_env(label)
    # A deadline long enough that the silent host stays "connecting" through the whole test,
    # so "the API serves while it hangs" is what the test observes, not a race.
    env.daemon.extra_args += ["--libvirt-uri", "test:///default", "--connect-timeout", "300",
                              "--sync-interval", "1"]
    env.silent = simhosts.SilentHost(ttl=900)
    env.sim = simhosts.write_hosts(os.path.join(root, label + "-hosts"), SIM_HOSTS,
                                   prefix="reg")
    yield env
    if env.daemon.alive():
        env.daemon.stop(timeout=20)
    env.silent.stop()


def test_silent_host_delays_nobody(registry_env):
    env = registry_env
    env.daemon.start()
    api = env.api
    # The silent host first: if its connect held anything up, the others would wait behind it.
    api.ok("POST", "/v1/hosts", {"name": "silent", "uri": env.silent.uri})
    for name, uri, _, _ in env.sim:
        api.ok("POST", "/v1/hosts", {"name": name, "uri": uri})
    sims = [name for name, _, _, _ in env.sim]

    def sims_up():
        st = host_states(api)
        return st if all(st[n] == "up" for n in sims) else None

    states = nf.wait_until(sims_up, 60, "the simulated hosts to come up")
    assert states["silent"] == "connecting", states
    assert health(api)["hosts"]["connecting"] == 1

    # Their periodic looks go on while the silent connect hangs: each look is recorded.
    first = api.get(f"/v1/hosts/{sims[0]}")["last_contact"]
    nf.wait_until(lambda: api.get(f"/v1/hosts/{sims[0]}")["last_contact"] != first, 30,
                  "another look at a simulated host")
    assert host_states(api)["silent"] == "connecting"

    # SIGTERM with the silent connect still hanging: nimbusd ends (the fixture's bound).
    assert env.daemon.stop(sig=signal.SIGTERM, timeout=15) == 0

    # Restart with the silent host registered: the API serves while its connect hangs.
    env.daemon.start()
    h = health(api)
    assert h["hosts"]["connecting"] >= 1, h
    nf.wait_until(sims_up, 60, "the simulated hosts to come up again")
    assert health(api)["hosts"]["connecting"] == 1
    assert env.daemon.stop(sig=signal.SIGTERM, timeout=15) == 0


def test_connect_deadline_marks_host_down(registry_env):
    env = registry_env
    env.daemon.extra_args += ["--connect-timeout", "2"]
    env.daemon.start()
    api = env.api
    api.ok("POST", "/v1/hosts", {"name": "silent", "uri": env.silent.uri})
    host = nf.wait_until(lambda: (h := api.get("/v1/hosts/silent"))["connection"] == "down" and h,
                         60, "the silent host to be down at its connect deadline")
    assert "deadline" in host["error"], host
    # Down is placement's business too: nothing is ever placed there.
    assert host["vms"] == 0
