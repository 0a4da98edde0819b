"""ms per optimizer step: optimlab's torch classes against torch.optim, in one run.

    python benchmarks/step_speed.py                  # the full table (a few minutes)
    python benchmarks/step_speed.py --sizes 1e5x1,1e5x100 --matrix-sizes 1e5x4 --repeats 3

AdamW, SGD with momentum and Lion at 1e7 parameters in 1 tensor and in 2000 tensors;
Adafactor and Muon on 16 square matrices (1e6 parameters: Muon's step is matrix products).
Every path that applies: torch's for-loop, foreach and fused implementations (Lion: a
foreach reference, torch has no Lion), and ours: the plain per-tensor rule, the eager
multi-tensor path, the compiled rule, the compiled rule over flat storage and the default.
Columns: ms per step (fastest of ``--repeats`` rounds in which the paths take turns), the
first step's latency (the compile, the first time a rule is compiled in this process), the
ratios to torch's foreach and fused paths, the achieved GB/s (bytes an ideal fp32 step
moves) and the time over the floor (those bytes at the GB/s of a large in-place
``a.add_(b)`` measured in the same run). Then the compile of a fresh process, with a cold
and a warm inductor disk cache. Numbers are printed, never asserted.
"""

from __future__ import annotations

import argparse
import os

from optimlab.optim import bench


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1e7x1,1e7x2000", help="NUMELxTENSORS, comma-separated")
    parser.add_argument("--optimizers", default="adamw,sgd_momentum,lion")
    parser.add_argument("--matrix-sizes", default="1e6x16", help="for Adafactor and Muon")
    parser.add_argument("--matrix-optimizers", default="adafactor,muon")
    parser.add_argument("--repeats", type=int, default=10, help="timed rounds (fastest kept)")
    parser.add_argument("--paths", default=",".join(bench.PATHS))
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    parser.add_argument(
        "--bandwidth-numel", type=float, default=2.5e7, help="elements of the in-place pass"
    )
    parser.add_argument("--no-compile-times", action="store_true", help="skip cold/warm runs")
    args = parser.parse_args()
    paths = args.paths.split(",")
    tables = [
        (sizes, optimizers.split(","))
        for sizes, optimizers in (
            (args.sizes, args.optimizers),
            (args.matrix_sizes, args.matrix_optimizers),
        )
        if optimizers
    ]
    try:  # every table's arguments checked before the first is measured
        for sizes, optimizers in tables:
            bench.check_arguments(sizes, optimizers, paths, args.repeats)
    except ValueError as exc:
        parser.error(str(exc))
    for sizes, optimizers in tables:
        bench.main(sizes, args.repeats, optimizers, paths, args.threads, int(args.bandwidth_numel))
    if not args.no_compile_times:
        times = bench.compile_times()
        print(
            f"first compiled AdamW step in a fresh process (compile, s): cold cache "
            f"{times['cold']:.2f}, warm cache {times['warm']:.2f}; "
            f"load average {os.getloadavg()[0]:.1f}"
        )


if __name__ == "__main__":
    main()
