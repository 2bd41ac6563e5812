"""TS 33.220 Annex B KDF and NAF keys: known answers built by hand from the formula."""

from __future__ import annotations

import base64
import hashlib
import hmac
import struct

import pytest

from gba import kdf

KS = bytes.fromhex("b40ba9a3c58b2a05bbf0d987b21bf8cbf769bcd751044604127672711c6d3441")
RAND = bytes.fromhex("23553cbe9637a89d218ae64dae47bf35")
IMPI = "001010123456789@ims.mnc001.mcc001.3gppnetwork.org"


def _by_hand(key: bytes, label: bytes, naf_id: bytes) -> bytes:
    """The Annex B.2 string written out field by field (a different code path from gba.kdf)."""
    impi = IMPI.encode()
    s = (
        b"\x01"
        + label
        + struct.pack(">H", len(label))
        + RAND
        + b"\x00\x10"
        + impi
        + struct.pack(">H", len(impi))
        + naf_id
        + struct.pack(">H", len(naf_id))
    )
    return hmac.new(key, s, hashlib.sha256).digest()


def test_s_string_matches_worked_example() -> None:
    naf_id = kdf.NafId("naf.example.org", kdf.UaProtocol.HTTP_DIGEST)
    assert naf_id.encode().hex() == "6e61662e6578616d706c652e6f72670100000002"
    # spec-digest section 7: Ks_NAF for Ua 0100000002, computed there and cross-checked in Go.
    expected = "7a205ce786b14dad6f28d1f8b39d74aba2a172a3c134043bb036912e2036b610"
    assert kdf.ks_naf(KS, RAND, IMPI, naf_id).hex() == expected
    assert _by_hand(KS, b"gba-me", naf_id.encode()).hex() == expected


def test_ks_int_naf_and_tls_ua_id() -> None:
    naf_id = kdf.NafId("naf.example.org", kdf.UaProtocol.HTTP_DIGEST)
    assert (
        kdf.ks_int_naf(KS, RAND, IMPI, naf_id).hex()
        == "3e9f04a7de64efd1db6843a0a5f1c5677b7f7cc3fb7a37b7c53dcb4b2806b19c"
    )
    tls = kdf.NafId("naf.example.org", kdf.ua_tls(0x00AE))
    assert tls.ua_id == bytes.fromhex("01000100ae")
    assert kdf.ks_naf(KS, RAND, IMPI, tls).hex() == "97949f98ad77c5d61cd5f98280f077cf5ff3615e164c2d4d25a74f8d8f525d9d"
    assert kdf.ks_ext_naf(KS, RAND, IMPI, tls) == _by_hand(KS, b"gba-me", tls.encode())


def test_akma_vectors_exercise_other_fc() -> None:
    # TS 33.535 A.2 with FC 0x80 (spec-digest section 7): same KDF, different FC.
    k_ausf = bytes(range(32))
    k_akma = kdf.kdf(k_ausf, 0x80, b"AKMA", b"001010123456789")
    assert k_akma.hex() == "3dd5f8b66d40a12d31b8d4856eb5b2c14f9b013bcfccde61dfbbd9185a7fcb3c"


def test_nfkc_normalisation() -> None:
    assert kdf.kdf_string("ﬁ") == b"fi"


@pytest.mark.parametrize("fqdn", ["naf.example.org:443", "http://naf", "", "a b"])
def test_naf_id_rejects_non_fqdn(fqdn: str) -> None:
    with pytest.raises(kdf.KdfError):
        kdf.NafId(fqdn, kdf.UaProtocol.HTTP_DIGEST)


def test_naf_id_round_trip_and_errors() -> None:
    n = kdf.NafId("naf.gba.test", kdf.ua_tls(0xC0A8))
    assert kdf.NafId.decode(n.encode()) == n
    with pytest.raises(kdf.KdfError):
        kdf.NafId.decode(b"\x01\x00\x00\x00\x02")
    with pytest.raises(kdf.KdfError):
        kdf.NafId("naf", b"\x01")
    with pytest.raises(kdf.KdfError):
        kdf.ua_tls(0x10000)


def test_input_length_checks() -> None:
    n = kdf.NafId("naf.gba.test", kdf.UaProtocol.HTTP_DIGEST)
    with pytest.raises(kdf.KdfError):
        kdf.ks_naf(KS[:16], RAND, IMPI, n)
    with pytest.raises(kdf.KdfError):
        kdf.ks_naf(KS, RAND[:8], IMPI, n)
    with pytest.raises(kdf.KdfError):
        kdf.kdf(KS, 1, b"x" * 70000)


def test_annex_h_identifiers() -> None:
    assert kdf.UaProtocol.HTTP_DIGEST.value == bytes.fromhex("0100000002")
    assert kdf.UaProtocol.SUBSCRIBER_CERTIFICATE.value == bytes.fromhex("0100000000")
    assert kdf.UaProtocol.TMPI.value == bytes.fromhex("0100000100")
    assert kdf.ua_tls_annex_d(0x002F) == bytes.fromhex("010002002f")
    assert kdf.UaOrg.TGPP == 1


def test_tmpi_worked_vector() -> None:
    """TS 33.220 B.4 with the spec-digest §7 inputs: BSF_Id = "bsf.example.org" || 01 00 00 01 00."""
    expected = "6bFGxEufBZ5OVty4qtD+tOw6QiszLJZK@tmpi.bsf.3gppnetwork.org"
    assert kdf.tmpi(KS, RAND, IMPI, "bsf.example.org") == expected
    # The same from the formula written out: the 24 most significant octets, base64, the B.4 domain.
    temp = base64.b64encode(_by_hand(KS, b"gba-me", b"bsf.example.org" + bytes.fromhex("0100000100"))[:24])
    assert temp.decode() + "@tmpi.bsf.3gppnetwork.org" == expected
    assert kdf.is_tmpi(expected) and kdf.is_tmpi("x@TMPI.bsf.3gppnetwork.org")
    assert not kdf.is_tmpi(IMPI) and not kdf.is_tmpi("tmpi.bsf.3gppnetwork.org")
