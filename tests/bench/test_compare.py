"""`python bench/compare.py A B` runs both trees' labs side by side and prints their paired ratios. A
smoke run of this tree against itself with short cells, the second lab under ``--python-b``: the lines
are there, no figure is asserted."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.e2e
def test_compare_prints_each_tree_with_its_paired_ratios() -> None:
    # The second lab's servers under another path to this venv's interpreter, as for comparing two.
    exe = Path(sys.executable)
    other = next(str(p) for p in (exe.with_name("python3"), exe.with_name("python")) if p != exe and p.exists())
    args = [".", str(ROOT), "--rounds", "2", "--seconds", "0.3", "--ues", "5", "--python-b", other]
    r = subprocess.run(
        [sys.executable, "bench/compare.py", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    lines = [line for line in r.stdout.splitlines() if line.startswith(str(ROOT))]
    assert len(lines) == 2, r.stdout
    assert lines[0].endswith("CPU x1.000, rate x1.000")  # the reference against itself
    assert lines[1].startswith(f"{ROOT} ({other}): ")
    assert re.search(
        r"[\d,]+ bootstraps/s, CPU us per bootstrap \d+ \(BSF \d+, HSS\+ \d+, UEs \d+\); CPU x\d", lines[1]
    )
