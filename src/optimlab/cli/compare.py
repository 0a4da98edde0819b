"""``optimlab compare``: optimizers x learning rates x seeds on built-in problems.

With no arguments it runs the built-in comparison (sgd, momentum, rmsprop, adam, adamw on
rosenbrock, a ravine and a small MLP, 9 learning rates from 1e-4 to 1, 3 seeds), prints
the best setting per optimizer and writes the HTML report. The run options and the
printing are shared with ``optimlab sweep``.
"""

from __future__ import annotations

import argparse

from . import UsageError
from .grid_options import (
    DEFAULT_LRS,
    DEFAULT_SEEDS,
    DEFAULT_STEPS,
    add_run_options,
    check_named,
    check_optimizers,
    check_run_flags,
    check_unprefixed,
    engine_options,
    parse_hp_options,
    parse_lrs_options,
    parse_seeds_option,
    size_guard,
    size_options,
    split_list,
)
from .results_output import check_rank_by, finish, interruptible, progress_bar

# random starts (drawn in the problem's box from the seed) make the seeds of the
# analytic functions differ, so the spread across seeds means something
DEFAULT_PROBLEMS = ("rosenbrock:start=random", "ravine:start=random", "mlp")
DEFAULT_OPTIMIZERS = ("sgd", "momentum", "rmsprop", "adam", "adamw")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--problem",
        action="append",
        metavar="NAME[:K=V,...]",
        help="problem to run, repeatable, e.g. --problem ravine:condition=1000 "
        f"(default: {', '.join(DEFAULT_PROBLEMS)})",
    )
    parser.add_argument(
        "--optimizer",
        action="append",
        metavar="NAME[,NAME]",
        help=f"optimizers, repeatable or comma-separated (default: {','.join(DEFAULT_OPTIMIZERS)})",
    )
    parser.add_argument(
        "--lrs",
        action="append",
        metavar="RANGE",
        help=f"learning rates: lo:hi:n (log-spaced), a list a,b,c, or "
        f"OPT=RANGE for one optimizer; repeatable (default {DEFAULT_LRS})",
    )
    parser.add_argument(
        "--hp",
        action="append",
        default=[],
        metavar="[OPT.]NAME=VALUE",
        help="fix a hyperparameter, e.g. --hp adam.beta2=0.99 --hp weight_decay=0",
    )
    parser.add_argument(
        "--schedule",
        default=None,
        metavar="NAME[:K=V,...]",
        help="learning-rate schedule for every run, e.g. warmup_cosine:warmup_steps=20",
    )
    add_run_options(parser, "optimlab-results/compare")


def run(args: argparse.Namespace) -> int:
    from ..lab.api import compare
    from ..lab.config import parse_seeds

    check_run_flags(args)
    out = args.out or "optimlab-results/compare"
    optimizers = check_optimizers(split_list(args.optimizer, DEFAULT_OPTIMIZERS))
    problems = args.problem or list(DEFAULT_PROBLEMS)  # no comma split: kwargs use commas
    lrs = parse_lrs_options(args.lrs)
    hp = parse_hp_options(args.hp)
    check_named("--lrs", lrs if isinstance(lrs, dict) else (), optimizers, "not compared")
    check_named("--hp", hp, optimizers, "not compared")
    check_unprefixed(hp, optimizers)
    for opt, values in hp.items():
        if any(isinstance(v, list) for v in values.values()):
            raise UsageError(
                f"--hp takes one value per name in compare (use sweep for grids), "
                f"got {opt}: {values}"
            )
    steps = args.steps if args.steps is not None else DEFAULT_STEPS
    seeds = parse_seeds_option(args.seeds) if args.seeds is not None else parse_seeds(DEFAULT_SEEDS)
    check_rank_by(args.rank_by)
    with (
        interruptible(out),
        size_guard(),
        progress_bar(not args.quiet, "compare", per=steps) as progress,
    ):
        results = compare(
            problems,
            optimizers,
            lrs,
            steps,
            seeds,
            hyperparams=hp,
            schedule=args.schedule,
            out=out,
            batched=not args.no_batch,
            eval_every="auto" if args.eval_every is None else args.eval_every,
            progress=None if progress is None else progress.update,
            max_batch=args.max_batch,
            torch_threads=args.threads,
            **engine_options(args),
            **size_options(args, "compare", out),
        )
    return finish(args, results, out)
