"""Tenancy (docs/security.md, docs/api/openapi.yaml): projects keep each other's resources invisible, roles
limit what a user may do in its own project, every mutating call is audited, usage is metered
and survives a restart. One private nimbusd for the module (the usage test restarts it)."""

import json
import math
import os
import secrets
import signal
import subprocess
import time
import urllib.parse
import xml.etree.ElementTree as ET

import pytest

import nimbus_fixtures as nf

USER_DATA_MARKER = "ud-secret-" + secrets.token_hex(8)
NO_SUCH_ID = "0badc0de-0000-4000-8000-000000000000"


class T:
    """Everything the module's tests share."""


@pytest.fixture(scope="module")
def ten(make_env, tiny_image):
    env = make_env("tenancy")
    env.daemon.start()
    t = T()
    t.env, t.admin, t.daemon = env, env.api, env.daemon
    t.passwords = {}
    t.pa = t.admin.ok("POST", "/v1/projects", {"name": "proj-a"}, expect=201)
    t.pb = t.admin.ok("POST", "/v1/projects", {"name": "proj-b"}, expect=201)
    t.flavor = t.admin.ok("POST", "/v1/flavors",
                          {"name": "t-small", "vcpus": 1, "ram_mib": 128, "disk_gib": 1},
                          expect=201)
    t.users, t.apis, t.logins = {}, {}, {}
    for name, proj, role in (("a-member", "proj-a", "member"), ("b-member", "proj-b", "member"),
                             ("a-reader", "proj-a", "reader")):
        pw = "pw-" + secrets.token_hex(10)
        t.passwords[name] = pw
        t.users[name], t.apis[name], t.logins[name] = nf.make_user(t.admin, name, pw, proj, role)
    t.am, t.bm, t.ar = t.apis["a-member"], t.apis["b-member"], t.apis["a-reader"]

    # A's resources, made by a-member
    t.img = nf.upload_image_as(t.am, env, "img-a", tiny_image)
    r = t.am.create_vm("vm-a", "img-a", "t-small",
                       user_data=f"#!/bin/sh\necho {USER_DATA_MARKER}\n")
    t.vm = r["vm"]
    env.remember(t.vm["id"])
    t.vm = t.am.wait_vm_state(t.vm["id"], "running")
    t.task_id = r["task"]["id"]
    t.dom = nf.vm_domain(t.vm["id"])
    # one thing in B, so that admin lists have rows of both projects
    t.img_b = t.bm.ok("POST", "/v1/images", {"name": "img-b"}, expect=201)
    env.remember(t.img_b["id"])
    yield t
    env.teardown()


def a_state(t):
    """What must not change when someone is refused: A's VM, image, tasks, domain, project."""
    vm = t.admin.get(f"/v1/vms/{t.vm['id']}")
    img = t.admin.get(f"/v1/images/{t.img['id']}")
    proj = t.admin.get(f"/v1/projects/{t.pa['id']}")
    return {
        "vm": {k: vm[k] for k in ("name", "state", "desired_state", "task_id", "vcpus")},
        "image": {k: img[k] for k in ("name", "state", "size_bytes")},
        "tasks": len(t.admin.get(f"/v1/tasks?vm={t.vm['id']}")["tasks"]),
        "domstate": nf.domstate(t.dom),
        "project": proj,
        "vm_ids": sorted(v["id"] for v in t.admin.vms()),
        "image_ids": sorted(i["id"] for i in t.admin.images()),
        "flavor_ids": sorted(f["id"] for f in t.admin.flavors()),
        "project_ids": sorted(p["id"] for p in t.admin.get("/v1/projects")["projects"]),
        "user_ids": sorted(u["id"] for u in t.admin.get("/v1/users")["users"]),
    }


def q(s):
    return urllib.parse.quote(s, safe="")


# ---------------------------------------------------------------------------------------------
# 1. another project's member sees nothing of A


