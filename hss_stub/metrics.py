"""HSS stub metrics (one registry per service instance, passed in)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter


class HssMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.maa = Counter(
            "gbagw_hss_maa",
            "Zh Multimedia-Auth answers by (Experimental-)Result-Code",
            ["result"],
            registry=self.registry,
        )
        self.resync = Counter("gbagw_hss_resync", "Resynchronisations by outcome", ["outcome"], registry=self.registry)
