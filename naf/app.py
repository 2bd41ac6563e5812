"""Demo NAF service: Zn client + key cache + Ua digest middleware behind an aiohttp listener."""

from __future__ import annotations

import asyncio
import logging
import ssl

from aiohttp import web

from gba.kdf import NafId
from gbaio.accept_errors import throttle_accept_errors
from gbaio.admin import ReadinessCheck
from gbaio.diameter_node import DiameterError
from naf.config import NafConfig
from naf.demo import create_demo_naf
from naf.key_cache import KeyCache
from naf.metrics import NafMetrics
from naf.ua_digest import UaDigestAuth
from naf.zn_client import NafKey, ZnClient, ZnKeySource, ZnNoRoute, ZnRefused, ZnUnavailable
from naf.zn_http_clients import create_zn_client

log = logging.getLogger("gbagw.naf")

# aiohttp closes a Ua connection that has sent no request for this long, from its start or since its
# last answer; its own default is an hour, which let a flood of idle connections hold their descriptors
# (issue 27 class 2). Pipelined requests are bounded by aiohttp itself (it pauses reading).
UA_IDLE_TIMEOUT = 75.0


class NafService:
    def __init__(self, config: NafConfig, zn: ZnKeySource, metrics: NafMetrics) -> None:
        self.config = config
        self.zn = zn
        self.metrics = metrics
        self.keys = KeyCache(self._fetch)
        metrics.cached_keys.set_function(lambda: len(self.keys))
        self.tls = _ua_tls(config)
        self.auth = UaDigestAuth(config, self.keys, metrics, self.tls)
        self._runner = web.AppRunner(create_demo_naf(self.auth), access_log=None, keepalive_timeout=UA_IDLE_TIMEOUT)
        self.port: int | None = None

    async def _fetch(self, btid: str, naf_id: NafId) -> NafKey:
        try:
            with self.metrics.zn_latency.time():
                key = await self.zn.fetch_key(btid, naf_id)
        except ZnNoRoute:
            self.metrics.zn.labels("no_route").inc()
            raise
        except ZnRefused as exc:
            self.metrics.zn.labels(str(exc.code)).inc()
            raise
        except ZnUnavailable:
            self.metrics.zn.labels("unavailable").inc()
            raise
        self.metrics.zn.labels("2001").inc()
        return key

    def ready_checks(self) -> dict[str, ReadinessCheck]:
        """What /readyz checks: the Ua listener and the Zn peer."""
        return {"naf.ua": self._ua_ready, "naf.zn": self._zn_ready}

    async def readiness(self) -> str | None:
        return await self._ua_ready() or await self._zn_ready()

    async def _ua_ready(self) -> str | None:
        if self.port is None:
            return "Ua listener not started"
        return None if self._runner.addresses else "Ua listener is not accepting connections"

    async def _zn_ready(self) -> str | None:
        if not isinstance(self.zn, ZnClient):
            return None  # HTTP Zn flavours have no standing connection to check
        try:
            await self.zn.client.ensure_connected()
        except DiameterError as exc:
            return f"BSF Zn peer down: {exc}"
        return None

    async def start(self) -> int:
        throttle_accept_errors(asyncio.get_running_loop())
        await self._runner.setup()
        await web.TCPSite(self._runner, self.config.host, self.config.port, ssl_context=self.tls).start()
        self.port = int(self._runner.addresses[0][1])
        log.info(
            "demo NAF %s on %s://%s:%d/ (Zn via %s)",
            self.config.fqdn,
            self.scheme,
            self.config.host,
            self.port,
            self.config.zn_target,
        )
        return self.port

    @property
    def scheme(self) -> str:
        return "http" if self.tls is None else "https"

    async def stop(self) -> None:
        await self._runner.cleanup()
        await self.zn.close()


def _ua_tls(config: NafConfig) -> ssl.SSLContext | None:
    """HTTPS on Ua, server-authenticated (TS 33.222 5.3): the UE authenticates with Ua digest inside."""
    if config.ua_tls_cert is None or config.ua_tls_key is None:
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(config.ua_tls_cert, config.ua_tls_key)
    return ctx


def create_naf(config: NafConfig, zn: ZnKeySource | None = None, metrics: NafMetrics | None = None) -> NafService:
    return NafService(config, zn or create_zn_client(config), metrics or NafMetrics())
