"""GET /metrics: Prometheus text (and OpenMetrics on request) for the control plane, the hosts
and the VMs, guarded by the `metrics` role (or admin). A daemon of its own collects every second
(--metrics-interval 1) on the real libvirtd with one tiny guest; another on a simulated host
(test:///default). Then a real Prometheus (Debian's package) scrapes nimbusd and is queried
through its HTTP API."""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request

import pytest

import nimbus_fixtures as nf

_LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)')


def parse(text):
    """{(name, ((label, value), ...)): float} of a text exposition; checks its shape."""
    out, declared = {}, set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            name = line.split()[2]
            assert name not in declared, f"family {name} declared twice"
            declared.add(name)
            continue
        if not line or line.startswith("#"):
            continue
        m = _LINE.match(line)
        assert m, f"not a sample line: {line!r}"
        labels = []
        if m.group(2):
            pos = 0
            for lm in _LABEL.finditer(m.group(2)):
                assert lm.start() == pos, f"bad labels in {line!r}"
                pos = lm.end()
                v = re.sub(r'\\(.)', lambda e: "\n" if e.group(1) == "n" else e.group(1),
                           lm.group(2))
                labels.append((lm.group(1), v))
            assert pos == len(m.group(2)), f"bad labels in {line!r}"
        key = (m.group(1), tuple(sorted(labels)))
        assert key not in out, f"duplicate series {key}"
        out[key] = float(m.group(3))
    return out


def series(samples, name, **want):
    """Values of name's series whose labels include want."""
    return [v for (n, labels), v in samples.items()
            if n == name and all(dict(labels).get(k) == w for k, w in want.items())]


def one(samples, name, **want):
    vals = series(samples, name, **want)
    assert len(vals) == 1, f"{name}{want}: {len(vals)} series"
    return vals[0]


def scrape(env, token=nf._DEFAULT, accept=None):
    r = env.api.request("GET", "/metrics", token=token,
                        headers={"Accept": accept} if accept else None)
    return r


def metrics(env):
    r = scrape(env)
    assert r.status == 200, r
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4"), r.headers
    return parse(r.text)


@pytest.fixture(scope="module")
def menv(make_env, tiny_image):
    env = make_env("metrics")
    env.daemon.extra_args += ["--metrics-interval", "1"]
    env.daemon.start()
    image = nf.upload_image(env, "m-tiny", tiny_image)
    nf.create_small_flavor(env, "m-small")
    vm = env.api.create_vm("m-vm1", image["id"], "m-small")["vm"]
    env.remember(vm["id"])
    env.vm = env.api.wait_vm_state(vm["id"], "running")
    yield env
    env.api.delete_vm(vm["id"])
    env.teardown()


