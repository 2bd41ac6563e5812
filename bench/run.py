"""The whole benchmark table in one command: python bench/run.py [--seconds 5] [--n 2000]

Every figure stands beside its baseline measured in the same run: Ub bootstraps against a bare aiohttp
two-request loop, Zn against the bare python-diameter echo. Then the stores: SQLite vs Redis, and one vs
two BSF processes on Redis (each bootstrap's two requests go to different processes). Bootstrap rows
also give the CPU time per bootstrap of the servers (BSF + HSS [+ redis-server]) and of the load
generator, beside the same figures for the bare loop: all of them share this machine's cores. The last
lines turn those into bootstraps per server core against the bare server's request pairs per core.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.bootstrap import Lab, bare, bare_server, gbagw_lab, ours  # noqa: E402
from bench.procs import done, pd_echo_rate  # noqa: E402
from bench.zn import bootstrap_one, pd_echo_server, zn_rate  # noqa: E402

REDIS = "redis://127.0.0.1:6379/13"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--n", type=int, default=2000)
    args = ap.parse_args()
    s = args.seconds
    rows: list[tuple[str, ...]] = []
    per_core: list[str] = []

    def row(what: str, rate: float, lat: str, base_name: str, base: float, cpu: str = "") -> None:
        rows.append((what, f"{rate:,.0f}/s", lat, cpu, f"{base_name} {base:,.0f}/s", f"{rate / base:.2f}"))
        done(f"{what}: {rate:,.0f}/s")

    def bootstrap_row(what: str, lab: Lab, bare_srv: tuple[str, int], ues: int) -> None:
        """One bootstrap cell, then its ceiling right after it: this VM's speed drifts within a run."""
        cell, ceiling = ours(lab, ues, s), bare(bare_srv, ues, s)
        cpu = (
            f"{cell.server_cpu_us:.0f} (BSF {cell.bsf_cpu_us:.0f}) + {cell.client_cpu_us:.0f} "
            f"(bare {ceiling.server_cpu_us:.0f} + {ceiling.client_cpu_us:.0f})"
        )
        latency = f"p50 {cell.p50_ms:.1f} / p99 {cell.p99_ms:.1f} ms"
        row(what, cell.rate, latency, "bare aiohttp", ceiling.rate, cpu)
        # What one core running the server(s) serves, whatever the load generator costs: BSF alone, and
        # BSF + HSS stub (+ redis-server), against the bare server's request pairs per core.
        bsf_core, all_core, bare_core = (
            1e6 / us for us in (cell.bsf_cpu_us, cell.server_cpu_us, ceiling.server_cpu_us)
        )
        per_core.append(
            f"  {what}: BSF {bsf_core:,.0f}/s, all servers {all_core:,.0f}/s; bare server {bare_core:,.0f} pairs/s: "
            f"{bsf_core / bare_core:.2f} / {all_core / bare_core:.2f}"
        )

    with bare_server() as bare_srv:
        with gbagw_lab() as lab:
            for c in (1, 10, 50):
                bootstrap_row(f"Ub bootstraps, SQLite, {c} UEs", lab, bare_srv, c)
            btid = bootstrap_one(lab.urls[0])
            with pd_echo_server() as echo:
                for inflight in (1, 50):
                    rate = asyncio.run(zn_rate(lab.zn_ports[0], btid, args.n, inflight))
                    row(f"Zn BIR/BIA, {inflight} in flight", rate, "", "pd echo", pd_echo_rate(echo, args.n, inflight))
        for bsfs in (1, 2):
            with gbagw_lab(REDIS, bsfs) as lab:
                bootstrap_row(f"Ub bootstraps, Redis, {bsfs} BSF, 50 UEs", lab, bare_srv, 50)
    head = ("measurement", "rate", "latency", "CPU us/op: servers + load gen", "baseline (same run)", "ratio")
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(head)]
    print(
        f"gbagw benchmarks ({os.cpu_count()} cores shared by the servers, in their own processes, "
        "and the load generator, in this one)"
    )
    print("  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)))
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))
    print("Per server core (sizing, and the bound when the load generator has cores of its own):")
    print("\n".join(per_core))


if __name__ == "__main__":
    main()
