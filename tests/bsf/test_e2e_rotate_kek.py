"""`gbagw bsf rotate-kek` on a real store: contexts issued before the rotation stay answerable on Zn."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import aiohttp
import pytest

from bsf.store import StoreUnavailable
from bsf.store.sqlite import SqliteStore
from gba.kdf import NafId, UaProtocol
from gba.keywrap import Keyring, kek_id
from gbagw.ue_client import bootstrap
from gbaio.kek import load_or_create_kek
from naf.config import NafConfig
from naf.zn_client import NafKey, ZnClient, ZnUnavailable
from tests import private_redis
from tests.bsf.test_e2e_ub import IMPI, OPC, K, Lab, _ue
from tests.procs import Proc, run_cli

pytestmark = pytest.mark.e2e


def test_rotate_kek_keeps_contexts(tmp_path: Path) -> None:
    lab = Lab(tmp_path)
    assert run_cli(["hss", "add-subscriber", *lab.data, "--impi", IMPI, "--k", K, "--opc", OPC]).returncode == 0
    try:
        lab.start_hss()
        bsf, url = lab.start_bsf()
        boot = asyncio.run(bootstrap(url, _ue()))
        bsf.stop()
        old = (tmp_path / "kek").read_bytes()
        r = run_cli(["bsf", "rotate-kek", *lab.data, "--new-kek", str(tmp_path / "kek2")])
        assert r.returncode == 0, r.stderr
        assert "re-sealed" in r.stdout
        new = (tmp_path / "kek").read_bytes()
        assert new != old and (tmp_path / "kek.old").read_bytes() == old
        assert oct((tmp_path / "kek").stat().st_mode & 0o777) == "0o600"

        async def check() -> None:
            store = SqliteStore(tmp_path / "bsf.sqlite", Keyring(new))
            assert (await store.get_context(boot.btid)) is not None
            await store.close()
            stale = SqliteStore(tmp_path / "bsf.sqlite", Keyring(old))
            with pytest.raises(StoreUnavailable, match="KeyWrapError"):
                await stale.get_context(boot.btid)
            await stale.close()

        asyncio.run(check())
        _bsf2, url = lab.start_bsf("bsf2")
        assert asyncio.run(bootstrap(url, _ue())).btid  # the restarted BSF works with the new KEK
        same = run_cli(["bsf", "rotate-kek", *lab.data, "--new-kek", str(tmp_path / "kek")])
        assert same.returncode == 2 and "equals" in same.stderr
    finally:
        lab.close()


async def _metrics(bsf: Proc) -> str:
    admin = bsf.wait_for(r"admin: (http://\S+)/metrics").group(1)
    async with aiohttp.ClientSession() as http, http.get(f"{admin}/metrics") as r:
        return await r.text()


async def _zn(bsf: Proc, btid: str) -> NafKey:
    client = ZnClient(NafConfig(bsf_port=int(bsf.wait_for(r"Zn Diameter on [\d.]+:(\d+)").group(1))))
    try:
        return await client.fetch_key(btid, NafId("naf.gba.test", UaProtocol.HTTP_DIGEST.value))
    finally:
        await client.close()


async def test_online_rotation_across_two_bsfs_on_one_redis(tmp_path: Path) -> None:
    """BSF A seals with KEK 1; BSF B with KEK 2 and KEK 1 as an earlier KEK: B opens A's contexts.
    A, not yet told of KEK 2, answers B's B-TID with 3004 and names the KEK id; told, it answers."""
    lab = Lab(tmp_path)
    assert run_cli(["hss", "add-subscriber", *lab.data, "--impi", IMPI, "--k", K, "--opc", OPC]).returncode == 0
    kek1, kek2 = load_or_create_kek(tmp_path / "kek1"), load_or_create_kek(tmp_path / "kek2")
    redis = {"GBAGW_BSF_STORE": private_redis.url(12)}
    old_only = {**redis, "GBAGW_BSF_KEK_FILE": str(tmp_path / "kek1")}
    rotated = {
        **redis,
        "GBAGW_BSF_KEK_FILE": str(tmp_path / "kek2"),
        "GBAGW_BSF_KEK_PREVIOUS_FILES": str(tmp_path / "kek1"),
    }
    try:
        lab.start_hss()
        bsf_a, url_a = lab.start_bsf("bsf-a", old_only)
        bsf_b, url_b = lab.start_bsf("bsf-b", rotated)
        assert f"KEK id {kek_id(kek2).hex()} seals; earlier KEK ids that still open: {kek_id(kek1).hex()}" in bsf_b.logs
        # The same, per instance, on /metrics: how far a rotation got across the fleet.
        for bsf, held in ((bsf_a, {(kek1, "seals")}), (bsf_b, {(kek2, "seals"), (kek1, "opens")})):
            metrics = await _metrics(bsf)
            found = set(re.findall(r'gbagw_bsf_kek_info\{kek_id="(\w+)",role="(\w+)"\} 1\.0', metrics))
            assert found == {(kek_id(k).hex(), role) for k, role in held}
        sealed_by_a = (await bootstrap(url_a, _ue())).btid
        assert (await _zn(bsf_b, sealed_by_a)).impi == IMPI
        sealed_by_b = (await bootstrap(url_b, _ue())).btid
        with pytest.raises(ZnUnavailable, match="3004"):
            await _zn(bsf_a, sealed_by_b)
        assert f"sealed under KEK id {kek_id(kek2).hex()}, which this process does not hold" in bsf_a.logs
        assert "Traceback" not in bsf_a.logs
        bsf_a.stop()
        both = {
            **redis,
            "GBAGW_BSF_KEK_FILE": str(tmp_path / "kek1"),
            "GBAGW_BSF_KEK_PREVIOUS_FILES": str(tmp_path / "kek2"),
        }
        bsf_a2, _ = lab.start_bsf("bsf-a2", both)
        assert (await _zn(bsf_a2, sealed_by_b)).me_key == (await _zn(bsf_b, sealed_by_b)).me_key
    finally:
        lab.close()