def test_lists_show_nothing_of_other_project(ten):
    t = ten
    a_ids = {t.vm["id"], t.img["id"], t.task_id, t.pa["id"]}
    a_names = {"vm-a", "img-a", "proj-a"}

    def assert_nothing_of_a(rows, what):
        for row in rows:
            blob = json.dumps(row)
            leaked = [x for x in a_ids | a_names if x in blob]
            assert not leaked, f"b-member's {what} shows A's {leaked}: {row}"

    assert_nothing_of_a(t.bm.vms(), "VM list")
    assert_nothing_of_a(t.bm.images(), "image list")
    assert_nothing_of_a(t.bm.get("/v1/tasks")["tasks"], "task list")
    projects = t.bm.get("/v1/projects")["projects"]
    assert [p["id"] for p in projects] == [t.pb["id"]], f"b-member's project list: {projects}"
    events = nf.audit_events(t.bm, limit=1000)
    assert events, "b-member's project has audited events (img-b was created)"
    assert all(e["project_id"] == t.pb["id"] for e in events), \
        f"b-member's audit shows other projects: {[e for e in events if e['project_id'] != t.pb['id']]}"
    assert_nothing_of_a(events, "audit list")
    # and the other way round
    assert t.img_b["id"] not in {i["id"] for i in t.am.images()}, "a-member sees B's image"

    # admin sees rows of both projects
    assert {t.img["id"], t.img_b["id"]} <= {i["id"] for i in t.admin.images()}
    assert t.vm["id"] in {v["id"] for v in t.admin.vms()}
    assert t.task_id in {x["id"] for x in t.admin.get("/v1/tasks")["tasks"]}
    pids = {p["id"] for p in t.admin.get("/v1/projects")["projects"]}
    assert {t.pa["id"], t.pb["id"]} <= pids, pids
    assert "default" in {p["name"] for p in t.admin.get("/v1/projects")["projects"]}
    ev_projects = {e["project_id"] for e in nf.audit_events(t.admin, limit=1000)}
    assert {t.pa["id"], t.pb["id"]} <= ev_projects, f"admin's audit projects: {ev_projects}"
    assert {e["project_id"] for e in nf.audit_events(t.admin, project=t.pa["id"])} == \
        {t.pa["id"]}, "admin's audit?project=A shows other projects"


def test_other_project_gets_not_found_by_id_and_name(ten):
    t = ten
    before = a_state(t)
    assert before["domstate"] == "running" and before["vm"]["state"] == "running", before

    probes = []  # (method, path, body/raw, expected code)
    for vm in (t.vm["id"], "vm-a"):
        v = q(vm)
        probes += [("GET", f"/v1/vms/{v}", None, "VM_NOT_FOUND"),
                   ("GET", f"/v1/vms/{v}/console-log", None, "VM_NOT_FOUND"),
                   ("DELETE", f"/v1/vms/{v}", None, "VM_NOT_FOUND")]
        for action in ("start", "stop", "reboot", "pause", "resume"):
            probes.append(("POST", f"/v1/vms/{v}/{action}", None, "VM_NOT_FOUND"))
        probes.append(("POST", f"/v1/vms/{v}/stop", {"force": True}, "VM_NOT_FOUND"))
    for img in (t.img["id"], "img-a"):
        i = q(img)
        probes += [("GET", f"/v1/images/{i}", None, "IMAGE_NOT_FOUND"),
                   ("PUT", f"/v1/images/{i}/file", b"\0" * 4096, "IMAGE_NOT_FOUND"),
                   ("DELETE", f"/v1/images/{i}", None, "IMAGE_NOT_FOUND"),
                   ("POST", "/v1/vms", {"name": "b-steal", "image": img, "flavor": "t-small"},
                    "IMAGE_NOT_FOUND")]
    probes.append(("GET", f"/v1/tasks/{t.task_id}", None, "TASK_NOT_FOUND"))
    for p in (t.pa["id"], "proj-a"):
        probes += [("GET", f"/v1/projects/{p}", None, "PROJECT_NOT_FOUND"),
                   ("GET", f"/v1/projects/{p}/quota", None, "PROJECT_NOT_FOUND"),
                   ("GET", f"/v1/projects/{p}/usage", None, "PROJECT_NOT_FOUND"),
                   ("GET", f"/v1/audit?project={q(p)}", None, "PROJECT_NOT_FOUND")]

    failures = []
    for method, path, body, code in probes:
        kw = {}
        if isinstance(body, bytes):
            kw = {"raw": body, "content_type": "application/octet-stream"}
        elif body is not None:
            kw = {"body": body}
        r = t.bm.request(method, path, **kw)
        if (r.status, r.code) != (404, code):
            failures.append(f"{method} {path} as b-member -> {r.status} {r.text[:200]}, "
                            f"expected 404 {code}")
        if r.status in (200, 201, 202, 204):
            for k in ("vm", "task"):
                if r.body and isinstance(r.json, dict) and isinstance(r.json.get(k), dict):
                    t.env.remember(r.json[k].get("id"))
        now = a_state(t)
        if now != before:
            failures.append(f"after {method} {path} as b-member, A changed:\n  before {before}\n"
                            f"  after  {now}")
            before = now
    # the same answers as for things that do not exist at all
    for method, path, code in (("GET", f"/v1/vms/{NO_SUCH_ID}", "VM_NOT_FOUND"),
                               ("GET", "/v1/images/no-such-image", "IMAGE_NOT_FOUND"),
                               ("GET", f"/v1/tasks/{NO_SUCH_ID}", "TASK_NOT_FOUND"),
                               ("GET", "/v1/projects/no-such-project", "PROJECT_NOT_FOUND")):
        r = t.bm.request(method, path)
        if (r.status, r.code) != (404, code):
            failures.append(f"{method} {path} (does not exist) -> {r!r}")

    # tasks?vm=: by name like an unknown name; by id like an id that never existed; no A rows
    r_name, r_none = (t.bm.request("GET", "/v1/tasks?vm=vm-a"),
                      t.bm.request("GET", "/v1/tasks?vm=no-such-vm"))
    if (r_name.status, r_name.code) != (404, "VM_NOT_FOUND") or \
            (r_none.status, r_none.code) != (404, "VM_NOT_FOUND"):
        failures.append(f"tasks?vm=vm-a -> {r_name!r}; tasks?vm=no-such-vm -> {r_none!r}")
    r_id, r_nid = (t.bm.request("GET", f"/v1/tasks?vm={t.vm['id']}"),
                   t.bm.request("GET", f"/v1/tasks?vm={NO_SUCH_ID}"))
    if (r_id.status, r_id.code) != (r_nid.status, r_nid.code) or r_id.status not in (200, 404):
        failures.append(f"tasks?vm=<A's id> -> {r_id!r}, tasks?vm=<unknown id> -> {r_nid!r}")
    if r_id.status == 200 and r_id.json["tasks"]:
        failures.append(f"tasks?vm=<A's id> as b-member lists A's tasks: {r_id.json}")

    assert not failures, "\n".join(failures)
    after = a_state(t)
    assert after["domstate"] == "running", after
    assert after["vm"]["state"] == "running" and after["vm"]["task_id"] is None, after


