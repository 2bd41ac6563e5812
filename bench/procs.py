"""Process helpers shared by the benchmarks: start a server and wait for its ready line."""

from __future__ import annotations

import re
import socket
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def spawn(
    args: list[str], pattern: str, env: dict[str, str] | None = None
) -> tuple[subprocess.Popen[str], re.Match[str]]:
    p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env, cwd=ROOT)
    assert p.stdout is not None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = p.stdout.readline()
        if m := re.search(pattern, line):
            return p, m
    p.kill()
    raise RuntimeError(f"{args} did not start")


def provision(gbagw: list[str], data_dir: str, impi: str, k: bytes, opc: bytes, env: dict[str, str]) -> None:
    """Add one subscriber to the HSS stub's database through the CLI."""
    subprocess.run(
        [*gbagw, "hss", "add-subscriber", "--data-dir", data_dir, "--impi", impi, "--k", k.hex(), "--opc", opc.hex()],
        check=True,
        env=env,
        capture_output=True,
        cwd=ROOT,
    )
