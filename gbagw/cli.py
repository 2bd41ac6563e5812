"""The ``gbagw`` command (DESIGN.md "CLI contract").

Exit codes: 0 success, 2 usage or configuration error, 3 refused by the peer, 4 peer unreachable.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime as dt
import hmac
import json
import logging
import os
import platform
import signal
import sys
import tomllib
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from bsf.app import BsfService, create_bsf, open_store
from bsf.config import BsfConfig
from bsf.mef.server import MefService, create_mef
from bsf.store import BootstrapContext, ContextStore, StoreUnavailable
from gba import kdf, milenage, onem2m, pki, ue
from gba.keywrap import Keyring, KeyWrapError
from gba.nai import impi_problem
from gba.safexml import XmlError
from gba.uss import parse_guss
from gbagw import __version__, config_cmd
from gbagw import config as cfgmod
from gbagw.enrolee_client import EnrolmentError, enrol_cert, enrol_psk
from gbagw.listeners import (
    ListenerError,
    bsf_listeners,
    check_listeners,
    hss_listeners,
    mef_listeners,
    naf_listeners,
)
from gbagw.ue_client import UaRefused, UbRefused, bootstrap, ua_get
from gbaio import logs
from gbaio.admin import AdminServer, process_registry
from gbaio.errors import os_reason
from gbaio.kek import KekFileError, load_or_create_kek
from gbaio.sqlite import DatabaseOpenError
from hss_stub.app import create_hss
from hss_stub.config import HssConfig
from hss_stub.store import NewSubscriber, StoreError, SubscriberStore
from naf.app import NafService, create_naf
from naf.mef_client import KmRefused, MefClient
from naf.zn_client import NafKey, ZnRefused, ZnUnavailable
from naf.zn_http_clients import create_zn_client

log = logging.getLogger("gbagw")
T = TypeVar("T")

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_REFUSED = 3
EXIT_UNREACHABLE = 4


class CliError(Exception):
    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.code = code


def _hex(name: str, value: object, length: int) -> bytes:
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


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, help="TOML file (default: embedded defaults, see config/gbagw.toml)")
    p.add_argument("--data-dir", type=Path, default=None, help="data directory (default ./var)")


def _load(args: argparse.Namespace) -> cfgmod.LoadedConfig:
    cfg = cfgmod.load(args.config, args.data_dir)
    log = cfgmod.log_config(cfg)
    logs.setup(log.level, log.format)
    return cfg


def _open_hss_store(hss: HssConfig) -> SubscriberStore:
    return SubscriberStore(hss.db, load_or_create_kek(hss.kek_file))


async def _serve_until_signal(
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


# --- hss -------------------------------------------------------------------------------------------


def cmd_hss_serve(args: argparse.Namespace) -> int:
    cfg = _load(args)
    hss = cfgmod.hss_config(cfg)
    check_listeners(hss_listeners(hss))
    store = _open_hss_store(hss)
    service = create_hss(hss, store)

    async def start() -> None:
        port = await service.start()
        print(f"hss: Zh Diameter on {hss.zh_host}:{port} (Origin-Host {hss.fqdn})", flush=True)

    admin = AdminServer([process_registry(__version__), service.metrics.registry], [service.readiness])
    try:
        asyncio.run(_serve_until_signal(start, service.stop, (admin, hss.zh_host, hss.admin_port)))
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
    k = _hex(f"{flag}k", fields.get("k"), 16)
    op, opc = fields.get("op"), fields.get("opc")
    if (op is None) == (opc is None):
        raise CliError(f"give exactly one of {flag}op and {flag}opc")
    opc_b = milenage.compute_opc(k, _hex(f"{flag}op", op, 16)) if op is not None else _hex(f"{flag}opc", opc, 16)
    amf = fields.get("amf")
    amf_b = _hex(f"{flag}amf", amf, 2) if amf is not None else hss.default_amf
    sqn = fields.get("sqn")
    sqn_v = int.from_bytes(_hex(f"{flag}sqn", sqn, 6), "big") if sqn is not None else 0
    return NewSubscriber(impi, k, opc_b, amf_b, sqn_v, guss)


def cmd_hss_add(args: argparse.Namespace) -> int:
    hss = cfgmod.hss_config(_load(args))
    fields = {"impi": args.impi, "k": args.k, "op": args.op, "opc": args.opc, "amf": args.amf, "sqn": args.sqn}
    new = _new_subscriber(hss, fields, _read_guss(args.guss))
    store = _open_hss_store(hss)
    try:
        store.add_all([new])
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
    if not isinstance(entries, list) or set(doc) - {"subscriber"}:
        raise CliError(f"{args.file}: expected [[subscriber]] tables only")
    # Every entry is checked before any is stored, and they are stored in one transaction: a bad
    # entry, or one already provisioned, leaves the store as it was (fix the file, import again).
    new: list[NewSubscriber] = []
    for i, e in enumerate(entries):
        if not isinstance(e, dict):
            raise CliError(f"{args.file}: subscriber #{i + 1} is not a table")
        if problem := cfgmod.unknown_keys(e, ("impi", "k", "op", "opc", "amf", "sqn", "guss")):
            raise CliError(f"{args.file}: subscriber #{i + 1}: {problem}; nothing imported")
        try:
            guss_path = e.get("guss")
            guss = _read_guss(args.file.parent / str(guss_path)) if guss_path else None
            new.append(_new_subscriber(hss, e, guss, flag=""))
        except CliError as exc:
            raise CliError(f"{args.file}: subscriber #{i + 1}: {exc}; nothing imported") from None
    store = _open_hss_store(hss)
    try:
        store.add_all(new)
    except StoreError as exc:
        raise CliError(f"{args.file}: {exc}; nothing imported") from None
    finally:
        store.close()
    print(f"imported {len(new)} subscriber(s)")
    return EXIT_OK


# --- bsf / up ------------------------------------------------------------------------------------


def _bsf_keyring(bsf: BsfConfig, *, create: bool) -> Keyring:
    """``bsf.kek_file`` seals (created 0600 when missing); ``bsf.kek_previous_files`` only open."""
    return Keyring(
        load_or_create_kek(bsf.kek_file, create=create),
        [load_or_create_kek(path, create=False) for path in bsf.kek_previous_files],
    )


def _serving_keyring(bsf: BsfConfig) -> Keyring:
    keys = _bsf_keyring(bsf, create=True)
    # KEK ids are hashes, not keys: comparing them across instances shows a rotation's progress.
    log.info("KEK id %s seals; earlier KEK ids that still open: %s", keys.ids[0], ", ".join(keys.ids[1:]) or "none")
    return keys


def _make_bsf(bsf: BsfConfig) -> BsfService:
    keys = _serving_keyring(bsf)
    try:
        store = open_store(bsf.store, keys)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    service = create_bsf(bsf, store)
    service.metrics.set_keyring(keys)
    return service


def cmd_bsf_serve(args: argparse.Namespace) -> int:
    bsf = cfgmod.bsf_config(_load(args))
    check_listeners(bsf_listeners(bsf))
    service = _make_bsf(bsf)

    async def start() -> None:
        port = await service.start()
        print(
            f"bsf: Ub on http://{bsf.ub_host}:{port}/ (B-TID domain {bsf.fqdn}, HSS {bsf.hss_host}:{bsf.hss_port})",
            flush=True,
        )
        print(f"bsf: Zn Diameter on {bsf.zn_host}:{service.zn_port}", flush=True)
        print(
            f"bsf: Zn Nbsp_GBA on {bsf.zn_host}:{service.sbi_port}, Zn SOAP on {bsf.zn_host}:{service.soap_port}",
            flush=True,
        )

    admin = AdminServer([process_registry(__version__), service.metrics.registry], [service.readiness])
    asyncio.run(_serve_until_signal(start, service.stop, (admin, bsf.ub_host, bsf.admin_port)))
    return EXIT_OK


def _on_store(bsf: BsfConfig, op: Callable[[ContextStore], Awaitable[T]]) -> T:
    """Run ``op`` on the BSF's store next to running BSFs (SQLite waits for their writes, Redis is shared)."""
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
    ctx = _on_store(cfgmod.bsf_config(_load(args)), lambda store: _find_context(store, args.impi, args.btid))
    out = {
        "btid": ctx.btid,
        "impi": ctx.impi,
        "created": ctx.created.isoformat(),
        "expires": ctx.expires.isoformat(),
        "gba_type": "GBA_U" if ctx.gba_u else "GBA_ME",
        "guss": ctx.guss is not None,
    }
    _emit(out, args.json)
    return EXIT_OK


