"""Who may ask for a key on a Diameter Zn connection, as far as its TLS certificate tells.

- A NAF on TLS (RFC 6733 13.1 mutual authentication) is the Origin-Host it claimed in its CER only if its
  certificate names that host: otherwise any holder of a certificate from the trusted CA could speak as
  another NAF, and the NAF policy (keyed by Origin-Host) would believe it.
- A Zn-Proxy relays the requests of NAFs of a visited network over Zn' (TS 33.220 4.4.6, Annex K): Zn'
  is TLS with a client certificate the home operator issued to the proxy (Annex E, K.1), and the BSF
  shall verify that the NAF_Id's FQDN is among the certificate's names (the subjectAltName dNSNames).
  A proxy on plain TCP has no certificate: its relayed requests are refused as unauthorized.

Each refusal is a reason to log; the caller answers DIAMETER_ERROR_NOT_AUTHORIZED (5402, TS 29.109 6.2).
"""

from __future__ import annotations

from gbaio.diameter_node import PeerInfo
from gbaio.tls import san_dns_names


def tls_refusal(peer: PeerInfo, naf_host: str, naf_fqdn: str, proxies: frozenset[str]) -> str | None:
    """Why the request of ``naf_host`` for ``naf_fqdn`` that came over ``peer``'s connection is refused
    by the connection's certificate, or None. Plain-TCP NAFs are left to the NAF policy (NDS/IP)."""
    relayed = naf_host.lower() != peer.origin_host.lower()
    if relayed and peer.origin_host.lower() in proxies:
        if peer.certificate is None:
            return f"Zn-Proxy {peer.origin_host} relays for {naf_host} without TLS (Zn' is TLS, TS 33.220 Annex E)"
        if naf_fqdn.lower() not in san_dns_names(peer.certificate):
            return f"NAF_Id FQDN {naf_fqdn} is not in the certificate of Zn-Proxy {peer.origin_host} (TS 33.220 4.4.6)"
        return None
    if not relayed and peer.certificate is not None and peer.origin_host.lower() not in san_dns_names(peer.certificate):
        return f"Origin-Host {peer.origin_host} is not in the certificate of its TLS connection"
    return None
