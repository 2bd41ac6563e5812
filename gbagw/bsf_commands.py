"""``gbagw bsf ...``: serve Ub and Zn, rotate the KEK, show or revoke a live bootstrapping context."""

from __future__ import annotations

import argparse
import asyncio
import hmac
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from bsf.app import BsfService, create_bsf, open_store
from bsf.config import BsfConfig
from bsf.store import BootstrapContext, ContextStore, StoreUnavailable
from gba.keywrap import Keyring, KeyWrapError
from gbagw import config as cfgmod
from gbagw.cli_common import (
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_UNREACHABLE,
    CliError,
    Progress,
    Subcommands,
    admin_server,
    command_group,
    emit,
    load_config,
    serve_until_signal,
    subcommand,
)
from gbagw.listeners import bsf_listeners, check_listeners
from gbaio.kek import load_or_create_kek

log = logging.getLogger("gbagw")
T = TypeVar("T")


def _bsf_keyring(bsf: BsfConfig, *, create: bool) -> Keyring:
    """``bsf.kek_file`` seals (created 0600 when missing); ``bsf.kek_previous_files`` only open."""
    return Keyring(
        load_or_create_kek(bsf.kek_file, create=create),
        [load_or_create_kek(path, create=False) for path in bsf.kek_previous_files],
    )


def serving_keyring(bsf: BsfConfig) -> Keyring:
    keys = _bsf_keyring(bsf, create=True)
    # KEK ids are hashes, not keys: comparing them across instances shows a rotation's progress.
    log.info("KEK id %s seals; earlier KEK ids that still open: %s", keys.ids[0], ", ".join(keys.ids[1:]) or "none")
    return keys


def make_bsf(bsf: BsfConfig) -> BsfService:
    keys = serving_keyring(bsf)
    try:
        store = open_store(bsf.store, keys, bsf.store_busy_timeout)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    service = create_bsf(bsf, store)
    service.metrics.set_keyring(keys)
    return service


def cmd_bsf_serve(args: argparse.Namespace) -> int:
    bsf = cfgmod.bsf_config(load_config(args))
    check_listeners(bsf_listeners(bsf))
    service = make_bsf(bsf)

    async def start() -> None:
        port = await service.start()
        print(
            f"bsf: Ub on http://{bsf.ub_host}:{port}/ (B-TID domain {bsf.fqdn}, HSS {bsf.hss_host}:{bsf.hss_port})",
            flush=True,
        )
        print(f"bsf: Zn Diameter on {bsf.zn_host}:{service.zn_port}", flush=True)
        if service.zn_tls_port is not None:
            print(f"bsf: Zn Diameter over TLS on {bsf.zn_host}:{service.zn_tls_port}", flush=True)
        print(
            f"bsf: Zn Nbsp_GBA on {bsf.zn_host}:{service.sbi_port}, Zn SOAP on {bsf.zn_host}:{service.soap_port}",
            flush=True,
        )

    admin = admin_server(service.metrics.registry, readiness=service.ready_checks(), certificates=bsf.certificates)
    asyncio.run(serve_until_signal(start, service.stop, (admin, bsf.ub_host, bsf.admin_port)))
    return EXIT_OK


def _on_store(bsf: BsfConfig, op: Callable[[ContextStore], Awaitable[T]]) -> T:
    """Run ``op`` on the BSF's store next to running BSFs (SQLite waits for their writes, Redis is shared).

    A missing SQLite file is an error, not a new empty store: these commands read what a BSF wrote."""
    if bsf.store.startswith("sqlite:///") and not (db := Path(bsf.store[len("sqlite:///") :])).exists():
        raise CliError(
            f"no BSF context store at {db.resolve()} (bsf.store): no BSF has run with this configuration; "
            "check --data-dir / GBAGW_DATA_DIR"
        )
    try:
        store = open_store(bsf.store, _bsf_keyring(bsf, create=False))
    except ValueError as exc:
        raise CliError(str(exc)) from None

    async def run() -> T:
        try:
            return await op(store)
        finally:
            await store.close()

    try:
        return asyncio.run(run())
    except StoreUnavailable as exc:
        raise CliError(f"context store unavailable: {exc}", EXIT_UNREACHABLE) from None


async def _find_context(store: ContextStore, impi: str | None, btid: str | None) -> BootstrapContext:
    ctx = await store.context_of(impi) if impi is not None else await store.get_context(btid or "")
    if ctx is None:
        raise CliError(f"no live bootstrapping context for {impi or btid}", EXIT_REFUSED)
    return ctx


