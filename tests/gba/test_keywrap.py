"""Sealing at rest: format 2 names its KEK; a Keyring opens what earlier KEKs sealed; format 1 still opens."""

from __future__ import annotations

import os

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from gba.keywrap import Keyring, KeyWrapError, kek_id

OLD, NEW = os.urandom(32), os.urandom(32)


def _format_1(kek: bytes, plaintext: bytes, aad: bytes) -> bytes:
    """What releases before format 2 wrote: 01 || nonce || AES-GCM(plaintext, aad = 01 || aad)."""
    nonce = os.urandom(12)
    return b"\x01" + nonce + AESGCM(kek).encrypt(nonce, plaintext, b"\x01" + aad)


def test_format_2_names_its_kek_and_binds_its_header() -> None:
    sealed = Keyring(NEW).seal(b"Ks", b"btid")
    assert sealed[:1] == b"\x02" and sealed[1:9] == kek_id(NEW) and len(sealed) == 1 + 8 + 12 + 2 + 16
    ring = Keyring(NEW)
    assert ring.unseal(sealed, b"btid") == b"Ks" and ring.unseal(ring.seal(b"K", b"a"), b"a") == b"K"
    with pytest.raises(KeyWrapError, match="does not verify"):
        Keyring(NEW).unseal(sealed, b"other btid")
    with pytest.raises(KeyWrapError, match="does not verify"):  # the header is authenticated too
        Keyring(NEW).unseal(b"\x02" + sealed[1:9] + sealed[9:-1] + bytes([sealed[-1] ^ 1]), b"btid")


def test_a_keyring_opens_what_earlier_keks_sealed_and_seals_with_the_current_one() -> None:
    old_blob = Keyring(OLD).seal(b"Ks", b"btid")
    ring = Keyring(NEW, [OLD])
    assert ring.unseal(old_blob, b"btid") == b"Ks"
    assert ring.seal(b"Ks", b"btid")[1:9] == kek_id(NEW)
    assert ring.ids == [kek_id(NEW).hex(), kek_id(OLD).hex()]
    with pytest.raises(KeyWrapError, match=f"KEK id {kek_id(OLD).hex()}, which this process does not hold"):
        Keyring(NEW).unseal(old_blob, b"btid")


def test_format_1_opens_under_any_kek_held() -> None:
    legacy = _format_1(OLD, b"OPc", b"impi|OPc")
    assert Keyring(OLD).unseal(legacy, b"impi|OPc") == b"OPc"
    assert Keyring(NEW, [OLD]).unseal(legacy, b"impi|OPc") == b"OPc"
    with pytest.raises(KeyWrapError, match="under any KEK held"):
        Keyring(NEW).unseal(legacy, b"impi|OPc")


@pytest.mark.parametrize("sealed", [b"", b"\x03" + bytes(40), b"\x02" + bytes(20), b"\x01" + bytes(10)])
def test_unknown_or_short_formats_are_refused(sealed: bytes) -> None:
    with pytest.raises(KeyWrapError, match="unknown format"):
        Keyring(NEW).unseal(sealed, b"")


def test_kek_length_is_checked() -> None:
    with pytest.raises(KeyWrapError, match="32 octets"):
        Keyring(NEW, [bytes(16)])
