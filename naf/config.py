"""Configuration of a NAF (one object, built by the CLI from TOML + environment)."""

from __future__ import annotations

from dataclasses import dataclass


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
