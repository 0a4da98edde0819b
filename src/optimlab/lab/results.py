"""``Results``: the runs of a comparison or sweep as tidy records you can query and export."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from . import analysis
from .runner import RunCounts
from .store import Store

_CSV_FIELDS = (
    "run_id",
    "problem",
    "optimizer",
    "lr",
    "seed",
    "steps",
    "status",
    "schedule",
    "initial_loss",
    "final_loss",
    "min_loss",
    "diverged_step",
    "wall_time",
)


class Results:
    """Run records (one dict per run) read from a results folder's store.

    ``records`` are flat dicts: ``run_id, problem, optimizer, lr, seed, steps, status,
    initial_loss, final_loss, min_loss, diverged_step, wall_time, hyperparams, schedule,
    schedule_kwargs, problem_kwargs`` and ``eval_<name>`` for the last evaluation.
    ``counts`` tells what the call that produced them computed and skipped.
    """

    def __init__(
        self,
        folder: str | os.PathLike[str],
        records: list[dict[str, Any]],
        counts: RunCounts | None = None,
    ) -> None:
        self.folder = Path(folder)
        self.records = records
        self.counts = counts

    @classmethod
    def load(
        cls,
        folder: str | os.PathLike[str],
        run_ids: Sequence[str] | None = None,
        counts: RunCounts | None = None,
    ) -> Results:
        """Every run of ``folder`` (or just ``run_ids``) that has a final status."""
        with Store(folder, create=False) as store:
            rows = store.runs(run_ids, status=("finished", "diverged", "failed"))
        return cls(folder, [analysis.flatten(r) for r in rows], counts)

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.records)

    def __repr__(self) -> str:
        n = {s: sum(r["status"] == s for r in self.records) for s in ("finished", "diverged")}
        return (
            f"<Results {len(self)} runs ({n['finished']} finished, {n['diverged']} diverged)"
            f" in {str(self.folder)!r}>"
        )

    def filter(self, **where: Any) -> Results:
        """Records whose fields equal the given values, e.g. ``filter(optimizer="adam")``."""
        recs = [r for r in self.records if all(r.get(k) == v for k, v in where.items())]
        return Results(self.folder, recs, self.counts)

    def curve(self, run_id: str) -> dict[str, np.ndarray]:
        """Per-step ``step, loss, lr, grad_norm, update_norm, time`` of one run."""
        with Store(self.folder, create=False) as store:
            return store.metrics(run_id)

    def curves(self) -> _CurveCache:
        """A cached ``run_id -> curve`` reader over one store connection."""
        return _CurveCache(self.folder)

    def studies(
        self, criterion: str = "final_loss", target: float | Mapping[str, float] | None = None
    ) -> list[analysis.Study]:
        return analysis.studies(self.records, criterion, target)

    def best(self, criterion: str = "final_loss") -> list[dict[str, Any]]:
        """Per problem and optimizer, the best setting by median ``criterion`` over seeds."""
        out = []
        with self.curves() as curves:
            for study in self.studies(criterion):
                for row in analysis.best_table(study, curves):
                    out.append({"problem": study.label, **row})
        return out

    def table(self, criterion: str = "final_loss") -> str:
        """The best-per-optimizer tables as plain text, each stating budget and seeds."""
        lines = []
        with self.curves() as curves:
            for study in self.studies(criterion):
                lines.append(
                    f"{study.label}: budget {study.budget}, {criterion} (median [IQR] over seeds)"
                )
                for row in analysis.best_table(study, curves):
                    lines.append(
                        f"  {row['rank']}. {row['setting']:<36} {fmt(row['median'])} "
                        f"[{fmt(row['q25'])}, {fmt(row['q75'])}]  "
                        f"steps-to-target {fmt(row['steps_to_target'], 'd')}  "
                        f"LR range {fmt(row['lr_decades'], '.1f')} decades"
                    )
        return "\n".join(lines)

    def to_csv(self, path: str | os.PathLike[str] | None = None) -> str:
        """One row per run (hyperparameters as ``hp_<name>`` columns); returns the text."""
        hp_names = sorted({k for r in self.records for k in r["hyperparams"]})
        eval_names = sorted({k for r in self.records for k in r if k.startswith("eval_")})
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(
            [
                *_CSV_FIELDS,
                *(f"hp_{h}" for h in hp_names),
                *eval_names,
                "schedule_kwargs",
                "problem_kwargs",
            ]
        )
        for r in self.records:
            writer.writerow(
                [
                    *(r.get(k) for k in _CSV_FIELDS),
                    *(r["hyperparams"].get(h) for h in hp_names),
                    *(r.get(e) for e in eval_names),
                    json.dumps(r["schedule_kwargs"], sort_keys=True),
                    json.dumps(r["problem_kwargs"], sort_keys=True),
                ]
            )
        text = buf.getvalue()
        if path is not None:
            _atomic_write(Path(path), text)
        return text

    def to_json(
        self, path: str | os.PathLike[str] | None = None, *, with_curves: bool = False
    ) -> str:
        """The records as a JSON list (``with_curves`` adds each run's per-step metrics)."""
        recs = [dict(r) for r in self.records]
        if with_curves:
            with self.curves() as curves:
                for r in recs:
                    r["curve"] = {k: v.tolist() for k, v in curves(r["run_id"]).items()}
        text = json.dumps(_json_safe(recs), indent=1, sort_keys=True)
        if path is not None:
            _atomic_write(Path(path), text)
        return text


class _CurveCache:
    def __init__(self, folder: Path) -> None:
        self.store = Store(folder, create=False)
        self.cache: dict[str, dict[str, np.ndarray]] = {}

    def __call__(self, run_id: str) -> dict[str, np.ndarray]:
        if run_id not in self.cache:
            self.cache[run_id] = self.store.metrics(run_id)
        return self.cache[run_id]

    def trajectory(self, run_id: str) -> np.ndarray | None:
        return self.store.trajectory(run_id)

    def __enter__(self) -> _CurveCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.store.close()


def fmt(x: Any, spec: str = ".3g") -> str:
    """Numbers for tables: ``-`` for missing, ``inf`` spelled out, ints without decimals."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    if isinstance(x, float) and math.isinf(x):
        return "never" if spec == "d" else "inf"
    if spec == "d":
        return str(int(x))
    return format(x, spec)


def _json_safe(x: Any) -> Any:
    if isinstance(x, float):
        return x if math.isfinite(x) else (None if math.isnan(x) else str(x))
    if isinstance(x, dict):
        return {k: _json_safe(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_json_safe(v) for v in x]
    return x


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):  # no temporary file left behind
            tmp.unlink()
        raise
