"""Full Ub bootstraps per second and p50/p99 latency at 1, 10 and 50 concurrent UEs, beside the
bare-aiohttp two-request ceiling measured in the same run.

Run: python bench/bootstrap.py [--seconds 5] [--store redis://127.0.0.1:6379/13] [--bsfs 2]
The BSF(s) and the HSS stub run as `gbagw hss serve` + `gbagw bsf serve` processes; with several BSFs
each bootstrap sends its first request to one and its second to the next (a load balancer's worst
case). The ceiling is an aiohttp server in its own process answering 401 then 200 with no work; the UEs
run in this process (Milenage, digest and rspauth checks on the UE side).

Everything shares the machine's cores, so each cell also reports CPU time per bootstrap: the
servers' (BSF + HSS, + redis-server with a Redis store; the BSF's alone in brackets) and the load
generator's. That is the sizing figure (bootstraps per core) and shows where a ratio is lost.
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
from typing import NamedTuple

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.procs import cpu_seconds, free_port, provision, spawn, wait_line  # noqa: E402
from gba import ue  # noqa: E402

K, OPC = os.urandom(16), os.urandom(16)
N_UES = 50

# argv: port, then the CPU time in µs to burn per request (bench/loadgen.py; 0, the ceiling, burns none)
BARE_SERVER = """
import sys, time
from aiohttp import web
SPIN = float(sys.argv[2]) / 1e6
async def h(request):
    if request.headers.get("Authorization", "").find('nonce=""') >= 0:
        return web.Response(status=401, headers={"WWW-Authenticate": "Digest realm=x, nonce=y"})
    return web.Response(status=200, body=b"<BootstrappingInfo/>")
async def spun(request):
    end = time.perf_counter() + SPIN
    while time.perf_counter() < end:
        pass
    return await h(request)
app = web.Application()
app.router.add_route("*", "/{t:.*}", spun if SPIN else h)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=lambda *a: print("ready", flush=True))
"""

Run = Callable[[aiohttp.ClientSession, str, str, str, ue.Usim], Awaitable[None]]


class Lab(NamedTuple):
    urls: list[str]  # Ub, one per BSF
    zn_ports: list[int]
    data_dir: str
    bsf_pids: list[int]
    other_pids: list[int]  # the HSS stub and (with a Redis store) redis-server


class Cell(NamedTuple):
    rate: float  # bootstraps (or request pairs) per second
    p50_ms: float
    p99_ms: float
    server_cpu_us: float  # per bootstrap, all server processes together
    bsf_cpu_us: float  # per bootstrap, the BSF process(es) alone (the ceiling's server for the bare loop)
    client_cpu_us: float  # per bootstrap, the load generator (UEs)


def _redis_server_pid() -> list[int]:
    out = subprocess.run(["pgrep", "-x", "redis-server"], capture_output=True, text=True).stdout.split()
    return [int(out[0])] if out else []


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
def gbagw_lab(
    store: str | None = None, bsfs: int = 1, root: Path = ROOT, python: str = sys.executable
) -> Iterator[Lab]:
    """HSS stub + ``bsfs`` BSF processes with N_UES subscribers, running the code of source tree ``root``
    under the interpreter ``python``."""
    gbagw = [python, "-m", "gbagw.cli"]
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
            provision(gbagw, tmp, [f"ue{i}@ims.bench" for i in range(N_UES)], K, OPC, env, root)
            hss, _ = spawn([*gbagw, "hss", "serve", "--data-dir", tmp], r"Zh Diameter on", env, root)
            procs.append(hss)
            urls, zn_ports = [], []
            for _ in range(bsfs):
                bsf, m = spawn([*gbagw, "bsf", "serve", "--data-dir", tmp], r"Ub on (http://\S+/)", env, root)
                procs.append(bsf)
                urls.append(m.group(1))
                zn_ports.append(int(wait_line(bsf, r"Zn Diameter on [\d.]+:(\d+)").group(1)))
            redis = _redis_server_pid() if store and store.startswith("redis") else []
            yield Lab(urls, zn_ports, tmp, [p.pid for p in procs[1:]], [hss.pid, *redis])
        finally:
            for p in procs:
                p.terminate()
                p.wait(10)


@contextmanager
def bare_server(spin_us: float = 0) -> Iterator[tuple[str, int]]:
    """(URL, pid) of the bare aiohttp ceiling server, or of one slowed by ``spin_us`` of CPU per request."""
    port = free_port()
    p, _ = spawn([sys.executable, "-c", BARE_SERVER, str(port), str(spin_us)], r"ready", base_env())
    try:
        yield f"http://127.0.0.1:{port}/", p.pid
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


async def measure(
    run: Run, urls: list[str], concurrency: int, seconds: float, bsf_pids: list[int], other_pids: list[int]
) -> Cell:
    """Rate, latency and CPU per bootstrap with ``concurrency`` UEs looping for ``seconds``."""
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
        before = cpu_seconds(bsf_pids), cpu_seconds(other_pids), cpu_seconds([0])
        await asyncio.gather(*(worker(w) for w in range(concurrency)))
        elapsed = time.perf_counter() - start
        after = cpu_seconds(bsf_pids), cpu_seconds(other_pids), cpu_seconds([0])
        bsf, other, client = (a - b for a, b in zip(after, before, strict=True))
    q = statistics.quantiles(latencies, n=100)
    n = len(latencies)
    return Cell(n / elapsed, q[49] * 1000, q[98] * 1000, (bsf + other) / n * 1e6, bsf / n * 1e6, client / n * 1e6)


def bare(server: tuple[str, int], concurrency: int, seconds: float) -> Cell:
    url, pid = server
    return asyncio.run(measure(_bare_run, [url], concurrency, seconds, [pid], []))


def ours(lab: Lab, concurrency: int, seconds: float) -> Cell:
    return asyncio.run(measure(_gbagw_run, lab.urls, concurrency, seconds, lab.bsf_pids, lab.other_pids))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--store", default=None, help="bsf.store URL (default: SQLite)")
    ap.add_argument("--bsfs", type=int, default=1)
    args = ap.parse_args()
    rows = []
    with gbagw_lab(args.store, args.bsfs) as lab, bare_server() as bare_srv:
        for c in (1, 10, 50):
            rows.append((c, ours(lab, c, args.seconds), bare(bare_srv, c, args.seconds)))
    print(
        f"Ub bootstraps (2 HTTP round trips + 1 Zh MAR), {args.seconds:.0f}s per cell, "
        f"store {args.store or 'SQLite'}, {args.bsfs} BSF process(es), {os.cpu_count()} cores"
    )
    print(
        f"{'UEs':>4} {'bootstraps/s':>13} {'p50 ms':>8} {'p99 ms':>8} {'CPU us srv(BSF)/UEs':>20} "
        f"{'bare aiohttp 2-req/s':>21} {'p50 ms':>8} {'CPU us srv/cli':>15} {'ratio':>6}"
    )
    for c, o, b in rows:
        print(
            f"{c:>4} {o.rate:>13,.0f} {o.p50_ms:>8.1f} {o.p99_ms:>8.1f} "
            f"{o.server_cpu_us:>7.0f}({o.bsf_cpu_us:.0f})/{o.client_cpu_us:<7.0f} {b.rate:>21,.0f} {b.p50_ms:>8.1f} "
            f"{b.server_cpu_us:>7.0f}/{b.client_cpu_us:<7.0f} {o.rate / b.rate:>6.2f}"
        )


if __name__ == "__main__":
    main()
