"""Verdicts beyond one table: across problems (performance profiles) and per swept axis.

**Across problems.** For optimizer ``o`` on problem ``p``, the performance ratio is
``r(p, o) = steps(p, o) / min_o' steps(p, o')`` (steps to the problem's target of each
optimizer's best setting, median over seeds; +inf when it never gets there; steps below 1
count as 1). Its *performance profile* is ``rho_o(tau) = |{p : r(p, o) <= tau}| / |P|``,
the fraction of problems it solves within ``tau`` times the fastest, and its score the
normalised area under the profile over ``1 <= tau <= TAU_MAX``,
``(1 / (TAU_MAX - 1)) * mean_p max(0, TAU_MAX - r(p, o))``: 1 when it is fastest
everywhere, 0 when it never gets within ``TAU_MAX`` of the fastest, as AlgoPerf scores.

**Per swept axis.** For every hyperparameter other than lr that takes several values for
an optimizer (``beta2``, ``weight_decay``, ...), and for the schedule: the best setting
(best median of the ranked metric over seeds, its lr and other values free) at each
value of that axis, per optimizer.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from .analysis import SettingStats, Study, schedule_label, setting_label

TAU_MAX = 4.0


def ratios(tables: Sequence[tuple[Study, list[dict[str, Any]]]]) -> dict[str, dict[str, float]]:
    """``{optimizer: {problem label: performance ratio}}`` (+inf: never reached)."""
    out: dict[str, dict[str, float]] = {}
    opts = sorted({r["optimizer"] for _, rows in tables for r in rows})
    for study, rows in tables:
        steps = {r["optimizer"]: max(1.0, r["steps_to_target"]) for r in rows}
        fastest = min(steps.values(), default=math.inf)
        for o in opts:
            s = steps.get(o, math.inf)
            out.setdefault(o, {})[_key(study)] = (
                s / fastest if math.isfinite(s) and math.isfinite(fastest) else math.inf
            )
    return out


def _key(study: Study) -> str:
    return f"{study.label} ({study.steps} steps)"


def profile(ratio: dict[str, float], taus: np.ndarray) -> np.ndarray:
    """``rho(tau)``: the fraction of problems solved within ``tau`` times the fastest."""
    r = np.array(list(ratio.values()), dtype=np.float64)
    return (r[None, :] <= np.asarray(taus, dtype=np.float64)[:, None]).mean(axis=1)


def score(ratio: dict[str, float]) -> float:
    """The normalised area under the profile for ``1 <= tau <= TAU_MAX`` (exact)."""
    r = np.array(list(ratio.values()), dtype=np.float64)
    return float(np.mean(np.clip(TAU_MAX - r, 0.0, None)) / (TAU_MAX - 1.0))


def summary_rows(tables: Sequence[tuple[Study, list[dict[str, Any]]]]) -> list[dict[str, Any]]:
    """One row per optimizer across problems, best score first: its rank and performance
    ratio on each problem, how many problems it solved (reached the target), its score."""
    rat = ratios(tables)
    rows = []
    for opt, per_problem in rat.items():
        ranks = {}
        for study, table in tables:
            mine = next((r for r in table if r["optimizer"] == opt), None)
            ranks[_key(study)] = mine["rank"] if mine else None
        rows.append(
            {
                "optimizer": opt,
                "ranks": ranks,
                "ratios": per_problem,
                "solved": sum(math.isfinite(v) for v in per_problem.values()),
                "problems": len(per_problem),
                "score": score(per_problem),
                "mean_rank": float(np.mean([v if v else len(rat) for v in ranks.values()])),
            }
        )
    return sorted(rows, key=lambda r: (-r["score"], r["mean_rank"], r["optimizer"]))


def _axis_values(s: SettingStats) -> dict[str, Any]:
    r = s.runs[0]
    values: dict[str, Any] = {k: v for k, v in r["hyperparams"].items() if k != "lr"}
    values["schedule"] = schedule_label(r)
    return values


def swept_axes(study: Study) -> dict[str, list[dict[str, Any]]]:
    """``{axis: rows}``: per optimizer and value of each axis it sweeps, the best
    setting at that value. Axes with one value for every optimizer are left out."""
    by_opt: dict[str, list[SettingStats]] = {}
    for s in study.settings:
        by_opt.setdefault(s.optimizer, []).append(s)
    out: dict[str, list[dict[str, Any]]] = {}
    for opt, settings in sorted(by_opt.items()):
        values = [_axis_values(s) for s in settings]
        for axis in sorted({k for v in values for k in v}):
            seen = {json.dumps(v.get(axis), sort_keys=True) for v in values}
            if len(seen) < 2:
                continue
            for raw in sorted(seen, key=_order):
                value = json.loads(raw)
                group = [s for s, v in zip(settings, values, strict=True) if v.get(axis) == value]
                best = min(group, key=lambda s: (s.median, s.loss_median, s.max, s.lr))
                lo, hi = sorted((study.shown(best.ci_lo), study.shown(best.ci_hi)))
                out.setdefault(axis, []).append(
                    {
                        "axis": axis,
                        "optimizer": opt,
                        "value": value,
                        "value_text": _text(value),
                        "setting": setting_label(best.runs[0], without=axis),
                        "lr": best.lr,
                        "median": study.shown(best.median),
                        "ci_lo": lo,
                        "ci_hi": hi,
                        "diverged": best.n_diverged,
                        "seeds": best.n_seeds,
                        "tried": len(group),
                    }
                )
    return out


def _order(raw: str) -> tuple[int, float, str]:
    value = json.loads(raw)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return (1 if value != "constant" else 0, 0.0, str(value))
    return (0, float(value), "")


def _text(value: Any) -> str:
    """An axis value for tables: ``0.999``; a schedule with options may wrap before them,
    ``warmup_cosine (warmup_steps=30)``."""
    return f"{value:g}" if isinstance(value, float) else str(value).replace("(", " (", 1)
