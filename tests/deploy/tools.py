"""The external tools the deploy checks run (helm, promtool, hadolint, docker-compose, docker), and the
chart rendered with helm."""

from __future__ import annotations

import base64
import json
import math
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from tests.required_tools import require

CHART = Path(__file__).resolve().parents[2] / "deploy" / "helm" / "gbagw"
DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "gbagw-dashboard.json"
LAB_KEK = base64.b64encode(bytes(range(32))).decode()

# ``name`` beside the venv's python or on PATH; without it the test fails with the install line.
find_tool = require


def run_tool(name: str, *args: str, cwd: Path | None = None, timeout: float = 60) -> str:
    """``name``'s stdout. Fails the test with the tool's output unless it exits 0."""
    r = subprocess.run([find_tool(name), *args], capture_output=True, text=True, timeout=timeout, cwd=cwd)
    assert r.returncode == 0, f"{name} {' '.join(args)}: exit {r.returncode}\n{r.stdout}\n{r.stderr}"
    return r.stdout


def helm_values_file(overrides: dict[str, Any], tmp_path: Path) -> str:
    """A values file setting each dotted path in ``overrides`` (helm merges it over values.yaml), with
    a lab KEK unless ``overrides`` says otherwise: the chart renders nothing without one."""
    values: dict[str, Any] = {}
    if not any(path.startswith("kek.") for path in overrides):
        overrides = {"kek.value": LAB_KEK, **overrides}
    for path, value in overrides.items():
        node = values
        *parents, leaf = path.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    f = tmp_path / "overrides.yaml"
    f.write_text(yaml.safe_dump(values))
    return str(f)


def helm_manifests(overrides: dict[str, Any], tmp_path: Path) -> list[dict[str, Any]]:
    """``helm template`` of the chart with ``overrides`` (see helm_values_file), one dict per manifest."""
    rendered = run_tool("helm", "template", "lab", str(CHART), "-f", helm_values_file(overrides, tmp_path))
    return [d for d in yaml.safe_load_all(rendered) if d]


def dashboard_panels() -> list[tuple[str, str]]:
    """(title, query) of each target of each panel of the Grafana dashboard."""
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [(p["title"], t["expr"]) for p in panels for t in p["targets"]]


def panels_without_data(
    panels: list[tuple[str, str]], query: Callable[[str], list[dict[str, Any]]], processes: int, bsfs: int
) -> dict[str, object]:
    """The panels whose query, run by ``query`` (a Prometheus instant query, Grafana's $__rate_interval
    already replaced), does not show a lab that had traffic: each must have finite values, each rate one
    above zero, the per-process panels one series per gbagw process, the HSS peer one per BSF. A panel
    whose series starts with the traffic's first count has a rate of 0: traffic comes in two rounds a
    scrape apart, and the resynchronisation panel, whose one resync starts its series, is only asked
    for a value. Returns {title: what it showed}."""
    per_process = {"Processes: CPU (cores)", "Processes: resident memory"}
    wrong: dict[str, object] = {}
    for title, expr in panels:
        series = query(expr)
        finite = [v for v in (float(s["value"][1]) for s in series) if math.isfinite(v)]
        if title in per_process:  # an idle process may use no CPU tick in a window: >= 0
            ok = len(series) == len(finite) == processes and all(v >= 0 for v in finite)
            ok = ok and ("CPU" in title or all(v > 0 for v in finite))
        elif title == "HSS peer up, per BSF":
            ok = finite == [1.0] * bsfs
        elif title == "gbagw versions running (processes per version)":
            ok = finite == [float(processes)]
        elif "rate(" in expr and "histogram_quantile" not in expr and "resynchronisations" not in title:
            ok = bool(finite) and sum(finite) > 0
        else:
            ok = bool(finite)
        if not ok:
            wrong[title] = series
    return wrong
