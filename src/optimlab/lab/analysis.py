"""Analysis of stored runs: tidy records in, tidy rows out (no plotting, no printing).

A *study* is the set of runs of one problem (with its keyword arguments) at one step
budget. Within a study, runs that differ only by seed form a *setting*. Per optimizer the
best setting is the one with the lowest median of the criterion across seeds (a diverged
run counts as +inf, so a setting that diverges on most seeds never wins). One loss level,
the study's *target*, serves both speed and robustness:

- ``target``: unless stated, the median final loss of the *weakest* optimizer's best
  setting, the level every optimizer's best setting reaches within the budget. Steps (and
  seconds) to target then measure how much sooner the others get there; the same absolute
  level holds for every run, also from random starts.
- an LR *converges* when no seed diverged and its median final loss is <= the target; the
  LR range width is ``log10(hi / lo)`` of the contiguous block of converging grid LRs
  around the optimizer's best LR, in decades (0: only one grid point qualifies).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from ..core.checks import choice, real
from .config import RunConfig

Record = dict[str, Any]
Curves = Callable[[str], Mapping[str, np.ndarray]]

TARGET_RULE = "the weakest optimizer's best median final loss"
CRITERIA = ("final_loss", "min_loss")


def study_key(r: Record) -> tuple[str, str, int]:
    return (r["problem"], json.dumps(r["problem_kwargs"], sort_keys=True), int(r["steps"]))


def study_label(problem: str, problem_kwargs: Mapping[str, Any]) -> str:
    if not problem_kwargs:
        return problem
    return f"{problem}({', '.join(f'{k}={v}' for k, v in sorted(problem_kwargs.items()))})"


def setting_label(r: Record, *, with_lr: bool = True) -> str:
    """``adam lr=0.01 beta1=0.8 + cosine`` listing only what differs from the defaults."""
    from ..rules.registry import get_rule

    defaults = get_rule(r["optimizer"]).defaults
    parts = [r["optimizer"]]
    if with_lr:
        parts.append(f"lr={r['lr']:.3g}")
    for k, v in sorted(r["hyperparams"].items()):
        if k != "lr" and v != defaults.get(k):
            parts.append(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}")
    if r["schedule"]:
        kw = ",".join(f"{k}={v}" for k, v in sorted(r["schedule_kwargs"].items()))
        parts.append(f"+ {r['schedule']}" + (f"({kw})" if kw else ""))
    return " ".join(parts)


def flatten(row: Mapping[str, Any]) -> Record:
    """A store row as a flat record (hyperparameters and final evaluations included)."""
    cfg = RunConfig.from_canonical(row["config"])
    rec: Record = {
        k: row[k]
        for k in (
            "run_id",
            "problem",
            "optimizer",
            "lr",
            "seed",
            "steps",
            "status",
            "initial_loss",
            "final_loss",
            "min_loss",
            "diverged_step",
            "wall_time",
        )
    }
    rec["schedule"] = cfg.schedule
    rec["schedule_kwargs"] = dict(cfg.schedule_kwargs)
    rec["problem_kwargs"] = dict(cfg.problem_kwargs)
    rec["hyperparams"] = dict(cfg.hyperparams)
    rec["setting"] = row["group_key"]
    rec["variant"] = _variant_key(cfg)
    for k, v in (row.get("final_evals") or {}).items():
        rec[f"eval_{k}"] = math.nan if v is None else v
    return rec


def _variant_key(cfg: RunConfig) -> str:
    """The setting without lr and seed: one LR-sensitivity curve per variant."""
    hp = {k: v for k, v in cfg.hyperparams.items() if k != "lr"}
    return json.dumps([cfg.optimizer, hp, cfg.schedule, dict(cfg.schedule_kwargs)], sort_keys=True)


def score(r: Record, criterion: str = "final_loss") -> float:
    """The value ranked (lower is better); diverged, failed or missing -> +inf."""
    if r["status"] != "finished":
        return math.inf
    value = r.get(criterion)
    if value is None or not math.isfinite(value):
        return math.inf
    return float(value)


@dataclass
class SettingStats:
    """One setting (runs that differ only by seed) and its spread across seeds."""

    setting: str
    label: str
    problem: str
    optimizer: str
    lr: float
    variant: str
    runs: list[Record]
    median: float
    q25: float
    q75: float
    min: float
    max: float
    n_seeds: int
    n_diverged: int


def _stats(runs: list[Record], criterion: str) -> SettingStats:
    values = np.array([score(r, criterion) for r in runs])
    q25, med, q75 = (_quantile(values, q) for q in (25, 50, 75))
    first = runs[0]
    return SettingStats(
        setting=first["setting"],
        label=setting_label(first),
        problem=first["problem"],
        optimizer=first["optimizer"],
        lr=float(first["lr"]),
        variant=first["variant"],
        runs=runs,
        median=med,
        q25=q25,
        q75=q75,
        min=float(values.min()),
        max=float(values.max()),
        n_seeds=len(runs),
        n_diverged=sum(r["status"] == "diverged" for r in runs),
    )


def _quantile(values: np.ndarray, q: float) -> float:
    # interpolating between a finite value and inf is meaningless: pick an element then
    method: Literal["linear", "nearest"] = "linear" if np.isfinite(values).all() else "nearest"
    return float(np.percentile(np.asarray(values, dtype=np.float64), q, method=method))


def settings(records: Sequence[Record], criterion: str = "final_loss") -> list[SettingStats]:
    """Every setting of ``records`` with its median and spread across seeds."""
    groups: dict[str, list[Record]] = {}
    for r in records:
        if r["status"] in ("finished", "diverged"):
            groups.setdefault(r["setting"], []).append(r)
    return [_stats(sorted(g, key=lambda r: r["seed"]), criterion) for g in groups.values()]


@dataclass
class Study:
    """The analysis of one problem at one budget."""

    problem: str
    problem_kwargs: dict[str, Any]
    steps: int
    seeds: list[int]
    records: list[Record]
    criterion: str
    initial_loss: float
    best_loss: float
    target: float
    explicit_target: bool = False
    settings: list[SettingStats] = field(default_factory=list)

    @property
    def label(self) -> str:
        return study_label(self.problem, self.problem_kwargs)

    @property
    def budget(self) -> str:
        """``"200 steps, 3 seeds"``: what every table of the study states."""
        n = len(self.seeds)
        return f"{self.steps} steps, {n} seed{'' if n == 1 else 's'}"

    def best(self) -> dict[str, SettingStats]:
        """Per optimizer, the setting with the lowest median (ties: lower max, then lr)."""
        out: dict[str, SettingStats] = {}
        for s in sorted(self.settings, key=lambda s: (s.median, s.max, s.lr)):
            out.setdefault(s.optimizer, s)
        return dict(sorted(out.items(), key=lambda kv: (kv[1].median, kv[0])))

    def sensitivity(self, variant: str) -> list[SettingStats]:
        """The settings of one variant (optimizer + non-lr settings) ordered by lr."""
        return sorted((s for s in self.settings if s.variant == variant), key=lambda s: s.lr)

    def converges(self, s: SettingStats) -> bool:
        """No seed diverged and the median final loss is at most the target."""
        return s.n_diverged == 0 and s.median <= self.target

    def lr_range(self, variant: str) -> tuple[float, float] | None:
        """The contiguous block of converging LRs around the variant's best LR."""
        curve = self.sensitivity(variant)
        ok = [self.converges(s) for s in curve]
        if not any(ok):
            return None
        best = min(range(len(curve)), key=lambda i: (not ok[i], curve[i].median))
        lo = hi = best
        while lo > 0 and ok[lo - 1]:
            lo -= 1
        while hi < len(curve) - 1 and ok[hi + 1]:
            hi += 1
        return curve[lo].lr, curve[hi].lr


