"""``optimlab sweep``: a full grid optimizer x hyperparameters x schedule x seed.

The grid comes from flags or a JSON/TOML file (flags win)::

    problem = "rosenbrock"            # or a list; "ravine:cond=100" passes kwargs
    steps = 300
    seeds = 3
    schedules = ["constant", "warmup_cosine:warmup=30"]
    [grid.adam]
    lr = "1e-4:1e-1:7"                # a range or a list
    beta2 = [0.99, 0.999]
    [grid.sgd]
    lr = [0.001, 0.01]
"""

from __future__ import annotations

import argparse
import json
import tomllib
from pathlib import Path
from typing import Any

from ..core.names import unknown_keyword
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

DEFAULT_OUT = "optimlab-results/sweep"
_CONFIG_KEYS = {"problem", "steps", "seeds", "schedules", "grid", "out", "eval_every"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "config",
        nargs="?",
        default=None,
        metavar="CONFIG",
        help="JSON or TOML file with problem, steps, seeds, schedules, grid",
    )
    parser.add_argument(
        "--problem",
        action="append",
        metavar="NAME[:K=V,...]",
        help="problem, repeatable (default rosenbrock)",
    )
    parser.add_argument(
        "--optimizer",
        action="append",
        metavar="NAME[,NAME]",
        help="optimizers, repeatable or comma-separated (default adam)",
    )
    parser.add_argument(
        "--lrs",
        action="append",
        metavar="RANGE",
        help=f"learning rates lo:hi:n, a,b,c or OPT=RANGE (default {DEFAULT_LRS})",
    )
    parser.add_argument(
        "--hp",
        action="append",
        default=[],
        metavar="[OPT.]NAME=V1,V2",
        help="a hyperparameter axis, e.g. --hp adam.beta2=0.99,0.999",
    )
    parser.add_argument(
        "--schedule",
        action="append",
        metavar="NAME[:K=V,...]",
        help="schedule axis, repeatable; 'constant' for none",
    )
    add_run_options(parser, DEFAULT_OUT)


def load_config(path: str) -> dict[str, Any]:
    """A sweep configuration from a JSON or TOML file (unknown keys rejected): ``.toml``
    is TOML, ``.json`` JSON, any other name either (YAML, say, is refused naming both)."""
    p = Path(path)
    if not p.is_file():
        raise UsageError(f"config file not found: {path!r}")
    text = p.read_text(encoding="utf-8")
    suffix = p.suffix.lower()
    try:
        data = tomllib.loads(text) if suffix == ".toml" else json.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        if suffix in (".toml", ".json"):
            raise UsageError(f"cannot parse config {path!r}: {exc}") from None
        try:  # another suffix: JSON was tried first, then TOML
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError:
            raise UsageError(
                f"cannot read config {path!r}: a sweep config is JSON or TOML (named "
                f".json or .toml), and this file is neither"
            ) from None
    if not isinstance(data, dict):
        raise UsageError(f"config {path!r} must hold a table/object, got {type(data).__name__}")
    unknown = sorted(set(data) - _CONFIG_KEYS)
    if unknown:
        raise unknown_keyword(f"config {path!r}", unknown[0], sorted(_CONFIG_KEYS), "key")
    return data


def build_grid(args: argparse.Namespace, config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The grid from the config file, then flags: --optimizer/--lrs/--hp replace or extend it."""
    raw = config.get("grid", {})
    if not isinstance(raw, dict) or not all(isinstance(v, dict) for v in raw.values()):
        raise UsageError("config 'grid' must map each optimizer to a table of its axes")
    grid = {
        name: dict(axes)
        for name, axes in zip(check_optimizers(list(raw)), raw.values(), strict=True)
    }
    if args.optimizer or not grid:
        opts = check_optimizers(split_list(args.optimizer, ("adam",)))
        grid = {o: grid.get(o, {}) for o in opts}
    lrs = parse_lrs_options(args.lrs, default="")
    check_named("--lrs", lrs if isinstance(lrs, dict) else (), list(grid), "not in the sweep")
    for opt, axes in grid.items():
        if isinstance(lrs, dict):
            axes["lr"] = lrs.get(opt, lrs["default"] or axes.get("lr", DEFAULT_LRS))
        elif lrs:
            axes["lr"] = lrs
        axes.setdefault("lr", DEFAULT_LRS)
    hp = parse_hp_options(args.hp)
    check_unprefixed(hp, list(grid))
    for opt, values in hp.items():
        for target in grid if opt == "*" else [opt]:
            target = check_optimizers([target])[0]
            if target not in grid:
                raise UsageError(
                    f"--hp names optimizer {opt!r} that is not in the sweep ({', '.join(grid)})"
                )
            grid[target].update(values)
    return grid


def run(args: argparse.Namespace) -> int:
    from ..lab.api import sweep
    from ..lab.config import parse_seeds

    check_run_flags(args)
    config = load_config(args.config) if args.config else {}
    grid = build_grid(args, config)
    problem = args.problem or config.get("problem", "rosenbrock")  # [] is a mistake, not a default
    steps = args.steps if args.steps is not None else config.get("steps", DEFAULT_STEPS)
    if args.seeds is not None:
        seeds = parse_seeds_option(args.seeds)
    else:
        seeds = parse_seeds(config.get("seeds", DEFAULT_SEEDS))
    schedules = args.schedule or config.get("schedules") or [None]
    out = args.out or config.get("out") or DEFAULT_OUT
    if not isinstance(out, str):
        raise UsageError(f"config 'out' must be a folder path (a string), got {out!r}")
    eval_every = args.eval_every if args.eval_every is not None else config.get("eval_every")
    check_rank_by(args.rank_by)
    with (
        interruptible(out),
        size_guard(),
        progress_bar(
            not args.quiet, "sweep", per=steps if isinstance(steps, int) else 1
        ) as progress,
    ):
        results = sweep(
            problem,
            grid,
            steps,
            seeds,
            schedules=schedules,
            out=out,
            batched=not args.no_batch,
            eval_every="auto" if eval_every is None else eval_every,
            progress=None if progress is None else progress.update,
            max_batch=args.max_batch,
            torch_threads=args.threads,
            **engine_options(args),
            **size_options(args, "sweep", out),
        )
    return finish(args, results, out)
