"""Diameter conformance rules written from the spec texts, and ``check_message`` that applies them.

Sources (read in the text, not in our code):
- RFC 6733 clause 4.5 (base AVP flag table), clauses 5.3.1/5.3.2 (CER/CEA), 5.4.1/5.4.2 (DPR/DPA),
  5.5.1/5.5.2 (DWR/DWA), 6.11 (Vendor-Specific-Application-Id), 7.2 (error answer), 7.5 (Failed-AVP),
  7.6 (Experimental-Result).
- TS 29.109 clause 4.2 (Zh MAR/MAA ABNF), clause 5.2 (Zn BIR/BIA ABNF), clause 6.3 table (GBA AVPs: M,V
  must, except GUSS-Timestamp: V must, M must not).
- TS 29.229 clause 6.3 (SIP-* AVPs, Confidentiality-Key, Integrity-Key: M,V must) and 6.3.13
  (SIP-Auth-Data-Item content).
"""

from __future__ import annotations

from dataclasses import dataclass

from tests.strict.codec import (
    AVP_M,
    AVP_P,
    AVP_V,
    CMD_RESERVED,
    FLAG_E,
    FLAG_P,
    FLAG_R,
    VENDOR_3GPP,
    Avp,
    DecodeError,
    Message,
    decode,
)

APP_ZN = 16777220
APP_ZH = 16777221
CMD_CER, CMD_DWR, CMD_DPR, CMD_MAR, CMD_BIR = 257, 280, 282, 303, 310


@dataclass(frozen=True)
class AvpRule:
    name: str
    code: int
    vendor: int
    kind: str  # RFC 6733 clause 4.2/4.3 data format, used for length and encoding checks
    must: int  # flag bits that MUST be set
    must_not: int  # flag bits that MUST NOT be set


def _base(name: str, code: int, kind: str, *, m: bool = True) -> AvpRule:
    # RFC 6733 clause 4.5: every base AVP has V in "MUST NOT"; M is "MUST" except for the four
    # informational ones (Error-Message, Error-Reporting-Host, Firmware-Revision, Product-Name).
    return AvpRule(name, code, 0, kind, AVP_M if m else 0, AVP_V if m else AVP_V | AVP_M)


def _tgpp(name: str, code: int, kind: str, *, m: bool = True) -> AvpRule:
    # TS 29.109 table 6.3.1 and TS 29.229 table 6.3.1: V and M "must" (GUSS-Timestamp: M "must not").
    return AvpRule(name, code, VENDOR_3GPP, kind, AVP_V | (AVP_M if m else 0), 0 if m else AVP_M)


