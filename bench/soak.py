"""Memory under sustained load: resident set size of the BSF and the HSS stub after each phase of
bootstraps at 50 UEs. A leak shows as RSS growing with the bootstraps served; a steady process stays flat.

Run: python bench/soak.py [--phases 6] [--seconds 10] [--store redis://127.0.0.1:6379/13]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.bootstrap import N_UES, gbagw_lab, ours  # noqa: E402


def rss_mb(pid: int) -> float:
    """Resident set size of ``pid`` in MiB (Linux /proc, proc(5))."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--phases", type=int, default=6)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--store", default=None, help="bsf.store URL (default: SQLite)")
    args = ap.parse_args()
    print(f"RSS under load: {N_UES} UEs, {args.phases} phases of {args.seconds:.0f} s, store {args.store or 'SQLite'}")
    print(f"{'phase':>5} {'bootstraps':>11} {'rate/s':>8} {'BSF MiB':>8} {'HSS MiB':>8}")
    total = 0
    with gbagw_lab(args.store) as lab:
        bsf, hss = lab.bsf_pids[0], lab.other_pids[0]
        print(f"{'idle':>5} {0:>11,} {'':>8} {rss_mb(bsf):>8.1f} {rss_mb(hss):>8.1f}", flush=True)
        for phase in range(1, args.phases + 1):
            cell = ours(lab, N_UES, args.seconds)
            total += round(cell.rate * args.seconds)
            print(f"{phase:>5} {total:>11,} {cell.rate:>8,.0f} {rss_mb(bsf):>8.1f} {rss_mb(hss):>8.1f}", flush=True)


if __name__ == "__main__":
    main()