def test_same_names_stay_in_their_project(ten):
    """Names are unique per project: B may have its own 'img-a', and by-name calls of each
    member reach their own project's row only."""
    t = ten
    before = a_state(t)
    ib = t.bm.ok("POST", "/v1/images", {"name": "img-a"}, expect=201)
    t.env.remember(ib["id"])
    assert ib["id"] != t.img["id"]
    assert t.bm.get("/v1/images/img-a")["id"] == ib["id"]
    assert t.am.get("/v1/images/img-a")["id"] == t.img["id"]
    r = t.bm.request("POST", "/v1/vms", {"name": "vm-x", "image": "img-a", "flavor": "t-small"})
    assert (r.status, r.code) == (409, "IMAGE_NOT_ACTIVE"), f"B's queued img-a: {r!r}"
    t.bm.ok("DELETE", "/v1/images/img-a", expect=204)
    assert t.bm.request("GET", f"/v1/images/{ib['id']}").status == 404
    after = a_state(t)
    assert after == before, f"b-member's same-named image changed A:\n{before}\n{after}"


def test_admin_by_name_prefers_own_project(ten):
    """An admin whose own project has an image 'img-a' must get that one by name (or an
    ambiguity error), never another project's: otherwise `nimbus image delete img-a` as admin
    deletes a tenant's image."""
    t = ten
    mine = t.admin.ok("POST", "/v1/images", {"name": "img-a"}, expect=201)
    t.env.remember(mine["id"])
    try:
        r = t.admin.request("GET", "/v1/images/img-a")
        assert r.status in (200, 400, 409), r
        if r.status == 200:
            assert r.json["id"] == mine["id"], \
                f"admin's GET /v1/images/img-a gave project {r.json.get('project_id')}'s image " \
                f"{r.json['id']}, not its own {mine['id']} (project default)"
    finally:
        t.admin.ok("DELETE", f"/v1/images/{mine['id']}", expect=204)
    assert t.admin.get(f"/v1/images/{t.img['id']}")["state"] == "active"


# ---------------------------------------------------------------------------------------------
# 2. roles inside one's own project


