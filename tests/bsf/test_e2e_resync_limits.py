"""Forged AUTS chains are rationed like first requests.

The HSS answers a resynchronisation whose MAC-S fails with a fresh vector (TS 29.109 4.2 step 2,
TS 33.102 6.3.5), and the digest that carries AUTS uses an empty password (RFC 3310 3.4), so anyone who
knows an IMPI can answer each challenge with a forged AUTS and get another vector. The per-IMPI and
per-source limits must count those resynchronisations, or such a chain would draw vectors without end.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest

from gba import digest, ue
from tests.bsf.test_e2e_ub import IMPI, OPC, K, Lab, _get, _ue
from tests.procs import run_cli

pytestmark = pytest.mark.e2e

BURST = 3


@pytest.fixture
def limited(tmp_path: Path) -> Iterator[str]:
    lab = Lab(tmp_path)
    assert run_cli(["hss", "add-subscriber", *lab.data, "--impi", IMPI, "--k", K, "--opc", OPC]).returncode == 0
    try:
        lab.start_hss()
        # One vector a minute after a burst of BURST: the test never waits for a refill.
        env = {"GBAGW_BSF_RATE_PER_IMPI": "1", "GBAGW_BSF_RATE_BURST_IMPI": str(BURST)}
        _bsf, url = lab.start_bsf("bsf", env)
        yield url
    finally:
        lab.close()


def _forged_auts_answer(client: ue.UeClient, www_authenticate: str) -> str:
    """The UE's answer with its AUTS's last bit flipped and the empty-password response recomputed."""
    cred = digest.Credentials.parse(client.on_challenge(www_authenticate))
    assert cred.auts is not None
    forged = dataclasses.replace(cred, auts=cred.auts[:-1] + bytes([cred.auts[-1] ^ 1]))
    return dataclasses.replace(forged, response=forged.expected_response(b"", "GET", b"")).to_header()


async def test_a_chain_of_forged_auts_hits_the_per_impi_limit(limited: str) -> None:
    url = limited
    client = _ue()
    client.usim.seq_ms = [10**6] * ue.IND_SIZE  # every vector is stale for it: it always answers with AUTS
    status, headers, _ = await _get(url, client.authorization())
    assert status == 401  # the first vector: one token
    statuses = []
    for _ in range(BURST + 2):
        status, headers, _ = await _get(url, _forged_auts_answer(client, headers["WWW-Authenticate"]))
        statuses.append(status)
        if status != 401:
            break
    # BURST - 1 resynchronisations are served (401 with a fresh challenge), the next one is refused.
    assert statuses == [401] * (BURST - 1) + [429], statuses
    assert int(headers["Retry-After"]) >= 1