def test_roles(menv):
    api = menv.api
    r = scrape(menv, token=None)
    assert r.status == 401, r
    r = scrape(menv, token="nbt_" + "0" * 64)
    assert r.status == 401, r
    admin_ok = scrape(menv)
    assert admin_ok.status == 200, admin_ok
    pw = "pw-metrics-123"
    for name, role in (("m-member", "member"), ("m-reader", "reader")):
        _, user_api, _ = nf.make_user(api, name, pw, "default", role)
        r = user_api.request("GET", "/metrics")
        assert r.status == 403 and r.json["error"]["code"] == "FORBIDDEN", r
    _, scraper, login = nf.make_user(api, "m-scraper", pw, "default", "metrics")
    assert login["user"]["role"] == "metrics", login
    r = scraper.request("GET", "/metrics")
    assert r.status == 200 and "nimbus_build_info" in r.text, r
    # Nothing else: not even the reads every other role has.
    for method, path in (("GET", "/v1/vms"), ("GET", "/v1/images"), ("GET", "/v1/flavors"),
                         ("GET", "/v1/projects"), ("GET", "/v1/tasks"), ("GET", "/v1/audit"),
                         ("GET", "/v1/hosts"), ("GET", "/v1/networks"), ("GET", "/v1/users"),
                         ("POST", "/v1/vms"), ("GET", f"/v1/vms/{menv.vm['id']}")):
        r = scraper.request(method, path)
        assert r.status == 403, f"{method} {path} as metrics: {r!r}"
    # Every route of the table but the public ones, /metrics and its own tokens: 403.
    with open(os.path.join(nf.REPO, "src", "api", "api_routes.c")) as f:
        table = f.read()
    routes = re.findall(r'^\s*(?:R\(|\{)"([A-Z]+)", "(/[^"]*)", .*?"([a-z.-]+)"\)?,?\}?,?$',
                        table, re.M)
    assert len(routes) > 50, routes
    checked = 0
    for method, pattern, action in routes:
        if action in ("health", "ready", "auth.login", "metrics.read", "auth.whoami") or \
                action.startswith("token."):
            continue
        path = pattern.replace("{}", "00000000-0000-4000-8000-00000000beef")
        r = scraper.request(method, path, body={} if method in ("POST", "PUT", "PATCH") else
                            nf._DEFAULT)
        assert r.status == 403, f"{method} {path} ({action}) as metrics: {r!r}"
        checked += 1
    assert checked > 50
    # Its own tokens, so that Prometheus gets a long-lived one of its own.
    assert scraper.request("GET", "/v1/auth/whoami").status == 200
    tok = scraper.ok("POST", "/v1/tokens", {"name": "prometheus"}, expect=201)
    assert nf.UserApi(menv.daemon, tok["token"]).request("GET", "/metrics").status == 200
    # The role is one a user may be created with, and a bad role still says which exist.
    r = api.request("POST", "/v1/users", {"name": "m-bad", "password": pw, "project": "default",
                                          "role": "scraper"})
    assert r.status == 400 and "metrics" in r.json["error"]["message"], r


def test_vm_and_host_series(menv):
    vm = menv.vm
    dom = nf.vm_domain(vm["id"])
    labels = dict(domain=dom, vm="m-vm1", vm_id=vm["id"], project="default", flavor="m-small",
                  host="local")

    def cpu():
        s = metrics(menv)
        vals = series(s, "libvirt_domain_info_cpu_time_seconds_total", **labels)
        return (s, vals[0]) if vals else None

    _, first = nf.wait_until(cpu, 30, "the VM's cpu time in /metrics")
    s, second = nf.wait_until(lambda: (lambda c: c if c and c[1] > first else None)(cpu()), 60,
                              "the VM's cpu time to grow")
    assert second > first > 0
    assert one(s, "libvirt_up", host="local") == 1
    assert one(s, "libvirt_domain_info_virtual_cpus", **labels) == 1
    assert one(s, "libvirt_domain_info_maximum_memory_bytes", **labels) == 256 * 1048576
    assert one(s, "libvirt_domain_info_memory_usage_bytes", **labels) > 0
    assert series(s, "libvirt_domain_block_stats_read_bytes_total", **labels)
    nf.wait_until(lambda: max(series(metrics(menv), "libvirt_domain_block_stats_read_requests_total",
                                     **labels) or [0]) > 0, 60, "the guest's disk reads counted")
    assert any(dict(k[1]).get("target_device") == "vda" for k in s
               if k[0] == "libvirt_domain_block_stats_read_requests_total")
    assert series(s, "libvirt_domain_interface_stats_receive_bytes_total", **labels)
    # Only Nimbus's domains: no series names a domain that is not one of its VMs.
    doms = {dict(k[1]).get("domain") for k in s if k[0].startswith("libvirt_domain_")}
    assert doms == {dom}, doms
    # host and control plane
    assert one(s, "nimbus_host_up", host="local") == 1
    assert one(s, "nimbus_host_vms", host="local", state="running") == 1
    assert one(s, "nimbus_host_allocated", host="local", resource="vcpus") == 1
    assert one(s, "nimbus_host_capacity", host="local", resource="vcpus") > 0
    assert one(s, "nimbus_host_allocation_ratio", host="local", resource="cpu") == 4
    assert one(s, "nimbus_hosts", state="up") == 1
    assert one(s, "nimbus_tasks", kind="vm.create", state="succeeded") == 1
    assert one(s, "nimbus_task_duration_seconds_count", kind="vm.create") == 1
    assert one(s, "nimbus_task_duration_seconds_bucket", kind="vm.create", le="+Inf") == 1
    assert one(s, "nimbus_vms", project="default", state="running") == 1
    assert one(s, "nimbus_project_quota_used", project="default", resource="vms") == 1
    assert one(s, "nimbus_build_info") == 1
    assert one(s, "nimbus_task_workers") >= 1