def test_reader_may_only_read(ten, tiny_image):
    t = ten
    queued = t.am.ok("POST", "/v1/images", {"name": "img-a-queued"}, expect=201)
    t.env.remember(queued["id"])
    vm = q("vm-a")
    reads = ["/v1/vms", f"/v1/vms/{vm}", f"/v1/vms/{t.vm['id']}", f"/v1/vms/{vm}/console-log",
             "/v1/images", "/v1/images/img-a", f"/v1/images/{t.img['id']}", "/v1/flavors",
             "/v1/flavors/t-small", "/v1/tasks", f"/v1/tasks/{t.task_id}",
             f"/v1/tasks?vm={t.vm['id']}", "/v1/projects", f"/v1/projects/{t.pa['id']}",
             "/v1/projects/proj-a", f"/v1/projects/{t.pa['id']}/quota",
             f"/v1/projects/{t.pa['id']}/usage", "/v1/audit", "/v1/auth/whoami", "/v1/tokens"]
    failures = []
    for path in reads:
        r = t.ar.request("GET", path)
        if r.status != 200:
            failures.append(f"GET {path} as a-reader -> {r!r}")
    r = t.ar.request("GET", f"/v1/tasks?vm={t.vm['id']}")
    if r.status == 200 and not r.json["tasks"]:
        failures.append("a-reader sees no tasks of its project's VM")

    with open(tiny_image, "rb") as f:
        data = f.read(65536)  # a refusal must come before the data matters
    mutations = [
        ("POST", "/v1/vms", {"name": "r-vm", "image": "img-a", "flavor": "t-small"}),
        ("POST", "/v1/images", {"name": "r-img"}),
        ("POST", "/v1/flavors", {"name": "r-flv", "vcpus": 1, "ram_mib": 64, "disk_gib": 1}),
        ("PUT", "/v1/images/img-a-queued/file", data),
        ("PUT", f"/v1/images/{queued['id']}/file", data),
        *[("POST", f"/v1/vms/{vm}/{a}", None) for a in ("start", "stop", "reboot", "pause",
                                                          "resume")],
        ("POST", f"/v1/vms/{t.vm['id']}/stop", {"force": True}),
        ("DELETE", f"/v1/vms/{vm}", None),
        ("DELETE", f"/v1/vms/{t.vm['id']}", None),
        ("DELETE", "/v1/images/img-a-queued", None),
        ("DELETE", "/v1/images/img-a", None),
        ("DELETE", "/v1/flavors/t-small", None),
        ("POST", "/v1/projects", {"name": "r-proj"}),
        ("PUT", f"/v1/projects/{t.pa['id']}/quota", {"vms": 100}),
        ("DELETE", f"/v1/projects/{t.pa['id']}", None),
        ("POST", "/v1/users", {"name": "r-user", "password": "r-password-1", "project": "proj-a",
                               "role": "admin"}),
        ("DELETE", f"/v1/users/{t.users['a-member']['id']}", None),
    ]
    before = a_state(t)
    before_q = t.admin.get(f"/v1/images/{queued['id']}")
    for method, path, body in mutations:
        kw = {}
        if isinstance(body, bytes):
            kw = {"raw": body, "content_type": "application/octet-stream"}
        elif body is not None:
            kw = {"body": body}
        r = t.ar.request(method, path, **kw)
        if (r.status, r.code) != (403, "FORBIDDEN"):
            failures.append(f"{method} {path} as a-reader -> {r.status} {r.text[:200]}, "
                            "expected 403 FORBIDDEN")
            if r.status in (201, 202) and r.body:
                j = r.json
                t.env.remember(j.get("id"), (j.get("vm") or {}).get("id"))
        now = a_state(t)
        q_now = t.admin.get(f"/v1/images/{queued['id']}")
        if now != before or q_now["state"] != before_q["state"]:
            failures.append(f"after {method} {path} as a-reader, things changed:\n"
                            f"  before {before} {before_q['state']}\n  after  {now} "
                            f"{q_now['state']}")
            before = now
    # token self-service is allowed to readers
    tok = t.ar.request("POST", "/v1/tokens", {"name": "reader-own"})
    if tok.status != 201:
        failures.append(f"a-reader POST /v1/tokens -> {tok!r}")
    else:
        r = t.ar.request("DELETE", f"/v1/tokens/{tok.json['id']}")
        if r.status != 204:
            failures.append(f"a-reader revoking its own token -> {r!r}")
    assert not failures, "\n".join(failures)
    t.am.ok("DELETE", f"/v1/images/{queued['id']}", expect=204)


