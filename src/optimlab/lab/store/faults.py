"""Faults of a store's environment: a full disk, an I/O error, a read-only folder, a
corrupted file, a lock held too long; each becomes one :class:`StoreFault` naming the file
and what to do. ``guarded`` applies this to a store method's ``sqlite3`` errors."""

from __future__ import annotations

import errno
import functools
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

# errno values of OSError that are faults of the environment, not of the request
ENVIRONMENT_ERRNOS = frozenset(
    {errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS, errno.EACCES, errno.EPERM}
)


class StoreFault(RuntimeError):
    """The store cannot be used because of its environment: ``kind`` is ``"full"`` (no
    space left), ``"io"`` (an I/O error), ``"readonly"``, ``"cantopen"``, ``"corrupt"`` or
    ``"locked"``.
    Runs already finished in the store are kept; the message says what to do."""

    def __init__(self, message: str, kind: str) -> None:
        super().__init__(message)
        self.kind = kind


def fault(path: Path, exc: BaseException, timeout: float = 0.0) -> StoreFault | None:
    """The :class:`StoreFault` of an ``sqlite3`` or OS error on store ``path``; None for
    errors that are not the environment's (a bug should show its traceback)."""
    name = str(getattr(exc, "sqlite_errorname", "") or "")
    code = getattr(exc, "errno", None)
    where, reason = repr(str(path)), getattr(exc, "strerror", None) or str(exc)
    folder = repr(str(path.parent))
    if name.startswith("SQLITE_FULL") or code in (errno.ENOSPC, errno.EDQUOT):
        return StoreFault(
            f"disk full writing {where} ({reason}); runs finished so far are kept: "
            f"free some space and run the same command again",
            "full",
        )
    if name.startswith("SQLITE_IOERR") or code == errno.EIO:
        return StoreFault(
            f"disk I/O error on {where} ({reason}); runs finished so far are kept: check "
            f"the disk (is it full?) and run the same command again",
            "io",
        )
    if name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")):
        return StoreFault(
            f"{where} is corrupted ({reason}); move it aside (sqlite3's .recover may "
            f"rescue its runs) and run again to start a new store",
            "corrupt",
        )
    if name.startswith("SQLITE_CANTOPEN") and os.access(path.parent, os.W_OK):
        return StoreFault(
            f"cannot open {where} ({reason}); check the permissions of the file and its "
            f"folder {folder}",
            "cantopen",
        )
    if name.startswith(("SQLITE_READONLY", "SQLITE_CANTOPEN")) or code in (
        errno.EROFS,
        errno.EACCES,
        errno.EPERM,
    ):
        return StoreFault(
            f"cannot write {where}: the results folder {folder} is read-only ({reason}); "
            f"choose another --out, or read it with 'optimlab report {path.parent} --out FILE'",
            "readonly",
        )
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
        return StoreFault(
            f"{where} stayed locked by another process for {timeout:g} s ({reason}); "
            f"wait for it to finish and run the same command again",
            "locked",
        )
    return None


F = TypeVar("F", bound=Callable[..., Any])


def guarded(method: F) -> F:
    """Turn the ``sqlite3`` errors of a store method that are the environment's into one
    :class:`StoreFault` naming the file."""

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except sqlite3.Error as exc:
            found = fault(self.path, exc, self.timeout)
            if found is None:
                raise
            raise found from None

    return wrapper  # type: ignore[return-value]