CREATE_STEPS = ("create_disk", "create_seed", "plug_networks", "define", "start")


def test_task_steps_and_store_latency(menv):
    """The VM's create counted each of its steps under its name; the store times its write
    transactions and its reads."""
    s = metrics(menv)
    for step in CREATE_STEPS:
        assert one(s, "nimbus_task_step_duration_seconds_count", kind="vm.create", step=step) == 1
        assert one(s, "nimbus_task_step_duration_seconds_bucket", kind="vm.create", step=step,
                   le="+Inf") == 1
        assert one(s, "nimbus_task_step_duration_seconds_sum", kind="vm.create", step=step) >= 0
    # Only the steps that ran: one task of one kind so far.
    ran = {(dict(k[1])["kind"], dict(k[1])["step"]) for k in s
           if k[0] == "nimbus_task_step_duration_seconds_count"}
    assert ran == {("vm.create", step) for step in CREATE_STEPS}, ran

    def counts():
        m = metrics(menv)
        return (one(m, "nimbus_store_transaction_duration_seconds_count", kind="write"),
                one(m, "nimbus_store_transaction_duration_seconds_count", kind="read"), m)
    writes, reads, m = counts()
    assert writes > 0 and reads > 0
    for kind in ("write", "read"):
        assert one(m, "nimbus_store_transaction_duration_seconds_bucket", kind=kind,
                   le="+Inf") == one(m, "nimbus_store_transaction_duration_seconds_count",
                                     kind=kind)
    # A security group's create is one write transaction (the group and its default rules); a
    # VM's GET is a read.
    g = menv.api.ok("POST", "/v1/secgroups", {"name": "m-sg"}, expect=201)
    try:
        menv.api.get(f"/v1/vms/{menv.vm['id']}")
        writes2, reads2, _ = counts()
        assert writes2 > writes and reads2 > reads, (writes, writes2, reads, reads2)
    finally:
        menv.api.ok("DELETE", f"/v1/secgroups/{g['id']}", expect=204)


def test_api_counters_move(menv):
    def count():
        return series(metrics(menv), "nimbus_api_requests_total", route="/v1/vms/{}",
                      method="GET", status="200") or [0]
    before = count()[0]
    menv.api.get(f"/v1/vms/{menv.vm['id']}")
    menv.api.get(f"/v1/vms/{menv.vm['id']}")
    assert count()[0] == before + 2
    menv.api.request("GET", "/v1/vms/no-such-vm")
    s = metrics(menv)
    assert one(s, "nimbus_api_requests_total", route="/v1/vms/{}", method="GET",
               status="404") >= 1
    # raw paths never become labels: the route is the pattern, unknown paths are "other"
    menv.api.request("GET", "/nowhere/" + "x" * 20)
    s = metrics(menv)
    routes = {dict(k[1])["route"] for k in s if k[0] == "nimbus_api_requests_total"}
    assert "other" in routes and not any("no-such-vm" in r or "xxxx" in r for r in routes), routes
    assert series(s, "nimbus_api_request_duration_seconds_count", route="/v1/vms/{}",
                  method="GET")[0] >= 2
    # a wrong password counts
    before = one(s, "nimbus_login_failures_total")
    r = nf.login(menv.api, "m-nobody", "wrong-password")
    assert r.status == 401
    assert one(metrics(menv), "nimbus_login_failures_total") == before + 1