def test_member_refused_admin_endpoints(ten):
    t = ten
    b_token_id = t.logins["b-member"]["id"]
    calls = [
        ("POST", "/v1/flavors", {"name": "m-flv", "vcpus": 1, "ram_mib": 64, "disk_gib": 1}),
        ("DELETE", "/v1/flavors/t-small", None),
        ("DELETE", f"/v1/flavors/{t.flavor['id']}", None),
        ("POST", "/v1/projects", {"name": "m-proj"}),
        ("PUT", f"/v1/projects/{t.pa['id']}/quota", {"vms": 1000}),
        ("PUT", "/v1/projects/proj-a/quota", {"vcpus": None}),
        ("DELETE", f"/v1/projects/{t.pa['id']}", None),
        ("GET", "/v1/users", None),
        ("GET", f"/v1/users/{t.users['a-member']['id']}", None),
        ("GET", f"/v1/users/{t.users['b-member']['id']}", None),
        ("POST", "/v1/users", {"name": "m-user", "password": "m-password-1",
                               "project": "proj-a", "role": "admin"}),
        ("DELETE", f"/v1/users/{t.users['a-reader']['id']}", None),
        ("DELETE", f"/v1/users/{t.users['a-member']['id']}", None),
    ]
    failures = []
    before = a_state(t)
    for method, path, body in calls:
        r = t.am.request(method, path, **({"body": body} if body is not None else {}))
        if (r.status, r.code) != (403, "FORBIDDEN"):
            failures.append(f"{method} {path} as a-member -> {r.status} {r.text[:200]}, "
                            "expected 403 FORBIDDEN")
        now = a_state(t)
        if now != before:
            failures.append(f"after {method} {path} as a-member, things changed:\n"
                            f"  before {before}\n  after  {now}")
            before = now
    # other projects' things: refused either way, never done
    for method, path in (("DELETE", f"/v1/projects/{t.pb['id']}"),
                         ("PUT", f"/v1/projects/{t.pb['id']}/quota")):
        r = t.am.request(method, path, body={"vms": 1} if method == "PUT" else nf._DEFAULT)
        if (r.status, r.code) not in ((403, "FORBIDDEN"), (404, "PROJECT_NOT_FOUND")):
            failures.append(f"{method} {path} (B) as a-member -> {r!r}")
    if a_state(t) != before:
        failures.append("B's project changed after a-member's refused calls")
    # another user's token: 404 TOKEN_NOT_FOUND, and it goes on working
    r = t.am.request("DELETE", f"/v1/tokens/{b_token_id}")
    if (r.status, r.code) != (404, "TOKEN_NOT_FOUND"):
        failures.append(f"a-member revoking b-member's token -> {r!r}, expected 404 "
                        "TOKEN_NOT_FOUND")
    r = t.bm.request("GET", "/v1/auth/whoami")
    if r.status != 200:
        failures.append(f"b-member's token stopped working after a-member's attempt: {r!r}")
    # members' own project: fine
    r = t.am.request("GET", f"/v1/projects/{t.pa['id']}/quota")
    if r.status != 200:
        failures.append(f"a-member GET own quota -> {r!r}")
    assert not failures, "\n".join(failures)


def test_domain_metadata_names_the_project(ten):
    """The Nova metadata block in the domain XML names the VM's own project and the user who
    created it (exporters running on the hosts label its series with them)."""
    t = ten
    xml = nf.virsh("dumpxml", t.dom).stdout
    root = ET.fromstring(xml)
    ns = {"nova": "http://openstack.org/xmlns/libvirt/nova/1.1"}
    proj = root.find("./metadata/nova:instance/nova:owner/nova:project", ns)
    assert proj is not None, xml
    assert (proj.text, proj.get("uuid")) == ("proj-a", t.pa["id"]), xml
    creator = t.users["a-member"]["id"]
    user = root.find("./metadata/nova:instance/nova:owner/nova:user", ns)
    assert user is not None, xml
    assert (user.text, user.get("uuid")) == ("a-member", creator), xml
    assert t.admin.get(f"/v1/vms/{t.vm['id']}")["owner_user_id"] == creator
    assert root.find("./metadata/nova:instance/nova:name", ns).text == "vm-a"
    assert root.find("./metadata/nova:instance/nova:flavor", ns).get("name") == "t-small"


def test_member_manages_own_project(ten):
    t = ten
    t.am.action("vm-a", "pause")
    assert nf.domstate(t.dom) == "paused"
    t.am.action(t.vm["id"], "resume")
    assert nf.domstate(t.dom) == "running"
    img = t.am.ok("POST", "/v1/images", {"name": "img-a-tmp"}, expect=201)
    t.env.remember(img["id"])
    assert img["id"] in {i["id"] for i in t.am.images()}
    t.am.ok("DELETE", "/v1/images/img-a-tmp", expect=204)
    r = t.am.create_vm("vm-a2", "img-a", "t-small")
    t.env.remember(r["vm"]["id"])
    v = t.am.vm("vm-a2")
    assert v and v["state"] == "running", v
    assert nf.domstate(nf.vm_domain(v["id"])) == "running"
    # reader of the same project sees it; B's member does not
    assert t.ar.vm("vm-a2") is not None
    assert t.bm.request("GET", "/v1/vms/vm-a2").status == 404
    t.am.delete_vm("vm-a2")
    assert nf.domstate(nf.vm_domain(v["id"])) is None
    # admin-side rules on projects
    r = t.admin.request("DELETE", f"/v1/projects/{t.pa['id']}")
    assert (r.status, r.code) == (409, "PROJECT_NOT_EMPTY"), r
    r = t.admin.request("DELETE", "/v1/projects/default")
    assert (r.status, r.code) == (409, "PROJECT_NOT_EMPTY"), r
    r = t.admin.request("POST", "/v1/projects", {"name": "bad-quota", "quota": {"vms": -1}})
    assert r.status == 400, r
    assert "bad-quota" not in {p["name"] for p in t.admin.get("/v1/projects")["projects"]}


