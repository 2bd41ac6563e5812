"""A strict Zh HSS (TS 29.109 clause 4.2), an asyncio server inside the test process.

It behaves as a strict operator HSS would: a CER whose AVP flags break the RFC 6733 4.5 table gets
3009 DIAMETER_INVALID_AVP_BITS with Failed-AVP and the connection closes; a MAR with an AVP carrying the
M bit that the Zh ABNF does not name gets 5001 DIAMETER_AVP_UNSUPPORTED with Failed-AVP (RFC 6733 7.5);
an unknown IMPI gets Experimental-Result 5401 (TS 29.109 6.2.2.1). Every message it receives is checked
with ``check_message`` and the violations are kept in ``violations``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass

from tests.strict import codec as c
from tests.strict.codec import Avp, DecodeError, Message
from tests.strict.milenage import Milenage, open_auts, vector
from tests.strict.peer import Identity, Link, answer_cer, experimental, origin, read_message, result, vsai
from tests.strict.rules import APP_ZH, BY_NAME, COMMANDS, check_avp, check_message, known_base, name_of

SCHEME_AKA = "Digest-AKAv1-MD5"
# RFC 6733 7.1 / TS 29.109 6.2 result codes the HSS sends
SUCCESS, INVALID_HDR_BITS = 2001, 3008
AVP_UNSUPPORTED, MISSING_AVP, OCCURS_TOO_MANY = 5001, 5005, 5009
IDENTITY_UNKNOWN = 5401


@dataclass
class Subscriber:
    k: bytes
    opc: bytes
    seq: int = 0  # SEQ_HE of TS 33.102 Annex C (IND is always 0 here)
    guss: bytes | None = None
    amf: bytes = b"\x00\x00"  # TS 33.102 Annex H: the separation bit is for E-UTRAN vectors only


class StrictHss:
    def __init__(self, host: str = "hss.strict.test", realm: str = "gba.test") -> None:
        self.ident = Identity(host, realm, APP_ZH)
        self.subscribers: dict[str, Subscriber] = {}
        self.violations: list[str] = []
        self.links: list[Link] = []
        self.refused_cers: list[int] = []  # Result-Codes of CEAs that refused a peer
        self.resyncs: list[str] = []  # "moved" / "mac-s failed" / "in range", for the tests
        self._server: asyncio.Server | None = None
        self.connected = asyncio.Event()

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for link in self.links:
            await link.close()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        link = Link(self.ident, reader, writer)
        try:
            if await self._capabilities(link):
                self.links.append(link)
                self.connected.set()
                await self._serve(link)
        except (asyncio.IncompleteReadError, ConnectionError, DecodeError):
            pass
        finally:
            self.violations += link.violations
            link.writer.close()

    async def _capabilities(self, link: Link) -> bool:
        raw = await read_message(link.reader, 10)
        cer = c.decode(raw)
        problems = check_message(raw)
        link.violations += [f"{name_of(raw)}: {p}" for p in problems]
        if not (cer.is_request and cer.code == 257):
            return False
        code = await answer_cer(link, cer, self.ident, "strict-hss")
        if code != SUCCESS:
            self.refused_cers.append(code)
        return code == SUCCESS

    async def _serve(self, link: Link) -> None:
        while True:
            msg = await link.receive(timeout=3600)
            if not msg.is_request:
                continue
            if msg.code == 280:
                link.send(link.base_answer(msg))
            elif msg.code == 282:
                # RFC 6733 5.6: Rcv-DPR -> Snd-DPA, Disc.
                link.send(link.base_answer(msg))
                await link.writer.drain()
                return
            elif msg.code == 303:
                link.send(self.answer_mar(msg))
            else:
                link.send(msg.answer([result(3001), *origin(self.ident)], error=True))
            await link.writer.drain()

    def answer_mar(self, mar: Message) -> Message:
        head = [mar.avps[0]] if mar.avps and mar.avps[0].key == (263, 0) else []
        common = [*head, vsai(APP_ZH), c.u32(277, 1), *origin(self.ident)]
        if mar.flags & c.FLAG_E:
            return mar.answer([*head, *origin(self.ident), result(INVALID_HDR_BITS)], error=True)
        if len(mar.find_all(263)) > 1:
            return mar.answer([*common, result(OCCURS_TOO_MANY), c.grouped(279, mar.find_all(263)[1:2])])
        unsupported = _unsupported(mar)
        if unsupported:
            return mar.answer([*common, result(AVP_UNSUPPORTED), c.grouped(279, unsupported[:1])])
        user = mar.find(1)
        if user is None:
            return mar.answer([*common, result(MISSING_AVP), c.grouped(279, [c.utf8(1, "")])])
        impi = user.data.decode("utf-8", "replace")
        sub = self.subscribers.get(impi)
        if sub is None:
            return mar.answer([*common, experimental(IDENTITY_UNKNOWN)])
        mil = Milenage(sub.k, sub.opc)
        item = mar.find(612, c.VENDOR_3GPP)
        if item is not None:
            members = {a.key: a for a in item.children()}
            scheme = members.get((608, c.VENDOR_3GPP))
            if scheme is not None and scheme.data.decode() != SCHEME_AKA:
                return mar.answer([*common, experimental(5006)])
            authz = members.get((610, c.VENDOR_3GPP))
            if authz is not None and len(authz.data) == 30:
                self._resync(sub, mil, authz.data[:16], authz.data[16:])
        sub.seq += 1
        v = vector(mil, os.urandom(16), sub.seq << 5, sub.amf)
        item = c.grouped(
            612,
            [
                c.u32(613, 1, vendor=c.VENDOR_3GPP),
                c.utf8(608, SCHEME_AKA, vendor=c.VENDOR_3GPP),
                c.avp(609, v.rand + v.autn, vendor=c.VENDOR_3GPP),
                c.avp(610, v.xres, vendor=c.VENDOR_3GPP),
                c.avp(625, v.ck, vendor=c.VENDOR_3GPP),
                c.avp(626, v.ik, vendor=c.VENDOR_3GPP),
            ],
            vendor=c.VENDOR_3GPP,
        )
        out = [*common, result(SUCCESS), user, item]
        if sub.guss is not None:
            out.append(c.avp(400, sub.guss, vendor=c.VENDOR_3GPP))
        return mar.answer(out)

    def _resync(self, sub: Subscriber, mil: Milenage, rand: bytes, auts: bytes) -> None:
        """TS 33.102 6.3.5: a failing MAC-S leaves SQN_HE alone; SQN_MS moves SQN_HE only when the next
        SQN_HE would be refused by the USIM (SEQ_MS at or beyond SEQ_HE)."""
        sqn_ms = open_auts(mil, rand, auts)
        if sqn_ms is None:
            self.resyncs.append("mac-s failed")
        elif sqn_ms >> 5 >= sub.seq:
            sub.seq = sqn_ms >> 5
            self.resyncs.append("moved")
        else:
            self.resyncs.append("in range")

    async def ask(self, link: Link, req: Message, timeout: float = 5) -> Message:
        """Send a request to a connected client (our BSF) and wait for its answer. The link's reader
        belongs to _serve, so this watches what _serve received instead of reading."""
        req.hbh = req.e2e = int.from_bytes(os.urandom(4), "big")
        before = len(link.received)
        link.send(req)
        await link.writer.drain()
        deadline = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < deadline:
            for m in link.received[before:]:
                if not m.is_request and m.hbh == req.hbh:
                    return m
            await asyncio.sleep(0.02)
        raise TimeoutError(f"no answer to command {req.code}")

    async def send_dwr(self, link: Link) -> Message:
        return await self.ask(link, Message(280, c.FLAG_R, 0, 0, 0, origin(self.ident)))

    async def send_dpr(self, link: Link, timeout: float = 5) -> tuple[Message, bool]:
        """DPR to a connected client; the DPA and whether the client then closed (RFC 6733 5.6)."""
        dpa = await self.ask(link, Message(282, c.FLAG_R, 0, 0, 0, [*origin(self.ident), c.u32(273, 0)]))
        deadline = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < deadline:
            if link.reader.at_eof():
                return dpa, True
            await asyncio.sleep(0.05)
        return dpa, False


def _unsupported(mar: Message) -> list[Avp]:
    """AVPs with the M bit that the Zh MAR ABNF does not name (RFC 6733 7.5: 5001 + Failed-AVP)."""
    named = {(BY_NAME[s.name].code, BY_NAME[s.name].vendor) for s in COMMANDS[(303, True)].slots}
    return [a for a in mar.avps if a.m and a.key not in named and not known_base(a)]


@contextlib.asynccontextmanager
async def running(hss: StrictHss) -> AsyncIterator[int]:
    port = await hss.start()
    try:
        yield port
    finally:
        await hss.close()


__all__ = ["StrictHss", "Subscriber", "check_avp", "running"]
