"""gba.pki: the lab PKI's certificates and the expiry a chain file is watched by."""

from __future__ import annotations

import datetime as dt

import pytest

from gba import pki


def test_the_earliest_expiry_of_a_chain_is_its_first_certificate_to_expire() -> None:
    now = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)
    ca = pki.make_ca(days=10, now=now)  # an intermediate that expires before the leaf
    leaf = pki.issue(ca, "bsf.gba.test", not_before=now, days=30)
    assert pki.earliest_expiry(leaf.cert_pem) == now + dt.timedelta(days=30)
    assert pki.earliest_expiry(leaf.cert_pem + ca.cert_pem) == now + dt.timedelta(days=10)
    assert pki.earliest_expiry(ca.cert_pem + leaf.cert_pem) == now + dt.timedelta(days=10)


def test_a_file_without_a_certificate_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        pki.earliest_expiry(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
