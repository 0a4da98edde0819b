"""``optimlab list [optimizers|schedules|problems]``: what the lab can run."""

from __future__ import annotations

import argparse
import inspect
from typing import Any

WHAT = ("optimizers", "schedules", "problems")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "what", nargs="?", choices=(*WHAT, "all"), default="all", help="what to list (default all)"
    )


def _first_line(obj: Any) -> str:
    doc = inspect.getdoc(obj) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


def optimizer_rows() -> list[tuple[str, str]]:
    from ..rules.registry import get_rule, list_optimizers

    rows = []
    for name in list_optimizers():
        rule = get_rule(name)
        hp = ", ".join(f"{h.name}={h.default}" for h in rule.hyperparams)
        rows.append((name, f"{rule.summary}  [{hp}]"))
    return rows


def schedule_rows() -> list[tuple[str, str]]:
    from .. import schedules

    return [
        (name, f"options: {', '.join(schedules.parameters(name))}") for name in schedules.list()
    ]


def problem_rows() -> list[tuple[str, str]]:
    from .. import problems

    rows = []
    for name in problems.list():
        try:
            problem = problems.get(name)
            doc = f"[{problem.kind}] {_first_line(type(problem))}"
        except Exception as exc:  # a problem that cannot be built still gets listed
            doc = f"(cannot build: {exc})"
        rows.append((name, doc))
    return rows


_ROWS = {"optimizers": optimizer_rows, "schedules": schedule_rows, "problems": problem_rows}


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console(soft_wrap=True)
    for what in WHAT if args.what == "all" else (args.what,):
        rows = _ROWS[what]()
        table = Table(title=what, title_justify="left", show_header=False, box=None)
        table.add_column("name", style="bold", no_wrap=True)
        table.add_column("description")
        for name, doc in rows:
            table.add_row(Text(name), Text(doc))
        console.print(table)
    return 0
