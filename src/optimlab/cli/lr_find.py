"""``optimlab lr-find --problem NAME [--optimizer adam] ...``: the learning-rate range test."""

from __future__ import annotations

import argparse
import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ..core.specs import parse_options
from . import UsageError, flag_names
from .results_output import progress_bar


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--problem",
        required=True,
        help="a problem name (see `optimlab list problems`) or module:function",
    )
    parser.add_argument("--optimizer", default="adam", help="a registered optimizer (adam)")
    parser.add_argument(
        "--hp",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an optimizer hyperparameter other than lr, e.g. --hp beta1=0.8 "
        "or --hp 'betas=(0.9,0.99)' (repeatable)",
    )
    parser.add_argument("--start-lr", type=float, default=1e-7, help="first rate (1e-7)")
    parser.add_argument("--end-lr", type=float, default=10.0, help="last rate (10)")
    parser.add_argument("--num-iter", type=int, default=100, help="steps (100)")
    parser.add_argument(
        "--mode", choices=("exp", "linear"), default="exp", help="how the rate grows (exp)"
    )
    parser.add_argument(
        "--accumulation-steps", type=int, default=1, help="batches per optimizer step (1)"
    )
    parser.add_argument(
        "--val", action="store_true", help="record the loss on the problem's validation batch"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the problem's data (0)")
    parser.add_argument("--out", default=None, help="PNG file for the loss-vs-lr plot")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def parse_hp(items: list[str]) -> dict[str, Any]:
    """``["beta1=0.8", "nesterov=True"]`` -> ``{"beta1": 0.8, "nesterov": True}`` (each item
    read by ``core.specs.parse_options``, so ``betas=(0.9,0.99)`` is a tuple)."""
    out: dict[str, Any] = {}
    for item in items:
        for key, value in parse_options(item, "--hp").items():
            if key in out:
                raise UsageError(f"--hp gives {key} twice")
            out[key] = value
    return out


def _counted(batches: Iterator[Any], tick: Callable[[int], None]) -> Iterator[Any]:
    """``batches``, calling ``tick(n)`` with the number drawn so far."""
    for n, batch in enumerate(batches, start=1):
        yield batch
        tick(n)


@contextlib.contextmanager
def user_code(problem: str) -> Iterator[None]:
    """An exception raised by the user's own problem (``module:function`` or
    ``file.py:function``: building it, its model or its loss) is one line, exit code 2;
    ``OPTIMLAB_DEBUG=1`` shows its traceback. Built-in problems are not wrapped: an
    exception there is a bug of ours, shown with its traceback."""
    try:
        yield
    except (ValueError, UsageError, KeyboardInterrupt):
        raise
    except Exception as exc:
        if ":" not in problem or os.environ.get("OPTIMLAB_DEBUG"):
            raise
        raise UsageError(
            f"problem {problem!r} raised {type(exc).__name__}: {exc} "
            f"(set OPTIMLAB_DEBUG=1 to see the traceback)"
        ) from None


def run(args: argparse.Namespace) -> int:
    from optimlab import problems
    from optimlab.rules.registry import get_spec
    from optimlab.train.lr_range_test import lr_find_task

    get_spec(args.optimizer)  # an unknown optimizer fails before the problem is built
    hp = parse_hp(args.hp)
    out = None if args.out is None else Path(args.out)
    if out is not None and not out.parent.is_dir():
        raise FileNotFoundError(f"folder {str(out.parent)!r} does not exist (for --out {out})")
    flags = {
        name: f"--{name.replace('_', '-')}"
        for name in ("start_lr", "end_lr", "num_iter", "accumulation_steps", "seed")
    }
    with (
        flag_names(flags),
        user_code(args.problem),
        progress_bar(not args.quiet, "lr-find", unit="steps", per=args.accumulation_steps) as bar,
    ):
        task = problems.get(args.problem).torch_task(args.seed)
        if bar is not None:  # count the batches the test draws: accumulation_steps per step
            total = (args.num_iter + (0 if args.val else 1)) * args.accumulation_steps
            task.batches = _counted(task.batches, lambda n: bar.update(n, total))
        result = lr_find_task(
            task,
            args.optimizer,
            hyperparams=hp,
            use_val_batch=args.val,
            start_lr=args.start_lr,
            end_lr=args.end_lr,
            num_iter=args.num_iter,
            mode=args.mode,
            accumulation_steps=args.accumulation_steps,
        )
    print(f"problem {args.problem}, optimizer {args.optimizer}: {result}")
    if result.suggested_lr is not None:
        print(f"suggested lr: {result.suggested_lr:.4g}")
    else:
        print("no suggestion: the loss never fell steadily; widen --start-lr/--end-lr")
    if out is not None:
        result.plot(out)
        print(f"wrote {out}")
    return 0
