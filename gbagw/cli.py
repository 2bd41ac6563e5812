"""The ``gbagw`` command (docs/architecture.md): one group of subcommands per module.

Exit codes: 0 success, 2 usage or configuration error, 3 refused by the peer, 4 peer unreachable.
"""

from __future__ import annotations

import argparse
import platform
import sys
from collections.abc import Callable, Sequence

from gbagw import (
    __version__,
    bsf_commands,
    config_commands,
    hss_commands,
    mef_commands,
    naf_commands,
    ue_commands,
    up_command,
)
from gbagw import config as cfgmod
from gbagw.cli_common import EXIT_OK, EXIT_USAGE, CliError
from gbagw.listeners import ListenerError
from gbaio.kek import KekFileError
from gbaio.process import forbid_core_dumps, raise_fd_limit
from gbaio.sqlite import DatabaseOpenError
from gbaio.tls import TlsError
from hss_stub.store import StoreError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gbagw", description="GBA bootstrapping gateway (BSF/MEF, HSS stub, NAF kit)")
    parser.add_argument(
        "--version", action="version", version=f"gbagw {__version__} (Python {platform.python_version()})"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for commands in (
        up_command,
        config_commands,
        hss_commands,
        bsf_commands,
        naf_commands,
        mef_commands,  # mef and enrolee
        ue_commands,
    ):
        commands.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    forbid_core_dumps()  # before any command reads a key (docs/security.md, core dumps)
    raise_fd_limit()  # the listeners' connection caps assume more than the usual 1,024 (docs/security.md)
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except (CliError, cfgmod.ConfigError, KekFileError, StoreError, ListenerError, DatabaseOpenError, TlsError) as exc:
        print(f"gbagw: error: {exc}", file=sys.stderr)
        return exc.code if isinstance(exc, CliError) else EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