def cmd_bsf_revoke(args: argparse.Namespace) -> int:
    """Delete a context before its lifetime ends (a lost device, a removed subscriber): Zn answers 5403."""

    async def revoke(store: ContextStore) -> BootstrapContext:
        ctx = await _find_context(store, args.impi, args.btid)
        await store.delete_context(ctx.btid)
        return ctx

    ctx = _on_store(cfgmod.bsf_config(_load(args)), revoke)
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
    bsf = cfgmod.bsf_config(_load(args))
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
            return await store.rekey(Keyring(new))
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
    print(f"re-sealed {count} record(s); {bsf.kek_file} now holds the new KEK, the old one is in {backup}")
    return EXIT_OK


def cmd_up(args: argparse.Namespace) -> int:
    """HSS stub + BSF + demo NAF + MEF in one process on loopback, SQLite under --data-dir."""
    cfg = _load(args)
    hss = cfgmod.hss_config(cfg)
    mef = cfgmod.mef_config(cfg)
    # One process, one admin listener (bsf.admin_port); hss.admin_port and naf.admin_port stay unused.
    check_listeners(
        [
            *hss_listeners(hss, admin=False),
            *bsf_listeners(cfgmod.bsf_config(cfg)),
            *naf_listeners(cfgmod.naf_config(cfg), admin=False),
            *mef_listeners(mef),
        ]
    )
    hss_store = _open_hss_store(hss)
    hss_service = create_hss(hss, hss_store)
    bsf_service: BsfService | None = None
    naf_service: NafService | None = None
    mef_service: MefService | None = None
    admin = AdminServer([process_registry(__version__)], [])
    pki_files = (mef.cert_file, mef.key_file, mef.ca_file)
    if not any(f.exists() for f in pki_files) and len({f.parent for f in pki_files}) == 1:
        # A lab convenience: gbagw up makes its own test PKI so the MEF certificate listeners can start.
        write_test_pki(mef.cert_file.parent, mef.fqdn, ["CAE-example"], ["maf.gba.test"])
        print(f"mef: created a lab test PKI in {mef.cert_file.parent} (CA, mef, CAE-example, maf.gba.test)")

    async def start() -> None:
        nonlocal bsf_service, naf_service, mef_service
        hss_port = await hss_service.start()
        # gbagw up wires the BSF's Zh peer to the HSS and the demo NAF's Zn peer to the BSF (DESIGN.md).
        bsf = dataclasses.replace(cfgmod.bsf_config(cfg), hss_host=hss.zh_host, hss_port=hss_port)
        bsf_service = _make_bsf(bsf)
        ub_port = await bsf_service.start()
        naf = dataclasses.replace(cfgmod.naf_config(cfg), bsf_host=bsf.zn_host, bsf_port=bsf_service.zn_port or 0)
        naf_service = create_naf(naf)
        naf_port = await naf_service.start()
        mef_service = _make_mef(cfg, bsf_service.store)  # one store for Ub, Zn and the MEF
        mef_ports = await mef_service.start()
        print(f"hss: Zh Diameter on {hss.zh_host}:{hss_port} (Origin-Host {hss.fqdn})")
        print(f"bsf: Ub on http://{bsf.ub_host}:{ub_port}/ (B-TID domain {bsf.fqdn})")
        print(f"bsf: Zn Diameter on {bsf.zn_host}:{bsf_service.zn_port}")
        print(
            f"bsf: Zn Nbsp_GBA on {bsf.zn_host}:{bsf_service.sbi_port}, Zn SOAP on {bsf.zn_host}:"
            f"{bsf_service.soap_port}"
        )
        print(f"naf: demo NAF on http://{naf.host}:{naf_port}/ (Ua digest realm 3GPP-bootstrapping@{naf.fqdn})")
        print(
            f"mef: Enrolee TLS-PSK on {mef.host}:{mef_ports['psk']}, certificate on :{mef_ports['cert']}, "
            f"MAF retrieval on :{mef_ports['maf']} (MEF {mef.fqdn})"
        )
        # One admin listener for the whole process: every service's registry and readiness check.
        admin.registries += [hss_service.metrics.registry, bsf_service.metrics.registry, naf_service.metrics.registry]
        admin.checks += [hss_service.readiness, bsf_service.readiness, naf_service.readiness]
        admin_port = await admin.start(bsf.ub_host, bsf.admin_port)
        print(f"admin: http://{bsf.ub_host}:{admin_port}/metrics /healthz /readyz")
        print(f"data: {cfg.data_dir.resolve()}   stop with Ctrl-C", flush=True)

    async def stop() -> None:
        await admin.stop()
        if mef_service is not None:
            await mef_service.stop()
        if naf_service is not None:
            await naf_service.stop()
        if bsf_service is not None:
            await bsf_service.stop()
        await hss_service.stop()

    try:
        asyncio.run(_serve_until_signal(start, stop))
    finally:
        hss_store.close()
    return EXIT_OK


