"""The Diameter node's disconnect (RFC 6733 5.4) against a peer written with the codec alone, over real
TCP: the races of a peer restart, made deterministic."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

import pytest

from gba import diameter as d
from gbaio import logs
from gbaio.diameter_node import (
    DISCONNECT_REBOOTING,
    ConnectionLost,
    DiameterClient,
    DiameterServer,
    NodeIdentity,
    PeerInfo,
    connect,
)
from tests.procs import free_port

OURS = NodeIdentity("bsf.gba.test", "gba.test", (d.APP_ZN,))


class RawPeer:
    """The other end of one connection: it sends exactly what the test says, when it says."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def read(self) -> d.Envelope:
        head = await self.reader.readexactly(4)
        return d.Envelope.from_bytes(head + await self.reader.readexactly(d.message_length(head) - 4))

    def send(self, env: d.Envelope) -> None:
        self.writer.write(env.encode())

    def answer(self, req: d.Envelope, *extra: d.Avp) -> None:
        avps = [d.new_avp(d.Avps.RESULT_CODE, d.ResultCode.SUCCESS), *extra]
        self.send(req.answer(avps + d.answer_header_avps(None, None, "naf.gba.test", "gba.test")))


def _request(hop_by_hop: int) -> d.Envelope:
    bir = d.BootstrappingInfoRequest("s;1", "naf.gba.test", "gba.test", "gba.test", "btid@bsf", b"naf\x01\x00\x00\x01")
    return bir.to_envelope(hop_by_hop, hop_by_hop)


def _cer() -> d.Envelope:
    avps = d.capabilities_avps("naf.gba.test", "gba.test", "127.0.0.1", (d.APP_ZN,), 1)
    return d.Envelope(d.CMD_CAPABILITIES_EXCHANGE, 0, d.FLAG_REQUEST, 1, 1, avps)


async def test_a_request_that_crosses_our_dpr_is_answered_before_we_close() -> None:
    """The peer sent a request just before it read our DPR, so the request arrives before its DPA:
    the answer still goes out, then the connection closes."""
    release = asyncio.Event()

    async def handler(req: d.Envelope, _peer: PeerInfo) -> d.Envelope:
        await release.wait()
        return req.answer([d.new_avp(d.Avps.RESULT_CODE, d.ResultCode.SUCCESS)])

    server = DiameterServer(OURS, handler)
    port = await server.start("127.0.0.1", 0)
    peer = RawPeer(*await asyncio.open_connection("127.0.0.1", port))
    peer.send(_cer())
    assert (await peer.read()).command_code == d.CMD_CAPABILITIES_EXCHANGE
    closing = asyncio.create_task(server.close())
    dpr = await peer.read()
    assert dpr.command_code == d.CMD_DISCONNECT_PEER and dpr.is_request
    cause = d.find(dpr.avps, d.Avps.DISCONNECT_CAUSE)
    assert cause is not None and cause.value == DISCONNECT_REBOOTING
    peer.send(_request(77))
    peer.answer(dpr)
    await asyncio.sleep(0.2)  # the server has the DPA now, and the request's handler is still busy
    release.set()
    answer = await asyncio.wait_for(peer.read(), 5)
    assert answer.hop_by_hop == 77 and not answer.is_request and answer.result() == (d.ResultCode.SUCCESS, None)
    assert await peer.reader.read() == b""  # then the server closes
    await closing
    peer.writer.close()


