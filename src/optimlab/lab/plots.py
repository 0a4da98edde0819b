"""Figures from the lab's tidy records: loss, held-out and gradient-norm curves,
trajectories, LR sensitivity, schedules; across problems and sweep axes in
``plots_summary`` (re-exported here).

Every function takes a :class:`optimlab.lab.analysis.Study` (and a reader of per-step
curves and evaluations, ``Results.curves()``, where per-step data is needed) and returns a
matplotlib ``Figure``, or ``None`` when there is nothing to draw (every run diverged
before a finite value), or draws on the ``ax`` it is given. Curves are each optimizer's
best setting: the median over seeds with a min-max band. Mini-batch losses are shown raw
and faint with their moving average on top; log axes stop ``FLOOR`` below the largest
value, and a curve that falls below says how low it goes in the legend; legends sit
outside the axes. Figures are ``matplotlib.figure.Figure`` objects made without
``pyplot``: writing a PNG needs no backend, so the backend a user chose (a notebook's
inline one) is never switched and no figure is left open in pyplot's registry. Nothing
here computes results.
"""

from __future__ import annotations

import io
import math
from typing import TYPE_CHECKING, Any

import numpy as np

from .plot_base import (
    FLOOR,
    SMOOTH_POINTS,
    Curves,
    Trajectories,
    axes,
    band,
    below,
    colors,
    legend_outside,
    log_floor,
    new_figure,
    plain_log,
    smooth,
)
from .plots_summary import axis_figure, performance_profile

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from .analysis import Study

__all__ = [
    "FLOOR",
    "axis_figure",
    "heldout_curves",
    "loss_curves",
    "lr_schedules",
    "lr_sensitivity",
    "norm_curves",
    "performance_profile",
    "to_png",
    "trajectories",
]


def _mini_batch(study: Study) -> bool:
    """Per-step losses are mini-batch losses (noisy): smooth them."""
    return study.evaluation != "objective"


