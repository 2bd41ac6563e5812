"""Diameter over TLS from connection start (RFC 6733 2.1, 13): the handshake comes before the CER, both
ends authenticate with certificates (13.1), and each side sees the other's verified certificate."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import pytest

from gba import diameter as d
from gba import pki
from gbaio.diameter_node import DiameterServer, NodeIdentity, PeerInfo, PeerUnavailable, connect
from gbaio.tls import client_ssl_context, san_dns_names
from tests.pki_files import write_pair

BSF = NodeIdentity("bsf.gba.test", "gba.test", (d.APP_ZN,))
NAF = NodeIdentity("naf.gba.test", "gba.test", (d.APP_ZN,))


def _server_context(tmp: Path, ca: pki.Issued) -> ssl.SSLContext:
    cert, key = write_pair(tmp, "bsf.gba.test", ca)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(tmp / "ca.pem"))
    ctx.load_cert_chain(str(cert), str(key))
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


@pytest.fixture
def ca(tmp_path: Path) -> pki.Issued:
    issued = pki.make_ca()
    (tmp_path / "ca.pem").write_bytes(issued.cert_pem)
    return issued


async def test_both_ends_see_the_verified_certificate_of_the_other(tmp_path: Path, ca: pki.Issued) -> None:
    seen: list[PeerInfo] = []

    async def handler(req: d.Envelope, peer: PeerInfo) -> d.Envelope:
        seen.append(peer)
        return req.answer([d.new_avp(d.Avps.RESULT_CODE, d.ResultCode.SUCCESS)])

    server = DiameterServer(BSF, handler)
    port = await server.start("127.0.0.1", 0, tls=_server_context(tmp_path, ca))
    cert, key = write_pair(tmp_path, "naf.gba.test", ca)
    tls = client_ssl_context(tmp_path / "ca.pem", cert, key)
    conn = await connect(NAF, "127.0.0.1", port, tls=tls, server_name="bsf.gba.test")
    try:
        assert conn.peer.certificate is not None and san_dns_names(conn.peer.certificate) == {"bsf.gba.test"}
        bir = d.BootstrappingInfoRequest("s;1", "naf.gba.test", "gba.test", "gba.test", "b@bsf", b"n\x01\x00\x00\x01")
        answer = await conn.request(bir.to_envelope(0, 0), 5)
        assert answer.result() == (d.ResultCode.SUCCESS, None)
        (peer,) = seen
        assert peer.certificate is not None and san_dns_names(peer.certificate) == {"naf.gba.test"}
    finally:
        await conn.close()
        await server.close()


async def test_a_client_without_a_certificate_or_without_tls_does_not_get_past_the_handshake(
    tmp_path: Path, ca: pki.Issued
) -> None:
    async def handler(req: d.Envelope, _peer: PeerInfo) -> d.Envelope:
        raise AssertionError("no request may reach the handler")

    server = DiameterServer(BSF, handler)
    port = await server.start("127.0.0.1", 0, tls=_server_context(tmp_path, ca))
    try:
        anonymous = client_ssl_context(tmp_path / "ca.pem", None, None)
        with pytest.raises(PeerUnavailable):
            await connect(NAF, "127.0.0.1", port, tls=anonymous, server_name="bsf.gba.test", timeout=3)
        with pytest.raises(PeerUnavailable):  # a plain CER is not a ClientHello
            await connect(NAF, "127.0.0.1", port, timeout=3)
        assert not server.connections
    finally:
        await server.close()


async def test_the_client_checks_the_server_name(tmp_path: Path, ca: pki.Issued) -> None:
    async def handler(req: d.Envelope, _peer: PeerInfo) -> d.Envelope:
        raise AssertionError("no request may reach the handler")

    server = DiameterServer(BSF, handler)
    port = await server.start("127.0.0.1", 0, tls=_server_context(tmp_path, ca))
    cert, key = write_pair(tmp_path, "naf.gba.test", ca)
    try:
        with pytest.raises(PeerUnavailable, match="cannot connect"):
            await connect(
                NAF, "127.0.0.1", port, tls=client_ssl_context(tmp_path / "ca.pem", cert, key), server_name="x.test"
            )
    finally:
        await server.close()


async def test_a_peer_that_never_starts_the_handshake_is_dropped_like_one_without_a_cer(
    tmp_path: Path, ca: pki.Issued
) -> None:
    async def handler(req: d.Envelope, _peer: PeerInfo) -> d.Envelope:
        raise AssertionError("no request may reach the handler")

    server = DiameterServer(BSF, handler, cer_timeout=0.5)
    port = await server.start("127.0.0.1", 0, tls=_server_context(tmp_path, ca))
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        assert await asyncio.wait_for(reader.read(), 5) == b""  # closed by the server, well before 60 s
    finally:
        writer.close()
        await server.close()