class RawListener:
    """Accepts connections as a peer written with the codec: CER and DPR answered, every other message
    queued with the number of its connection (1, 2, ...) for the test to act on."""

    def __init__(self) -> None:
        self.connections: list[RawPeer] = []
        self.got: asyncio.Queue[tuple[int, d.Envelope]] = asyncio.Queue()
        self._server: asyncio.Server | None = None

    async def start(self) -> DiameterClient:
        port = await self.listen()
        return DiameterClient(NodeIdentity("naf.gba.test", "gba.test", (d.APP_ZN,)), "127.0.0.1", port)

    async def listen(self, port: int = 0) -> int:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", port)
        return int(self._server.sockets[0].getsockname()[1])

    async def next(self) -> tuple[int, d.Envelope]:
        return await asyncio.wait_for(self.got.get(), 5)

    def rest(self) -> list[tuple[int, int, bool]]:
        """(connection, command, is request) of what is queued."""
        return [
            (n, env.command_code, env.is_request) for n, env in (self.got.get_nowait() for _ in range(self.got.qsize()))
        ]

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = RawPeer(reader, writer)
        self.connections.append(peer)
        n = len(self.connections)
        cer = await peer.read()
        peer.answer(cer, *d.capabilities_avps("bsf.gba.test", "gba.test", "127.0.0.1", (d.APP_ZN,), 1)[2:])
        while True:
            try:
                env = await peer.read()
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            await self.got.put((n, env))
            if env.command_code == d.CMD_DISCONNECT_PEER and env.is_request:
                peer.answer(env)

    def close(self) -> None:
        assert self._server is not None
        self._server.close()


async def test_after_a_dpr_new_requests_go_on_a_new_connection() -> None:
    """A peer restarting (behind a load balancer: another instance takes over) sends a DPR while a
    request is in flight: that one is answered on the old connection, the next opens a new one."""
    listener = RawListener()
    client = await listener.start()
    connections = listener.connections
    try:
        first = asyncio.create_task(client.request(_request(0), timeout=5))
        n, req = await listener.next()
        assert n == 1 and req.command_code == d.CMD_BOOTSTRAPPING_INFO
        old = connections[0]
        old.send(d.Envelope(d.CMD_DISCONNECT_PEER, 0, d.FLAG_REQUEST, 9, 9, [d.new_avp(d.Avps.DISCONNECT_CAUSE, 0)]))
        n, dpa = await listener.next()
        assert n == 1 and dpa.command_code == d.CMD_DISCONNECT_PEER and not dpa.is_request
        assert dpa.result() == (d.ResultCode.SUCCESS, None)
        assert not client.connected  # a DPR'd connection takes no new request

        second = asyncio.create_task(client.request(_request(0), timeout=5))
        n, req2 = await listener.next()
        assert n == 2 and req2.command_code == d.CMD_BOOTSTRAPPING_INFO
        connections[1].answer(req2)
        assert (await second).result() == (d.ResultCode.SUCCESS, None)
        old.answer(req)  # the answer in flight, on the old connection
        assert (await first).result() == (d.ResultCode.SUCCESS, None)
        old.writer.close()  # the peer that sent the DPR closes (RFC 6733 5.4)
        await asyncio.sleep(0.1)
        assert client.connected
    finally:
        await client.close()
        listener.close()
    # Closing the client sent its own DPR on the new connection, and nothing more went on the old one.
    assert listener.rest() == [(2, d.CMD_DISCONNECT_PEER, True)]


