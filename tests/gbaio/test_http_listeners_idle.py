"""The aiohttp listeners (Zn SOAP at the BSF, Ua at the demo NAF) close a connection that sends no
request: aiohttp's own default held one for an hour, so a flood of idle connections kept its
descriptors (issue 27 class 2). Real services in process, real sockets."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

import bsf.app
import naf.app
from bsf.app import create_bsf
from bsf.config import BsfConfig
from bsf.store.sqlite import SqliteStore
from gba.keywrap import Keyring
from naf.app import create_naf
from naf.config import NafConfig
from tests.procs import free_port


async def _closed_after(port: int) -> float:
    """Seconds until the server closes a connection that sends nothing (at most 5)."""
    started = time.monotonic()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        assert await asyncio.wait_for(reader.read(), 5) == b""
    finally:
        writer.close()
    return time.monotonic() - started


async def test_zn_soap_closes_a_connection_that_sends_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bsf.app, "SOAP_IDLE_TIMEOUT", 0.5)
    config = BsfConfig(ub_port=0, zn_port=0, sbi_port=0, soap_port=0, hss_port=free_port(), zh_timeout=0.5)
    service = create_bsf(config, SqliteStore(tmp_path / "bsf.sqlite", Keyring(bytes(range(32)))))
    await service.start()
    try:
        assert service.soap_port is not None
        assert await _closed_after(service.soap_port) < 3
    finally:
        await service.stop()


async def test_ua_closes_a_connection_that_sends_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(naf.app, "UA_IDLE_TIMEOUT", 0.5)
    service = create_naf(NafConfig(port=0, bsf_port=free_port()))
    await service.start()
    try:
        assert service.port is not None
        assert await _closed_after(service.port) < 3
    finally:
        await service.stop()
