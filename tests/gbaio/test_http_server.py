"""gbaio.http_server over real sockets: persistence, pipelining, limits, timeouts, errors, shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator

import aiohttp
import pytest

from gbaio import http_server
from gbaio.http_server import HttpRequest, HttpResponse, HttpServer

Raw = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def _echo(request: HttpRequest) -> HttpResponse:
    if request.target == "/slow":
        await asyncio.sleep(0.3)
    if request.target == "/boom":
        raise RuntimeError("secret detail")
    if request.target.startswith("/big/"):
        return HttpResponse(200, (), request.target.encode().ljust(64 * 1024, b"."))
    if request.target == "/split":
        return HttpResponse(200, [("X-Bad", "a\r\nSet-Cookie: x=1")])
    text = f"{request.method} {request.target} {len(request.body)} {request.header('x-n') or ''}"
    return HttpResponse(200, [("Server", "test")], text.encode(), "text/plain")


@pytest.fixture
async def server() -> AsyncIterator[tuple[HttpServer, int]]:
    srv = HttpServer(_echo, max_header_bytes=1024, max_headers=10, max_body=100, request_timeout=1.0, idle_timeout=1.0)
    port = await srv.start("127.0.0.1", 0)
    yield srv, port
    await srv.close(grace=1.0)


async def _raw(port: int, data: bytes) -> Raw:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    return reader, writer


async def _response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    """One response off the wire: status, headers (lower-cased names), body by Content-Length."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    status_line, *lines = head.decode("latin-1").split("\r\n")[:-2]
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return int(status_line.split()[1]), headers, body


async def _closed(reader: asyncio.StreamReader) -> bool:
    return await asyncio.wait_for(reader.read(1), 5) == b""


async def _last_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """A connection's final response: status and body; it says Connection: close, then the server closes."""
    status, headers, body = await _response(reader)
    assert headers["connection"] == "close"
    assert await _closed(reader)
    return status, body


async def test_keep_alive_and_pipelined_requests_are_answered_in_order(server: tuple[HttpServer, int]) -> None:
    _, port = server
    reqs = b"".join(f"GET /{i} HTTP/1.1\r\nHost: h\r\nX-N: {i}\r\n\r\n".encode() for i in range(20))
    reader, writer = await _raw(port, reqs)
    for i in range(20):
        status, headers, body = await _response(reader)
        assert (status, body) == (200, f"GET /{i} 0 {i}".encode())
        assert headers["server"] == "test" and "date" in headers and "connection" not in headers
    writer.write(b"GET /again HTTP/1.1\r\nHost: h\r\n\r\n")
    assert (await _response(reader))[2] == b"GET /again 0 "
    writer.close()


async def test_a_client_that_stops_reading_is_answered_in_order_once_it_reads_again(
    server: tuple[HttpServer, int],
) -> None:
    """Flow control both ways: reading pauses while answers queue up, writing waits while the client
    does not read; nothing is lost or reordered."""
    srv, port = server
    n = http_server.MAX_PIPELINED  # answers of 64 KiB: far more than the client's 64 KiB receive buffer holds
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)  # no autotuning: a small window
    sock.connect(("127.0.0.1", port))
    reader, writer = await asyncio.open_connection(sock=sock)
    requests = b"".join(b"GET /big/%d HTTP/1.1\r\nHost: h\r\n\r\n" % i for i in range(n))
    sending = asyncio.create_task(_send_all(writer, requests))
    await asyncio.sleep(0.5)  # nothing read meanwhile: the server's write buffer fills up
    (conn,) = srv.connections
    assert conn._write_resumed is not None  # writing paused, waiting for the client
    for i in range(n):
        body = (await _response(reader))[2]
        assert len(body) == 64 * 1024 and body.startswith(f"/big/{i}.".encode())
    await sending
    writer.close()


async def test_a_client_that_never_reads_is_dropped_with_bounded_buffers(server: tuple[HttpServer, int]) -> None:
    """Pipelining without reading: the server's output stops at the transport's high-water mark, reading
    pauses after MAX_QUEUED parsed requests, and the connection is dropped after request_timeout."""
    srv, port = server
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    sock.connect(("127.0.0.1", port))
    sock.setblocking(False)
    sent = 0
    request = b"GET /big/x HTTP/1.1\r\nHost: h\r\n\r\n"
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 4.0
    biggest = 0
    dropped = False
    while loop.time() < deadline and not dropped:
        try:
            sent += sock.send(request * 64)
        except BlockingIOError:
            pass
        except (BrokenPipeError, ConnectionResetError):
            dropped = True
        for conn in srv.connections:
            assert conn._transport is not None
            biggest = max(biggest, conn._transport.get_write_buffer_size())
            assert len(conn._queue) <= http_server.MAX_PIPELINED + 1
        await asyncio.sleep(0.02)
        dropped = dropped or not srv.connections
    sock.close()
    assert dropped, "the server kept a connection that reads nothing past request_timeout"
    assert sent > http_server.MAX_PIPELINED * len(request) and biggest <= 512 * 1024, (sent, biggest)


