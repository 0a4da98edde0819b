"""Verdicts on a study: the best-per-optimizer table with intervals and ties, tuning
budgets, notes that say when rankings disagree, and LR sensitivity rows.

Rows are plain dicts (numbers and short strings) that the terminal tables, the HTML
report and ``Results.best()`` share. Across studies and sweep axes: ``summary``.

- **Interval**: a 95% bootstrap interval of each best setting's median over seeds.
- **Tie**: a row is tied with #1 unless it is worse by a paired comparison on the seeds
  they share (the bootstrap interval of the median paired difference lies above 0; with
  3 seeds: worse on every seed); without shared seeds, unless its interval lies above
  #1's.
- **Budget**: settings tried per optimizer; a note when they differ.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .analysis import Reader, SettingStats, Study, setting_label, studies
from .metrics import to_target
from .stats import paired_worse, unpaired_worse


def versus_first(study: Study, first: SettingStats, s: SettingStats) -> str:
    """``"-"`` for #1 itself, ``"tie"`` or ``"worse"`` against #1 (see the module doc)."""
    if s is first:
        return "-"
    by_seed_a = {r["seed"]: x for r, x in zip(first.runs, first.scores, strict=True)}
    by_seed_b = {r["seed"]: x for r, x in zip(s.runs, s.scores, strict=True)}
    shared = sorted(set(by_seed_a) & set(by_seed_b))
    if len(shared) >= 2 or (shared and (first.identical or s.identical or study.identical)):
        a = np.array([by_seed_a[k] for k in shared])
        b = np.array([by_seed_b[k] for k in shared])
        worse = paired_worse(a, b)
    else:
        worse = unpaired_worse(first.ci_hi, s.ci_lo)
    return "worse" if worse else "tie"


def best_table(study: Study, reader: Reader) -> list[dict[str, Any]]:
    """One row per optimizer, best first: its best setting, the ranked metric's median,
    interval and spread over seeds, tie or worse against #1, training loss and other
    final evaluations, steps and time to the target (median over seeds; inf if fewer
    than half reach it), settings tried and the converging LR range."""
    rows = []
    best = study.best()
    first = next(iter(best.values()), None)
    tried = study.tried()
    for rank, (opt, s) in enumerate(best.items(), start=1):
        assert first is not None
        hits = [_to_target(study, r, reader) for r in s.runs]
        reached = sum(math.isfinite(h[0]) for h in hits)
        lr_range = study.lr_range(s.variant)
        lo, hi = sorted((study.shown(s.ci_lo), study.shown(s.ci_hi)))
        rows.append(
            {
                "rank": rank,
                "optimizer": opt,
                "setting": s.label,
                "lr": s.lr,
                "metric": study.metric.key,
                "median": study.shown(s.median),
                "ci_lo": lo,
                "ci_hi": hi,
                **spread(study, s),
                "versus": versus_first(study, first, s),
                "seeds": s.n_seeds,
                "distinct": 1 if s.identical else s.n_seeds,
                "diverged": s.n_diverged,
                "loss": _median(study, s, "loss"),
                "train_loss": _median(study, s, "train_loss"),
                "steps": study.steps,
                "steps_to_target": float(np.median([h[0] for h in hits])),
                "time_to_target": float(np.median([h[1] for h in hits])),
                "reached": reached,
                "tried": tried[opt],
                "lr_lo": lr_range[0] if lr_range else math.nan,
                "lr_hi": lr_range[1] if lr_range else math.nan,
                "lr_decades": math.log10(lr_range[1] / lr_range[0]) if lr_range else math.nan,
                "evals": _median_evals(study, s),
                "grid_edge": grid_edge(study, s),
            }
        )
    return rows


def spread(study: Study, s: SettingStats) -> dict[str, float]:
    """Quartiles and range over seeds as the metric's own values (lowest first)."""
    q = [study.shown(v) for v in (s.q25, s.q75, s.min, s.max)]
    if study.metric.higher_better:
        q = [q[1], q[0], q[3], q[2]]
    return dict(zip(("q25", "q75", "min", "max"), q, strict=True))


def _to_target(study: Study, r: dict[str, Any], reader: Reader) -> tuple[float, float]:
    if r["status"] != "finished":
        return math.inf, math.inf
    values = study.values.setdefault(r["run_id"], {})
    if "steps" not in values:
        values["steps"], values["time"] = to_target(reader, r["run_id"], study.series, study.target)
    return values["steps"], values["time"]


def _median(study: Study, s: SettingStats, key: str) -> float:
    vals = [study.value(r, key) for r in s.runs if r["status"] == "finished"]
    vals = [v for v in vals if math.isfinite(v)]
    return float(np.median(vals)) if vals else math.nan


def _median_evals(study: Study, s: SettingStats) -> dict[str, float]:
    names = sorted({k[5:] for r in s.runs for k in r if k.startswith("eval_")})
    return {k: _median(study, s, k) for k in names}


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


def budget_note(study: Study) -> str | None:
    """A warning when optimizers were tuned with different numbers of settings."""
    tried = study.tried()
    if len(set(tried.values())) <= 1:
        return None
    listing = ", ".join(f"{o} {n}" for o, n in sorted(tried.items(), key=lambda kv: -kv[1]))
    return (
        f"tuning budgets differ (settings tried: {listing}); an optimizer given more "
        "settings has more chances to look best"
    )


def disagreement_note(study: Study, reader: Reader | None = None) -> str | None:
    """When the study ranks held-out loss and training loss would order the optimizers
    differently (or the other way round), say so, with the other order."""
    if study.evaluation not in ("held-out", "unknown") or study.metric.key not in (
        "loss",
        "train_loss",
    ):
        return None
    other_key = "train_loss" if study.metric.key == "loss" else "loss"
    (other,) = studies(study.records, other_key, study.target if study.explicit_target else None)
    mine, theirs = list(study.best()), list(other.best())
    if mine == theirs or len(mine) < 2:
        return None
    return (
        f"by {other.metric.short} the order would be {', '.join(theirs)}: training and "
        f"held-out rankings disagree (this table ranks {study.metric.short})"
    )


def sensitivity_rows(study: Study) -> list[dict[str, Any]]:
    """The ranked metric against learning rate for each optimizer's best variant."""
    rows = []
    for opt, best in study.best().items():
        for s in study.sensitivity(best.variant):
            rows.append(
                {
                    "optimizer": opt,
                    "variant": setting_label(s.runs[0], with_lr=False),
                    "lr": s.lr,
                    "median": study.shown(s.median),
                    **spread(study, s),
                    "seeds": s.n_seeds,
                    "diverged": s.n_diverged,
                    "converges": study.converges(s),
                }
            )
    return rows
