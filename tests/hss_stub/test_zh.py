"""The Zh handler when the subscriber database cannot serve: DIAMETER_TOO_BUSY, never a 5012."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import pytest

from gba import diameter as d
from gbaio.diameter_node import PeerInfo
from hss_stub.app import create_hss
from hss_stub.config import HssConfig
from hss_stub.metrics import HssMetrics
from hss_stub.store import SubscriberStore
from hss_stub.zh import ZhHandler

KEK = bytes(range(32))
PEER = PeerInfo("bsf.gba.test", "gba.test", "127.0.0.1", frozenset({d.APP_ZH}))


async def test_a_locked_subscriber_database_answers_too_busy(tmp_path: Path) -> None:
    store = SubscriberStore(tmp_path / "h.sqlite", KEK, busy_timeout=0.05)  # instead of 10 s: a short test
    store.add("a@ims.test", bytes(16), bytes(16), b"\x80\x00", 0)
    handler = ZhHandler(HssConfig(), store, HssMetrics())
    mar = d.MultimediaAuthRequest("s;1", "bsf.gba.test", "gba.test", "gba.test", "a@ims.test").to_envelope(1, 1)
    other = sqlite3.connect(tmp_path / "h.sqlite", isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    try:
        answer = await handler(mar, PEER)
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert answer.result() == (d.ResultCode.TOO_BUSY, None)
    assert answer.is_error  # RFC 6733 7.1.3: a protocol error sets the E bit
    answer = await handler(mar, PEER)  # the lock gone, vectors flow again
    assert answer.result() == (d.ResultCode.SUCCESS, None)
    store.close()


async def test_an_open_peer_list_is_warned_about_once_at_start(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 27 class 10: `hss.allowed_peers = []` stays the lab default, but says so at start."""
    store = SubscriberStore(tmp_path / "h.sqlite", KEK)
    for peers, warnings in ((None, 1), (("bsf.gba.test",), 0)):
        caplog.clear()
        service = create_hss(HssConfig(zh_port=0, allowed_peers=peers), store)
        with caplog.at_level(logging.WARNING, logger="gbagw.hss"):
            await service.start()
            await service.stop()
        said = [r.getMessage() for r in caplog.records if "hss.allowed_peers" in r.getMessage()]
        assert len(said) == warnings, said
    store.close()
