"""Browser consoles against a real nimbusd and a real guest: console tickets, the serial console
over a WebSocket (the guest's output, typing a command and seeing its output), the VNC screen
through the proxy (a full RFB handshake with VNC authentication, a framebuffer that is not
blank), and every refusal: no ticket, another VM, another type, expired, reused, a foreign
Origin, a reader, another project's VM, a stopped VM. One private nimbusd for the module."""

import http.client
import json
import os
import re
import secrets
import ssl
import struct
import subprocess
import time

import pytest
import websocket

import nimbus_fixtures as nf

NEEDLE_TIMEOUT = 120


class T:
    pass


@pytest.fixture(scope="module")
def cw(make_env, tiny_image):
    used = subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True).stdout
    free = [k for k in range(8, 40) if f" 10.{200 + k}." not in used]
    nf.Daemon.count = secrets.choice(free) if free else nf.Daemon.count + 8
    env = make_env("console")
    env.daemon.extra_args += ["--console-allowed-origins",
                              "https://console.example.org, http://other.example:8080"]
    env.daemon.start()
    t = T()
    t.env, t.admin, t.daemon = env, env.api, env.daemon
    try:
        t.admin.ok("POST", "/v1/projects", {"name": "cw-a"}, expect=201)
        t.admin.ok("POST", "/v1/projects", {"name": "cw-b"}, expect=201)
        t.flavor = t.admin.ok("POST", "/v1/flavors", {"name": "cw-small", "vcpus": 1,
                                                       "ram_mib": 128, "disk_gib": 1}, expect=201)
        users = {}
        for name, proj, role in (("cw-a-member", "cw-a", "member"),
                                 ("cw-b-member", "cw-b", "member"),
                                 ("cw-a-reader", "cw-a", "reader")):
            _, api, login = nf.make_user(t.admin, name, "pw-" + secrets.token_hex(10), proj, role)
            users[name] = (api, login)
        t.am, t.bm, t.ar = (users[n][0] for n in ("cw-a-member", "cw-b-member", "cw-a-reader"))
        t.a_token = users["cw-a-member"][1]["token"]
        t.img = nf.upload_image_as(t.am, env, "cw-img", tiny_image)
        yield t
    finally:
        env.teardown()


def create_vm(t, name):
    r = t.am.create_vm(name, t.img["id"], "cw-small")
    t.env.remember(r["vm"]["id"])
    return r["vm"]


def ticket(api, vm_id, kind="serial"):
    return api.request("POST", f"/v1/vms/{vm_id}/console", {"type": kind})


def ws_url(daemon, path):
    return f"ws://127.0.0.1:{daemon.port}{path}"


