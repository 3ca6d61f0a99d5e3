"""Project quotas (docs/security.md, docs/api/openapi.yaml): checked and reserved atomically with the insert,
so 50 concurrent creates never pass a limit; in-use figures match the real rows; deleting gives
quota back; a create refused for another reason reserves nothing. Own nimbusd."""

import secrets
import threading

import pytest

import nimbus_fixtures as nf


class Q:
    pass


@pytest.fixture(scope="module")
def qenv(make_env, tiny_image):
    env = make_env("quota")
    env.daemon.start()
    # room on this (2-CPU) host for every VM the quotas below let through: the quota, not the
    # host's capacity, must be what refuses
    env.api.ok("PUT", "/v1/hosts/local", {"cpu_ratio": 32})
    q = Q()
    q.env, q.admin = env, env.api
    q.tiny_image = tiny_image
    q.f64 = q.admin.ok("POST", "/v1/flavors",
                       {"name": "q-64", "vcpus": 1, "ram_mib": 64, "disk_gib": 1}, expect=201)
    yield q
    # delete every VM through the API first (waiting), the purge catches the rest
    try:
        for v in q.admin.vms():
            env.remember(v["id"])
            if v["task_id"]:
                q.admin.wait_task(v["task_id"], expect=None)
            q.admin.delete_vm(v["id"])
    except Exception as e:  # noqa: BLE001 - env.teardown purges what is left
        print(f"quota teardown: {e}")
    env.teardown()


def project_with_user(q, name, quota):
    p = q.admin.ok("POST", "/v1/projects", {"name": name, "quota": quota}, expect=201)
    for k, v in quota.items():
        assert p["quota"][k] == v, f"project quota as created: {p}"
    pw = "pw-" + secrets.token_hex(10)
    _, api, _ = nf.make_user(q.admin, f"{name}-member", pw, name, "member")
    return p, api


def quota_of(api, p):
    return api.get(f"/v1/projects/{p['id']}/quota")


def assert_in_use_matches(api, p, images):
    vms = api.vms()
    qu = quota_of(api, p)
    # Each VM has one NIC on its project's default network (made with the first VM).
    nets = [n for n in api.get("/v1/networks")["networks"] if n["project"] == p["id"]]
    real = {"vms": len(vms), "vcpus": sum(v["vcpus"] for v in vms),
            "ram_mib": sum(v["ram_mib"] for v in vms),
            "disk_gib": sum(v["disk_gib"] for v in vms), "images": images,
            "networks": len(nets), "ports": len(vms),
            # the project's default security group, made with its first VM
            "secgroups": len(api.get("/v1/secgroups")["secgroups"])}
    seen = {k: qu["in_use"].get(k) for k in real}
    assert seen == real, f"in_use {qu['in_use']} but the project really has {real}"
    return qu


def test_concurrent_creates_never_pass_vms_quota(qenv):
    q = qenv
    p, api = project_with_user(q, "race", {"vms": 10, "vcpus": 1000, "ram_mib": 1000000,
                                           "disk_gib": 10000, "images": 10})
    img = nf.upload_image_as(api, q.env, "race-img", q.tiny_image)
    n = 50
    barrier = threading.Barrier(n)
    results = [None] * n

    def worker(i):
        barrier.wait()
        try:
            results[i] = api.request("POST", "/v1/vms", {"name": f"race-{i:02d}",
                                                         "image": img["id"], "flavor": "q-64"},
                                     timeout=120)
        except AssertionError as e:
            results[i] = e

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(180)
    ok = [r for r in results if isinstance(r, nf.Resp) and r.status == 202]
    for r in ok:
        q.env.remember(r.json["vm"]["id"])
    refused = [r for r in results if isinstance(r, nf.Resp)
               and (r.status, r.code) == (403, "QUOTA_EXCEEDED")]
    other = [r for r in results if r not in ok and r not in refused]
    assert not other, f"{len(other)} creates neither accepted nor QUOTA_EXCEEDED: {other[:5]}"
    assert len(ok) == 10, f"{len(ok)} creates accepted with a quota of 10 VMs"
    assert len(refused) == 40
    msg = refused[0].json["error"]["message"]
    assert "vms" in msg, f"QUOTA_EXCEEDED message names no resource: {msg}"

    vms = api.vms()
    assert len(vms) == 10, f"the project has {len(vms)} VMs: {[v['name'] for v in vms]}"
    assert {v["id"] for v in vms} == {r.json["vm"]["id"] for r in ok}
    qu = assert_in_use_matches(api, p, images=1)
    assert qu["in_use"]["vms"] == 10 and qu["limits"]["vms"] == 10, qu
    nf.wait_tasks(api, [r.json["task"]["id"] for r in ok], timeout=240, expect=None)
    assert_in_use_matches(api, p, images=1)
    # one more is refused now, whatever the state of the others
    r = api.request("POST", "/v1/vms", {"name": "race-extra", "image": img["id"],
                                        "flavor": "q-64"})
    assert (r.status, r.code) == (403, "QUOTA_EXCEEDED"), r
    assert len(api.vms()) == 10

    # delete them all: in-use back to 0 (the image stays)
    tasks = [api.ok("DELETE", f"/v1/vms/{v['id']}", expect=202)["task"]["id"] for v in vms]
    nf.wait_tasks(api, tasks, timeout=240)
    qu = assert_in_use_matches(api, p, images=1)
    # The project's default network and default security group stay with the project.
    assert qu["in_use"] == {"vms": 0, "vcpus": 0, "ram_mib": 0, "disk_gib": 0, "images": 1,
                            "networks": 1, "ports": 0, "secgroups": 1, "volumes": 0,
                            "volume_gib": 0, "snapshots": 0, "backups": 0}, qu
    for v in vms:
        assert nf.domstate(nf.vm_domain(v["id"])) is None, f"domain of {v['name']} left"


