"""The web console (docs/console.md): its static files as nimbusd serves them (path traversal,
headers), browser sessions (cookie flags, CSRF, logout), and the pages themselves in headless
Chromium and Firefox (tests/web/console-flows.mjs, puppeteer-core driving Debian's chromium and
firefox-esr): every scenario in both, each browser started once for the module. One private
nimbusd for the module. Screenshots go to the test's tmp dir (Firefox's named -firefox); their
paths are printed."""

import http.client
import json
import os
import queue
import secrets
import shutil
import subprocess
import threading
import time
import urllib.parse

import pytest

import nimbus_fixtures as nf

WEB_TESTS = os.path.join(nf.REPO, "tests", "web")
CHROMIUM = os.environ.get("NIMBUS_CHROMIUM", "/usr/bin/chromium")
FIREFOX = os.environ.get("NIMBUS_FIREFOX", "/usr/bin/firefox-esr")
# The browsers the console is tested in, and the Debian package of each.
BROWSERS = {"chromium": (CHROMIUM, "chromium"), "firefox": (FIREFOX, "firefox-esr")}
# The pages the layout test opens (console-flows.mjs, layout) and the widths it opens them at.
PAGES = ["vms", "vm", "images", "flavors", "hosts", "projects", "users", "quotas", "tasks", "audit"]
WIDTHS = [768, 1280]
XSS = "<img src=x onerror=window.__xss=1>"


class W:
    """What the module's tests share."""


@pytest.fixture(scope="module")
def web(make_env, tiny_image, tmp_path_factory):
    env = make_env("web")
    env.daemon.start()
    w = W()
    w.env, w.admin, w.daemon = env, env.api, env.daemon
    w.tiny = tiny_image
    w.shots = str(tmp_path_factory.mktemp("web-screenshots"))
    w.admin.ok("POST", "/v1/projects", {"name": "web-a"}, expect=201)
    w.admin.ok("POST", "/v1/projects", {"name": "web-b"}, expect=201)
    w.admin.ok("POST", "/v1/flavors", {"name": "web-small", "vcpus": 1, "ram_mib": 128,
                                       "disk_gib": 1}, expect=201)
    w.pw = {}
    w.apis = {}
    for name, proj, role in (("a-member", "web-a", "member"), ("a-reader", "web-a", "reader"),
                             ("b-member", "web-b", "member")):
        w.pw[name] = "pw-" + secrets.token_hex(10)
        _, w.apis[name], _ = nf.make_user(w.admin, name, w.pw[name], proj, role)
    yield w
    try:
        nf.delete_all_vms(env)
    finally:
        env.teardown()


def http_raw(daemon, method, target, headers=None, body=None):
    """One request with the target sent exactly as given (no normalisation)."""
    conn = http.client.HTTPConnection("127.0.0.1", daemon.port, timeout=30)
    try:
        conn.putrequest(method, target, skip_accept_encoding=True)
        for k, v in (headers or {}).items():
            conn.putheader(k, v)
        if body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        r = conn.getresponse()
        return nf.Resp(r.status, {k.lower(): v for k, v in r.getheaders()}, r.read())
    finally:
        conn.close()


def session_login(w, user, headers=None):
    """POST /v1/auth/session; returns (Resp, cookie value or None)."""
    body = json.dumps({"user": user, "password": w.pw[user]}).encode()
    r = http_raw(w.daemon, "POST", "/v1/auth/session",
                 {"Content-Type": "application/json", **(headers or {})}, body)
    cookie = None
    sc = r.headers.get("set-cookie", "")
    if sc.startswith("nimbus_session="):
        cookie = sc.split(";", 1)[0].split("=", 1)[1]
    return r, cookie


# ---- the static files ----


def test_index_served_with_security_headers(web):
    for target in ("/", "/index.html"):
        r = http_raw(web.daemon, "GET", target)
        assert r.status == 200, r
        assert r.headers["content-type"].startswith("text/html"), r.headers
        assert b'<script type="module" src="js/app.js">' in r.body
        csp = r.headers.get("content-security-policy", "")
        assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp, csp
        script_src = csp.split("script-src")[1].split(";")[0]
        assert script_src.strip() == "'self'", csp
        assert f"ws://127.0.0.1:{web.daemon.port}" in csp, csp
        assert r.headers.get("x-content-type-options") == "nosniff"
        assert r.headers.get("referrer-policy") == "same-origin"
        assert r.headers.get("cache-control") == "no-cache"


