"""The NAF kit's HTTP Zn clients read what TS 29.109 Annex D and TS 29.309 define, refuse what they do not,
and stop on a GBA type other than 3G GBA (TS 29.109 5.2/5.3 step 3)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from hypercorn.asyncio import serve
from hypercorn.config import Config as HypercornConfig

from gba import zn_soap
from gba.kdf import NafId, UaProtocol
from naf.config import NafConfig
from naf.zn_client import NafKey, ZnRefused
from naf.zn_http_clients import create_zn_client
from tests.conformance.nbsp_gba import check_nbsp_gba_request
from tests.conformance.zn_soap import check_zn_soap

NAF_ID = NafId("naf.gba.test", UaProtocol.HTTP_DIGEST.value)
BTID = "AAAAAAAAAAAAAAAAAAAAAA==@bsf.gba.test"
NOW = dt.datetime(2026, 11, 29, 12, 0, tzinfo=dt.UTC)
KEY = "ab" * 32


async def _fetch(config: NafConfig, gsids: tuple[str, ...] | None = ()) -> NafKey:
    client = create_zn_client(config)
    try:
        return await client.fetch_key(BTID, NAF_ID, gsids)
    finally:
        await client.close()


Seen = list[tuple[str, bytes]]


@pytest.fixture
async def sbi_bsf() -> AsyncIterator[Callable[[dict[str, Any]], Awaitable[tuple[str, Seen]]]]:
    """A hypercorn h2c server answering 200 with the JSON set; records (path, body) of each request."""
    answer: list[dict[str, Any]] = []
    seen: Seen = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            msg = await receive()
            body += msg.get("body", b"")
            if not msg.get("more_body"):
                break
        seen.append((scope["path"], body))
        data = json.dumps(answer[-1]).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": data})

    sock = socket.create_server(("127.0.0.1", 0))
    port = int(sock.getsockname()[1])
    config = HypercornConfig()
    config.bind = [f"fd://{sock.detach()}"]
    stop = asyncio.Event()
    server = asyncio.create_task(serve(app, config, shutdown_trigger=stop.wait))  # type: ignore[arg-type]

    async def set_answer(doc: dict[str, Any]) -> tuple[str, Seen]:
        answer.append(doc)
        return f"http://127.0.0.1:{port}", seen

    yield set_answer
    stop.set()
    await server


async def test_nbsp_gba_request_goes_under_the_api_root_and_is_schema_valid(
    sbi_bsf: Callable[[dict[str, Any]], Awaitable[tuple[str, Seen]]],
) -> None:
    base, seen = await sbi_bsf({"meKeyMaterial": KEY, "keyExpiryTime": "2026-11-29T12:00:00Z"})
    key = await _fetch(NafConfig(zn_via="sbi", sbi_url=base + "/operator/bsf-1/", gsids=("1000001",)), None)
    assert key.me_key == bytes.fromhex(KEY) and key.expires == NOW and key.created is None
    ((path, body),) = seen
    assert path == "/operator/bsf-1/nbsp-gba/v1/bootstrapping-info-retrieval"
    check_nbsp_gba_request(body)
    assert json.loads(body)["gsIds"] == [1000001]


@pytest.mark.parametrize(
    ("doc", "code"),
    [
        ({"meKeyMaterial": KEY, "keyExpiryTime": "2026-11-29T12:00:00Z", "gbaType": "2G_GBA"}, 5004),
        ({"meKeyMaterial": KEY}, 5005),  # no keyExpiryTime: the NAF cannot bound the key's use
        ({"meKeyMaterial": "00", "keyExpiryTime": "2026-11-29T12:00:00Z"}, 5004),
        ({"meKeyMaterial": KEY, "keyExpiryTime": "2026-11-29T12:00:00Z", "ussList": [{"uss": {"gsId": 1}}]}, 5004),
    ],
)
async def test_nbsp_gba_answers_the_naf_refuses(
    sbi_bsf: Callable[[dict[str, Any]], Awaitable[tuple[str, Seen]]], doc: dict[str, Any], code: int
) -> None:
    base, _ = await sbi_bsf(doc)
    with pytest.raises(ZnRefused) as exc:
        await _fetch(NafConfig(zn_via="sbi", sbi_url=base))
    assert exc.value.code == code


async def test_a_gsid_json_cannot_carry_is_not_sent(
    sbi_bsf: Callable[[dict[str, Any]], Awaitable[tuple[str, Seen]]],
) -> None:
    base, seen = await sbi_bsf({"meKeyMaterial": KEY, "keyExpiryTime": "2026-11-29T12:00:00Z"})
    with pytest.raises(ZnRefused):
        await _fetch(NafConfig(zn_via="sbi", sbi_url=base), ("pki-portal",))
    assert seen == []


def _soap_answer(gba_type: str | None) -> bytes:
    raw = zn_soap.build_response(
        zn_soap.SoapResponse(me_key=bytes(32), key_expiry=NOW, creation=NOW, gba_type=gba_type)
    )
    check_zn_soap(raw)  # unqualified children, as Annex D defines them
    return raw


@pytest.mark.parametrize(("gba_type", "ok"), [(None, True), ("3G GBA", True), ("0", True), ("2G GBA", False)])
async def test_soap_answers_and_their_gba_type(gba_type: str | None, ok: bool) -> None:
    requests: list[bytes] = []

    async def handle(request: web.Request) -> web.Response:
        requests.append(await request.read())
        return web.Response(body=_soap_answer(gba_type), content_type="text/xml")

    app = web.Application()
    app.router.add_post("/GBAService", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    config = NafConfig(zn_via="soap", soap_url=f"http://127.0.0.1:{runner.addresses[0][1]}/GBAService")
    try:
        if ok:
            key = await _fetch(config, ("1", "pki"))
            assert key.me_key == bytes(32) and key.expires == NOW
        else:
            with pytest.raises(ZnRefused) as exc:
                await _fetch(config)
            assert exc.value.code == 5004
    finally:
        await runner.cleanup()
    check_zn_soap(requests[0])
