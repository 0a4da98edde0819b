"""The one loop of the engine: step a group, apply the divergence rule, record everything.

Every kind of problem runs through :func:`run_loop` over a :class:`Backend`, which holds
the K live settings' parameters and optimizer state and knows only four things: the losses
and gradients at the current parameters, how to apply one update, the held-out metrics,
and how to drop rows. The divergence rule, progress, per-step timing, evaluations and
trajectories are decided here, once, for every backend.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from ..record import Trace
from .grouping import Group

LOSS_FLOOR = 1e-2  # divergence threshold = factor * max(|initial loss|, LOSS_FLOOR)


class Backend(Protocol):
    """The K live settings of one group on one problem (rows in the group's order)."""

    def gradients(self) -> tuple[np.ndarray, np.ndarray]:
        """Losses ``(K,)`` at the current parameters and global gradient norms ``(K,)``,
        float64; the gradients are kept for :meth:`update`."""
        ...

    def update(self, lr: np.ndarray) -> np.ndarray:
        """Apply one update with learning rates ``lr`` ``(K,)``; the update norms ``(K,)``."""
        ...

    def evaluate(self) -> Mapping[str, np.ndarray] | None:
        """Held-out metrics ``(K,)`` each at the current parameters (``None``: none)."""
        ...

    def keep(self, rows: np.ndarray) -> None:
        """Keep only ``rows`` (indices into the live rows), dropping every other row."""
        ...

    def points(self) -> np.ndarray | None:
        """The current points ``(K, dim)`` for trajectories (``None``: not recorded)."""
        ...


@dataclass(frozen=True)
class LoopOptions:
    """How a run is stepped and reported (the same for every group of a run)."""

    eval_every: int | None = None
    divergence_factor: float = 1e3
    progress: Callable[[int], None] | None = None  # called with (setting, step) pairs done
    batched: bool = True


def eval_steps(steps: int, eval_every: int | None) -> set[int]:
    """Steps (0 = before any update) at which to evaluate: every ``eval_every`` and the end."""
    marks = set(range(0, steps + 1, eval_every)) if eval_every else set()
    return marks | {steps}


def take(tree: Any, keep: Any, size: int) -> Any:
    """Rows ``keep`` of every array in ``tree`` whose leading axis has length ``size``."""
    if isinstance(tree, tuple) and hasattr(tree, "_fields"):
        return type(tree)(*(take(v, keep, size) for v in tree))
    if isinstance(tree, tuple | list):
        return type(tree)(take(v, keep, size) for v in tree)
    if isinstance(tree, dict):
        return {k: take(v, keep, size) for k, v in tree.items()}
    shape = getattr(tree, "shape", None)
    if shape is not None and len(shape) >= 1 and shape[0] == size:
        return tree[keep]
    return tree


@dataclass
class Recorder:
    """Per-step records of one group, ``(steps, K)`` arrays filled as rows advance.

    Learning rates are not recorded per step: they are the group's table ``lr``. A row's
    record ends at ``steps`` unless it diverged (then at its divergence step, included).
    """

    steps: int
    size: int
    start: np.ndarray | None = None  # (K, dim) first points: record trajectories when given
    loss: np.ndarray = field(init=False)
    grad_norm: np.ndarray = field(init=False)
    update_norm: np.ndarray = field(init=False)
    dt: np.ndarray = field(init=False)
    diverged: list[int | None] = field(init=False)
    evals: list[list[tuple[int, dict[str, float]]]] = field(init=False)
    trajectory: np.ndarray | None = field(init=False)

    def __post_init__(self) -> None:
        shape = (self.steps, self.size)
        self.loss, self.grad_norm, self.update_norm, self.dt = (
            np.full(shape, np.nan) for _ in range(4)
        )
        self.diverged = [None] * self.size
        self.evals = [[] for _ in range(self.size)]
        self.trajectory = None
        if self.start is not None:
            self.trajectory = np.full((self.steps + 1, *self.start.shape), np.nan)
            self.trajectory[0] = self.start

    def step(self, t: int, rows: np.ndarray, loss: Any, gnorm: Any, unorm: Any, dt: float) -> None:
        """Record step ``t`` for ``rows``."""
        idx = slice(None) if len(rows) == self.size else rows
        self.loss[t, idx], self.grad_norm[t, idx], self.update_norm[t, idx] = loss, gnorm, unorm
        self.dt[t, idx] = dt

    def point(self, t: int, rows: np.ndarray, points: np.ndarray | None) -> None:
        """The points after update ``t - 1`` (trajectories only)."""
        if self.trajectory is not None and points is not None:
            self.trajectory[t, slice(None) if len(rows) == self.size else rows] = points

    def diverge(self, t: int, rows: np.ndarray, loss: Any, gnorm: Any) -> None:
        """Rows that tripped the divergence rule at step ``t``: their last record, no update."""
        self.loss[t, rows], self.grad_norm[t, rows], self.dt[t, rows] = loss, gnorm, 0.0
        for r in rows:
            self.diverged[int(r)] = t

    def add_evals(self, t: int, rows: np.ndarray, metrics: Mapping[str, Any] | None) -> None:
        if metrics is None:
            return
        values = {k: np.asarray(v, dtype=np.float64).reshape(-1) for k, v in metrics.items()}
        for i, r in enumerate(rows):
            self.evals[int(r)].append((t, {k: float(v[i]) for k, v in values.items()}))

    def traces(self, group: Group) -> list[Trace]:
        """One trace per setting of ``group``, in its order."""
        out = []
        for j, setting in enumerate(group.settings):
            div = self.diverged[j]
            n = self.steps if div is None else div + 1
            traj = self.trajectory
            out.append(
                Trace(
                    status="finished" if div is None else "diverged",
                    loss=self.loss[:n, j].copy(),
                    lr=group.lr[j, :n].copy(),
                    grad_norm=self.grad_norm[:n, j].copy(),
                    update_norm=self.update_norm[:n, j].copy(),
                    time=np.cumsum(self.dt[:n, j]),
                    evals=self.evals[j],
                    trajectory=None if traj is None else traj[: n + (div is None), j].copy(),
                    diverged_step=div,
                    setting=setting,
                )
            )
        return out


def run_loop(backend: Backend, group: Group, steps: int, options: LoopOptions) -> list[Trace]:
    """Step ``group`` for ``steps`` steps on ``backend``; one trace per setting, in order.

    Each step: losses and gradients of the live rows; rows that trip the divergence rule
    are recorded and dropped (before the update, so they never touch the others); one
    update with the step's learning rates; records, evaluations and progress.
    """
    progress = options.progress
    rec = Recorder(steps, group.size, backend.points())
    rows, lr = np.arange(group.size), group.lr
    marks = eval_steps(steps, options.eval_every)
    if options.eval_every:
        rec.add_evals(0, rows, backend.evaluate())
    thresh: np.ndarray | None = None
    start = time.perf_counter()
    for t in range(steps):
        loss, gnorm = backend.gradients()
        if thresh is None:
            thresh = options.divergence_factor * np.maximum(np.abs(loss), LOSS_FLOOR)
        ok = np.isfinite(loss) & (loss <= thresh) & np.isfinite(gnorm)
        if not ok.all():
            rec.diverge(t, rows[~ok], loss[~ok], gnorm[~ok])
            if progress:
                progress(int((~ok).sum()) * (steps - t))
            keep = np.flatnonzero(ok)
            backend.keep(keep)
            rows, lr, thresh, loss, gnorm = (a[keep] for a in (rows, lr, thresh, loss, gnorm))
            if len(rows) == 0:
                break
        unorm = backend.update(lr[:, t])
        rec.step(t, rows, loss, gnorm, unorm, (time.perf_counter() - start) / len(rows))
        rec.point(t + 1, rows, backend.points())
        if t + 1 in marks:
            rec.add_evals(t + 1, rows, backend.evaluate())
        if progress:
            progress(len(rows))
        start = time.perf_counter()
    return rec.traces(group)
