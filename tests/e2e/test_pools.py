"""Storage pools (issue 10; docs/storage.md "Pools", docs/api/openapi.yaml "pools") on the shared
nimbusd and the real libvirtd: the default pool, dir pools under the daemon's pool-roots, RBD
pools on the test Ceph cluster (the key only in a libvirt secret), iSCSI pools on the test tgt
target (with and without CHAP), netfs pools that cannot start here (state "error" with libvirt's
message), bad input refused with nothing made, readers, and the periodic check: a pool a host
lost comes back, and a libvirt pool of this site that the store does not know is removed while
other controllers' and operators' pools are left alone.

Every pool and secret a test makes is removed in a finally, through the API and then by name.
"""

import hashlib
import json
import os
import secrets
import tempfile
import uuid

import pytest

import nimbus_fixtures as nf
from storage_backends import ceph_backend, iscsi_backend  # noqa: F401 (pytest fixtures)

HK_TIMEOUT = 60  # housekeeping looks at the pools every 6 s in the tests (--pool-check-interval)


def virsh_ok(*args):
    return nf.virsh(*args, check=False).returncode == 0


def libvirt_pool_names():
    return set(nf.virsh("pool-list", "--all", "--name").stdout.split())


def libvirt_secret_uuids():
    out = nf.virsh("secret-list").stdout
    return set(nf.UUID_RE.findall(out))


def pool_uuid(name):
    return nf.virsh("pool-uuid", name).stdout.strip()


def pool_active(name):
    p = nf.virsh("pool-info", name, check=False)
    return p.returncode == 0 and any(ln.split() == ["State:", "running"]
                                     for ln in p.stdout.splitlines())


def site_uuid(site, pool_id):
    """The libvirt UUID nimbusd gives its pool pool_id (pool_ops_libvirt_uuid)."""
    b = bytearray(hashlib.sha256(f"{site}/{pool_id}".encode()).digest()[:16])
    b[6] = (b[6] & 0x0F) | 0x80
    b[8] = (b[8] & 0x3F) | 0x80
    return str(uuid.UUID(bytes=bytes(b)))


def uniq(prefix):
    return f"{prefix}-{secrets.token_hex(3)}"


def initiator():
    return f"iqn.2026-12.io.nimbus:e2e-pools-{secrets.token_hex(4)}"


class Pools:
    """Creates pools on the shared daemon and removes each one (API, then libvirt by name)."""

    def __init__(self, env):
        self.env, self.api = env, env.api
        self.made = []  # ids

    def create(self, body, expect=201):
        r = self.api.request("POST", "/v1/pools", body)
        if r.status in (200, 201):
            self.made.append(r.json["id"])
        assert r.status == expect, f"POST /v1/pools {body.get('type')} -> {r.status}: {r.text}"
        return r.json

    def cleanup(self):
        for pid in self.made:
            self.api.request("DELETE", f"/v1/pools/{pid}")
            name = f"nimbus-pool-{pid}"
            if name in libvirt_pool_names():
                nf.virsh("pool-destroy", name, check=False)
                nf.virsh("pool-undefine", name, check=False)
            if pid in libvirt_secret_uuids():
                nf.virsh("secret-undefine", pid, check=False)


@pytest.fixture
def pools(nimbus):
    p = Pools(nimbus)
    try:
        yield p
    finally:
        p.cleanup()


@pytest.fixture(scope="module")
def site(nimbus):
    return nimbus.api.ok("GET", "/v1/pools/default")["id"]


def local_state(pool):
    states = {h["host"]: h for h in pool["hosts"]}
    assert "local" in states, f"no state on host local: {pool}"
    return states["local"]


def our_libvirt_pools(site):
    """This daemon's libvirt pools (by their site UUID), so that other tests' pools on the same
    libvirtd never make a comparison flaky."""
    ours = set()
    for name in libvirt_pool_names():
        pid = name[len("nimbus-pool-"):]
        if name.startswith("nimbus-pool-") and nf.UUID_RE.fullmatch(pid):
            u = nf.virsh("pool-uuid", name, check=False).stdout.strip()
            if u == site_uuid(site, pid):
                ours.add(name)
    return ours


# ---- the default pool ----


