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
    """``/readyz`` runs named checks, one per thing the process needs (each listener it owns, its store,
    its peers): ready only when every one is, and the answer names the ones that are not."""

    def __init__(
        self,
        registries: Sequence[CollectorRegistry],
        checks: Mapping[str, ReadinessCheck] | None = None,
        check_timeout: float = 2.0,
    ) -> None:
        self.registries = list(registries)
        self.checks: dict[str, ReadinessCheck] = {}
        for name, check in (checks or {}).items():
            self.add_ready_check(name, check)
        self.check_timeout = check_timeout
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        self._runner = web.AppRunner(app, access_log=None)
        self.port: int | None = None

    def add_ready_check(self, name: str, check: ReadinessCheck) -> None:
        """Add a check to ``/readyz``; ``name`` (e.g. ``bsf.zn``) is how the answer names it."""
        if name in self.checks:
            raise ValueError(f"readiness check {name!r} is there already")
        self.checks[name] = check

    async def _run(self, check: ReadinessCheck) -> str | None:
        try:
            return await asyncio.wait_for(check(), self.check_timeout)
        except Exception as exc:  # a failing check means "not ready", never a 500
            return f"{type(exc).__name__}: {exc}"

    async def _metrics(self, _request: web.Request) -> web.Response:
        body = b"".join(generate_latest(r) for r in self.registries)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _healthz(self, _request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def _readyz(self, _request: web.Request) -> web.Response:
        # Together: one slow check (a store timing out) does not add its timeout to the others'.
        answers = await asyncio.gather(*(self._run(check) for check in self.checks.values()))
        results = dict(zip(self.checks, answers, strict=True))
        problems = [f"{name}: {problem}" for name, problem in results.items() if problem]
        checks = {name: problem or "ok" for name, problem in results.items()}
        if problems:
            return web.json_response({"status": "not ready", "problems": problems, "checks": checks}, status=503)
        return web.json_response({"status": "ready", "checks": checks})

    async def start(self, host: str, port: int) -> int:
        await self._runner.setup()
        await web.TCPSite(self._runner, host, port).start()
        self.port = int(self._runner.addresses[0][1])
        log.info("admin: /metrics /healthz /readyz on http://%s:%d/", host, self.port)
        return self.port

    async def stop(self) -> None:
        await self._runner.cleanup()
