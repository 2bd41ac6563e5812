"""The monitoring artefacts: deploy/prometheus (rules and scrape config pass promtool, the rules' unit tests
pass) and deploy/grafana (every query is valid PromQL, and shows `gbagw up` scraped by a real Prometheus);
every metric they name exists in the running gateway, and every outcome the rules name is one the code
counts."""

from __future__ import annotations

import json
import re
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.tools import DASHBOARD, dashboard_panels, find_tool, panels_without_data, run_tool
from tests.procs import ZERO_PORTS, free_port, gbagw_process, run_cli

ROOT = Path(__file__).resolve().parents[2]
PROM = ROOT / "deploy" / "prometheus"
# Sample names by metric type: a counter's TYPE line names it with or without _total (by the
# exposition format's version), a histogram's samples are its buckets, count and sum.
_SUFFIXES = {"counter": ("", "_total"), "gauge": ("",), "histogram": ("_bucket", "_count", "_sum")}


def _promtool(*args: str, cwd: Path = PROM) -> str:
    return run_tool("promtool", *args, cwd=cwd)


def _exprs() -> list[str]:
    doc = yaml.safe_load((PROM / "gbagw-rules.yaml").read_text())
    return [rule["expr"] for group in doc["groups"] for rule in group["rules"]]


def _dashboard_exprs() -> list[str]:
    return [expr for _, expr in dashboard_panels()]


def test_rules_and_config_pass_promtool() -> None:
    assert "SUCCESS: 14 rules found" in _promtool("check", "rules", "gbagw-rules.yaml")
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


K = "465b5ce8b199b49faa5f0a2ee238a6bc"
OP = "cdc202d5123e20f62b6d676ac72cb318"
KPM = bytes(range(100, 132)).hex()
UP_CONFIG = f"""
[[mef.enrolees]]
enrolee_id = "CAE-psk"
kpm_id = "kpm-1"
kpm = "{KPM}"
targets = ["maf.gba.test"]
"""


@contextmanager
def _prometheus(target: str, tmp: Path) -> Iterator[str]:
    """Debian's prometheus (the promtool package's server) scraping ``target`` every second; its URL."""
    port = free_port()
    config = {"global": {"scrape_interval": "1s"}, "scrape_configs": [{"job_name": "gbagw-up",
              "static_configs": [{"targets": [target]}]}]}  # fmt: skip
    (tmp / "prometheus.yml").write_text(yaml.safe_dump(config))
    args = [f"--config.file={tmp / 'prometheus.yml'}", f"--storage.tsdb.path={tmp / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}"]  # fmt: skip
    with (tmp / "prometheus.log").open("w") as log:
        server = subprocess.Popen([find_tool("prometheus"), *args], stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(url + "/-/ready", timeout=2):  # noqa: S310 - loopback test URL
                    break
            except OSError:
                assert time.monotonic() < deadline, (tmp / "prometheus.log").read_text()[-3000:]
                time.sleep(0.2)
        yield url
    finally:
        server.terminate()
        server.wait(10)


@pytest.mark.e2e
def test_every_dashboard_panel_shows_gbagw_up_scraped_by_prometheus(tmp_path: Path) -> None:
    """Every panel's query, as Grafana sends it, against a real Prometheus scraping `gbagw up` (all services
    in one process, the MEF's too) after real traffic in two rounds: bootstraps, a resynchronisation,
    Zn, Ua, enrolments, a refused handshake and Km. The compose lab's run of the same check
    (tests/deploy/test_container.py) has no MEF."""
    (tmp_path / "gbagw.toml").write_text(UP_CONFIG)
    data = ["--data-dir", str(tmp_path)]
    with gbagw_process(["up", "--config", str(tmp_path / "gbagw.toml"), *data], tmp_path, ZERO_PORTS, "up") as up:
        ub = up.wait_for(r"bsf: Ub on (http://\S+/)").group(1)
        zn = up.wait_for(r"bsf: Zn Diameter on [\d.]+:(\d+)").group(1)
        naf = up.wait_for(r"naf: demo NAF on (http://\S+/)").group(1)
        mef = up.wait_for(r"mef: Enrolee TLS-PSK on [\d.]+:(\d+), certificate on :\d+, MAF retrieval on :(\d+)")
        admin = up.wait_for(r"admin: http://(\S+)/metrics").group(1)
        impi = "001010000000079@ims.mnc001.mcc001.3gppnetwork.org"
        add = ["hss", "add-subscriber", *data, "--impi", impi, "--k", K, "--op", OP]
        state = str(tmp_path / "ue.json")
        pki = tmp_path / "pki"

        def cli(*args: str, code: int = 0) -> str:
            r = run_cli(list(args), env={"GBAGW_NAF_BSF_PORT": zn})
            assert r.returncode == code, (args, r.stdout, r.stderr)
            return r.stdout

        def traffic() -> None:
            cli("ue", "bootstrap", "--bsf", ub, "--impi", impi, "--k", K, "--op", OP, "--state", state)
            cli("ue", "ua-get", "--state", state, "--url", naf + "hello", "--naf-fqdn", "naf.gba.test")
            btid = json.loads((tmp_path / "ue.json").read_text())["bootstrap"]["btid"]
            cli("naf", "fetch-key", "--btid", btid, "--naf-fqdn", "naf.gba.test")
            enrol = ["enrolee", "enrol", "--mef", f"tls://127.0.0.1:{mef.group(1)}", "--psk-id"]
            keid = json.loads(cli(*enrol, "kpm-1", "--psk", KPM, "--json"))["keid"]
            cli(*enrol, "kpm-unknown", "--psk", KPM, code=3)  # refused in the handshake
            cli("naf", "fetch-km", "--mef", f"tls://127.0.0.1:{mef.group(2)}", "--keid", keid,
                "--cert", str(pki / "maf.gba.test.pem"), "--key", str(pki / "maf.gba.test.key"),
                "--ca", str(pki / "ca.pem"))  # fmt: skip

        with _prometheus(admin, tmp_path) as prometheus:
            cli(*add)
            traffic()
            time.sleep(3)  # a few scrapes: each labelled series exists before the second round counts
            cli("hss", "remove-subscriber", *data, "--impi", impi)
            cli(*add)  # back at SQN 0, behind the UE's state: the next bootstrap resynchronises
            traffic()

            def query(expr: str) -> list[dict[str, Any]]:
                q = urllib.parse.urlencode({"query": expr.replace("$__rate_interval", "1m")})
                with urllib.request.urlopen(f"{prometheus}/api/v1/query?{q}", timeout=5) as r:  # noqa: S310
                    result: list[dict[str, Any]] = json.load(r)["data"]["result"]
                return result

            deadline = time.monotonic() + 15
            while wrong := panels_without_data(dashboard_panels(), query, processes=1, bsfs=1):
                assert time.monotonic() < deadline, wrong
                time.sleep(1)