def test_static_types_head_and_etag(web):
    r = http_raw(web.daemon, "GET", "/js/app.js")
    assert r.status == 200 and r.headers["content-type"].startswith("text/javascript"), r
    r = http_raw(web.daemon, "GET", "/css/style.css")
    assert r.status == 200 and r.headers["content-type"].startswith("text/css"), r
    assert "content-security-policy" in r.headers
    h = http_raw(web.daemon, "HEAD", "/js/app.js")
    assert h.status == 200 and h.body == b"", h
    etag = h.headers["etag"]
    again = http_raw(web.daemon, "GET", "/js/app.js", {"If-None-Match": etag})
    assert again.status == 304 and again.body == b"", again


@pytest.mark.parametrize("target", [
    "/../../../../etc/passwd",
    "/js/../../../etc/passwd",
    "/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
    "/js/%2E%2E/%2E%2E/etc/passwd",
    "/..%2f..%2f..%2fetc%2fpasswd",
    "/js%2f..%2f..%2fetc/passwd",
    "/js/..%5c..%5cetc/passwd",
    "/%00index.html",
    "/./index.html",
])
def test_path_traversal_refused(web, target):
    r = http_raw(web.daemon, "GET", target)
    assert r.status in (400, 404), f"{target}: {r!r}"
    assert b"root:" not in r.body


def test_no_listing_no_dotfiles_unknown_is_404(web):
    for target in ("/js", "/js/", "/vendor/", "/.gitignore", "/nope.html", "/vms/123"):
        r = http_raw(web.daemon, "GET", target)
        assert r.status == 404, f"{target}: {r!r}"
        assert "content-security-policy" in r.headers, target


def test_static_read_only_and_api_paths_stay_api(web):
    r = http_raw(web.daemon, "POST", "/index.html", {"Content-Type": "application/json"}, b"{}")
    assert r.status == 405 and r.headers.get("allow") == "GET, HEAD", r
    # Under /v1 every path is the API's: without a token, 401, never a page.
    for target in ("/v1", "/v1/", "/v1/nope", "/v1/../index.html"):
        r = http_raw(web.daemon, "GET", target)
        assert r.status == 401 and r.code == "UNAUTHORIZED", f"{target}: {r!r}"


def test_symlink_in_web_root_not_followed(make_env, tmp_path):
    root = tmp_path / "webroot"
    (root / "sub").mkdir(parents=True)
    (root / "index.html").write_text("<!doctype html><title>x</title>")
    (root / "sub" / "ok.txt").write_text("fine")
    os.symlink("/etc/passwd", root / "passwd.txt")
    os.symlink("/etc", root / "etc")
    env = make_env("web-root")
    env.daemon.extra_args += ["--web-root", str(root)]
    env.daemon.start()
    try:
        assert http_raw(env.daemon, "GET", "/").body.startswith(b"<!doctype html>")
        assert http_raw(env.daemon, "GET", "/sub/ok.txt").body == b"fine"
        for target in ("/passwd.txt", "/etc/passwd"):
            r = http_raw(env.daemon, "GET", target)
            assert r.status == 404 and b"root:" not in r.body, f"{target}: {r!r}"
    finally:
        env.teardown()


# ---- sessions over HTTP ----


