"""The Zh handler on a real subscriber store: resynchronisation (TS 33.102 6.3.5, Annex C; TS 29.109 4.2
step 2), unknown IMPIs (TS 29.109 6.2.2.1) and the AMF of the vectors (TS 33.102 Annex H).

The USIM side is gba.ue.Usim, so every case also checks that our HSS and our USIM agree: after one
resynchronisation with a genuine AUTS, the next vector is accepted.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from gba import diameter as d
from gba import milenage, ue
from gbaio.diameter_node import PeerInfo
from hss_stub.config import HssConfig
from hss_stub.metrics import HssMetrics
from hss_stub.store import DELTA, IND_BITS, SubscriberStore, next_sqn, sqn_in_range
from hss_stub.zh import ZhHandler

KEK = bytes(range(32))
K = bytes.fromhex("465b5ce8b199b49faa5f0a2ee238a6bc")
OPC = bytes.fromhex("cd63cb71954a9f4e48a5994e37a02baf")
IMPI = "resync@ims.test"
PEER = PeerInfo("bsf.gba.test", "gba.test", "127.0.0.1", frozenset({d.APP_ZH}))
MIL = milenage.Milenage(K, OPC)


class Hss:
    """One stub HSS (handler, store, metrics) holding IMPI at a given SQN_HE."""

    def __init__(self, path: Path, sqn_he: int, amf: bytes = b"\x00\x00") -> None:
        self.store = SubscriberStore(path, KEK)
        self.store.add(IMPI, K, OPC, amf, sqn_he)
        self.metrics = HssMetrics()
        self.handler = ZhHandler(HssConfig(), self.store, self.metrics)
        self._session = 0

    async def mar(self, resync: bytes | None = None, impi: str = IMPI) -> d.Envelope:
        self._session += 1
        req = d.MultimediaAuthRequest(
            f"bsf;{self._session}", "bsf.gba.test", "gba.test", "gba.test", impi, resync_info=resync
        )
        return await self.handler(req.to_envelope(1, self._session), PEER)

    async def vector(self, resync: bytes | None = None) -> tuple[bytes, bytes]:
        """(RAND, AUTN) of a successful MAA, checked against K/OPc."""
        maa = d.MultimediaAuthAnswer.from_envelope(await self.mar(resync))
        assert (maa.result_code, maa.experimental_result) == (d.ResultCode.SUCCESS, None)
        assert maa.sip_authenticate is not None
        rand, autn = maa.sip_authenticate[:16], maa.sip_authenticate[16:]
        assert maa.sip_authorization == MIL.f2345(rand)[0]
        return rand, autn

    @property
    def sqn_he(self) -> int:
        # SubscriberStore.get is async (a reader thread): the list serves from a sync test property.
        (sub,) = (s for s in self.store.list() if s.impi == IMPI)
        return sub.sqn

    def outcomes(self) -> dict[str, float]:
        return {
            s.labels["outcome"]: s.value
            for m in self.metrics.registry.collect()
            if m.name == "gbagw_hss_resync"
            for s in m.samples
            if s.name.endswith("_total")
        }


def sqn_of(autn: bytes, rand: bytes) -> int:
    check = milenage.open_autn(MIL, rand, autn)
    assert check.mac_ok
    return check.sqn


def usim_at(sqn_ms: int) -> ue.Usim:
    """A USIM whose every SEQ_MS slot is at SEQ(sqn_ms), with SQN_MS = sqn_ms (C.2)."""
    usim = ue.Usim(K, OPC, seq_ms=[sqn_ms >> IND_BITS] * ue.IND_SIZE)
    assert usim.sqn_ms >> IND_BITS == sqn_ms >> IND_BITS
    return usim


async def test_valid_auts_with_sqn_he_out_of_range_moves_sqn_he_to_sqn_ms(tmp_path: Path) -> None:
    hss = Hss(tmp_path / "h.sqlite", 0x40)
    usim = usim_at(5000 << IND_BITS)
    rand, autn = await hss.vector()
    failure = usim.authenticate(rand, autn)
    assert isinstance(failure, ue.AkaSyncFailure)  # SEQ 3 is stale for a USIM at SEQ 5000
    rand2, autn2 = await hss.vector(rand + failure.auts)
    assert sqn_of(autn2, rand2) == next_sqn(usim.sqn_ms) == hss.sqn_he
    assert isinstance(usim.authenticate(rand2, autn2), ue.AkaSuccess)
    assert hss.outcomes() == {"resynchronised": 1.0}


async def test_valid_auts_with_sqn_he_in_range_keeps_sqn_he(tmp_path: Path) -> None:
    """The USIM refused a vector older than SQN_HE (a replayed one): the next SQN from SQN_HE is still
    fresh for it, so SQN_HE stays where it is (6.3.5 steps 2, 3 and 6) and is never moved backwards."""
    hss = Hss(tmp_path / "h.sqlite", 0x40)
    old_rand, old_autn = await hss.vector()
    usim = ue.Usim(K, OPC)
    assert isinstance(usim.authenticate(old_rand, old_autn), ue.AkaSuccess)
    for _ in range(3):
        await hss.vector()
    sqn_he = hss.sqn_he
    replay = usim.authenticate(old_rand, old_autn)
    assert isinstance(replay, ue.AkaSyncFailure)
    rand, autn = await hss.vector(old_rand + replay.auts)
    assert sqn_of(autn, rand) == next_sqn(sqn_he) == hss.sqn_he
    assert isinstance(usim.authenticate(rand, autn), ue.AkaSuccess)
    assert hss.outcomes() == {"in_range": 1.0}


async def test_usim_more_than_delta_behind_resets_sqn_he_downwards(tmp_path: Path) -> None:
    """C.2.1: a USIM refuses a SEQ more than DELTA above its SEQ_MS, so such a SQN_HE is out of range too."""
    hss = Hss(tmp_path / "h.sqlite", (DELTA + 100) << IND_BITS)
    usim = usim_at(10 << IND_BITS)
    rand, autn = await hss.vector()
    failure = usim.authenticate(rand, autn)
    assert isinstance(failure, ue.AkaSyncFailure)
    rand2, autn2 = await hss.vector(rand + failure.auts)
    assert sqn_of(autn2, rand2) == next_sqn(usim.sqn_ms) == hss.sqn_he
    assert isinstance(usim.authenticate(rand2, autn2), ue.AkaSuccess)


async def test_mac_s_failure_answers_success_with_a_fresh_vector_and_keeps_sqn_he(tmp_path: Path) -> None:
    """TS 29.109 4.2 step 2: a resynchronisation MAR is answered DIAMETER_SUCCESS; TS 33.102 6.3.5 steps
    4-6: an AUTS that does not verify leaves SQN_HE, and the vector takes the next SQN as usual."""
    hss = Hss(tmp_path / "h.sqlite", 0x40)
    rand = os.urandom(16)
    auts = milenage.build_auts(MIL, rand, 5000 << IND_BITS)
    forged = auts[:-1] + bytes([auts[-1] ^ 0x01])
    answer = await hss.mar(rand + forged)
    assert answer.result() == (d.ResultCode.SUCCESS, None) and not answer.is_error
    maa = d.MultimediaAuthAnswer.from_envelope(answer)
    assert maa.sip_authenticate is not None and maa.ck is not None and maa.ik is not None
    assert sqn_of(maa.sip_authenticate[16:], maa.sip_authenticate[:16]) == next_sqn(0x40) == hss.sqn_he
    assert hss.outcomes() == {"mac_s_failure": 1.0}


async def test_auts_is_checked_against_the_rand_sent_with_it(tmp_path: Path) -> None:
    """AK* and MAC-S are f5* and f1* of the RAND in SIP-Authorization (TS 33.102 6.3.3): an AUTS built
    for another RAND does not verify, and the same AUTS with its own RAND does."""
    hss = Hss(tmp_path / "h.sqlite", 0x40)
    rand, other = os.urandom(16), os.urandom(16)
    auts = milenage.build_auts(MIL, rand, 5000 << IND_BITS)
    rand2, autn2 = await hss.vector(other + auts)
    assert sqn_of(autn2, rand2) == next_sqn(0x40) == hss.sqn_he
    rand3, autn3 = await hss.vector(rand + auts)
    assert sqn_of(autn3, rand3) == next_sqn(5000 << IND_BITS) == hss.sqn_he
    assert hss.outcomes() == {"mac_s_failure": 1.0, "resynchronised": 1.0}


async def test_malformed_sip_authorization_is_unable_to_comply_without_a_vector(tmp_path: Path) -> None:
    """Not RAND (16) || AUTS (14): TS 29.109 4.2 step 2 treats other cases as DIAMETER_UNABLE_TO_COMPLY."""
    hss = Hss(tmp_path / "h.sqlite", 0x40)
    for info in (b"", bytes(29), bytes(31)):
        maa = d.MultimediaAuthAnswer.from_envelope(await hss.mar(info))
        assert maa.result_code == d.ResultCode.UNABLE_TO_COMPLY and maa.sip_authenticate is None
    assert hss.sqn_he == 0x40


async def test_unknown_impi_is_experimental_result_5401_without_result_code(tmp_path: Path) -> None:
    """TS 29.109 6.2: 5401 DIAMETER_ERROR_IDENTITY_UNKNOWN inside Experimental-Result (Vendor-Id 10415), no
    Result-Code; for a plain MAR and for a resynchronisation MAR."""
    hss = Hss(tmp_path / "h.sqlite", 0)
    rand = os.urandom(16)
    for resync in (None, rand + milenage.build_auts(MIL, rand, 99 << IND_BITS)):
        answer = await hss.mar(resync, impi="nobody@ims.test")
        assert answer.result() == (None, d.ExperimentalResult.ERROR_IDENTITY_UNKNOWN)
        group = d.get_group(answer.avps, d.Avps.EXPERIMENTAL_RESULT)
        assert group is not None and d.get_u32(group, d.Avps.VENDOR_ID) == d.VENDOR_3GPP
        assert d.MultimediaAuthAnswer.from_envelope(answer).sip_authenticate is None
    assert hss.metrics.maa.labels("5401")._value.get() == 2


async def test_vectors_carry_the_subscribers_stored_amf(tmp_path: Path) -> None:
    """Default AMF 0000 (TS 33.102 Annex H: the separation bit is for EPS/5G); a subscriber provisioned
    with another AMF keeps it."""
    assert HssConfig().default_amf == b"\x00\x00"
    for amf in (b"\x00\x00", b"\x80\x00"):
        hss = Hss(tmp_path / f"{amf.hex()}.sqlite", 0, amf)
        rand, autn = await hss.vector()
        assert milenage.open_autn(MIL, rand, autn).amf == amf


@settings(max_examples=150, deadline=None)
@given(
    sqn_he=st.integers(0, (1 << 40) - 1),
    seqs=st.lists(st.integers(0, 1 << 35), min_size=ue.IND_SIZE, max_size=ue.IND_SIZE),
    near=st.booleans(),
)
def test_one_resync_always_brings_hss_and_usim_together(sqn_he: int, seqs: list[int], near: bool) -> None:
    """For any SQN_HE and USIM array: a vector the USIM refuses, then one resync with its genuine AUTS,
    gives a vector the USIM accepts; SQN_HE moves iff it was out of range (6.3.5 steps 2-5)."""
    if near:  # the USIM close to SQN_HE, where the in-range boundary is
        seqs = [max(0, (sqn_he >> IND_BITS) + (s % 64) - 32) for s in seqs]
    usim = ue.Usim(K, OPC, seq_ms=list(seqs))

    async def run(path: Path) -> None:
        hss = Hss(path, sqn_he)
        rand, autn = await hss.vector()
        first = usim.authenticate(rand, autn)
        if isinstance(first, ue.AkaSuccess):
            return
        before, sqn_ms = hss.sqn_he, usim.sqn_ms
        rand2, autn2 = await hss.vector(rand + first.auts)
        expected = next_sqn(before) if sqn_in_range(before, sqn_ms) else next_sqn(sqn_ms)
        assert sqn_of(autn2, rand2) == expected == hss.sqn_he
        assert isinstance(usim.authenticate(rand2, autn2), ue.AkaSuccess)
        hss.store.close()

    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(run(Path(tmp) / "h.sqlite"))
