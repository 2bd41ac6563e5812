"""The NAF kit tells "busy, retry" (ZnUnavailable) from "refused" (ZnRefused) on every Zn flavour,
against real Diameter and HTTP servers that answer what another BSF might."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp import web
from hypercorn.asyncio import serve
from hypercorn.config import Config as HypercornConfig

from gba import diameter as d
from gba import zn_soap
from gba.kdf import NafId, UaProtocol
from gbaio.diameter_node import DiameterServer, NodeIdentity, PeerInfo
from naf.config import NafConfig
from naf.zn_client import ZnRefused, ZnUnavailable
from naf.zn_http_clients import create_zn_client

NAF_ID = NafId("naf.gba.test", UaProtocol.HTTP_DIGEST.value)
BTID = "AAAAAAAAAAAAAAAAAAAAAA==@bsf.gba.test"


async def _fetch(config: NafConfig) -> None:
    client = create_zn_client(config)
    try:
        await client.fetch_key(BTID, NAF_ID)
    finally:
        await client.close()


@pytest.fixture
async def http_bsf() -> AsyncIterator[Callable[[web.Response], str]]:
    """An HTTP/1.1 server answering every request with the response set last; yields a setter -> base URL."""
    answer: list[web.Response] = []

    async def handle(_request: web.Request) -> web.Response:
        return answer[-1]

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    base = f"http://127.0.0.1:{runner.addresses[0][1]}"

    def set_answer(response: web.Response) -> str:
        answer.append(response)
        return base

    yield set_answer
    await runner.cleanup()


@pytest.mark.parametrize(("code", "transient"), [(3002, True), (3004, True), (5012, False)])
async def test_diameter_transient_codes_are_unavailable(code: int, transient: bool) -> None:
    async def answer(req: d.Envelope, _peer: PeerInfo) -> d.Envelope:
        return d.error_answer(req, code, "bsf.gba.test", "gba.test")

    bsf = DiameterServer(NodeIdentity("bsf.gba.test", "gba.test", (d.APP_ZN,)), answer)
    port = await bsf.start("127.0.0.1", 0)
    try:
        with pytest.raises(ZnUnavailable if transient else ZnRefused, match=str(code)):
            await _fetch(NafConfig(bsf_port=port))
    finally:
        await bsf.close()


@pytest.mark.parametrize(("status", "transient"), [(503, True), (504, True), (500, False)])
async def test_nbsp_gba_5xx(status: int, transient: bool) -> None:
    """hypercorn, as the BSF's own Nbsp_GBA listener: the client speaks HTTP/2 (h2c prior knowledge)."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await receive()
        body = json.dumps({"status": status, "title": "x"}).encode()
        headers = [(b"content-type", b"application/problem+json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    sock = socket.create_server(("127.0.0.1", 0))
    port = int(sock.getsockname()[1])
    config = HypercornConfig()
    config.bind = [f"fd://{sock.detach()}"]
    stop = asyncio.Event()
    server = asyncio.create_task(serve(app, config, shutdown_trigger=stop.wait))  # type: ignore[arg-type]
    try:
        with pytest.raises(ZnUnavailable if transient else ZnRefused, match=str(status)):
            await _fetch(NafConfig(zn_via="sbi", sbi_url=f"http://127.0.0.1:{port}"))
    finally:
        stop.set()
        await server


@pytest.mark.parametrize(("status", "code", "transient"), [(503, 3004, True), (500, 3004, True), (500, 5403, False)])
async def test_soap_faults(http_bsf: Callable[[web.Response], str], status: int, code: int, transient: bool) -> None:
    fault = zn_soap.build_fault(code, "x", client=not transient)
    base = http_bsf(web.Response(status=status, body=fault, content_type="text/xml"))
    with pytest.raises(ZnUnavailable if transient else ZnRefused, match=str(code if status == 500 else status)):
        await _fetch(NafConfig(zn_via="soap", soap_url=f"{base}/GBAService"))


@pytest.mark.parametrize("breaks", [1, 2])
async def test_a_broken_connection_is_tried_once_more_on_a_new_one(breaks: int) -> None:
    """A server that drops the first ``breaks`` connections with the request unanswered (a BSF that
    stopped or died), then answers 503 on the next: after one break the request went again, on a new
    connection, and got the 503; after two, the caller hears the broken connection, and no third try
    was made. (SOAP here; Nbsp_GBA shares the client, and both go through a rolling restart in
    tests/bsf/test_e2e_shutdown.py.)"""
    connections = 0

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        await reader.read(65536)
        if connections <= breaks:
            writer.transport.abort()
            return
        writer.write(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    base = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    client = create_zn_client(NafConfig(zn_via="soap", soap_url=f"{base}/GBAService"))
    try:
        with pytest.raises(ZnUnavailable) as exc:
            await client.fetch_key(BTID, NAF_ID)
    finally:
        await client.close()
        server.close()
    assert connections == 2
    assert ("answered 503" in str(exc.value)) == (breaks == 1)
