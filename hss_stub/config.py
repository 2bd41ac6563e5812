"""Configuration of the HSS stub (one object, built by the CLI from TOML + environment)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class HssConfig:
    fqdn: str = "hss.gba.test"
    realm: str = "gba.test"
    zh_host: str = "127.0.0.1"
    zh_port: int = 3869
    db: Path = Path("var/hss.sqlite")
    kek_file: Path = Path("var/hss.kek")
    # Diameter Origin-Hosts allowed to connect; None accepts any peer (lab default).
    allowed_peers: tuple[str, ...] | None = None
    watchdog_interval: float = 30.0
    max_connections: int = 4096  # Zh connections held at most (issue 27 class 2)
    write_timeout: float = 10.0  # seconds a Zh connection may stay unable to take our answers (class 1)
    # AMF of subscribers provisioned without one. TS 33.102 Annex H: bit 0 (the separation bit) is for
    # EPS/5G vectors (TS 33.401, 33.501), bits 1-7 are 0; a GBA (UMTS AKA) vector has none of them set.
    default_amf: bytes = b"\x00\x00"
    admin_port: int = 9181  # /metrics /healthz /readyz