def test_openmetrics(menv):
    r = scrape(menv, accept="application/openmetrics-text; version=1.0.0,text/plain;q=0.5")
    assert r.status == 200, r
    assert r.headers["content-type"].startswith("application/openmetrics-text; version=1.0.0")
    assert r.text.endswith("# EOF\n")
    assert r.text.count("# EOF") == 1
    assert "# TYPE nimbus_api_requests counter" in r.text
    assert "# TYPE nimbus_api_requests_total" not in r.text
    assert "\nnimbus_api_requests_total{" in r.text
    # the text format has no EOF
    assert "# EOF" not in scrape(menv).text


def test_simulated_host(make_env):
    env = make_env("metrics-sim")
    env.daemon.extra_args += ["--libvirt-uri", "test:///default", "--metrics-interval", "1"]
    env.daemon.start()
    try:
        s = nf.wait_until(lambda: (lambda m: m if series(m, "libvirt_up", host="local") else None)(
            metrics(env)), 30, "a collection on the simulated host")
        assert one(s, "libvirt_up", host="local") == 1
        assert one(s, "nimbus_host_vcpus", host="local") > 0
        # test:///default's own domain "test" is no Nimbus VM: skipped
        assert not [k for k in s if k[0].startswith("libvirt_domain_")], s
    finally:
        env.daemon.stop()


def test_host_sync_figures(make_env):
    """The host registry's looks: one duration histogram over all hosts, and per host when the
    last successful look ended and how many failed; read at the scrape, not from the
    collector's cache (none runs here)."""
    env = make_env("metrics-sync")
    env.daemon.extra_args += ["--libvirt-uri", "test:///default", "--sync-interval", "1",
                              "--metrics-interval", "0"]
    env.daemon.start()
    try:
        def synced(after):
            s = metrics(env)
            v = series(s, "nimbus_host_last_sync_success_timestamp_seconds", host="local")
            return s if v and v[0] > after else None

        s = nf.wait_until(lambda: synced(0), 30, "a successful look at the local host")
        first = one(s, "nimbus_host_last_sync_success_timestamp_seconds", host="local")
        assert abs(first - time.time()) < 60, first
        count = one(s, "nimbus_host_sync_duration_seconds_count")
        assert count >= 1
        assert one(s, "nimbus_host_sync_duration_seconds_bucket", le="+Inf") == count
        assert one(s, "nimbus_host_sync_failures_total", host="local") == 0
        # no per-host label on the histogram
        assert not [k for k in s if k[0].startswith("nimbus_host_sync_duration_seconds")
                    and dict(k[1]).get("host")], s
        # a later look moves the gauge and counts in the histogram (a quiet host is looked at
        # every 3 intervals)
        s = nf.wait_until(lambda: synced(first), 30, "another look at the local host")
        assert one(s, "nimbus_host_sync_duration_seconds_count") > count
    finally:
        env.daemon.stop()


def test_collector_pauses_without_scrapes(make_env):
    """--metrics-idle-after: no scrape for that long (at least 4 intervals) pauses the collector;
    the next scrape wakes it and gets a collection made after it asked."""
    env = make_env("metrics-idle")
    env.daemon.extra_args += ["--libvirt-uri", "test:///default", "--metrics-interval", "1",
                              "--metrics-idle-after", "2"]
    env.daemon.start()
    try:
        first = one(metrics(env), "nimbus_metrics_collection_timestamp_seconds")
        nf.wait_until(lambda: "metrics: no scrape for 4 s" in env.daemon.log_tail(200), 30,
                      "the collector pausing after 4 intervals without a scrape")
        time.sleep(3)  # the cache is now older than two intervals: a scrape waits for a fresh one
        t0 = time.time()
        s = metrics(env)
        took = time.time() - t0
        when = one(s, "nimbus_metrics_collection_timestamp_seconds")
        assert when > first and when >= t0 - 0.05, (first, when, t0)
        assert one(s, "libvirt_up", host="local") == 1
        # collecting again: the next scrapes copy a cache at most two intervals old
        nf.wait_until(lambda: one(metrics(env), "nimbus_metrics_collection_timestamp_seconds")
                      > when, 10, "a collection after the wake-up")
        print(f"\nfirst scrape after the pause waited {took:.2f} s for a collection")
    finally:
        env.daemon.stop()