def test_default_pool_listed_and_kept(nimbus):
    listed = nimbus.api.ok("GET", "/v1/pools")["pools"]
    defaults = [p for p in listed if p["default"]]
    assert len(defaults) == 1, listed
    d = defaults[0]
    assert d["name"] == "default" and d["type"] == "dir" and not d["shared"]
    assert d["path"] == nimbus.daemon.pool_path
    assert d["libvirt_name"] == nimbus.daemon.pool_name
    st = local_state(d)
    assert st["state"] == "active" and st["capacity"] > 0, st
    r = nimbus.api.request("DELETE", "/v1/pools/default")
    assert r.status == 409 and r.json["error"]["code"] == "POOL_IN_USE", r.text
    assert pool_active(nimbus.daemon.pool_name)


# ---- dir ----


def test_dir_pool_under_a_root(nimbus, pools, site):
    name = uniq("e2e-dir")
    path = os.path.join(nimbus.daemon.pool_roots, name)
    p = pools.create({"name": name, "type": "dir", "path": path})
    lv = f"nimbus-pool-{p['id']}"
    assert p["type"] == "dir" and not p["shared"] and p["path"] == path and not p["default"]
    st = local_state(p)
    assert st["state"] == "active" and st["capacity"] > 0 and st["error"] is None, st
    assert os.path.isdir(path)
    assert pool_active(lv)
    assert "Autostart:      yes" in nf.virsh("pool-info", lv).stdout
    assert pool_uuid(lv) == site_uuid(site, p["id"])
    # the CLI's view: name, type, hosts active/total
    rows = [ln.split() for ln in nimbus.cli.run("pool", "list").stdout.splitlines()]
    assert any(r[:4] == [name, "dir", "false", "1/1"] for r in rows), rows
    shown = nimbus.cli.run("pool", "show", name).stdout
    assert "local active" in shown and path in shown, shown
    # GET by name and by id agree; delete leaves libvirt but not the data
    assert nimbus.api.ok("GET", f"/v1/pools/{name}")["id"] == p["id"]
    with open(os.path.join(path, "keep"), "w") as f:
        f.write("data")
    nimbus.cli.run("pool", "delete", name)
    assert lv not in libvirt_pool_names()
    assert os.path.exists(os.path.join(path, "keep")), "a pool's delete must not delete its data"
    r = nimbus.api.request("GET", f"/v1/pools/{p['id']}")
    assert r.status == 404 and r.json["error"]["code"] == "POOL_NOT_FOUND"


def test_pool_a_host_lost_comes_back(nimbus, pools):
    name = uniq("e2e-lost")
    p = pools.create({"name": name, "type": "dir",
                      "path": os.path.join(nimbus.daemon.pool_roots, name)})
    lv = f"nimbus-pool-{p['id']}"
    assert pool_active(lv)
    nf.virsh("pool-destroy", lv)
    nf.wait_until(lambda: pool_active(lv), HK_TIMEOUT, "the stopped pool to be started again")
    nf.virsh("pool-destroy", lv)
    nf.virsh("pool-undefine", lv)
    nf.wait_until(lambda: pool_active(lv), HK_TIMEOUT, "the undefined pool to be made again")
    assert local_state(nimbus.api.ok("GET", f"/v1/pools/{p['id']}"))["state"] == "active"


# ---- rbd ----


def test_rbd_pool_key_only_in_a_secret(nimbus, pools, site, ceph_backend):  # noqa: F811
    cb = ceph_backend
    name = uniq("e2e-rbd")
    secrets_before = libvirt_secret_uuids()
    # through the CLI: the key from a file, never on the command line
    out = nimbus.cli.json("pool", "create", name, "--type", "rbd", "--monitors",
                          ",".join(cb["monitors"]), "--rbd-pool", cb["rbd_pool"], "--user",
                          cb["user"], "--key-file", cb["key_file"])
    pools.made.append(out["id"])
    pid, lv = out["id"], f"nimbus-pool-{out['id']}"
    assert out["type"] == "rbd" and out["shared"] and out["secret_set"] is True
    st = local_state(out)
    assert st["state"] == "active", st
    assert pool_active(lv)
    # the secret: UUID = the pool's id, ceph usage named after the libvirt pool
    assert pid in libvirt_secret_uuids() - secrets_before
    assert f"ceph {lv}" in nf.virsh("secret-list").stdout
    xml = nf.virsh("pool-dumpxml", lv).stdout
    assert cb["key"] not in xml and f"uuid='{pid}'" in xml, xml
    got = nimbus.api.get(f"/v1/pools/{pid}")
    text = json.dumps(got)
    assert got["secret_set"] is True and cb["key"] not in text and "key" not in got, text
    assert cb["key"] not in json.dumps(nimbus.api.ok("GET", "/v1/pools"))
    with open(nimbus.daemon.log_path, errors="replace") as f:
        assert cb["key"] not in f.read(), "the Ceph key reached nimbusd's log"
    # delete: the pool and its secret leave libvirt
    nimbus.api.ok("DELETE", f"/v1/pools/{pid}", expect=204)
    assert lv not in libvirt_pool_names()
    assert pid not in libvirt_secret_uuids()


