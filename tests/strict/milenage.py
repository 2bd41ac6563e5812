"""Milenage (TS 35.206 clause 4.1) and the AKA vector and AUTS of TS 33.102 clause 6.3, for the strict HSS.

Independent of gba/milenage.py; checked against TS 35.208 test set 1 in tests/strict/test_rules.py.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

# TS 35.206 4.1: the constants c1..c5 and rotations r1..r5 (bits).
_C = [bytes(16), bytes(15) + b"\x01", bytes(15) + b"\x02", bytes(15) + b"\x04", bytes(15) + b"\x08"]
_R = [64, 0, 32, 64, 96]


def _xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b, strict=True))


def _rot(x: bytes, bits: int) -> bytes:
    n = bits // 8  # every r of TS 35.206 is a whole number of octets
    return x[n:] + x[:n]


class Milenage:
    def __init__(self, k: bytes, opc: bytes) -> None:
        self._enc = Cipher(algorithms.AES(k), modes.ECB()).encryptor()
        self.opc = opc

    def _e(self, block: bytes) -> bytes:
        return self._enc.update(block)

    @classmethod
    def with_op(cls, k: bytes, op: bytes) -> Milenage:
        enc = Cipher(algorithms.AES(k), modes.ECB()).encryptor()
        return cls(k, _xor(enc.update(op), op))

    def _out(self, i: int, temp: bytes) -> bytes:
        """OUT2..OUT5 (i = 1..4)."""
        return _xor(self._e(_xor(_rot(_xor(temp, self.opc), _R[i]), _C[i])), self.opc)

    def _temp(self, rand: bytes) -> bytes:
        return self._e(_xor(rand, self.opc))

    def f1(self, rand: bytes, sqn: bytes, amf: bytes) -> tuple[bytes, bytes]:
        """(MAC-A, MAC-S) = f1, f1*."""
        in1 = (sqn + amf) * 2
        x = _xor(self._temp(rand), _rot(_xor(in1, self.opc), _R[0]))
        out1 = _xor(self._e(_xor(x, _C[0])), self.opc)
        return out1[:8], out1[8:]

    def f2345(self, rand: bytes) -> tuple[bytes, bytes, bytes, bytes, bytes]:
        """(RES, CK, IK, AK, AK*) = f2, f3, f4, f5, f5*."""
        temp = self._temp(rand)
        out2, out3, out4, out5 = (self._out(i, temp) for i in (1, 2, 3, 4))
        return out2[8:], out3, out4, out2[:6], out5[:6]


@dataclass(frozen=True)
class Vector:
    rand: bytes
    autn: bytes
    xres: bytes
    ck: bytes
    ik: bytes


def vector(mil: Milenage, rand: bytes, sqn: int, amf: bytes) -> Vector:
    """TS 33.102 6.3.2: AUTN = SQN xor AK || AMF || MAC."""
    sqn_b = sqn.to_bytes(6, "big")
    mac, _ = mil.f1(rand, sqn_b, amf)
    res, ck, ik, ak, _ = mil.f2345(rand)
    return Vector(rand, _xor(sqn_b, ak) + amf + mac, res, ck, ik)


def open_auts(mil: Milenage, rand: bytes, auts: bytes) -> int | None:
    """SQN_MS from AUTS = SQN_MS xor AK* || MAC-S, or None when MAC-S fails (TS 33.102 6.3.3, 6.3.5:
    the AMF in MAC-S is the dummy 0000)."""
    *_, ak_star = mil.f2345(rand)
    sqn_ms = _xor(auts[:6], ak_star)
    _, mac_s = mil.f1(rand, sqn_ms, b"\x00\x00")
    if not hmac.compare_digest(mac_s, auts[6:14]):
        return None
    return int.from_bytes(sqn_ms, "big")
