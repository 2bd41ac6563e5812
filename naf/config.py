"""Configuration of a NAF (one object, built by the CLI from TOML + environment)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gba.onem2m import UA_ID_DEFAULT


@dataclass(frozen=True, slots=True)
class BsfRoute:
    """Where the Zn requests for the B-TIDs of one realm go (TS 29.109 5.2, 5.3; TS 33.220 Annex K).

    ``realm`` matches a B-TID whose domain part is the realm or one of its subdomains; it is also the
    Diameter Destination-Realm. ``host``/``port`` is the Diameter peer (the BSF, or a Zn-Proxy for a
    visited NAF); the URLs are the Nbsp_GBA apiRoot and the Zn-WS endpoint of that realm's BSF.
    """

    realm: str
    host: str
    port: int
    sbi_url: str | None = None
    soap_url: str | None = None

    def matches(self, domain: str) -> bool:
        domain, realm = domain.lower().rstrip("."), self.realm.lower()
        return domain == realm or domain.endswith("." + realm)


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
    ua_tls_cert: Path | None = None  # HTTPS on Ua (TS 33.222 5.3): the NAF's certificate chain and key
    ua_tls_key: Path | None = None
    bsf_realms: tuple[BsfRoute, ...] = ()  # other realms' BSFs (or Zn-Proxies), by B-TID domain
    onem2m_ua_id: bytes = UA_ID_DEFAULT  # Ua id of NAF_Id for oneM2M Km over GBA (gba.onem2m)

    @property
    def home_route(self) -> BsfRoute:
        """The home BSF: bsf_host/bsf_port for Diameter, sbi_url/soap_url for the HTTP flavours."""
        return BsfRoute(self.bsf_realm, self.bsf_host, self.bsf_port, self.sbi_url, self.soap_url)

    def route_for(self, btid: str) -> BsfRoute | None:
        """The route of a B-TID: the configured realm that is, or is the closest parent of, its
        domain part (TS 29.109 5.2: Destination-Realm from the B-TID); None for an unknown realm."""
        _, sep, domain = btid.rpartition("@")
        if not sep or not domain:
            return None
        found = [r for r in (self.home_route, *self.bsf_realms) if r.matches(domain)]
        return max(found, key=lambda r: len(r.realm), default=None)

    @property
    def certificates(self) -> dict[str, Path]:
        """The certificate chains this NAF presents on Zn and Ua, by configuration key (expiry metric)."""
        found = {"naf.tls_cert": self.tls_cert, "naf.ua_tls_cert": self.ua_tls_cert}
        return {k: v for k, v in found.items() if v is not None}

    @property
    def zn_target(self) -> str:
        """Where Zn requests go, for log lines and banners."""
        if self.zn_via == "sbi":
            return f"Nbsp_GBA {self.sbi_url}"
        if self.zn_via == "soap":
            return f"SOAP {self.soap_url}"
        return f"Diameter{'/TLS' if self.bsf_tls else ''} {self.bsf_host}:{self.bsf_port}"
