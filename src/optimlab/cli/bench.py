"""``optimlab bench``: a quick run of the step-speed benchmark (benchmarks/step_speed.py).

Times optimlab's AdamW and SGD-with-momentum (every path: plain, multi-tensor, compiled,
compiled over flat storage) against torch.optim's for-loop, foreach and fused paths at
small sizes by default; ``--sizes 1e7x1,1e7x2000`` for the full table.
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--sizes",
        default="1e5x1,1e5x100",
        help="comma-separated NUMELxTENSORS (default: %(default)s)",
    )
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds (fastest kept)")
    parser.add_argument(
        "--optimizers",
        default="adamw,sgd_momentum",
        help="some of adamw, sgd_momentum, lion, adafactor, muon",
    )
    parser.add_argument(
        "--paths",
        default=None,
        help="comma-separated subset of: torch for-loop, torch foreach, torch fused, "
        "optimlab plain, optimlab multi-tensor, optimlab compiled, optimlab compiled+flat, "
        "optimlab (the default path)",
    )
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")


def run(args: argparse.Namespace) -> int:
    from optimlab.optim import bench

    paths = bench.PATHS if args.paths is None else [p.strip() for p in args.paths.split(",")]
    bench.main(
        args.sizes,
        args.repeats,
        [o.strip() for o in args.optimizers.split(",")],
        paths,
        args.threads,
        copy_numel=25_000_000,
    )
    return 0
