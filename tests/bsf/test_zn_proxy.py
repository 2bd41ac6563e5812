"""The certificate checks of a Diameter Zn connection (bsf.zn_proxy): Zn-Proxies may relay only for the
NAF FQDNs their certificate lists (TS 33.220 4.4.6, Annex K), only over TLS; a NAF on TLS is the
Origin-Host its certificate names."""

from __future__ import annotations

import datetime as dt

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from bsf.zn_proxy import tls_refusal
from gba import pki
from gbaio.diameter_node import PeerInfo

CA = pki.make_ca()
PROXIES = frozenset({"proxy.visited.test"})


def certificate(common_name: str, *dns_names: str) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(CA.cert.subject)
        .public_key(ec.generate_private_key(ec.SECP256R1()).public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
    )
    if dns_names:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in dns_names]), False)
    return builder.sign(CA.key, hashes.SHA256())


def peer(origin_host: str, cert: x509.Certificate | None) -> PeerInfo:
    return PeerInfo(origin_host, "visited.test", "127.0.0.1:1", frozenset(), cert)


def test_a_proxy_relays_for_the_naf_fqdns_of_its_certificate_only() -> None:
    proxy = peer("proxy.visited.test", certificate("proxy.visited.test", "proxy.visited.test", "NAF.visited.test"))
    assert tls_refusal(proxy, "naf.visited.test", "naf.visited.test", PROXIES) is None
    refusal = tls_refusal(proxy, "naf.visited.test", "other.visited.test", PROXIES)
    assert refusal is not None and "other.visited.test is not in the certificate" in refusal


def test_a_proxy_certificate_counts_by_its_subject_alt_name_dns_names_not_its_common_name() -> None:
    proxy = peer("proxy.visited.test", certificate("naf.visited.test"))
    assert tls_refusal(proxy, "naf.visited.test", "naf.visited.test", PROXIES) is not None


def test_a_proxy_on_plain_tcp_relays_nothing() -> None:
    refusal = tls_refusal(peer("proxy.visited.test", None), "naf.visited.test", "naf.visited.test", PROXIES)
    assert refusal is not None and "without TLS" in refusal


def test_a_naf_on_tls_is_the_origin_host_its_certificate_names() -> None:
    naf = certificate("naf.gba.test", "naf.gba.test")
    assert tls_refusal(peer("naf.gba.test", naf), "naf.gba.test", "naf.gba.test", PROXIES) is None
    refusal = tls_refusal(peer("other.gba.test", naf), "other.gba.test", "other.gba.test", PROXIES)
    assert refusal is not None and "Origin-Host other.gba.test" in refusal


def test_plain_tcp_nafs_and_relays_by_non_proxies_are_left_to_the_rest_of_the_checks() -> None:
    assert tls_refusal(peer("naf.gba.test", None), "naf.gba.test", "naf.gba.test", PROXIES) is None
    # A relay by a peer that is no configured proxy is refused further on (the Origin-Host check).
    assert tls_refusal(peer("naf.gba.test", None), "naf2.gba.test", "naf2.gba.test", PROXIES) is None