# ---- iscsi ----


def test_iscsi_pool_lists_the_luns(nimbus, pools, iscsi_backend):  # noqa: F811
    ib = iscsi_backend
    # libvirt refuses a second iscsi-direct pool with the same portal and initiator: a name of
    # our own keeps other tests' pools on this libvirtd from getting in the way
    p = pools.create({"name": uniq("e2e-iscsi"), "type": "iscsi", "portal": ib["portal"],
                      "target": ib["target"], "initiator": initiator()})
    lv = f"nimbus-pool-{p['id']}"
    assert p["shared"] and p["secret_set"] is False
    assert local_state(p)["state"] == "active", p
    vols = nf.virsh("vol-list", lv).stdout
    for lun in ib["luns"]:
        assert f"unit:0:0:{lun}" in vols, vols
    assert p["id"] not in libvirt_secret_uuids()


def test_iscsi_pool_with_chap(nimbus, pools, iscsi_backend):  # noqa: F811
    chap = iscsi_backend["chap"]
    p = pools.create({"name": uniq("e2e-chap"), "type": "iscsi",
                      "portal": iscsi_backend["portal"], "target": chap["target"],
                      "initiator": initiator(), "user": chap["user"],
                      "key": chap["password"]})
    lv = f"nimbus-pool-{p['id']}"
    assert p["secret_set"] is True and "key" not in p
    assert local_state(p)["state"] == "active", p
    assert "unit:0:0:1" in nf.virsh("vol-list", lv).stdout
    assert f"iscsi {lv}" in nf.virsh("secret-list").stdout
    assert chap["password"] not in nf.virsh("pool-dumpxml", lv).stdout
    nimbus.api.ok("DELETE", f"/v1/pools/{p['id']}", expect=204)
    assert p["id"] not in libvirt_secret_uuids() and lv not in libvirt_pool_names()


# ---- netfs: no NFS client on this machine ----


def test_netfs_pool_is_stored_with_the_hosts_error(nimbus, pools):
    name = uniq("e2e-nfs")
    p = pools.create({"name": name, "type": "netfs", "server": "127.0.0.1",
                      "export": "/nimbus-e2e", "path": os.path.join(nimbus.daemon.pool_roots, name)})
    st = local_state(p)
    assert st["state"] == "error", st
    assert "mount" in st["error"].lower() or "nfs" in st["error"].lower(), st
    assert p["shared"] and nimbus.api.get(f"/v1/pools/{name}")["id"] == p["id"]


# ---- bad input ----


