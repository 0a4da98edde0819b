"""ms per optimizer step: optimlab's torch classes against torch.optim, in one run.

    python benchmarks/step_speed.py                       # full: 1e6, 1e7 in 1 tensor, 1e7 in 2000
    python benchmarks/step_speed.py --sizes 1e5x1,1e5x100 --repeats 3   # quick

For AdamW and SGD with momentum: torch's for-loop, foreach and fused paths, optimlab's
multi-tensor path and its plain per-tensor path; the ratio to torch's foreach path; the
achieved GB/s (bytes an ideal fp32 step moves: 28 per element for AdamW, 20 for SGD with
momentum) next to the GB/s of a large tensor copy measured in the same run. Numbers are
printed, never asserted. The full run needs ~1 GB of memory and a minute or two.
"""

from __future__ import annotations

import argparse

from optimlab.optim import bench


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes",
        default="1e6x1,1e7x1,1e7x2000",
        help="comma-separated NUMELxTENSORS (default: %(default)s)",
    )
    parser.add_argument("--repeats", type=int, default=10, help="timed rounds (fastest kept)")
    parser.add_argument("--optimizers", default="adamw,sgd_momentum")
    parser.add_argument("--paths", default=",".join(bench.PATHS))
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    parser.add_argument(
        "--copy-numel",
        type=float,
        default=2.5e7,
        help="elements of the copy that measures bandwidth",
    )
    args = parser.parse_args()
    bench.main(
        args.sizes,
        args.repeats,
        args.optimizers.split(","),
        args.paths.split(","),
        args.threads,
        int(args.copy_numel),
    )


if __name__ == "__main__":
    main()
