"""Fault injection with real processes: the BSF or Redis killed during a bootstrap load loses no B-TID
that a UE received; a slow HSS turns into 503 within the Zh timeout."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from gba import diameter as d
from gba import kdf, ue
from gbagw.ue_client import UbRefused, bootstrap
from gbaio.diameter_node import DiameterServer, NodeIdentity, PeerInfo
from naf.config import NafConfig
from naf.zn_client import ZnClient, ZnUnavailable
from naf.zn_http_clients import create_zn_client
from tests.bsf.test_e2e_ub import OPC, K, Lab
from tests.procs import Proc, free_port, run_cli
from tests.required_tools import require

pytestmark = pytest.mark.e2e

N_UES = 400
NAF_ID = kdf.NafId("naf.gba.test", kdf.UaProtocol.HTTP_DIGEST.value)


def _provision(lab: Lab, n: int) -> None:
    toml = "".join(f'[[subscriber]]\nimpi = "load{i}@ims.test"\nk = "{K}"\nopc = "{OPC}"\n\n' for i in range(n))
    (lab.tmp / "subs.toml").write_text(toml)
    r = run_cli(["hss", "import", str(lab.tmp / "subs.toml"), *lab.data], timeout=120)
    assert r.returncode == 0, r.stderr


async def _load(url: str, n: int, issued: list[str], stop_after: float, concurrency: int = 5) -> int:
    """Bootstrap UEs load0..load<n-1> once each (about 80/s) until ``stop_after`` seconds; returns attempts."""
    queue = iter(range(n))
    deadline = time.monotonic() + stop_after
    attempts = 0

    async def worker() -> None:
        nonlocal attempts
        for i in queue:
            if time.monotonic() > deadline:
                return
            attempts += 1
            client = ue.UeClient(ue.Usim(bytes.fromhex(K), bytes.fromhex(OPC)), f"load{i}@ims.test", "bsf.gba.test")
            try:
                issued.append((await bootstrap(url, client, timeout=3)).btid)
                await asyncio.sleep(0.05)
            except (TimeoutError, UbRefused, ue.UeError, OSError):
                await asyncio.sleep(0.05)  # the BSF (or its store) is down: a real UE would retry later

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return attempts


async def _answerable(zn_port: int, btids: list[str]) -> int:
    client = ZnClient(NafConfig(bsf_port=zn_port))
    ok = 0
    try:
        for btid in btids:
            key = await client.fetch_key(btid, NAF_ID)
            ok += key.me_key is not None
    finally:
        await client.close()
    return ok


def _zn_port(bsf: Proc) -> int:
    return int(bsf.wait_for(r"Zn Diameter on [\d.]+:(\d+)").group(1))


def _redis_args(port: int, data: Path) -> list[str]:
    """redis-server with appendonly and fsync always: an acknowledged write survives kill -9."""
    return [
        require("redis-server"),
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--dir",
        str(data),
        "--appendonly",
        "yes",
        "--appendfsync",
        "always",
        "--save",
        "",
    ]


@pytest.fixture
def redis_aof(tmp_path: Path) -> Iterator[tuple[str, Path, int]]:
    """A private redis-server with appendonly + fsync always, so a kill -9 loses nothing acknowledged."""
    port = free_port()
    data = tmp_path / "redis"
    data.mkdir()
    args = _redis_args(port, data)
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    try:
        yield f"redis://127.0.0.1:{port}/0", data, port
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.parametrize("backend", ["sqlite", "redis"])
async def test_bsf_kill_9_during_load_loses_no_btid(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    lab = Lab(tmp_path)
    env = {"GBAGW_BSF_UB_PORT": str(free_port())}
    if backend == "redis":
        url, _data, _port = request.getfixturevalue("redis_aof")
        env["GBAGW_BSF_STORE"] = url
    _provision(lab, N_UES)
    issued: list[str] = []
    try:
        lab.start_hss()
        bsf, ub = lab.start_bsf("bsf1", env)
        load = asyncio.create_task(_load(ub, N_UES, issued, stop_after=6.0))
        await asyncio.sleep(1.5)
        bsf.popen.send_signal(signal.SIGKILL)  # mid-load, no shutdown handler runs
        bsf.popen.wait()
        before_kill = len(issued)
        await asyncio.sleep(0.5)
        bsf2, ub2 = lab.start_bsf("bsf2", env)  # same Ub port: the load's UEs come back to it
        assert ub2 == ub
        attempts = await load
        answerable = await _answerable(_zn_port(bsf2), issued)
    finally:
        lab.close()
    print(
        f"\n[{backend}] attempts {attempts}, B-TIDs issued {len(issued)} ({before_kill} before the kill), "
        f"answerable after restart {answerable}"
    )
    assert before_kill > 0 and len(issued) > before_kill
    assert answerable == len(issued)  # zero lost B-TIDs


async def test_redis_restart_during_load_loses_no_btid(tmp_path: Path, redis_aof: tuple[str, Path, int]) -> None:
    url, data, port = redis_aof
    lab = Lab(tmp_path)
    env = {"GBAGW_BSF_STORE": url}
    _provision(lab, N_UES)
    issued: list[str] = []
    args = _redis_args(port, data)
    restarted: subprocess.Popen[bytes] | None = None
    try:
        lab.start_hss()
        bsf, ub = lab.start_bsf("bsf", env)
        load = asyncio.create_task(_load(ub, N_UES, issued, stop_after=6.0))
        await asyncio.sleep(1.5)
        subprocess.run(["redis-cli", "-p", str(port), "shutdown", "nosave"], capture_output=True, timeout=10)
        before = len(issued)
        await asyncio.sleep(1.0)
        restarted = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        attempts = await load
        answerable = await _answerable(_zn_port(bsf), issued)
    finally:
        lab.close()
        if restarted is not None:
            restarted.kill()
            restarted.wait()
    print(
        f"\n[redis restart] attempts {attempts}, B-TIDs issued {len(issued)} ({before} before the restart), "
        f"answerable afterwards {answerable}"
    )
    assert before > 0 and len(issued) > before  # the same BSF process recovered without a restart
    assert answerable == len(issued)


async def test_slow_hss_gives_503_within_the_zh_timeout(tmp_path: Path) -> None:
    async def never(req: d.Envelope, _peer: PeerInfo) -> d.Envelope:
        await asyncio.sleep(30)
        raise AssertionError("unreachable")

    slow = DiameterServer(NodeIdentity("hss.gba.test", "gba.test", (d.APP_ZH,)), never)
    port = await slow.start("127.0.0.1", 0)
    lab = Lab(tmp_path)
    try:
        _bsf, ub = lab.start_bsf("bsf", {"GBAGW_BSF_HSS_PORT": str(port), "GBAGW_BSF_ZH_TIMEOUT": "1"})
        client = ue.UeClient(ue.Usim(bytes.fromhex(K), bytes.fromhex(OPC)), "x@ims.test", "bsf.gba.test")
        t0 = time.monotonic()
        with pytest.raises(UbRefused) as exc:
            await bootstrap(ub, client, timeout=10)
        assert exc.value.status == 503 and time.monotonic() - t0 < 5
    finally:
        lab.close()
        await slow.close()


async def test_an_idle_bsf_holds_its_zh_connection_through_hss_restarts(tmp_path: Path) -> None:
    """The BSF opens its Zh connection at start, with no bootstrap and no /readyz probe asking for it, and
    again after the HSS restarts (the Tc timer): gbagw_bsf_hss_peer_up, which GbagwHssPeerDown watches,
    tells an idle BSF's true state. Before, an idle BSF had no Zh connection and reported its peer down."""
    lab = Lab(tmp_path)
    r = run_cli(["hss", "add-subscriber", *lab.data, "--impi", "idle@ims.test", "--k", K, "--opc", OPC])
    assert r.returncode == 0, r.stderr
    env = {"GBAGW_BSF_HSS_RECONNECT_INTERVAL": "0.2", "GBAGW_BSF_GAUGE_INTERVAL": "0.1"}
    try:
        bsf, ub = lab.start_bsf("bsf", env)  # before the HSS: its first attempt is refused
        admin_port = bsf.wait_for(r"admin: http://[\d.]+:(\d+)/").group(1)
        admin = f"http://127.0.0.1:{admin_port}"
        async with aiohttp.ClientSession() as http:

            async def peer_up(expected: float) -> None:
                deadline = time.monotonic() + 10
                while True:
                    async with http.get(f"{admin}/metrics") as resp:
                        text = await resp.text()
                    if f"gbagw_bsf_hss_peer_up {expected}" in text:
                        return
                    assert time.monotonic() < deadline, f"gbagw_bsf_hss_peer_up never {expected}"
                    await asyncio.sleep(0.05)

            await peer_up(0.0)
            hss = lab.start_hss()
            await peer_up(1.0)
            hss.stop()  # SIGTERM: a DPR to the BSF
            await peer_up(0.0)
            lab.start_hss("hss2")
            await peer_up(1.0)
        client = ue.UeClient(ue.Usim(bytes.fromhex(K), bytes.fromhex(OPC)), "idle@ims.test", "bsf.gba.test")
        assert (await bootstrap(ub, client)).btid
    finally:
        lab.close()
    logs = bsf.logs
    assert logs.count("trying again every 0.2 s") == 2, logs  # once per outage, not once per attempt
    assert logs.count("reachable again") == 2, logs


