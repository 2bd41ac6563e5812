"""BSF service: Ub HTTP server, Zn Diameter server, Zh client, context store and metrics."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from collections.abc import Callable
from pathlib import Path

from aiohttp import web
from hypercorn.asyncio import serve as hypercorn_serve
from hypercorn.config import Config as HypercornConfig

from bsf.config import BsfConfig
from bsf.metrics import BsfMetrics, TimedStore
from bsf.policy import NafPolicy
from bsf.sbi_auth import BearerAuth
from bsf.store import ContextStore, StoreUnavailable, store_problem
from bsf.store.redis import RedisStore
from bsf.store.sqlite import SqliteStore
from bsf.ub import create_ub_server
from bsf.zh_client import ZhClient
from bsf.zn import ZnService
from bsf.zn_diameter import ZnHandler
from bsf.zn_sbi import NbspGbaApp
from bsf.zn_soap import create_soap_app, server_ssl_context
from gba import diameter as d
from gba.keywrap import Keyring
from gbaio.accept_errors import throttle_accept_errors
from gbaio.admin import ReadinessCheck
from gbaio.diameter_node import DiameterError, DiameterServer, NodeIdentity
from gbaio.hypercorn_config import apply_limits
from gbaio.listener_metrics import register_listeners
from gbaio.sqlite import BUSY_TIMEOUT

log = logging.getLogger("gbagw.bsf")

# aiohttp (Zn SOAP) closes a connection that has sent no request for this long, from its start or since
# its last answer; its own default is an hour, which let a flood of idle connections hold their
# descriptors (issue 27 class 2). Pipelined requests are bounded by aiohttp itself (it pauses reading).
SOAP_IDLE_TIMEOUT = 75.0


def open_store(url: str, keys: Keyring, busy_timeout: float = BUSY_TIMEOUT) -> ContextStore:
    """``busy_timeout``: SQLite only, how long a write waits for another process's lock."""
    if url.startswith("sqlite:///"):
        return SqliteStore(Path(url[len("sqlite:///") :]), keys, busy_timeout)
    if url.startswith(("redis://", "rediss://", "unix://")):
        return RedisStore(url, keys)
    raise ValueError(f"unsupported store URL {url!r} (sqlite:///PATH or redis://HOST:PORT/DB)")


