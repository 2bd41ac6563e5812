"""B-TID: base64(RAND) "@" BSF server domain name (3GPP TS 33.220 clause 4.5.2, TS 24.109 A.3)."""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

MAX_BTID_LEN = 300
_FQDN_RE = re.compile(
    r"(?=.{1,253}$)([A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*"
)


class BtidError(ValueError):
    """A B-TID is malformed."""


def is_fqdn(name: str) -> bool:
    return bool(_FQDN_RE.fullmatch(name))


@dataclass(frozen=True, slots=True)
class Btid:
    rand: bytes
    bsf_fqdn: str

    def __post_init__(self) -> None:
        if len(self.rand) != 16:
            raise BtidError("B-TID RAND must be 16 octets")
        if not is_fqdn(self.bsf_fqdn):
            raise BtidError("B-TID domain is not a valid FQDN")

    def __str__(self) -> str:
        # RFC 3548 base64 with '+', '/' and '=' padding: URL-escape it where it goes into a URI.
        return base64.b64encode(self.rand).decode("ascii") + "@" + self.bsf_fqdn

    @classmethod
    def parse(cls, text: str | bytes) -> Btid:
        if isinstance(text, bytes):
            try:
                text = text.decode("ascii")
            except UnicodeDecodeError as exc:
                raise BtidError("B-TID is not ASCII") from exc
        if len(text) > MAX_BTID_LEN:
            raise BtidError("B-TID too long")
        local, sep, domain = text.rpartition("@")
        if not sep or not local:
            raise BtidError("B-TID must be base64(RAND)@domain")
        try:
            rand = base64.b64decode(local.encode("ascii"), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise BtidError("B-TID local part is not base64") from exc
        if base64.b64encode(rand).decode("ascii") != local:
            raise BtidError("B-TID local part is not canonical base64")
        return cls(rand, domain)
