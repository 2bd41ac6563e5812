from __future__ import annotations

import contextlib
import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gba import zn_soap
from gba.safexml import XmlError

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
