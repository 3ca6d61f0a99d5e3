"""The test storage backends work for libvirt, without Nimbus: an rbd pool on the Ceph test cluster
(cephx key in a libvirt secret) lists, creates and deletes volumes that Ceph itself then has or
has not; iscsi-direct pools list the iSCSI test target's LUNs, with and without CHAP. What Nimbus
builds on (docs/storage.md). Every pool and secret is named nimbus-test-<random> and removed in a
finally."""

import os
import re
import secrets
import subprocess
import tempfile
import uuid

import pytest

import nimbus_fixtures as nf
from nimbus_fixtures import virsh
from storage_backends import ceph_backend, iscsi_backend, rbd_images  # noqa: F401 (fixtures)

MIB = 1024 * 1024


@pytest.fixture(scope="module")
def libvirtd():
    """libvirtd answers and has the storage drivers the backends need (no Nimbus build needed)."""
    subprocess.run([os.path.join(nf.REPO, "scripts", "start-libvirt.sh")], capture_output=True,
                   timeout=120)
    p = virsh("version", check=False)
    if p.returncode != 0:
        pytest.fail(f"libvirtd does not answer on {nf.LIBVIRT_URI}: {p.stderr}")
    return virsh("pool-capabilities").stdout


def require_driver(caps, pool_type):
    # libvirtd loads its storage backends when it starts: one started before the packages were
    # installed says supported='no' until restarted.
    assert re.search(rf"<pool type='{pool_type}' supported='yes'>", caps), (
        f"libvirtd has no {pool_type} storage driver: install "
        f"libvirt-daemon-driver-storage-{'rbd' if pool_type == 'rbd' else 'iscsi-direct'} "
        f"(scripts/install-deps.sh) and restart libvirtd")


@pytest.fixture
def workdir():
    with tempfile.TemporaryDirectory(prefix="nimbus-test-backends-") as d:
        yield d


def write(directory, name, text):
    path = os.path.join(directory, name)
    with open(path, "w") as f:
        f.write(text)
    return path


def unique(kind):
    return f"nimbus-test-{kind}-{secrets.token_hex(4)}"


def define_secret(workdir, usage_xml, value_file, plain=False):
    """A private, persistent libvirt secret with its value from value_file; returns its UUID."""
    sid = str(uuid.uuid4())
    xml = (f"<secret ephemeral='no' private='yes'><uuid>{sid}</uuid>{usage_xml}</secret>")
    virsh("secret-define", write(workdir, f"secret-{sid}.xml", xml))
    args = ["secret-set-value", "--secret", sid, "--file", value_file]
    virsh(*args, *(["--plain"] if plain else []))
    return sid


def remove(pool=None, secret=None, volume=None):
    """Best-effort teardown; returns what could not be removed."""
    left = []
    if pool and volume and volume in nf.volume_names(pool):
        p = virsh("vol-delete", "--pool", pool, volume, check=False)
        if p.returncode != 0:
            left.append(f"volume {pool}/{volume}: {p.stderr.strip()}")
    if pool and nf.pool_exists(pool):
        virsh("pool-destroy", pool, check=False)
        p = virsh("pool-undefine", pool, check=False)
        if p.returncode != 0:
            left.append(f"pool {pool}: {p.stderr.strip()}")
    if secret:
        p = virsh("secret-undefine", secret, check=False)
        if p.returncode != 0 and "no secret with matching uuid" not in p.stderr.lower():
            left.append(f"secret {secret}: {p.stderr.strip()}")
    return left


def vol_capacity(pool, vol):
    info = virsh("vol-info", "--bytes", "--pool", pool, vol).stdout
    m = re.search(r"^Capacity:\s+(\d+) bytes", info, re.M)
    assert m, f"no capacity in vol-info {pool}/{vol}:\n{info}"
    return int(m.group(1))


def pool_capacity(pool):
    info = virsh("pool-info", "--bytes", pool).stdout
    m = re.search(r"^Capacity:\s+(\d+)", info, re.M)
    assert m, f"no capacity in pool-info {pool}:\n{info}"
    return int(m.group(1))


def rbd_pool_xml(name, ceph, secret_uuid):
    hosts = "".join(f"<host name='{h.rsplit(':', 1)[0]}' port='{h.rsplit(':', 1)[1]}'/>"
                    for h in ceph["monitors"])
    return (f"<pool type='rbd'><name>{name}</name><source><name>{ceph['rbd_pool']}</name>{hosts}"
            f"<auth type='ceph' username='{ceph['user']}'><secret uuid='{secret_uuid}'/></auth>"
            f"</source></pool>")


def iscsi_pool_xml(name, iscsi, target, auth=""):
    host, port = iscsi["portal"].rsplit(":", 1)
    # Other tests may be logged in to the same target now: a login with the same initiator name
    # can make the target drop theirs (session reinstatement). A name of our own; the ACL is by
    # address.
    initiator = f"{iscsi['initiator']}-{secrets.token_hex(4)}"
    return (f"<pool type='iscsi-direct'><name>{name}</name><source>"
            f"<host name='{host}' port='{port}'/><device path='{target}'/>{auth}"
            f"<initiator><iqn name='{initiator}'/></initiator></source></pool>")


