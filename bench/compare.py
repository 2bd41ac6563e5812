"""Bootstraps of two source trees side by side: which code is faster, on a machine whose speed drifts.

Run: python bench/compare.py TREE_A TREE_B [--rounds 10] [--seconds 1.5] [--ues 50] [--store URL]
                              [--python-b PYTHON]
(e.g. ``git worktree add /tmp/before HEAD~1`` and ``python bench/compare.py /tmp/before .``; or
``python bench/compare.py . . --python-b /path/to/venv/bin/python`` to compare interpreters: the servers
of the second lab run under that one, which needs gbagw's dependencies installed; the load generator
stays in this process)

This VM's speed drifts by up to 2x within minutes, so two bench/run.py runs minutes apart cannot show
a 10 % change. This starts both trees' labs at once (HSS stub + BSF processes, each running its tree's
code), then alternates short cells between them (A B, B A, ...) and prints each tree's medians and the
median of its paired ratios to the first tree: CPU per bootstrap of all processes (servers and load
generator) and bootstrap rate. Paired ratios repeat to within about 5 % here (single runs: 30 %). With
--store both labs share that store.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bootstrap import Cell, gbagw_lab, ours
from bench.procs import done


def _total(c: Cell) -> float:
    return c.server_cpu_us + c.client_cpu_us


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("trees", nargs=2, type=Path, help="source trees (the first is the reference)")
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--seconds", type=float, default=1.5)
    ap.add_argument("--ues", type=int, default=50)
    ap.add_argument("--store", default=None, help="bsf.store URL (default: SQLite)")
    ap.add_argument("--python-b", default=sys.executable, help="interpreter of the second tree's servers")
    args = ap.parse_args()
    trees = [t.resolve() for t in args.trees]
    pythons = [sys.executable, args.python_b]
    with contextlib.ExitStack() as stack:
        labs = [
            stack.enter_context(gbagw_lab(args.store, root=t, python=py)) for t, py in zip(trees, pythons, strict=True)
        ]
        for lab in labs:
            ours(lab, args.ues, 0.5)  # warm up both before anything is counted
        cells: list[list[Cell]] = [[], []]
        for r in range(args.rounds):
            for i in (0, 1) if r % 2 == 0 else (1, 0):
                cells[i].append(ours(labs[i], args.ues, args.seconds))
            done(f"round {r + 1}/{args.rounds}")
    print(
        f"Ub bootstraps at {args.ues} UEs, store {args.store or 'SQLite'}, {args.rounds} rounds of "
        f"{args.seconds:g}s cells; medians, and paired ratios to the first tree"
    )
    for tree, python, mine in zip(trees, pythons, cells, strict=True):
        cpu = statistics.median(_total(c) / _total(ref) for c, ref in zip(mine, cells[0], strict=True))
        rate = statistics.median(c.rate / ref.rate for c, ref in zip(mine, cells[0], strict=True))
        bsf = statistics.median(c.bsf_cpu_us for c in mine)
        others = statistics.median(c.server_cpu_us - c.bsf_cpu_us for c in mine)
        label = str(tree) if python == sys.executable else f"{tree} ({python})"
        print(
            f"{label}: {statistics.median(c.rate for c in mine):,.0f} bootstraps/s, CPU us per bootstrap "
            f"{statistics.median(_total(c) for c in mine):.0f} (BSF {bsf:.0f}, HSS+ {others:.0f}, "
            f"UEs {statistics.median(c.client_cpu_us for c in mine):.0f}); CPU x{cpu:.3f}, rate x{rate:.3f}"
        )


if __name__ == "__main__":
    main()
