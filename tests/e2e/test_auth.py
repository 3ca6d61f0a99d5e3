"""Logins, login rate limiting, API tokens (create, expire, revoke, list) and secrets never
showing in the audit or the daemon's log (docs/security.md, docs/api/openapi.yaml). Own nimbusd, so the
per-source login limit is not shared with other modules."""

import concurrent.futures
import json
import secrets
import time

import pytest

import nimbus_fixtures as nf

WRONG_PASSWORDS = []  # every wrong password sent, none may be logged


class A:
    pass


@pytest.fixture(scope="module")
def auth(make_env):
    env = make_env("auth")
    env.daemon.start()
    a = A()
    a.env, a.admin, a.daemon = env, env.api, env.daemon
    a.project = a.admin.ok("POST", "/v1/projects", {"name": "auth-p"}, expect=201)
    a.pw, a.users, a.apis, a.logins = {}, {}, {}, {}
    for name in ("alice", "bob", "carol", "rl-user"):
        a.pw[name] = "pw-" + secrets.token_hex(12)
        a.users[name] = a.admin.ok("POST", "/v1/users", {"name": name, "password": a.pw[name],
                                                         "project": "auth-p", "role": "member"},
                                   expect=201)
    for name in ("alice", "bob", "carol"):
        r = nf.login(a.admin, name, a.pw[name])
        assert r.status == 201, f"login {name}: {r!r}"
        a.logins[name] = r.json
        a.apis[name] = nf.UserApi(a.daemon, r.json["token"], name)
    # the shortest token there is, made now so that its minute passes while other tests run
    a.short = a.apis["alice"].ok("POST", "/v1/tokens", {"name": "short", "expires_in": 60},
                                 expect=201)
    a.secrets = [a.daemon.token, a.short["token"], *a.pw.values(),
                 *(l["token"] for l in a.logins.values())]
    yield a
    env.teardown()


def test_login_and_whoami(auth):
    a = auth
    t0 = time.time()
    r = nf.login(a.admin, "alice", a.pw["alice"])
    assert r.status == 201, r
    j = r.json
    assert set(j) >= {"token", "id", "expires_at", "user"}, j
    assert j["user"]["name"] == "alice" and j["user"]["role"] == "member", j
    assert j["user"]["project_id"] == a.project["id"], j
    assert j["user"]["id"] == a.users["alice"]["id"], j
    exp = nf.parse_ts(j["expires_at"])
    assert abs(exp - (t0 + 86400)) < 60, f"login token expires at {j['expires_at']}, not in 24 h"
    a.secrets.append(j["token"])
    api = nf.UserApi(a.daemon, j["token"])
    w = api.get("/v1/auth/whoami")
    assert w["user"]["name"] == "alice" and w["user"]["role"] == "member", w
    assert w["project"] == {"id": a.project["id"], "name": "auth-p"}, w
    assert w["token_id"] == j["id"], w
    assert api.request("GET", "/v1/vms").status == 200
    # the admin's bootstrap token: user admin, project default
    w = a.admin.get("/v1/auth/whoami")
    assert w["user"]["name"] == "admin" and w["user"]["role"] == "admin", w
    assert w["project"]["name"] == "default", w
    # no token, a bad token: 401 UNAUTHORIZED; health and login need none
    for tok in (None, "nbt_" + "0" * 64, j["token"] + "x"):
        r = a.admin.request("GET", "/v1/auth/whoami", token=tok)
        assert (r.status, r.code) == (401, "UNAUTHORIZED"), r
    assert a.admin.request("GET", "/v1/health", token=None).status == 200
    # users never carry a password or hash
    blob = json.dumps(a.admin.get("/v1/users"))
    assert a.pw["alice"] not in blob and "hash" not in blob.lower(), blob
    # password length
    r = a.admin.request("POST", "/v1/users", {"name": "shorty", "password": "1234567",
                                              "project": "auth-p", "role": "member"})
    assert (r.status, r.code) == (400, "INVALID_PASSWORD"), r
    r = a.admin.request("POST", "/v1/users", {"name": "longy", "password": "x" * 1025,
                                              "project": "auth-p", "role": "member"})
    assert (r.status, r.code) == (400, "INVALID_PASSWORD"), r
    r = a.admin.request("POST", "/v1/users", {"name": "alice", "password": "another-pw-1",
                                              "project": "default", "role": "member"})
    assert r.status == 409, f"duplicate user name: {r!r}"