def test_session_cookie_flags_and_csrf(web):
    r, cookie = session_login(web, "a-member")
    assert r.status == 201, r
    attrs = [a.strip().lower() for a in r.headers["set-cookie"].split(";")]
    assert "httponly" in attrs and "samesite=strict" in attrs and "path=/" in attrs, attrs
    assert "max-age=28800" in attrs, attrs
    assert "secure" not in attrs, "Secure on plain HTTP: the browser would drop the cookie"
    assert "token" not in r.json, "the session's token must stay in the HttpOnly cookie"
    csrf = r.json["csrf"]
    assert len(csrf) == 64 and cookie and csrf != cookie
    base = {"Cookie": f"nimbus_session={cookie}", "Content-Type": "application/json"}
    body = json.dumps({"name": "csrf-img"}).encode()

    # the cookie alone reads
    who = http_raw(web.daemon, "GET", "/v1/auth/whoami", {"Cookie": f"nimbus_session={cookie}"})
    assert who.status == 200 and who.json["user"]["name"] == "a-member" and who.json["csrf"] == csrf
    # but does not change anything without the header ...
    r = http_raw(web.daemon, "POST", "/v1/images", base, body)
    assert r.status == 403 and r.code == "CSRF_REJECTED", r
    # ... or with a wrong one ...
    r = http_raw(web.daemon, "POST", "/v1/images", {**base, "X-Nimbus-CSRF": "0" * 64}, body)
    assert r.status == 403 and r.code == "CSRF_REJECTED", r
    # ... or with the right one from a foreign origin
    r = http_raw(web.daemon, "POST", "/v1/images",
                 {**base, "X-Nimbus-CSRF": csrf, "Origin": "https://evil.example"}, body)
    assert r.status == 403 and r.code == "CSRF_REJECTED", r
    # the streamed upload too, before any byte is read
    r = http_raw(web.daemon, "PUT", "/v1/images/whatever/file",
                 {"Cookie": f"nimbus_session={cookie}", "Content-Type": "application/octet-stream"},
                 b"x" * 10)
    assert r.status == 403 and r.code == "CSRF_REJECTED", r
    assert not any(i["name"] == "csrf-img" for i in web.apis["a-member"].images())
    # with the header and its own origin it works
    r = http_raw(web.daemon, "POST", "/v1/images",
                 {**base, "X-Nimbus-CSRF": csrf,
                  "Origin": f"http://127.0.0.1:{web.daemon.port}"}, body)
    assert r.status == 201, r
    web.env.remember(r.json["id"])
    web.apis["a-member"].ok("DELETE", f"/v1/images/{r.json['id']}", expect=204)
    # bearer callers (the CLI) are unchanged: no CSRF header needed
    web.apis["a-member"].ok("GET", "/v1/vms")


def test_session_login_rate_limited_and_audited(web):
    r, cookie = session_login(web, "a-reader", {"Origin": "https://evil.example"})
    assert r.status == 403 and r.code == "CSRF_REJECTED" and cookie is None, r
    # same limits as /v1/auth/login: five wrong passwords, then 429 even for the right one
    name = "rl-user"
    web.admin.ok("POST", "/v1/users", {"name": name, "password": "right-pw-123456",
                                       "project": "web-a", "role": "reader"}, expect=201)
    web.pw[name] = "wrong"
    for _ in range(5):
        r, _ = session_login(web, name)
        assert r.status == 401 and r.code == "INVALID_CREDENTIALS", r
    web.pw[name] = "right-pw-123456"
    r, cookie = session_login(web, name)
    assert r.status == 429 and r.code == "TOO_MANY_ATTEMPTS" and cookie is None, r
    logins = [e for e in nf.audit_events(web.admin, limit=50)
              if e["action"] == "auth.login" and e["path"] == "/v1/auth/session"]
    assert any(e["result"] == "INVALID_CREDENTIALS" for e in logins), logins
    assert any(e["result"] == "ok" for e in logins), logins


def test_session_logout_revokes(web):
    r, cookie = session_login(web, "a-reader")
    assert r.status == 201
    csrf = r.json["csrf"]
    jar = {"Cookie": f"nimbus_session={cookie}"}
    # logout is a change too: not without the CSRF header
    r = http_raw(web.daemon, "DELETE", "/v1/auth/session", jar)
    assert r.status == 403 and r.code == "CSRF_REJECTED", r
    r = http_raw(web.daemon, "DELETE", "/v1/auth/session", {**jar, "X-Nimbus-CSRF": csrf})
    assert r.status == 204, r
    sc = r.headers.get("set-cookie", "")
    assert sc.startswith("nimbus_session=;") and "Max-Age=0" in sc, sc
    r = http_raw(web.daemon, "GET", "/v1/auth/whoami", jar)
    assert r.status == 401, r
    out = [e for e in nf.audit_events(web.admin, limit=50) if e["action"] == "auth.logout"]
    assert out and out[0]["user"] == "a-reader" and out[0]["status"] == 204, out


