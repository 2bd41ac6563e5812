"""Encryption of key material at rest (K, OPc, Ks, Ke): AES-256-GCM under a key-encryption key.

The associated data binds a ciphertext to its record (e.g. the IMPI or B-TID), so a sealed key
copied to another row does not open.

Format 2 (written): ``02 || KEK id (8) || nonce (12) || ciphertext || tag``, the first nine octets
also authenticated. The KEK id (a hash of the KEK, not secret) lets a :class:`Keyring` open records
sealed under an earlier KEK while it seals under the current one: several BSF instances rotate
their KEK online, and a record sealed under a KEK no instance holds any more names that KEK's id.
Format 1 (``01 || nonce || ciphertext || tag``, no id) is still opened: each KEK is tried in turn.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEK_LEN = 32
NONCE_LEN = 12
KEK_ID_LEN = 8
TAG_LEN = 16
V1 = b"\x01"
V2 = b"\x02"


class KeyWrapError(ValueError):
    """A sealed value does not open under this KEK (wrong KEK, tampering, or wrong record)."""


def kek_id(kek: bytes) -> bytes:
    """A KEK's public identifier: it names the KEK in sealed values and logs, and reveals nothing of it."""
    return hashlib.sha256(b"gbagw kek id" + kek).digest()[:KEK_ID_LEN]


class Keyring:
    """The KEK that seals, and the earlier KEKs that still open what they sealed (online rotation)."""

    __slots__ = ("_by_id", "_ciphers", "current_id")

    def __init__(self, current: bytes, previous: Iterable[bytes] = ()) -> None:
        keks = [current, *previous]
        if any(len(k) != KEK_LEN for k in keks):
            raise KeyWrapError("KEK must be 32 octets")
        self.current_id = kek_id(current)
        self._ciphers = [AESGCM(k) for k in keks]  # the current one first: format 1 tries it first
        self._by_id = {kek_id(k): c for k, c in zip(keks, self._ciphers, strict=True)}

    @property
    def ids(self) -> list[str]:
        """Every KEK id held, the sealing one first (hex, for logs and the CLI)."""
        return [i.hex() for i in self._by_id]

    def seal(self, plaintext: bytes, aad: bytes) -> bytes:
        header = V2 + self.current_id
        nonce = os.urandom(NONCE_LEN)
        return header + nonce + self._by_id[self.current_id].encrypt(nonce, plaintext, header + aad)

    def unseal(self, sealed: bytes, aad: bytes) -> bytes:
        if sealed[:1] == V2 and len(sealed) >= 1 + KEK_ID_LEN + NONCE_LEN + TAG_LEN:
            header, rest = sealed[: 1 + KEK_ID_LEN], sealed[1 + KEK_ID_LEN :]
            cipher = self._by_id.get(header[1:])
            if cipher is None:
                raise KeyWrapError(f"sealed under KEK id {header[1:].hex()}, which this process does not hold")
            return _open(cipher, rest, header + aad)
        if sealed[:1] == V1 and len(sealed) >= 1 + NONCE_LEN + TAG_LEN:
            for cipher in self._ciphers:
                try:
                    return _open(cipher, sealed[1:], V1 + aad)
                except KeyWrapError:
                    continue
            raise KeyWrapError("sealed value does not verify under any KEK held")
        raise KeyWrapError("sealed value has an unknown format")


def _open(cipher: AESGCM, nonce_and_ct: bytes, aad: bytes) -> bytes:
    try:
        return cipher.decrypt(nonce_and_ct[:NONCE_LEN], nonce_and_ct[NONCE_LEN:], aad)
    except InvalidTag:
        raise KeyWrapError("sealed value does not verify under this KEK") from None
