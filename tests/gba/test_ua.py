from __future__ import annotations

import pytest

from gba import digest, ua

KS_NAF = bytes.fromhex("7a205ce786b14dad6f28d1f8b39d74aba2a172a3c134043bb036912e2036b610")


def test_password_is_base64_text_of_the_key() -> None:
    # spec-digest section 7: base64(Ks_NAF) is the Ua digest password.
    assert ua.digest_password(KS_NAF) == b"eiBc54axTa1vKNH4s510q6KhcqPBNAQ7sDaRLiA2thA="


def test_realms() -> None:
    assert ua.naf_realm("naf.example.org") == "3GPP-bootstrapping@naf.example.org"
    assert ua.parse_naf_realm("3GPP-bootstrapping-uicc@naf.example.org") == (ua.KeyKind.UICC, "naf.example.org")
    for bad in ("naf.example.org", "other@naf", "3GPP-bootstrapping@"):
        with pytest.raises(ua.UaError):
            ua.parse_naf_realm(bad)


def test_answer_challenge_uses_btid_and_key() -> None:
    www = digest.Challenge(
        realm=ua.naf_realm("naf.example.org"), nonce="n", algorithm="MD5", qop=("auth-int", "auth"), opaque="o"
    ).to_header()
    cred = ua.answer_challenge(www, "b@bsf", KS_NAF, method="GET", uri="/x", cnonce="c")
    assert cred.username == "b@bsf" and cred.qop == "auth-int" and cred.opaque == "o"
    assert cred.response == digest.compute_response(
        password=ua.digest_password(KS_NAF),
        username="b@bsf",
        realm="3GPP-bootstrapping@naf.example.org",
        method="GET",
        uri="/x",
        nonce="n",
        nc="00000001",
        cnonce="c",
        qop="auth-int",
        body=b"",
    )
    aka = digest.Challenge(realm="r", nonce="n").to_header()
    with pytest.raises(ua.UaError):
        ua.answer_challenge(aka, "b@bsf", KS_NAF, method="GET", uri="/")


def test_psk_identities() -> None:
    assert ua.psk_identity("b@bsf") == b"3GPP-bootstrapping;b@bsf"
    assert ua.parse_psk_identity(b"3GPP-bootstrapping-uicc;b@bsf") == (ua.KeyKind.UICC, "b@bsf")
    assert ua.parse_psk_identity(b"b@bsf") == (ua.KeyKind.ME, "b@bsf")  # oneM2M: psk_identity = KmID
    for bad in (b"other;b@bsf", b"\xff"):
        with pytest.raises(ua.UaError):
            ua.parse_psk_identity(bad)


def test_key_choice_decides_which_ua_keys_a_naf_accepts() -> None:
    """TS 29.109 Annex A keyChoice, TS 33.220 4.4.6: UICC-based-key admits only Ks_int_NAF."""
    from gba.ua import KeyKind, allowed_key_kinds

    both = frozenset({KeyKind.ME, KeyKind.UICC})
    assert allowed_key_kinds([]) == both and allowed_key_kinds([None, "ME-UICC-based-keys"]) == both
    assert allowed_key_kinds(["UICC-based-key"]) == {KeyKind.UICC}
    assert allowed_key_kinds([None, "ME-based-key"]) == {KeyKind.ME}
    assert allowed_key_kinds(["ME-based-key", "UICC-based-key"]) == frozenset()  # cannot be met


def test_ua_product_tokens_and_https_ua_id() -> None:
    from gba.ua import KeyKind, UaError, ua_https_id, ua_product_tokens

    assert ua_product_tokens(KeyKind.ME) == "3gpp-gba"  # TS 24.109 5.2.1
    assert ua_product_tokens(KeyKind.UICC, KeyKind.ME) == "3gpp-gba-uicc 3gpp-gba"
    ciphers = [
        {"name": "ECDHE-ECDSA-AES128-GCM-SHA256", "id": 0x0300C02B},
        {"name": "TLS_AES_128_GCM_SHA256", "id": 0x03001301},
    ]
    assert ua_https_id("ECDHE-ECDSA-AES128-GCM-SHA256", ciphers) == bytes.fromhex("010001c02b")  # Annex H.3
    assert ua_https_id("TLS_AES_128_GCM_SHA256", ciphers) == bytes.fromhex("0100011301")
    with pytest.raises(UaError, match="no IANA code known"):
        ua_https_id("NOPE", ciphers)
