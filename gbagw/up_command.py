"""``gbagw up``: HSS stub + BSF + demo NAF + MEF in one process on loopback."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses

from bsf.app import BsfService
from bsf.mef.server import MefService, create_mef
from gbagw import config as cfgmod
from gbagw.bsf_commands import make_bsf
from gbagw.cli_common import EXIT_OK, Subcommands, admin_server, common_args, load_config, serve_until_signal
from gbagw.hss_commands import open_hss_store
from gbagw.listeners import bsf_listeners, check_listeners, hss_listeners, mef_listeners, naf_listeners
from gbagw.mef_commands import write_test_pki
from hss_stub.app import create_hss
from naf.app import NafService, create_naf


def cmd_up(args: argparse.Namespace) -> int:
    """HSS stub + BSF + demo NAF + MEF in one process on loopback, SQLite under --data-dir."""
    cfg = load_config(args)
    # Each service's configuration once: building the BSF's and the NAF's loads their TLS files.
    hss = cfgmod.hss_config(cfg)
    bsf_cfg = cfgmod.bsf_config(cfg)
    naf_cfg = cfgmod.naf_config(cfg)
    mef = cfgmod.mef_config(cfg)
    # One process, one admin listener (bsf.admin_port); the other services' admin ports stay unused.
    check_listeners(
        [
            *hss_listeners(hss, admin=False),
            *bsf_listeners(bsf_cfg),
            *naf_listeners(naf_cfg, admin=False),
            *mef_listeners(mef, admin=False),
        ]
    )
    pki_files = (mef.cert_file, mef.key_file, mef.ca_file)
    if not any(f.exists() for f in pki_files) and len({f.parent for f in pki_files}) == 1:
        # A lab convenience: gbagw up makes its own test PKI so the MEF certificate listeners can start.
        write_test_pki(mef.cert_file.parent, mef.fqdn, ["CAE-example"], ["maf.gba.test"])
        print(f"mef: created a lab test PKI in {mef.cert_file.parent} (CA, mef, CAE-example, maf.gba.test)")
    cfgmod.check_mef_files(mef)  # before anything starts
    hss_store = open_hss_store(hss)
    hss_service = create_hss(hss, hss_store)
    bsf_service: BsfService | None = None
    naf_service: NafService | None = None
    mef_service: MefService | None = None
    admin = admin_server(certificates={**bsf_cfg.certificates, **naf_cfg.certificates, **mef.certificates})

    async def start() -> None:
        nonlocal bsf_service, naf_service, mef_service
        hss_port = await hss_service.start()
        # gbagw up wires the BSF's Zh peer to the HSS and the demo NAF's Zn peer to the BSF.
        bsf = dataclasses.replace(bsf_cfg, hss_host=hss.zh_host, hss_port=hss_port)
        bsf_service = make_bsf(bsf)
        ub_port = await bsf_service.start()
        zn_port = bsf_service.zn_tls_port if naf_cfg.bsf_tls else bsf_service.zn_port
        naf = dataclasses.replace(naf_cfg, bsf_host=bsf.zn_host, bsf_port=zn_port or 0)
        naf_service = create_naf(naf)
        naf_port = await naf_service.start()
        mef_service = create_mef(mef, bsf_service.store)  # one store for Ub, Zn and the MEF
        mef_ports = await mef_service.start()
        print(f"hss: Zh Diameter on {hss.zh_host}:{hss_port} (Origin-Host {hss.fqdn})")
        print(f"bsf: Ub on http://{bsf.ub_host}:{ub_port}/ (B-TID domain {bsf.fqdn})")
        print(f"bsf: Zn Diameter on {bsf.zn_host}:{bsf_service.zn_port}")
        if bsf_service.zn_tls_port is not None:
            print(f"bsf: Zn Diameter over TLS on {bsf.zn_host}:{bsf_service.zn_tls_port}")
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
        services = (hss_service, bsf_service, naf_service, mef_service)
        admin.registries += [s.metrics.registry for s in services]
        for service in (hss_service, bsf_service, naf_service):
            for name, check in service.ready_checks().items():
                admin.add_ready_check(name, check)
        admin.add_ready_check("mef", mef_service.readiness)
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
        asyncio.run(serve_until_signal(start, stop))
    finally:
        hss_store.close()
    return EXIT_OK


def register(sub: Subcommands) -> None:
    what = "run HSS stub + BSF + demo NAF + MEF in one process on loopback (a lab; Ctrl-C stops it)"
    group = sub.add_parser("up", help=what, description=what)
    common_args(group)
    group.set_defaults(func=cmd_up)
