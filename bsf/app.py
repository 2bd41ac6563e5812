"""BSF service: Ub HTTP server + Zh client + context store, with start/stop for one process."""

from __future__ import annotations

import logging
from pathlib import Path

from aiohttp import web

from bsf.config import BsfConfig
from bsf.policy import NafPolicy
from bsf.store import ContextStore
from bsf.store.redis import RedisStore
from bsf.store.sqlite import SqliteStore
from bsf.ub import create_ub_app
from bsf.zh_client import ZhClient
from bsf.zn_diameter import ZnHandler
from gba import diameter as d
from gbaio.diameter_node import DiameterServer, NodeIdentity

log = logging.getLogger("gbagw.bsf")


def open_store(url: str, kek: bytes) -> ContextStore:
    if url.startswith("sqlite:///"):
        return SqliteStore(Path(url[len("sqlite:///") :]), kek)
    if url.startswith(("redis://", "rediss://", "unix://")):
        return RedisStore(url, kek)
    raise ValueError(f"unsupported store URL {url!r} (sqlite:///PATH or redis://HOST:PORT/DB)")


class BsfService:
    def __init__(self, config: BsfConfig, store: ContextStore, zh: ZhClient) -> None:
        self.config = config
        self.store = store
        self.zh = zh
        self._runner = web.AppRunner(create_ub_app(config, store, zh), access_log=None)
        self.zn = DiameterServer(
            NodeIdentity(config.fqdn, config.realm, (d.APP_ZN,), host_ip=config.zn_host),
            ZnHandler(config, store, NafPolicy(config.nafs)),
            allowed_peers=config.zn_peers,
        )
        self.ub_port: int | None = None
        self.zn_port: int | None = None

    async def start(self) -> int:
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.config.ub_host, self.config.ub_port)
        await site.start()
        self.ub_port = int(self._runner.addresses[0][1])
        self.zn_port = await self.zn.start(self.config.zn_host, self.config.zn_port)
        log.info(
            "BSF %s: Ub on http://%s:%d/, Zn on %s:%d",
            self.config.fqdn,
            self.config.ub_host,
            self.ub_port,
            self.config.zn_host,
            self.zn_port,
        )
        return self.ub_port

    async def stop(self) -> None:
        await self._runner.cleanup()
        await self.zn.close()
        await self.zh.close()
        await self.store.close()


def create_bsf(config: BsfConfig, store: ContextStore, zh: ZhClient | None = None) -> BsfService:
    return BsfService(config, store, zh or ZhClient(config))
