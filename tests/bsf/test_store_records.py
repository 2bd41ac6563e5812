"""The sealed record format of the context stores (bsf.store): binary records round-trip every field
kind, and the JSON records of earlier releases still open, so an upgrade keeps live contexts."""

from __future__ import annotations

import datetime as dt
import json
import os

import pytest

from bsf.store import (
    BootstrapContext,
    EnrolmentRecord,
    PendingChallenge,
    seal_record,
    unseal_challenge,
    unseal_context,
    unseal_enrolment,
)
from gba.keywrap import Keyring

KEYS = Keyring(os.urandom(32))
T1 = dt.datetime(2030, 1, 2, 3, 4, 5, 123456, tzinfo=dt.UTC)
T2 = dt.datetime(2031, 6, 7, 8, 9, 10, tzinfo=dt.UTC)


def test_every_record_kind_round_trips() -> None:
    ch = PendingChallenge(
        "ü@ims.test", "bm9uY2U=", "op", os.urandom(16), b"\x01" * 8, b"c" * 16, b"i" * 16, True, None, T1
    )
    assert unseal_challenge(KEYS, seal_record(KEYS, ch, "challenge:n"), "challenge:n") == ch
    ctx = BootstrapContext("b@bsf", "u@ims", os.urandom(16), os.urandom(32), T1, T2, False, b"<guss/>")
    assert unseal_context(KEYS, seal_record(KEYS, ctx, "context:b"), "context:b") == ctx
    enr = EnrolmentRecord("keid", os.urandom(32), "C123", ("maf1.test", "maf2.test"), "psk", T1, T2)
    assert unseal_enrolment(KEYS, seal_record(KEYS, enr, "enrolment:k"), "enrolment:k") == enr
    empty = EnrolmentRecord("keid", b"", "", (), "certificate", T1, T2)
    assert unseal_enrolment(KEYS, seal_record(KEYS, empty, "enrolment:k"), "enrolment:k") == empty


def _json_sealed(record: object, key: str) -> bytes:
    """A record as the releases before the binary format sealed it."""

    def enc(v: object) -> object:
        if isinstance(v, bytes):
            return {"h": v.hex()}
        if isinstance(v, dt.datetime):
            return {"t": v.timestamp()}
        if isinstance(v, tuple):
            return {"l": list(v)}
        return v

    data = {name: enc(getattr(record, name)) for name in record.__slots__}  # type: ignore[attr-defined]
    return KEYS.seal(json.dumps(data).encode(), key.encode())


def test_records_sealed_by_earlier_releases_still_open() -> None:
    ctx = BootstrapContext("b@bsf", "u@ims", os.urandom(16), os.urandom(32), T1, T2, True, None)
    assert unseal_context(KEYS, _json_sealed(ctx, "context:b"), "context:b") == ctx
    enr = EnrolmentRecord("keid", os.urandom(32), "C1", ("maf.test",), "psk", T1, T2)
    assert unseal_enrolment(KEYS, _json_sealed(enr, "enrolment:k"), "enrolment:k") == enr


def test_a_record_of_an_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown format"):
        unseal_context(KEYS, KEYS.seal(b"\x07garbage", b"context:b"), "context:b")


def test_no_key_material_is_in_the_clear() -> None:
    ks = os.urandom(32)
    blob = seal_record(KEYS, BootstrapContext("b@bsf", "u@ims", os.urandom(16), ks, T1, T2, False, None), "context:b")
    assert ks not in blob and ks.hex().encode() not in blob
