"""The Diameter node under peers that misbehave on purpose (issue 27 classes 1 and 2), over real TCP:
a peer that sends requests and never reads the answers, a flood of connections past the cap."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import resource
import socket
import time

import pytest

from gba import diameter as d
from gbaio.accept_errors import throttle_accept_errors
from gbaio.diameter_node import MAX_IN_FLIGHT, DiameterServer, NodeIdentity, PeerInfo, connect

OURS = NodeIdentity("bsf.gba.test", "gba.test", (d.APP_ZN,))
NAF = NodeIdentity("naf.gba.test", "gba.test", (d.APP_ZN,))


def _bir(n: int) -> bytes:
    naf_id = b"naf\x01\x00\x00\x01"
    bir = d.BootstrappingInfoRequest(f"s;{n}", "naf.gba.test", "gba.test", "gba.test", "btid@bsf", naf_id)
    return bir.to_envelope(n, n).encode()


def _cer() -> bytes:
    avps = d.capabilities_avps("naf.gba.test", "gba.test", "127.0.0.1", (d.APP_ZN,), 1)
    return d.Envelope(d.CMD_CAPABILITIES_EXCHANGE, 0, d.FLAG_REQUEST, 1, 1, avps).encode()


async def _answer_big(env: d.Envelope, _peer: PeerInfo) -> d.Envelope:
    # 2 KiB answers for 0.2 KiB requests: the output backs up fast.
    avps = [d.new_avp(d.Avps.RESULT_CODE, d.ResultCode.SUCCESS), d.new_avp(d.Avps.ERROR_MESSAGE, "x" * 2048)]
    return env.answer(avps + d.answer_header_avps(None, None, OURS.origin_host, OURS.origin_realm))


async def _non_reader(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # the peer's kernel takes little
    sock.connect(("127.0.0.1", port))
    sock.setblocking(False)
    reader, writer = await asyncio.open_connection(sock=sock, limit=4096)
    writer.write(_cer())
    head = await asyncio.wait_for(reader.readexactly(4), 5)
    await reader.readexactly(d.message_length(head) - 4)
    return reader, writer


async def test_a_peer_that_never_reads_is_paused_then_dropped() -> None:
    """Requests keep coming, answers are never read: the server's unsent output and the requests it holds
    stay bounded (reading pauses), and the connection is dropped once blocked past write_timeout."""
    server = DiameterServer(OURS, _answer_big, write_timeout=1.0)
    port = await server.start("127.0.0.1", 0)
    _, writer = await _non_reader(port)
    most_buffered = most_in_flight = 0
    started = time.monotonic()
    n = 0
    try:
        while time.monotonic() - started < 8:
            if writer.transport.get_write_buffer_size() < 1 << 20:  # our own side: bounded too
                for _ in range(50):
                    n += 1
                    writer.write(_bir(n))
            await asyncio.sleep(0.01)
            conns = list(server.connections)
            if not conns:
                break
            conn = conns[0]
            most_buffered = max(most_buffered, conn._writer.transport.get_write_buffer_size())
            most_in_flight = max(most_in_flight, len(conn._tasks))
        dropped_after = time.monotonic() - started
        assert not server.connections, "a peer that reads nothing was kept"
        assert dropped_after < 6, dropped_after
        assert most_in_flight <= MAX_IN_FLIGHT
        # the transport's high-water mark (64 KiB) plus the answers of the requests in hand
        assert most_buffered < 64 * 1024 + MAX_IN_FLIGHT * 2300, most_buffered
    finally:
        writer.transport.abort()
        await server.close()


async def test_a_reading_peer_is_served_past_max_in_flight() -> None:
    """Many requests in flight on one connection from a peer that does read: all answered."""
    gate = asyncio.Event()

    async def slow(env: d.Envelope, peer: PeerInfo) -> d.Envelope:
        await gate.wait()
        return await _answer_big(env, peer)

    server = DiameterServer(OURS, slow)
    port = await server.start("127.0.0.1", 0)
    conn = await connect(NAF, "127.0.0.1", port)
    try:
        envs = [d.Envelope.from_bytes(_bir(i)) for i in range(1, 2 * MAX_IN_FLIGHT + 1)]
        pending = [asyncio.create_task(conn.request(e, 10)) for e in envs]
        await asyncio.sleep(0.3)
        assert len(next(iter(server.connections))._tasks) <= MAX_IN_FLIGHT
        gate.set()
        answers = await asyncio.gather(*pending)
        assert all(a.result()[0] == d.ResultCode.SUCCESS for a in answers)
    finally:
        await conn.close()
        await server.close()


async def test_connections_past_the_cap_are_closed_at_once_and_counted(caplog: pytest.LogCaptureFixture) -> None:
    """A flood of idle connections: past max_connections each new one is closed at once (the CER phase
    counts), counted, and logged once; a peer connected before the flood is still served."""
    server = DiameterServer(OURS, _answer_big, max_connections=3, name="zn")
    port = await server.start("127.0.0.1", 0)
    conn = await connect(NAF, "127.0.0.1", port)
    idle: list[asyncio.StreamWriter] = []
    try:
        with caplog.at_level(logging.WARNING, "gbagw.diameter"):
            for _ in range(2):  # fills the cap with connections that never send their CER
                idle.append((await asyncio.open_connection("127.0.0.1", port))[1])
            await asyncio.sleep(0.1)
            for _ in range(5):
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                idle.append(writer)
                assert await asyncio.wait_for(reader.read(), 2) == b""  # closed, nothing said
        assert server.refused_connections == 5 and server.open_connections == 3
        assert len([r for r in caplog.records if "the limit" in r.getMessage()]) == 1
        answer = await conn.request(d.Envelope.from_bytes(_bir(7)), 5)
        assert answer.result()[0] == d.ResultCode.SUCCESS
    finally:
        for w in idle:
            w.transport.abort()
        await conn.close()
        await server.close()


async def test_a_peer_that_sends_no_cer_is_dropped_and_frees_its_place() -> None:
    server = DiameterServer(OURS, _answer_big, max_connections=1, cer_timeout=0.5)
    port = await server.start("127.0.0.1", 0)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        assert await asyncio.wait_for(reader.read(), 3) == b""
        writer.transport.abort()
        await asyncio.sleep(0.05)
        assert server.open_connections == 0
        conn = await connect(NAF, "127.0.0.1", port)
        await conn.close()
    finally:
        await server.close()


async def test_a_cer_announcing_a_large_message_is_refused_before_it_is_read() -> None:
    """Before its sender is known a peer may not make us buffer a whole 64 KiB message."""
    server = DiameterServer(OURS, _answer_big)
    port = await server.start("127.0.0.1", 0)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"\x01\x00\xff\xf0" + b"\x80" + b"\x00" * 15)  # a header announcing 65,520 octets
        assert await asyncio.wait_for(reader.read(), 3) == b""
        writer.transport.abort()
    finally:
        await server.close()


async def test_the_accept_loop_outlives_running_out_of_descriptors(caplog: pytest.LogCaptureFixture) -> None:
    """EMFILE on accept: the listener stops accepting for a second and tries again, one log line
    (not a traceback a second), and accepts again once descriptors are free."""
    loop = asyncio.get_running_loop()
    throttle_accept_errors(loop)
    server = DiameterServer(OURS, _answer_big, cer_timeout=10)
    port = await server.start("127.0.0.1", 0)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    clients: list[socket.socket] = []
    try:
        with caplog.at_level(logging.WARNING):
            resource.setrlimit(resource.RLIMIT_NOFILE, (len(os.listdir("/proc/self/fd")) + 8, hard))
            try:
                for _ in range(16):  # each accepted one takes two descriptors here: the limit comes first
                    s = socket.socket()
                    s.setblocking(False)
                    clients.append(s)
                    with contextlib.suppress(BlockingIOError):
                        s.connect(("127.0.0.1", port))
                    await asyncio.sleep(0.05)
            except OSError as exc:
                assert exc.errno == errno.EMFILE
            await asyncio.sleep(2.5)  # the accept loop meets EMFILE at every retry (once a second)
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
            for s in clients:
                s.close()
            clients.clear()
            await asyncio.sleep(1.2)
        conn = await connect(NAF, "127.0.0.1", port, timeout=3)
        await conn.close()
        lines = [r for r in caplog.records if "out of file descriptors" in r.getMessage()]
        assert len(lines) == 1 and lines[0].exc_info is None
        assert not [r for r in caplog.records if r.name == "asyncio"]
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        for s in clients:
            s.close()
        await server.close()
