"""`python bench/run.py` (the operations issue's table) still runs end to end and prints every row with
its ratio. A smoke run with short cells: no figure is asserted, only that each one is there."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ROWS = (
    "Ub bootstraps, SQLite, 1 UEs",
    "Ub bootstraps, SQLite, 10 UEs",
    "Ub bootstraps, SQLite, 50 UEs",
    "Zn BIR/BIA, 1 in flight",
    "Zn BIR/BIA, 50 in flight",
    "Ub bootstraps, Redis, 1 BSF, 50 UEs",
    "Ub bootstraps, Redis, 2 BSF, 50 UEs",
)


@pytest.mark.e2e
def test_bench_run_prints_every_row_with_its_baseline_and_ratio() -> None:
    r = subprocess.run(
        [sys.executable, "bench/run.py", "--seconds", "0.3", "--n", "100"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    lines = r.stdout.splitlines()
    for what in ROWS:
        (row,) = [line for line in lines if line.startswith(what + "  ")]
        assert re.search(r"(bare aiohttp|pd echo) [\d,]+/s", row), row
        assert float(row.split()[-1]) > 0, row  # the ratio column
        if what.startswith("Ub"):
            (core,) = [line for line in lines if line.startswith(f"  {what}: BSF ")]
            assert re.search(r"bare server [\d,]+ pairs/s: \d\.\d\d / \d\.\d\d$", core), core
