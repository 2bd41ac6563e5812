"""A service that cannot start says why in one line (exit 2) and leaves nothing listening."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web

from gbagw.cli_common import CliError, serve_until_signal
from gbaio.admin import AdminServer
from tests.procs import ZERO_PORTS, run_cli


@pytest.fixture
def held_port() -> Iterator[int]:
    with socket.create_server(("127.0.0.1", 0)) as s:
        yield int(s.getsockname()[1])


def _bindable(port: int) -> bool:
    try:
        socket.create_server(("127.0.0.1", port)).close()
    except OSError:
        return False
    return True


@pytest.mark.parametrize(
    ("command", "variable", "key"),
    [
        (["up"], "GBAGW_BSF_ZN_PORT", "bsf.zn_port"),
        (["up"], "GBAGW_MEF_MAF_PORT", "mef.maf_port"),
        (["hss", "serve"], "GBAGW_HSS_ZH_PORT", "hss.zh_port"),
        (["bsf", "serve"], "GBAGW_BSF_UB_PORT", "bsf.ub_port"),
        (["bsf", "serve"], "GBAGW_BSF_ADMIN_PORT", "bsf.admin_port"),
        (["naf", "serve"], "GBAGW_NAF_PORT", "naf.port"),
        (["mef", "serve"], "GBAGW_MEF_PSK_PORT", "mef.psk_port"),
        (["mef", "serve"], "GBAGW_MEF_ADMIN_PORT", "mef.admin_port"),
    ],
)
def test_a_taken_port_is_one_line_naming_its_key(
    tmp_path: Path, held_port: int, command: list[str], variable: str, key: str
) -> None:
    r = run_cli([*command, "--data-dir", str(tmp_path)], env={**ZERO_PORTS, variable: str(held_port)})
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr
    assert f"gbagw: error: {key}: cannot listen on 127.0.0.1:{held_port}: address already in use" in r.stderr
    assert variable in r.stderr


async def _start_site(runner: web.AppRunner, port: int) -> None:
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()


async def test_a_failed_start_stops_what_had_started(held_port: int) -> None:
    """The port is taken after the check (a race): what listened already is stopped before the error."""
    first = web.AppRunner(web.Application())
    first_port = socket.create_server(("127.0.0.1", 0))
    port = int(first_port.getsockname()[1])
    first_port.close()
    second = web.AppRunner(web.Application())
    stopped: list[str] = []

    async def start() -> None:
        await _start_site(first, port)
        await _start_site(second, held_port)

    async def stop() -> None:
        stopped.append("stop")
        await first.cleanup()
        await second.cleanup()

    with pytest.raises(CliError, match=rf"could not start: .*127.0.0.1', {held_port}\): address already in use"):
        await serve_until_signal(start, stop)
    assert stopped == ["stop"]
    assert _bindable(port)


async def test_a_failed_admin_listener_stops_the_service(held_port: int) -> None:
    service = web.AppRunner(web.Application())
    service_port = socket.create_server(("127.0.0.1", 0))
    port = int(service_port.getsockname()[1])
    service_port.close()

    async def start() -> None:
        await _start_site(service, port)

    with pytest.raises(CliError, match="could not start"):
        await serve_until_signal(start, service.cleanup, (AdminServer([]), "127.0.0.1", held_port))
    assert _bindable(port)


@pytest.mark.parametrize(
    ("command", "garbage", "message"),
    [
        (["up"], "bsf.sqlite", "bsf.sqlite: file is not a database"),
        (["hss", "serve"], "hss.sqlite", "hss.sqlite: file is not a database"),
        (["bsf", "serve"], "kek", "kek: .*is not a directory"),
    ],
)
def test_a_store_that_does_not_open_is_one_line(tmp_path: Path, command: list[str], garbage: str, message: str) -> None:
    if garbage == "kek":
        (tmp_path / "data").write_text("a file where the data directory should be")
        data = tmp_path / "data"
    else:
        data = tmp_path
        (tmp_path / garbage).write_bytes(b"not a database, " * 8)
    r = run_cli([*command, "--data-dir", str(data)], env=ZERO_PORTS)
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr
    assert re.search(rf"gbagw: error: cannot (open SQLite database|create KEK file) .*{message}", r.stderr), r.stderr
