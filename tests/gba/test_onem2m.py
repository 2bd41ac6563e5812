"""TS-0003 derivations against the worked values of spec-digest section 7 (export = 00 01 .. 2f)."""

from __future__ import annotations

import pytest

from gba import onem2m

EXPORT = bytes(range(48))


def test_split_and_keid() -> None:
    rel, ke = onem2m.split_export(EXPORT)
    assert rel.hex() == "000102030405060708090a0b0c0d0e0f"
    assert ke.hex() == "101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f"
    kid = onem2m.keid(rel, "mef.example.org")
    assert kid == "000102030405060708090a0b0c0d0e0f@mef.example.org"
    assert onem2m.normalise_keid(kid.upper().replace("MEF.EXAMPLE.ORG", "mef.example.org")) == kid


def test_km_and_kpsa_known_answers() -> None:
    _, ke = onem2m.split_export(EXPORT)
    assert onem2m.km(ke, "maf.example.org").hex() == "96558567aeaa7d7f09bc65ddda3a5d733651a28786e3b6941bf17be46bd922e0"
    assert onem2m.kpsa(ke, "CAE-example").hex() == "43b035ec8c3cc281e97206f26d6495a31824877afd1f551bddeb5940195b8f11"


@pytest.mark.parametrize("bad", ["", "00@mef", "zz" * 16 + "@mef", "000102030405060708090a0b0c0d0e0f"])
def test_bad_keids(bad: str) -> None:
    with pytest.raises(onem2m.OneM2MError):
        onem2m.parse_keid(bad)


def test_export_length_checked() -> None:
    with pytest.raises(onem2m.OneM2MError):
        onem2m.split_export(bytes(47))


def test_the_onem2m_ua_id_profile() -> None:
    """No Ua id is registered for oneM2M (TS 33.220 Annex H): the profile default is the organisation
    0x00 id, the same for every TLS suite; any 5-octet id can be configured instead."""
    from gba.kdf import NafId

    assert bytes(5) == onem2m.UA_ID_DEFAULT
    assert onem2m.maf_naf_id("maf.gba.test") == NafId("maf.gba.test", bytes(5))
    assert onem2m.parse_ua_id("FF00000001") == bytes.fromhex("ff00000001")
    for bad in ("0100", "zz00000000", "010000000200"):
        with pytest.raises(onem2m.OneM2MError, match="10 hex digits"):
            onem2m.parse_ua_id(bad)
