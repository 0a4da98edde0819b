"""Figures from the lab's tidy records: loss curves, trajectories, LR sensitivity, schedules.

Every function takes a :class:`optimlab.lab.analysis.Study` (and a ``run_id -> curve``
reader where per-step data is needed) and returns a matplotlib ``Figure``, or draws on the
``ax`` it is given. matplotlib is imported here only, lazily. Figures are made as
``matplotlib.figure.Figure`` objects, never through ``pyplot``: writing a PNG needs no
backend, so the backend a user chose (a notebook's inline one) is never switched and no
figure is left open in pyplot's registry. Nothing here computes results.
"""

from __future__ import annotations

import contextlib
import io
import math
import warnings
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from .analysis import Study

Curves = Callable[[str], Mapping[str, np.ndarray]]
Trajectories = Callable[[str], "np.ndarray | None"]


def _axes(ax: Axes | None, figsize: tuple[float, float]) -> tuple[Figure, Axes]:
    """``ax`` and its figure, or a new figure (made without pyplot) and its axes."""
    from matplotlib.figure import Figure

    if ax is None:
        fig = Figure(figsize=figsize)
        return fig, fig.subplots()
    root: Any = ax.figure
    while not isinstance(root, Figure):  # axes on a SubFigure: its root figure lays out
        root = root.figure
    return root, ax


def _plain_log(axis: Any) -> None:
    """Log-axis labels as plain text (mathtext labels cost seconds per report); minor ticks
    are labelled too when the axis spans less than two decades."""
    from matplotlib.ticker import FuncFormatter, NullFormatter

    def minor(v: float, _: Any) -> str:
        mantissa = round(v / 10 ** math.floor(math.log10(v))) if v > 0 else 0
        return f"{v:.3g}" if mantissa in (2, 5) else ""

    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.3g}"))
    lo, hi = sorted(axis.get_view_interval())
    narrow = lo > 0 and hi / lo < 100
    axis.set_minor_formatter(FuncFormatter(minor) if narrow else NullFormatter())


def _colors(names: list[str]) -> dict[str, Any]:
    from matplotlib import colormaps

    cmap = colormaps["tab10"]
    return {n: cmap(i % 10) for i, n in enumerate(sorted(names))}


def _band(runs: list[dict[str, Any]], curves: Curves, key: str = "loss") -> tuple[np.ndarray, ...]:
    """Per step: median, lower and upper across seeds (diverged values count as missing)."""
    series = [np.asarray(curves(r["run_id"])[key], dtype=np.float64) for r in runs]
    n = max(len(s) for s in series)
    stack = np.full((len(series), n), np.nan)
    for i, s in enumerate(series):
        stack[i, : len(s)] = np.where(np.isfinite(s), s, np.nan)
    with np.errstate(all="ignore"), _quiet():
        med = np.nanmedian(stack, axis=0)
        lo = np.nanmin(stack, axis=0)
        hi = np.nanmax(stack, axis=0)
    return np.arange(n), med, lo, hi


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """No RuntimeWarning (all-NaN slices of diverged runs are expected)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def loss_curves(study: Study, curves: Curves, ax: Axes | None = None) -> Figure:
    """Loss per step of each optimizer's best setting: median over seeds, min-max band."""
    fig, ax = _axes(ax, (6.4, 4.0))
    best = study.best()
    colors = _colors(list(best))
    positive, any_finite = True, False  # log scale only with some data, all of it > 0
    for opt, s in best.items():
        steps, med, lo, hi = _band(s.runs, curves)
        positive = positive and bool(np.all(lo[np.isfinite(lo)] > 0))
        any_finite = any_finite or bool(np.isfinite(lo).any())
        ax.plot(steps, med, color=colors[opt], lw=1.6, label=s.label)
        if s.n_seeds > 1:
            ax.fill_between(steps, lo, hi, color=colors[opt], alpha=0.12, lw=0)
    if math.isfinite(study.target):
        ax.axhline(study.target, color="0.4", ls=":", lw=1, label="target")
    positive = positive and any_finite
    if positive:
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(
        f"{study.label}: best setting per optimizer "
        f"({study.budget.split(', ')[1]}, band = min-max)",
        fontsize=9,
    )
    ax.legend(fontsize=7, loc="best")
    ax.grid(alpha=0.3)
    if positive:
        _plain_log(ax.yaxis)
    fig.tight_layout()
    return fig