def test_rbd_pool_creates_and_deletes_volumes(libvirtd, ceph_backend, workdir):  # noqa: F811
    require_driver(libvirtd, "rbd")
    ceph = ceph_backend
    pool, vol = unique("rbd"), unique("vol")
    sid = None
    try:
        sid = define_secret(workdir, f"<usage type='ceph'><name>{pool}</name></usage>",
                            ceph["key_file"])
        # The value is write-only for clients: a private secret never shows its key again.
        assert virsh("secret-get-value", sid, check=False).returncode != 0
        virsh("pool-define", write(workdir, "pool.xml", rbd_pool_xml(pool, ceph, sid)))
        virsh("pool-start", pool)
        # Pool statistics come from the mgr; without one libvirt reports 0 bytes.
        nf.wait_until(lambda: virsh("pool-refresh", pool) and pool_capacity(pool) > 0, 60,
                      f"a capacity for rbd pool {pool}")
        assert vol not in nf.volume_names(pool)

        virsh("vol-create-as", pool, vol, "16M")
        assert vol in nf.volume_names(pool)
        assert vol_capacity(pool, vol) == 16 * MIB
        assert vol in rbd_images(ceph), "libvirt made the volume but Ceph has no such image"

        virsh("vol-delete", "--pool", pool, vol)
        assert vol not in nf.volume_names(pool)
        assert vol not in rbd_images(ceph), "libvirt deleted the volume but Ceph still has it"
    finally:
        left = remove(pool=pool, secret=sid, volume=vol)
        if vol in rbd_images(ceph):
            subprocess.run(["rbd", "-c", ceph["conf"], "rm", "--no-progress",
                            f"{ceph['rbd_pool']}/{vol}"], capture_output=True, timeout=60)
    assert not left, f"left behind: {left}"
    assert not nf.pool_exists(pool)


def test_rbd_pool_refuses_a_wrong_key(libvirtd, ceph_backend, workdir):  # noqa: F811
    """cephx is on: the pool only starts with the user's real key."""
    require_driver(libvirtd, "rbd")
    ceph = ceph_backend
    pool = unique("rbd")
    sid = None
    try:
        # A well-formed cephx key that is not the user's: ceph-authtool --gen-print-key.
        other = subprocess.run(["ceph-authtool", "--gen-print-key"], capture_output=True,
                               text=True, timeout=30, check=True).stdout.strip()
        assert other and other != ceph["key"]
        sid = define_secret(workdir, f"<usage type='ceph'><name>{pool}</name></usage>",
                            write(workdir, "wrong.key", other))
        virsh("pool-define", write(workdir, "pool.xml", rbd_pool_xml(pool, ceph, sid)))
        p = virsh("pool-start", pool, check=False)
        assert p.returncode != 0, "an rbd pool started with a wrong cephx key"
        assert "RADOS" in p.stderr or "rados" in p.stderr, p.stderr
    finally:
        left = remove(pool=pool, secret=sid)
    assert not left, f"left behind: {left}"


def test_iscsi_direct_pool_lists_the_luns(libvirtd, iscsi_backend, workdir):  # noqa: F811
    require_driver(libvirtd, "iscsi-direct")
    iscsi = iscsi_backend
    pool = unique("iscsi")
    try:
        virsh("pool-define", write(workdir, "pool.xml",
                                   iscsi_pool_xml(pool, iscsi, iscsi["target"])))
        virsh("pool-start", pool)
        vols = nf.volume_names(pool)
        # unit:0:0:<lun>; LUN 0 is the target's controller, listed as a 0-byte volume.
        for lun in iscsi["luns"]:
            assert f"unit:0:0:{lun}" in vols, f"LUN {lun} not listed: {sorted(vols)}"
            cap = vol_capacity(pool, f"unit:0:0:{lun}")
            # libvirt 9.0 reports one block less than the LUN has (recipe, pitfalls)
            assert iscsi["lun_bytes"] - 4096 <= cap <= iscsi["lun_bytes"], cap
    finally:
        left = remove(pool=pool)
    assert not left, f"left behind: {left}"


def test_iscsi_direct_pool_with_chap(libvirtd, iscsi_backend, workdir):  # noqa: F811
    require_driver(libvirtd, "iscsi-direct")
    iscsi = iscsi_backend
    chap = iscsi["chap"]
    pool, usage = unique("iscsi"), unique("chap")
    sid = None
    try:
        # Without credentials the CHAP target refuses the login.
        virsh("pool-define", write(workdir, "noauth.xml",
                                   iscsi_pool_xml(pool, iscsi, chap["target"])))
        p = virsh("pool-start", pool, check=False)
        assert p.returncode != 0, "the CHAP target let an initiator in without credentials"
        assert "Authentication failure" in p.stderr, p.stderr
        virsh("pool-undefine", pool)

        sid = define_secret(workdir, f"<usage type='iscsi'><target>{usage}</target></usage>",
                            chap["password_file"], plain=True)
        auth = (f"<auth type='chap' username='{chap['user']}'><secret usage='{usage}'/></auth>")
        virsh("pool-define", write(workdir, "chap.xml",
                                   iscsi_pool_xml(pool, iscsi, chap["target"], auth)))
        virsh("pool-start", pool)
        assert "unit:0:0:1" in nf.volume_names(pool)
    finally:
        left = remove(pool=pool, secret=sid)
    assert not left, f"left behind: {left}"


@pytest.mark.parametrize("script", ["test-ceph.sh", "test-iscsi.sh"])
def test_start_again_leaves_the_running_backend_alone(script, ceph_backend,  # noqa: F811
                                                      iscsi_backend):  # noqa: F811
    """`start` is idempotent: a healthy backend keeps its daemons (the same pids), so concurrent
    test sessions share it. (Never `stop` here: other sessions may be using it.)"""
    path = os.path.join(nf.REPO, "scripts", script)

    def status():
        p = subprocess.run([path, "status"], capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, f"{script} status: {p.stdout}{p.stderr}"
        return p.stdout.strip()
    before = status()
    p = subprocess.run([path, "start"], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0 and "already running" in p.stdout, p.stdout + p.stderr
    assert status() == before