async def test_past_max_pipelined_requests_the_rest_is_refused(server: tuple[HttpServer, int]) -> None:
    _, port = server
    n = http_server.MAX_PIPELINED
    reader, writer = await _raw(port, b"".join(b"GET /%d HTTP/1.1\r\nHost: h\r\n\r\n" % i for i in range(n + 30)))
    for i in range(n):
        assert (await _response(reader))[:3:2] == (200, f"GET /{i} 0 ".encode())
    assert await _last_response(reader) == (429, b"too many pipelined requests\n")
    writer.close()


async def test_connections_past_the_cap_are_closed_at_once_and_counted(caplog: pytest.LogCaptureFixture) -> None:
    srv = HttpServer(_echo, max_connections=3, name="ub")
    port = await srv.start("127.0.0.1", 0)
    try:
        held = [await _raw(port, b"") for _ in range(3)]
        await asyncio.sleep(0.1)
        with caplog.at_level(logging.WARNING, "gbagw.http"):
            extra = [await _raw(port, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n") for _ in range(5)]
            for reader, _ in extra:
                with contextlib.suppress(ConnectionResetError):
                    assert await asyncio.wait_for(reader.read(), 5) == b""
        assert srv.refused_connections == 5
        assert [r.message for r in caplog.records].count(caplog.records[0].message) == 1  # once per interval
        assert "ub: 3 connections open" in caplog.records[0].message
        reader, writer = held[0]
        writer.write(b"GET /still HTTP/1.1\r\nHost: h\r\n\r\n")
        assert (await _response(reader))[2] == b"GET /still 0 "
        for _, w in held:
            w.close()
        await asyncio.sleep(0.1)
        reader, writer = await _raw(port, b"GET /again HTTP/1.1\r\nHost: h\r\n\r\n")
        assert (await _response(reader))[2] == b"GET /again 0 "  # room again once they are gone
        writer.close()
    finally:
        await srv.close(grace=1.0)


async def _send_all(writer: asyncio.StreamWriter, data: bytes) -> None:
    writer.write(data)
    await writer.drain()


async def test_a_slow_answer_does_not_reorder_the_pipeline(server: tuple[HttpServer, int]) -> None:
    _, port = server
    reader, writer = await _raw(port, b"GET /slow HTTP/1.1\r\nHost: h\r\n\r\nGET /fast HTTP/1.1\r\nHost: h\r\n\r\n")
    assert (await _response(reader))[2] == b"GET /slow 0 "
    assert (await _response(reader))[2] == b"GET /fast 0 "
    writer.close()


async def test_http10_and_connection_close_end_the_connection(server: tuple[HttpServer, int]) -> None:
    _, port = server
    for request in (b"GET / HTTP/1.0\r\n\r\n", b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"):
        reader, writer = await _raw(port, request)
        assert (await _last_response(reader))[0] == 200
        writer.close()


async def test_bodies_by_length_and_chunked_and_head_has_no_body(server: tuple[HttpServer, int]) -> None:
    _, port = server
    reader, writer = await _raw(
        port,
        b"POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello"
        b"POST /b HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
        b"HEAD /c HTTP/1.1\r\nHost: h\r\n\r\n"
        b"GET /d HTTP/1.1\r\nHost: h\r\n\r\n",
    )
    assert (await _response(reader))[2] == b"POST /a 5 "
    assert (await _response(reader))[2] == b"POST /b 5 "
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert b"Content-Length: 10" in head  # the length of "HEAD /c 0 ", which is not sent
    assert (await _response(reader))[2] == b"GET /d 0 "  # so the next answer starts right after the head
    writer.close()


async def test_expect_100_continue(server: tuple[HttpServer, int]) -> None:
    _, port = server
    reader, writer = await _raw(
        port, b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n"
    )
    assert await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5) == b"HTTP/1.1 100 Continue\r\n\r\n"
    writer.write(b"abc")
    assert (await _response(reader))[2] == b"POST / 3 "
    writer.close()


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GARBAGE\r\n\r\n",
        b"GET / HTTP/1.1\r\nBad Header\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n",  # obsolete line folding
        b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
        b"POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",  # smuggling
        b"GET / HTTP/1.1\nHost: a\n\n",
    ],
)
async def test_malformed_requests_get_400_and_the_connection_closes(
    server: tuple[HttpServer, int], request_bytes: bytes
) -> None:
    _, port = server
    reader, writer = await _raw(port, request_bytes)
    status, body = await _last_response(reader)
    assert status == 400 and body.startswith(b"malformed request")
    writer.close()


