from __future__ import annotations

import pytest

from gba.btid import Btid, BtidError

RAND = bytes.fromhex("23553cbe9637a89d218ae64dae47bf35")


def test_format_matches_worked_example() -> None:
    assert str(Btid(RAND, "bsf.example.org")) == "I1U8vpY3qJ0hiuZNrke/NQ==@bsf.example.org"


def test_parse_round_trip() -> None:
    b = Btid.parse("I1U8vpY3qJ0hiuZNrke/NQ==@bsf.example.org")
    assert b.rand == RAND and b.bsf_fqdn == "bsf.example.org"
    assert Btid.parse(b"I1U8vpY3qJ0hiuZNrke/NQ==@bsf.example.org") == b


@pytest.mark.parametrize(
    "text",
    [
        "",
        "@bsf.example.org",
        "I1U8vpY3qJ0hiuZNrke/NQ==",
        "I1U8vpY3qJ0hiuZNrke/NQ==@",
        "I1U8vpY3qJ0hiuZNrke_NQ==@bsf.example.org",
        "I1U8vpY3qJ0hiuZNrke/NQ@bsf.example.org",
        "AAAA@bsf.example.org",
        "I1U8vpY3qJ0hiuZNrke/NQ==@bsf..example.org",
        "I1U8vpY3qJ0hiuZNrke/NQ==@bsf example.org",
        "x" * 400,
    ],
)
def test_malformed(text: str) -> None:
    with pytest.raises(BtidError):
        Btid.parse(text)


def test_non_ascii_bytes() -> None:
    with pytest.raises(BtidError):
        Btid.parse(b"\xff@bsf")