def cmd_bsf_context(args: argparse.Namespace) -> int:
    """What the BSF holds for an IMPI or a B-TID, without keys (TS 33.220 4.5.2)."""
    ctx = _on_store(cfgmod.bsf_config(load_config(args)), lambda store: _find_context(store, args.impi, args.btid))
    out = {
        "btid": ctx.btid,
        "impi": ctx.impi,
        "created": ctx.created.isoformat(),
        "expires": ctx.expires.isoformat(),
        "gba_type": "GBA_U" if ctx.gba_u else "GBA_ME",
        "guss": ctx.guss is not None,
    }
    emit(out, args.json)
    return EXIT_OK


def cmd_bsf_revoke(args: argparse.Namespace) -> int:
    """Delete a context before its lifetime ends (a lost device, a removed subscriber): Zn answers 5403."""

    async def revoke(store: ContextStore) -> BootstrapContext:
        ctx = await _find_context(store, args.impi, args.btid)
        await store.delete_context(ctx.btid)
        return ctx

    ctx = _on_store(cfgmod.bsf_config(load_config(args)), revoke)
    log.info("revoked btid=%s of %s (was valid until %s)", ctx.btid, ctx.impi, ctx.expires.isoformat())
    print(
        f"revoked {ctx.btid} of {ctx.impi}: Zn answers 5403 for it from now on; NAFs that fetched its keys "
        f"already keep them until {ctx.expires.isoformat()} (TS 33.220 has no revocation towards NAFs)"
    )
    return EXIT_OK


def cmd_bsf_rotate_kek(args: argparse.Namespace) -> int:
    """Re-seal every stored key under a new KEK, then install it (old one kept as <kek_file>.old).

    Offline: stop every BSF/MEF using this store first; they hold the KEK in memory.
    """
    bsf = cfgmod.bsf_config(load_config(args))
    old_keys = _bsf_keyring(bsf, create=False)  # records sealed under the earlier KEKs are re-sealed too
    old = load_or_create_kek(bsf.kek_file, create=False)
    new = load_or_create_kek(args.new_kek)  # an existing file is checked; a missing one is created (0600)
    if hmac.compare_digest(old, new):
        raise CliError("the new KEK equals the current one")
    try:
        store = open_store(bsf.store, old_keys)
    except ValueError as exc:
        raise CliError(str(exc)) from None

    async def rotate() -> int:
        try:
            with Progress("re-sealed") as progress:
                return await store.rekey(Keyring(new), progress)
        finally:
            await store.close()

    try:
        count = asyncio.run(rotate())
    except KeyWrapError as exc:
        raise CliError(f"a stored record does not open under the current KEK ({exc}); nothing changed") from None
    backup = bsf.kek_file.with_name(bsf.kek_file.name + ".old")
    fd = os.open(backup, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(old)
    tmp = bsf.kek_file.with_name(bsf.kek_file.name + ".new")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(new)
    os.replace(tmp, bsf.kek_file)
    print(
        f"re-sealed {count} record(s); {bsf.kek_file.resolve()} now holds the new KEK, "
        f"the old one is in {backup.resolve()}"
    )
    return EXIT_OK


def register(sub: Subcommands) -> None:
    cmds = command_group(sub, "bsf", "Bootstrapping Server Function")
    subcommand(cmds, "serve", "run the BSF: Ub (HTTP) for UEs, Zn (Diameter, SBI, SOAP) for NAFs", cmd_bsf_serve)
    p = subcommand(cmds, "rotate-kek", "re-seal stored keys under a new KEK (stop the BSFs first)", cmd_bsf_rotate_kek)
    p.add_argument("--new-kek", type=Path, required=True, help="KEK file to rotate to (created if missing)")
    for name, func, help_text in (
        ("context", cmd_bsf_context, "show the live bootstrapping context of an IMPI or a B-TID (never keys)"),
        ("revoke", cmd_bsf_revoke, "revoke the live context of an IMPI or a B-TID: Zn answers 5403 for it"),
    ):
        p = subcommand(cmds, name, help_text, func)
        which = p.add_mutually_exclusive_group(required=True)
        which.add_argument("--impi", help="the subscriber's private identity (its latest context)")
        which.add_argument("--btid", help="the B-TID the UE got from the bootstrap (TS 33.220 4.5.2)")
        if name == "context":
            p.add_argument("--json", action="store_true", help="one JSON object instead of key: value lines")