class BsfService:
    def __init__(self, config: BsfConfig, store: ContextStore, zh: ZhClient, metrics: BsfMetrics) -> None:
        self.config = config
        self.metrics = metrics
        self.store: ContextStore = TimedStore(store, metrics)
        self.zh = zh
        self.zn_service = ZnService(self.store, NafPolicy(config.nafs))
        self._ub = create_ub_server(config, self.store, zh, metrics)
        zn_identity = NodeIdentity(config.fqdn, config.realm, (d.APP_ZN,), host_ip=config.zn_host)
        zn_handler = ZnHandler(config, self.zn_service, metrics)
        self.zn = self._zn_server(zn_identity, zn_handler, "zn")
        # RFC 6733 2.1: TLS/TCP from connection start on its own port, beside plain TCP (NAFs behind NDS/IP).
        self.zn_tls = self._zn_server(zn_identity, zn_handler, "zn_tls")
        register_listeners(
            metrics.registry,
            "bsf",
            {
                "ub": lambda: (len(self._ub.connections), self._ub.refused_connections),
                "zn": lambda: (self.zn.open_connections, self.zn.refused_connections),
                "zn_tls": lambda: (self.zn_tls.open_connections, self.zn_tls.refused_connections),
            },
        )
        self.ub_port: int | None = None
        self.zn_port: int | None = None
        self.zn_tls_port: int | None = None
        self.sbi_port: int | None = None
        self.soap_port: int | None = None
        self._gauges: asyncio.Task[None] | None = None
        self._zh_keeper: asyncio.Task[None] | None = None
        auth = BearerAuth.from_file(config.sbi_oauth_jwks, config.sbi_oauth_audience) if config.sbi_oauth_jwks else None
        self._sbi_app = NbspGbaApp(
            config, self.zn_service, auth, lambda status: metrics.zn.labels("sbi", str(status)).inc()
        )
        self._sbi_stop = asyncio.Event()
        self._sbi_task: asyncio.Task[None] | None = None
        self._soap_runner = web.AppRunner(
            create_soap_app(config, self.zn_service, lambda code: metrics.zn.labels("soap", str(code)).inc()),
            access_log=None,
            keepalive_timeout=SOAP_IDLE_TIMEOUT,
        )

    def _zn_server(self, identity: NodeIdentity, handler: ZnHandler, name: str) -> DiameterServer:
        c = self.config
        return DiameterServer(
            identity,
            handler,
            allowed_peers=c.zn_peers,
            max_connections=c.zn_max_connections,
            write_timeout=c.zn_write_timeout,
            name=name,
        )

    async def start(self) -> int:
        throttle_accept_errors(asyncio.get_running_loop())
        ub_tls = None
        if self.config.ub_tls_cert is not None and self.config.ub_tls_key is not None:
            ub_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ub_tls.minimum_version = ssl.TLSVersion.TLSv1_2
            ub_tls.load_cert_chain(str(self.config.ub_tls_cert), str(self.config.ub_tls_key))
        self.ub_port = await self._ub.start(self.config.ub_host, self.config.ub_port, ub_tls)
        self.zn_port = await self.zn.start(self.config.zn_host, self.config.zn_port)
        tls = self._zn_ssl()
        if self.config.zn_diameter_tls:
            self.zn_tls_port = await self.zn_tls.start(self.config.zn_host, self.config.zn_tls_port, tls=tls)
        elif tls is not None:
            log.warning("Zn Diameter over TLS is off: it needs bsf.zn_tls_ca (RFC 6733 13.1 mutual authentication)")
        await self._start_sbi()
        await self._soap_runner.setup()
        await web.TCPSite(self._soap_runner, self.config.zn_host, self.config.soap_port, ssl_context=tls).start()
        self.soap_port = int(self._soap_runner.addresses[0][1])
        self._zh_keeper = asyncio.create_task(self.zh.client.keep_connected(self.config.hss_reconnect_interval))
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

    def _zn_ssl(self) -> ssl.SSLContext | None:
        c = self.config
        if c.zn_tls_cert is None or c.zn_tls_key is None:
            return None
        return server_ssl_context(str(c.zn_tls_cert), str(c.zn_tls_key), str(c.zn_tls_ca) if c.zn_tls_ca else None)

    async def _start_sbi(self) -> None:
        """hypercorn on a socket bound here, so that port 0 works and the bound port is known."""
        c = self.config
        sock = socket.create_server((c.zn_host, c.sbi_port))
        self.sbi_port = int(sock.getsockname()[1])
        hc = HypercornConfig()
        hc.bind = [f"fd://{sock.detach()}"]  # hypercorn owns (and closes) the descriptor from here on
        hc.accesslog = None
        hc.errorlog = logging.getLogger("gbagw.bsf.sbi.server")
        # hypercorn's only INFO event is its "Running on ... (CTRL + C to quit)" banner, wrong in a unit's
        # journal; the BSF announces the listener itself. Its warnings and errors still come through.
        hc.errorlog.setLevel(logging.WARNING)
        hc.graceful_timeout = 5.0
        apply_limits(hc, read_timeout=c.ub_request_timeout)
        if c.zn_tls_cert is not None and c.zn_tls_key is not None:
            hc.certfile, hc.keyfile = str(c.zn_tls_cert), str(c.zn_tls_key)
            hc.alpn_protocols = ["h2", "http/1.1"]
            if c.zn_tls_ca is not None:
                hc.ca_certs = str(c.zn_tls_ca)
                hc.verify_mode = ssl.CERT_REQUIRED
        self._sbi_task = asyncio.create_task(
            hypercorn_serve(self._sbi_app, hc, shutdown_trigger=self._sbi_stop.wait)  # type: ignore[arg-type]
        )

    async def _update_gauges(self) -> None:
        while True:
            # On an outage /readyz and the request paths report it; the gauge keeps its value.
            with contextlib.suppress(StoreUnavailable):
                self.metrics.live_contexts.set(await self.store.count_contexts())
            self.metrics.hss_peer_up.set(1 if self.zh.client.connected else 0)
            await asyncio.sleep(self.config.gauge_interval)

    def ready_checks(self) -> dict[str, ReadinessCheck]:
        """What /readyz checks: the store, the HSS peer and every listener (issue 27 class 2: a listener
        that died while the process lives must turn the instance not ready)."""
        checks: dict[str, ReadinessCheck] = {"bsf.store": self._store_ready, "bsf.hss": self._hss_ready}
        listeners: dict[str, Callable[[], bool]] = {
            "bsf.ub": lambda: self._ub.serving,
            "bsf.zn": lambda: self.zn.serving,
            "bsf.sbi": lambda: self._sbi_task is not None and not self._sbi_task.done(),
            "bsf.soap": lambda: bool(self._soap_runner.addresses),
        }
        if self.config.zn_diameter_tls:
            listeners["bsf.zn_tls"] = lambda: self.zn_tls.serving
        for name, serving in listeners.items():
            checks[name] = _listening(name, serving)
        return checks

    async def readiness(self) -> str | None:
        """The first problem of :meth:`ready_checks`, None when there is none."""
        for check in self.ready_checks().values():
            if (problem := await check()) is not None:
                return problem
        return None

    async def _store_ready(self) -> str | None:
        return await store_problem(self.store)

    async def _hss_ready(self) -> str | None:
        """Ready only when the HSS peer is (or can be) connected."""
        try:
            await self.zh.client.ensure_connected()
        except DiameterError as exc:
            self.metrics.hss_peer_up.set(0)
            return f"HSS peer down: {exc}"
        self.metrics.hss_peer_up.set(1)
        return None

    async def stop(self) -> None:
        """In-flight Ub requests and Zn answers finish, then DPR goes to every peer, then the store closes."""
        for task in (self._gauges, self._zh_keeper):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await self._ub.close()
        await self._soap_runner.cleanup()
        self._sbi_stop.set()
        if self._sbi_task is not None:
            await self._sbi_task
        await self.zn.close()
        await self.zn_tls.close()
        await self.zh.close()
        await self.store.close()


def _listening(name: str, serving: Callable[[], bool]) -> ReadinessCheck:
    async def check() -> str | None:
        return None if serving() else f"{name} listener is not accepting connections"

    return check


def create_bsf(
    config: BsfConfig, store: ContextStore, zh: ZhClient | None = None, metrics: BsfMetrics | None = None
) -> BsfService:
    metrics = metrics or BsfMetrics()
    return BsfService(config, store, zh or ZhClient(config, latency=metrics.zh_latency), metrics)
