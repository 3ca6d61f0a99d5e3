"""Hostile and malformed API input, sent as raw HTTP. Every bad request must get the documented
status and error code, and must leave no trace: the API's lists and libvirt's domains and volumes
are the same before and after."""

import contextlib
import json
import os
import socket
import subprocess

import pytest

import nimbus_fixtures as nf

BAD_NAMES = [
    "", "a'b", 'a"b', "a<b", "a>b", "a&b", "a/b", "..", ".", "a b", "-lead", ".lead", "_lead",
    "a" * 64, "caf\u00e9", "a\nb", "a;b", "$(reboot)", "a\\b", "a%2fb",
    "6f1c0a52-7d3e-4d7e-9a43-0a4c1f1d2b3e",  # UUID-shaped: would be ambiguous with ids
]


@pytest.fixture
def unchanged(nimbus, image, flavor):
    """Context manager: asserts that nothing visible changed across the block."""
    @contextlib.contextmanager
    def guard(what):
        before = (nf.store_snapshot(nimbus.api), nf.libvirt_snapshot(nimbus.daemon,
                                                                      nimbus.known_ids))
        pool_files = sorted(os.listdir(nimbus.daemon.pool_path))
        yield
        after = (nf.store_snapshot(nimbus.api), nf.libvirt_snapshot(nimbus.daemon,
                                                                     nimbus.known_ids))
        assert after[0] == before[0], f"{what}: the API's state changed:\n{before[0]}\n->\n{after[0]}"
        assert after[1] == before[1], f"{what}: libvirt changed:\n{before[1]}\n->\n{after[1]}"
        assert sorted(os.listdir(nimbus.daemon.pool_path)) == pool_files, \
            f"{what}: files appeared in the pool directory"
    return guard


def expect_error(resp, status, codes, what):
    if isinstance(codes, str):
        codes = (codes,)
    assert resp.status == status and resp.code in codes, \
        f"{what}: expected {status} {codes}, got {resp.status}: {resp.body[:400]!r}"
    rid = resp.headers.get("x-request-id")
    assert rid, f"{what}: no X-Request-Id header"
    assert resp.json["error"].get("request_id") == rid, f"{what}: request_id != X-Request-Id"
    assert resp.json["error"].get("message"), f"{what}: empty error message"


def post_expect_error(nimbus, path, body, status, codes, what):
    """POSTs and checks the error; a request wrongly accepted is undone before failing so that it
    does not disturb the tests after it."""
    r = nimbus.api.request("POST", path, body)
    if r.status in (201, 202):
        obj = r.json.get("vm", r.json)
        nimbus.remember(obj.get("id"))
        coll = path.split("/")[2]
        if coll == "vms":
            nimbus.api.wait_task(r.json["task"]["id"], expect=None)
            nimbus.api.delete_vm(obj["id"])
        else:
            nimbus.api.request("DELETE", f"/v1/{coll}/{obj['id']}")
    expect_error(r, status, codes, what)
    return r


def vm_body(img, flv, **kw):
    return {"name": "okname", "image": img["id"], "flavor": flv["id"], **kw}


# ---- names ------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", BAD_NAMES, ids=lambda n: repr(n)[:20])
def test_bad_names(nimbus, image, flavor, unchanged, name):
    api = nimbus.api
    with unchanged(f"bad name {name!r}"):
        for path, body in [
            ("/v1/flavors", {"name": name, "vcpus": 1, "ram_mib": 256, "disk_gib": 1}),
            ("/v1/images", {"name": name, "disk_format": "qcow2"}),
            ("/v1/vms", vm_body(image, flavor, name=name)),
        ]:
            post_expect_error(nimbus, path, body, 400, "INVALID_NAME", f"POST {path} name={name!r}")


def test_longest_name_is_accepted(nimbus):
    name = "a" * 63
    f = nimbus.api.ok("POST", "/v1/flavors",
                      {"name": name, "vcpus": 1, "ram_mib": 256, "disk_gib": 1}, expect=201)
    assert f["name"] == name
    nimbus.api.ok("DELETE", f"/v1/flavors/{name}", expect=204)


def test_name_taken(nimbus, image, flavor, unchanged):
    with unchanged("duplicate names"):
        r = nimbus.api.request("POST", "/v1/flavors", {"name": flavor["name"], "vcpus": 1,
                                                       "ram_mib": 256, "disk_gib": 1})
        expect_error(r, 409, "NAME_TAKEN", "duplicate flavor")
        r = nimbus.api.request("POST", "/v1/images", {"name": image["name"]})
        expect_error(r, 409, "NAME_TAKEN", "duplicate image")


