"""The results store: one SQLite file per results folder, safe to share and to kill.

SQLite in WAL mode with a busy timeout. A run's row is keyed by ``run_id`` (the hash of its
canonical configuration and the code version) and inserted idempotently; its status goes
``queued -> running (owner, pid, heartbeat) -> finished | diverged | failed``. Claiming is
one ``BEGIN IMMEDIATE`` transaction, so two processes never run the same row; a result is
written (metrics, evaluations, trajectory and final status) in one transaction and only
by the claim's owner, so a finished run is never overwritten and a kill leaves either the
whole result or none. Rows left ``running`` by a dead process are requeued on start.
Only tidy data is stored (numbers and JSON text); nothing is ever unpickled.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import socket
import sqlite3
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .config import CODE_VERSION, RunConfig

APP = "optimlab-lab"
SCHEMA_VERSION = 1
DB_NAME = "optimlab.sqlite"
FINAL = ("finished", "diverged")
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


@dataclass
class RunResult:
    """What a finished (or diverged) run leaves in the store."""

    run_id: str
    status: str  # "finished" | "diverged"
    loss: np.ndarray
    lr: np.ndarray
    grad_norm: np.ndarray
    update_norm: np.ndarray
    time: np.ndarray
    evals: Sequence[tuple[int, Mapping[str, float]]] = ()
    trajectory: np.ndarray | None = None
    diverged_step: int | None = None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a killed process its parent has not reaped yet (a zombie) still answers signal 0
    with contextlib.suppress(OSError, IndexError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rpartition(")")[2].split()[0] not in ("Z", "X")
    return True


def _num(x: Any) -> float | None:
    x = float(x)
    return x if not math.isnan(x) else None


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    return "locked" in str(exc) or "busy" in str(exc)


class Store:
    """The SQLite store of a results folder (created if missing)."""

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

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- lifecycle of runs ---------------------------------------------------------------
    def add(self, configs: Iterable[RunConfig]) -> dict[str, int]:
        """Insert runs as ``queued`` (idempotent); failed runs are queued again.

        Returns counts: ``new``, ``done`` (already finished or diverged), ``requeued``
        (failed before), ``pending`` (already queued or running).
        """
        now = time.time()
        counts = {"new": 0, "done": 0, "requeued": 0, "pending": 0}
        with self.transaction() as c:
            for cfg in configs:
                rid = cfg.run_id
                row = c.execute("SELECT status FROM runs WHERE run_id = ?", (rid,)).fetchone()
                if row is None:
                    c.execute(
                        "INSERT INTO runs (run_id, config, problem, optimizer, lr, schedule, seed,"
                        " steps, group_key, code_version, status, created)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'queued', ?)",
                        (
                            rid,
                            cfg.canonical_json(),
                            cfg.problem,
                            cfg.optimizer,
                            cfg.lr,
                            cfg.schedule,
                            cfg.seed,
                            cfg.steps,
                            cfg.group_key,
                            CODE_VERSION,
                            now,
                        ),
                    )
                    counts["new"] += 1
                elif row[0] in FINAL:
                    counts["done"] += 1
                elif row[0] == "failed":
                    c.execute(
                        "UPDATE runs SET status = 'queued', owner = NULL, error = NULL"
                        " WHERE run_id = ? AND status = 'failed'",
                        (rid,),
                    )
                    counts["requeued"] += 1
                else:
                    counts["pending"] += 1
        return counts

    def requeue_stale(self, stale_after: float = 600.0) -> int:
        """Requeue ``running`` rows whose process is gone (same host) or silent too long."""
        now = time.time()
        with self.transaction() as c:
            rows = c.execute(
                "SELECT run_id, owner, pid, host, heartbeat FROM runs WHERE status = 'running'"
            ).fetchall()
            stale = [
                rid
                for rid, owner, pid, host, beat in rows
                if owner != self.owner
                and (
                    (
                        host == self.host
                        and pid is not None
                        and (
                            not _pid_alive(pid)
                            or (pid == os.getpid() and owner not in _LIVE_OWNERS)
                        )
                    )
                    or beat is None
                    or now - beat > stale_after
                )
            ]
            c.executemany(
                "UPDATE runs SET status = 'queued', owner = NULL, pid = NULL"
                " WHERE run_id = ? AND status = 'running'",
                [(r,) for r in stale],
            )
        return len(stale)

    def claim(self, run_ids: Sequence[str]) -> list[str]:
        """Atomically mark the queued ones of ``run_ids`` as running by this store's owner."""
        if not run_ids:
            return []
        now = time.time()
        with self.transaction() as c:
            claimed = []
            for rid in run_ids:
                cur = c.execute(
                    "UPDATE runs SET status = 'running', owner = ?, pid = ?, host = ?,"
                    " heartbeat = ?, started = ?, attempts = attempts + 1"
                    " WHERE run_id = ? AND status = 'queued'",
                    (self.owner, os.getpid(), self.host, now, now, rid),
                )
                if cur.rowcount:
                    claimed.append(rid)
        return claimed

    def heartbeat(self) -> None:
        """Tell other processes this owner's running rows are alive (best effort)."""
        with contextlib.suppress(sqlite3.OperationalError):  # busy: the next beat will do
            self.conn.execute(
                "UPDATE runs SET heartbeat = ? WHERE owner = ? AND status = 'running'",
                (time.time(), self.owner),
            )

    def release(self, run_ids: Sequence[str] | None = None) -> None:
        """Give this owner's running rows back to the queue (after an interruption)."""
        with self.transaction() as c:
            if run_ids is None:
                c.execute(
                    "UPDATE runs SET status = 'queued', owner = NULL, pid = NULL"
                    " WHERE owner = ? AND status = 'running'",
                    (self.owner,),
                )
            else:
                c.executemany(
                    "UPDATE runs SET status = 'queued', owner = NULL, pid = NULL"
                    " WHERE owner = ? AND status = 'running' AND run_id = ?",
                    [(self.owner, r) for r in run_ids],
                )

    def fail(self, run_ids: Sequence[str], error: str) -> None:
        with self.transaction() as c:
            c.executemany(
                "UPDATE runs SET status = 'failed', error = ?, ended = ?"
                " WHERE owner = ? AND status = 'running' AND run_id = ?",
                [(error[:2000], time.time(), self.owner, r) for r in run_ids],
            )

    def finish(self, results: Sequence[RunResult]) -> list[str]:
        """Write results in one transaction; only rows this owner still holds are written.
        Returns the run ids written."""
        written: list[str] = []
        now = time.time()
        with self.transaction() as c:
            for res in results:
                if res.status not in FINAL:
                    raise ValueError(f"status must be finished or diverged, got {res.status!r}")
                held = c.execute(
                    "SELECT 1 FROM runs WHERE run_id = ? AND owner = ? AND status = 'running'",
                    (res.run_id, self.owner),
                ).fetchone()
                if not held:
                    continue
                self._write_result(c, res, now)
                written.append(res.run_id)
        return written

    def _write_result(self, c: sqlite3.Connection, res: RunResult, now: float) -> None:
        rid = res.run_id
        for table in ("metrics", "evals", "trajectory"):  # leftovers of nothing: be sure
            c.execute(f"DELETE FROM {table} WHERE run_id = ?", (rid,))
        cols = [np.asarray(getattr(res, k), dtype=np.float64) for k in METRIC_COLUMNS]
        n = len(cols[0])
        c.executemany(
            "INSERT INTO metrics VALUES (?, ?, ?, ?, ?, ?, ?)",
            ((rid, i, *(_num(col[i]) if i < len(col) else None for col in cols)) for i in range(n)),
        )
        evals = [(rid, int(step), str(k), _num(v)) for step, d in res.evals for k, v in d.items()]
        c.executemany("INSERT OR REPLACE INTO evals VALUES (?, ?, ?, ?)", evals)
        if (
            res.trajectory is not None
            and np.ndim(res.trajectory) == 2
            and np.shape(res.trajectory)[1] == 2
        ):
            traj = np.asarray(res.trajectory, dtype=np.float64)
            c.executemany(
                "INSERT INTO trajectory VALUES (?, ?, ?, ?)",
                ((rid, i, _num(x), _num(y)) for i, (x, y) in enumerate(traj)),
            )
        loss = cols[0]
        finite = loss[np.isfinite(loss)]
        final_evals = dict(res.evals[-1][1]) if res.evals else {}
        c.execute(
            "UPDATE runs SET status = ?, ended = ?, heartbeat = ?, initial_loss = ?,"
            " final_loss = ?, min_loss = ?, diverged_step = ?, wall_time = ?, final_evals = ?,"
            " error = NULL WHERE run_id = ?",
            (
                res.status,
                now,
                now,
                _num(loss[0]) if n else None,
                _num(loss[-1]) if n else None,
                float(finite.min()) if finite.size else None,
                res.diverged_step,
                _num(cols[4][-1]) if len(cols[4]) else None,
                json.dumps({k: _num(v) for k, v in final_evals.items()}, sort_keys=True),
                rid,
            ),
        )

    # -- reading -------------------------------------------------------------------------
    def status_of(self, run_ids: Sequence[str]) -> dict[str, str]:
        out: dict[str, str] = {}
        for i in range(0, len(run_ids), 500):
            chunk = list(run_ids[i : i + 500])
            marks = ",".join("?" * len(chunk))
            out.update(
                self.conn.execute(
                    f"SELECT run_id, status FROM runs WHERE run_id IN ({marks})", chunk
                ).fetchall()
            )
        return out

    def counts(self) -> dict[str, int]:
        rows = self.conn.execute("SELECT status, COUNT(*) FROM runs GROUP BY status").fetchall()
        return {s: 0 for s in STATUSES} | dict(rows)

    def runs(
        self, run_ids: Sequence[str] | None = None, status: Sequence[str] | None = None
    ) -> list[dict[str, Any]]:
        """Run rows as dicts (config and final evaluations decoded from JSON)."""
        sql = f"SELECT {', '.join(RUN_COLUMNS)} FROM runs"
        clauses, params = [], []
        if status is not None:
            clauses.append(f"status IN ({','.join('?' * len(status))})")
            params.extend(status)
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        sql += " ORDER BY problem, optimizer, lr, group_key, seed"
        rows = [dict(zip(RUN_COLUMNS, r, strict=True)) for r in self.conn.execute(sql, params)]
        if run_ids is not None:
            wanted = set(run_ids)
            rows = [r for r in rows if r["run_id"] in wanted]
        for r in rows:
            r["config"] = json.loads(r["config"])
            r["final_evals"] = json.loads(r["final_evals"]) if r["final_evals"] else {}
        return rows

    def metrics(self, run_id: str) -> dict[str, np.ndarray]:
        """Per-step metrics of a run: ``step`` and each of ``METRIC_COLUMNS`` as arrays."""
        rows = self.conn.execute(
            f"SELECT step, {', '.join(METRIC_COLUMNS)} FROM metrics WHERE run_id = ? ORDER BY step",
            (run_id,),
        ).fetchall()
        arr = np.array(rows, dtype=np.float64).reshape(len(rows), 1 + len(METRIC_COLUMNS))
        out = {"step": arr[:, 0].astype(np.int64)}
        out.update({k: arr[:, i + 1] for i, k in enumerate(METRIC_COLUMNS)})
        return out

    def evals(self, run_id: str) -> list[tuple[int, dict[str, float]]]:
        rows = self.conn.execute(
            "SELECT step, name, value FROM evals WHERE run_id = ? ORDER BY step, name", (run_id,)
        ).fetchall()
        out: dict[int, dict[str, float]] = {}
        for step, name, value in rows:
            out.setdefault(step, {})[name] = math.nan if value is None else value
        return sorted(out.items())

    def trajectory(self, run_id: str) -> np.ndarray | None:
        rows = self.conn.execute(
            "SELECT x, y FROM trajectory WHERE run_id = ? ORDER BY step", (run_id,)
        ).fetchall()
        return np.array(rows, dtype=np.float64) if rows else None

    def integrity_ok(self) -> bool:
        return self.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