def studies(
    records: Sequence[Record],
    criterion: str = "final_loss",
    target: float | Mapping[str, float] | None = None,
) -> list[Study]:
    """Split records into studies (problem x budget) and analyse each."""
    choice("criterion", criterion, CRITERIA)
    for t in target.values() if isinstance(target, Mapping) else [target]:
        real("target", t, optional=True)
    groups: dict[tuple[str, str, int], list[Record]] = {}
    for r in records:
        groups.setdefault(study_key(r), []).append(r)
    out = []
    for (problem, pkw, steps), recs in sorted(groups.items()):
        init = [
            r["initial_loss"]
            for r in recs
            if r["initial_loss"] is not None and math.isfinite(r["initial_loss"])
        ]
        f0 = float(np.median(init)) if init else math.nan
        finals = [score(r, "final_loss") for r in recs]
        finite = [f for f in finals if math.isfinite(f)]
        stats = settings(recs, criterion)
        tgt = target.get(problem) if isinstance(target, Mapping) else target
        explicit = tgt is not None
        if tgt is None:
            tgt = _weakest_best(stats)
        out.append(
            Study(
                problem=problem,
                problem_kwargs=json.loads(pkw),
                steps=steps,
                seeds=sorted({r["seed"] for r in recs}),
                records=recs,
                criterion=criterion,
                initial_loss=f0,
                best_loss=min(finite) if finite else math.nan,
                target=float(tgt),
                explicit_target=explicit,
                settings=stats,
            )
        )
    return out