async def test_a_connection_a_request_opened_logs_its_own_events_under_no_request(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The connection outlives the request that opened it: its events (here the peer's DPR) must not
    carry that request's ids, or the logs would tie a peer's restart to some old Ub request."""
    seen: list[tuple[str, str, str]] = []

    def ids(record: logging.LogRecord) -> bool:
        seen.append((record.getMessage(), logs.request_id.get(), logs.peer_request_id.get()))
        return True

    caplog.set_level(logging.INFO, "gbagw.diameter")
    listener = RawListener()
    client = await listener.start()
    logger = logging.getLogger("gbagw.diameter")
    logger.addFilter(ids)
    try:

        async def ub_request() -> d.Envelope:
            logs.begin_request("ub-1")
            logs.peer_request_id.set("zh-1")
            return await client.request(_request(0), timeout=5)  # opens the connection

        first = asyncio.create_task(ub_request())
        _, req = await listener.next()
        listener.connections[0].answer(req)
        await first
        dpr = [d.new_avp(d.Avps.DISCONNECT_CAUSE, 0)]
        listener.connections[0].send(d.Envelope(d.CMD_DISCONNECT_PEER, 0, d.FLAG_REQUEST, 9, 9, dpr))
        await listener.next()  # the DPA: the DPR was read and logged
    finally:
        logger.removeFilter(ids)
        await client.close()
        listener.close()
    assert [s for s in seen if "sent DPR" in s[0]] == [("peer naf.gba.test sent DPR (Disconnect-Cause 0)", "", "")]


async def test_a_request_whose_connection_dies_goes_once_more_on_a_new_one() -> None:
    """The peer's process dies with our request unanswered (RFC 6733 5.5.4): the request goes again on
    a new connection, with the T flag and its end-to-end id; if that one dies too, the caller hears it."""
    listener = RawListener()
    client = await listener.start()
    try:
        pending = asyncio.create_task(client.request(_request(0), timeout=5))
        n, first = await listener.next()
        assert n == 1 and not first.flags & d.FLAG_RETRANSMIT
        listener.connections[0].writer.transport.abort()  # a reset, no DPR: kill -9
        n, again = await listener.next()
        assert n == 2 and again.command_code == d.CMD_BOOTSTRAPPING_INFO
        assert again.flags & d.FLAG_RETRANSMIT and again.end_to_end == first.end_to_end
        listener.connections[1].answer(again)
        assert (await pending).result() == (d.ResultCode.SUCCESS, None)

        pending = asyncio.create_task(client.request(_request(0), timeout=5))
        for conn in (2, 3):
            n, req = await listener.next()
            assert n == conn and req.command_code == d.CMD_BOOTSTRAPPING_INFO
            listener.connections[conn - 1].writer.transport.abort()
        with pytest.raises(ConnectionLost):
            await pending
        assert listener.rest() == []  # no third attempt
    finally:
        await client.close()
        listener.close()


async def test_keep_connected_opens_the_connection_without_a_request_and_again_after_a_loss(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The Tc timer (RFC 6733 12): a peer not listening yet is tried every interval, logged once; once it
    listens, a connection opens with no request; when the peer drops it, a new one follows."""
    caplog.set_level(logging.INFO, "gbagw.diameter")
    port = free_port()  # nobody listening, then the peer
    peer = RawListener()
    client = DiameterClient(NodeIdentity("bsf.gba.test", "gba.test", (d.APP_ZH,)), "127.0.0.1", port, timeout=1)
    keeper = asyncio.create_task(client.keep_connected(0.05))
    try:
        await asyncio.sleep(0.3)  # several attempts
        assert not client.connected
        refused = [r for r in caplog.records if "trying again every 0.05 s" in r.getMessage()]
        assert len(refused) == 1 and refused[0].levelname == "WARNING"
        await peer.listen(port)
        await _until(lambda: client.connected)
        assert len(peer.connections) == 1 and peer.got.empty()  # a CER, nothing else
        assert any("reachable again" in r.getMessage() for r in caplog.records)
        peer.connections[0].writer.close()  # the peer drops the connection
        await _until(lambda: len(peer.connections) == 2 and client.connected)
    finally:
        keeper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await keeper
        await client.close()
        peer.close()


async def _until(condition: Callable[[], bool], timeout: float = 5) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def _served(handler_calls: list[d.Envelope]) -> tuple[DiameterServer, int]:
    async def handler(req: d.Envelope, _peer: PeerInfo) -> d.Envelope:
        handler_calls.append(req)
        return req.answer([d.new_avp(d.Avps.RESULT_CODE, d.ResultCode.SUCCESS)])

    server = DiameterServer(OURS, handler)
    return server, await server.start("127.0.0.1", 0)


async def _echo(req: d.Envelope, _peer: PeerInfo) -> d.Envelope:
    return req.answer([d.new_avp(d.Avps.RESULT_CODE, d.ResultCode.SUCCESS)])


def _bir_with(*extra: d.Avp, flags: int = 0, drop: int | None = None) -> d.Envelope:
    env = _request(0)
    env.avps = [a for a in env.avps if a.code != drop] + list(extra)
    env.flags |= flags
    return env


@pytest.mark.parametrize(
    ("request_env", "result", "e_bit", "failed"),
    [
        (_bir_with(d.Avp(9999, 0, b"\0\0\0\1", 0x40)), d.ResultCode.AVP_UNSUPPORTED, False, 9999),
        (_bir_with(d.Avp(3999, d.VENDOR_3GPP, b"\0\0\0\1", 0xC0)), d.ResultCode.AVP_UNSUPPORTED, False, 3999),
        (_bir_with(d.new_avp(d.Avps.SESSION_ID, "s;2")), d.ResultCode.AVP_OCCURS_TOO_MANY_TIMES, False, 263),
        (_bir_with(d.new_avp(d.Avps.RESULT_CODE, 2001)), d.ResultCode.AVP_NOT_ALLOWED, False, 268),
        (_bir_with(flags=d.FLAG_ERROR), d.ResultCode.INVALID_HDR_BITS, True, None),
        (
            _bir_with(d.new_avp(d.Avps.DESTINATION_REALM, b"other.test"), drop=d.Avps.DESTINATION_REALM),
            d.ResultCode.REALM_NOT_SERVED,
            True,
            None,
        ),
        (_bir_with(d.new_avp(d.Avps.DESTINATION_HOST, b"bsf2.gba.test")), d.ResultCode.UNABLE_TO_DELIVER, True, None),
        (_bir_with(d.Avp(9999, 0, b"\0\0\0\1", 0x00)), d.ResultCode.SUCCESS, False, None),  # no M: ignored
        (_bir_with(d.new_avp(d.Avps.DESTINATION_HOST, b"BSF.gba.test")), d.ResultCode.SUCCESS, False, None),
    ],
)
async def test_requests_are_checked_before_any_handler(
    request_env: d.Envelope, result: int, e_bit: bool, failed: int | None
) -> None:
    """RFC 6733 6.1.4, 7.1.3, 7.1.5 at every server of ours, before the application handler: never a
    2001 (with keys) for a request a strict peer would refuse."""
    calls: list[d.Envelope] = []
    server, port = await _served(calls)
    conn = await connect(NodeIdentity("naf.gba.test", "gba.test", (d.APP_ZN,)), "127.0.0.1", port)
    try:
        answer = await conn.request(request_env, timeout=5)
    finally:
        await conn.close()
        await server.close()
    assert answer.result() == (result, None) and answer.is_error == e_bit
    assert len(calls) == (1 if result == d.ResultCode.SUCCESS else 0)
    failed_avp = d.find(answer.avps, d.Avps.FAILED_AVP)
    if failed is None:
        assert failed_avp is None
    else:
        assert failed_avp is not None and [a.code for a in failed_avp.value] == [failed]


async def test_the_receiver_of_a_dpr_answers_exactly_the_dpa_abnf_then_disconnects() -> None:
    """RFC 6733 5.4.2 DPA ABNF (no Origin-State-Id) and 5.6 (Rcv-DPR -> Snd-DPA, Closing): a peer that
    sends a DPR and does not disconnect on our DPA is disconnected by us."""
    server = DiameterServer(OURS, _echo)
    port = await server.start("127.0.0.1", 0)
    peer = RawPeer(*await asyncio.open_connection("127.0.0.1", port))
    try:
        peer.send(_cer())
        await peer.read()
        (conn,) = server.connections
        assert conn.state is d.PeerState.R_OPEN
        peer.send(d.disconnect_peer_request("naf.gba.test", "gba.test", DISCONNECT_REBOOTING))
        dpa = await asyncio.wait_for(peer.read(), 5)
        assert dpa.command_code == d.CMD_DISCONNECT_PEER and not dpa.is_request
        assert [a.code for a in dpa.avps] == [d.Avps.RESULT_CODE, d.Avps.ORIGIN_HOST, d.Avps.ORIGIN_REALM]
        assert await asyncio.wait_for(peer.reader.read(), 5) == b""  # we disconnected
        assert conn.state in (d.PeerState.CLOSED,)  # (not narrowed: the state moved under the await)
    finally:
        peer.writer.close()
        await server.close()


async def test_the_sender_of_a_dpr_disconnects_on_the_dpa() -> None:
    """RFC 6733 5.4: the receiver of the DPA initiates the transport disconnect."""
    listener = RawListener()
    client = await listener.start()
    try:
        await client.ensure_connected()
        conn = client._conn
        assert conn is not None and conn.state is d.PeerState.I_OPEN
        await asyncio.wait_for(client.close(), 5)
        assert conn.state in (d.PeerState.CLOSED,)  # (not narrowed: the state moved under the await)
        n, dpr = await listener.next()
        assert n == 1 and dpr.command_code == d.CMD_DISCONNECT_PEER and dpr.is_request
        assert await asyncio.wait_for(listener.connections[0].reader.read(), 5) == b""
    finally:
        listener.close()


async def test_answers_with_unknown_hop_by_hop_ids_are_logged_once_per_interval(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """RFC 6733 6.2.1: ignored; a peer that sends thousands must not make us write a line for each
    (issue 27 class 9): one line per interval, with the count."""
    caplog.set_level(logging.INFO, "gbagw.diameter")
    server = DiameterServer(OURS, _echo)
    port = await server.start("127.0.0.1", 0)
    peer = RawPeer(*await asyncio.open_connection("127.0.0.1", port))
    try:
        peer.send(_cer())
        await peer.read()
        stray = d.device_watchdog_answer(d.device_watchdog_request("naf.gba.test", "gba.test", 1), "naf", "gba.test", 1)
        for hop in range(2000):
            stray.hop_by_hop = hop
            peer.send(stray)
        peer.send(d.device_watchdog_request("naf.gba.test", "gba.test", 1))  # answered after all the above
        assert (await asyncio.wait_for(peer.read(), 5)).command_code == d.CMD_DEVICE_WATCHDOG
        for _ in range(2000):
            peer.send(d.Envelope(d.CMD_DEVICE_WATCHDOG, 0, d.FLAG_REQUEST | d.FLAG_ERROR, 5, 5, []))
        for _ in range(2000):
            assert (await asyncio.wait_for(peer.read(), 5)).result() == (d.ResultCode.INVALID_HDR_BITS, None)
    finally:
        peer.writer.close()
        await server.close()
    lines = [r.getMessage() for r in caplog.records if r.name == "gbagw.diameter"]
    unknown = [m for m in lines if "unknown hop-by-hop" in m]
    refused = [m for m in lines if m.startswith("refused")]
    assert len(unknown) == 1 and unknown[0].startswith("1 answer(s)"), unknown
    assert len(refused) == 1, refused


async def test_the_proxy_info_of_a_request_comes_back_in_its_answer() -> None:
    """RFC 6733 6.2: any Proxy-Info AVPs in the request go in the answer, in their order (a stateless
    Zn-Proxy keeps its state there), whether the handler answers or the node refuses."""
    calls: list[d.Envelope] = []
    server, port = await _served(calls)
    conn = await connect(NodeIdentity("naf.gba.test", "gba.test", (d.APP_ZN,)), "127.0.0.1", port)
    infos = [
        d.new_avp(d.Avps.PROXY_INFO, [d.new_avp(d.Avps.PROXY_HOST, b"proxy.test"), d.Avp(33, 0, state, 0x40)])
        for state in (b"one", b"two")
    ]
    try:
        served = await conn.request(_bir_with(*infos), timeout=5)
        refused = await conn.request(_bir_with(*infos, d.Avp(9999, 0, b"\0\0\0\1", 0x40)), timeout=5)
    finally:
        await conn.close()
        await server.close()
    for answer in (served, refused):
        echoed = d.find_all(answer.avps, d.Avps.PROXY_INFO)
        assert [bytes(p.payload) for p in echoed] == [bytes(p.payload) for p in infos]
    assert served.result() == (d.ResultCode.SUCCESS, None) and refused.result() == (d.ResultCode.AVP_UNSUPPORTED, None)
