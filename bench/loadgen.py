"""Where the two cores go: the bare aiohttp loop against bare servers that burn a fixed CPU time per
request, beside gbagw's bootstraps, with each side's CPU per request pair and the cores it keeps busy.

Run: python bench/loadgen.py [--seconds 3] [--ues 50] [--spins 0,100,200,300]

The bootstrap benchmarks run the UEs on the same two cores as the servers, so their ratios count the
load generator too, and it is one process: at the ceiling it is the client that fills a core, not the
bare server. As the server slows, the same aiohttp requests cost the client more CPU (each wake-up of
its event loop collects fewer responses) and a one-process server becomes the bound once it fills a
core. gbagw's row shows its UEs' CPU per bootstrap (the bare client's at a similar rate plus the UE
work proper: Milenage, digests, XML) and its two server processes (BSF and HSS stub) together.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bootstrap import N_UES, bare, bare_server, gbagw_lab, ours


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--ues", type=int, default=50)
    ap.add_argument("--spins", default="0,100,200,300", help="CPU µs each bare server burns per request")
    args = ap.parse_args()
    if not 1 <= args.ues <= N_UES:
        ap.error(f"--ues must be 1..{N_UES}: the lab has {N_UES} subscribers, one per concurrent UE")
    spins = [float(s) for s in args.spins.split(",")]
    with contextlib.ExitStack() as stack:
        servers = [stack.enter_context(bare_server(s)) for s in spins]
        lab = stack.enter_context(gbagw_lab())
        cells = [bare(srv, args.ues, args.seconds) for srv in servers]
        boot = ours(lab, args.ues, args.seconds)
    print(f"CPU per request pair (gbagw: per bootstrap) and cores busy, {args.ues} UEs, {args.seconds:g}s per cell")
    print(f"{'server':<32} {'pairs/s':>9} {'server CPU us':>14} {'client CPU us':>14} {'cores srv/cli':>14}")
    names = ["bare aiohttp (the ceiling)" if s == 0 else f"bare aiohttp + {s:g} us/request" for s in spins]
    for name, c in zip([*names, "gbagw bootstraps (BSF + HSS)"], [*cells, boot], strict=True):
        cores = f"{c.rate * c.server_cpu_us / 1e6:.2f}/{c.rate * c.client_cpu_us / 1e6:.2f}"
        print(f"{name:<32} {c.rate:>9,.0f} {c.server_cpu_us:>14.0f} {c.client_cpu_us:>14.0f} {cores:>14}")


if __name__ == "__main__":
    main()
