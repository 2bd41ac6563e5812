"""The ``gbagw`` command (DESIGN.md "CLI contract").

Exit codes: 0 success, 2 usage or configuration error, 3 refused by the peer, 4 peer unreachable.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import tomllib
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from gba import milenage
from gba.safexml import XmlError
from gba.uss import parse_guss
from gbagw import config as cfgmod
from gbaio import logs
from gbaio.kek import KekFileError, load_or_create_kek
from hss_stub.app import create_hss
from hss_stub.config import HssConfig
from hss_stub.store import StoreError, SubscriberStore

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_REFUSED = 3
EXIT_UNREACHABLE = 4


class CliError(Exception):
    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.code = code


def _hex(name: str, value: str, length: int) -> bytes:
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raise CliError(f"--{name} must be hex") from None
    if len(raw) != length:
        raise CliError(f"--{name} must be {length} octets ({2 * length} hex digits)")
    return raw


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, help="TOML file (default: embedded defaults, see config/gbagw.toml)")
    p.add_argument("--data-dir", type=Path, default=None, help="data directory (default ./var)")


def _load(args: argparse.Namespace) -> cfgmod.LoadedConfig:
    cfg = cfgmod.load(args.config, args.data_dir)
    log = cfg.section("log")
    logs.setup(str(log["level"]), str(log["format"]))
    return cfg


def _open_hss_store(hss: HssConfig) -> SubscriberStore:
    return SubscriberStore(hss.db, load_or_create_kek(hss.kek_file))


async def _serve_until_signal(start: Callable[[], Awaitable[None]], stop: Callable[[], Awaitable[None]]) -> None:
    stop_event = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop_event.set)
    await start()
    try:
        await stop_event.wait()
    finally:
        await stop()


# --- hss -------------------------------------------------------------------------------------------


def cmd_hss_serve(args: argparse.Namespace) -> int:
    cfg = _load(args)
    hss = cfgmod.hss_config(cfg)
    store = _open_hss_store(hss)
    service = create_hss(hss, store)

    async def start() -> None:
        port = await service.start()
        print(f"hss: Zh Diameter on {hss.zh_host}:{port} (Origin-Host {hss.fqdn})", flush=True)

    try:
        asyncio.run(_serve_until_signal(start, service.stop))
    finally:
        store.close()
    return EXIT_OK


def _read_guss(path: Path | None) -> bytes | None:
    if path is None:
        return None
    data = path.read_bytes()
    try:
        parse_guss(data)
    except XmlError as exc:
        raise CliError(f"{path}: invalid GUSS: {exc}") from None
    return data


def _add_subscriber(
    store: SubscriberStore,
    hss: HssConfig,
    impi: str,
    k_hex: str,
    op: str | None,
    opc: str | None,
    amf: str | None,
    sqn: str | None,
    guss: bytes | None,
) -> None:
    k = _hex("k", k_hex, 16)
    if (op is None) == (opc is None):
        raise CliError("give exactly one of --op and --opc")
    opc_b = milenage.compute_opc(k, _hex("op", op, 16)) if op is not None else _hex("opc", opc or "", 16)
    amf_b = _hex("amf", amf, 2) if amf is not None else hss.default_amf
    sqn_v = int.from_bytes(_hex("sqn", sqn, 6), "big") if sqn is not None else 0
    store.add(impi, k, opc_b, amf_b, sqn_v, guss)


def cmd_hss_add(args: argparse.Namespace) -> int:
    hss = cfgmod.hss_config(_load(args))
    store = _open_hss_store(hss)
    try:
        _add_subscriber(store, hss, args.impi, args.k, args.op, args.opc, args.amf, args.sqn, _read_guss(args.guss))
    finally:
        store.close()
    print(f"added {args.impi}")
    return EXIT_OK


def cmd_hss_list(args: argparse.Namespace) -> int:
    hss = cfgmod.hss_config(_load(args))
    store = _open_hss_store(hss)
    try:
        subs = store.list()
    finally:
        store.close()
    if args.json:
        print(
            json.dumps([{"impi": s.impi, "amf": s.amf.hex(), "sqn": f"{s.sqn:012x}", "guss": s.has_guss} for s in subs])
        )
    else:
        for s in subs:
            print(f"{s.impi}\tamf={s.amf.hex()}\tsqn={s.sqn:012x}\tguss={'yes' if s.has_guss else 'no'}")
    return EXIT_OK


def cmd_hss_remove(args: argparse.Namespace) -> int:
    hss = cfgmod.hss_config(_load(args))
    store = _open_hss_store(hss)
    try:
        store.remove(args.impi)
    finally:
        store.close()
    print(f"removed {args.impi}")
    return EXIT_OK


def cmd_hss_set_guss(args: argparse.Namespace) -> int:
    hss = cfgmod.hss_config(_load(args))
    store = _open_hss_store(hss)
    try:
        store.set_guss(args.impi, None if args.clear else _read_guss(args.guss))
    finally:
        store.close()
    print(f"GUSS of {args.impi} {'cleared' if args.clear else 'set'}")
    return EXIT_OK


def cmd_hss_import(args: argparse.Namespace) -> int:
    """Provision subscribers from a TOML file of ``[[subscriber]]`` tables (config/subscribers.example.toml)."""
    hss = cfgmod.hss_config(_load(args))
    try:
        doc = tomllib.loads(args.file.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise CliError(f"{args.file}: {exc}") from None
    entries = doc.get("subscriber", [])
    if not isinstance(entries, list):
        raise CliError(f"{args.file}: expected [[subscriber]] tables")
    store = _open_hss_store(hss)
    added = 0
    try:
        for i, e in enumerate(entries):
            if not isinstance(e, dict) or "impi" not in e or "k" not in e:
                raise CliError(f"{args.file}: subscriber #{i + 1} needs impi and k")
            guss_path = e.get("guss")
            guss = _read_guss(args.file.parent / guss_path) if guss_path else None
            _add_subscriber(store, hss, e["impi"], e["k"], e.get("op"), e.get("opc"), e.get("amf"), e.get("sqn"), guss)
            added += 1
    finally:
        store.close()
    print(f"imported {added} subscriber(s)")
    return EXIT_OK


def _not_yet(name: str) -> Callable[[argparse.Namespace], int]:
    def run(_args: argparse.Namespace) -> int:
        raise CliError(f"'gbagw {name}' is not available in this build yet (see the open issues)")

    return run


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gbagw", description="GBA bootstrapping gateway (BSF/MEF, HSS stub, NAF kit)")
    sub = parser.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="run HSS stub + BSF + demo NAF on loopback")
    _common(up)
    up.set_defaults(func=_not_yet("up"))

    hss = sub.add_parser("hss", help="HSS stub (Zh Diameter server) and its subscriber database")
    hsub = hss.add_subparsers(dest="hss_command", required=True)
    p = hsub.add_parser("serve", help="run the Zh Diameter server")
    _common(p)
    p.set_defaults(func=cmd_hss_serve)
    p = hsub.add_parser("add-subscriber", help="provision a subscriber (works while the HSS runs)")
    _common(p)
    p.add_argument("--impi", required=True)
    p.add_argument("--k", required=True, help="subscriber key K, 32 hex digits")
    p.add_argument("--op", help="operator variant OP, 32 hex digits")
    p.add_argument("--opc", help="OPc, 32 hex digits")
    p.add_argument("--amf", help="AMF, 4 hex digits (default 8000)")
    p.add_argument("--sqn", help="last used SQN, 12 hex digits (default 000000000000)")
    p.add_argument("--guss", type=Path, help="GUSS XML file (TS 29.109 Annex A)")
    p.set_defaults(func=cmd_hss_add)
    p = hsub.add_parser("list-subscribers", help="list subscribers (never prints K or OPc)")
    _common(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_hss_list)
    p = hsub.add_parser("remove-subscriber", help="delete a subscriber")
    _common(p)
    p.add_argument("--impi", required=True)
    p.set_defaults(func=cmd_hss_remove)
    p = hsub.add_parser("set-guss", help="set or clear a subscriber's GUSS")
    _common(p)
    p.add_argument("--impi", required=True)
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--guss", type=Path)
    g.add_argument("--clear", action="store_true")
    p.set_defaults(func=cmd_hss_set_guss)
    p = hsub.add_parser("import", help="provision subscribers from a TOML file")
    _common(p)
    p.add_argument("file", type=Path)
    p.set_defaults(func=cmd_hss_import)

    bsf = sub.add_parser("bsf", help="Bootstrapping Server Function")
    bsub = bsf.add_subparsers(dest="bsf_command", required=True)
    p = bsub.add_parser("serve", help="run Ub (HTTP) and Zn (Diameter)")
    _common(p)
    p.set_defaults(func=_not_yet("bsf serve"))

    naf = sub.add_parser("naf", help="NAF kit: demo NAF and Zn client")
    nsub = naf.add_subparsers(dest="naf_command", required=True)
    p = nsub.add_parser("serve", help="run the demo NAF behind Ua HTTP digest")
    _common(p)
    p.set_defaults(func=_not_yet("naf serve"))
    p = nsub.add_parser("fetch-key", help="ask the BSF over Zn for a NAF key")
    _common(p)
    p.add_argument("--btid", required=True)
    p.add_argument("--naf-fqdn", required=True)
    p.add_argument("--ua-id", help="Ua security protocol id, 10 hex digits (default 0100000002)")
    p.add_argument("--gsid", action="append", default=[])
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_not_yet("naf fetch-key"))

    ue = sub.add_parser("ue", help="software UE (USIM + Ub client)")
    usub = ue.add_subparsers(dest="ue_command", required=True)
    p = usub.add_parser("bootstrap", help="run Ub against a BSF and print the B-TID")
    _common(p)
    p.add_argument("--bsf", required=True, help="BSF URL, e.g. http://127.0.0.1:8080/")
    p.add_argument("--impi", required=True)
    p.add_argument("--k", required=True)
    kg = p.add_mutually_exclusive_group(required=True)
    kg.add_argument("--op")
    kg.add_argument("--opc")
    p.add_argument("--gba-u", action="store_true")
    p.add_argument("--state", type=Path)
    p.add_argument("--json", action="store_true")
    p.add_argument("--show-keys", action="store_true")
    p.set_defaults(func=_not_yet("ue bootstrap"))
    p = usub.add_parser("naf-key", help="derive Ks_(ext/int)_NAF from a saved bootstrap")
    p.add_argument("--state", type=Path, required=True)
    p.add_argument("--naf-fqdn", required=True)
    p.add_argument("--ua-id")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_not_yet("ue naf-key"))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except (CliError, cfgmod.ConfigError, KekFileError, StoreError) as exc:
        print(f"gbagw: error: {exc}", file=sys.stderr)
        return exc.code if isinstance(exc, CliError) else EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
