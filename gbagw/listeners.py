"""A command's listening addresses, checked before anything starts: a taken port is one clear line.

Each address is bound and closed again with SO_REUSEADDR (IPv6 sockets v6-only), as asyncio's servers
bind, so the check fails exactly where the real listener would. A port taken between this check and
the start still fails at start; the CLI reports that too, after stopping what had started.
"""

from __future__ import annotations

import errno
import logging
import resource
import socket
from collections.abc import Sequence
from dataclasses import dataclass, replace

from bsf.config import BsfConfig
from bsf.mef.config import MefConfig
from hss_stub.config import HssConfig
from naf.config import NafConfig

log = logging.getLogger("gbagw.listeners")

# Descriptors a process needs besides its listeners' connections: listening sockets, stores, Diameter
# client connections, log files, the interpreter's own.
FD_RESERVE = 64

_IN_USE = "address already in use (another gbagw, or another service, holds it)"
_PRIVILEGED = "permission denied (ports below 1024 need privileges)"


class ListenerError(Exception):
    """A configured address cannot be listened on; the message names the config key to change."""


@dataclass(frozen=True, slots=True)
class Listener:
    key: str  # the config key of the port, e.g. "bsf.ub_port"
    host_key: str  # the config key of the address, e.g. "bsf.ub_host"
    host: str
    port: int  # 0: the system picks a free port, nothing to check
    max_connections: int = 0  # the listener's connection cap (its own key), 0 where it has none


def on(host_key: str, host: str, **ports: int) -> list[Listener]:
    """Listeners on one configured address: ``on("bsf.ub_host", ..., ub_port=8080)`` names bsf.ub_port."""
    section = host_key.split(".")[0]
    return [Listener(f"{section}.{key}", host_key, host, port) for key, port in ports.items()]


def capped(listeners: list[Listener], **caps: int) -> list[Listener]:
    """The same listeners, with the connection cap of those named: ``capped(..., ub_port=4096)``."""
    return [replace(item, max_connections=caps.get(item.key.split(".", 1)[1], 0)) for item in listeners]


# What each service listens on. ``admin=False``: under `gbagw up`, one admin listener (bsf.admin_port)
# serves every service, so hss.admin_port and naf.admin_port stay unused.


def hss_listeners(hss: HssConfig, *, admin: bool = True) -> list[Listener]:
    listeners = on("hss.zh_host", hss.zh_host, zh_port=hss.zh_port, **({"admin_port": hss.admin_port} if admin else {}))
    return capped(listeners, zh_port=hss.max_connections)


def bsf_listeners(bsf: BsfConfig) -> list[Listener]:
    listeners = [
        *on("bsf.ub_host", bsf.ub_host, ub_port=bsf.ub_port, admin_port=bsf.admin_port),
        *on("bsf.zn_host", bsf.zn_host, zn_port=bsf.zn_port, sbi_port=bsf.sbi_port, soap_port=bsf.soap_port),
        *(on("bsf.zn_host", bsf.zn_host, zn_tls_port=bsf.zn_tls_port) if bsf.zn_diameter_tls else []),
    ]
    zn = bsf.zn_max_connections
    return capped(listeners, ub_port=bsf.ub_max_connections, zn_port=zn, zn_tls_port=zn)


def naf_listeners(naf: NafConfig, *, admin: bool = True) -> list[Listener]:
    return on("naf.host", naf.host, port=naf.port, **({"admin_port": naf.admin_port} if admin else {}))


def mef_listeners(mef: MefConfig, *, admin: bool = True) -> list[Listener]:
    ports = {"psk_port": mef.psk_port, "cert_port": mef.cert_port, "maf_port": mef.maf_port}
    return on("mef.host", mef.host, **ports, **({"admin_port": mef.admin_port} if admin else {}))


def env_name(key: str) -> str:
    """The environment variable that overrides a config key (docs/configuration.md)."""
    return "GBAGW_" + key.upper().replace(".", "_")


def _bind_and_close(host: str, port: int) -> None:
    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    for family, kind, proto, _, addr in infos:
        with socket.socket(family, kind, proto) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            s.bind(addr)


def fd_limit_problem(listeners: Sequence[Listener], soft_limit: int | None = None) -> str | None:
    """Why the open-files limit cannot hold every listener at its connection cap, or None.

    Each connection is a descriptor: below the sum of the caps a flood of one listener still exhausts the
    process (every listener then fails to accept, issue 27 class 2) before any cap is reached.
    """
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0] if soft_limit is None else soft_limit
    capped = [item for item in listeners if item.max_connections]
    need = sum(item.max_connections for item in capped) + FD_RESERVE
    if soft == resource.RLIM_INFINITY or soft >= need:
        return None
    keys = ", ".join(f"{item.key} {item.max_connections}" for item in capped)
    return (
        f"the open-files limit ({soft}) is below what the listeners' connection caps add up to ({need}: {keys}, "
        f"+{FD_RESERVE}): raise LimitNOFILE= (systemd) / ulimits nofile (containers), or lower the caps"
    )


def check_listeners(listeners: Sequence[Listener]) -> None:
    """Raise :class:`ListenerError` for the first address that cannot be listened on; warn when the
    open-files limit is below the listeners' connection caps."""
    if (problem := fd_limit_problem(listeners)) is not None:
        log.warning("%s", problem)
    claimed: dict[tuple[str, int], str] = {}
    for item in listeners:
        if item.port == 0:
            continue
        first = claimed.setdefault((item.host, item.port), item.key)
        if first != item.key:
            raise ListenerError(f"{first} and {item.key} both ask for {item.host}:{item.port}")
        try:
            _bind_and_close(item.host, item.port)
        except socket.gaierror as exc:
            raise ListenerError(f"{item.host_key}: cannot resolve {item.host!r}: {exc.strerror}") from None
        except OSError as exc:
            where = f"cannot listen on {item.host}:{item.port}"
            if exc.errno == errno.EADDRNOTAVAIL:
                raise ListenerError(
                    f"{item.host_key}: {where}: {item.host} is not an address of this machine; "
                    f"set another in the config file or with {env_name(item.host_key)}"
                ) from None
            reason = {errno.EADDRINUSE: _IN_USE, errno.EACCES: _PRIVILEGED}.get(exc.errno or 0, str(exc.strerror))
            raise ListenerError(
                f"{item.key}: {where}: {reason}; choose another port in the config file or with {env_name(item.key)}"
            ) from None
