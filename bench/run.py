"""The whole benchmark table in one command: python bench/run.py [--seconds 5] [--n 2000]

Every figure stands beside its baseline measured in the same run: Ub bootstraps against a bare aiohttp
two-request loop, Zn against the bare python-diameter echo. Then the stores: SQLite vs Redis, and one vs
two BSF processes on Redis (each bootstrap's two requests go to different processes).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.bootstrap import bare, bare_server, gbagw_lab, ours  # noqa: E402
from bench.procs import pd_echo_rate  # noqa: E402
from bench.zn import bootstrap_one, pd_echo_server, zn_rate  # noqa: E402

REDIS = "redis://127.0.0.1:6379/13"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--n", type=int, default=2000)
    args = ap.parse_args()
    s = args.seconds
    rows: list[tuple[str, str, str, str, str]] = []

    def row(what: str, rate: float, lat: str, base_name: str, base: float) -> None:
        rows.append((what, f"{rate:,.0f}/s", lat, f"{base_name} {base:,.0f}/s", f"{rate / base:.2f}"))

    with bare_server() as bare_url:
        ceilings = {c: bare(bare_url, c, s) for c in (1, 10, 50)}
        with gbagw_lab() as (urls, zn_ports, _):
            for c in (1, 10, 50):
                rate, p50, p99 = ours(urls, c, s)
                row(
                    f"Ub bootstraps, SQLite, {c} UEs",
                    rate,
                    f"p50 {p50:.1f} / p99 {p99:.1f} ms",
                    "bare aiohttp",
                    ceilings[c][0],
                )
            btid = bootstrap_one(urls[0])
            with pd_echo_server() as echo:
                for inflight in (1, 50):
                    rate = asyncio.run(zn_rate(zn_ports[0], btid, args.n, inflight))
                    row(f"Zn BIR/BIA, {inflight} in flight", rate, "", "pd echo", pd_echo_rate(echo, args.n, inflight))
        for bsfs in (1, 2):
            with gbagw_lab(REDIS, bsfs) as (urls, _, _):
                rate, p50, p99 = ours(urls, 50, s)
                row(
                    f"Ub bootstraps, Redis, {bsfs} BSF, 50 UEs",
                    rate,
                    f"p50 {p50:.1f} / p99 {p99:.1f} ms",
                    "bare aiohttp",
                    ceilings[50][0],
                )
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    head = ("measurement", "rate", "latency", "baseline (same run)", "ratio")
    widths = [max(w, len(h)) for w, h in zip(widths, head, strict=True)]
    print("gbagw benchmarks (2 cores; servers in their own processes, load generator in this one)")
    print("  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)))
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))


if __name__ == "__main__":
    main()
