"""``gbagw hss ...``: the HSS stub's Zh server and its subscriber database (add, list, remove, GUSS, import)."""

from __future__ import annotations

import argparse
import asyncio
import json
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from gba import milenage
from gba.nai import impi_problem
from gba.safexml import XmlError
from gba.uss import parse_guss
from gbagw import config as cfgmod
from gbagw.cli_common import (
    EXIT_OK,
    CliError,
    Progress,
    Subcommands,
    admin_server,
    command_group,
    hex_arg,
    load_config,
    serve_until_signal,
    subcommand,
)
from gbagw.listeners import check_listeners, hss_listeners
from gbaio.kek import load_or_create_kek
from hss_stub.app import create_hss
from hss_stub.config import HssConfig
from hss_stub.store import NewSubscriber, StoreError, SubscriberStore


def open_hss_store(hss: HssConfig) -> SubscriberStore:
    return SubscriberStore(hss.db, load_or_create_kek(hss.kek_file))


@contextmanager
def _subscribers(hss: HssConfig, *, create: bool = False) -> Iterator[SubscriberStore]:
    """The subscriber database for one command (safe while `hss serve` runs). Only the commands that
    add subscribers (``create``) make a missing one: a read in the wrong --data-dir must not leave an
    empty database and a new KEK behind."""
    if not create and not hss.db.exists():
        raise CliError(
            f"no subscriber database at {hss.db.resolve()} (hss.db): nothing provisioned there yet; "
            "check --data-dir / GBAGW_DATA_DIR, or add a subscriber first"
        )
    store = SubscriberStore(hss.db, load_or_create_kek(hss.kek_file, create=create))
    try:
        yield store
    finally:
        store.close()


def cmd_hss_serve(args: argparse.Namespace) -> int:
    cfg = load_config(args)
    hss = cfgmod.hss_config(cfg)
    check_listeners(hss_listeners(hss))
    store = open_hss_store(hss)
    service = create_hss(hss, store)

    async def start() -> None:
        port = await service.start()
        print(f"hss: Zh Diameter on {hss.zh_host}:{port} (Origin-Host {hss.fqdn})", flush=True)

    admin = admin_server(service.metrics.registry, readiness=service.ready_checks())
    try:
        asyncio.run(serve_until_signal(start, service.stop, (admin, hss.zh_host, hss.admin_port)))
    finally:
        store.close()
    return EXIT_OK


def _read_guss(path: Path | None) -> bytes | None:
    if path is None:
        return None
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CliError(f"cannot read GUSS file {path}: {exc.strerror}") from None
    try:
        parse_guss(data)
    except XmlError as exc:
        raise CliError(f"{path}: invalid GUSS: {exc}") from None
    return data


def _new_subscriber(hss: HssConfig, fields: dict[str, Any], guss: bytes | None, flag: str = "--") -> NewSubscriber:
    """A subscriber from command-line options (``flag`` "--") or an import table (``flag`` "")."""
    impi = fields.get("impi")
    if not isinstance(impi, str) or (problem := impi_problem(impi)) is not None:
        raise CliError(f"{flag}impi {impi!r}: {problem or 'must be a string'}")
    k = hex_arg(f"{flag}k", fields.get("k"), 16)
    op, opc = fields.get("op"), fields.get("opc")
    if (op is None) == (opc is None):
        raise CliError(f"give exactly one of {flag}op and {flag}opc")
    opc_b = milenage.compute_opc(k, hex_arg(f"{flag}op", op, 16)) if op is not None else hex_arg(f"{flag}opc", opc, 16)
    amf = fields.get("amf")
    amf_b = hex_arg(f"{flag}amf", amf, 2) if amf is not None else hss.default_amf
    sqn = fields.get("sqn")
    sqn_v = int.from_bytes(hex_arg(f"{flag}sqn", sqn, 6), "big") if sqn is not None else 0
    return NewSubscriber(impi, k, opc_b, amf_b, sqn_v, guss)


def cmd_hss_add(args: argparse.Namespace) -> int:
    hss = cfgmod.hss_config(load_config(args))
    fields = {"impi": args.impi, "k": args.k, "op": args.op, "opc": args.opc, "amf": args.amf, "sqn": args.sqn}
    new = _new_subscriber(hss, fields, _read_guss(args.guss))
    with _subscribers(hss, create=True) as store:
        store.add_all([new])
    print(f"added {args.impi} to {hss.db.resolve()}")
    return EXIT_OK


def cmd_hss_list(args: argparse.Namespace) -> int:
    hss = cfgmod.hss_config(load_config(args))
    with _subscribers(hss) as store:
        subs = store.list()
    if args.json:
        print(
            json.dumps([{"impi": s.impi, "amf": s.amf.hex(), "sqn": f"{s.sqn:012x}", "guss": s.has_guss} for s in subs])
        )
    else:
        for s in subs:
            print(f"{s.impi}\tamf={s.amf.hex()}\tsqn={s.sqn:012x}\tguss={'yes' if s.has_guss else 'no'}")
    return EXIT_OK


