"""``gbagw ue ...``: the software UE: bootstrap over Ub, derive NAF keys, GET a NAF over Ua; its state file."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from gba import kdf, milenage, ue
from gbagw.cli_common import (
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_UNREACHABLE,
    CliError,
    Subcommands,
    command_group,
    emit,
    hex_arg,
    subcommand,
    ua_id,
)
from gbagw.ue_client import UaRefused, UbRefused, bootstrap, ua_get
from gbaio.errors import os_reason


def cmd_ue_bootstrap(args: argparse.Namespace) -> int:
    k = hex_arg("--k", args.k, 16)
    opc = milenage.compute_opc(k, hex_arg("--op", args.op, 16)) if args.op else hex_arg("--opc", args.opc, 16)
    usim = ue.Usim(k, opc)
    tmpi = None
    if args.state is not None:
        # Checked before the bootstrap: a state that cannot be saved would lose the USIM's SQN and Ks.
        usim.seq_ms = _saved_seq_ms(args.state, usim.seq_ms)
        tmpi = _saved_tmpi(args.state, args.impi)
        _check_writable(args.state)
    realm = args.realm or urlsplit(args.bsf).hostname or ""
    # --gba-u: the UICC is GBA_U-aware (TS 33.220 Annex G); nothing about it goes on Ub (5.3.2).
    mode = ue.UeMode.GBA_U if args.gba_u else ue.UeMode.GBA_ME
    client = ue.UeClient(usim, args.impi, realm, mode=mode, tmpi=tmpi)
    try:
        boot = asyncio.run(bootstrap(args.bsf, client))
    except UbRefused as exc:
        raise CliError(str(exc), EXIT_REFUSED) from None
    except ue.UeError as exc:
        raise CliError(f"UE stopped: {exc}", EXIT_REFUSED) from None
    except (OSError, TimeoutError) as exc:
        raise CliError(f"BSF unreachable: {exc}", EXIT_UNREACHABLE) from None
    out: dict[str, Any] = {
        "btid": boot.btid,
        "lifetime": boot.lifetime.isoformat(),
        "gba_type": boot.mode.value,
        "tmpi": boot.tmpi is not None,
    }
    if args.state is not None:
        _save_state(args.state, ue.state_to_dict(usim, boot), boot.btid)
        out["state"] = str(args.state.resolve())
    if args.show_keys:
        out["ks"] = boot.ks.hex()
        out["rand"] = boot.rand.hex()
    emit(out, args.json)
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


def _saved_tmpi(state: Path, impi: str) -> str | None:
    """The TMPI stored with this IMPI by the last bootstrap (TS 33.220 4.4.13), if any."""
    if not state.exists():
        return None
    saved = _read_state(state).get("bootstrap")
    if not isinstance(saved, dict) or saved.get("impi") != impi:
        return None
    tmpi = saved.get("tmpi")
    if tmpi is not None and not (isinstance(tmpi, str) and kdf.is_tmpi(tmpi)):
        raise CliError(f"UE state {state}: bootstrap.tmpi is not a TMPI (TS 33.220 B.4), got {tmpi!r}")
    return tmpi


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
        status, body = asyncio.run(ua_get(args.url, boot, naf_fqdn=args.naf_fqdn))
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
        naf_id = kdf.NafId(args.naf_fqdn, ua_id(args.ua_id))
    except kdf.KdfError as exc:
        raise CliError(str(exc)) from None
    me, uicc = boot.naf_keys(naf_id)
    out = {"btid": boot.btid, "naf_id": naf_id.encode().hex(), "ks_naf" if uicc is None else "ks_ext_naf": me.hex()}
    if uicc is not None:
        out["ks_int_naf"] = uicc.hex()
    emit(out, args.json)
    return EXIT_OK


# The state file goes exactly where --state says (relative to the current directory), and bootstrap
# prints its absolute path: no default location that a second UE or another user would share silently.
STATE_HELP = (
    "JSON file (mode 0600) that keeps the USIM's SQN array and the bootstrap (B-TID, Ks) for naf-key, ua-get "
    "and enrolee gba-km; read first when it exists, then replaced"
)


def register(sub: Subcommands) -> None:
    cmds = command_group(sub, "ue", "software UE (USIM + Ub client)")
    p = subcommand(cmds, "bootstrap", "run Ub against a BSF and print the B-TID", cmd_ue_bootstrap)
    p.add_argument("--bsf", required=True, help="BSF URL, e.g. http://127.0.0.1:8080/")
    p.add_argument("--impi", required=True, help="the USIM's private identity (IMPI) sent on Ub")
    p.add_argument("--k", required=True, help="the USIM's key K, 32 hex digits")
    kg = p.add_mutually_exclusive_group(required=True)
    kg.add_argument("--op", help="operator variant OP, 32 hex digits")
    kg.add_argument("--opc", help="OPc, 32 hex digits")
    p.add_argument(
        "--gba-u",
        action="store_true",
        help="the UICC is GBA_U-aware (GBA security context); the BSF decides GBA_U from the GUSS",
    )
    p.add_argument("--state", type=Path, metavar="FILE", help=STATE_HELP + "; without it nothing is kept")
    p.add_argument("--json", action="store_true", help="one JSON object instead of key: value lines")
    p.add_argument("--show-keys", action="store_true", help="also print Ks and RAND (lab use)")
    p.add_argument("--realm", help="digest realm to send first (default: the BSF URL's host)")
    p = subcommand(cmds, "naf-key", "derive Ks_(ext/int)_NAF from a saved bootstrap", cmd_ue_naf_key, config=False)
    p.add_argument("--state", type=Path, metavar="FILE", required=True, help="the file `ue bootstrap --state` wrote")
    p.add_argument("--naf-fqdn", required=True, help="the NAF's FQDN, as in NAF_Id (TS 33.220 4.5.2)")
    p.add_argument("--ua-id", help="Ua security protocol id, 10 hex digits (default 0100000002, HTTP Digest)")
    p.add_argument("--json", action="store_true", help="one JSON object instead of key: value lines")
    p = subcommand(
        cmds, "ua-get", "GET a NAF URL over Ua HTTP Digest with a saved bootstrap", cmd_ue_ua_get, config=False
    )
    p.add_argument("--state", type=Path, metavar="FILE", required=True, help="the file `ue bootstrap --state` wrote")
    p.add_argument("--url", required=True, help="e.g. http://127.0.0.1:8090/hello")
    p.add_argument("--naf-fqdn", help="the NAF's FQDN, needed when the URL holds an address (TS 24.109 5.2.2.1)")
