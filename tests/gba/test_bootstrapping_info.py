from __future__ import annotations

import datetime as dt

import pytest
from lxml import etree

from gba.bootstrapping_info import NAMESPACE, BootstrappingInfo
from gba.safexml import XmlError

EXPIRES = dt.datetime(2030, 1, 2, 3, 4, 5, tzinfo=dt.UTC)


def test_the_written_document_is_ts_24109_annex_c_and_parses_back() -> None:
    xml = BootstrappingInfo("pV5r3L60pESJadMP18S8SA==@bsf.gba.test", EXPIRES).to_xml()
    root = etree.fromstring(xml)
    assert root.tag == f"{{{NAMESPACE}}}BootstrappingInfo"
    assert [(c.tag, c.text) for c in root] == [
        (f"{{{NAMESPACE}}}btid", "pV5r3L60pESJadMP18S8SA==@bsf.gba.test"),
        (f"{{{NAMESPACE}}}lifetime", "2030-01-02T03:04:05Z"),
    ]
    assert xml.startswith(b"<?xml version='1.0' encoding='UTF-8'?>")
    assert BootstrappingInfo.parse(xml) == BootstrappingInfo("pV5r3L60pESJadMP18S8SA==@bsf.gba.test", EXPIRES)


def test_markup_in_a_btid_is_escaped() -> None:
    info = BootstrappingInfo("a<b>&c@bsf", EXPIRES)
    assert b"<btid>a&lt;b&gt;&amp;c@bsf</btid>" in info.to_xml()
    assert BootstrappingInfo.parse(info.to_xml()) == info


def test_a_lifetime_in_another_zone_is_written_in_utc() -> None:
    local = EXPIRES.astimezone(dt.timezone(dt.timedelta(hours=5)))
    assert b"<lifetime>2030-01-02T03:04:05Z</lifetime>" in BootstrappingInfo("x@bsf", local).to_xml()


def test_hostile_documents_are_refused() -> None:
    with pytest.raises(XmlError):
        BootstrappingInfo.parse(b'<!DOCTYPE x [<!ENTITY a "b">]><BootstrappingInfo/>')
