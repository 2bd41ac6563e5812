"""The MEF's listeners against hostile clients (issue 27 classes 2 and 3), `gbagw mef serve` as a real process:
idle connections past the cap, a trickled ClientHello, file-descriptor exhaustion. Loopback only, bounded."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from OpenSSL import SSL

from gbagw.enrolee_client import EnrolmentError, enrol_cert, enrol_psk
from gbaio.tls import connect, install_client_psk, tls12_context
from tests.bsf.test_e2e_mef import CONFIG, KPM
from tests.procs import GBAGW, ZERO_PORTS, Proc, _env, gbagw_process, run_cli, start_gbagw

pytestmark = pytest.mark.e2e

CAP = 50
HANDSHAKE_TIMEOUT = 2.0
REQUEST_TIMEOUT = 2.0
NOFILE = 64  # RLIMIT_NOFILE of the MEF in the EMFILE test
PORTS = r"TLS-PSK on [\d.]+:(\d+), certificate on :(\d+), MAF retrieval on :(\d+)"


def _metrics(admin: str) -> dict[str, float]:
    with urllib.request.urlopen(admin + "/metrics", timeout=10) as r:  # noqa: S310 - loopback test URL
        lines = r.read().decode().splitlines()
    return {n: float(v) for n, _, v in (line.rpartition(" ") for line in lines if line.startswith("gbagw_mef_"))}


def _threads(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("Threads:")))


def _wait(what: str, check: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(0.1)


def _idle(port: int, n: int, stack: ExitStack) -> list[socket.socket]:
    """``n`` TCP connections that never send a byte."""
    conns = []
    for _ in range(n):
        s = stack.enter_context(socket.create_connection(("127.0.0.1", port), timeout=5))
        conns.append(s)
    return conns


def _closed_by_peer(s: socket.socket, timeout: float) -> bool:
    s.settimeout(timeout)
    try:
        return s.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def _client_hello() -> bytes:
    """A real TLS 1.2 PSK ClientHello, from an OpenSSL client on memory BIOs."""
    ctx = tls12_context("PSK-AES128-CBC-SHA256")
    handle = install_client_psk(ctx, lambda _hint: (b"kpm-1", KPM))  # PSK suites are offered only with it
    conn = SSL.Connection(ctx, None)
    conn.set_connect_state()
    with pytest.raises(SSL.WantReadError):
        conn.do_handshake()
    del handle
    return bytes(conn.bio_read(65536))


def _pki(tmp: Path) -> None:
    r = run_cli(["mef", "gen-test-pki", "--out", str(tmp / "pki"), "--enrolee", "cae-cert", "--maf", "maf.gba.test"])
    assert r.returncode == 0, r.stderr


class Mef:
    def __init__(self, proc: Proc, pki: Path) -> None:
        m = proc.wait_for(PORTS)
        self.proc, self.pki = proc, pki
        self.psk, self.cert, self.maf = (int(p) for p in m.groups())
        self.admin = proc.wait_for(r"admin: (http://\S+)/metrics").group(1)

    def enrol_cert(self) -> str:
        p = self.pki
        cert, key, ca = p / "cae-cert.pem", p / "cae-cert.key", p / "ca.pem"
        return enrol_cert("127.0.0.1", self.cert, "mef.gba.test", cert, key, ca).keid


@pytest.fixture(scope="module")
def mef(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mef]:
    tmp = tmp_path_factory.mktemp("mef-limits")
    (tmp / "gbagw.toml").write_text(CONFIG)
    _pki(tmp)
    env = {
        "GBAGW_MEF_MAX_CONNECTIONS": str(CAP),
        "GBAGW_MEF_HANDSHAKE_TIMEOUT": str(HANDSHAKE_TIMEOUT),
        "GBAGW_MEF_REQUEST_TIMEOUT": str(REQUEST_TIMEOUT),
    }
    serve = ["mef", "serve", "--config", str(tmp / "gbagw.toml"), "--data-dir", str(tmp)]
    with gbagw_process(serve, tmp, env, "mef") as proc:
        yield Mef(proc, tmp / "pki")


def test_idle_connections_past_the_cap_are_refused_fast_and_cost_no_thread(mef: Mef) -> None:
    threads = _threads(mef.proc.popen.pid)
    before = _metrics(mef.admin)
    with ExitStack() as stack:
        held = _idle(mef.psk, 300, stack)
        _wait(
            "the listener holds its cap and refuses the rest",
            lambda: (
                _metrics(mef.admin).get('gbagw_mef_connections_refused_total{listener="psk"}', 0)
                - before.get('gbagw_mef_connections_refused_total{listener="psk"}', 0)
                >= 300 - CAP
            ),
        )
        during = _metrics(mef.admin)
        assert during['gbagw_mef_connections{listener="psk"}'] == CAP
        assert _threads(mef.proc.popen.pid) <= threads + 2  # one task per connection, no thread
        # The other listeners have caps of their own: the certificate framework still enrols.
        assert mef.enrol_cert().endswith("@mef.gba.test")
        # The full one refuses at once rather than queueing the Enrolee.
        started = time.monotonic()
        with pytest.raises(EnrolmentError):
            enrol_psk("127.0.0.1", mef.psk, "mef.gba.test", "kpm-1", KPM)
        assert time.monotonic() - started < 2
        # The handshake deadline frees every idle slot, and PSK enrolment works again.
        assert all(_closed_by_peer(s, HANDSHAKE_TIMEOUT + 3) for s in held)
    _wait("the idle connections are gone", lambda: _metrics(mef.admin)['gbagw_mef_connections{listener="psk"}'] == 0)
    after = _metrics(mef.admin)
    closed = 'gbagw_mef_deadline_closed_total{listener="psk",phase="handshake"}'
    assert after[closed] - before.get(closed, 0) == CAP
    assert enrol_psk("127.0.0.1", mef.psk, "mef.gba.test", "kpm-1", KPM).enrolee_id == "CAE-psk"
    logs = mef.proc.logs
    assert logs.count("psk listener at its cap of 50 connections (mef.max_connections)") == 1  # once per interval


def test_a_trickled_client_hello_is_cut_at_the_handshake_deadline(mef: Mef) -> None:
    """One octet every 0.5 s never lets a per-read timeout fire; the whole-handshake deadline does."""
    hello = _client_hello()
    with socket.create_connection(("127.0.0.1", mef.psk), timeout=5) as s:
        started = time.monotonic()
        cut_at = None
        for octet in hello[:20]:  # bounded: at most 10 s
            try:
                s.sendall(bytes([octet]))
            except OSError:
                cut_at = time.monotonic() - started
                break
            if _closed_by_peer(s, 0.5):
                cut_at = time.monotonic() - started
                break
    assert cut_at is not None, "the MEF still waits for the trickled ClientHello"
    assert HANDSHAKE_TIMEOUT - 0.5 <= cut_at <= HANDSHAKE_TIMEOUT + 1.5


def test_a_trickled_request_is_cut_at_the_request_deadline(mef: Mef) -> None:
    """After a real handshake, the HTTP request one octet every 0.5 s: cut at mef.request_timeout (2 s)."""
    ctx = tls12_context("PSK-AES128-CBC-SHA256")
    handle = install_client_psk(ctx, lambda _hint: (b"kpm-1", KPM))
    conn = connect(ctx, "127.0.0.1", mef.psk, "mef.gba.test")
    del handle
    before = _metrics(mef.admin).get('gbagw_mef_deadline_closed_total{listener="psk",phase="request"}', 0)
    started = time.monotonic()
    cut_at = None
    try:
        for octet in b"POST /enrolment HTTP/1.1\r\nHost: mef.gba.test\r\n":  # bounded: at most ~12 s
            conn.sendall(bytes([octet]))
            time.sleep(0.5)
    except SSL.Error:
        cut_at = time.monotonic() - started
    finally:
        with contextlib.suppress(OSError):  # the MEF has closed it already
            conn.sock_shutdown(socket.SHUT_RDWR)
    assert cut_at is not None, "the MEF still reads the trickled request"
    assert cut_at <= REQUEST_TIMEOUT + 2
    after = _metrics(mef.admin)['gbagw_mef_deadline_closed_total{listener="psk",phase="request"}']
    assert after - before == 1


def test_the_listener_survives_running_out_of_file_descriptors(tmp_path: Path) -> None:
    """`gbagw mef serve` under a low RLIMIT_NOFILE: connections until accept() fails with EMFILE, then let go.
    The listener accepts again by itself, logs a bounded number of lines, and counts it."""
    (tmp_path / "gbagw.toml").write_text(CONFIG)
    _pki(tmp_path)
    env = {"GBAGW_MEF_MAX_CONNECTIONS": "1000", "GBAGW_MEF_HANDSHAKE_TIMEOUT": "60"}
    serve = ["mef", "serve", "--config", str(tmp_path / "gbagw.toml"), "--data-dir", str(tmp_path)]
    stderr_path = tmp_path / "mef.stderr.log"
    with open(stderr_path, "w") as err:
        command = ["prlimit", f"--nofile={NOFILE}", *GBAGW, *serve]
        popen = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=err, text=True, env=_env(env))
    proc = Proc(popen, stderr_path)
    try:
        mef = Mef(proc, tmp_path / "pki")
        with ExitStack() as stack:
            _idle(mef.psk, 80, stack)  # more than the descriptors left; the rest wait in the backlog
            fds = Path(f"/proc/{popen.pid}/fd")
            _wait("the MEF uses every descriptor it may", lambda: len(list(fds.iterdir())) >= NOFILE - 1)
            time.sleep(3)  # accept() fails with EMFILE for several back-off rounds
        # The clients let go: the MEF's ends see EOF, free their descriptors, and the backlog drains.
        started = time.monotonic()
        enrolment = None
        while enrolment is None and time.monotonic() - started < 20:
            try:
                enrolment = enrol_psk("127.0.0.1", mef.psk, "mef.gba.test", "kpm-1", KPM)
            except (EnrolmentError, ConnectionError):
                time.sleep(0.5)
        assert enrolment is not None and enrolment.enrolee_id == "CAE-psk"
        counted = _metrics(mef.admin)
        assert counted['gbagw_mef_accept_errors_total{errno="EMFILE",listener="psk"}'] > 0
        assert counted['gbagw_mef_listener_up{listener="psk"}'] == 1
        with urllib.request.urlopen(mef.admin + "/readyz", timeout=10) as r:  # noqa: S310 - loopback test URL
            assert r.status == 200
    finally:
        proc.stop()
    starved = [line for line in proc.logs.splitlines() if "psk listener cannot accept" in line]
    assert 1 <= len(starved) <= 2, starved  # once per 10 s, not once per attempt
    assert "Traceback" not in proc.logs


def test_under_gbagw_up_a_flooded_mef_leaves_ub_and_readiness_alone(tmp_path: Path) -> None:
    env = {**ZERO_PORTS, "GBAGW_MEF_MAX_CONNECTIONS": "20", "GBAGW_MEF_HANDSHAKE_TIMEOUT": "30"}
    proc = start_gbagw(["up", "--data-dir", str(tmp_path)], tmp_path, env, "up")
    try:
        ub = proc.wait_for(r"bsf: Ub on (http://\S+/)").group(1)
        psk = int(proc.wait_for(PORTS).group(1))
        admin = proc.wait_for(r"admin: (http://\S+)/metrics").group(1)
        with ExitStack() as stack:
            _idle(psk, 200, stack)
            _wait(
                "the MEF refuses past its cap",
                lambda: _metrics(admin).get('gbagw_mef_connections_refused_total{listener="psk"}', 0) >= 180,
            )
            # Ub answers (a GET without credentials: 4xx, not a hang), and /readyz says ready.
            try:
                urllib.request.urlopen(ub, timeout=5)  # noqa: S310 - loopback test URL
            except urllib.error.HTTPError as exc:
                assert 400 <= exc.code < 500
            with urllib.request.urlopen(admin + "/readyz", timeout=5) as r:  # noqa: S310 - loopback test URL
                assert r.status == 200
    finally:
        assert proc.stop() == 0
