"""The shipped monitoring files: the Prometheus alert rules pass `promtool check rules` and their
unit tests (`promtool test rules`), and the Grafana dashboard is valid JSON whose every query,
like every rule, names only metrics nimbusd exports. No daemon needed."""

import json
import os
import re
import shutil
import subprocess

import pytest

import nimbus_fixtures as nf

PROM_DIR = os.path.join(nf.REPO, "deploy", "prometheus")
RULES = os.path.join(PROM_DIR, "nimbus-rules.yml")
RULE_TESTS = os.path.join(PROM_DIR, "nimbus-rules.test.yml")
DASHBOARD = os.path.join(nf.REPO, "deploy", "grafana", "nimbus.json")
SOURCES = ["src/core/metrics.c", "src/core/metrics_collector.c", "src/api/api_metrics.c"]
HISTOGRAMS = ("nimbus_api_request_duration_seconds", "nimbus_task_duration_seconds",
              "nimbus_task_step_duration_seconds", "nimbus_store_transaction_duration_seconds")
NAME = re.compile(r"\b((?:nimbus|libvirt)_[a-z0-9_]+)\b")


def exported():
    """Every metric name nimbusd writes: the family names in its sources, and the histograms'
    series."""
    names = set()
    for src in SOURCES:
        with open(os.path.join(nf.REPO, src)) as f:
            names.update(re.findall(r'"((?:nimbus|libvirt)_[a-z0-9_]+)[{ "]', f.read()))
    for h in HISTOGRAMS:
        assert h in names, h
        names.update({h + "_bucket", h + "_sum", h + "_count"})
    return names


def referenced(expr):
    # label values and names inside {...} and strings are not metric names
    expr = re.sub(r'"[^"]*"', '""', expr)
    return set(NAME.findall(expr))


def promtool():
    p = shutil.which("promtool")
    if not p:
        pytest.skip("promtool is not installed (apt-get install prometheus)")
    return p


def test_exported_names_look_right():
    names = exported()
    for n in ("libvirt_up", "libvirt_domain_info_cpu_time_seconds_total",
              "libvirt_domain_block_stats_write_requests_total",
              "libvirt_domain_interface_stats_transmit_drops_total", "nimbus_build_info",
              "nimbus_api_requests_total", "nimbus_tasks", "nimbus_host_up",
              "nimbus_project_quota_used", "nimbus_tls_cert_expiry_timestamp_seconds"):
        assert n in names, n
    assert not referenced('x{vm="nimbus_not_a_metric"}')


def test_rules_check():
    p = subprocess.run([promtool(), "check", "rules", RULES], capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "SUCCESS" in p.stdout


def test_rules_unit_tests():
    p = subprocess.run([promtool(), "test", "rules", os.path.basename(RULE_TESTS)],
                       capture_output=True, text=True, cwd=PROM_DIR)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "SUCCESS" in p.stdout


def test_rules_name_exported_metrics():
    names = exported()
    with open(RULES) as f:
        text = f.read()
    exprs = re.findall(r"expr: \|\n((?:\s{10}.*\n)+)|expr: (.*)", text)
    assert len(exprs) >= 10
    alerts = set(re.findall(r"alert: (\w+)", text))
    for a in ("NimbusHostDown", "NimbusHostOvercommitted", "NimbusVmCrashed", "NimbusTaskStuck",
              "NimbusTaskFailureRate", "NimbusApi5xxRate", "NimbusTlsCertExpiring",
              "NimbusQuotaNearlyExhausted", "NimbusReconcilerStale"):
        assert a in alerts, a
    for block, line in exprs:
        used = referenced(block or line)
        assert used or (block or line).startswith("up{"), block or line  # Prometheus's own
        assert used <= names, f"{used - names} in {block or line!r}"


def test_dashboard_queries_name_exported_metrics():
    with open(DASHBOARD) as f:
        dash = json.load(f)
    names = exported()
    exprs = []

    def walk(panels):
        for p in panels:
            exprs.extend(t["expr"] for t in p.get("targets", []))
            walk(p.get("panels", []))
    walk(dash["panels"])
    for v in dash["templating"]["list"]:
        if v["type"] == "query":
            exprs.append(v["query"]["query"] if isinstance(v["query"], dict) else v["query"])
    assert len(exprs) > 30
    rows = {p["title"] for p in dash["panels"] if p["type"] == "row"}
    assert rows == {"Cluster overview", "Per host", "Per project", "Per VM", "Control plane"}
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    seen = set()
    for e in exprs:
        used = referenced(e)
        assert used, f"query names no Nimbus metric: {e!r}"
        assert used <= names, f"{used - names} in {e!r}"
        seen |= used
    # every libvirt_* family the inovex dashboards use is shown somewhere
    assert {n for n in names if n.startswith("libvirt_domain_")} <= seen
