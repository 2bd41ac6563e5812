"""Graceful shutdown with real processes: SIGTERM lets in-flight Ub and Zn requests finish and sends a
DPR to every Diameter peer, and a NAF behind a load balancer keeps getting keys through a rolling
restart of the BSFs (RFC 6733 5.4), checked on the wire with tshark."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import signal
from pathlib import Path

import aiohttp
import pytest
import redis.asyncio as aioredis

from gba import diameter as d
from gba import kdf, milenage, ue
from gbagw.ue_client import bootstrap
from gbaio.diameter_node import DISCONNECT_REBOOTING, DiameterServer, NodeIdentity, PeerInfo
from naf.config import NafConfig
from naf.zn_client import ZnRefused, ZnUnavailable
from naf.zn_http_clients import create_zn_client
from tests import private_redis
from tests.bsf.test_e2e_ub import IMPI, OPC, K, Lab
from tests.pcaptool import DecodedMessage, diameter_messages
from tests.procs import Proc, run_cli, tshark_capture

pytestmark = pytest.mark.e2e

NAF_ID = kdf.NafId("naf.gba.test", kdf.UaProtocol.HTTP_DIGEST.value)
REDIS = private_redis.url(14)


async def test_sigterm_lets_in_flight_ub_requests_finish(tmp_path: Path) -> None:
    """A Ub request waiting on a slow HSS still gets its 401 after SIGTERM."""
    mil_k, mil_opc = bytes.fromhex(K), bytes.fromhex(OPC)

    async def slow_vector(req: d.Envelope, _peer: PeerInfo) -> d.Envelope:
        await asyncio.sleep(1.5)
        mar = d.MultimediaAuthRequest.from_envelope(req)
        av = milenage.generate_vector(milenage.Milenage(mil_k, mil_opc), bytes(16), 99, b"\x80\x00")
        return req.answer(
            d.MultimediaAuthAnswer(
                mar.session_id,
                "hss.gba.test",
                "gba.test",
                user_name=mar.user_name,
                sip_authenticate=av.rand + av.autn,
                sip_authorization=av.xres,
                ck=av.ck,
                ik=av.ik,
            ).avps()
        )

    hss = DiameterServer(NodeIdentity("hss.gba.test", "gba.test", (d.APP_ZH,)), slow_vector)
    port = await hss.start("127.0.0.1", 0)
    lab = Lab(tmp_path)
    try:
        bsf, url = lab.start_bsf("bsf", {"GBAGW_BSF_HSS_PORT": str(port)})
        client = ue.UeClient(ue.Usim(mil_k, mil_opc), "x@ims.test", "bsf.gba.test")

        async def first_request() -> int:
            async with aiohttp.ClientSession() as s, s.get(url, headers={"Authorization": client.authorization()}) as r:
                return r.status

        pending = asyncio.create_task(first_request())
        await asyncio.sleep(0.5)  # the request is now waiting for the slow HSS
        bsf.popen.send_signal(signal.SIGTERM)
        assert await pending == 401
        assert await asyncio.to_thread(bsf.popen.wait, 15) == 0
    finally:
        lab.close()
        await hss.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


class Balancer:
    """A TCP load balancer in front of the BSFs' Zn listeners: each new connection goes to the next
    backend in rotation, as a Kubernetes Service does once a terminating pod has left its endpoints."""

    def __init__(self, backends: list[int]) -> None:
        self.rotation = backends
        self.routes: list[int] = []  # the backend of each connection, in the order they came
        self._turn = itertools.count()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()  # both ends of every connection passed on
        self._idle = asyncio.Event()
        self._idle.set()

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return int(self._server.sockets[0].getsockname()[1])

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        backend = self.rotation[next(self._turn) % len(self.rotation)]
        self.routes.append(backend)
        self._writers.add(writer)
        self._idle.clear()
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", backend)
            self._writers.add(up_writer)
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
            self._writers.discard(up_writer)
        except OSError:
            writer.close()
        finally:
            self._writers.discard(writer)
            if not self._writers:
                self._idle.set()

    async def close(self) -> None:
        """Stop listening and close what is still open; the pipes end on their own."""
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        await asyncio.wait_for(self._idle.wait(), 5)


def _stream(messages: list[DecodedMessage], stream: int) -> list[DecodedMessage]:
    return [m for m in messages if m.stream == stream]


# Where each flavour listens, in the BSF's banner.
ZN_LISTENER = {
    "diameter": r"Zn Diameter on [\d.]+:(\d+)",
    "sbi": r"Zn Nbsp_GBA on [\d.]+:(\d+)",
    "soap": r"Zn SOAP on [\d.]+:(\d+)",
}


@pytest.mark.parametrize("via", ["diameter", "sbi", "soap"])
async def test_a_naf_keeps_its_keys_through_a_rolling_restart_of_the_bsfs(tmp_path: Path, via: str) -> None:
    """Two BSFs on Redis behind a balancer, a NAF fetching keys all along, and each BSF in turn stopped
    while it carries the NAF's Zn connection, then replaced; then one killed. No fetch fails, on any
    Zn flavour. On Diameter, a stopping BSF answers what is in flight and DPRs the NAF, which sends its
    next request on a new connection, to another BSF; after the kill, the request in flight goes again
    on a new connection. Over HTTP, a request whose connection broke goes again on a new one."""
    lab = Lab(tmp_path)
    assert run_cli(["hss", "add-subscriber", *lab.data, "--impi", IMPI, "--k", K, "--opc", OPC]).returncode == 0
    lab.start_hss()

    async def start_bsf(name: str) -> tuple[int, Proc, str]:
        def start() -> tuple[int, Proc, str]:
            proc, url = lab.start_bsf(name, {"GBAGW_BSF_STORE": REDIS})
            return int(proc.wait_for(ZN_LISTENER[via]).group(1)), proc, url

        return await asyncio.to_thread(start)  # the balancer and the NAF run on this loop meanwhile

    bsfs: dict[int, Proc] = {}
    urls = []
    for name in ("bsf-a", "bsf-b"):
        port, proc, url = await start_bsf(name)
        bsfs[port] = proc
        urls.append(url)
    usim = ue.Usim(bytes.fromhex(K), bytes.fromhex(OPC))
    # A bootstrap through each BSF, so that each holds a Zh connection to the HSS when it stops.
    boots = [await bootstrap(url, ue.UeClient(usim, IMPI, "bsf.gba.test")) for url in urls]
    btid, expected = boots[-1].btid, boots[-1].naf_keys(NAF_ID)[0]
    balancer = Balancer(list(bsfs))
    lb_port = await balancer.start()
    lb = f"http://127.0.0.1:{lb_port}"
    naf = create_zn_client(NafConfig(zn_via=via, bsf_port=lb_port, sbi_url=lb, soap_url=f"{lb}/GBAService"))
    fetched: list[bytes | None] = []
    failures: list[str] = []
    done, eager = asyncio.Event(), asyncio.Event()

    async def keep_fetching() -> None:
        while not done.is_set():
            try:
                fetched.append((await naf.fetch_key(btid, NAF_ID)).me_key)
            except (ZnUnavailable, ZnRefused) as exc:
                failures.append(f"{type(exc).__name__}: {exc}")
            await asyncio.sleep(0 if eager.is_set() else 0.005)

    async def until_fetched(n: int) -> None:
        target = len(fetched) + n
        async with asyncio.timeout(20):
            while len(fetched) < target:
                await asyncio.sleep(0.02)

    pcap = tmp_path / "rollout.pcap"
    stopped = []
    try:
        capture = tshark_capture([lb_port, lab.hss_port], pcap) if via == "diameter" else contextlib.nullcontext()
        with capture:
            fetcher = asyncio.create_task(keep_fetching())
            await until_fetched(20)
            for turn, graceful in enumerate((True, True, False)):
                victim = balancer.routes[-1]  # the BSF that carries the NAF's connection
                balancer.rotation.remove(victim)
                proc = bsfs.pop(victim)
                # Back to back while the BSF stops: requests cross its DPR, and follow it closely.
                eager.set()
                if graceful:
                    assert await asyncio.to_thread(proc.stop) == 0, proc.logs[-2000:]
                    stopped.append(proc)
                else:  # a crash: what was in flight goes again on a new connection (RFC 6733 5.5.4)
                    # Redis holds its answers for a moment, so that a BIR surely waits in the victim.
                    async with aioredis.from_url(REDIS) as r:
                        await r.execute_command("CLIENT", "PAUSE", 500, "ALL")
                    await asyncio.sleep(0.1)
                    proc.popen.kill()
                    await asyncio.to_thread(proc.popen.wait)
                eager.clear()
                port, bsfs[port], _ = await start_bsf(f"bsf-new-{turn}")
                balancer.rotation.append(port)
                await until_fetched(30)
            done.set()
            await fetcher
    finally:
        done.set()
        await naf.close()
        await balancer.close()
        lab.close()
        for proc in bsfs.values():
            proc.stop()
    assert failures == []
    assert len(fetched) >= 80 and set(fetched) == {expected}
    assert len(set(balancer.routes)) == 4  # the NAF's connections went to four BSFs in turn
    for proc in stopped:
        assert "Diameter peers get a DPR" in proc.logs
    if via != "diameter":
        return

    messages, problems = diameter_messages(pcap, [lb_port, lab.hss_port])
    assert problems == []
    # Zn (the balancer's port is the BSF's side): each stopped BSF sent one DPR, REBOOTING, which the
    # NAF answered; every BIR on that connection was answered and none came after the DPA.
    zn_dprs = [m for m in messages if m.command == d.CMD_DISCONNECT_PEER and m.request and m.src_port == lb_port]
    assert len(zn_dprs) == 2 and len({m.stream for m in zn_dprs}) == 2
    for dpr in zn_dprs:
        assert dpr.origin_host == "bsf.gba.test" and dpr.disconnect_cause == DISCONNECT_REBOOTING
        conn = _stream(messages, dpr.stream)
        (dpa,) = [m for m in conn if m.command == d.CMD_DISCONNECT_PEER and not m.request]
        assert dpa.dst_port == lb_port and dpa.result_code == d.ResultCode.SUCCESS
        birs = [m for m in conn if m.command == d.CMD_BOOTSTRAPPING_INFO and m.request]
        bias = [m for m in conn if m.command == d.CMD_BOOTSTRAPPING_INFO and not m.request]
        assert birs and len(birs) == len(bias) and all(m.result_code == d.ResultCode.SUCCESS for m in bias)
        assert all(conn.index(m) < conn.index(dpa) for m in birs)
    # The kill: the BIR in flight went again on the NAF's next connection, with the T flag and its
    # end-to-end id, and it alone (RFC 6733 5.5.4).
    zn_birs = [m for m in messages if m.command == d.CMD_BOOTSTRAPPING_INFO and m.request]
    (again,) = [m for m in zn_birs if m.retransmit]
    (lost,) = [m for m in zn_birs if m.end_to_end == again.end_to_end and m is not again]
    assert lost.stream != again.stream and not lost.retransmit
    answered = {m.end_to_end for m in messages if m.command == d.CMD_BOOTSTRAPPING_INFO and not m.request}
    assert again.end_to_end in answered
    # Zh: each stopped BSF sent the HSS a DPR, REBOOTING, and the HSS answered it.
    zh_dprs = [m for m in messages if m.command == d.CMD_DISCONNECT_PEER and m.request and m.dst_port == lab.hss_port]
    assert len(zh_dprs) == 2 and all(
        m.origin_host == "bsf.gba.test" and m.disconnect_cause == DISCONNECT_REBOOTING for m in zh_dprs
    )
    for dpr in zh_dprs:
        (dpa,) = [m for m in _stream(messages, dpr.stream) if m.command == d.CMD_DISCONNECT_PEER and not m.request]
        assert dpa.origin_host == "hss.gba.test" and dpa.result_code == d.ResultCode.SUCCESS
