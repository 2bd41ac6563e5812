"""Listeners of real `gbagw hss serve` / `gbagw bsf serve` processes under hostile clients (issue 27
classes 1 and 2): a Diameter peer that sends requests and never reads the answers, floods of idle
connections past a listener's cap while the other listeners keep answering."""

from __future__ import annotations

import asyncio
import re
import socket
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from gba import diameter as d
from gba import ue
from gbagw.ue_client import bootstrap
from gbaio.diameter_node import NodeIdentity, connect
from tests.procs import Proc, free_port, run_cli, start_gbagw

pytestmark = pytest.mark.e2e

K = "465b5ce8b199b49faa5f0a2ee238a6bc"
OPC = "cd63cb71954a9f4e48a5994e37a02baf"
IMPI = "listeners@ims.test"
WRITE_TIMEOUT = 2
CAP = 20
NAF = NodeIdentity("naf.gba.test", "gba.test", (d.APP_ZN,))


class Lab:
    def __init__(self, tmp: Path, hss: Proc, bsf: Proc) -> None:
        self.tmp, self.hss, self.bsf = tmp, hss, bsf
        self.hss_port = int(hss.wait_for(r"Zh Diameter on [\d.]+:(\d+)").group(1))
        self.ub = bsf.wait_for(r"Ub on (http://[\d.]+:\d+/)").group(1)
        self.zn_port = int(bsf.wait_for(r"Zn Diameter on [\d.]+:(\d+)").group(1))
        self.admin = bsf.wait_for(r"admin: (http://[\d.]+:\d+/)").group(1)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    tmp = tmp_path_factory.mktemp("listeners")
    data = ["--data-dir", str(tmp)]
    r = run_cli(["hss", "add-subscriber", *data, "--impi", IMPI, "--k", K, "--opc", OPC])
    assert r.returncode == 0, r.stderr
    hss_port = free_port()
    env = {
        "GBAGW_HSS_ZH_PORT": str(hss_port),
        "GBAGW_BSF_HSS_PORT": str(hss_port),
        "GBAGW_BSF_UB_PORT": "0",
        "GBAGW_BSF_ZN_PORT": "0",
        "GBAGW_HSS_WRITE_TIMEOUT": str(WRITE_TIMEOUT),
        "GBAGW_BSF_ZN_WRITE_TIMEOUT": str(WRITE_TIMEOUT),
        "GBAGW_BSF_ZN_MAX_CONNECTIONS": str(CAP),
        "GBAGW_BSF_UB_MAX_CONNECTIONS": str(CAP),
    }
    hss = start_gbagw(["hss", "serve", *data], tmp, env, "hss")
    bsf = None
    try:
        hss.wait_for(r"Zh Diameter on")
        bsf = start_gbagw(["bsf", "serve", *data], tmp, env, "bsf")
        yield Lab(tmp, hss, bsf)
    finally:
        if bsf is not None:
            bsf.stop()
        hss.stop()


def _rss_kib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    m = re.search(r"^VmRSS:\s+(\d+) kB", status, re.M)
    assert m is not None
    return int(m.group(1))


