"""Core dumps are off in every gbagw process (docs/security.md, "Secrets in process memory and files")."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.procs import ZERO_PORTS, run_cli, start_gbagw

K = "465b5ce8b199b49faa5f0a2ee238a6bc"
OP = "cdc202d5123e20f62b6d676ac72cb318"
IMPI = "001010123456789@ims.mnc001.mcc001.3gppnetwork.org"


def test_forbid_core_dumps_clears_rlimit_and_dumpable() -> None:
    # In a child: the test process itself must stay dumpable for debuggers.
    code = (
        "import resource; from gbaio import process; "
        "before = process.dumpable(); process.forbid_core_dumps(); "
        "print(before, process.dumpable(), resource.getrlimit(resource.RLIMIT_CORE))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True)
    assert out.stdout.split(" ", 2) == ["True", "False", "(0, 0)\n"]


def test_raise_fd_limit_lifts_the_soft_limit_to_the_hard_one() -> None:
    code = (
        "import resource; from gbaio import process; "
        "resource.setrlimit(resource.RLIMIT_NOFILE, (256, 4096)); "
        "print(process.raise_fd_limit(), resource.getrlimit(resource.RLIMIT_NOFILE))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True)
    assert out.stdout == "4096 (4096, 4096)\n"


def _limit(pid: int, name: str) -> tuple[str, str]:
    """(soft, hard) of one line of /proc/<pid>/limits."""
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith(name):
            soft, hard = line[len(name) :].split()[:2]
            return soft, hard
    raise AssertionError(f"no {name} line")


@pytest.mark.e2e
def test_up_runs_without_core_dumps_and_keeps_its_data_private(tmp_path: Path) -> None:
    data = tmp_path / "data"  # created by gbagw itself
    proc = start_gbagw(["up", "--data-dir", str(data)], tmp_path, ZERO_PORTS, "up")
    try:
        ub = proc.wait_for(r"bsf: Ub on (http://\S+/)").group(1)
        assert _limit(proc.popen.pid, "Max core file size") == ("0", "0")
        soft, hard = _limit(proc.popen.pid, "Max open files")
        assert soft == hard
        r = run_cli(["hss", "add-subscriber", "--data-dir", str(data), "--impi", IMPI, "--k", K, "--op", OP])
        assert r.returncode == 0, r.stderr
        r = run_cli(["ue", "bootstrap", "--bsf", ub, "--impi", IMPI, "--k", K, "--op", OP])
        assert r.returncode == 0, r.stderr
        assert data.stat().st_mode & 0o777 == 0o700
        files = sorted(p.name for p in data.iterdir())
        assert {"bsf.sqlite", "bsf.sqlite-wal", "hss.sqlite", "hss.sqlite-wal", "kek"} <= set(files), files
        loose = {p.name: oct(p.stat().st_mode & 0o777) for p in data.iterdir() if p.stat().st_mode & 0o077}
        assert loose == {}, loose
    finally:
        proc.stop()
