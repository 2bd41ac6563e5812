"""NAF kit metrics (one registry per service instance, passed in)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# The BSF's latency buckets, so that its Zn answer times and these compare bucket for bucket.
_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class NafMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.ua = Counter("gbagw_naf_ua_responses", "Ua answers by HTTP status", ["status"], registry=self.registry)
        self.zn = Counter("gbagw_naf_zn_fetches", "Zn key fetches by result", ["result"], registry=self.registry)
        self.zn_latency = Histogram(
            "gbagw_naf_zn_fetch_seconds",
            "Zn key fetch latency as the NAF sees it (BSF, network and retries)",
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        # Keys held for their Key-ExpiryTime: Ua requests they serve need no Zn lookup.
        self.cached_keys = Gauge("gbagw_naf_cached_keys", "NAF keys in the key cache", registry=self.registry)
