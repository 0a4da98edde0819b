"""What the lab ranks: metrics measured after the last update, and how to read runs.

``loss`` is the problem's evaluation loss after the last update: held-out for problems
with held-out data, the loss at the final point for test functions, on the training data
for problems without held-out data (``problem.evaluation``). ``train_loss`` is the mean of
the last mini-batch losses (``tail_steps``) where the evaluation is held out, else the
evaluation itself. Any other stored evaluation (``accuracy``, ``distance``) ranks too;
``steps`` and ``time`` to the study's target are read from the runs' curves.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

import numpy as np

METRICS = ("loss", "train_loss", "accuracy", "steps", "time")
HIGHER_BETTER = frozenset({"accuracy"})


class Reader(Protocol):
    """Per-step curves and evaluations of stored runs (``Results.curves()``)."""

    def __call__(self, run_id: str) -> Mapping[str, np.ndarray]: ...

    def evals(self, run_id: str) -> list[tuple[int, dict[str, float]]]: ...


def tail_steps(steps: int) -> int:
    """How many of the last mini-batch losses the training loss averages: a tenth of the
    run (at least 1)."""
    return max(1, int(steps) // 10)


@dataclass(frozen=True)
class Metric:
    """What a table ranks: ``key`` (``loss``, ``train_loss``, an evaluation name, ``steps``
    or ``time``), a column name, a sentence, and whether higher is better."""

    key: str
    short: str
    label: str
    higher_better: bool = False


def metric_for(key: str, evaluation: str, steps: int, has_evals: bool) -> Metric:
    """The metric ``key`` as measured on a problem whose evaluation is ``evaluation``."""
    where = {
        "held-out": ("held-out loss", "held-out loss after the last update"),
        "objective": ("loss", "loss at the final point, after the last update"),
        "training": ("loss", "loss on the training data after the last update"),
    }.get(evaluation, ("eval loss", "evaluation loss after the last update"))
    if key == "loss":
        if not has_evals:  # a store without evaluations: the last recorded training loss
            return Metric(key, "last loss", "training loss of the last step, before its update")
        return Metric(key, *where)
    if key == "train_loss":
        if has_evals and evaluation in ("objective", "training"):
            return Metric(key, where[0], where[1] + " (the training objective itself)")
        k = tail_steps(steps)
        return Metric(key, "train loss", f"training loss: mean of the last {k} mini-batch losses")
    if key in ("steps", "time"):
        unit = "steps" if key == "steps" else "seconds"
        return Metric(key, f"{key} to target", f"{unit} until the {where[0]} reaches the target")
    prefix = "held-out " if evaluation == "held-out" else ""
    return Metric(key, prefix + key, f"{prefix}{key} after the last update", key in HIGHER_BETTER)


def loss_series(reader: Reader, run_id: str, series: str) -> tuple[np.ndarray, np.ndarray]:
    """(updates applied, loss) of a run over time. ``series``: ``"evals"`` (the stored
    evaluations: held-out or training data), ``"evals+steps"`` (test functions: the
    per-step losses, which are the objective itself at the point before each update,
    joined by the evaluation after the last one) or ``"steps"`` (per-step losses only:
    a store without evaluations)."""
    curve = reader(run_id)
    steps = np.asarray(curve["step"], dtype=np.float64)
    loss = np.asarray(curve["loss"], dtype=np.float64)
    if series == "steps":
        return steps, loss
    evals = [(s, m["loss"]) for s, m in reader.evals(run_id) if "loss" in m]
    at = np.array([s for s, _ in evals], dtype=np.float64)
    val = np.array([v for _, v in evals], dtype=np.float64)
    if series == "evals+steps":
        keep = ~np.isin(steps, at)
        at, val = np.concatenate([steps[keep], at]), np.concatenate([loss[keep], val])
        order = np.argsort(at, kind="stable")
        at, val = at[order], val[order]
    return at, val


def to_target(reader: Reader, run_id: str, series: str, target: float) -> tuple[float, float]:
    """(updates applied when the run's loss first is <= ``target``, seconds those updates
    took); (inf, inf) if never. ``time[k]`` is the cumulative time after update ``k``."""
    if not math.isfinite(target):
        return math.inf, math.inf
    at, val = loss_series(reader, run_id, series)
    with np.errstate(invalid="ignore"):
        hit = np.nonzero(val <= target)[0]
    if not hit.size:
        return math.inf, math.inf
    k = int(at[hit[0]])
    t = np.asarray(reader(run_id)["time"], dtype=np.float64)
    return float(k), (0.0 if k == 0 else float(t[min(k, len(t)) - 1]))
