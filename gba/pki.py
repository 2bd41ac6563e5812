"""Test PKI for labs: a CA and P-256 end-entity certificates as oneM2M TS-0003 10.2.2 profiles them
(ECDSA P-256, SHA-256, digitalSignature, SAN dNSName = FQDN). Returns PEM bytes; the caller writes files.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from gba.btid import is_fqdn


@dataclass(frozen=True, slots=True)
class Issued:
    cert_pem: bytes
    key_pem: bytes
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def make_ca(name: str = "gbagw test CA", days: int = 3650, now: dt.datetime | None = None) -> Issued:
    now = now or dt.datetime.now(dt.UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .sign(key, hashes.SHA256())
    )
    return Issued(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key), cert, key)


def issue(
    ca: Issued,
    name: str,
    *,
    server: bool = True,
    client: bool = True,
    not_before: dt.datetime | None = None,
    days: int = 825,
) -> Issued:
    """An end-entity certificate for ``name`` (CN, and SAN dNSName when it is a host name)."""
    start = not_before or dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    key = ec.generate_private_key(ec.SECP256R1())
    usages = ([ExtendedKeyUsageOID.SERVER_AUTH] if server else []) + (
        [ExtendedKeyUsageOID.CLIENT_AUTH] if client else []
    )
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    )
    if is_fqdn(name):
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
    cert = builder.sign(ca.key, hashes.SHA256())
    return Issued(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key), cert, key)


def earliest_expiry(chain_pem: bytes) -> dt.datetime:
    """When a PEM chain stops validating: the earliest notAfter of its certificates (an expired
    intermediate breaks the chain as an expired leaf does). ValueError if it holds no certificate."""
    certs = x509.load_pem_x509_certificates(chain_pem)  # raises ValueError on none
    return min(c.not_valid_after_utc for c in certs)


def load(cert_pem: bytes, key_pem: bytes) -> Issued:
    """An Issued from PEM files (e.g. to issue more certificates from an existing lab CA)."""
    key = serialization.load_pem_private_key(key_pem, None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError("the lab PKI uses EC keys")
    return Issued(cert_pem, key_pem, x509.load_pem_x509_certificate(cert_pem), key)
