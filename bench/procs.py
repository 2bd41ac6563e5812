"""Helpers shared by the benchmarks: start servers, provision subscribers, measure request rates."""

from __future__ import annotations

import asyncio
import os
import re
import resource
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time consumed so far by processes ``pids`` (Linux /proc), or by this process
    for pid 0."""
    total = 0.0
    for pid in pids:
        if pid == 0:
            r = resource.getrusage(resource.RUSAGE_SELF)
            total += r.ru_utime + r.ru_stime
            continue
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime (proc(5))
    return total


def wait_line(p: subprocess.Popen[str], pattern: str, timeout: float = 30) -> re.Match[str]:
    """Read the process's stdout until a line matches ``pattern``."""
    assert p.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = p.stdout.readline()
        if m := re.search(pattern, line):
            return m
        if not line and p.poll() is not None:
            break
    p.kill()
    raise RuntimeError(f"{p.args!r} printed no line matching {pattern!r}")


def spawn(
    args: list[str], pattern: str, env: dict[str, str] | None = None, cwd: Path = ROOT
) -> tuple[subprocess.Popen[str], re.Match[str]]:
    """Start ``args`` in ``cwd`` (a source tree: ``python -m gbagw.cli`` runs that tree's code)."""
    p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env, cwd=cwd)
    return p, wait_line(p, pattern)


def provision(
    gbagw: list[str], data_dir: str, impis: Sequence[str], k: bytes, opc: bytes, env: dict[str, str], cwd: Path = ROOT
) -> None:
    """Add subscribers to the HSS stub's database through the CLI: one `hss import`, not one process each."""
    table = "".join(f'[[subscriber]]\nimpi = "{impi}"\nk = "{k.hex()}"\nopc = "{opc.hex()}"\n\n' for impi in impis)
    subscribers = Path(data_dir) / "subscribers.toml"
    subscribers.write_text(table)
    subprocess.run(
        [*gbagw, "hss", "import", str(subscribers), "--data-dir", data_dir],
        check=True,
        env=env,
        capture_output=True,
        cwd=cwd,
    )


async def request_rate(one: Callable[[], Awaitable[object]], n: int, inflight: int, warmup: int = 50) -> float:
    """Requests per second for ``n`` calls of ``one``, sequential or with ``inflight`` outstanding."""
    for _ in range(warmup):
        await one()
    sem = asyncio.Semaphore(max(1, inflight))

    async def bounded() -> None:
        async with sem:
            await one()

    start = time.perf_counter()
    if inflight <= 1:
        for _ in range(n):
            await one()
    else:
        await asyncio.gather(*(bounded() for _ in range(n)))
    return n / (time.perf_counter() - start)


def pd_echo_rate(port: int, n: int, inflight: int) -> float:
    """The bare python-diameter echo ceiling, measured by bench/pd_echo.py's client in its own process."""
    out = subprocess.run(
        [sys.executable, "bench/pd_echo.py", "client", str(port), str(n), str(inflight)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
        check=True,
    )
    return float(out.stdout.strip().splitlines()[-1])


def done(message: str) -> None:
    """One line on stderr per finished measurement: a run takes minutes and prints its table at the end."""
    print(f"bench: {message}", file=sys.stderr, flush=True)
