"""What ``optimlab compare`` and ``optimlab sweep`` print and write: progress on stderr,
the best-setting tables, the run counts, the HTML report; and how an interruption ends."""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from . import writing


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

        with writing(Path(out) / "report.html", "; the runs are stored: pass --no-report"):
            path = write_report(out)
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