# ---- bodies -----------------------------------------------------------------------------------

PATHS = ["/v1/flavors", "/v1/images", "/v1/vms"]


@pytest.mark.parametrize("path", PATHS)
def test_malformed_bodies(nimbus, unchanged, path):
    api = nimbus.api
    cases = [
        (b"", 400, ("INVALID_REQUEST", "INVALID_JSON"), "empty body"),
        (b"{", 400, "INVALID_JSON", "truncated JSON"),
        (b"{\"name\": \"x\",}", 400, "INVALID_JSON", "trailing comma"),
        (b"[]", 400, "INVALID_REQUEST", "array body"),
        (b"\"name\"", 400, "INVALID_REQUEST", "string body"),
        (b"null", 400, "INVALID_REQUEST", "null body"),
        (b"42", 400, "INVALID_REQUEST", "number body"),
        (b"{\"name\":\"a\",\"name\":\"b\"}", 400, "INVALID_JSON", "duplicate keys"),
        (b"\xff\xfe{}", 400, "INVALID_JSON", "not UTF-8"),
    ]
    with unchanged(f"malformed bodies to {path}"):
        for raw, status, codes, what in cases:
            r = api.request("POST", path, raw=raw)
            expect_error(r, status, codes, f"POST {path} with {what}")


@pytest.mark.parametrize("path", PATHS)
def test_huge_body(nimbus, unchanged, path):
    big = json.dumps({"name": "x", "pad": "A" * (2 * 1024 * 1024)}).encode()
    with unchanged(f"2 MiB body to {path}"):
        expect_error(nimbus.api.request("POST", path, raw=big), 413, "BODY_TOO_LARGE",
                     f"2 MiB JSON to {path}")


@pytest.mark.parametrize("path", PATHS)
def test_wrong_media_type(nimbus, unchanged, path):
    with unchanged(f"text/plain body to {path}"):
        for ct in ("text/plain", None, "application/x-www-form-urlencoded"):
            r = nimbus.api.request("POST", path, raw=b'{"name":"x"}', content_type=ct)
            expect_error(r, 415, "UNSUPPORTED_MEDIA_TYPE", f"POST {path} Content-Type {ct}")


def test_unknown_fields_and_wrong_types(nimbus, image, flavor, unchanged):
    api = nimbus.api
    fl = {"name": "okname", "vcpus": 1, "ram_mib": 256, "disk_gib": 1}
    cases = [
        ("/v1/flavors", dict(fl, extra=1)),
        ("/v1/flavors", dict(fl, vcpus="1")),
        ("/v1/flavors", dict(fl, vcpus=1.5)),
        ("/v1/flavors", dict(fl, vcpus=-1)),
        ("/v1/flavors", dict(fl, vcpus=0)),
        ("/v1/flavors", dict(fl, ram_mib=True)),
        ("/v1/flavors", dict(fl, disk_gib=None)),
        ("/v1/flavors", dict(fl, disk_gib=2 ** 64), ("INVALID_REQUEST", "INVALID_JSON")),
        ("/v1/flavors", dict(fl, disk_gib=2 ** 40)),
        ("/v1/flavors", dict(fl, vcpus=1e3)),
        ("/v1/flavors", {"name": "okname", "vcpus": 1, "ram_mib": 256}),
        ("/v1/flavors", dict(fl, name=5)),
        ("/v1/flavors", dict(fl, name=None)),
        ("/v1/flavors", dict(fl, name=["a"])),
        ("/v1/images", {"name": "okname", "disk_format": "qcow2", "url": "http://x"}),
        ("/v1/images", {"name": "okname", "disk_format": 7}),
        ("/v1/images", {"name": {"a": 1}}),
        ("/v1/vms", vm_body(image, flavor, extra=True)),
        ("/v1/vms", vm_body(image, flavor, image=5)),
        ("/v1/vms", vm_body(image, flavor, flavor=[])),
        ("/v1/vms", vm_body(image, flavor, hostname=5)),
        ("/v1/vms", vm_body(image, flavor, user_data=5)),
        ("/v1/vms", {"name": "okname", "image": image["id"]}),
        ("/v1/vms/nosuchvm/stop", {"force": "yes"}),
        ("/v1/vms/nosuchvm/stop", {"timeout": -1}),
        ("/v1/vms/nosuchvm/stop", {"timeout": "10"}),
        ("/v1/vms/nosuchvm/stop", {"hard": True}),
        ("/v1/vms/nosuchvm/start", {"force": True}),
    ]
    with unchanged("unknown fields / wrong types"):
        for path, body, *codes in cases:
            post_expect_error(nimbus, path, body, 400, codes[0] if codes else "INVALID_REQUEST",
                              f"POST {path} {json.dumps(body)[:120]}")
        post_expect_error(nimbus, "/v1/images", {"name": "okname", "disk_format": "vmdk"}, 422,
                          "IMAGE_FORMAT_UNSUPPORTED", "image declared vmdk")


