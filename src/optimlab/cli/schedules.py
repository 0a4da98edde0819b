"""``optimlab schedules NAME[:key=value,...] ... --steps N --out FILE.png``: plot schedules."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..core.checks import integer


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "names",
        nargs="+",
        metavar="NAME",
        help="schedule names (see `optimlab list schedules`), each optionally with options, "
        "e.g. warmup_cosine:warmup_steps=100 or multistep:milestones=(300,600)",
    )
    parser.add_argument("--steps", type=int, default=1000, help="steps to draw (default 1000)")
    parser.add_argument(
        "--lr",
        type=float,
        default=1.0,
        help="base learning rate (default 1: multipliers of the base rate)",
    )
    parser.add_argument("--out", default="schedules.png", help="PNG file to write")
    parser.add_argument("--logy", action="store_true", help="log-scale learning-rate axis")


def run(args: argparse.Namespace) -> int:
    from optimlab import schedules

    integer("--steps", args.steps, 1)
    built = [schedules.from_spec(spec, total_steps=args.steps, lr=args.lr) for spec in args.names]
    out = Path(args.out)
    if not out.parent.is_dir():
        raise FileNotFoundError(f"folder {str(out.parent)!r} does not exist (for --out {out})")
    schedules.plot(built, args.steps, path=out, lr=args.lr, logy=args.logy, labels=args.names)
    last = args.steps - 1
    width = max(len(n) for n in args.names)
    print(f"{'schedule':<{width}}  {'step 0':>10}  {'max':>10}  {f'step {last}':>10}")
    for spec, s in zip(args.names, built, strict=True):
        values = [s(t) for t in range(args.steps)]
        print(f"{spec:<{width}}  {values[0]:>10.4g}  {max(values):>10.4g}  {values[-1]:>10.4g}")
    print(f"wrote {out}")
    return 0
