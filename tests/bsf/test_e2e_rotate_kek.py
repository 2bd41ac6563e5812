"""`gbagw bsf rotate-kek` on a real store: contexts issued before the rotation stay answerable on Zn."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bsf.store.sqlite import SqliteStore
from gba.keywrap import KeyWrapError
from gbagw.ue_client import bootstrap
from tests.bsf.test_e2e_ub import IMPI, OPC, K, Lab, _ue
from tests.procs import run_cli

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
            store = SqliteStore(tmp_path / "bsf.sqlite", new)
            assert (await store.get_context(boot.btid)) is not None
            await store.close()
            stale = SqliteStore(tmp_path / "bsf.sqlite", old)
            with pytest.raises(KeyWrapError):
                await stale.get_context(boot.btid)
            await stale.close()

        asyncio.run(check())
        _bsf2, url = lab.start_bsf("bsf2")
        assert asyncio.run(bootstrap(url, _ue())).btid  # the restarted BSF works with the new KEK
        same = run_cli(["bsf", "rotate-kek", *lab.data, "--new-kek", str(tmp_path / "kek")])
        assert same.returncode == 2 and "equals" in same.stderr
    finally:
        lab.close()