@pytest.mark.parametrize("hostname", ["a;reboot", "a b", "$(reboot)", "-lead", "trail-",
                                      "x" * 64, "a\nb", "caf\u00e9", "a/b", "a_b"])
def test_bad_hostname(nimbus, image, flavor, unchanged, hostname):
    with unchanged(f"hostname {hostname!r}"):
        post_expect_error(nimbus, "/v1/vms", vm_body(image, flavor, hostname=hostname), 400,
                          "INVALID_HOSTNAME", f"hostname {hostname!r}")


def test_user_data_too_large(nimbus, image, flavor, unchanged):
    with unchanged("70 KiB user_data"):
        r = nimbus.api.request("POST", "/v1/vms",
                               vm_body(image, flavor, user_data="#!/bin/sh\n" + "x" * 70 * 1024))
        expect_error(r, 413, "USER_DATA_TOO_LARGE", "70 KiB user_data")


def test_references_not_found(nimbus, image, flavor, unchanged):
    api = nimbus.api
    with unchanged("missing references"):
        expect_error(api.request("POST", "/v1/vms", vm_body(image, flavor, image="nope")),
                     404, "IMAGE_NOT_FOUND", "VM from a missing image")
        expect_error(api.request("POST", "/v1/vms", vm_body(image, flavor, flavor="nope")),
                     404, "FLAVOR_NOT_FOUND", "VM with a missing flavor")
        for path, code in [("/v1/vms/nope", "VM_NOT_FOUND"), ("/v1/images/nope", "IMAGE_NOT_FOUND"),
                           ("/v1/flavors/nope", "FLAVOR_NOT_FOUND"),
                           ("/v1/tasks/nope", "TASK_NOT_FOUND"),
                           ("/v1/tasks/6f1c0a52-7d3e-4d7e-9a43-0a4c1f1d2b3e", "TASK_NOT_FOUND"),
                           ("/v1/vms/nope/console-log", "VM_NOT_FOUND")]:
            expect_error(api.request("GET", path), 404, code, f"GET {path}")
        for action in ("start", "stop", "reboot", "pause", "resume"):
            expect_error(api.request("POST", f"/v1/vms/nope/{action}"), 404, "VM_NOT_FOUND",
                         f"{action} of a missing VM")
        expect_error(api.request("DELETE", "/v1/vms/nope"), 404, "VM_NOT_FOUND", "delete VM")
        expect_error(api.request("DELETE", "/v1/images/nope"), 404, "IMAGE_NOT_FOUND", "del image")
        expect_error(api.request("DELETE", "/v1/flavors/nope"), 404, "FLAVOR_NOT_FOUND", "del fl")
        for q in ("0", "abc", "-1", "99999999999"):
            r = api.request("GET", f"/v1/vms/nope/console-log?bytes={q}")
            assert r.status in (400, 404), f"console-log bytes={q}: {r!r}"


# ---- auth, routes, methods ----------------------------------------------------------------------

def test_auth(nimbus, unchanged):
    api = nimbus.api
    r = api.request("GET", "/v1/health", token=None)
    assert r.status == 200 and r.json["status"] == "ok", r
    assert r.headers.get("x-request-id"), "health has no X-Request-Id"
    with unchanged("unauthorized requests"):
        for token, hdrs in [(None, None), ("wrong", None), (nimbus.daemon.token + "x", None),
                            (nimbus.daemon.token[:-1], None), ("", None),
                            (None, {"Authorization": nimbus.daemon.token}),
                            (None, {"Authorization": f"Basic {nimbus.daemon.token}"})]:
            for method, path, body in [("GET", "/v1/vms", nf._DEFAULT),
                                       ("POST", "/v1/flavors", {"name": "sneaky", "vcpus": 1,
                                                                "ram_mib": 256, "disk_gib": 1}),
                                       ("DELETE", "/v1/flavors/e2e-small", nf._DEFAULT),
                                       ("GET", "/v1/nope", nf._DEFAULT)]:
                r = api.request(method, path, body=body, token=token, headers=hdrs)
                expect_error(r, 401, "UNAUTHORIZED", f"{method} {path} with token {token!r}")
        # an unauthenticated upload is refused before its body is read
        img_id = nimbus.api.images()[0]["id"]
        r = api.request("PUT", f"/v1/images/{img_id}/file", raw=b"x" * 65536, token=None,
                        content_type="application/octet-stream")
        expect_error(r, 401, "UNAUTHORIZED", "unauthenticated upload")