# --- ue ------------------------------------------------------------------------------------------


def _emit(out: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(out))
    else:
        for key, value in out.items():
            print(f"{key}: {value}")


def _ua_id(value: str | None) -> bytes:
    return _hex("--ua-id", value, 5) if value is not None else kdf.UaProtocol.HTTP_DIGEST.value


def cmd_ue_bootstrap(args: argparse.Namespace) -> int:
    k = _hex("--k", args.k, 16)
    opc = milenage.compute_opc(k, _hex("--op", args.op, 16)) if args.op else _hex("--opc", args.opc, 16)
    usim = ue.Usim(k, opc)
    if args.state is not None:
        # Checked before the bootstrap: a state that cannot be saved would lose the USIM's SQN and Ks.
        usim.seq_ms = _saved_seq_ms(args.state, usim.seq_ms)
        _check_writable(args.state)
    realm = args.realm or urlsplit(args.bsf).hostname or ""
    client = ue.UeClient(usim, args.impi, realm, mode=ue.UeMode.GBA_U if args.gba_u else ue.UeMode.GBA_ME)
    try:
        boot = asyncio.run(bootstrap(args.bsf, client))
    except UbRefused as exc:
        raise CliError(str(exc), EXIT_REFUSED) from None
    except ue.UeError as exc:
        raise CliError(f"UE stopped: {exc}", EXIT_REFUSED) from None
    except (OSError, TimeoutError) as exc:
        raise CliError(f"BSF unreachable: {exc}", EXIT_UNREACHABLE) from None
    if args.state is not None:
        _save_state(args.state, ue.state_to_dict(usim, boot), boot.btid)
    out: dict[str, Any] = {"btid": boot.btid, "lifetime": boot.lifetime.isoformat(), "gba_type": boot.mode.value}
    if args.show_keys:
        out["ks"] = boot.ks.hex()
        out["rand"] = boot.rand.hex()
    _emit(out, args.json)
    return EXIT_OK


