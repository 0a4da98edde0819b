"""Opening a results store: the SQLite file, its schema, transactions that wait while busy.

``StoreBase`` opens (or creates) ``DIR/optimlab.sqlite`` in WAL mode with a busy timeout,
checks that it is an optimlab store of this schema version, and offers ``transaction()``
(``BEGIN IMMEDIATE`` ... ``COMMIT``). An existing file is first looked at without writing
(its header, then a read-only connection), so a file that is not ours is refused while
still byte-identical. ``readonly=True`` never writes: it opens with SQLite's ``mode=ro``,
and in a read-only folder with ``immutable=1`` (or on a private copy when the folder
holds an unmerged ``-wal`` file), so a store on a read-only disk can still be reported.

Faults of the environment (a full disk, an I/O error, a read-only folder, a corrupted
file, a lock held too long) become one ``faults.StoreFault`` naming the file and what to
do; a file that is not an optimlab store is a :class:`StoreError` (a ``ValueError``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import sqlite3
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Self

from ..config import CODE_VERSION
from .faults import ENVIRONMENT_ERRNOS, fault

APP = "optimlab-lab"
SCHEMA_VERSION = 1
DB_NAME = "optimlab.sqlite"
STATUSES = ("queued", "running", "finished", "diverged", "failed")
_HEADER = b"SQLite format 3\x00"  # the first 16 bytes of every SQLite database file

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
        self,
        folder: str | os.PathLike[str],
        *,
        create: bool = True,
        timeout: float = 60.0,
        readonly: bool = False,
    ) -> None:
        self.folder = Path(folder)
        self.path = self.folder / DB_NAME
        self.readonly = readonly
        self.timeout = timeout
        self.owner = uuid.uuid4().hex
        self.host = socket.gethostname()
        self._copy: str | None = None  # a private copy read instead (read-only folder + WAL)
        exists = self._check_location(create and not readonly)
        _LIVE_OWNERS.add(self.owner)
        try:
            if readonly:
                if exists:  # a foreign file is refused before a read-write connection
                    self._inspect()
                self.conn = self._connect_readonly()
                if not self._check_schema(self.conn):
                    raise FileNotFoundError(
                        f"no results store in {str(self.folder)!r} ({DB_NAME} is empty); "
                        f"run 'optimlab compare' first"
                    )
                self.conn.execute("PRAGMA query_only = 1")
            else:
                if exists:  # a file that is not ours is refused before anything writes
                    self._inspect()
                self.conn = self._connect(f"{self._uri()}?mode=rwc")
                # switching the journal mode can report "locked" at once, without waiting on
                # the busy timeout, while another process is creating the same store: retry
                self._execute_retry("PRAGMA journal_mode = WAL")
                self.conn.execute("PRAGMA synchronous = NORMAL")
                self._init_schema()
        except sqlite3.Error as exc:
            self.close()
            raise self._open_error(exc) from None
        except BaseException:
            self.close()
            raise

    # -- setup ---------------------------------------------------------------------------
    def _check_location(self, create: bool) -> bool:
        """Whether the database file exists; creates the folder when ``create``. A file
        that is not SQLite at all is refused here, before SQLite opens it."""
        if self.path.exists():
            try:
                with open(self.path, "rb") as fh:
                    head = fh.read(len(_HEADER))
            except OSError as exc:
                raise fault(self.path, exc) or exc from None
            if head and head != _HEADER[: len(head)]:
                raise StoreError(
                    f"{str(self.path)!r} is not an optimlab results store (not a SQLite "
                    f"file); choose another results folder (--out)"
                )
            return len(head) > 0
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
            if exc.errno in ENVIRONMENT_ERRNOS:
                raise fault(self.path, exc) or exc from None
            raise StoreError(
                f"cannot create results folder {str(self.folder)!r}: {exc.strerror or exc}"
            ) from None
        return False

    def _uri(self) -> str:
        return self.path.resolve().as_uri()

    def _connect(self, uri: str) -> sqlite3.Connection:
        conn = sqlite3.connect(
            uri, uri=True, timeout=self.timeout, isolation_level=None, check_same_thread=False
        )
        conn.execute(f"PRAGMA busy_timeout = {int(self.timeout * 1000)}")
        return conn

    def _inspect(self) -> None:
        """Check an existing file through a read-only connection (nothing is written, so
        a foreign file stays byte-identical). A folder we cannot even read from is left to
        the writable connection, which reports it."""
        try:
            conn = self._connect(f"{self._uri()}?mode=ro")
        except sqlite3.OperationalError:
            return
        try:
            self._retry(lambda: self._check_schema(conn))
        except sqlite3.OperationalError as exc:
            if not exc.sqlite_errorname.startswith("SQLITE_CANTOPEN"):
                raise
        finally:
            conn.close()

    def _connect_readonly(self) -> sqlite3.Connection:
        """A connection that never writes (``PRAGMA query_only`` is set once the schema is
        checked). In a writable folder a read-write one, so that the last connection closed
        still merges and removes the ``-wal`` and ``-shm`` files; else ``mode=ro``; and where
        SQLite cannot make the ``-shm`` file WAL readers need (a read-only folder)
        ``immutable=1``, or a private copy when a ``-wal`` file holds changes not yet
        merged into the database (``immutable`` would not see them)."""
        if os.access(self.folder, os.W_OK) and os.access(self.path, os.W_OK):
            return self._connect(f"{self._uri()}?mode=rw")
        conn = self._connect(f"{self._uri()}?mode=ro")
        try:
            conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
            return conn
        except sqlite3.OperationalError as exc:
            conn.close()
            if not exc.sqlite_errorname.startswith(("SQLITE_CANTOPEN", "SQLITE_READONLY")):
                raise
        wal = Path(f"{self.path}-wal")
        if wal.exists() and wal.stat().st_size > 0:
            self._copy = tempfile.mkdtemp(prefix="optimlab-store-")
            for src in (self.path, wal):
                shutil.copyfile(src, Path(self._copy) / src.name)
            return self._connect(f"{(Path(self._copy) / DB_NAME).as_uri()}?mode=rw")
        return self._connect(f"{self._uri()}?mode=ro&immutable=1")

    def _check_schema(self, conn: sqlite3.Connection) -> bool:
        """Whether the database holds an optimlab store of this version (False: empty);
        any other content is refused with a :class:`StoreError`."""
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if tables and "meta" not in tables:
            raise StoreError(
                f"{str(self.path)!r} is a SQLite file of another program "
                f"(tables: {', '.join(sorted(tables))}); choose another results folder (--out)"
            )
        if not tables:
            return False
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        if meta.get("app") != APP:
            raise StoreError(
                f"{str(self.path)!r} belongs to {meta.get('app')!r}, "
                f"not an optimlab results store; choose another results folder (--out)"
            )
        version = int(meta.get("schema_version", "0"))
        if version != SCHEMA_VERSION:
            raise StoreError(
                f"{str(self.path)!r} has store schema version {version}; this optimlab "
                f"reads version {SCHEMA_VERSION}: use a new --out folder"
            )
        return True

    def _init_schema(self) -> None:
        with self.transaction() as conn:
            if self._check_schema(conn):
                return
            for statement in filter(str.strip, _SCHEMA.split(";")):
                conn.execute(statement)
            conn.executemany(
                "INSERT INTO meta VALUES (?, ?)",
                [
                    ("app", APP),
                    ("schema_version", str(SCHEMA_VERSION)),
                    ("created_by", CODE_VERSION),
                ],
            )

    def _open_error(self, exc: sqlite3.Error) -> Exception:
        """What an ``sqlite3`` error while opening means for the user."""
        found = fault(self.path, exc, self.timeout)
        if found is not None:
            return found
        return StoreError(f"{str(self.path)!r} is not an optimlab results store ({exc})")

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT`` (rolled back on error); waits while busy."""
        try:  # an interrupt landing just after BEGIN returned must roll back too
            self._execute_retry("BEGIN IMMEDIATE")
            yield self.conn
        except BaseException:
            if self.conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):  # keep the first error
                    self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def _execute_retry(self, sql: str) -> None:
        """Run ``sql``, retrying while the database is busy, for up to ``timeout`` seconds."""
        self._retry(lambda: self.conn.execute(sql))

    def _retry(self, action: Callable[[], object]) -> None:
        deadline = time.monotonic() + self.timeout
        delay = 0.01
        while True:
            try:
                action()
                return
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 0.5)

    def close(self) -> None:
        _LIVE_OWNERS.discard(self.owner)
        conn: sqlite3.Connection | None = self.__dict__.get("conn")
        if conn is not None:
            conn.close()
        if self._copy is not None:
            shutil.rmtree(self._copy, ignore_errors=True)
            self._copy = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
