"""Ub end to end with real processes: `gbagw hss serve` + `gbagw bsf serve`, a UE over real HTTP."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
import redis.asyncio as aioredis

from bsf.store.redis import LIVE_KEY, RedisStore
from bsf.store.sqlite import SqliteStore
from gba import digest, milenage, ue
from gba.keywrap import Keyring
from gbagw.ue_client import bootstrap
from gbaio.kek import load_or_create_kek
from tests import private_redis
from tests.procs import Proc, free_port, run_cli, start_gbagw

pytestmark = pytest.mark.e2e

K = "465b5ce8b199b49faa5f0a2ee238a6bc"
OPC = "cd63cb71954a9f4e48a5994e37a02baf"
IMPI = "001010123456789@ims.mnc001.mcc001.3gppnetwork.org"
IMPI_U = "gba-u-user@ims.test"
GUSS_U = b"<guss><bsfInfo><uiccType>GBA_U</uiccType><lifeTime>600</lifeTime></bsfInfo><ussList/></guss>"


class Lab:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.hss_port = free_port()
        self.env = {
            "GBAGW_HSS_ZH_PORT": str(self.hss_port),
            "GBAGW_BSF_HSS_PORT": str(self.hss_port),
            "GBAGW_BSF_UB_PORT": "0",
            "GBAGW_BSF_ZN_PORT": "0",
            "GBAGW_BSF_CHALLENGE_LIFETIME": "2",
        }
        self.data = ["--data-dir", str(tmp)]
        self.procs: list[Proc] = []

    def close(self) -> None:
        for p in self.procs:
            p.stop()

    def start_hss(self, name: str = "hss") -> Proc:
        proc = start_gbagw(["hss", "serve", *self.data], self.tmp, self.env, name)
        self.procs.append(proc)
        proc.wait_for(r"Zh Diameter on")
        return proc

    def start_bsf(self, name: str = "bsf", env: dict[str, str] | None = None) -> tuple[Proc, str]:
        proc = start_gbagw(["bsf", "serve", *self.data], self.tmp, {**self.env, **(env or {})}, name)
        self.procs.append(proc)
        return proc, proc.wait_for(r"Ub on (http://[\d.]+:\d+/)").group(1)


@pytest.fixture
def new_lab(tmp_path: Path) -> Iterator[Lab]:
    lab = Lab(tmp_path)
    yield lab
    lab.close()


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Lab, Proc, Proc, str]]:
    lab = Lab(tmp_path_factory.mktemp("ub"))
    guss = lab.tmp / "guss.xml"
    guss.write_bytes(GUSS_U)
    for impi, extra in ((IMPI, []), (IMPI_U, ["--guss", str(guss)])):
        r = run_cli(["hss", "add-subscriber", *lab.data, "--impi", impi, "--k", K, "--opc", OPC, *extra])
        assert r.returncode == 0, r.stderr
    try:
        hss = lab.start_hss()
        bsf, url = lab.start_bsf()
        yield lab, hss, bsf, url
    finally:
        lab.close()


def _ue(impi: str = IMPI, mode: ue.UeMode = ue.UeMode.GBA_ME, qop: str = digest.QOP_AUTH_INT) -> ue.UeClient:
    return ue.UeClient(ue.Usim(bytes.fromhex(K), bytes.fromhex(OPC)), impi, "bsf.gba.test", mode=mode, qop=qop)


async def _get(url: str, authorization: str | None, ua: str = "test-ue 3gpp-gba") -> tuple[int, dict[str, str], bytes]:
    headers = {"User-Agent": ua}
    if authorization is not None:
        headers["Authorization"] = authorization
    async with aiohttp.ClientSession() as s, s.get(url, headers=headers) as r:
        return r.status, dict(r.headers), await r.read()


async def test_bootstrap_auth_int_and_auth(lab: tuple[Lab, Proc, Proc, str]) -> None:
    _, _, _, url = lab
    for qop in (digest.QOP_AUTH_INT, digest.QOP_AUTH):
        client = _ue(qop=qop)
        boot = await bootstrap(url, client)
        assert boot.btid.endswith("@bsf.gba.test")
        assert base64.b64decode(boot.btid.split("@")[0]) == boot.rand
        assert boot.mode is ue.UeMode.GBA_ME and len(boot.ks) == 32


async def test_gba_u_and_guss_lifetime(lab: tuple[Lab, Proc, Proc, str]) -> None:
    lab_, _, _, url = lab
    boot = await bootstrap(url, _ue(IMPI_U, ue.UeMode.GBA_U))
    remaining = (boot.lifetime - dt.datetime.now(dt.UTC)).total_seconds()
    assert 500 < remaining <= 600  # GUSS lifeTime 600 replaces the 3600 s default
    store = SqliteStore(lab_.tmp / "bsf.sqlite", Keyring(load_or_create_kek(lab_.tmp / "kek")))
    ctx = await store.get_context(boot.btid)
    assert ctx is not None and ctx.gba_u and ctx.ks == boot.ks and ctx.impi == IMPI_U
    await store.close()


async def test_gba_u_ue_without_ub_token_then_tmpi(lab: tuple[Lab, Proc, Proc, str]) -> None:
    """TS 33.220 5.3.2: our UE with a GBA_U-aware UICC sends only 3gpp-gba-tmpi and gets GBA_U from the
    GUSS; 4.5.2: the next bootstrap goes with the TMPI; an unknown TMPI makes the UE retry with the IMPI."""
    _, _, _, url = lab
    client = _ue(IMPI_U, ue.UeMode.GBA_U)
    assert digest.product_tokens(client.user_agent) - {"gbagw-ue"} == {"3gpp-gba-tmpi"}
    first = await bootstrap(url, client)
    assert first.mode is ue.UeMode.GBA_U and first.tmpi is not None and first.tmpi.endswith("@tmpi.bsf.3gppnetwork.org")
    again = ue.UeClient(client.usim, IMPI_U, "bsf.gba.test", mode=ue.UeMode.GBA_U, tmpi=first.tmpi)
    assert digest.Credentials.parse(again.authorization()).username == first.tmpi
    second = await bootstrap(url, again)
    assert second.btid != first.btid and second.tmpi not in (None, first.tmpi)
    # The first TMPI was replaced: the BSF refuses it and the UE falls back to its IMPI, in one run.
    stale = ue.UeClient(client.usim, IMPI_U, "bsf.gba.test", mode=ue.UeMode.GBA_U, tmpi=first.tmpi)
    third = await bootstrap(url, stale)
    assert third.btid not in (first.btid, second.btid) and third.tmpi is not None


async def test_cli_state_keeps_the_tmpi(lab: tuple[Lab, Proc, Proc, str]) -> None:
    """TS 33.220 4.4.13: the ME keeps (TMPI, IMPI) in non-volatile memory: `gbagw ue bootstrap --state`."""
    lab_, _, _, url = lab
    state = lab_.tmp / "ue-tmpi.json"
    args = ["ue", "bootstrap", "--bsf", url, "--impi", IMPI, "--k", K, "--opc", OPC, "--state", str(state), "--json"]
    tmpis = []
    for _ in range(2):
        r = run_cli(args)
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["tmpi"] is True
        tmpis.append(json.loads(state.read_text())["bootstrap"]["tmpi"])
    assert tmpis[0] != tmpis[1]


async def test_resync_after_ue_sqn_ahead(lab: tuple[Lab, Proc, Proc, str]) -> None:
    _, _, _, url = lab
    client = _ue()
    # Every IND slot ahead, so no vector from the HSS's SQN is fresh (TS 33.102 C.2.2).
    client.usim.seq_ms = [40000] * ue.IND_SIZE
    boot = await bootstrap(url, client)
    assert boot.btid.endswith("@bsf.gba.test")
    assert client.usim.sqn_ms >> 5 == 40001  # the fresh vector came from SQN_MS + 1


async def test_wrong_res_replayed_and_stale_nonce(lab: tuple[Lab, Proc, Proc, str]) -> None:
    _, _, _, url = lab
    client = _ue()
    status, headers, _ = await _get(url, client.authorization())
    assert status == 401
    answer = client.on_challenge(headers["WWW-Authenticate"])
    wrong = answer.replace(digest.Credentials.parse(answer).response, "0" * 32)
    status, _, body = await _get(url, wrong)
    assert status == 403 and b"refused" in body
    # The nonce is spent: replaying even the right answer gets a fresh challenge marked stale.
    status, headers, _ = await _get(url, answer)
    assert status == 401 and "stale=true" in headers["WWW-Authenticate"]
    # A challenge answered after its lifetime (2 s here) is stale too.
    client2 = _ue()
    status, headers, _ = await _get(url, client2.authorization())
    late = client2.on_challenge(headers["WWW-Authenticate"])
    await asyncio.sleep(2.5)
    status, headers, _ = await _get(url, late)
    assert status == 401 and "stale=true" in headers["WWW-Authenticate"]


async def test_unknown_impi_and_malformed_headers(lab: tuple[Lab, Proc, Proc, str]) -> None:
    _, _, _, url = lab
    status, _, body = await _get(url, _ue("nobody@ims.test").authorization())
    assert status == 403 and b"nobody" not in body and b"unknown" not in body.lower()
    for bad in (None, "Basic Zm9vOmJhcg==", 'Digest username="a", realm="x"', "Digest " + "x" * 5000):
        status, _, _ = await _get(url, bad)
        assert status == 400, bad


async def test_hss_down_gives_503_then_recovers(new_lab: Lab, tmp_path: Path) -> None:
    lab = new_lab
    assert run_cli(["hss", "add-subscriber", *lab.data, "--impi", IMPI, "--k", K, "--opc", OPC]).returncode == 0
    hss = lab.start_hss("hss1")
    bsf, url = lab.start_bsf()
    try:
        assert (await bootstrap(url, _ue())).btid
        hss.stop()
        status, headers, _ = await _get(url, _ue().authorization())
        assert status == 503 and headers["Retry-After"] == "5"
        hss = lab.start_hss("hss2")
        assert (await bootstrap(url, _ue())).btid  # same BSF process, no restart
        # Restart the BSF: the SQLite context store keeps what was issued.
        boot = await bootstrap(url, _ue())
        bsf.stop()
        bsf, url = lab.start_bsf("bsf2")
        store = SqliteStore(tmp_path / "bsf.sqlite", Keyring(load_or_create_kek(tmp_path / "kek")))
        assert (await store.get_context(boot.btid)) is not None
        await store.close()
    finally:
        bsf.stop()
        hss.stop()
    res = milenage.Milenage(bytes.fromhex(K), bytes.fromhex(OPC)).f2345(boot.rand)[0]
    logs = "".join(f.read_text() for f in tmp_path.glob("*.stderr.log"))
    assert "bootstrapped" in logs
    for secret in (boot.ks, res, bytes.fromhex(K), bytes.fromhex(OPC)):
        assert secret.hex() not in logs.lower()
        assert base64.b64encode(secret).decode() not in logs


async def _live_contexts(admin: str) -> float | None:
    async with aiohttp.ClientSession() as http, http.get(f"{admin}/metrics") as r:
        for line in (await r.text()).splitlines():
            if line.startswith("gbagw_bsf_live_contexts "):
                return float(line.split()[1])
    return None


async def test_two_bsf_processes_on_redis(new_lab: Lab, tmp_path: Path) -> None:
    lab = new_lab
    assert run_cli(["hss", "add-subscriber", *lab.data, "--impi", IMPI, "--k", K, "--opc", OPC]).returncode == 0
    redis_url = private_redis.url(14)
    async with aioredis.from_url(redis_url) as r:
        # What earlier tests on this database left: their count, the IMPI's pointer and index.
        await r.delete(LIVE_KEY, f"gbagw:{{impi:{IMPI}}}", f"gbagw:{{impi:{IMPI}}}:index")
    hss = lab.start_hss()
    env = {"GBAGW_BSF_STORE": redis_url, "GBAGW_BSF_GAUGE_INTERVAL": "0.5"}
    a, url_a = lab.start_bsf("bsf-a", env)
    b, url_b = lab.start_bsf("bsf-b", env)
    admins = [p.wait_for(r"admin: (http://\S+)/metrics").group(1) for p in (a, b)]
    try:
        for first, second in ((url_a, url_b), (url_b, url_a)):
            client = _ue()
            status, headers, _ = await _get(first, client.authorization())
            assert status == 401
            answer = client.on_challenge(headers["WWW-Authenticate"])
            status, headers, body = await _get(second, answer)
            assert status == 200, body
            boot = client.on_success(headers.get("Authentication-Info"), body)
            store = RedisStore(redis_url, Keyring(load_or_create_kek(tmp_path / "kek")))
            ctx = await store.get_context(boot.btid)
            assert ctx is not None and ctx.ks == boot.ks
            await store.close()
        # Two bootstraps of one IMPI, the second superseding the first: one live context, and both
        # instances report the shared count (each sends its changes, then reads the total, every 0.5 s).
        deadline = asyncio.get_running_loop().time() + 10
        while [await _live_contexts(admin) for admin in admins] != [1.0, 1.0]:
            assert asyncio.get_running_loop().time() < deadline, [await _live_contexts(x) for x in admins]
            await asyncio.sleep(0.2)
    finally:
        a.stop()
        b.stop()
        hss.stop()
