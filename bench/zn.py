"""Zn BIR/BIA throughput (1 and 50 in flight) beside the bare python-diameter echo ceiling measured in
the same run.

Run: python bench/zn.py [--n 2000]
`gbagw hss serve` + `gbagw bsf serve` run as processes (SQLite store); one UE bootstraps, then a Zn
client asks for its Ks_NAF n times. The BSF does the store look-up, unsealing, policy and KDF per request.
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

from bench.procs import free_port, pd_echo_rate, provision, request_rate, spawn, wait_line  # noqa: E402
from gba import kdf, ue  # noqa: E402
from gbagw.ue_client import bootstrap  # noqa: E402
from naf.config import NafConfig  # noqa: E402
from naf.zn_client import ZnClient  # noqa: E402

IMPI = "bench@ims.test"


async def _zn_rate(zn_port: int, btid: str, n: int, inflight: int) -> float:
    client = ZnClient(NafConfig(bsf_port=zn_port, zn_timeout=30))
    naf_id = kdf.NafId("naf.gba.test", kdf.UaProtocol.HTTP_DIGEST)

    async def one() -> None:
        await client.fetch_key(btid, naf_id)

    rate = await request_rate(one, n, inflight)
    await client.close()
    return rate


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2000)
    n = ap.parse_args().n
    k, opc = os.urandom(16), os.urandom(16)
    env = {key: v for key, v in os.environ.items() if not key.startswith("GBAGW_")}
    hss_port = free_port()
    env.update(
        {
            "GBAGW_HSS_ZH_PORT": str(hss_port),
            "GBAGW_BSF_HSS_PORT": str(hss_port),
            "GBAGW_BSF_UB_PORT": "0",
            "GBAGW_BSF_ZN_PORT": "0",
            "GBAGW_LOG_LEVEL": "WARNING",
        }
    )
    gbagw = [sys.executable, "-m", "gbagw.cli"]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        provision(gbagw, tmp, IMPI, k, opc, env)
        hss, _ = spawn([*gbagw, "hss", "serve", "--data-dir", tmp], r"Zh Diameter on", env)
        bsf, m = spawn([*gbagw, "bsf", "serve", "--data-dir", tmp], r"Ub on (http://\S+/)", env)
        ub = m.group(1)
        bsf_zn = int(wait_line(bsf, r"Zn Diameter on [\d.]+:(\d+)").group(1))
        echo_port = free_port()
        echo, _ = spawn([sys.executable, "bench/pd_echo.py", "server", str(echo_port)], r"(ready)")
        try:
            boot = asyncio.run(bootstrap(ub, ue.UeClient(ue.Usim(k, opc), IMPI, "bsf.gba.test")))
            for inflight in (1, 50):
                rows.append(
                    (
                        inflight,
                        asyncio.run(_zn_rate(bsf_zn, boot.btid, n, inflight)),
                        pd_echo_rate(echo_port, n, inflight),
                    )
                )
        finally:
            for p in (bsf, hss, echo):
                p.terminate()
                p.wait(10)
    print(f"Zn BIR/BIA per second, n={n}, 2 cores, BSF and echo server each in their own process")
    print(f"{'in flight':>9} {'BSF Zn':>10} {'pd echo (pd client)':>20} {'BSF / pd-echo ceiling':>22}")
    for inflight, rate, ceiling in rows:
        print(f"{inflight:>9} {rate:>10,.0f} {ceiling:>20,.0f} {rate / ceiling:>22.2f}")


if __name__ == "__main__":
    main()
