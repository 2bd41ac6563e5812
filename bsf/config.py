"""Configuration of the BSF (one object, built by the CLI from TOML + environment)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True, slots=True)
class NafEntry:
    """One authorized (Diameter host, NAF FQDN) pair (TS 33.220 4.5.3: a NAF may have several FQDNs)."""

    fqdn: str
    diameter_host: str
    group: str | None = None
    # GSIDs whose USS must be in the subscriber's GUSS, asked for or not (TS 33.220 4.4.6 local policy).
    required_gsids: tuple[str, ...] = ()
    # GSIDs this NAF may ask for (TS 29.109 5.2 step 2, TS 33.220 4.4.6); another one -> 5402. None = any.
    allowed_gsids: tuple[str, ...] | None = None
    send_impi: bool = True  # privacy policy: the B-TID alone may act as a pseudonym


@dataclass(frozen=True, slots=True)
class BsfConfig:
    fqdn: str = "bsf.gba.test"
    realm: str = "gba.test"  # Diameter realm
    ub_host: str = "127.0.0.1"
    ub_port: int = 8080
    zn_host: str = "127.0.0.1"
    zn_port: int = 3868
    key_lifetime: int = 3600  # Ks lifetime when the GUSS has no lifeTime (TS 29.109 5.2 step 3)
    # Upper bound on every Ks lifetime, a GUSS lifeTime included; 0 = none (the GUSS value is used as is).
    max_key_lifetime: int = 0
    # Seconds a (TMPI, IMPI) pair is kept for the UE's next bootstrap (TS 33.220 4.4.13: until it is used,
    # or sooner by local policy); longer than key_lifetime, or the UE's TMPI is unknown when Ks expires.
    tmpi_lifetime: int = 30 * 86400
    # qop values offered on Ub, in order (TS 24.109 4.2 b: "auth-int"); an answer must use one of them.
    ub_qop: tuple[str, ...] = ("auth-int",)
    store: str = "sqlite:///var/bsf.sqlite"
    # SQLite: seconds a write waits for another process's lock, then 503 / DIAMETER_TOO_BUSY (off the loop).
    store_busy_timeout: float = 10.0
    kek_file: Path = Path("var/kek")
    kek_previous_files: tuple[Path, ...] = ()  # open only: online KEK rotation
    hss_host: str = "127.0.0.1"
    hss_port: int = 3869
    hss_realm: str = "gba.test"
    challenge_lifetime: int = 60  # seconds a 401 nonce stays usable (single use)
    zh_timeout: float = 5.0
    # SIP-Number-Auth-Items in the Zh MAR: not in its ABNF (TS 29.109 4.2), only for a Cx-derived HSS that needs it.
    zh_sip_number_auth_items: bool = False
    hss_reconnect_interval: float = 30.0  # Tc (RFC 6733 12): Zh connection attempts while there is none
    ub_idle_timeout: float = 75.0  # seconds an idle keep-alive Ub connection stays open
    ub_request_timeout: float = 30.0  # seconds a Ub request may take to arrive whole (408 past it)
    # Issue 27 class 2: connections each listener holds at most (a flood of one cannot take every fd).
    ub_max_connections: int = 4096
    zn_max_connections: int = 4096  # each Zn listener: Diameter, Diameter over TLS, Nbsp_GBA, SOAP
    # Issue 27 class 1: seconds a Zn connection may stay unable to take our answers before it is dropped.
    zn_write_timeout: float = 10.0
    retry_after: int = 5  # Retry-After on 503 when the HSS is unreachable or busy
    nafs: tuple[NafEntry, ...] = field(default_factory=tuple)
    # Diameter peers allowed to connect on Zn (CER); None = any. NAF authorization is separate (5402).
    zn_peers: tuple[str, ...] | None = None
    # Diameter peers that may forward BIRs of other Origin-Hosts (Zn-Proxies); others must be the NAF itself.
    zn_proxies: tuple[str, ...] = ()
    admin_port: int = 9180  # /metrics /healthz /readyz
    gauge_interval: float = 10.0  # seconds between refreshes of the live-context gauge (a store count)
    sbi_port: int = 29309  # Zn as Nbsp_GBA (TS 29.309), HTTP/2 (h2c or TLS) with HTTP/1.1 fallback
    # The path part of the Nbsp_GBA {apiRoot} (TS 29.501 4.4.1: a deployment-specific prefix), "" or "/a/b".
    sbi_api_prefix: str = ""
    soap_port: int = 29109  # Zn over SOAP (TS 29.109 Annex D)
    # TLS for the SBI and SOAP listeners; with zn_tls_ca set, NAFs must present a certificate (their identity).
    # With all three set, Diameter Zn over TLS from connection start listens on zn_tls_port too.
    zn_tls_cert: Path | None = None
    zn_tls_key: Path | None = None
    zn_tls_ca: Path | None = None
    zn_tls_port: int = 5658  # Diameter Zn / Zn' over TLS (RFC 6733 2.1: IANA "diameters")
    ub_tls_cert: Path | None = None  # HTTPS on Ub (TS 33.220 recommends it; mandatory for 2G GBA)
    ub_tls_key: Path | None = None
    # Abuse limits (bsf.limits): vectors per minute per IMPI and per source address, live challenges per process.
    rate_per_impi: float = 30.0
    rate_burst_impi: int = 5
    rate_per_source: float = 600.0
    rate_burst_source: int = 50
    max_pending_challenges: int = 10_000
    sbi_oauth_jwks: Path | None = None  # OAuth2 bearer check on Nbsp_GBA: off when unset
    sbi_oauth_audience: str | None = None

    @property
    def certificates(self) -> dict[str, Path]:
        """The certificate chains this BSF presents, by configuration key (for their expiry metric)."""
        configured = {"bsf.ub_tls_cert": self.ub_tls_cert, "bsf.zn_tls_cert": self.zn_tls_cert}
        return {key: path for key, path in configured.items() if path is not None}

    @property
    def zn_diameter_tls(self) -> bool:
        """Diameter Zn over TLS: RFC 6733 13.1 requires mutual authentication, so the CA file is needed too."""
        return self.zn_tls_cert is not None and self.zn_tls_key is not None and self.zn_tls_ca is not None

    @property
    def http_realm(self) -> str:
        """The digest realm on Ub is the BSF FQDN (TS 24.109 clause 4.3)."""
        return self.fqdn