def test_vcpus_ram_disk_images_quota(qenv):
    q = qenv
    p, api = project_with_user(q, "tight", {"vcpus": 1, "ram_mib": 64, "disk_gib": 1,
                                            "images": 1})
    assert p["quota"]["vms"] is None, p
    img = nf.upload_image_as(api, q.env, "tight-img", q.tiny_image)
    for name, vcpus, ram, disk, word in (("q-2cpu", 2, 64, 1, "vcpus"),
                                         ("q-128m", 1, 128, 1, "ram"),
                                         ("q-2g", 1, 64, 2, "disk")):
        q.admin.ok("POST", "/v1/flavors", {"name": name, "vcpus": vcpus, "ram_mib": ram,
                                           "disk_gib": disk}, expect=201)
        r = api.request("POST", "/v1/vms", {"name": f"t-{name}", "image": img["id"],
                                            "flavor": name})
        assert (r.status, r.code) == (403, "QUOTA_EXCEEDED"), f"flavor {name}: {r!r}"
        assert word in r.json["error"]["message"], r.json
    r = api.request("POST", "/v1/images", {"name": "tight-img2"})
    assert (r.status, r.code) == (403, "QUOTA_EXCEEDED"), r
    assert "images" in r.json["error"]["message"], r.json
    assert [i["name"] for i in api.images()] == ["tight-img"]
    assert api.vms() == []
    assert_in_use_matches(api, p, images=1)
    # raising the quota (admin) lets the image through; lowering below use refuses new ones
    q.admin.ok("PUT", f"/v1/projects/{p['id']}/quota",
               {"vcpus": 1, "ram_mib": 64, "disk_gib": 1, "images": 2}, expect=200)
    i2 = api.ok("POST", "/v1/images", {"name": "tight-img2"}, expect=201)
    q.env.remember(i2["id"])
    assert quota_of(api, p)["in_use"]["images"] == 2
    q.admin.ok("PUT", f"/v1/projects/{p['id']}/quota", {"images": 0}, expect=200)
    r = api.request("POST", "/v1/images", {"name": "tight-img3"})
    assert (r.status, r.code) == (403, "QUOTA_EXCEEDED"), r
    api.ok("DELETE", f"/v1/images/{i2['id']}", expect=204)
    assert quota_of(api, p)["in_use"]["images"] == 1
    # quota 0 for VMs refuses even the smallest
    q.admin.ok("PUT", f"/v1/projects/{p['id']}/quota", {"vms": 0}, expect=200)
    r = api.request("POST", "/v1/vms", {"name": "t-zero", "image": img["id"], "flavor": "q-64"})
    assert (r.status, r.code) == (403, "QUOTA_EXCEEDED"), r
    assert api.vms() == []


def test_failed_create_does_not_leak_quota(qenv):
    q = qenv
    p, api = project_with_user(q, "leak", {"vms": 1, "vcpus": 1, "ram_mib": 64, "disk_gib": 1,
                                           "images": 5})
    img = nf.upload_image_as(api, q.env, "leak-img", q.tiny_image)
    bad = [
        ({"name": "l1", "image": img["id"], "flavor": "no-such-flavor"}, 404, "FLAVOR_NOT_FOUND"),
        ({"name": "l2", "image": "no-such-image", "flavor": "q-64"}, 404, "IMAGE_NOT_FOUND"),
        ({"name": "bad name!", "image": img["id"], "flavor": "q-64"}, 400, "INVALID_NAME"),
        ({"name": "l3", "image": img["id"], "flavor": "q-64", "user_data": "x" * 70000}, 413,
         "USER_DATA_TOO_LARGE"),
        ({"name": "l4", "image": img["id"], "flavor": "q-64", "hostname": "-bad-"}, 400,
         "INVALID_HOSTNAME"),
        ({"name": "l5", "image": img["id"], "flavor": "q-64", "bogus": 1}, 400,
         "INVALID_REQUEST"),
    ]
    queued = api.ok("POST", "/v1/images", {"name": "leak-queued"}, expect=201)
    q.env.remember(queued["id"])
    bad.append(({"name": "l6", "image": queued["id"], "flavor": "q-64"}, 409, "IMAGE_NOT_ACTIVE"))
    for body, status, code in bad:
        r = api.request("POST", "/v1/vms", body)
        assert (r.status, r.code) == (status, code), f"{body}: {r!r}"
        qu = quota_of(api, p)["in_use"]
        want = {"vms": 0, "vcpus": 0, "ram_mib": 0, "disk_gib": 0, "images": 2, "ports": 0}
        assert {k: qu.get(k) for k in want} == want, \
            f"after a refused create ({code}) in_use is {qu}"
    # image creates that fail (bad name, duplicate) do not count either
    for body, status in (({"name": "bad name!"}, 400), ({"name": "leak-img"}, 409)):
        r = api.request("POST", "/v1/images", body)
        assert r.status == status, r
    assert quota_of(api, p)["in_use"]["images"] == 2
    # the one VM the quota allows still goes through, and its delete gives the quota back
    r = api.create_vm("leak-ok", img["id"], "q-64")
    q.env.remember(r["vm"]["id"])
    assert_in_use_matches(api, p, images=2)
    r2 = api.request("POST", "/v1/vms", {"name": "leak-ok", "image": img["id"], "flavor": "q-64"})
    assert r2.status in (403, 409), r2  # quota or NAME_TAKEN, either way nothing more
    api.delete_vm("leak-ok")
    assert quota_of(api, p)["in_use"]["vms"] == 0