def test_event_stream_with_cookie(web):
    r, cookie = session_login(web, "a-member")
    conn = http.client.HTTPConnection("127.0.0.1", web.daemon.port, timeout=30)
    try:
        conn.request("GET", "/v1/events?since=3600&follow=false",
                     headers={"Cookie": f"nimbus_session={cookie}"})
        resp = conn.getresponse()
        assert resp.status == 200 and resp.getheader("Content-Type") == "text/event-stream"
        assert resp.read().startswith(b": events")
    finally:
        conn.close()


# ---- in the browser ----


@pytest.fixture(scope="module")
def node_tests():
    if not shutil.which("node"):
        pytest.fail("node missing")
    if not os.path.isdir(os.path.join(WEB_TESTS, "node_modules", "puppeteer-core")):
        # CI installs them in scripts/run-tests.sh; a developer's first run does it here.
        p = subprocess.run(["npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund"],
                           cwd=WEB_TESTS, capture_output=True, text=True, timeout=600,
                           env={**os.environ, "PUPPETEER_SKIP_DOWNLOAD": "1"})
        assert p.returncode == 0, f"npm ci in tests/web failed:\n{p.stderr}"
    return WEB_TESTS


@pytest.fixture(params=list(BROWSERS))
def engine(request):
    """The browser a test runs in: the tests that take it run once in each (-k firefox, -k
    chromium pick one)."""
    exe, package = BROWSERS[request.param]
    if not os.path.exists(exe):
        pytest.fail(f"{exe} missing: scripts/install-deps.sh installs Debian's {package}")
    return request.param


class Runner:
    """One browser for the module's scenarios in it: `node console-flows.mjs --serve`, which
    runs each scenario sent on its stdin in a browser context of its own (fresh cookies)."""

    def __init__(self, web, engine):
        self.log = open(os.path.join(web.shots, f"console-flows-{engine}.log"), "w+")
        cfg = {"base": web.daemon.url, "shots": web.shots, "browser": engine,
               "chromium": CHROMIUM, "firefox": FIREFOX}
        self.proc = subprocess.Popen(["node", "console-flows.mjs", "--serve", json.dumps(cfg)],
                                     cwd=WEB_TESTS, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.log, text=True)
        self.lines = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for ln in self.proc.stdout:
            self.lines.put(ln)
        self.lines.put(None)

    def stderr(self):
        self.log.seek(0)
        return self.log.read()[-4000:]

    def run(self, scenario, cfg, timeout=900):
        """The scenario's JSON object, or None (and the node's output) if node ended first."""
        self.proc.stdin.write(json.dumps({"scenario": scenario, "cfg": cfg}) + "\n")
        self.proc.stdin.flush()
        out = []
        deadline = time.monotonic() + timeout
        while True:
            ln = self.lines.get(timeout=max(deadline - time.monotonic(), 0.1))
            if ln is None:
                return None, "".join(out)
            if ln.startswith("{"):
                return json.loads(ln), "".join(out)
            out.append(ln)

    def kill(self):
        """node, and the browser it started: on SIGTERM puppeteer kills the browser first."""
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def close(self):
        try:
            self.proc.stdin.close()
            self.proc.wait(timeout=60)
        except (OSError, subprocess.TimeoutExpired):
            self.kill()
        self.log.close()


@pytest.fixture(scope="module")
def runners(web, node_tests):
    """The module's browsers, each started by the first test that runs in it."""
    started = {}
    yield started
    for r in started.values():
        r.close()


def browser(runners, web, scenario, engine, **cfg):
    r = runners.get(engine)
    if r is not None and r.proc.poll() is not None:
        # node ended (a browser crash, a timeout): whatever it left goes, a new one starts
        r.kill()
        r.log.close()
        r = None
    if r is None:
        r = runners[engine] = Runner(web, engine)
    start = time.monotonic()
    try:
        res, out = r.run(scenario, cfg)
    except (queue.Empty, BrokenPipeError) as e:
        r.kill()
        pytest.fail(f"node {scenario} ({engine}): no answer ({e!r})\n{r.stderr()}")
    assert res is not None, \
        f"node {scenario} ({engine}) ended: rc {r.proc.wait()}\n{out}\n{r.stderr()}"
    print(f"{scenario} in {res.get('browser_version', engine)}: {time.monotonic() - start:.1f} s")
    for s in res.get("screenshots", []):
        print(f"screenshot: {s}")
    assert "error" not in res, \
        f"{scenario} ({engine}) failed: {res['error']}\n{json.dumps(res, indent=1)}"
    if "skipped" in res:
        pytest.skip(f"{scenario} cannot run in {engine}: {res['skipped']}")
    return res