async def test_a_store_outage_is_a_retryable_answer_on_every_interface(
    tmp_path: Path, redis_aof: tuple[str, Path, int]
) -> None:
    """Redis down: Ub 503 + Retry-After, Zn 3004 / 503 on each flavour, one warning line per decision and
    no traceback; Redis back: the same BSF process serves again and the earlier B-TID still answers."""
    url, data, port = redis_aof
    lab = Lab(tmp_path)
    _provision(lab, 2)
    usim = ue.Usim(bytes.fromhex(K), bytes.fromhex(OPC))
    restarted: subprocess.Popen[bytes] | None = None
    try:
        lab.start_hss()
        bsf, ub = lab.start_bsf("bsf", {"GBAGW_BSF_STORE": url})
        zn_port = _zn_port(bsf)
        sbi, soap = (int(p) for p in bsf.wait_for(r"Zn Nbsp_GBA on [\d.]+:(\d+), Zn SOAP on [\d.]+:(\d+)").groups())
        admin = bsf.wait_for(r"admin: (http://\S+)/metrics").group(1)
        before = (await bootstrap(ub, ue.UeClient(usim, "load0@ims.test", "bsf.gba.test"))).btid
        subprocess.run(["redis-cli", "-p", str(port), "shutdown", "nosave"], capture_output=True, timeout=10)

        first = ue.UeClient(usim, "load1@ims.test", "bsf.gba.test")
        async with (
            aiohttp.ClientSession() as http,
            http.get(ub, headers={"Authorization": first.authorization()}) as r,
        ):
            assert (r.status, r.headers.get("Retry-After")) == (503, "5")
            assert "context store unavailable" in await r.text()
        with pytest.raises(ZnUnavailable, match="Result-Code 3004"):
            await _fetch(NafConfig(bsf_port=zn_port), before)
        sbi_naf = NafConfig(zn_via="sbi", sbi_url=f"http://127.0.0.1:{sbi}")
        with pytest.raises(ZnUnavailable, match="Nbsp_GBA answered 503"):
            await _fetch(sbi_naf, before)
        with pytest.raises(ZnUnavailable, match="Zn SOAP answered 503"):
            await _fetch(NafConfig(zn_via="soap", soap_url=f"http://127.0.0.1:{soap}/GBAService"), before)
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{admin}/metrics") as r:
                metrics = await r.text()
            async with http.get(f"{admin}/readyz") as r:
                assert r.status == 503
                assert "context store does not answer (ping: ConnectionError" in await r.text()
        assert 'gbagw_bsf_ub_responses_total{outcome="store_unavailable"} 1.0' in metrics
        for via, result in (("diameter", "3004"), ("sbi", "503"), ("soap", "3004")):
            assert f'gbagw_bsf_zn_answers_total{{result="{result}",via="{via}"}} 1.0' in metrics

        restarted = subprocess.Popen(_redis_args(port, data), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        await asyncio.sleep(0.5)
        after = (await bootstrap(ub, ue.UeClient(usim, "load1@ims.test", "bsf.gba.test"))).btid
        assert await _answerable(zn_port, [before, after]) == 2
    finally:
        lab.close()
        if restarted is not None:
            restarted.kill()
            restarted.wait()
    logs = bsf.logs
    assert "Traceback" not in logs
    assert logs.count("context store unavailable") == 4, logs  # Ub, then Zn once per flavour


async def _fetch(config: NafConfig, btid: str) -> None:
    client = create_zn_client(config)
    try:
        await client.fetch_key(btid, NAF_ID)
    finally:
        await client.close()


async def test_a_locked_sqlite_store_leaves_every_listener_answering(tmp_path: Path) -> None:
    """Issue 27 class 4: another process holds the BSF's SQLite write lock. /healthz, a malformed Ub
    request and Zn key lookups keep answering at once; a bootstrap (a write) answers 503 once
    bsf.store_busy_timeout has passed; the lock gone, bootstraps work again. Before, the write waited
    on the event loop and every listener froze with it."""
    lab = Lab(tmp_path)
    admin = free_port()
    env = {"GBAGW_BSF_STORE_BUSY_TIMEOUT": "2", "GBAGW_BSF_ADMIN_PORT": str(admin)}
    _provision(lab, 1)

    def client() -> ue.UeClient:
        return ue.UeClient(ue.Usim(bytes.fromhex(K), bytes.fromhex(OPC)), "load0@ims.test", "bsf.gba.test")

    async def malformed_ub(url: str) -> bytes:
        host, port = url.split("//")[1].rstrip("/").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            writer.write(b"NOT HTTP\r\n\r\n")
            return await reader.read(12)
        finally:
            writer.close()

    zn: ZnClient | None = None
    holder: sqlite3.Connection | None = None
    try:
        lab.start_hss()
        bsf, ub = lab.start_bsf("bsf", env)
        btid = (await bootstrap(ub, client(), timeout=5)).btid
        zn = ZnClient(NafConfig(bsf_port=_zn_port(bsf)))
        holder = sqlite3.connect(tmp_path / "bsf.sqlite", isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")  # the write lock, held by another process's connection
        t0 = time.monotonic()
        write = asyncio.create_task(bootstrap(ub, client(), timeout=10))
        async with aiohttp.ClientSession() as http:
            rounds = 0
            while not write.done() and rounds < 50:
                rounds += 1
                t = time.monotonic()
                async with asyncio.timeout(0.5):
                    async with http.get(f"http://127.0.0.1:{admin}/healthz") as r:
                        assert r.status == 200
                    assert (await malformed_ub(ub)).startswith(b"HTTP/1.1 400")
                    key = await zn.fetch_key(btid, NAF_ID)
                assert key.me_key is not None
                assert time.monotonic() - t < 0.5
                await asyncio.sleep(0.1)
        assert rounds >= 5  # the checks ran while the write waited for the lock
        with pytest.raises(UbRefused) as refused:
            await write
        elapsed = time.monotonic() - t0
        assert refused.value.status == 503 and 1.5 < elapsed < 6, elapsed
        holder.execute("ROLLBACK")
        assert (await bootstrap(ub, client(), timeout=5)).btid  # the lock gone, writes work again
    finally:
        if holder is not None:
            holder.close()
        if zn is not None:
            await zn.close()
        lab.close()
