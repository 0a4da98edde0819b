"""The life of a run in the store: queued, claimed (running), then finished, diverged or failed.

A claim is one ``BEGIN IMMEDIATE`` transaction, so two processes never run the same row;
a result (the run's ``Trace``: metrics, evaluations, trajectory, final status) is written
in one transaction and only by the claim's owner, so a finished run is never overwritten
and a kill leaves either the whole result or none. Rows left ``running`` by a dead
process are requeued.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sqlite3
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..config import CODE_VERSION, RunConfig
from ..record import FINAL, Trace
from .faults import guarded
from .opening import _LIVE_OWNERS, METRIC_COLUMNS, StoreBase


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


class RunLifecycle(StoreBase):
    """Adding, claiming, heartbeating, releasing, failing and finishing runs."""

    @guarded
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

    @guarded
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

    @guarded
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

    @guarded
    def heartbeat(self) -> None:
        """Tell other processes this owner's running rows are alive (best effort)."""
        with contextlib.suppress(sqlite3.OperationalError):  # busy: the next beat will do
            self.conn.execute(
                "UPDATE runs SET heartbeat = ? WHERE owner = ? AND status = 'running'",
                (time.time(), self.owner),
            )

    @guarded
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

    @guarded
    def fail(self, run_ids: Sequence[str], error: str) -> None:
        with self.transaction() as c:
            c.executemany(
                "UPDATE runs SET status = 'failed', error = ?, ended = ?"
                " WHERE owner = ? AND status = 'running' AND run_id = ?",
                [(error[:2000], time.time(), self.owner, r) for r in run_ids],
            )

    @guarded
    def finish(self, results: Mapping[str, Trace]) -> list[str]:
        """Write each run's trace (keyed by run id) in one transaction; only rows this owner
        still holds are written. Returns the run ids written."""
        written: list[str] = []
        now = time.time()
        with self.transaction() as c:
            for run_id, trace in results.items():
                if trace.status not in FINAL:
                    raise ValueError(f"status must be finished or diverged, got {trace.status!r}")
                held = c.execute(
                    "SELECT 1 FROM runs WHERE run_id = ? AND owner = ? AND status = 'running'",
                    (run_id, self.owner),
                ).fetchone()
                if not held:
                    continue
                self._write_result(c, run_id, trace, now)
                written.append(run_id)
        return written

    def _write_result(self, c: sqlite3.Connection, rid: str, trace: Trace, now: float) -> None:
        for table in ("metrics", "evals", "trajectory"):  # leftovers of nothing: be sure
            c.execute(f"DELETE FROM {table} WHERE run_id = ?", (rid,))
        cols = [np.asarray(getattr(trace, k), dtype=np.float64) for k in METRIC_COLUMNS]
        n = len(cols[0])
        c.executemany(
            "INSERT INTO metrics VALUES (?, ?, ?, ?, ?, ?, ?)",
            ((rid, i, *(_num(col[i]) if i < len(col) else None for col in cols)) for i in range(n)),
        )
        evals = [(rid, int(step), str(k), _num(v)) for step, d in trace.evals for k, v in d.items()]
        c.executemany("INSERT OR REPLACE INTO evals VALUES (?, ?, ?, ?)", evals)
        traj = trace.trajectory
        if traj is not None and np.ndim(traj) == 2 and np.shape(traj)[1] == 2:
            c.executemany(
                "INSERT INTO trajectory VALUES (?, ?, ?, ?)",
                ((rid, i, _num(x), _num(y)) for i, (x, y) in enumerate(np.asarray(traj, float))),
            )
        loss = cols[0]
        finite = loss[np.isfinite(loss)]
        final_evals = dict(trace.evals[-1][1]) if trace.evals else {}
        c.execute(
            "UPDATE runs SET status = ?, ended = ?, heartbeat = ?, initial_loss = ?,"
            " final_loss = ?, min_loss = ?, diverged_step = ?, wall_time = ?, final_evals = ?,"
            " error = NULL WHERE run_id = ?",
            (
                trace.status,
                now,
                now,
                _num(loss[0]) if n else None,
                _num(loss[-1]) if n else None,
                float(finite.min()) if finite.size else None,
                None if trace.diverged_step is None else int(trace.diverged_step),
                _num(cols[4][-1]) if len(cols[4]) else None,
                json.dumps({k: _num(v) for k, v in final_evals.items()}, sort_keys=True),
                rid,
            ),
        )