def _read_state(state: Path) -> dict[str, Any]:
    try:
        saved = json.loads(state.read_text())
    except OSError as exc:
        raise CliError(f"cannot read UE state {state}: {os_reason(exc, state)}") from None
    except ValueError as exc:
        raise CliError(f"cannot read UE state {state}: not JSON ({exc})") from None
    if not isinstance(saved, dict):
        raise CliError(f"cannot read UE state {state}: not a JSON object")
    return saved


def _saved_seq_ms(state: Path, fresh: list[int]) -> list[int]:
    """The USIM's SEQ_MS array from a state file (a fresh USIM's when the file does not exist yet)."""
    if not state.exists():
        return fresh
    seq_ms = _read_state(state).get("seq_ms", fresh)
    if not (
        isinstance(seq_ms, list)
        and len(seq_ms) == len(fresh)
        and all(isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in seq_ms)
    ):
        raise CliError(f"UE state {state}: seq_ms must be a list of {len(fresh)} non-negative integers")
    return seq_ms


def _check_writable(state: Path) -> None:
    folder = state.parent
    if not folder.is_dir() or not os.access(folder, os.W_OK) or state.is_dir():
        raise CliError(f"cannot write UE state {state}: {folder} is not a writable directory")


def _save_state(state: Path, data: dict[str, Any], btid: str) -> None:
    """Write-then-rename, mode 0600 (it holds Ks): a crash leaves the earlier state, never half of one."""
    tmp = state.with_name(state.name + ".tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(data, f)
        os.replace(tmp, state)
    except OSError as exc:
        raise CliError(f"bootstrapped as {btid}, but cannot write UE state {state}: {os_reason(exc)}") from None


def _saved_bootstrap(state: Path) -> ue.Bootstrap:
    saved = _read_state(state)
    try:
        boot = ue.bootstrap_from_dict(saved)
    except (ValueError, KeyError, TypeError) as exc:
        raise CliError(f"cannot read UE state {state}: {type(exc).__name__}: {exc}") from None
    if boot is None:
        raise CliError(f"{state} holds no bootstrap; run gbagw ue bootstrap --state first")
    if boot.lifetime.tzinfo is None:
        raise CliError(f"cannot read UE state {state}: the lifetime has no UTC offset")
    if boot.lifetime < dt.datetime.now(dt.UTC):
        raise CliError("the bootstrap in the state file has expired; bootstrap again")
    return boot


def cmd_ue_ua_get(args: argparse.Namespace) -> int:
    boot = _saved_bootstrap(args.state)
    try:
        status, body = asyncio.run(ua_get(args.url, boot))
    except UaRefused as exc:
        raise CliError(str(exc), EXIT_REFUSED) from None
    except (OSError, TimeoutError) as exc:
        raise CliError(f"NAF unreachable: {exc}", EXIT_UNREACHABLE) from None
    sys.stdout.write(body.decode("utf-8", "replace"))
    if status != 200:
        raise CliError(f"NAF answered {status} (a 401 means: bootstrap again)", EXIT_REFUSED)
    return EXIT_OK


def cmd_ue_naf_key(args: argparse.Namespace) -> int:
    boot = _saved_bootstrap(args.state)
    try:
        naf_id = kdf.NafId(args.naf_fqdn, _ua_id(args.ua_id))
    except kdf.KdfError as exc:
        raise CliError(str(exc)) from None
    me, uicc = boot.naf_keys(naf_id)
    out = {"btid": boot.btid, "naf_id": naf_id.encode().hex(), "ks_naf" if uicc is None else "ks_ext_naf": me.hex()}
    if uicc is not None:
        out["ks_int_naf"] = uicc.hex()
    _emit(out, args.json)
    return EXIT_OK


# --- mef / enrolee --------------------------------------------------------------------------------


def write_test_pki(out: Path, mef_fqdn: str, enrolees: Sequence[str], mafs: Sequence[str]) -> list[Path]:
    """CA + MEF + Enrolee + MAF certificates for labs; private keys 0600."""
    out.mkdir(parents=True, exist_ok=True)
    ca = pki.make_ca()
    written = []

    def write(name: str, data: bytes, secret: bool) -> None:
        path = out / name
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if secret else 0o644)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        written.append(path)

    write("ca.pem", ca.cert_pem, False)
    write("ca.key", ca.key_pem, True)
    for name in (mef_fqdn, *enrolees, *mafs):
        leaf = pki.issue(ca, name)
        stem = "mef" if name == mef_fqdn else name
        write(f"{stem}.pem", leaf.cert_pem, False)
        write(f"{stem}.key", leaf.key_pem, True)
    return written


