"""gba.safejson: size and depth caps before the recursive parser (docs/security.md)."""

from __future__ import annotations

import pytest

from gba import safejson


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 100_000,  # was RecursionError -> 500 on Nbsp_GBA
        b'{"a":' * 40 + b"1" + b"}" * 40,
        b"\xff\xfe{}",
        b"nope",
        b'{"a": 1',
    ],
)
def test_hostile_or_broken_bodies_are_json_errors(body: bytes) -> None:
    with pytest.raises(safejson.JsonError):
        safejson.loads(body, 1 << 20)


def test_brackets_inside_strings_do_not_count() -> None:
    doc = b'{"a": "' + b"[" * 100 + b'", "b": ["x\\"]]]]", {"c": []}]}'
    assert safejson.loads(doc, 4096)["b"][0] == 'x"]]]]'


def test_the_size_cap_comes_first() -> None:
    with pytest.raises(safejson.JsonError, match="larger than 10"):
        safejson.loads(b'{"a": "0123456789"}', 10)


def test_depth_at_the_cap_parses_and_one_more_does_not() -> None:
    value = safejson.loads(b"[" * 32 + b"]" * 32, 4096, max_depth=32)
    levels = 0
    while isinstance(value, list):
        levels += 1
        value = value[0] if value else None
    assert levels == 32
    with pytest.raises(safejson.JsonError, match="deeper than 32"):
        safejson.loads(b"[" * 33 + b"]" * 33, 4096, max_depth=32)
