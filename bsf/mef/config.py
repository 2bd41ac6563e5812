"""Configuration of the MEF listeners (one object, built by the CLI from TOML + environment)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True, slots=True)
class EnroleeEntry:
    """An Enrolee the MEF may enrol: its assigned CSE-ID/AE-ID and authorized Enrolment Targets."""

    enrolee_id: str
    targets: tuple[str, ...]
    kpm_id: str | None = None  # pre-provisioned symmetric key framework
    kpm: bytes | None = field(default=None, repr=False)
    cert_name: str | None = None  # certificate-based framework: expected certificate name

    def __repr__(self) -> str:
        return f"EnroleeEntry(enrolee_id={self.enrolee_id!r}, kpm_id={self.kpm_id!r}, cert_name={self.cert_name!r})"


@dataclass(frozen=True, slots=True)
class MefConfig:
    fqdn: str = "mef.gba.test"
    host: str = "127.0.0.1"
    psk_port: int = 8443
    cert_port: int = 8444
    maf_port: int = 8445
    admin_port: int = 9183  # /metrics /healthz /readyz
    ke_lifetime: int = 86400
    cert_file: Path = Path("var/pki/mef.pem")
    key_file: Path = Path("var/pki/mef.key")
    ca_file: Path = Path("var/pki/ca.pem")
    # TS-0003 10.2.2: PSK frameworks at least TLS_PSK_WITH_AES_128_CBC_SHA256, certificate frameworks at
    # least TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256; the GCM variants are offered too.
    psk_suites: str = "PSK-AES128-CBC-SHA256:PSK-AES128-GCM-SHA256"
    cert_suites: str = "ECDHE-ECDSA-AES128-CBC-SHA256:ECDHE-ECDSA-AES128-GCM-SHA256"
    enrolees: tuple[EnroleeEntry, ...] = ()
    # Per listener; each connection holds one file descriptor, so keep 3 x max_connections under the
    # process's descriptor limit (LimitNOFILE).
    max_connections: int = 256
    handshake_timeout: float = 10.0  # the whole TLS handshake, wall clock
    request_timeout: float = 10.0  # the whole HTTP request and answer after the handshake, wall clock

    @property
    def certificates(self) -> dict[str, Path]:
        """The certificate chain the MEF presents, by configuration key (for its expiry metric)."""
        return {"mef.cert_file": self.cert_file}
