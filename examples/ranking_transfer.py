"""Does a ranking of optimizers on a small MLP transfer to a transformer?

The optimizers of the transformer comparison in docs/llm.md (AdamW, Muon, Lion,
schedule-free AdamW), each tuned over the same learning-rate grid (five rates from 1e-3
to 1e-1, a decade lower for Lion) with the same budget (300 steps, two seeds), on two
problems of the lab: the MLP classifier (20-64-5 on a random teacher) and the
transformer LM (characters of Python's documentation). Each optimizer is represented by
its best learning rate (lowest median held-out loss over the seeds) and ranked by that
loss; the script prints both rankings and Kendall's tau between them (1: the same
order, -1: reversed). Muon's non-matrix parameters go to AdamW on both problems
(``optimlab.optim.routing``). With ``--out`` the runs are stored in (and reused from)
a results folder: the transformer runs are those of ``optimlab compare --problem
transformer`` with the same grid.

    python examples/ranking_transfer.py [--out DIR]   # the measured run (docs/llm.md)
    python examples/ranking_transfer.py --quick       # a tiny transformer, for the tests
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
import time

import numpy as np

import optimlab

OPTIMIZERS = ("adamw", "muon", "lion", "adamw_schedulefree")
FULL = {
    "transformer": {},
    "lrs": {"default": "1e-3:1e-1:5", "lion": "1e-4:1e-2:5"},
    "steps": 300,
    "seeds": 2,
}
QUICK = {
    "transformer": {"width": 16, "heads": 2, "context": 16, "n_val": 8},
    "lrs": {"default": "1e-3:1e-1:3", "lion": "1e-4:1e-2:3"},
    "steps": 30,
    "seeds": 1,
}


def best_per_optimizer(results, problem: str) -> dict[str, tuple[float, float]]:
    """optimizer -> (best lr, its median held-out loss); a diverged run counts as inf."""
    losses: dict[tuple[str, float], list[float]] = {}
    for r in results:
        if r["problem"] != problem:
            continue
        loss = r.get("eval_loss") if r["status"] == "finished" else None
        value = float("inf") if loss is None or not np.isfinite(loss) else float(loss)
        losses.setdefault((r["optimizer"], r["lr"]), []).append(value)
    best: dict[str, tuple[float, float]] = {}
    for (opt, lr), values in losses.items():
        median = float(np.median(values))
        if opt not in best or median < best[opt][1]:
            best[opt] = (lr, median)
    return best


def kendall_tau(a: list[str], b: list[str]) -> float:
    """Kendall's tau between two orderings of the same items (no ties)."""
    pos_a, pos_b = {x: i for i, x in enumerate(a)}, {x: i for i, x in enumerate(b)}
    pairs = list(itertools.combinations(a, 2))
    agree = sum(np.sign(pos_a[x] - pos_a[y]) == np.sign(pos_b[x] - pos_b[y]) for x, y in pairs)
    return (2 * agree - len(pairs)) / len(pairs)


def main(quick: bool, out: str | None) -> None:
    cfg = QUICK if quick else FULL
    problems = [("mlp", {}), ("transformer", cfg["transformer"])]
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        results = optimlab.lab.compare(
            problems,
            OPTIMIZERS,
            cfg["lrs"],
            cfg["steps"],
            cfg["seeds"],
            out=out or scratch,
            torch_threads=1,
        )
        records = list(results)
    elapsed = time.perf_counter() - start
    grid = ", ".join(f"{k}: {v}" for k, v in cfg["lrs"].items())
    print(
        f"{len(OPTIMIZERS)} optimizers x LRs ({grid}) x {cfg['seeds']} seeds x "
        f"{cfg['steps']} steps; each optimizer at its best LR (median held-out loss)"
    )
    orders = {}
    for name, _ in problems:
        best = best_per_optimizer(records, name)
        order = sorted(best, key=lambda o: best[o][1])
        orders[name] = order
        print(f"{name}:")
        for rank, opt in enumerate(order, start=1):
            lr, loss = best[opt]
            print(f"  {rank}. {opt:<20} lr={lr:<8.3g} held-out loss {loss:.4f}")
    tau = kendall_tau(orders["mlp"], orders["transformer"])
    same = orders["mlp"] == orders["transformer"]
    print(
        f"Kendall's tau between the two rankings: {tau:+.2f}"
        f" ({'the same order' if same else 'the order changes'})"
    )
    counts = results.counts
    reused = f", {counts.skipped} of them reused from {out}" if counts and counts.skipped else ""
    print(f"wall time {elapsed:.1f} s for {len(records)} runs{reused}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a tiny transformer, for the tests")
    parser.add_argument("--out", help="results folder to store the runs in (and reuse)")
    args = parser.parse_args()
    main(args.quick, args.out)