# ---------------------------------------------------------------------------------------------
# 5. audit


def _find(events, request_id):
    hits = [e for e in events if e["request_id"] == request_id]
    assert len(hits) == 1, f"{len(hits)} audit events for request {request_id}"
    return hits[0]


def test_audit_records_every_mutation(ten):
    t = ten
    calls = []  # (Resp, method, path, action, target, status, result)

    def call(api, method, path, body, action, target, status, result):
        r = api.request(method, path, **({"body": body} if body is not None else {}))
        assert r.status == status, f"{method} {path}: {r!r}"
        calls.append((r, api.name, method, path, action, target, status, result))
        return r

    t0 = time.time()
    call(t.am, "POST", "/v1/images", {"name": "audit-img"}, "image.create", "audit-img", 201,
         "ok")
    call(t.am, "DELETE", "/v1/images/audit-img", None, "image.delete", "audit-img", 204, "ok")
    call(t.am, "DELETE", "/v1/images/no-such-img", None, "image.delete", "no-such-img", 404,
         "IMAGE_NOT_FOUND")
    call(t.am, "POST", "/v1/flavors", {"name": "audit-flv", "vcpus": 1, "ram_mib": 64,
                                       "disk_gib": 1}, "flavor.create", "audit-flv", 403,
         "FORBIDDEN")
    call(t.ar, "POST", "/v1/vms/vm-a/stop", None, "vm.stop", "vm-a", 403, "FORBIDDEN")
    time.sleep(3.1)
    mid = nf.iso_utc(time.time())
    time.sleep(0.1)
    r = call(t.am, "POST", "/v1/vms/vm-a/pause", None, "vm.pause", "vm-a", 202, "ok")
    t.am.wait_task(r.json["task"]["id"])
    r = call(t.am, "POST", f"/v1/vms/{t.vm['id']}/resume", None, "vm.resume", t.vm["id"], 202,
             "ok")
    t.am.wait_task(r.json["task"]["id"])

    for who, api in (("admin", t.admin), ("a-member", t.am)):
        events = nf.audit_events(api, project=t.pa["id"], limit=1000)
        ats = [nf.parse_ts(e["at"]) for e in events]
        assert ats == sorted(ats, reverse=True), f"{who}: audit not newest first: {ats[:20]}"
        assert all(e["project_id"] == t.pa["id"] for e in events)
        for (resp, user, method, path, action, target, status, result) in calls:
            rid = resp.headers.get("x-request-id")
            e = _find(events, rid)
            want = {"user": user, "project_id": t.pa["id"], "source": "127.0.0.1",
                    "method": method, "path": path, "action": action, "target": target,
                    "status": status, "result": result}
            got = {k: e.get(k) for k in want}
            got["user"] = nf.event_user(e)
            assert got == want, f"{who}: audit event for {method} {path}: {e}"
            assert t0 - 5 <= nf.parse_ts(e["at"]) <= time.time() + 5, e
        # GETs are not audited
        assert not [e for e in events if e["method"] == "GET"], "GET requests were audited"
    # newest first among ours, in the order we made them
    events = nf.audit_events(t.admin, project=t.pa["id"], limit=1000)
    order = [e["request_id"] for e in events]
    ours = [c[0].headers.get("x-request-id") for c in calls]
    pos = [order.index(rid) for rid in ours]
    assert pos == sorted(pos, reverse=True), f"our events are not newest first: {pos}"

    # since (ISO 8601) and limit
    since = nf.audit_events(t.admin, project=t.pa["id"], since=mid)
    rids = {e["request_id"] for e in since}
    assert set(ours[5:]) <= rids, f"since={mid} lost later events"
    assert not (set(ours[:5]) & rids), f"since={mid} returned earlier events"
    assert all(nf.parse_ts(e["at"]) >= nf.parse_ts(mid) - 1 for e in since), since
    # since=SECONDS: the last N seconds (the earlier calls are > 2 s before `mid`)
    n = math.ceil(time.time() - nf.parse_ts(mid)) + 1
    rel = {e["request_id"] for e in nf.audit_events(t.admin, project=t.pa["id"], since=n)}
    assert set(ours[5:]) <= rel, f"since={n} lost later events"
    assert not (set(ours[:5]) & rel), f"since={n} returned earlier events"
    recent = nf.audit_events(t.admin, project=t.pa["id"], since=3600)
    assert set(ours) <= {e["request_id"] for e in recent}, "since=3600 lost recent events"
    assert nf.audit_events(t.admin, since=nf.iso_utc(time.time() + 3600)) == []
    one = nf.audit_events(t.admin, project=t.pa["id"], limit=1)
    assert [e["request_id"] for e in one] == [order[0]], one
    r = t.admin.request("GET", "/v1/audit?limit=1001")
    assert r.status == 400 or len(r.json["events"]) <= 1000, r
    for bad in ("limit=0", "limit=x", "since=garbage", "since=-5"):
        r = t.admin.request("GET", f"/v1/audit?{bad}")
        assert (r.status, r.code) == (400, "INVALID_REQUEST"), f"audit?{bad}: {r!r}"
    # the source is the peer's address, whatever headers claim
    r = t.am.request("POST", "/v1/images", {"name": "xff-img"},
                     headers={"X-Forwarded-For": "203.0.113.9", "X-Real-IP": "203.0.113.9",
                              "Forwarded": "for=203.0.113.9"})
    assert r.status == 201, r
    t.env.remember(r.json["id"])
    e = _find(nf.audit_events(t.admin, limit=20), r.headers["x-request-id"])
    assert e["source"] == "127.0.0.1", e
    t.am.ok("DELETE", "/v1/images/xff-img", expect=204)

    # user-data never reaches the audit or the log
    everything = json.dumps(nf.audit_events(t.admin, limit=1000))
    assert USER_DATA_MARKER not in everything, "user-data in the audit"
    for pw in t.passwords.values():
        assert pw not in everything, "a password in the audit"
    with open(t.daemon.log_path, errors="replace") as f:
        log = f.read()
    assert USER_DATA_MARKER not in log, "user-data in the daemon's log"
    for name, pw in t.passwords.items():
        assert pw not in log, f"{name}'s password in the daemon's log"
        assert t.logins[name]["token"] not in log, f"{name}'s token in the daemon's log"


