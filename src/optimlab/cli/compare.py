"""``optimlab compare``: optimizers x learning rates x seeds on built-in problems.

With no arguments it runs the built-in comparison (sgd, momentum, rmsprop, adam, adamw on
rosenbrock, a ravine and a small MLP, 9 learning rates from 1e-4 to 1, 3 seeds), prints
the best setting per optimizer and writes the HTML report. The run options and the
printing are shared with ``optimlab sweep``.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from ..core.specs import parse_value, split_top
from . import UsageError

# random starts (drawn in the problem's box from the seed) make the seeds of the
# analytic functions differ, so the spread across seeds means something
DEFAULT_PROBLEMS = ("rosenbrock:start=random", "ravine:start=random", "mlp")
DEFAULT_OPTIMIZERS = ("sgd", "momentum", "rmsprop", "adam", "adamw")
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
        help="evaluate held-out metrics every N steps (torch problems)",
    )
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
    parser.add_argument("--no-report", action="store_true", help="do not write the HTML report")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


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
        vals = [parse_value(v) for v in split_top(value)]
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


@contextmanager
def interruptible(out: str) -> Iterator[None]:
    """SIGTERM behaves like Ctrl+C: the runner gives its claimed runs back to the queue,
    finished runs stay stored, and we say how to resume (exit code 130 from ``main``)."""
    import signal
    import threading

    def on_term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, on_term) if main_thread else None
    try:
        yield
    except KeyboardInterrupt:
        print(
            f"optimlab: stopped; finished runs are kept in {out}; run the same command "
            f"again to resume",
            file=sys.stderr,
        )
        raise
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)


@contextmanager
def progress_bar(enabled: bool, description: str) -> Iterator[Callable[[int, int], None] | None]:
    """A rich progress bar on stderr (None when disabled or stderr is not a terminal)."""
    if not enabled or not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as prog:
        task = prog.add_task(description, total=None)

        def update(done: int, total: int) -> None:
            prog.update(task, completed=done, total=total)

        yield update


def finish(args: argparse.Namespace, results: Any, out: str) -> int:
    """Print the tables and the counts, write the report; the exit code."""
    from rich.console import Console

    probe = Console()
    console = Console(soft_wrap=False, width=probe.width if probe.is_terminal else 120)
    print_tables(console, results)
    c = results.counts
    if c is not None:
        console.print(
            f"runs: {c.requested} requested, {c.computed} computed "
            f"({c.diverged} of them diverged), {c.skipped} already in the store "
            f"(skipped), {c.failed} failed"
            + (f", {c.by_others} by another process" if c.by_others else "")
            + (f", {c.failed_by_others} failed in another process" if c.failed_by_others else "")
        )
        for err in dict.fromkeys(c.errors):
            console.print(f"[red]failed:[/red] {err}")
    if not args.no_report:
        from ..lab.report import write_report

        try:
            path = write_report(out)
        except OSError as exc:
            raise UsageError(f"cannot write the report in {out!r}: {exc.strerror or exc}") from None
        console.print(f"report: {path}")
    console.print(f"results: {out} (rerun the same command to reuse finished runs)")
    return 1 if c is not None and (c.failed or c.failed_by_others) else 0


def print_tables(console: Any, results: Any) -> None:
    from rich.table import Table

    from ..lab import analysis
    from ..lab.results import fmt

    with results.curves() as curves:
        for study in results.studies():
            table = Table(
                title=f"{study.label}: best setting per optimizer - budget {study.budget}",
                title_justify="left",
            )
            rows = analysis.best_table(study, curves)
            evals = sorted({k for r in rows for k in r["evals"] if k != "loss"})
            table.add_column("#", justify="right")
            table.add_column("setting", no_wrap=True)
            for col in (
                "final loss",
                "IQR",
                "diverged",
                "steps to target",
                "LR decades",
                *(f"eval {e}" for e in evals),
            ):
                table.add_column(col, justify="right", no_wrap=col == "IQR")
            for r in rows:
                table.add_row(
                    str(r["rank"]),
                    r["setting"],
                    fmt(r["median"], ".4g"),
                    f"{fmt(r['q25'])} - {fmt(r['q75'])}",
                    f"{r['diverged']}/{r['seeds']}",
                    fmt(r["steps_to_target"], "d"),
                    fmt(r["lr_decades"], ".1f") if math.isfinite(r["lr_decades"]) else "none",
                    *(fmt(r["evals"].get(e), ".3g") for e in evals),
                )
            console.print(table)
            rule = "stated" if study.explicit_target else analysis.TARGET_RULE
            console.print(
                f"target: loss <= {fmt(study.target, '.4g')} ({rule}); LR decades: "
                f"LR range reaching it",
                style="dim",
            )
            for note in analysis.edge_notes(rows):
                console.print(f"note: {note}", style="yellow")


def run(args: argparse.Namespace) -> int:
    from ..lab.api import compare
    from ..lab.config import parse_seeds

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
    seeds = parse_seeds(args.seeds if args.seeds is not None else DEFAULT_SEEDS)
    with interruptible(out), progress_bar(not args.quiet, "compare") as progress:
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
            eval_every=args.eval_every,
            progress=progress,
            max_batch=args.max_batch,
            torch_threads=args.threads,
        )
    return finish(args, results, out)
