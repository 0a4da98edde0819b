"""Figures across problems (performance profiles) and per swept axis (the best result at
each value of a hyperparameter or schedule). See ``optimlab.lab.summary`` for the
definitions; ``optimlab.lab.plots`` re-exports both functions."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from . import summary
from .plot_base import axes, colors, legend_outside, log_floor

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from .analysis import Study


def performance_profile(
    tables: Sequence[tuple[Study, list[dict[str, Any]]]], ax: Axes | None = None
) -> Figure | None:
    """The fraction of problems each optimizer solves within ``tau`` times the fastest
    optimizer's steps to target, for ``1 <= tau <= TAU_MAX`` (a step curve per optimizer;
    its score, the normalised area under it, in the legend). ``None`` for fewer than two
    problems."""
    if len(tables) < 2:
        return None
    ratios = summary.ratios(tables)
    fig, ax = axes(ax, (8.0, 3.6))
    col = colors(ratios)
    taus = np.linspace(1.0, summary.TAU_MAX, 301)
    rows = summary.summary_rows(tables)
    for i, row in enumerate(rows):
        opt = row["optimizer"]
        rho = summary.profile(ratios[opt], taus)
        # a small vertical offset per optimizer keeps equal curves apart
        ax.step(
            taus,
            rho + 0.006 * (i - len(rows) / 2),
            where="post",
            color=col[opt],
            lw=1.6,
            label=f"{opt} (score {row['score']:.2f})",
        )
    ax.set_xlim(1.0, summary.TAU_MAX)
    ax.set_ylim(-0.05, 1.05)
    ax.set_xlabel("tau: steps to target within this factor of the fastest optimizer's")
    ax.set_ylabel("fraction of problems solved")
    ax.set_title(f"Performance profile over {len(tables)} problems", fontsize=9)
    ax.grid(alpha=0.3)
    legend_outside(ax)
    return fig


def axis_figure(
    study: Study, axis: str, rows: Sequence[dict[str, Any]], ax: Axes | None = None
) -> Figure | None:
    """The best result (median over seeds, 95% interval as error bars) at each value of
    one swept ``axis``, one line per optimizer; ``None`` without rows."""
    if not rows:
        return None
    fig, ax = axes(ax, (8.0, 3.4))
    values = list(dict.fromkeys(r["value_text"] for r in rows))
    opts = list(dict.fromkeys(r["optimizer"] for r in rows))
    col = colors(opts)
    drawn = []
    for i, opt in enumerate(opts):
        mine = [r for r in rows if r["optimizer"] == opt]
        x = np.array([values.index(r["value_text"]) for r in mine]) + 0.06 * (i - len(opts) / 2)
        y = np.array([r["median"] for r in mine], dtype=np.float64)
        lo = np.array([r["ci_lo"] for r in mine], dtype=np.float64)
        hi = np.array([r["ci_hi"] for r in mine], dtype=np.float64)
        ok = np.isfinite(y)
        err = np.vstack([np.where(ok, y - lo, 0), np.where(ok & np.isfinite(hi), hi - y, 0)])
        ax.errorbar(
            x[ok],
            y[ok],
            yerr=err[:, ok],
            fmt="o-",
            color=col[opt],
            ms=4,
            lw=1.4,
            capsize=3,
            label=opt,
        )
        drawn += [y[ok], lo[ok], hi[ok][np.isfinite(hi[ok])]]
        if (~ok).any():
            ax.plot(x[~ok], np.full((~ok).sum(), np.nan), "x", color=col[opt])
    if not any(len(d) for d in drawn):
        return None
    if not study.metric.higher_better:
        log_floor(ax, drawn)
    ax.set_xticks(range(len(values)), values, fontsize=8)
    ax.set_xlim(-0.5, len(values) - 0.5)
    ax.set_xlabel(axis)
    ax.set_ylabel(f"best {study.metric.short} (median, 95% CI)")
    ax.set_title(f"{study.label}: the best setting at each {axis}", fontsize=9)
    ax.grid(alpha=0.3, axis="y")
    legend_outside(ax)
    if math.isnan(ax.get_ylim()[0]):
        return None
    return fig
