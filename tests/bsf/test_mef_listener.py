"""A MEF listener whose accept loop fails: /readyz says so, and the listener comes back on its port by itself.
In-process (the test reaches the listening socket), real sockets and real TLS on loopback."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import resource
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from bsf.mef.config import EnroleeEntry, MefConfig
from bsf.mef.server import create_mef
from bsf.store.sqlite import SqliteStore
from gba.keywrap import Keyring
from gbagw.enrolee_client import enrol_psk
from gbagw.mef_commands import write_test_pki
from gbaio.kek import load_or_create_kek

KPM = bytes(range(32))


async def _until(check: Callable[[], Awaitable[bool]], timeout: float) -> None:
    async with asyncio.timeout(timeout):
        while not await check():
            await asyncio.sleep(0.05)


def _config(tmp_path: Path) -> MefConfig:
    pki = tmp_path / "pki"
    write_test_pki(pki, "mef.gba.test", [], ["maf.gba.test"])
    return MefConfig(
        psk_port=0,
        cert_port=0,
        maf_port=0,
        cert_file=pki / "mef.pem",
        key_file=pki / "mef.key",
        ca_file=pki / "ca.pem",
        enrolees=(EnroleeEntry("CAE-psk", ("maf.gba.test",), kpm_id="kpm-1", kpm=KPM),),
    )


async def test_readiness_follows_a_listener_that_dies_and_comes_back(tmp_path: Path) -> None:
    config = _config(tmp_path)
    store = SqliteStore(tmp_path / "bsf.sqlite", Keyring(load_or_create_kek(tmp_path / "kek")))
    service = create_mef(config, store)
    await service.start()
    registry = service.metrics.registry
    try:
        assert await service.readiness() is None
        psk = service.listeners["psk"]
        port = psk.port
        sock = psk.listening_socket
        assert sock is not None
        sock.shutdown(socket.SHUT_RDWR)  # accept() now fails with EINVAL, as on a socket broken under the loop

        async def not_ready() -> bool:
            return await service.readiness() is not None

        await _until(not_ready, 2)
        problem = await service.readiness()
        assert problem is not None and problem.startswith(f"MEF psk listener on :{port}: down (")
        assert registry.get_sample_value("gbagw_mef_listener_up", {"listener": "psk"}) == 0
        assert registry.get_sample_value("gbagw_mef_listener_up", {"listener": "cert"}) == 1

        async def ready() -> bool:
            return await service.readiness() is None

        await _until(ready, 5)  # bound again on the same port after mef's restart delay
        enrolment = await asyncio.to_thread(enrol_psk, "127.0.0.1", port, "mef.gba.test", "kpm-1", KPM)
        assert enrolment.enrolee_id == "CAE-psk"
        assert registry.get_sample_value("gbagw_mef_listener_restarts_total", {"listener": "psk"}) == 1
    finally:
        await service.stop()
        await store.close()


async def test_caps_over_the_open_files_limit_are_warned_at_start(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    store = SqliteStore(tmp_path / "bsf.sqlite", Keyring(load_or_create_kek(tmp_path / "kek")))
    for max_connections in (16, soft):
        service = create_mef(dataclasses.replace(_config(tmp_path), max_connections=max_connections), store)
        with caplog.at_level(logging.WARNING, logger="gbagw.mef"):
            await service.start()
        await service.stop()
    warnings = [r.getMessage() for r in caplog.records if "open-files limit" in r.getMessage()]
    assert warnings == [
        f"mef: 3 listeners x mef.max_connections {soft} need about {3 * soft + 64} file descriptors, over the "
        f"open-files limit {soft}: accept() would fail before the caps; lower mef.max_connections or raise "
        "LimitNOFILE="
    ]
    await store.close()