def cmd_mef_gen_test_pki(args: argparse.Namespace) -> int:
    try:
        paths = write_test_pki(args.out, args.mef_fqdn, args.enrolee, args.maf)
    except OSError as exc:
        raise CliError(f"cannot write the test PKI to {args.out}: {os_reason(exc)}") from None
    for p in paths:
        print(p)
    return EXIT_OK


def _make_mef(cfg: cfgmod.LoadedConfig, store: ContextStore) -> MefService:
    mef = cfgmod.mef_config(cfg)
    cfgmod.check_mef_files(mef)
    return create_mef(mef, store)


def cmd_mef_serve(args: argparse.Namespace) -> int:
    cfg = _load(args)
    bsf = cfgmod.bsf_config(cfg)
    check_listeners(mef_listeners(cfgmod.mef_config(cfg)))
    service = _make_mef(cfg, open_store(bsf.store, _serving_keyring(bsf)))

    async def start() -> None:
        ports = await service.start()
        print(
            f"mef: Enrolee TLS-PSK on {service.config.host}:{ports['psk']}, certificate on :{ports['cert']}, "
            f"MAF retrieval on :{ports['maf']} (MEF {service.config.fqdn})",
            flush=True,
        )

    async def stop() -> None:
        await service.stop()
        await service.store.close()

    asyncio.run(_serve_until_signal(start, stop))
    return EXIT_OK