def trajectories(
    study: Study, trajectory: Trajectories, problem: Any | None = None, ax: Axes | None = None
) -> Figure | None:
    """Paths of each optimizer's best setting (first seed) over the problem's contours.

    Returns None when the study has no stored 2-D trajectories."""
    best = study.best()
    paths: dict[str, np.ndarray] = {}
    for opt, s in best.items():
        path = trajectory(s.runs[0]["run_id"])
        if path is not None and len(path):
            paths[opt] = path
    if not paths:
        return None
    fig, ax = _axes(ax, (5.6, 4.6))
    if problem is not None and hasattr(problem, "grid"):
        X, Y, Z = problem.grid(200)
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
    colors = _colors(list(best))
    for opt, path in paths.items():
        path = path[np.isfinite(path).all(axis=1)]
        ax.plot(path[:, 0], path[:, 1], "-", color=colors[opt], lw=1.3, label=best[opt].label)
        ax.plot(path[:1, 0], path[:1, 1], "o", color="k", ms=4)
    ax.set_title(f"{study.label}: trajectories of the best settings", fontsize=9)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    return fig


def lr_sensitivity(study: Study, ax: Axes | None = None) -> Figure:
    """Median final loss against learning rate (IQR bars); diverged settings as crosses."""
    fig, ax = _axes(ax, (6.4, 4.0))
    best = study.best()
    colors = _colors(list(best))
    finite = [s.max for s in study.settings if math.isfinite(s.max)]
    ceiling = max(finite) * 3 if finite else 1.0
    positive = all(s.min > 0 for s in study.settings if math.isfinite(s.min))
    for i, (opt, b) in enumerate(best.items()):
        curve = study.sensitivity(b.variant)
        lrs = np.array([s.lr for s in curve])
        med = np.array([s.median for s in curve])
        ok = np.isfinite(med)
        lo = np.array([s.q25 for s in curve])
        hi = np.array([s.q75 for s in curve])
        ax.plot(lrs[ok], med[ok], "o-", color=colors[opt], ms=4, lw=1.4, label=opt)
        band_ok = ok & np.isfinite(lo) & np.isfinite(hi)
        ax.fill_between(lrs[band_ok], lo[band_ok], hi[band_ok], color=colors[opt], alpha=0.15)
        if (~ok).any():
            # staggered so crosses of several optimizers at one LR stay visible
            y = np.full((~ok).sum(), ceiling * (1.4**i if positive else 1.0))
            ax.plot(lrs[~ok], y, "x", color=colors[opt], ms=8, mew=2)
    if math.isfinite(study.target):
        ax.axhline(study.target, color="0.4", ls=":", lw=1, label="target (converges below)")
    ax.set_xscale("log")
    if positive:
        ax.set_yscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel(f"final loss after {study.steps} steps (median, IQR)")
    ax.set_title(f"{study.label}: LR sensitivity (x = diverged on most seeds)", fontsize=9)
    ax.legend(fontsize=7, loc="best")
    ax.grid(alpha=0.3, which="both")
    _plain_log(ax.xaxis)
    if positive:
        _plain_log(ax.yaxis)
    fig.tight_layout()
    return fig


def lr_schedules(study: Study, curves: Curves, ax: Axes | None = None) -> Figure | None:
    """The learning rate each best setting used per step (None if none is scheduled)."""
    best = {o: s for o, s in study.best().items() if s.runs[0]["schedule"]}
    if not best:
        return None
    fig, ax = _axes(ax, (6.4, 3.2))
    colors = _colors(list(best))
    for opt, s in best.items():
        lr = np.asarray(curves(s.runs[0]["run_id"])["lr"], dtype=np.float64)
        ax.plot(np.arange(len(lr)), lr, color=colors[opt], label=s.label)
    ax.set_xlabel("step")
    ax.set_ylabel("learning rate")
    ax.set_title(f"{study.label}: learning-rate schedules of the best settings", fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def to_png(fig: Figure, dpi: int = 110) -> bytes:
    """The figure as PNG bytes (drawn by Agg for this file only; no backend is selected)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()
