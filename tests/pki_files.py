"""Lab certificates written to files, for tests of what loads them."""

from __future__ import annotations

from pathlib import Path

from gba import pki


def write_pair(folder: Path, name: str, ca: pki.Issued) -> tuple[Path, Path]:
    """``name``'s certificate (issued by ``ca``) and private key as ``folder/name.pem`` and ``.key``."""
    leaf = pki.issue(ca, name)
    cert, key = folder / f"{name}.pem", folder / f"{name}.key"
    cert.write_bytes(leaf.cert_pem)
    key.write_bytes(leaf.key_pem)
    return cert, key
