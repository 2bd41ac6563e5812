"""Zn BIR/BIA throughput (1 and 50 in flight) beside the bare python-diameter echo ceiling measured in
the same run.

Run: python bench/zn.py [--n 2000]
`gbagw hss serve` + `gbagw bsf serve` run as processes (SQLite store); one UE bootstraps, then a Zn
client asks for its Ks_NAF n times. The BSF does the store look-up, unsealing, policy and KDF per request.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.bootstrap import OPC, K, base_env, gbagw_lab  # noqa: E402
from bench.procs import free_port, pd_echo_rate, request_rate, spawn  # noqa: E402
from gba import kdf, ue  # noqa: E402
from gbagw.ue_client import bootstrap  # noqa: E402
from naf.config import NafConfig  # noqa: E402
from naf.zn_client import ZnClient  # noqa: E402


async def zn_rate(zn_port: int, btid: str, n: int, inflight: int) -> float:
    client = ZnClient(NafConfig(bsf_port=zn_port, zn_timeout=30))
    naf_id = kdf.NafId("naf.gba.test", kdf.UaProtocol.HTTP_DIGEST)

    async def one() -> None:
        await client.fetch_key(btid, naf_id)

    rate = await request_rate(one, n, inflight)
    await client.close()
    return rate


def bootstrap_one(ub_url: str) -> str:
    """Bootstrap the lab's first UE and return its B-TID."""
    return asyncio.run(bootstrap(ub_url, ue.UeClient(ue.Usim(K, OPC), "ue0@ims.bench", "bsf.gba.test"))).btid


@contextmanager
def pd_echo_server() -> Iterator[int]:
    port = free_port()
    p, _ = spawn([sys.executable, "bench/pd_echo.py", "server", str(port)], r"(ready)", base_env())
    try:
        yield port
    finally:
        p.kill()
        p.wait(10)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2000)
    n = ap.parse_args().n
    rows = []
    with gbagw_lab() as (urls, zn_ports, _tmp, _bsfs, _others), pd_echo_server() as echo_port:
        btid = bootstrap_one(urls[0])
        for inflight in (1, 50):
            rows.append(
                (inflight, asyncio.run(zn_rate(zn_ports[0], btid, n, inflight)), pd_echo_rate(echo_port, n, inflight))
            )
    print(f"Zn BIR/BIA per second, n={n}, 2 cores, BSF and echo server each in their own process")
    print(f"{'in flight':>9} {'BSF Zn':>10} {'pd echo (pd client)':>20} {'BSF / pd-echo ceiling':>22}")
    for inflight, rate, ceiling in rows:
        print(f"{inflight:>9} {rate:>10,.0f} {ceiling:>20,.0f} {rate / ceiling:>22.2f}")


if __name__ == "__main__":
    main()