def test_wrong_password_and_unknown_user_look_the_same(auth):
    a = auth
    WRONG_PASSWORDS.append("wrong-" + secrets.token_hex(8))
    r1 = nf.login(a.admin, "alice", WRONG_PASSWORDS[-1])
    r2 = nf.login(a.admin, "no-such-user-" + secrets.token_hex(3), WRONG_PASSWORDS[-1])
    for r in (r1, r2):
        assert (r.status, r.code) == (401, "INVALID_CREDENTIALS"), r
        assert "token" not in r.json
    assert r1.json["error"]["message"] == r2.json["error"]["message"], (r1.json, r2.json)
    assert set(r1.json["error"]) == set(r2.json["error"])
    # alice can still log in
    assert nf.login(a.admin, "alice", a.pw["alice"]).status == 201


def test_too_many_attempts(auth):
    a = auth
    statuses = []
    for i in range(6):
        WRONG_PASSWORDS.append("wrong-" + secrets.token_hex(8))
        r = nf.login(a.admin, "rl-user", WRONG_PASSWORDS[-1])
        statuses.append((r.status, r.code))
    assert statuses[:4] == [(401, "INVALID_CREDENTIALS")] * 4, statuses
    assert statuses[4] in ((401, "INVALID_CREDENTIALS"), (429, "TOO_MANY_ATTEMPTS")), statuses
    assert statuses[5] == (429, "TOO_MANY_ATTEMPTS"), statuses
    # even the right password is refused while limited, with Retry-After
    r = nf.login(a.admin, "rl-user", a.pw["rl-user"])
    assert (r.status, r.code) == (429, "TOO_MANY_ATTEMPTS"), r
    ra = r.headers.get("retry-after")
    assert ra and ra.isdigit() and 1 <= int(ra) <= 60, f"Retry-After: {ra!r}"
    a.rl_until = time.time() + int(ra)
    # another user from the same address is not limited
    assert nf.login(a.admin, "bob", a.pw["bob"]).status == 201


def test_tokens(auth):
    a = auth
    alice, bob = a.apis["alice"], a.apis["bob"]
    t0 = time.time()
    tok = alice.ok("POST", "/v1/tokens", {"name": "ci", "expires_in": 60}, expect=201)
    a.secrets.append(tok["token"])
    assert tok["user_id"] == a.users["alice"]["id"] and tok["name"] == "ci", tok
    exp = nf.parse_ts(tok["expires_at"]) - nf.parse_ts(tok["created_at"])
    assert 55 <= exp <= 65, f"expires_in 60 gave {exp} s: {tok}"
    assert abs(nf.parse_ts(tok["created_at"]) - t0) < 10, tok
    t_api = nf.UserApi(a.daemon, tok["token"])
    assert t_api.get("/v1/auth/whoami")["token_id"] == tok["id"]
    # default 30 days; bounds 60 s .. 366 days
    d = alice.ok("POST", "/v1/tokens", {"name": "default"}, expect=201)
    a.secrets.append(d["token"])
    life = nf.parse_ts(d["expires_at"]) - nf.parse_ts(d["created_at"])
    assert abs(life - 30 * 86400) < 120, d
    for bad in (59, 0, -1, 366 * 86400 + 1, "60"):
        r = alice.request("POST", "/v1/tokens", {"name": "bad", "expires_in": bad})
        assert r.status == 400, f"expires_in {bad!r}: {r!r}"
    longest = alice.ok("POST", "/v1/tokens", {"expires_in": 366 * 86400}, expect=201)
    a.secrets.append(longest["token"])

    # lists: alice sees her own only, never a secret; admin sees all
    mine = alice.get("/v1/tokens")["tokens"]
    assert {t["user_id"] for t in mine} == {a.users["alice"]["id"]}, mine
    assert {tok["id"], d["id"], a.logins["alice"]["id"]} <= {t["id"] for t in mine}
    assert a.logins["bob"]["id"] not in {t["id"] for t in mine}
    assert all("token" not in t for t in mine), mine
    blob = json.dumps(mine)
    assert tok["token"] not in blob and a.logins["alice"]["token"] not in blob
    all_tokens = a.admin.get("/v1/tokens")["tokens"]
    ids = {t["id"] for t in all_tokens}
    assert {tok["id"], a.logins["alice"]["id"], a.logins["bob"]["id"]} <= ids, all_tokens
    assert {a.users["alice"]["id"], a.users["bob"]["id"]} <= {t["user_id"] for t in all_tokens}

    # revoke: 204, then 401; listed with revoked_at
    alice.ok("DELETE", f"/v1/tokens/{tok['id']}", expect=204)
    r = t_api.request("GET", "/v1/auth/whoami")
    assert (r.status, r.code) == (401, "UNAUTHORIZED"), r
    row = [t for t in alice.get("/v1/tokens")["tokens"] if t["id"] == tok["id"]]
    assert row and row[0]["revoked_at"], row
    # another user's token: 404 for a member, and it still works; admin may revoke it
    r = alice.request("DELETE", f"/v1/tokens/{a.logins['bob']['id']}")
    assert (r.status, r.code) == (404, "TOKEN_NOT_FOUND"), r
    assert bob.request("GET", "/v1/auth/whoami").status == 200
    r = alice.request("DELETE", "/v1/tokens/0badc0de-0000-4000-8000-000000000000")
    assert (r.status, r.code) == (404, "TOKEN_NOT_FOUND"), r
    a.admin.ok("DELETE", f"/v1/tokens/{a.logins['bob']['id']}", expect=204)
    r = bob.request("GET", "/v1/auth/whoami")
    assert (r.status, r.code) == (401, "UNAUTHORIZED"), r
    # deleting a user revokes its tokens
    carol = a.apis["carol"]
    assert carol.request("GET", "/v1/auth/whoami").status == 200
    a.admin.ok("DELETE", f"/v1/users/{a.users['carol']['id']}", expect=204)
    r = carol.request("GET", "/v1/auth/whoami")
    assert (r.status, r.code) == (401, "UNAUTHORIZED"), r
    r = nf.login(a.admin, "carol", a.pw["carol"])
    assert (r.status, r.code) == (401, "INVALID_CREDENTIALS"), r
    r = a.admin.request("GET", f"/v1/users/{a.users['carol']['id']}")
    assert (r.status, r.code) == (404, "USER_NOT_FOUND"), r


