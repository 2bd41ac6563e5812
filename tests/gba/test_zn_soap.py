from __future__ import annotations

import contextlib
import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from gba import zn_soap
from gba.safexml import XmlError
from tests.conformance.zn_soap import check_zn_soap

NOW = dt.datetime(2026, 11, 29, 12, 0, tzinfo=dt.UTC)


def test_request_round_trip() -> None:
    req = zn_soap.SoapRequest("b@bsf.gba.test", b"naf.gba.test\x01\x00\x00\x00\x02", ("1", "2"), True)
    raw = zn_soap.build_request(req)
    assert zn_soap.GBA_NS.encode() in raw and b"requestBootstrappingInfoRequest" in raw
    assert zn_soap.parse_request(raw) == req


def test_response_and_fault_round_trip() -> None:
    resp = zn_soap.SoapResponse(
        me_key=bytes(32), key_expiry=NOW, creation=NOW, impi="i@ims", uicc_key=b"\x01" * 32, uss_list="<ussList/>"
    )
    raw = zn_soap.build_response(resp)
    assert b"<![CDATA[<ussList/>]]>" in raw
    assert zn_soap.parse_response(raw) == resp
    assert zn_soap.parse_response(zn_soap.build_fault(5403, "unknown B-TID", client=True)) == (5403, "unknown B-TID")


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"<notsoap/>",
        b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a SYSTEM "file:///etc/passwd">]><x>&a;</x>',
        b'<e:Envelope xmlns:e="http://schemas.xmlsoap.org/soap/envelope/"><e:Body/></e:Envelope>',
        b'<e:Envelope xmlns:e="http://schemas.xmlsoap.org/soap/envelope/"><e:Body><other/></e:Body></e:Envelope>',
        zn_soap.build_request(zn_soap.SoapRequest("b", b"x")).replace(b">eA==<", b">!!!<"),
        b"<a>" * 100_000,
    ],
)
def test_hostile_or_malformed_requests(raw: bytes) -> None:
    with pytest.raises(XmlError):
        zn_soap.parse_request(raw)


@settings(max_examples=200)
@given(st.binary(max_size=500))
def test_parser_never_crashes(raw: bytes) -> None:
    with contextlib.suppress(XmlError):
        zn_soap.parse_request(raw)


# --- TS 29.109 Annex D conformance, checked by the independent XSD of tests/conformance ---

RESPONSE = zn_soap.SoapResponse(
    me_key=bytes(32), key_expiry=NOW, creation=NOW, impi="i@ims", uicc_key=b"\x01" * 32, uss_list="<ussList/>"
)


def test_every_message_built_is_valid_per_annex_d() -> None:
    messages = [
        zn_soap.build_request(zn_soap.SoapRequest("b@bsf.gba.test", b"naf\x01\x00\x00\x00\x02", ("1", "x"), True)),
        zn_soap.build_request(zn_soap.SoapRequest("b@bsf.gba.test", b"naf")),
        zn_soap.build_response(RESPONSE),
        zn_soap.build_response(zn_soap.SoapResponse(me_key=bytes(32), key_expiry=NOW, creation=NOW)),
        zn_soap.build_fault(5402, "not authorized", client=True),
        zn_soap.build_fault(3004, "busy", client=False),
    ]
    for raw in messages:
        check_zn_soap(raw)


def test_children_are_unqualified_and_3g_gba_has_no_gba_type() -> None:
    """Annex D has no elementFormDefault: <btid>, <meKeyMaterial>, <errorCode> carry no namespace; gbaType
    is sent only if other than 3G GBA was performed (29.109 5.3 step 3)."""
    root = etree.fromstring(zn_soap.build_response(RESPONSE))
    (op,) = root[0]
    assert op.tag == f"{{{zn_soap.GBA_NS}}}requestBootstrappingInfoResponse"
    assert [c.tag for c in op] == [
        "impi",
        "meKeyMaterial",
        "uiccKeyMaterial",
        "keyExpiryTime",
        "bootstrappingInfoCreationTime",
        "ussList",
    ]
    fault = etree.fromstring(zn_soap.build_fault(5403, "gone", client=True))
    assert [c.tag for c in fault.iter() if c.text == "5403"] == ["errorCode"]
    request = etree.fromstring(zn_soap.build_request(zn_soap.SoapRequest("b", b"n")))
    assert [c.tag for c in request[0][0]] == ["btid", "nafid", "gbaUAware"]


QUALIFIED_RESPONSE = (
    b'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" xmlns:g="urn:3gpp:gba:GBAService:2010-02">'
    b"<s:Body><g:requestBootstrappingInfoResponse><g:meKeyMaterial>" + b"A" * 43 + b"=</g:meKeyMaterial>"
    b"<g:keyExpiryTime>2026-11-29T12:00:00Z</g:keyExpiryTime>"
    b"<g:bootstrappingInfoCreationTime>2026-11-29T12:00:00Z</g:bootstrappingInfoCreationTime>"
    b"<g:gbaType>3G GBA</g:gbaType></g:requestBootstrappingInfoResponse></s:Body></s:Envelope>"
)


def test_the_parser_tolerates_a_bsf_that_qualifies_the_children() -> None:
    with pytest.raises(AssertionError, match=r"'\{urn:3gpp:gba:GBAService:2010-02\}meKeyMaterial'"):
        check_zn_soap(QUALIFIED_RESPONSE)  # invalid per Annex D, yet some BSFs send it
    answer = zn_soap.parse_response(QUALIFIED_RESPONSE)
    assert isinstance(answer, zn_soap.SoapResponse) and answer.me_key == bytes(32) and answer.gba_type == "3G GBA"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (zn_soap.build_fault(5402, "x", client=True).replace(b"<errorCode>5402", b"<errorCode>n/a"), "errorCode"),
        (
            zn_soap.build_request(zn_soap.SoapRequest("b", b"n")).replace(b"<btid>b</btid>", b""),
            "nafid",
        ),
        (
            zn_soap.build_fault(5402, "x", client=True).replace(b"<detail>", b"<detail><x/>"),
            "requestBootstrappingInfoFault",
        ),
        (zn_soap.build_fault(5402, "x", client=True).replace(b"soapenv:Client", b"Client"), "faultcode"),
    ],
)
def test_the_checker_names_what_breaks_annex_d(raw: bytes, message: str) -> None:
    with pytest.raises(AssertionError, match=message):
        check_zn_soap(raw)


@settings(max_examples=50)
@given(
    st.text(st.characters(categories=("L", "N", "P", "S", "Zs")), min_size=1, max_size=40),
    st.lists(st.text(st.characters(codec="ascii", categories=("L", "N", "P")), max_size=10), max_size=3),
    st.booleans(),
    st.binary(min_size=32, max_size=32),
)
def test_built_messages_stay_valid(btid: str, gsids: list[str], aware: bool, key: bytes) -> None:
    check_zn_soap(zn_soap.build_request(zn_soap.SoapRequest(btid, key, tuple(gsids), aware)))
    check_zn_soap(zn_soap.build_response(zn_soap.SoapResponse(me_key=key, key_expiry=NOW, creation=NOW, impi=btid)))
    check_zn_soap(zn_soap.build_fault(5403, btid, client=True))
