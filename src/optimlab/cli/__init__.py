"""The ``optimlab`` command line: parses arguments and calls the library.

Each command lives in its own module ``optimlab.cli.<name>`` with
``add_arguments(parser)`` and ``run(args) -> int``. User mistakes raise ``UsageError``
(or ``ValueError``) and become one line on stderr and exit code 2, never a traceback
(set ``OPTIMLAB_DEBUG=1`` to see the traceback instead).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import sys
from collections.abc import Sequence

# command name -> (module, one-line help); modules are imported only when needed
COMMANDS: dict[str, tuple[str, str]] = {
    "compare": ("compare", "compare optimizers and learning rates on built-in problems"),
    "sweep": ("sweep", "run a grid of optimizer x hyperparameters x schedule x seed"),
    "report": ("report", "write the HTML report of a results folder"),
    "list": ("listing", "list optimizers, schedules and problems"),
    "schedules": ("schedules", "plot learning-rate schedules"),
    "lr-find": ("lr_find", "run the learning-rate range test"),
    "bench": ("bench", "time optimizer steps against torch.optim"),
}


class UsageError(Exception):
    """A mistake in what the user asked for: reported as one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line and exit 2, as argparse does, no usage dump
        raise UsageError(message)


def _available() -> dict[str, tuple[str, str]]:
    return {
        name: (mod, help_)
        for name, (mod, help_) in COMMANDS.items()
        if importlib.util.find_spec(f"optimlab.cli.{mod}") is not None
    }


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="optimlab", description="Choose, tune and understand optimizers.")
    from ..core.version import __version__

    parser.add_argument("--version", action="version", version=f"optimlab {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (mod, help_) in _available().items():
        module = importlib.import_module(f"optimlab.cli.{mod}")
        p = sub.add_parser(name, help=help_, description=help_)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
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