def test_bad_input_refused_nothing_made(nimbus, site):
    roots = nimbus.daemon.pool_roots
    rbd = {"type": "rbd", "monitors": ["127.0.0.1:6789"], "rbd_pool": "rbd", "user": "u",
           "key": "AQBXdm9lAAAAABAAe5Lx+ZHtJQnAm5cGu1fbHA=="}
    cases = [
        ({"type": "zfs"}, 400, "POOL_INVALID_TYPE"),
        ({"type": "dir", "path": "relative/dir"}, 400, "POOL_INVALID_PATH"),
        ({"type": "dir", "path": "/etc/nimbus-e2e"}, 400, "POOL_INVALID_PATH"),
        ({"type": "dir", "path": f"{roots}/a/../b"}, 400, "POOL_INVALID_PATH"),
        ({"type": "dir", "path": roots}, 400, "POOL_INVALID_PATH"),
        ({"type": "dir"}, 400, "INVALID_REQUEST"),
        (dict(rbd, monitors=["10.0.0.5:notaport"]), 400, "POOL_INVALID_MONITOR"),
        (dict(rbd, monitors=["two words"]), 400, "POOL_INVALID_MONITOR"),
        (dict(rbd, monitors=["10.0.0.5:70000"]), 400, "POOL_INVALID_MONITOR"),
        (dict(rbd, key="not base64 at all!"), 400, "POOL_INVALID_KEY"),
        (dict(rbd, key=None), 400, None),
        (dict(rbd, rbd_pool="bad/pool"), 400, "POOL_INVALID_SOURCE"),
        ({"type": "iscsi", "portal": "127.0.0.1:3260", "target": "not-an-iqn"}, 400,
         "POOL_INVALID_SOURCE"),
        ({"type": "dir", "path": f"{roots}/x", "monitors": ["127.0.0.1"]}, 400, None),
        ({"type": "dir", "path": f"{roots}/x", "host": "no-such-host"}, 404, "HOST_NOT_FOUND"),
        ({"type": "dir", "path": f"{roots}/x", "colour": "blue"}, 400, None),
    ]
    before_store = {p["id"] for p in nimbus.api.get("/v1/pools")["pools"]}
    before_libvirt = our_libvirt_pools(site)
    before_secrets = libvirt_secret_uuids()
    for i, (body, status, code) in enumerate(cases):
        body = {k: v for k, v in dict(body, name=f"e2e-bad-{i}").items() if v is not None}
        r = nimbus.api.request("POST", "/v1/pools", body)
        assert r.status == status, f"{body} -> {r.status}: {r.text}"
        if code:
            assert r.json["error"]["code"] == code, f"{body} -> {r.text}"
    r = nimbus.api.request("POST", "/v1/pools", raw=b"{not json")
    assert r.status == 400, r.text
    assert {p["id"] for p in nimbus.api.get("/v1/pools")["pools"]} == before_store
    assert our_libvirt_pools(site) == before_libvirt
    # no secret of ours appeared (another test's may have: only new ones named like ours count)
    new = libvirt_secret_uuids() - before_secrets
    assert not any(u in before_store for u in new)
    assert not os.path.exists(f"{roots}/x") and not os.path.exists(f"{roots}/b")
    # the CLI checks the type itself and never takes a key on the command line
    p = nimbus.cli.run("pool", "create", "e2e-bad-cli", "--type", "zfs", check=False)
    assert p.returncode == 2, p
    p = nimbus.cli.run("pool", "create", "e2e-bad-cli", "--type", "rbd", "--key", "x",
                       check=False)
    assert p.returncode == 2, p


def test_name_taken(nimbus, pools):
    name = uniq("e2e-twice")
    body = {"name": name, "type": "dir", "path": os.path.join(nimbus.daemon.pool_roots, name)}
    pools.create(body)
    r = nimbus.api.request("POST", "/v1/pools", dict(body, path=body["path"] + "-2"))
    assert r.status == 409 and r.json["error"]["code"] == "NAME_TAKEN", r.text


# ---- who may do what ----


def test_reader_and_member_read_but_do_not_write(nimbus, pools):
    admin = nimbus.api
    proj = uniq("e2e-poolproj")
    admin.ok("POST", "/v1/projects", {"name": proj}, expect=201)
    name = uniq("e2e-shared")
    p = pools.create({"name": name, "type": "dir",
                      "path": os.path.join(nimbus.daemon.pool_roots, name)})
    for role in ("member", "reader"):
        _, api, _ = nf.make_user(admin, uniq(f"e2e-pool-{role}"), "pw-" + secrets.token_hex(8),
                                 proj, role)
        listed = {q["name"] for q in api.ok("GET", "/v1/pools")["pools"]}
        assert {"default", name} <= listed
        got = api.ok("GET", f"/v1/pools/{name}")
        assert got["id"] == p["id"] and "hosts" in got
        r = api.request("POST", "/v1/pools",
                        {"name": uniq("e2e-nope"), "type": "dir",
                         "path": os.path.join(nimbus.daemon.pool_roots, "nope")})
        assert r.status == 403, r.text
        r = api.request("DELETE", f"/v1/pools/{p['id']}")
        assert r.status == 403, r.text
    assert not os.path.exists(os.path.join(nimbus.daemon.pool_roots, "nope"))
    assert nimbus.api.ok("GET", f"/v1/pools/{p['id']}")["id"] == p["id"]


# ---- the periodic check: strays ----


def _define_dir_pool(name, pool_uuid_, path):
    with tempfile.NamedTemporaryFile("w", suffix=".xml", delete=False) as f:
        f.write(f"<pool type='dir'><name>{name}</name><uuid>{pool_uuid_}</uuid>"
                f"<target><path>{path}</path></target></pool>")
    try:
        nf.virsh("pool-define", f.name)
    finally:
        os.unlink(f.name)


def _define_ceph_secret(secret_uuid, usage):
    with tempfile.NamedTemporaryFile("w", suffix=".xml", delete=False) as f:
        f.write(f"<secret ephemeral='no' private='yes'><uuid>{secret_uuid}</uuid>"
                f"<usage type='ceph'><name>{usage}</name></usage></secret>")
    try:
        nf.virsh("secret-define", f.name)
    finally:
        os.unlink(f.name)