def _free_port():
    with socket.socket() as so:
        so.bind(("127.0.0.1", 0))
        return so.getsockname()[1]


def _prom_query(port, expr):
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=10) as r:
        body = json.load(r)
    assert body["status"] == "success", body
    return body["data"]["result"]


def test_real_prometheus_scrapes_nimbusd(menv):
    prom = shutil.which("prometheus")
    if not prom:
        pytest.skip("prometheus is not installed (apt-get install prometheus)")
    _, scraper, _ = nf.make_user(menv.api, "m-prom", "pw-prom-12345", "default", "metrics")
    tok = scraper.ok("POST", "/v1/tokens", {"name": "prom"}, expect=201)["token"]
    d = tempfile.mkdtemp(prefix="nimbus-prom-")
    port = _free_port()
    with open(os.path.join(d, "token"), "w") as f:
        f.write(tok)
    cfg = os.path.join(d, "prometheus.yml")
    with open(cfg, "w") as f:
        f.write(f"""global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: nimbus
    metrics_path: /metrics
    authorization:
      type: Bearer
      credentials_file: {d}/token
    static_configs:
      - targets: ['127.0.0.1:{menv.daemon.port}']
rule_files:
  - {nf.REPO}/deploy/prometheus/nimbus-rules.yml
""")
    log = open(os.path.join(d, "log"), "wb")
    p = subprocess.Popen([prom, f"--config.file={cfg}", f"--storage.tsdb.path={d}/data",
                          f"--web.listen-address=127.0.0.1:{port}"],
                         stdout=log, stderr=log, start_new_session=True)
    try:
        vm_id = menv.vm["id"]

        def cpu():
            assert p.poll() is None, open(os.path.join(d, "log")).read()[-3000:]
            try:
                res = _prom_query(port, "libvirt_domain_info_cpu_time_seconds_total"
                                  f'{{vm_id="{vm_id}"}}')
            except OSError:
                return None
            return res or None
        res = nf.wait_until(cpu, 60, "Prometheus to have the VM's cpu time")
        assert res[0]["metric"]["vm"] == "m-vm1" and res[0]["metric"]["job"] == "nimbus", res
        assert float(res[0]["value"][1]) > 0
        res = nf.wait_until(lambda: _prom_query(
            port, 'nimbus_task_duration_seconds_bucket{kind="vm.create",le="+Inf"}') or None,
            30, "a task histogram series")
        assert float(res[0]["value"][1]) >= 1, res
        up = _prom_query(port, 'up{job="nimbus"}')
        assert up and up[0]["value"][1] == "1", up
        # the shipped rules load (Prometheus evaluates them), none is in error
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/rules", timeout=10) as r:
            groups = json.load(r)["data"]["groups"]
        rules = [ru for g in groups for ru in g["rules"]]
        assert rules, "no rules loaded"

        def evaluated():
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/rules",
                                        timeout=10) as r:
                rs = [ru for g in json.load(r)["data"]["groups"] for ru in g["rules"]]
            return rs if all(ru.get("health") == "ok" for ru in rs) else None
        nf.wait_until(evaluated, 30, "every shipped rule evaluated without error")
    finally:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(20)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(10)
        log.close()
        shutil.rmtree(d, ignore_errors=True)
