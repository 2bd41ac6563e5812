from __future__ import annotations

import datetime as dt

from bsf.config import NafEntry
from bsf.policy import NafPolicy
from bsf.store import BootstrapContext
from gba.kdf import NafId, UaProtocol

GUSS = (
    b"<guss><bsfInfo><uiccType>GBA_U</uiccType></bsfInfo><ussList>"
    b'<uss id="10" type="0" nafGroup="g1"><uids><uid>a</uid></uids><flags/></uss>'
    b'<uss id="10" type="0" nafGroup="g2"><uids><uid>b</uid></uids><flags/></uss>'
    b"</ussList></guss>"
)
NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
POLICY = NafPolicy(
    (
        NafEntry("naf1.test", "naf1.test", "g1"),
        NafEntry("alias.naf1.test", "naf1.test", "g1"),
        NafEntry("strict.test", "strict.test", "g2", required_gsids=("99",)),
    )
)


def _ctx(guss: bytes | None = GUSS, gba_u: bool = True) -> BootstrapContext:
    return BootstrapContext("b@bsf", "i@ims", bytes(16), bytes(32), NOW, NOW, gba_u, guss)


def _id(fqdn: str) -> NafId:
    return NafId(fqdn, UaProtocol.HTTP_DIGEST.value)


def test_naf_may_use_each_of_its_fqdns_only() -> None:
    assert POLICY.decide("naf1.test", _id("naf1.test"), (), False, _ctx()).allowed
    assert POLICY.decide("NAF1.test", _id("alias.naf1.test"), (), False, _ctx()).allowed
    other = POLICY.decide("naf1.test", _id("strict.test"), (), False, _ctx())
    assert not other.allowed and "may not ask" in other.reason
    unknown = POLICY.decide("evil.test", _id("naf1.test"), (), False, _ctx())
    assert not unknown.allowed and "not an authorized NAF" in unknown.reason


def test_uss_selection_by_group_and_required_uss() -> None:
    d = POLICY.decide("naf1.test", _id("naf1.test"), ("10", "11"), True, _ctx())
    assert [u.uids for u in d.uss] == [("a",)] and d.uicc_key
    assert POLICY.decide("naf1.test", _id("naf1.test"), (), False, _ctx()).uss == ()
    strict = POLICY.decide("strict.test", _id("strict.test"), (), False, _ctx())
    assert not strict.allowed and "required USS 99" in strict.reason
    assert not POLICY.decide("strict.test", _id("strict.test"), (), False, _ctx(guss=None)).allowed


def test_uicc_key_only_for_gba_u_and_aware_naf() -> None:
    assert not POLICY.decide("naf1.test", _id("naf1.test"), (), False, _ctx()).uicc_key
    assert not POLICY.decide("naf1.test", _id("naf1.test"), (), True, _ctx(gba_u=False)).uicc_key


def test_unusable_guss_is_refused() -> None:
    d = POLICY.decide("naf1.test", _id("naf1.test"), (), False, _ctx(guss=b"<!DOCTYPE x [<!ENTITY a 'b'>]><guss/>"))
    assert not d.allowed


def test_a_naf_asking_for_a_gsid_it_may_not_see_is_refused() -> None:
    """TS 29.109 5.2 step 2 / TS 33.220 4.4.6: a NAF may be denied a GSID -> 5402 (bsf.nafs[].allowed_gsids)."""
    policy = NafPolicy((NafEntry("naf1.test", "naf1.test", "g1", allowed_gsids=("10",)),))
    assert [u.uids for u in policy.decide("naf1.test", _id("naf1.test"), ("10",), False, _ctx()).uss] == [("a",)]
    denied = policy.decide("naf1.test", _id("naf1.test"), ("10", "11"), False, _ctx())
    assert not denied.allowed and denied.reason == "NAF naf1.test may not ask for GSID 11" and denied.uss == ()
    closed = NafPolicy((NafEntry("naf1.test", "naf1.test", "g1", allowed_gsids=()),))
    assert closed.decide("naf1.test", _id("naf1.test"), (), False, _ctx()).allowed  # no GSID asked: keys only
    assert not closed.decide("naf1.test", _id("naf1.test"), ("10",), False, _ctx()).allowed


def test_a_naf_in_no_group_gets_no_uss_of_a_group() -> None:
    """With no NAF group configured, the USSs of NAF groups g1/g2 are not released (TS 33.220 4.4.6)."""
    policy = NafPolicy((NafEntry("plain.test", "plain.test"),))
    guss = GUSS.replace(b"</ussList>", b'<uss id="10" type="0"><uids><uid>c</uid></uids><flags/></uss></ussList>')
    assert policy.decide("plain.test", _id("plain.test"), ("10",), False, _ctx()).uss == ()
    assert [u.uids for u in policy.decide("plain.test", _id("plain.test"), ("10",), False, _ctx(guss)).uss] == [("c",)]


def test_the_owner_of_a_naf_fqdn() -> None:
    assert POLICY.owner_of("ALIAS.naf1.test") == "naf1.test" and POLICY.owner_of("nobody.test") is None
