"""The operator-facing admin listener of each service: Prometheus ``/metrics``, ``/healthz``, ``/readyz``.

It is a separate listener from Ub/Ua so that UE-facing ports never expose metrics.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Gauge,
    Info,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)

from gba import pki

log = logging.getLogger("gbagw.admin")

ReadinessCheck = Callable[[], Awaitable[str | None]]  # None when ready, else the reason


def process_registry(version: str) -> CollectorRegistry:
    """What every exporter shows once per process: the build, the Python, and the process's CPU, memory,
    file descriptors and start time (``process_*``, read from /proc; how many bootstraps a core or a
    GiB serves is read off these beside the service counters)."""
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    Info("gbagw_build", "gbagw version of this process", registry=registry).info({"version": version})
    return registry


def certificate_registry(files: Mapping[str, Path]) -> CollectorRegistry:
    """When each certificate chain a service presents expires, by its configuration key: read from the
    file the service loaded at start, which is also what it serves until restarted (a renewed file
    takes a restart). The alert GbagwTlsCertificateExpiresSoon watches these."""
    registry = CollectorRegistry()
    expiry = Gauge(
        "gbagw_tls_certificate_expiry_timestamp_seconds",
        "Earliest notAfter (Unix time) in the certificate chain file each configuration key names",
        ["key"],
        registry=registry,
    )
    for key, path in files.items():
        expiry.labels(key).set(pki.earliest_expiry(path.read_bytes()).timestamp())
    return registry


class AdminServer:
    def __init__(
        self, registries: Sequence[CollectorRegistry], checks: Sequence[ReadinessCheck], check_timeout: float = 2.0
    ) -> None:
        self.registries = list(registries)
        self.checks = list(checks)
        self.check_timeout = check_timeout
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        self._runner = web.AppRunner(app, access_log=None)
        self.port: int | None = None

    async def _metrics(self, _request: web.Request) -> web.Response:
        body = b"".join(generate_latest(r) for r in self.registries)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _healthz(self, _request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def _readyz(self, _request: web.Request) -> web.Response:
        problems = []
        for check in self.checks:
            try:
                problem = await asyncio.wait_for(check(), self.check_timeout)
            except Exception as exc:  # a failing check means "not ready", never a 500
                problem = f"{type(exc).__name__}: {exc}"
            if problem:
                problems.append(problem)
        if problems:
            return web.json_response({"status": "not ready", "problems": problems}, status=503)
        return web.json_response({"status": "ready"})

    async def start(self, host: str, port: int) -> int:
        await self._runner.setup()
        await web.TCPSite(self._runner, host, port).start()
        self.port = int(self._runner.addresses[0][1])
        log.info("admin: /metrics /healthz /readyz on http://%s:%d/", host, self.port)
        return self.port

    async def stop(self) -> None:
        await self._runner.cleanup()
