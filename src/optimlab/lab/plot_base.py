"""What every figure of the lab shares: figures without pyplot, plain log labels, one
colour per optimizer, medians over seeds, smoothing, a floor on log axes, legends that
never cover a curve. matplotlib is imported lazily, inside the functions."""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

Curves = Callable[[str], Mapping[str, np.ndarray]]
Trajectories = Callable[[str], "np.ndarray | None"]

FLOOR = 1e-12  # a log axis shows at most this many times below its largest value
SMOOTH_POINTS = 20  # smoothing window: the run's length / this


def new_figure(
    figsize: tuple[float, float], ncols: int = 1, suptitle: bool = False
) -> tuple[Figure, Any]:
    """A figure (made without pyplot) with fixed margins that leave room on the right
    for an outside legend (fixed margins cost one draw, a layout engine two)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    axs = fig.subplots(1, ncols)
    legend_in = 2.3  # inches kept for the legend
    fig.subplots_adjust(
        left=0.95 / figsize[0],
        right=1 - legend_in / figsize[0],
        bottom=0.5 / figsize[1],
        top=1 - (0.6 if suptitle else 0.35) / figsize[1],
        wspace=0.3,
    )
    return fig, axs


def axes(ax: Axes | None, figsize: tuple[float, float]) -> tuple[Figure, Axes]:
    """``ax`` and its figure, or a new figure (``new_figure``) and its axes."""
    from matplotlib.figure import Figure

    if ax is None:
        return new_figure(figsize)
    root: Any = ax.figure
    while not isinstance(root, Figure):  # axes on a SubFigure: its root figure lays out
        root = root.figure
    return root, ax


def plain_log(axis: Any) -> None:
    """Log-axis labels as plain text (mathtext labels cost seconds per report); minor ticks
    are labelled too when the axis spans less than two decades (each of them below a
    factor of 6)."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter, NullLocator

    lo, hi = sorted(axis.get_view_interval())
    narrow = lo > 0 and hi / lo < 100
    shown = (2, 3, 4, 5, 6, 7, 8, 9) if lo > 0 and hi / lo < 6 else (2, 5)

    def minor(v: float, _: Any) -> str:
        mantissa = round(v / 10 ** math.floor(math.log10(v))) if v > 0 else 0
        return f"{v:.3g}" if mantissa in shown else ""

    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.3g}"))
    axis.set_minor_formatter(FuncFormatter(minor) if narrow else NullFormatter())
    if not narrow:  # unlabelled minor ticks over many decades cost time and show nothing
        axis.set_minor_locator(NullLocator())
        axis.set_major_locator(LogLocator(numticks=8))


def colors(names: Iterable[str]) -> dict[str, Any]:
    from matplotlib import colormaps

    cmap = colormaps["tab10"]
    return {n: cmap(i % 10) for i, n in enumerate(sorted(names))}


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """No RuntimeWarning (all-NaN slices of diverged runs are expected)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def band(series: list[np.ndarray]) -> tuple[np.ndarray, ...]:
    """Per index: median, min and max across seeds (non-finite values are missing)."""
    n = max((len(s) for s in series), default=0)
    stack = np.full((len(series), n), np.nan)
    for i, s in enumerate(series):
        s = np.asarray(s, dtype=np.float64)
        stack[i, : len(s)] = np.where(np.isfinite(s), s, np.nan)
    with np.errstate(all="ignore"), quiet():
        return (
            np.nanmedian(stack, axis=0),
            np.nanmin(stack, axis=0),
            np.nanmax(stack, axis=0),
        )


def smooth(y: np.ndarray, window: int) -> np.ndarray:
    """A debiased exponential moving average over ``window`` steps (NaNs stay NaN and do
    not enter the average): ``m_t = a m_(t-1) + (1 - a) y_t``, ``a = 1 - 2 / (window + 1)``,
    shown as ``m_t / (1 - a^n_t)`` with ``n_t`` the finite values seen."""
    a = 1.0 - 2.0 / (max(1, window) + 1.0)
    out = np.full(len(y), np.nan)
    m, weight = 0.0, 0.0
    for i, v in enumerate(np.asarray(y, dtype=np.float64)):
        if np.isfinite(v):
            m, weight = a * m + (1 - a) * v, a * weight + (1 - a)
            out[i] = m / weight
    return out


def log_floor(ax: Axes, values: list[np.ndarray]) -> tuple[bool, float]:
    """Put ``ax``'s y axis on a log scale when every finite value is > 0, with its bottom
    no lower than ``FLOOR`` times the largest value (so one curve falling to 1e-100 does
    not squash the others into the top band). Returns (log scale used, the floor)."""
    finite = np.concatenate([v[np.isfinite(v)] for v in values] or [np.empty(0)])
    if not finite.size or (finite <= 0).any():
        return False, math.nan
    top, low = float(finite.max()), float(finite.min())
    floor = max(low, top * FLOOR)
    ax.set_yscale("log")
    ax.set_ylim(floor / 1.25, top * 1.25)
    plain_log(ax.yaxis)
    return True, floor


def below(values: np.ndarray, floor: float) -> str:
    """`` (min 1.8e-94, below the axis)`` for a legend label when a curve leaves the
    frame at the bottom, else ``""``."""
    finite = values[np.isfinite(values)]
    if math.isnan(floor) or not finite.size or finite.min() >= floor / 1.25:
        return ""
    return f"\n  (down to {finite.min():.2g}, off the axis)"


def legend_outside(ax: Axes, title: str | None = None) -> None:
    """The legend to the right of the axes, where it covers no curve."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(
            loc="upper left",
            bbox_to_anchor=(1.01, 1.0),
            fontsize=7,
            frameon=False,
            title=title,
            title_fontsize=7,
        )
