"""Connections per listener, for Prometheus: how many are open and how many a cap refused (issue 27
class 2). Read from the servers at scrape time, so the servers need no metrics code of their own."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

# listener name -> () -> (open connections, connections refused so far)
ConnectionCounts = Callable[[], tuple[int, int]]


class ListenerCollector(Collector):
    def __init__(self, service: str, listeners: Mapping[str, ConnectionCounts]) -> None:
        self._service = service
        self._listeners = dict(listeners)

    def collect(self) -> Iterator[Metric]:
        opened = GaugeMetricFamily(
            f"gbagw_{self._service}_open_connections",
            "Connections open now, by listener",
            labels=["listener"],
        )
        refused = CounterMetricFamily(
            f"gbagw_{self._service}_refused_connections",
            "Connections closed at once because the listener held its maximum, by listener",
            labels=["listener"],
        )
        for name, counts in self._listeners.items():
            now, total = counts()
            opened.add_metric([name], now)
            refused.add_metric([name], total)
        yield opened
        yield refused


def register_listeners(registry: CollectorRegistry, service: str, listeners: Mapping[str, ConnectionCounts]) -> None:
    registry.register(ListenerCollector(service, listeners))
