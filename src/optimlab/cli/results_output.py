"""What ``optimlab compare`` and ``optimlab sweep`` print and write: progress on stderr,
the best-setting tables, the run counts, the HTML report; and how an interruption ends."""

from __future__ import annotations

import argparse
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


class Progress:
    """What a progress callback shows: ``units`` done of ``total``, where ``per`` units make
    one ``unit`` (the lab's runner counts run-steps; a run is ``steps`` of them)."""

    def __init__(self, update: Callable[[int, int], None], echo: Callable[[str], None]) -> None:
        self.update = update
        self.echo = echo  # print a line above the bar (or to stdout without a bar)


def _columns(unit: str, per: int) -> list[Any]:
    from rich.progress import (
        BarColumn,
        ProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    class Count(ProgressColumn):
        """``135/405 runs, 38.2 runs/s``."""

        def render(self, task: Any) -> Text:
            done = int(task.completed) // per
            total = "?" if task.total is None else str(int(task.total) // per)
            speed = task.finished_speed or task.speed
            rate = "" if not speed else f", {speed / per:.3g} {unit}/s"
            return Text(f"{done}/{total} {unit}{rate}")

    return [
        TextColumn("{task.description}"),
        BarColumn(bar_width=24),
        TextColumn("{task.percentage:>3.0f}%"),
        Count(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    ]


@contextmanager
def progress_bar(
    enabled: bool, description: str, unit: str = "runs", per: int = 1
) -> Iterator[Progress | None]:
    """A progress bar on stderr (None when disabled or stderr is not a terminal): the
    percentage, ``done/total`` in ``unit`` (``per`` callback units each), the rate, the
    elapsed time and the estimated time left."""
    if not enabled or not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import Progress as RichProgress

    with RichProgress(
        *_columns(unit, max(1, int(per))),
        console=Console(stderr=True),
        transient=True,
        redirect_stdout=False,
        redirect_stderr=False,
    ) as prog:
        task = prog.add_task(description, total=None)

        def update(done: int, total: int) -> None:
            prog.update(task, completed=done, total=total)

        def echo(line: str) -> None:
            if sys.stdout.isatty():  # the same terminal: print above the bar
                prog.console.print(line, markup=False, highlight=False, soft_wrap=True)
            else:
                print(line, flush=True)

        yield Progress(update, echo)


RANKABLE = ("loss", "train_loss", "accuracy", "distance", "excess_loss", "steps", "time")


def check_rank_by(rank_by: str) -> None:
    """--rank-by names a metric the built-in problems record (checked before any run)."""
    from ..core.names import unknown_name

    if rank_by not in RANKABLE:
        raise unknown_name("--rank-by metric", rank_by, RANKABLE)


def output_width() -> int | None:
    """The width tables must fit: ``COLUMNS`` if set, else the terminal's; ``None`` (no
    limit) when stdout is not a terminal."""
    import os
    import shutil

    columns = os.environ.get("COLUMNS", "")
    if columns.strip().isdigit() and int(columns) > 0:
        return int(columns)
    if sys.stdout.isatty():
        return shutil.get_terminal_size().columns
    return None


def finish(args: argparse.Namespace, results: Any, out: str) -> int:
    """Print the tables and the counts, write the report; the exit code."""
    from ..lab.tables import paragraph

    width = output_width()
    print(results.table(getattr(args, "rank_by", "loss"), width))
    c = results.counts
    if c is not None:
        line = (
            f"runs: {c.requested} requested, {c.computed} computed "
            f"({c.diverged} of them diverged), {c.skipped} already in the store "
            f"(skipped), {c.failed} failed"
            + (f", {c.by_others} by another process" if c.by_others else "")
            + (f", {c.failed_by_others} failed in another process" if c.failed_by_others else "")
        )
        print(paragraph(line, width, "  "))
        for err in dict.fromkeys(c.errors):
            print(paragraph(f"failed: {err}", width, "  "))
    if not args.no_report:
        from ..lab.report import write_report

        with writing(Path(out) / "report.html", "; the runs are stored: pass --no-report"):
            path = write_report(out, rank_by=getattr(args, "rank_by", "loss"))
        print(paragraph(f"report: {path}", width))
    print(paragraph(f"results: {out} (rerun the same command to reuse finished runs)", width))
    return 1 if c is not None and (c.failed or c.failed_by_others) else 0
