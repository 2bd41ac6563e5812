"""./test.sh is the README's test command and the first step of .ci/run (issue 24 item 3): they cannot
drift, and on a machine without the programs the tests run it names them and the install line."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.required_tools import APT, install_line, require

ROOT = Path(__file__).resolve().parents[2]


def test_the_readme_and_ci_run_the_same_script() -> None:
    readme = (ROOT / "README.md").read_text()
    assert re.search(r"^bash \./test\.sh +# test", readme, re.MULTILINE)
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert "bash ./test.sh" in ci and "pytest\n" not in "\n".join(ci)  # CI adds only the container tests
    assert "bash ./test.sh" in (ROOT / "docs" / "development.md").read_text()


def test_the_script_installs_what_the_tests_require() -> None:
    (tools,) = re.findall(r'^tools="([^"]+)"', (ROOT / "test.sh").read_text(), re.MULTILINE)
    assert dict(pair.split(":") for pair in tools.split()) == APT


def test_without_root_it_names_what_is_missing_and_the_install_line(tmp_path: Path) -> None:
    """A PATH holding only what the script itself needs, and an id that is not root's."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("bash", "python3", "dirname", "sort"):
        found = shutil.which(name)
        assert found is not None
        (bin_dir / name).symlink_to(found)
    (bin_dir / "id").write_text("#!/bin/sh\necho 1000\n")
    (bin_dir / "id").chmod(0o755)
    env = {"PATH": str(bin_dir), "HOME": os.environ.get("HOME", "/")}
    r = subprocess.run(
        [str(bin_dir / "bash"), str(ROOT / "test.sh")], capture_output=True, text=True, env=env, timeout=30
    )
    assert r.returncode == 1 and r.stdout == ""
    (line,) = [x for x in r.stderr.splitlines() if x.startswith("    sudo apt-get install -y --no-install-recommends ")]
    # python3-venv too when this python3 has no ensurepip (a pyenv shim out of its PATH, say)
    assert set(line.split()[5:]) - {"python3-venv"} == set(APT.values()), r.stderr


def test_a_missing_program_fails_the_test_with_the_install_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setattr("sys.executable", "/nonexistent/python")
    with pytest.raises(pytest.fail.Exception, match=r"promtool is required: apt-get install prometheus"):
        require("promtool")
    assert install_line("helm").startswith("helm is required: .ci/install-helm .venv/bin")
