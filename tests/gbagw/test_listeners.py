"""The listener check names the config key and its environment variable; real sockets throughout."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from gbagw.listeners import Listener, ListenerError, check_listeners, env_name
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
