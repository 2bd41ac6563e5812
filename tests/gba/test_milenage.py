"""Milenage against all 20 TS 35.208 conformance sets, plus AUTN/AUTS properties (TS 33.102)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gba import milenage

FIELDS = ("k", "rand", "sqn", "amf", "op", "opc", "f1", "f1s", "f2", "f5", "f3", "f4", "f5s")


def _sets() -> list[dict[str, bytes]]:
    out = []
    for line in (Path(__file__).parent.parent / "data" / "milenage_ts35208.txt").read_text().splitlines():
        if not line or line.startswith("#"):
            continue
        num, *values = line.split()
        entry = {name: bytes.fromhex(v) for name, v in zip(FIELDS, values, strict=True)}
        entry["set"] = num.encode()
        out.append(entry)
    return out


SETS = _sets()


def test_all_twenty_sets_loaded() -> None:
    assert [s["set"] for s in SETS] == [str(i).encode() for i in range(1, 21)]


@pytest.mark.parametrize("tv", SETS, ids=lambda tv: f"set{tv['set'].decode()}")
def test_ts35208_conformance(tv: dict[str, bytes]) -> None:
    assert milenage.compute_opc(tv["k"], tv["op"]) == tv["opc"]
    m = milenage.Milenage(tv["k"], tv["opc"])
    out = m.all(tv["rand"], tv["sqn"], tv["amf"])
    assert out.mac_a == tv["f1"]
    assert out.mac_s == tv["f1s"]
    assert out.res == tv["f2"]
    assert out.ck == tv["f3"]
    assert out.ik == tv["f4"]
    assert out.ak == tv["f5"]
    assert out.ak_star == tv["f5s"]
    assert m.f1(tv["rand"], tv["sqn"], tv["amf"]) == tv["f1"]
    assert m.f1_star(tv["rand"], tv["sqn"], tv["amf"]) == tv["f1s"]
    assert m.f5_star(tv["rand"]) == tv["f5s"]
    assert m.f2345(tv["rand"]) == (tv["f2"], tv["f3"], tv["f4"], tv["f5"])


def test_autn_layout_set1() -> None:
    tv = SETS[0]
    av = milenage.generate_vector(
        milenage.Milenage(tv["k"], tv["opc"]), tv["rand"], int.from_bytes(tv["sqn"], "big"), tv["amf"]
    )
    # AUTN = SQN xor AK || AMF || MAC (TS 33.102 6.3.2); spec-digest section 7 worked value.
    assert av.autn.hex() == "55f328b43577b9b94a9ffac354dfafb3"
    assert av.xres == tv["f2"] and av.ck == tv["f3"] and av.ik == tv["f4"]


def test_auts_known_answer() -> None:
    tv = SETS[0]
    m = milenage.Milenage(tv["k"], tv["opc"])
    auts = milenage.build_auts(m, tv["rand"], 0xFF9BB4D0B627)
    assert auts.hex() == "ba853f3c121cb55edb820040ab41"
    assert milenage.recover_sqn_ms(m, tv["rand"], auts) == 0xFF9BB4D0B627


@given(
    k=st.binary(min_size=16, max_size=16),
    opc=st.binary(min_size=16, max_size=16),
    rand=st.binary(min_size=16, max_size=16),
    sqn=st.integers(min_value=0, max_value=(1 << 48) - 1),
)
def test_auts_round_trip(k: bytes, opc: bytes, rand: bytes, sqn: int) -> None:
    m = milenage.Milenage(k, opc)
    auts = milenage.build_auts(m, rand, sqn)
    assert len(auts) == milenage.AUTS_LEN
    assert milenage.recover_sqn_ms(m, rand, auts) == sqn
    tampered = auts[:-1] + bytes([auts[-1] ^ 1])
    assert milenage.recover_sqn_ms(m, rand, tampered) is None


@given(rand=st.binary(min_size=16, max_size=16), sqn=st.integers(min_value=0, max_value=(1 << 48) - 1))
def test_usim_opens_autn(rand: bytes, sqn: int) -> None:
    tv = SETS[3]
    m = milenage.Milenage(tv["k"], tv["opc"])
    av = milenage.generate_vector(m, rand, sqn, b"\x80\x00")
    check = milenage.open_autn(m, rand, av.autn)
    assert check.mac_ok and check.sqn == sqn and check.amf == b"\x80\x00"
    bad = av.autn[:-1] + bytes([av.autn[-1] ^ 0x80])
    assert not milenage.open_autn(m, rand, bad).mac_ok


def test_gba_u_variants() -> None:
    tv = SETS[0]
    av = milenage.generate_vector(
        milenage.Milenage(tv["k"], tv["opc"]), tv["rand"], int.from_bytes(tv["sqn"], "big"), tv["amf"]
    )
    # TS 33.220 5.3.2; worked values in spec-digest section 7.
    assert milenage.gba_u_autn(av.autn, av.ik).hex() == "55f328b43577b9b98c7f3f0d723fb244"
    assert milenage.gba_u_expected_res(av.xres).hex() == "a54211d5e3ba50be"
    assert milenage.gba_u_autn(milenage.gba_u_autn(av.autn, av.ik), av.ik) == av.autn


@pytest.mark.parametrize(
    ("k", "opc"),
    [(b"\x00" * 15, b"\x00" * 16), (b"\x00" * 16, b"\x00" * 17)],
)
def test_wrong_lengths_rejected(k: bytes, opc: bytes) -> None:
    with pytest.raises(milenage.MilenageError):
        milenage.Milenage(k, opc)


def test_sqn_range() -> None:
    with pytest.raises(milenage.MilenageError):
        milenage.sqn_to_bytes(1 << 48)