def test_routes_and_methods(nimbus, unchanged):
    api = nimbus.api
    with unchanged("unknown routes and wrong methods"):
        # ("/" is the web console's page: test_web.py)
        for path in ["/v1/nope", "/v2/vms", "/v1", "/v1/vms/x/y/z", "/v1/vms/x/explode",
                     "/v1/images/x/file/y", "/v1/vms/../flavors"]:
            r = api.request("GET", path)
            assert r.status in (404, 400), f"GET {path}: {r!r}"
            if r.status == 404:
                expect_error(r, 404, "NOT_FOUND", f"GET {path}")
        for method, path in [("PUT", "/v1/vms"), ("DELETE", "/v1/flavors"), ("PUT", "/v1/vms/x"),
                             ("GET", "/v1/vms/x/start"), ("POST", "/v1/health"),
                             ("GET", "/v1/images/x/file"), ("PUT", "/v1/tasks/x")]:
            r = api.request(method, path, raw=b"{}" if method in ("PUT", "PATCH", "POST") else None)
            expect_error(r, 405, "METHOD_NOT_ALLOWED", f"{method} {path}")
            assert r.headers.get("allow"), f"{method} {path}: 405 without an Allow header"
        r = api.request("GET", "/v1/vms/" + "a" * 20000)
        assert 400 <= r.status < 500, f"20 kB URL: {r!r}"
        r = api.request("GET", "/v1/images/..%2f..%2fetc%2fpasswd")
        assert r.status in (400, 404), f"encoded traversal: {r!r}"


# ---- hostile images -----------------------------------------------------------------------------

def qemu_img(*args):
    p = subprocess.run(["qemu-img", *args], capture_output=True, text=True)
    assert p.returncode == 0, f"qemu-img {' '.join(args)}: {p.stderr}"


@pytest.fixture(scope="module")
def hostile(tmp_path_factory, tiny_image):
    d = tmp_path_factory.mktemp("hostile")
    f = {}
    f["backing"] = d / "backing.qcow2"
    qemu_img("create", "-f", "qcow2", "-F", "raw", "-b", "/etc/passwd", "-u", str(f["backing"]),
             "1G")
    f["backing_qcow2"] = d / "backing2.qcow2"
    qemu_img("create", "-f", "qcow2", "-F", "qcow2", "-b", tiny_image, "-u",
             str(f["backing_qcow2"]), "32M")
    f["data_file"] = d / "datafile.qcow2"
    qemu_img("create", "-f", "qcow2", "-o", f"data_file={d / 'data.raw'}", str(f["data_file"]),
             "16M")
    f["too_large"] = d / "big.qcow2"
    qemu_img("create", "-f", "qcow2", str(f["too_large"]), "3G")
    f["vmdk"] = d / "x.vmdk"
    qemu_img("create", "-f", "vmdk", str(f["vmdk"]), "16M")
    f["vdi"] = d / "x.vdi"
    qemu_img("create", "-f", "vdi", str(f["vdi"]), "16M")
    f["corrupt"] = d / "corrupt.qcow2"
    with open(tiny_image, "rb") as src:
        head = bytearray(src.read(512))
    head[20:24] = b"\xff\xff\xff\xff"  # absurd cluster_bits
    f["corrupt"].write_bytes(bytes(head) + b"\0" * 65536)
    # backing file named far from the header, where a probe of the first bytes cannot see it
    f["late_backing"] = d / "late.qcow2"
    data = bytearray(open(tiny_image, "rb").read())
    name = b"/etc/passwd"
    data[8:16] = len(data).to_bytes(8, "big")    # backing_file_offset
    data[16:20] = len(name).to_bytes(4, "big")   # backing_file_size
    f["late_backing"].write_bytes(bytes(data) + name)
    f["raw"] = d / "x.raw"
    f["raw"].write_bytes(b"\0" * (1 << 20))
    f["tiny"] = tiny_image
    return f