def test_secrets_never_in_audit_or_log(auth):
    a = auth
    ud = "user-data-secret-" + secrets.token_hex(8)
    a.secrets.append(ud)
    # user-data in a create that fails (the project has no such image), and in one that is
    # refused for its size: neither may leave the secret anywhere
    r = a.apis["alice"].request("POST", "/v1/vms", {"name": "ud", "image": "no-such-image",
                                                    "flavor": "no-such", "user_data": ud})
    assert r.status == 404, r
    r = a.apis["alice"].request("POST", "/v1/vms", {"name": "ud2", "image": "x", "flavor": "y",
                                                    "user_data": ud * 5000})
    assert r.status == 413, r
    events = nf.audit_events(a.admin, limit=1000)
    logins = [e for e in events if e["action"] == "auth.login"]
    results = {e["result"] for e in logins}
    assert {"ok", "INVALID_CREDENTIALS", "TOO_MANY_ATTEMPTS"} <= results, \
        f"login attempts audited with results {results}"
    assert all(e["status"] in (201, 401, 429) for e in logins), logins
    assert all(e["source"] == "127.0.0.1" for e in logins), logins
    failed = [e for e in logins if e["result"] == "INVALID_CREDENTIALS"
              and e["target"] == "rl-user"]
    assert len(failed) >= 4, f"failed logins of rl-user audited: {failed}"
    assert any(e["action"] == "token.create" for e in events) or \
        any(e["path"] == "/v1/tokens" and e["method"] == "POST" for e in events), \
        "token creation not audited"
    blob = json.dumps(events)
    with open(a.daemon.log_path, errors="replace") as f:
        log = f.read()
    for s in a.secrets + WRONG_PASSWORDS:
        assert s not in blob, f"a secret ({s[:6]}...) is in GET /v1/audit"
        assert s not in log, f"a secret ({s[:6]}...) is in the daemon's log"


def test_refused_requests_are_audited(auth):
    """A write refused for want of a valid token (none, garbage, revoked) is in the audit log
    with no user, the source and the route; a failed login has no user either, only the name
    it tried as its target (null, never "")."""
    a = auth
    rid = a.admin.ok("POST", "/v1/tokens", {"name": "to-revoke"}, expect=201)
    assert a.admin.request("DELETE", f"/v1/tokens/{rid['id']}").status == 204
    cases = [("no token", None), ("garbage", "nbt_" + "x" * 40), ("revoked", rid["token"])]
    for what, tok in cases:
        r = a.admin.request("POST", "/v1/networks", {"name": f"anon-{what.replace(' ', '-')}",
                                                     "cidr": "10.99.0.0/24"}, token=tok)
        assert (r.status, r.code) == (401, "UNAUTHORIZED"), (what, r)
    r = nf.login(a.admin, "carol", "not-carols-password")
    assert r.status in (401, 429), r
    events = nf.audit_events(a.admin, limit=1000)
    anon = [e for e in events if e["path"] == "/v1/networks" and e["status"] == 401]
    assert len(anon) == len(cases), anon
    for e in anon:
        assert e["user"] is None and e["project_id"] is None, e
        assert e["source"] == "127.0.0.1" and e["method"] == "POST", e
        assert e["result"] == "UNAUTHORIZED", e
    failed = [e for e in events if e["action"] == "auth.login" and e["target"] == "carol"
              and e["status"] != 201]
    assert failed and all(e["user"] is None and e["project_id"] is None for e in failed), failed
    ok = [e for e in events if e["action"] == "auth.login" and e["status"] == 201]
    assert ok and all(e["user"] and e["project_id"] for e in ok), ok


