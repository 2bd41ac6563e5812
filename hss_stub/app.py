"""HSS stub service: wires the subscriber store and the Zh handler to a Diameter server."""

from __future__ import annotations

import asyncio
import logging

from gba import diameter as d
from gbaio.accept_errors import throttle_accept_errors
from gbaio.admin import ReadinessCheck
from gbaio.diameter_node import DiameterServer, NodeIdentity
from gbaio.listener_metrics import register_listeners
from hss_stub.config import HssConfig
from hss_stub.metrics import HssMetrics
from hss_stub.store import SubscriberStore
from hss_stub.zh import ZhHandler

log = logging.getLogger("gbagw.hss")


class HssService:
    def __init__(self, config: HssConfig, store: SubscriberStore, metrics: HssMetrics) -> None:
        self.config = config
        self.store = store
        self.metrics = metrics
        identity = NodeIdentity(config.fqdn, config.realm, (d.APP_ZH,), host_ip=config.zh_host)
        self.server = DiameterServer(
            identity,
            ZhHandler(config, store, metrics),
            allowed_peers=config.allowed_peers,
            watchdog_interval=config.watchdog_interval,
            max_connections=config.max_connections,
            write_timeout=config.write_timeout,
            name="zh",
        )
        register_listeners(
            metrics.registry, "hss", {"zh": lambda: (self.server.open_connections, self.server.refused_connections)}
        )
        self.port: int | None = None

    async def start(self) -> int:
        throttle_accept_errors(asyncio.get_running_loop())
        self.port = await self.server.start(self.config.zh_host, self.config.zh_port)
        log.info("HSS stub %s listening for Zh on %s:%d", self.config.fqdn, self.config.zh_host, self.port)
        if self.config.allowed_peers is None:
            # The lab default; anyone who reaches the port may ask for vectors of any IMPI.
            log.warning(
                "hss.allowed_peers is empty: any Diameter peer may connect to Zh and fetch vectors; "
                "list the BSFs' Origin-Hosts there outside a lab"
            )
        return self.port

    async def stop(self) -> None:
        await self.server.close()

    def ready_checks(self) -> dict[str, ReadinessCheck]:
        """What /readyz checks: the Zh listener and the subscriber database."""
        return {"hss.zh": self._zh_ready, "hss.store": self._store_ready}

    async def readiness(self) -> str | None:
        """Ready when Zh listens and the subscriber database answers."""
        return await self._zh_ready() or await self._store_ready()

    async def _zh_ready(self) -> str | None:
        if self.port is None:
            return "Zh listener not started"
        return None if self.server.serving else "Zh listener is not accepting connections"

    async def _store_ready(self) -> str | None:
        problem = await self.store.ping()
        return None if problem is None else f"subscriber store does not answer ({problem})"


def create_hss(config: HssConfig, store: SubscriberStore, metrics: HssMetrics | None = None) -> HssService:
    return HssService(config, store, metrics or HssMetrics())