def _curve_lines(
    ax: Axes, study: Study, curves: Curves, key: str, *, target: bool
) -> list[np.ndarray]:
    """Each best setting's ``key`` per step (median, min-max band; raw faint and smoothed
    when mini-batch); returns the values drawn (for the axis floor)."""
    best = study.best()
    col = colors(best)
    drawn = []
    window = max(1, study.steps // SMOOTH_POINTS)
    for opt, s in best.items():
        med, lo, hi = band([np.asarray(curves(r["run_id"])[key]) for r in s.runs])
        if not np.isfinite(med).any():
            continue
        x = np.arange(len(med))
        if _mini_batch(study):
            ax.plot(x, med, color=col[opt], lw=0.6, alpha=0.25)
            ax.plot(x, smooth(med, window), color=col[opt], lw=1.6, label=s.label)
        else:
            ax.plot(x, med, color=col[opt], lw=1.6, label=s.label)
            if s.n_seeds > 1:
                ax.fill_between(x, lo, hi, color=col[opt], alpha=0.12, lw=0)
        drawn += [med, lo, hi]
    if target and math.isfinite(study.target):
        ax.axhline(study.target, color="0.4", ls=":", lw=1, label="target")
    return drawn


def _relabel_below(ax: Axes, study: Study, values: dict[str, np.ndarray], floor: float) -> None:
    labels = {s.label: opt for opt, s in study.best().items()}
    for line in ax.get_lines():
        opt = labels.get(str(line.get_label()))
        if opt is not None and opt in values:
            line.set_label(str(line.get_label()) + below(values[opt], floor))


def loss_curves(study: Study, curves: Curves, ax: Axes | None = None) -> Figure | None:
    """Training loss per step of each optimizer's best setting: the loss at the point for
    test functions (with the target), the mini-batch loss (raw faint, moving average
    solid) for models. ``None`` when no run has a finite loss."""
    if not any(np.isfinite(curves(r["run_id"])["loss"]).any() for r in study.records):
        return None
    fig, ax = axes(ax, (8.0, 3.6))
    drawn = _curve_lines(ax, study, curves, "loss", target=not _mini_batch(study))
    log, floor = log_floor(ax, drawn)
    if log:
        mins = {
            opt: band([np.asarray(curves(r["run_id"])["loss"]) for r in s.runs])[0]
            for opt, s in study.best().items()
        }
        _relabel_below(ax, study, mins, floor)
    what = "mini-batch loss (faint: raw; line: moving average)" if _mini_batch(study) else "loss"
    ax.set_xlabel("step")
    ax.set_ylabel("training loss" if _mini_batch(study) else "loss")
    ax.set_title(f"{study.label}: {what}, best setting per optimizer", fontsize=9)
    ax.grid(alpha=0.3)
    legend_outside(ax, "median over seeds")
    return fig


def heldout_curves(study: Study, reader: Any, ax: Axes | None = None) -> Figure | None:
    """The evaluation loss (held-out, or on the training data) at each evaluation of each
    best setting, median over seeds with a min-max band, and the target. ``None`` for
    test functions (their loss curve is exact) or with fewer than 3 evaluations."""
    if study.series != "evals":
        return None
    best = study.best()
    lines: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = {}
    for opt, s in best.items():
        per_seed = [
            [(k, m.get("loss", math.nan)) for k, m in reader.evals(r["run_id"])] for r in s.runs
        ]
        at = sorted({k for seed in per_seed for k, _ in seed})
        if len(at) < 3:
            continue
        table = [np.array([dict(seed).get(k, math.nan) for k in at]) for seed in per_seed]
        med, lo, hi = band(table)
        if np.isfinite(med).any():
            lines[opt] = (np.array(at), med, lo, hi)
    if not lines:
        return None
    fig, ax = axes(ax, (8.0, 3.6))
    col = colors(best)
    for opt, (x, med, lo, hi) in lines.items():
        ax.plot(x, med, "o-", color=col[opt], ms=2.5, lw=1.5, label=best[opt].label)
        if best[opt].n_seeds > 1:
            ax.fill_between(x, lo, hi, color=col[opt], alpha=0.12, lw=0)
    if math.isfinite(study.target):
        ax.axhline(study.target, color="0.4", ls=":", lw=1, label="target")
    log_floor(ax, [v for _, *rest in lines.values() for v in rest])
    ax.set_xlabel("step (updates applied)")
    ax.set_ylabel(study.loss_metric.short)
    ax.set_title(f"{study.label}: {study.loss_metric.short} at each evaluation", fontsize=9)
    ax.grid(alpha=0.3)
    legend_outside(ax, "median over seeds")
    return fig


def norm_curves(study: Study, curves: Curves) -> Figure | None:
    """Gradient norm and update norm per step of each best setting (median over seeds,
    moving average for mini-batches), side by side on log axes."""
    fig, (left, right) = new_figure((9.6, 3.4), ncols=2, suptitle=True)
    drew = False
    for ax, key, name in (
        (left, "grad_norm", "gradient norm"),
        (right, "update_norm", "update norm"),
    ):
        drawn = _curve_lines(ax, study, curves, key, target=False)
        drew = drew or any(np.isfinite(v).any() for v in drawn)
        log_floor(ax, drawn)
        ax.set_xlabel("step")
        ax.set_title(f"{name} |{'g' if key == 'grad_norm' else 'delta'}|", fontsize=9)
        ax.grid(alpha=0.3)
    legend_outside(right, "median over seeds")
    fig.suptitle(f"{study.label}: global L2 norms, best setting per optimizer", fontsize=9)
    return fig if drew else None


def trajectories(
    study: Study, trajectory: Trajectories, problem: Any | None = None, ax: Axes | None = None
) -> Figure | None:
    """Paths of each optimizer's best setting (first seed) over the problem's contours.

    Returns None when the study has no stored 2-D trajectories."""
    best = study.best()
    paths: dict[str, np.ndarray] = {}
    for opt, s in best.items():
        path = trajectory(s.runs[0]["run_id"])
        if path is not None and np.isfinite(path).all(axis=1).any():
            paths[opt] = path
    if not paths:
        return None
    fig, ax = axes(ax, (6.4, 4.6))
    if problem is not None and hasattr(problem, "grid"):
        X, Y, Z = problem.grid(120)
        Z = np.asarray(Z, dtype=np.float64)
        zmin = float(getattr(problem, "min_value", np.nanmin(Z)))
        levels = np.unique(zmin + np.logspace(-2, math.log10(max(np.nanmax(Z) - zmin, 1e-2)), 25))
        from matplotlib.colors import LogNorm

        ax.contour(
            X,
            Y,
            Z - zmin + 1e-2,
            levels=levels - zmin + 1e-2,
            cmap="viridis",
            norm=LogNorm(),
            linewidths=0.7,
            alpha=0.55,
        )
        minima = np.asarray(getattr(problem, "minima", np.empty((0, 2))), dtype=np.float64)
        if minima.size:
            ax.plot(
                minima[:, 0],
                minima[:, 1],
                "*",
                color="gold",
                ms=12,
                mec="k",
                label="minimum",
                zorder=5,
            )
        (x0, x1), (y0, y1) = problem.box[0], problem.box[1]
        ax.set_xlim(x0, x1)
        ax.set_ylim(y0, y1)
    col = colors(best)
    for opt, path in paths.items():
        path = path[np.isfinite(path).all(axis=1)]
        ax.plot(path[:, 0], path[:, 1], "-", color=col[opt], lw=1.3, label=best[opt].label)
        ax.plot(path[:1, 0], path[:1, 1], "o", color="k", ms=4)
    ax.set_title(f"{study.label}: trajectories of the best settings (first seed)", fontsize=9)
    legend_outside(ax)
    return fig


def lr_sensitivity(study: Study, ax: Axes | None = None) -> Figure | None:
    """The ranked metric's median over seeds against learning rate (IQR band) for each
    optimizer's best variant; crosses above the curves where most seeds diverged.
    ``None`` when the study has no settings."""
    best = study.best()
    if not best:
        return None
    fig, ax = axes(ax, (8.0, 3.6))
    col = colors(best)
    shown = np.vectorize(study.shown, otypes=[float])
    drawn: list[np.ndarray] = []
    crosses: list[tuple[int, str, np.ndarray]] = []
    for i, (opt, b) in enumerate(best.items()):
        curve = study.sensitivity(b.variant)
        lrs = np.array([s.lr for s in curve])
        med = shown(np.array([s.median for s in curve]))
        q = [shown(np.array([getattr(s, k) for s in curve])) for k in ("q25", "q75")]
        ok = np.isfinite(med)
        ax.plot(lrs[ok], med[ok], "o-", color=col[opt], ms=4, lw=1.4, label=opt)
        band_ok = ok & np.isfinite(q[0]) & np.isfinite(q[1])
        ax.fill_between(lrs[band_ok], q[0][band_ok], q[1][band_ok], color=col[opt], alpha=0.15)
        drawn += [med[ok], q[0][band_ok], q[1][band_ok]]
        if (~ok).any():
            crosses.append((i, opt, lrs[~ok]))
    if study.metric.key == "loss" and math.isfinite(study.target):
        ax.axhline(study.target, color="0.4", ls=":", lw=1, label="target (converges below)")
    log, _ = log_floor(ax, drawn) if not study.metric.higher_better else (False, math.nan)
    lo, hi = ax.get_ylim()
    for i, opt, lrs in crosses:  # a row per optimizer above the curves, inside the axes
        y = hi * 2.0 ** (i + 1) if log else hi + (i + 1) * 0.07 * (hi - lo)
        ax.plot(lrs, np.full(len(lrs), y), "x", color=col[opt], ms=7, mew=2)
    if crosses:
        n = len(crosses) + 1
        ax.set_ylim(lo, hi * 2.0**n if log else hi + n * 0.07 * (hi - lo))
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel(f"{study.metric.short} (median, IQR)")
    ax.set_title(
        f"{study.label}: {study.metric.short} vs learning rate (x: most seeds diverged)",
        fontsize=9,
    )
    ax.grid(alpha=0.3, which="both")
    plain_log(ax.xaxis)
    legend_outside(ax)
    return fig


def lr_schedules(study: Study, curves: Curves, ax: Axes | None = None) -> Figure | None:
    """The learning rate each best setting used per step (None if none is scheduled)."""
    best = {o: s for o, s in study.best().items() if s.runs[0]["schedule"]}
    if not best:
        return None
    fig, ax = axes(ax, (8.0, 3.0))
    col = colors(best)
    for opt, s in best.items():
        lr = np.asarray(curves(s.runs[0]["run_id"])["lr"], dtype=np.float64)
        ax.plot(np.arange(len(lr)), lr, color=col[opt], label=s.label)
    ax.set_xlabel("step")
    ax.set_ylabel("learning rate")
    ax.set_title(f"{study.label}: learning-rate schedules of the best settings", fontsize=9)
    ax.grid(alpha=0.3)
    legend_outside(ax)
    return fig


def to_png(fig: Figure, dpi: int = 100) -> bytes:
    """The figure as PNG bytes (drawn by Agg for this file only; no backend is selected)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()
