"""GET /v1/health checks something real: the store answers, and it counts the hosts by their
connection state. No token needed; a store that does not answer is 503 STORE_UNAVAILABLE."""

import os
import sqlite3

import pytest

import nimbus_fixtures as nf


@pytest.fixture(scope="module")
def health_env(make_env):
    env = make_env("health")
    env.daemon.start()
    yield env
    env.teardown()


def health(env):
    return env.api.request("GET", "/v1/health", token=None)


def store_sql(env, sql):
    """Changes the daemon's store from outside, the way a broken disk or a stray tool would."""
    db = sqlite3.connect(os.path.join(env.daemon.state_dir, "nimbus.db"), timeout=30)
    try:
        db.execute(sql)
        db.commit()
    finally:
        db.close()


def test_health_ok_counts_hosts(health_env):
    r = health(health_env)
    assert r.status == 200, r
    body = r.json
    assert body["status"] == "ok" and body["store"] == "ok", body
    assert body["hosts"] == {"total": 1, "up": 1, "down": 0, "connecting": 0}, body

    # A host nobody listens for: it is counted, and ends up down (never up).
    health_env.api.ok("POST", "/v1/hosts",
                      {"name": "nowhere", "uri": "qemu+tcp://127.0.0.1:1/system"}, expect=201)
    body = nf.wait_until(lambda: (lambda b: b if b["hosts"]["down"] == 1 else None)(
        health(health_env).json), 60, "the unreachable host counted down")
    assert body["hosts"] == {"total": 2, "up": 1, "down": 1, "connecting": 0}, body
    assert body["status"] == "ok", "an unreachable host is not the controller's ill health"

    health_env.api.ok("DELETE", "/v1/hosts/nowhere", expect=204)
    body = nf.wait_until(lambda: (lambda b: b if b["hosts"]["total"] == 1 else None)(
        health(health_env).json), 30, "the removed host no longer counted")
    assert body["hosts"]["up"] == 1, body


def test_health_503_when_store_does_not_answer(health_env):
    assert health(health_env).status == 200
    # The hosts table gone: every query of it fails, as it would on a store that lost its file.
    store_sql(health_env, "ALTER TABLE hosts RENAME TO hosts_away")
    try:
        r = health(health_env)
        assert r.status == 503, r
        assert r.code == "STORE_UNAVAILABLE", r
        assert r.json["error"]["request_id"] == r.headers.get("x-request-id"), r
    finally:
        store_sql(health_env, "ALTER TABLE hosts_away RENAME TO hosts")
    r = nf.wait_until(lambda: (lambda x: x if x.status == 200 else None)(health(health_env)), 30,
                      "health ok again once the store answers")
    assert r.json["status"] == "ok", r