def _host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url if "//" in url else "//" + url)
    if not parts.hostname or not parts.port:
        raise CliError(f"--mef must name a host and port, e.g. tls://127.0.0.1:8443 (got {url!r})")
    return parts.hostname, parts.port


def cmd_enrolee_enrol(args: argparse.Namespace) -> int:
    host, port = _host_port(args.mef)
    try:
        if args.psk_id is not None:
            if args.psk is None:
                raise CliError("--psk-id needs --psk HEX")
            try:
                kpm = bytes.fromhex(args.psk)
            except ValueError:
                raise CliError("--psk must be hex") from None
            result = enrol_psk(host, port, args.mef_fqdn, args.psk_id, kpm)
        else:
            if not (args.cert and args.key and args.ca):
                raise CliError("give --psk-id/--psk, or --cert, --key and --ca")
            result = enrol_cert(host, port, args.mef_fqdn, args.cert, args.key, args.ca)
    except EnrolmentError as exc:
        raise CliError(str(exc), EXIT_REFUSED) from None
    except ConnectionError as exc:
        raise CliError(str(exc), EXIT_UNREACHABLE) from None
    out: dict[str, Any] = {"keid": result.keid, "enrolee_id": result.enrolee_id, "expires": result.expires}
    if args.maf:
        out["km"] = onem2m.km(result.ke, args.maf).hex() if args.show_keys else f"(derived for {args.maf})"
    if args.show_keys:
        out["ke"] = result.ke.hex()
    _emit(out, args.json)
    return EXIT_OK


def cmd_naf_fetch_km(args: argparse.Namespace) -> int:
    host, port = _host_port(args.mef)
    client = MefClient(host, port, args.mef_fqdn, args.cert, args.key, args.ca)
    try:
        cred = client.fetch_km(args.keid)
    except KmRefused as exc:
        raise CliError(str(exc), EXIT_UNREACHABLE if exc.status == 0 else EXIT_REFUSED) from None
    except ConnectionError as exc:
        raise CliError(str(exc), EXIT_UNREACHABLE) from None
    except onem2m.OneM2MError as exc:
        raise CliError(str(exc)) from None
    _emit({"kmid": cred.kmid, "enrolee_id": cred.enrolee_id, "lifetime": cred.lifetime, "km": cred.km.hex()}, args.json)
    return EXIT_OK


# --- naf -----------------------------------------------------------------------------------------


def cmd_naf_serve(args: argparse.Namespace) -> int:
    naf = cfgmod.naf_config(_load(args))
    check_listeners(naf_listeners(naf))
    service = create_naf(naf)

    async def start() -> None:
        port = await service.start()
        print(f"naf: demo NAF on http://{naf.host}:{port}/ (Zn via {naf.zn_target})", flush=True)

    admin = AdminServer([process_registry(__version__), service.metrics.registry], [service.readiness])
    asyncio.run(_serve_until_signal(start, service.stop, (admin, naf.host, naf.admin_port)))
    return EXIT_OK


