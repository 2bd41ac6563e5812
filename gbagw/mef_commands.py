"""``gbagw mef ...`` and ``gbagw enrolee enrol``: the oneM2M MEF direct frameworks and their lab PKI."""

from __future__ import annotations

import argparse
import asyncio
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bsf.app import open_store
from bsf.mef.server import create_mef
from gba import kdf, onem2m, pki
from gbagw import config as cfgmod
from gbagw.bsf_commands import serving_keyring
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
)
from gbagw.enrolee_client import EnrolmentError, enrol_cert, enrol_psk, km_over_gba
from gbagw.listeners import check_listeners, mef_listeners
from gbagw.ue_commands import _saved_bootstrap as saved_bootstrap  # the one reader of the UE's state file
from gbaio.errors import os_reason
from gbaio.private_files import private_dir


def write_test_pki(out: Path, mef_fqdn: str, enrolees: Sequence[str], mafs: Sequence[str]) -> list[Path]:
    """CA + MEF + Enrolee + MAF certificates for labs; private keys 0600."""
    private_dir(out)  # it holds the lab's private keys
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
        print(Path(p).resolve())
    return EXIT_OK


def cmd_mef_serve(args: argparse.Namespace) -> int:
    cfg = load_config(args)
    bsf, mef = cfgmod.bsf_config(cfg), cfgmod.mef_config(cfg)
    check_listeners(mef_listeners(mef))
    # The PKI first: a bad file is reported before the KEK and the store are opened.
    cfgmod.check_mef_files(mef)
    service = create_mef(mef, open_store(bsf.store, serving_keyring(bsf), bsf.store_busy_timeout))

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

    admin = admin_server(service.metrics.registry, readiness={"mef": service.readiness}, certificates=mef.certificates)
    asyncio.run(serve_until_signal(start, stop, (admin, mef.host, mef.admin_port)))
    return EXIT_OK


def cmd_enrolee_enrol(args: argparse.Namespace) -> int:
    host, port = host_port(args.mef)
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
    emit(out, args.json)
    return EXIT_OK


def cmd_enrolee_gba_km(args: argparse.Namespace) -> int:
    boot = saved_bootstrap(args.state)
    try:
        ua = onem2m.parse_ua_id(args.onem2m_ua_id) if args.onem2m_ua_id else onem2m.UA_ID_DEFAULT
        cred = km_over_gba(boot, args.maf, ua, uicc=args.uicc)
    except (onem2m.OneM2MError, kdf.KdfError) as exc:
        raise CliError(str(exc)) from None
    except EnrolmentError as exc:
        raise CliError(str(exc), EXIT_REFUSED) from None
    out: dict[str, Any] = {"kmid": cred.kmid, "maf": args.maf, "ua_id": ua.hex()}
    out["km"] = cred.km.hex() if args.show_keys else f"(derived for {args.maf})"
    emit(out, args.json)
    return EXIT_OK


def register(sub: Subcommands) -> None:
    cmds = command_group(sub, "mef", "oneM2M MEF direct frameworks (TLS-PSK / certificates, Km for MAFs)")
    subcommand(cmds, "serve", "run the MEF: the Enrolee and MAF TLS listeners", cmd_mef_serve)
    p = subcommand(
        cmds,
        "gen-test-pki",
        "write a lab CA with MEF, Enrolee and MAF certificates",
        cmd_mef_gen_test_pki,
        config=False,
    )
    p.add_argument("--out", type=Path, required=True, help="directory to write the PEM files to (created)")
    p.add_argument("--mef-fqdn", default="mef.gba.test", help="the MEF certificate's name")
    p.add_argument("--enrolee", action="append", default=[], help="Enrolee certificate name (repeatable)")
    p.add_argument("--maf", action="append", default=[], help="MAF FQDN (repeatable)")

    cmds = command_group(sub, "enrolee", "oneM2M Enrolee: enrol with a MEF")
    p = subcommand(cmds, "enrol", "run the MEF handshake and derive Ke/KeID", cmd_enrolee_enrol, config=False)
    p.add_argument("--mef", required=True, help="MEF listener, e.g. tls://127.0.0.1:8443")
    p.add_argument("--mef-fqdn", default="mef.gba.test", help="MEF FQDN (SNI, KeID domain, certificate name)")
    p.add_argument("--psk-id", help="KpmID (pre-provisioned symmetric key framework)")
    p.add_argument("--psk", help="Kpm, hex")
    p.add_argument("--cert", type=Path, help="Enrolee certificate (certificate-based framework)")
    p.add_argument("--key", type=Path, help="the private key of --cert (PEM)")
    p.add_argument("--ca", type=Path, help="trust anchors for the MEF certificate")
    p.add_argument("--maf", help="also derive Km for this MAF-ID")
    p.add_argument("--show-keys", action="store_true", help="print Ke / Km (lab use)")
    p.add_argument("--json", action="store_true", help="one JSON object instead of key: value lines")
    p = subcommand(
        cmds,
        "gba-km",
        "GBA-based framework: KmID and Km for a MAF from a saved UE bootstrap",
        cmd_enrolee_gba_km,
        config=False,
    )
    p.add_argument("--state", type=Path, required=True, help="state file of `gbagw ue bootstrap --state`")
    p.add_argument("--maf", required=True, help="the MAF's FQDN (NAF FQDN in NAF_Id)")
    p.add_argument("--onem2m-ua-id", help="Ua id in NAF_Id, 10 hex digits (default 0000000000, docs/mef-api.md)")
    p.add_argument("--uicc", action="store_true", help="the client runs in the UICC: Km = Ks_int_NAF")
    p.add_argument("--show-keys", action="store_true", help="print Km (lab use)")
    p.add_argument("--json", action="store_true", help="one JSON object instead of key: value lines")
