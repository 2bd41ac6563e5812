"""The Ub 200 OK body: ``application/vnd.3gpp.bsf+xml`` BootstrappingInfo (TS 24.109 Annex C)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from xml.sax.saxutils import escape

from gba.safexml import XmlError, child_text, local_name, parse

CONTENT_TYPE = "application/vnd.3gpp.bsf+xml"
NAMESPACE = "uri:3gpp-gba"
MAX_LEN = 4096


@dataclass(frozen=True, slots=True)
class BootstrappingInfo:
    btid: str
    lifetime: dt.datetime  # absolute expiry instant, UTC (TS 24.109 C.2: xs:dateTime)

    def to_xml(self) -> bytes:
        # Written as text, the content escaped: building an lxml tree for two elements was a tenth of
        # the BSF's work on a bootstrap's second request. The UE checks these exact octets (rspauth).
        return (
            f"<?xml version='1.0' encoding='UTF-8'?>\n<BootstrappingInfo xmlns=\"{NAMESPACE}\">"
            f"<btid>{escape(self.btid)}</btid><lifetime>{format_time(self.lifetime)}</lifetime>"
            "</BootstrappingInfo>"
        ).encode()

    @classmethod
    def parse(cls, data: bytes) -> BootstrappingInfo:
        root = parse(data, MAX_LEN)
        if local_name(root) != "BootstrappingInfo":
            raise XmlError("root element is not BootstrappingInfo")
        btid = child_text(root, "btid")
        lifetime = child_text(root, "lifetime")
        if not btid or not lifetime:
            raise XmlError("BootstrappingInfo lacks btid or lifetime")
        return cls(btid, parse_time(lifetime))


def format_time(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> dt.datetime:
    try:
        t = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise XmlError(f"invalid xs:dateTime {text!r}") from None
    if t.tzinfo is None:
        raise XmlError("lifetime must carry a time zone")
    return t.astimezone(dt.UTC)