def active_image(web, user, name):
    """An active image of `user`'s project: one already there, or `name` uploaded."""
    api = web.apis[user]
    img = next((i for i in api.images() if i["state"] == "active"), None)
    return img or nf.upload_image_as(api, web.env, name, web.tiny)


@pytest.fixture(scope="module")
def shared_vm(web):
    """One running VM of project web-a, for the browser tests (in both browsers) that need a VM
    but not one of their own: a guest boots once (CI time)."""
    am = web.apis["a-member"]
    img = active_image(web, "a-member", "shared-img")
    r = am.create_vm("shared-vm", img["id"], "web-small")
    vm = {"id": r["vm"]["id"], "name": "shared-vm"}
    web.env.remember(vm["id"])
    am.wait_vm_state(vm["id"], "running")
    yield vm
    am.delete_vm(vm["id"])


def test_browser_member_flow(web, runners, engine):
    vm_name = "web-vm-" + secrets.token_hex(3)
    # its own image name: the page waits for that name's row to turn active
    res = browser(runners, web, "member", engine, user="a-member", password=web.pw["a-member"],
                  image_file=web.tiny, image_name=f"web-tiny-{engine}", vm_name=vm_name,
                  flavor="web-small")
    web.env.remember(res.get("vm_id"))
    assert res["cookie"] == {"httpOnly": True, "sameSite": "Strict", "secure": False, "path": "/",
                             "session_value_length": 68}, res["cookie"]
    assert res["cookie_visible_to_script"] is False
    assert res["create_button"] is True
    # the bar moved and ended at 100 %
    assert 100 in res["progress_seen"] and "100 %" in res["progress_seen"], res["progress_seen"]
    assert res["running_without_reload"] is True, res
    # after the browser gave up on the event stream: a new one caught up (app.js, startEvents)
    assert res["stream_reopened"] is True, res
    assert res["detail_title"] == vm_name
    assert any("type=serial" in h for h in res["console_buttons"]), res["console_buttons"]
    assert res["task_rows"] > 0
    assert res["stopped"] and res["deleted_from_list"] and res["no_reload_after_stop_delete"]
    assert res["cookie_after_logout"] is False
    assert res["whoami_after_logout"] == 401, "logout must revoke the session's token"
    assert not [v for v in web.apis["a-member"].vms() if v["name"] == vm_name]
    assert not [e for e in res["console_errors"] if "Content Security Policy" in e], \
        res["console_errors"]


def test_browser_reader_sees_no_buttons(web, runners, engine, shared_vm):
    # something to list: a VM of project A (shared_vm) and its images, one of them queued
    am = web.apis["a-member"]
    if not [i for i in am.images() if i["name"] == "reader-img"]:
        r = am.ok("POST", "/v1/images", {"name": "reader-img"}, expect=201)
        web.env.remember(r["id"])
    res = browser(runners, web, "reader", engine, user="a-reader", password=web.pw["a-reader"])
    assert res["vm_rows"] >= 1 and res["image_rows"] >= 2, res
    assert res["create_button"] is False
    assert res["action_buttons"] == 0
    assert res["upload_form"] is False and res["image_buttons"] == 0
    assert res["hosts_link_visible"] is False


def test_browser_tenant_isolation_and_xss(web, runners, engine, shared_vm):
    # the other project's VM: shared_vm, of project A
    # an audit record whose target is the payload (the API refuses such names; the path is
    # recorded as sent)
    r = web.apis["b-member"].request("DELETE", "/v1/vms/" + urllib.parse.quote(XSS, safe=""))
    assert r.status == 404, r
    # B needs an image of its own for the create form to be sendable at all
    active_image(web, "b-member", "b-img")
    res = browser(runners, web, "tenant", engine, user="b-member", password=web.pw["b-member"],
                  foreign_vm_id=shared_vm["id"], foreign_vm_name=shared_vm["name"], xss=XSS)
    assert "Not found" in res["not_found_text"] and "not found" in res["not_found_text"], res
    assert res["foreign_name_shown"] is False
    assert XSS in res["xss_not_found_text"], res["xss_not_found_text"]
    assert "INVALID_NAME" in res["create_error_text"], res["create_error_text"]
    assert res["audit_has_payload_text"] is True
    assert res["xss_fired"] is False
    assert res["img_elements"] == 0