def test_stray_pools_of_this_site_are_removed_others_kept(nimbus, site):
    """What a daemon killed between a pool's row and its hosts leaves (or a host that was down
    during a delete): a libvirt pool named like ours, with this site's UUID for its id, and its
    secret. The check removes those; another controller's pool (same name pattern, another
    UUID) and names that are not exactly nimbus-pool-<uuid> stay."""
    roots = nimbus.daemon.pool_roots
    stray_id, foreign_id = str(uuid.uuid4()), str(uuid.uuid4())
    stray, foreign = f"nimbus-pool-{stray_id}", f"nimbus-pool-{foreign_id}"
    odd = f"nimbus-pool-{stray_id}-x"
    made = []
    try:
        # the ones to keep first: the round that sees the stray has looked at them too
        _define_dir_pool(foreign, str(uuid.uuid4()), f"{roots}/foreign")
        made.append(foreign)
        _define_dir_pool(odd, site_uuid(site, stray_id + "-x"), f"{roots}/odd")
        made.append(odd)
        _define_dir_pool(stray, site_uuid(site, stray_id), f"{roots}/stray")
        made.append(stray)
        _define_ceph_secret(stray_id, stray)
        nf.wait_until(lambda: stray not in libvirt_pool_names(), HK_TIMEOUT,
                      "the stray pool of this site to be removed")
        assert stray_id not in libvirt_secret_uuids(), "the stray pool's secret was left"
        names = libvirt_pool_names()
        assert foreign in names and odd in names, names
    finally:
        for name in made:
            nf.virsh("pool-destroy", name, check=False)
            nf.virsh("pool-undefine", name, check=False)
        nf.virsh("secret-undefine", stray_id, check=False)


# ---- a restart: the store's definition wins ----


def test_restart_redefines_a_pool_changed_behind_nimbus(make_env):
    """A host's pools are checked in full when it connects (here: nimbusd starting again): a
    pool whose definition an operator changed is redefined as the store has it, and one that
    was undefined meanwhile is made again. Own daemon: the shared one is not restarted."""
    env = make_env("pools-restart")
    env.daemon.start()
    roots = env.daemon.pool_roots
    ids = []
    try:
        a = env.api.ok("POST", "/v1/pools", {"name": "changed", "type": "dir",
                                             "path": f"{roots}/changed"}, expect=201)
        b = env.api.ok("POST", "/v1/pools", {"name": "gone", "type": "dir",
                                             "path": f"{roots}/gone"}, expect=201)
        c = env.api.ok("POST", "/v1/pools", {"name": "same", "type": "dir",
                                             "path": f"{roots}/same"}, expect=201)
        ids += [a["id"], b["id"], c["id"]]
        lc = f"nimbus-pool-{c['id']}"
        la, lb = f"nimbus-pool-{a['id']}", f"nimbus-pool-{b['id']}"
        assert pool_active(la) and pool_active(lb)
        env.daemon.stop()
        # behind Nimbus's back: a's target moved, b undefined
        xml = nf.virsh("pool-dumpxml", "--inactive", la).stdout
        assert f"{roots}/changed" in xml
        nf.virsh("pool-destroy", la)
        with tempfile.NamedTemporaryFile("w", suffix=".xml", delete=False) as f:
            f.write(xml.replace(f"{roots}/changed", f"{roots}/elsewhere"))
        try:
            nf.virsh("pool-define", f.name)
        finally:
            os.unlink(f.name)
        assert f"{roots}/elsewhere" in nf.virsh("pool-dumpxml", "--inactive", la).stdout
        nf.virsh("pool-destroy", lb)
        nf.virsh("pool-undefine", lb)
        with open(env.daemon.log_path, "rb") as f:
            log_offset = len(f.read())
        env.daemon.start()
        got = {p["name"]: p for p in env.api.get("/v1/pools")["pools"]}
        assert local_state(got["changed"])["state"] == "active", got["changed"]
        assert local_state(got["gone"])["state"] == "active", got["gone"]
        assert f"{roots}/changed" in nf.virsh("pool-dumpxml", "--inactive", la).stdout
        assert pool_active(la) and pool_active(lb) and pool_active(lc)
        # the pool nobody touched (active all along, its figures in libvirt's XML) is the same
        # definition: not redefined, not restarted
        with open(env.daemon.log_path, "rb") as f:
            log = f.read()[log_offset:].decode(errors="replace")
        redefined = [ln for ln in log.splitlines() if "definition differed" in ln]
        assert any(la in ln for ln in redefined), redefined
        assert not any(lc in ln for ln in redefined), redefined
    finally:
        for pid in ids:
            if env.daemon.alive():
                env.api.request("DELETE", f"/v1/pools/{pid}")
            nf.virsh("pool-destroy", f"nimbus-pool-{pid}", check=False)
            nf.virsh("pool-undefine", f"nimbus-pool-{pid}", check=False)
        env.teardown()


