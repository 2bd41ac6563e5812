"""Encryption of key material at rest (K, OPc, Ks): AES-256-GCM under a key-encryption key.

The associated data binds a ciphertext to its record (e.g. the IMPI or B-TID), so a sealed key
copied to another row does not open.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEK_LEN = 32
NONCE_LEN = 12
VERSION = b"\x01"


class KeyWrapError(ValueError):
    """A sealed value does not open under this KEK (wrong KEK, tampering, or wrong record)."""


def seal(kek: bytes, plaintext: bytes, aad: bytes) -> bytes:
    if len(kek) != KEK_LEN:
        raise KeyWrapError("KEK must be 32 octets")
    nonce = os.urandom(NONCE_LEN)
    return VERSION + nonce + AESGCM(kek).encrypt(nonce, plaintext, VERSION + aad)


def unseal(kek: bytes, sealed: bytes, aad: bytes) -> bytes:
    if len(kek) != KEK_LEN:
        raise KeyWrapError("KEK must be 32 octets")
    if len(sealed) < 1 + NONCE_LEN + 16 or sealed[:1] != VERSION:
        raise KeyWrapError("sealed value has an unknown format")
    try:
        return AESGCM(kek).decrypt(sealed[1 : 1 + NONCE_LEN], sealed[1 + NONCE_LEN :], VERSION + aad)
    except InvalidTag:
        raise KeyWrapError("sealed value does not verify under this KEK") from None
