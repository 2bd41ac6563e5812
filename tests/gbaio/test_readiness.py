"""/readyz reflects every listener a process owns (issue 27 class 2: a listener that died while the
process lived was reported ready). Real services in process, real sockets, the admin over HTTP."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest

from bsf.app import create_bsf
from bsf.config import BsfConfig
from bsf.store.sqlite import SqliteStore
from gba.keywrap import Keyring
from gbaio.admin import AdminServer
from hss_stub.app import create_hss
from hss_stub.config import HssConfig
from hss_stub.store import SubscriberStore
from tests.procs import free_port

KEK = bytes(range(32))


async def _readyz(admin: AdminServer) -> tuple[int, dict[str, object]]:
    async with aiohttp.ClientSession() as s, s.get(f"http://127.0.0.1:{admin.port}/readyz") as r:
        return r.status, await r.json()


async def test_readyz_goes_not_ready_when_the_zh_listener_is_gone(tmp_path: Path) -> None:
    hss = create_hss(HssConfig(zh_port=0), SubscriberStore(tmp_path / "h.sqlite", KEK))
    await hss.start()
    admin = AdminServer([], hss.ready_checks())
    await admin.start("127.0.0.1", 0)
    try:
        assert await _readyz(admin) == (200, {"status": "ready", "checks": {"hss.zh": "ok", "hss.store": "ok"}})
        assert hss.server._server is not None
        hss.server._server.close()  # what an accept loop that ended looks like from outside
        status, body = await _readyz(admin)
        assert status == 503
        assert body["problems"] == ["hss.zh: Zh listener is not accepting connections"]
        assert body["checks"] == {"hss.zh": "Zh listener is not accepting connections", "hss.store": "ok"}
    finally:
        await admin.stop()
        await hss.stop()


@pytest.mark.parametrize("listener", ["ub", "zn", "sbi", "soap"])
async def test_readyz_names_each_bsf_listener_that_is_gone(tmp_path: Path, listener: str) -> None:
    """Every BSF listener has its own check; the HSS is down here, which only bsf.hss reports."""
    config = BsfConfig(ub_port=0, zn_port=0, sbi_port=0, soap_port=0, hss_port=free_port(), zh_timeout=0.5)
    bsf = create_bsf(config, SqliteStore(tmp_path / "bsf.sqlite", Keyring(KEK)))
    await bsf.start()
    admin = AdminServer([], bsf.ready_checks())
    await admin.start("127.0.0.1", 0)
    try:
        _, body = await _readyz(admin)
        checks = body["checks"]
        assert isinstance(checks, dict)
        assert {name for name, v in checks.items() if v != "ok"} == {"bsf.hss"}
        assert set(checks) == {"bsf.store", "bsf.hss", "bsf.ub", "bsf.zn", "bsf.sbi", "bsf.soap"}
        if listener == "ub":
            await bsf._ub.close()
        elif listener == "zn":
            assert bsf.zn._server is not None
            bsf.zn._server.close()
        elif listener == "sbi":
            bsf._sbi_stop.set()
            assert bsf._sbi_task is not None
            await bsf._sbi_task
        else:
            await bsf._soap_runner.cleanup()
        status, body = await _readyz(admin)
        checks = body["checks"]
        assert isinstance(checks, dict)
        assert status == 503
        assert checks[f"bsf.{listener}"] == f"bsf.{listener} listener is not accepting connections"
    finally:
        await admin.stop()
        await bsf.stop()


def test_a_check_name_is_used_once() -> None:
    admin = AdminServer([])

    async def ok() -> None:
        return None

    admin.add_ready_check("bsf.zn", ok)
    with pytest.raises(ValueError, match=r"bsf\.zn"):
        admin.add_ready_check("bsf.zn", ok)
