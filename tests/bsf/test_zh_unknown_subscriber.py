"""An unknown IMPI, as a Zh HSS says it: 5401 DIAMETER_ERROR_IDENTITY_UNKNOWN (TS 29.109 4.2 step 2,
6.2.2.1; what our HSS stub answers) or Cx's 5001 DIAMETER_ERROR_USER_UNKNOWN (TS 29.229 6.2.2.1; what
many HSSs built for Cx answer on Zh). The BSF must treat both alike, and its UE must not tell them apart."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bsf.config import BsfConfig
from bsf.zh_client import HssRefused, UnknownSubscriber, ZhClient
from gba import diameter as d
from gbaio.diameter_node import DiameterServer, NodeIdentity, PeerInfo
from tests.bsf.test_e2e_ub import Lab, _get, _ue

Handler = Callable[[d.Envelope, PeerInfo], Coroutine[Any, Any, d.Envelope]]


def _refusing_hss(experimental: int | None, result_code: int | None = None) -> Handler:
    """An HSS that answers every MAR with one (Experimental-)Result-Code and nothing else."""

    async def answer(req: d.Envelope, _peer: PeerInfo) -> d.Envelope:
        mar = d.MultimediaAuthRequest.from_envelope(req)
        maa = d.MultimediaAuthAnswer(
            mar.session_id, "hss.gba.test", "gba.test", result_code=result_code, experimental_result=experimental
        )
        return req.answer(maa.avps())

    return answer


async def _server(handler: Handler) -> AsyncIterator[int]:
    server = DiameterServer(NodeIdentity("hss.gba.test", "gba.test", (d.APP_ZH,)), handler)
    try:
        yield await server.start("127.0.0.1", 0)
    finally:
        await server.close()


@pytest.fixture
async def cx_hss() -> AsyncIterator[int]:
    async for port in _server(_refusing_hss(d.ExperimentalResult.ERROR_USER_UNKNOWN)):
        yield port


@pytest.mark.parametrize(
    ("experimental", "result_code", "unknown"),
    [
        (d.ExperimentalResult.ERROR_IDENTITY_UNKNOWN, None, True),  # Zh (TS 29.109 6.2.2.1)
        (d.ExperimentalResult.ERROR_USER_UNKNOWN, None, True),  # Cx (TS 29.229 6.2.2.1)
        (d.ExperimentalResult.ERROR_NOT_AUTHORIZED, None, False),  # another Zh code: not "unknown"
        (None, d.ResultCode.UNABLE_TO_COMPLY, False),
    ],
)
async def test_zh_client_maps_5001_and_5401_to_unknown_subscriber(
    experimental: int | None, result_code: int | None, unknown: bool
) -> None:
    async for port in _server(_refusing_hss(experimental, result_code)):
        client = ZhClient(BsfConfig(hss_port=port, zh_timeout=5))
        try:
            with pytest.raises(UnknownSubscriber if unknown else HssRefused):
                await client.fetch_vector("nobody@ims.test")
        finally:
            await client.close()


async def _outcomes(admin: str) -> dict[str, float]:
    """The BSF's Ub answers by outcome (gbagw_bsf_ub_responses_total)."""
    async with aiohttp.ClientSession() as http, http.get(f"{admin}/metrics") as r:
        text = await r.text()
    prefix = 'gbagw_bsf_ub_responses_total{outcome="'
    return {
        line[len(prefix) :].split('"')[0]: float(line.split()[-1])
        for line in text.splitlines()
        if line.startswith(prefix)
    }


@pytest.mark.e2e
async def test_the_ue_gets_the_same_answer_from_a_cx_style_hss_and_from_ours(tmp_path: Path, cx_hss: int) -> None:
    """Two BSF processes: one behind a Cx-style HSS answering 5001, one behind `gbagw hss serve`, which
    answers 5401 for an IMPI it does not hold. Both take it as an unknown subscriber, and the UE's
    answer is the same."""
    answers = []
    for name, hss_port in (("cx", cx_hss), ("ours", None)):
        (tmp_path / name).mkdir()
        lab = Lab(tmp_path / name)
        try:
            if hss_port is None:
                lab.start_hss()
            env = {"GBAGW_BSF_ADMIN_PORT": "0"}
            if hss_port is not None:
                env["GBAGW_BSF_HSS_PORT"] = str(hss_port)
            bsf, url = lab.start_bsf("bsf", env)
            admin = bsf.wait_for(r"admin: (http://\S+)/metrics").group(1)
            status, headers, body = await _get(url, _ue("nobody@ims.test").authorization())
            answers.append((status, headers.get("Content-Type"), body, sorted(set(headers) - {"Date"})))
            assert (await _outcomes(admin)).get("unknown_subscriber") == 1.0, name
        finally:
            lab.close()
    assert "unknown IMPI (5401)" in (tmp_path / "ours" / "hss.stderr.log").read_text()
    assert answers[0] == answers[1]
    assert answers[0][0] not in (200, 503)
