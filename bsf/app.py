"""BSF service: Ub HTTP server, Zn Diameter server, Zh client, context store and metrics."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path

from aiohttp import web

from bsf.config import BsfConfig
from bsf.metrics import BsfMetrics, TimedStore
from bsf.policy import NafPolicy
from bsf.store import ContextStore
from bsf.store.redis import RedisStore
from bsf.store.sqlite import SqliteStore
from bsf.ub import create_ub_app
from bsf.zh_client import ZhClient
from bsf.zn_diameter import ZnHandler
from gba import diameter as d
from gbaio.diameter_node import DiameterError, DiameterServer, NodeIdentity

log = logging.getLogger("gbagw.bsf")
GAUGE_INTERVAL = 10.0


def open_store(url: str, kek: bytes) -> ContextStore:
    if url.startswith("sqlite:///"):
        return SqliteStore(Path(url[len("sqlite:///") :]), kek)
    if url.startswith(("redis://", "rediss://", "unix://")):
        return RedisStore(url, kek)
    raise ValueError(f"unsupported store URL {url!r} (sqlite:///PATH or redis://HOST:PORT/DB)")


class BsfService:
    def __init__(self, config: BsfConfig, store: ContextStore, zh: ZhClient, metrics: BsfMetrics) -> None:
        self.config = config
        self.metrics = metrics
        self.store: ContextStore = TimedStore(store, metrics)
        self.zh = zh
        self._runner = web.AppRunner(create_ub_app(config, self.store, zh, metrics), access_log=None)
        self.zn = DiameterServer(
            NodeIdentity(config.fqdn, config.realm, (d.APP_ZN,), host_ip=config.zn_host),
            ZnHandler(config, self.store, NafPolicy(config.nafs), metrics),
            allowed_peers=config.zn_peers,
        )
        self.ub_port: int | None = None
        self.zn_port: int | None = None
        self._gauges: asyncio.Task[None] | None = None

    async def start(self) -> int:
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.config.ub_host, self.config.ub_port)
        await site.start()
        self.ub_port = int(self._runner.addresses[0][1])
        self.zn_port = await self.zn.start(self.config.zn_host, self.config.zn_port)
        self._gauges = asyncio.create_task(self._update_gauges())
        log.info(
            "BSF %s: Ub on http://%s:%d/, Zn on %s:%d",
            self.config.fqdn,
            self.config.ub_host,
            self.ub_port,
            self.config.zn_host,
            self.zn_port,
        )
        return self.ub_port

    async def _update_gauges(self) -> None:
        while True:
            count = await self.store.count_contexts()
            if count is not None:
                self.metrics.live_contexts.set(count)
            self.metrics.hss_peer_up.set(1 if self.zh.client.connected else 0)
            await asyncio.sleep(GAUGE_INTERVAL)

    async def readiness(self) -> str | None:
        """Ready only when the store answers and the HSS peer is (or can be) connected."""
        if not await self.store.ping():
            return "context store does not answer"
        try:
            await self.zh.client.ensure_connected()
        except DiameterError as exc:
            self.metrics.hss_peer_up.set(0)
            return f"HSS peer down: {exc}"
        self.metrics.hss_peer_up.set(1)
        return None

    async def stop(self) -> None:
        """In-flight Ub requests and Zn answers finish, then DPR goes to every peer, then the store closes."""
        if self._gauges is not None:
            self._gauges.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._gauges
        await self._runner.cleanup()
        await self.zn.close()
        await self.zh.close()
        await self.store.close()


def create_bsf(
    config: BsfConfig, store: ContextStore, zh: ZhClient | None = None, metrics: BsfMetrics | None = None
) -> BsfService:
    metrics = metrics or BsfMetrics()
    return BsfService(config, store, zh or ZhClient(config, latency=metrics.zh_latency), metrics)
