"""``optimlab bench``: a quick run of the step-speed benchmark (benchmarks/step_speed.py).

Times optimlab's AdamW and SGD-with-momentum (every path: plain, multi-tensor, compiled,
compiled over flat storage) against torch.optim's for-loop, foreach and fused paths at
small sizes by default; ``--sizes 1e7x1,1e7x2000`` for the full table.
"""

from __future__ import annotations

import argparse

from .results_output import progress_bar


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
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from optimlab.optim import bench

    paths = bench.PATHS if args.paths is None else [p.strip() for p in args.paths.split(",")]
    optimizers = [o.strip() for o in args.optimizers.split(",")]
    # measurements: the in-place bandwidth first (the header line), then one per table row
    total = 1 + len(optimizers) * len(args.sizes.split(",")) * len(paths)
    with progress_bar(not args.quiet, "bench", unit="measurements") as bar:
        done = [0]

        def echo(line: str) -> None:
            if bar is None:
                print(line, flush=True)
                return
            done[0] += 1
            bar.echo(line)
            bar.update(done[0], total)

        if bar is not None:
            bar.update(0, total)
        bench.main(
            args.sizes,
            args.repeats,
            optimizers,
            paths,
            args.threads,
            bandwidth_numel=25_000_000,
            echo=echo,
        )
    return 0
