"""Full Ub bootstraps per second and p50/p99 latency at 1, 10 and 50 concurrent UEs, beside the
bare-aiohttp two-request ceiling measured in the same run.

Run: python bench/bootstrap.py [--seconds 5] [--store redis://127.0.0.1:6379/13] [--bsfs 2]
The BSF(s) and the HSS stub run as `gbagw hss serve` + `gbagw bsf serve` processes; with several BSFs
each bootstrap sends its first request to one and its second to the next (a load balancer's worst
case). The ceiling is an aiohttp server in its own process answering 401 then 200 with no work; the UEs
run in this process (Milenage, digest and rspauth checks on the UE side).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.procs import free_port, provision, spawn, wait_line  # noqa: E402
from gba import ue  # noqa: E402

K, OPC = os.urandom(16), os.urandom(16)
N_UES = 50
GBAGW = [sys.executable, "-m", "gbagw.cli"]

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

Run = Callable[[aiohttp.ClientSession, str, str, str, ue.Usim], Awaitable[None]]


def base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GBAGW_")}
    env.update(
        {
            "GBAGW_LOG_LEVEL": "WARNING",
            "GBAGW_BSF_ADMIN_PORT": "0",
            "GBAGW_HSS_ADMIN_PORT": "0",
            "GBAGW_NAF_ADMIN_PORT": "0",
            "GBAGW_BSF_SBI_PORT": "0",
            "GBAGW_BSF_SOAP_PORT": "0",
            # The load generator cycles 50 UEs thousands of times a second: no abuse limits here.
            "GBAGW_BSF_RATE_PER_IMPI": "0",
            "GBAGW_BSF_RATE_PER_SOURCE": "0",
            "GBAGW_BSF_MAX_PENDING_CHALLENGES": "0",
        }
    )
    return env


@contextmanager
def gbagw_lab(store: str | None = None, bsfs: int = 1) -> Iterator[tuple[list[str], list[int], str]]:
    """HSS stub + ``bsfs`` BSF processes with N_UES subscribers; yields (Ub URLs, Zn ports, data dir)."""
    env = base_env()
    hss_port = free_port()
    env.update(
        {
            "GBAGW_HSS_ZH_PORT": str(hss_port),
            "GBAGW_BSF_HSS_PORT": str(hss_port),
            "GBAGW_BSF_UB_PORT": "0",
            "GBAGW_BSF_ZN_PORT": "0",
        }
    )
    if store:
        env["GBAGW_BSF_STORE"] = store
    procs: list[subprocess.Popen[str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        try:
            for i in range(N_UES):
                provision(GBAGW, tmp, f"ue{i}@ims.bench", K, OPC, env)
            hss, _ = spawn([*GBAGW, "hss", "serve", "--data-dir", tmp], r"Zh Diameter on", env)
            procs.append(hss)
            urls, zn_ports = [], []
            for _ in range(bsfs):
                bsf, m = spawn([*GBAGW, "bsf", "serve", "--data-dir", tmp], r"Ub on (http://\S+/)", env)
                procs.append(bsf)
                urls.append(m.group(1))
                zn_ports.append(int(wait_line(bsf, r"Zn Diameter on [\d.]+:(\d+)").group(1)))
            yield urls, zn_ports, tmp
        finally:
            for p in procs:
                p.terminate()
                p.wait(10)


@contextmanager
def bare_server() -> Iterator[str]:
    port = free_port()
    p, _ = spawn([sys.executable, "-c", BARE_SERVER, str(port)], r"ready", base_env())
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        p.terminate()
        p.wait(10)


async def _gbagw_run(session: aiohttp.ClientSession, first: str, second: str, impi: str, usim: ue.Usim) -> None:
    client = ue.UeClient(usim, impi, "bsf.gba.test")
    headers = {"Authorization": client.authorization(), "User-Agent": client.user_agent}
    async with session.get(first, headers=headers) as r:
        assert r.status == 401, r.status
        www = r.headers["WWW-Authenticate"]
    headers["Authorization"] = client.on_challenge(www)
    async with session.get(second, headers=headers) as r:
        body = await r.read()
        assert r.status == 200, (r.status, body)
        client.on_success(r.headers.get("Authentication-Info"), body)


async def _bare_run(session: aiohttp.ClientSession, first: str, second: str, _impi: str, _usim: ue.Usim) -> None:
    async with session.get(first, headers={"Authorization": 'Digest username="u", nonce=""'}) as r:
        assert r.status == 401
    async with session.get(second, headers={"Authorization": 'Digest username="u", nonce="y"'}) as r:
        await r.read()
        assert r.status == 200


async def measure(run: Run, urls: list[str], concurrency: int, seconds: float) -> tuple[float, float, float]:
    """(bootstraps/s, p50 ms, p99 ms) with ``concurrency`` UEs looping for ``seconds``."""
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds
    usims = {i: ue.Usim(K, OPC) for i in range(N_UES)}
    conn = aiohttp.TCPConnector(limit=concurrency * 2)
    async with aiohttp.ClientSession(connector=conn) as session:

        async def worker(w: int) -> None:
            i = w
            while time.perf_counter() < deadline:
                idx = i % N_UES
                t0 = time.perf_counter()
                await run(session, urls[i % len(urls)], urls[(i + 1) % len(urls)], f"ue{idx}@ims.bench", usims[idx])
                latencies.append(time.perf_counter() - t0)
                i += concurrency

        start = time.perf_counter()
        await asyncio.gather(*(worker(w) for w in range(concurrency)))
        elapsed = time.perf_counter() - start
    q = statistics.quantiles(latencies, n=100)
    return len(latencies) / elapsed, q[49] * 1000, q[98] * 1000


def bare(url: str, concurrency: int, seconds: float) -> tuple[float, float, float]:
    return asyncio.run(measure(_bare_run, [url], concurrency, seconds))


def ours(urls: list[str], concurrency: int, seconds: float) -> tuple[float, float, float]:
    return asyncio.run(measure(_gbagw_run, urls, concurrency, seconds))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--store", default=None, help="bsf.store URL (default: SQLite)")
    ap.add_argument("--bsfs", type=int, default=1)
    args = ap.parse_args()
    rows = []
    with gbagw_lab(args.store, args.bsfs) as (urls, _zn, _tmp), bare_server() as bare_url:
        for c in (1, 10, 50):
            rows.append((c, ours(urls, c, args.seconds), bare(bare_url, c, args.seconds)))
    print(
        f"Ub bootstraps (2 HTTP round trips + 1 Zh MAR), {args.seconds:.0f}s per cell, "
        f"store {args.store or 'SQLite'}, {args.bsfs} BSF process(es), 2 cores"
    )
    print(
        f"{'UEs':>4} {'bootstraps/s':>13} {'p50 ms':>8} {'p99 ms':>8} {'bare aiohttp 2-req/s':>21} "
        f"{'p50 ms':>8} {'ratio':>6}"
    )
    for c, (rate, p50, p99), (brate, bp50, _bp99) in rows:
        print(f"{c:>4} {rate:>13,.0f} {p50:>8.1f} {p99:>8.1f} {brate:>21,.0f} {bp50:>8.1f} {rate / brate:>6.2f}")


if __name__ == "__main__":
    main()
