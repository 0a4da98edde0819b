"""The options ``optimlab compare`` and ``optimlab sweep`` share, and how they are read.

Budget and results folder (``add_run_options``), optimizer lists, learning-rate ranges
(``--lrs``, by ``lab.config.parse_lrs``) and hyperparameters (``--hp``, values by
``core.specs``), with the checks that refuse options that would be silently ignored.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ..core.specs import parse_value, split_top
from . import UsageError

DEFAULT_LRS = "1e-4:1:9"
DEFAULT_STEPS = 200
DEFAULT_SEEDS = 3


def add_run_options(parser: argparse.ArgumentParser, default_out: str) -> None:
    """Options shared by ``compare`` and ``sweep``."""
    parser.add_argument(
        "--steps",
        type=int,
        default=None,
        metavar="N",
        help=f"optimizer steps per run (default {DEFAULT_STEPS})",
    )
    parser.add_argument(
        "--seeds",
        default=None,
        metavar="N|LIST",
        help=f"number of seeds, or a list of seeds like 0,4,7 (default {DEFAULT_SEEDS})",
    )
    parser.add_argument(
        "--out",
        default=None,
        metavar="DIR",
        help=f"results folder; finished runs there are reused (default {default_out})",
    )
    parser.add_argument(
        "--eval-every",
        type=int,
        default=None,
        metavar="N",
        help="evaluate every N steps (default: about 20 evaluations per run, and always "
        "after the last update)",
    )
    parser.add_argument(
        "--rank-by",
        default="loss",
        metavar="METRIC",
        help="what ranks the settings: loss (default: held-out loss, or the loss at the "
        "final point of a test function, after the last update), train_loss, accuracy "
        "(or another evaluation, e.g. distance), steps or time (to the target)",
    )
    parser.add_argument(
        "--yes",
        action="store_true",
        help="run even if the grid's results would exceed 1 GB (the size guard, against "
        "typos such as --lrs 1e-3:1:100000)",
    )
    add_engine_options(parser)
    parser.add_argument("--no-report", action="store_true", help="do not write the HTML report")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def add_engine_options(parser: argparse.ArgumentParser) -> None:
    """How and where the runs are computed: batching, threads, ``--engine`` and
    ``--address``."""
    parser.add_argument(
        "--no-batch",
        action="store_true",
        help="run settings one by one instead of batched (slower; for checks)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        metavar="N",
        help="torch threads per process (default 1: the lab's models are "
        "small; run two commands on one --out to use two cores)",
    )
    parser.add_argument(
        "--max-batch",
        type=int,
        default=None,
        metavar="N",
        help="at most N runs per engine batch (finer resume after a kill)",
    )
    parser.add_argument(
        "--engine",
        default="local",
        choices=("local", "ray"),
        help="where batches run: local (this process, the default) or ray (tasks on a "
        "Ray cluster; results are written here; needs pip install 'optimlab[ray]')",
    )
    parser.add_argument(
        "--address",
        default=None,
        metavar="HOST:PORT",
        help="the Ray cluster for --engine ray (default: RAY_ADDRESS, else a local one)",
    )


def engine_options(args: argparse.Namespace) -> dict[str, Any]:
    """``engine``/``address`` for the lab from ``--engine``/``--address``, checked before
    anything runs (Ray must be installed for ``--engine ray``)."""
    if args.engine != "ray":
        if args.address is not None:
            raise UsageError("--address is for --engine ray")
        return {}
    import importlib.util

    if importlib.util.find_spec("ray") is None:
        raise UsageError(
            "--engine ray needs Ray, which is not installed: pip install 'optimlab[ray]'"
        )
    return {"engine": "ray", "address": args.address}


def check_run_flags(args: argparse.Namespace) -> None:
    """The budget and batching flags, checked under their own names (``--eval-every must
    be an integer >= 1, got 0``) before anything runs."""
    from ..core.checks import integer

    for flag, value in (
        ("--steps", args.steps),
        ("--eval-every", args.eval_every),
        ("--max-batch", args.max_batch),
        ("--threads", args.threads),
    ):
        if value is not None:
            integer(flag, value, 1)


@contextmanager
def as_flag(flag: str, name: str) -> Iterator[None]:
    """Errors the library reports about ``name`` (``lrs must be ...``), told with the flag
    the user typed (``--lrs must be ...``)."""
    try:
        yield
    except ValueError as exc:
        text = str(exc)
        if not text.startswith(f"{name} "):
            raise
        raise UsageError(f"{flag}{text[len(name) :]}") from None


def parse_seeds_option(value: str) -> list[int]:
    """``--seeds N|LIST`` as a sorted list of seeds."""
    from ..lab.config import parse_seeds

    with as_flag("--seeds", "seeds"):
        return parse_seeds(value)


def split_list(values: list[str] | None, default: tuple[str, ...]) -> list[str]:
    if not values:
        return list(default)
    return [v.strip() for item in values for v in item.split(",") if v.strip()]


def parse_lrs_options(values: list[str] | None, default: str = DEFAULT_LRS) -> Any:
    """``["1e-4:1:9"]`` -> that spec; ``["adam=1e-4:1e-2:3", ...]`` -> per optimizer."""
    from ..lab.config import parse_lrs

    if not values:
        return default
    per_opt: dict[str, str] = {}
    for v in values:
        opt, eq, spec = v.partition("=")
        key = opt.strip() if eq else "default"
        with as_flag("--lrs", "lrs"):
            parse_lrs(spec if eq else v)
        if key in per_opt:  # the later one would silently replace the earlier one
            raise UsageError(
                f"--lrs gives {'the default range' if key == 'default' else key!r} "
                f"twice ({per_opt[key]!r} and {spec if eq else v!r}); "
                f"give one range or list"
            )
        per_opt[key] = spec if eq else v
    if list(per_opt) == ["default"]:
        return per_opt["default"]
    per_opt.setdefault("default", default)
    return per_opt


def parse_hp_options(values: list[str]) -> dict[str, dict[str, Any]]:
    """``["adam.beta2=0.99", "weight_decay=0,0.1"]`` -> ``{"adam": {...}, "*": {...}}``;
    comma-separated values become lists (sweep axes); values are read by
    ``core.specs.parse_value`` (numbers, ``true``/``false``, ``none``, tuples, words)."""
    out: dict[str, dict[str, Any]] = {}
    for item in values:
        key, eq, value = item.partition("=")
        if not eq or not key.strip() or not value.strip():
            raise UsageError(f"--hp must be [OPT.]NAME=VALUE, got {item!r}")
        opt, dot, name = key.strip().rpartition(".")
        vals = [parse_value(v) for v in split_top(value, f"--hp {key.strip()}")]
        out.setdefault(opt if dot else "*", {})[name] = vals if len(vals) > 1 else vals[0]
    return out


def check_unprefixed(hp: dict[str, dict[str, Any]], optimizers: list[str]) -> None:
    """An ``--hp NAME=V`` without ``OPT.`` applies to every optimizer: each must have NAME."""
    from ..rules.registry import get_rule

    for name in hp.get("*", {}):
        lacking = [o for o in optimizers if name not in get_rule(o).names]
        if lacking:
            owners = [o for o in optimizers if o not in lacking]
            hint = (
                f"write --hp {owners[0]}.{name}=... to set it for {owners[0]} only"
                if owners
                else f"none of {', '.join(optimizers)} has it"
            )
            raise UsageError(
                f"--hp {name}=... applies to every optimizer, but {name!r} is not "
                f"a hyperparameter of {', '.join(lacking)}; {hint}"
            )


def check_named(option: str, names: Any, optimizers: list[str], where: str) -> None:
    """Every optimizer ``option`` names (other than ``default``/``*``) must be run."""
    for name in names:
        if name not in ("default", "*") and check_optimizers([name])[0] not in optimizers:
            raise UsageError(
                f"{option} names optimizer {name!r} that is {where} ({', '.join(optimizers)})"
            )


def check_optimizers(names: list[str]) -> list[str]:
    from ..rules.registry import get_spec

    return [get_spec(n).name for n in names]  # unknown -> ValueError with a suggestion


def size_options(args: argparse.Namespace, command: str, out: str) -> dict[str, Any]:
    """The size guard's arguments of ``compare``/``sweep``: no limit with ``--yes``; the
    estimate (runs, size of results) on stderr unless ``--quiet``."""
    import sys

    from ..lab.store.sizing import MAX_STORE_BYTES, SizeEstimate

    def show(estimate: SizeEstimate) -> None:
        print(f"{command}: {estimate.text()} in {out}", file=sys.stderr)

    return {
        "max_store_bytes": None if args.yes else MAX_STORE_BYTES,
        "on_estimate": None if args.quiet else show,
    }


@contextmanager
def size_guard() -> Iterator[None]:
    """A grid over the size guard: one line saying to check it or to pass ``--yes``."""
    from ..lab.store.sizing import StoreTooLarge

    try:
        yield
    except StoreTooLarge as exc:
        raise UsageError(exc.message("--yes")) from None
