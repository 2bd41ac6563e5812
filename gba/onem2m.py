"""oneM2M TS-0003 enrolment key derivations (clauses 10.3.1, 10.3.2, 10.3.3, 10.3.4). No I/O.

Ke and RelativeKeID come from the TLS exporter (RFC 5705) after the Enrolee <-> MEF handshake of the
pre-provisioned symmetric key or certificate-based frameworks; Km (for a MAF) and Kpsa (for another
Enrolment Target) are HMAC-SHA-256 derivations from Ke.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import unicodedata

from gba.kdf import NafId

EXPORT_LABEL_BOOTSTRAP = b"EXPORTER-oneM2M-Bootstrap"  # TS-0003 10.3.1
EXPORT_LEN = 48  # first 16 octets RelativeKeID, last 32 octets Ke; no context
KM_LABEL = b"oneM2M Enrolment Key to Master Credential derivation"  # TS-0003 10.3.2
KPSA_LABEL = b"oneM2M Enrolment Key to Provisioned Secure Connection Key derivation"  # TS-0003 10.3.3
SUID_MAF = 21  # m2m:suid: RSPF-provisioned key shared with a MAF (TS-0003 8.8.2.3)

# GBA-based framework (TS-0003 8.3.2.3): Km = Ks_(ext/int)_NAF with NAF_Id = MAF-FQDN || Ua security
# protocol id. Neither TS-0003 nor TS 33.220 Annex H assigns oneM2M an id, so this is a profile choice,
# the same at the Enrolee, the MAF (NAF kit) and the MEF/BSF (keys ``naf.onem2m_ua_id``,
# ``mef.onem2m_ua_id``, ``--onem2m-ua-id``; docs/mef-api.md). Default: Annex H.2's organisation 0x00
# id 00 00 00 00 00 ("protocols not specified otherwise"), one id whatever the (D)TLS suite, so Km
# does not change with the suite a handshake happens to negotiate.
UA_ID_DEFAULT = bytes(5)

_KEYID_RE = re.compile(r"([0-9a-fA-F]{32})@(.+)")


class OneM2MError(ValueError):
    """An identifier or exported keying material is malformed."""


def _utf8(s: str) -> bytes:
    return unicodedata.normalize("NFKC", s).encode("utf-8")


def parse_ua_id(text: str) -> bytes:
    """A Ua security protocol id written as 10 hex digits (TS 33.220 Annex H: 5 octets)."""
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raw = b""
    if len(raw) != 5:
        raise OneM2MError(f"a Ua security protocol id is 10 hex digits, got {text!r}")
    return raw


def maf_naf_id(maf_fqdn: str, ua_id: bytes = UA_ID_DEFAULT) -> NafId:
    """NAF_Id for Km over GBA: the MAF-FQDN (TS-0003 Annex A: NAF FQDN - MAF-ID) and the profile's Ua id."""
    return NafId(maf_fqdn, ua_id)


def split_export(material: bytes) -> tuple[bytes, bytes]:
    """(RelativeKeID, Ke) from the 48 exported octets (TS-0003 10.3.1: MSB side is the id)."""
    if len(material) != EXPORT_LEN:
        raise OneM2MError(f"the oneM2M bootstrap export is {EXPORT_LEN} octets")
    return material[:16], material[16:]


def keid(relative_keid: bytes, mef_fqdn: str) -> str:
    """KeID = hexBinary(RelativeKeID) "@" MEF-FQDN (TS-0003 10.3.4); lower-case hex, compared case-insensitively."""
    if len(relative_keid) != 16:
        raise OneM2MError("RelativeKeID is 16 octets")
    return f"{relative_keid.hex()}@{mef_fqdn}"


def parse_keid(text: str) -> tuple[bytes, str]:
    m = _KEYID_RE.fullmatch(text)
    if not m:
        raise OneM2MError("KeID must be 32 hex digits @ MEF FQDN")
    return bytes.fromhex(m.group(1)), m.group(2).lower()


def normalise_keid(text: str) -> str:
    rel, fqdn = parse_keid(text)
    return keid(rel, fqdn)


def km(ke: bytes, maf_id: str) -> bytes:
    """Km = HMAC-SHA-256(Ke, "oneM2M Enrolment Key to Master Credential derivation" || MAF-ID)."""
    return hmac.new(ke, KM_LABEL + _utf8(maf_id), hashlib.sha256).digest()


def kpsa(ke: bytes, enrolee_b_id: str) -> bytes:
    """Kpsa = HMAC-SHA-256(Ke, "... Provisioned Secure Connection Key derivation" || Enrolee-B-ID)."""
    return hmac.new(ke, KPSA_LABEL + _utf8(enrolee_b_id), hashlib.sha256).digest()
