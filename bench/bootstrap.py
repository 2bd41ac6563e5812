"""Full Ub bootstraps per second and p50/p99 latency at 1, 10 and 50 concurrent UEs, beside the
bare-aiohttp two-request ceiling measured in the same run.

Run: python bench/bootstrap.py [--seconds 5]
The BSF and HSS stub run as `gbagw hss serve` + `gbagw bsf serve` processes (SQLite store); the
ceiling is an aiohttp server in its own process answering 401 then 200 with no work; the UEs run in
this process (Milenage, digest, rspauth checks included on the UE side for both).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.procs import free_port, provision, spawn  # noqa: E402
from gba import ue  # noqa: E402

K, OPC = os.urandom(16), os.urandom(16)
N_UES = 50

BARE_SERVER = """
import sys
from aiohttp import web
async def h(request):
    if request.headers.get("Authorization", "").find('nonce=""') >= 0:
        return web.Response(status=401, headers={"WWW-Authenticate": "Digest realm=x, nonce=y"})
    return web.Response(status=200, body=b"<BootstrappingInfo/>")
app = web.Application()
app.router.add_route("*", "/{t:.*}", h)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=lambda *a: print("ready", flush=True))
"""


async def _gbagw_run(session: aiohttp.ClientSession, url: str, impi: str, usim: ue.Usim) -> None:
    client = ue.UeClient(usim, impi, "bsf.gba.test")
    headers = {"Authorization": client.authorization(), "User-Agent": client.user_agent}
    async with session.get(url, headers=headers) as r:
        assert r.status == 401, r.status
        www = r.headers["WWW-Authenticate"]
    headers["Authorization"] = client.on_challenge(www)
    async with session.get(url, headers=headers) as r:
        body = await r.read()
        assert r.status == 200, (r.status, body)
        client.on_success(r.headers.get("Authentication-Info"), body)


async def _bare_run(session: aiohttp.ClientSession, url: str, _impi: str, _usim: ue.Usim) -> None:
    async with session.get(url, headers={"Authorization": 'Digest username="u", nonce=""'}) as r:
        assert r.status == 401
    async with session.get(url, headers={"Authorization": 'Digest username="u", nonce="y"'}) as r:
        await r.read()
        assert r.status == 200


async def _measure(run: object, url: str, concurrency: int, seconds: float) -> tuple[float, float, float]:
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds
    usims = {i: ue.Usim(K, OPC) for i in range(N_UES)}
    conn = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=conn) as session:

        async def worker(w: int) -> None:
            i = w
            while time.perf_counter() < deadline:
                idx = i % N_UES
                t0 = time.perf_counter()
                await run(session, url, f"ue{idx}@ims.bench", usims[idx])  # type: ignore[operator]
                latencies.append(time.perf_counter() - t0)
                i += concurrency

        start = time.perf_counter()
        await asyncio.gather(*(worker(w) for w in range(concurrency)))
        elapsed = time.perf_counter() - start
    q = statistics.quantiles(latencies, n=100)
    return len(latencies) / elapsed, q[49] * 1000, q[98] * 1000


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=5.0)
    seconds = ap.parse_args().seconds
    env = {k: v for k, v in os.environ.items() if not k.startswith("GBAGW_")}
    hss_port = free_port()
    env.update(
        {
            "GBAGW_HSS_ZH_PORT": str(hss_port),
            "GBAGW_BSF_HSS_PORT": str(hss_port),
            "GBAGW_BSF_UB_PORT": "0",
            "GBAGW_LOG_LEVEL": "WARNING",
        }
    )
    gbagw = [sys.executable, "-m", "gbagw.cli"]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(N_UES):
            provision(gbagw, tmp, f"ue{i}@ims.bench", K, OPC, env)
        hss, _ = spawn([*gbagw, "hss", "serve", "--data-dir", tmp], r"Zh Diameter on", env)
        bsf, m = spawn([*gbagw, "bsf", "serve", "--data-dir", tmp], r"Ub on (http://\S+/)", env)
        bare_port = free_port()
        bare, _ = spawn([sys.executable, "-c", BARE_SERVER, str(bare_port)], r"ready", env)
        try:
            for concurrency in (1, 10, 50):
                ours = asyncio.run(_measure(_gbagw_run, m.group(1), concurrency, seconds))
                ceiling = asyncio.run(_measure(_bare_run, f"http://127.0.0.1:{bare_port}/", concurrency, seconds))
                rows.append((concurrency, ours, ceiling))
        finally:
            for p in (bsf, hss, bare):
                p.terminate()
                p.wait(10)
    print(f"Ub bootstraps (2 HTTP round trips + 1 Zh MAR), {seconds:.0f}s per cell, SQLite store, 2 cores")
    print(
        f"{'UEs':>4} {'bootstraps/s':>13} {'p50 ms':>8} {'p99 ms':>8} {'bare aiohttp 2-req/s':>21} "
        f"{'p50 ms':>8} {'ratio':>6}"
    )
    for c, (rate, p50, p99), (brate, bp50, _bp99) in rows:
        print(f"{c:>4} {rate:>13,.0f} {p50:>8.1f} {p99:>8.1f} {brate:>21,.0f} {bp50:>8.1f} {rate / brate:>6.2f}")


if __name__ == "__main__":
    main()
