"""Batched runs on analytic test functions: K points ``(K, dim)`` stepped together.

The function gives losses ``(K,)`` and gradients ``(K, dim)`` in one call; the rule gets
its hyperparameters as ``(K, 1)`` arrays and the learning rate of step ``t`` as the
column ``lr[:, t:t+1]``. A row that diverges is removed from the arrays (not masked), so
it cannot touch the others' numbers. Runs in NumPy (the default) or in torch.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from ._plan import LOSS_FLOOR, Group, Recorder, eval_steps, take


class _NumpyOps:
    @staticmethod
    def array(a: np.ndarray) -> Any:
        return np.array(a, dtype=np.float64)

    @staticmethod
    def numpy(a: Any) -> np.ndarray:
        return a

    @staticmethod
    def norm_rows(a: Any) -> Any:
        return np.sqrt(np.add.reduce(a * a, axis=-1))  # skips ndarray.sum's wrapper

    @staticmethod
    def ok(loss: Any, gnorm: Any, thresh: Any) -> np.ndarray:
        # NaN fails every comparison: finite loss <= thresh and a finite gradient norm
        # (a loss of -inf comes with a non-finite gradient)
        return (loss <= thresh) & (gnorm < np.inf)


class _TorchOps:
    def __init__(self) -> None:
        import torch

        self.torch = torch

    def array(self, a: np.ndarray) -> Any:
        return self.torch.tensor(a, dtype=self.torch.float64)

    @staticmethod
    def numpy(a: Any) -> np.ndarray:
        return a.numpy()

    @staticmethod
    def norm_rows(a: Any) -> Any:
        return (a * a).sum(-1).sqrt()

    @staticmethod
    def ok(loss: Any, gnorm: Any, thresh: Any) -> np.ndarray:
        return ((loss <= thresh) & (gnorm < np.inf)).numpy()


def run_group(
    problem: Any,
    group: Group,
    steps: int,
    *,
    eval_every: int | None,
    divergence_factor: float,
    progress: Callable[[int], None] | None,
    backend: str = "numpy",
) -> Recorder:
    """Run one group on a test function; returns its records."""
    with np.errstate(all="ignore"):  # overflow on the way to divergence is expected
        return _run(problem, group, steps, eval_every, divergence_factor, progress, backend)


def _run(
    problem: Any,
    group: Group,
    steps: int,
    eval_every: int | None,
    divergence_factor: float,
    progress: Callable[[int], None] | None,
    backend: str,
) -> Recorder:
    ops: Any = _TorchOps() if backend == "torch" else _NumpyOps()
    rule = group.rule
    extra = {} if rule.elementwise else {"batch_ndim": 1}
    rec = Recorder(steps, group.size, dim=problem.dim if problem.dim <= 2 else None)
    x = ops.array(np.stack([problem.init(seed) for seed in group.seeds]))
    hp = {k: ops.array(v[:, None]) for k, v in group.floats.items()}
    lr = ops.array(group.lr)
    state = rule.init(x, **extra)
    rows = np.arange(group.size)
    marks = eval_steps(steps, eval_every)
    thresh: Any = None
    if rec.trajectory is not None:
        rec.trajectory[0] = ops.numpy(x)
    if 0 in marks and eval_every:
        rec.add_evals(0, rows, problem.evaluate(x))
    kw = {**hp, **group.flags, **extra}
    start = time.perf_counter()
    for t in range(steps):
        loss, g = problem.loss_and_grad(x)
        gnorm = ops.norm_rows(g)
        if t == 0:
            thresh = divergence_factor * np.maximum(np.abs(ops.numpy(loss)), LOSS_FLOOR)
            thresh = ops.array(thresh)
        ok = ops.ok(loss, gnorm, thresh)
        if not ok.all():
            bad = ~ok
            bad_x = ops.torch.as_tensor(bad) if backend == "torch" else bad
            rec.diverge(t, rows[bad], ops.numpy(loss[bad_x]), ops.numpy(gnorm[bad_x]))
            if progress:
                progress(int(bad.sum()) * (steps - t))
            keep = np.flatnonzero(ok)
            if backend == "torch":
                keep = ops.torch.as_tensor(keep)
            x, g, loss, gnorm, lr, thresh, kw, state = take(
                (x, g, loss, gnorm, lr, thresh, kw, state), keep, len(rows)
            )
            rows = rows[ok]
            if len(rows) == 0:
                break
        delta, state = rule.update(g, state, x, lr=lr[:, t : t + 1], **kw)
        x = x + delta
        unorm = ops.norm_rows(delta)
        rec.step(
            t,
            rows,
            ops.numpy(loss),
            ops.numpy(gnorm),
            ops.numpy(unorm),
            (time.perf_counter() - start) / len(rows),
        )
        if rec.trajectory is not None:
            rec.trajectory[t + 1, rows if len(rows) < rec.size else slice(None)] = ops.numpy(x)
        if t + 1 in marks:
            rec.add_evals(t + 1, rows, problem.evaluate(x))
        if progress:
            progress(len(rows))
        start = time.perf_counter()
    return rec
