"""MEF metrics (one registry per service instance, passed in)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


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
        # Listener health under hostile clients (docs/runbook.md, "MEF listener limits").
        self.connections = Gauge(
            "gbagw_mef_connections", "Open TLS connections by listener", ["listener"], registry=self.registry
        )
        self.connections_refused = Counter(
            "gbagw_mef_connections_refused",
            "Connections closed at accept because the listener was at mef.max_connections",
            ["listener"],
            registry=self.registry,
        )
        self.deadline_closed = Counter(
            "gbagw_mef_deadline_closed",
            "Connections closed at mef.handshake_timeout or mef.request_timeout, by listener and phase",
            ["listener", "phase"],
            registry=self.registry,
        )
        self.accept_errors = Counter(
            "gbagw_mef_accept_errors",
            "accept() failures for lack of resources (EMFILE, ENFILE, ...), by listener and errno name",
            ["listener", "errno"],
            registry=self.registry,
        )
        self.listener_up = Gauge(
            "gbagw_mef_listener_up",
            "1 while the listener accepts connections, 0 while it is starved or down",
            ["listener"],
            registry=self.registry,
        )
        self.listener_restarts = Counter(
            "gbagw_mef_listener_restarts",
            "Times a listener's accept loop failed and the listener bound its port again",
            ["listener"],
            registry=self.registry,
        )