AVPS: dict[tuple[int, int], AvpRule] = {
    (r.code, r.vendor): r
    for r in [
        _base("User-Name", 1, "UTF8String"),
        _base("Class", 25, "OctetString"),
        _base("Proxy-State", 33, "OctetString"),
        _base("Event-Timestamp", 55, "Time"),
        _base("Host-IP-Address", 257, "Address"),
        _base("Auth-Application-Id", 258, "Unsigned32"),
        _base("Acct-Application-Id", 259, "Unsigned32"),
        _base("Vendor-Specific-Application-Id", 260, "Grouped"),
        _base("Session-Id", 263, "UTF8String"),
        _base("Origin-Host", 264, "DiamIdent"),
        _base("Supported-Vendor-Id", 265, "Unsigned32"),
        _base("Vendor-Id", 266, "Unsigned32"),
        _base("Firmware-Revision", 267, "Unsigned32", m=False),
        _base("Result-Code", 268, "Unsigned32"),
        _base("Product-Name", 269, "UTF8String", m=False),
        _base("Disconnect-Cause", 273, "Enumerated"),
        _base("Auth-Request-Type", 274, "Enumerated"),
        _base("Auth-Session-State", 277, "Enumerated"),
        _base("Origin-State-Id", 278, "Unsigned32"),
        _base("Failed-AVP", 279, "Grouped"),
        _base("Proxy-Host", 280, "DiamIdent"),
        _base("Error-Message", 281, "UTF8String", m=False),
        _base("Route-Record", 282, "DiamIdent"),
        _base("Destination-Realm", 283, "DiamIdent"),
        _base("Proxy-Info", 284, "Grouped"),
        _base("Destination-Host", 293, "DiamIdent"),
        _base("Error-Reporting-Host", 294, "DiamIdent", m=False),
        _base("Origin-Realm", 296, "DiamIdent"),
        _base("Experimental-Result", 297, "Grouped"),
        _base("Experimental-Result-Code", 298, "Unsigned32"),
        _base("Inband-Security-Id", 299, "Unsigned32"),
        # TS 29.229 clause 6.3
        _tgpp("Public-Identity", 601, "UTF8String"),
        _tgpp("Server-Name", 602, "UTF8String"),
        _tgpp("SIP-Number-Auth-Items", 607, "Unsigned32"),
        _tgpp("SIP-Authentication-Scheme", 608, "UTF8String"),
        _tgpp("SIP-Authenticate", 609, "OctetString"),
        _tgpp("SIP-Authorization", 610, "OctetString"),
        _tgpp("SIP-Authentication-Context", 611, "OctetString"),
        _tgpp("SIP-Auth-Data-Item", 612, "Grouped"),
        _tgpp("SIP-Item-Number", 613, "Unsigned32"),
        _tgpp("Confidentiality-Key", 625, "OctetString"),
        _tgpp("Integrity-Key", 626, "OctetString"),
        # TS 29.109 clause 6.3
        _tgpp("GBA-UserSecSettings", 400, "OctetString"),
        _tgpp("Transaction-Identifier", 401, "OctetString"),
        _tgpp("NAF-Id", 402, "OctetString"),
        _tgpp("GAA-Service-Identifier", 403, "OctetString"),
        _tgpp("Key-ExpiryTime", 404, "Time"),
        _tgpp("ME-Key-Material", 405, "OctetString"),
        _tgpp("UICC-Key-Material", 406, "OctetString"),
        _tgpp("GBA_U-Awareness-Indicator", 407, "Enumerated"),
        _tgpp("BootstrapInfoCreationTime", 408, "Time"),
        _tgpp("GUSS-Timestamp", 409, "Time", m=False),
        _tgpp("GBA-Type", 410, "Enumerated"),
    ]
}
BY_NAME = {r.name: r for r in AVPS.values()}


@dataclass(frozen=True)
class Slot:
    name: str
    low: int  # minimum occurrences: {} is 1, [] and *[] are 0, 1*{} is 1
    high: int | None  # maximum occurrences: None for "*"


def _abnf(text: str) -> tuple[bool, list[Slot], bool]:
    """Parse the ABNF notation of RFC 6733 clause 3.2 for one command body (whitespace-separated items):
    ``<X>`` fixed first, ``{X}`` one, ``[X]`` optional, ``*[X]`` / ``1*{X}`` repeated, ``*[AVP]`` open.
    Returns (Session-Id fixed first, slots, open to further AVPs)."""
    fixed = False
    slots: list[Slot] = []
    open_ = False
    for item in text.split():
        if item == "<Session-Id>":
            fixed = True
            slots.append(Slot("Session-Id", 1, 1))
        elif item == "0*1<Session-Id>":
            fixed = True
            slots.append(Slot("Session-Id", 0, 1))
        elif item == "*[AVP]":
            open_ = True
        else:
            rep, _, body = item.rpartition("*") if "*" in item else ("", "", item)
            name = body[1:-1]
            assert name in BY_NAME, name
            if body[0] == "{":
                low, high = (int(rep or 0) if "*" in item else 1), (None if "*" in item else 1)
                low = max(low, 1)
            else:
                low, high = 0, (None if "*" in item else 1)
            slots.append(Slot(name, low, high))
    return fixed, slots, open_


@dataclass(frozen=True)
class Command:
    name: str
    code: int
    request: bool
    app: int
    proxiable: bool | None  # the PXY bit the ABNF header names (None: either, as in clause 7.2)
    fixed_session: bool
    slots: tuple[Slot, ...]
    open: bool
    source: str