def raw_upgrade(daemon, path, origin=None, headers=None):
    """The opening handshake by hand: the status and JSON body of a refusal (or 101)."""
    c = http.client.HTTPConnection("127.0.0.1", daemon.port, timeout=30)
    hdrs = {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
            "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}
    hdrs.update(headers or {})
    if origin:
        hdrs["Origin"] = origin
    c.request("GET", path, headers=hdrs)
    r = c.getresponse()
    body = r.read() if r.status != 101 else b""
    c.close()
    return r.status, (json.loads(body) if body else None)


class Reader:
    """Everything the console sent, accumulated from WebSocket frames."""

    def __init__(self, ws):
        self.ws = ws
        self.data = b""
        self.opcodes = set()

    def pump(self, seconds):
        self.ws.settimeout(seconds)
        try:
            op, payload = self.ws.recv_data()
            self.opcodes.add(op)
            self.data += payload if isinstance(payload, bytes) else payload.encode()
            return True
        except websocket.WebSocketTimeoutException:
            return False

    def wait_for(self, needle, timeout=NEEDLE_TIMEOUT, every=None, send=None):
        deadline = time.monotonic() + timeout
        next_send = 0
        while needle not in self.data:
            now = time.monotonic()
            if now > deadline:
                tail = self.data[-1500:].decode(errors="replace")
                raise nf.Timeout(f"no {needle!r} on the console; tail:\n{tail}")
            if send is not None and now >= next_send:
                self.ws.send_binary(send)
                next_send = now + (every or 3)
            self.pump(0.5)
        return self.data


def open_serial(t, vm_id, subprotocol="binary", origin=None):
    r = ticket(t.am, vm_id)
    assert r.status == 201, r
    kw = {"subprotocols": [subprotocol]} if subprotocol else {}
    if origin:
        kw["origin"] = origin
    return websocket.create_connection(ws_url(t.daemon, r.json["url"]), timeout=30, **kw)


def test_serial_console_interactive(cw):
    vm = create_vm(cw, "cw-serial")
    r = ticket(cw.am, vm["id"])
    assert r.status == 201, r
    tk = r.json
    assert set(tk) >= {"ticket", "type", "vm", "expires_at", "url"}, tk
    assert tk["type"] == "serial" and tk["vm"] == vm["id"] and "password" not in tk
    assert len(tk["ticket"]) == 43 and tk["url"] == \
        f"/v1/vms/{vm['id']}/console/ws?ticket={tk['ticket']}"
    ws = websocket.create_connection(ws_url(cw.daemon, tk["url"]), timeout=30,
                                     subprotocols=["binary"])
    try:
        assert ws.getsubprotocol() == "binary"
        rd = Reader(ws)
        rd.wait_for(b"NIMBUS-READY")
        # The guest's shell on ttyS0 may start a moment after the READY line: type until seen.
        rd.wait_for(b"nimbus-42", send=b"echo nimbus-$((6*7))\n", every=5)
        assert websocket.ABNF.OPCODE_BINARY in rd.opcodes
    finally:
        ws.close()
    cw.serial_vm = vm


def test_serial_text_frames_and_own_origin(cw):
    vm = cw.serial_vm
    origin = f"http://127.0.0.1:{cw.daemon.port}"
    ws = open_serial(cw, vm["id"], subprotocol="text", origin=origin)
    try:
        assert ws.getsubprotocol() == "text"
        rd = Reader(ws)
        rd.wait_for(b"nimbus-1764", send=b"echo nimbus-$((42*42))\n", every=5)
        assert rd.opcodes == {websocket.ABNF.OPCODE_TEXT}, rd.opcodes
    finally:
        ws.close()


def test_refusals(cw):
    vm = cw.serial_vm
    d = cw.daemon
    base = f"/v1/vms/{vm['id']}/console/ws"

    def refused(path, code, origin=None, headers=None):
        status, body = raw_upgrade(d, path, origin, headers)
        assert status == 403 and body["error"]["code"] == code, (path, status, body)

    refused(base, "CONSOLE_TICKET_INVALID")
    refused(base + "?ticket=" + "A" * 43, "CONSOLE_TICKET_INVALID")
    # a ticket for another VM
    tk = ticket(cw.am, vm["id"]).json["ticket"]
    refused(f"/v1/vms/{nf_uuid()}/console/ws?ticket={tk}", "CONSOLE_TICKET_INVALID")
    # spent by that attempt: one-time even when refused
    refused(f"{base}?ticket={tk}", "CONSOLE_TICKET_INVALID")
    # another type
    tk = ticket(cw.am, vm["id"]).json["ticket"]
    refused(f"{base}?ticket={tk}&type=vnc", "CONSOLE_TICKET_INVALID")
    # reused after a good session
    tk = ticket(cw.am, vm["id"]).json["ticket"]
    status, _ = raw_upgrade(d, f"{base}?ticket={tk}")
    assert status == 101
    refused(f"{base}?ticket={tk}", "CONSOLE_TICKET_INVALID")
    # a foreign Origin (a page of another site)
    tk = ticket(cw.am, vm["id"]).json["ticket"]
    refused(f"{base}?ticket={tk}", "CONSOLE_ORIGIN_FORBIDDEN", origin="http://evil.example")
    tk = ticket(cw.am, vm["id"]).json["ticket"]
    refused(f"{base}?ticket={tk}", "CONSOLE_ORIGIN_FORBIDDEN",
            origin=f"https://127.0.0.1:{d.port}")
    # an origin listed in console-allowed-origins
    for origin in ("https://console.example.org", "http://other.example:8080"):
        tk = ticket(cw.am, vm["id"]).json["ticket"]
        status, body = raw_upgrade(d, f"{base}?ticket={tk}", origin=origin)
        assert status == 101, (origin, status, body)
    # another tenant who got hold of the ticket: its browser sends its own session cookie (or
    # a client its token), which names another user than the ticket's
    b_token = cw.bm.user_token
    tk = ticket(cw.am, vm["id"]).json["ticket"]
    refused(f"{base}?ticket={tk}", "CONSOLE_TICKET_INVALID",
            headers={"Cookie": f"theme=dark; nimbus_session={b_token}"})
    tk = ticket(cw.am, vm["id"]).json["ticket"]
    refused(f"{base}?ticket={tk}", "CONSOLE_TICKET_INVALID",
            headers={"Authorization": f"Bearer {b_token}"})
    # the ticket's own user's cookie is fine
    tk = ticket(cw.am, vm["id"]).json["ticket"]
    status, _ = raw_upgrade(d, f"{base}?ticket={tk}",
                            headers={"Cookie": f"nimbus_session={cw.a_token}"})
    assert status == 101
    # a reader may not; another project's VM is not there; a bad type; no token
    r = ticket(cw.ar, vm["id"])
    assert r.status == 403 and r.code == "FORBIDDEN", r
    r = ticket(cw.bm, vm["id"])
    assert r.status == 404 and r.code == "VM_NOT_FOUND", r
    r = ticket(cw.am, vm["id"], kind="spice")
    assert r.status == 400, r
    r = cw.am.request("POST", f"/v1/vms/{vm['id']}/console", {"type": "serial"}, token=None)
    assert r.status == 401, r
    # the ticket request is audited
    assert any(e.get("action") == "console.open" for e in nf.audit_events(cw.admin)), \
        "no console.open in the audit log"
    # expired: 30 s
    tk = ticket(cw.am, vm["id"]).json["ticket"]
    time.sleep(31)
    refused(f"{base}?ticket={tk}", "CONSOLE_TICKET_INVALID")


def nf_uuid():
    import uuid
    return str(uuid.uuid4())


def vnc_response(password, challenge):
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    key = bytes(int(f"{b:08b}"[::-1], 2) for b in password.encode()[:8].ljust(8, b"\0"))
    enc = Cipher(algorithms.TripleDES(key * 3), modes.ECB()).encryptor()
    return enc.update(challenge) + enc.finalize()


class Rfb:
    def __init__(self, ws):
        self.ws, self.buf = ws, b""

    def read(self, n, timeout=60):
        deadline = time.monotonic() + timeout
        while len(self.buf) < n:
            assert time.monotonic() < deadline, f"RFB: wanted {n} bytes, have {len(self.buf)}"
            self.ws.settimeout(10)
            op, payload = self.ws.recv_data()
            assert op == websocket.ABNF.OPCODE_BINARY, op
            self.buf += payload
        out, self.buf = self.buf[:n], self.buf[n:]
        return out


def test_vnc_screen(cw):
    vm = cw.serial_vm
    r = ticket(cw.am, vm["id"], "vnc")
    assert r.status == 201, r
    tk = r.json
    assert tk["type"] == "vnc" and len(tk["password"]) == 8, tk
    ws = websocket.create_connection(ws_url(cw.daemon, tk["url"]), timeout=30,
                                     subprotocols=["binary"])
    try:
        rfb = Rfb(ws)
        assert rfb.read(12) == b"RFB 003.008\n"
        ws.send_binary(b"RFB 003.008\n")
        n = rfb.read(1)[0]
        types = rfb.read(n)
        assert 2 in types and 1 not in types, types  # VNC authentication, never None
        ws.send_binary(b"\x02")
        ws.send_binary(vnc_response(tk["password"], rfb.read(16)))
        assert struct.unpack(">I", rfb.read(4))[0] == 0, "VNC authentication failed"
        ws.send_binary(b"\x01")  # ClientInit, shared
        w, h = struct.unpack(">HH", rfb.read(4))
        bpp = rfb.read(16)[0]
        rfb.read(struct.unpack(">I", rfb.read(4))[0])
        assert w > 0 and h > 0 and bpp in (8, 16, 32)
        # The guest writes a line on its VGA console when ready: ask until it is not blank.
        deadline = time.monotonic() + NEEDLE_TIMEOUT
        while True:
            ws.send_binary(struct.pack(">BBHHHH", 3, 0, 0, 0, w, h))
            assert rfb.read(1)[0] == 0  # FramebufferUpdate
            rfb.read(1)
            nonzero = False
            for _ in range(struct.unpack(">H", rfb.read(2))[0]):
                rx, ry, rw, rh, enc = struct.unpack(">HHHHi", rfb.read(12))
                if enc == 0:
                    nonzero |= any(rfb.read(rw * rh * bpp // 8))
                else:
                    assert enc in (-223, -224), enc  # DesktopSize, LastRect: no payload
            if nonzero:
                break
            assert time.monotonic() < deadline, "the VNC screen stayed blank"
            time.sleep(2)
    finally:
        ws.close()
    # the password is never in the VM's API view
    assert tk["password"] not in json.dumps(cw.am.vm(vm["id"]))


def wait_closed(ws, timeout):
    """True once the server closed the WebSocket (a close frame, or the connection gone)."""
    deadline = time.monotonic() + timeout
    ws.settimeout(2)
    while time.monotonic() < deadline:
        try:
            op, _ = ws.recv_data(control_frame=True)
            if op == websocket.ABNF.OPCODE_CLOSE:
                return True
        except websocket.WebSocketTimeoutException:
            continue
        except (websocket.WebSocketConnectionClosedException, ConnectionError):
            return True
    return False


def test_session_ends_when_token_revoked(cw):
    vm = cw.serial_vm
    tok = cw.am.ok("POST", "/v1/tokens", {"name": "console", "expires_in": 600}, expect=201)
    api = nf.UserApi(cw.daemon, tok["token"])
    r = ticket(api, vm["id"])
    assert r.status == 201, r
    ws = websocket.create_connection(ws_url(cw.daemon, r.json["url"]), timeout=30,
                                     subprotocols=["binary"])
    try:
        # open and working: a command's output comes back
        Reader(ws).wait_for(b"nimbus-9", send=b"echo nimbus-$((3*3))\n", every=5)
        # still open a while later, while the token holds
        assert not wait_closed(ws, 5)
        cw.am.ok("DELETE", f"/v1/tokens/{tok['id']}", expect=(200, 204))
        assert wait_closed(ws, 30), "the console stayed open after its token was revoked"
    finally:
        ws.close()


def test_session_ends_when_vm_stops(cw):
    vm = cw.serial_vm
    ws = open_serial(cw, vm["id"])
    try:
        cw.am.action(vm["id"], "stop", body={"force": True}, wait=False)
        assert wait_closed(ws, 90), "the console stayed open after the VM stopped"
    finally:
        ws.close()
    cw.am.wait_vm_state(vm["id"], "stopped", timeout=120)
    r = ticket(cw.am, vm["id"])
    assert r.status == 409 and r.code == "VM_NOT_RUNNING", r
    cw.am.delete_vm(vm["id"])


def test_wss_over_https(cw, tmp_path):
    """Over HTTPS, libmicrohttpd relays the upgraded connection through TLS itself (a socketpair
    on the connection's thread): the console works the same over wss://."""
    cert, key = str(tmp_path / "server.crt"), str(tmp_path / "server.key")
    p = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                        "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                        "-days", "1", "-keyout", key, "-out", cert],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    d = cw.daemon
    saved = list(d.extra_args)
    d.stop()
    d.extra_args = saved + ["--tls-cert", cert, "--tls-key", key]
    vm_id = None
    try:
        offset = os.path.getsize(d.log_path)
        d.start(wait_ready=False)

        def listening():
            with open(d.log_path, errors="replace") as f:
                f.seek(offset)
                m = re.search(r"listening on https://127\.0\.0\.1:(\d+)", f.read())
            return m and int(m.group(1))
        port = nf.wait_until(listening, 30, "nimbusd over HTTPS")
        ctx = ssl.create_default_context(cafile=cert)

        def call(method, path, body=None):
            c = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=30)
            hdrs = {"Authorization": f"Bearer {cw.a_token}"}
            data = None
            if body is not None:
                data = json.dumps(body).encode()
                hdrs["Content-Type"] = "application/json"
            c.request(method, path, body=data, headers=hdrs)
            r = c.getresponse()
            out = r.status, json.loads(r.read() or b"null")
            c.close()
            return out

        def wait_task(task_id):
            def done():
                st, t = call("GET", f"/v1/tasks/{task_id}")
                return t if t and t.get("state") in ("succeeded", "failed") else None
            t = nf.wait_until(done, nf.TASK_TIMEOUT, f"task {task_id}", interval=0.5)
            assert t["state"] == "succeeded", t

        nf.wait_until(lambda: call("GET", "/v1/vms")[0] == 200, 30, "the API over HTTPS")
        st, r = call("POST", "/v1/vms", {"name": "cw-tls", "image": cw.img["id"],
                                         "flavor": "cw-small"})
        assert st == 202, r
        vm_id = r["vm"]["id"]
        cw.env.remember(vm_id)
        wait_task(r["task"]["id"])
        st, tk = call("POST", f"/v1/vms/{vm_id}/console", {"type": "serial"})
        assert st == 201, tk
        # the page's origin is https:// now: http:// is another origin
        st, tk2 = call("POST", f"/v1/vms/{vm_id}/console", {"type": "serial"})
        with pytest.raises(websocket.WebSocketBadStatusException) as e:
            websocket.create_connection(f"wss://127.0.0.1:{port}{tk2['url']}", timeout=30,
                                        sslopt={"ca_certs": cert},
                                        origin=f"http://127.0.0.1:{port}")
        assert e.value.status_code == 403
        ws = websocket.create_connection(f"wss://127.0.0.1:{port}{tk['url']}", timeout=30,
                                         subprotocols=["binary"], sslopt={"ca_certs": cert},
                                         origin=f"https://127.0.0.1:{port}")
        try:
            Reader(ws).wait_for(b"nimbus-42", send=b"echo nimbus-$((6*7))\n", every=5)
            # A daemon stopping with a console open closes it and exits (in a few seconds: each
            # session looks every 3 s), rather than hang or crash on a freed connection.
            t0 = time.monotonic()
            assert d.stop(timeout=30) == 0
            assert time.monotonic() - t0 < 15
            assert wait_closed(ws, 10)
        finally:
            ws.close()
    finally:
        d.stop()
        d.extra_args = saved
        d.start()
        if vm_id:
            cw.am.delete_vm(vm_id)
