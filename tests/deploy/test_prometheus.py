"""The monitoring artefacts: deploy/prometheus (rules and scrape config pass promtool, the rules' unit tests
pass) and deploy/grafana (every query is valid PromQL); every metric they name exists in the running
gateway, and every outcome the rules name is one the code counts."""

from __future__ import annotations

import json
import re
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.deploy.tools import run_tool
from tests.procs import ZERO_PORTS, gbagw_process

ROOT = Path(__file__).resolve().parents[2]
PROM = ROOT / "deploy" / "prometheus"
DASHBOARD = ROOT / "deploy" / "grafana" / "gbagw-dashboard.json"
# Sample names by metric type: a counter's TYPE line names it with or without _total (by the
# exposition format's version), a histogram's samples are its buckets, count and sum.
_SUFFIXES = {"counter": ("", "_total"), "gauge": ("",), "histogram": ("_bucket", "_count", "_sum")}


def _promtool(*args: str, cwd: Path = PROM) -> str:
    return run_tool("promtool", *args, cwd=cwd)


def _exprs() -> list[str]:
    doc = yaml.safe_load((PROM / "gbagw-rules.yaml").read_text())
    return [rule["expr"] for group in doc["groups"] for rule in group["rules"]]


def _dashboard_exprs() -> list[str]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [target["expr"] for panel in panels for target in panel["targets"]]


def test_rules_and_config_pass_promtool() -> None:
    assert "SUCCESS: 13 rules found" in _promtool("check", "rules", "gbagw-rules.yaml")
    assert "SUCCESS" in _promtool("check", "config", "prometheus.yml")


def test_rules_unit_tests() -> None:
    assert "SUCCESS" in _promtool("test", "rules", "gbagw-rules.test.yaml")


@pytest.mark.e2e
def test_rules_and_dashboard_name_metrics_the_gateway_exports(tmp_path: Path) -> None:
    with gbagw_process(["up", "--data-dir", str(tmp_path)], tmp_path, ZERO_PORTS, "up") as up:
        admin = up.wait_for(r"admin: (http://\S+)/metrics").group(1)
        with urllib.request.urlopen(admin + "/metrics", timeout=10) as r:  # noqa: S310 - loopback test URL
            exposition = r.read().decode()
    exported = {
        name + suffix
        for name, kind in re.findall(r"^# TYPE (\S+) (\S+)$", exposition, re.M)
        for suffix in _SUFFIXES.get(kind, ("",))
    }
    named = {n for expr in _exprs() + _dashboard_exprs() for n in re.findall(r"\b(?:gbagw|process)_\w+", expr)}
    assert named and named <= exported, sorted(named - exported)


def test_rules_label_values_are_ones_the_code_emits() -> None:
    """Outcome and result values in the rules appear as literals where the services count them."""
    sources = "".join((ROOT / p).read_text() for p in ("bsf/ub.py", "hss_stub/zh.py", "bsf/mef/server.py"))
    values = {v for expr in _exprs() for group in re.findall(r'outcome=~?"([^"]+)"', expr) for v in group.split("|")}
    assert values and all(f'"{v}"' in sources for v in values), sorted(v for v in values if f'"{v}"' not in sources)


def test_dashboard_queries_are_valid_promql(tmp_path: Path) -> None:
    """promtool parses each panel query, as a recording rule (Grafana's $__rate_interval set to 5m)."""
    dashboard = json.loads(DASHBOARD.read_text())
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])
    assert all(t["datasource"]["uid"] == "${datasource}" for p in dashboard["panels"] for t in p["targets"])
    rules = [
        {"record": f"gbagw:dashboard_query_{i}", "expr": expr.replace("$__rate_interval", "5m")}
        for i, expr in enumerate(_dashboard_exprs())
    ]
    (tmp_path / "queries.yaml").write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    assert f"SUCCESS: {len(rules)} rules found" in _promtool("check", "rules", "queries.yaml", cwd=tmp_path)


def test_every_alert_has_its_runbook_section() -> None:
    """Each alert's runbook annotation is a section of docs/runbook.md, and each section is an alert."""
    doc = yaml.safe_load((PROM / "gbagw-rules.yaml").read_text())
    alerts = {rule["alert"]: rule["annotations"]["runbook"] for group in doc["groups"] for rule in group["rules"]}
    sections = re.findall(r"^## (\S+)$", (ROOT / "docs" / "runbook.md").read_text(), re.M)
    assert sorted(sections) == sorted(alerts)
    for alert, runbook in alerts.items():
        path, _, anchor = runbook.partition("#")
        assert path == "docs/runbook.md" and anchor == alert.lower(), (alert, runbook)  # GitHub's heading anchor