HOSTILE_CASES = [
    ("backing", "qcow2", "IMAGE_BACKING_FILE"),
    ("backing_qcow2", "qcow2", "IMAGE_BACKING_FILE"),
    ("late_backing", "qcow2", "IMAGE_BACKING_FILE"),
    ("data_file", "qcow2", "IMAGE_DATA_FILE"),
    ("too_large", "qcow2", "IMAGE_TOO_LARGE"),
    ("vmdk", "qcow2", ("IMAGE_FORMAT_UNSUPPORTED", "IMAGE_FORMAT_MISMATCH")),
    ("vmdk", None, "IMAGE_FORMAT_UNSUPPORTED"),
    ("vdi", None, "IMAGE_FORMAT_UNSUPPORTED"),
    ("tiny", "raw", "IMAGE_FORMAT_MISMATCH"),
    ("raw", "qcow2", "IMAGE_FORMAT_MISMATCH"),
    ("corrupt", "qcow2", "IMAGE_CORRUPT"),
]


@pytest.mark.parametrize("kind,fmt,codes", HOSTILE_CASES,
                         ids=[f"{k}-as-{f}" for k, f, _ in HOSTILE_CASES])
def test_hostile_image(nimbus, hostile, unchanged, kind, fmt, codes):
    api = nimbus.api
    body = {"name": f"hostile-{kind}"}
    if fmt:
        body["disk_format"] = fmt
    img = api.ok("POST", "/v1/images", body, expect=201)
    nimbus.remember(img["id"])
    try:
        assert img["state"] == "queued", img
        data = open(hostile[kind], "rb").read()
        tmp_dir = os.path.join(nimbus.daemon.state_dir, "tmp")
        with unchanged(f"upload of {kind} as {fmt}"):
            r = api.request("PUT", f"/v1/images/{img['id']}/file", raw=data,
                            content_type="application/octet-stream")
            expect_error(r, 422, codes, f"upload of {kind} (disk_format {fmt})")
            # (test_refused_upload_rolled_back_before_reply checks there is no delay at all)
            wait_queued(api, img["id"], f"{kind} as {fmt}")
            assert f"image-{img['id']}" not in nf.volume_names(nimbus.daemon.pool_name)
            if os.path.isdir(tmp_dir):
                assert os.listdir(tmp_dir) == [], f"upload leftovers: {os.listdir(tmp_dir)}"
        # A queued image is not usable...
        flv = api.flavors()[0]
        r = api.request("POST", "/v1/vms", {"name": "from-queued", "image": img["id"],
                                            "flavor": flv["id"]})
        expect_error(r, 409, "IMAGE_NOT_ACTIVE", "VM from a queued image")
    finally:
        api.ok("DELETE", f"/v1/images/{img['id']}", expect=204)
    assert f"image-{img['id']}" not in nf.volume_names(nimbus.daemon.pool_name)


def wait_queued(api, img_id, what, timeout=10):
    try:
        nf.wait_until(lambda: api.get(f"/v1/images/{img_id}")["state"] == "queued", timeout,
                      f"image {img_id} back in queued")
    except nf.Timeout:
        raise AssertionError(f"{what}: image not back in queued {timeout}s after a refused upload:"
                             f" {api.get(f'/v1/images/{img_id}')}") from None


def test_refused_upload_rolled_back_before_reply(nimbus, hostile):
    """When the client reads the 422, the image must already be `queued` again: a client that
    retries or deletes at once must not get IMAGE_ALREADY_UPLOADED / IMAGE_IN_USE."""
    api = nimbus.api
    img = api.ok("POST", "/v1/images", {"name": "rollback-race", "disk_format": "qcow2"},
                 expect=201)
    nimbus.remember(img["id"])
    try:
        r = api.request("PUT", f"/v1/images/{img['id']}/file",
                        raw=open(hostile["backing"], "rb").read(),
                        content_type="application/octet-stream")
        expect_error(r, 422, "IMAGE_BACKING_FILE", "hostile upload")
        now = api.get(f"/v1/images/{img['id']}")
        assert now["state"] == "queued", \
            f"image is {now['state']!r}, not 'queued', right after its upload was refused"
    finally:
        wait_queued(api, img["id"], "rollback-race")
        api.ok("DELETE", f"/v1/images/{img['id']}", expect=204)


