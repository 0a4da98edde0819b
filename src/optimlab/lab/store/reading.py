"""Reading a store: run rows, statuses, per-step metrics, evaluations and trajectories."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from .faults import guarded
from .opening import METRIC_COLUMNS, RUN_COLUMNS, STATUSES, StoreBase


class RunReading(StoreBase):
    """Queries over the runs of a store (nothing here writes)."""

    @guarded
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

    @guarded
    def counts(self) -> dict[str, int]:
        rows = self.conn.execute("SELECT status, COUNT(*) FROM runs GROUP BY status").fetchall()
        return {s: 0 for s in STATUSES} | dict(rows)

    @guarded
    def runs(
        self, run_ids: Sequence[str] | None = None, status: Sequence[str] | None = None
    ) -> list[dict[str, Any]]:
        """Run rows as dicts (config and final evaluations decoded from JSON)."""
        sql = f"SELECT {', '.join(RUN_COLUMNS)} FROM runs"
        clauses: list[str] = []
        params: list[str] = []
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

    @guarded
    def metrics(self, run_id: str) -> dict[str, np.ndarray]:
        """Per-step metrics of a run: ``step`` and each of ``METRIC_COLUMNS`` as arrays."""
        rows = self.conn.execute(
            f"SELECT step, {', '.join(METRIC_COLUMNS)} FROM metrics WHERE run_id = ? ORDER BY step",
            (run_id,),
        ).fetchall()
        arr = np.array(rows, dtype=np.float64).reshape(len(rows), 1 + len(METRIC_COLUMNS))
        out: dict[str, np.ndarray] = {"step": arr[:, 0].astype(np.int64)}
        out.update({k: arr[:, i + 1] for i, k in enumerate(METRIC_COLUMNS)})
        return out

    @guarded
    def evals(self, run_id: str) -> list[tuple[int, dict[str, float]]]:
        rows = self.conn.execute(
            "SELECT step, name, value FROM evals WHERE run_id = ? ORDER BY step, name", (run_id,)
        ).fetchall()
        out: dict[int, dict[str, float]] = {}
        for step, name, value in rows:
            out.setdefault(step, {})[name] = math.nan if value is None else value
        return sorted(out.items())

    @guarded
    def trajectory(self, run_id: str) -> np.ndarray | None:
        rows = self.conn.execute(
            "SELECT x, y FROM trajectory WHERE run_id = ? ORDER BY step", (run_id,)
        ).fetchall()
        return np.array(rows, dtype=np.float64) if rows else None

    @guarded
    def integrity_ok(self) -> bool:
        return self.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
