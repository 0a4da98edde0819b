"""Drawing schedules. matplotlib is imported here only, and never through ``pyplot``: a new
figure is a ``matplotlib.figure.Figure`` of its own, so the backend a user or a notebook
chose is never switched, and no window opens."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..core import checks
from .base import Schedule
from .table import get


def _resolve(item: str | Schedule, steps: int, lr: float) -> tuple[str, Schedule]:
    if isinstance(item, Schedule):
        return type(item).__name__, item
    if isinstance(item, str):
        return item, get(item, total_steps=steps, lr=lr)
    raise ValueError(f"expected a schedule or a schedule name, got {item!r}")


def plot(
    schedules: str | Schedule | Sequence[str | Schedule],
    steps: int,
    path: str | Path | None = None,
    ax: Any = None,
    *,
    lr: float = 1.0,
    logy: bool = False,
    labels: Sequence[str] | None = None,
) -> Any:
    """Draw schedules over steps ``0 .. steps - 1`` on one axes; names are built with
    ``get(name, total_steps=steps, lr=lr)``. Saves a PNG when ``path`` is given and returns
    the matplotlib ``Figure`` (shown by a notebook when it is a cell's value; a figure of
    its own, not one of ``pyplot``'s). ``labels`` name the curves (default: the names or
    class names).
    """
    steps = checks.integer("steps", steps, 1)
    items = (
        [schedules]
        if isinstance(schedules, str | Schedule)
        else checks.sequence("schedules", schedules, "a schedule, a name or a sequence of them")
    )
    if not items:
        raise ValueError("nothing to plot: give at least one schedule")
    curves = [_resolve(item, steps, lr) for item in items]  # validate before drawing
    if labels is not None:
        if len(labels) != len(curves):
            raise ValueError(
                f"labels must name each of the {len(curves)} schedules, got {len(labels)}"
            )
        curves = [(str(label), s) for label, (_, s) in zip(labels, curves, strict=True)]
    for label, s in curves:
        if np.ndim(s(0)) != 0:
            raise ValueError(f"{label} gives several values per step (array arguments)")
    t = np.arange(steps)
    values = [(label, np.asarray(s(t))) for label, s in curves]

    if ax is None:
        from matplotlib.figure import Figure

        fig = Figure(figsize=(8, 4.5), layout="constrained")
        ax = fig.add_subplot()
    else:
        fig = ax.figure
    for label, v in values:
        ax.plot(t, v, label=label, linewidth=1.6)
    ax.set_xlabel("step")
    ax.set_ylabel("learning rate" if lr != 1.0 else "learning rate (multiple of the base rate)")
    if logy:
        ax.set_yscale("log")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small", ncol=2 if len(values) > 6 else 1)
    if path is not None:
        fig.savefig(path, dpi=110)
    return fig
