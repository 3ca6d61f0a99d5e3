"""Session fixtures for the end-to-end tests: libvirtd, the test guest image, one shared nimbusd
(its own state dir and storage pool), a shared image and flavor, and teardown that removes every
libvirt object and file the run created.

Environment:
  NIMBUS_BUILD_DIR          where nimbusd and nimbus are built (default <repo>/build)
  NIMBUS_E2E_KEEP=1         keep state dirs and daemon logs even when everything passed
"""

import os
import secrets
import shutil
import subprocess
import tempfile

import pytest

import nimbus_fixtures as nf

_ENVS = []  # every Env made this session, for teardown and failure reports


class Env:
    """One nimbusd with its state dir, pool, API client and CLI runner."""

    def __init__(self, root, run_id, label, max_image_gib=2):
        self.label = label
        self.daemon = nf.Daemon(
            state_dir=os.path.join(root, f"state-{label}"),
            pool_name=f"nimbus-e2e-{run_id}-{label}",
            log_path=os.path.join(root, f"nimbusd-{label}.log"),
            max_image_gib=max_image_gib)
        self.api = nf.Api(self.daemon)
        self.cli = nf.Cli(self.daemon, os.path.join(root, f"home-{label}"))
        self.known_ids = set()  # every VM/image id seen, so teardown finds its libvirt objects
        _ENVS.append(self)

    def remember(self, *ids):
        self.known_ids.update(i for i in ids if i)

    def consistency(self):
        return nf.check_consistency(self.api, self.daemon, self.known_ids)

    def teardown(self):
        if self.daemon.alive():
            # The libvirt networks it made are named by the networks' ids: learn them all.
            try:
                self.remember(*(n["id"] for n in self.api.get("/v1/networks")["networks"]))
            except Exception as e:  # noqa: BLE001 - teardown goes on; the pool check below
                print(f"[{self.label}] networks not listed at teardown: {e!r}")
            self.daemon.stop(timeout=20)
        problems = nf.purge_environment(self.daemon, self.known_ids)
        self.daemon.release_net_slot()
        return problems


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        for env in _ENVS:
            rep.sections.append((f"nimbusd [{env.label}] log tail ({env.daemon.log_path})",
                                 env.daemon.log_tail(60)))


@pytest.fixture(scope="session")
def e2e_root(request):
    root = tempfile.mkdtemp(prefix="nimbus-e2e-")
    os.chmod(root, 0o711)  # QEMU runs as libvirt-qemu and must reach the pool below
    run_id = secrets.token_hex(3)
    yield root, run_id
    problems = []
    for env in _ENVS:
        problems += env.teardown()
    nf.kill_all_daemons()
    failed = request.session.testsfailed
    if failed or os.environ.get("NIMBUS_E2E_KEEP") == "1":
        print(f"\nnimbus e2e: logs kept in {root}")
    else:
        shutil.rmtree(root, ignore_errors=True)
    if problems:
        print("\nnimbus e2e teardown problems:\n  " + "\n  ".join(problems))


@pytest.fixture(scope="session")
def libvirt():
    if not (os.path.exists(nf.NIMBUSD) and os.path.exists(nf.NIMBUS_CLI)):
        pytest.fail(f"nimbusd/nimbus not built in {nf.BUILD_DIR} (ninja -C build, or set "
                    "NIMBUS_BUILD_DIR)")
    # The script can exit non-zero on a harmless race (network already active); judge the result.
    subprocess.run([os.path.join(nf.REPO, "scripts", "start-libvirt.sh")], capture_output=True,
                   timeout=120)
    p = nf.virsh("version", check=False)
    if p.returncode != 0:
        pytest.fail(f"libvirtd does not answer on {nf.LIBVIRT_URI}: {p.stderr}")
    info = nf.virsh("net-info", "default", check=False).stdout
    if "Active:" not in info or "yes" not in info.split("Active:")[1].splitlines()[0]:
        nf.virsh("net-start", "default", check=False)


@pytest.fixture(scope="session")
def tiny_image(e2e_root):
    root, _ = e2e_root
    out = os.path.join(root, "tiny.qcow2")
    p = subprocess.run([os.path.join(nf.REPO, "scripts", "build-test-image.sh"), out],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0 and os.path.exists(out), f"build-test-image.sh failed:\n{p.stderr}"
    return out


@pytest.fixture(scope="session")
def make_env(e2e_root, libvirt):
    """Factory: a new, not yet started environment with its own state dir and pool."""
    root, run_id = e2e_root

    def make(label, **kw):
        return Env(root, run_id, label, **kw)
    return make


@pytest.fixture(scope="session")
def nimbus(make_env):
    """The shared nimbusd most tests use (started once)."""
    env = make_env("main")
    env.daemon.start()
    yield env
    env.teardown()


@pytest.fixture(scope="session")
def image(nimbus, tiny_image):
    return nf.upload_image(nimbus, "e2e-tiny", tiny_image)


@pytest.fixture(scope="session")
def flavor(nimbus):
    return nf.create_small_flavor(nimbus)


@pytest.fixture
def vms(nimbus, image, flavor):
    """Creates VMs on the shared daemon (waiting for the create task) and deletes them after the
    test, so at most a guest or two burns CPU at any time."""
    made = []

    def create(name, wait=True, **extra):
        r = nimbus.api.create_vm(name, image["id"], flavor["id"], wait=wait, **extra)
        nimbus.remember(r["vm"]["id"])
        made.append(r["vm"]["id"])
        return r
    yield create
    for vm_id in made:
        try:
            v = nimbus.api.vm(vm_id)
            if v and v["task_id"]:
                nimbus.api.wait_task(v["task_id"], expect=None)
            nimbus.api.delete_vm(vm_id)
        except Exception as e:  # noqa: BLE001 - the session teardown purges what is left
            print(f"cleanup of VM {vm_id} failed: {e}")