def cmd_hss_remove(args: argparse.Namespace) -> int:
    hss = cfgmod.hss_config(load_config(args))
    with _subscribers(hss) as store:
        store.remove(args.impi)
    print(f"removed {args.impi} from {hss.db.resolve()}")
    return EXIT_OK


def cmd_hss_set_guss(args: argparse.Namespace) -> int:
    hss = cfgmod.hss_config(load_config(args))
    with _subscribers(hss) as store:
        store.set_guss(args.impi, None if args.clear else _read_guss(args.guss))
    print(f"GUSS of {args.impi} {'cleared' if args.clear else 'set'} in {hss.db.resolve()}")
    return EXIT_OK


def cmd_hss_import(args: argparse.Namespace) -> int:
    """Provision subscribers from a TOML file of ``[[subscriber]]`` tables (config/subscribers.example.toml)."""
    hss = cfgmod.hss_config(load_config(args))
    try:
        doc = tomllib.loads(args.file.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise CliError(f"{args.file}: {exc}") from None
    entries = doc.get("subscriber", [])
    if not isinstance(entries, list) or set(doc) - {"subscriber"}:
        raise CliError(f"{args.file}: expected [[subscriber]] tables only")
    # Every entry is checked before any is stored, and they are stored in one transaction: a bad
    # entry, or one already provisioned, leaves the store as it was (fix the file, import again).
    new: list[NewSubscriber] = []
    with Progress(f"{args.file}: checked", len(entries)) as checked:
        for i, e in enumerate(entries):
            new.append(_import_entry(hss, args.file, i, e))
            checked(i + 1)
    with _subscribers(hss, create=True) as store, Progress(f"{args.file}: stored", len(new)) as stored:
        try:
            store.add_all(new, progress=stored)
        except StoreError as exc:
            raise CliError(f"{args.file}: {exc}; nothing imported") from None
    print(f"imported {len(new)} subscriber(s) into {hss.db.resolve()}")
    return EXIT_OK


def _import_entry(hss: HssConfig, file: Path, i: int, e: object) -> NewSubscriber:
    """Subscriber #``i`` of an import file, checked."""
    if not isinstance(e, dict):
        raise CliError(f"{file}: subscriber #{i + 1} is not a table")
    if problem := cfgmod.unknown_keys(e, ("impi", "k", "op", "opc", "amf", "sqn", "guss")):
        raise CliError(f"{file}: subscriber #{i + 1}: {problem}; nothing imported")
    try:
        guss_path = e.get("guss")
        guss = _read_guss(file.parent / str(guss_path)) if guss_path else None
        return _new_subscriber(hss, e, guss, flag="")
    except CliError as exc:
        raise CliError(f"{file}: subscriber #{i + 1}: {exc}; nothing imported") from None


def register(sub: Subcommands) -> None:
    cmds = command_group(sub, "hss", "HSS stub (Zh Diameter server) and its subscriber database")
    subcommand(cmds, "serve", "run the HSS stub: the Zh Diameter server the BSF asks for vectors", cmd_hss_serve)
    p = subcommand(cmds, "add-subscriber", "provision a subscriber (works while the HSS runs)", cmd_hss_add)
    p.add_argument("--impi", required=True, help="the subscriber's private identity (IMPI), user@realm")
    p.add_argument("--k", required=True, help="subscriber key K, 32 hex digits")
    p.add_argument("--op", help="operator variant OP, 32 hex digits (OPc is computed from it; or give --opc)")
    p.add_argument("--opc", help="OPc, 32 hex digits (or give --op)")
    p.add_argument("--amf", help="AMF, 4 hex digits (default 0000)")
    p.add_argument("--sqn", help="last used SQN, 12 hex digits (default 000000000000)")
    p.add_argument("--guss", type=Path, help="GUSS XML file (TS 29.109 Annex A)")
    p = subcommand(cmds, "list-subscribers", "list subscribers (never prints K or OPc)", cmd_hss_list)
    p.add_argument("--json", action="store_true", help="one JSON array instead of tab-separated lines")
    p = subcommand(cmds, "remove-subscriber", "delete a subscriber", cmd_hss_remove)
    p.add_argument("--impi", required=True, help="the IMPI to delete")
    p = subcommand(cmds, "set-guss", "set or clear a subscriber's GUSS", cmd_hss_set_guss)
    p.add_argument("--impi", required=True, help="the subscriber whose GUSS changes")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--guss", type=Path, help="GUSS XML file to store (TS 29.109 Annex A)")
    g.add_argument("--clear", action="store_true", help="remove the subscriber's GUSS")
    p = subcommand(cmds, "import", "provision subscribers from a TOML file, all or none", cmd_hss_import)
    p.add_argument("file", type=Path, help="TOML file of [[subscriber]] tables (see config/subscribers.example.toml)")