def test_browser_pages_at_widths_and_keyboard(web, runners, engine, shared_vm):
    """Every page at tablet (768x1024) and desktop (1280x900) width: the page never scrolls
    sideways (a table may, inside its .table-wrap), and Tab alone reaches the navigation and
    every button, field and link (no focus trap). An admin, who sees every page and button."""
    res = browser(runners, web, "layout", engine, user="web-admin2", password=_admin2(web),
                  vm_id=shared_vm["id"], vm_name=shared_vm["name"])
    pages = res["pages"]
    assert [(p["page"], p["width"]) for p in pages] == \
        [(n, w) for w in WIDTHS for n in PAGES], [(p["page"], p["width"]) for p in pages]
    wide = [p for p in pages if p["scroll_width"] > p["inner_width"]]
    assert not wide, json.dumps(wide, indent=1)
    # Tab from the top reaches each, in the page's order
    missing = [(p["page"], p["width"], p["tab"]) for p in pages
               if p["tab"]["missing"] or not p["tab"]["in_order"]]
    assert not missing, json.dumps(missing, indent=1)
    # among them the nine links of an admin's navigation, and the page's own buttons
    assert all(p["tab"]["nav"] == 9 for p in pages), [(p["page"], p["tab"]) for p in pages]
    own = {p["page"]: p["tab"]["buttons"] - 1 for p in pages if p["width"] == WIDTHS[0]}
    assert all(own[n] > 0 for n in ("vms", "vm", "images", "flavors", "projects", "users",
                                    "quotas")), own
    assert res["keyboard_navigation"] is True
    assert res["skip_link"] == {"hash": "#/images", "focus": "main"}, res["skip_link"]


def test_browser_consoles(web, runners, engine, shared_vm):
    """The serial console takes typing and shows the guest's answer; the VNC screen is not blank
    (POST /v1/vms/{id}/console and its WebSocket: api_console.c)."""
    am = web.apis["a-member"]
    am.wait_console(shared_vm["id"], "NIMBUS-READY")
    marker = secrets.token_hex(3)
    res = browser(runners, web, "consoles", engine, user="a-member", password=web.pw["a-member"],
                  vm_id=shared_vm["id"], marker=marker)
    assert res.get("serial_error") is None, res
    assert res["serial_echo"] is True, res.get("serial_text")
    assert res.get("vnc_error") is None, res
    print(f"VNC canvas: {res['vnc_lit_pixels']} lit pixels")
    assert res["vnc_lit_pixels"] > 0, res


def test_browser_admin_hosts(web, runners, engine):
    res = browser(runners, web, "admin", engine, user="web-admin",
                  password=_admin(web, "web-admin"))
    assert res["hosts_link_visible"] is True
    assert res["host_rows"] == ["local"], res
    # vCPU, RAM and disk, each against the host's capacity
    assert len(res["meters"]) == 3 and all(m["max"] > 0 for m in res["meters"]), res
    assert any(t.startswith("RAM: ") and "MiB" in t for t in res["capacity_text"]), res


def test_browser_images_page_follows_image_events(web, runners, engine):
    am = web.apis["a-member"]
    name = f"live-img-{engine}-" + secrets.token_hex(3)
    res = browser(runners, web, "liveImages", engine, user="a-member", password=web.pw["a-member"],
                  token=am.user_token, image_file=web.tiny, image_name=name)
    if res.get("image_id"):
        web.env.remember(res["image_id"])
    assert res["upload_status"] == 200, res
    assert res["queued_row"] and res["active_row"] and res["deleted_row_gone"], res
    assert res["no_reload"] is True, "the page reloaded instead of following the events"
    assert not [i for i in am.images() if i["name"] == name]


def _admin(web, name):
    """The password of admin user `name`, made on first use (the tests of both browsers share
    it)."""
    if name not in web.pw:
        web.pw[name] = "pw-" + secrets.token_hex(10)
        web.admin.ok("POST", "/v1/users", {"name": name, "password": web.pw[name],
                                           "project": "default", "role": "admin"}, expect=201)
    return web.pw[name]


