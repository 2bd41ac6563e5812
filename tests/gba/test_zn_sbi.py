"""The Nbsp_GBA codec (gba/zn_sbi.py) against TS 29.309's schema, checked by tests/conformance/nbsp_gba."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gba import zn_sbi
from gba.kdf import NafId, UaProtocol
from gba.uss import Uss
from tests.conformance.nbsp_gba import check_nbsp_gba_request, check_nbsp_gba_response

NOW = dt.datetime(2026, 11, 29, 12, 0, tzinfo=dt.UTC)
NAF = NafId("naf.gba.test", UaProtocol.HTTP_DIGEST.value)
USS = Uss("1000001", 1, "g1", ("sip:u@ims.test",), (1, 2), "UICC-based-key")


def _answer(resp: zn_sbi.SbiResponse) -> dict[str, object]:
    doc = zn_sbi.build_response(resp)
    check_nbsp_gba_response(200, "application/json", json.dumps(doc).encode())
    return doc


def test_request_round_trip_is_a_valid_bootstrapping_info_request() -> None:
    req = zn_sbi.SbiRequest("b@bsf.gba.test", NAF, ("1000001", "0", "4294967295"), True)
    doc = zn_sbi.build_request(req)
    check_nbsp_gba_request(json.dumps(doc).encode())
    assert doc["gsIds"] == [1000001, 0, 4294967295]
    assert zn_sbi.parse_request(doc) == req


@pytest.mark.parametrize("gsid", ["pki", "07", "-1", "4294967296", " 1", ""])
def test_a_gsid_that_is_no_uint32_never_reaches_the_json(gsid: str) -> None:
    assert zn_sbi.gsid_uint32(gsid) is None
    with pytest.raises(zn_sbi.SbiError, match="Uint32"):
        zn_sbi.build_request(zn_sbi.SbiRequest("b", NAF, (gsid,)))


def test_response_round_trip_without_gba_type_for_3g_gba() -> None:
    resp = zn_sbi.SbiResponse(bytes(32), NOW, NOW, "i@ims", b"\x01" * 32, (USS,))
    doc = _answer(resp)
    assert "gbaType" not in doc  # TS 29.109 5.2/5.3: only if other than 3G GBA
    assert doc["ussList"] == [
        {
            "uss": {
                "gsId": 1000001,
                "gsType": 1,
                "ueIds": [{"ueId": "sip:u@ims.test"}],
                "flags": [{"flag": 1}, {"flag": 2}],
                "keyChoice": "UICC_BASED_KEY",
            }
        }
    ]
    back = zn_sbi.parse_response(doc)
    assert back.uss == (Uss("1000001", 1, None, ("sip:u@ims.test",), (1, 2), "UICC-based-key"),)
    assert (back.me_key, back.uicc_key, back.key_expiry, back.impi, back.gba_type) == (
        bytes(32),
        b"\x01" * 32,
        NOW,
        "i@ims",
        None,
    )


def test_a_uss_without_public_identity_is_not_padded_with_an_invented_one() -> None:
    """TS 29.309 Uss requires ueIds with at least one ueId: such a USS has no JSON form."""
    bare = Uss("1000002", 0)
    assert "no public identity" in (zn_sbi.uss_problem(bare) or "")
    assert zn_sbi.uss_problem(Uss("pki", 0, uids=("a",))) is not None
    assert zn_sbi.uss_problem(USS) is None
    with pytest.raises(zn_sbi.SbiError, match="no public identity"):
        zn_sbi.build_response(zn_sbi.SbiResponse(bytes(32), NOW, NOW, uss=(bare,)))


@pytest.mark.parametrize(
    "doc",
    [
        {},
        {"meKeyMaterial": "00" * 31},
        {"meKeyMaterial": "00" * 32, "keyExpiryTime": "tomorrow"},
        {"meKeyMaterial": "00" * 32, "keyExpiryTime": "2026-11-29T12:00:00"},
        {"meKeyMaterial": "00" * 32, "ussList": [{"uss": {"gsId": 1, "gsType": 0, "ueIds": []}}]},
        {"meKeyMaterial": "00" * 32, "ussList": [{"uss": {"gsId": "1", "gsType": 0, "ueIds": [{"ueId": "a"}]}}]},
        {"meKeyMaterial": "00" * 32, "gbaType": 0},
        [],
    ],
)
def test_malformed_answers_are_refused(doc: object) -> None:
    with pytest.raises(zn_sbi.SbiError):
        zn_sbi.parse_response(doc)


@pytest.mark.parametrize(
    ("doc", "param", "missing"),
    [
        ({"nafId": {"nafFqdn": "naf.gba.test", "uaSecProtId": "0100000002"}}, "/btId", True),
        ({"btId": "b"}, "/nafId", True),
        ({"btId": "b", "nafId": {"nafFqdn": "naf.gba.test", "uaSecProtId": "01"}}, "/nafId", False),
        ({"btId": "b", "nafId": {"nafFqdn": "naf.gba.test", "uaSecProtId": "0100000002"}, "gsIds": []}, "/gsIds", 0),
        ({"btId": "b", "nafId": {"nafFqdn": "naf.gba.test", "uaSecProtId": "0100000002"}, "gsIds": ["1"]}, "/gsIds", 0),
    ],
)
def test_malformed_requests_name_the_parameter(doc: dict[str, object], param: str, missing: bool) -> None:
    with pytest.raises(zn_sbi.SbiError) as exc:
        zn_sbi.parse_request(doc)
    assert (exc.value.param, exc.value.missing) == (param, bool(missing))


_UINT32 = st.integers(0, 2**32 - 1)


@settings(max_examples=100)
@given(
    st.lists(
        st.builds(
            Uss,
            _UINT32.map(str),
            _UINT32,
            st.none() | st.text(max_size=5),
            st.lists(st.text(max_size=20), min_size=1, max_size=3).map(tuple),
            st.lists(_UINT32, max_size=3).map(tuple),
            st.none() | st.sampled_from(["ME-based-key", "UICC-based-key", "ME-UICC-based-keys", "other"]),
        ),
        max_size=4,
    ),
    st.none() | st.text(max_size=30),
    st.booleans(),
)
def test_every_answer_built_is_schema_valid(uss: list[Uss], impi: str | None, gba_u: bool) -> None:
    doc = _answer(zn_sbi.SbiResponse(bytes(32), NOW, NOW, impi, bytes(32) if gba_u else None, tuple(uss)))
    assert zn_sbi.parse_response(doc).uss == tuple(
        Uss(u.gsid, u.service_type, None, u.uids, u.flags, u.key_choice) for u in uss
    )