def test_failed_upload_can_be_retried(nimbus, hostile):
    api = nimbus.api
    img = api.ok("POST", "/v1/images", {"name": "retry-me", "disk_format": "qcow2"}, expect=201)
    nimbus.remember(img["id"])
    try:
        r = api.request("PUT", f"/v1/images/{img['id']}/file",
                        raw=open(hostile["backing"], "rb").read(),
                        content_type="application/octet-stream")
        expect_error(r, 422, "IMAGE_BACKING_FILE", "hostile upload")
        wait_queued(api, img["id"], "retry-me")
        r = api.request("PUT", f"/v1/images/{img['id']}/file", raw=b"{}",
                        content_type="application/json")
        expect_error(r, 415, "UNSUPPORTED_MEDIA_TYPE", "upload as application/json")
        good = api.ok("PUT", f"/v1/images/{img['id']}/file",
                      raw=open(hostile["tiny"], "rb").read(),
                      content_type="application/octet-stream", expect=200)
        assert good["state"] == "active", good
        assert f"image-{img['id']}" in nf.volume_names(nimbus.daemon.pool_name)
        r = api.request("PUT", f"/v1/images/{img['id']}/file",
                        raw=open(hostile["tiny"], "rb").read(),
                        content_type="application/octet-stream")
        expect_error(r, 409, "IMAGE_ALREADY_UPLOADED", "second upload")
    finally:
        api.ok("DELETE", f"/v1/images/{img['id']}", expect=204)
    assert f"image-{img['id']}" not in nf.volume_names(nimbus.daemon.pool_name)


def test_in_use(nimbus, image, flavor, vms, unchanged):
    """An image or flavor a VM uses cannot be deleted (no guest needs to boot for this)."""
    r = vms("uses-image")
    nimbus.api.action(r["vm"]["id"], "stop", body={"force": True})
    with unchanged("delete of in-use image/flavor"):
        expect_error(nimbus.api.request("DELETE", f"/v1/images/{image['id']}"), 409,
                     "IMAGE_IN_USE", "delete of an image in use")
        expect_error(nimbus.api.request("DELETE", f"/v1/flavors/{flavor['id']}"), 409,
                     "FLAVOR_IN_USE", "delete of a flavor in use")
        for action in ("stop", "pause", "resume", "reboot"):
            expect_error(nimbus.api.request("POST", f"/v1/vms/uses-image/{action}"), 409,
                         "INVALID_STATE", f"{action} of a stopped VM")


def test_upload_without_length_or_interrupted(nimbus, hostile):
    """A chunked upload (no Content-Length) is refused; an upload the client abandons half-way
    leaves the image queued and no volume or file behind."""
    api, d = nimbus.api, nimbus.daemon
    img = api.ok("POST", "/v1/images", {"name": "interrupted", "disk_format": "qcow2"}, expect=201)
    nimbus.remember(img["id"])
    path = f"/v1/images/{img['id']}/file"
    data = open(hostile["tiny"], "rb").read()
    pool_files = sorted(os.listdir(d.pool_path))
    try:
        # chunked by hand: http.client would add a Content-Length
        with socket.create_connection(("127.0.0.1", d.port), timeout=30) as s:
            s.sendall((f"PUT {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {d.token}\r\n"
                       "Content-Type: application/octet-stream\r\n"
                       "Transfer-Encoding: chunked\r\n\r\n").encode())
            s.sendall(b"10000\r\n" + data[:0x10000] + b"\r\n0\r\n\r\n")
            reply = s.recv(65536).decode("latin-1")
        assert reply.startswith("HTTP/1.1 411") and "LENGTH_REQUIRED" in reply, \
            f"chunked upload: {reply[:300]!r}"
        wait_queued(api, img["id"], "chunked upload")

        with socket.create_connection(("127.0.0.1", d.port), timeout=30) as s:
            s.sendall((f"PUT {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {d.token}\r\n"
                       "Content-Type: application/octet-stream\r\n"
                       f"Content-Length: {len(data)}\r\n\r\n").encode())
            s.sendall(data[: len(data) // 2])
        wait_queued(api, img["id"], "abandoned upload")
        nf.wait_until(lambda: f"image-{img['id']}" not in nf.volume_names(d.pool_name), 10,
                      "the abandoned upload's volume to go")
        assert sorted(os.listdir(d.pool_path)) == pool_files, "files left in the pool directory"
        # and the image still takes a proper upload afterwards
        good = api.ok("PUT", path, raw=data, content_type="application/octet-stream", expect=200)
        assert good["state"] == "active"
    finally:
        nf.wait_until(lambda: api.get(f"/v1/images/{img['id']}")["state"] != "uploading", 10,
                      "upload to settle")
        api.ok("DELETE", f"/v1/images/{img['id']}", expect=204)
