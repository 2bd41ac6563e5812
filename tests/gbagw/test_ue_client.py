"""`gbagw ue bootstrap` and `gbagw ue ua-get` against peers that misbehave: one line and exit 3 or 4,
never a traceback. The peers are real servers in this process; the CLI is a real subprocess."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp import web

from gba import ue
from tests.procs import GBAGW, _env

K, OPC = "465b5ce8b199b49faa5f0a2ee238a6bc", "cd63cb71954a9f4e48a5994e37a02baf"
UE_ARGS = ["--impi", "u@ims.test", "--k", K, "--opc", OPC]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def _cli(*args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        *GBAGW, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=_env(None)
    )
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode is not None
    return proc.returncode, err.decode()


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Handler], Awaitable[str]]]:
    runners: list[web.AppRunner] = []

    async def start(handler: Handler) -> str:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handler)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        runners.append(runner)
        return f"http://127.0.0.1:{runner.addresses[0][1]}/"

    yield start
    for r in runners:
        await r.cleanup()


async def test_a_peer_that_hangs_up_is_unreachable() -> None:
    async def hang_up(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await r.readuntil(b"\r\n\r\n")  # the whole request first: closing earlier may reset instead
        w.close()

    server = await asyncio.start_server(hang_up, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        code, err = await _cli("ue", "bootstrap", "--bsf", f"http://127.0.0.1:{port}/", *UE_ARGS)
    finally:
        server.close()
    assert code == 4, err
    assert "Traceback" not in err and "BSF unreachable: ServerDisconnectedError" in err


async def test_a_401_without_a_challenge_is_a_refusal(serve: Callable[[Handler], Awaitable[str]]) -> None:
    async def bare_401(_request: web.Request) -> web.Response:
        return web.Response(status=401)

    code, err = await _cli("ue", "bootstrap", "--bsf", await serve(bare_401), *UE_ARGS)
    assert code == 3, err
    assert "Traceback" not in err and "401 without a WWW-Authenticate challenge" in err


NAF = ("--naf-fqdn", "naf.test")


def _state(tmp_path: Path, mode: ue.UeMode = ue.UeMode.GBA_ME) -> Path:
    boot = ue.Bootstrap(
        "u@ims.test",
        "AAAA@bsf.gba.test",
        dt.datetime.now(dt.UTC) + dt.timedelta(hours=1),
        os.urandom(16),
        os.urandom(32),
        mode,
    )
    path = tmp_path / "ue.json"
    path.write_text(json.dumps(ue.state_to_dict(ue.Usim(bytes(16), bytes(16)), boot)))
    return path


@pytest.mark.parametrize(
    ("www", "message"),
    [
        ('Digest realm="somewhere.else", nonce="n", qop="auth"', "not GBA's or do not parse: realm 'somewhere.else'"),
        ("Digest realm=", "not GBA's or do not parse"),
        ('Digest realm="3GPP-bootstrapping-uicc@naf.test", nonce="n", qop="auth"', "UICC key but this bootstrap"),
    ],
)
async def test_a_naf_challenge_that_is_not_for_this_bootstrap(
    tmp_path: Path, serve: Callable[[Handler], Awaitable[str]], www: str, message: str
) -> None:
    async def challenge(_request: web.Request) -> web.Response:
        return web.Response(status=401, headers={"WWW-Authenticate": www})

    code, err = await _cli("ue", "ua-get", "--state", str(_state(tmp_path)), "--url", await serve(challenge), *NAF)
    assert code == 3, err
    assert "Traceback" not in err and message in err


async def test_a_naf_whose_rspauth_does_not_verify(tmp_path: Path, serve: Callable[[Handler], Awaitable[str]]) -> None:
    async def naf(request: web.Request) -> web.Response:
        if "Authorization" not in request.headers:
            www = 'Digest realm="3GPP-bootstrapping@naf.test", nonce="bm9uY2U=", qop="auth", algorithm=MD5'
            return web.Response(status=401, headers={"WWW-Authenticate": www})
        info = 'rspauth="00000000000000000000000000000000", qop=auth, nc=00000001, cnonce="x"'
        return web.Response(text="hello", headers={"Authentication-Info": info})

    code, err = await _cli("ue", "ua-get", "--state", str(_state(tmp_path)), "--url", await serve(naf), *NAF)
    assert code == 3, err
    assert "Traceback" not in err and "rspauth from the NAF does not verify" in err


async def test_a_challenge_relayed_from_another_naf_is_refused(
    tmp_path: Path, serve: Callable[[Handler], Awaitable[str]]
) -> None:
    """TS 24.109 5.2.2.1: the realm names the NAF; a NAF that relays another NAF's challenge must not get
    a response keyed for that other NAF."""
    answered: list[str] = []

    async def relay(request: web.Request) -> web.Response:
        if "Authorization" in request.headers:
            answered.append(request.headers["Authorization"])
        www = 'Digest realm="3GPP-bootstrapping@bank.test", nonce="bm9uY2U=", qop="auth", algorithm=MD5'
        return web.Response(status=401, headers={"WWW-Authenticate": www})

    url = await serve(relay)
    code, err = await _cli("ue", "ua-get", "--state", str(_state(tmp_path)), "--url", url, *NAF)
    assert code == 3, err
    assert "the challenge is for NAF 'bank.test', not 'naf.test' that this request goes to" in err
    assert answered == []
    # With an address in the URL the UE cannot tell which NAF it talks to: it asks for the name.
    code, err = await _cli("ue", "ua-get", "--state", str(_state(tmp_path)), "--url", url)
    assert code == 3 and "the URL holds no NAF FQDN (127.0.0.1): name the NAF with --naf-fqdn" in err, err


@pytest.mark.parametrize(
    ("mode", "realm", "first", "second"),
    [
        (ue.UeMode.GBA_ME, "3GPP-bootstrapping", "3gpp-gba", "3gpp-gba"),
        (ue.UeMode.GBA_U, "3GPP-bootstrapping", "3gpp-gba-uicc 3gpp-gba", "3gpp-gba"),
        (ue.UeMode.GBA_U, "3GPP-bootstrapping-uicc", "3gpp-gba-uicc 3gpp-gba", "3gpp-gba-uicc"),
    ],
)
async def test_ua_requests_carry_the_gba_product_tokens(
    tmp_path: Path, serve: Callable[[Handler], Awaitable[str]], mode: ue.UeMode, realm: str, first: str, second: str
) -> None:
    """TS 24.109 5.2.1: User-Agent says the UE can use GBA keys (3gpp-gba, 3gpp-gba-uicc for a GBA-aware
    UICC); the answer carries the token of the key it used."""
    agents: list[str] = []

    async def naf(request: web.Request) -> web.Response:
        agents.append(request.headers.get("User-Agent", ""))
        www = f'Digest realm="{realm}@naf.test", nonce="bm9uY2U=", qop="auth", algorithm=MD5'
        return web.Response(status=401, headers={"WWW-Authenticate": www})

    code, _ = await _cli("ue", "ua-get", "--state", str(_state(tmp_path, mode)), "--url", await serve(naf), *NAF)
    assert code == 3 and agents == [first, second]


async def test_a_state_file_that_cannot_be_read_or_saved_stops_before_the_bootstrap(
    tmp_path: Path, serve: Callable[[Handler], Awaitable[str]]
) -> None:
    asked: list[str] = []

    async def bsf(request: web.Request) -> web.Response:
        asked.append(request.path)
        return web.Response(status=500)

    url = await serve(bsf)
    (tmp_path / "bad.json").write_text("{bad")
    (tmp_path / "list.json").write_text("[1]")
    (tmp_path / "short.json").write_text('{"seq_ms": [1, 2]}')
    for state, message in (
        (tmp_path / "missing" / "ue.json", "is not a writable directory"),
        (tmp_path / "bad.json", "not JSON"),
        (tmp_path / "list.json", "not a JSON object"),
        (tmp_path / "short.json", "seq_ms must be a list of 32 non-negative integers"),
    ):
        code, err = await _cli("ue", "bootstrap", "--bsf", url, *UE_ARGS, "--state", str(state))
        assert code == 2 and message in err and "Traceback" not in err, (state, err)
    assert asked == []  # checked before the USIM spends a vector: nothing reached the BSF


async def test_a_damaged_saved_bootstrap_is_named(tmp_path: Path) -> None:
    saved = json.loads(_state(tmp_path).read_text())
    for field, value, message in (
        ("lifetime", "2030-01-01T00:00:00", "the lifetime has no UTC offset"),
        ("ks", "zz", "ValueError: non-hexadecimal"),
        ("mode", "GBA_X", "ValueError: 'GBA_X' is not a valid UeMode"),
        ("rand", None, "KeyError: 'rand'"),
    ):
        bad = json.loads(json.dumps(saved))
        if value is None:
            del bad["bootstrap"][field]
        else:
            bad["bootstrap"][field] = value
        path = tmp_path / f"bad-{field}.json"
        path.write_text(json.dumps(bad))
        code, err = await _cli("ue", "naf-key", "--state", str(path), "--naf-fqdn", "naf.test")
        assert code == 2 and f"cannot read UE state {path}: {message}" in err and "Traceback" not in err, err


async def test_a_saved_tmpi_that_is_not_one_is_named(tmp_path: Path) -> None:
    """The state's TMPI becomes the next Ub username (TS 33.220 4.5.2 step 1): a damaged one stops first."""
    path = _state(tmp_path)
    saved = json.loads(path.read_text())
    saved["bootstrap"]["tmpi"] = "u@ims.test"
    path.write_text(json.dumps(saved))
    code, err = await _cli("ue", "bootstrap", "--bsf", "http://127.0.0.1:9/", *UE_ARGS, "--state", str(path))
    assert code == 2 and "bootstrap.tmpi is not a TMPI" in err and "Traceback" not in err, err