@pytest.mark.slow
def test_expiry_and_rate_limit_lift(auth):
    """Waits (once, up to ~60 s minus the module's run time) for the 60 s token made at set-up to
    expire and for rl-user's login limit to lift."""
    a = auth
    api = nf.UserApi(a.daemon, a.short["token"])
    exp = nf.parse_ts(a.short["expires_at"])
    assert 55 <= exp - nf.parse_ts(a.short["created_at"]) <= 65, a.short
    if time.time() < exp - 2:
        assert api.request("GET", "/v1/auth/whoami").status == 200, \
            "the 60 s token did not work before its expiry"
    until = max(exp, getattr(a, "rl_until", 0)) + 1.5
    time.sleep(max(0, until - time.time()))
    r = api.request("GET", "/v1/auth/whoami")
    assert (r.status, r.code) == (401, "UNAUTHORIZED"), f"expired token: {r!r}"
    assert hasattr(a, "rl_until"), "test_too_many_attempts did not run"
    r = nf.login(a.admin, "rl-user", a.pw["rl-user"])
    assert r.status == 201, f"rl-user still limited after Retry-After: {r!r}"


def test_per_source_limit(make_env):
    """20 failed logins from one address within a minute (each for a different user, so no
    per-user limit applies) limit every login from it, even a right one. Own nimbusd: the limit
    would lock out the other tests."""
    env = make_env("auth-src")
    env.daemon.start()
    try:
        api = env.api
        api.ok("POST", "/v1/users", {"name": "src-ok", "password": "src-password-1",
                                     "project": "default", "role": "reader"}, expect=201)
        statuses = [nf.login(api, f"ghost-{i}", f"nope-{i}-nope").status for i in range(20)]
        assert statuses[:19] == [401] * 19, statuses
        assert statuses[19] in (401, 429), statuses
        r = nf.login(api, "src-ok", "src-password-1")
        assert (r.status, r.code) == (429, "TOO_MANY_ATTEMPTS"), r
        assert r.headers.get("retry-after", "").isdigit(), r.headers
        # tokens already issued keep working; only logins are limited
        assert api.request("GET", "/v1/auth/whoami").status == 200
    finally:
        env.teardown()


def test_concurrent_attempts_are_limited(make_env):
    """Wrong passwords sent at once cannot slip past the limits while the first ones are still
    being hashed: of 20 simultaneous attempts for one user at most 5 are evaluated (the others
    get 429), and of all attempts from one address at most 20. Own nimbusd (it ends locked)."""
    env = make_env("auth-burst")
    env.daemon.start()
    try:
        api = env.api
        api.ok("POST", "/v1/users", {"name": "burst", "password": "burst-password-1",
                                     "project": "default", "role": "reader"}, expect=201)

        def burst(pairs):
            with concurrent.futures.ThreadPoolExecutor(len(pairs)) as pool:
                return list(pool.map(lambda p: nf.login(api, *p).status, pairs))

        first = burst([("burst", f"wrong-{i}-wrong") for i in range(20)])
        assert set(first) <= {401, 429}, first
        assert 1 <= first.count(401) <= 5, f"attempts evaluated for one user: {first}"
        second = burst([(f"ghost-{i}", f"nope-{i}-nope") for i in range(30)])
        assert set(second) <= {401, 429}, second
        evaluated = first.count(401) + second.count(401)
        assert evaluated <= 20, f"attempts evaluated from one address: {first} {second}"
        print(f"evaluated: {first.count(401)} of 20 for one user, {evaluated} of 50 from one "
              "address")
        r = nf.login(api, "burst", "burst-password-1")
        assert (r.status, r.code) == (429, "TOO_MANY_ATTEMPTS"), r
    finally:
        env.teardown()
