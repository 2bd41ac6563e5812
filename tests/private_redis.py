"""One private redis-server per test process, on a free loopback port: tests never touch (or FLUSHDB)
a Redis they did not start. GBAGW_TEST_REDIS=redis://host:port names another one explicitly (its
databases 11 to 15 are then emptied by the tests)."""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import subprocess
import tempfile
import time

from tests.procs import free_port
from tests.required_tools import require

_port: int | None = None


def _start() -> int:
    exe = require("redis-server")
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="gbagw-test-redis-")
    proc = subprocess.Popen(
        [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", workdir],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    atexit.register(_stop, proc, workdir)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    return port
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"the test redis-server on port {port} did not answer within 10 s")


def _stop(proc: subprocess.Popen[bytes], workdir: str) -> None:
    proc.terminate()
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
    shutil.rmtree(workdir, ignore_errors=True)


def url(db: int) -> str:
    """redis://127.0.0.1:<port>/<db> of this process's private server (started on first use)."""
    global _port
    base = os.environ.get("GBAGW_TEST_REDIS")  # redis://host:port, without a database
    if base:
        return f"{base.rstrip('/')}/{db}"
    if _port is None:
        _port = _start()
    return f"redis://127.0.0.1:{_port}/{db}"
