"""Start real gbagw processes for end-to-end tests and stop them cleanly."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from tests.required_tools import require

GBAGW = [sys.executable, "-m", "gbagw.cli"]


def free_port() -> int:
    """A loopback TCP port nothing listens on now (for a peer that must be down, or one started later)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# Every listener of `gbagw up` on an ephemeral port (the admin ones are in _env).
ZERO_PORTS = {
    f"GBAGW_{k}": "0"
    for k in ("BSF_UB_PORT", "BSF_ZN_PORT", "HSS_ZH_PORT", "NAF_PORT", "MEF_PSK_PORT", "MEF_CERT_PORT", "MEF_MAF_PORT")
}


def run_cli(
    args: list[str], env: Mapping[str, str] | None = None, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(GBAGW + args, capture_output=True, text=True, timeout=timeout, env=_env(env))


def _env(extra: Mapping[str, str] | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GBAGW_")}
    # Admin listeners on ephemeral ports, so that several services of one test never collide.
    env.update({f"GBAGW_{svc}_ADMIN_PORT": "0" for svc in ("BSF", "HSS", "NAF", "MEF")})
    env.update({"GBAGW_BSF_SBI_PORT": "0", "GBAGW_BSF_SOAP_PORT": "0", "GBAGW_BSF_ZN_TLS_PORT": "0"})
    # The e2e suites bootstrap the same IMPIs many times a second; tests/bsf/test_e2e_limits.py sets limits.
    env.update({"GBAGW_BSF_RATE_PER_IMPI": "0", "GBAGW_BSF_RATE_PER_SOURCE": "0"})
    env.update(extra or {})
    return env


class Proc:
    def __init__(self, popen: subprocess.Popen[str], stderr_path: Path) -> None:
        self.popen = popen
        self.stderr_path = stderr_path
        self.stdout_lines: list[str] = []
        self._cond = threading.Condition()
        # A reader thread, because select() on a buffered text pipe misses lines already buffered.
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            with self._cond:
                self.stdout_lines.append(line)
                self._cond.notify_all()

    def wait_for(self, pattern: str, timeout: float = 20) -> re.Match[str]:
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        seen = 0
        with self._cond:
            while True:
                for line in self.stdout_lines[seen:]:
                    if m := rx.search(line):
                        return m
                seen = len(self.stdout_lines)
                if self.popen.poll() is not None:
                    raise RuntimeError(f"process exited with {self.popen.returncode}: {self.logs[-2000:]}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no line matching {pattern!r}; stderr: {self.logs[-2000:]}")
                self._cond.wait(min(left, 0.2))

    def stop(self, timeout: float = 15) -> int:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        return self.popen.returncode

    @property
    def logs(self) -> str:
        return self.stderr_path.read_text()


def start_gbagw(args: list[str], tmp: Path, env: Mapping[str, str] | None = None, name: str = "proc") -> Proc:
    stderr_path = tmp / f"{name}.stderr.log"
    with open(stderr_path, "w") as err:
        popen = subprocess.Popen(GBAGW + args, stdout=subprocess.PIPE, stderr=err, text=True, env=_env(env), bufsize=1)
    return Proc(popen, stderr_path)


@contextmanager
def gbagw_process(
    args: list[str], tmp: Path, env: Mapping[str, str] | None = None, name: str = "proc"
) -> Iterator[Proc]:
    proc = start_gbagw(args, tmp, env, name)
    try:
        yield proc
    finally:
        proc.stop()


@contextmanager
def tshark_capture(port: int | Sequence[int], pcap: Path) -> Iterator[None]:
    """Live capture of loopback traffic on ``port`` (or on each of several) with tshark (dumpcap)."""
    ports = [port] if isinstance(port, int) else list(port)
    p = subprocess.Popen(
        [require("tshark"), "-i", "lo", "-f", " or ".join(f"tcp port {x}" for x in ports), "-w", str(pcap), "-q"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert p.stderr is not None
    deadline = time.monotonic() + 20
    started = False
    while time.monotonic() < deadline:
        line = p.stderr.readline()
        if "Capturing on" in line:
            started = True
            break
        if p.poll() is not None:
            break
    if not started:
        p.kill()
        raise RuntimeError("tshark did not start capturing")
    time.sleep(0.3)
    try:
        yield
    finally:
        time.sleep(0.5)
        p.send_signal(signal.SIGINT)
        p.wait(15)