def _open_diameter(port: int, origin_host: str) -> socket.socket:
    """A peer past its CER/CEA, as a plain socket (so nothing reads what the server sends)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: a small window
    sock.settimeout(5)
    sock.connect(("127.0.0.1", port))
    app = d.APP_ZH if origin_host.startswith("bsf") else d.APP_ZN
    avps = d.capabilities_avps(origin_host, "gba.test", "127.0.0.1", (app,), 1)
    sock.sendall(d.Envelope(d.CMD_CAPABILITIES_EXCHANGE, 0, d.FLAG_REQUEST, 1, 1, avps).encode())
    head = sock.recv(4, socket.MSG_WAITALL)
    body = sock.recv(d.message_length(head) - 4, socket.MSG_WAITALL)
    assert d.Envelope.from_bytes(head + body).result()[0] == d.ResultCode.SUCCESS
    return sock


def _flood_without_reading(
    sock: socket.socket, request: Callable[[int], bytes], pid: int, seconds: float = 20.0
) -> tuple[int, float | None]:
    """Send requests as fast as the server takes them, reading nothing, until the server drops the
    connection (at most ``seconds``). Returns how much the server's RSS grew meanwhile at most (KiB) and
    when it dropped the connection (seconds from the start; None if it did not)."""
    sock.setblocking(False)
    base = most = _rss_kib(pid)
    batch = b"".join(request(i) for i in range(1, 201))
    sent = 0
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        try:
            sent += sock.send(batch[sent % len(batch) :])
        except BlockingIOError:
            time.sleep(0.02)  # the server stopped reading: what it holds now is the point
        except OSError:
            return max(most, _rss_kib(pid)) - base, time.monotonic() - started  # reset: dropped
        most = max(most, _rss_kib(pid))
    return most - base, None


def _dwr(n: int, origin_host: str) -> bytes:
    env = d.device_watchdog_request(origin_host, "gba.test", 1)
    env.hop_by_hop = env.end_to_end = n
    return env.encode()


def _birs_and_dwrs(n: int) -> bytes:
    """Mostly DWRs, answered at once on the read path: the answers outgrow the kernel's buffers within
    the test's seconds, so the server's own output backs up (BIRs alone wait on the store)."""
    return _bir(n) if n % 8 == 0 else _dwr(n, "naf.gba.test")


def _mars_and_dwrs(n: int) -> bytes:
    return _mar(n) if n % 8 == 0 else _dwr(n, "bsf-flood.gba.test")


def _bir(n: int) -> bytes:
    naf_id = b"naf.gba.test\x01\x00\x00\x01"
    bir = d.BootstrappingInfoRequest(f"s;{n}", "naf.gba.test", "gba.test", "gba.test", "bm9uZQ==@bsf.gba.test", naf_id)
    return bir.to_envelope(n, n).encode()


def _mar(n: int) -> bytes:
    mar = d.MultimediaAuthRequest(f"bsf.gba.test;{n}", "bsf.gba.test", "gba.test", "gba.test", IMPI)
    return mar.to_envelope(n, n).encode()


def test_bsf_memory_bounded_while_a_naf_never_reads(lab: Lab) -> None:
    sock = _open_diameter(lab.zn_port, "naf.gba.test")
    try:
        grew, dropped = _flood_without_reading(sock, _birs_and_dwrs, lab.bsf.popen.pid)
        assert grew < 50 * 1024, f"BSF RSS grew by {grew} KiB"
        assert dropped is not None, "the BSF kept a NAF that reads nothing"
    finally:
        sock.close()
    assert "dropping the connection to naf.gba.test" in lab.bsf.logs


def test_hss_memory_bounded_while_a_bsf_never_reads(lab: Lab) -> None:
    sock = _open_diameter(lab.hss_port, "bsf-flood.gba.test")
    try:
        grew, dropped = _flood_without_reading(sock, _mars_and_dwrs, lab.hss.popen.pid)
        assert grew < 50 * 1024, f"HSS RSS grew by {grew} KiB"
        assert dropped is not None, "the HSS kept a peer that reads nothing"
    finally:
        sock.close()


def _metric(admin: str, name: str) -> float:
    text = urllib.request.urlopen(admin + "metrics", timeout=5).read().decode()  # noqa: S310 (the lab's admin URL)
    m = re.search(rf"^{re.escape(name)} ([\d.e+]+)$", text, re.M)
    return float(m.group(1)) if m else 0.0


async def _flood(port: int, count: int) -> tuple[list[asyncio.StreamWriter], int]:
    """Open ``count`` idle connections; returns them and how many the server closed at once."""
    opened: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    for _ in range(count):
        opened.append(await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 5))
    # A refused connection is aborted: a reset (or an end of stream) is all it sees. Under 4 s (the
    # Diameter CER timeout, 5 s, would close the accepted ones too), sooner unless the host is loaded.
    closed = 0
    for _ in range(40):
        await asyncio.sleep(0.1)
        closed = sum(1 for reader, _ in opened if reader.at_eof() or reader.exception() is not None)
        if closed >= CAP:
            break
    return [w for _, w in opened], closed


async def test_a_zn_flood_leaves_ub_and_existing_zn_peers_served_and_the_other_way_round(lab: Lab) -> None:
    naf = await connect(NAF, "127.0.0.1", lab.zn_port)
    flood: list[asyncio.StreamWriter] = []
    try:
        refused_before = _metric(lab.admin, 'gbagw_bsf_refused_connections_total{listener="zn"}')
        writers, closed = await _flood(lab.zn_port, 2 * CAP)
        flood += writers
        assert closed >= CAP  # one place is the NAF's; the rest of the cap went to the first idle ones
        # Zn is full: the NAF connected before still gets answers, and Ub bootstraps.
        answer = await naf.request(d.Envelope.from_bytes(_bir(1)), 5)
        assert answer.result()[0] != d.ResultCode.SUCCESS  # an unknown B-TID, answered
        usim = ue.Usim(bytes.fromhex(K), bytes.fromhex(OPC))
        boot = await bootstrap(lab.ub, ue.UeClient(usim, IMPI, "bsf.gba.test"))
        assert boot.btid.endswith("@bsf.gba.test")
        refused = _metric(lab.admin, 'gbagw_bsf_refused_connections_total{listener="zn"}') - refused_before
        assert refused >= CAP
        for w in flood:
            w.transport.abort()
        flood.clear()
        # The other way round: Ub full, Zn still answers, a new Ub connection is refused at once.
        ub_port = int(lab.ub.rsplit(":", 1)[1].strip("/"))
        writers, closed = await _flood(ub_port, 2 * CAP)
        flood += writers
        assert closed >= CAP
        answer = await naf.request(d.Envelope.from_bytes(_bir(2)), 5)
        assert answer.result()[0] != d.ResultCode.SUCCESS
        assert _metric(lab.admin, 'gbagw_bsf_refused_connections_total{listener="ub"}') >= CAP
        logs = lab.bsf.logs
        assert len(re.findall(r"zn: \d+ connections open, the limit", logs)) == 1  # once per interval
        assert len(re.findall(r"ub: \d+ connections open, the limit", logs)) == 1
    finally:
        for w in flood:
            w.transport.abort()
        await naf.close()
