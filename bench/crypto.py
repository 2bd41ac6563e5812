"""Protocol-core crypto throughput on this machine, each beside a raw-primitive ceiling from the same run.

Run: python bench/crypto.py [--seconds 1.0]
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from gba import digest, kdf, milenage


def rate(fn: Callable[[], object], seconds: float) -> float:
    n, start = 0, time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(200):
            fn()
        n += 200
        now = time.perf_counter()
        if now >= deadline:
            return n / (now - start)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=1.0)
    s = ap.parse_args().seconds
    k, opc, rand = os.urandom(16), os.urandom(16), os.urandom(16)
    mil = milenage.Milenage(k, opc)
    enc = Cipher(algorithms.AES(k), modes.ECB()).encryptor()
    aes = rate(lambda: enc.update(rand), s)
    vectors = rate(lambda: milenage.generate_vector(mil, rand, 0x20, b"\x80\x00"), s)
    ks, impi = os.urandom(32), "001010123456789@ims.mnc001.mcc001.3gppnetwork.org"
    naf = kdf.NafId("naf.gba.test", kdf.UaProtocol.HTTP_DIGEST)
    s_str = b"\x01gba-me\x00\x06" + rand + b"\x00\x10" + impi.encode() + b"\x001" + naf.encode() + b"\x00\x14"
    raw_hmac = rate(lambda: hmac.new(ks, s_str, hashlib.sha256).digest(), s)
    kdfs = rate(lambda: kdf.ks_naf(ks, rand, impi, naf), s)
    header = digest.Credentials(
        username=impi,
        realm="bsf.gba.test",
        nonce="I1U8vpY3qJ0hiuZNrke/NVXzKLQ1d7m5Sp/6w1Tfr7M=",
        uri="/",
        response="e3e8590f679c1236a0f59120ea0a39ab",
        algorithm="AKAv1-MD5",
        qop="auth-int",
        nc="00000001",
        cnonce="0a4f113b",
        opaque="x",
    ).to_header()

    def verify() -> bool:
        c = digest.Credentials.parse(header)
        assert c.qop and c.nc and c.cnonce
        r = digest.compute_response(
            password=b"12345678",
            username=c.username,
            realm=c.realm,
            method="GET",
            uri=c.uri,
            nonce=c.nonce,
            nc=c.nc,
            cnonce=c.cnonce,
            qop=c.qop,
            body=b"",
        )
        return digest.responses_equal(r, c.response)

    verifications = rate(verify, s)
    raw_md5 = rate(lambda: hashlib.md5(header.encode()).digest(), s)
    print(f"{'operation':38} {'per second':>12} {'baseline':>30} {'ratio':>7}")
    print(
        f"{'Milenage vector (f1..f5, AUTN)':38} {vectors:12,.0f} {'AES block/6 ' + format(aes / 6, ',.0f'):>30} "
        f"{vectors / (aes / 6):7.2f}"
    )
    print(
        f"{'Ks_NAF derivation (KDF)':38} {kdfs:12,.0f} {'raw HMAC-SHA-256 ' + format(raw_hmac, ',.0f'):>30} "
        f"{kdfs / raw_hmac:7.2f}"
    )
    print(
        f"{'digest parse + verify (auth-int)':38} {verifications:12,.0f} {'MD5 x4 ' + format(raw_md5 / 4, ',.0f'):>30} "
        f"{verifications / (raw_md5 / 4):7.2f}"
    )


if __name__ == "__main__":
    main()
