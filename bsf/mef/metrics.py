"""MEF metrics (one registry per service instance, passed in). The listeners run in threads: the
prometheus_client counters are thread-safe."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter


class MefMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.enrolments = Counter(
            "gbagw_mef_enrolments",
            "Enrolee answers by framework (psk, certificate) and outcome",
            ["framework", "outcome"],
            registry=self.registry,
        )
        self.km = Counter("gbagw_mef_km_requests", "MAF Km requests by outcome", ["outcome"], registry=self.registry)
        self.tls_refused = Counter(
            "gbagw_mef_tls_refused",
            "TLS handshakes refused by listener (psk, cert, maf): unknown KpmID, untrusted or missing certificate",
            ["listener"],
            registry=self.registry,
        )