def _cmd(name: str, code: int, request: bool, app: int, pxy: bool | None, body: str, source: str) -> Command:
    fixed, slots, open_ = _abnf(body)
    return Command(name, code, request, app, pxy, fixed, tuple(slots), open_, source)


_CAPS = (
    "{Origin-Host} {Origin-Realm} 1*{Host-IP-Address} {Vendor-Id} {Product-Name} [Origin-State-Id]"
    " *[Supported-Vendor-Id] *[Auth-Application-Id] *[Inband-Security-Id] *[Acct-Application-Id]"
    " *[Vendor-Specific-Application-Id] [Firmware-Revision] *[AVP]"
)
_CEA_CAPS = _CAPS.replace("[Origin-State-Id]", "[Origin-State-Id] [Error-Message] [Failed-AVP]")
_DPR = "{Origin-Host} {Origin-Realm} {Disconnect-Cause} *[AVP]"
COMMANDS: dict[tuple[int, bool], Command] = {
    (c.code, c.request): c
    for c in [
        _cmd("CER", CMD_CER, True, 0, False, _CAPS, "RFC 6733 5.3.1"),
        _cmd("CEA", CMD_CER, False, 0, False, "{Result-Code} " + _CEA_CAPS, "RFC 6733 5.3.2"),
        _cmd("DWR", CMD_DWR, True, 0, False, "{Origin-Host} {Origin-Realm} [Origin-State-Id] *[AVP]", "RFC 6733 5.5.1"),
        _cmd(
            "DWA",
            CMD_DWR,
            False,
            0,
            False,
            "{Result-Code} {Origin-Host} {Origin-Realm} [Error-Message] [Failed-AVP] [Origin-State-Id] *[AVP]",
            "RFC 6733 5.5.2",
        ),
        _cmd(
            "DPR", CMD_DPR, True, 0, False, "{Origin-Host} {Origin-Realm} {Disconnect-Cause} *[AVP]", "RFC 6733 5.4.1"
        ),
        # RFC 6733 5.4.2 ends in *[AVP]; issue 23 item 3 (a strict peer refused Origin-State-Id in a DPA)
        # asks for exactly the ABNF's named AVPs, so the DPA is checked closed.
        _cmd(
            "DPA",
            CMD_DPR,
            False,
            0,
            False,
            "{Result-Code} {Origin-Host} {Origin-Realm} [Error-Message] [Failed-AVP]",
            "RFC 6733 5.4.2",
        ),
        _cmd(
            "MAR",
            CMD_MAR,
            True,
            APP_ZH,
            True,
            "<Session-Id> {Vendor-Specific-Application-Id} {Auth-Session-State} {Origin-Host} {Origin-Realm}"
            " {Destination-Realm} [Destination-Host] [User-Name] [Public-Identity] [SIP-Auth-Data-Item]"
            " [GUSS-Timestamp] *[AVP] *[Proxy-Info] *[Route-Record]",
            "TS 29.109 4.2 step 1",
        ),
        _cmd(
            "MAA",
            CMD_MAR,
            False,
            APP_ZH,
            True,
            "<Session-Id> {Vendor-Specific-Application-Id} [Result-Code] [Experimental-Result]"
            " {Auth-Session-State} {Origin-Host} {Origin-Realm} [User-Name] [Public-Identity]"
            " [SIP-Auth-Data-Item] [GBA-UserSecSettings] *[AVP] *[Proxy-Info] *[Route-Record]",
            "TS 29.109 4.2 step 3",
        ),
        _cmd(
            "BIR",
            CMD_BIR,
            True,
            APP_ZN,
            True,
            "<Session-Id> {Vendor-Specific-Application-Id} [Auth-Session-State] {Origin-Host} {Origin-Realm}"
            " {Destination-Realm} [Destination-Host] *[GAA-Service-Identifier] {Transaction-Identifier}"
            " {NAF-Id} [GBA_U-Awareness-Indicator] *[AVP] *[Proxy-Info] *[Route-Record]",
            "TS 29.109 5.2 step 1",
        ),
        _cmd(
            "BIA",
            CMD_BIR,
            False,
            APP_ZN,
            True,
            "<Session-Id> {Vendor-Specific-Application-Id} [Result-Code] [Experimental-Result]"
            " [Auth-Session-State] {Origin-Host} {Origin-Realm} [User-Name] [ME-Key-Material]"
            " [UICC-Key-Material] [Key-ExpiryTime] [BootstrapInfoCreationTime] [GBA-UserSecSettings]"
            " [GBA-Type] *[AVP] *[Proxy-Info] *[Route-Record]",
            "TS 29.109 5.2 step 3",
        ),
    ]
}
ERROR_ANSWER = _cmd(
    "error answer",
    0,
    False,
    0,
    None,
    "0*1<Session-Id> {Origin-Host} {Origin-Realm} {Result-Code} [Origin-State-Id] [Error-Message]"
    " [Error-Reporting-Host] [Failed-AVP] [Experimental-Result] *[Proxy-Info] *[AVP]",
    "RFC 6733 7.2",
)

