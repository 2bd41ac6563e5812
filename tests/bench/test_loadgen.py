"""`python bench/loadgen.py` prints the load generator's cost per request pair against bare servers
slowed by a fixed CPU time per request, and gbagw's bootstraps beside them. A smoke run with short
cells; the one figure checked is the one the script is built on: the slowed server burns its time."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ROW = re.compile(r"^(?P<name>.+?)\s+(?P<rate>[\d,]+)\s+(?P<server>\d+)\s+(?P<client>\d+)\s+\d\.\d\d/\d\.\d\d$")


@pytest.mark.e2e
def test_loadgen_prints_the_ceiling_the_slowed_server_and_gbagw() -> None:
    r = subprocess.run(
        [sys.executable, "bench/loadgen.py", "--seconds", "0.5", "--ues", "10", "--spins", "0,200"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    rows = {m["name"]: m for line in r.stdout.splitlines() if (m := ROW.match(line))}
    assert set(rows) == {"bare aiohttp (the ceiling)", "bare aiohttp + 200 us/request", "gbagw bootstraps (BSF + HSS)"}
    ceiling, spun = rows["bare aiohttp (the ceiling)"], rows["bare aiohttp + 200 us/request"]
    # 2 x 200 µs burned per pair; a busy wait descheduled by the other processes burns less CPU than
    # wall time, hence the margin.
    assert int(spun["server"]) - int(ceiling["server"]) >= 200, r.stdout
    assert all(int(m["client"]) > 0 for m in rows.values()), r.stdout
