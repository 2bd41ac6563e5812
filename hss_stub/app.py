"""HSS stub service: wires the subscriber store and the Zh handler to a Diameter server."""

from __future__ import annotations

import logging

from gba import diameter as d
from gbaio.diameter_node import DiameterServer, NodeIdentity
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
        )
        self.port: int | None = None

    async def start(self) -> int:
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

    async def readiness(self) -> str | None:
        """Ready when Zh listens and the subscriber database answers."""
        if self.port is None:
            return "Zh listener not started"
        problem = await self.store.ping()
        return None if problem is None else f"subscriber store does not answer ({problem})"


def create_hss(config: HssConfig, store: SubscriberStore, metrics: HssMetrics | None = None) -> HssService:
    return HssService(config, store, metrics or HssMetrics())
