"""Analysis of stored runs: tidy records in, studies and their settings out (no printing).

A *study* is the set of runs of one problem (with its keyword arguments) at one step
budget. Within a study, runs that differ only by seed form a *setting*. What is ranked is
what a practitioner cares about at the end of training (``Metric``): by default the
problem's evaluation loss *after the last update*: the held-out loss for problems with
held-out data, the loss at the final point for test functions, the loss on the training
data for problems without held-out data (``problem.evaluation`` says which). ``rank_by``
picks another: ``train_loss``, ``accuracy`` (or any other stored evaluation, e.g.
``distance``), ``steps`` or ``time`` to the target.

Per optimizer the best setting is the one with the best median of the ranked metric over
seeds (a diverged run counts as the worst value, so a setting that diverges on most seeds
never wins). One loss level, the study's *target*, serves speed and robustness:

- ``target``: unless stated, the median final loss of the *weakest* optimizer's best
  setting, a level every optimizer's best setting reaches within the budget. Steps (and
  seconds) to target measure how much sooner the others get there.
- an LR *converges* when no seed diverged and its median final loss is <= the target; the
  LR range width is ``log10(hi / lo)`` of the contiguous block of converging grid LRs
  around the optimizer's best LR, in decades (0: only one grid point qualifies).

Verdicts on top of this (intervals, ties, budgets, profiles, sweep axes) are in
``optimlab.lab.verdicts``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..core.checks import real
from ..core.names import unknown_name
from .metrics import HIGHER_BETTER, METRICS, Metric, Reader, metric_for, tail_steps, to_target
from .stats import bootstrap_median, quantile
from .tidy import (
    Record,
    flatten,
    schedule_label,
    setting_label,
    study_key,
    study_label,
)

__all__ = [
    "HIGHER_BETTER",
    "METRICS",
    "TARGET_RULE",
    "Metric",
    "Reader",
    "SettingStats",
    "Study",
    "check_rank_by",
    "flatten",
    "schedule_label",
    "setting_label",
    "studies",
    "study_key",
    "study_label",
    "tail_steps",
]

TARGET_RULE = "the weakest optimizer's best median final loss"


@dataclass
class SettingStats:
    """One setting (runs that differ only by seed): the ranked metric's median over seeds,
    its spread and a bootstrap 95% interval of the median (all in *score* orientation,
    lower is better; ``shown`` turns a score into the metric's own value)."""

    setting: str
    label: str
    problem: str
    optimizer: str
    lr: float
    variant: str
    runs: list[Record]
    scores: np.ndarray  # per run (aligned with runs), +inf for diverged or missing
    median: float
    q25: float
    q75: float
    min: float
    max: float
    ci_lo: float
    ci_hi: float
    loss_median: float  # the loss metric's median (targets and convergence use it)
    n_seeds: int
    n_diverged: int
    identical: bool  # every seed gave the same numbers


@dataclass
class Study:
    """The analysis of one problem at one budget."""

    problem: str
    problem_kwargs: dict[str, Any]
    steps: int
    seeds: list[int]
    records: list[Record]
    metric: Metric
    loss_metric: Metric
    evaluation: str  # "held-out" | "objective" | "training" | "unknown"
    seed_changes: tuple[str, ...] | None  # None: the problem could not be loaded
    initial_loss: float
    best_loss: float
    target: float
    explicit_target: bool = False
    settings: list[SettingStats] = field(default_factory=list)
    values: dict[str, dict[str, float]] = field(default_factory=dict)  # run -> metric -> value
    notes: list[str] = field(default_factory=list)  # e.g. a metric this problem lacks

    @property
    def label(self) -> str:
        return study_label(self.problem, self.problem_kwargs)

    @property
    def identical(self) -> bool:
        """More than one seed per setting, and every seed gave the same numbers."""
        multi = [s for s in self.settings if s.n_seeds > 1]
        return bool(multi) and all(s.identical for s in multi)

    @property
    def budget(self) -> str:
        """``"200 steps, 3 seeds"``: what every table of the study states (never "3 seeds"
        for runs that cannot differ)."""
        n = len(self.seeds)
        steps = f"{self.steps} step{'' if self.steps == 1 else 's'}"
        if self.identical:
            return f"{steps}, 1 run ({n} seeds gave identical runs)"
        if n == 1 and self.seed_changes == ():
            return f"{steps}, 1 run (seeds change nothing here)"
        return f"{steps}, {n} seed{'' if n == 1 else 's'}"

    @property
    def distinct_seeds(self) -> int:
        """How many seeds gave different runs (1 when they could not, or did not)."""
        return 1 if self.identical else len(self.seeds)

    @property
    def seeds_text(self) -> str:
        """What a seed changes on this problem, in one sentence."""
        if self.seed_changes is None:
            return "what a seed changes is not known (the problem could not be loaded)"
        if not self.seed_changes:
            hint = (
                " (start=random draws the start from the seed)"
                if self.evaluation == ("objective")
                else ""
            )
            return f"a seed changes nothing on {self.label}: one run per setting{hint}"
        text = f"a seed changes the {' and the '.join(self.seed_changes)}"
        return text + ("; yet every seed gave identical runs" if self.identical else "")

    def tried(self) -> dict[str, int]:
        """Settings tried per optimizer (its tuning budget), in optimizer order."""
        out: dict[str, int] = {}
        for s in self.settings:
            out[s.optimizer] = out.get(s.optimizer, 0) + 1
        return dict(sorted(out.items()))

    def shown(self, score: float) -> float:
        """A score (lower is better) as the metric's own value."""
        return -score if self.metric.higher_better and not math.isnan(score) else score

    def best(self) -> dict[str, SettingStats]:
        """Per optimizer, the setting with the best median (ties: lower max, then lr),
        ordered from best to worst."""
        out: dict[str, SettingStats] = {}
        for s in sorted(self.settings, key=lambda s: (s.median, s.loss_median, s.max, s.lr)):
            out.setdefault(s.optimizer, s)
        return dict(sorted(out.items(), key=lambda kv: (kv[1].median, kv[1].loss_median, kv[0])))

    def sensitivity(self, variant: str) -> list[SettingStats]:
        """The settings of one variant (optimizer + non-lr settings) ordered by lr."""
        return sorted((s for s in self.settings if s.variant == variant), key=lambda s: s.lr)

    def converges(self, s: SettingStats) -> bool:
        """No seed diverged and the median final loss is at most the target."""
        return s.n_diverged == 0 and s.loss_median <= self.target

    def lr_range(self, variant: str) -> tuple[float, float] | None:
        """The contiguous block of converging LRs around the variant's best LR."""
        curve = self.sensitivity(variant)
        ok = [self.converges(s) for s in curve]
        if not any(ok):
            return None
        best = min(range(len(curve)), key=lambda i: (not ok[i], curve[i].loss_median))
        lo = hi = best
        while lo > 0 and ok[lo - 1]:
            lo -= 1
        while hi < len(curve) - 1 and ok[hi + 1]:
            hi += 1
        return curve[lo].lr, curve[hi].lr

    @property
    def series(self) -> str:
        """How the study's loss is read over time (``metrics.loss_series``)."""
        if self.loss_metric.short == "last loss":
            return "steps"
        return "evals+steps" if self.evaluation == "objective" else "evals"

    def value(self, r: Record, key: str) -> float:
        """Run ``r``'s final value of metric ``key`` (nan when missing)."""
        return self.values.get(r["run_id"], {}).get(key, math.nan)

    def score(self, r: Record, key: str | None = None) -> float:
        """The ranked value of run ``r`` (lower is better); diverged, failed or missing ->
        +inf."""
        key = key or self.metric.key
        v = self.value(r, key)
        if r["status"] != "finished" or not math.isfinite(v):
            return math.inf
        return -v if key in HIGHER_BETTER else v


def _problem_facts(problem: str, kwargs: Mapping[str, Any]) -> tuple[str, tuple[str, ...] | None]:
    """(evaluation, seed_changes) of a study's problem; ("unknown", None) if it cannot be
    loaded here (a user problem passed as an object in another process)."""
    from .. import problems

    try:
        p = problems.get(problem, **dict(kwargs))
        return str(p.evaluation), tuple(p.seed_changes)
    except Exception:
        return "unknown", None


def _run_values(
    r: Record, evaluation: str, has_evals: bool, to_target: tuple[float, float] | None
) -> dict[str, float]:
    """Every metric's final value for one run."""
    out = {k[5:]: float(v) for k, v in r.items() if k.startswith("eval_") and v is not None}
    loss = out.get("loss", math.nan) if has_evals else _num(r.get("final_loss"))
    out["loss"] = loss
    held_out = evaluation in ("held-out", "unknown") or not has_evals
    out["train_loss"] = _num(r.get("tail_loss")) if held_out else loss
    if to_target is not None:
        out["steps"], out["time"] = to_target
    return out


def _num(x: Any) -> float:
    return math.nan if x is None else float(x)


def _stats(study: Study, runs: list[Record]) -> SettingStats:
    scores = np.array([study.score(r) for r in runs])
    losses = np.array([study.score(r, "loss") for r in runs])
    lo, hi = bootstrap_median(scores)
    finals = [tuple(sorted(study.values.get(r["run_id"], {}).items())) for r in runs]
    first = runs[0]
    return SettingStats(
        setting=first["setting"],
        label=setting_label(first),
        problem=first["problem"],
        optimizer=first["optimizer"],
        lr=float(first["lr"]),
        variant=first["variant"],
        runs=runs,
        scores=scores,
        median=quantile(scores, 50),
        q25=quantile(scores, 25),
        q75=quantile(scores, 75),
        min=float(scores.min()),
        max=float(scores.max()),
        ci_lo=lo,
        ci_hi=hi,
        loss_median=quantile(losses, 50),
        n_seeds=len(runs),
        n_diverged=sum(r["status"] == "diverged" for r in runs),
        identical=len(runs) > 1
        and all(r["status"] == runs[0]["status"] for r in runs)
        and len({_same_key(f) for f in finals}) == 1,
    )


def _same_key(final: tuple[tuple[str, float], ...]) -> tuple[Any, ...]:
    return tuple((k, "nan" if math.isnan(v) else v) for k, v in final if k not in ("time",))


def check_rank_by(rank_by: str, records: Sequence[Record] = ()) -> str:
    """``rank_by`` if it names a metric (or a stored evaluation), else ``ValueError``."""
    known = set(METRICS) | {k[5:] for r in records for k in r if k.startswith("eval_")}
    if not isinstance(rank_by, str) or rank_by not in known:
        raise unknown_name("metric to rank by", rank_by, known)
    return rank_by


def studies(
    records: Sequence[Record],
    rank_by: str = "loss",
    target: float | Mapping[str, float] | None = None,
    reader: Reader | None = None,
) -> list[Study]:
    """Split records into studies (problem x budget) and analyse each. ``reader`` (curves
    and evaluations per run) is needed to rank by ``steps`` or ``time`` to target."""
    check_rank_by(rank_by, records)
    for t in target.values() if isinstance(target, Mapping) else [target]:
        real("target", t, optional=True)
    if rank_by in ("steps", "time") and reader is None:
        raise ValueError(f"rank_by={rank_by!r} needs the runs' curves (pass reader=)")
    groups: dict[tuple[str, str, int], list[Record]] = {}
    for r in records:
        groups.setdefault(study_key(r), []).append(r)
    out = []
    for (problem, pkw, steps), recs in sorted(groups.items()):
        tgt = target.get(problem) if isinstance(target, Mapping) else target
        out.append(_study(problem, json.loads(pkw), steps, recs, rank_by, tgt, reader))
    return out


def _study(
    problem: str,
    kwargs: dict[str, Any],
    steps: int,
    recs: list[Record],
    rank_by: str,
    target: float | None,
    reader: Reader | None,
) -> Study:
    evaluation, seed_changes = _problem_facts(problem, kwargs)
    finished = [r for r in recs if r["status"] == "finished"]
    has_evals = any("eval_loss" in r for r in finished)
    notes = []
    direct = ("loss", "train_loss", "steps", "time")
    if rank_by not in direct and finished and not any(f"eval_{rank_by}" in r for r in finished):
        notes.append(f"{study_label(problem, kwargs)} records no {rank_by}: ranked by loss")
        rank_by = "loss"
    init = [_num(r["initial_loss"]) for r in recs]
    init = [v for v in init if math.isfinite(v)]
    study = Study(
        problem=problem,
        problem_kwargs=kwargs,
        steps=steps,
        seeds=sorted({r["seed"] for r in recs}),
        records=recs,
        metric=metric_for(rank_by, evaluation, steps, has_evals),
        loss_metric=metric_for("loss", evaluation, steps, has_evals),
        evaluation=evaluation,
        seed_changes=seed_changes,
        initial_loss=float(np.median(init)) if init else math.nan,
        best_loss=math.nan,
        target=math.nan if target is None else float(target),
        explicit_target=target is not None,
        notes=notes,
    )
    study.values = {r["run_id"]: _run_values(r, evaluation, has_evals, None) for r in recs}
    finite = [study.score(r, "loss") for r in recs]
    finite = [f for f in finite if math.isfinite(f)]
    study.best_loss = min(finite) if finite else math.nan
    if not study.explicit_target:
        study.target = _weakest_best(study, recs)
    if rank_by in ("steps", "time") and reader is not None:
        for r in recs:
            study.values[r["run_id"]]["steps"], study.values[r["run_id"]]["time"] = to_target(
                reader, r["run_id"], study.series, study.target
            )
    study.settings = _settings(study, recs)
    return study


def _settings(study: Study, records: Sequence[Record]) -> list[SettingStats]:
    groups: dict[str, list[Record]] = {}
    for r in records:
        if r["status"] in ("finished", "diverged"):
            groups.setdefault(r["setting"], []).append(r)
    return [_stats(study, sorted(g, key=lambda r: r["seed"])) for g in groups.values()]


def _weakest_best(study: Study, records: Sequence[Record]) -> float:
    """The largest finite per-optimizer best median loss (nan when no optimizer has one)."""
    per_setting: dict[str, list[float]] = {}
    owner: dict[str, str] = {}
    for r in records:
        if r["status"] in ("finished", "diverged"):
            per_setting.setdefault(r["setting"], []).append(study.score(r, "loss"))
            owner[r["setting"]] = r["optimizer"]
    best: dict[str, float] = {}
    for key, scores in per_setting.items():
        med = quantile(np.array(scores), 50)
        best[owner[key]] = min(best.get(owner[key], math.inf), med)
    finite = [v for v in best.values() if math.isfinite(v)]
    return max(finite) if finite else math.nan
