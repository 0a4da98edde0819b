"""The ``optimlab`` command line: parses arguments and calls the library.

Each command lives in its own module (``compare``, ``sweep``, ``report``, ``listing``,
``schedules``, ``lr_find``, ``bench``) with ``add_arguments(parser)`` and
``run(args) -> int``. Mistakes and faults become one line on stderr, never a traceback
(set ``OPTIMLAB_DEBUG=1`` to see the traceback instead). Exit codes:

- 0: done; 1: done, but some runs failed (their errors are printed and stored);
- 2 (``EXIT_USAGE``): a mistake in the request (``UsageError``, ``ValueError``, a missing
  file): change the command;
- 3 (``EXIT_ENVIRONMENT``): a fault of the environment: a full disk, an I/O error, a
  read-only folder, a corrupted results store, a lock held too long (``StoreFault``, or an
  ``OSError`` such as ``ENOSPC``): fix that and run the same command again; finished runs
  are kept;
- 130: interrupted (Ctrl+C or SIGTERM); finished runs are kept.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
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
EXIT_USAGE = 2
EXIT_ENVIRONMENT = 3


class UsageError(Exception):
    """A mistake in what the user asked for: reported as one line, exit code 2."""


class EnvironmentFault(Exception):
    """A fault of the environment (full disk, read-only folder): one line, exit code 3."""


_ENVIRONMENT_ERRNOS = ("ENOSPC", "EDQUOT", "EIO", "EROFS", "EACCES", "EPERM")


@contextlib.contextmanager
def writing(path: str | os.PathLike[str], hint: str = "") -> Iterator[None]:
    """Writing the output file ``path``: a missing folder is the user's mistake (exit 2,
    and no folder is created); a full disk or a read-only folder is the environment's
    (exit 3); ``hint`` says what else to do."""
    import errno

    folder = Path(path).parent
    if not folder.is_dir():
        raise UsageError(f"cannot write {str(path)!r}: folder {str(folder)!r} does not exist")
    try:
        yield
    except OSError as exc:
        reason = exc.strerror or str(exc)
        env = {getattr(errno, n) for n in _ENVIRONMENT_ERRNOS if hasattr(errno, n)}
        kind = EnvironmentFault if exc.errno in env else UsageError
        raise kind(f"cannot write {str(path)!r}: {reason}{hint}") from None


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


@contextlib.contextmanager
def flag_names(flags: dict[str, str]) -> Iterator[None]:
    """A ``ValueError`` about a library argument that a flag sets (``num_iter must be an
    integer >= 2``) told with the flags' names (``--num-iter must be ...``)."""
    import re

    try:
        yield
    except ValueError as exc:
        text = str(exc)
        if not any(text.startswith(f"{name} ") for name in flags):
            raise
        for name, flag in flags.items():
            text = re.sub(rf"(?<![\w-]){re.escape(name)}(?!\w)", flag, text)
        raise UsageError(text) from None


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
    except KeyboardInterrupt:
        print("optimlab: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        code = exit_code(exc)
        if code is None or os.environ.get("OPTIMLAB_DEBUG"):  # a bug: show the traceback
            raise
        print(f"optimlab: error: {_one_line(exc)}", file=sys.stderr)
        return code


def exit_code(exc: BaseException) -> int | None:
    """``EXIT_ENVIRONMENT`` for faults of the environment, ``EXIT_USAGE`` for mistakes in
    the request, None for anything else (a bug, shown with its traceback)."""
    import errno

    store = sys.modules.get("optimlab.lab.store.faults")
    if isinstance(exc, EnvironmentFault) or (
        store is not None and isinstance(exc, store.StoreFault)
    ):
        return EXIT_ENVIRONMENT
    if isinstance(exc, OSError) and not isinstance(exc, FileNotFoundError):
        environment = {getattr(errno, n) for n in _ENVIRONMENT_ERRNOS if hasattr(errno, n)}
        return EXIT_ENVIRONMENT if exc.errno in environment else None
    if isinstance(exc, UsageError | ValueError | FileNotFoundError):
        return EXIT_USAGE
    return None


def _one_line(exc: BaseException) -> str:
    """The message of ``exc`` on one line (an OSError as ``strerror: filename``)."""
    if isinstance(exc, OSError) and exc.strerror and exc.filename:
        text = f"{exc.strerror}: {str(exc.filename)!r}"
    else:
        text = str(exc)
    return " ".join(text.split())


if __name__ == "__main__":
    sys.exit(main())
