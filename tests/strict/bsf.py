"""A strict Zn BSF (TS 29.109 clause 5.2), an asyncio server inside the test process.

It holds a few bootstrapping contexts the test gives it and answers a NAF as a strict operator BSF
would: a CER whose AVP flags break the RFC 6733 4.5 table gets 3009 DIAMETER_INVALID_AVP_BITS with
Failed-AVP and the connection closes; a BIR is checked with ``check_message`` and a fault RFC 6733 names
a Result-Code for is refused with it (7.1.3 protocol errors with the E bit, 7.1.5 permanent failures with
Failed-AVP, 7.5); an unknown or expired B-TID gets Experimental-Result 5403 (TS 29.109 6.2.2.3); a known
one gets its NAF key derived here with the TS 33.220 Annex B KDF. DPR: answer, then close (RFC 6733 5.6).
Every message received is checked and its violations are kept (``violations``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import os
import time
import unicodedata
from collections.abc import AsyncIterator
from dataclasses import dataclass

from tests.strict import codec as c
from tests.strict.codec import Avp, DecodeError, Message
from tests.strict.peer import Identity, Link, answer_cer, experimental, flag_fault, origin, read_message, result, vsai
from tests.strict.rules import APP_ZN, BY_NAME, COMMANDS, check_message, known_base, name_of

NTP_UNIX_OFFSET = 2208988800  # RFC 6733 4.3.1 Time: seconds since 1900-01-01 UTC
# RFC 6733 7.1 / TS 29.109 6.2 result codes this BSF sends
SUCCESS, UNABLE_TO_DELIVER, REALM_NOT_SERVED = 2001, 3002, 3003
INVALID_HDR_BITS, INVALID_AVP_BITS = 3008, 3009
AVP_UNSUPPORTED, MISSING_AVP, OCCURS_TOO_MANY = 5001, 5005, 5009
TRANSACTION_IDENTIFIER_INVALID = 5403
_BIR = COMMANDS[(310, True)]
_BIR_NAMED = {(BY_NAME[s.name].code, BY_NAME[s.name].vendor) for s in _BIR.slots}


def kdf(key: bytes, fc: int, *params: bytes) -> bytes:
    """TS 33.220 Annex B.2: HMAC-SHA-256(Key, FC || P0 || L0 || ... || Pn || Ln), Li two octets."""
    s = bytes([fc])
    for p in params:
        if len(p) > 0xFFFF:
            raise ValueError("a KDF parameter is longer than 65535 octets (Annex B.1)")
        s += p + len(p).to_bytes(2, "big")
    return hmac.new(key, s, hashlib.sha256).digest()


def _text(value: str) -> bytes:
    """Annex B.2.1.2: a character string is UTF-8 after Normalization Form KC."""
    return unicodedata.normalize("NFKC", value).encode("utf-8")


def naf_key(ks: bytes, rand: bytes, impi: str, naf_id: bytes, *, uicc: bool = False) -> bytes:
    """Annex B.3: Ks_NAF / Ks_ext_NAF with P0 "gba-me", Ks_int_NAF with P0 "gba-u"; FC 0x01, P1 RAND,
    P2 IMPI, P3 NAF_Id (its FQDN part as UTF-8, then the 5-octet Ua security protocol id)."""
    return kdf(ks, 0x01, b"gba-u" if uicc else b"gba-me", rand, _text(impi), naf_id)


@dataclass(frozen=True)
class Context:
    """A bootstrapping context as the BSF keeps it (TS 33.220 4.5.2): Ks = CK || IK, with its RAND."""

    btid: str
    impi: str
    ks: bytes
    rand: bytes
    expires: int  # Unix time of the key lifetime's end
    created: int  # Unix time of the bootstrapping
    gba_u: bool = False  # GBA_U: Ks_ext_NAF and, to a GBA_U-aware NAF, Ks_int_NAF (TS 33.220 5.3.3)
    uss: bytes | None = None  # the <ussList> released on Zn, if any
    # GBA-Type sent on Zn; None for 3G GBA (GBA_ME, GBA_U): 29.109 5.2 step 3 sends it only otherwise.
    gba_type: int | None = None


@dataclass(frozen=True)
class Served:
    """One BIR and what it got, for the tests (no keys)."""

    btid: str
    naf_id: bytes
    aware: bool
    code: int


class StrictBsf:
    def __init__(self, host: str = "bsf.strict.test", realm: str = "strict.test") -> None:
        self.ident = Identity(host, realm, APP_ZN)
        self.contexts: dict[str, Context] = {}
        self.links: list[Link] = []  # every connection whose CER was accepted, open or closed
        self._all: list[Link] = []
        self.refused_cers: list[int] = []
        self.served: list[Served] = []
        self._server: asyncio.Server | None = None

    @property
    def violations(self) -> list[str]:
        """Everything any peer sent that breaks a rule, live (a link's list grows while it is open)."""
        return [v for link in self._all for v in link.violations]

    def received(self, code: int) -> list[Message]:
        """The requests of one command code received on any connection (CER included)."""
        return [m for link in self._all for m in link.received if m.is_request and m.code == code]

    def open_links(self) -> list[Link]:
        return [link for link in self.links if not link.reader.at_eof() and not link.writer.is_closing()]

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
        self._all.append(link)
        try:
            if await self._capabilities(link):
                self.links.append(link)
                await self._serve(link)
        except (asyncio.IncompleteReadError, ConnectionError, DecodeError, TimeoutError):
            pass
        finally:
            link.writer.close()

    async def _capabilities(self, link: Link) -> bool:
        raw = await read_message(link.reader, 10)
        link.violations += [f"{name_of(raw)}: {p}" for p in check_message(raw)]
        cer = c.decode(raw)
        link.received.append(cer)
        if not (cer.is_request and cer.code == 257):
            link.violations.append(f"{name_of(raw)}: the first message is not a CER (RFC 6733 5.6: Wait-Conn-Ack)")
            return False
        code = await answer_cer(link, cer, self.ident, "strict-bsf")
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
            elif msg.code == 310:
                link.violations += _session_id_problems(msg)
                link.send(self.answer_bir(msg))
            else:
                # RFC 6733 7.1.3: DIAMETER_COMMAND_UNSUPPORTED
                link.send(msg.answer([result(3001), *origin(self.ident)], error=True))
            await link.writer.drain()

    def answer_bir(self, bir: Message) -> Message:
        """TS 29.109 5.2 steps 2-3, after the RFC 6733 checks a strict Diameter server makes first."""
        head = [bir.avps[0]] if bir.avps and bir.avps[0].key == (263, 0) else []
        refusal = self._refusal(bir, head)
        if refusal is not None:
            return refusal
        common = [*head, vsai(APP_ZN)]
        tail = [c.u32(277, 1), *origin(self.ident)]
        btid = _utf8(bir.find(401, c.VENDOR_3GPP))
        naf_id = bir.find(402, c.VENDOR_3GPP)
        aware_avp = bir.find(407, c.VENDOR_3GPP)
        aware = aware_avp is not None and aware_avp.data == (1).to_bytes(4, "big")
        assert naf_id is not None  # _refusal checked the {NAF-Id}
        ctx = self.contexts.get(btid)
        if ctx is None or ctx.expires <= time.time():
            # TS 29.109 5.2 step 2 / 6.2.2.3: no (valid) context for this B-TID.
            self.served.append(Served(btid, naf_id.data, aware, TRANSACTION_IDENTIFIER_INVALID))
            return bir.answer([*common, experimental(TRANSACTION_IDENTIFIER_INVALID), *tail])
        me_key = naf_key(ctx.ks, ctx.rand, ctx.impi, naf_id.data)
        keys = [c.avp(405, me_key, vendor=c.VENDOR_3GPP)]
        if ctx.gba_u and aware:
            uicc_key = naf_key(ctx.ks, ctx.rand, ctx.impi, naf_id.data, uicc=True)
            keys.append(c.avp(406, uicc_key, vendor=c.VENDOR_3GPP))
        out = [
            *common,
            result(SUCCESS),
            *tail,
            c.utf8(1, ctx.impi),
            *keys,
            c.u32(404, ctx.expires + NTP_UNIX_OFFSET, vendor=c.VENDOR_3GPP),
            c.u32(408, ctx.created + NTP_UNIX_OFFSET, vendor=c.VENDOR_3GPP),
        ]
        if ctx.uss is not None:
            out.append(c.avp(400, ctx.uss, vendor=c.VENDOR_3GPP))
        if ctx.gba_type is not None:
            out.append(c.u32(410, ctx.gba_type, vendor=c.VENDOR_3GPP))
        self.served.append(Served(btid, naf_id.data, aware, SUCCESS))
        return bir.answer(out)

    def _refusal(self, bir: Message, head: list[Avp]) -> Message | None:
        """The answer RFC 6733 names for a BIR this BSF must not serve, or None."""
        error_head = [*head, *origin(self.ident)]
        if bir.flags & c.FLAG_E:
            return bir.answer([*error_head, result(INVALID_HDR_BITS)], error=True)
        bad_bits = [a for a in bir.avps if flag_fault(a)]
        if bad_bits:  # RFC 6733 7.1.3: DIAMETER_INVALID_AVP_BITS
            return bir.answer([*error_head, result(INVALID_AVP_BITS), c.grouped(279, bad_bits[:1])], error=True)
        realm = _utf8(bir.find(283))
        btid_domain = _utf8(bir.find(401, c.VENDOR_3GPP)).rpartition("@")[2]
        if realm and realm.lower() not in (self.ident.realm.lower(), btid_domain.lower()):
            # RFC 6733 6.1.4 / 7.1.3: a realm this server does not serve (TS 29.109 5.2: the B-TID's realm).
            return bir.answer([*error_head, result(REALM_NOT_SERVED)], error=True)
        dest_host = bir.find(293)
        if dest_host is not None and _utf8(dest_host) != self.ident.host:
            return bir.answer([*error_head, result(UNABLE_TO_DELIVER)], error=True)
        common = [*head, vsai(APP_ZN), c.u32(277, 1), *origin(self.ident)]
        for slot in _BIR.slots:
            rule = BY_NAME[slot.name]
            found = bir.find_all(rule.code, rule.vendor)
            if slot.high is not None and len(found) > slot.high:  # RFC 6733 7.5: the first excess one
                return bir.answer([*common, result(OCCURS_TOO_MANY), c.grouped(279, found[slot.high : slot.high + 1])])
        unsupported = [a for a in bir.avps if a.m and a.key not in _BIR_NAMED and not known_base(a)]
        if unsupported:
            return bir.answer([*common, result(AVP_UNSUPPORTED), c.grouped(279, unsupported[:1])])
        for slot in _BIR.slots:
            rule = BY_NAME[slot.name]
            if len(bir.find_all(rule.code, rule.vendor)) < slot.low:
                # RFC 6733 7.5: Failed-AVP holds an example of the missing AVP (its data may be minimal).
                example = Avp(rule.code, rule.must, rule.vendor, bytes(4) if rule.kind == "Unsigned32" else b"")
                return bir.answer([*common, result(MISSING_AVP), c.grouped(279, [example])])
        return None

    async def ask(self, link: Link, req: Message, timeout: float = 5) -> Message:
        """Send a request to a connected NAF and wait for its answer; ``_serve`` owns the reader, so
        this watches what it received."""
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
        """DPR to a connected NAF; the DPA and whether the NAF then closed (RFC 6733 5.6)."""
        dpa = await self.ask(link, Message(282, c.FLAG_R, 0, 0, 0, [*origin(self.ident), c.u32(273, 0)]))
        deadline = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < deadline:
            if link.reader.at_eof():
                return dpa, True
            await asyncio.sleep(0.05)
        return dpa, False


def _session_id_problems(req: Message) -> list[str]:
    """RFC 6733 8.8: a Session-Id begins with the sender's DiameterIdentity, then ";" and the rest."""
    sid, host = req.find(263), req.find(264)
    if sid is None or host is None:
        return []  # check_message reports the missing AVP
    if not sid.data.startswith(host.data + b";"):
        return ["BIR: Session-Id does not begin with the sender's identity and ';' (RFC 6733 8.8)"]
    return []


def _utf8(a: Avp | None) -> str:
    return "" if a is None else a.data.decode("utf-8", "replace")


@contextlib.asynccontextmanager
async def running(bsf: StrictBsf) -> AsyncIterator[int]:
    port = await bsf.start()
    try:
        yield port
    finally:
        await bsf.close()


__all__ = ["Context", "Served", "StrictBsf", "kdf", "naf_key", "running"]
