"""Abuse limits and HTTPS on Ub with real processes."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from gba import pki, ue
from gbagw.ue_client import bootstrap
from tests.bsf.test_e2e_ub import IMPI, OPC, K, Lab, _ue
from tests.procs import run_cli

pytestmark = pytest.mark.e2e


def _https_lab(tmp_path: Path) -> tuple[Lab, dict[str, str]]:
    """A lab with one subscriber and a Ub certificate from a lab CA (ca.pem); the env that turns on Ub TLS."""
    lab = Lab(tmp_path)
    assert run_cli(["hss", "add-subscriber", *lab.data, "--impi", IMPI, "--k", K, "--opc", OPC]).returncode == 0
    ca = pki.make_ca()
    leaf = pki.issue(ca, "bsf.gba.test")
    (tmp_path / "ca.pem").write_bytes(ca.cert_pem)
    (tmp_path / "ub.pem").write_bytes(leaf.cert_pem)
    (tmp_path / "ub.key").write_bytes(leaf.key_pem)
    return lab, {"GBAGW_BSF_UB_TLS_CERT": str(tmp_path / "ub.pem"), "GBAGW_BSF_UB_TLS_KEY": str(tmp_path / "ub.key")}


def _trust_lab_ca(tmp_path: Path) -> ssl.SSLContext:
    tls = ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))
    tls.check_hostname = False  # the URL holds 127.0.0.1; the chain is still verified against the lab CA
    return tls


@pytest.fixture
def limited(tmp_path: Path) -> Iterator[tuple[Lab, str, Path]]:
    lab, tls_env = _https_lab(tmp_path)
    env = {
        "GBAGW_BSF_RATE_PER_IMPI": "6",
        "GBAGW_BSF_RATE_BURST_IMPI": "2",
        "GBAGW_BSF_MAX_PENDING_CHALLENGES": "2",
        **tls_env,
    }
    try:
        lab.start_hss()
        _bsf, url = lab.start_bsf("bsf", env)
        yield lab, url.replace("http://", "https://"), tmp_path
    finally:
        lab.close()


async def test_https_ub_rate_limit_and_pending_cap(limited: tuple[Lab, str, Path]) -> None:
    _lab, url, tmp = limited
    connector = aiohttp.TCPConnector(ssl=_trust_lab_ca(tmp))
    async with aiohttp.ClientSession(connector=connector) as s:

        async def first(impi: str) -> tuple[int, dict[str, str]]:
            client = ue.UeClient(ue.Usim(bytes.fromhex(K), bytes.fromhex(OPC)), impi, "bsf.gba.test")
            async with s.get(url, headers={"Authorization": client.authorization()}) as r:
                return r.status, dict(r.headers)

        statuses = [(await first(IMPI))[0] for _ in range(2)]
        assert statuses == [401, 401]  # the burst of 2 vectors for this IMPI
        status, headers = await first(IMPI)
        assert status == 429 and int(headers["Retry-After"]) >= 1
        # Another IMPI is not rationed by this IMPI's bucket, but two challenges are unanswered: the cap (2) bites.
        capped, headers = await first("other@ims.test")
        assert capped == 503 and "Retry-After" in headers


async def test_full_bootstrap_over_https(tmp_path: Path) -> None:
    lab, tls_env = _https_lab(tmp_path)
    try:
        lab.start_hss()
        _bsf, url = lab.start_bsf("bsf", tls_env)
        with pytest.raises(ConnectionError, match="ServerDisconnectedError"):  # plain HTTP to the TLS listener
            await bootstrap(url, _ue())
        boot = await bootstrap(url.replace("http://", "https://"), _ue(), tls=_trust_lab_ca(tmp_path))
        assert boot.btid.endswith("@bsf.gba.test") and len(boot.ks) == 32
    finally:
        lab.close()
