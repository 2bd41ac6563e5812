"""A strict Zn NAF client (TS 29.109 clause 5.2) with its own codec: BIR per the ABNF, BIA validated.

The BIA is checked with ``check_message`` (flags, ABNF) and for its meaning (``bia_problems``):
Key-ExpiryTime present, ME-Key-Material of 32 octets, no GBA-Type for 3G GBA, UICC-Key-Material only when
the NAF said it is GBA_U aware.
"""

from __future__ import annotations

from dataclasses import dataclass

from tests.strict import codec as c
from tests.strict.codec import Message
from tests.strict.peer import Identity, Link, connect, vsai
from tests.strict.rules import APP_ZN

NTP_UNIX_OFFSET = 2208988800  # RFC 6733 4.3.1 Time: seconds since 1900-01-01 UTC


@dataclass(frozen=True)
class ZnKeys:
    result: int | None
    experimental: int | None
    impi: str | None
    me_key: bytes | None
    uicc_key: bytes | None
    expiry_unix: int | None
    problems: tuple[str, ...]


def naf_id(fqdn: str, ua_id: bytes = bytes.fromhex("0100000002")) -> bytes:
    """TS 33.220 Annex H: NAF_Id = FQDN of the NAF || Ua security protocol identifier (5 octets)."""
    return fqdn.encode() + ua_id


def bir(ident: Identity, btid: str, nafid: bytes, *, aware: bool, gsids: tuple[str, ...] = ()) -> Message:
    """TS 29.109 5.2 step 1; Destination-Realm from the B-TID's domain (the part after '@')."""
    avps = [
        c.utf8(263, f"{ident.host};strict;{c.VENDOR_3GPP}"),
        vsai(APP_ZN),
        c.u32(277, 1),
        c.utf8(264, ident.host),
        c.utf8(296, ident.realm),
        c.utf8(283, btid.rpartition("@")[2]),
        *(c.avp(403, g.encode(), vendor=c.VENDOR_3GPP) for g in gsids),
        c.avp(401, btid.encode(), vendor=c.VENDOR_3GPP),
        c.avp(402, nafid, vendor=c.VENDOR_3GPP),
    ]
    if aware:
        avps.append(c.u32(407, 1, vendor=c.VENDOR_3GPP))
    return Message(310, c.FLAG_R | c.FLAG_P, APP_ZN, 0, 0, avps)


def bia_problems(bia: Message, *, aware: bool) -> list[str]:
    """The BIA's meaning per TS 29.109 5.2 step 3 (what check_message cannot see without the request)."""
    out: list[str] = []
    rc = bia.find(268)
    if rc is None or rc.u32() != 2001:
        return out
    me = bia.find(405, c.VENDOR_3GPP)
    if me is None or len(me.data) != 32:
        out.append(f"ME-Key-Material is {'absent' if me is None else f'{len(me.data)} octets'}, not 32")
    if bia.find(404, c.VENDOR_3GPP) is None:
        out.append("no Key-ExpiryTime")
    gba_type = bia.find(410, c.VENDOR_3GPP)
    if gba_type is not None and gba_type.data == bytes(4):
        out.append("GBA-Type 3G GBA sent: it is sent only if other than 3G GBA")
    uicc = bia.find(406, c.VENDOR_3GPP)
    if uicc is not None and not aware:
        out.append("UICC-Key-Material sent to a NAF that is not GBA_U aware")
    if uicc is not None and len(uicc.data) != 32:
        out.append(f"UICC-Key-Material is {len(uicc.data)} octets, not 32")
    return out


class StrictNaf:
    def __init__(self, host: str, realm: str = "gba.test") -> None:
        self.ident = Identity(host, realm, APP_ZN)
        self.link: Link | None = None

    async def connect(self, port: int, host: str = "127.0.0.1") -> Message:
        self.link, cea = await connect(self.ident, host, port)
        return cea

    async def fetch(
        self, btid: str, fqdn: str, *, aware: bool = False, gsids: tuple[str, ...] = (), ua_id: bytes | None = None
    ) -> ZnKeys:
        assert self.link is not None
        nid = naf_id(fqdn) if ua_id is None else naf_id(fqdn, ua_id)
        before = len(self.link.violations)
        bia = await self.link.request(bir(self.ident, btid, nid, aware=aware, gsids=gsids))
        problems = self.link.violations[before:] + bia_problems(bia, aware=aware)
        rc, er = bia.find(268), bia.find(297)
        exp_code = None
        if er is not None:
            exp_code = next((m.u32() for m in er.children() if m.key == (298, 0)), None)
        me, uicc, user, expiry = (
            bia.find(405, c.VENDOR_3GPP),
            bia.find(406, c.VENDOR_3GPP),
            bia.find(1),
            bia.find(404, c.VENDOR_3GPP),
        )
        return ZnKeys(
            rc.u32() if rc is not None else None,
            exp_code,
            user.data.decode() if user is not None else None,
            me.data if me is not None else None,
            uicc.data if uicc is not None else None,
            expiry.u32() - NTP_UNIX_OFFSET if expiry is not None else None,
            tuple(problems),
        )

    async def close(self) -> None:
        if self.link is not None:
            await self.link.close()