# Grouped AVP contents: RFC 6733 6.11, 7.6, 6.7.2; TS 29.229 6.3.13 (SIP-Auth-Data-Item).
GROUPS: dict[str, tuple[bool, list[Slot], bool]] = {
    "Vendor-Specific-Application-Id": _abnf("{Vendor-Id} [Auth-Application-Id] [Acct-Application-Id]"),
    "Experimental-Result": _abnf("{Vendor-Id} {Experimental-Result-Code}"),
    "Proxy-Info": _abnf("{Proxy-Host} {Proxy-State} *[AVP]"),
    "SIP-Auth-Data-Item": _abnf(
        "[SIP-Item-Number] [SIP-Authentication-Scheme] [SIP-Authenticate] [SIP-Authorization]"
        " [SIP-Authentication-Context] [Confidentiality-Key] [Integrity-Key] *[AVP]"
    ),
}
_FIXED_LEN = {"Unsigned32": 4, "Enumerated": 4, "Time": 4, "Integer32": 4}


def avp_name(a: Avp) -> str:
    rule = AVPS.get(a.key)
    if rule is not None:
        return rule.name
    return f"AVP {a.code}" + (f" (vendor {a.vendor})" if a.vendor else "")


def _flag_names(bits: int) -> str:
    return ",".join(n for n, b in (("V", AVP_V), ("M", AVP_M), ("P", AVP_P)) if bits & b)


def check_avp(a: Avp, where: str) -> list[str]:
    """Flag rules, framing faults and data format of one AVP; Grouped members recursively."""
    out = [f"{where}: {avp_name(a)}: {f}" for f in a.faults]
    rule = AVPS.get(a.key)
    if rule is None:
        return out
    if missing := rule.must & ~a.flags:
        out.append(f"{where}: {rule.name}: flag {_flag_names(missing)} MUST be set (flags {a.flags:#04x})")
    if extra := rule.must_not & a.flags:
        out.append(f"{where}: {rule.name}: flag {_flag_names(extra)} MUST NOT be set (flags {a.flags:#04x})")
    if a.flags & AVP_P:
        out.append(f"{where}: {rule.name}: P bit set (RFC 6733 4.1: no end-to-end security exists, SHOULD be 0)")
    n = _FIXED_LEN.get(rule.kind)
    if n is not None and len(a.data) != n:
        out.append(f"{where}: {rule.name}: {len(a.data)} octets of data, {rule.kind} has {n}")
    if rule.kind == "Address" and not (
        (len(a.data) == 6 and a.data[:2] == b"\x00\x01") or (len(a.data) == 18 and a.data[:2] == b"\x00\x02")
    ):
        out.append(f"{where}: {rule.name}: not an IPv4/IPv6 Address (RFC 6733 4.3.1)")
    if rule.kind in ("UTF8String", "DiamIdent"):
        try:
            text = a.data.decode("ascii" if rule.kind == "DiamIdent" else "utf-8")
        except UnicodeDecodeError:
            out.append(f"{where}: {rule.name}: not {'ASCII' if rule.kind == 'DiamIdent' else 'UTF-8'}")
        else:
            if rule.kind == "DiamIdent" and not text:
                out.append(f"{where}: {rule.name}: empty DiameterIdentity")
    if rule.kind == "Grouped" and rule.name != "Failed-AVP":
        try:
            members = a.children()
        except DecodeError as exc:
            return [*out, f"{where}: {rule.name}: bad grouped content: {exc}"]
        for m in members:
            out += check_avp(m, f"{where}/{rule.name}")
        if rule.name in GROUPS:
            _fixed, slots, open_ = GROUPS[rule.name]
            out += _occurrences(members, slots, open_, f"{where}/{rule.name}")
        if rule.name == "Vendor-Specific-Application-Id":
            apps = [m for m in members if m.key in ((258, 0), (259, 0))]
            if len(apps) != 1:
                out.append(f"{where}: {rule.name}: exactly one of Auth-/Acct-Application-Id (RFC 6733 6.11)")
    if rule.name == "Failed-AVP":
        try:
            if not a.children():
                out.append(f"{where}: Failed-AVP: empty (RFC 6733 7.5: 1* {{AVP}})")
        except DecodeError as exc:
            out.append(f"{where}: Failed-AVP: bad grouped content: {exc}")
    return out


