from __future__ import annotations

import pytest

from gba.nai import impi_problem


@pytest.mark.parametrize(
    "impi",
    ["001010123456789@ims.mnc001.mcc001.3gppnetwork.org", "a@ims", "user+tag.x-y@IMS.Example.org", "u@a1-b2.c"],
)
def test_nais_pass(impi: str) -> None:
    assert impi_problem(impi) is None


@pytest.mark.parametrize(
    ("impi", "problem"),
    [
        ("", "username@realm"),
        ("no-realm", "username@realm"),
        ("@ims.test", "username@realm"),
        ("user@", "username@realm"),
        ("two words@ims.test", "spaces"),
        ("tab\t@ims.test", "control"),
        ('quo"te@ims.test', "spaces"),
        ("back\\slash@ims.test", "spaces"),
        ("a@b@ims.test", "spaces"),
        ("ümlaut@ims.test", "spaces"),
        ("u@-ims.test", "realm"),
        ("u@ims_test", "realm"),
        ("u@ims..test", "realm"),
        ("u@" + "a" * 252, "longer than 253"),
    ],
)
def test_non_nais_say_why(impi: str, problem: str) -> None:
    assert problem in (impi_problem(impi) or "")
