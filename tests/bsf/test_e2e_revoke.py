"""`gbagw bsf context` and `gbagw bsf revoke` next to a running BSF, on SQLite and on Redis."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gba.kdf import NafId, UaProtocol
from gbagw.ue_client import bootstrap
from naf.config import NafConfig
from naf.zn_client import ZnClient, ZnRefused
from tests import private_redis
from tests.bsf.test_e2e_ub import IMPI, OPC, K, Lab, _ue
from tests.procs import run_cli

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("store", [None, private_redis.url(11)])
async def test_look_up_then_revoke_a_context(tmp_path: Path, store: str | None) -> None:
    lab = Lab(tmp_path)
    env = {"GBAGW_BSF_STORE": store} if store else {}
    assert run_cli(["hss", "add-subscriber", *lab.data, "--impi", IMPI, "--k", K, "--opc", OPC]).returncode == 0
    try:
        lab.start_hss()
        bsf, url = lab.start_bsf("bsf", env)
        boot = await bootstrap(url, _ue())
        shown = run_cli(["bsf", "context", *lab.data, "--impi", IMPI, "--json"], env=env)
        assert shown.returncode == 0, shown.stderr
        ctx = json.loads(shown.stdout)
        assert (ctx["btid"], ctx["impi"], ctx["gba_type"]) == (boot.btid, IMPI, "GBA_ME")
        assert ctx["expires"] == boot.lifetime.isoformat() and boot.ks.hex() not in shown.stdout

        revoked = run_cli(["bsf", "revoke", *lab.data, "--btid", boot.btid], env=env)
        assert revoked.returncode == 0 and f"revoked {boot.btid} of {IMPI}" in revoked.stdout, revoked.stderr
        zn = ZnClient(NafConfig(bsf_port=int(bsf.wait_for(r"Zn Diameter on [\d.]+:(\d+)").group(1))))
        try:
            with pytest.raises(ZnRefused) as refused:
                await zn.fetch_key(boot.btid, NafId("naf.gba.test", UaProtocol.HTTP_DIGEST.value))
        finally:
            await zn.close()
        assert refused.value.code == 5403
        for args in (["context", "--btid", boot.btid], ["revoke", "--impi", IMPI]):
            gone = run_cli(["bsf", *args, *lab.data], env=env)
            assert gone.returncode == 3 and "no live bootstrapping context" in gone.stderr
        again = await bootstrap(url, _ue())  # the UE bootstraps again as usual
        latest = run_cli(["bsf", "context", *lab.data, "--impi", IMPI, "--json"], env=env)
        assert json.loads(latest.stdout)["btid"] == again.btid
    finally:
        lab.close()