def cmd_naf_fetch_key(args: argparse.Namespace) -> int:
    naf = cfgmod.naf_config(_load(args))
    try:
        naf_id = kdf.NafId(args.naf_fqdn, _ua_id(args.ua_id))
    except kdf.KdfError as exc:
        raise CliError(str(exc)) from None
    if args.via:
        naf = dataclasses.replace(naf, zn_via=args.via)
    client = create_zn_client(naf)

    async def fetch() -> NafKey:
        try:
            return await client.fetch_key(args.btid, naf_id, args.gsid or None)
        finally:
            await client.close()

    try:
        key = asyncio.run(fetch())
    except ZnRefused as exc:
        raise CliError(str(exc), EXIT_REFUSED) from None
    except ZnUnavailable as exc:
        raise CliError(f"BSF unavailable: {exc}", EXIT_UNREACHABLE) from None
    out: dict[str, Any] = {
        "btid": key.btid,
        "impi": key.impi,
        "gba_type": "GBA_U" if key.uicc_key is not None else "GBA_ME",
        "expires": key.expires.isoformat(),
        "created": key.created.isoformat() if key.created else None,
        "uss": [u.gsid for u in key.uss],
    }
    # NAF key material is what this lab command is for; it goes to stdout only, never to logs.
    out["ks_naf" if key.uicc_key is None else "ks_ext_naf"] = key.me_key.hex()
    if key.uicc_key is not None:
        out["ks_int_naf"] = key.uicc_key.hex()
    _emit(out, args.json)
    return EXIT_OK


# --- config --------------------------------------------------------------------------------------


def cmd_config_show(args: argparse.Namespace) -> int:
    cfg = _load(args)
    print(config_cmd.show_json(cfg) if args.json else config_cmd.show_toml(cfg), end="" if not args.json else "\n")
    return EXIT_OK


