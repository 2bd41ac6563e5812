"""A minimal Diameter codec, strict on decode (RFC 6733 clause 3 header, clause 4.1 AVP header).

Written from the RFC, not from gba/diameter.py: the strict peers must not share our encoder's mistakes.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

HEADER_LEN = 20
# RFC 6733 clause 3: command flags R P E T, the low four bits reserved (sent as 0).
FLAG_R, FLAG_P, FLAG_E, FLAG_T = 0x80, 0x40, 0x20, 0x10
CMD_RESERVED = 0x0F
# RFC 6733 clause 4.1: AVP flags V M P, the low five bits reserved (sent as 0).
AVP_V, AVP_M, AVP_P = 0x80, 0x40, 0x20
AVP_RESERVED = 0x1F
VENDOR_3GPP = 10415


class DecodeError(ValueError):
    """A framing fault: the bytes are not a well-formed Diameter message (RFC 6733 clauses 3, 4.1)."""


@dataclass
class Avp:
    code: int
    flags: int
    vendor: int  # 0 when the V bit is clear
    data: bytes
    # Faults of this AVP's framing that a strict receiver reports (reserved bits, ...), not fatal to parsing.
    faults: list[str] = field(default_factory=list)

    @property
    def key(self) -> tuple[int, int]:
        return self.code, self.vendor

    @property
    def m(self) -> bool:
        return bool(self.flags & AVP_M)

    @property
    def v(self) -> bool:
        return bool(self.flags & AVP_V)

    def encode(self) -> bytes:
        head_len = 12 if self.flags & AVP_V else 8
        length = head_len + len(self.data)
        out = struct.pack("!IB", self.code, self.flags) + length.to_bytes(3, "big")
        if self.flags & AVP_V:
            out += struct.pack("!I", self.vendor)
        return out + self.data + b"\x00" * (-len(self.data) % 4)

    def children(self) -> list[Avp]:
        """The AVPs of a Grouped AVP (RFC 6733 clause 4.4)."""
        return decode_avps(self.data)

    def u32(self) -> int:
        if len(self.data) != 4:
            raise DecodeError(f"AVP {self.code}: {len(self.data)} octets where 4 are required")
        return int(struct.unpack("!I", self.data)[0])


def avp(code: int, data: bytes, *, vendor: int = 0, m: bool = True) -> Avp:
    """An AVP with the V bit exactly when ``vendor`` is set."""
    flags = (AVP_V if vendor else 0) | (AVP_M if m else 0)
    return Avp(code, flags, vendor, data)


def u32(code: int, value: int, *, vendor: int = 0, m: bool = True) -> Avp:
    return avp(code, struct.pack("!I", value), vendor=vendor, m=m)


def utf8(code: int, value: str, *, vendor: int = 0, m: bool = True) -> Avp:
    return avp(code, value.encode(), vendor=vendor, m=m)


def grouped(code: int, members: Iterable[Avp], *, vendor: int = 0, m: bool = True) -> Avp:
    return avp(code, b"".join(a.encode() for a in members), vendor=vendor, m=m)


@dataclass
class Message:
    code: int
    flags: int
    app: int
    hbh: int
    e2e: int
    avps: list[Avp]
    version: int = 1

    @property
    def is_request(self) -> bool:
        return bool(self.flags & FLAG_R)

    def encode(self) -> bytes:
        body = b"".join(a.encode() for a in self.avps)
        length = HEADER_LEN + len(body)
        head = bytes([self.version]) + length.to_bytes(3, "big") + bytes([self.flags]) + self.code.to_bytes(3, "big")
        return head + struct.pack("!III", self.app, self.hbh, self.e2e) + body

    def find(self, code: int, vendor: int = 0) -> Avp | None:
        return next((a for a in self.avps if a.key == (code, vendor)), None)

    def find_all(self, code: int, vendor: int = 0) -> list[Avp]:
        return [a for a in self.avps if a.key == (code, vendor)]

    def answer(self, avps: list[Avp], *, error: bool = False) -> Message:
        """The answer's header: same code, application, ids; R cleared, P kept (RFC 6733 6.2)."""
        flags = (self.flags & FLAG_P) | (FLAG_E if error else 0)
        return Message(self.code, flags, self.app, self.hbh, self.e2e, avps)


def message_length(head: bytes) -> int:
    """The length field of a header's first four octets, checked for framing (RFC 6733 clause 3)."""
    if len(head) < 4:
        raise DecodeError("fewer than 4 octets")
    if head[0] != 1:
        raise DecodeError(f"version {head[0]}, not 1")
    length = int.from_bytes(head[1:4], "big")
    if length < HEADER_LEN or length % 4:
        raise DecodeError(f"message length {length} is not a multiple of 4 of at least {HEADER_LEN}")
    return length


def decode(raw: bytes) -> Message:
    """Decode one message; framing faults raise, per-AVP flag faults are kept on the AVPs."""
    if len(raw) < HEADER_LEN:
        raise DecodeError(f"{len(raw)} octets, shorter than a header")
    length = message_length(raw)
    if length != len(raw):
        raise DecodeError(f"length field {length} but {len(raw)} octets")
    flags = raw[4]
    code = int.from_bytes(raw[5:8], "big")
    app, hbh, e2e = struct.unpack("!III", raw[8:20])
    return Message(code, flags, app, hbh, e2e, decode_avps(raw[HEADER_LEN:]))


def decode_avps(data: bytes) -> list[Avp]:
    return list(_iter_avps(data))


def _iter_avps(data: bytes) -> Iterator[Avp]:
    pos = 0
    while pos < len(data):
        if len(data) - pos < 8:
            raise DecodeError(f"{len(data) - pos} trailing octets, shorter than an AVP header")
        code, flags = struct.unpack_from("!IB", data, pos)
        length = int.from_bytes(data[pos + 5 : pos + 8], "big")
        head_len = 12 if flags & AVP_V else 8
        if length < head_len:
            raise DecodeError(f"AVP {code}: length {length} shorter than its {head_len}-octet header")
        end = pos + length
        padded = end + (-length % 4)
        if padded > len(data):
            raise DecodeError(f"AVP {code}: length {length} runs past the message")
        if data[end:padded].strip(b"\x00"):
            raise DecodeError(f"AVP {code}: padding octets are not zero")
        vendor = struct.unpack_from("!I", data, pos + 8)[0] if flags & AVP_V else 0
        faults = []
        if flags & AVP_RESERVED:
            faults.append(f"reserved AVP flag bits {flags & AVP_RESERVED:#04x} set")
        if flags & AVP_V and vendor == 0:
            faults.append("V bit set with Vendor-Id 0")
        yield Avp(code, flags, vendor, data[pos + head_len : end], faults)
        pos = padded
