"""Ua (UE <-> NAF) pieces that both sides share (TS 24.109 clause 5, TS 33.222): the digest realm
that signals GBA, the password made from Ks_NAF, and the TLS-PSK identity forms. No I/O.
"""

from __future__ import annotations

import base64
import dataclasses
import enum
import os
from collections.abc import Iterable, Mapping
from typing import Any

from gba import digest
from gba.kdf import ua_tls

REALM_PREFIX_ME = "3GPP-bootstrapping"  # TS 24.109 5.2.1: ME-based key (Ks_NAF / Ks_ext_NAF)
REALM_PREFIX_UICC = "3GPP-bootstrapping-uicc"  # UICC-based key (Ks_int_NAF)
PSK_HINT_ME = REALM_PREFIX_ME  # TS 33.222 5.4.0: the PSK identity hint uses the same prefixes
PSK_HINT_UICC = REALM_PREFIX_UICC
# TS 24.109 5.2.1: User-Agent product tokens on Ua: the UE can use the ME-based key (Ks_(ext_)NAF) /
# the UICC-based key (Ks_int_NAF, GBA-aware UICC).
UA_PRODUCT_ME = "3gpp-gba"
UA_PRODUCT_UICC = "3gpp-gba-uicc"
# The USS keyChoice values (TS 29.109 Annex A) and the keys each lets the NAF accept (TS 33.220 4.4.6, 5.3.3).
KEY_CHOICE_ME = "ME-based-key"
KEY_CHOICE_UICC = "UICC-based-key"
KEY_CHOICE_BOTH = "ME-UICC-based-keys"


class UaError(ValueError):
    """A Ua realm, identity or challenge does not follow TS 24.109 / TS 33.222."""


class KeyKind(enum.Enum):
    ME = "me"
    UICC = "uicc"


def naf_realm(naf_fqdn: str, kind: KeyKind = KeyKind.ME) -> str:
    """``3GPP-bootstrapping[-uicc]@<NAF FQDN>`` (TS 24.109 clause 5.2.1)."""
    return f"{REALM_PREFIX_UICC if kind is KeyKind.UICC else REALM_PREFIX_ME}@{naf_fqdn}"


def parse_naf_realm(realm: str) -> tuple[KeyKind, str]:
    """(key kind, NAF FQDN) from a Ua digest realm; raises for a realm that does not ask for GBA."""
    prefix, sep, fqdn = realm.partition("@")
    if not sep or not fqdn:
        raise UaError(f"realm {realm!r} does not ask for GBA credentials")
    if prefix == REALM_PREFIX_ME:
        return KeyKind.ME, fqdn
    if prefix == REALM_PREFIX_UICC:
        return KeyKind.UICC, fqdn
    raise UaError(f"realm {realm!r} does not ask for GBA credentials")


def ua_product_tokens(*kinds: KeyKind) -> str:
    """The Ua User-Agent value for the key kinds the UE offers or used (TS 24.109 5.2.1)."""
    return " ".join(UA_PRODUCT_UICC if k is KeyKind.UICC else UA_PRODUCT_ME for k in kinds)


def allowed_key_kinds(key_choices: Iterable[str | None]) -> frozenset[KeyKind]:
    """The keys a NAF may accept given the keyChoice of the USSs it received: a USS that asks for the
    UICC-based key admits only Ks_int_NAF, one that asks for the ME-based key only Ks_(ext_)NAF; no
    choice leaves both (TS 33.220 4.4.6; TS 29.109 Annex A). Several USSs: every one must be met."""
    allowed = {KeyKind.ME, KeyKind.UICC}
    for choice in key_choices:
        if choice == KEY_CHOICE_UICC:
            allowed &= {KeyKind.UICC}
        elif choice == KEY_CHOICE_ME:
            allowed &= {KeyKind.ME}
    return frozenset(allowed)


def ua_https_id(cipher_name: str, ciphers: Iterable[Mapping[str, Any]]) -> bytes:
    """(01,00,01,yy,zz) of the negotiated TLS suite for Ua digest behind HTTPS (TS 33.220 Annex H.3,
    TS 33.222 5.3); ``ciphers`` is ``ssl.SSLContext.get_ciphers()`` (its ``id`` ends in the IANA code)."""
    for c in ciphers:
        if c.get("name") == cipher_name:
            return ua_tls(int(c["id"]) & 0xFFFF)
    raise UaError(f"no IANA code known for the TLS suite {cipher_name!r}")


def digest_password(ks_naf: bytes) -> bytes:
    """The Ua digest password is the base64 text of Ks_(ext/int)_NAF (TS 24.109 clause 5.2.2)."""
    return base64.b64encode(ks_naf)


def answer_challenge(
    www_authenticate: str,
    btid: str,
    ks_naf: bytes,
    *,
    method: str,
    uri: str,
    body: bytes = b"",
    cnonce: str | None = None,
) -> digest.Credentials:
    """The UE's Authorization for a NAF challenge: username = B-TID, password = base64(Ks_NAF)."""
    ch = digest.Challenge.parse(www_authenticate)
    if ch.algorithm.upper() not in ("MD5", ""):
        raise UaError(f"unsupported Ua digest algorithm {ch.algorithm!r}")
    qop = digest.QOP_AUTH_INT if digest.QOP_AUTH_INT in ch.qop else digest.QOP_AUTH
    unsigned = digest.Credentials(
        username=btid,
        realm=ch.realm,
        nonce=ch.nonce,
        uri=uri,
        response="",
        algorithm="MD5",
        qop=qop,
        nc="00000001",
        cnonce=cnonce or os.urandom(8).hex(),
        opaque=ch.opaque,
    )
    return dataclasses.replace(unsigned, response=unsigned.expected_response(digest_password(ks_naf), method, body))


def psk_identity(btid: str, kind: KeyKind = KeyKind.ME) -> bytes:
    """``3GPP-bootstrapping[-uicc];<B-TID>`` (TS 33.222 clause 5.4.0)."""
    prefix = PSK_HINT_UICC if kind is KeyKind.UICC else PSK_HINT_ME
    return f"{prefix};{btid}".encode("ascii")


def parse_psk_identity(identity: bytes) -> tuple[KeyKind, str]:
    """(key kind, B-TID) from a PSK identity. The bare B-TID (oneM2M TS-0003 8.8.2.2, psk_identity =
    KmID) is accepted as an ME key."""
    try:
        text = identity.decode("ascii")
    except UnicodeDecodeError:
        raise UaError("PSK identity is not ASCII") from None
    prefix, sep, rest = text.partition(";")
    if not sep:
        return KeyKind.ME, text
    if prefix == PSK_HINT_ME:
        return KeyKind.ME, rest
    if prefix == PSK_HINT_UICC:
        return KeyKind.UICC, rest
    raise UaError(f"PSK identity prefix {prefix!r} is not a GBA hint")
