"""``gbagw config show`` and ``gbagw config check``: what a deployment will run with, before it runs.

``show`` prints the merged configuration (embedded defaults < ``--config`` file < ``GBAGW_*``
environment) as TOML or JSON, names where every non-default value comes from, and hides credentials.
``check`` builds each service's configuration exactly as its serve command does (TLS files loaded,
KEK files opened, optionally every listening port bound) and reports every service's verdict at once.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import redis
import tomli_w

from gbagw import config as cfgmod
from gbagw.cli_common import (
    EXIT_OK,
    EXIT_USAGE,
    CliError,
    Subcommands,
    command_group,
    load_config,
    subcommand,
)
from gbagw.listeners import (
    Listener,
    ListenerError,
    bsf_listeners,
    check_listeners,
    hss_listeners,
    mef_listeners,
    naf_listeners,
)
from gbaio.kek import KekFileError, load_or_create_kek

SERVICES = ("hss", "bsf", "naf", "mef")
REDIS_TIMEOUT = 2.0  # seconds for connect + PING: a store that slow is a problem worth naming too


def show_toml(cfg: cfgmod.LoadedConfig) -> str:
    head = [
        "# gbagw effective configuration: embedded defaults < --config file < GBAGW_* environment",
        f"# data dir: {cfg.data_dir}",
        f"# credentials ({', '.join(sorted(cfgmod.SECRET_KEYS))}, passwords in URLs) show as {cfgmod.HIDDEN!r}",
    ]
    if cfg.sources:
        head.append("# not at their default:")
        head += [f"#   {key:<28} from {origin}" for key, origin in sorted(cfg.sources.items())]
    else:
        head.append("# every value is the embedded default")
    return "\n".join(head) + "\n\n" + tomli_w.dumps(cfgmod.effective(cfg))


def show_json(cfg: cfgmod.LoadedConfig) -> str:
    return json.dumps(
        {"data_dir": str(cfg.data_dir), "config": cfgmod.effective(cfg), "sources": dict(sorted(cfg.sources.items()))},
        indent=2,
    )


@dataclass(frozen=True, slots=True)
class Verdict:
    service: str
    problem: str | None  # None: the service would start with this configuration
    notes: tuple[str, ...] = ()


def _kek(key: str, path: Path, created_at_start: str = "") -> list[str]:
    """Notes on a KEK file; raises :class:`KekFileError` when the service would refuse it.

    ``created_at_start``: why a missing file matters, when the service creates it at start."""
    if not path.exists() and created_at_start:
        return [f"{key}: {path} does not exist yet; the first start creates a new KEK there ({created_at_start})"]
    load_or_create_kek(path, create=False)
    return []


def _hss(cfg: cfgmod.LoadedConfig, here: bool) -> tuple[list[Listener], list[str]]:
    hss = cfgmod.hss_config(cfg)
    return hss_listeners(hss), _kek("hss.kek_file", hss.kek_file, "it seals K and OPc in hss.db: keep the two together")


def _bsf(cfg: cfgmod.LoadedConfig, here: bool) -> tuple[list[Listener], list[str]]:
    bsf = cfgmod.bsf_config(cfg)
    notes = _kek("bsf.kek_file", bsf.kek_file, "BSF instances that share a Redis store need the same KEK file")
    for i, path in enumerate(bsf.kek_previous_files):
        notes += _kek(f"bsf.kek_previous_files[{i}]", path)
    if bsf.store.startswith(("redis://", "rediss://", "unix://")) and (problem := _ping_redis(bsf.store)):
        # Checked where the services run (--ports), it is an error; from elsewhere (a build machine,
        # a chart rendered for a cluster) the store may well be out of reach: a note.
        if here:
            raise cfgmod.ConfigError(problem)
        notes.append(f"{problem} (from here; with --ports, where the BSF runs, this is an error)")
    return bsf_listeners(bsf), notes


def _ping_redis(url: str) -> str | None:
    """Connect and PING, as the BSF's first store operation would: a wrong host, port, password or TLS
    setting is named now rather than on the first bootstrap. None when it answers."""
    shown = cfgmod.effective_value(url)
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=REDIS_TIMEOUT, socket_timeout=REDIS_TIMEOUT)
        try:
            client.ping()
        finally:
            client.close()
    except (redis.RedisError, ValueError, OSError) as exc:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return f"bsf.store: {shown} does not answer PING within {REDIS_TIMEOUT:g} s: {detail}"
    return None


def _naf(cfg: cfgmod.LoadedConfig, here: bool) -> tuple[list[Listener], list[str]]:
    return naf_listeners(cfgmod.naf_config(cfg)), []


def _mef(cfg: cfgmod.LoadedConfig, here: bool) -> tuple[list[Listener], list[str]]:
    mef = cfgmod.mef_config(cfg)
    cfgmod.check_mef_files(mef)
    return mef_listeners(mef), []


_CHECKS: dict[str, Callable[[cfgmod.LoadedConfig, bool], tuple[list[Listener], list[str]]]] = {
    "hss": _hss,
    "bsf": _bsf,
    "naf": _naf,
    "mef": _mef,
}


def check(cfg: cfgmod.LoadedConfig, services: Sequence[str], *, ports: bool) -> list[Verdict]:
    """One verdict per service, as ``gbagw <service> serve`` would find it before starting.

    With ``ports``, every listening address is also bound and released: per service, then all
    together, which finds two services of one host asking for the same port."""
    verdicts: list[Verdict] = []
    every: list[Listener] = []
    for name in services:
        try:
            listeners, notes = _CHECKS[name](cfg, ports)
            if ports:
                check_listeners(listeners)
        except (cfgmod.ConfigError, KekFileError, ListenerError) as exc:
            verdicts.append(Verdict(name, str(exc)))
            continue
        every += listeners
        verdicts.append(Verdict(name, None, tuple(notes)))
    if ports and len(services) > 1 and all(v.problem is None for v in verdicts):
        try:
            check_listeners(every)
        except ListenerError as exc:
            verdicts.append(Verdict("+".join(services), str(exc)))
    return verdicts


def cmd_config_show(args: argparse.Namespace) -> int:
    cfg = load_config(args)
    print(show_json(cfg) if args.json else show_toml(cfg), end="" if not args.json else "\n")
    return EXIT_OK


def cmd_config_check(args: argparse.Namespace) -> int:
    unknown = [s for s in args.services if s not in SERVICES]
    if unknown:
        raise CliError(f"unknown service {unknown[0]!r}: choose from {', '.join(SERVICES)}")
    cfg = load_config(args)
    verdicts = check(cfg, args.services or SERVICES, ports=args.ports)
    for v in verdicts:
        print(f"{v.service}: error: {v.problem}" if v.problem else f"{v.service}: ok")
        for note in v.notes:
            print(f"  note: {note}")
    return EXIT_USAGE if any(v.problem for v in verdicts) else EXIT_OK


def register(sub: Subcommands) -> None:
    cmds = command_group(sub, "config", "show or check the configuration the services would run with")
    p = subcommand(
        cmds, "show", "the merged configuration (defaults < file < GBAGW_*), credentials hidden", cmd_config_show
    )
    p.add_argument("--json", action="store_true", help="JSON with the source of each non-default value")
    p = subcommand(
        cmds,
        "check",
        "validate each service's configuration as its serve command would; exit 2 if any fails",
        cmd_config_check,
    )
    p.add_argument(
        "services",
        nargs="*",
        metavar="SERVICE",
        help="hss, bsf, naf, mef (default: all)",
    )
    p.add_argument(
        "--ports",
        action="store_true",
        help="also bind and release every listening port, and count an unreachable Redis store as an error "
        "(run where the services will run, before they start)",
    )
