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
from typing import Any, TextIO, overload

import numpy as np

from . import analysis, verdicts
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
    schedule_kwargs, problem_kwargs``, ``eval_<name>`` for the evaluation after the last
    update and ``tail_loss`` (the mean of the last ``analysis.tail_steps(steps)``
    mini-batch losses). ``counts`` tells what the call that produced them computed and
    skipped; ``notes`` what it decided for you (e.g. one seed where seeds change nothing).
    Results in a temporary folder (``out=None``) keep it while they (or results filtered
    from them) are alive and remove it afterwards.
    """

    def __init__(
        self,
        folder: str | os.PathLike[str],
        records: list[dict[str, Any]],
        counts: RunCounts | None = None,
        notes: Sequence[str] = (),
        keeper: Any = None,
    ) -> None:
        self.folder = Path(folder)
        self.records = records
        self.counts = counts
        self.notes = list(notes)
        self._keeper = keeper  # a temporary folder's owner: removed when the last holder goes

    @classmethod
    def load(
        cls,
        folder: str | os.PathLike[str],
        run_ids: Sequence[str] | None = None,
        counts: RunCounts | None = None,
    ) -> Results:
        """Every run of ``folder`` (or just ``run_ids``) that has a final status."""
        with Store(folder, create=False, readonly=True) as store:
            rows = store.runs(run_ids, status=("finished", "diverged", "failed"))
            tails = _tail_losses(store)
        records = [analysis.flatten(r) for r in rows]
        for r in records:
            r["tail_loss"] = tails.get(r["run_id"], math.nan)
        return cls(folder, records, counts)

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
        return Results(self.folder, recs, self.counts, self.notes, self._keeper)

    def curve(self, run_id: str) -> dict[str, np.ndarray]:
        """Per-step ``step, loss, lr, grad_norm, update_norm, time`` of one run."""
        with Store(self.folder, create=False, readonly=True) as store:
            return store.metrics(run_id)

    def curves(self) -> _CurveCache:
        """A cached ``run_id -> curve`` reader over one store connection (also
        ``.evals(run_id)`` and ``.trajectory(run_id)``)."""
        return _CurveCache(self.folder)

    def studies(
        self, rank_by: str = "loss", target: float | Mapping[str, float] | None = None
    ) -> list[analysis.Study]:
        """One study per problem and budget, ranked by ``rank_by`` (``loss``: the
        held-out loss or loss at the final point after the last update; ``train_loss``,
        ``accuracy`` or another evaluation, ``steps``, ``time``)."""
        with self.curves() as curves:
            return analysis.studies(self.records, rank_by, target, curves)

    def best(self, rank_by: str = "loss") -> list[dict[str, Any]]:
        """Per problem and optimizer, the best setting by median ``rank_by`` over seeds."""
        out = []
        with self.curves() as curves:
            for study in analysis.studies(self.records, rank_by, None, curves):
                for row in verdicts.best_table(study, curves):
                    out.append({"problem": study.label, **row})
        return out

    def table(self, rank_by: str = "loss", width: int | None = None) -> str:
        """The verdicts as plain text (``print(res.table())``): per study what is ranked,
        the budget and seeds, the best setting per optimizer with intervals and ties, the
        notes and the swept axes; the summary across problems; the notes of the call.
        ``width``: wrap to fit it (labels and intervals wrap, numbers are never cut)."""
        from .text import full_text

        with self.curves() as curves:
            tables = [
                (study, verdicts.best_table(study, curves))
                for study in analysis.studies(self.records, rank_by, None, curves)
            ]
        return full_text(tables, width, self.notes)

    @overload
    def to_csv(self, path: None = None) -> str: ...
    @overload
    def to_csv(self, path: str | os.PathLike[str]) -> None: ...
    def to_csv(self, path: str | os.PathLike[str] | None = None) -> str | None:
        """One row per run (hyperparameters as ``hp_<name>`` columns): the text, or with
        ``path`` written there row by row (atomically; the folder must exist)."""
        if path is None:
            buf = io.StringIO()
            self._write_csv(buf)
            return buf.getvalue()
        with atomic_writer(path) as fh:
            self._write_csv(fh)
        return None

    def _write_csv(self, fh: TextIO) -> None:
        hp_names = sorted({k for r in self.records for k in r["hyperparams"]})
        eval_names = sorted({k for r in self.records for k in r if k.startswith("eval_")})
        writer = csv.writer(fh, lineterminator="\n")
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

    @overload
    def to_json(self, path: None = None, *, with_curves: bool = False) -> str: ...
    @overload
    def to_json(self, path: str | os.PathLike[str], *, with_curves: bool = False) -> None: ...
    def to_json(
        self, path: str | os.PathLike[str] | None = None, *, with_curves: bool = False
    ) -> str | None:
        """The records as a JSON list (``with_curves`` adds each run's per-step metrics):
        the text, or with ``path`` written there run by run (atomically; the folder must
        exist), reading one curve at a time, so memory does not grow with the runs."""
        if path is None:
            buf = io.StringIO()
            self._write_json(buf, with_curves)
            return buf.getvalue()
        with atomic_writer(path) as fh:
            self._write_json(fh, with_curves)
        return None

    def _write_json(self, fh: TextIO, with_curves: bool) -> None:
        """The text ``json.dumps(records, indent=1, sort_keys=True)`` would give, written
        one record at a time."""
        if not self.records:
            fh.write("[]")
            return
        with Store(self.folder, create=False, readonly=True) if with_curves else _no_store() as s:
            fh.write("[\n")
            for i, r in enumerate(self.records):
                rec = dict(r)
                if s is not None:
                    rec["curve"] = {k: v.tolist() for k, v in s.metrics(r["run_id"]).items()}
                text = json.dumps(_json_safe(rec), indent=1, sort_keys=True)
                fh.write((",\n" if i else "") + " " + text.replace("\n", "\n "))
            fh.write("\n]")


@contextlib.contextmanager
def _no_store() -> Iterator[None]:
    yield None


def _tail_losses(store: Store) -> dict[str, float]:
    """Per run, the mean of its last ``analysis.tail_steps(steps)`` per-step losses."""
    rows = store.conn.execute(
        "SELECT m.run_id, AVG(m.loss) FROM metrics m JOIN runs r ON r.run_id = m.run_id "
        "WHERE r.status = 'finished' AND m.step >= r.steps - MAX(1, r.steps / 10) "
        "GROUP BY m.run_id"
    ).fetchall()
    return {rid: (math.nan if v is None else float(v)) for rid, v in rows}


class _CurveCache:
    def __init__(self, folder: Path) -> None:
        self.store = Store(folder, create=False, readonly=True)
        self.cache: dict[str, dict[str, np.ndarray]] = {}
        self.eval_cache: dict[str, list[tuple[int, dict[str, float]]]] = {}

    def __call__(self, run_id: str) -> dict[str, np.ndarray]:
        if run_id not in self.cache:
            self.cache[run_id] = self.store.metrics(run_id)
        return self.cache[run_id]

    def evals(self, run_id: str) -> list[tuple[int, dict[str, float]]]:
        if run_id not in self.eval_cache:
            self.eval_cache[run_id] = self.store.evals(run_id)
        return self.eval_cache[run_id]

    def trajectory(self, run_id: str) -> np.ndarray | None:
        return self.store.trajectory(run_id)

    def __enter__(self) -> _CurveCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.store.close()


def _json_safe(x: Any) -> Any:
    if isinstance(x, float):
        return x if math.isfinite(x) else (None if math.isnan(x) else str(x))
    if isinstance(x, dict):
        return {k: _json_safe(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_json_safe(v) for v in x]
    return x


@contextlib.contextmanager
def atomic_writer(path: str | os.PathLike[str]) -> Iterator[TextIO]:
    """A text file that appears at ``path`` only when complete (written to a temporary
    file in the same folder, fsynced, renamed); the folder must exist."""
    path = Path(path)
    if not path.parent.is_dir():
        raise FileNotFoundError(
            f"cannot write {str(path)!r}: folder {str(path.parent)!r} does not exist"
        )
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):  # no temporary file left behind
            tmp.unlink()
        raise


def _atomic_write(path: Path, text: str) -> None:
    with atomic_writer(path) as fh:
        fh.write(text)
