"""The ``optimlab`` command line: parses arguments and calls the library.

Each command lives in its own module (``compare``, ``sweep``, ``report``, ``listing``,
``schedules``, ``lr_find``, ``bench``) with ``add_arguments(parser)`` and
``run(args) -> int``. User mistakes raise ``UsageError``
(or ``ValueError``) and become one line on stderr and exit code 2, never a traceback
(set ``OPTIMLAB_DEBUG=1`` to see the traceback instead).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import NoReturn

# command name -> one-line help
COMMANDS: dict[str, str] = {
    "compare": "compare optimizers and learning rates on built-in problems",
    "sweep": "run a grid of optimizer x hyperparameters x schedule x seed",
    "report": "write the HTML report of a results folder",
    "list": "list optimizers, schedules and problems",
    "schedules": "plot learning-rate schedules",
    "lr-find": "run the learning-rate range test",
    "bench": "time optimizer steps against torch.optim",
}


class UsageError(Exception):
    """A mistake in what the user asked for: reported as one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line and exit 2, no usage dump
        raise UsageError(message)


def _command_modules() -> dict[str, ModuleType]:
    """Each command's module (``add_arguments(parser)`` and ``run(args) -> int``); they
    import the library only inside ``run``, so building the parser stays light."""
    from . import bench, compare, listing, lr_find, report, schedules, sweep

    return {
        "compare": compare,
        "sweep": sweep,
        "report": report,
        "list": listing,
        "schedules": schedules,
        "lr-find": lr_find,
        "bench": bench,
    }


def build_parser() -> argparse.ArgumentParser:
    from ..core.version import __version__

    parser = _Parser(prog="optimlab", description="Choose, tune and understand optimizers.")
    parser.add_argument("--version", action="version", version=f"optimlab {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    modules = _command_modules()
    for name, help_ in COMMANDS.items():
        p = sub.add_parser(name, help=help_, description=help_)
        modules[name].add_arguments(p)
        p.set_defaults(_run=modules[name].run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``optimlab`` command; returns the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return 2
        return int(args._run(args) or 0)
    except (UsageError, ValueError, FileNotFoundError) as exc:
        if os.environ.get("OPTIMLAB_DEBUG"):  # the full traceback, to tell a bug from a mistake
            raise
        print(f"optimlab: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("optimlab: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
