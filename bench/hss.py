"""HSS stub MAR/MAA throughput (sequential and 50 in flight) beside the bare python-diameter echo
ceiling measured in the same run.

Run: python bench/hss.py [--n 2000]
Both servers run in their own processes; the HSS does Milenage, SQLite SQN updates and key unsealing
per request, the echo server does nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.procs import pd_echo_rate, provision, request_rate, spawn  # noqa: E402
from gba import diameter as d  # noqa: E402
from gbaio.diameter_node import DiameterClient, NodeIdentity  # noqa: E402

IMPI = "bench@ims.test"


async def _ours(port: int, n: int, inflight: int) -> float:
    client = DiameterClient(NodeIdentity("bench.gba.test", "gba.test", (d.APP_ZH,)), "127.0.0.1", port, timeout=30)
    counter = iter(range(10**9))

    async def one() -> None:
        env = d.MultimediaAuthRequest(f"bench;{next(counter)}", "bench.gba.test", "gba.test", "gba.test", IMPI)
        ans = d.MultimediaAuthAnswer.from_envelope(await client.request(env.to_envelope(0, 0)))
        assert ans.result_code is not None

    rate = await request_rate(one, n, inflight)
    await client.close()
    return rate


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2000)
    n = ap.parse_args().n
    with tempfile.TemporaryDirectory() as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith("GBAGW_")}
        env["GBAGW_HSS_ZH_PORT"] = "0"
        env["GBAGW_LOG_LEVEL"] = "WARNING"
        gbagw = [sys.executable, "-m", "gbagw.cli"]
        provision(gbagw, tmp, [IMPI], os.urandom(16), os.urandom(16), env)
        hss, m = spawn([*gbagw, "hss", "serve", "--data-dir", tmp], r"on [\d.]+:(\d+)", env)
        hss_port = m.group(1)
        echo_port = 39000 + os.getpid() % 1000
        echo, _ = spawn([sys.executable, "bench/pd_echo.py", "server", str(echo_port)], r"(ready)")
        try:
            rows = []
            for inflight in (1, 50):
                hss_rate = asyncio.run(_ours(int(hss_port), n, inflight))
                ours_echo = asyncio.run(_ours(echo_port, n, inflight))
                pd_echo = pd_echo_rate(echo_port, n, inflight)
                rows.append((inflight, hss_rate, ours_echo, pd_echo))
        finally:
            hss.terminate()
            echo.kill()
            hss.wait(10)
    print(f"MAR/MAA round trips per second, n={n}, 2 cores, each server in its own process")
    print(
        f"{'in flight':>9} {'HSS stub':>10} {'pd echo (our client)':>21} {'pd echo (pd client)':>20} "
        f"{'HSS / pd-echo ceiling':>22}"
    )
    for inflight, hss_rate, ours_echo, pd_echo in rows:
        print(f"{inflight:>9} {hss_rate:>10,.0f} {ours_echo:>21,.0f} {pd_echo:>20,.0f} {hss_rate / pd_echo:>22.2f}")


if __name__ == "__main__":
    main()
