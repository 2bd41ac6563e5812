from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gba import uss
from gba.safexml import XmlError

GUSS_NO_NS = b"""<guss id="001010123456789@ims.test"><bsfInfo><uiccType>GBA_U</uiccType><lifeTime>600</lifeTime>
</bsfInfo><ussList><uss id="1" type="1" nafGroup="g1"><uids><uid>sip:a@test</uid></uids><flags><flag>1</flag></flags>
</uss><uss id="1" type="1" nafGroup="g2"><uids><uid>sip:b@test</uid></uids><flags/></uss>
<uss id="4242" type="0"><uids><uid>tel:+1</uid></uids><flags/>
<Extension><keyChoice>UICC-based-key</keyChoice></Extension></uss></ussList></guss>"""


def test_parse_namespace_less_guss() -> None:
    g = uss.parse_guss(GUSS_NO_NS)
    assert g.uicc_type is uss.UiccType.GBA_U and g.lifetime == 600
    assert g.impi == "001010123456789@ims.test"
    assert [u.gsid for u in g.uss_list] == ["1", "1", "4242"]
    assert g.uss_list[0].flags == (1,) and g.uss_list[2].key_choice == "UICC-based-key"


def test_round_trip_namespaced() -> None:
    g = uss.parse_guss(GUSS_NO_NS)
    xml = uss.guss_to_xml(g)
    assert uss.GUSS_NS.encode() in xml
    assert uss.parse_guss(xml) == g


def test_selection_by_gsid_and_group() -> None:
    g = uss.parse_guss(GUSS_NO_NS)
    sel = g.select_uss({"1"}, "g2")
    assert [u.uids for u in sel] == [("sip:b@test",)]
    assert g.select_uss({"9"}, None) == ()
    assert g.has_uss("4242", "anything") and not g.has_uss("9", None)


def test_a_naf_in_no_group_gets_no_grouped_uss() -> None:
    """TS 33.220 4.4.6 / TS 29.109 5.2: the USSs of NAF groups g1 and g2 are not for a NAF outside them."""
    g = uss.parse_guss(GUSS_NO_NS)
    assert g.select_uss({"1"}, None) == () and not g.has_uss("1", None)
    assert [u.gsid for u in g.select_uss({"1", "4242"}, None)] == ["4242"]


def test_zn_uss_list_strips_naf_group() -> None:
    g = uss.parse_guss(GUSS_NO_NS)
    xml = uss.uss_list_to_xml(g.select_uss({"1"}, "g1"))
    assert b"nafGroup" not in xml
    back = uss.parse_uss_list(xml)
    assert back[0].naf_group is None and back[0].uids == ("sip:a@test",)


BILLION_LAUGHS = b"""<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">
<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]><guss>&lol2;</guss>"""
XXE = b"""<?xml version="1.0"?><!DOCTYPE guss [<!ENTITY x SYSTEM "file:///etc/passwd">]><guss>&x;</guss>"""


@pytest.mark.parametrize(
    "doc",
    [
        BILLION_LAUGHS,
        XXE,
        b"<guss>" + b"<x/>" * 20000 + b"</guss>",
        b"<notguss/>",
        b"<guss><bsfInfo><uiccType>GBA_X</uiccType></bsfInfo></guss>",
        b"<guss><bsfInfo><lifeTime>soon</lifeTime></bsfInfo></guss>",
        b"<guss><bsfInfo><lifeTime>-5</lifeTime></bsfInfo></guss>",
        b"<guss><ussList><uss id='1'/></ussList></guss>",
        b"<guss><ussList><uss id='1' type='x'/></ussList></guss>",
        b"<guss",
        b"",
    ],
)
def test_hostile_or_invalid_documents(doc: bytes) -> None:
    with pytest.raises(XmlError):
        uss.parse_guss(doc)


def test_wrong_root_for_uss_list() -> None:
    with pytest.raises(uss.UssError):
        uss.parse_uss_list(GUSS_NO_NS)


@settings(max_examples=300)
@given(st.one_of(st.binary(max_size=400), st.text(max_size=400).map(lambda t: ("<guss>" + t + "</guss>").encode())))
def test_guss_parser_never_crashes(data: bytes) -> None:
    with contextlib.suppress(XmlError):
        uss.parse_guss(data)