def known_base(a: Avp) -> bool:
    """An AVP of the RFC 6733 base protocol: every Diameter node recognises it."""
    return a.vendor == 0 and a.key in AVPS


def _occurrences(avps: list[Avp], slots: list[Slot] | tuple[Slot, ...], open_: bool, where: str) -> list[str]:
    out = []
    named = set()
    for s in slots:
        rule = BY_NAME[s.name]
        named.add((rule.code, rule.vendor))
        count = sum(1 for a in avps if a.key == (rule.code, rule.vendor))
        if count < s.low:
            out.append(f"{where}: required {s.name} missing")
        if s.high is not None and count > s.high:
            out.append(f"{where}: {s.name} {count} times, at most {s.high}")
    for a in avps:
        if a.key in named:
            continue
        if not open_:
            out.append(f"{where}: {avp_name(a)} is not in the ABNF (and the ABNF has no *[AVP])")
        elif a.m and not known_base(a):
            # RFC 6733 3 / 4.1: a receiver must refuse an AVP it does not recognise when its M bit is set
            # (answered 5001, RFC 6733 7.5). A base AVP is known to every node; an application AVP that
            # this command's ABNF does not name is unknown to a peer built from the application's text.
            out.append(f"{where}: {avp_name(a)} with the M bit is not in the ABNF (a strict peer answers 5001)")
    return out


def command_of(msg: Message) -> Command | None:
    if not msg.is_request and msg.flags & FLAG_E:
        return ERROR_ANSWER
    return COMMANDS.get((msg.code, msg.is_request))


def check_message(raw: bytes) -> list[str]:
    """Every violation of the flag table and of the command's ABNF in one encoded message."""
    try:
        msg = decode(raw)
    except DecodeError as exc:
        return [f"framing: {exc}"]
    cmd = command_of(msg)
    label = f"{cmd.name if cmd else 'command'} {msg.code}{' request' if msg.is_request else ' answer'}"
    out: list[str] = []
    if msg.flags & CMD_RESERVED:
        out.append(f"{label}: reserved command flag bits {msg.flags & CMD_RESERVED:#04x} set (RFC 6733 3)")
    if msg.is_request and msg.flags & FLAG_E:
        out.append(f"{label}: E bit set in a request (RFC 6733 3: answers only)")
    if cmd is None:
        return [*out, f"{label}: no such command in the Zh/Zn/base rules"]
    if cmd is not ERROR_ANSWER:
        if msg.app != cmd.app:
            out.append(f"{label}: Application-Id {msg.app}, ABNF header names {cmd.app} ({cmd.source})")
        if cmd.proxiable is not None and bool(msg.flags & FLAG_P) != cmd.proxiable:
            out.append(f"{label}: PXY bit {'set' if msg.flags & FLAG_P else 'clear'}, ABNF header says otherwise")
    for a in msg.avps:
        out += check_avp(a, label)
    if cmd.fixed_session and msg.find(263) is not None and msg.avps[0].key != (263, 0):
        out.append(f"{label}: Session-Id is not the first AVP ({cmd.source}: <Session-Id>)")
    found = _occurrences(msg.avps, cmd.slots, cmd.open, f"{label} ({cmd.source})")
    rc = msg.find(268)
    if rc is not None and rc.data in (_INVALID_AVP_LENGTH, _INVALID_MESSAGE_LENGTH):
        # The answer to a request that could not be decoded (RFC 6733 7.1.5) cannot echo a Session-Id it
        # could not read: its absence there is no fault.
        found = [v for v in found if not v.endswith("required Session-Id missing")]
    out += found
    out += _semantics(msg, cmd, label)
    return out