async def test_header_limits_give_431(server: tuple[HttpServer, int]) -> None:
    _, port = server
    for request in (
        b"GET /" + b"a" * 2000 + b" HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1\r\nX-Big: " + b"b" * 2000 + b"\r\n\r\n",
        b"GET / HTTP/1.1\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(11)) + b"\r\n",
    ):
        reader, writer = await _raw(port, request)
        assert (await _response(reader))[0] == 431
        assert await _closed(reader)
        writer.close()


async def test_an_oversized_body_gets_413_and_is_read_to_its_end(server: tuple[HttpServer, int]) -> None:
    _, port = server
    reader, writer = await _raw(port, b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5000\r\n\r\n" + b"x" * 5000)
    assert (await _last_response(reader))[0] == 413
    writer.close()
    async with aiohttp.ClientSession() as s, s.post(f"http://127.0.0.1:{port}/", data=b"y" * 1_000_000) as r:
        assert r.status == 413  # a client still sending sees the answer, not a reset


async def test_a_request_that_does_not_arrive_in_time_gets_408(server: tuple[HttpServer, int]) -> None:
    _, port = server
    reader, writer = await _raw(port, b"GET / HTTP/1.1\r\nHost: h\r\n")  # headers never end
    assert (await _last_response(reader))[0] == 408
    writer.close()


async def test_an_idle_connection_is_closed(server: tuple[HttpServer, int]) -> None:
    _, port = server
    reader, writer = await _raw(port, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    assert (await _response(reader))[0] == 200
    assert await _closed(reader)  # idle_timeout 1 s
    writer.close()


async def test_a_failing_handler_is_500_without_detail_and_a_header_cannot_split(
    server: tuple[HttpServer, int], caplog: pytest.LogCaptureFixture
) -> None:
    _, port = server
    caplog.set_level(logging.ERROR, "gbagw.http")
    reader, writer = await _raw(port, b"GET /boom HTTP/1.1\r\nHost: h\r\n\r\nGET /split HTTP/1.1\r\nHost: h\r\n\r\n")
    status, _, body = await _response(reader)
    assert status == 500 and b"secret" not in body
    status, headers, _ = await _response(reader)
    assert status == 500 and "set-cookie" not in headers
    assert "handler failed for GET /boom" in caplog.text
    writer.close()


async def test_an_upgrade_request_is_answered_then_the_connection_closes(server: tuple[HttpServer, int]) -> None:
    _, port = server
    reader, writer = await _raw(port, b"GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n")
    assert (await _last_response(reader))[0] == 200
    writer.close()


async def test_close_answers_in_flight_requests_and_closes_idle_connections() -> None:
    srv = HttpServer(_echo)
    port = await srv.start("127.0.0.1", 0)
    idle_reader, idle_writer = await _raw(port, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    assert (await _response(idle_reader))[0] == 200
    busy_reader, busy_writer = await _raw(port, b"GET /slow HTTP/1.1\r\nHost: h\r\n\r\n")
    await asyncio.sleep(0.05)
    closing = asyncio.create_task(srv.close(grace=5))
    assert await _closed(idle_reader)
    status, headers, body = await _response(busy_reader)
    assert (status, body, headers["connection"]) == (200, b"GET /slow 0 ", "close")
    await closing
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", port)
    idle_writer.close()
    busy_writer.close()


def test_request_url_and_headers() -> None:
    req = HttpRequest("GET", "/p?q=1", [("host", "bsf:8080"), ("a", "1"), ("a", "2")], b"", "127.0.0.1", "https")
    assert req.url == "https://bsf:8080/p?q=1"
    assert req.header("a") == "1" and req.header_values("a") == ["1", "2"] and req.header("b") is None
    assert HttpRequest("GET", "http://x/y", [], b"", "", "http").url == "http://x/y"
