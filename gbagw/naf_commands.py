"""``gbagw naf ...``: the demo NAF, a NAF key over Zn, and a MAF's Km from the MEF."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
from pathlib import Path
from typing import Any

from gba import kdf, onem2m
from gbagw import config as cfgmod
from gbagw.cli_common import (
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_UNREACHABLE,
    CliError,
    Subcommands,
    admin_server,
    command_group,
    emit,
    host_port,
    load_config,
    serve_until_signal,
    subcommand,
    ua_id,
)
from gbagw.listeners import check_listeners, naf_listeners
from naf.app import create_naf
from naf.mef_client import KmRefused, MefClient
from naf.zn_client import NafKey, ZnRefused, ZnUnavailable
from naf.zn_http_clients import create_zn_client


def cmd_naf_fetch_km(args: argparse.Namespace) -> int:
    host, port = host_port(args.mef)
    client = MefClient(host, port, args.mef_fqdn, args.cert, args.key, args.ca)
    try:
        cred = client.fetch_km(args.keid)
    except KmRefused as exc:
        raise CliError(str(exc), EXIT_UNREACHABLE if exc.status == 0 else EXIT_REFUSED) from None
    except ConnectionError as exc:
        raise CliError(str(exc), EXIT_UNREACHABLE) from None
    except onem2m.OneM2MError as exc:
        raise CliError(str(exc)) from None
    emit({"kmid": cred.kmid, "enrolee_id": cred.enrolee_id, "lifetime": cred.lifetime, "km": cred.km.hex()}, args.json)
    return EXIT_OK


def cmd_naf_serve(args: argparse.Namespace) -> int:
    naf = cfgmod.naf_config(load_config(args))
    check_listeners(naf_listeners(naf))
    service = create_naf(naf)

    async def start() -> None:
        port = await service.start()
        print(f"naf: demo NAF on {service.scheme}://{naf.host}:{port}/ (Zn via {naf.zn_target})", flush=True)

    admin = admin_server(service.metrics.registry, readiness=service.ready_checks(), certificates=naf.certificates)
    asyncio.run(serve_until_signal(start, service.stop, (admin, naf.host, naf.admin_port)))
    return EXIT_OK


def cmd_naf_fetch_key(args: argparse.Namespace) -> int:
    naf = cfgmod.naf_config(load_config(args))
    if args.onem2m and args.ua_id:
        raise CliError("--onem2m takes the Ua id from naf.onem2m_ua_id; leave out --ua-id")
    try:
        if args.onem2m:  # Km over GBA for this MAF (TS-0003 8.3.2.3): the oneM2M Ua id profile
            naf_id = onem2m.maf_naf_id(args.naf_fqdn, naf.onem2m_ua_id)
        else:
            naf_id = kdf.NafId(args.naf_fqdn, ua_id(args.ua_id))
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
    if args.onem2m:
        out["kmid"] = key.btid  # KmID = KeID = B-TID; Km is Ks_(ext)_NAF, or Ks_int_NAF for a UICC client
    emit(out, args.json)
    return EXIT_OK


def register(sub: Subcommands) -> None:
    cmds = command_group(sub, "naf", "NAF kit: demo NAF and Zn client")
    subcommand(cmds, "serve", "run the demo NAF behind Ua HTTP digest", cmd_naf_serve)
    p = subcommand(cmds, "fetch-key", "ask the BSF over Zn for a NAF key", cmd_naf_fetch_key)
    p.add_argument("--btid", required=True, help="the B-TID the UE presented on Ua")
    p.add_argument("--naf-fqdn", required=True, help="the NAF's FQDN, as in NAF_Id (TS 33.220 4.5.2)")
    p.add_argument("--ua-id", help="Ua security protocol id, 10 hex digits (default 0100000002)")
    p.add_argument(
        "--gsid", action="append", default=[], help="GAA-Service-Identifier to ask the GUSS for (repeatable)"
    )
    p.add_argument("--via", choices=("diameter", "sbi", "soap"), help="Zn flavour (default: naf.zn_via)")
    p.add_argument("--onem2m", action="store_true", help="as a MAF: Km for this KmID (Ua id: naf.onem2m_ua_id)")
    p.add_argument("--json", action="store_true", help="one JSON object instead of key: value lines")
    p = subcommand(
        cmds, "fetch-km", "as a MAF, fetch Km by KeID from the MEF (mutual TLS)", cmd_naf_fetch_km, config=False
    )
    p.add_argument("--mef", required=True, help="MEF MAF listener, e.g. tls://127.0.0.1:8445")
    p.add_argument("--mef-fqdn", default="mef.gba.test", help="the MEF's FQDN (SNI, certificate name)")
    p.add_argument("--keid", required=True, help="the KeID (KmID) the Enrolee presented to the MAF")
    p.add_argument("--cert", type=Path, required=True, help="the MAF's FQDN certificate")
    p.add_argument("--key", type=Path, required=True, help="the private key of --cert (PEM)")
    p.add_argument("--ca", type=Path, required=True, help="trust anchors for the MEF certificate (PEM)")
    p.add_argument("--json", action="store_true", help="one JSON object instead of key: value lines")
