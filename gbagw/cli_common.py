"""What every ``gbagw`` command shares: exit codes, errors, config loading, argument parsing helpers,
and running a service until SIGINT/SIGTERM.

Exit codes: 0 success, 2 usage or configuration error, 3 refused by the peer, 4 peer unreachable.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, TextIO, TypeAlias
from urllib.parse import urlsplit

from prometheus_client import CollectorRegistry

from gba import kdf
from gbagw import __version__
from gbagw import config as cfgmod
from gbaio import logs
from gbaio.admin import AdminServer, ReadinessCheck, certificate_registry, process_registry

log = logging.getLogger("gbagw")

# What each commands module adds its command group to (argparse has no public name for the type).
Subcommands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_REFUSED = 3
EXIT_UNREACHABLE = 4


class CliError(Exception):
    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.code = code


def hex_arg(name: str, value: object, length: int) -> bytes:
    """``name`` as the user wrote it: ``--k`` on the command line, ``k`` in an import file."""
    try:
        raw = bytes.fromhex(value) if isinstance(value, str) else None
    except ValueError:
        raw = None
    if raw is None:
        raise CliError(f"{name} is missing" if value is None else f"{name} must be hex")
    if len(raw) != length:
        raise CliError(f"{name} must be {length} octets ({2 * length} hex digits)")
    return raw


def command_group(sub: Subcommands, name: str, help_text: str) -> Subcommands:
    """``gbagw NAME ...``: a group whose subcommands the caller adds with :func:`subcommand`."""
    group = sub.add_parser(name, help=help_text, description=help_text)
    return group.add_subparsers(dest=f"{name}_command", required=True, metavar="COMMAND")


def subcommand(
    cmds: Subcommands, name: str, help_text: str, func: Callable[[argparse.Namespace], int], *, config: bool = True
) -> argparse.ArgumentParser:
    """One subcommand running ``func``; ``config``: it takes --config and --data-dir."""
    p = cmds.add_parser(name, help=help_text, description=help_text)
    if config:
        common_args(p)
    p.set_defaults(func=func)
    return p


def common_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="TOML file whose keys replace the embedded defaults (gbagw/defaults.toml inside the installed "
        "package; `gbagw config show` prints them); GBAGW_<SECTION>_<KEY> variables override both",
    )
    p.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        metavar="DIR",
        help=f"what <data-dir> means in the configuration: databases, KEK files, lab PKI "
        f"(default: ${cfgmod.DATA_DIR_ENV} when set, else ./var)",
    )


def load_config(args: argparse.Namespace) -> cfgmod.LoadedConfig:
    cfg = cfgmod.load(args.config, data_dir(args))
    log_cfg = cfgmod.log_config(cfg)
    logs.setup(log_cfg.level, log_cfg.format)
    return cfg


def data_dir(args: argparse.Namespace) -> Path | None:
    """--data-dir, else $GBAGW_DATA_DIR, else None (the loader's ./var)."""
    if args.data_dir is not None:
        return Path(args.data_dir)
    env = os.environ.get(cfgmod.DATA_DIR_ENV)
    return Path(env) if env else None


def admin_server(
    *registries: CollectorRegistry,
    readiness: Mapping[str, ReadinessCheck] | None = None,
    certificates: Mapping[str, Path] | None = None,
) -> AdminServer:
    """A serving process's admin listener: the process's own metrics (build, CPU, memory) once, the
    expiry of the certificates its services present, then their metrics and readiness checks."""
    own = [process_registry(__version__), certificate_registry(certificates or {})]
    return AdminServer([*own, *registries], readiness)


async def serve_until_signal(
    start: Callable[[], Awaitable[None]],
    stop: Callable[[], Awaitable[None]],
    admin: tuple[AdminServer, str, int] | None = None,
) -> None:
    """Run until SIGINT/SIGTERM, with the service's admin listener (metrics, health) alongside."""
    stop_event = asyncio.Event()
    received: list[signal.Signals] = []

    def on_signal(sig: signal.Signals) -> None:
        received.append(sig)
        stop_event.set()

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal, sig)
    try:
        await start()
        if admin is not None:
            server, host, port = admin
            bound = await server.start(host, port)
            print(f"admin: http://{host}:{bound}/metrics /healthz /readyz", flush=True)
    except Exception as exc:
        # A port taken since the listener check, a store that does not open, ...: stop what did start
        # (its listeners, Diameter peers, store) first; an OSError is then one line, not a traceback.
        if admin is not None:
            await admin[0].stop()
        await stop()
        if isinstance(exc, OSError):
            raise CliError(f"could not start: {exc}") from None
        raise
    log.info("gbagw %s serving (pid %d, Python %s)", __version__, os.getpid(), platform.python_version())
    try:
        await stop_event.wait()
    finally:
        cause = received[0].name if received else "cancelled"
        log.info("%s: stopping; in-flight requests finish, Diameter peers get a DPR, stores close", cause)
        if admin is not None:
            await admin[0].stop()
        await stop()
        log.info("stopped")


class Progress:
    """The count of a long operation on stderr, as pip and apt show theirs: rewritten in place on a
    terminal (at most every ``tty_interval`` s), otherwise one line every ``log_interval`` s once it
    has run that long, so that short runs and pipes stay quiet. Call it with the count done so far."""

    def __init__(
        self,
        what: str,
        total: int | None = None,
        *,
        stream: TextIO | None = None,
        tty_interval: float = 0.1,
        log_interval: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.what, self.total, self.clock = what, total, clock
        self.stream = stream if stream is not None else sys.stderr
        self.tty = self.stream.isatty()
        self.interval = tty_interval if self.tty else log_interval
        self.last = clock()
        self.done = 0
        self.shown = False

    def _line(self) -> str:
        of = f"/{self.total}" if self.total is not None else ""
        return f"{self.what}: {self.done}{of}"

    def __call__(self, done: int) -> None:
        self.done = done
        now = self.clock()
        if now - self.last < self.interval:
            return
        self.last = now
        self.stream.write(f"\r{self._line()}\x1b[K" if self.tty else f"{self._line()}\n")
        self.stream.flush()
        self.shown = True

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self.tty and self.shown:  # the final count, and the cursor on a new line for what follows
            self.stream.write(f"\r{self._line()}\x1b[K\n")
            self.stream.flush()


def emit(out: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(out))
    else:
        for key, value in out.items():
            print(f"{key}: {value}")


def ua_id(value: str | None) -> bytes:
    return hex_arg("--ua-id", value, 5) if value is not None else kdf.UaProtocol.HTTP_DIGEST.value


def host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url if "//" in url else "//" + url)
    if not parts.hostname or not parts.port:
        raise CliError(f"--mef must name a host and port, e.g. tls://127.0.0.1:8443 (got {url!r})")
    return parts.hostname, parts.port
