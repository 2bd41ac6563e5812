"""The listener check names the config key and its environment variable; real sockets throughout."""

from __future__ import annotations

import logging
import resource
import socket
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from gbagw import config
from gbagw.listeners import (
    FD_RESERVE,
    Listener,
    ListenerError,
    bsf_listeners,
    check_listeners,
    env_name,
    fd_limit_problem,
    hss_listeners,
)
from tests.procs import free_port


@pytest.fixture
def held_port() -> Iterator[int]:
    with socket.create_server(("127.0.0.1", 0)) as s:
        yield int(s.getsockname()[1])


def test_free_and_ephemeral_ports_pass() -> None:
    check_listeners(
        [
            Listener("bsf.ub_port", "bsf.ub_host", "127.0.0.1", free_port()),
            Listener("bsf.zn_port", "h", "127.0.0.1", 0),
        ]
    )


def test_port_in_use_names_the_key_and_its_variable(held_port: int) -> None:
    with pytest.raises(ListenerError) as err:
        check_listeners([Listener("bsf.zn_port", "bsf.zn_host", "127.0.0.1", held_port)])
    msg = str(err.value)
    assert msg.startswith(f"bsf.zn_port: cannot listen on 127.0.0.1:{held_port}: address already in use")
    assert "GBAGW_BSF_ZN_PORT" in msg


def test_a_port_claimed_twice_names_both_keys() -> None:
    port = free_port()
    with pytest.raises(ListenerError, match=rf"bsf.sbi_port and bsf.soap_port both ask for 127.0.0.1:{port}"):
        check_listeners(
            [
                Listener("bsf.sbi_port", "bsf.zn_host", "127.0.0.1", port),
                Listener("bsf.soap_port", "bsf.zn_host", "127.0.0.1", port),
            ]
        )


def test_foreign_address_names_the_host_key() -> None:
    # 192.0.2.1 is TEST-NET-1 (RFC 5737): never an address of this machine.
    with pytest.raises(
        ListenerError, match=r"^naf.host: .*192.0.2.1 is not an address of this machine.*GBAGW_NAF_HOST"
    ):
        check_listeners([Listener("naf.port", "naf.host", "192.0.2.1", free_port())])


def test_unresolvable_host_names_the_host_key() -> None:
    with pytest.raises(ListenerError, match=r"^mef.host: cannot resolve 'nohost.invalid'"):
        check_listeners([Listener("mef.psk_port", "mef.host", "nohost.invalid", 8443)])


def test_env_name_follows_the_configuration_contract() -> None:
    assert env_name("bsf.ub_port") == "GBAGW_BSF_UB_PORT"


def test_an_open_files_limit_below_the_connection_caps_is_named(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 27 class 2: each connection is a descriptor; below the sum of the caps a flood of one
    listener exhausts the process before its cap is reached."""
    cfg = config.load(None, tmp_path, {"GBAGW_BSF_ZN_MAX_CONNECTIONS": "1000", "GBAGW_BSF_UB_MAX_CONNECTIONS": "2000"})
    listeners = bsf_listeners(config.bsf_config(cfg))
    problem = fd_limit_problem(listeners, soft_limit=1024)
    assert problem is not None
    assert "(1024)" in problem and "bsf.ub_port 2000" in problem and "bsf.zn_port 1000" in problem
    assert f"({3000 + FD_RESERVE}" in problem and "LimitNOFILE=" in problem
    assert fd_limit_problem(listeners, soft_limit=65536) is None
    hss = config.hss_config(config.load(None, tmp_path, {}))
    assert fd_limit_problem(hss_listeners(hss), soft_limit=1024) is not None  # hss.max_connections 4096
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (1024, hard))
    try:
        with caplog.at_level(logging.WARNING, "gbagw.listeners"):
            check_listeners([replace(item, port=0) for item in listeners])
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert [r.getMessage() for r in caplog.records] == [problem]