def _admin2(web):
    return _admin(web, "web-admin2")


def test_browser_admin_pages(web, runners, engine, shared_vm):
    pw = _admin2(web)
    suffix = f"{engine[:2]}{secrets.token_hex(3)}"
    flavor, doomed = f"ui-flavor-{suffix}", f"ui-doomed-{suffix}"
    project, user = f"ui-proj-{suffix}", f"ui-user-{suffix}"
    web.admin.ok("POST", "/v1/flavors", {"name": doomed, "vcpus": 1, "ram_mib": 64,
                                         "disk_gib": 1}, expect=201)
    pa = next(p for p in web.admin.get("/v1/projects")["projects"] if p["name"] == "web-a")
    am = web.apis["a-member"]
    vm_id = shared_vm["id"]
    before = web.admin.get(f"/v1/projects/{pa['id']}/quota")["limits"]
    try:
        res = browser(runners, web, "adminPages", engine, user="web-admin2", password=pw,
                      flavor=flavor, delete_flavor=doomed, project=project, new_user=user,
                      quota_project=pa["id"], vm_id=vm_id)
        assert {"Projects", "Users", "Quotas", "Hosts"} <= set(res["nav_links"]), res["nav_links"]
        assert "128 MiB" in res["flavor_row"] and "100 / 50" in res["flavor_row"], res
        assert any(o.startswith(f"{flavor} ") for o in res["create_form_flavors"]), res
        f = next(x for x in web.admin.get("/v1/flavors")["flavors"] if x["name"] == flavor)
        assert (f["vcpus"], f["ram_mib"], f["disk_gib"]) == (1, 128, 1), f
        assert res["flavor_deleted"] and doomed not in \
            [x["name"] for x in web.admin.get("/v1/flavors")["flavors"]]
        proj = [p for p in web.admin.get("/v1/projects")["projects"] if p["name"] == project]
        assert res["project_created"] and proj
        u = next(x for x in web.admin.get("/v1/users")["users"] if x["name"] == user)
        assert u["role"] == "reader" and u["project_id"] == proj[0]["id"], u
        assert res["user_row"][:3] == [user, "reader", project], res["user_row"]
        # one bar per quota resource, and the chart has been drawn on
        assert res["quota_bars"] == len(before), res
        print(f"usage chart: {res['chart']}; {res['usage_summary']}")
        assert res["chart"]["drawn"] > 500, res["chart"]
        assert web.admin.get(f"/v1/projects/{pa['id']}/quota")["limits"]["vms"] == 7
        assert " / 7 " in res["vms_bar_text"], res["vms_bar_text"]
        assert res["migrate_options"][0] == "automatic", res["migrate_options"]
        # one host: the automatic move is refused by the API, and its message and code show
        print(f"migrate refused: {res['migrate_error']}")
        assert res["migrate_error"].endswith(")") and "(" in res["migrate_error"], res
        assert am.get(f"/v1/vms/{vm_id}")["host"] == "local"
    finally:
        web.admin.ok("PUT", f"/v1/projects/{pa['id']}/quota", before, expect=200)
        for x in web.admin.get("/v1/users")["users"]:
            if x["name"] == user:
                web.admin.ok("DELETE", f"/v1/users/{x['id']}", expect=204)
        for p in web.admin.get("/v1/projects")["projects"]:
            if p["name"] == project:
                web.admin.ok("DELETE", f"/v1/projects/{p['id']}", expect=204)
        for x in web.admin.get("/v1/flavors")["flavors"]:
            if x["name"] in (flavor, doomed):
                web.admin.ok("DELETE", f"/v1/flavors/{x['id']}", expect=204)


def test_browser_reader_sees_no_admin_buttons(web, runners, engine):
    res = browser(runners, web, "readerPages", engine, user="a-reader", password=web.pw["a-reader"])
    assert res["users_link_visible"] is False
    assert res["flavor_form"] is False and res["flavor_buttons"] == 0, res
    assert res["project_form"] is False and res["project_buttons"] == 0, res
    assert res["project_rows"] == ["web-a"], res["project_rows"]
    assert res["user_form"] is False and res["user_buttons"] == 0, res
    assert res["quota_bars"] > 0 and res["quota_form"] is False and res["quota_buttons"] == 0, res
    assert res["chart"]["drawn"] > 500, res["chart"]