# ---- a host that connects gets its pools ----


def test_host_that_connects_gets_its_pools(make_env):
    """A host added later (libvirt's test driver: a simulated host) gets the pools it should
    have as soon as it connects (the host-up hook: the periodic round is minutes away with this
    sync interval), and not a local pool of another host. Own daemon: the shared one must not
    get a host that VMs could be placed on."""
    env = make_env("pools-hostup")
    env.daemon.extra_args += ["--sync-interval", "60"]
    env.daemon.start()
    roots = env.daemon.pool_roots
    ids = []
    try:
        every = env.api.ok("POST", "/v1/pools", {"name": "every", "type": "dir",
                                                 "path": f"{roots}/every"}, expect=201)
        only = env.api.ok("POST", "/v1/pools", {"name": "only-local", "type": "dir",
                                                "path": f"{roots}/only", "host": "local"},
                          expect=201)
        ids += [every["id"], only["id"]]
        assert only["host"] == "local"
        env.api.ok("POST", "/v1/hosts", {"name": "sim1", "uri": "test:///default"}, expect=201)

        def states(name):
            return {h["host"]: h["state"] for h in env.api.get(f"/v1/pools/{name}")["hosts"]}
        nf.wait_until(lambda: states("every").get("sim1") == "active", 30,
                      "pool 'every' active on the new host")
        nf.wait_until(lambda: states("default").get("sim1") == "active", 30,
                      "the default pool recorded on the new host")
        assert states("every").get("local") == "active"
        assert states("only-local") == {"local": "active"}
    finally:
        for pid in ids:
            env.api.request("DELETE", f"/v1/pools/{pid}")
            nf.virsh("pool-destroy", f"nimbus-pool-{pid}", check=False)
            nf.virsh("pool-undefine", f"nimbus-pool-{pid}", check=False)
        env.teardown()


def test_restart_keeps_unchanged_pools_running(make_env, ceph_backend, iscsi_backend):  # noqa: F811
    """The full check at start compares each pool's definition with the store's: for pools that
    nobody changed (active, with what libvirt adds to a running pool's XML: figures, a
    directory's owner and mode, a session) it finds no difference and restarts nothing."""
    env = make_env("pools-same")
    env.daemon.start()
    cb, ib = ceph_backend, iscsi_backend
    bodies = [
        {"name": "d", "type": "dir", "path": f"{env.daemon.pool_roots}/d"},
        {"name": "r", "type": "rbd", "monitors": cb["monitors"], "rbd_pool": cb["rbd_pool"],
         "user": cb["user"], "key": cb["key"]},
        {"name": "i", "type": "iscsi", "portal": ib["portal"], "target": ib["target"],
         "initiator": initiator()},
    ]
    ids = []
    try:
        for b in bodies:
            p = env.api.ok("POST", "/v1/pools", b, expect=201)
            ids.append(p["id"])
            assert local_state(p)["state"] == "active", p
        env.daemon.stop()
        with open(env.daemon.log_path, "rb") as f:
            log_offset = len(f.read())
        env.daemon.start()
        for pid in ids:
            assert local_state(env.api.get(f"/v1/pools/{pid}"))["state"] == "active"
            assert pool_active(f"nimbus-pool-{pid}")
        with open(env.daemon.log_path, "rb") as f:
            log = f.read()[log_offset:].decode(errors="replace")
        assert "definition differed" not in log, [ln for ln in log.splitlines()
                                                  if "differed" in ln]
        assert "defined storage pool" not in log
    finally:
        for pid in ids:
            if env.daemon.alive():
                env.api.request("DELETE", f"/v1/pools/{pid}")
            nf.virsh("pool-destroy", f"nimbus-pool-{pid}", check=False)
            nf.virsh("pool-undefine", f"nimbus-pool-{pid}", check=False)
            nf.virsh("secret-undefine", pid, check=False)
        env.teardown()