# ---------------------------------------------------------------------------------------------
# CLI smoke test: login with --password-stdin, quota show, audit list


def test_cli_login_quota_audit(ten, tmp_path):
    t = ten
    home = str(tmp_path / "home")
    os.makedirs(home)
    conf = str(tmp_path / "cli.conf")
    open(conf, "w").close()
    env = dict(os.environ, HOME=home, NIMBUS_CONFIG=conf, NIMBUS_URL=t.daemon.url)
    env.pop("NIMBUS_TOKEN", None)

    def cli(*args, stdin=None):
        return subprocess.run([nf.NIMBUS_CLI, *args], input=stdin, capture_output=True,
                              text=True, env=env, timeout=60)

    pw = t.passwords["a-member"]
    p = cli("login", "--user", "a-member", "--password-stdin", stdin=pw + "\n")
    assert p.returncode == 0, f"nimbus login: rc {p.returncode}\n{p.stdout}\n{p.stderr}"
    assert pw not in p.stdout + p.stderr, "login echoed the password"
    saved = open(conf).read()
    assert pw not in saved, "the password was saved in the config file"
    assert "token" in saved, f"no token saved in {conf}: {saved!r}"
    assert os.stat(conf).st_mode & 0o077 == 0, "config file with a token is not private"
    p = cli("--json", "quota", "show")
    assert p.returncode == 0, f"nimbus quota show after login: {p.stdout}\n{p.stderr}"
    qj = json.loads(p.stdout)
    assert qj["project"]["id"] == t.pa["id"], qj
    assert qj["in_use"]["vms"] >= 1, qj
    p = cli("quota", "show")
    assert p.returncode == 0 and "vms" in p.stdout and "proj-a" in p.stdout, p
    p = cli("--json", "audit", "list")
    assert p.returncode == 0, p
    aj = json.loads(p.stdout)
    events = aj["events"] if isinstance(aj, dict) else aj
    assert events and all(e["project_id"] == t.pa["id"] for e in events), events[:3]
    p = cli("audit", "list")
    assert p.returncode == 0 and "image.create" in p.stdout, p
    # b-member's view through the CLI has nothing of A
    p = cli("--token", t.logins["b-member"]["token"], "--json", "audit", "list",
            "--project", t.pa["id"])
    assert p.returncode == 1 and "PROJECT_NOT_FOUND" in p.stderr, p
    # a wrong password: exit 1 with the API's code, the saved token is left as it was
    p = cli("login", "--user", "a-member", "--password-stdin", stdin="wrong-password\n")
    assert p.returncode == 1 and "INVALID_CREDENTIALS" in p.stderr, p
    assert open(conf).read() == saved, "a failed login changed the config file"
    assert t.logins["a-member"]["token"] not in open(t.daemon.log_path).read()


