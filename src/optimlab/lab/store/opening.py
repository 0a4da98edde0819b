"""Opening a results store: the SQLite file, its schema, transactions that wait while busy.

``StoreBase`` opens (or creates) ``DIR/optimlab.sqlite`` in WAL mode with a busy timeout,
checks that it is an optimlab store of this schema version (a foreign file is refused and
left untouched), and offers ``transaction()`` (``BEGIN IMMEDIATE`` ... ``COMMIT``).
"""

from __future__ import annotations

import contextlib
import os
import socket
import sqlite3
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Self

from ..config import CODE_VERSION

APP = "optimlab-lab"
SCHEMA_VERSION = 1
DB_NAME = "optimlab.sqlite"
STATUSES = ("queued", "running", "finished", "diverged", "failed")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    config TEXT NOT NULL,
    problem TEXT NOT NULL,
    optimizer TEXT NOT NULL,
    lr REAL NOT NULL,
    schedule TEXT,
    seed INTEGER NOT NULL,
    steps INTEGER NOT NULL,
    group_key TEXT NOT NULL,
    code_version TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('queued','running','finished','diverged','failed')),
    owner TEXT, pid INTEGER, host TEXT, heartbeat REAL,
    attempts INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL, started REAL, ended REAL,
    initial_loss REAL, final_loss REAL, min_loss REAL, diverged_step INTEGER,
    wall_time REAL, final_evals TEXT, error TEXT
);
CREATE INDEX IF NOT EXISTS runs_status ON runs (status);
CREATE TABLE IF NOT EXISTS metrics (
    run_id TEXT NOT NULL REFERENCES runs (run_id), step INTEGER NOT NULL,
    loss REAL, lr REAL, grad_norm REAL, update_norm REAL, time REAL,
    PRIMARY KEY (run_id, step)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS evals (
    run_id TEXT NOT NULL REFERENCES runs (run_id), step INTEGER NOT NULL,
    name TEXT NOT NULL, value REAL,
    PRIMARY KEY (run_id, step, name)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS trajectory (
    run_id TEXT NOT NULL REFERENCES runs (run_id), step INTEGER NOT NULL,
    x REAL, y REAL,
    PRIMARY KEY (run_id, step)
) WITHOUT ROWID;
"""

METRIC_COLUMNS = ("loss", "lr", "grad_norm", "update_norm", "time")
RUN_COLUMNS = (
    "run_id",
    "problem",
    "optimizer",
    "lr",
    "schedule",
    "seed",
    "steps",
    "status",
    "initial_loss",
    "final_loss",
    "min_loss",
    "diverged_step",
    "wall_time",
    "attempts",
    "code_version",
    "group_key",
    "config",
    "final_evals",
    "error",
)

# owners held by open stores of this process: a row "running" under this process's pid but
# another owner is stale (a previous process that had the same pid, or a store not closed)
_LIVE_OWNERS: set[str] = set()


class StoreError(ValueError):
    """The folder's database is not an optimlab store this version can use."""


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    return "locked" in str(exc) or "busy" in str(exc)


class StoreBase:
    """An open store of a results folder (created if missing); see ``Store``."""

    def __init__(
        self, folder: str | os.PathLike[str], *, create: bool = True, timeout: float = 60.0
    ) -> None:
        self.folder = Path(folder)
        self.path = self.folder / DB_NAME
        if not self.path.exists():
            if not create:
                raise FileNotFoundError(
                    f"no results store in {str(self.folder)!r} "
                    f"(expected {DB_NAME}); run 'optimlab compare' first"
                )
            if self.folder.exists() and not self.folder.is_dir():
                raise StoreError(f"out must be a folder, got file {str(self.folder)!r}")
            try:
                self.folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(
                    f"cannot create results folder {str(self.folder)!r}: {exc.strerror or exc}"
                ) from None
        self.owner = uuid.uuid4().hex
        _LIVE_OWNERS.add(self.owner)
        self.host = socket.gethostname()
        self.timeout = timeout
        self.conn = sqlite3.connect(
            self.path, timeout=timeout, isolation_level=None, check_same_thread=False
        )
        try:
            self.conn.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
            # switching the journal mode can report "locked" at once, without waiting on
            # the busy timeout, while another process is creating the same store: retry
            self._execute_retry("PRAGMA journal_mode = WAL")
            self.conn.execute("PRAGMA synchronous = NORMAL")
            self._init_schema()
        except sqlite3.OperationalError as exc:
            self.close()
            if _is_busy(exc):
                raise StoreError(
                    f"{str(self.path)!r} stayed locked by another process for {timeout:g} s ({exc})"
                ) from None
            raise StoreError(
                f"{str(self.path)!r} is not an optimlab results store ({exc})"
            ) from None
        except sqlite3.DatabaseError as exc:
            self.close()
            raise StoreError(
                f"{str(self.path)!r} is not an optimlab results store ({exc})"
            ) from None
        except BaseException:
            self.close()
            raise

    # -- setup ---------------------------------------------------------------------------
    def _init_schema(self) -> None:
        with self.transaction():
            tables = {
                r[0]
                for r in self.conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            }
            if tables and "meta" not in tables:
                raise StoreError(
                    f"{str(self.path)!r} is a SQLite file of another program "
                    f"(tables: {', '.join(sorted(tables))})"
                )
            if "meta" in tables:
                meta = dict(self.conn.execute("SELECT key, value FROM meta").fetchall())
                if meta.get("app") != APP:
                    raise StoreError(
                        f"{str(self.path)!r} belongs to {meta.get('app')!r}, "
                        f"not an optimlab results store"
                    )
                version = int(meta.get("schema_version", "0"))
                if version != SCHEMA_VERSION:
                    raise StoreError(
                        f"{str(self.path)!r} has store schema version {version}; this optimlab "
                        f"reads version {SCHEMA_VERSION}: use a new --out folder"
                    )
                return
            for statement in filter(str.strip, _SCHEMA.split(";")):
                self.conn.execute(statement)
            self.conn.executemany(
                "INSERT INTO meta VALUES (?, ?)",
                [
                    ("app", APP),
                    ("schema_version", str(SCHEMA_VERSION)),
                    ("created_by", CODE_VERSION),
                ],
            )

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT`` (rolled back on error); waits while busy."""
        try:  # an interrupt landing just after BEGIN returned must roll back too
            self._execute_retry("BEGIN IMMEDIATE")
            yield self.conn
        except BaseException:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def _execute_retry(self, sql: str) -> None:
        """Run ``sql``, retrying while the database is busy, for up to ``timeout`` seconds."""
        deadline = time.monotonic() + self.timeout
        delay = 0.01
        while True:
            try:
                self.conn.execute(sql)
                return
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 0.5)

    def close(self) -> None:
        _LIVE_OWNERS.discard(self.owner)
        self.conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
