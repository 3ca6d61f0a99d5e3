"""Real storage backends for the end-to-end tests: a single-node Ceph cluster (scripts/test-ceph.sh)
and a userspace iSCSI target (scripts/test-iscsi.sh), both on 127.0.0.1.

Use the session fixtures by importing them into a test module:

    from storage_backends import ceph_backend, iscsi_backend  # noqa: F401 (pytest fixtures)

    def test_x(ceph_backend):
        ceph_backend["monitors"]  # ["127.0.0.1:6789"]

or call ceph_backend_info() / iscsi_backend_info() (same dicts, cached per process) from code that
is not a test. Either starts the backend through its script when it does not answer yet, and leaves
it running afterwards: other test sessions may be using it at the same time (the scripts serialise
their callers with a lock). CI stops both at the end (scripts/run-tests.sh); by hand:
`scripts/test-ceph.sh stop`, `scripts/test-iscsi.sh stop`.

The backends are shared by every test: name whatever you create in them uniquely (an RBD image
in the pool "nimbus-test", a libvirt pool or secret) and remove it in a finally. A missing package
skips the test with the reason; a backend that does not start fails it.

ceph_backend:
  monitors   ["127.0.0.1:6789"]          rbd_pool  "nimbus-test"
  user       "nimbus-test" (cephx client.nimbus-test: rbd caps on rbd_pool only)
  key        the user's key, base64 (what `virsh secret-set-value` takes)
  key_file   a file holding `key`        keyring   the user's keyring file
  conf       an admin ceph.conf (CEPH_CONF) for checks behind Nimbus's back: see rbd_images()
iscsi_backend:
  portal     "127.0.0.1:3260"            target    "iqn.2026-12.io.nimbus:test" (no CHAP)
  initiator  "iqn.2026-12.io.nimbus:test-initiator" (the ACL is by address: any name gets in;
             tests that run at the same time should each log in under a name of their own, e.g.
             this one with a suffix: a second login with the same name can make the target drop
             the first session)
  luns       [1, 2]                      lun_bytes 67108864 (64 MiB each)
  chap       {"target": "iqn.2026-12.io.nimbus:test-chap" (LUN 1, 64 MiB), "user": "nimbus-test",
              "password": "...", "password_file": "..."}: that target refuses logins without it
"""

import functools
import os
import shutil
import subprocess

import pytest

import nimbus_fixtures as nf

CEPH_SCRIPT = os.path.join(nf.REPO, "scripts", "test-ceph.sh")
ISCSI_SCRIPT = os.path.join(nf.REPO, "scripts", "test-iscsi.sh")

# Debian packages each backend needs on this machine (scripts/install-deps.sh installs them),
# and the commands that tell them apart where there is no dpkg.
CEPH_PACKAGES = ("ceph-mon", "ceph-osd", "ceph-mgr", "ceph-common", "qemu-block-extra",
                 "libvirt-daemon-driver-storage-rbd")
CEPH_COMMANDS = ("ceph", "ceph-mon", "ceph-mgr", "ceph-osd", "rbd")
ISCSI_PACKAGES = ("tgt", "qemu-block-extra", "libvirt-daemon-driver-storage-iscsi-direct")
ISCSI_COMMANDS = ("tgtd", "tgtadm")


def _missing(packages, commands):
    if shutil.which("dpkg-query"):
        missing = []
        for p in packages:
            q = subprocess.run(["dpkg-query", "-W", "-f=${Status}", p], capture_output=True,
                               text=True)
            if "install ok installed" not in q.stdout:
                missing.append(p)
        return missing
    return [c for c in commands if shutil.which(c) is None]


def _script_env(script, what, packages, commands):
    missing = _missing(packages, commands)
    if missing:
        pytest.skip(f"{what}: packages not installed: {' '.join(missing)} "
                    f"(scripts/install-deps.sh installs them, then restart libvirtd)")
    start = subprocess.run([script, "start"], capture_output=True, text=True, timeout=300)
    if start.returncode != 0:
        pytest.fail(f"{what}: `{os.path.basename(script)} start` failed "
                    f"(rc {start.returncode}):\n{start.stdout}\n{start.stderr}")
    p = subprocess.run([script, "env"], capture_output=True, text=True, timeout=60)
    if p.returncode != 0:
        pytest.fail(f"{what}: `{os.path.basename(script)} env` failed: {p.stderr}")
    env = {}
    for line in p.stdout.splitlines():
        k, sep, v = line.partition("=")
        if sep:
            env[k.strip()] = v.strip()
    return env


@functools.lru_cache(maxsize=None)
def _ceph():
    e = _script_env(CEPH_SCRIPT, "Ceph test cluster", CEPH_PACKAGES, CEPH_COMMANDS)
    return {
        "monitors": e["NIMBUS_TEST_CEPH_MONITORS"].split(","),
        "rbd_pool": e["NIMBUS_TEST_CEPH_POOL"],
        "user": e["NIMBUS_TEST_CEPH_USER"],
        "key": e["NIMBUS_TEST_CEPH_KEY"],
        "key_file": e["NIMBUS_TEST_CEPH_KEY_FILE"],
        "keyring": e["NIMBUS_TEST_CEPH_KEYRING"],
        "conf": e["CEPH_CONF"],
    }


@functools.lru_cache(maxsize=None)
def _iscsi():
    e = _script_env(ISCSI_SCRIPT, "iSCSI test target", ISCSI_PACKAGES, ISCSI_COMMANDS)
    return {
        "portal": e["NIMBUS_TEST_ISCSI_PORTAL"],
        "target": e["NIMBUS_TEST_ISCSI_TARGET"],
        "initiator": e["NIMBUS_TEST_ISCSI_INITIATOR"],
        "luns": [int(x) for x in e["NIMBUS_TEST_ISCSI_LUNS"].split(",")],
        "lun_bytes": int(e["NIMBUS_TEST_ISCSI_LUN_BYTES"]),
        "chap": {
            "target": e["NIMBUS_TEST_ISCSI_CHAP_TARGET"],
            "user": e["NIMBUS_TEST_ISCSI_CHAP_USER"],
            "password": e["NIMBUS_TEST_ISCSI_CHAP_PASSWORD"],
            "password_file": e["NIMBUS_TEST_ISCSI_CHAP_PASSWORD_FILE"],
        },
    }


def ceph_backend_info():
    """The Ceph test cluster (started if need be) as a fresh dict; skips if packages are missing."""
    c = _ceph()
    return dict(c, monitors=list(c["monitors"]))


def iscsi_backend_info():
    """The iSCSI test target (started if need be) as a fresh dict; skips if packages are missing."""
    i = _iscsi()
    return dict(i, luns=list(i["luns"]), chap=dict(i["chap"]))


@pytest.fixture(scope="session")
def ceph_backend():
    return ceph_backend_info()


@pytest.fixture(scope="session")
def iscsi_backend():
    return iscsi_backend_info()


def ceph_cmd(ceph, *args, tool="rbd", timeout=60, check=True):
    """Runs `rbd` (or `ceph`) as the cluster's admin, under a timeout (they hang while no OSD
    answers). Returns the CompletedProcess."""
    p = subprocess.run([tool, "-c", ceph["conf"], *args], capture_output=True, text=True,
                       timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError(f"{tool} {' '.join(args)} failed (rc {p.returncode}): "
                             f"{p.stderr.strip()}")
    return p


def rbd_images(ceph):
    """The RBD images in the test pool, as Ceph (not libvirt) sees them."""
    out = ceph_cmd(ceph, "ls", ceph["rbd_pool"]).stdout
    return {l.strip() for l in out.splitlines() if l.strip()}