_INVALID_AVP_LENGTH = (5014).to_bytes(4, "big")
_INVALID_MESSAGE_LENGTH = (5015).to_bytes(4, "big")


def _semantics(msg: Message, cmd: Command, label: str) -> list[str]:
    out = []
    rc_avp, er_avp = msg.find(268), msg.find(297)
    rc = rc_avp.u32() if rc_avp is not None and len(rc_avp.data) == 4 else None
    if not msg.is_request:
        if rc_avp is not None and er_avp is not None:
            out.append(f"{label}: Result-Code together with Experimental-Result (one or the other, RFC 6733 7.6)")
        if rc_avp is None and er_avp is None:
            out.append(f"{label}: neither Result-Code nor Experimental-Result")
        if rc is not None and 3000 <= rc < 4000 and not msg.flags & FLAG_E:
            out.append(f"{label}: protocol error {rc} without the E bit (RFC 6733 7.1.3)")
        if msg.flags & FLAG_E and (rc is None or not 3000 <= rc < 4000):
            out.append(f"{label}: E bit set but Result-Code {rc} is not a protocol error (RFC 6733 7.2)")
    if msg.code in (CMD_MAR, CMD_BIR) and cmd is not ERROR_ANSWER:
        vsai = msg.find(260)
        if vsai is not None:
            try:
                members = vsai.children()
            except DecodeError:
                members = []
            vid = next((m for m in members if m.key == (266, 0)), None)
            auth = next((m for m in members if m.key == (258, 0)), None)
            if vid is not None and vid.data != VENDOR_3GPP.to_bytes(4, "big"):
                out.append(f"{label}: Vendor-Specific-Application-Id/Vendor-Id is not 10415")
            if auth is not None and auth.data != msg.app.to_bytes(4, "big"):
                out.append(f"{label}: Vendor-Specific-Application-Id/Auth-Application-Id is not {msg.app}")
        state = msg.find(277)
        if state is not None and state.data != (1).to_bytes(4, "big"):
            out.append(f"{label}: Auth-Session-State is not NO_STATE_MAINTAINED (1)")
    gba_type = msg.find(410, VENDOR_3GPP)
    if gba_type is not None and gba_type.data == bytes(4):
        out.append(f"{label}: GBA-Type 3G GBA (0) sent: TS 29.109 5.2 step 3 includes it only if other than 3G GBA")
    if cmd.name == "BIA" and rc == 2001:
        for name, code in (("ME-Key-Material", 405), ("Key-ExpiryTime", 404)):
            if msg.find(code, VENDOR_3GPP) is None:
                out.append(f"{label}: success without {name} (TS 29.109 5.2 step 3)")
    return out


def name_of(raw: bytes) -> str:
    """A short name for a message in reports: command, direction, application (no AVP values: no keys)."""
    try:
        msg = decode(raw)
    except DecodeError:
        return f"undecodable message ({len(raw)} octets)"
    cmd = command_of(msg)
    kind = cmd.name if cmd is not None else f"command {msg.code}"
    if cmd is ERROR_ANSWER:
        kind = f"error answer to command {msg.code}"
    return f"{kind} (app {msg.app}, flags {msg.flags:#04x})"


__all__ = ["AVPS", "COMMANDS", "FLAG_R", "check_avp", "check_message", "name_of"]
