from __future__ import annotations

import datetime as dt

import pytest

from gba.kdf import NafId, UaProtocol
from naf.onem2m import km_from_naf_key
from naf.zn_client import NafKey

KEY = NafKey(
    "b@bsf.gba.test",
    NafId("maf.gba.test", UaProtocol.HTTP_DIGEST.value),
    "i@ims",
    b"\x01" * 32,
    b"\x02" * 32,
    dt.datetime(2030, 1, 1, tzinfo=dt.UTC),
    None,
    0,
    (),
)


def test_km_is_the_naf_key_and_kmid_the_btid() -> None:
    # TS-0003 8.3.2.3: Km = Ks_(ext)_NAF with the MAF as NAF, KmID = KeID = B-TID.
    me = km_from_naf_key(KEY)
    assert me.km == b"\x01" * 32 and me.kmid == "b@bsf.gba.test"
    assert km_from_naf_key(KEY, uicc=True).km == b"\x02" * 32
    assert "01" * 8 not in repr(me)


def test_uicc_km_needs_a_gba_u_key() -> None:
    gba_me = NafKey(KEY.btid, KEY.naf_id, None, KEY.me_key, None, KEY.expires, None, 0, ())
    with pytest.raises(ValueError, match="Ks_int_NAF"):
        km_from_naf_key(gba_me, uicc=True)


async def test_a_maf_asks_zn_for_the_onem2m_naf_id() -> None:
    from collections.abc import Sequence

    from naf.config import NafConfig
    from naf.onem2m import fetch_km

    asked: list[NafId] = []

    class Zn:
        async def fetch_key(self, btid: str, naf_id: NafId, gsids: Sequence[str] | None = None) -> NafKey:
            asked.append(naf_id)
            return KEY

        async def close(self) -> None:
            pass

    config = NafConfig(fqdn="maf.gba.test", onem2m_ua_id=bytes.fromhex("ff00000001"))
    cred = await fetch_km(Zn(), config, "b@bsf.gba.test")
    assert cred.kmid == "b@bsf.gba.test" and asked == [NafId("maf.gba.test", bytes.fromhex("ff00000001"))]