def cmd_config_check(args: argparse.Namespace) -> int:
    unknown = [s for s in args.services if s not in config_cmd.SERVICES]
    if unknown:
        raise CliError(f"unknown service {unknown[0]!r}: choose from {', '.join(config_cmd.SERVICES)}")
    cfg = _load(args)
    verdicts = config_cmd.check(cfg, args.services or config_cmd.SERVICES, ports=args.ports)
    for v in verdicts:
        print(f"{v.service}: error: {v.problem}" if v.problem else f"{v.service}: ok")
        for note in v.notes:
            print(f"  note: {note}")
    return EXIT_USAGE if any(v.problem for v in verdicts) else EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gbagw", description="GBA bootstrapping gateway (BSF/MEF, HSS stub, NAF kit)")
    parser.add_argument(
        "--version", action="version", version=f"gbagw {__version__} (Python {platform.python_version()})"
    )
    sub = parser.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="run HSS stub + BSF + demo NAF + MEF on loopback")
    _common(up)
    up.set_defaults(func=cmd_up)

    conf = sub.add_parser("config", help="show or check the configuration the services would run with")
    csub = conf.add_subparsers(dest="config_command", required=True)
    p = csub.add_parser("show", help="the merged configuration (defaults < file < GBAGW_*), credentials hidden")
    _common(p)
    p.add_argument("--json", action="store_true", help="JSON with the source of each non-default value")
    p.set_defaults(func=cmd_config_show)
    p = csub.add_parser(
        "check", help="validate each service's configuration as its serve command would; exit 2 if any fails"
    )
    _common(p)
    p.add_argument(
        "services",
        nargs="*",
        metavar="SERVICE",
        help="hss, bsf, naf, mef (default: all)",
    )
    p.add_argument(
        "--ports",
        action="store_true",
        help="also bind and release every listening port (run where the services will run, before they start)",
    )
    p.set_defaults(func=cmd_config_check)

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
    p.set_defaults(func=cmd_bsf_serve)
    p = bsub.add_parser("rotate-kek", help="re-seal stored keys under a new KEK (stop the BSFs first)")
    _common(p)
    p.add_argument("--new-kek", type=Path, required=True, help="KEK file to rotate to (created if missing)")
    p.set_defaults(func=cmd_bsf_rotate_kek)
    for name, func, help_text in (
        ("context", cmd_bsf_context, "show the live bootstrapping context of an IMPI or a B-TID (never keys)"),
        ("revoke", cmd_bsf_revoke, "revoke the live context of an IMPI or a B-TID: Zn answers 5403 for it"),
    ):
        p = bsub.add_parser(name, help=help_text)
        _common(p)
        which = p.add_mutually_exclusive_group(required=True)
        which.add_argument("--impi")
        which.add_argument("--btid")
        if name == "context":
            p.add_argument("--json", action="store_true")
        p.set_defaults(func=func)

    naf = sub.add_parser("naf", help="NAF kit: demo NAF and Zn client")
    nsub = naf.add_subparsers(dest="naf_command", required=True)
    p = nsub.add_parser("serve", help="run the demo NAF behind Ua HTTP digest")
    _common(p)
    p.set_defaults(func=cmd_naf_serve)
    p = nsub.add_parser("fetch-key", help="ask the BSF over Zn for a NAF key")
    _common(p)
    p.add_argument("--btid", required=True)
    p.add_argument("--naf-fqdn", required=True)
    p.add_argument("--ua-id", help="Ua security protocol id, 10 hex digits (default 0100000002)")
    p.add_argument("--gsid", action="append", default=[])
    p.add_argument("--via", choices=("diameter", "sbi", "soap"), help="Zn flavour (default: naf.zn_via)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_naf_fetch_key)
    p = nsub.add_parser("fetch-km", help="as a MAF, fetch Km by KeID from the MEF (mutual TLS)")
    p.add_argument("--mef", required=True, help="MEF MAF listener, e.g. tls://127.0.0.1:8445")
    p.add_argument("--mef-fqdn", default="mef.gba.test")
    p.add_argument("--keid", required=True)
    p.add_argument("--cert", type=Path, required=True, help="the MAF's FQDN certificate")
    p.add_argument("--key", type=Path, required=True)
    p.add_argument("--ca", type=Path, required=True)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_naf_fetch_km)

    mef = sub.add_parser("mef", help="oneM2M MEF direct frameworks (TLS-PSK / certificates, Km for MAFs)")
    msub = mef.add_subparsers(dest="mef_command", required=True)
    p = msub.add_parser("serve", help="run the Enrolee and MAF TLS listeners")
    _common(p)
    p.set_defaults(func=cmd_mef_serve)
    p = msub.add_parser("gen-test-pki", help="write a lab CA with MEF, Enrolee and MAF certificates")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--mef-fqdn", default="mef.gba.test")
    p.add_argument("--enrolee", action="append", default=[], help="Enrolee certificate name (repeatable)")
    p.add_argument("--maf", action="append", default=[], help="MAF FQDN (repeatable)")
    p.set_defaults(func=cmd_mef_gen_test_pki)

    enr = sub.add_parser("enrolee", help="oneM2M Enrolee: enrol with a MEF")
    esub = enr.add_subparsers(dest="enrolee_command", required=True)
    p = esub.add_parser("enrol", help="run the MEF handshake and derive Ke/KeID")
    p.add_argument("--mef", required=True, help="MEF listener, e.g. tls://127.0.0.1:8443")
    p.add_argument("--mef-fqdn", default="mef.gba.test", help="MEF FQDN (SNI, KeID domain, certificate name)")
    p.add_argument("--psk-id", help="KpmID (pre-provisioned symmetric key framework)")
    p.add_argument("--psk", help="Kpm, hex")
    p.add_argument("--cert", type=Path, help="Enrolee certificate (certificate-based framework)")
    p.add_argument("--key", type=Path)
    p.add_argument("--ca", type=Path, help="trust anchors for the MEF certificate")
    p.add_argument("--maf", help="also derive Km for this MAF-ID")
    p.add_argument("--show-keys", action="store_true", help="print Ke / Km (lab use)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_enrolee_enrol)

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
    p.add_argument("--show-keys", action="store_true", help="also print Ks and RAND (lab use)")
    p.add_argument("--realm", help="digest realm to send first (default: the BSF URL's host)")
    p.set_defaults(func=cmd_ue_bootstrap)
    p = usub.add_parser("naf-key", help="derive Ks_(ext/int)_NAF from a saved bootstrap")
    p.add_argument("--state", type=Path, required=True)
    p.add_argument("--naf-fqdn", required=True)
    p.add_argument("--ua-id")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_ue_naf_key)
    p = usub.add_parser("ua-get", help="GET a NAF URL over Ua HTTP Digest with a saved bootstrap")
    p.add_argument("--state", type=Path, required=True)
    p.add_argument("--url", required=True, help="e.g. http://127.0.0.1:8090/hello")
    p.set_defaults(func=cmd_ue_ua_get)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except (CliError, cfgmod.ConfigError, KekFileError, StoreError, ListenerError, DatabaseOpenError) as exc:
        print(f"gbagw: error: {exc}", file=sys.stderr)
        return exc.code if isinstance(exc, CliError) else EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
