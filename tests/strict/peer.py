"""Connection plumbing shared by the strict peers: framing, CER/CEA, DWR/DWA, DPR/DPA (RFC 6733 5)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import socket
from dataclasses import dataclass

from tests.strict import codec as c
from tests.strict.codec import Avp, Message
from tests.strict.rules import AVPS, check_message, name_of

PRODUCT = "gbagw-strict-peer"
_ids = itertools.count(int.from_bytes(os.urandom(3), "big"))


def next_id() -> int:
    return next(_ids) & 0xFFFFFFFF


@dataclass(frozen=True)
class Identity:
    host: str
    realm: str
    app: int


def address_avp(host: str = "127.0.0.1") -> Avp:
    return c.avp(257, b"\x00\x01" + socket.inet_aton(host))


def origin(ident: Identity) -> list[Avp]:
    return [c.utf8(264, ident.host), c.utf8(296, ident.realm)]


def capabilities(ident: Identity) -> list[Avp]:
    """RFC 6733 5.3.1 content, flags per the 4.5 table (Product-Name and Firmware-Revision without M)."""
    vsai = c.grouped(260, [c.u32(266, c.VENDOR_3GPP), c.u32(258, ident.app)])
    return [
        *origin(ident),
        address_avp(),
        c.u32(266, 0),
        c.utf8(269, PRODUCT, m=False),
        c.u32(265, c.VENDOR_3GPP),
        vsai,
        c.u32(267, 1, m=False),
    ]


def vsai(app: int) -> Avp:
    return c.grouped(260, [c.u32(266, c.VENDOR_3GPP), c.u32(258, app)])


def result(code: int) -> Avp:
    return c.u32(268, code)


def experimental(code: int) -> Avp:
    return c.grouped(297, [c.u32(266, c.VENDOR_3GPP), c.u32(298, code)])


def flag_fault(a: Avp) -> bool:
    """A known AVP whose V/M bits break its rule (what 3009 DIAMETER_INVALID_AVP_BITS names)."""
    rule = AVPS.get(a.key)
    return rule is not None and bool((rule.must & ~a.flags) | (rule.must_not & a.flags))


def advertises(cer: Message, app: int) -> bool:
    apps = {a.u32() for a in cer.find_all(258)}
    for v in cer.find_all(260):
        apps |= {m.u32() for m in v.children() if m.key == (258, 0)}
    return app in apps or 0xFFFFFFFF in apps


async def answer_cer(link: Link, cer: Message, ident: Identity, product: str) -> int:
    """A strict server's CEA (RFC 6733 5.3.2): 3009 DIAMETER_INVALID_AVP_BITS with the first AVP whose
    flags break the 4.5 table in Failed-AVP, 5010 when ``ident.app`` is not advertised, else 2001.
    Returns the Result-Code sent."""
    bad_bits = [a for a in cer.avps if flag_fault(a)]
    code, failed = 2001, bad_bits[:1]
    if bad_bits:
        code = 3009
    elif not advertises(cer, ident.app):
        code = 5010
    caps = [
        result(code),
        *origin(ident),
        c.avp(257, b"\x00\x01\x7f\x00\x00\x01"),
        c.u32(266, 0),
        c.utf8(269, product, m=False),
        c.u32(265, c.VENDOR_3GPP),
        vsai(ident.app),
    ]
    if failed:
        caps.append(c.grouped(279, failed))
    link.send(cer.answer(caps, error=3000 <= code < 4000))
    await link.writer.drain()
    return code


async def read_message(reader: asyncio.StreamReader, timeout: float = 10) -> bytes:
    head = await asyncio.wait_for(reader.readexactly(4), timeout)
    length = c.message_length(head)
    return head + await asyncio.wait_for(reader.readexactly(length - 4), timeout)


class Link:
    """One transport connection; every message read is checked and its violations kept."""

    def __init__(self, ident: Identity, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.ident, self.reader, self.writer = ident, reader, writer
        self.received: list[Message] = []
        self.violations: list[str] = []

    def send(self, msg: Message) -> None:
        self.writer.write(msg.encode())

    async def receive(self, timeout: float = 10) -> Message:
        raw = await read_message(self.reader, timeout)
        self.violations += [f"{name_of(raw)}: {v}" for v in check_message(raw)]
        msg = c.decode(raw)
        self.received.append(msg)
        return msg

    def base_answer(self, req: Message, code: int = 2001) -> Message:
        """DWA/DPA: exactly Result-Code, Origin-Host, Origin-Realm."""
        return req.answer([result(code), *origin(self.ident)])

    async def request(self, msg: Message, timeout: float = 10) -> Message:
        """Send a request and wait for its answer, answering the peer's DWRs meanwhile."""
        msg.hbh, msg.e2e = next_id(), next_id()
        self.send(msg)
        await self.writer.drain()
        while True:
            got = await self.receive(timeout)
            if got.is_request and got.code == 280:
                self.send(self.base_answer(got))
                continue
            if not got.is_request and got.hbh == msg.hbh:
                return got

    async def disconnect(self, cause: int = 0, timeout: float = 10) -> tuple[Message, bool]:
        """Send DPR; return the DPA and whether the peer then closed the connection (RFC 6733 5.4, 5.6)."""
        dpr = Message(282, c.FLAG_R, 0, 0, 0, [*origin(self.ident), c.u32(273, cause)])
        dpa = await self.request(dpr, timeout)
        try:
            rest = await asyncio.wait_for(self.reader.read(1), timeout)
        except (ConnectionError, TimeoutError):
            rest = b"?"
        return dpa, rest == b""

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError, TimeoutError):
            await asyncio.wait_for(self.writer.wait_closed(), 2)


async def connect(ident: Identity, host: str, port: int, timeout: float = 10) -> tuple[Link, Message]:
    """Open a connection and exchange CER/CEA; returns the link and the CEA (checked into link.violations)."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    link = Link(ident, reader, writer)
    cer = Message(257, c.FLAG_R, 0, next_id(), next_id(), capabilities(ident))
    cea = await link.request(cer, timeout)
    return link, cea
