"""Demo NAF service: Zn client + key cache + Ua digest middleware behind an aiohttp listener."""

from __future__ import annotations

import logging

from aiohttp import web

from naf.config import NafConfig
from naf.demo import create_demo_naf
from naf.key_cache import KeyCache
from naf.ua_digest import UaDigestAuth
from naf.zn_client import ZnClient

log = logging.getLogger("gbagw.naf")


class NafService:
    def __init__(self, config: NafConfig, zn: ZnClient) -> None:
        self.config = config
        self.zn = zn
        self.keys = KeyCache(zn.fetch_key)
        self.auth = UaDigestAuth(config, self.keys)
        self._runner = web.AppRunner(create_demo_naf(self.auth), access_log=None)
        self.port: int | None = None

    async def start(self) -> int:
        await self._runner.setup()
        await web.TCPSite(self._runner, self.config.host, self.config.port).start()
        self.port = int(self._runner.addresses[0][1])
        log.info(
            "demo NAF %s on http://%s:%d/ (Zn toward %s:%d)",
            self.config.fqdn,
            self.config.host,
            self.port,
            self.config.bsf_host,
            self.config.bsf_port,
        )
        return self.port

    async def stop(self) -> None:
        await self._runner.cleanup()
        await self.zn.close()


def create_naf(config: NafConfig, zn: ZnClient | None = None) -> NafService:
    return NafService(config, zn or ZnClient(config))
