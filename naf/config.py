"""Configuration of a NAF (one object, built by the CLI from TOML + environment)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class NafConfig:
    fqdn: str = "naf.gba.test"  # NAF FQDN in NAF_Id, and the Diameter Origin-Host on Zn
    realm: str = "gba.test"
    host: str = "127.0.0.1"
    port: int = 8090
    bsf_host: str = "127.0.0.1"
    bsf_port: int = 3868
    bsf_realm: str = "gba.test"
    gba_u_aware: bool = False
    gsids: tuple[str, ...] = ()
    zn_timeout: float = 5.0
    nonce_lifetime: int = 300  # seconds a Ua digest nonce stays usable
    admin_port: int = 9182  # /metrics /healthz /readyz
    zn_via: str = "diameter"  # diameter | sbi | soap
    sbi_url: str = "http://127.0.0.1:29309"  # Nbsp_GBA apiRoot (http:// = h2c prior knowledge)
    soap_url: str = "http://127.0.0.1:29109/GBAService"
    sbi_token: str | None = None  # OAuth2 access token for Nbsp_GBA, when the BSF requires one
    tls_cert: Path | None = None  # client certificate for https:// Zn (the NAF's identity)
    tls_key: Path | None = None
    tls_ca: Path | None = None
    tls_server_name: str | None = None  # name to expect in the BSF certificate when the URL holds an address
    bsf_tls: bool = False  # Diameter Zn over TLS from connection start (RFC 6733 13), with tls_cert/key/ca

    @property
    def certificates(self) -> dict[str, Path]:
        """The certificate chain this NAF presents on Zn, by configuration key (for its expiry metric)."""
        return {} if self.tls_cert is None else {"naf.tls_cert": self.tls_cert}

    @property
    def zn_target(self) -> str:
        """Where Zn requests go, for log lines and banners."""
        if self.zn_via == "sbi":
            return f"Nbsp_GBA {self.sbi_url}"
        if self.zn_via == "soap":
            return f"SOAP {self.soap_url}"
        return f"Diameter{'/TLS' if self.bsf_tls else ''} {self.bsf_host}:{self.bsf_port}"
