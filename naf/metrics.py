"""NAF kit metrics (one registry per service instance, passed in)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter


class NafMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.ua = Counter("gbagw_naf_ua_responses", "Ua answers by HTTP status", ["status"], registry=self.registry)
        self.zn = Counter("gbagw_naf_zn_fetches", "Zn key fetches by result", ["result"], registry=self.registry)