# ---------------------------------------------------------------------------------------------
# 6. usage, and after a SIGKILL restart


def _usage_row(api, project_id, vm_id):
    u = api.get(f"/v1/projects/{project_id}/usage")
    rows = [v for v in u["vms"] if v["vm_id"] == vm_id]
    assert len(rows) == 1, f"usage has {len(rows)} rows for VM {vm_id}: {u}"
    return rows[0], u


def test_usage_metered_and_survives_restart(ten):
    t = ten
    c0 = time.time()
    r = t.am.create_vm("vm-u", "img-a", "t-small", wait=False)
    vm_id = r["vm"]["id"]
    t.env.remember(vm_id)
    t.am.wait_task(r["task"]["id"])
    t.am.wait_vm_state(vm_id, "running")
    c1 = time.time()
    time.sleep(6)
    s0 = time.time()
    t.am.action(vm_id, "stop", {"force": True})
    s1 = time.time()
    t.am.wait_vm_state(vm_id, "stopped")
    assert nf.domstate(nf.vm_domain(vm_id)) == "shut off"
    # the API rounds figures to 0.001 h (3.6 s): allow half of that on top of 3 s of slack
    rnd = 0.0005
    lo, hi = (s0 - c1 - 3) / 3600 - rnd, (s1 - c0 + 3) / 3600 + rnd
    row, u = _usage_row(t.am, t.pa["id"], vm_id)
    assert lo <= row["vcpu_hours"] <= hi, \
        f"vcpu_hours {row['vcpu_hours']} not within [{lo:.5f}, {hi:.5f}]: {row}"
    assert lo <= row["running_hours"] <= hi, row
    assert abs(row["vcpu_hours"] - row["running_hours"] * 1) <= 2 * rnd + 1e-9, row
    assert abs(row["ram_gib_hours"] - row["running_hours"] * 128 / 1024) <= 2 * rnd + 1e-9, row
    assert row["disk_gib_hours"] >= row["running_hours"] * 1 - 2 * rnd, row
    assert row["disk_gib_hours"] <= (time.time() - c0 + 3) / 3600 + rnd, row
    for k in ("vcpu_hours", "ram_gib_hours", "disk_gib_hours"):
        assert u["totals"][k] >= row[k] - rnd, u["totals"]
        assert abs(u["totals"][k] - sum(v[k] for v in u["vms"])) <= rnd * (len(u["vms"]) + 1), u
    assert row["vcpu_hours"] > 0 and row["disk_gib_hours"] > 0
    # the reader sees the same; admin too
    assert t.ar.get(f"/v1/projects/{t.pa['id']}/usage")["vms"]
    # explicit window: yesterday .. tomorrow has it; a window in the past does not
    day = 86400
    w = t.am.get(f"/v1/projects/{t.pa['id']}/usage?from={nf.iso_utc(time.time() - day)}"
                 f"&to={nf.iso_utc(time.time() + day)}")
    assert vm_id in {v["vm_id"] for v in w["vms"]}, w
    old = t.am.get(f"/v1/projects/{t.pa['id']}/usage?from=2001-01-01&to=2001-02-01")
    assert all(v["vcpu_hours"] == 0 for v in old["vms"]) and \
        old["totals"]["vcpu_hours"] == 0, old

    before = row
    vm_a_hours = _usage_row(t.admin, t.pa["id"], t.vm["id"])[0]["vcpu_hours"]
    assert vm_a_hours > 0
    rc = t.daemon.stop(sig=signal.SIGKILL)
    assert rc == -signal.SIGKILL
    t.daemon.start()
    after, _ = _usage_row(t.am, t.pa["id"], vm_id)
    for k in ("vcpu_hours", "ram_gib_hours", "running_hours", "disk_gib_hours"):
        assert after[k] >= before[k] - 1e-9, f"{k} went down over a restart: {before} -> {after}"
    assert after["vcpu_hours"] <= before["vcpu_hours"] + 2 / 3600 + rnd, \
        f"a stopped VM gained vCPU-hours over a restart: {before} -> {after}"
    assert _usage_row(t.admin, t.pa["id"], t.vm["id"])[0]["vcpu_hours"] >= vm_a_hours
    # the guest was left running, and users' tokens survive the restart
    assert nf.domstate(t.dom) == "running"
    assert t.bm.request("GET", "/v1/auth/whoami").status == 200
    t.am.delete_vm(vm_id)
    gone, _ = _usage_row(t.am, t.pa["id"], vm_id)  # deleted VMs within the window still count
    assert gone["vcpu_hours"] >= before["vcpu_hours"] - 1e-9, gone