def _weakest_best(stats: Sequence[SettingStats]) -> float:
    """The largest finite per-optimizer best median (nan when no optimizer has one)."""
    best: dict[str, float] = {}
    for s in stats:
        best[s.optimizer] = min(best.get(s.optimizer, math.inf), s.median)
    finite = [v for v in best.values() if math.isfinite(v)]
    return max(finite) if finite else math.nan


def steps_to_target(curve: Mapping[str, np.ndarray], target: float) -> tuple[float, float]:
    """(updates applied when the loss first is <= target, cumulative seconds they took);
    (inf, inf) if never. ``loss[t]`` is measured before update ``t``, ``time[t]`` after it."""
    loss = np.asarray(curve["loss"], dtype=np.float64)
    with np.errstate(invalid="ignore"):
        hit = np.nonzero(loss <= target)[0]
    if not hit.size:
        return math.inf, math.inf
    i = int(hit[0])
    t = np.asarray(curve["time"], dtype=np.float64)
    return float(curve["step"][i]), (0.0 if i == 0 else float(t[i - 1]))


def best_table(study: Study, curves: Curves) -> list[dict[str, Any]]:
    """One row per optimizer: its best setting, median and spread across seeds, steps and
    time to the study's target (median over seeds; inf if fewer than half reach it), and
    the width of its converging LR range in decades."""
    rows = []
    for rank, (opt, s) in enumerate(study.best().items(), start=1):
        hits = [steps_to_target(curves(r["run_id"]), study.target) for r in s.runs]
        reached = sum(math.isfinite(h[0]) for h in hits)
        lr_range = study.lr_range(s.variant)
        rows.append(
            {
                "rank": rank,
                "optimizer": opt,
                "setting": s.label,
                "lr": s.lr,
                "median": s.median,
                "q25": s.q25,
                "q75": s.q75,
                "min": s.min,
                "max": s.max,
                "seeds": s.n_seeds,
                "diverged": s.n_diverged,
                "steps": study.steps,
                "steps_to_target": float(np.median([h[0] for h in hits])),
                "time_to_target": float(np.median([h[1] for h in hits])),
                "reached": reached,
                "lr_lo": lr_range[0] if lr_range else math.nan,
                "lr_hi": lr_range[1] if lr_range else math.nan,
                "lr_decades": math.log10(lr_range[1] / lr_range[0]) if lr_range else math.nan,
                "evals": _median_evals(s.runs),
                "grid_edge": grid_edge(study, s),
            }
        )
    return rows


def grid_edge(study: Study, s: SettingStats) -> str:
    """``"low"``/``"high"`` when ``s`` has the smallest/largest LR tried for its variant
    (its optimum may lie beyond the grid), else ``""``."""
    lrs = [x.lr for x in study.sensitivity(s.variant)]
    if len(lrs) < 2:
        return ""
    return "low" if s.lr == lrs[0] else "high" if s.lr == lrs[-1] else ""


def edge_notes(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """A warning per best setting found at the edge of its LR grid."""
    words = {"low": ("smallest", "lower"), "high": ("largest", "higher")}
    return [
        f"{r['optimizer']}: its best lr={r['lr']:.3g} is the {words[r['grid_edge']][0]} tried; "
        f"the optimum may be {words[r['grid_edge']][1]} (widen the LR range)"
        for r in rows
        if r["grid_edge"]
    ]


def _median_evals(runs: list[Record]) -> dict[str, float]:
    names = sorted({k for r in runs for k in r if k.startswith("eval_")})
    out = {}
    for k in names:
        vals = [r[k] for r in runs if r.get(k) is not None and math.isfinite(r[k])]
        out[k[5:]] = float(np.median(vals)) if vals else math.nan
    return out


def sensitivity_rows(study: Study) -> list[dict[str, Any]]:
    """Final loss against learning rate for each optimizer's best variant."""
    rows = []
    for opt, best in study.best().items():
        for s in study.sensitivity(best.variant):
            rows.append(
                {
                    "optimizer": opt,
                    "variant": setting_label(s.runs[0], with_lr=False),
                    "lr": s.lr,
                    "median": s.median,
                    "q25": s.q25,
                    "q75": s.q75,
                    "min": s.min,
                    "max": s.max,
                    "seeds": s.n_seeds,
                    "diverged": s.n_diverged,
                    "converges": study.converges(s),
                }
            )
    return rows
